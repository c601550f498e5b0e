//! Founding, joining, leaving, listing and inviting to subwikis.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use agora_crdt::{EditPolicy, Policy, ProfileContent, SubwikiId};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use super::{Subwiki, SubwikiAbout, check_within, parser, within};
use crate::Node;
use crate::http::{ApiError, ErrorKind, Operation};

/// How long a join waits for a dial to a given peer to end.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a join may wait for its catch-up, in seconds.
pub const MAX_JOIN_WAIT_SECS: u64 = 600;

fn default_quorum() -> u16 {
    Policy::default().hide_quorum
}

fn default_vouch_threshold() -> u8 {
    Policy::default().vouch_threshold
}

/// Found a subwiki; prints its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiCreate {
    /// Its name.
    pub name: String,
    /// What it is about.
    #[arg(long, default_value = "")]
    #[serde(default)]
    pub description: String,
    /// Who may edit others' posts: open (every member) or trusted.
    #[arg(long, default_value = "open", value_parser = parser::<EditPolicy>("edit policy"))]
    pub edit_policy: EditPolicy,
    /// Counted votes needed to hide a post, mark it disputed or verified, or mute an author.
    #[arg(long, default_value_t = default_quorum(), value_parser = clap::value_parser!(u16).range(1..))]
    #[serde(default = "default_quorum")]
    pub quorum: u16,
    /// Trusted members whose vouches make someone trusted (a moderator's alone suffices).
    #[arg(long, default_value_t = default_vouch_threshold(), value_parser = clap::value_parser!(u8).range(1..))]
    #[serde(default = "default_vouch_threshold")]
    pub vouch_threshold: u8,
    /// The display name to publish in it.
    #[arg(skip)]
    #[serde(default)]
    pub profile_name: Option<String>,
}

impl Operation for SubwikiCreate {
    const PATH: &'static str = "subwiki/create";
    type Answer = Subwiki;

    async fn run(self, node: &Node) -> Result<Subwiki, ApiError> {
        if self.name.trim().is_empty() {
            return Err(ApiError::usage("a subwiki needs a name"));
        }
        if self.quorum == 0 || self.vouch_threshold == 0 {
            return Err(ApiError::usage(
                "the quorum and the vouch threshold are at least 1",
            ));
        }
        let policy = Policy {
            edit: self.edit_policy,
            vouch_threshold: self.vouch_threshold,
            hide_quorum: self.quorum,
            mark_quorum: self.quorum,
        };
        let id = node
            .create_subwiki(&self.name, &self.description, policy)
            .await
            .map_err(ApiError::from)?;
        publish_profile(node, id, self.profile_name).await;
        Subwiki::of(node, id)
    }
}

/// A subwiki id with addresses of peers that have it: `agora:<id>?peer=<multiaddr>&peer=…`,
/// or a bare id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The subwiki.
    pub id: SubwikiId,
    /// Peers to ask, each ending with `/p2p/<peer id>`.
    pub peers: Vec<Multiaddr>,
}

impl fmt::Display for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agora:{}", self.id)?;
        for (i, a) in self.peers.iter().enumerate() {
            write!(f, "{}peer={a}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl FromStr for Invite {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("agora:") else {
            let id = text
                .parse()
                .map_err(|e| format!("malformed subwiki id: {e}"))?;
            return Ok(Self {
                id,
                peers: Vec::new(),
            });
        };
        let (id, query) = rest.split_once('?').unwrap_or((rest, ""));
        let id = id
            .parse()
            .map_err(|e| format!("malformed subwiki id: {e}"))?;
        let mut peers = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let Some(value) = part.strip_prefix("peer=") else {
                return Err(format!("unexpected {part:?}"));
            };
            peers.push(
                value
                    .parse()
                    .map_err(|e| format!("malformed address {value:?}: {e}"))?,
            );
        }
        Ok(Self { id, peers })
    }
}

impl Serialize for Invite {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Invite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Join a subwiki by id or by an invite from `agora subwiki invite`, and catch up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiJoin {
    /// The subwiki id, or an invite.
    #[arg(value_name = "ID", value_parser = parser::<Invite>("invite"))]
    pub id: Invite,
    /// A peer that has it (repeatable).
    #[arg(long = "peer", value_name = "MULTIADDR", value_parser = parser::<Multiaddr>("address"))]
    #[serde(default, with = "super::text::vec")]
    pub peers: Vec<Multiaddr>,
    /// How long to wait for peers and the catch-up, in seconds (1 to 600). A join that
    /// receives nothing of the subwiki in that time fails and leaves nothing joined.
    #[arg(
        long = "timeout",
        default_value_t = 60,
        value_parser = within("--timeout", 1..=MAX_JOIN_WAIT_SECS)
    )]
    #[serde(default = "default_join_wait")]
    pub timeout_secs: u64,
    /// The display name to publish in it.
    #[arg(skip)]
    #[serde(default)]
    pub profile_name: Option<String>,
}

fn default_join_wait() -> u64 {
    60
}

/// A subwiki joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The subwiki, as held now.
    #[serde(flatten)]
    pub subwiki: Subwiki,
    /// Whether a first reconciliation with a peer finished in time.
    pub caught_up: bool,
    /// Whether the owner was a member already.
    pub already_joined: bool,
}

/// The peer id at the end of an address, if it names one.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Waits until `check` holds on the node, re-checking whenever it changes, for at most `wait`.
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

impl Operation for SubwikiJoin {
    const PATH: &'static str = "subwiki/join";
    const NEEDS_NETWORK: bool = true;
    type Answer = Joined;

    async fn run(self, node: &Node) -> Result<Joined, ApiError> {
        let id = self.id.id;
        let timeout = Duration::from_secs(check_within(
            "timeout_secs",
            self.timeout_secs,
            &(1..=MAX_JOIN_WAIT_SECS),
        )?);
        let mut peers = self.id.peers;
        peers.extend(self.peers);
        let was_joined = node.subwikis()?.iter().any(|s| s.id == id && s.joined);
        let syncs_before = node.sync_status().get(&id).map_or(0, |s| s.syncs);
        if let Some(a) = peers.iter().find(|a| peer_of(a).is_none()) {
            return Err(ApiError::usage(format!(
                "{a}: a peer address must end with /p2p/<peer id>"
            )));
        }
        if !peers.is_empty() {
            // Reach at least one of the given peers first: a join that cannot reach anyone it
            // was told about fails and changes nothing.
            let wait = CONNECT_TIMEOUT.min(timeout);
            let connected: Vec<PeerId> = node.peers().await.iter().map(|p| p.peer).collect();
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
                return Err(ApiError::new(
                    ErrorKind::Unreachable,
                    format!("cannot reach any of the peers: {}", reasons.join("; ")),
                ));
            }
        }
        // The given peers are connected by now: joining starts the catch-up with them.
        node.join(id, Vec::new()).await?;
        let has_genesis = |n: &Node| {
            n.subwikis()
                .is_ok_and(|l| l.iter().any(|s| s.id == id && s.genesis.is_some()))
        };
        // Wait for a first reconciliation of this subwiki with a peer (the catch-up); the
        // genesis entry arrives with it.
        let caught_up = wait_for(node, timeout, |n| {
            n.sync_status().get(&id).map_or(0, |s| s.syncs) > syncs_before && has_genesis(n)
        })
        .await;
        if !has_genesis(node) {
            // Nothing of the subwiki arrived: no phantom subwiki is left behind.
            if !was_joined {
                node.leave(id).await?;
            }
            return Err(ApiError::new(
                ErrorKind::Unreachable,
                format!(
                    "no peer sent subwiki {id} within {} s; nothing joined (check the id, \
                     or join with --peer or an invite while a peer that has it is online)",
                    timeout.as_secs()
                ),
            ));
        }
        publish_profile(node, id, self.profile_name).await;
        Ok(Joined {
            subwiki: Subwiki::of(node, id)?,
            caught_up,
            already_joined: was_joined,
        })
    }
}

/// Stop replicating a subwiki; with --purge, also delete everything of it from this home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiLeave {
    /// The subwiki.
    #[arg(value_parser = parser::<SubwikiId>("subwiki id"))]
    pub id: SubwikiId,
    /// Also delete its entries, posts, comments and search index from this home (what you
    /// wrote there stays on others' nodes: `agora account retract` takes it back). Joining it
    /// again fetches it anew.
    #[arg(long)]
    #[serde(default)]
    pub purge: bool,
}

/// A subwiki left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    /// The subwiki as it was kept before it was left, marked not joined.
    #[serde(flatten)]
    pub subwiki: Subwiki,
    /// Whether its entries were deleted from the home.
    #[serde(default)]
    pub purged: bool,
}

impl Operation for SubwikiLeave {
    const PATH: &'static str = "subwiki/leave";
    type Answer = Left;

    async fn run(self, node: &Node) -> Result<Left, ApiError> {
        let mut left = Subwiki::of(node, self.id)?;
        if self.purge {
            node.leave_and_purge(self.id).await?;
        } else {
            node.leave(self.id).await?;
        }
        left.joined = false;
        Ok(Left {
            subwiki: left,
            purged: self.purge,
        })
    }
}

/// The subwikis kept on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiList {}

impl Operation for SubwikiList {
    const PATH: &'static str = "subwiki/list";
    type Answer = Vec<Subwiki>;

    async fn run(self, node: &Node) -> Result<Vec<Subwiki>, ApiError> {
        Ok(node
            .subwikis()?
            .into_iter()
            .filter(Subwiki::kept)
            .map(Subwiki::from)
            .collect())
    }
}

/// A subwiki's name, description, policy and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiShow {
    /// The subwiki.
    #[arg(value_parser = parser::<SubwikiId>("subwiki id"))]
    pub id: SubwikiId,
}

impl Operation for SubwikiShow {
    const PATH: &'static str = "subwiki/show";
    type Answer = Subwiki;

    async fn run(self, node: &Node) -> Result<Subwiki, ApiError> {
        Subwiki::of(node, self.id)
    }
}

/// Subwikis announced on the network that this node has heard of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiDiscover {}

impl Operation for SubwikiDiscover {
    const PATH: &'static str = "subwiki/discover";
    const NEEDS_NETWORK: bool = true;
    type Answer = Vec<SubwikiAbout>;

    async fn run(self, node: &Node) -> Result<Vec<SubwikiAbout>, ApiError> {
        Ok(node
            .discovered()
            .await
            .into_iter()
            .map(|(id, g)| SubwikiAbout::new(id, Some(&g)))
            .collect())
    }
}

/// Print an invite: the subwiki id with this node's addresses, for `agora subwiki join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct SubwikiInvite {
    /// The subwiki.
    #[arg(value_parser = parser::<SubwikiId>("subwiki id"))]
    pub id: SubwikiId,
}

/// An invite to a subwiki.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The subwiki.
    pub id: SubwikiId,
    /// The invite to give a friend.
    pub invite: Invite,
    /// The addresses in it.
    #[serde(with = "super::text::vec")]
    pub addresses: Vec<Multiaddr>,
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

impl Operation for SubwikiInvite {
    const PATH: &'static str = "subwiki/invite";
    type Answer = Invitation;

    async fn run(self, node: &Node) -> Result<Invitation, ApiError> {
        Subwiki::of(node, self.id)?;
        let addresses = shareable(node, node.listen_addrs().await);
        Ok(Invitation {
            id: self.id,
            invite: Invite {
                id: self.id,
                peers: addresses.clone(),
            },
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn invites_read_back() {
        let id = SubwikiId::from_bytes([3; 32]);
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        let invite = Invite {
            id,
            peers: vec![addr.clone(), addr],
        };
        assert_eq!(invite.to_string().parse::<Invite>().unwrap(), invite);
        assert_eq!(id.to_string().parse::<Invite>().unwrap().peers, vec![]);
        assert!("agora:sw_x?peer=/not/an/address".parse::<Invite>().is_err());
        assert!(format!("agora:{id}?friend=1").parse::<Invite>().is_err());
    }
}
