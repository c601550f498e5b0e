//! The [`Node`]: the handle every front end uses.
//!
//! A node keeps the subwikis its owner joined in a [`Store`], derives their views with
//! [`agora_crdt::Replica`]s loaded on first use, and, when started with networking, replicates
//! them with peers through the swarm task in [`crate::net`]. Every entry, local or remote,
//! goes through the same path: [`agora_crdt::validate`], the replica's contextual checks, then
//! the store, which makes it durable before anything is acknowledged.
//!
//! Everything works offline: local writes are stored at once and sent when peers appear
//! (reconciliation picks up whatever gossip missed).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_crdt::{
    AuthorId, BlobHash, CommentView, Content, DocId, DocKind, Entry, EntryError, EntryId,
    FeedCursor, Genesis, HistoryItem, LocalError, Payload, Policy, PostContent, PostView, Replica,
    SubwikiId, Timestamp,
};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::home::{Home, HomeError, Identity};
use crate::moderation::{OverridesFile, PostStatus, Summary, summary_key};
use crate::net::{self, Command};
use crate::store::{SledStore, Store, StoreError, SubwikiRecord};
use crate::view;

/// Something a node could not do.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The home directory or its keys.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local edit was refused.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// An entry was refused.
    #[error("invalid entry: {0}")]
    Entry(#[from] EntryError),
    /// This node holds no such subwiki.
    #[error("unknown subwiki {0} (join it first)")]
    UnknownSubwiki(SubwikiId),
    /// This node holds no such post or document.
    #[error("unknown post {0}")]
    UnknownDocument(DocId),
    /// The network task could not be started or has stopped.
    #[error("network: {0}")]
    Network(String),
    /// An export or import file.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct Config {
    /// The home directory (keys and store).
    pub home: PathBuf,
    /// Addresses to listen on; empty means no listening (a node that only dials out).
    pub listen: Vec<Multiaddr>,
    /// Addresses at which others can reach this node (a public IP, a port forward), announced
    /// in DHT provider records. Listen addresses on a specific IP are announced as well.
    pub external: Vec<Multiaddr>,
    /// Peers to dial at start (bootstrap peers, friends), with their `/p2p/` id.
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// How often to reconcile every joined subwiki with connected peers again.
    pub resync_interval: Duration,
    /// Answer other nodes' Kademlia queries (hold provider records, route lookups) from the
    /// start. Off by default: a personal node switches to server mode by itself once AutoNAT
    /// confirms it is reachable; bootstrap peers and always-on nodes turn it on.
    pub dht_server: bool,
    /// Serve as a circuit relay (v2) for other nodes, within these limits, so that nodes behind
    /// NAT can be reached through this one. Off (`None`) for personal nodes; bootstrap peers
    /// turn it on.
    pub relay_server: Option<net::RelayLimits>,
    /// Relays to be reachable through, each with its `/p2p/` id: the node reserves a slot at
    /// each and listens on `<relay>/p2p-circuit`; that address is announced like an external
    /// one (DHT provider records, identify), and DCUtR upgrades connections made through it.
    pub relay_via: Vec<Multiaddr>,
    /// Connection, memory and request-rate limits.
    pub limits: net::Limits,
    /// A Prometheus registry to record libp2p's and Agora's network metrics in (feature
    /// `metrics`); `None` records nothing.
    #[cfg(feature = "metrics")]
    pub metrics: Option<net::MetricsRegistry>,
}

impl Config {
    /// Defaults for a personal node in `home`: TCP and QUIC on all interfaces on ports the
    /// system picks, mDNS on.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            listen: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Tcp(0)),
                Multiaddr::empty()
                    .with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Udp(0))
                    .with(Protocol::QuicV1),
            ],
            external: Vec::new(),
            bootstrap: Vec::new(),
            mdns: true,
            resync_interval: Duration::from_secs(60),
            dht_server: false,
            relay_server: None,
            relay_via: Vec::new(),
            limits: net::Limits::default(),
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }
}

/// A subwiki as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubwikiInfo {
    /// Its id.
    pub id: SubwikiId,
    /// Name, description and policy, once its genesis entry is held.
    pub genesis: Option<Genesis>,
    /// Whether the owner is a member.
    pub joined: bool,
    /// Entries held.
    pub entries: usize,
}

/// A post in the feed, with the subwiki it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The subwiki.
    pub subwiki: SubwikiId,
    /// The post.
    pub post: PostView,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its transport identity.
    pub peer: PeerId,
    /// Addresses it is connected on.
    pub addresses: Vec<Multiaddr>,
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
    overrides: Mutex<agora_crdt::Overrides>,
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
    fn new(store: Arc<dyn Store>, identity: Identity, home: Option<&Path>) -> Self {
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

    /// Bumped whenever entries are stored or peers come and go.
    pub(crate) fn generation(&self) -> u64 {
        *self.changes.borrow()
    }

    /// Tells watchers that something changed (see [`Node::changes`]).
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
    fn with_replica<T>(
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
    fn load_replica(&self, subwiki: SubwikiId) -> Result<(Replica, usize), NodeError> {
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
    fn local(
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
                self.changes.send_modify(|n| *n += 1);
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
    fn refresh_moderation(
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
    fn moderation_summary(&self, subwiki: SubwikiId) -> Result<Summary, NodeError> {
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
    fn subwiki_of(&self, doc: &DocId) -> Result<SubwikiId, NodeError> {
        match self.store.entry(&(*doc).into())? {
            Some(e) if matches!(e.payload(), Payload::CreateDocument(_)) => Ok(e.subwiki()),
            _ => Err(NodeError::UnknownDocument(*doc)),
        }
    }
}

/// The node handle: cheap to clone, every clone drives the same node.
#[derive(Clone)]
pub struct Node {
    core: Arc<Core>,
    net: Option<mpsc::Sender<Command>>,
    peer_id: PeerId,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("author", &self.core.identity.author.id())
            .field("peer", &self.peer_id)
            .field("online", &self.net.is_some())
            .finish()
    }
}

impl Node {
    /// Opens the node in `home` without networking: every local operation works, and what it
    /// writes is sent when the node next runs online. Creates the identity if there is none.
    pub fn open_offline(home: &Path) -> Result<Self, NodeError> {
        let home = Home::new(home);
        let identity = home.load_or_init()?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&home.store())?);
        Ok(Self::from_parts(store, identity, Some(home.dir()), None))
    }

    /// Opens the node and starts its network task on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        let home = Home::new(&config.home);
        let identity = home.load_or_init()?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&home.store())?);
        Self::start_with(store, identity, &config).await
    }

    /// Starts a node on a given store and identity (tests and simulations use a memory store).
    pub async fn start_with(
        store: Arc<dyn Store>,
        identity: Identity,
        config: &Config,
    ) -> Result<Self, NodeError> {
        let mut node = Self::from_parts(store, identity, Some(&config.home), None);
        let sender = net::spawn(node.core.clone(), config).await?;
        node.net = Some(sender);
        Ok(node)
    }

    fn from_parts(
        store: Arc<dyn Store>,
        identity: Identity,
        home: Option<&Path>,
        net: Option<mpsc::Sender<Command>>,
    ) -> Self {
        let peer_id = identity.node.public().to_peer_id();
        Self {
            core: Arc::new(Core::new(store, identity, home)),
            net,
            peer_id,
        }
    }

    /// This person's author id.
    pub fn author(&self) -> agora_crdt::AuthorId {
        self.core.identity.author.id()
    }

    /// This node's transport identity.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A receiver that changes whenever entries are stored, a peer connects or disconnects, or a
    /// reconciliation finishes: wait on it instead of sleeping.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.core.changes.subscribe()
    }

    async fn command(&self, command: Command) {
        if let Some(net) = &self.net {
            // The network task is gone only when shutting down; local state is already safe.
            let _ = net.send(command).await;
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let net = self.net.as_ref()?;
        let (tx, rx) = oneshot::channel();
        net.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Founds a subwiki, joins it and returns its id.
    pub async fn create_subwiki(
        &self,
        name: &str,
        description: &str,
        policy: Policy,
    ) -> Result<SubwikiId, NodeError> {
        let (replica, genesis) =
            Replica::found(&self.core.identity.author, now(), name, description, policy)?;
        let id = replica.id();
        self.core
            .store
            .put_entries(std::slice::from_ref(&genesis))?;
        self.core.refresh_moderation(id, &replica)?;
        lock(&self.core.replicas).insert(id, replica);
        self.core
            .store
            .set_subwiki(SubwikiRecord { id, joined: true })?;
        self.core.changes.send_modify(|n| *n += 1);
        self.command(Command::Join {
            subwiki: id,
            peers: Vec::new(),
        })
        .await;
        self.command(Command::Announce {
            genesis: genesis.bytes().to_vec(),
        })
        .await;
        Ok(id)
    }

    /// Joins a subwiki by id; `peers` are addresses of nodes that have it (optional: peers
    /// are also found by mDNS and Kademlia). Catch-up runs in the background.
    pub async fn join(&self, subwiki: SubwikiId, peers: Vec<Multiaddr>) -> Result<(), NodeError> {
        self.core.store.set_subwiki(SubwikiRecord {
            id: subwiki,
            joined: true,
        })?;
        self.command(Command::Join { subwiki, peers }).await;
        Ok(())
    }

    /// Leaves a subwiki: stops replicating it; its entries stay until removed.
    pub async fn leave(&self, subwiki: SubwikiId) -> Result<(), NodeError> {
        self.core.store.set_subwiki(SubwikiRecord {
            id: subwiki,
            joined: false,
        })?;
        lock(&self.core.replicas).remove(&subwiki);
        self.command(Command::Leave { subwiki }).await;
        Ok(())
    }

    /// The subwikis kept.
    pub fn subwikis(&self) -> Result<Vec<SubwikiInfo>, NodeError> {
        let mut out = Vec::new();
        for record in self.core.store.subwikis()? {
            let genesis = match self.core.store.entry(&record.id.into())? {
                Some(e) => match e.payload() {
                    Payload::Genesis(g) => Some(g.clone()),
                    _ => None,
                },
                None => None,
            };
            out.push(SubwikiInfo {
                id: record.id,
                genesis,
                joined: record.joined,
                entries: self.core.store.items(&record.id)?.len(),
            });
        }
        Ok(out)
    }

    /// Creates a post and returns its id.
    pub async fn create_post(
        &self,
        subwiki: SubwikiId,
        post: PostContent,
    ) -> Result<DocId, NodeError> {
        let entry = self
            .core
            .local(subwiki, |r, key, t| r.create_post(key, t, post).map(Some))?
            .ok_or(NodeError::UnknownSubwiki(subwiki))?;
        self.publish(subwiki, &entry).await;
        Ok(entry.id().into())
    }

    /// Changes a post to read `post` (diff-based, so concurrent edits merge). Returns the new
    /// version, or `None` if nothing changed.
    pub async fn edit_post(
        &self,
        id: DocId,
        post: PostContent,
    ) -> Result<Option<EntryId>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let entry = self
            .core
            .local(subwiki, |r, key, t| r.edit_post(key, t, id, post))?;
        if let Some(entry) = &entry {
            self.publish(subwiki, entry).await;
        }
        Ok(entry.map(|e| e.id()))
    }

    /// Restores a post to an earlier version as a new signed change.
    pub async fn revert(&self, id: DocId, version: EntryId) -> Result<Option<EntryId>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let entry = self
            .core
            .local(subwiki, |r, key, t| r.revert(key, t, id, version))?;
        if let Some(entry) = &entry {
            self.publish(subwiki, entry).await;
        }
        Ok(entry.map(|e| e.id()))
    }

    /// Comments on a post (optionally answering a comment); returns the comment's id.
    pub async fn comment(
        &self,
        post: DocId,
        reply_to: Option<DocId>,
        text: &str,
    ) -> Result<DocId, NodeError> {
        let subwiki = self.core.subwiki_of(&post)?;
        let entry = self
            .core
            .local(subwiki, |r, key, t| {
                r.comment(key, t, post, reply_to, text).map(Some)
            })?
            .ok_or(NodeError::UnknownDocument(post))?;
        self.publish(subwiki, &entry).await;
        Ok(entry.id().into())
    }

    /// Votes on a post (hide, keep, misleading, verified, withdraw) in its subwiki; returns the
    /// vote's entry id.
    pub async fn vote_post(
        &self,
        post: DocId,
        value: agora_crdt::VoteValue,
        reason: &str,
    ) -> Result<EntryId, NodeError> {
        let subwiki = self.core.subwiki_of(&post)?;
        self.vote(subwiki, agora_crdt::VoteTarget::Post(post), value, reason)
            .await
    }

    /// Votes about an author in a subwiki (mute, unmute, withdraw); returns the vote's entry id.
    pub async fn vote(
        &self,
        subwiki: SubwikiId,
        target: agora_crdt::VoteTarget,
        value: agora_crdt::VoteValue,
        reason: &str,
    ) -> Result<EntryId, NodeError> {
        self.sign_in(subwiki, |r, key, t| {
            r.vote(key, t, target, value, reason).map(Some)
        })
        .await?
        .ok_or(NodeError::UnknownSubwiki(subwiki))
    }

    /// Signs a role statement (appoint or remove a moderator, vouch for or revoke a member) in
    /// a subwiki; returns its entry id. Whether it counts is decided by the moderation rules.
    pub async fn state_role(
        &self,
        subwiki: SubwikiId,
        action: agora_crdt::RoleAction,
        subject: AuthorId,
    ) -> Result<EntryId, NodeError> {
        self.sign_in(subwiki, |r, key, t| {
            r.state_role(key, t, action, subject).map(Some)
        })
        .await?
        .ok_or(NodeError::UnknownSubwiki(subwiki))
    }

    /// Sets the owner's profile (display name, bio) in a subwiki. Returns the new version, or
    /// `None` if it already read that way.
    pub async fn set_profile(
        &self,
        subwiki: SubwikiId,
        profile: agora_crdt::ProfileContent,
    ) -> Result<Option<EntryId>, NodeError> {
        self.sign_in(subwiki, |r, key, t| r.set_profile(key, t, profile))
            .await
    }

    /// Makes, stores and publishes one local entry in a subwiki held here; its id, or `None`
    /// if `f` had nothing to write.
    async fn sign_in(
        &self,
        subwiki: SubwikiId,
        f: impl FnOnce(
            &mut Replica,
            &agora_crdt::AuthorKey,
            Timestamp,
        ) -> Result<Option<Entry>, LocalError>,
    ) -> Result<Option<EntryId>, NodeError> {
        if !self.core.store.contains(&subwiki.into())? {
            return Err(NodeError::UnknownSubwiki(subwiki));
        }
        let entry = self.core.local(subwiki, f)?;
        if let Some(entry) = &entry {
            self.publish(subwiki, entry).await;
        }
        Ok(entry.map(|e| e.id()))
    }

    async fn publish(&self, subwiki: SubwikiId, entry: &Entry) {
        self.command(Command::Publish {
            subwiki,
            bytes: entry.bytes().to_vec(),
        })
        .await;
    }

    /// A post as it reads now, with its subwiki.
    pub fn post(&self, id: DocId) -> Result<FeedItem, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let post = self
            .core
            .with_replica(subwiki, |r| Ok(r.post(&id)))?
            .ok_or(NodeError::UnknownDocument(id))?;
        Ok(FeedItem { subwiki, post })
    }

    /// A post as it read right after `version`.
    pub fn post_at(&self, id: DocId, version: EntryId) -> Result<PostContent, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        match self
            .core
            .with_replica(subwiki, |r| Ok(r.content_at(&id, version)?))?
        {
            Content::Post(p) => Ok(p),
            _ => Err(NodeError::UnknownDocument(id)),
        }
    }

    /// The comments on a post, oldest first.
    pub fn comments(&self, id: DocId) -> Result<Vec<CommentView>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let summary = self.core.moderation_summary(subwiki)?;
        let comments = self.core.with_replica(subwiki, |r| Ok(r.comments(&id)))?;
        // Comments by muted authors are hidden.
        Ok(comments
            .into_iter()
            .filter(|c| !summary.is_muted(&c.meta.creator))
            .collect())
    }

    /// Every change of a post: who changed what, when.
    pub fn history(&self, id: DocId) -> Result<Vec<HistoryItem>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        self.core.with_replica(subwiki, |r| {
            r.history(&id).ok_or(NodeError::UnknownDocument(id))
        })
    }

    /// The post's document as a standard Automerge file.
    pub fn export_post(&self, id: DocId) -> Result<Vec<u8>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        self.core.with_replica(subwiki, |r| {
            r.save_document(&id).ok_or(NodeError::UnknownDocument(id))
        })
    }

    /// The feed of the joined subwikis (or of one), newest first, `limit` posts after `before`,
    /// without the posts moderation hides.
    pub fn feed(
        &self,
        subwiki: Option<SubwikiId>,
        before: Option<FeedCursor>,
        limit: usize,
    ) -> Result<Vec<FeedItem>, NodeError> {
        Ok(self
            .feed_page(subwiki, before, limit, false)?
            .into_iter()
            .map(|(item, _)| item)
            .collect())
    }

    /// A page of the feed with each post's moderation status; hidden posts are left out unless
    /// `show_hidden`.
    pub fn feed_page(
        &self,
        subwiki: Option<SubwikiId>,
        before: Option<FeedCursor>,
        limit: usize,
        show_hidden: bool,
    ) -> Result<Vec<(FeedItem, PostStatus)>, NodeError> {
        let subwikis = match subwiki {
            Some(s) => vec![s],
            None => self.core.joined()?,
        };
        let mut summaries: HashMap<SubwikiId, Summary> = HashMap::new();
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut cursor = before.map(|c| (c.created_at, c.post));
        // Hidden posts are skipped, so a page may take more than one read of the index.
        loop {
            let keys = self.core.store.feed(&subwikis, cursor, limit)?;
            let exhausted = keys.len() < limit;
            for key in keys {
                cursor = Some((key.created_at, key.post));
                let Some(item) = self.feed_item(key.subwiki, key.post)? else {
                    continue;
                };
                let summary = match summaries.entry(key.subwiki) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(self.core.moderation_summary(key.subwiki)?)
                    }
                };
                let status = summary.status(&item.post.meta);
                if status.hidden.is_none() || show_hidden {
                    items.push((item, status));
                    if items.len() == limit {
                        return Ok(items);
                    }
                }
            }
            if exhausted {
                return Ok(items);
            }
        }
    }

    /// A post's rendered view: the stored one (no replay of the subwiki), or rendered from the
    /// replica and stored.
    fn feed_item(&self, subwiki: SubwikiId, post: DocId) -> Result<Option<FeedItem>, NodeError> {
        if let Some(item) = self
            .core
            .store
            .view(&post)?
            .as_deref()
            .and_then(view::decode)
        {
            return Ok(Some(item));
        }
        // None yet (or a damaged one): render it from the replica, and keep it.
        let Some(post_view) = self.core.with_replica(subwiki, |r| Ok(r.post(&post)))? else {
            return Ok(None);
        };
        let item = FeedItem {
            subwiki,
            post: post_view,
        };
        self.core.store.put_views(&[(post, view::encode(&item))])?;
        Ok(Some(item))
    }

    /// A post's moderation status as this node's owner sees it.
    pub fn post_status(&self, id: DocId) -> Result<PostStatus, NodeError> {
        let item = self.post(id)?;
        Ok(self
            .core
            .moderation_summary(item.subwiki)?
            .status(&item.post.meta))
    }

    /// A subwiki's moderation as this node's owner sees it (with their overrides): roles, the
    /// outcome of every post and author with votes, the log of every statement.
    pub fn moderation(&self, subwiki: SubwikiId) -> Result<agora_crdt::Moderation, NodeError> {
        let overrides = lock(&self.core.overrides).clone();
        self.core
            .with_replica(subwiki, |r| Ok(r.moderation(&overrides)))
    }

    /// The authors whose votes and statements this node's owner does not count.
    pub fn overrides(&self) -> agora_crdt::Overrides {
        lock(&self.core.overrides).clone()
    }

    /// Stops (`ignore`) or starts again counting an author's votes and statements in this
    /// owner's view only; kept in the home, never published. Returns whether anything changed.
    pub fn set_override(&self, author: AuthorId, ignore: bool) -> Result<bool, NodeError> {
        let changed = {
            let mut overrides = lock(&self.core.overrides);
            let changed = if ignore {
                overrides.ignore(author)
            } else {
                overrides.restore(&author)
            };
            if changed {
                self.core
                    .overrides_file
                    .save(&overrides)
                    .map_err(|e| NodeError::File {
                        path: PathBuf::from("overrides.txt"),
                        reason: e.to_string(),
                    })?;
            }
            changed
        };
        if changed {
            for subwiki in self.core.joined()? {
                if self.core.store.contains(&subwiki.into())? {
                    self.core
                        .with_replica(subwiki, |r| self.core.refresh_moderation(subwiki, r))?;
                }
            }
            self.core.notify();
        }
        Ok(changed)
    }

    /// Replication state per subwiki.
    pub fn sync_status(&self) -> HashMap<SubwikiId, SyncStatus> {
        lock(&self.core.status).clone()
    }

    /// Stores an image (at most [`crate::store::MAX_BLOB_BYTES`]) and returns the hash to put
    /// in a post's `images`.
    pub fn add_image(&self, bytes: &[u8]) -> Result<BlobHash, NodeError> {
        Ok(self.core.store.put_blob(bytes)?)
    }

    /// An image by hash: from the store, or else fetched from connected peers, checked against
    /// its hash and kept. `None` if no one has it.
    pub async fn image(&self, hash: BlobHash) -> Result<Option<Vec<u8>>, NodeError> {
        if let Some(bytes) = self.core.store.blob(&hash)? {
            return Ok(Some(bytes));
        }
        Ok(self
            .ask(|reply| Command::FetchBlob { hash, reply })
            .await
            .flatten())
    }

    /// Connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// Addresses this node listens on, with its `/p2p/` id.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.ask(Command::ListenAddrs).await.unwrap_or_default()
    }

    /// Dials a peer.
    pub async fn dial(&self, addr: Multiaddr) {
        self.command(Command::Dial(addr)).await;
    }

    /// Dials `addr` and waits until the dial ends: the peer reached, or why it could not be
    /// (refused, timed out, wrong peer id, no route). Offline nodes cannot connect.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        self.ask(|reply| Command::Connect { addr, reply })
            .await
            .ok_or_else(|| NodeError::Network("the node is offline".into()))?
            .map_err(NodeError::Network)
    }

    /// Subwikis announced on the directory topic that this node has heard of.
    pub async fn discovered(&self) -> Vec<(SubwikiId, Genesis)> {
        self.ask(Command::Discovered).await.unwrap_or_default()
    }

    /// Writes every entry of a subwiki to `path`: a file of signed entries (see
    /// `docs/protocol.md`, "Export files").
    pub fn export(&self, subwiki: SubwikiId, path: &Path) -> Result<usize, NodeError> {
        let loaded = self.core.store.load(&subwiki)?;
        if loaded.entries.is_empty() {
            return Err(NodeError::UnknownSubwiki(subwiki));
        }
        let bytes = crate::export::encode(&loaded.entries);
        crate::export::write_file(path, &bytes).map_err(|reason| NodeError::File {
            path: path.to_owned(),
            reason,
        })?;
        Ok(loaded.entries.len())
    }

    /// Reads a file written by [`Node::export`]. Every entry is validated first; if any is
    /// invalid or the file is damaged, nothing is kept. Joins the subwiki.
    pub async fn import(&self, path: &Path) -> Result<(SubwikiId, Accepted), NodeError> {
        let file = |reason: String| NodeError::File {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| file(e.to_string()))?;
        let entries = crate::export::decode(&bytes, now()).map_err(file)?;
        let subwiki = crate::export::single_subwiki(&entries).map_err(file)?;
        let accepted = self.core.accept(subwiki, entries)?;
        if !accepted.refused.is_empty() {
            let ids: Vec<EntryId> = accepted.new.clone();
            self.core.store.remove_entries(&ids)?;
            lock(&self.core.replicas).remove(&subwiki);
            let reason = match accepted.refused.first() {
                Some((id, reason)) => format!("entry {id} refused: {reason}"),
                None => String::from("an entry was refused"),
            };
            return Err(file(reason));
        }
        self.join(subwiki, Vec::new()).await?;
        Ok((subwiki, accepted))
    }

    /// Sends bytes as an entry on a subwiki's gossip topic *without checking them*. For attack
    /// simulations and tests of how peers treat a misbehaving node; never used by front ends.
    #[doc(hidden)]
    pub async fn publish_unchecked(&self, subwiki: SubwikiId, bytes: Vec<u8>) {
        self.command(Command::Publish { subwiki, bytes }).await;
    }

    /// Stops the network task cleanly; everything acknowledged is already durable.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn post(title: &str) -> PostContent {
        PostContent {
            title: title.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_reopened_node_shows_its_feed_without_replaying_entries() {
        let dir = tempfile::tempdir().unwrap();
        let subwiki = {
            let node = Node::open_offline(dir.path()).unwrap();
            let subwiki = node
                .create_subwiki("s", "", Policy::default())
                .await
                .unwrap();
            for i in 0..3 {
                let id = node
                    .create_post(subwiki, post(&format!("p{i}")))
                    .await
                    .unwrap();
                node.comment(id, None, "c").await.unwrap();
            }
            subwiki
        };
        let node = Node::open_offline(dir.path()).unwrap();
        let feed = node.feed(None, None, 10).unwrap();
        assert_eq!(feed.len(), 3);
        assert_eq!(feed[0].post.content.title, "p2");
        assert_eq!(feed[0].post.comments, 1);
        assert_eq!(feed[0].subwiki, subwiki);
        assert!(
            lock(&node.core.replicas).is_empty(),
            "the feed loaded a replica"
        );
        // A post that changes gets a fresh view.
        node.edit_post(feed[0].post.meta.id, post("p2, edited"))
            .await
            .unwrap();
        let again = Node::open_offline(tempfile::tempdir().unwrap().path()).unwrap();
        drop(again);
        assert_eq!(
            node.feed(None, None, 1).unwrap()[0].post.content.title,
            "p2, edited"
        );
    }

    #[tokio::test]
    async fn a_reopened_subwiki_loads_its_documents_from_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let (subwiki, first) = {
            let node = Node::open_offline(dir.path()).unwrap();
            let subwiki = node
                .create_subwiki("s", "", Policy::default())
                .await
                .unwrap();
            let first = node.create_post(subwiki, post("p0")).await.unwrap();
            node.create_post(subwiki, post("p1")).await.unwrap();
            node.comment(first, None, "c").await.unwrap();
            node.edit_post(first, post("p0, edited")).await.unwrap();
            (subwiki, first)
        };
        let node = Node::open_offline(dir.path()).unwrap();
        let (replica, from_snapshots) = node.core.load_replica(subwiki).unwrap();
        // Two posts and a comment; the subwiki's info page has no document.
        assert_eq!(replica.doc_ids().len(), 3);
        assert_eq!(from_snapshots, 3);
        assert_eq!(replica.post(&first).unwrap().content.title, "p0, edited");
        assert_eq!(replica.history(&first).unwrap().len(), 2);

        // Damaged snapshots are ignored, the documents rebuilt from their changes, and the
        // snapshots written again.
        let damaged: Vec<(DocId, Vec<u8>)> = replica
            .doc_ids()
            .into_iter()
            .map(|d| (d, b"junk".to_vec()))
            .collect();
        node.core.store().put_snapshots(&damaged).unwrap();
        let (again, from_snapshots) = node.core.load_replica(subwiki).unwrap();
        assert_eq!(from_snapshots, 0);
        assert_eq!(again.post(&first).unwrap().content.title, "p0, edited");
        assert_eq!(node.core.load_replica(subwiki).unwrap().1, 3);
    }
}
