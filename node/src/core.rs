//! The node's core: the part that does not touch the network. It owns the [`Store`], the
//! subwikis' [`Replica`]s (loaded on first use) and the author key, and it is the one path every
//! entry takes, local or remote: [`agora_crdt::validate`] (by the caller that decoded it), the
//! replica's contextual checks, then the store, which makes it durable before anything is
//! acknowledged, then the derived views (rendered posts, moderation summaries, document
//! snapshots) and a wake-up for watchers.
//!
//! Both the handle ([`crate::Node`]) and the network task ([`crate::net`]) drive the core; the
//! core knows neither.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use agora_crdt::{
    AuthorId, AuthorKey, DocId, DocKind, Entry, EntryId, LocalError, Overrides, Payload, Policy,
    PostView, Replica, SubwikiId, Timestamp,
};
use tokio::sync::watch;

use crate::error::NodeError;
use crate::home::Identity;
use crate::moderation::{OverridesFile, Summary, summary_key};
use crate::store::{Store, SubwikiRecord};
use crate::view;

/// A post in the feed, with the subwiki it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The subwiki.
    pub subwiki: SubwikiId,
    /// The post.
    pub post: PostView,
}

/// Replication state of one subwiki.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Reconciliations completed with peers.
    pub syncs: u64,
    /// When the last one completed.
    pub last_sync: Option<Timestamp>,
    /// Entries received from peers (by gossip or reconciliation).
    pub received: u64,
    /// Invalid entries peers sent, all refused.
    pub refused: u64,
    /// Bytes received by reconciliation.
    pub bytes_received: u64,
    /// Reconciliation round trips.
    pub round_trips: u64,
    /// Bytes of the entries received from peers, by gossip or reconciliation, duplicates
    /// included: with the held entries' bytes, what replication cost in payload.
    pub entry_bytes: u64,
    /// Entries received from peers that were already held (fetched twice, or by gossip and by
    /// reconciliation).
    pub duplicates: u64,
}

/// What happened to entries offered to the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// New entries, now durable.
    pub new: Vec<EntryId>,
    /// Entries already held.
    pub duplicates: usize,
    /// Entries refused, with the reason.
    pub refused: Vec<(EntryId, String)>,
}

/// The part of a node that does not touch the network: store, replicas, author key.
pub(crate) struct Core {
    store: Arc<dyn Store>,
    identity: Identity,
    /// The owner's personal moderation overrides, and where they are kept.
    overrides: Mutex<Overrides>,
    overrides_file: OverridesFile,
    replicas: Mutex<HashMap<SubwikiId, Replica>>,
    status: Mutex<HashMap<SubwikiId, SyncStatus>>,
    changes: watch::Sender<u64>,
}

/// The posts whose rendered view `entries` may have changed: posts created or changed, posts
/// commented on, and every post of an author whose profile changed.
fn affected_posts<'a>(
    replica: &Replica,
    entries: impl Iterator<Item = &'a Entry>,
) -> BTreeSet<DocId> {
    let mut posts = BTreeSet::new();
    for entry in entries {
        let doc = match entry.payload() {
            Payload::CreateDocument(c) => match c.kind {
                DocKind::Post => Some(DocId::from(entry.id())),
                DocKind::Comment => c.parent,
                DocKind::Profile => {
                    posts.extend(authored_posts(replica, entry.author()));
                    None
                }
                DocKind::Info => None,
            },
            Payload::Change(c) => match replica.doc_meta(&c.doc).map(|m| m.kind) {
                Some(DocKind::Post) => Some(c.doc),
                Some(DocKind::Profile) => {
                    posts.extend(authored_posts(replica, entry.author()));
                    None
                }
                _ => None,
            },
            _ => None,
        };
        posts.extend(doc);
    }
    posts
}

fn authored_posts(replica: &Replica, author: AuthorId) -> Vec<DocId> {
    replica
        .feed_keys()
        .filter(|(_, id)| replica.doc_meta(id).is_some_and(|m| m.creator == author))
        .map(|(_, id)| *id)
        .collect()
}

/// Renders the views of the posts `entries` affected, for the store.
fn render_views<'a>(
    replica: &Replica,
    subwiki: SubwikiId,
    entries: impl Iterator<Item = &'a Entry>,
) -> Vec<(DocId, Vec<u8>)> {
    affected_posts(replica, entries)
        .into_iter()
        .filter_map(|id| {
            let post = replica.post(&id)?;
            Some((id, view::encode(&FeedItem { subwiki, post })))
        })
        .collect()
}

/// The documents `entries` create or change.
fn touched_docs<'a>(entries: impl Iterator<Item = &'a Entry>) -> BTreeSet<DocId> {
    entries
        .filter_map(|entry| match entry.payload() {
            Payload::CreateDocument(_) => Some(DocId::from(entry.id())),
            Payload::Change(c) => Some(c.doc),
            _ => None,
        })
        .collect()
}

/// Compacted snapshots of the given documents, for the store.
fn save_documents(
    replica: &Replica,
    docs: impl IntoIterator<Item = DocId>,
) -> Vec<(DocId, Vec<u8>)> {
    docs.into_iter()
        .filter_map(|doc| Some((doc, replica.save_document(&doc)?)))
        .collect()
}

/// The current time as an entry timestamp.
pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Core {
    pub(crate) fn new(store: Arc<dyn Store>, identity: Identity, home: Option<&Path>) -> Self {
        let overrides_file = OverridesFile::new(home);
        Self {
            store,
            identity,
            overrides: Mutex::new(overrides_file.load()),
            overrides_file,
            replicas: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
            changes: watch::channel(0).0,
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn identity_keypair(&self) -> libp2p::identity::Keypair {
        self.identity.node.clone()
    }

    /// The owner's author key, which signs their entries.
    pub(crate) fn author_key(&self) -> &AuthorKey {
        &self.identity.author
    }

    /// A receiver that changes whenever [`Core::notify`] is called.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Replication state per subwiki.
    pub(crate) fn sync_status(&self) -> HashMap<SubwikiId, SyncStatus> {
        lock(&self.status).clone()
    }

    /// Drops a subwiki's replica from memory; it reloads from the store on next use.
    pub(crate) fn forget_replica(&self, subwiki: SubwikiId) {
        lock(&self.replicas).remove(&subwiki);
    }

    /// Whether a subwiki's replica is in memory.
    #[cfg(test)]
    pub(crate) fn is_loaded(&self, subwiki: &SubwikiId) -> bool {
        lock(&self.replicas).contains_key(subwiki)
    }

    /// Founds a subwiki, stores its genesis entry, joins it and keeps its replica.
    pub(crate) fn found(
        &self,
        name: &str,
        description: &str,
        policy: Policy,
    ) -> Result<Entry, NodeError> {
        let (replica, genesis) =
            Replica::found(&self.identity.author, now(), name, description, policy)?;
        let id = replica.id();
        self.store.put_entries(std::slice::from_ref(&genesis))?;
        self.refresh_moderation(id, &replica)?;
        lock(&self.replicas).insert(id, replica);
        self.store.set_subwiki(SubwikiRecord { id, joined: true })?;
        self.notify();
        Ok(genesis)
    }

    /// The authors whose votes and statements the owner does not count.
    pub(crate) fn overrides(&self) -> Overrides {
        lock(&self.overrides).clone()
    }

    /// Stops (`ignore`) or starts again counting an author's votes and statements in the
    /// owner's view; saves the overrides and refreshes every joined subwiki's moderation.
    /// Returns whether anything changed.
    pub(crate) fn set_override(&self, author: AuthorId, ignore: bool) -> Result<bool, NodeError> {
        let changed = {
            let mut overrides = lock(&self.overrides);
            let changed = if ignore {
                overrides.ignore(author)
            } else {
                overrides.restore(&author)
            };
            if changed {
                self.overrides_file
                    .save(&overrides)
                    .map_err(|e| NodeError::File {
                        path: PathBuf::from("overrides.txt"),
                        reason: e.to_string(),
                    })?;
            }
            changed
        };
        if changed {
            for subwiki in self.joined()? {
                if self.store.contains(&subwiki.into())? {
                    self.with_replica(subwiki, |r| self.refresh_moderation(subwiki, r))?;
                }
            }
            self.notify();
        }
        Ok(changed)
    }

    /// Bumped whenever entries are stored or peers come and go.
    pub(crate) fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Tells watchers that something changed (see [`crate::Node::changes`]).
    pub(crate) fn notify(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// The subwikis the owner is a member of.
    pub(crate) fn joined(&self) -> Result<Vec<SubwikiId>, NodeError> {
        Ok(self
            .store
            .subwikis()?
            .into_iter()
            .filter(|s| s.joined)
            .map(|s| s.id)
            .collect())
    }

    pub(crate) fn is_joined(&self, subwiki: &SubwikiId) -> bool {
        self.joined().is_ok_and(|j| j.contains(subwiki))
    }

    /// Runs `f` on the subwiki's replica, loading it from the store on first use.
    pub(crate) fn with_replica<T>(
        &self,
        subwiki: SubwikiId,
        f: impl FnOnce(&mut Replica) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let mut replicas = lock(&self.replicas);
        let replica = match replicas.entry(subwiki) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.load_replica(subwiki)?.0),
        };
        f(replica)
    }

    /// Loads a subwiki's replica from the store, its documents from their snapshots where
    /// possible; returns it with the number of documents that came from a snapshot.
    pub(crate) fn load_replica(&self, subwiki: SubwikiId) -> Result<(Replica, usize), NodeError> {
        let loaded = self.store.load(&subwiki)?;
        if !loaded.corrupt.is_empty() {
            tracing::warn!(%subwiki, corrupt = loaded.corrupt.len(), "damaged entries dropped; they will be fetched again");
        }
        let genesis_id: EntryId = subwiki.into();
        let genesis = loaded
            .entries
            .iter()
            .find(|e| e.id() == genesis_id)
            .cloned()
            .ok_or(NodeError::UnknownSubwiki(subwiki))?;
        let mut replica = Replica::new(genesis).map_err(LocalError::from)?;
        let store = &self.store;
        let report = replica.ingest_with_snapshots(loaded.entries, |doc| {
            store.snapshot(doc).unwrap_or_else(|e| {
                tracing::warn!(%doc, error = %e, "cannot read a snapshot; applying the changes");
                None
            })
        });
        if !report.rejected.is_empty() {
            let ids: Vec<EntryId> = report.rejected.iter().map(|(id, _)| *id).collect();
            self.store.remove_entries(&ids)?;
        }
        let docs = replica.doc_ids();
        tracing::debug!(%subwiki, docs = docs.len(), from_snapshots = report.from_snapshots, "subwiki loaded");
        if report.from_snapshots < docs.len() {
            // Some documents had no usable snapshot (a store written before snapshots, a
            // rebuild, a damaged one): save them all now so the next open is fast.
            self.store.put_snapshots(&save_documents(&replica, docs))?;
        }
        self.refresh_moderation(subwiki, &replica)?;
        Ok((replica, report.from_snapshots))
    }

    /// Makes a local entry durable after the replica took it; on a storage failure the replica
    /// is dropped from memory so that it reloads from what is really stored.
    fn persist(&self, subwiki: SubwikiId, entries: &[Entry]) -> Result<(), NodeError> {
        if entries.is_empty() {
            return Ok(());
        }
        match self.store.put_entries(entries) {
            // Watchers are told by the caller, once the views are written too.
            Ok(_) => Ok(()),
            Err(e) => {
                lock(&self.replicas).remove(&subwiki);
                Err(e.into())
            }
        }
    }

    /// Runs a local operation that makes one entry, stores it and returns it.
    pub(crate) fn local(
        &self,
        subwiki: SubwikiId,
        f: impl FnOnce(
            &mut Replica,
            &agora_crdt::AuthorKey,
            Timestamp,
        ) -> Result<Option<Entry>, LocalError>,
    ) -> Result<Option<Entry>, NodeError> {
        let (entry, views, snapshots) = self.with_replica(subwiki, |r| {
            let entry = f(r, &self.identity.author, now())?;
            let views = render_views(r, subwiki, entry.iter());
            let snapshots = save_documents(r, touched_docs(entry.iter()));
            Ok((entry, views, snapshots))
        })?;
        if let Some(entry) = &entry {
            self.persist(subwiki, std::slice::from_ref(entry))?;
            self.store.put_views(&views)?;
            self.store.put_snapshots(&snapshots)?;
            self.with_replica(subwiki, |r| {
                self.after_moderation_entries(subwiki, r, std::iter::once(entry))
            })?;
            self.notify();
        }
        Ok(entry)
    }

    /// Takes entries from a peer or a file: validates each, runs the replica's checks, stores
    /// the new ones durably.
    pub(crate) fn accept(
        &self,
        subwiki: SubwikiId,
        entries: Vec<Entry>,
    ) -> Result<Accepted, NodeError> {
        let mut accepted = Accepted::default();
        let genesis_id: EntryId = subwiki.into();
        let mut entries = entries;
        // The genesis entry founds the replica: store it first if this is how it arrives.
        if let Some(pos) = entries.iter().position(|e| e.id() == genesis_id) {
            let genesis = entries.swap_remove(pos);
            if !self.store.contains(&genesis_id)? {
                if Replica::new(genesis.clone()).is_err() {
                    accepted
                        .refused
                        .push((genesis_id, "not a genesis entry".into()));
                } else {
                    self.store.put_entries(std::slice::from_ref(&genesis))?;
                    accepted.new.push(genesis_id);
                }
            } else {
                accepted.duplicates += 1;
            }
        }
        if entries.is_empty() {
            if !accepted.new.is_empty() {
                self.notify();
            }
            return Ok(accepted);
        }
        let (report, fresh, views, snapshots) = self.with_replica(subwiki, |replica| {
            let report = replica.ingest(entries.iter().cloned());
            let fresh: Vec<Entry> = entries
                .iter()
                .filter(|e| report.accepted.contains(&e.id()))
                .cloned()
                .collect();
            let views = render_views(replica, subwiki, fresh.iter());
            let snapshots = save_documents(replica, touched_docs(fresh.iter()));
            Ok((report, fresh, views, snapshots))
        })?;
        self.persist(subwiki, &fresh)?;
        self.store.put_views(&views)?;
        self.store.put_snapshots(&snapshots)?;
        self.with_replica(subwiki, |r| {
            self.after_moderation_entries(subwiki, r, fresh.iter())
        })?;
        if !fresh.is_empty() {
            // Only now: a reader woken by this sees the new views.
            self.notify();
        }
        // Entries that waited for their document and turned out to break its rules.
        let late: Vec<EntryId> = report.rejected.iter().map(|(id, _)| *id).collect();
        if !late.is_empty() {
            self.store.remove_entries(&late)?;
        }
        accepted.new.extend(report.accepted);
        accepted.duplicates += report.duplicates;
        accepted.refused.extend(
            report
                .rejected
                .into_iter()
                .map(|(id, e)| (id, e.to_string())),
        );
        Ok(accepted)
    }

    /// Recomputes and stores the subwiki's moderation summary (after votes or role statements
    /// arrived, or the overrides changed) from its replica.
    pub(crate) fn refresh_moderation(
        &self,
        subwiki: SubwikiId,
        replica: &Replica,
    ) -> Result<Summary, NodeError> {
        let summary = Summary::of(&replica.moderation(&lock(&self.overrides)));
        self.store
            .put_views(&[(summary_key(&subwiki), summary.encode())])?;
        Ok(summary)
    }

    /// The subwiki's moderation summary: the stored one, or computed from the replica (and
    /// stored) if there is none or it is damaged.
    pub(crate) fn moderation_summary(&self, subwiki: SubwikiId) -> Result<Summary, NodeError> {
        if let Some(summary) = self
            .store
            .view(&summary_key(&subwiki))?
            .as_deref()
            .and_then(Summary::decode)
        {
            return Ok(summary);
        }
        self.with_replica(subwiki, |r| self.refresh_moderation(subwiki, r))
    }

    /// After entries were added to a replica: if any is a vote or a role statement, the
    /// moderation summary is recomputed; a role statement in a `trusted` subwiki can change
    /// which edits are in the documents, so every post view is rendered again.
    fn after_moderation_entries<'a>(
        &self,
        subwiki: SubwikiId,
        replica: &Replica,
        entries: impl Iterator<Item = &'a Entry> + Clone,
    ) -> Result<(), NodeError> {
        let votes_or_roles = entries
            .clone()
            .any(|e| matches!(e.payload(), Payload::Vote(_) | Payload::Role(_)));
        if !votes_or_roles {
            return Ok(());
        }
        self.refresh_moderation(subwiki, replica)?;
        let roles = entries
            .into_iter()
            .any(|e| matches!(e.payload(), Payload::Role(_)));
        if roles && replica.genesis().policy.edit == agora_crdt::EditPolicy::Trusted {
            let views: Vec<(DocId, Vec<u8>)> = replica
                .feed_keys()
                .filter_map(|(_, id)| {
                    let post = replica.post(id)?;
                    Some((*id, view::encode(&FeedItem { subwiki, post })))
                })
                .collect();
            self.store.put_views(&views)?;
        }
        Ok(())
    }

    pub(crate) fn update_status(&self, subwiki: SubwikiId, f: impl FnOnce(&mut SyncStatus)) {
        f(lock(&self.status).entry(subwiki).or_default());
    }

    /// The subwiki of a document, from its create entry.
    pub(crate) fn subwiki_of(&self, doc: &DocId) -> Result<SubwikiId, NodeError> {
        match self.store.entry(&(*doc).into())? {
            Some(e) if matches!(e.payload(), Payload::CreateDocument(_)) => Ok(e.subwiki()),
            _ => Err(NodeError::UnknownDocument(*doc)),
        }
    }
}
