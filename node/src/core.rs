//! The node's core: the part that does not touch the network. It owns the [`Store`], the
//! subwikis' [`Replica`]s (loaded on first use) and the author key, and it is the one path every
//! entry takes, local or remote: [`agora_crdt::validate`] (by the caller that decoded it), the
//! replica's contextual checks, then the store, which makes it durable before anything is
//! acknowledged, then the derived views (rendered posts, moderation summaries, document
//! snapshots) and a wake-up for watchers.
//!
//! Both the handle ([`crate::Node`]) and the network task ([`crate::net`]) drive the core; the
//! core knows neither.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use agora_crdt::Source;
use std::time::{SystemTime, UNIX_EPOCH};

use agora_crdt::{
    AuthorId, AuthorKey, DocId, DocKind, Entry, EntryId, IngestError, IngestReport, LocalError,
    Overrides, Payload, Policy, PostView, Purged, Replica, SubwikiId, Timestamp,
};
use tokio::sync::{broadcast, watch};

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
    /// The catch-up in progress, if any.
    pub catch_up: Option<CatchUp>,
}

/// Progress of a subwiki's catch-up with its peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatchUp {
    /// Peers it is catching up from (sessions running, or their entries being stored).
    pub peers: u32,
    /// True while reconciliation goes on: more entries to fetch may be found.
    pub reconciling: bool,
    /// Entries fetched so far in this catch-up.
    pub fetched: u64,
    /// Entries found missing and not fetched yet.
    pub remaining: u64,
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
    /// One slot per subwiki, each with its own lock, so that loading or writing one subwiki
    /// never holds up another.
    replicas: Mutex<HashMap<SubwikiId, Slot>>,
    status: Mutex<HashMap<SubwikiId, SyncStatus>>,
    changes: watch::Sender<u64>,
    /// Entries this node made on its own (rescues of the owner's work, see
    /// [`Replica::rescue`]), stored, for the network task to gossip.
    outbox: Mutex<Vec<(SubwikiId, Entry)>>,
    /// Per subwiki, bumped whenever its set of stored entries changes: what a kept
    /// reconciliation snapshot of it is checked against.
    generations: Mutex<HashMap<SubwikiId, u64>>,
    /// Entries just made durable, for the indexes derived from them ([`Stored`]).
    stored: broadcast::Sender<Stored>,
}

/// Entries just made durable, with the posts whose view they change: what the indexes
/// derived from entries (search, the inbox) follow. Sent after every write of entries, local
/// or from peers, and never waited on: a receiver that falls behind more than
/// [`STORED_BACKLOG`] writes gets [`broadcast::error::RecvError::Lagged`] and must read again
/// from the store what it derives.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Their subwiki.
    pub subwiki: SubwikiId,
    /// The entries.
    pub entries: Arc<[Entry]>,
    /// The posts whose view they may change (new, edited, commented, voted on).
    pub posts: Arc<[DocId]>,
    /// Whether they may change the subwiki's moderation (roles, votes that count): any post's
    /// status may then have changed.
    pub moderation: bool,
    /// Entries removed from the store by this write (a retraction purged them, with the
    /// posts in `posts`; or the whole subwiki was deleted, and `posts` is empty).
    pub removed: usize,
}

/// How many writes a receiver of [`Stored`] may fall behind before it lags.
pub const STORED_BACKLOG: usize = 1024;

/// A subwiki's replica, loaded on first use.
type Slot = Arc<Mutex<Option<Replica>>>;

/// How much of its documents a replica keeps built, in estimated bytes.
const CACHE_BYTES_PER_SUBWIKI: usize = agora_crdt::DEFAULT_CACHE_BYTES / 2;

/// What a replica reads from the store: the entries it released once they were stored, and
/// documents' snapshots.
struct StoreSource(Arc<dyn Store>);

impl Source for StoreSource {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry> {
        ids.iter()
            .filter_map(|id| match self.0.entry(id) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "cannot read an entry of a document");
                    None
                }
            })
            .collect()
    }

    fn snapshot(&self, doc: &DocId) -> Option<Vec<u8>> {
        self.0.snapshot(doc).unwrap_or_else(|e| {
            tracing::warn!(%doc, error = %e, "cannot read a snapshot; applying the changes");
            None
        })
    }

    fn save_snapshot(&self, doc: &DocId, bytes: Vec<u8>) {
        if let Err(e) = self.0.put_snapshots(&[(*doc, bytes)]) {
            tracing::warn!(%doc, error = %e, "cannot save a snapshot");
        }
    }
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

/// Renders the views of these posts, for the store.
fn render_views(
    replica: &Replica,
    subwiki: SubwikiId,
    posts: impl IntoIterator<Item = DocId>,
) -> Vec<(DocId, Vec<u8>)> {
    posts
        .into_iter()
        .filter_map(|id| {
            let post = replica.post(&id)?;
            Some((id, view::encode(&FeedItem { subwiki, post })))
        })
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
            outbox: Mutex::new(Vec::new()),
            generations: Mutex::new(HashMap::new()),
            stored: broadcast::channel(STORED_BACKLOG).0,
        }
    }

    /// A receiver of every write of entries from now on (see [`Stored`]).
    pub(crate) fn subscribe_stored(&self) -> broadcast::Receiver<Stored> {
        self.stored.subscribe()
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
        let slot = lock(&self.replicas).remove(&subwiki);
        if let Some(slot) = slot {
            *lock(&slot) = None;
        }
    }

    /// Whether a subwiki's replica is in memory.
    #[cfg(test)]
    pub(crate) fn is_loaded(&self, subwiki: &SubwikiId) -> bool {
        let slot = lock(&self.replicas).get(subwiki).cloned();
        slot.is_some_and(|s| lock(&s).is_some())
    }

    fn slot(&self, subwiki: SubwikiId) -> Slot {
        lock(&self.replicas).entry(subwiki).or_default().clone()
    }

    /// Runs `f` holding the subwiki's lock, without loading its replica: no entry of the
    /// subwiki is written meanwhile, and every write before has been broadcast ([`Stored`]).
    /// The search index checks its count of a subwiki's entries this way.
    pub(crate) fn holding<T>(&self, subwiki: SubwikiId, f: impl FnOnce() -> T) -> T {
        let slot = self.slot(subwiki);
        let _guard = lock(&slot);
        f()
    }

    /// Founds a subwiki, stores its genesis entry, joins it and keeps its replica.
    pub(crate) fn found(
        &self,
        name: &str,
        description: &str,
        policy: Policy,
    ) -> Result<Entry, NodeError> {
        let (_, genesis) = Replica::found(&self.identity.author, now(), name, description, policy)?;
        let replica = self.replica_of(genesis.clone())?;
        let id = replica.id();
        self.store.put_entries(std::slice::from_ref(&genesis))?;
        self.wrote(id);
        self.refresh_moderation(id, &replica)?;
        *lock(&self.slot(id)) = Some(replica);
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
            let ignored = self.overrides().ignored;
            for subwiki in self.joined()? {
                if self.store.contains(&subwiki.into())? {
                    self.with_replica(subwiki, |r| {
                        // Redactions by an author now ignored are undone (their documents may
                        // be fetched again), and those of an author counted again take effect.
                        let report = r.set_ignored(ignored.clone());
                        self.apply_retractions(subwiki, r, &report)?;
                        self.refresh_moderation(subwiki, r)
                    })?;
                }
            }
            self.notify();
        }
        Ok(changed)
    }

    /// Bumped whenever the subwiki's set of stored entries changes (and only then: writes to
    /// other subwikis and peers coming and going leave it alone).
    pub(crate) fn generation(&self, subwiki: &SubwikiId) -> u64 {
        lock(&self.generations).get(subwiki).copied().unwrap_or(0)
    }

    /// Records that the subwiki's set of stored entries changed (or may have).
    pub(crate) fn wrote(&self, subwiki: SubwikiId) {
        *lock(&self.generations).entry(subwiki).or_default() += 1;
    }

    /// Entries this node made on its own and stored, to gossip (emptied).
    pub(crate) fn take_outbox(&self) -> Vec<(SubwikiId, Entry)> {
        std::mem::take(&mut *lock(&self.outbox))
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

    /// Runs `f` on the subwiki's replica, loading it from the store on first use. Holds the
    /// subwiki's lock (only this subwiki's) while `f` runs. If `f` fails on a storage error,
    /// the replica is dropped from memory, to be loaded again from what is really stored.
    pub(crate) fn with_replica<T>(
        &self,
        subwiki: SubwikiId,
        f: impl FnOnce(&mut Replica) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let slot = self.slot(subwiki);
        let mut guard = lock(&slot);
        if guard.is_none() {
            *guard = Some(self.load_replica(subwiki)?);
        }
        let Some(replica) = guard.as_mut() else {
            return Err(NodeError::UnknownSubwiki(subwiki));
        };
        let result = f(replica);
        if matches!(result, Err(NodeError::Store(_))) {
            *guard = None;
        }
        result
    }

    /// An empty replica of the subwiki `genesis` founds, reading from the store what it
    /// releases.
    fn replica_of(&self, genesis: Entry) -> Result<Replica, NodeError> {
        let source: Arc<dyn Source> = Arc::new(StoreSource(self.store.clone()));
        let mut replica = Replica::with_source(genesis, source).map_err(LocalError::from)?;
        replica.set_cache_budget(CACHE_BYTES_PER_SUBWIKI);
        Ok(replica)
    }

    /// Loads a subwiki's replica from the store: its index of entries, not its documents,
    /// which it builds when they are read (from their snapshots where there are some). The
    /// index is restored from the records the store keeps beside its reconciliation index;
    /// only votes and role statements are read as entries. A store without records (written
    /// before they were kept) is loaded by reading every entry.
    pub(crate) fn load_replica(&self, subwiki: SubwikiId) -> Result<Replica, NodeError> {
        let genesis_id: EntryId = subwiki.into();
        let genesis = self
            .store
            .entry(&genesis_id)?
            .ok_or(NodeError::UnknownSubwiki(subwiki))?;
        let (mut replica, report) = match self.store.index(&subwiki)? {
            Some(records) => {
                let ids: Vec<EntryId> = records
                    .iter()
                    .filter(|r| r.is_statement())
                    .map(|r| r.id)
                    .collect();
                let source = Arc::new(StoreSource(self.store.clone()));
                let statements = source.entries(&ids);
                let (mut replica, report) = Replica::restore(genesis, source, records, statements)
                    .map_err(LocalError::from)?;
                replica.set_cache_budget(CACHE_BYTES_PER_SUBWIKI);
                replica.set_ignored(lock(&self.overrides).ignored.clone());
                (replica, report)
            }
            None => {
                let loaded = self.store.load(&subwiki)?;
                if !loaded.corrupt.is_empty() {
                    tracing::warn!(%subwiki, corrupt = loaded.corrupt.len(), "damaged entries dropped; they will be fetched again");
                }
                let mut replica = self.replica_of(genesis)?;
                replica.set_ignored(lock(&self.overrides).ignored.clone());
                let report = replica.ingest(loaded.entries);
                (replica, report)
            }
        };
        if !report.rejected.is_empty() {
            let ids: Vec<EntryId> = report.rejected.iter().map(|(id, _)| *id).collect();
            self.store.remove_entries(&ids)?;
            self.wrote(subwiki);
        }
        replica.release(report.accepted.iter());
        let settled = replica.restore_tombstones(self.store.tombstones(&subwiki)?);
        self.apply_retractions(subwiki, &replica, &settled)?;
        tracing::debug!(%subwiki, entries = replica.len(), "subwiki loaded");
        self.refresh_moderation(subwiki, &replica)?;
        Ok(replica)
    }

    /// Writes entries the replica took, with what they change in the derived views: the
    /// rendered views they make stale are removed first (their removal becomes durable with
    /// the entries), the entries are stored durably, the replica lets go of them (it reads them
    /// back from the store when it builds their documents), and the moderation summary is
    /// recomputed if they can change an outcome (the roles changed, or a vote counts). Runs
    /// under the subwiki's lock, so no reader sees a document built without them or stores a
    /// view that misses them.
    fn persist(
        &self,
        subwiki: SubwikiId,
        replica: &mut Replica,
        entries: &[Entry],
        roles_before: &agora_crdt::Roles,
    ) -> Result<(), NodeError> {
        if entries.is_empty() {
            return Ok(());
        }
        let posts: Vec<DocId> = affected_posts(replica, entries.iter())
            .into_iter()
            .collect();
        let mut stale = posts.clone();
        if replica.roles() != roles_before
            && replica.genesis().policy.edit == agora_crdt::EditPolicy::Trusted
        {
            // Which edits are in a post follows the roles: every post someone other than its
            // creator edited may read differently now.
            stale.extend(replica.posts_edited_by_others());
        }
        // Votes that are only signals and role statements that changed no role leave the
        // summary as it is: a flood of them from keys nobody trusts costs a constant amount
        // each, not a recomputation of the whole subwiki's moderation.
        let statements = agora_crdt::changes_outcomes(
            roles_before,
            replica.roles(),
            &lock(&self.overrides),
            entries,
        );
        if statements {
            // Gone before the entries are written, so that a failure after them leaves no
            // stale summary behind (it is computed again when next read).
            stale.push(summary_key(&subwiki));
        }
        self.store.remove_views(&stale)?;
        let stored = self.store.put_entries(entries);
        self.wrote(subwiki);
        stored?;
        // The entries are durable: what follows only derives views, and its failure must not
        // turn an acknowledged write into a reported failure.
        let ids: Vec<EntryId> = entries.iter().map(Entry::id).collect();
        replica.release(ids.iter());
        // No receiver is not an error: nothing derives from entries then.
        let _ = self.stored.send(Stored {
            subwiki,
            entries: entries.into(),
            posts: posts.into(),
            moderation: statements,
            removed: 0,
        });
        if statements && let Err(e) = self.refresh_moderation(subwiki, replica) {
            tracing::warn!(%subwiki, "moderation summary not kept (computed on the next read): {e}");
        }
        Ok(())
    }

    /// Retracts (as its creator) or redacts (as founder or moderator) a document: signs the
    /// statement, stores it durably, then deletes the document's content from the store.
    /// Returns the statement and whether it is a redaction.
    pub(crate) fn retract(
        &self,
        subwiki: SubwikiId,
        doc: DocId,
        reason: &str,
    ) -> Result<(Entry, bool), NodeError> {
        self.store.room(0)?;
        self.with_replica(subwiki, |r| {
            let roles_before = r.roles().clone();
            let redaction = r.may_retract(&self.identity.author.id(), &doc)?;
            let (entry, report) = r.retract(&self.identity.author, now(), doc, reason)?;
            self.persist(subwiki, r, std::slice::from_ref(&entry), &roles_before)?;
            self.apply_retractions(subwiki, r, &report)?;
            Ok((entry, redaction))
        })
        .inspect(|_| self.notify())
    }

    /// The documents the owner created in a subwiki that are not retracted yet.
    pub(crate) fn own_documents(&self, subwiki: SubwikiId) -> Result<Vec<DocId>, NodeError> {
        let me = self.identity.author.id();
        self.with_replica(subwiki, |r| {
            Ok(r.doc_ids()
                .into_iter()
                .filter(|d| {
                    r.doc_meta(d)
                        .is_some_and(|m| m.creator == me && m.kind != DocKind::Info)
                })
                .collect())
        })
    }

    /// What follows a retraction in the store, after the replica took entries (or its ignored
    /// authors changed): the content of the documents it purged is deleted (their tombstones
    /// and the ids kept, so they are never fetched again), entries of purged documents it
    /// refused are added to those ids, tombstones it dropped are forgotten, and the views and
    /// indexes derived from them are told.
    pub(crate) fn apply_retractions(
        &self,
        subwiki: SubwikiId,
        replica: &Replica,
        report: &IngestReport,
    ) -> Result<(), NodeError> {
        let mut purged: Vec<Purged> = report.purged.clone();
        let mut refused: HashMap<DocId, Vec<EntryId>> = HashMap::new();
        for (id, e) in &report.rejected {
            if let IngestError::Retracted(doc) = e
                && !purged
                    .iter()
                    .any(|p| p.tombstone.meta.id == *doc && p.ids.contains(id))
            {
                refused.entry(*doc).or_default().push(*id);
            }
        }
        for (doc, ids) in refused {
            if let Some(tombstone) = replica.tombstone(&doc) {
                purged.push(Purged {
                    tombstone: tombstone.clone(),
                    ids,
                });
            }
        }
        if purged.is_empty() && report.restored.is_empty() {
            return Ok(());
        }
        // The posts whose view changes: a purged post reads as retracted, a post with a
        // purged comment lists it as retracted, and a post no longer purged is gone until it
        // arrives again.
        let mut posts = BTreeSet::new();
        for p in &report.purged {
            let meta = &p.tombstone.meta;
            match meta.kind {
                DocKind::Post => {
                    posts.insert(meta.id);
                }
                DocKind::Comment => posts.extend(meta.parent),
                DocKind::Profile => posts.extend(authored_posts(replica, meta.creator)),
                DocKind::Info => {}
            }
        }
        posts.extend(report.restored.iter().copied());
        let posts: Vec<DocId> = posts.into_iter().collect();
        // The images of a purged post, from its last rendered view (an image never shown was
        // never fetched either).
        let mut images = Vec::new();
        for p in report
            .purged
            .iter()
            .filter(|p| p.tombstone.meta.kind == DocKind::Post)
        {
            if let Some(item) = self
                .store
                .view(&p.tombstone.meta.id)?
                .and_then(|bytes| view::decode(&bytes))
            {
                images.extend(item.post.content.images);
            }
        }
        self.store.remove_views(&posts)?;
        if !purged.is_empty() {
            self.store.purge(&subwiki, &purged)?;
        }
        if !report.restored.is_empty() {
            self.store.unpurge(&subwiki, &report.restored)?;
        }
        for image in images {
            // Another post showing the same image fetches it again from a peer when shown.
            self.store.remove_blob(&image)?;
        }
        self.wrote(subwiki);
        let views = render_views(replica, subwiki, posts.iter().copied());
        if let Err(e) = self.store.cache_views(&views) {
            tracing::warn!(%subwiki, "views not kept (rendered on the next read): {e}");
        }
        if !report.purged.is_empty() {
            tracing::info!(%subwiki, documents = report.purged.len(), "retracted content deleted");
        }
        let _ = self.stored.send(Stored {
            subwiki,
            entries: Arc::from(Vec::new()),
            posts: posts.into(),
            moderation: true,
            removed: purged.iter().map(|p| p.ids.len()).sum(),
        });
        Ok(())
    }

    /// Deletes everything of a subwiki from the store (the owner left it for good).
    pub(crate) fn remove_subwiki(&self, subwiki: SubwikiId) -> Result<(), NodeError> {
        let slot = self.slot(subwiki);
        let mut guard = lock(&slot);
        let removed = self.store.count(&subwiki).unwrap_or(0);
        *guard = None;
        self.store.remove_subwiki(&subwiki)?;
        self.wrote(subwiki);
        let _ = self.stored.send(Stored {
            subwiki,
            entries: Arc::from(Vec::new()),
            posts: Arc::from(Vec::new()),
            moderation: true,
            removed: removed.max(1),
        });
        drop(guard);
        self.notify();
        Ok(())
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
        // A full disk refuses the write before the replica takes the entry.
        self.store.room(0)?;
        let entry = self.with_replica(subwiki, |r| {
            let roles_before = r.roles().clone();
            let Some(entry) = f(r, &self.identity.author, now())? else {
                return Ok(None);
            };
            self.persist(subwiki, r, std::slice::from_ref(&entry), &roles_before)?;
            // The author reads what they wrote next: render its post's view now, from the
            // document the operation just built.
            let views = render_views(r, subwiki, affected_posts(r, std::iter::once(&entry)));
            if let Err(e) = self.store.cache_views(&views) {
                // The entry is durable: it is acknowledged (and gossiped) all the same.
                tracing::warn!(%subwiki, "views not kept (rendered on the next read): {e}");
            }
            Ok(Some(entry))
        })?;
        if entry.is_some() {
            self.notify();
        }
        Ok(entry)
    }

    /// Takes entries from a peer or a file: validates each, runs the replica's checks, stores
    /// the new ones durably. Documents are not built for this: the views of the posts they
    /// change are rendered again when someone reads them.
    pub(crate) fn accept(
        &self,
        subwiki: SubwikiId,
        entries: Vec<Entry>,
    ) -> Result<Accepted, NodeError> {
        // A full disk refuses peers' entries too, before any work (and before the replica takes
        // them, which would have to be loaded again): reconciliation fetches them again later.
        self.store
            .room(entries.iter().map(|e| e.bytes().len()).sum())?;
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
                    self.wrote(subwiki);
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
        let report = self.with_replica(subwiki, |replica| {
            let roles_before = replica.roles().clone();
            let report = replica.ingest(entries.iter().cloned());
            let new: HashSet<EntryId> = report.accepted.iter().copied().collect();
            let refused: HashSet<EntryId> = report.rejected.iter().map(|(id, _)| *id).collect();
            // An entry the replica holds but the store lost (found damaged when a document was
            // built, and dropped) is stored again when a peer sends it.
            let mut fresh = Vec::with_capacity(new.len());
            for entry in &entries {
                let id = entry.id();
                if new.contains(&id) || (!refused.contains(&id) && !self.store.contains(&id)?) {
                    fresh.push(entry.clone());
                }
            }
            self.persist(subwiki, replica, &fresh, &roles_before)?;
            // Entries that waited for their document and turned out to break its rules.
            let late: Vec<EntryId> = report.rejected.iter().map(|(id, _)| *id).collect();
            if !late.is_empty() {
                self.store.remove_entries(&late)?;
                self.wrote(subwiki);
            }
            self.apply_retractions(subwiki, replica, &report)?;
            self.rescue(subwiki, replica, &fresh)?;
            Ok(report)
        })?;
        if !report.accepted.is_empty() {
            // Only now: a reader woken by this sees the new entries.
            self.notify();
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

    /// After others' changes arrived: if one of them is an equivocation that leaves out the
    /// owner's work built on it, does that work again on the view ([`Replica::rescue`]), stores
    /// the new change and queues it for gossip. Only documents the owner created or changed are
    /// looked at (each is built), so this costs nothing for entries of others' documents.
    fn rescue(
        &self,
        subwiki: SubwikiId,
        replica: &mut Replica,
        arrived: &[Entry],
    ) -> Result<(), NodeError> {
        let me = self.identity.author.id();
        let docs: BTreeSet<DocId> = arrived
            .iter()
            .filter(|e| e.author() != me)
            .filter_map(|e| match e.payload() {
                Payload::Change(change) => Some(change.doc),
                _ => None,
            })
            .filter(|doc| replica.contributed_to(&me, doc))
            .collect();
        let mut made = Vec::new();
        for doc in docs {
            match replica.rescue(&self.identity.author, now(), doc) {
                Ok(Some(entry)) => made.push(entry),
                Ok(None) => {}
                Err(e) => tracing::debug!(%doc, "nothing rescued: {e}"),
            }
        }
        if made.is_empty() {
            return Ok(());
        }
        tracing::info!(%subwiki, count = made.len(), "rescued the owner's work from an equivocation");
        let roles_before = replica.roles().clone();
        self.persist(subwiki, replica, &made, &roles_before)?;
        lock(&self.outbox).extend(made.into_iter().map(|e| (subwiki, e)));
        Ok(())
    }

    /// Recomputes and stores the subwiki's moderation summary (after votes or role statements
    /// arrived, or the overrides changed) from its replica. A summary that cannot be stored (a
    /// full disk) is computed again on the next read; readers get it all the same.
    pub(crate) fn refresh_moderation(
        &self,
        subwiki: SubwikiId,
        replica: &Replica,
    ) -> Result<Summary, NodeError> {
        let summary = Summary::of(&replica.moderation(&lock(&self.overrides)));
        if let Err(e) = self
            .store
            .put_views(&[(summary_key(&subwiki), summary.encode())])
        {
            tracing::warn!(%subwiki, "moderation summary not kept (computed on the next read): {e}");
        }
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

    /// A post's rendered view: the stored one, or rendered from its document (built on
    /// demand) and kept.
    pub(crate) fn post_view(
        &self,
        subwiki: SubwikiId,
        post: DocId,
    ) -> Result<Option<FeedItem>, NodeError> {
        if let Some(item) = self.store.view(&post)?.as_deref().and_then(view::decode) {
            return Ok(Some(item));
        }
        // None yet (or a damaged one): render it under the subwiki's lock, so that no entry
        // written meanwhile is missing from the view kept.
        self.with_replica(subwiki, |r| {
            let Some(post_view) = r.post(&post) else {
                return Ok(None);
            };
            let item = FeedItem {
                subwiki,
                post: post_view,
            };
            if let Err(e) = self.store.cache_views(&[(post, view::encode(&item))]) {
                tracing::warn!(%post, "view not kept (rendered on the next read): {e}");
            }
            Ok(Some(item))
        })
    }

    pub(crate) fn update_status(&self, subwiki: SubwikiId, f: impl FnOnce(&mut SyncStatus)) {
        f(lock(&self.status).entry(subwiki).or_default());
    }

    /// The subwiki of a document, from its create entry.
    pub(crate) fn subwiki_of(&self, doc: &DocId) -> Result<SubwikiId, NodeError> {
        match self.store.entry(&(*doc).into())? {
            Some(e) if matches!(e.payload(), Payload::CreateDocument(_)) => Ok(e.subwiki()),
            Some(_) => Err(NodeError::UnknownDocument(*doc)),
            None => {
                // A retracted document: its create entry is gone, its tombstone stays.
                for subwiki in self.joined()? {
                    if self.with_replica(subwiki, |r| Ok(r.tombstone(doc).is_some()))? {
                        return Ok(subwiki);
                    }
                }
                Err(NodeError::UnknownDocument(*doc))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use agora_crdt::{
        AuthorKey, Overrides, Policy, PostContent, RoleAction, VoteTarget, VoteValue,
    };

    use super::*;
    use crate::home::Home;
    use crate::store::MemoryStore;

    /// Votes from members nobody trusts and role statements that change no role leave the
    /// stored moderation summary as it is (it is not computed again: a summary planted to
    /// differ stays); a counted vote makes it computed again, from everything held.
    #[test]
    fn statements_that_change_no_outcome_leave_the_moderation_summary_alone() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Home::new(dir.path()).load_or_init().unwrap();
        let founder = identity.author.clone();
        let core = Core::new(Arc::new(MemoryStore::default()), identity, None);
        let policy = Policy {
            hide_quorum: 1,
            ..Policy::default()
        };
        let (mut source, genesis) = Replica::found(&founder, now(), "s", "", policy).unwrap();
        let subwiki = source.id();
        let post = PostContent {
            title: "p".into(),
            ..PostContent::default()
        };
        let post = source.create_post(&founder, now(), post).unwrap();
        let target = VoteTarget::Post(post.id().into());
        core.accept(subwiki, vec![genesis, post]).unwrap();
        let nothing_hidden = core.moderation_summary(subwiki).unwrap();

        // What the summary reads once the founder's hide is in: planted in its place.
        let hide = source
            .vote(&founder, now(), target, VoteValue::Hide, "")
            .unwrap();
        let planted = Summary::of(&source.moderation(&Overrides::none()));
        assert_ne!(planted, nothing_hidden);
        core.store
            .put_views(&[(summary_key(&subwiki), planted.encode())])
            .unwrap();

        // A flood from fresh keys, one entry at a time as gossip brings them: hides, mutes of
        // the founder, and vouches for each other.
        let sybils: Vec<AuthorKey> = (1..=60u8)
            .map(|i| AuthorKey::from_secret([i; 32], [i; 8]))
            .collect();
        for (i, sybil) in sybils.iter().enumerate() {
            let flood = [
                source
                    .vote(sybil, now(), target, VoteValue::Hide, "")
                    .unwrap(),
                source
                    .vote(
                        sybil,
                        now(),
                        VoteTarget::Author(founder.id()),
                        VoteValue::Mute,
                        "",
                    )
                    .unwrap(),
                source
                    .state_role(
                        sybil,
                        now(),
                        RoleAction::Vouch,
                        sybils[(i + 1) % sybils.len()].id(),
                    )
                    .unwrap(),
            ];
            for entry in flood {
                assert_eq!(core.accept(subwiki, vec![entry]).unwrap().new.len(), 1);
            }
        }
        assert_eq!(
            core.moderation_summary(subwiki).unwrap(),
            planted,
            "the summary was not computed again"
        );

        // The founder's hide counts: the summary is computed again from everything held.
        core.accept(subwiki, vec![hide]).unwrap();
        let kept = core.moderation_summary(subwiki).unwrap();
        let replica_view = core
            .with_replica(subwiki, |r| {
                Ok(Summary::of(&r.moderation(&Overrides::none())))
            })
            .unwrap();
        assert_eq!(kept, replica_view);
        assert_eq!(kept, planted, "the post is hidden, the founder not muted");
        core.store.remove_views(&[summary_key(&subwiki)]).unwrap();
        assert_eq!(core.moderation_summary(subwiki).unwrap(), kept);
    }
}
