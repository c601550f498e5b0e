//! Human output: what each command prints without `--json`. Aligned, short, relative times;
//! ids in full where the user needs to copy them. Each operation renders its own typed answer
//! ([`Render`]); the renderings are grouped by subject like the operations.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use agora_crdt::Timestamp;
use agora_node::http::Operation;
use agora_node::http::ops::{HiddenBecause, LogLine, PostState, StatementKind};

use crate::keys::Whoami;

mod moderation;
mod peers;
mod posts;
mod subwikis;

/// An operation whose answer the command prints for people.
pub trait Render: Operation {
    /// The answer as text, ending with a newline.
    fn render(&self, answer: &Self::Answer) -> String;
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    Timestamp(ms)
}

/// "3 min ago", "2 h ago", "5 d ago", "just now", "in 2 min" (a clock ahead of ours).
pub fn age(at: Timestamp, now: Timestamp) -> String {
    let (ms, now) = (at.0, now.0);
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

fn plural(count: usize, one: &str, many: &str) -> String {
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
fn marks(status: &PostState) -> String {
    let mut out = String::new();
    if let Some(why) = status.hidden {
        let why = match why {
            HiddenBecause::Votes => "by votes",
            HiddenBecause::AuthorMuted => "author muted",
            HiddenBecause::PostHidden => "post hidden",
        };
        let _ = write!(out, " [hidden: {why}]");
    }
    if status.disputed {
        out.push_str(" [disputed]");
    }
    if status.verified {
        out.push_str(" [verified]");
    }
    out
}

fn log_line(out: &mut String, item: &LogLine, now: Timestamp) {
    let standing = if item.counted {
        "counted".to_owned()
    } else {
        format!(
            "not counted: {}",
            item.not_counted_because.as_deref().unwrap_or("?")
        )
    };
    let what = match item.kind {
        StatementKind::Role | StatementKind::Vote => &item.what,
    };
    let _ = write!(
        out,
        "{}  {}  {} {} {}  ({standing}",
        age(item.timestamp, now),
        item.signer_fingerprint,
        what,
        item.about,
        if item.reason.is_empty() {
            String::new()
        } else {
            format!("\"{}\"", item.reason)
        },
    );
    if let Some(c) = &item.contributed {
        let _ = write!(out, "; {c}");
    }
    out.push_str(")\n");
}

/// The word serde writes for a unit enum value (`applied`, `title`), for tables.
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
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

/// `agora whoami`.
pub fn whoami(w: &Whoami) -> String {
    format!(
        "author   {}\nname     {}\nfinger   {}\npeer id  {}\n",
        w.author,
        w.name
            .as_deref()
            .unwrap_or("(none; set one with agora init --name)"),
        w.fingerprint,
        w.peer_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = 10_000_000_000;
        let at = |ms| age(Timestamp(ms), Timestamp(now));
        assert_eq!(at(now - 5_000), "just now");
        assert_eq!(at(now - 3 * 60_000), "3 min ago");
        assert_eq!(at(now - 2 * 3_600_000), "2 h ago");
        assert_eq!(at(now - 5 * 86_400_000), "5 d ago");
        assert_eq!(at(now + 120_000), "in 2 min");
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
