//! The operations of the command line, run against a [`Node`].
//!
//! A [`Call`] is what a command asks; [`execute`] runs it on a node and answers JSON. The same
//! calls travel over the local API (`POST /v1/call`, see [`crate::api`]) when `agora up` runs,
//! so a command does exactly the same thing whether it opened the store itself or asked the
//! running node, and a local web UI can use the same API.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use agora_crdt::moderation::{Standing, Statement, Tally};
use agora_crdt::{
    AuthorId, BlobHash, CommentView, Contribution, DocId, EditPolicy, EntryId, FeedCursor, Hidden,
    HistoryItem, LogItem, NotCounted, Policy, PostContent, ProfileContent, RoleAction, SubwikiId,
    Timestamp, VoteTarget, VoteValue,
};
use agora_node::{FeedItem, Node, NodeError};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What went wrong, sorted by what the user can do about it; each kind has its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Something else: the store, the disk, a bug.
    Failed,
    /// A malformed id, address or argument.
    Usage,
    /// An id this node does not know.
    NotFound,
    /// The home is in use by another process.
    Locked,
    /// No peer could be reached.
    Unreachable,
    /// The home has no identity yet.
    NoIdentity,
}

impl Kind {
    /// The process exit code for this kind of failure (documented in `docs/user-guide.md`).
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Locked => 4,
            Kind::Unreachable => 5,
            Kind::NoIdentity => 6,
        }
    }
}

/// A failed call: a kind and one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    /// What kind of failure.
    pub kind: Kind,
    /// What to tell the user.
    pub message: String,
}

impl CallError {
    /// A failure of the given kind.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<NodeError> for CallError {
    fn from(e: NodeError) -> Self {
        let kind = match &e {
            NodeError::UnknownSubwiki(_) | NodeError::UnknownDocument(_) => Kind::NotFound,
            NodeError::Store(agora_node::store::StoreError::Locked(_)) => Kind::Locked,
            _ => Kind::Failed,
        };
        CallError::new(kind, e.to_string())
    }
}

/// The result of a call.
pub type CallResult = Result<Value, CallError>;

/// One operation, as the command line asks it and as the local API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// Author id, display name, node peer id.
    Whoami {
        /// The display name from the home's profile.
        name: Option<String>,
    },
    /// Found a subwiki.
    SubwikiCreate {
        /// Name.
        name: String,
        /// Description.
        description: String,
        /// `open` or `trusted`.
        edit_policy: String,
        /// Counted votes needed for an outcome.
        #[serde(default = "default_quorum")]
        quorum: u16,
        /// Trusted vouches that make someone trusted.
        #[serde(default = "default_vouch_threshold")]
        vouch_threshold: u8,
        /// The display name to publish in it.
        profile_name: Option<String>,
    },
    /// Join a subwiki and wait for the first catch-up.
    SubwikiJoin {
        /// Subwiki id.
        id: String,
        /// Peers that have it.
        peers: Vec<String>,
        /// How long to wait, in seconds.
        timeout_secs: u64,
        /// The display name to publish in it.
        profile_name: Option<String>,
    },
    /// Stop replicating a subwiki.
    SubwikiLeave {
        /// Subwiki id.
        id: String,
    },
    /// Subwikis kept.
    SubwikiList,
    /// One subwiki.
    SubwikiShow {
        /// Subwiki id.
        id: String,
    },
    /// Subwikis heard of.
    SubwikiDiscover,
    /// An invite string.
    SubwikiInvite {
        /// Subwiki id.
        id: String,
    },
    /// Write a post.
    PostNew {
        /// Subwiki id.
        subwiki: String,
        /// Title.
        title: String,
        /// Body.
        body: String,
        /// Link.
        link: Option<String>,
        /// An image file (absolute path).
        image: Option<PathBuf>,
    },
    /// Edit a post.
    PostEdit {
        /// Post id.
        post: String,
        /// New title.
        title: Option<String>,
        /// New body.
        body: Option<String>,
    },
    /// A post with its comments, now or at a version.
    PostShow {
        /// Post id.
        post: String,
        /// Version.
        at: Option<String>,
    },
    /// A post's history.
    PostHistory {
        /// Post id.
        post: String,
    },
    /// Restore a version.
    PostRevert {
        /// Post id.
        post: String,
        /// Version.
        version: String,
    },
    /// Save a post as an Automerge file.
    PostExport {
        /// Post id.
        post: String,
        /// The file (absolute path).
        file: PathBuf,
    },
    /// Comment on a post.
    Comment {
        /// Post id.
        post: String,
        /// Text.
        text: String,
    },
    /// A page of the feed.
    Feed {
        /// Only this subwiki.
        subwiki: Option<String>,
        /// Include hidden posts.
        #[serde(default)]
        show_hidden: bool,
        /// Page size.
        limit: usize,
        /// Cursor.
        before: Option<String>,
    },
    /// A vote on a post.
    Vote {
        /// Post id.
        post: String,
        /// hide, keep, misleading, verified, withdraw.
        value: String,
        /// Why.
        reason: String,
    },
    /// A vote about an author in a subwiki.
    VoteAuthor {
        /// Subwiki id.
        subwiki: String,
        /// Author id.
        author: String,
        /// mute, unmute.
        value: String,
        /// Why.
        reason: String,
    },
    /// A role statement.
    Role {
        /// Subwiki id.
        subwiki: String,
        /// Author id.
        author: String,
        /// appoint_moderator, remove_moderator, vouch, revoke.
        action: String,
    },
    /// A subwiki's moderation log and roles.
    Modlog {
        /// Subwiki id.
        subwiki: String,
    },
    /// Change or list the personal overrides.
    Override {
        /// ignore, restore or list.
        action: String,
        /// Author id (not for list).
        author: Option<String>,
    },
    /// Connected peers.
    Peers,
    /// Sync state.
    Status,
    /// Write a subwiki to a file.
    Export {
        /// Subwiki id.
        subwiki: String,
        /// The file (absolute path).
        file: PathBuf,
    },
    /// Read a file of entries.
    Import {
        /// The file (absolute path).
        file: PathBuf,
    },
}

fn default_quorum() -> u16 {
    Policy::default().hide_quorum
}

fn default_vouch_threshold() -> u8 {
    Policy::default().vouch_threshold
}

/// The most posts one feed page may ask for.
pub const MAX_PAGE: usize = 1000;

/// How long `subwiki join` waits for a dial to a given peer to end.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn parse<T: FromStr>(what: &str, text: &str) -> Result<T, CallError>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e| CallError::new(Kind::Usage, format!("malformed {what} {text:?}: {e}")))
}

fn addr(text: &str) -> Result<Multiaddr, CallError> {
    parse("address", text)
}

/// Sets a key of a JSON object (does nothing on anything else).
pub fn set(value: &mut Value, key: &str, v: Value) {
    if let Some(object) = value.as_object_mut() {
        object.insert(key.to_owned(), v);
    }
}

/// The display of a time for JSON: milliseconds since the epoch.
fn ms(t: Timestamp) -> u64 {
    t.0
}

fn author_json(author: &AuthorId, name: Option<&str>) -> Value {
    json!({
        "id": author.to_string(),
        "name": name,
        "fingerprint": author.fingerprint(),
    })
}

/// A post as JSON (the shape `feed` and `post show` print).
pub fn post_json(item: &FeedItem) -> Value {
    let p = &item.post;
    json!({
        "id": p.meta.id.to_string(),
        "subwiki": item.subwiki.to_string(),
        "title": p.content.title,
        "body": p.content.body,
        "link": p.content.link,
        "images": p.content.images.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "tags": p.content.tags,
        "author": p.meta.creator.to_string(),
        "author_name": p.author_name,
        "author_fingerprint": p.meta.creator.fingerprint(),
        "created_at": ms(p.meta.created_at),
        "updated_at": ms(p.updated_at),
        "edits": p.edits,
        "editors": p.editors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "comments": p.comments,
    })
}

fn comment_json(c: &CommentView) -> Value {
    json!({
        "id": c.meta.id.to_string(),
        "reply_to": c.meta.reply_to.map(|r| r.to_string()),
        "author": author_json(&c.meta.creator, c.author_name.as_deref()),
        "created_at": ms(c.meta.created_at),
        "text": c.text,
    })
}

fn history_json(h: &HistoryItem) -> Value {
    json!({
        "version": h.version.to_string(),
        "author": h.author.to_string(),
        "author_fingerprint": h.author.fingerprint(),
        "timestamp": ms(h.timestamp),
        "status": format!("{:?}", h.status).to_lowercase(),
        "fields": h.fields.iter().map(|f| format!("{f:?}").to_lowercase()).collect::<Vec<_>>(),
    })
}

fn genesis_json(id: SubwikiId, genesis: Option<&agora_crdt::Genesis>) -> Value {
    json!({
        "id": id.to_string(),
        "name": genesis.map(|g| g.name.clone()),
        "description": genesis.map(|g| g.description.clone()),
        "edit_policy": genesis.map(|g| match g.policy.edit {
            EditPolicy::Open => "open",
            EditPolicy::Trusted => "trusted",
        }),
        "quorum": genesis.map(|g| g.policy.hide_quorum),
        "vouch_threshold": genesis.map(|g| g.policy.vouch_threshold),
    })
}

fn subwiki_json(node: &Node, id: SubwikiId) -> CallResult {
    let info = node
        .subwikis()?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| CallError::new(Kind::NotFound, format!("unknown subwiki {id}")))?;
    let mut value = genesis_json(id, info.genesis.as_ref());
    set(&mut value, "joined", json!(info.joined));
    set(&mut value, "entries", json!(info.entries));
    Ok(value)
}

/// The peer id at the end of an address, if it names one.
fn peer_of(addr: &Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// An invite: `agora:<subwiki id>?peer=<multiaddr>&peer=...`. [`parse_invite`] reads it back.
pub fn invite(id: SubwikiId, addrs: &[Multiaddr]) -> String {
    let mut out = format!("agora:{id}");
    for (i, a) in addrs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str("peer=");
        out.push_str(&a.to_string());
    }
    out
}

/// Reads a subwiki id or an invite: the id and the peer addresses it carries.
pub fn parse_invite(text: &str) -> Result<(SubwikiId, Vec<Multiaddr>), CallError> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix("agora:") else {
        return Ok((parse("subwiki id", text)?, Vec::new()));
    };
    let (id, query) = rest.split_once('?').unwrap_or((rest, ""));
    let id = parse("subwiki id", id)?;
    let mut peers = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let Some(value) = part.strip_prefix("peer=") else {
            return Err(CallError::new(
                Kind::Usage,
                format!("malformed invite: unexpected {part:?}"),
            ));
        };
        peers.push(addr(value)?);
    }
    Ok((id, peers))
}

/// The addresses worth giving to a friend: not loopback-only unless that is all there is, each
/// with this node's peer id.
fn shareable(node: &Node, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let me = node.peer_id();
    let with_id = |a: Multiaddr| {
        if peer_of(&a).is_some() {
            a
        } else {
            a.with(Protocol::P2p(me))
        }
    };
    let is_loopback = |a: &Multiaddr| {
        a.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_loopback(),
            Protocol::Ip6(ip) => ip.is_loopback(),
            _ => false,
        })
    };
    let (local, public): (Vec<_>, Vec<_>) = addrs.into_iter().partition(is_loopback);
    let chosen = if public.is_empty() { local } else { public };
    chosen.into_iter().map(with_id).collect()
}

fn policy(edit_policy: &str, quorum: u16, vouch_threshold: u8) -> Result<Policy, CallError> {
    if quorum == 0 || vouch_threshold == 0 {
        return Err(CallError::new(
            Kind::Usage,
            "the quorum and the vouch threshold are at least 1",
        ));
    }
    let edit = match edit_policy {
        "open" => EditPolicy::Open,
        "trusted" => EditPolicy::Trusted,
        other => {
            return Err(CallError::new(
                Kind::Usage,
                format!("unknown edit policy {other:?} (open or trusted)"),
            ));
        }
    };
    Ok(Policy {
        edit,
        vouch_threshold,
        hide_quorum: quorum,
        mark_quorum: quorum,
    })
}

async fn publish_profile(node: &Node, subwiki: SubwikiId, name: Option<String>) {
    let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
        return;
    };
    let profile = ProfileContent {
        name,
        bio: String::new(),
    };
    if let Err(e) = node.set_profile(subwiki, profile).await {
        tracing::warn!(%subwiki, "cannot publish the profile: {e}");
    }
}

/// Waits until `check` holds on the node, re-checking whenever it changes, for at most `wait`.
/// Returns whether it held.
async fn wait_for(node: &Node, wait: Duration, mut check: impl FnMut(&Node) -> bool) -> bool {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if check(node) {
            return true;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return check(node),
        }
    }
}

async fn join(
    node: &Node,
    text: &str,
    extra: &[String],
    timeout: Duration,
    profile_name: Option<String>,
) -> CallResult {
    let (id, mut peers) = parse_invite(text)?;
    for p in extra {
        peers.push(addr(p)?);
    }
    let was_joined = node.subwikis()?.iter().any(|s| s.id == id && s.joined);
    let syncs_before = node.sync_status().get(&id).map_or(0, |s| s.syncs);
    if !peers.is_empty() {
        for a in &peers {
            if peer_of(a).is_none() {
                return Err(CallError::new(
                    Kind::Usage,
                    format!("{a}: a peer address must end with /p2p/<peer id>"),
                ));
            }
        }
        // Reach at least one of the given peers first: a join that cannot reach anyone it was
        // told about fails and changes nothing.
        let wait = CONNECT_TIMEOUT.min(timeout);
        let connected: Vec<libp2p::PeerId> = node.peers().await.iter().map(|p| p.peer).collect();
        let connected = &connected;
        let attempts = peers.iter().map(|a| async move {
            if peer_of(a).is_some_and(|p| connected.contains(&p)) {
                return Ok(());
            }
            match tokio::time::timeout(wait, node.connect(a.clone())).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{a}: {e}")),
                Err(_) => Err(format!("{a}: no answer in {} s", wait.as_secs())),
            }
        });
        let results = futures::future::join_all(attempts).await;
        if !results.iter().any(Result::is_ok) {
            let reasons: Vec<String> = results.into_iter().filter_map(Result::err).collect();
            return Err(CallError::new(
                Kind::Unreachable,
                format!("cannot reach any of the peers: {}", reasons.join("; ")),
            ));
        }
    }
    // The given peers are connected by now: joining starts the catch-up with them.
    node.join(id, Vec::new()).await?;
    // Wait for a first reconciliation of this subwiki with a peer (the catch-up); the genesis
    // entry arrives with it.
    let caught_up = wait_for(node, timeout, |n| {
        n.sync_status().get(&id).map_or(0, |s| s.syncs) > syncs_before
            && n.subwikis()
                .is_ok_and(|l| l.iter().any(|s| s.id == id && s.genesis.is_some()))
    })
    .await;
    let has_genesis = node
        .subwikis()?
        .iter()
        .any(|s| s.id == id && s.genesis.is_some());
    if has_genesis {
        publish_profile(node, id, profile_name).await;
    }
    let mut value = subwiki_json(node, id)?;
    set(&mut value, "caught_up", json!(caught_up));
    set(&mut value, "already_joined", json!(was_joined));
    Ok(value)
}

fn read_image(path: &std::path::Path) -> Result<Vec<u8>, CallError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CallError::new(Kind::Usage, format!("{}: {e}", path.display())))?;
    if meta.len() > agora_node::store::MAX_BLOB_BYTES as u64 {
        return Err(CallError::new(
            Kind::Usage,
            format!(
                "{}: {} bytes, over the image limit of {} bytes",
                path.display(),
                meta.len(),
                agora_node::store::MAX_BLOB_BYTES
            ),
        ));
    }
    std::fs::read(path).map_err(|e| CallError::new(Kind::Usage, format!("{}: {e}", path.display())))
}

/// Runs a call on a node.
pub async fn execute(node: &Node, call: Call) -> CallResult {
    match call {
        Call::Whoami { name } => Ok(json!({
            "author": node.author().to_string(),
            "fingerprint": node.author().fingerprint(),
            "name": name,
            "peer_id": node.peer_id().to_string(),
        })),
        Call::SubwikiCreate {
            name,
            description,
            edit_policy,
            quorum,
            vouch_threshold,
            profile_name,
        } => {
            if name.trim().is_empty() {
                return Err(CallError::new(Kind::Usage, "a subwiki needs a name"));
            }
            let id = node
                .create_subwiki(
                    &name,
                    &description,
                    policy(&edit_policy, quorum, vouch_threshold)?,
                )
                .await?;
            publish_profile(node, id, profile_name).await;
            subwiki_json(node, id)
        }
        Call::SubwikiJoin {
            id,
            peers,
            timeout_secs,
            profile_name,
        } => {
            join(
                node,
                &id,
                &peers,
                Duration::from_secs(timeout_secs),
                profile_name,
            )
            .await
        }
        Call::SubwikiLeave { id } => {
            let id: SubwikiId = parse("subwiki id", &id)?;
            subwiki_json(node, id)?;
            node.leave(id).await?;
            subwiki_json(node, id)
        }
        Call::SubwikiList => {
            let list: Vec<Value> = node
                .subwikis()?
                .into_iter()
                .map(|s| {
                    let mut v = genesis_json(s.id, s.genesis.as_ref());
                    set(&mut v, "joined", json!(s.joined));
                    set(&mut v, "entries", json!(s.entries));
                    v
                })
                .collect();
            Ok(Value::Array(list))
        }
        Call::SubwikiShow { id } => subwiki_json(node, parse("subwiki id", &id)?),
        Call::SubwikiDiscover => {
            let found: Vec<Value> = node
                .discovered()
                .await
                .into_iter()
                .map(|(id, g)| genesis_json(id, Some(&g)))
                .collect();
            Ok(Value::Array(found))
        }
        Call::SubwikiInvite { id } => {
            let id: SubwikiId = parse("subwiki id", &id)?;
            subwiki_json(node, id)?;
            let addrs = shareable(node, node.listen_addrs().await);
            Ok(json!({
                "id": id.to_string(),
                "invite": invite(id, &addrs),
                "addresses": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
        }
        Call::PostNew {
            subwiki,
            title,
            body,
            link,
            image,
        } => {
            let subwiki: SubwikiId = parse("subwiki id", &subwiki)?;
            let mut images: Vec<BlobHash> = Vec::new();
            if let Some(path) = image {
                let bytes = read_image(&path)?;
                images.push(node.add_image(&bytes)?);
            }
            let id = node
                .create_post(
                    subwiki,
                    PostContent {
                        title,
                        body,
                        link,
                        images,
                        tags: Vec::new(),
                    },
                )
                .await?;
            Ok(post_json(&node.post(id)?))
        }
        Call::PostEdit { post, title, body } => {
            let id: DocId = parse("post id", &post)?;
            let current = node.post(id)?.post.content;
            let edited = PostContent {
                title: title.unwrap_or_else(|| current.title.clone()),
                body: body.unwrap_or_else(|| current.body.clone()),
                ..current
            };
            let version = node.edit_post(id, agora_crdt::Base::Latest, edited).await?;
            let mut value = post_json(&node.post(id)?);
            set(&mut value, "version", json!(version.map(|v| v.to_string())));
            Ok(value)
        }
        Call::PostShow { post, at } => {
            let id: DocId = parse("post id", &post)?;
            let item = node.post(id)?;
            let mut value = post_json(&item);
            set(&mut value, "status", status_json(&node.post_status(id)?));
            let moderation = node.moderation(item.subwiki)?;
            let outcome = moderation.post(&id);
            set(
                &mut value,
                "votes",
                json!({
                    "counted": outcome.map(|o| tally_json(&o.counted)),
                    "signals": outcome.map(|o| tally_json(&o.signals)),
                    "behind": moderation.explain_post(&id).into_iter().map(log_json).collect::<Vec<_>>(),
                }),
            );
            if let Some(at) = at {
                let version: EntryId = parse("version", &at)?;
                let content = node.post_at(id, version)?;
                set(&mut value, "title", json!(content.title));
                set(&mut value, "body", json!(content.body));
                set(&mut value, "link", json!(content.link));
                set(&mut value, "version", json!(version.to_string()));
            }
            let comments: Vec<Value> = node.comments(id)?.iter().map(comment_json).collect();
            set(&mut value, "comment_list", Value::Array(comments));
            Ok(value)
        }
        Call::PostHistory { post } => {
            let id: DocId = parse("post id", &post)?;
            let history: Vec<Value> = node.history(id)?.iter().map(history_json).collect();
            Ok(Value::Array(history))
        }
        Call::PostRevert { post, version } => {
            let id: DocId = parse("post id", &post)?;
            let version: EntryId = parse("version", &version)?;
            let new = node.revert(id, version).await?;
            let mut value = post_json(&node.post(id)?);
            set(&mut value, "version", json!(new.map(|v| v.to_string())));
            Ok(value)
        }
        Call::PostExport { post, file } => {
            let id: DocId = parse("post id", &post)?;
            let bytes = node.export_post(id)?;
            std::fs::write(&file, &bytes)
                .map_err(|e| CallError::new(Kind::Failed, format!("{}: {e}", file.display())))?;
            Ok(json!({ "id": id.to_string(), "file": file, "bytes": bytes.len() }))
        }
        Call::Comment { post, text } => {
            let id: DocId = parse("post id", &post)?;
            if text.trim().is_empty() {
                return Err(CallError::new(Kind::Usage, "an empty comment"));
            }
            let comment = node.comment(id, None, &text).await?;
            Ok(json!({ "id": comment.to_string(), "post": id.to_string() }))
        }
        Call::Feed {
            subwiki,
            show_hidden,
            limit,
            before,
        } => {
            let subwiki = match subwiki {
                Some(s) => {
                    let id: SubwikiId = parse("subwiki id", &s)?;
                    subwiki_json(node, id)?;
                    Some(id)
                }
                None => None,
            };
            let before: Option<FeedCursor> = match before {
                Some(c) => Some(parse("cursor", &c)?),
                None => None,
            };
            let items = node.feed_page(subwiki, before, limit.clamp(1, MAX_PAGE), show_hidden)?;
            let names: std::collections::HashMap<SubwikiId, String> = node
                .subwikis()?
                .into_iter()
                .filter_map(|s| Some((s.id, s.genesis?.name)))
                .collect();
            let posts = items
                .iter()
                .map(|(item, status)| {
                    let mut value = post_json(item);
                    set(&mut value, "status", status_json(status));
                    set(&mut value, "subwiki_name", json!(names.get(&item.subwiki)));
                    let cursor = FeedCursor {
                        created_at: item.post.meta.created_at,
                        post: item.post.meta.id,
                    };
                    set(&mut value, "cursor", json!(cursor.to_string()));
                    value
                })
                .collect();
            Ok(Value::Array(posts))
        }
        Call::Vote {
            post,
            value,
            reason,
        } => {
            let id: DocId = parse("post id", &post)?;
            let value = vote_value(&value)?;
            if matches!(value, VoteValue::Mute | VoteValue::Unmute) {
                return Err(CallError::new(
                    Kind::Usage,
                    "mute and unmute are about authors",
                ));
            }
            let vote = node.vote_post(id, value, &reason).await?;
            Ok(json!({ "id": vote.to_string(), "post": id.to_string() }))
        }
        Call::VoteAuthor {
            subwiki,
            author,
            value,
            reason,
        } => {
            let subwiki: SubwikiId = parse("subwiki id", &subwiki)?;
            let author: AuthorId = parse("author id", &author)?;
            let value = vote_value(&value)?;
            let vote = node
                .vote(subwiki, VoteTarget::Author(author), value, &reason)
                .await?;
            Ok(json!({ "id": vote.to_string(), "author": author.to_string() }))
        }
        Call::Role {
            subwiki,
            author,
            action,
        } => {
            let subwiki: SubwikiId = parse("subwiki id", &subwiki)?;
            let author: AuthorId = parse("author id", &author)?;
            let statement = node
                .state_role(subwiki, role_action(&action)?, author)
                .await?;
            Ok(json!({ "id": statement.to_string(), "author": author.to_string() }))
        }
        Call::Modlog { subwiki } => {
            let id: SubwikiId = parse("subwiki id", &subwiki)?;
            subwiki_json(node, id)?;
            let moderation = node.moderation(id)?;
            let roles = moderation.roles();
            Ok(json!({
                "id": id.to_string(),
                "founder": roles.founder().to_string(),
                "moderators": roles.moderators().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "trusted": roles.trusted().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "barred": roles.barred().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "hidden": moderation.posts().iter().filter(|(_, o)| o.hidden).map(|(p, _)| p.to_string()).collect::<Vec<_>>(),
                "muted": moderation.muted().map(|a| a.to_string()).collect::<Vec<_>>(),
                "overridden": node.overrides().ignored.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "log": moderation.log().iter().map(log_json).collect::<Vec<_>>(),
            }))
        }
        Call::Override { action, author } => {
            let author = author
                .map(|a| parse::<AuthorId>("author id", &a))
                .transpose()?;
            match (action.as_str(), author) {
                ("ignore", Some(a)) => {
                    node.set_override(a, true)?;
                }
                ("restore", Some(a)) => {
                    node.set_override(a, false)?;
                }
                ("list", None) => {}
                _ => {
                    return Err(CallError::new(
                        Kind::Usage,
                        "override: ignore AUTHOR, restore AUTHOR or list",
                    ));
                }
            }
            Ok(json!({
                "ignored": node.overrides().ignored.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))
        }
        Call::Peers => {
            let peers: Vec<Value> = node
                .peers()
                .await
                .into_iter()
                .map(|p| {
                    json!({
                        "peer_id": p.peer.to_string(),
                        "addresses": p.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok(Value::Array(peers))
        }
        Call::Status => {
            let status = node.sync_status();
            let peers = node.peers().await.len();
            let subwikis: Vec<Value> = node
                .subwikis()?
                .into_iter()
                .filter(|s| s.joined)
                .map(|s| {
                    let st = status.get(&s.id).cloned().unwrap_or_default();
                    json!({
                        "id": s.id.to_string(),
                        "name": s.genesis.as_ref().map(|g| g.name.clone()),
                        "entries": s.entries,
                        "syncs": st.syncs,
                        "last_sync": st.last_sync.map(ms),
                        "received": st.received,
                        "refused": st.refused,
                    })
                })
                .collect();
            Ok(
                json!({ "peer_id": node.peer_id().to_string(), "peers": peers, "subwikis": subwikis }),
            )
        }
        Call::Export { subwiki, file } => {
            let id: SubwikiId = parse("subwiki id", &subwiki)?;
            let count = node.export(id, &file)?;
            Ok(json!({ "id": id.to_string(), "file": file, "entries": count }))
        }
        Call::Import { file } => {
            if !file.exists() {
                return Err(CallError::new(
                    Kind::Usage,
                    format!("{}: no such file", file.display()),
                ));
            }
            let (id, accepted) = node.import(&file).await?;
            Ok(json!({
                "id": id.to_string(),
                "new": accepted.new.len(),
                "duplicates": accepted.duplicates,
            }))
        }
    }
}

fn vote_value(text: &str) -> Result<VoteValue, CallError> {
    Ok(match text {
        "hide" => VoteValue::Hide,
        "keep" => VoteValue::Keep,
        "misleading" => VoteValue::Misleading,
        "verified" => VoteValue::Verified,
        "withdraw" => VoteValue::Withdraw,
        "mute" => VoteValue::Mute,
        "unmute" => VoteValue::Unmute,
        other => {
            return Err(CallError::new(
                Kind::Usage,
                format!("unknown vote {other:?}"),
            ));
        }
    })
}

fn role_action(text: &str) -> Result<RoleAction, CallError> {
    Ok(match text {
        "appoint_moderator" => RoleAction::AppointModerator,
        "remove_moderator" => RoleAction::RemoveModerator,
        "vouch" => RoleAction::Vouch,
        "revoke" => RoleAction::Revoke,
        other => {
            return Err(CallError::new(
                Kind::Usage,
                format!("unknown role action {other:?}"),
            ));
        }
    })
}

fn status_json(status: &agora_node::PostStatus) -> Value {
    json!({
        "hidden": status.hidden.map(|h| match h {
            Hidden::ByVotes => "votes",
            Hidden::AuthorMuted => "author_muted",
            Hidden::PostHidden => "post_hidden",
        }),
        "disputed": status.disputed,
        "verified": status.verified,
    })
}

fn tally_json(t: &Tally) -> Value {
    json!({
        "hide": t.hide, "keep": t.keep, "misleading": t.misleading, "verified": t.verified,
        "mute": t.mute, "unmute": t.unmute,
    })
}

fn vote_name(v: VoteValue) -> &'static str {
    match v {
        VoteValue::Hide => "hide",
        VoteValue::Keep => "keep",
        VoteValue::Misleading => "misleading",
        VoteValue::Verified => "verified",
        VoteValue::Withdraw => "withdraw",
        VoteValue::Mute => "mute",
        VoteValue::Unmute => "unmute",
    }
}

fn action_name(a: RoleAction) -> &'static str {
    match a {
        RoleAction::AppointModerator => "appoint_moderator",
        RoleAction::RemoveModerator => "remove_moderator",
        RoleAction::Vouch => "vouch",
        RoleAction::Revoke => "revoke",
    }
}

/// One moderation log line as JSON.
fn log_json(item: &LogItem) -> Value {
    let (kind, what, about, reason) = match &item.statement {
        Statement::Role(r) => (
            "role",
            action_name(r.action),
            r.subject.to_string(),
            String::new(),
        ),
        Statement::Vote(v) => (
            "vote",
            vote_name(v.value),
            match v.target {
                VoteTarget::Post(p) => p.to_string(),
                VoteTarget::Author(a) => a.to_string(),
            },
            v.reason.clone(),
        ),
    };
    let (counted, why_not) = match item.standing {
        Standing::Counted => (true, None),
        Standing::NotCounted(n) => (
            false,
            Some(match n {
                NotCounted::NotFounder => {
                    "only the founder appoints and removes moderators".to_owned()
                }
                NotCounted::SignerNotTrusted => "the signer is not trusted".to_owned(),
                NotCounted::Superseded { by } => format!("replaced by the signer's later {by}"),
                NotCounted::Overridden => "you ignore this signer".to_owned(),
                NotCounted::AboutSelf => "a statement about oneself".to_owned(),
            }),
        ),
    };
    let contributed = item.contributed.map(|c| match c {
        Contribution::Moderator(a) => format!("made {a} a moderator"),
        Contribution::NotModerator(a) => format!("removed {a} as moderator"),
        Contribution::Trusted(a) => format!("made {a} trusted"),
        Contribution::Barred(a) => format!("barred {a} from trust"),
        Contribution::Hidden(p) => format!("hid {p}"),
        Contribution::KeptVisible(p) => format!("kept {p} visible"),
        Contribution::Disputed(p) => format!("marked {p} disputed"),
        Contribution::Verified(p) => format!("marked {p} verified"),
        Contribution::Muted(a) => format!("muted {a}"),
        Contribution::KeptUnmuted(a) => format!("kept {a} unmuted"),
    });
    json!({
        "entry": item.entry.to_string(),
        "signer": item.signer.to_string(),
        "signer_fingerprint": item.signer.fingerprint(),
        "timestamp": ms(item.timestamp),
        "kind": kind,
        "what": what,
        "about": about,
        "reason": reason,
        "counted": counted,
        "not_counted_because": why_not,
        "contributed": contributed,
    })
}

/// Whether a call needs the network when no node is running: a temporary one is started for it.
pub fn needs_network(call: &Call) -> bool {
    matches!(call, Call::SubwikiJoin { .. } | Call::SubwikiDiscover)
}
