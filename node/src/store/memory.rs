//! The in-memory store, for tests and simulations. Same behaviour as the sled store, nothing
//! survives the process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use agora_crdt::{BlobHash, DocId, Entry, EntryId, Held, SubwikiId, Timestamp};

use super::{
    FeedKey, Loaded, MAX_BLOB_BYTES, Put, Rebuilt, Served, Store, StoreError, SubwikiRecord,
    check_stored, check_stored_all, feed_key_from_index, feed_upper, index_keys, merge_feed,
    parse_index_key, recheck_stored, subwiki_lower,
};

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<EntryId, Vec<u8>>,
    recon: BTreeSet<Vec<u8>>,
    /// Reconciliation keys per subwiki (`entries.len()` is already O(1)).
    counts: BTreeMap<SubwikiId, usize>,
    feed: BTreeSet<Vec<u8>>,
    subwikis: BTreeMap<SubwikiId, bool>,
    snapshots: BTreeMap<DocId, Vec<u8>>,
    views: BTreeMap<DocId, Vec<u8>>,
    blobs: BTreeMap<BlobHash, Vec<u8>>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-written in a way that
        // matters more than losing them, so a poisoned lock is taken over.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces an entry's stored bytes, as a damaged disk would.
    #[cfg(test)]
    pub(crate) fn damage(&self, id: &EntryId, bytes: Vec<u8>) {
        self.lock().entries.insert(*id, bytes);
    }
}

impl Inner {
    fn drop_entry(&mut self, id: &EntryId) {
        self.entries.remove(id);
        let matches = |k: &Vec<u8>| parse_index_key(k).is_none_or(|(_, _, k)| k != *id.as_bytes());
        let mut dropped = Vec::new();
        self.recon.retain(|k| {
            let keep = matches(k);
            if !keep && let Some((subwiki, _, _)) = parse_index_key(k) {
                dropped.push(subwiki);
            }
            keep
        });
        for subwiki in dropped {
            self.uncount(&subwiki);
        }
        self.feed.retain(matches);
    }

    fn uncount(&mut self, subwiki: &SubwikiId) {
        if let Some(n) = self.counts.get_mut(subwiki) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(subwiki);
            }
        }
    }

    /// Inserts a reconciliation key, counting it if it was new.
    fn insert_recon(&mut self, subwiki: SubwikiId, key: Vec<u8>) {
        if self.recon.insert(key) {
            *self.counts.entry(subwiki).or_default() += 1;
        }
    }
}

impl Store for MemoryStore {
    fn put_entries(&self, entries: &[Entry]) -> Result<Put, StoreError> {
        let mut inner = self.lock();
        let mut put = Put::default();
        for entry in entries {
            let keys = index_keys(entry);
            if inner
                .entries
                .insert(entry.id(), entry.bytes().to_vec())
                .is_some()
            {
                put.existing += 1;
            } else {
                put.new.push(entry.id());
            }
            inner.insert_recon(entry.subwiki(), keys.recon.to_vec());
            if let Some(feed) = keys.feed {
                inner.feed.insert(feed.to_vec());
            }
        }
        Ok(put)
    }

    fn remove_entries(&self, ids: &[EntryId]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for id in ids {
            inner.drop_entry(id);
        }
        Ok(())
    }

    fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        let mut inner = self.lock();
        let Some(bytes) = inner.entries.get(id) else {
            return Ok(None);
        };
        let entry = check_stored(id, bytes);
        if entry.is_none() {
            inner.drop_entry(id);
        }
        Ok(entry)
    }

    fn entry_bytes(&self, ids: &[EntryId]) -> Result<Vec<Option<Served>>, StoreError> {
        let mut inner = self.lock();
        let read = ids
            .iter()
            .map(|id| inner.entries.get(id).cloned())
            .collect();
        let (out, damaged) = recheck_stored(ids, read);
        for id in &damaged {
            inner.drop_entry(id);
        }
        Ok(out)
    }

    fn contains(&self, id: &EntryId) -> Result<bool, StoreError> {
        Ok(self.lock().entries.contains_key(id))
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.lock().entries.len())
    }

    fn count(&self, subwiki: &SubwikiId) -> Result<usize, StoreError> {
        Ok(self.lock().counts.get(subwiki).copied().unwrap_or(0))
    }

    fn items(&self, subwiki: &SubwikiId) -> Result<Vec<(Timestamp, EntryId)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .recon
            .range(subwiki_lower(subwiki).to_vec()..)
            .map_while(|k| parse_index_key(k).filter(|(s, _, _)| s == subwiki))
            .map(|(_, t, id)| (t, EntryId::from_bytes(id)))
            .collect())
    }

    fn index(&self, subwiki: &SubwikiId) -> Result<Option<Vec<Held>>, StoreError> {
        let items = self.items(subwiki)?;
        let inner = self.lock();
        Ok(Some(
            items
                .into_iter()
                .filter_map(|(_, id)| {
                    let bytes = inner.entries.get(&id)?;
                    check_stored(&id, bytes).map(|e| Held::of(&e))
                })
                .collect(),
        ))
    }

    fn load(&self, subwiki: &SubwikiId) -> Result<Loaded, StoreError> {
        let items = self.items(subwiki)?;
        let mut inner = self.lock();
        let read = items
            .into_iter()
            .map(|(_, id)| (id, inner.entries.get(&id).cloned()))
            .collect();
        let loaded = check_stored_all(read);
        for id in &loaded.corrupt {
            inner.drop_entry(id);
        }
        Ok(loaded)
    }

    fn feed(
        &self,
        subwikis: &[SubwikiId],
        before: Option<(Timestamp, DocId)>,
        limit: usize,
    ) -> Result<Vec<FeedKey>, StoreError> {
        let inner = self.lock();
        let sources = subwikis
            .iter()
            .map(|s| {
                let iter: Box<dyn Iterator<Item = FeedKey>> = Box::new(
                    inner
                        .feed
                        .range(subwiki_lower(s).to_vec()..feed_upper(s, before).to_vec())
                        .rev()
                        .filter_map(|k| feed_key_from_index(k)),
                );
                iter.peekable()
            })
            .collect();
        Ok(merge_feed(sources, limit))
    }

    fn set_subwiki(&self, record: SubwikiRecord) -> Result<(), StoreError> {
        self.lock().subwikis.insert(record.id, record.joined);
        Ok(())
    }

    fn subwikis(&self) -> Result<Vec<SubwikiRecord>, StoreError> {
        Ok(self
            .lock()
            .subwikis
            .iter()
            .map(|(id, joined)| SubwikiRecord {
                id: *id,
                joined: *joined,
            })
            .collect())
    }

    fn put_snapshots(&self, snapshots: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        self.lock().snapshots.extend(snapshots.iter().cloned());
        Ok(())
    }

    fn snapshot(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().snapshots.get(doc).cloned())
    }

    fn put_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (doc, bytes) in views {
            inner.views.insert(*doc, bytes.clone());
        }
        Ok(())
    }

    fn cache_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
        self.put_views(views)
    }

    fn remove_views(&self, docs: &[DocId]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for doc in docs {
            inner.views.remove(doc);
        }
        Ok(())
    }

    fn view(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().views.get(doc).cloned())
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobHash, StoreError> {
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(StoreError::BlobTooLarge {
                len: bytes.len(),
                max: MAX_BLOB_BYTES,
            });
        }
        let hash = BlobHash::of(bytes);
        self.lock().blobs.insert(hash, bytes.to_vec());
        Ok(hash)
    }

    fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .blobs
            .get(hash)
            .filter(|b| BlobHash::of(b) == *hash)
            .cloned())
    }

    fn remove_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.lock().blobs.remove(hash);
        Ok(())
    }

    fn rebuild_indexes(&self) -> Result<Rebuilt, StoreError> {
        let mut inner = self.lock();
        inner.recon.clear();
        inner.counts.clear();
        inner.feed.clear();
        inner.views.clear();
        inner.snapshots.clear();
        let mut rebuilt = Rebuilt::default();
        let ids: Vec<EntryId> = inner.entries.keys().copied().collect();
        for id in ids {
            match inner.entries.get(&id).and_then(|b| check_stored(&id, b)) {
                Some(entry) => {
                    let keys = index_keys(&entry);
                    inner.insert_recon(entry.subwiki(), keys.recon.to_vec());
                    if let Some(feed) = keys.feed {
                        inner.feed.insert(feed.to_vec());
                        rebuilt.posts += 1;
                    }
                    rebuilt.entries += 1;
                }
                None => {
                    inner.entries.remove(&id);
                    rebuilt.corrupt.push(id);
                }
            }
        }
        Ok(rebuilt)
    }
}
