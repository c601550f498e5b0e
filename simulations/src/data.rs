//! Synthetic entries: the global table of every entry made during a run, the cheap check that
//! stands in for signature verification, and the bit sets nodes hold them in.
//!
//! An entry is `kind ‖ subwiki ‖ serial ‖ author ‖ doc ‖ time ‖ filler`, padded to its size;
//! its id is the blake3 hash of those bytes, as for real entries. [`SimVerify`] recomputes the
//! id and refuses [`Kind::Forged`] entries with [`EntryError::BadSignature`]: forging is modelled
//! as a flag that stands for a signature that does not verify.

use std::collections::HashMap;

use agora_crdt::{EntryError, EntryId, SubwikiId, Timestamp};
use agora_node::proto::Verify;

/// The one subwiki every node replicates.
pub const SUBWIKI: SubwikiId = SubwikiId::from_bytes([0x5a; 32]);
/// Wall-clock time of simulated time 0, in ms since the Unix epoch.
pub const EPOCH_MS: u64 = 1_800_000_000_000;
/// Bytes before the filler.
const HEADER: usize = 1 + 32 + 4 + 4 + 4 + 8;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new post: starts a document.
    Post,
    /// An edit of an existing post.
    Edit,
    /// A vote with a valid signature from an unvouched key: stored, counts nothing.
    Sybil,
    /// An entry whose signature does not verify.
    Forged,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Post => 1,
            Kind::Edit => 2,
            Kind::Sybil => 3,
            Kind::Forged => 4,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Kind::Post),
            2 => Some(Kind::Edit),
            3 => Some(Kind::Sybil),
            4 => Some(Kind::Forged),
            _ => None,
        }
    }

    /// True for entries honest authors make.
    pub fn is_honest(self) -> bool {
        matches!(self, Kind::Post | Kind::Edit)
    }
}

/// What the simulator knows about an entry without reading its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Its id (blake3 of its bytes).
    pub id: EntryId,
    /// Its claimed time.
    pub time: Timestamp,
    /// Its kind.
    pub kind: Kind,
    /// The document it belongs to.
    pub doc: u32,
    /// Its size in bytes.
    pub len: u32,
    /// Simulated time it was made at, in ms (0 for the initial history).
    pub created_ms: u64,
}

/// Every entry made during a run, indexed by a dense number.
#[derive(Debug, Default)]
pub struct Entries {
    bytes: Vec<Box<[u8]>>,
    meta: Vec<Meta>,
    by_id: HashMap<EntryId, u32>,
    docs: u32,
}

impl Entries {
    /// Makes an entry and returns its number. A [`Kind::Post`] opens a new document; `doc` is
    /// used for the other kinds.
    pub fn make(
        &mut self,
        kind: Kind,
        author: u32,
        doc: u32,
        time_ms: u64,
        created_ms: u64,
        len: u32,
    ) -> u32 {
        let serial = self.meta.len() as u32;
        let doc = if kind == Kind::Post {
            self.docs += 1;
            self.docs - 1
        } else {
            doc
        };
        let mut bytes = Vec::with_capacity(len as usize);
        bytes.push(kind.byte());
        bytes.extend_from_slice(SUBWIKI.as_bytes());
        bytes.extend_from_slice(&serial.to_le_bytes());
        bytes.extend_from_slice(&author.to_le_bytes());
        bytes.extend_from_slice(&doc.to_le_bytes());
        bytes.extend_from_slice(&time_ms.to_le_bytes());
        bytes.resize((len as usize).max(HEADER), b'.');
        let id = EntryId::from_bytes(*blake3::hash(&bytes).as_bytes());
        self.meta.push(Meta {
            id,
            time: Timestamp(time_ms),
            kind,
            doc,
            len: bytes.len() as u32,
            created_ms,
        });
        self.by_id.insert(id, serial);
        self.bytes.push(bytes.into_boxed_slice());
        serial
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Documents opened so far.
    pub fn docs(&self) -> u32 {
        self.docs
    }

    /// An entry's metadata.
    pub fn meta(&self, n: u32) -> Option<&Meta> {
        self.meta.get(n as usize)
    }

    /// An entry's bytes.
    pub fn bytes(&self, n: u32) -> Option<&[u8]> {
        self.bytes.get(n as usize).map(|b| &b[..])
    }

    /// The number of the entry with this id.
    pub fn number(&self, id: &EntryId) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// All metadata, by number.
    pub fn all(&self) -> &[Meta] {
        &self.meta
    }
}

/// The stand-in for signature checking: recomputes the id from the bytes and refuses forged
/// entries, so that the real [`agora_node::proto`] state machines treat them as invalid.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimVerify;

impl Verify for SimVerify {
    type Entry = (EntryId, SubwikiId);

    fn verify(&self, bytes: &[u8], _now: Timestamp) -> Result<Self::Entry, EntryError> {
        if bytes.len() < HEADER {
            return Err(EntryError::TooShort(bytes.len()));
        }
        let kind = bytes.first().copied().unwrap_or_default();
        match Kind::from_byte(kind) {
            None => return Err(EntryError::UnknownVersion(kind)),
            Some(Kind::Forged) => return Err(EntryError::BadSignature),
            Some(_) => {}
        }
        let subwiki: [u8; 32] = bytes
            .get(1..33)
            .and_then(|b| b.try_into().ok())
            .ok_or(EntryError::TooShort(bytes.len()))?;
        let id = EntryId::from_bytes(*blake3::hash(bytes).as_bytes());
        Ok((id, SubwikiId::from_bytes(subwiki)))
    }

    fn id(&self, entry: &Self::Entry) -> EntryId {
        entry.0
    }

    fn subwiki(&self, entry: &Self::Entry) -> SubwikiId {
        entry.1
    }
}

/// A set of entry numbers. Two sets are equal exactly when they hold the same entries (trailing
/// zero words are never kept), so comparing sets compares the nodes' full states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// True if `n` is in the set.
    pub fn contains(&self, n: u32) -> bool {
        self.words
            .get((n / 64) as usize)
            .is_some_and(|w| w >> (n % 64) & 1 == 1)
    }

    /// Adds `n`; returns true if it was not there.
    pub fn insert(&mut self, n: u32) -> bool {
        let i = (n / 64) as usize;
        if self.words.len() <= i {
            self.words.resize(i + 1, 0);
        }
        match self.words.get_mut(i) {
            Some(w) => {
                let bit = 1u64 << (n % 64);
                let new = *w & bit == 0;
                *w |= bit;
                new
            }
            None => false,
        }
    }

    /// Adds every element of `other`.
    pub fn union_with(&mut self, other: &Bits) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// True if every element of `other` is in `self`.
    pub fn is_superset(&self, other: &Bits) -> bool {
        other
            .words
            .iter()
            .enumerate()
            .all(|(i, o)| o & !self.words.get(i).copied().unwrap_or(0) == 0)
    }

    /// The elements, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let base = (i as u32) * 64;
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros();
                w &= w - 1;
                Some(base + bit)
            })
        })
    }

    /// How many elements are also in `other`.
    pub fn count_and(&self, other: &Bits) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }

    /// How many elements.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_entries_are_refused_and_ids_match() {
        let mut e = Entries::default();
        let good = e.make(Kind::Post, 1, 0, EPOCH_MS, 0, 500);
        let bad = e.make(Kind::Forged, 2, 0, EPOCH_MS, 0, 500);
        let v = SimVerify;
        let (id, sw) = v
            .verify(e.bytes(good).unwrap_or_default(), Timestamp(0))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(Some(id), e.meta(good).map(|m| m.id));
        assert_eq!(sw, SUBWIKI);
        assert_eq!(
            v.verify(e.bytes(bad).unwrap_or_default(), Timestamp(0)),
            Err(EntryError::BadSignature)
        );
        assert_eq!(e.meta(good).map(|m| m.len), Some(500));
    }

    #[test]
    fn bits() {
        let mut a = Bits::default();
        assert!(a.insert(3));
        assert!(!a.insert(3));
        assert!(a.insert(130));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![3, 130]);
        let mut b = Bits::default();
        b.insert(3);
        assert!(a.is_superset(&b));
        assert!(!b.is_superset(&a));
        b.union_with(&a);
        assert_eq!(a, b);
        assert_eq!(a.count(), 2);
    }
}
