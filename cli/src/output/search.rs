//! Search results on screen.

use std::fmt::Write;

use agora_node::http::ops::{Found, Search};

use super::{Render, age, line, marks, now, plural, truncate, who};

/// A snippet on one line: its whitespace (newlines of a body) folded to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` quoted for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Render for Search {
    fn render(&self, found: &Found) -> String {
        let now = now();
        let mut out = String::new();
        if found.hits.is_empty() {
            out.push_str("No posts found.\n");
        }
        for hit in &found.hits {
            let post = &hit.post;
            let subwiki = hit
                .subwiki_name
                .as_deref()
                .map_or_else(|| post.subwiki.to_string(), line);
            let _ = writeln!(
                out,
                "{}  {}{}",
                post.id,
                truncate(&line(&post.title), 70),
                marks(&hit.status)
            );
            let _ = writeln!(
                out,
                "    in {} · by {} · {} · {}",
                subwiki,
                who(post.author_name.as_deref(), &post.author_fingerprint),
                age(post.created_at, now),
                plural(post.comments, "comment", "comments"),
            );
            let snippet = one_line(&hit.snippet);
            if !snippet.is_empty() {
                let _ = writeln!(out, "    {}", truncate(&line(&snippet), 200));
            }
        }
        if found.hits.len() >= self.limit {
            let _ = writeln!(
                out,
                "More: agora search {} --offset {}",
                line(&quoted(&self.query)),
                self.offset + found.hits.len()
            );
        }
        if found.indexing {
            out.push_str(
                "(The search index is being brought up to date: some posts may be missing.)\n",
            );
        }
        out
    }
}
