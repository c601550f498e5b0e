//! Votes, roles, the moderation log and overrides on screen.

use std::fmt::Write;

use agora_node::http::ops::{
    ModerationLog, ModeratorAdd, ModeratorRemove, Modlog, Mute, OverrideIgnore, OverrideList,
    OverrideRestore, Overrides, Revoke, Stated, Unmute, Vote, Voted, Vouch,
};

use super::{Render, log_line, now, plural};

impl Render for Vote {
    fn render(&self, answer: &Voted) -> String {
        format!("{}\n", answer.id)
    }
}

macro_rules! stated {
    ($($op:ty),*) => {$(
        impl Render for $op {
            fn render(&self, answer: &Stated) -> String {
                format!("{}\n", answer.id)
            }
        }
    )*};
}

stated!(Mute, Unmute, Vouch, Revoke, ModeratorAdd, ModeratorRemove);

fn names<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Render for Modlog {
    fn render(&self, v: &ModerationLog) -> String {
        let now = now();
        let mut out = String::new();
        let _ = writeln!(out, "founder     {}", v.founder);
        let _ = writeln!(out, "moderators  {}", names(&v.moderators));
        let _ = writeln!(out, "trusted     {}", names(&v.trusted));
        let _ = writeln!(out, "barred      {}", names(&v.barred));
        let _ = writeln!(out, "hidden      {}", names(&v.hidden));
        let _ = writeln!(out, "muted       {}", names(&v.muted));
        let _ = writeln!(out, "you ignore  {}", names(&v.overridden));
        let _ = writeln!(out, "\n{}", plural(v.log.len(), "statement", "statements"));
        for item in &v.log {
            log_line(&mut out, item, now);
        }
        if !v.equivocations.is_empty() {
            let _ = writeln!(
                out,
                "\n{} (two versions of one change; both left out, with what was built on them)",
                plural(v.equivocations.len(), "equivocation", "equivocations")
            );
            for e in &v.equivocations {
                let entries: Vec<String> = e.entries.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "  {} ({}) in {}, change {}: {}",
                    e.author,
                    e.author_fingerprint,
                    e.doc,
                    e.seq,
                    entries.join(" ")
                );
            }
        }
        out
    }
}

fn overrides(answer: &Overrides) -> String {
    if answer.ignored.is_empty() {
        "You count everyone's votes.\n".into()
    } else {
        let list: Vec<String> = answer.ignored.iter().map(ToString::to_string).collect();
        format!("You do not count the votes of:\n{}\n", list.join("\n"))
    }
}

macro_rules! overridden {
    ($($op:ty),*) => {$(
        impl Render for $op {
            fn render(&self, answer: &Overrides) -> String {
                overrides(answer)
            }
        }
    )*};
}

overridden!(OverrideIgnore, OverrideRestore, OverrideList);
