//! The [`Node`]: the handle every front end uses.
//!
//! A node keeps the subwikis its owner joined in a store, derives their views with
//! [`agora_crdt::Replica`]s, and, when started with networking, replicates them with peers
//! through the swarm task in [`crate::net`]. The handle holds the node's core (store, replicas,
//! key; see `core.rs`) and the sender of the network task's commands: local operations go to the
//! core, which makes them durable, and are then published through the network task.
//!
//! Everything works offline: local writes are stored at once and sent when peers appear
//! (reconciliation picks up whatever gossip missed).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use agora_crdt::{
    AuthorId, Base, BlobHash, CommentView, Content, DocId, Entry, EntryId, FeedCursor, Genesis,
    HistoryItem, LocalError, Member, Payload, Policy, PostContent, Replica, Role, SubwikiId,
    Timestamp, Version,
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::core::{Accepted, Core, FeedItem, SyncStatus, now};
use crate::error::NodeError;
use crate::home::{Home, Identity};
use crate::moderation::{PostStatus, Summary};
use crate::net::{self, Command, PeerInfo};
use crate::store::{Damage, SledStore, Store, StoreError, SubwikiRecord};

/// What one retraction or redaction did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Retracted {
    /// The signed statement.
    pub entry: EntryId,
    /// The document's subwiki.
    pub subwiki: SubwikiId,
    /// The document, whose content is gone.
    pub doc: DocId,
    /// A redaction (by the founder or a moderator) rather than the creator's retraction.
    pub redaction: bool,
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

/// A member of a subwiki as listed ([`Node::members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Who, and what they signed.
    pub member: Member,
    /// Their role.
    pub role: Role,
    /// Their display name in the subwiki, if they set one.
    pub name: Option<String>,
}

/// The node handle: cheap to clone, every clone drives the same node.
#[derive(Clone)]
pub struct Node {
    core: Arc<Core>,
    net: Option<mpsc::Sender<Command>>,
    peer_id: PeerId,
    /// The web UI's sessions (in memory: a restart asks for a new login link).
    sessions: Arc<crate::http::ui::Sessions>,
    /// Link card fetches (`cards.rs`); `None` when off, and on a node opened offline.
    pub(crate) cards: Option<Arc<crate::cards::Fetcher>>,
    /// The owner's inbox (`inbox.rs`), derived from the entries.
    inbox: Arc<crate::inbox::Inbox>,
    /// The authors the owner follows (`follow.rs`).
    follows: Arc<crate::follow::Follows>,
    /// The full-text search index (`search.rs`), derived from the entries.
    search: Arc<crate::search::SearchIndex>,
    /// The network's bytes today and the data budget; `None` offline.
    meter: Option<Arc<net::Meter>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("author", &self.core.author_key().id())
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
        node.cards = crate::cards::Fetcher::new(config.link_cards);
        let (sender, meter) = net::spawn(node.core.clone(), config).await?;
        node.net = Some(sender);
        node.meter = Some(meter);
        node.warm_up();
        crate::inbox::spawn(&node.core, &node.inbox);
        if config.search {
            node.search.start(Arc::downgrade(&node.core));
        } else {
            node.search.turn_off();
        }
        Ok(node)
    }

    /// Loads the joined subwikis' indexes on a thread of its own, so that the first read or
    /// peer entry after a start does not pay for it (about 0.6 s at 100,000 posts). It holds the
    /// core only while it loads one subwiki, so a shutdown waits for one load at most.
    fn warm_up(&self) {
        let core = Arc::downgrade(&self.core);
        let warm = move || {
            let joined = core
                .upgrade()
                .and_then(|c| c.joined().ok())
                .unwrap_or_default();
            for subwiki in joined {
                let Some(core) = core.upgrade() else { return };
                if let Err(e) = core.with_replica(subwiki, |_| Ok(())) {
                    tracing::warn!(%subwiki, "cannot load the subwiki: {e}");
                }
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("agora-warm-up".into())
            .spawn(warm)
        {
            tracing::debug!("no warm-up thread: {e}");
        }
    }

    fn from_parts(
        store: Arc<dyn Store>,
        identity: Identity,
        home: Option<&Path>,
        net: Option<mpsc::Sender<Command>>,
    ) -> Self {
        let peer_id = identity.node.public().to_peer_id();
        let core = Arc::new(Core::new(store, identity, home));
        let search = crate::search::SearchIndex::new(
            home.map(|h| h.join("search")),
            core.subscribe_stored(),
        );
        Self {
            core,
            search: Arc::new(search),
            net,
            peer_id,
            sessions: Arc::default(),
            cards: None,
            inbox: Arc::new(crate::inbox::Inbox::new(home)),
            follows: Arc::new(crate::follow::Follows::new(home)),
            meter: None,
        }
    }

    /// The core, for what is derived beside the handle (`inbox.rs`, `follow.rs`).
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub(crate) fn inbox_state(&self) -> &crate::inbox::Inbox {
        &self.inbox
    }

    pub(crate) fn follows(&self) -> &crate::follow::Follows {
        &self.follows
    }

    /// The search index (`search.rs`, which adds the search methods).
    pub(crate) fn search_index(&self) -> &crate::search::SearchIndex {
        &self.search
    }

    /// The web UI's sessions and login links.
    pub fn sessions(&self) -> &crate::http::ui::Sessions {
        &self.sessions
    }

    /// This person's author id.
    pub fn author(&self) -> agora_crdt::AuthorId {
        self.core.author_key().id()
    }

    /// This node's transport identity.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A receiver that changes whenever entries are stored, a peer connects or disconnects, or a
    /// reconciliation finishes: wait on it instead of sleeping.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.core.subscribe()
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
        let genesis = self.core.found(name, description, policy)?;
        let id = SubwikiId::from(genesis.id());
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
        self.core.store().set_subwiki(SubwikiRecord {
            id: subwiki,
            joined: true,
        })?;
        self.command(Command::Join { subwiki, peers }).await;
        Ok(())
    }

    /// Leaves a subwiki: stops replicating it; its entries stay until removed.
    pub async fn leave(&self, subwiki: SubwikiId) -> Result<(), NodeError> {
        self.core.store().set_subwiki(SubwikiRecord {
            id: subwiki,
            joined: false,
        })?;
        self.core.forget_replica(subwiki);
        self.command(Command::Leave { subwiki }).await;
        Ok(())
    }

    /// Leaves a subwiki and deletes everything of it from the home: its entries, views,
    /// tombstones and search index. Joining it again fetches it anew.
    pub async fn leave_and_purge(&self, subwiki: SubwikiId) -> Result<(), NodeError> {
        self.leave(subwiki).await?;
        self.core.remove_subwiki(subwiki)
    }

    /// Retracts (as the document's creator) or redacts (as the founder or a moderator) a post
    /// or comment: signs the statement and gossips it; this node deletes the content at once,
    /// every honest node that accepts the statement does the same.
    pub async fn retract(&self, doc: DocId, reason: &str) -> Result<Retracted, NodeError> {
        let subwiki = self.core.subwiki_of(&doc)?;
        let retract = || self.core.retract(subwiki, doc, reason);
        let (entry, redaction) = match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(retract)?
            }
            _ => retract()?,
        };
        self.publish(subwiki, &entry).await;
        Ok(Retracted {
            entry: entry.id(),
            subwiki,
            doc,
            redaction,
        })
    }

    /// Retracts everything the owner created in a subwiki (or in every joined one): posts,
    /// comments, profile.
    pub async fn retract_account(
        &self,
        subwiki: Option<SubwikiId>,
    ) -> Result<Vec<Retracted>, NodeError> {
        let subwikis = match subwiki {
            Some(s) => {
                if !self.core.store().contains(&s.into())? {
                    return Err(NodeError::UnknownSubwiki(s));
                }
                vec![s]
            }
            None => self.core.joined()?,
        };
        let mut done = Vec::new();
        for subwiki in subwikis {
            for doc in self.core.own_documents(subwiki)? {
                done.push(self.retract(doc, "").await?);
            }
        }
        Ok(done)
    }

    /// A receiver of every write of entries from now on, local or from peers, with the posts
    /// they change: what indexes derived from entries follow (see [`crate::Stored`]).
    pub fn stored(&self) -> tokio::sync::broadcast::Receiver<crate::Stored> {
        self.core.subscribe_stored()
    }

    /// The subwikis holding fewer entries than this node once stored (a damaged store; see
    /// [`Store::damage`]). A joined one fetches what it lost from peers.
    pub fn damage(&self) -> Result<Vec<Damage>, NodeError> {
        Ok(self.core.store().damage()?)
    }

    /// Whether the node takes writes now; the error says why not: the disk is full
    /// ([`crate::store::StoreError::DiskFull`], writes are taken again once space is freed), or
    /// the store failed a write and takes none until the node is started again.
    pub fn writable(&self) -> Result<(), NodeError> {
        Ok(self.core.store().room(0)?)
    }

    /// The subwikis kept.
    pub fn subwikis(&self) -> Result<Vec<SubwikiInfo>, NodeError> {
        let mut out = Vec::new();
        for record in self.core.store().subwikis()? {
            let genesis = match self.core.store().entry(&record.id.into())? {
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
                entries: self.core.store().count(&record.id)?,
            });
        }
        Ok(out)
    }

    /// Creates a post and returns its id. A link card not for `post.link` is dropped; with a
    /// link and no card, a running node fetches one in the background ([`crate::cards`]).
    pub async fn create_post(
        &self,
        subwiki: SubwikiId,
        mut post: PostContent,
    ) -> Result<DocId, NodeError> {
        let card_for = crate::cards::wanted(&mut post);
        let entry = self
            .local(subwiki, |r, key, t| r.create_post(key, t, post).map(Some))?
            .ok_or(NodeError::UnknownSubwiki(subwiki))?;
        self.publish(subwiki, &entry).await;
        if let Some(link) = card_for {
            self.fetch_card_later(entry.id().into(), entry.id(), link);
        }
        Ok(entry.id().into())
    }

    /// Changes a post to read `post`. The change is computed against `base`, the version the
    /// writer saw (an editor passes the [`agora_crdt::PostView`]'s `version` it showed), and
    /// then merged with whatever arrived since, so a save never undoes an edit it did not see.
    /// Returns the entry carrying the change, or `None` if the base already read `post`.
    /// Link cards as in [`Node::create_post`].
    pub async fn edit_post(
        &self,
        id: DocId,
        base: Base,
        mut post: PostContent,
    ) -> Result<Option<EntryId>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let card_for = crate::cards::wanted(&mut post);
        let entry = self.local(subwiki, |r, key, t| r.edit_post(key, t, id, &base, post))?;
        if let Some(entry) = &entry {
            self.publish(subwiki, entry).await;
            if let Some(link) = card_for {
                self.fetch_card_later(id, entry.id(), link);
            }
        }
        Ok(entry.map(|e| e.id()))
    }

    /// Restores a post to an earlier version as a new signed change.
    pub async fn revert(&self, id: DocId, version: EntryId) -> Result<Option<EntryId>, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let entry = self.local(subwiki, |r, key, t| r.revert(key, t, id, version))?;
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
        if !self.core.store().contains(&subwiki.into())? {
            return Err(NodeError::UnknownSubwiki(subwiki));
        }
        let entry = self.local(subwiki, f)?;
        if let Some(entry) = &entry {
            self.publish(subwiki, entry).await;
        }
        Ok(entry.map(|e| e.id()))
    }

    /// Makes and stores one local entry ([`Core::local`]). On the multi-threaded runtime the
    /// worker's other tasks are handed to another thread first (`block_in_place`): a disk that
    /// stops answering holds this thread (for a bounded time, see `store/sled.rs`), never the
    /// node's API, network task or signal handling.
    fn local(
        &self,
        subwiki: SubwikiId,
        f: impl FnOnce(
            &mut Replica,
            &agora_crdt::AuthorKey,
            Timestamp,
        ) -> Result<Option<Entry>, LocalError>,
    ) -> Result<Option<Entry>, NodeError> {
        let local = || self.core.local(subwiki, f);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(local)
            }
            _ => local(),
        }
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
        self.core
            .post_view(subwiki, id)?
            .ok_or(NodeError::UnknownDocument(id))
    }

    /// A post as it read at `version`: a version a reader saw ([`agora_crdt::PostView`]'s
    /// `version`), or an entry id from its history (right after that change).
    pub fn post_at(
        &self,
        id: DocId,
        version: impl Into<Version>,
    ) -> Result<PostContent, NodeError> {
        let subwiki = self.core.subwiki_of(&id)?;
        let version = version.into();
        match self
            .core
            .with_replica(subwiki, |r| Ok(r.content_at(&id, &version)?))?
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
            if r.tombstone(&id).is_some() {
                // Its changes are gone with it: the post reads as retracted, and says by whom.
                return Err(LocalError::Ingest(agora_crdt::IngestError::Retracted(id)).into());
            }
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
        if limit == 0 {
            // Nothing asked for (and a read of zero keys would never say it reached the end).
            return Ok(Vec::new());
        }
        let subwikis = match subwiki {
            Some(s) => vec![s],
            None => self.core.joined()?,
        };
        let mut summaries: HashMap<SubwikiId, Summary> = HashMap::new();
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut cursor = before.map(|c| (c.created_at, c.post));
        // Hidden posts are skipped, so a page may take more than one read of the index.
        loop {
            let keys = self.core.store().feed(&subwikis, cursor, limit)?;
            let exhausted = keys.len() < limit;
            for key in keys {
                cursor = Some((key.created_at, key.post));
                let Some(item) = self.core.post_view(key.subwiki, key.post)? else {
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
        let overrides = self.core.overrides();
        self.core
            .with_replica(subwiki, |r| Ok(r.moderation(&overrides)))
    }

    /// Everyone who has signed something in a subwiki: founder first, then moderators, trusted
    /// members and the rest, each group by posts written (most first). Returns how many there
    /// are and the first `limit`, each with their role and display name there.
    pub fn members(
        &self,
        subwiki: SubwikiId,
        limit: usize,
    ) -> Result<(usize, Vec<MemberView>), NodeError> {
        self.core.with_replica(subwiki, |r| {
            let mut members = r.members();
            let roles = r.roles();
            members.sort_by_key(|m| (roles.role(&m.author), std::cmp::Reverse(m.posts), m.author));
            let total = members.len();
            let shown = members
                .into_iter()
                .take(limit)
                .map(|member| MemberView {
                    role: roles.role(&member.author),
                    name: r.display_name(&member.author),
                    member,
                })
                .collect();
            Ok((total, shown))
        })
    }

    /// The equivocations in a subwiki: who signed two different changes with the same actor
    /// and sequence number in which document, with the entries that prove it, at most `limit`
    /// (each builds its one document).
    pub fn equivocations(
        &self,
        subwiki: SubwikiId,
        limit: usize,
    ) -> Result<Vec<agora_crdt::Equivocation>, NodeError> {
        self.core.with_replica(subwiki, |r| {
            Ok(r.equivocators()
                .iter()
                .take(limit)
                .flat_map(|(doc, author)| {
                    r.equivocations_in(doc)
                        .into_iter()
                        .filter(|e| e.author == *author)
                })
                .collect())
        })
    }

    /// The authors whose votes and statements this node's owner does not count.
    pub fn overrides(&self) -> agora_crdt::Overrides {
        self.core.overrides()
    }

    /// Stops (`ignore`) or starts again counting an author's votes and statements in this
    /// owner's view only; kept in the home, never published. Returns whether anything changed.
    pub fn set_override(&self, author: AuthorId, ignore: bool) -> Result<bool, NodeError> {
        self.core.set_override(author, ignore)
    }

    /// Replication state per subwiki.
    pub fn sync_status(&self) -> HashMap<SubwikiId, SyncStatus> {
        self.core.sync_status()
    }

    /// Stores an image (a PNG, JPEG, GIF or WebP of at most [`crate::store::MAX_BLOB_BYTES`])
    /// and returns the hash to put in a post's `images`. To store it only with the post that
    /// uses it, use [`Node::create_post_with_images`] or [`Node::edit_post_with_images`].
    pub fn add_image(&self, bytes: &[u8]) -> Result<BlobHash, NodeError> {
        check_image(bytes)?;
        Ok(self.core.store().put_blob(bytes)?)
    }

    /// [`Node::create_post`] with new images, given by their bytes and added to `post.images`.
    /// Each must be a PNG, JPEG, GIF or WebP of at most [`crate::store::MAX_BLOB_BYTES`]
    /// ([`NodeError::NotAnImage`] otherwise, before anything is stored). An image is kept only
    /// with its post: if the post is refused, the images stored for it are removed again.
    pub async fn create_post_with_images(
        &self,
        subwiki: SubwikiId,
        mut post: PostContent,
        images: &[&[u8]],
    ) -> Result<DocId, NodeError> {
        let staged = self.stage_images(images, &mut post.images)?;
        let created = self.create_post(subwiki, post).await;
        if created.is_err() {
            self.unstage_images(&staged);
        }
        created
    }

    /// [`Node::edit_post`] with new images, as [`Node::create_post_with_images`] adds them.
    pub async fn edit_post_with_images(
        &self,
        id: DocId,
        base: Base,
        mut post: PostContent,
        images: &[&[u8]],
    ) -> Result<Option<EntryId>, NodeError> {
        let staged = self.stage_images(images, &mut post.images)?;
        let edited = self.edit_post(id, base, post).await;
        if !matches!(edited, Ok(Some(_))) {
            self.unstage_images(&staged);
        }
        edited
    }

    /// Checks and stores images for a post about to be written, adding their hashes to
    /// `hashes`; returns those that were not held before (to remove if the post is refused).
    fn stage_images(
        &self,
        images: &[&[u8]],
        hashes: &mut Vec<BlobHash>,
    ) -> Result<Vec<BlobHash>, NodeError> {
        for bytes in images {
            check_image(bytes)?;
        }
        let store = self.core.store();
        let mut staged = Vec::new();
        for bytes in images {
            let hash = BlobHash::of(bytes);
            let held = match store.blob(&hash) {
                Ok(held) => held.is_some(),
                Err(e) => {
                    self.unstage_images(&staged);
                    return Err(e.into());
                }
            };
            if let Err(e) = store.put_blob(bytes) {
                self.unstage_images(&staged);
                return Err(e.into());
            }
            if !held {
                staged.push(hash);
            }
            hashes.push(hash);
        }
        Ok(staged)
    }

    /// Removes images stored for a post that was refused.
    fn unstage_images(&self, staged: &[BlobHash]) {
        for hash in staged {
            if let Err(e) = self.core.store().remove_blob(hash) {
                tracing::warn!(%hash, "an image stored for a refused post stays: {e}");
            }
        }
    }

    /// An image by hash: from the store, or else fetched from connected peers, checked against
    /// its hash and kept. `None` if no one has it.
    pub async fn image(&self, hash: BlobHash) -> Result<Option<Vec<u8>>, NodeError> {
        if let Some(bytes) = self.core.store().blob(&hash)? {
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

    /// How the node is reachable (direct, relayed, LAN only), its relays and hole punches;
    /// `None` if its network task is gone.
    pub async fn network(&self) -> Option<crate::net::NetworkStatus> {
        self.ask(Command::Network).await
    }

    /// The bytes the node sent and received on the network today, and its daily cap; `None`
    /// offline.
    pub fn data_use(&self) -> Option<net::DataUse> {
        self.meter.as_ref().map(|m| m.status())
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
        let loaded = self.core.store().load(&subwiki)?;
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
    ///
    /// The entries go in on a blocking thread, [`IMPORT_CHUNK`] at a time, each chunk under
    /// the subwiki's lock only while it is applied: reads of the subwiki, and everything about
    /// other subwikis, are answered between chunks. If an entry is refused, every entry the
    /// import added is removed again.
    pub async fn import(&self, path: &Path) -> Result<(SubwikiId, Accepted), NodeError> {
        let core = Arc::clone(&self.core);
        let owned = path.to_owned();
        let imported = tokio::task::spawn_blocking(move || import_file(&core, &owned))
            .await
            .map_err(|e| NodeError::File {
                path: path.to_owned(),
                reason: format!("the import stopped: {e}"),
            })??;
        self.join(imported.0, Vec::new()).await?;
        Ok(imported)
    }

    /// Takes entries of a subwiki as they come from a peer, by gossip or catch-up (validated,
    /// checked by the replica, stored durably), on the calling thread. For benchmarks of what
    /// peers can make a node do; front ends use [`Node::import`].
    #[doc(hidden)]
    pub fn accept_from_peer(
        &self,
        subwiki: SubwikiId,
        entries: Vec<agora_crdt::Entry>,
    ) -> Result<Accepted, NodeError> {
        self.core.accept(subwiki, entries)
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
        // The search index commits what it holds (or notes it for the next start).
        self.search.shut_down(&self.core).await;
    }
}

/// Reads a local file a person named (an image to attach, an export file to import), refusing
/// what is not a regular file (a FIFO, a device such as `/dev/zero`, a directory: they could be
/// read forever) and reading at most `max` bytes, and no more than the file's size when it was
/// opened (a file growing while it is read is refused too).
/// The type of an image, read from its first bytes: `None` if it is not one of the formats a
/// post may carry (PNG, JPEG, GIF, WebP).
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

/// Refuses what cannot be a post's image: too large, or not a PNG, JPEG, GIF or WebP.
fn check_image(bytes: &[u8]) -> Result<(), NodeError> {
    if bytes.len() > crate::store::MAX_BLOB_BYTES {
        return Err(StoreError::BlobTooLarge {
            len: bytes.len(),
            max: crate::store::MAX_BLOB_BYTES,
        }
        .into());
    }
    match image_type(bytes) {
        Some(_) => Ok(()),
        None => Err(NodeError::NotAnImage),
    }
}

pub(crate) fn read_local_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max {
        return Err(format!(
            "{} bytes, over the limit of {max} bytes",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(meta.len().saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > meta.len() {
        return Err("the file grew while it was read".into());
    }
    Ok(bytes)
}

/// The largest export file [`Node::import`] reads: 16 GiB.
const MAX_IMPORT_BYTES: u64 = 16 << 30;

/// Entries applied per hold of the subwiki's lock by [`Node::import`].
pub const IMPORT_CHUNK: usize = 2_000;

/// [`Node::import`]'s work, on a blocking thread.
fn import_file(core: &Core, path: &Path) -> Result<(SubwikiId, Accepted), NodeError> {
    let file = |reason: String| NodeError::File {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_local_file(path, MAX_IMPORT_BYTES).map_err(file)?;
    let mut entries = crate::export::decode(&bytes, now()).map_err(file)?;
    drop(bytes);
    let subwiki = crate::export::single_subwiki(&entries).map_err(file)?;
    // The genesis founds the replica: it goes in with the first chunk.
    let genesis: EntryId = subwiki.into();
    if let Some(pos) = entries.iter().position(|e| e.id() == genesis) {
        entries.swap(0, pos);
    }
    let mut accepted = Accepted::default();
    let mut refused = None;
    for chunk in entries.chunks(IMPORT_CHUNK) {
        let step = core.accept(subwiki, chunk.to_vec());
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                refused = Some(Err(e));
                break;
            }
        };
        accepted.new.extend(step.new);
        accepted.duplicates += step.duplicates;
        if let Some((id, reason)) = step.refused.into_iter().next() {
            refused = Some(Ok(format!("entry {id} refused: {reason}")));
            break;
        }
    }
    let Some(failure) = refused else {
        return Ok((subwiki, accepted));
    };
    core.store().remove_entries(&accepted.new)?;
    core.wrote(subwiki);
    core.forget_replica(subwiki);
    match failure {
        Ok(reason) => Err(file(reason)),
        Err(e) => Err(e),
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
        // A page of nothing is empty (it used to loop for ever).
        assert!(node.feed_page(None, None, 0, false).unwrap().is_empty());
        assert!(
            node.feed_page(Some(subwiki), None, 0, true)
                .unwrap()
                .is_empty()
        );
        assert_eq!(feed[0].post.content.title, "p2");
        assert_eq!(feed[0].post.comments, 1);
        assert_eq!(feed[0].subwiki, subwiki);
        assert!(!node.core.is_loaded(&subwiki), "the feed loaded a replica");
        // A post that changes gets a fresh view.
        node.edit_post(feed[0].post.meta.id, Base::Latest, post("p2, edited"))
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
    async fn a_reopened_node_builds_only_the_documents_it_reads() {
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
            node.edit_post(first, Base::Latest, post("p0, edited"))
                .await
                .unwrap();
            (subwiki, first)
        };
        let node = Node::open_offline(dir.path()).unwrap();
        // A post reads from its stored view: the subwiki is not even loaded.
        assert_eq!(node.post(first).unwrap().post.content.title, "p0, edited");
        assert_eq!(node.post(first).unwrap().post.comments, 1);
        assert!(!node.core.is_loaded(&subwiki));
        // Its history builds that one document, from its two changes, and keeps a snapshot.
        assert_eq!(node.history(first).unwrap().len(), 2);
        assert!(node.core.is_loaded(&subwiki));
        let built = node
            .core
            .with_replica(subwiki, |r| Ok(r.cached_documents()));
        assert_eq!(built.unwrap(), 1, "only the post read was built");
        let saved = node.core.store().snapshot(&first).unwrap().unwrap();

        // A damaged snapshot is ignored, the document built from its changes, and the snapshot
        // written again.
        node.core
            .store()
            .put_snapshots(&[(first, b"junk".to_vec())])
            .unwrap();
        node.core.forget_replica(subwiki);
        assert_eq!(node.history(first).unwrap().len(), 2);
        assert_eq!(
            node.post_at(first, EntryId::from(first)).unwrap().title,
            "p0"
        );
        assert_eq!(node.core.store().snapshot(&first).unwrap().unwrap(), saved);
    }
}
