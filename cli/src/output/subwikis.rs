//! Subwikis on screen.

use std::fmt::Write;

use agora_node::http::ops::{
    Invitation, Joined, Left, Subwiki, SubwikiAbout, SubwikiCreate, SubwikiDiscover, SubwikiInvite,
    SubwikiJoin, SubwikiLeave, SubwikiList, SubwikiShow,
};

use super::{Render, line, printable, table, truncate};

fn subwiki(v: &Subwiki) -> String {
    let mut out = String::new();
    let about = &v.about;
    let _ = writeln!(
        out,
        "{}",
        about
            .name
            .as_deref()
            .map_or_else(|| "(not received yet)".to_owned(), line)
    );
    if let Some(d) = about.description.as_deref().filter(|d| !d.is_empty()) {
        // Indented, so that no line of it passes for one of the lines below.
        let _ = writeln!(out, "  {}", printable(d, Some("  ")));
    }
    let _ = writeln!(out, "id:          {}", about.id);
    if let Some(policy) = about.edit_policy {
        let _ = writeln!(out, "edit policy: {policy}");
    }
    let _ = writeln!(out, "entries:     {}", v.entries);
    let _ = writeln!(out, "joined:      {}", v.joined);
    out
}

fn list<'a>(items: impl Iterator<Item = (&'a SubwikiAbout, Option<usize>)>) -> String {
    let mut rows = vec![vec![
        "ID".to_owned(),
        "NAME".to_owned(),
        "POLICY".to_owned(),
        "ENTRIES".to_owned(),
    ]];
    for (about, entries) in items {
        rows.push(vec![
            about.id.to_string(),
            truncate(&line(about.name.as_deref().unwrap_or("?")), 40),
            about
                .edit_policy
                .map_or_else(|| "?".to_owned(), |p| p.to_string()),
            entries.map(|e| e.to_string()).unwrap_or_default(),
        ]);
    }
    table(rows)
}

impl Render for SubwikiCreate {
    fn render(&self, answer: &Subwiki) -> String {
        format!("{}\n", answer.about.id)
    }
}

impl Render for SubwikiJoin {
    fn render(&self, answer: &Joined) -> String {
        let mut out = subwiki(&answer.subwiki);
        if !answer.caught_up {
            out.push_str(
                "Not caught up yet: no peer answered in time. The node syncs when one appears.\n",
            );
        }
        out
    }
}

impl Render for SubwikiLeave {
    fn render(&self, answer: &Left) -> String {
        let id = answer.subwiki.about.id;
        if answer.purged {
            format!(
                "Left {id} and deleted it from this home ({} entries). What you wrote there \
                 stays on others' nodes unless you retract it first.\n",
                answer.subwiki.entries
            )
        } else {
            format!("Left {id}\n")
        }
    }
}

impl Render for SubwikiShow {
    fn render(&self, answer: &Subwiki) -> String {
        subwiki(answer)
    }
}

impl Render for SubwikiList {
    fn render(&self, answer: &Vec<Subwiki>) -> String {
        if answer.is_empty() {
            return "No subwikis yet: agora subwiki create NAME, or agora subwiki join ID.\n"
                .into();
        }
        list(answer.iter().map(|s| (&s.about, Some(s.entries))))
    }
}

impl Render for SubwikiDiscover {
    fn render(&self, answer: &Vec<SubwikiAbout>) -> String {
        if answer.is_empty() {
            return "No subwikis heard of yet.\n".into();
        }
        list(answer.iter().map(|s| (s, None)))
    }
}

impl Render for SubwikiInvite {
    fn render(&self, answer: &Invitation) -> String {
        let mut out = format!("{}\n", answer.invite);
        if answer.addresses.is_empty() {
            out.push_str("(no addresses: run `agora up` so that friends can reach this node)\n");
        }
        out
    }
}
