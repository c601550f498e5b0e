//! The on-disk store, on sled 0.34.
//!
//! Trees: `entries` (id → entry bytes), `recon` and `feed` (index keys → nothing), `counts`
//! (subwiki id → its number of reconciliation keys, and [`TOTAL`] → the number of entries, as
//! big-endian `u64`), `subwikis` (id → joined flag), `snapshots` (document id → Automerge
//! bytes), `views` (document id → rendered view), `blobs` (hash → bytes), `tombstones`
//! (`subwiki || doc` → [`agora_crdt::Tombstone`] record), `purged` (`subwiki || doc || entry id`
//! → nothing: the entries a purge deleted, never fetched again) and `meta` ([`COMPACT`]: a purge
//! since the last compaction).
//! An entry, its index keys and the counters are written in one multi-tree transaction, so an
//! index key never outlives its entry and the counters always match the keys. A purge deletes
//! entries, index keys, snapshots and views and writes tombstones and purged ids in one such
//! transaction too.
//!
//! # Deleting for real
//!
//! sled's log keeps a removed value's bytes until the segment holding them is reused, which may
//! be never: a value of a few hundred bytes in a small store was still in the `db` file after
//! being removed, flushed, the store closed, opened again and written to (and sled writes a
//! page again each time one of its keys changes, so a value can have hundreds of copies in the
//! log). A purge therefore sets [`COMPACT`], and the next [`SledStore::open`] rewrites the
//! database into fresh files before anything else (`compact.rs`), which clears it.
//!
//! # Durability: flush, fsync, and group commit
//!
//! A write is acknowledged only once it is on the disk. sled's own `Db::flush` is not enough:
//! on Linux it ends in `sync_file_range` (`sled-0.34.7/src/pagecache/iobuf.rs`, the
//! `not(feature = "io_uring")` branch of `write_to_log`), which starts and waits for the
//! write-back of the log's pages but issues no fsync, so neither the file's metadata (its
//! length, as the log grows) nor the disk's volatile cache is flushed; sled fsyncs only from
//! its background flusher, about every 500 ms. So after the flush the store fsyncs sled's data
//! file itself (`fdatasync` through a second descriptor of the same file: the sync is per
//! inode). The files sled 0.34 keeps in its directory (`config.rs`): `db`, the log-structured
//! data file every page is written to; `conf`, written once at creation; `snap.<lsn>`, page
//! table snapshots that only speed up recovery (a missing one means a longer log scan); and
//! `blobs/<lsn>`, one file per value too large for a log segment (over
//! `segment_size / 4 - 20` bytes, 128 KiB by default: images, large entries), which sled writes
//! without any sync. After a write that may have made a blob, the sync also fsyncs the blob
//! files written since the last one and the `blobs` directory. The directory itself is synced
//! when the store is opened (it holds the files' names).
//!
//! Syncs are shared between concurrent writers through a group-commit gate
//! ([`super::commit::Gate`]): a writer that arrives while a sync runs waits for the next one,
//! which covers every write made before it started. [`SledStore::syncs`] counts them.
//! Snapshots are a cache and are not synced ([`Store::put_snapshots`]); the next sync of
//! anything else, sled's background flusher or closing the store makes them durable.
//!
//! # A full or failing disk
//!
//! sled 0.34 cannot go on after a failed write, and may hang in a flush when one fails (see
//! `space.rs`). So every write first checks that the disk has room for it and refuses it with
//! [`StoreError::DiskFull`] otherwise (caches are then not written at all, and reads go on);
//! it is taken again once space is freed. If sled fails a write anyway, the store refuses every
//! write from then on, at once, without calling into sled (it needs to be opened again). Waits
//! are bounded: syncs run on the gate's thread and a writer waits [`SYNC_WAIT`] at most for
//! its sync; the writes that take sled's exclusive lock (transactions, batches) and the flush
//! hold the store's [`WriteLock`] (taken for [`WRITE_WAIT`] at most), so that none of them
//! queues inside sled behind a flush that never ends, where every read would queue behind it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ::sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use ::sled::{Db, IVec, Transactional, Tree};
use agora_crdt::{BlobHash, DocId, Entry, EntryId, Held, Purged, SubwikiId, Timestamp, Tombstone};

use super::commit::{Gate, WriteGuard, WriteLock};
use super::compact::{self, CompactReport};
use super::manifest::{self, Manifest};
use super::space;
use super::{
    Damage, FeedKey, Loaded, MAX_BLOB_BYTES, Opened, Put, Rebuilt, Served, Store, StoreError,
    SubwikiRecord, check_stored, check_stored_all, decode_tombstone, doc_key, feed_key_from_index,
    feed_upper, index_keys, merge_feed, parse_index_key, parse_purged_key, purged_key,
    recheck_stored, subwiki_lower, tombstone_feed_key,
};

/// The key of the number of entries in the `counts` tree (subwiki keys are 32 bytes).
const TOTAL: &[u8] = b"entries";

/// The key in the `meta` tree that says content was deleted since the database was last
/// rewritten: the next open compacts it (`compact.rs`).
pub(super) const COMPACT: &[u8] = b"compact";

/// Values up to this size are certainly kept inline in sled's log; a larger one may be a blob
/// file, which the next sync must fsync. sled's threshold is `segment_size / 4 - 20` bytes; the
/// smallest segment size [`Options`] allows is 256 KiB, so 64 KiB is below it.
const INLINE_MAX: usize = 64 * 1024;

/// How sled is configured. The defaults are what the node uses; other values are for
/// benchmarks that compare them (`node/benches/store.rs`, `docs/performance.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Bytes of sled's page cache (sled's default is 1 GiB).
    pub cache_capacity: u64,
    /// Bytes of a log segment. Fixed when the store is created: a store reopened with another
    /// value keeps its own. At least 256 KiB, a power of two.
    pub segment_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // sled's default is 1 GiB: a node that took in a 100,000-post subwiki then held
            // 530 MB, most of it sled's cache of what it had written (`docs/performance.md`
            // §4c); 128 MiB bounds it.
            cache_capacity: 128 * 1024 * 1024,
            // sled's default.
            segment_size: 512 * 1024,
        }
    }
}

/// The sled store. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: Db,
    entries: Tree,
    recon: Tree,
    feed: Tree,
    counts: Tree,
    subwikis: Tree,
    snapshots: Tree,
    views: Tree,
    blobs: Tree,
    tombstones: Tree,
    purged: Tree,
    meta: Tree,
    shared: Arc<Shared>,
}

/// What clones share besides the database.
#[derive(Debug)]
struct Shared {
    gate: Gate,
    /// sled's data file `db`, opened again to fsync it.
    data_file: File,
    /// sled's directory of large values.
    blob_dir: PathBuf,
    /// Set by a write that may have made a blob file; the next sync fsyncs new blob files.
    blob_written: AtomicBool,
    /// The highest blob file (named by its log sequence number) fsynced so far.
    blob_synced: AtomicU64,
    /// The manifest the store is checked against (`store/manifest.rs`), set at open.
    manifest: OnceLock<Manifest>,
    /// What that check found.
    opened: OnceLock<Opened>,
    /// Serialises the transactions that update the counters, so that they never conflict,
    /// and keeps sled's exclusive lock and its flushes apart (see the module documentation).
    writer: WriteLock,
    /// The store's directory, whose disk's free space is checked before writes.
    dir: PathBuf,
    /// Why writes are refused since sled failed one, if it did.
    failed: Mutex<Option<String>>,
    /// The database, kept open for ever after a failed write (see [`Shared`]'s `Drop`).
    db: Db,
    /// The compaction this open ran, if it ran one.
    compacted: Option<CompactReport>,
}

impl Drop for Shared {
    /// Runs when the last clone of the store is dropped. sled flushes every tree when it is
    /// closed, and after a failed write that flush can wait for ever (see `space.rs`): a store
    /// that failed a write is therefore left open, without the flush, until the process ends.
    /// Nothing is lost by it: every acknowledged write was made durable before it was
    /// acknowledged, and nothing could be written since.
    fn drop(&mut self) {
        if self
            .failed
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            tracing::error!("the store is left without its last flush after a failed write");
            std::mem::forget(self.db.clone());
        }
    }
}

/// How long a writer waits for the sync that makes its write durable before it fails (the
/// write may still become durable; it is not acknowledged).
pub const SYNC_WAIT: Duration = Duration::from_secs(20);

/// How long a writer waits for the store's write lock.
pub const WRITE_WAIT: Duration = Duration::from_secs(20);

pub(super) fn io(e: ::sled::Error) -> StoreError {
    match e {
        ::sled::Error::Corruption { .. } => StoreError::Damaged(e.to_string()),
        e => StoreError::Io(e.to_string()),
    }
}

pub(super) fn os(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => io(e),
        TransactionError::Abort(()) => StoreError::Io("transaction aborted".into()),
    }
}

fn decode_count(value: Option<IVec>) -> u64 {
    value
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Counter changes of one write: the total, and per subwiki.
#[derive(Default)]
struct Deltas {
    total: i64,
    subwikis: BTreeMap<SubwikiId, i64>,
}

impl Deltas {
    fn subwiki(&mut self, subwiki: SubwikiId, delta: i64) {
        *self.subwikis.entry(subwiki).or_default() += delta;
    }

    /// Entries each subwiki gained.
    fn gained(&self) -> impl Iterator<Item = (SubwikiId, u64)> + '_ {
        self.subwikis
            .iter()
            .filter(|(_, d)| **d > 0)
            .map(|(s, d)| (*s, d.unsigned_abs()))
    }

    /// Entries each subwiki lost.
    fn lost(&self) -> impl Iterator<Item = (SubwikiId, u64)> + '_ {
        self.subwikis
            .iter()
            .filter(|(_, d)| **d < 0)
            .map(|(s, d)| (*s, d.unsigned_abs()))
    }

    /// Adds the changes to the stored counters, inside the write's transaction.
    fn apply(&self, counts: &TransactionalTree) -> Result<(), UnabortableTransactionError> {
        let keyed = self
            .subwikis
            .iter()
            .map(|(s, d)| (&s.as_bytes()[..], *d))
            .chain(std::iter::once((TOTAL, self.total)));
        for (key, delta) in keyed {
            if delta != 0 {
                let n = decode_count(counts.get(key)?).saturating_add_signed(delta);
                counts.insert(key, &n.to_be_bytes()[..])?;
            }
        }
        Ok(())
    }
}

/// How long [`SledStore::open`] waits for a lock that this process may be releasing.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

impl SledStore {
    /// Opens (or creates) the store in `dir` with the default [`Options`]. Reads no entry: the
    /// cost is sled's recovery (its page table snapshot and the log after it), which grows with
    /// the store (`docs/performance.md` §4).
    ///
    /// A store held by another process is [`StoreError::Locked`]. A store that was just closed
    /// in this process can stay locked for a moment, until sled's background flusher has
    /// finished: the open is retried for up to [`LOCK_WAIT`] before giving up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Options::default())
    }

    /// [`SledStore::open`] with other [`Options`].
    ///
    /// First finishes (or undoes) a compaction a crash interrupted; then, if content was
    /// purged since the database was last rewritten, rewrites it into fresh files so that the
    /// purged bytes leave the disk ([`SledStore::compact`]; its cost is about that of copying
    /// the store, see `docs/performance.md`, "Deleting for real"). A compaction that fails
    /// before its swap (a full disk) is only logged: the store opens as it was, and the next
    /// open tries again.
    pub fn open_with(dir: &Path, options: Options) -> Result<Self, StoreError> {
        let real = compact::resolve(dir);
        compact::recover(&real)?;
        let mut db = open_db(dir, options)?;
        let mut compacted = None;
        if compact::marked(&db)? {
            match compact::build(&db, &real, options) {
                Ok(built) => {
                    drop(db);
                    compacted = Some(compact::swap(&real, built)?);
                    db = open_db(dir, options)?;
                }
                Err(e) => {
                    tracing::warn!(store = %dir.display(), "the store was not compacted, so content deleted since its last compaction is still in its files; the next start tries again: {e}");
                }
            }
        }
        if let Some(report) = &compacted {
            tracing::info!(store = %dir.display(), before = report.bytes_before, after = report.bytes_after, records = report.records, ms = report.took.as_millis(), "the store was compacted: deleted content is gone from its files");
        }
        let data_file = File::open(dir.join("db")).map_err(os)?;
        sync_dir(dir)?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let store = Self {
            entries: tree("entries")?,
            recon: tree("recon")?,
            feed: tree("feed")?,
            counts: tree("counts")?,
            subwikis: tree("subwikis")?,
            snapshots: tree("snapshots")?,
            views: tree("views")?,
            blobs: tree("blobs")?,
            tombstones: tree("tombstones")?,
            purged: tree("purged")?,
            meta: tree("meta")?,
            shared: Arc::new(Shared {
                gate: Gate::default(),
                data_file,
                blob_dir: dir.join("blobs"),
                // Blob files left by an earlier run are fsynced by the first sync that needs to.
                blob_written: AtomicBool::new(false),
                blob_synced: AtomicU64::new(0),
                writer: WriteLock::default(),
                dir: dir.to_owned(),
                failed: Mutex::new(None),
                db: db.clone(),
                manifest: OnceLock::new(),
                opened: OnceLock::new(),
                compacted,
            }),
            db,
        };
        if !store.counts.contains_key(TOTAL).map_err(io)? {
            // A store written before the counters existed, or a rebuild cut short: count once.
            store.recount()?;
        }
        store.check_manifest(dir)?;
        Ok(store)
    }

    /// Compares the store with its manifest (`store/manifest.rs`): records again the subwikis
    /// the database lost, and says loudly what is missing.
    fn check_manifest(&self, dir: &Path) -> Result<(), StoreError> {
        let records = self.subwikis()?;
        let count = |s: &SubwikiId| self.count(s).map(|n| n as u64);
        let (manifest, opened) = Manifest::open(manifest::path_for(dir), &records, count)?;
        if let Some(why) = &opened.unreadable {
            tracing::warn!(store = %dir.display(), "the store's manifest was unreadable, so the store cannot be checked this time: {why}");
        }
        for record in &opened.restored {
            tracing::warn!(subwiki = %record.id, "the store had forgotten this subwiki; recorded again from its manifest");
            self.set_subwiki(*record)?;
        }
        for d in manifest.damage(count)? {
            tracing::warn!(subwiki = %d.subwiki, expected = d.expected, held = d.held, "the store lost entries of this subwiki; a joined subwiki fetches them again from peers");
        }
        // Set once, here, before the store is shared.
        let _ = self.shared.manifest.set(manifest);
        let _ = self.shared.opened.set(opened);
        Ok(())
    }

    /// Rewrites the closed store in `dir` into fresh files (with the default [`Options`]),
    /// whether or not anything was purged, so that no deleted value's bytes are left in them;
    /// [`SledStore::open`] does it by itself after a purge. Crash-safe: a crash at any point
    /// leaves the old or the new database whole, and the next open finishes or undoes the
    /// swap. See `compact.rs`.
    pub fn compact(dir: &Path) -> Result<CompactReport, StoreError> {
        Self::compact_with(dir, Options::default())
    }

    /// [`SledStore::compact`] with other [`Options`] (those the store was made with).
    pub fn compact_with(dir: &Path, options: Options) -> Result<CompactReport, StoreError> {
        let real = compact::resolve(dir);
        compact::recover(&real)?;
        let db = open_db(dir, options)?;
        let built = compact::build(&db, &real, options)?;
        drop(db);
        compact::swap(&real, built)
    }

    /// The compaction this open ran (content had been purged since the last), if any.
    pub fn compacted(&self) -> Option<CompactReport> {
        self.shared.compacted
    }

    /// What comparing the store with its manifest found when it opened.
    pub fn opened(&self) -> Opened {
        self.shared.opened.get().cloned().unwrap_or_default()
    }

    /// Syncs run so far by this store and its clones (each one sled flush and one fsync),
    /// for tests and benchmarks: with writers arriving together, fewer than writes.
    pub fn syncs(&self) -> u64 {
        self.shared.gate.syncs()
    }

    /// Takes the store's write lock, waiting [`WRITE_WAIT`] at most.
    fn writer(&self) -> Result<WriteGuard<'_>, StoreError> {
        self.shared.writer.acquire(Some(WRITE_WAIT)).ok_or_else(|| {
            StoreError::Io(format!(
                "the store is busy: no write finished for {} s (is the disk answering?)",
                WRITE_WAIT.as_secs()
            ))
        })
    }

    /// Runs sled writes under the write lock, noting a failure.
    fn write<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let writer = self.writer()?;
        let result = f();
        drop(writer);
        self.noted(result)
    }

    /// Notes a write sled failed: sled fails every write after one until it is opened again,
    /// so from now on writes are refused at once, without calling into it.
    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            let mut failed = self.shared.failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.is_none() {
                tracing::error!("the store cannot write any more: {e}");
                let detail = match e {
                    StoreError::Io(detail) => detail.clone(),
                    e => e.to_string(),
                };
                *failed = Some(format!(
                    "writes stopped after a disk error ({detail}); free space if the disk is \
                     full, then restart the node"
                ));
            }
        }
        result
    }

    /// Refuses a write that needs `needed` bytes free: after a failed write, while a sync has
    /// not ended for [`SYNC_WAIT`], or when the disk has less free.
    fn check(&self, needed: u64) -> Result<(), StoreError> {
        let failed = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(reason) = failed {
            return Err(StoreError::Io(reason));
        }
        if self.shared.gate.stalled(SYNC_WAIT) {
            return Err(StoreError::Io(format!(
                "the disk has not finished the last write for {} s; writes are refused until \
                 it does",
                SYNC_WAIT.as_secs()
            )));
        }
        match space::free(&self.shared.dir) {
            Some(free) if free < needed => Err(StoreError::DiskFull {
                free,
                dir: self.shared.dir.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a write of about `bytes` (see [`Store::room`]).
    fn writable(&self, bytes: usize) -> Result<(), StoreError> {
        self.check(space::needed(bytes))
    }

    /// Refuses a removal: removals write little, and go on down to half the reserve (so that
    /// a failed import can take back what it added).
    fn removable(&self) -> Result<(), StoreError> {
        self.check(space::RESERVE / 2)
    }

    /// Whether a cache of `bytes` is worth writing now: not without room for it.
    fn cacheable(&self, bytes: usize) -> bool {
        match self.writable(bytes) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("cache not written: {e}");
                false
            }
        }
    }

    /// Makes every write made so far durable, sharing the sync with concurrent writers; fails
    /// if the sync fails or has not ended after [`SYNC_WAIT`].
    fn sync(&self) -> Result<(), StoreError> {
        let store = self.clone();
        self.shared
            .gate
            .commit(SYNC_WAIT, move || {
                let synced = store.sync_now();
                store.noted(synced).map_err(|e| e.to_string())
            })
            .map_err(StoreError::Io)
    }

    /// One sync: sled's flush (the log written out), then fsync of the data file, and of new
    /// blob files if a write may have made one. Runs on the gate's thread; the flush holds
    /// the write lock, waiting for it as long as it takes.
    fn sync_now(&self) -> Result<(), StoreError> {
        let blobs = self.shared.blob_written.swap(false, Ordering::SeqCst);
        let writer = self.shared.writer.acquire(None);
        self.db.flush().map_err(io)?;
        drop(writer);
        self.shared.data_file.sync_data().map_err(os)?;
        if blobs {
            self.sync_blob_files()?;
        }
        Ok(())
    }

    fn sync_blob_files(&self) -> Result<(), StoreError> {
        let synced = self.shared.blob_synced.load(Ordering::SeqCst);
        let mut highest = synced;
        for file in std::fs::read_dir(&self.shared.blob_dir).map_err(os)? {
            let file = file.map_err(os)?;
            let Some(lsn) = file
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if lsn > synced || synced == 0 {
                match File::open(file.path()) {
                    Ok(f) => f.sync_data().map_err(os)?,
                    // Removed by sled's garbage collection meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(os(e)),
                }
                highest = highest.max(lsn);
            }
        }
        sync_dir(&self.shared.blob_dir)?;
        self.shared.blob_synced.store(highest, Ordering::SeqCst);
        Ok(())
    }

    fn note_value(&self, len: usize) {
        if len > INLINE_MAX {
            self.shared.blob_written.store(true, Ordering::SeqCst);
        }
    }

    /// Counts the entries and every subwiki's reconciliation keys, and stores the counters.
    /// Linear in the store; run at open only when the counters are missing.
    fn recount(&self) -> Result<(), StoreError> {
        let writer = self.writer()?;
        let mut per: BTreeMap<SubwikiId, u64> = BTreeMap::new();
        for key in self.recon.iter().keys() {
            if let Some((subwiki, _, _)) = parse_index_key(&key.map_err(io)?) {
                *per.entry(subwiki).or_default() += 1;
            }
        }
        let total = self.entries.iter().keys().count() as u64;
        self.counts.clear().map_err(io)?;
        let mut batch = ::sled::Batch::default();
        for (subwiki, n) in per {
            batch.insert(subwiki.as_bytes(), &n.to_be_bytes()[..]);
        }
        self.counts.apply_batch(batch).map_err(io)?;
        // Written last: its presence says the counters are complete.
        self.counts
            .insert(TOTAL, &total.to_be_bytes()[..])
            .map_err(io)?;
        drop(writer);
        self.sync()
    }

    /// Removes a damaged entry under `id` with whatever index keys can still be found. Left
    /// for a later read when the store cannot write now (a full disk): reads go on.
    fn drop_corrupt(&self, id: &EntryId) -> Result<(), StoreError> {
        if let Err(e) = self.removable() {
            tracing::warn!(%id, "a damaged entry is not removed yet: {e}");
            return Ok(());
        }
        let find = |tree: &Tree| -> Result<Vec<IVec>, StoreError> {
            let mut found = Vec::new();
            for key in tree.iter().keys() {
                let key = key.map_err(io)?;
                if parse_index_key(&key).is_some_and(|(_, _, k)| k == *id.as_bytes()) {
                    found.push(key);
                }
            }
            Ok(found)
        };
        let writer = self.writer()?;
        let (recon, feed) = (find(&self.recon)?, find(&self.feed)?);
        let removed = (&self.entries, &self.recon, &self.feed, &self.counts)
            .transaction(|(e, r, f, c)| {
                let mut deltas = Deltas::default();
                if e.remove(id.as_bytes())?.is_some() {
                    deltas.total -= 1;
                }
                for key in &recon {
                    if r.remove(&key[..])?.is_some()
                        && let Some((subwiki, _, _)) = parse_index_key(key)
                    {
                        deltas.subwiki(subwiki, -1);
                    }
                }
                for key in &feed {
                    f.remove(&key[..])?;
                }
                deltas.apply(c)?;
                Ok::<_, ConflictableTransactionError<()>>(deltas)
            })
            .map_err(tx_error);
        drop(writer);
        let deltas = self.noted(removed)?;
        self.sync()?;
        // Damage: still expected, to be fetched again.
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.lost(deltas.lost());
        }
        Ok(())
    }

    /// [`Store::remove_subwiki`], under the write lock. Not one transaction (a subwiki can
    /// hold a million keys): a batch per tree, with the total of entries taken out first and
    /// written back last, so that a removal cut short is recounted at the next open (as a
    /// rebuild is), and the subwiki's record removed last, so that it is still listed (left) and
    /// can be removed again.
    fn remove_subwiki_locked(&self, subwiki: &SubwikiId) -> Result<(), StoreError> {
        let prefix = subwiki.as_bytes();
        let keys = |tree: &Tree| -> Result<Vec<IVec>, StoreError> {
            tree.scan_prefix(prefix)
                .keys()
                .collect::<Result<_, _>>()
                .map_err(io)
        };
        let (recon, feed, tombstones, purged) = (
            keys(&self.recon)?,
            keys(&self.feed)?,
            keys(&self.tombstones)?,
            keys(&self.purged)?,
        );
        // Its documents, for their snapshots and views: every entry id (a document's id is its
        // create entry's), every tombstoned document, every purged id.
        let mut docs = std::collections::BTreeSet::new();
        docs.extend(
            recon
                .iter()
                .filter_map(|k| parse_index_key(k).map(|(_, _, id)| id)),
        );
        docs.extend(
            tombstones
                .iter()
                .filter_map(|k| <[u8; 32]>::try_from(k.get(32..)?).ok()),
        );
        docs.extend(
            purged
                .iter()
                .filter_map(|k| parse_purged_key(k).map(|id| *id.as_bytes())),
        );
        let total = decode_count(self.counts.get(TOTAL).map_err(io)?);
        self.counts.remove(TOTAL).map_err(io)?;
        let mut removed = 0u64;
        for key in &recon {
            if let Some((_, _, id)) = parse_index_key(key)
                && self.entries.remove(id).map_err(io)?.is_some()
            {
                removed += 1;
            }
        }
        let remove_all = |tree: &Tree, keys: &mut dyn Iterator<Item = &[u8]>| {
            let mut batch = ::sled::Batch::default();
            for key in keys {
                batch.remove(key);
            }
            tree.apply_batch(batch).map_err(io)
        };
        remove_all(&self.recon, &mut recon.iter().map(|k| &k[..]))?;
        remove_all(&self.feed, &mut feed.iter().map(|k| &k[..]))?;
        remove_all(&self.tombstones, &mut tombstones.iter().map(|k| &k[..]))?;
        remove_all(&self.purged, &mut purged.iter().map(|k| &k[..]))?;
        remove_all(&self.views, &mut docs.iter().map(|d| &d[..]))?;
        remove_all(&self.snapshots, &mut docs.iter().map(|d| &d[..]))?;
        self.counts.remove(prefix).map_err(io)?;
        self.meta.insert(COMPACT, &[][..]).map_err(io)?;
        self.subwikis.remove(prefix).map_err(io)?;
        self.counts
            .insert(TOTAL, &total.saturating_sub(removed).to_be_bytes()[..])
            .map_err(io)?;
        Ok(())
    }

    /// Forgets the counters, as in a store written before they existed.
    #[cfg(test)]
    pub(crate) fn clear_counts(&self) {
        self.counts.clear().ok();
        self.sync().ok();
    }

    /// The raw database, for tests that damage records on purpose.
    #[cfg(test)]
    pub(crate) fn raw_entries(&self) -> &Tree {
        &self.entries
    }
}

/// Opens sled's database in `dir`, waiting [`LOCK_WAIT`] at most for a lock this process may
/// be releasing.
pub(super) fn open_db(dir: &Path, options: Options) -> Result<Db, StoreError> {
    let started = std::time::Instant::now();
    let config = ::sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_capacity)
        .segment_size(options.segment_size);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if e.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(StoreError::Locked(dir.display().to_string()));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e @ (::sled::Error::Corruption { .. } | ::sled::Error::ReportableBug(_))) => {
                return Err(StoreError::Damaged(format!("{}: {e}", dir.display())));
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// Fsyncs a directory, so that the names of the files in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(os)?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl Store for SledStore {
    fn room(&self, bytes: usize) -> Result<(), StoreError> {
        self.writable(bytes)
    }

    fn put_entries(&self, entries: &[Entry]) -> Result<Put, StoreError> {
        self.writable(entries.iter().map(|e| e.bytes().len()).sum())?;
        for entry in entries {
            self.note_value(entry.bytes().len());
        }
        let put = self.write(|| {
            (&self.entries, &self.recon, &self.feed, &self.counts)
                .transaction(|(e, r, f, c)| {
                    let mut put = Put::default();
                    let mut deltas = Deltas::default();
                    for entry in entries {
                        let id = entry.id();
                        let keys = index_keys(entry);
                        if e.insert(id.as_bytes(), entry.bytes())?.is_some() {
                            put.existing += 1;
                        } else {
                            put.new.push(id);
                            deltas.total += 1;
                        }
                        if r.insert(&keys.recon[..], Held::of(entry).encode())?
                            .is_none()
                        {
                            deltas.subwiki(entry.subwiki(), 1);
                        }
                        if let Some(feed) = keys.feed {
                            f.insert(&feed[..], &[][..])?;
                        }
                    }
                    deltas.apply(c)?;
                    Ok::<_, ConflictableTransactionError<()>>((put, deltas))
                })
                .map_err(tx_error)
        })?;
        let (put, deltas) = put;
        self.sync()?;
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.added(deltas.gained());
        }
        Ok(put)
    }

    fn remove_entries(&self, ids: &[EntryId]) -> Result<(), StoreError> {
        self.removable()?;
        let held: Vec<Entry> = ids
            .iter()
            .filter_map(|id| {
                self.entries
                    .get(id.as_bytes())
                    .ok()
                    .flatten()
                    .and_then(|b| check_stored(id, &b))
            })
            .collect();
        let deltas = self.write(|| {
            (&self.entries, &self.recon, &self.feed, &self.counts)
                .transaction(|(e, r, f, c)| {
                    let mut deltas = Deltas::default();
                    for id in ids {
                        if e.remove(id.as_bytes())?.is_some() {
                            deltas.total -= 1;
                        }
                    }
                    for entry in &held {
                        let keys = index_keys(entry);
                        if r.remove(&keys.recon[..])?.is_some() {
                            deltas.subwiki(entry.subwiki(), -1);
                        }
                        if let Some(feed) = keys.feed {
                            f.remove(&feed[..])?;
                        }
                    }
                    deltas.apply(c)?;
                    Ok::<_, ConflictableTransactionError<()>>(deltas)
                })
                .map_err(tx_error)
        })?;
        self.sync()?;
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.removed(deltas.lost());
        }
        Ok(())
    }

    fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        let Some(bytes) = self.entries.get(id.as_bytes()).map_err(io)? else {
            return Ok(None);
        };
        match check_stored(id, &bytes) {
            Some(entry) => Ok(Some(entry)),
            None => {
                self.drop_corrupt(id)?;
                Ok(None)
            }
        }
    }

    fn entry_bytes(&self, ids: &[EntryId]) -> Result<Vec<Option<Served>>, StoreError> {
        let read = ids
            .iter()
            .map(|id| {
                let bytes = self.entries.get(id.as_bytes()).map_err(io)?;
                Ok(bytes.map(|b| b.to_vec()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (out, damaged) = recheck_stored(ids, read);
        for id in &damaged {
            self.drop_corrupt(id)?;
        }
        Ok(out)
    }

    fn contains(&self, id: &EntryId) -> Result<bool, StoreError> {
        self.entries.contains_key(id.as_bytes()).map_err(io)
    }

    fn len(&self) -> Result<usize, StoreError> {
        let n = decode_count(self.counts.get(TOTAL).map_err(io)?);
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn count(&self, subwiki: &SubwikiId) -> Result<usize, StoreError> {
        let n = decode_count(self.counts.get(subwiki.as_bytes()).map_err(io)?);
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn items(&self, subwiki: &SubwikiId) -> Result<Vec<(Timestamp, EntryId)>, StoreError> {
        self.recon
            .scan_prefix(subwiki.as_bytes())
            .keys()
            .filter_map(|k| match k {
                Ok(k) => parse_index_key(&k).map(|(_, t, id)| Ok((t, EntryId::from_bytes(id)))),
                Err(e) => Some(Err(io(e))),
            })
            .collect()
    }

    fn index(&self, subwiki: &SubwikiId) -> Result<Option<Vec<Held>>, StoreError> {
        let mut records = Vec::new();
        for kv in self.recon.scan_prefix(subwiki.as_bytes()) {
            let (k, v) = kv.map_err(io)?;
            let record = parse_index_key(&k)
                .and_then(|(_, t, id)| Held::decode(EntryId::from_bytes(id), t, &v));
            match record {
                Some(record) => records.push(record),
                None => return Ok(None),
            }
        }
        Ok(Some(records))
    }

    fn load(&self, subwiki: &SubwikiId) -> Result<Loaded, StoreError> {
        // An index key without its entry reads as `None`: it is dropped with the damaged
        // entries, so that the entry is fetched again.
        let read = self
            .items(subwiki)?
            .into_iter()
            .map(|(_, id)| Ok((id, self.entries.get(id.as_bytes()).map_err(io)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let loaded = check_stored_all(read);
        for id in &loaded.corrupt {
            self.drop_corrupt(id)?;
        }
        Ok(loaded)
    }

    fn feed(
        &self,
        subwikis: &[SubwikiId],
        before: Option<(Timestamp, DocId)>,
        limit: usize,
    ) -> Result<Vec<FeedKey>, StoreError> {
        let sources = subwikis
            .iter()
            .map(|s| {
                let iter: Box<dyn Iterator<Item = FeedKey>> = Box::new(
                    self.feed
                        .range(subwiki_lower(s)..feed_upper(s, before))
                        .keys()
                        .rev()
                        .filter_map(|k| k.ok().and_then(|k| feed_key_from_index(&k))),
                );
                iter.peekable()
            })
            .collect();
        Ok(merge_feed(sources, limit))
    }

    fn set_subwiki(&self, record: SubwikiRecord) -> Result<(), StoreError> {
        self.writable(0)?;
        self.noted(
            self.subwikis
                .insert(record.id.as_bytes(), &[u8::from(record.joined)])
                .map_err(io),
        )?;
        self.sync()?;
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.record(record);
        }
        Ok(())
    }

    fn subwikis(&self) -> Result<Vec<SubwikiRecord>, StoreError> {
        self.subwikis
            .iter()
            .filter_map(|kv| match kv {
                Ok((k, v)) => {
                    let id: [u8; 32] = k.as_ref().try_into().ok()?;
                    Some(Ok(SubwikiRecord {
                        id: SubwikiId::from_bytes(id),
                        joined: v.first() == Some(&1),
                    }))
                }
                Err(e) => Some(Err(io(e))),
            })
            .collect()
    }

    fn put_snapshots(&self, snapshots: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        if !self.cacheable(snapshots.iter().map(|(_, b)| b.len()).sum()) {
            return Ok(());
        }
        let mut batch = ::sled::Batch::default();
        for (doc, bytes) in snapshots {
            batch.insert(doc.as_bytes(), bytes.as_slice());
        }
        // Not synced: a cache, made durable by the next sync of anything else, by sled's
        // background flusher or when the store is closed. A large snapshot may be a blob file
        // that the next sync then fsyncs too.
        if snapshots.iter().any(|(_, b)| b.len() > INLINE_MAX) {
            self.note_value(INLINE_MAX + 1);
        }
        self.write(|| self.snapshots.apply_batch(batch).map_err(io))
    }

    fn snapshot(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .snapshots
            .get(doc.as_bytes())
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn put_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        if views.is_empty() {
            return Ok(());
        }
        self.writable(views.iter().map(|(_, b)| b.len()).sum())?;
        let mut batch = ::sled::Batch::default();
        for (doc, bytes) in views {
            self.note_value(bytes.len());
            batch.insert(doc.as_bytes(), bytes.as_slice());
        }
        self.write(|| self.views.apply_batch(batch).map_err(io))?;
        self.sync()
    }

    fn cache_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        if !self.cacheable(views.iter().map(|(_, b)| b.len()).sum()) {
            return Ok(());
        }
        let mut batch = ::sled::Batch::default();
        for (doc, bytes) in views {
            self.note_value(bytes.len());
            batch.insert(doc.as_bytes(), bytes.as_slice());
        }
        self.write(|| self.views.apply_batch(batch).map_err(io))
    }

    fn remove_views(&self, docs: &[DocId]) -> Result<(), StoreError> {
        // Called before the entries that make the views stale are written: a full disk refuses
        // the write here, before anything of it is written.
        self.writable(0)?;
        let mut batch = ::sled::Batch::default();
        for doc in docs {
            batch.remove(doc.as_bytes());
        }
        self.write(|| self.views.apply_batch(batch).map_err(io))
    }

    fn view(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .views
            .get(doc.as_bytes())
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobHash, StoreError> {
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(StoreError::BlobTooLarge {
                len: bytes.len(),
                max: MAX_BLOB_BYTES,
            });
        }
        self.writable(bytes.len())?;
        let hash = BlobHash::of(bytes);
        self.note_value(bytes.len());
        self.noted(self.blobs.insert(hash.as_bytes(), bytes).map_err(io))?;
        self.sync()?;
        Ok(hash)
    }

    fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.blobs.get(hash.as_bytes()).map_err(io)? else {
            return Ok(None);
        };
        if BlobHash::of(&bytes) == *hash {
            Ok(Some(bytes.to_vec()))
        } else {
            // Removed when the store can write; it reads as missing all the same.
            if self.removable().is_ok() {
                self.noted(self.blobs.remove(hash.as_bytes()).map_err(io))?;
                self.sync()?;
            }
            Ok(None)
        }
    }

    fn remove_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.removable()?;
        self.noted(self.blobs.remove(hash.as_bytes()).map_err(io))?;
        Ok(())
    }

    fn rebuild_indexes(&self) -> Result<Rebuilt, StoreError> {
        self.writable(0)?;
        let writer = self.writer()?;
        // The total goes first and comes back last: a rebuild cut short is recounted at open.
        self.counts.clear().map_err(io)?;
        self.recon.clear().map_err(io)?;
        self.feed.clear().map_err(io)?;
        self.views.clear().map_err(io)?;
        self.snapshots.clear().map_err(io)?;
        let mut rebuilt = Rebuilt::default();
        let mut per: BTreeMap<SubwikiId, u64> = BTreeMap::new();
        let mut damaged = Vec::new();
        let mut purged = std::collections::BTreeSet::new();
        for key in self.purged.iter().keys() {
            purged.extend(parse_purged_key(&key.map_err(io)?));
        }
        for kv in self.entries.iter() {
            let (k, v) = kv.map_err(io)?;
            let id = <[u8; 32]>::try_from(k.as_ref()).map(EntryId::from_bytes);
            if let Ok(id) = id
                && purged.contains(&id)
            {
                // Deleted by a purge: never indexed again.
                rebuilt.purged.push(id);
                continue;
            }
            match id.ok().and_then(|id| check_stored(&id, &v)) {
                Some(entry) => {
                    let keys = index_keys(&entry);
                    self.recon
                        .insert(&keys.recon[..], Held::of(&entry).encode())
                        .map_err(io)?;
                    *per.entry(entry.subwiki()).or_default() += 1;
                    if let Some(feed) = keys.feed {
                        self.feed.insert(&feed[..], &[][..]).map_err(io)?;
                        rebuilt.posts += 1;
                    }
                    rebuilt.entries += 1;
                }
                None => damaged.push(k),
            }
        }
        for key in damaged {
            if let Ok(id) = <[u8; 32]>::try_from(key.as_ref()) {
                rebuilt.corrupt.push(EntryId::from_bytes(id));
            }
            self.entries.remove(key).map_err(io)?;
        }
        for id in &rebuilt.purged {
            self.entries.remove(id.as_bytes()).map_err(io)?;
        }
        // A tombstoned post keeps its place in the feed, where it reads as retracted.
        for kv in self.tombstones.iter() {
            let (k, v) = kv.map_err(io)?;
            let subwiki = k.get(..32).and_then(|s| <[u8; 32]>::try_from(s).ok());
            let feed = subwiki
                .zip(decode_tombstone(&k, &v))
                .and_then(|(subwiki, tombstone)| {
                    tombstone_feed_key(&SubwikiId::from_bytes(subwiki), &tombstone)
                });
            if let Some(feed) = feed
                && self.feed.insert(&feed[..], &[][..]).map_err(io)?.is_none()
            {
                rebuilt.posts += 1;
            }
        }
        let mut batch = ::sled::Batch::default();
        for (subwiki, n) in &per {
            batch.insert(subwiki.as_bytes(), &n.to_be_bytes()[..]);
        }
        batch.insert(TOTAL, &(rebuilt.entries as u64).to_be_bytes()[..]);
        self.counts.apply_batch(batch).map_err(io)?;
        drop(writer);
        self.sync()?;
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.recounted(&per);
        }
        Ok(rebuilt)
    }

    fn purge(&self, subwiki: &SubwikiId, purged: &[Purged]) -> Result<(), StoreError> {
        if purged.is_empty() {
            return Ok(());
        }
        self.removable()?;
        // Each held entry's index keys, known from the entry; a damaged entry's are looked for.
        let mut held = Vec::new();
        let mut damaged = std::collections::BTreeSet::new();
        for id in purged.iter().flat_map(|p| &p.ids) {
            let Some(bytes) = self.entries.get(id.as_bytes()).map_err(io)? else {
                continue;
            };
            match check_stored(id, &bytes) {
                Some(entry) if entry.subwiki() != *subwiki => {
                    tracing::warn!(%id, %subwiki, "not purged: the entry is of another subwiki");
                }
                Some(entry) => held.push((*id, index_keys(&entry))),
                None => {
                    damaged.insert(*id);
                }
            }
        }
        let (mut recon_found, mut feed_found) = (Vec::new(), Vec::new());
        if !damaged.is_empty() {
            let of_damaged = |key: &IVec| {
                parse_index_key(key)
                    .is_some_and(|(_, _, id)| damaged.contains(&EntryId::from_bytes(id)))
            };
            for key in self.recon.scan_prefix(subwiki.as_bytes()).keys() {
                let key = key.map_err(io)?;
                if of_damaged(&key) {
                    recon_found.push(key);
                }
            }
            for key in self.feed.scan_prefix(subwiki.as_bytes()).keys() {
                let key = key.map_err(io)?;
                if of_damaged(&key) {
                    feed_found.push(key);
                }
            }
        }
        let trees = (
            &self.entries,
            &self.recon,
            &self.feed,
            &self.counts,
            &self.tombstones,
            &self.purged,
            &self.views,
            &self.snapshots,
            &self.meta,
        );
        let deltas = self.write(|| {
            trees
                .transaction(|(e, r, f, c, t, p, v, s, m)| {
                    let mut deltas = Deltas::default();
                    for (id, keys) in &held {
                        if e.remove(id.as_bytes())?.is_some() {
                            deltas.total -= 1;
                        }
                        if r.remove(&keys.recon[..])?.is_some() {
                            deltas.subwiki(*subwiki, -1);
                        }
                        if let Some(feed) = keys.feed {
                            f.remove(&feed[..])?;
                        }
                    }
                    for id in &damaged {
                        if e.remove(id.as_bytes())?.is_some() {
                            deltas.total -= 1;
                        }
                    }
                    for key in &recon_found {
                        if r.remove(key)?.is_some() {
                            deltas.subwiki(*subwiki, -1);
                        }
                    }
                    for key in &feed_found {
                        f.remove(key)?;
                    }
                    for purge in purged {
                        let doc = purge.tombstone.meta.id;
                        t.insert(&doc_key(subwiki, &doc)[..], purge.tombstone.encode())?;
                        for id in &purge.ids {
                            p.insert(&purged_key(subwiki, &doc, id)[..], &[][..])?;
                        }
                        if let Some(feed) = tombstone_feed_key(subwiki, &purge.tombstone) {
                            f.insert(&feed[..], &[][..])?;
                        }
                        v.remove(doc.as_bytes())?;
                        s.remove(doc.as_bytes())?;
                    }
                    m.insert(COMPACT, &[][..])?;
                    deltas.apply(c)?;
                    Ok::<_, ConflictableTransactionError<()>>(deltas)
                })
                .map_err(tx_error)
        })?;
        self.sync()?;
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.removed(deltas.lost());
        }
        Ok(())
    }

    fn unpurge(&self, subwiki: &SubwikiId, docs: &[DocId]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        self.removable()?;
        let mut forgotten = Vec::new();
        for doc in docs {
            for key in self.purged.scan_prefix(doc_key(subwiki, doc)).keys() {
                forgotten.push(key.map_err(io)?);
            }
        }
        let trees = (&self.tombstones, &self.purged, &self.feed, &self.entries);
        self.write(|| {
            trees
                .transaction(|(t, p, f, e)| {
                    for doc in docs {
                        let key = doc_key(subwiki, doc);
                        let Some(record) = t.remove(&key[..])? else {
                            continue;
                        };
                        // The feed key goes with the tombstone, unless the post is held again.
                        if let Some(feed) = decode_tombstone(&key, &record)
                            .and_then(|tombstone| tombstone_feed_key(subwiki, &tombstone))
                            && e.get(doc.as_bytes())?.is_none()
                        {
                            f.remove(&feed[..])?;
                        }
                    }
                    for key in &forgotten {
                        p.remove(key)?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(tx_error)
        })?;
        self.sync()
    }

    fn tombstones(&self, subwiki: &SubwikiId) -> Result<Vec<Tombstone>, StoreError> {
        let mut tombstones = Vec::new();
        for kv in self.tombstones.scan_prefix(subwiki.as_bytes()) {
            let (k, v) = kv.map_err(io)?;
            tombstones.extend(decode_tombstone(&k, &v));
        }
        Ok(tombstones)
    }

    fn purged_ids(&self, subwiki: &SubwikiId) -> Result<Vec<EntryId>, StoreError> {
        let mut ids = std::collections::BTreeSet::new();
        for key in self.purged.scan_prefix(subwiki.as_bytes()).keys() {
            ids.extend(parse_purged_key(&key.map_err(io)?));
        }
        Ok(ids.into_iter().collect())
    }

    fn remove_subwiki(&self, subwiki: &SubwikiId) -> Result<(), StoreError> {
        self.removable()?;
        // The manifest forgets it first. A crash between the two leaves the subwiki in the
        // database and not in the manifest, which takes it back from the database at the next
        // open: nothing lost, no damage reported, and it can be removed again. The other order
        // could leave a manifest that records again, as damaged, a subwiki that is gone.
        if let Some(manifest) = self.shared.manifest.get() {
            manifest.forget(subwiki)?;
        }
        let writer = self.writer()?;
        let removed = self.remove_subwiki_locked(subwiki);
        drop(writer);
        self.noted(removed)?;
        self.sync()
    }

    fn damage(&self) -> Result<Vec<Damage>, StoreError> {
        match self.shared.manifest.get() {
            Some(manifest) => manifest.damage(|s| self.count(s).map(|n| n as u64)),
            None => Ok(Vec::new()),
        }
    }
}
