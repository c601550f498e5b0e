//! What a replica's index keeps of an entry, without the entry: a compact record a store can
//! keep beside each entry, so that a replica's index is restored from the records alone
//! ([`crate::Replica::restore`]) instead of reading and verifying every entry again.
//!
//! ```text
//! record   = kind(1) author(32) rest
//! genesis  = 0
//! create   = 1 doc-kind(1) flags(1) [parent(32)] [reply_to(32)] change-bytes(u32 BE)
//! change   = 2 doc(32) change-bytes(u32 BE)
//! vote     = 3
//! role     = 4
//! ```
//!
//! The entry id and claimed time are not in the record: the store keys it by them.

use crate::entry::{DocKind, Entry, Payload, Timestamp};
use crate::id::{AuthorId, DocId, EntryId};

/// An entry as the replica's index sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The entry's id.
    pub id: EntryId,
    /// Its claimed time.
    pub timestamp: Timestamp,
    /// Who signed it.
    pub author: AuthorId,
    /// What kind of entry it is, with what the index needs of it.
    pub what: HeldKind,
}

/// The kinds of entry, with what the index keeps of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldKind {
    /// The subwiki's genesis.
    Genesis,
    /// A document's creation.
    Create {
        /// The document's kind.
        kind: DocKind,
        /// The post a comment is on.
        parent: Option<DocId>,
        /// The comment a comment answers.
        reply_to: Option<DocId>,
        /// Bytes of its Automerge change.
        change_bytes: u32,
    },
    /// A change to a document.
    Change {
        /// The document.
        doc: DocId,
        /// Bytes of its Automerge change.
        change_bytes: u32,
    },
    /// A moderation vote (the index keeps the entry itself).
    Vote,
    /// A role statement (the index keeps the entry itself).
    Role,
}

fn change_len(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

impl Held {
    /// The record of an entry.
    pub fn of(entry: &Entry) -> Self {
        let what = match entry.payload() {
            Payload::Genesis(_) => HeldKind::Genesis,
            Payload::CreateDocument(c) => HeldKind::Create {
                kind: c.kind,
                parent: c.parent,
                reply_to: c.reply_to,
                change_bytes: change_len(&c.change),
            },
            Payload::Change(c) => HeldKind::Change {
                doc: c.doc,
                change_bytes: change_len(&c.change),
            },
            Payload::Vote(_) => HeldKind::Vote,
            Payload::Role(_) => HeldKind::Role,
        };
        Self {
            id: entry.id(),
            timestamp: entry.timestamp(),
            author: entry.author(),
            what,
        }
    }

    /// Whether the index keeps the entry itself (votes, role statements, the genesis).
    pub fn is_statement(&self) -> bool {
        matches!(
            self.what,
            HeldKind::Genesis | HeldKind::Vote | HeldKind::Role
        )
    }

    /// The record's bytes (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 70);
        let tag = match self.what {
            HeldKind::Genesis => 0,
            HeldKind::Create { .. } => 1,
            HeldKind::Change { .. } => 2,
            HeldKind::Vote => 3,
            HeldKind::Role => 4,
        };
        out.push(tag);
        out.extend_from_slice(self.author.as_bytes());
        match self.what {
            HeldKind::Create {
                kind,
                parent,
                reply_to,
                change_bytes,
            } => {
                out.push(match kind {
                    DocKind::Post => 0,
                    DocKind::Comment => 1,
                    DocKind::Profile => 2,
                    DocKind::Info => 3,
                });
                out.push(u8::from(parent.is_some()) | (u8::from(reply_to.is_some()) << 1));
                for doc in [parent, reply_to].into_iter().flatten() {
                    out.extend_from_slice(doc.as_bytes());
                }
                out.extend_from_slice(&change_bytes.to_be_bytes());
            }
            HeldKind::Change { doc, change_bytes } => {
                out.extend_from_slice(doc.as_bytes());
                out.extend_from_slice(&change_bytes.to_be_bytes());
            }
            HeldKind::Genesis | HeldKind::Vote | HeldKind::Role => {}
        }
        out
    }

    /// Reads a record kept under `(timestamp, id)`; `None` if it is not a whole record.
    pub fn decode(id: EntryId, timestamp: Timestamp, bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let tag = r.byte()?;
        let author = AuthorId::from_bytes(r.array()?);
        let what = match tag {
            0 => HeldKind::Genesis,
            1 => {
                let kind = match r.byte()? {
                    0 => DocKind::Post,
                    1 => DocKind::Comment,
                    2 => DocKind::Profile,
                    3 => DocKind::Info,
                    _ => return None,
                };
                let flags = r.byte()?;
                if flags > 3 {
                    return None;
                }
                let parent = if flags & 1 != 0 {
                    Some(DocId::from_bytes(r.array()?))
                } else {
                    None
                };
                let reply_to = if flags & 2 != 0 {
                    Some(DocId::from_bytes(r.array()?))
                } else {
                    None
                };
                HeldKind::Create {
                    kind,
                    parent,
                    reply_to,
                    change_bytes: u32::from_be_bytes(r.array()?),
                }
            }
            2 => HeldKind::Change {
                doc: DocId::from_bytes(r.array()?),
                change_bytes: u32::from_be_bytes(r.array()?),
            },
            3 => HeldKind::Vote,
            4 => HeldKind::Role,
            _ => return None,
        };
        r.0.is_empty().then_some(Self {
            id,
            timestamp,
            author,
            what,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let head = self.0.get(..N)?;
        let out = <[u8; N]>::try_from(head).ok()?;
        self.0 = self.0.get(N..)?;
        Some(out)
    }
}
