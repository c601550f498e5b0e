//! Repairing a damaged store (`agora repair`, `agora-node repair`).
//!
//! A store that opens is checked entry by entry ([`Store::rebuild_indexes`]: every entry's hash
//! and signature, every index rebuilt) and compared with its manifest. A store the database
//! refuses to open ([`StoreError::Damaged`]) is moved aside, whole, to
//! `<dir>.damaged-<unix seconds>`, and a new store is made in its place with every valid entry
//! and subwiki record that can still be read from a copy of the damaged files: without sled's
//! page-table snapshots, which are only a cache, sled reads its log up to the first damaged
//! record. The manifest then records again the subwikis that were lost with the rest, so that
//! the node fetches from peers whatever the repair could not save.

use std::fs;
use std::path::{Path, PathBuf};

use agora_crdt::EntryId;

use super::{Damage, SledStore, Store, StoreError, SubwikiRecord, check_stored_all};

/// Entries copied from damaged files per write.
const SALVAGE_BATCH: usize = 1000;

/// What [`repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Where the damaged files were moved, if the database could not be opened.
    pub moved_aside: Option<PathBuf>,
    /// Valid entries read back from the damaged files into the new store.
    pub salvaged: usize,
    /// Valid entries in the store after the repair.
    pub entries: usize,
    /// Damaged entries found and removed.
    pub corrupt: usize,
    /// Subwiki records the database had lost, recorded again from the manifest.
    pub restored: Vec<SubwikiRecord>,
    /// What is still missing: a joined subwiki fetches it from peers when the node runs.
    pub damage: Vec<Damage>,
}

fn os(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

/// Repairs the store in `dir`. See the module documentation.
pub fn repair(dir: &Path) -> Result<Repaired, StoreError> {
    let detail = match SledStore::open(dir).and_then(|store| check(&store, Repaired::default())) {
        Err(StoreError::Damaged(detail)) => detail,
        done => return done,
    };
    // The database cannot be opened, or fails while read: the store was dropped above, so
    // its files can be moved.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".damaged-{secs}"));
    let aside = dir.with_file_name(name);
    fs::rename(dir, &aside).map_err(|e| os(dir, e))?;
    tracing::warn!(store = %dir.display(), aside = %aside.display(), "the database is damaged ({detail}); its files were moved aside");
    let store = SledStore::open(dir)?;
    let repaired = Repaired {
        moved_aside: Some(aside.clone()),
        salvaged: salvage(&aside, &store)?,
        ..Repaired::default()
    };
    check(&store, repaired)
}

/// Checks every entry of an open store and what its manifest says is missing.
fn check(store: &SledStore, mut repaired: Repaired) -> Result<Repaired, StoreError> {
    repaired.restored = store.opened().restored;
    let rebuilt = store.rebuild_indexes()?;
    repaired.entries = rebuilt.entries;
    repaired.corrupt = rebuilt.corrupt.len();
    repaired.damage = store.damage()?;
    Ok(repaired)
}

/// Copies every valid entry and subwiki record that a copy of the damaged files in `aside`
/// still gives into `into`; returns the entries copied. Damaged files that give nothing are
/// not an error: the copy is then simply empty.
fn salvage(aside: &Path, into: &SledStore) -> Result<usize, StoreError> {
    let copy = {
        let mut name = aside.file_name().unwrap_or_default().to_os_string();
        name.push(".salvage");
        aside.with_file_name(name)
    };
    copy_without_snapshots(aside, &copy)?;
    let salvaged = match ::sled::Config::new().path(&copy).open() {
        Ok(db) => salvage_from(&db, into),
        Err(e) => {
            tracing::warn!(aside = %aside.display(), "nothing can be read from the damaged files: {e}");
            Ok(0)
        }
    };
    fs::remove_dir_all(&copy).map_err(|e| os(&copy, e))?;
    salvaged
}

fn salvage_from(db: &::sled::Db, into: &SledStore) -> Result<usize, StoreError> {
    let mut salvaged = 0;
    if let Ok(subwikis) = db.open_tree("subwikis") {
        for (key, value) in subwikis.iter().map_while(Result::ok) {
            if let Ok(id) = <[u8; 32]>::try_from(key.as_ref()) {
                into.set_subwiki(SubwikiRecord {
                    id: agora_crdt::SubwikiId::from_bytes(id),
                    joined: value.first() == Some(&1),
                })?;
            }
        }
    }
    let Ok(entries) = db.open_tree("entries") else {
        return Ok(0);
    };
    // Reading stops at the first record sled cannot read.
    let mut batch = Vec::with_capacity(SALVAGE_BATCH);
    let mut put = |batch: &mut Vec<(EntryId, Option<::sled::IVec>)>| {
        let loaded = check_stored_all(std::mem::take(batch));
        let put = into.put_entries(&loaded.entries)?;
        salvaged += put.new.len();
        Ok::<_, StoreError>(())
    };
    for (key, value) in entries.iter().map_while(Result::ok) {
        if let Ok(id) = <[u8; 32]>::try_from(key.as_ref()) {
            batch.push((EntryId::from_bytes(id), Some(value)));
        }
        if batch.len() == SALVAGE_BATCH {
            put(&mut batch)?;
        }
    }
    put(&mut batch)?;
    if let Ok(blobs) = db.open_tree("blobs") {
        for (key, value) in blobs.iter().map_while(Result::ok) {
            // Kept only if they still hash to their name.
            let hash = agora_crdt::BlobHash::of(&value);
            if hash.as_bytes()[..] == key[..] {
                into.put_blob(&value)?;
            }
        }
    }
    Ok(salvaged)
}

/// Copies sled's files from `from` to `to`, leaving out its page-table snapshots
/// (`snap.*`), so that opening the copy reads the log itself.
fn copy_without_snapshots(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(to).map_err(|e| os(to, e))?;
    for item in fs::read_dir(from).map_err(|e| os(from, e))? {
        let item = item.map_err(|e| os(from, e))?;
        let name = item.file_name();
        if name.to_string_lossy().starts_with("snap.") {
            continue;
        }
        let (source, target) = (item.path(), to.join(&name));
        let kind = item.file_type().map_err(|e| os(&source, e))?;
        if kind.is_dir() {
            copy_without_snapshots(&source, &target)?;
        } else if kind.is_file() {
            fs::copy(&source, &target).map_err(|e| os(&source, e))?;
        }
    }
    Ok(())
}
