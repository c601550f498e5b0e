//! Human output: what each command prints without `--json`. Aligned, short, relative times;
//! ids in full where the user needs to copy them. Each operation renders its own typed answer
//! ([`Render`]); the renderings are grouped by subject like the operations.
//!
//! Every text that came from others (titles, bodies, comments, names, links, descriptions,
//! reasons) goes through [`printable`], so that it cannot move the cursor, retitle the
//! terminal or forge a line of the output. `--json` prints the answer exactly.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use agora_crdt::Timestamp;
use agora_node::http::Operation;
use agora_node::http::ops::{HiddenBecause, LogLine, PostState, StatementKind, Tombstone};

use crate::keys::Whoami;

mod inbox;
mod moderation;
mod peers;
mod posts;
mod retraction;
mod search;
mod subwikis;

/// An operation whose answer the command prints for people.
pub trait Render: Operation {
    /// The answer as text, ending with a newline.
    fn render(&self, answer: &Self::Answer) -> String;
}

/// `text` made safe to print on a terminal. Control characters (C0, DEL, C1, so ESC and the
/// sequences it starts) and the Unicode bidi controls U+202A–U+202E and U+2066–U+2069 are shown
/// as escapes (`\u{1b}`). With `continuation` (multi-line text: a body, a comment) newlines
/// are kept and each following line starts with `continuation`, so that no line of it starts
/// where the command's own lines do, and tabs are kept; without (a title, a name: single-line
/// fields) newlines and tabs are shown as `\n` and `\t`.
pub fn printable(text: &str, continuation: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, continuation) {
            // A Windows line ending is a line ending.
            ('\r', Some(_)) if chars.peek() == Some(&'\n') => {}
            ('\n', Some(indent)) => {
                out.push('\n');
                out.push_str(indent);
            }
            ('\t', Some(_)) => out.push('\t'),
            ('\n' | '\r' | '\t', None) => out.extend(c.escape_default()),
            _ if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.extend(c.escape_unicode());
            }
            _ => out.push(c),
        }
    }
    out
}

/// A single-line text from others, made safe: [`printable`] without continuation lines.
fn line(text: &str) -> String {
    printable(text, None)
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
        Some(name) if !name.trim().is_empty() => format!("{} ({fingerprint})", line(name)),
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

/// What stands in place of a retracted or redacted post or comment: "[retracted by alice
/// (K3F9Q2AB) 5 min ago]", "[redacted by bob (Q7X2M4PA) 1 h ago: doxxing]".
fn taken_back(t: &Tombstone, now: Timestamp) -> String {
    let what = if t.redaction { "redacted" } else { "retracted" };
    let mut out = format!(
        "[{what} by {} {}",
        who(t.by.name.as_deref(), &t.by.fingerprint),
        age(t.at, now)
    );
    if !t.reason.is_empty() {
        let _ = write!(out, ": {}", line(&t.reason));
    }
    out.push(']');
    out
}

fn log_line(out: &mut String, item: &LogLine, now: Timestamp) {
    let standing = if item.counted {
        "counted".to_owned()
    } else {
        format!(
            "not counted: {}",
            line(item.not_counted_because.as_deref().unwrap_or("?"))
        )
    };
    let what = match item.kind {
        StatementKind::Role | StatementKind::Vote | StatementKind::Retraction => &item.what,
    };
    let _ = write!(
        out,
        "{}  {}  {} {} {}  ({standing}",
        age(item.timestamp, now),
        item.signer_fingerprint,
        line(what),
        line(&item.about),
        if item.reason.is_empty() {
            String::new()
        } else {
            format!("\"{}\"", line(&item.reason))
        },
    );
    if let Some(c) = &item.contributed {
        let _ = write!(out, "; {}", line(c));
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
            .map_or_else(|| "(none; set one with agora init --name)".to_owned(), line),
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
    fn text_from_others_cannot_drive_the_terminal() {
        let raw = "a\x1b]0;x\x07\r\n\tb\u{9b}\u{202e}\u{2066}\x7f é";
        assert_eq!(
            printable(raw, None),
            "a\\u{1b}]0;x\\u{7}\\r\\n\\tb\\u{9b}\\u{202e}\\u{2066}\\u{7f} é"
        );
        assert_eq!(
            printable("one\r\ntwo\n\tthree\r", Some("  ")),
            "one\n  two\n  \tthree\\u{d}"
        );
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
