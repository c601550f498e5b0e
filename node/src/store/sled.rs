//! The on-disk store, on sled 0.34.
//!
//! Trees: `entries` (id → entry bytes), `recon` and `feed` (index keys → nothing), `subwikis`
//! (id → joined flag), `snapshots` (document id → Automerge bytes), `views` (document id →
//! rendered view), `blobs` (hash → bytes).
//! An entry and its index keys are written in one multi-tree transaction, then the database is
//! flushed, so a write reported done survives a crash and never leaves an index key without
//! its entry.

use std::path::Path;

use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use ::sled::{Db, Transactional, Tree};
use agora_crdt::{BlobHash, DocId, Entry, EntryId, SubwikiId, Timestamp};

use super::{
    FeedKey, Loaded, MAX_BLOB_BYTES, Put, Rebuilt, Store, StoreError, SubwikiRecord, check_stored,
    check_stored_all, feed_key_from_index, feed_upper, index_keys, merge_feed, parse_index_key,
    subwiki_lower,
};

/// The sled store. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: Db,
    entries: Tree,
    recon: Tree,
    feed: Tree,
    subwikis: Tree,
    snapshots: Tree,
    views: Tree,
    blobs: Tree,
}

fn io(e: ::sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => io(e),
        TransactionError::Abort(()) => StoreError::Io("transaction aborted".into()),
    }
}

/// How long [`SledStore::open`] waits for a lock that this process may be releasing.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

impl SledStore {
    /// Opens (or creates) the store in `dir`. Reads no entry: the cost is sled's page table,
    /// which grows slowly with the store (measured: 1 ms at 1,000 entries, 8 ms at 100,000;
    /// `docs/performance.md`).
    ///
    /// A store held by another process is [`StoreError::Locked`]. A store that was just closed
    /// in this process can stay locked for a moment, until sled's background flusher has
    /// finished: the open is retried for up to [`LOCK_WAIT`] before giving up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let started = std::time::Instant::now();
        let db = loop {
            match ::sled::Config::new().path(dir).open() {
                Ok(db) => break db,
                Err(e) if e.to_string().contains("could not acquire lock") => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(StoreError::Locked(dir.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(io(e)),
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(io);
        Ok(Self {
            entries: tree("entries")?,
            recon: tree("recon")?,
            feed: tree("feed")?,
            subwikis: tree("subwikis")?,
            snapshots: tree("snapshots")?,
            views: tree("views")?,
            blobs: tree("blobs")?,
            db,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }

    /// Removes a damaged entry under `id` with whatever index keys can still be found.
    fn drop_corrupt(&self, id: &EntryId) -> Result<(), StoreError> {
        self.entries.remove(id.as_bytes()).map_err(io)?;
        for tree in [&self.recon, &self.feed] {
            for key in tree.iter().keys() {
                let key = key.map_err(io)?;
                if parse_index_key(&key).is_some_and(|(_, _, k)| k == *id.as_bytes()) {
                    tree.remove(key).map_err(io)?;
                }
            }
        }
        self.flush()
    }

    /// The raw database, for tests that damage records on purpose.
    #[cfg(test)]
    pub(crate) fn raw_entries(&self) -> &Tree {
        &self.entries
    }
}

impl Store for SledStore {
    fn put_entries(&self, entries: &[Entry]) -> Result<Put, StoreError> {
        let put = (&self.entries, &self.recon, &self.feed)
            .transaction(|(e, r, f)| {
                let mut put = Put::default();
                for entry in entries {
                    let id = entry.id();
                    let keys = index_keys(entry);
                    if e.insert(id.as_bytes(), entry.bytes())?.is_some() {
                        put.existing += 1;
                    } else {
                        put.new.push(id);
                    }
                    r.insert(&keys.recon[..], &[][..])?;
                    if let Some(feed) = keys.feed {
                        f.insert(&feed[..], &[][..])?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(put)
            })
            .map_err(tx_error)?;
        self.flush()?;
        Ok(put)
    }

    fn remove_entries(&self, ids: &[EntryId]) -> Result<(), StoreError> {
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
        (&self.entries, &self.recon, &self.feed)
            .transaction(|(e, r, f)| {
                for id in ids {
                    e.remove(id.as_bytes())?;
                }
                for entry in &held {
                    let keys = index_keys(entry);
                    r.remove(&keys.recon[..])?;
                    if let Some(feed) = keys.feed {
                        f.remove(&feed[..])?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        self.flush()
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

    fn contains(&self, id: &EntryId) -> Result<bool, StoreError> {
        self.entries.contains_key(id.as_bytes()).map_err(io)
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.entries.len())
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
        self.subwikis
            .insert(record.id.as_bytes(), &[u8::from(record.joined)])
            .map_err(io)?;
        self.flush()
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
        let mut batch = ::sled::Batch::default();
        for (doc, bytes) in snapshots {
            batch.insert(doc.as_bytes(), bytes.as_slice());
        }
        // Not flushed: a cache, made durable by the next flush of entries or views.
        self.snapshots.apply_batch(batch).map_err(io)
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
        let mut batch = ::sled::Batch::default();
        for (doc, bytes) in views {
            batch.insert(doc.as_bytes(), bytes.as_slice());
        }
        self.views.apply_batch(batch).map_err(io)?;
        self.flush()
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
        let hash = BlobHash::of(bytes);
        self.blobs.insert(hash.as_bytes(), bytes).map_err(io)?;
        self.flush()?;
        Ok(hash)
    }

    fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.blobs.get(hash.as_bytes()).map_err(io)? else {
            return Ok(None);
        };
        if BlobHash::of(&bytes) == *hash {
            Ok(Some(bytes.to_vec()))
        } else {
            self.blobs.remove(hash.as_bytes()).map_err(io)?;
            self.flush()?;
            Ok(None)
        }
    }

    fn rebuild_indexes(&self) -> Result<Rebuilt, StoreError> {
        self.recon.clear().map_err(io)?;
        self.feed.clear().map_err(io)?;
        self.views.clear().map_err(io)?;
        self.snapshots.clear().map_err(io)?;
        let mut rebuilt = Rebuilt::default();
        let mut batch = Vec::new();
        for kv in self.entries.iter() {
            let (k, v) = kv.map_err(io)?;
            let id = <[u8; 32]>::try_from(k.as_ref()).map(EntryId::from_bytes);
            match id.ok().and_then(|id| check_stored(&id, &v)) {
                Some(entry) => {
                    let keys = index_keys(&entry);
                    self.recon.insert(&keys.recon[..], &[][..]).map_err(io)?;
                    if let Some(feed) = keys.feed {
                        self.feed.insert(&feed[..], &[][..]).map_err(io)?;
                        rebuilt.posts += 1;
                    }
                    rebuilt.entries += 1;
                }
                None => batch.push(k),
            }
        }
        for key in batch {
            if let Ok(id) = <[u8; 32]>::try_from(key.as_ref()) {
                rebuilt.corrupt.push(EntryId::from_bytes(id));
            }
            self.entries.remove(key).map_err(io)?;
        }
        self.flush()?;
        Ok(rebuilt)
    }
}
