//! What the node keeps of moderation: a compact summary per subwiki (which posts are hidden,
//! disputed or verified, which authors are muted), stored so that a feed page needs no replay,
//! and the owner's personal overrides.
//!
//! The rules live in [`agora_crdt::moderation`]; the summary is derived from
//! [`agora_crdt::Moderation`] as this node's owner sees it (with their overrides), rewritten
//! whenever a vote or role statement arrives or the overrides change, and rebuilt from the
//! entries whenever it is missing or damaged.
//!
//! Stored form (text, one item per line): `agora-moderation v1`, then `h <post>` (hidden by
//! votes), `d <post>` (disputed), `v <post>` (verified), `m <author>` (muted).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use agora_crdt::{AuthorId, DocId, DocMeta, Hidden, Moderation, Overrides, SubwikiId};

const HEADER: &str = "agora-moderation v1";

/// Where a post stands for this node's owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostStatus {
    /// Why it is hidden, if it is.
    pub hidden: Option<Hidden>,
    /// Marked misleading by the subwiki.
    pub disputed: bool,
    /// Marked verified by the subwiki.
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    hidden: bool,
    disputed: bool,
    verified: bool,
}

/// The outcomes of one subwiki, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    posts: BTreeMap<DocId, Marks>,
    muted: BTreeSet<AuthorId>,
}

impl Summary {
    /// The summary of a computed moderation.
    pub(crate) fn of(moderation: &Moderation) -> Self {
        let posts = moderation
            .posts()
            .iter()
            .filter(|(_, o)| o.hidden || o.disputed || o.verified)
            .map(|(id, o)| {
                (
                    *id,
                    Marks {
                        hidden: o.hidden,
                        disputed: o.disputed,
                        verified: o.verified,
                    },
                )
            })
            .collect();
        Self {
            posts,
            muted: moderation.muted().collect(),
        }
    }

    /// The status of a post with these facts.
    pub(crate) fn status(&self, meta: &DocMeta) -> PostStatus {
        let marks = self.posts.get(&meta.id).copied().unwrap_or_default();
        let hidden = if marks.hidden {
            Some(Hidden::ByVotes)
        } else if self.muted.contains(&meta.creator) {
            Some(Hidden::AuthorMuted)
        } else {
            None
        };
        PostStatus {
            hidden,
            disputed: marks.disputed,
            verified: marks.verified,
        }
    }

    /// Whether an author is muted.
    pub(crate) fn is_muted(&self, author: &AuthorId) -> bool {
        self.muted.contains(author)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = String::from(HEADER);
        out.push('\n');
        for (id, m) in &self.posts {
            for (on, tag) in [(m.hidden, 'h'), (m.disputed, 'd'), (m.verified, 'v')] {
                if on {
                    out.push_str(&format!("{tag} {id}\n"));
                }
            }
        }
        for author in &self.muted {
            out.push_str(&format!("m {author}\n"));
        }
        out.into_bytes()
    }

    /// Reads a stored summary; `None` if it is damaged (it is then computed again).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut summary = Self::default();
        for line in lines {
            let (tag, id) = line.split_once(' ')?;
            if tag == "m" {
                summary.muted.insert(id.parse().ok()?);
                continue;
            }
            let marks = summary.posts.entry(id.parse().ok()?).or_default();
            match tag {
                "h" => marks.hidden = true,
                "d" => marks.disputed = true,
                "v" => marks.verified = true,
                _ => return None,
            }
        }
        Some(summary)
    }
}

/// The key under which a subwiki's summary is stored with the post views: the subwiki id, which
/// is never a document id (documents are create-document entries, the subwiki its genesis).
pub(crate) fn summary_key(subwiki: &SubwikiId) -> DocId {
    DocId::from_bytes(*subwiki.as_bytes())
}

/// The owner's overrides, kept in `<home>/overrides.txt`: one ignored author id per line.
/// Local only, never published.
#[derive(Debug)]
pub(crate) struct OverridesFile {
    path: Option<PathBuf>,
}

impl OverridesFile {
    pub(crate) fn new(home: Option<&Path>) -> Self {
        Self {
            path: home.map(|h| h.join("overrides.txt")),
        }
    }

    /// The overrides saved; none if there is no file or a line does not parse (reported).
    pub(crate) fn load(&self) -> Overrides {
        let mut overrides = Overrides::none();
        let Some(path) = &self.path else {
            return overrides;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return overrides;
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.parse() {
                Ok(author) => {
                    overrides.ignore(author);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring a bad override line: {e}")
                }
            }
        }
        overrides
    }

    pub(crate) fn save(&self, overrides: &Overrides) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text = String::new();
        for author in &overrides.ignored {
            text.push_str(&author.to_string());
            text.push('\n');
        }
        // Durable before it returns: the new file's bytes, then its name (the directory).
        let tmp = path.with_extension("txt.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        crate::home::sync_dir_of(path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn summaries_round_trip_and_damage_is_detected() {
        let mut s = Summary::default();
        s.posts.insert(
            DocId::from_bytes([1; 32]),
            Marks {
                hidden: true,
                disputed: true,
                verified: false,
            },
        );
        s.posts.insert(
            DocId::from_bytes([2; 32]),
            Marks {
                hidden: false,
                disputed: false,
                verified: true,
            },
        );
        s.muted.insert(AuthorId::from_bytes([3; 32]));
        assert_eq!(Summary::decode(&s.encode()), Some(s.clone()));
        let mut bytes = s.encode();
        bytes.truncate(bytes.len() - 5);
        assert_eq!(Summary::decode(&bytes), None);
        assert_eq!(Summary::decode(b"junk"), None);
    }
}
