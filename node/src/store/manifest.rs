//! The store's manifest: which subwikis the node keeps, and how many entries of each it has
//! made durable, in a small file beside the database (`<home>/store.manifest`).
//!
//! A database can be damaged in ways it does not notice itself. sled recovers by reading its
//! log up to the first record that fails its checksum and drops everything after it, without
//! an error: a store truncated or with flipped bytes (and no page-table snapshot) opens with
//! most of its entries, and even its subwiki records, gone. A deleted store is simply a new,
//! empty one. The manifest is what the store is compared with when it opens:
//!
//! - a subwiki in the manifest that the database no longer records is recorded again, joined
//!   or not as it was, so the node keeps replicating it and fetches its entries from peers;
//! - a subwiki holding fewer entries than the manifest counts is [`Damage`]: the node says so
//!   (`agora up`, `agora status`) until peers have sent the missing entries again.
//!
//! Each subwiki has two counts: what it holds durably now (known exactly: the database's count
//! at open, then every entry a synced write added or a removal took away) and what it is
//! expected to hold, the largest the first has been, which is what the file keeps. A crash
//! never makes the manifest count an entry that was not on the disk, since an entry is counted
//! only after the sync that made it durable. Entries removed on purpose (a replica refusing
//! them after all) are taken off both counts; damaged entries the store drops when it reads
//! them only off the first, so they stay visible as damage until fetched again. The file is written atomically (a new file, fsynced, renamed over the
//! old one, the directory fsynced): when a subwiki is joined, left or removed, when entries are
//! removed, at most every [`SAVE_EVERY`] while entries are written, and when the store closes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agora_crdt::SubwikiId;
use serde::{Deserialize, Serialize};

use super::{StoreError, SubwikiRecord};

/// How often the counts are written while entries are being written.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);

/// The format version of the file.
const VERSION: u32 = 1;

/// A subwiki holding fewer entries than it had made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// The subwiki.
    pub subwiki: SubwikiId,
    /// Whether it is joined (a joined subwiki fetches what it lost from peers).
    pub joined: bool,
    /// Entries it had.
    pub expected: u64,
    /// Entries it holds now.
    pub held: u64,
}

impl Damage {
    /// Entries missing.
    pub fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.held)
    }
}

/// What the manifest found when the store opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opened {
    /// Subwikis the database had forgotten, recorded again from the manifest.
    pub restored: Vec<SubwikiRecord>,
    /// The manifest file itself was unreadable: it was moved aside and is rebuilt from the
    /// database, which can then not be checked this time.
    pub unreadable: Option<String>,
}

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    version: u32,
    subwikis: Vec<Kept>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    id: String,
    joined: bool,
    entries: u64,
}

/// One subwiki's line in memory.
#[derive(Debug, Clone, Copy, Default)]
struct Line {
    joined: bool,
    /// Entries it is expected to hold: what the file keeps.
    expected: u64,
    /// Entries it holds durably now.
    durable: u64,
}

#[derive(Debug)]
struct State {
    lines: BTreeMap<SubwikiId, Line>,
    /// Counts changed since the last save.
    dirty: bool,
    saved_at: Instant,
}

/// The manifest of one store. See the module documentation.
#[derive(Debug)]
pub struct Manifest {
    path: PathBuf,
    state: Mutex<State>,
}

/// The manifest's path for a store in `dir`: `<dir>.manifest`, beside it, so that losing the
/// store's directory does not lose it.
pub fn path_for(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest");
    dir.with_file_name(name)
}

impl Manifest {
    /// Reads the manifest at `path` and compares it with the database: `records` are the
    /// subwikis the database records and `count` gives the entries it holds of one. Records
    /// the database lost are returned to be written again; counts start at the larger of the
    /// manifest's and the database's.
    pub fn open(
        path: PathBuf,
        records: &[SubwikiRecord],
        count: impl Fn(&SubwikiId) -> Result<u64, StoreError>,
    ) -> Result<(Self, Opened), StoreError> {
        let mut opened = Opened::default();
        let saved = match read(&path) {
            Ok(saved) => saved,
            Err(why) => {
                let aside = path.with_extension("manifest.unreadable");
                fs::rename(&path, &aside).map_err(|e| io_at(&path, e))?;
                opened.unreadable = Some(format!("{why} (kept as {})", aside.display()));
                Vec::new()
            }
        };
        let mut lines = BTreeMap::new();
        for (id, kept) in saved {
            let line = Line {
                joined: kept.joined,
                expected: kept.entries,
                durable: 0,
            };
            lines.insert(id, line);
        }
        for (id, line) in &lines {
            if !records.iter().any(|r| r.id == *id) {
                opened.restored.push(SubwikiRecord {
                    id: *id,
                    joined: line.joined,
                });
            }
        }
        for record in records {
            let line = lines.entry(record.id).or_default();
            line.joined = record.joined;
        }
        for (id, line) in lines.iter_mut() {
            line.durable = count(id)?;
            line.expected = line.expected.max(line.durable);
        }
        let manifest = Self {
            path,
            state: Mutex::new(State {
                lines,
                dirty: true,
                saved_at: Instant::now(),
            }),
        };
        manifest.save()?;
        Ok((manifest, opened))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts entries a synced write added (`per`: entries each subwiki gained); saves if the
    /// last save is [`SAVE_EVERY`] old. A failed save is only logged (see [`Manifest::saved`]).
    pub fn added(&self, per: impl IntoIterator<Item = (SubwikiId, u64)>) {
        let due = {
            let mut state = self.lock();
            for (subwiki, n) in per {
                let line = state.lines.entry(subwiki).or_default();
                line.durable = line.durable.saturating_add(n);
                if line.durable > line.expected {
                    line.expected = line.durable;
                    state.dirty = true;
                }
            }
            state.dirty && state.saved_at.elapsed() >= SAVE_EVERY
        };
        if due {
            self.saved();
        }
    }

    /// Takes off entries removed on purpose, and saves.
    pub fn removed(&self, per: impl IntoIterator<Item = (SubwikiId, u64)>) {
        {
            let mut state = self.lock();
            for (subwiki, n) in per {
                if let Some(line) = state.lines.get_mut(&subwiki) {
                    line.durable = line.durable.saturating_sub(n);
                    line.expected = line.expected.saturating_sub(n);
                    state.dirty = true;
                }
            }
        }
        self.saved();
    }

    /// Takes off damaged entries the store dropped: they stay expected, to be fetched again.
    pub fn lost(&self, per: impl IntoIterator<Item = (SubwikiId, u64)>) {
        let mut state = self.lock();
        for (subwiki, n) in per {
            if let Some(line) = state.lines.get_mut(&subwiki) {
                line.durable = line.durable.saturating_sub(n);
            }
        }
    }

    /// Sets what each subwiki holds durably after the store counted its entries again (`per`:
    /// the subwikis holding any; the others hold none), and saves.
    pub fn recounted(&self, per: &BTreeMap<SubwikiId, u64>) {
        {
            let mut state = self.lock();
            for (subwiki, line) in state.lines.iter_mut() {
                line.durable = per.get(subwiki).copied().unwrap_or(0);
            }
            for (subwiki, n) in per {
                let line = state.lines.entry(*subwiki).or_default();
                line.durable = *n;
                line.expected = line.expected.max(*n);
            }
            state.dirty = true;
        }
        self.saved();
    }

    /// Records a subwiki joined or left, and saves.
    pub fn record(&self, record: SubwikiRecord) {
        {
            let mut state = self.lock();
            state.lines.entry(record.id).or_default().joined = record.joined;
            state.dirty = true;
        }
        self.saved();
    }

    /// Forgets a subwiki the store removed for good, and saves; an error if the file cannot be
    /// written (the manifest then keeps it).
    pub fn forget(&self, subwiki: &SubwikiId) -> Result<(), StoreError> {
        let line = {
            let mut state = self.lock();
            let Some(line) = state.lines.remove(subwiki) else {
                return Ok(());
            };
            state.dirty = true;
            line
        };
        self.save().inspect_err(|_| {
            self.lock().lines.entry(*subwiki).or_insert(line);
        })
    }

    /// Saves, and only logs a failure: the write that changed the counts is durable and
    /// acknowledged whatever happens to the manifest (a full disk), whose counts stay in memory
    /// to be written by the next save. Until then a loss of the database goes unnoticed.
    fn saved(&self) {
        if let Err(e) = self.save() {
            tracing::warn!(path = %self.path.display(), "cannot write the store's manifest: {e}");
        }
    }

    /// The subwikis holding fewer entries than they had; `count` gives the entries held.
    pub fn damage(
        &self,
        count: impl Fn(&SubwikiId) -> Result<u64, StoreError>,
    ) -> Result<Vec<Damage>, StoreError> {
        let lines: Vec<(SubwikiId, Line)> =
            self.lock().lines.iter().map(|(s, l)| (*s, *l)).collect();
        let mut damage = Vec::new();
        for (subwiki, line) in lines {
            let held = count(&subwiki)?;
            if held < line.expected {
                damage.push(Damage {
                    subwiki,
                    joined: line.joined,
                    expected: line.expected,
                    held,
                });
            }
        }
        Ok(damage)
    }

    /// Writes the file if anything changed since the last write.
    pub fn save(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.dirty {
            return Ok(());
        }
        let saved = Saved {
            version: VERSION,
            subwikis: state
                .lines
                .iter()
                .map(|(id, line)| Kept {
                    id: id.to_string(),
                    joined: line.joined,
                    entries: line.expected,
                })
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&saved)
            .map_err(|e| StoreError::Io(format!("encoding the manifest: {e}")))?;
        write_atomically(&self.path, &text)?;
        state.dirty = false;
        state.saved_at = Instant::now();
        Ok(())
    }
}

impl Drop for Manifest {
    fn drop(&mut self) {
        self.saved();
    }
}

fn io_at(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

/// The subwikis of the file at `path`: none if there is no file; `Err` says why it is
/// unreadable.
fn read(path: &Path) -> Result<Vec<(SubwikiId, Kept)>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if saved.version != VERSION {
        return Err(format!("unknown manifest version {}", saved.version));
    }
    saved
        .subwikis
        .into_iter()
        .map(|kept| {
            let id = kept.id.parse::<SubwikiId>().map_err(|e| e.to_string())?;
            Ok((id, kept))
        })
        .collect()
}

/// Replaces the file at `path` with `bytes`, durably: a reader sees the old or the new file,
/// never a part of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let fresh = path.with_extension("manifest.new");
    let mut file = fs::File::create(&fresh).map_err(|e| io_at(&fresh, e))?;
    file.write_all(bytes).map_err(|e| io_at(&fresh, e))?;
    file.sync_all().map_err(|e| io_at(&fresh, e))?;
    drop(file);
    fs::rename(&fresh, path).map_err(|e| io_at(path, e))?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_at(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn subwiki(n: u8) -> SubwikiId {
        SubwikiId::from_bytes([n; 32])
    }

    #[test]
    fn a_store_that_lost_entries_and_records_is_found_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("store"));
        assert_eq!(path, dir.path().join("store.manifest"));
        let records = [
            SubwikiRecord {
                id: subwiki(1),
                joined: true,
            },
            SubwikiRecord {
                id: subwiki(2),
                joined: false,
            },
        ];
        let (manifest, opened) = Manifest::open(path.clone(), &records, |_| Ok(3)).unwrap();
        assert_eq!(opened, Opened::default());
        manifest.added([(subwiki(1), 40)]);
        manifest.removed([(subwiki(2), 1)]);
        // A damaged entry dropped is still expected.
        manifest.lost([(subwiki(1), 1)]);
        drop(manifest);

        // The database lost subwiki 2's record and most of subwiki 1's entries.
        let (manifest, opened) = Manifest::open(path.clone(), &records[..1], |s| {
            Ok(if *s == subwiki(1) { 11 } else { 0 })
        })
        .unwrap();
        assert_eq!(opened.restored, vec![records[1]]);
        let damage = manifest
            .damage(|s| Ok(if *s == subwiki(1) { 11 } else { 0 }))
            .unwrap();
        assert_eq!(
            damage,
            vec![
                Damage {
                    subwiki: subwiki(1),
                    joined: true,
                    expected: 43,
                    held: 11
                },
                Damage {
                    subwiki: subwiki(2),
                    joined: false,
                    expected: 2,
                    held: 0
                },
            ]
        );
        // Entries a salvage or peers send again count towards what was expected, not on top.
        manifest.added([(subwiki(1), 32)]);
        assert_eq!(manifest.damage(|_| Ok(43)).unwrap(), Vec::new());
        manifest.added([(subwiki(1), 1)]);
        drop(manifest);
        let (manifest, _) = Manifest::open(path, &records, |_| Ok(44)).unwrap();
        assert_eq!(
            manifest.damage(|_| Ok(43)).unwrap().len(),
            2,
            "44 expected now"
        );
    }

    #[test]
    fn an_unreadable_manifest_is_moved_aside_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.manifest");
        fs::write(&path, b"{ not json").unwrap();
        let (_manifest, opened) = Manifest::open(path.clone(), &[], |_| Ok(0)).unwrap();
        assert!(opened.unreadable.is_some());
        assert!(dir.path().join("store.manifest.unreadable").exists());
        assert!(read(&path).unwrap().is_empty());
    }
}
