//! The in-memory store, for tests and simulations. Same behaviour as the sled store, nothing
//! survives the process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use agora_crdt::{BlobHash, DocId, Entry, EntryId, Held, Purged, SubwikiId, Timestamp, Tombstone};

use super::{
    FeedKey, Loaded, MAX_BLOB_BYTES, Put, Rebuilt, Served, Store, StoreError, SubwikiRecord,
    check_stored, check_stored_all, decode_tombstone, doc_key, feed_key_from_index, feed_upper,
    index_keys, merge_feed, parse_index_key, parse_purged_key, purged_key, recheck_stored,
    subwiki_lower, tombstone_feed_key,
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
    /// `subwiki || doc` → tombstone record, as the sled store keeps them.
    tombstones: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `subwiki || doc || entry` of every purged id.
    purged: BTreeSet<Vec<u8>>,
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

    /// Removes a held entry of `subwiki` with its index keys, knowing them from the entry
    /// (or, for a damaged one, by looking for them).
    fn remove_entry_of(&mut self, subwiki: &SubwikiId, id: &EntryId) {
        let Some(bytes) = self.entries.get(id) else {
            return;
        };
        match check_stored(id, bytes) {
            Some(entry) if entry.subwiki() != *subwiki => {
                tracing::warn!(%id, %subwiki, "not purged: the entry is of another subwiki");
            }
            Some(entry) => {
                let keys = index_keys(&entry);
                self.entries.remove(id);
                if self.recon.remove(&keys.recon[..]) {
                    self.uncount(subwiki);
                }
                if let Some(feed) = keys.feed {
                    self.feed.remove(&feed[..]);
                }
            }
            None => self.drop_entry(id),
        }
    }

    /// Every record of `map` whose key starts with `prefix`.
    fn under<'a, V>(
        map: &'a BTreeMap<Vec<u8>, V>,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a V)> + 'a {
        map.range(prefix.to_vec()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    fn purged_under(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.purged
            .range(prefix.to_vec()..)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect()
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
        let purged: BTreeSet<EntryId> = inner
            .purged
            .iter()
            .filter_map(|k| parse_purged_key(k))
            .collect();
        let ids: Vec<EntryId> = inner.entries.keys().copied().collect();
        for id in ids {
            if purged.contains(&id) {
                inner.entries.remove(&id);
                rebuilt.purged.push(id);
                continue;
            }
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
        let kept: Vec<Vec<u8>> = inner
            .tombstones
            .iter()
            .filter_map(|(k, v)| {
                let subwiki = SubwikiId::from_bytes(k.get(..32)?.try_into().ok()?);
                tombstone_feed_key(&subwiki, &decode_tombstone(k, v)?).map(|f| f.to_vec())
            })
            .collect();
        for key in kept {
            if inner.feed.insert(key) {
                rebuilt.posts += 1;
            }
        }
        Ok(rebuilt)
    }

    fn purge(&self, subwiki: &SubwikiId, purged: &[Purged]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for p in purged {
            let doc = p.tombstone.meta.id;
            for id in &p.ids {
                inner.remove_entry_of(subwiki, id);
                inner.purged.insert(purged_key(subwiki, &doc, id).to_vec());
            }
            inner.snapshots.remove(&doc);
            inner.views.remove(&doc);
            inner
                .tombstones
                .insert(doc_key(subwiki, &doc).to_vec(), p.tombstone.encode());
            if let Some(feed) = tombstone_feed_key(subwiki, &p.tombstone) {
                inner.feed.insert(feed.to_vec());
            }
        }
        Ok(())
    }

    fn unpurge(&self, subwiki: &SubwikiId, docs: &[DocId]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for doc in docs {
            let key = doc_key(subwiki, doc);
            if let Some(record) = inner.tombstones.remove(&key[..])
                && let Some(tombstone) = decode_tombstone(&key, &record)
                && let Some(feed) = tombstone_feed_key(subwiki, &tombstone)
                && !inner.entries.contains_key(&EntryId::from(*doc))
            {
                inner.feed.remove(&feed[..]);
            }
            for k in inner.purged_under(&key) {
                inner.purged.remove(&k);
            }
        }
        Ok(())
    }

    fn tombstones(&self, subwiki: &SubwikiId) -> Result<Vec<Tombstone>, StoreError> {
        let inner = self.lock();
        Ok(Inner::under(&inner.tombstones, subwiki.as_bytes())
            .filter_map(|(k, v)| decode_tombstone(k, v))
            .collect())
    }

    fn purged_ids(&self, subwiki: &SubwikiId) -> Result<Vec<EntryId>, StoreError> {
        let inner = self.lock();
        let ids: BTreeSet<EntryId> = inner
            .purged_under(subwiki.as_bytes())
            .iter()
            .filter_map(|k| parse_purged_key(k))
            .collect();
        Ok(ids.into_iter().collect())
    }

    fn remove_subwiki(&self, subwiki: &SubwikiId) -> Result<(), StoreError> {
        let items = self.items(subwiki)?;
        let mut inner = self.lock();
        let prefix = subwiki.as_bytes();
        let mut docs: BTreeSet<DocId> = items.iter().map(|(_, id)| DocId::from(*id)).collect();
        docs.extend(
            Inner::under(&inner.tombstones, prefix)
                .filter_map(|(k, _)| Some(DocId::from_bytes(k.get(32..)?.try_into().ok()?))),
        );
        let purged = inner.purged_under(prefix);
        docs.extend(
            purged
                .iter()
                .filter_map(|k| parse_purged_key(k).map(DocId::from)),
        );
        for (_, id) in &items {
            inner.entries.remove(id);
        }
        inner.recon.retain(|k| !k.starts_with(prefix));
        inner.feed.retain(|k| !k.starts_with(prefix));
        inner.counts.remove(subwiki);
        inner.tombstones.retain(|k, _| !k.starts_with(prefix));
        for k in purged {
            inner.purged.remove(&k);
        }
        for doc in &docs {
            inner.snapshots.remove(doc);
            inner.views.remove(doc);
        }
        inner.subwikis.remove(subwiki);
        Ok(())
    }
}
