//! Compaction: the sled database rewritten into fresh files, so that what was deleted is gone
//! from the disk.
//!
//! sled 0.34 is log-structured: a removal appends a record saying so, and the bytes of the value
//! removed stay in the log (the `db` file) until the segment that holds them is cleaned and
//! written over, which may be never. Worse, sled writes a tree page again (whole, or as a delta
//! then consolidated) each time one of its keys changes, so one value can have hundreds of
//! copies in the log. Measured with sled 0.34.7 (a 200-byte value among 4,000 others of 300
//! bytes, 512 KiB segments): 223 copies of it in `db` after it was written; still 223 after it
//! was removed and flushed, after 2,000 more writes, and after the store was closed; 86 after
//! opening it again (sled zeroes the segments it finds free when it recovers), 35 after every
//! key was written again, none only after a further reopen. Among 20 values, it was still there
//! after all of that. Values over `segment_size / 4` bytes are files in `blobs/` (one per
//! version of the page); those went once their page was written again, which a later write
//! to a neighbouring key does. So a removal alone promises nothing about the disk.
//!
//! A purge ([`super::Store::purge`], [`super::Store::remove_subwiki`]) therefore sets a mark in
//! the database, and the next [`SledStore::open`](super::SledStore::open) copies every tree,
//! every key and value but the mark, into a new database beside the store, then swaps the two
//! directories and deletes the old one. The copy holds nothing deleted: sled writes only what
//! it is given. [`SledStore::compact`](super::SledStore::compact) does the same on demand. The
//! copy needs free space for a second store while it is made; without it (or if anything else
//! fails before the swap) the open logs why and goes on with the old store, mark and all, to
//! try again at the next open. A store reached through a symbolic link is compacted where it
//! is ([`resolve`]), so the link keeps pointing at it.
//!
//! # Crash safety
//!
//! Three names beside the store's directory `<dir>` (in its parent, like the manifest):
//! `<dir>.compact-tmp` while the copy is written; `<dir>.compact-new` once the copy is complete
//! and durable (every file and directory fsynced after sled let go of them, then the rename,
//! then the parent fsynced); `<dir>.compact-old` for the old store during the swap. The swap is
//! two renames, `<dir>` to `.compact-old` then `.compact-new` to `<dir>`, each followed by an
//! fsync of the parent, then `.compact-old` is deleted. Whatever a crash leaves, [`recover`]
//! (the first thing every open does) finds one of these states and ends it:
//!
//! | left beside the store               | meaning                            | done at open               |
//! |-------------------------------------|------------------------------------|----------------------------|
//! | `.compact-tmp`                      | a copy not finished                | deleted                    |
//! | `<dir>` and `.compact-new`          | copy complete, swap not begun      | swap done                  |
//! | `.compact-new` and `.compact-old`   | between the two renames            | second rename, old deleted |
//! | `<dir>` and `.compact-old`          | swapped, old not deleted yet       | old deleted                |
//!
//! The old store stays whole until the new one is in its place, and the new one is complete
//! before it gets its name, so every state holds one complete database under a name that says
//! which. The copy is made right after the old store was opened and before anything is written
//! to it, so a complete copy is never older than the store it replaces.
//!
//! The swap holds sled's lock on the old store's `db` file (an exclusive `flock`) until the old
//! store is deleted, so another process opening the store meanwhile waits (sled's lock, then
//! [`LOCK_WAIT`](super::sled::LOCK_WAIT) of retries) and then opens the new one. Only between the
//! two renames (microseconds) is there no store under `<dir>`: a process opening it at that
//! very moment would make an empty store there, the second rename would then fail, and the
//! next open would stop and say that both `.compact-new` and `.compact-old` are left, for
//! the owner to choose; nothing is deleted.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::sled::Db;

use super::StoreError;
use super::sled::{COMPACT, LOCK_WAIT, Options, io, os, sync_dir};
use super::space;

/// Bytes copied per batch.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of the store's files before (sled's log, snapshots and blob files).
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Records (keys, with their values) copied, in every tree.
    pub records: u64,
    /// How long it took, the copy and the swap.
    pub took: Duration,
}

/// A complete copy, ready to be swapped in.
#[derive(Debug)]
pub(super) struct Built {
    started: Instant,
    bytes_before: u64,
    records: u64,
}

/// `<dir>.<suffix>`, beside the store.
fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

/// Where the copy is written.
fn building(dir: &Path) -> PathBuf {
    beside(dir, "compact-tmp")
}

/// The complete copy, before the swap.
fn ready(dir: &Path) -> PathBuf {
    beside(dir, "compact-new")
}

/// The old store during the swap.
fn old(dir: &Path) -> PathBuf {
    beside(dir, "compact-old")
}

/// The directory holding the store's directory.
fn parent(dir: &Path) -> &Path {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn at(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to)
        .map_err(|e| StoreError::Io(format!("{} to {}: {e}", from.display(), to.display())))?;
    sync_dir(parent(to))
}

fn remove(path: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(path).map_err(|e| at(path, e))?;
    sync_dir(parent(path))
}

/// The store's directory with symbolic links followed: the copy and the swap happen beside the
/// real directory, on its file system, and a link to it keeps pointing at the store.
pub(super) fn resolve(dir: &Path) -> PathBuf {
    let mut dir = dir.to_owned();
    // Bounded, as the kernel bounds it: a loop of links is left to sled to refuse.
    for _ in 0..40 {
        match fs::read_link(&dir) {
            // An absolute target replaces the parent; a relative one is read from it.
            Ok(target) => dir = parent(&dir).join(target),
            Err(_) => break,
        }
    }
    dir
}

/// Whether content was deleted since the database was last rewritten.
pub(super) fn marked(db: &Db) -> Result<bool, StoreError> {
    db.open_tree("meta")
        .and_then(|meta| meta.contains_key(COMPACT))
        .map_err(io)
}

/// Ends whatever an interrupted compaction left beside the store in `dir` (see the module
/// documentation's table). Nothing to do, the usual case, costs three `stat`s.
pub(super) fn recover(dir: &Path) -> Result<(), StoreError> {
    let (building, ready, old) = (building(dir), ready(dir), old(dir));
    if building.exists() {
        tracing::warn!(store = %dir.display(), "an unfinished compaction's copy is deleted");
        remove(&building)?;
    }
    match (dir.exists(), ready.exists(), old.exists()) {
        (_, false, false) => return Ok(()),
        (true, true, false) => {
            rename(dir, &old)?;
            rename(&ready, dir)?;
        }
        (false, true, _) => rename(&ready, dir)?,
        (true, false, true) => {}
        // Never left by a compaction (the old store leaves its name only once the new one is
        // complete), but the old store is whole: it is put back, mark and all.
        (false, false, true) => {
            rename(&old, dir)?;
            return Ok(());
        }
        (true, true, true) => {
            return Err(StoreError::Io(format!(
                "{} and {} are both beside the store {}: a compaction was interrupted and the \
                 store was made again meanwhile; move aside what you do not want to keep",
                ready.display(),
                old.display(),
                dir.display()
            )));
        }
    }
    tracing::info!(store = %dir.display(), "an interrupted compaction was finished");
    if old.exists() {
        remove(&old)?;
    }
    Ok(())
}

/// Copies the open database `db` of the store in `dir` into a new, complete, durable one
/// beside it, without the compaction mark. Deletes what it wrote if it fails; the store is
/// untouched either way.
pub(super) fn build(db: &Db, dir: &Path, options: Options) -> Result<Built, StoreError> {
    let started = Instant::now();
    let building = building(dir);
    if building.exists() {
        remove(&building)?;
    }
    let bytes_before = dir_bytes(dir)?;
    // The copy is at most as large as the store.
    let needed = space::RESERVE.saturating_add(bytes_before);
    if let Some(free) = space::free(parent(dir))
        && free < needed
    {
        return Err(StoreError::DiskFull {
            free,
            dir: dir.to_owned(),
        });
    }
    let records = match copy(db, &building, options) {
        Ok(records) => records,
        Err(e) => {
            if let Err(also) = fs::remove_dir_all(&building) {
                tracing::warn!(copy = %building.display(), "cannot delete an unfinished copy: {also}");
            }
            return Err(e);
        }
    };
    rename(&building, &ready(dir))?;
    Ok(Built {
        started,
        bytes_before,
        records,
    })
}

/// Writes every tree of `db` into a new database at `to`, closes it and makes it durable.
fn copy(db: &Db, to: &Path, options: Options) -> Result<u64, StoreError> {
    let new = ::sled::Config::new()
        .path(to)
        .cache_capacity(options.cache_capacity)
        .segment_size(options.segment_size)
        .create_new(true)
        .open()
        .map_err(io)?;
    let mut records = 0u64;
    for name in db.tree_names() {
        let from = db.open_tree(&name).map_err(io)?;
        let into = new.open_tree(&name).map_err(io)?;
        let meta = name.as_ref() == b"meta";
        let (mut batch, mut bytes) = (::sled::Batch::default(), 0usize);
        for kv in from.iter() {
            let (key, value) = kv.map_err(io)?;
            if meta && key.as_ref() == COMPACT {
                continue;
            }
            bytes += key.len() + value.len();
            batch.insert(key, value);
            records += 1;
            if bytes >= BATCH_BYTES {
                into.apply_batch(std::mem::take(&mut batch)).map_err(io)?;
                bytes = 0;
            }
        }
        into.apply_batch(batch).map_err(io)?;
    }
    new.flush().map_err(io)?;
    drop(new);
    // sled's threads may still write (its last page-table snapshot) until they let go of the
    // files: only then is the copy fsynced, whole.
    wait_released(to)?;
    sync_tree(to)?;
    Ok(records)
}

/// Swaps the complete copy in for the store in `dir`, whose database must be closed, and
/// deletes the old one.
pub(super) fn swap(dir: &Path, built: Built) -> Result<CompactReport, StoreError> {
    // Held until the old store is deleted: another process opening the store meanwhile waits
    // in sled's lock (and then opens the new one) instead of opening the old one.
    let lock = lock(dir)?;
    let (ready, old) = (ready(dir), old(dir));
    rename(dir, &old)?;
    rename(&ready, dir)?;
    remove(&old)?;
    drop(lock);
    Ok(CompactReport {
        bytes_before: built.bytes_before,
        bytes_after: dir_bytes(dir)?,
        records: built.records,
        took: built.started.elapsed(),
    })
}

/// Waits until no sled database holds the store in `dir` any more (see [`lock`]).
fn wait_released(dir: &Path) -> Result<(), StoreError> {
    lock(dir).map(drop)
}

/// Takes the lock sled takes on the store in `dir`, waiting [`LOCK_WAIT`] at most: sled holds
/// an exclusive `flock` on its `db` file for as long as any of its threads uses the database,
/// which may be a moment after the last handle was dropped. Held until the value is dropped.
#[cfg(unix)]
fn lock(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>, StoreError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = dir.join("db");
    let started = Instant::now();
    let mut file = fs::File::open(&path).map_err(|e| at(&path, e))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, _)) if started.elapsed() < LOCK_WAIT => {
                file = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return Err(StoreError::Locked(dir.display().to_string())),
        }
    }
}

/// Without `flock`, nothing to wait for or hold (a rename that fails is tried again at the
/// next open).
#[cfg(not(unix))]
fn lock(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Fsyncs every file and directory under `dir`, and `dir`.
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for item in fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let path = item.map_err(|e| at(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| at(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> Result<u64, StoreError> {
    let mut total = 0;
    for item in fs::read_dir(dir).map_err(os)? {
        let item = item.map_err(os)?;
        let kind = item.file_type().map_err(os)?;
        if kind.is_dir() {
            total += dir_bytes(&item.path())?;
        } else {
            // A file sled removes meanwhile counts for nothing.
            total += item.metadata().map_or(0, |m| m.len());
        }
    }
    Ok(total)
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#[path = "../../benches/support/realistic.rs"]
mod realistic;

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use agora_crdt::{DocId, Entry, EntryId, PostContent, Replica, Timestamp};

    use super::*;
    use crate::store::sled::open_db;
    use crate::store::suite::{T0, key, retract, subwiki};
    use crate::store::{SledStore, Store, SubwikiRecord};

    /// In the body of the post that is purged, and nowhere else.
    const MARKER: &str = "Qz7-the-words-taken-back-4Kv";

    /// Occurrences of `needle` in every file under `dir`, its subdirectories included.
    fn occurrences(dir: &Path, needle: &str) -> usize {
        let mut n = 0;
        for item in fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                n += occurrences(&path, needle);
            } else if let Ok(bytes) = fs::read(&path) {
                n += bytes
                    .windows(needle.len())
                    .filter(|w| *w == needle.as_bytes())
                    .count();
            }
        }
        n
    }

    /// What is beside the store in its parent directory.
    fn names(parent: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(parent)
            .unwrap()
            .map(|i| i.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A subwiki with three posts and a fourth whose body holds [`MARKER`]; returns the
    /// replica, every entry and the fourth post.
    fn fixture() -> (Replica, Vec<Entry>, DocId) {
        let (mut a, mut ea) = subwiki(1, "a", 3, 100);
        let post = PostContent {
            title: "Something I should not have said".into(),
            body: format!("My neighbour's door code is {MARKER}."),
            ..PostContent::default()
        };
        let created = a
            .create_post(&key(1), Timestamp(T0 + 10_000), post)
            .unwrap();
        let doc = DocId::from(created.id());
        ea.push(created);
        (a, ea, doc)
    }

    /// Makes a store in `dir` holding the fixture, purges the marked post (with its view and
    /// snapshot, which hold the marker too), and closes it. Returns every entry (the
    /// statement included) and the ids purged.
    fn purged_store(dir: &Path) -> (Replica, Vec<Entry>, Vec<EntryId>) {
        let (mut a, mut ea, doc) = fixture();
        let store = SledStore::open(dir).unwrap();
        store.put_entries(&ea).unwrap();
        store
            .set_subwiki(SubwikiRecord {
                id: a.id(),
                joined: true,
            })
            .unwrap();
        store
            .put_views(&[(doc, format!("view: {MARKER}").into_bytes())])
            .unwrap();
        store
            .put_snapshots(&[(doc, format!("snapshot: {MARKER}").into_bytes())])
            .unwrap();
        assert!(
            occurrences(dir, MARKER) > 0,
            "the scan finds what the store holds"
        );
        let (statement, purged) = retract(&mut a, 1, doc, "");
        store.put_entries(std::slice::from_ref(&statement)).unwrap();
        ea.push(statement);
        store.purge(&a.id(), &purged).unwrap();
        assert!(store.entry(&EntryId::from(doc)).unwrap().is_none());
        drop(store);
        // Removed, flushed, closed: sled still has the bytes in its log. This is why
        // compaction exists.
        assert!(occurrences(dir, MARKER) > 0);
        (a, ea, purged[0].ids.clone())
    }

    /// Everything but the purged entries is there, with the tombstone, the purged ids and the
    /// feed key of the purged post, and nothing of the marker is left in any file beside the
    /// store either.
    fn check_compacted(
        parent: &Path,
        store: &SledStore,
        a: &Replica,
        ea: &[Entry],
        gone: &[EntryId],
    ) {
        assert_eq!(occurrences(parent, MARKER), 0);
        assert_eq!(names(parent), vec!["store", "store.manifest"]);
        for e in ea {
            assert_eq!(store.contains(&e.id()).unwrap(), !gone.contains(&e.id()));
        }
        let loaded = store.load(&a.id()).unwrap();
        assert!(loaded.corrupt.is_empty());
        assert_eq!(loaded.entries.len(), ea.len() - gone.len());
        assert_eq!(store.count(&a.id()).unwrap(), ea.len() - gone.len());
        assert_eq!(store.len().unwrap(), ea.len() - gone.len());
        assert_eq!(store.feed(&[a.id()], None, 10).unwrap().len(), 4);
        assert_eq!(store.tombstones(&a.id()).unwrap().len(), 1);
        assert_eq!(store.purged_ids(&a.id()).unwrap().len(), gone.len());
        assert_eq!(store.subwikis().unwrap().len(), 1);
        assert_eq!(store.damage().unwrap(), vec![]);
    }

    #[test]
    fn the_open_after_a_purge_leaves_no_byte_of_the_purged_content_in_any_file() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("store");
        let (a, ea, gone) = purged_store(&dir);
        let store = SledStore::open(&dir).unwrap();
        let report = store
            .compacted()
            .expect("a purge makes the next open compact");
        // At least each entry and its reconciliation key.
        assert!(report.records >= (2 * (ea.len() - gone.len())) as u64);
        assert!(report.bytes_after > 0);
        check_compacted(parent.path(), &store, &a, &ea, &gone);
        drop(store);
        // Compacted once: the mark went with it.
        let store = SledStore::open(&dir).unwrap();
        assert!(store.compacted().is_none());
        check_compacted(parent.path(), &store, &a, &ea, &gone);
    }

    #[test]
    fn a_store_without_a_purge_is_not_compacted_at_open_and_compact_does_it_on_demand() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("store");
        let (_, ea) = subwiki(1, "a", 3, 100);
        {
            let store = SledStore::open(&dir).unwrap();
            store.put_entries(&ea).unwrap();
        }
        let store = SledStore::open(&dir).unwrap();
        assert!(store.compacted().is_none());
        drop(store);
        let report = SledStore::compact(&dir).unwrap();
        assert!(report.records > ea.len() as u64);
        let store = SledStore::open(&dir).unwrap();
        assert!(store.compacted().is_none());
        assert_eq!(store.len().unwrap(), ea.len());
        assert_eq!(
            store.load(&ea[0].subwiki()).unwrap().entries.len(),
            ea.len()
        );
        assert_eq!(names(parent.path()), vec!["store", "store.manifest"]);
    }

    #[test]
    fn leaving_a_subwiki_for_good_leaves_no_byte_of_it_once_compacted() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("store");
        let (a, ea, _) = fixture();
        let (b, eb) = subwiki(2, "b", 2, 100);
        {
            let store = SledStore::open(&dir).unwrap();
            store.put_entries(&ea).unwrap();
            store.put_entries(&eb).unwrap();
            store.remove_subwiki(&a.id()).unwrap();
        }
        assert!(occurrences(&dir, MARKER) > 0);
        let store = SledStore::open(&dir).unwrap();
        assert!(store.compacted().is_some());
        assert_eq!(occurrences(parent.path(), MARKER), 0);
        assert_eq!(store.len().unwrap(), eb.len());
        assert_eq!(store.load(&b.id()).unwrap().entries.len(), eb.len());
    }

    #[cfg(unix)]
    #[test]
    fn a_store_reached_through_a_symbolic_link_is_compacted_where_it_is() {
        let parent = tempfile::tempdir().unwrap();
        let (home, data) = (parent.path().join("home"), parent.path().join("data"));
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(data.join("store")).unwrap();
        let dir = home.join("store");
        std::os::unix::fs::symlink("../data/store", &dir).unwrap();
        let (a, ea, gone) = purged_store(&dir);
        let store = SledStore::open(&dir).unwrap();
        assert!(store.compacted().is_some());
        assert!(fs::symlink_metadata(&dir).unwrap().file_type().is_symlink());
        assert_eq!(occurrences(parent.path(), MARKER), 0);
        assert_eq!(names(&data), vec!["store"]);
        check_compacted(&home, &store, &a, &ea, &gone);
    }

    /// Builds a complete copy of the closed, purged store in `dir`, as an open would before
    /// its swap, and closes the store again.
    fn copy_ready(dir: &Path) {
        let db = open_db(dir, Options::default()).unwrap();
        let built = build(&db, dir, Options::default()).unwrap();
        drop((db, built));
        wait_released(dir).unwrap();
        assert!(ready(dir).exists());
        assert!(!building(dir).exists());
    }

    #[test]
    fn a_compaction_cut_short_by_a_crash_is_finished_or_undone_at_the_next_open() {
        type Crash = fn(&Path);
        let crashes: [(&str, Crash); 5] = [
            ("while copying", |dir| {
                // A partial copy: some of sled's files, the marker among them.
                let tmp = building(dir);
                fs::create_dir(&tmp).unwrap();
                fs::copy(dir.join("db"), tmp.join("db")).unwrap();
            }),
            ("with the copy complete, before the swap", copy_ready),
            ("between the two renames", |dir| {
                copy_ready(dir);
                fs::rename(dir, old(dir)).unwrap();
            }),
            ("after the swap, before the old store was deleted", |dir| {
                copy_ready(dir);
                fs::rename(dir, old(dir)).unwrap();
                fs::rename(ready(dir), dir).unwrap();
            }),
            ("with only the old store left", |dir| {
                fs::rename(dir, old(dir)).unwrap();
            }),
        ];
        for (when, crash) in crashes {
            let parent = tempfile::tempdir().unwrap();
            let dir = parent.path().join("store");
            let (a, ea, gone) = purged_store(&dir);
            crash(&dir);
            let store = SledStore::open(&dir).unwrap_or_else(|e| panic!("{when}: {e}"));
            check_compacted(parent.path(), &store, &a, &ea, &gone);
        }
    }

    /// How long compaction takes on a realistic store: `cargo test -p agora-node --lib
    /// compaction_cost -- --ignored --nocapture` (`AGORA_COMPACT_POSTS`, default 10,000
    /// posts). Figures in `docs/performance.md`, "Deleting for real: compaction".
    #[test]
    #[ignore = "a measurement: minutes, and a cached data file under target/"]
    fn compaction_cost() {
        let posts: usize = std::env::var("AGORA_COMPACT_POSTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let subwiki = super::realistic::cached(1, posts);
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("store");
        {
            let store = SledStore::open(&dir).unwrap();
            for chunk in subwiki.entries.chunks(1000) {
                store.put_entries(chunk).unwrap();
            }
        }
        let open = || {
            let started = Instant::now();
            let store = SledStore::open(&dir).unwrap();
            (started.elapsed(), store.compacted())
        };
        // Warm: the files in the page cache, as for the compaction that follows.
        let open_plain = open().0.min(open().0);
        // Mark it as a purge would, then time the open that compacts.
        {
            let db = open_db(&dir, Options::default()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(COMPACT, &[][..])
                .unwrap();
            db.flush().unwrap();
        }
        wait_released(&dir).unwrap();
        let (open_compacting, compacted) = open();
        assert!(compacted.is_some());
        let open_after = open().0;
        let started = Instant::now();
        let report = SledStore::compact(&dir).unwrap();
        let compact_alone = started.elapsed();
        let store = SledStore::open(&dir).unwrap();
        assert_eq!(store.len().unwrap(), subwiki.entries.len());
        println!(
            "| {} posts, {} entries ({} MB of entries) | open {:.0} ms | open that compacts {:.0} ms | open after {:.0} ms | compact alone {:.0} ms, {} records | {:.1} MB before, {:.1} MB after |",
            subwiki.posts,
            subwiki.entries.len(),
            subwiki.entry_bytes() / 1_000_000,
            open_plain.as_secs_f64() * 1000.0,
            open_compacting.as_secs_f64() * 1000.0,
            open_after.as_secs_f64() * 1000.0,
            compact_alone.as_secs_f64() * 1000.0,
            report.records,
            report.bytes_before as f64 / 1e6,
            report.bytes_after as f64 / 1e6,
        );
    }
}
