//! Peers and the node's replication state.

use agora_crdt::{SubwikiId, Timestamp};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::http::{ApiError, Operation};
use crate::net::{DataUse, NetworkStatus};
use crate::store::Damage;
use crate::{CatchUp, Node};

/// Peers the running node is connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Peers {}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its transport identity.
    #[serde(with = "super::text")]
    pub peer_id: PeerId,
    /// Where it is connected.
    #[serde(with = "super::text::vec")]
    pub addresses: Vec<Multiaddr>,
    /// How: `direct`, or `relayed` when every connection to it goes through a relay.
    #[serde(default = "direct")]
    pub path: String,
}

fn direct() -> String {
    "direct".to_owned()
}

impl Operation for Peers {
    const PATH: &'static str = "peers";
    type Answer = Vec<Peer>;

    async fn run(self, node: &Node) -> Result<Vec<Peer>, ApiError> {
        Ok(node
            .peers()
            .await
            .into_iter()
            .map(|p| Peer {
                peer_id: p.peer,
                addresses: p.addresses,
                path: if p.relayed { "relayed" } else { "direct" }.to_owned(),
            })
            .collect())
    }
}

/// Sync state per subwiki: entries held, peers, last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Status {}

/// The replication state of one joined subwiki.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubwikiSync {
    /// The subwiki.
    pub id: SubwikiId,
    /// Its name, once known.
    pub name: Option<String>,
    /// Entries held.
    pub entries: usize,
    /// Reconciliations completed with peers since the node started.
    pub syncs: u64,
    /// When the last one completed (ms).
    pub last_sync: Option<Timestamp>,
    /// Entries received from peers.
    pub received: u64,
    /// Invalid entries peers sent, all refused.
    pub refused: u64,
    /// The catch-up in progress, if any: peers, entries fetched and still to fetch.
    #[serde(default)]
    pub catch_up: Option<CatchUp>,
}

/// The node's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its transport identity.
    #[serde(with = "super::text")]
    pub peer_id: PeerId,
    /// Peers connected.
    pub peers: usize,
    /// The joined subwikis.
    pub subwikis: Vec<SubwikiSync>,
    /// Whether this came from a running node (`agora up`) rather than from the store (set by
    /// the client that asked).
    #[serde(default)]
    pub running: bool,
    /// Subwikis holding fewer entries than this node once stored: the store was damaged. A
    /// joined one fetches them again from peers. Empty when nothing is lost.
    #[serde(default)]
    pub damaged: Vec<Damage>,
    /// How the running node is reachable, its relays and hole punches (`None` from the
    /// store alone).
    #[serde(default)]
    pub network: Option<NetworkStatus>,
    /// The bytes the running node sent and received on the network today (UTC) and its daily
    /// cap (`None` from the store alone).
    #[serde(default)]
    pub data: Option<DataUse>,
}

impl Operation for Status {
    const PATH: &'static str = "status";
    type Answer = NodeStatus;

    async fn run(self, node: &Node) -> Result<NodeStatus, ApiError> {
        let status = node.sync_status();
        let peers = node.peers().await.len();
        let subwikis = node
            .subwikis()?
            .into_iter()
            .filter(|s| s.joined)
            .map(|s| {
                let st = status.get(&s.id).cloned().unwrap_or_default();
                SubwikiSync {
                    id: s.id,
                    name: s.genesis.map(|g| g.name),
                    entries: s.entries,
                    syncs: st.syncs,
                    last_sync: st.last_sync,
                    received: st.received,
                    refused: st.refused,
                    catch_up: st.catch_up,
                }
            })
            .collect();
        Ok(NodeStatus {
            peer_id: node.peer_id(),
            peers,
            subwikis,
            running: false,
            damaged: node.damage()?,
            network: node.network().await,
            data: node.data_use(),
        })
    }
}

/// A one-time link that signs a browser in to this node's web UI (valid once, for ten minutes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct UiLogin {}

/// The login link's secret: open `http://<api address>/login?t=<secret>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLink {
    /// The one-time secret.
    pub secret: String,
}

impl Operation for UiLogin {
    const PATH: &'static str = "ui/login";
    type Answer = LoginLink;

    async fn run(self, node: &Node) -> Result<LoginLink, ApiError> {
        let secret = node
            .sessions()
            .new_link()
            .ok_or_else(|| ApiError::failed("no randomness for a login link"))?;
        Ok(LoginLink { secret })
    }
}
