//! The reconciliation layer: the sorted item set negentropy runs over, a strict parser of
//! negentropy messages, and guarded calls into negentropy.
//!
//! Negentropy message format (protocol version `0x61`), as the parser reads it:
//!
//! ```text
//! message = 0x61 range*
//! range   = bound mode
//! bound   = time:varint  len:varint (≤ 32)  id-prefix:len bytes
//!           time is 0 for "infinity", else 1 + (time − previous time in this message)
//! mode    = 0x00 (skip)
//!         | 0x01 fingerprint:16 bytes
//!         | 0x02 count:varint id:32 bytes × count
//! varint  = big-endian base 128, high bit set on every byte but the last
//! ```
//!
//! Bounds are the exclusive upper ends of consecutive ranges, so they never decrease.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use agora_crdt::{EntryId, Timestamp};
use negentropy::{Bound, Id, Item, NegentropyStorageBase, PROTOCOL_VERSION};
use thiserror::Error;

use super::ProtoError;

/// Size of a negentropy fingerprint.
const FINGERPRINT_LEN: usize = 16;
/// Size of an id in a negentropy message.
const ID_LEN: usize = 32;

/// The largest reconciliation key: below negentropy's "infinity" bound (`u64::MAX`), which no
/// item may equal.
const KEY_TOP: u64 = u64::MAX - 1;

/// An item's reconciliation key: its claimed time counted down from [`KEY_TOP`], so that
/// negentropy's ascending order is newest first. Negentropy lists ids and cuts its messages at
/// the frame size limit in ascending key order; with this key the first rounds of a
/// reconciliation name the newest entries, and a newcomer can fetch the current feed while the
/// older history is still being reconciled. (Times above [`KEY_TOP`] share key 0; validation
/// refuses such claimed times long before.)
fn key(time: Timestamp) -> u64 {
    KEY_TOP.saturating_sub(time.0)
}

/// The claimed time of a key.
fn time_of(key: u64) -> Timestamp {
    Timestamp(KEY_TOP.saturating_sub(key))
}

/// The items of one subwiki, `(claimed time, entry id)`, newest first and without duplicates:
/// what set reconciliation runs over (keyed by [`key`]). Cheap to clone (shared), so a driver
/// can build one per subwiki and hand it to every session and responder until the subwiki
/// changes.
#[derive(Clone, Default)]
pub struct Snapshot {
    items: Arc<[Item]>,
    /// The ids alone, sorted, built the first time [`Snapshot::contains_id`] is asked.
    ids: Arc<OnceLock<Box<[[u8; ID_LEN]]>>>,
    /// Ids not in the set that are never fetched either (entries of retracted documents),
    /// sorted.
    refused: Arc<[[u8; ID_LEN]]>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("len", &self.items.len())
            .finish()
    }
}

impl Snapshot {
    /// Builds a snapshot from items in any order; duplicates are dropped.
    pub fn new(items: impl IntoIterator<Item = (Timestamp, EntryId)>) -> Self {
        let mut items: Vec<Item> = items
            .into_iter()
            .map(|(time, id)| {
                Item::with_timestamp_and_id(key(time), Id::from_byte_array(*id.as_bytes()))
            })
            .collect();
        items.sort_unstable();
        items.dedup();
        Self {
            items: items.into(),
            ids: Arc::default(),
            refused: Arc::new([]),
        }
    }

    /// The same set, with ids it does not hold and must never fetch: a peer that holds them
    /// is not asked for them ([`Snapshot::contains_id`] is true for them), and the set it
    /// reconciles does not claim them.
    pub fn refusing(mut self, ids: impl IntoIterator<Item = EntryId>) -> Self {
        let mut refused: Vec<[u8; ID_LEN]> = ids.into_iter().map(|id| *id.as_bytes()).collect();
        refused.sort_unstable();
        refused.dedup();
        self.refused = refused.into();
        self
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True if the item is in the set.
    pub fn contains(&self, time: Timestamp, id: &EntryId) -> bool {
        let item = Item::with_timestamp_and_id(key(time), Id::from_byte_array(*id.as_bytes()));
        self.items.binary_search(&item).is_ok()
    }

    /// True if an item with this id is in the set, whatever its time, or is one it refuses
    /// ([`Snapshot::refusing`]). The first call sorts the ids (once per snapshot, shared by
    /// its clones).
    pub fn contains_id(&self, id: &EntryId) -> bool {
        let ids = self.ids.get_or_init(|| {
            let mut ids: Vec<[u8; ID_LEN]> =
                self.items.iter().map(|item| item.id.to_bytes()).collect();
            ids.sort_unstable();
            ids.into()
        });
        ids.binary_search(id.as_bytes()).is_ok()
            || self.refused.binary_search(id.as_bytes()).is_ok()
    }

    /// The items, newest first (equal claimed times by id).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Timestamp, EntryId)> + '_ {
        self.items.iter().map(|item| {
            (
                time_of(item.timestamp),
                EntryId::from_bytes(item.id.to_bytes()),
            )
        })
    }
}

impl FromIterator<(Timestamp, EntryId)> for Snapshot {
    fn from_iter<I: IntoIterator<Item = (Timestamp, EntryId)>>(iter: I) -> Self {
        Self::new(iter)
    }
}

/// The storage negentropy reads. Every access is bounds-checked: out-of-range requests are
/// errors, never panics.
impl NegentropyStorageBase for Snapshot {
    fn size(&self) -> Result<usize, negentropy::Error> {
        Ok(self.items.len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        Ok(self.items.get(i).copied())
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        let range = self
            .items
            .get(begin..end)
            .ok_or(negentropy::Error::BadRange)?;
        for (offset, item) in range.iter().enumerate() {
            if !cb(*item, begin.saturating_add(offset))? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        match self.items.get(first..last) {
            Some(range) => first.saturating_add(range.partition_point(|item| *item < value.item)),
            None => first,
        }
    }
}

/// A reconciliation payload that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// No bytes at all.
    #[error("empty message")]
    Empty,
    /// A protocol version other than negentropy's `0x61`.
    #[error("unsupported negentropy version {0:#04x}")]
    Version(u8),
    /// The bytes end inside a field.
    #[error("message ends inside a {0}")]
    Truncated(&'static str),
    /// A varint longer than 64 bits.
    #[error("varint overflows")]
    Varint,
    /// A bound longer than an id.
    #[error("bound of {0} bytes, longer than an id")]
    BoundTooLong(u64),
    /// A mode other than skip, fingerprint or id list.
    #[error("unknown range mode {0}")]
    Mode(u64),
    /// A bound below the one before it.
    #[error("range bounds out of order")]
    Unordered,
}

/// Where an id stood in the responder's messages: the upper bound of the id list it came in,
/// then its position in that list. Id-list ranges never overlap and list their ids in
/// ascending key order, so sorting by rank is sorting newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    bound_time: u64,
    bound_id: [u8; ID_LEN],
    position: u32,
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PayloadError> {
        if n > self.rest.len() {
            return Err(PayloadError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, PayloadError> {
        let mut value: u64 = 0;
        loop {
            let (&byte, tail) = self
                .rest
                .split_first()
                .ok_or(PayloadError::Truncated(what))?;
            self.rest = tail;
            if value > u64::MAX >> 7 {
                return Err(PayloadError::Varint);
            }
            value = (value << 7) | u64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    }
}

/// Parses a negentropy message strictly and calls `on_id` with every id of its id lists and
/// that id's [`Rank`]. Checks more than negentropy does (bounded varints, ordered bounds, no
/// truncation anywhere), so whatever it accepts negentropy parses the same way.
pub(crate) fn scan(
    payload: &[u8],
    mut on_id: impl FnMut(Rank, [u8; ID_LEN]),
) -> Result<(), PayloadError> {
    let (&version, rest) = payload.split_first().ok_or(PayloadError::Empty)?;
    if u64::from(version) != PROTOCOL_VERSION {
        return Err(PayloadError::Version(version));
    }
    let mut c = Cursor { rest };
    let mut last_time: u64 = 0;
    let mut previous: Option<(u64, [u8; ID_LEN])> = None;
    while !c.rest.is_empty() {
        // Bound: a delta-coded time, then an id prefix.
        let encoded = c.varint("bound time")?;
        // 0 is infinity; otherwise 1 + the step from the previous bound's time.
        let time = encoded
            .checked_sub(1)
            .unwrap_or(u64::MAX)
            .saturating_add(last_time);
        last_time = time;
        let len = c.varint("bound length")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= ID_LEN)
            .ok_or(PayloadError::BoundTooLong(len))?;
        let mut bound_id = [0; ID_LEN];
        let prefix = c.take(len, "bound")?;
        if let Some(dest) = bound_id.get_mut(..len) {
            dest.copy_from_slice(prefix);
        }
        let bound = (time, bound_id);
        if previous.is_some_and(|p| bound < p) {
            return Err(PayloadError::Unordered);
        }
        previous = Some(bound);
        match c.varint("mode")? {
            0 => {}
            1 => {
                c.take(FINGERPRINT_LEN, "fingerprint")?;
            }
            2 => {
                let count = c.varint("id count")?;
                let room = (c.rest.len() / ID_LEN) as u64;
                if count > room {
                    return Err(PayloadError::Truncated("id list"));
                }
                for position in 0..count {
                    let id = c.take(ID_LEN, "id list")?;
                    let id: [u8; ID_LEN] = id
                        .try_into()
                        .map_err(|_| PayloadError::Truncated("id list"))?;
                    let rank = Rank {
                        bound_time: time,
                        bound_id,
                        position: u32::try_from(position).unwrap_or(u32::MAX),
                    };
                    on_id(rank, id);
                }
            }
            mode => return Err(PayloadError::Mode(mode)),
        }
    }
    Ok(())
}

/// Runs a call into negentropy, turning its errors, and any panic, into [`ProtoError`]s.
pub(crate) fn guarded<T>(
    call: impl FnOnce() -> Result<T, negentropy::Error>,
) -> Result<T, ProtoError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ProtoError::Negentropy(e.to_string())),
        Err(_) => Err(ProtoError::NegentropyPanicked),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod unit {
    use super::*;
    use negentropy::{Negentropy, NegentropyStorageVector};

    fn id(n: u32) -> EntryId {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[31] = 0xaa;
        EntryId::from_bytes(bytes)
    }

    #[test]
    fn snapshot_sorts_and_dedups() {
        let s = Snapshot::new([
            (Timestamp(5), id(1)),
            (Timestamp(1), id(2)),
            (Timestamp(5), id(1)),
            (Timestamp(5), id(0)),
        ]);
        assert_eq!(s.len(), 3);
        let items: Vec<_> = s.iter().collect();
        assert_eq!(
            items,
            vec![
                (Timestamp(5), id(0)),
                (Timestamp(5), id(1)),
                (Timestamp(1), id(2))
            ]
        );
        assert!(s.contains(Timestamp(5), &id(0)));
        assert!(!s.contains(Timestamp(4), &id(0)));
        assert!(s.contains_id(&id(2)));
        assert!(!s.contains_id(&id(3)));
    }

    #[test]
    fn snapshot_storage_matches_negentropy_vector() {
        // The same items in our storage and in negentropy's give byte-identical messages.
        let items: Vec<_> = (0..500u32)
            .map(|i| {
                (
                    Timestamp(u64::from(i / 3)),
                    id(i.wrapping_mul(2_654_435_761)),
                )
            })
            .collect();
        let ours = Snapshot::new(items.clone());
        let mut theirs = NegentropyStorageVector::new();
        for (t, i) in &items {
            theirs
                .insert(key(*t), Id::from_byte_array(*i.as_bytes()))
                .unwrap();
        }
        theirs.seal().unwrap();
        let a = Negentropy::borrowed(&ours, 0).unwrap().initiate().unwrap();
        let b = Negentropy::borrowed(&theirs, 0)
            .unwrap()
            .initiate()
            .unwrap();
        assert_eq!(a, b);
        // And out-of-range accesses are errors.
        assert!(ours.iterate(10, 5, &mut |_, _| Ok(true)).is_err());
        assert!(ours.iterate(0, 501, &mut |_, _| Ok(true)).is_err());
        assert_eq!(ours.find_lower_bound(600, 700, &Bound::new()), 600);
    }

    #[test]
    fn scan_reads_negentropy_messages() {
        let items: Vec<_> = (0..20u32)
            .map(|i| (Timestamp(u64::from(i) * 10), id(i)))
            .collect();
        let s = Snapshot::new(items);
        let message = Negentropy::borrowed(&s, 0).unwrap().initiate().unwrap();
        let mut seen = Vec::new();
        scan(&message, |rank, id| seen.push((rank, id))).unwrap();
        // Fewer than 32 items: one id list with all of them, in order, under the infinite bound.
        assert_eq!(seen.len(), 20);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(seen[0].0.bound_time, u64::MAX);
        // Newest first.
        assert_eq!(EntryId::from_bytes(seen[3].1), id(16));
    }

    #[test]
    fn scan_refuses_malformed() {
        assert_eq!(scan(&[], |_, _| {}), Err(PayloadError::Empty));
        assert_eq!(scan(&[0x62], |_, _| {}), Err(PayloadError::Version(0x62)));
        assert_eq!(scan(&[0x61], |_, _| {}), Ok(()));
        // Infinite bound, empty id, id list claiming 2^34 ids.
        assert_eq!(
            scan(
                &[0x61, 0x00, 0x00, 0x02, 0xc0, 0x80, 0x80, 0x80, 0x00],
                |_, _| {}
            ),
            Err(PayloadError::Truncated("id list"))
        );
        // A bound of 33 bytes.
        let mut long = vec![0x61, 0x01, 33];
        long.extend([0; 33]);
        long.push(0);
        assert_eq!(scan(&long, |_, _| {}), Err(PayloadError::BoundTooLong(33)));
        // Unknown mode.
        assert_eq!(
            scan(&[0x61, 0x01, 0x00, 0x07], |_, _| {}),
            Err(PayloadError::Mode(7))
        );
        // Varint running off the end.
        assert_eq!(
            scan(&[0x61, 0x81], |_, _| {}),
            Err(PayloadError::Truncated("bound time"))
        );
        // Eleven continuation bytes overflow.
        let mut over = vec![0x61];
        over.extend([0xff; 11]);
        over.push(0x00);
        assert_eq!(scan(&over, |_, _| {}), Err(PayloadError::Varint));
        // Times are delta-coded and cannot go back, but the id prefix can: (10, 05…) then
        // (10, 03…) is out of order.
        assert_eq!(
            scan(&[0x61, 11, 1, 5, 0, 1, 1, 3, 0], |_, _| {}),
            Err(PayloadError::Unordered)
        );
        // After the infinite bound every later time saturates to infinity: not out of order.
        assert_eq!(
            scan(&[0x61, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00], |_, _| {}),
            Ok(())
        );
    }
}
