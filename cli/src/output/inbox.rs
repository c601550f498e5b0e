//! The inbox and follows on screen. Names, titles and excerpts are others' text: every one goes
//! through [`super::printable`].

use std::fmt::Write;

use agora_node::http::ops::{
    Author, Follow, Followed, Following, Inbox, InboxMarked, InboxPage, InboxRead, Unfollow,
};
use agora_node::inbox::Kind;

use super::{Render, age, line, now, truncate, who};

impl Render for Inbox {
    fn render(&self, page: &InboxPage) -> String {
        let now = now();
        let mut out = format!("{} unread of {}\n", page.unread, page.total);
        if page.items.is_empty() {
            out.push_str(if self.unread {
                "Nothing unread.\n"
            } else {
                "Nothing yet: comments on your posts, replies, mentions of you and votes about \
                 you appear here.\n"
            });
            return out;
        }
        for item in &page.items {
            let mark = if item.read { ' ' } else { '*' };
            let actor = item
                .actor
                .as_ref()
                .map(|a| format!("{} ", who(a.name.as_deref(), &a.fingerprint)))
                .unwrap_or_default();
            let mut what = item.what();
            if item.mention && item.kind != Kind::Mention {
                what.push_str(", mentioning you");
            }
            let title = item
                .post_title
                .as_deref()
                .map(|t| format!(" \"{}\"", truncate(&line(t), 60)))
                .unwrap_or_default();
            let subwiki = item
                .subwiki_name
                .as_deref()
                .map_or_else(|| item.subwiki.to_string(), line);
            let _ = writeln!(
                out,
                "{mark} {}  {actor}{what}{title} in {subwiki}",
                age(item.time, now)
            );
            if !item.excerpt.is_empty() {
                let _ = writeln!(out, "    {}", truncate(&line(&item.excerpt), 100));
            }
            let _ = writeln!(out, "    {}", item.id);
        }
        out
    }
}

impl Render for InboxRead {
    fn render(&self, answer: &InboxMarked) -> String {
        format!(
            "{} marked read; {} unread left\n",
            answer.marked, answer.unread
        )
    }
}

fn followed(answer: &Followed) -> String {
    let a = &answer.author;
    let now = if answer.following {
        "following"
    } else {
        "not following"
    };
    let was = if answer.changed { "" } else { " (already)" };
    format!(
        "{now} {} {}{was}\n",
        who(a.name.as_deref(), &a.fingerprint),
        a.id
    )
}

impl Render for Follow {
    fn render(&self, answer: &Followed) -> String {
        followed(answer)
    }
}

impl Render for Unfollow {
    fn render(&self, answer: &Followed) -> String {
        followed(answer)
    }
}

impl Render for Following {
    fn render(&self, authors: &Vec<Author>) -> String {
        if authors.is_empty() {
            return "You follow no one yet: agora follow AUTHOR_ID\n".into();
        }
        let mut out = String::new();
        for a in authors {
            let _ = writeln!(out, "{}  {}", a.id, who(a.name.as_deref(), &a.fingerprint));
        }
        out
    }
}
