//! The composed libp2p behaviour and the swarm it runs in.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, allow_block_list, autonat, connection_limits, dcutr, gossipsub,
    identify, kad, mdns, noise, ping, relay, request_response, tcp, yamux,
};

use super::codec::Codec;
use crate::api::{Config, NodeError};

/// Kademlia's protocol name: Agora's own DHT, not the IPFS one.
pub const KAD_PROTOCOL: &str = "/agora/kad/1.0.0";
/// The reconciliation request-response protocol.
pub const SYNC_PROTOCOL: &str = "/agora/sync/1.0.0";
/// The blob (image) request-response protocol: a 32-byte blake3 hash asked, the bytes (or
/// nothing) answered.
pub const BLOB_PROTOCOL: &str = "/agora/blob/1.0.0";
/// identify's protocol version string.
pub const PROTOCOL_VERSION: &str = "/agora/1.0.0";

/// Connections in total, and per peer.
const MAX_CONNECTIONS: u32 = 256;
const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Topics a remote peer may be subscribed to, as far as this node keeps track (gossipsub's own
/// filter would stop at 100). A node in more subwikis than this is not fully seen by its peers.
pub const MAX_TOPICS: usize = 500;
/// Gossip messages are single entries, plus framing.
const MAX_GOSSIP_BYTES: usize = agora_crdt::limits::MAX_ENTRY_BYTES + 1024;

pub(crate) fn kad_protocol() -> StreamProtocol {
    StreamProtocol::new(KAD_PROTOCOL)
}

/// Gossipsub with a cap on the topics a peer may subscribe to.
pub(crate) type Gossipsub = gossipsub::Behaviour<
    gossipsub::IdentityTransform,
    gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
>;

/// Everything a node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossipsub: Gossipsub,
    pub(crate) sync: request_response::Behaviour<Codec>,
    pub(crate) blobs: request_response::Behaviour<Codec>,
    pub(crate) relay: relay::client::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    pub(crate) autonat: autonat::Behaviour,
}

/// The gossipsub message id of an entry is its entry id: blake3 of the body (all but the last
/// 64 signature bytes). Malformed data gets the hash of all of it; it is rejected anyway.
fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let data = &message.data;
    let body = data
        .len()
        .checked_sub(agora_crdt::entry::SIGNATURE_LEN)
        .and_then(|n| data.get(..n))
        .unwrap_or(data);
    gossipsub::MessageId::from(blake3::hash(body).as_bytes().to_vec())
}

fn gossipsub_behaviour() -> Result<Gossipsub, NodeError> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| NodeError::Network(format!("gossipsub config: {e}")))?;
    let filter = gossipsub::MaxCountSubscriptionFilter {
        filter: gossipsub::AllowAllSubscriptionFilter {},
        max_subscribed_topics: MAX_TOPICS,
        max_subscriptions_per_request: MAX_TOPICS,
    };
    let mut behaviour = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Anonymous,
        config,
        filter,
    )
    .map_err(|e| NodeError::Network(format!("gossipsub: {e}")))?;
    behaviour
        .with_peer_score(
            gossipsub::PeerScoreParams::default(),
            gossipsub::PeerScoreThresholds::default(),
        )
        .map_err(|e| NodeError::Network(format!("gossipsub scoring: {e}")))?;
    Ok(behaviour)
}

pub(crate) fn build_swarm(key: Keypair, config: &Config) -> Result<Swarm<Behaviour>, NodeError> {
    let net = |e: &dyn std::fmt::Display| NodeError::Network(e.to_string());
    let mdns_enabled = config.mdns;
    let dht_server = config.dht_server;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| net(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| net(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| net(&e))?
        .with_behaviour(|key, relay| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(kad_protocol());
            kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(300)));
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            );
            if dht_server {
                kad.set_mode(Some(kad::Mode::Server));
            }
            let mdns = if mdns_enabled {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let sync = request_response::Behaviour::with_codec(
                Codec,
                [(
                    StreamProtocol::new(SYNC_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(30))
                    .with_max_concurrent_streams(64),
            );
            let blobs = request_response::Behaviour::with_codec(
                Codec,
                [(
                    StreamProtocol::new(BLOB_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(16),
            );
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(MAX_CONNECTIONS))
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(identify::Config::new(
                    PROTOCOL_VERSION.to_owned(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                kad,
                mdns: Toggle::from(mdns),
                gossipsub: gossipsub_behaviour().map_err(Box::new)?,
                sync,
                blobs,
                relay,
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
            })
        })
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}
