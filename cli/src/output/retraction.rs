//! Retractions and redactions on screen.

use std::fmt::Write;

use agora_node::http::ops::{AccountRetract, PostRetract, Redact, Retracted};

use super::{Render, plural};

/// "Retracted doc_… (entry …)" or "Redacted doc_… (entry …)".
fn done(r: &Retracted) -> String {
    let what = if r.redaction { "Redacted" } else { "Retracted" };
    format!("{what} {} (statement {})\n", r.doc, r.entry)
}

impl Render for PostRetract {
    fn render(&self, answer: &Retracted) -> String {
        done(answer)
    }
}

impl Render for Redact {
    fn render(&self, answer: &Retracted) -> String {
        done(answer)
    }
}

impl Render for AccountRetract {
    fn render(&self, answer: &Vec<Retracted>) -> String {
        if answer.is_empty() {
            return "Nothing of yours to retract.\n".into();
        }
        let mut out = String::new();
        for r in answer {
            out.push_str(&done(r));
        }
        let _ = writeln!(
            out,
            "Retracted {} (posts, comments and profile).",
            plural(answer.len(), "document", "documents")
        );
        out
    }
}
