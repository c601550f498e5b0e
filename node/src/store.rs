//! Durable storage of signed entries, with indexes derived from them.
//!
//! The signed entries are the source of truth. Everything else is an index that
//! [`Store::rebuild_indexes`] can recompute from them:
//!
//! - the reconciliation index, per subwiki: the `(claimed time, entry id)` items that set
//!   reconciliation runs over ([`Store::items`]), each with the entry's record
//!   ([`agora_crdt::Held`]), from which a replica's index is restored without reading the
//!   entries ([`Store::index`]);
//! - the feed index, per subwiki: `(creation time, post id)` of every post
//!   ([`Store::feed`] merges the subwikis asked for, newest first);
//! - compacted Automerge snapshots of documents ([`Store::put_snapshots`]), written by the node
//!   whenever documents change, so that reopening a subwiki loads each document instead of
//!   applying all its changes again;
//! - rendered views of posts ([`Store::put_views`]): what the feed shows, written by the node
//!   whenever a post changes, so that the first page needs no replay of the subwiki. Rebuilding
//!   the indexes drops them; the node renders them again on first use.
//!
//! Retraction and redaction delete for real ([`Store::purge`]): the entries of a purged
//! document go from every tree, with its snapshot and rendered view, and what is kept is its
//! [`Tombstone`] and the ids of the entries deleted (so that reconciliation never fetches them
//! again, [`Store::purged_ids`]); a purged post keeps its feed key, to read as retracted.
//! Leaving a subwiki for good deletes everything of it ([`Store::remove_subwiki`]). A deleted
//! value's bytes stay in sled's log until the log is rewritten: the sled store rewrites its
//! files when it next opens after a purge (`store/compact.rs`).
//!
//! Two counters are kept with the entries, in the same transactions: the number of entries
//! ([`Store::len`]) and the number per subwiki ([`Store::count`]), so neither reads the
//! entries. [`Store::rebuild_indexes`] recounts them.
//!
//! Blobs (images) are kept by their blake3 hash and checked when read. Every write of entries,
//! views, subwiki records and blobs is durable when the call returns: on disk, not in the
//! operating system's cache (the sled store fsyncs, and concurrent writers share one sync; see
//! [`SledStore`]). Snapshots are a cache and are not synced. An entry that no longer validates when read (a damaged disk) is
//! reported, removed with its index keys so that reconciliation fetches it again from a peer,
//! and skipped; it never crashes the node.
//!
//! Two implementations share one test suite: [`SledStore`] (on disk, the default) and
//! [`MemoryStore`] (for tests and simulations).

use agora_crdt::{
    BlobHash, DocId, DocKind, Entry, EntryId, Held, Payload, Purged, SubwikiId, Timestamp,
    Tombstone,
};
use thiserror::Error;

mod commit;
mod compact;
mod manifest;
mod memory;
mod repair;
mod sled;
mod space;
#[cfg(test)]
mod suite;

pub use self::compact::CompactReport;
pub use self::manifest::{Damage, Opened};
pub use self::memory::MemoryStore;
pub use self::repair::{Repaired, repair};
pub use self::sled::{Options, SledStore};

/// The largest blob (image) kept: 5 MiB.
pub const MAX_BLOB_BYTES: usize = 5 * 1024 * 1024;

/// A storage failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The underlying database failed (disk full, permissions, IO error).
    #[error("storage error: {0}")]
    Io(String),
    /// The database cannot be opened or read: it is damaged beyond what it recovers from by
    /// itself. Says where and what the database said.
    #[error(
        "the store is damaged ({0}); `agora repair` keeps what can be read, moves the damaged \
         files aside and fetches the rest from peers"
    )]
    Damaged(String),
    /// Another process has the store open.
    #[error("the store at {0} is in use by another process (is `agora up` running?)")]
    Locked(String),
    /// The disk is too full to take the write: refused before anything was written, so that
    /// the database never runs out of space in the middle of one (see `store/space.rs`).
    #[error(
        "the disk is full: {} MB free in {}; free space and try again",
        .free / 1_000_000,
        .dir.display()
    )]
    DiskFull {
        /// Bytes free for this user.
        free: u64,
        /// The store's directory.
        dir: std::path::PathBuf,
    },
    /// A blob over [`MAX_BLOB_BYTES`].
    #[error("blob is {len} bytes, over the limit of {max}")]
    BlobTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A subwiki this node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubwikiRecord {
    /// Its id (the id of its genesis entry, which the store holds).
    pub id: SubwikiId,
    /// Whether its owner is a member now; a subwiki left keeps its entries until removed.
    pub joined: bool,
}

/// What [`Store::put_entries`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Put {
    /// Entries that were new, in the order given.
    pub new: Vec<EntryId>,
    /// Entries that were already held.
    pub existing: usize,
}

/// The entries of a subwiki as read back, with any that were damaged.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid entries, oldest first (by claimed time, then id).
    pub entries: Vec<Entry>,
    /// Entries that no longer validated; they were removed so they can be fetched again.
    pub corrupt: Vec<EntryId>,
}

/// A post in the feed index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedKey {
    /// When it was created (claimed).
    pub created_at: Timestamp,
    /// The post.
    pub post: DocId,
    /// Its subwiki.
    pub subwiki: SubwikiId,
}

/// What [`Store::rebuild_indexes`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Valid entries indexed.
    pub entries: usize,
    /// Posts in the feed index.
    pub posts: usize,
    /// Damaged entries removed.
    pub corrupt: Vec<EntryId>,
    /// Entries recorded as purged that were found held (which a store keeping to its contract
    /// never has), and removed rather than indexed again.
    pub purged: Vec<EntryId>,
}

/// An entry's bytes as served to a peer, with the subwiki it belongs to.
pub type Served = (SubwikiId, Vec<u8>);

/// Durable storage of entries and their indexes. See the module documentation.
pub trait Store: Send + Sync {
    /// Stores entries and their index keys; durable when it returns. Entries already held are
    /// counted, and their index keys written again (which repairs a missing one).
    fn put_entries(&self, entries: &[Entry]) -> Result<Put, StoreError>;

    /// Refuses a write of about `bytes` before any work is done for it: when the disk lacks
    /// room for it ([`StoreError::DiskFull`]) or the store can no longer write. The write
    /// itself checks again. A store without a disk always has room.
    fn room(&self, bytes: usize) -> Result<(), StoreError> {
        let _ = bytes;
        Ok(())
    }

    /// Removes entries and their index keys (entries a replica refused after all).
    fn remove_entries(&self, ids: &[EntryId]) -> Result<(), StoreError>;

    /// An entry, validated as it is read. A damaged entry is removed and reads as `None`.
    fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError>;

    /// The bytes of entries, to pass on to a peer, each with its subwiki: `None` for one not
    /// held. Checked for damage as they are read ([`agora_crdt::recheck`]: hash and signature,
    /// in batches, without decoding the Automerge change again); a damaged entry is removed
    /// and reads as `None`.
    fn entry_bytes(&self, ids: &[EntryId]) -> Result<Vec<Option<Served>>, StoreError> {
        ids.iter()
            .map(|id| Ok(self.entry(id)?.map(|e| (e.subwiki(), e.bytes().to_vec()))))
            .collect()
    }

    /// Whether an entry is held, without reading it.
    fn contains(&self, id: &EntryId) -> Result<bool, StoreError>;

    /// Number of entries held: a counter kept with the entries, O(1).
    fn len(&self) -> Result<usize, StoreError>;

    /// Number of entries held of one subwiki (its reconciliation items, the length of
    /// [`Store::items`]): a counter kept with the entries, O(1). Zero for a subwiki not held.
    fn count(&self, subwiki: &SubwikiId) -> Result<usize, StoreError>;

    /// True if no entry is held.
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.len().map(|n| n == 0)
    }

    /// The reconciliation items of a subwiki, ascending.
    fn items(&self, subwiki: &SubwikiId) -> Result<Vec<(Timestamp, EntryId)>, StoreError>;

    /// Every entry of a subwiki, validated, oldest first.
    fn load(&self, subwiki: &SubwikiId) -> Result<Loaded, StoreError>;

    /// The records of a subwiki's entries ([`agora_crdt::Held`], kept beside the
    /// reconciliation index), oldest first, without reading the entries: what a replica's
    /// index is restored from. `None` if some entry has no record (a store written before
    /// records were kept: load the entries instead, and rebuild the indexes to add them).
    fn index(&self, subwiki: &SubwikiId) -> Result<Option<Vec<Held>>, StoreError>;

    /// Posts of the given subwikis, newest first by (creation time, id), strictly older than
    /// `before` if given, at most `limit`.
    fn feed(
        &self,
        subwikis: &[SubwikiId],
        before: Option<(Timestamp, DocId)>,
        limit: usize,
    ) -> Result<Vec<FeedKey>, StoreError>;

    /// Records that a subwiki is kept, joined or not.
    fn set_subwiki(&self, record: SubwikiRecord) -> Result<(), StoreError>;

    /// The subwikis kept.
    fn subwikis(&self) -> Result<Vec<SubwikiRecord>, StoreError>;

    /// Stores documents' compacted Automerge snapshots, replacing earlier ones. Snapshots are a
    /// cache: they need not be durable when this returns (a lost one only costs a replay), and
    /// the replica checks each against the entries before using it.
    fn put_snapshots(&self, snapshots: &[(DocId, Vec<u8>)]) -> Result<(), StoreError>;

    /// A document's latest snapshot.
    fn snapshot(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores the rendered views of documents (the node's cache of what a reader sees, so the
    /// feed needs no replay); durable when it returns.
    fn put_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError>;

    /// Keeps rendered views made on demand: a cache, not synced (it becomes durable with the
    /// next synced write). Write a view only after the entries it shows are durable.
    fn cache_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError>;

    /// Drops rendered views that entries about to be written make stale. Not synced by itself:
    /// call it before writing those entries, whose sync then makes the removal durable too, so
    /// that no stale view outlives a crash.
    fn remove_views(&self, docs: &[DocId]) -> Result<(), StoreError>;

    /// A document's rendered view, if one was stored.
    fn view(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores a blob and returns its hash.
    fn put_blob(&self, bytes: &[u8]) -> Result<BlobHash, StoreError>;

    /// A blob, checked against its hash; a damaged blob is removed and reads as `None`.
    fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes a blob (one stored for a post that was then refused). Not synced by itself: a
    /// blob that outlives a crash only takes room.
    fn remove_blob(&self, hash: &BlobHash) -> Result<(), StoreError>;

    /// Recomputes every index from the entries, drops the rendered views and the snapshots (the
    /// node makes them again), removes damaged entries. The feed keys of tombstoned posts are
    /// kept (made again from the tombstones), and an entry recorded as purged is removed, never
    /// indexed again.
    fn rebuild_indexes(&self) -> Result<Rebuilt, StoreError>;

    /// Deletes the entries of purged documents (`Purged::ids`; ids not held are skipped) from
    /// every tree (entries, reconciliation index, feed index), with the snapshots and rendered
    /// views of the documents, and keeps each tombstone (replacing an older one of the same
    /// document) and the purged ids (adding to those kept) so the node never fetches them
    /// again. A tombstoned *post* keeps its feed key (subwiki, created_at, doc) so the feed
    /// still lists it (it reads as retracted). Durable (flushed) on return, in one transaction.
    /// Entries of another subwiki among the ids are left alone. The sled store also marks
    /// itself for compaction: the deleted bytes leave its files when it next opens
    /// (`store/compact.rs`).
    fn purge(&self, subwiki: &SubwikiId, purged: &[Purged]) -> Result<(), StoreError>;

    /// Forgets the tombstones of these documents and the purged ids recorded for them (and the
    /// feed key kept for a tombstoned post, unless the post itself is held again), so they may
    /// be fetched again. Durable on return.
    fn unpurge(&self, subwiki: &SubwikiId, docs: &[DocId]) -> Result<(), StoreError>;

    /// The tombstones kept for a subwiki, by document id (a damaged record is skipped with a
    /// warning).
    fn tombstones(&self, subwiki: &SubwikiId) -> Result<Vec<Tombstone>, StoreError>;

    /// Every purged id recorded for a subwiki (the reconciliation session never fetches them),
    /// ascending.
    fn purged_ids(&self, subwiki: &SubwikiId) -> Result<Vec<EntryId>, StoreError>;

    /// Deletes everything of a subwiki (`agora subwiki leave --purge`): its entries (genesis
    /// included) and their index keys and counters, the snapshots and rendered views of its
    /// documents, its tombstones and purged ids, its [`SubwikiRecord`] and its line in the
    /// manifest. Durable on return. Blobs (images) are kept by hash, not by subwiki, and may be
    /// shared: those of its posts stay (the node removes a purged post's images itself). The
    /// sled store marks itself for compaction, as for [`Store::purge`].
    fn remove_subwiki(&self, subwiki: &SubwikiId) -> Result<(), StoreError>;

    /// The subwikis holding fewer entries than this store once made durable: a damaged disk
    /// or database (see `store/manifest.rs`). Empty for a store that cannot lose entries.
    fn damage(&self) -> Result<Vec<Damage>, StoreError> {
        Ok(Vec::new())
    }
}

/// Length of a reconciliation or feed index key: subwiki, time, id.
const INDEX_KEY_LEN: usize = 32 + 8 + 32;

/// `subwiki || time (big-endian) || id`: sorts by subwiki, then time, then id.
fn index_key(subwiki: &SubwikiId, time: Timestamp, id: &[u8; 32]) -> [u8; INDEX_KEY_LEN] {
    let mut key = [0u8; INDEX_KEY_LEN];
    let (s, rest) = key.split_at_mut(32);
    let (t, i) = rest.split_at_mut(8);
    s.copy_from_slice(subwiki.as_bytes());
    t.copy_from_slice(&time.0.to_be_bytes());
    i.copy_from_slice(id);
    key
}

/// Splits an index key back into its parts.
fn parse_index_key(key: &[u8]) -> Option<(SubwikiId, Timestamp, [u8; 32])> {
    let subwiki: [u8; 32] = key.get(..32)?.try_into().ok()?;
    let time: [u8; 8] = key.get(32..40)?.try_into().ok()?;
    let id: [u8; 32] = key.get(40..INDEX_KEY_LEN)?.try_into().ok()?;
    Some((
        SubwikiId::from_bytes(subwiki),
        Timestamp(u64::from_be_bytes(time)),
        id,
    ))
}

/// Length of a tombstone key: subwiki, document.
const DOC_KEY_LEN: usize = 32 + 32;

/// `subwiki || doc`: a tombstone's key, so that a subwiki's tombstones are one prefix.
fn doc_key(subwiki: &SubwikiId, doc: &DocId) -> [u8; DOC_KEY_LEN] {
    let mut key = [0u8; DOC_KEY_LEN];
    let (s, d) = key.split_at_mut(32);
    s.copy_from_slice(subwiki.as_bytes());
    d.copy_from_slice(doc.as_bytes());
    key
}

/// Length of a purged id's key: subwiki, document, entry.
const PURGED_KEY_LEN: usize = 32 + 32 + 32;

/// `subwiki || doc || entry`: a purged id's key, so that a subwiki's purged ids are one prefix
/// and a document's are one prefix within it.
fn purged_key(subwiki: &SubwikiId, doc: &DocId, id: &EntryId) -> [u8; PURGED_KEY_LEN] {
    let mut key = [0u8; PURGED_KEY_LEN];
    let (sd, i) = key.split_at_mut(DOC_KEY_LEN);
    sd.copy_from_slice(&doc_key(subwiki, doc));
    i.copy_from_slice(id.as_bytes());
    key
}

/// The entry id of a purged id's key.
fn parse_purged_key(key: &[u8]) -> Option<EntryId> {
    if key.len() != PURGED_KEY_LEN {
        return None;
    }
    let id: [u8; 32] = key.get(DOC_KEY_LEN..)?.try_into().ok()?;
    Some(EntryId::from_bytes(id))
}

/// Reads a tombstone record kept under `key`; `None` (with a warning) if it is damaged or not
/// the tombstone of the document its key names.
fn decode_tombstone(key: &[u8], value: &[u8]) -> Option<Tombstone> {
    let tombstone =
        Tombstone::decode(value).filter(|t| key.get(32..) == Some(t.meta.id.as_bytes()));
    if tombstone.is_none() {
        tracing::warn!(
            key = %key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "a damaged tombstone record is skipped"
        );
    }
    tombstone
}

/// The feed key a tombstoned post keeps, so that the feed lists it as retracted; `None` for a
/// tombstone of anything else.
fn tombstone_feed_key(subwiki: &SubwikiId, tombstone: &Tombstone) -> Option<[u8; INDEX_KEY_LEN]> {
    (tombstone.meta.kind == DocKind::Post).then(|| {
        index_key(
            subwiki,
            tombstone.meta.created_at,
            tombstone.meta.id.as_bytes(),
        )
    })
}

/// The index keys an entry has: its reconciliation item, and a feed key if it creates a post.
struct IndexKeys {
    recon: [u8; INDEX_KEY_LEN],
    feed: Option<[u8; INDEX_KEY_LEN]>,
}

fn index_keys(entry: &Entry) -> IndexKeys {
    let subwiki = entry.subwiki();
    let feed = match entry.payload() {
        Payload::CreateDocument(c) if c.kind == DocKind::Post => Some(index_key(
            &subwiki,
            entry.timestamp(),
            entry.id().as_bytes(),
        )),
        _ => None,
    };
    IndexKeys {
        recon: index_key(&subwiki, entry.timestamp(), entry.id().as_bytes()),
        feed,
    }
}

/// Validates an entry read back from storage. The claimed-time check is for the network, not
/// for what this node already accepted, so it is given the latest possible clock.
fn check_stored(id: &EntryId, bytes: &[u8]) -> Option<Entry> {
    agora_crdt::reopen(&[(*id, bytes)]).pop()?.ok()
}

/// Checks the bytes read for `ids` (`None`: not held) for damage, in batches, without decoding
/// their changes; returns for each its subwiki and bytes, `None` if not held or damaged, and
/// the ids of the damaged ones (for the store to remove).
fn recheck_stored(
    ids: &[EntryId],
    read: Vec<Option<Vec<u8>>>,
) -> (Vec<Option<Served>>, Vec<EntryId>) {
    let present: Vec<(EntryId, &[u8])> = ids
        .iter()
        .zip(&read)
        .filter_map(|(id, bytes)| Some((*id, bytes.as_deref()?)))
        .collect();
    let mut checked = agora_crdt::recheck(&present).into_iter();
    let mut damaged = Vec::new();
    let out = ids
        .iter()
        .zip(read)
        .map(|(id, bytes)| {
            let bytes = bytes?;
            match checked.next()? {
                Ok(subwiki) => Some((subwiki, bytes)),
                Err(_) => {
                    damaged.push(*id);
                    None
                }
            }
        })
        .collect();
    (out, damaged)
}

/// Checks many entries read back from storage at once (signatures in batches, see
/// [`agora_crdt::reopen`]); entries missing (`None`) or damaged are reported as corrupt.
fn check_stored_all<B: AsRef<[u8]>>(read: Vec<(EntryId, Option<B>)>) -> Loaded {
    let mut loaded = Loaded::default();
    let present: Vec<(EntryId, &[u8])> = read
        .iter()
        .filter_map(|(id, bytes)| Some((*id, bytes.as_ref()?.as_ref())))
        .collect();
    loaded
        .corrupt
        .extend(read.iter().filter(|(_, b)| b.is_none()).map(|(id, _)| *id));
    for ((id, _), checked) in present.iter().zip(agora_crdt::reopen(&present)) {
        match checked {
            Ok(entry) => loaded.entries.push(entry),
            Err(_) => loaded.corrupt.push(*id),
        }
    }
    loaded
}

/// Merges per-subwiki feed iterators (each newest first) into one page, newest first.
fn merge_feed(
    mut sources: Vec<std::iter::Peekable<Box<dyn Iterator<Item = FeedKey> + '_>>>,
    limit: usize,
) -> Vec<FeedKey> {
    let mut out = Vec::with_capacity(limit.min(1024));
    while out.len() < limit {
        let best = sources
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.peek().map(|k| (*k, i)))
            .max();
        let Some((key, i)) = best else { break };
        out.push(key);
        if let Some(source) = sources.get_mut(i) {
            source.next();
        }
    }
    out
}

fn feed_key_from_index(key: &[u8]) -> Option<FeedKey> {
    let (subwiki, created_at, id) = parse_index_key(key)?;
    Some(FeedKey {
        created_at,
        post: DocId::from_bytes(id),
        subwiki,
    })
}

/// The exclusive upper bound of a subwiki's feed range for `before`.
fn feed_upper(subwiki: &SubwikiId, before: Option<(Timestamp, DocId)>) -> [u8; INDEX_KEY_LEN] {
    match before {
        Some((time, doc)) => index_key(subwiki, time, doc.as_bytes()),
        None => index_key(subwiki, Timestamp(u64::MAX), &[0xff; 32]),
    }
}

fn subwiki_lower(subwiki: &SubwikiId) -> [u8; INDEX_KEY_LEN] {
    index_key(subwiki, Timestamp(0), &[0; 32])
}
