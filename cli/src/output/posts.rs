//! Posts, comments and the feed on screen.

use std::fmt::Write;

use agora_node::http::ops::{
    Change, Comment, Commented, Edited, Feed, FeedPost, Post, PostEdit, PostExport, PostExported,
    PostHistory, PostNew, PostPage, PostRevert, PostShow,
};

use super::{
    Render, age, line, log_line, marks, now, plural, printable, table, taken_back, truncate, who,
    word,
};

impl Render for PostNew {
    fn render(&self, answer: &Post) -> String {
        format!("{}\n", answer.id)
    }
}

fn edited(answer: &Edited) -> String {
    match answer.change {
        Some(version) => format!("{version}\n"),
        None => "No change.\n".into(),
    }
}

impl Render for PostEdit {
    fn render(&self, answer: &Edited) -> String {
        edited(answer)
    }
}

impl Render for PostRevert {
    fn render(&self, answer: &Edited) -> String {
        edited(answer)
    }
}

impl Render for PostShow {
    fn render(&self, page: &PostPage) -> String {
        let now = now();
        let p = &page.post;
        let mut out = String::new();
        if let Some(t) = &p.retracted {
            // Nothing of its content is left: who took it back, and its comments.
            let _ = writeln!(out, "{}", taken_back(t, now));
            let _ = writeln!(
                out,
                "by {} · {} · {}",
                who(p.author_name.as_deref(), &p.author_fingerprint),
                age(p.created_at, now),
                p.id,
            );
            let _ = writeln!(out, "Its content is deleted.");
            comments(&mut out, page, now);
            return out;
        }
        let _ = writeln!(out, "{}{}", line(&p.title), marks(&page.status));
        let _ = writeln!(
            out,
            "by {} · {} · {} · {}",
            who(p.author_name.as_deref(), &p.author_fingerprint),
            age(p.created_at, now),
            plural(p.edits, "edit", "edits"),
            p.id,
        );
        if let Some(version) = &p.version {
            let _ = writeln!(out, "version {version}");
        }
        if let Some(link) = &p.link {
            let _ = writeln!(out, "link: {}", line(link));
        }
        if let Some(card) = &p.card {
            for (label, text) in [
                ("title", &card.title),
                ("about", &card.description),
                ("site", &card.site_name),
            ] {
                if !text.is_empty() {
                    let _ = writeln!(out, "  {label}: {}", line(text));
                }
            }
        }
        for image in &p.images {
            let _ = writeln!(out, "image: {image}");
        }
        if !p.body.is_empty() {
            // Indented, so that no line of the body passes for a line of the command's own.
            let _ = writeln!(out, "\n  {}", printable(&p.body, Some("  ")));
        }
        let votes = &page.votes;
        if !votes.behind.is_empty() {
            let counted = votes.counted.unwrap_or_default();
            let _ = writeln!(
                out,
                "\nvotes counted: hide {} · keep {} · misleading {} · verified {}",
                counted.hide, counted.keep, counted.misleading, counted.verified
            );
            for item in &votes.behind {
                out.push_str("  ");
                log_line(&mut out, item, now);
            }
        }
        comments(&mut out, page, now);
        out
    }
}

/// A post's comments, each retracted or redacted one as who took it back.
fn comments(out: &mut String, page: &PostPage, now: agora_crdt::Timestamp) {
    let _ = writeln!(
        out,
        "\n{}",
        plural(page.comment_list.len(), "comment", "comments")
    );
    for c in &page.comment_list {
        let text = match &c.retracted {
            Some(t) => taken_back(t, now),
            None => printable(&c.text, Some("    ")),
        };
        let _ = writeln!(
            out,
            "  {} · {}: {text}",
            who(c.author.name.as_deref(), &c.author.fingerprint),
            age(c.created_at, now),
        );
    }
}

impl Render for PostHistory {
    fn render(&self, answer: &Vec<Change>) -> String {
        let now = now();
        let mut rows = vec![vec![
            "VERSION".to_owned(),
            "BY".to_owned(),
            "WHEN".to_owned(),
            "STATUS".to_owned(),
            "FIELDS".to_owned(),
        ]];
        for h in answer {
            let fields: Vec<String> = h.fields.iter().map(word).collect();
            rows.push(vec![
                h.version.to_string(),
                h.author_fingerprint.clone(),
                age(h.timestamp, now),
                word(&h.status),
                fields.join(","),
            ]);
        }
        table(rows)
    }
}

impl Render for PostExport {
    fn render(&self, answer: &PostExported) -> String {
        format!(
            "Wrote {} ({} bytes, an Automerge document)\n",
            answer.file.display(),
            answer.bytes
        )
    }
}

impl Render for Comment {
    fn render(&self, answer: &Commented) -> String {
        format!("{}\n", answer.id)
    }
}

impl Render for Feed {
    fn render(&self, posts: &Vec<FeedPost>) -> String {
        let now = now();
        if posts.is_empty() && self.following {
            return "No posts from the people you follow (agora following lists them).\n".into();
        }
        if posts.is_empty() {
            return "No posts yet.\n".into();
        }
        let mut out = String::new();
        for p in posts {
            let post = &p.post;
            let subwiki = p
                .subwiki_name
                .as_deref()
                .map_or_else(|| post.subwiki.to_string(), line);
            if let Some(t) = &post.retracted {
                let _ = writeln!(out, "{}  {}", post.id, taken_back(t, now));
                let _ = writeln!(
                    out,
                    "    in {} · by {} · {} · {}",
                    subwiki,
                    who(post.author_name.as_deref(), &post.author_fingerprint),
                    age(post.created_at, now),
                    plural(post.comments, "comment", "comments"),
                );
                continue;
            }
            let _ = writeln!(
                out,
                "{}  {}{}",
                post.id,
                truncate(&line(&post.title), 70),
                marks(&p.status)
            );
            let _ = writeln!(
                out,
                "    in {} · by {} · {} · {} · {}",
                subwiki,
                who(post.author_name.as_deref(), &post.author_fingerprint),
                age(post.created_at, now),
                plural(post.comments, "comment", "comments"),
                plural(post.edits, "edit", "edits"),
            );
        }
        if posts.len() >= self.limit
            && let Some(last) = posts.last()
        {
            let _ = writeln!(out, "More: agora feed --before {}", last.cursor);
        }
        out
    }
}
