//! What a replica's index keeps of an entry, without the entry: a compact record a store can
//! keep beside each entry, so that a replica's index is restored from the records alone
//! ([`crate::Replica::restore`]) instead of reading and verifying every entry again.
//!
//! ```text
//! record   = kind(1) author(32) rest
//! genesis  = 0
//! create   = 1 doc-kind(1) flags(1) [parent(32)] [reply_to(32)] change-bytes(u32 BE) [stamp]
//! change   = 2 doc(32) change-bytes(u32 BE) [stamp]
//! vote     = 3
//! role     = 4
//! retract  = 5
//! stamp    = actor-seq(u64 BE) change-hash(u64 BE)
//! ```
//!
//! The entry id and claimed time are not in the record: the store keys it by them. The stamp
//! ([`Stamp`]) is what the index needs to notice an equivocation without building documents;
//! records written before it existed have none (rebuilding the store's indexes adds it).

use crate::entry::{DocKind, Entry, Payload, Timestamp, kind_of_tag, kind_tag};
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
    /// For an entry carrying an Automerge change, its stamp; `None` for other entries and for
    /// records written before stamps existed.
    pub stamp: Option<Stamp>,
}

/// Two 64-bit fingerprints of an Automerge change: of its (actor, sequence number), and of its
/// hash. Two changes of one document with the same first and different second are an
/// equivocation (up to a 2^-64 chance of a false match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Fingerprint of the change's actor and sequence number.
    pub actor_seq: u64,
    /// The first eight bytes of the change's hash.
    pub hash: u64,
}

impl Stamp {
    /// The stamp of a change.
    pub fn of(change: &automerge::Change) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"agora-stamp-v1");
        hasher.update(change.actor_id().to_bytes());
        hasher.update(&change.seq().to_be_bytes());
        Self {
            actor_seq: first_u64(hasher.finalize().as_bytes()),
            hash: first_u64(&change.hash().0),
        }
    }
}

fn first_u64(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    u64::from_be_bytes(out)
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
    /// A retraction or redaction (the index keeps the entry itself).
    Retract,
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
            Payload::Retract(_) => HeldKind::Retract,
        };
        Self {
            id: entry.id(),
            timestamp: entry.timestamp(),
            author: entry.author(),
            what,
            stamp: entry.change().map(Stamp::of),
        }
    }

    /// Whether the index keeps the entry itself (votes, role statements, the genesis).
    pub fn is_statement(&self) -> bool {
        matches!(
            self.what,
            HeldKind::Genesis | HeldKind::Vote | HeldKind::Role | HeldKind::Retract
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
            HeldKind::Retract => 5,
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
                out.push(kind_tag(kind));
                push_links(&mut out, parent, reply_to);
                out.extend_from_slice(&change_bytes.to_be_bytes());
            }
            HeldKind::Change { doc, change_bytes } => {
                out.extend_from_slice(doc.as_bytes());
                out.extend_from_slice(&change_bytes.to_be_bytes());
            }
            HeldKind::Genesis | HeldKind::Vote | HeldKind::Role | HeldKind::Retract => {}
        }
        if let (Some(stamp), HeldKind::Create { .. } | HeldKind::Change { .. }) =
            (self.stamp, self.what)
        {
            out.extend_from_slice(&stamp.actor_seq.to_be_bytes());
            out.extend_from_slice(&stamp.hash.to_be_bytes());
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
                let kind = kind_of_tag(r.byte()?)?;
                let (parent, reply_to) = r.links()?;
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
            5 => HeldKind::Retract,
            _ => return None,
        };
        let stamp = match (r.0.len(), what) {
            (0, _) => None,
            (16, HeldKind::Create { .. } | HeldKind::Change { .. }) => Some(Stamp {
                actor_seq: u64::from_be_bytes(r.array()?),
                hash: u64::from_be_bytes(r.array()?),
            }),
            _ => return None,
        };
        Some(Self {
            id,
            timestamp,
            author,
            what,
            stamp,
        })
    }
}

/// Writes a comment's links: a flags byte (bit 0 a parent, bit 1 a reply-to), then each.
pub(crate) fn push_links(out: &mut Vec<u8>, parent: Option<DocId>, reply_to: Option<DocId>) {
    out.push(u8::from(parent.is_some()) | (u8::from(reply_to.is_some()) << 1));
    for doc in [parent, reply_to].into_iter().flatten() {
        out.extend_from_slice(doc.as_bytes());
    }
}

/// Reads records front to back; `None` past the end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&[u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        <[u8; N]>::try_from(self.take(N)?).ok()
    }

    /// A comment's links, as [`push_links`] wrote them.
    pub(crate) fn links(&mut self) -> Option<(Option<DocId>, Option<DocId>)> {
        let flags = self.byte()?;
        if flags > 3 {
            return None;
        }
        let parent = if flags & 1 != 0 {
            Some(DocId::from_bytes(self.array()?))
        } else {
            None
        };
        let reply_to = if flags & 2 != 0 {
            Some(DocId::from_bytes(self.array()?))
        } else {
            None
        };
        Some((parent, reply_to))
    }
}
