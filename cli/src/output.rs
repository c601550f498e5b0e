//! Human output: what each command prints without `--json`. Aligned, short, relative times;
//! ids in full where the user needs to copy them.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::call::Call;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// "3 min ago", "2 h ago", "5 d ago", "just now", "in 2 min" (a clock ahead of ours).
pub fn age(ms: u64, now: u64) -> String {
    let (secs, future) = if now >= ms {
        ((now - ms) / 1000, false)
    } else {
        ((ms - now) / 1000, true)
    };
    let text = match secs {
        0..=44 => return "just now".into(),
        45..=3599 => format!("{} min", (secs / 60).max(1)),
        3600..=86_399 => format!("{} h", secs / 3600),
        86_400..=2_591_999 => format!("{} d", secs / 86_400),
        2_592_000..=31_535_999 => format!("{} mo", secs / 2_592_000),
        _ => format!("{} y", secs / 31_536_000),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_default()
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// "alice (K3F9Q2AB)" or "(K3F9Q2AB)" for someone without a profile.
fn who(name: Option<&str>, fingerprint: &str) -> String {
    match name {
        Some(name) if !name.trim().is_empty() => format!("{name} ({fingerprint})"),
        _ => format!("({fingerprint})"),
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.pop();
        out.push('…');
    }
    out
}

/// " [hidden: votes] [disputed] [verified]", or "".
fn marks(status: &Value) -> String {
    let mut out = String::new();
    if let Some(why) = status["hidden"].as_str() {
        let why = match why {
            "votes" => "by votes",
            "author_muted" => "author muted",
            _ => why,
        };
        let _ = write!(out, " [hidden: {why}]");
    }
    if status["disputed"].as_bool().unwrap_or(false) {
        out.push_str(" [disputed]");
    }
    if status["verified"].as_bool().unwrap_or(false) {
        out.push_str(" [verified]");
    }
    out
}

fn log_line(out: &mut String, item: &Value, now: u64) {
    let standing = if item["counted"].as_bool().unwrap_or(false) {
        "counted".to_owned()
    } else {
        format!(
            "not counted: {}",
            item["not_counted_because"].as_str().unwrap_or("?")
        )
    };
    let _ = write!(
        out,
        "{}  {}  {} {} {}  ({standing}",
        age(n(item, "timestamp"), now),
        s(item, "signer_fingerprint"),
        s(item, "what"),
        s(item, "about"),
        if s(item, "reason").is_empty() {
            String::new()
        } else {
            format!("\"{}\"", s(item, "reason"))
        },
    );
    if let Some(c) = item["contributed"].as_str() {
        let _ = write!(out, "; {c}");
    }
    out.push_str(")\n");
}

fn feed(posts: &[Value], limit: usize) -> String {
    let now = now_ms();
    if posts.is_empty() {
        return "No posts yet.\n".into();
    }
    let mut out = String::new();
    for p in posts {
        let subwiki = p["subwiki_name"].as_str().unwrap_or(s(p, "subwiki"));
        let _ = writeln!(
            out,
            "{}  {}{}",
            s(p, "id"),
            truncate(s(p, "title"), 70),
            marks(&p["status"])
        );
        let _ = writeln!(
            out,
            "    in {} · by {} · {} · {} · {}",
            subwiki,
            who(p["author_name"].as_str(), s(p, "author_fingerprint")),
            age(n(p, "created_at"), now),
            plural(n(p, "comments"), "comment", "comments"),
            plural(n(p, "edits"), "edit", "edits"),
        );
    }
    if posts.len() >= limit
        && let Some(last) = posts.last()
    {
        let _ = writeln!(out, "More: agora feed --before {}", s(last, "cursor"));
    }
    out
}

fn post(p: &Value) -> String {
    let now = now_ms();
    let mut out = String::new();
    let _ = writeln!(out, "{}{}", s(p, "title"), marks(&p["status"]));
    let _ = writeln!(
        out,
        "by {} · {} · {} · {}",
        who(p["author_name"].as_str(), s(p, "author_fingerprint")),
        age(n(p, "created_at"), now),
        plural(n(p, "edits"), "edit", "edits"),
        s(p, "id"),
    );
    if let Some(version) = p["version"].as_str() {
        let _ = writeln!(out, "version {version}");
    }
    if let Some(link) = p["link"].as_str() {
        let _ = writeln!(out, "link: {link}");
    }
    for image in p["images"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "image: {}", image.as_str().unwrap_or_default());
    }
    let body = s(p, "body");
    if !body.is_empty() {
        let _ = writeln!(out, "\n{body}");
    }
    let votes = p.get("votes").unwrap_or(&Value::Null);
    let behind = votes
        .get("behind")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !behind.is_empty() {
        let counted = votes.get("counted").unwrap_or(&Value::Null);
        let _ = writeln!(
            out,
            "\nvotes counted: hide {} · keep {} · misleading {} · verified {}",
            n(counted, "hide"),
            n(counted, "keep"),
            n(counted, "misleading"),
            n(counted, "verified")
        );
        for item in &behind {
            out.push_str("  ");
            log_line(&mut out, item, now);
        }
    }
    if let Some(comments) = p["comment_list"].as_array() {
        let _ = writeln!(
            out,
            "\n{}",
            plural(comments.len() as u64, "comment", "comments")
        );
        for c in comments {
            let author = &c["author"];
            let _ = writeln!(
                out,
                "  {} · {}: {}",
                who(author["name"].as_str(), s(author, "fingerprint")),
                age(n(c, "created_at"), now),
                s(c, "text"),
            );
        }
    }
    out
}

fn subwiki(v: &Value) -> String {
    let mut out = String::new();
    let name = v["name"].as_str().unwrap_or("(not received yet)");
    let _ = writeln!(out, "{name}");
    if let Some(d) = v["description"].as_str().filter(|d| !d.is_empty()) {
        let _ = writeln!(out, "{d}");
    }
    let _ = writeln!(out, "id:          {}", s(v, "id"));
    if let Some(policy) = v["edit_policy"].as_str() {
        let _ = writeln!(out, "edit policy: {policy}");
    }
    let _ = writeln!(out, "entries:     {}", n(v, "entries"));
    let _ = writeln!(
        out,
        "joined:      {}",
        v["joined"].as_bool().unwrap_or(false)
    );
    out
}

fn table(rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = write!(line, "{cell:width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// What a call's result looks like on screen.
pub fn render(call: &Call, v: &Value) -> String {
    let now = now_ms();
    match call {
        Call::Whoami { .. } => format!(
            "author   {}\nname     {}\nfinger   {}\npeer id  {}\n",
            s(v, "author"),
            v["name"]
                .as_str()
                .unwrap_or("(none; set one with agora init --name)"),
            s(v, "fingerprint"),
            s(v, "peer_id"),
        ),
        Call::SubwikiCreate { .. }
        | Call::PostNew { .. }
        | Call::Comment { .. }
        | Call::Vote { .. }
        | Call::VoteAuthor { .. }
        | Call::Role { .. } => {
            format!("{}\n", s(v, "id"))
        }
        Call::SubwikiJoin { .. } => {
            let mut out = subwiki(v);
            if !v["caught_up"].as_bool().unwrap_or(false) {
                out.push_str(
                    "Not caught up yet: no peer answered in time. The node syncs when one appears.\n",
                );
            }
            out
        }
        Call::SubwikiLeave { .. } => format!("Left {}\n", s(v, "id")),
        Call::SubwikiShow { .. } => subwiki(v),
        Call::SubwikiList | Call::SubwikiDiscover => {
            let items = v.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return if matches!(call, Call::SubwikiList) {
                    "No subwikis yet: agora subwiki create NAME, or agora subwiki join ID.\n".into()
                } else {
                    "No subwikis heard of yet.\n".into()
                };
            }
            let mut rows = vec![vec![
                "ID".to_owned(),
                "NAME".to_owned(),
                "POLICY".to_owned(),
                "ENTRIES".to_owned(),
            ]];
            for i in &items {
                rows.push(vec![
                    s(i, "id").to_owned(),
                    truncate(i["name"].as_str().unwrap_or("?"), 40),
                    i["edit_policy"].as_str().unwrap_or("?").to_owned(),
                    i["entries"]
                        .as_u64()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                ]);
            }
            table(rows)
        }
        Call::SubwikiInvite { .. } => {
            let mut out = format!("{}\n", s(v, "invite"));
            if v["addresses"].as_array().is_none_or(Vec::is_empty) {
                out.push_str(
                    "(no addresses: run `agora up` so that friends can reach this node)\n",
                );
            }
            out
        }
        Call::PostEdit { .. } | Call::PostRevert { .. } => match v["version"].as_str() {
            Some(version) => format!("{version}\n"),
            None => "No change.\n".into(),
        },
        Call::PostShow { .. } => post(v),
        Call::PostHistory { .. } => {
            let mut rows = vec![vec![
                "VERSION".to_owned(),
                "BY".to_owned(),
                "WHEN".to_owned(),
                "STATUS".to_owned(),
                "FIELDS".to_owned(),
            ]];
            for h in v.as_array().into_iter().flatten() {
                let fields: Vec<&str> = h["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                rows.push(vec![
                    s(h, "version").to_owned(),
                    s(h, "author_fingerprint").to_owned(),
                    age(n(h, "timestamp"), now),
                    s(h, "status").to_owned(),
                    fields.join(","),
                ]);
            }
            table(rows)
        }
        Call::PostExport { .. } => format!(
            "Wrote {} ({} bytes, an Automerge document)\n",
            v["file"].as_str().unwrap_or_default(),
            n(v, "bytes")
        ),
        Call::Feed { limit, .. } => feed(v.as_array().map_or(&[], Vec::as_slice), *limit),
        Call::Peers => {
            let peers = v.as_array().cloned().unwrap_or_default();
            if peers.is_empty() {
                return "No peers connected.\n".into();
            }
            let mut rows = vec![vec!["PEER".to_owned(), "ADDRESS".to_owned()]];
            for p in &peers {
                let addrs: Vec<&str> = p["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                rows.push(vec![s(p, "peer_id").to_owned(), addrs.join(" ")]);
            }
            table(rows)
        }
        Call::Status => {
            let mut out = format!(
                "{}\n",
                if v["running"].as_bool().unwrap_or(false) {
                    format!("node running, {}", plural(n(v, "peers"), "peer", "peers"))
                } else {
                    "node not running (agora up)".to_owned()
                }
            );
            let mut rows = vec![vec![
                "SUBWIKI".to_owned(),
                "NAME".to_owned(),
                "ENTRIES".to_owned(),
                "SYNCS".to_owned(),
                "LAST SYNC".to_owned(),
            ]];
            for sw in v["subwikis"].as_array().into_iter().flatten() {
                rows.push(vec![
                    s(sw, "id").to_owned(),
                    truncate(sw["name"].as_str().unwrap_or("?"), 30),
                    n(sw, "entries").to_string(),
                    n(sw, "syncs").to_string(),
                    sw["last_sync"]
                        .as_u64()
                        .map_or_else(|| "never".to_owned(), |t| age(t, now)),
                ]);
            }
            out.push_str(&table(rows));
            out
        }
        Call::Modlog { .. } => {
            let mut out = String::new();
            let list = |key: &str| {
                let items: Vec<&str> = v[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if items.is_empty() {
                    "none".to_owned()
                } else {
                    items.join(", ")
                }
            };
            let _ = writeln!(out, "founder     {}", s(v, "founder"));
            let _ = writeln!(out, "moderators  {}", list("moderators"));
            let _ = writeln!(out, "trusted     {}", list("trusted"));
            let _ = writeln!(out, "barred      {}", list("barred"));
            let _ = writeln!(out, "hidden      {}", list("hidden"));
            let _ = writeln!(out, "muted       {}", list("muted"));
            let _ = writeln!(out, "you ignore  {}", list("overridden"));
            let log = v["log"].as_array().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{}",
                plural(log.len() as u64, "statement", "statements")
            );
            for item in &log {
                log_line(&mut out, item, now);
            }
            out
        }
        Call::Override { .. } => {
            let ignored: Vec<&str> = v["ignored"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if ignored.is_empty() {
                "You count everyone's votes.\n".into()
            } else {
                format!("You do not count the votes of:\n{}\n", ignored.join("\n"))
            }
        }
        Call::Export { .. } => format!(
            "Wrote {} entries of {} to {}\n",
            n(v, "entries"),
            s(v, "id"),
            v["file"].as_str().unwrap_or_default()
        ),
        Call::Import { .. } => format!(
            "Imported {}: {} new entries, {} already held\n",
            s(v, "id"),
            n(v, "new"),
            n(v, "duplicates")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = 10_000_000_000;
        assert_eq!(age(now - 5_000, now), "just now");
        assert_eq!(age(now - 3 * 60_000, now), "3 min ago");
        assert_eq!(age(now - 2 * 3_600_000, now), "2 h ago");
        assert_eq!(age(now - 5 * 86_400_000, now), "5 d ago");
        assert_eq!(age(now + 120_000, now), "in 2 min");
    }

    #[test]
    fn tables_align() {
        let t = table(vec![
            vec!["A".into(), "BB".into()],
            vec!["ccc".into(), "d".into()],
        ]);
        assert_eq!(t, "A    BB\nccc  d\n");
    }
}
