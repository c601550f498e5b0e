//! The inbox's files in the home:
//!
//! ```text
//! <home>/inbox/items.json        {"format": 1, "items": [..], "outcomes": {..}, "overrides": [..]}
//! <home>/inbox/seen/<subwiki>    the ids of the entries looked at, 32 bytes each, appended
//! <home>/inbox-read.txt          the keys of the items read, one a line
//! ```
//!
//! `inbox/` is derived: removed, it is derived again from the entries. The items file is
//! replaced whole (written beside, synced, renamed); a damaged or missing one makes every entry
//! be looked at again. A seen file is only appended to, after the items it stands for are
//! written; a torn last record is ignored. The read file is the owner's and is kept apart.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use agora_crdt::{AuthorId, EntryId, SubwikiId};
use serde::{Deserialize, Serialize};

use super::Item;

/// The items file's format.
const FORMAT: u32 = 1;
/// The read file, in the home.
pub(super) const READ_FILE: &str = "inbox-read.txt";

/// What the items file holds.
#[derive(Debug, Deserialize)]
pub(super) struct Saved {
    pub(super) items: Vec<Item>,
    pub(super) outcomes: BTreeMap<SubwikiId, Vec<Item>>,
    pub(super) overrides: BTreeSet<AuthorId>,
}

#[derive(Deserialize)]
struct SavedFile {
    format: u32,
    #[serde(flatten)]
    saved: Saved,
}

#[derive(Serialize)]
struct SavedOut<'a> {
    format: u32,
    items: &'a [Item],
    outcomes: &'a BTreeMap<SubwikiId, Vec<Item>>,
    overrides: &'a BTreeSet<AuthorId>,
}

/// Where the inbox's files are; nowhere for an inbox kept in memory.
#[derive(Debug)]
pub(super) struct Files {
    home: Option<PathBuf>,
}

impl Files {
    pub(super) fn new(home: Option<&Path>) -> Self {
        Self {
            home: home.map(Path::to_owned),
        }
    }

    pub(super) fn is_on_disk(&self) -> bool {
        self.home.is_some()
    }

    fn dir(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join("inbox"))
    }

    fn seen_path(&self, subwiki: SubwikiId) -> Option<PathBuf> {
        self.dir().map(|d| d.join("seen").join(subwiki.to_string()))
    }

    /// The items saved; `None` if there are none or they do not read.
    pub(super) fn load_items(&self) -> Option<Saved> {
        let path = self.dir()?.join("items.json");
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<SavedFile>(&bytes) {
            Ok(file) if file.format == FORMAT => Some(file.saved),
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "inbox unreadable; deriving it again");
                None
            }
        }
    }

    /// Replaces the items file, durably.
    pub(super) fn save_items(&self, saved: &Saved) -> std::io::Result<()> {
        let Some(dir) = self.dir() else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir)?;
        let file = SavedOut {
            format: FORMAT,
            items: &saved.items,
            outcomes: &saved.outcomes,
            overrides: &saved.overrides,
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        replace(&dir.join("items.json"), &bytes)
    }

    /// Forgets which entries were looked at: all of them are looked at again.
    pub(super) fn forget_seen(&self) {
        if let Some(dir) = self.dir() {
            let seen = dir.join("seen");
            if let Err(e) = std::fs::remove_dir_all(&seen)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %seen.display(), "cannot remove: {e}");
            }
        }
    }

    /// The entries of a subwiki looked at.
    pub(super) fn load_seen(&self, subwiki: SubwikiId) -> HashSet<EntryId> {
        let Some(path) = self.seen_path(subwiki) else {
            return HashSet::new();
        };
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .map(EntryId::from_bytes)
            .collect()
    }

    /// Records entries looked at. Not synced: a record lost only makes an entry be looked at
    /// again.
    pub(super) fn append_seen(&self, looked_at: &[(SubwikiId, EntryId)]) -> std::io::Result<()> {
        let mut by_subwiki: BTreeMap<SubwikiId, Vec<u8>> = BTreeMap::new();
        for (subwiki, id) in looked_at {
            by_subwiki
                .entry(*subwiki)
                .or_default()
                .extend_from_slice(id.as_bytes());
        }
        for (subwiki, bytes) in by_subwiki {
            let Some(path) = self.seen_path(subwiki) else {
                continue;
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // A torn record (a crash in the middle of a write) would shift every later one:
            // start again at a record boundary.
            let len = file.metadata()?.len();
            if len % 32 != 0 {
                file.set_len(len - len % 32)?;
            }
            file.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Rewrites a subwiki's record of entries looked at (dropping those no longer held).
    pub(super) fn rewrite_seen(
        &self,
        subwiki: SubwikiId,
        ids: &HashSet<EntryId>,
    ) -> std::io::Result<()> {
        let Some(path) = self.seen_path(subwiki) else {
            return Ok(());
        };
        let mut sorted: Vec<&EntryId> = ids.iter().collect();
        sorted.sort();
        let bytes: Vec<u8> = sorted
            .iter()
            .flat_map(|id| id.as_bytes().to_vec())
            .collect();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        replace(&path, &bytes)
    }

    /// The keys of the items read.
    pub(super) fn load_read(&self) -> BTreeSet<String> {
        let Some(home) = &self.home else {
            return BTreeSet::new();
        };
        std::fs::read_to_string(home.join(READ_FILE))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Replaces the read file, durably.
    pub(super) fn save_read(&self, read: &BTreeSet<String>) -> std::io::Result<()> {
        let Some(home) = &self.home else {
            return Ok(());
        };
        let mut text = String::new();
        for key in read {
            text.push_str(key);
            text.push('\n');
        }
        replace(&home.join(READ_FILE), text.as_bytes())
    }
}

/// Replaces `path` with `bytes`: written beside it, synced, renamed over it, the directory
/// synced.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    crate::home::sync_dir_of(path)
}
