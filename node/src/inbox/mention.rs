//! Mentions: `@` followed by an author id in full, as `agora whoami` prints it
//! (`@au_` and 52 lower-case base32 characters), not followed by another letter or digit.
//!
//! A mention names a key, never a display name: names are not unique and anyone may take a name
//! that looks like anyone else's, and even the 8-character fingerprint shown next to names (40
//! bits) can be matched by a key made for the purpose. Only the full id, which no one can
//! choose, makes a mention. It is a text convention, derived locally: nothing in an entry marks
//! it, and the text reads the same on nodes that know nothing about mentions.
//!
//! A change mentions someone when the text it inserts holds the mention whole (the create entry
//! of a post or comment inserts all of its text; an edit inserts what it adds). What a change
//! inserts is read from the change's own operations, so it depends on the entry alone.

use std::panic::{AssertUnwindSafe, catch_unwind};

use agora_crdt::AuthorId;
use automerge::ScalarValue;
use automerge::legacy::OpType;

/// Characters after `@au_` in a mention: an author id's base32 part.
const ID_CHARS: usize = 52;

/// The text that mentions `author`: `@au_…`.
pub fn mention(author: &AuthorId) -> String {
    format!("@{author}")
}

/// Every author `text` mentions, in order, duplicates removed.
pub fn mentioned(text: &str) -> Vec<AuthorId> {
    let mut out: Vec<AuthorId> = Vec::new();
    let bytes = text.as_bytes();
    let prefix = b"@au_";
    let mut from = 0;
    while let Some(at) = find(bytes.get(from..).unwrap_or_default(), prefix) {
        let start = from + at + 1;
        let end = start + AuthorId::PREFIX.len() + 1 + ID_CHARS;
        from = from + at + 1;
        let Some(candidate) = text.get(start..end) else {
            continue;
        };
        let canonical = candidate
            .get(AuthorId::PREFIX.len() + 1..)
            .unwrap_or_default()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
        let boundary = !bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if !canonical || !boundary {
            continue;
        }
        if let Ok(author) = candidate.parse::<AuthorId>()
            && !out.contains(&author)
        {
            out.push(author);
        }
    }
    out
}

/// Whether `text` mentions `author`.
pub fn mentions(text: &str, author: &AuthorId) -> bool {
    mentioned(text).contains(author)
}

/// Whether the raw bytes of a change may hold a mention of `author`: a change keeps the text
/// it inserts as UTF-8 bytes, so a change without the mention's bytes cannot insert it. A
/// cheap test before the change's operations are read.
pub(crate) fn may_mention(change_bytes: &[u8], author: &AuthorId) -> bool {
    find(change_bytes, mention(author).as_bytes()).is_some()
}

/// The text a change inserts, one line per object it inserts into, in the change's own order:
/// what it splices into a text, and the strings it adds to a list (tags, comma-separated; image
/// ids are left out). Strings put on a map key (the document's kind, a link) are not text
/// someone wrote. Empty for a change that cannot be read.
pub(crate) fn inserted_text(change: &automerge::Change) -> String {
    // Entries are validated before they get here, but this reads bytes from the network: a
    // panic in the decoder must not take the inbox down.
    let Ok(expanded) = catch_unwind(AssertUnwindSafe(|| change.decode())) else {
        return String::new();
    };
    // Runs of consecutive insertions into one object: a text gets one character an operation,
    // a list one element.
    let mut runs: Vec<(&automerge::legacy::ObjectId, Vec<&str>)> = Vec::new();
    let mut in_run = false;
    for op in &expanded.operations {
        match &op.action {
            OpType::Put(ScalarValue::Str(s)) if op.insert => match runs.last_mut() {
                Some((obj, values)) if in_run && **obj == op.obj => values.push(s),
                _ => {
                    runs.push((&op.obj, vec![s]));
                    in_run = true;
                }
            },
            _ => in_run = false,
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for (_, values) in runs {
        let text = values.iter().all(|v| v.chars().count() == 1);
        let line = if text {
            values.concat()
        } else {
            let shown: Vec<&str> = values
                .into_iter()
                .filter(|v| v.parse::<agora_crdt::BlobHash>().is_err())
                .collect();
            shown.join(", ")
        };
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines.join("\n")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(pos) = haystack.get(from..)?.iter().position(|b| *b == first) {
        let at = from + pos;
        if haystack.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_full_id_makes_a_mention() {
        let alice = AuthorId::from_bytes([7; 32]);
        let bob = AuthorId::from_bytes([9; 32]);
        let text = format!("hi {} and {}.", mention(&alice), mention(&bob));
        assert_eq!(mentioned(&text), vec![alice, bob]);
        assert!(mentions(&text, &alice));
        // A name, a fingerprint, a name with the fingerprint: none of them.
        let fp = alice.fingerprint();
        for fake in [
            "@alice".to_owned(),
            format!("@alice~{fp}"),
            format!("@au_{fp}"),
            format!("@alice ({fp})"),
        ] {
            assert!(!mentions(&fake, &alice), "{fake}");
        }
        // An id cut short, run on into more letters, or in upper case.
        let full = mention(&alice);
        assert!(!mentions(&full[..full.len() - 1], &alice));
        assert!(!mentions(&format!("{full}x"), &alice));
        assert!(!mentions(
            &full.to_uppercase().replace("@AU_", "@au_"),
            &alice
        ));
        assert!(mentions(&format!("({full})"), &alice));
        // A mention is found wherever it is, once.
        assert_eq!(mentioned(&format!("{full} {full},{full}")), vec![alice]);
        assert!(mentioned("@au_ @ @au_é").is_empty());
    }

    #[test]
    fn the_text_a_change_inserts_is_read_from_its_operations() {
        use agora_crdt::{AuthorKey, Policy, PostContent, Replica, Timestamp};
        let alice = AuthorKey::from_secret([1; 32], [1; 8]);
        let bob = AuthorKey::from_secret([2; 32], [2; 8]);
        let (mut r, _) = Replica::found(&alice, Timestamp(1), "s", "", Policy::default()).unwrap();
        let body = format!("Ask {} about it.", mention(&bob.id()));
        let post = PostContent {
            title: "A title".into(),
            body: body.clone(),
            ..PostContent::default()
        };
        let created = r.create_post(&alice, Timestamp(2), post).unwrap();
        let text = inserted_text(created.change().unwrap());
        assert!(text.starts_with("A title\n"), "{text:?}");
        assert!(text.contains(&body), "{text:?}");
        assert!(may_mention(
            created.payload().change_bytes().unwrap(),
            &bob.id()
        ));
        assert!(!may_mention(
            created.payload().change_bytes().unwrap(),
            &alice.id()
        ));
        // An edit inserts only what it adds.
        let edited = PostContent {
            title: "A title".into(),
            body: format!("{body} And {}.", mention(&alice.id())),
            ..PostContent::default()
        };
        let change = r
            .edit_post(
                &bob,
                Timestamp(3),
                created.id().into(),
                &agora_crdt::Base::Latest,
                edited,
            )
            .unwrap()
            .unwrap();
        let added = inserted_text(change.change().unwrap());
        assert!(mentions(&added, &alice.id()), "{added:?}");
        assert!(!mentions(&added, &bob.id()), "{added:?}");
    }
}
