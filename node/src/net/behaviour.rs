//! The composed libp2p behaviour and the swarm it runs in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use libp2p::{
    StreamProtocol, Swarm, allow_block_list, autonat, connection_limits, dcutr, gossipsub,
    identify, kad, mdns, noise, ping, relay, request_response, tcp, yamux,
};

use super::RelayLimits;
use super::codec::Codec;
use crate::config::Config;
use crate::error::NodeError;

/// Kademlia's protocol name: Agora's own DHT, not the IPFS one.
pub const KAD_PROTOCOL: &str = "/agora/kad/1.0.0";
/// The reconciliation request-response protocol.
pub const SYNC_PROTOCOL: &str = "/agora/sync/2.0.0";
/// The blob (image) request-response protocol: a 32-byte blake3 hash asked, the bytes (or
/// nothing) answered.
pub const BLOB_PROTOCOL: &str = "/agora/blob/1.0.0";
/// identify's protocol version string.
pub const PROTOCOL_VERSION: &str = "/agora/1.0.0";

/// Topics a remote peer may be subscribed to, as far as this node keeps track (gossipsub's own
/// filter would stop at 100). A node in more subwikis than this is not fully seen by its peers.
pub const MAX_TOPICS: usize = 500;
/// Peers sharing one IP address before gossipsub's scoring starts penalising them.
const IP_COLOCATION_THRESHOLD: f64 = 64.0;
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
    pub(crate) memory: MemoryGuard,
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossipsub: Gossipsub,
    pub(crate) sync: request_response::Behaviour<Codec>,
    pub(crate) blobs: request_response::Behaviour<Codec>,
    pub(crate) relay: relay::client::Behaviour,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
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
    // Gossipsub's default scoring penalises every peer beyond 10 that shares an IP address, and
    // from about 14 it ignores them all: people behind one NAT (or carrier-grade NAT), and
    // nodes on one host, lose gossip altogether (seen in the 50-node simulation runs). Allow
    // many more per address, and none of the penalty on loopback.
    let mut score = gossipsub::PeerScoreParams {
        ip_colocation_factor_threshold: IP_COLOCATION_THRESHOLD,
        ..gossipsub::PeerScoreParams::default()
    };
    score.ip_colocation_factor_whitelist.extend([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]);
    behaviour
        .with_peer_score(score, gossipsub::PeerScoreThresholds::default())
        .map_err(|e| NodeError::Network(format!("gossipsub scoring: {e}")))?;
    Ok(behaviour)
}

/// The swarm; its transport counts the bytes it carries into `meter`, and stops at the day's cap
/// (`net/budget/counted.rs`).
pub(crate) fn build_swarm(
    key: Keypair,
    config: &Config,
    meter: std::sync::Arc<super::Meter>,
) -> Result<Swarm<Behaviour>, NodeError> {
    let net = |e: &dyn std::fmt::Display| NodeError::Network(e.to_string());
    let mdns_enabled = config.mdns;
    let dht_server = config.dht_server;
    let relay_server = config.relay_server.clone();
    let limits = config.limits.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        // TCP (noise, yamux) and QUIC, as `with_tcp` and `with_quic` make them, counted.
        .with_other_transport(|key| {
            super::budget::counted::transport(key, tcp::Config::default().nodelay(true), meter)
        })
        .map_err(|e| net(&e))?
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
            let connections = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(limits.max_connections))
                .with_max_established_per_peer(Some(limits.max_connections_per_peer))
                .with_max_established_incoming(limits.max_established_incoming)
                .with_max_pending_incoming(limits.max_pending_incoming);
            let relay_server = relay_server.map(|r| {
                let mut server = relay::Behaviour::new(peer_id, relay_config(&r));
                // Serve from the start: a bootstrap peer is configured to be one, whether or
                // not AutoNAT has confirmed an external address yet.
                server.set_status(Some(relay::Status::Enable));
                server
            });
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(connections),
                memory: MemoryGuard::new(limits.max_memory_bytes),
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
                relay_server: Toggle::from(relay_server),
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: autonat::Behaviour::new(
                    peer_id,
                    autonat::Config {
                        // A node wants to know soon whether it needs a relay: its first
                        // connections (bootstrap peers) are made within a second or two.
                        boot_delay: Duration::from_secs(5),
                        retry_interval: Duration::from_secs(60),
                        ..autonat::Config::default()
                    },
                ),
            })
        })
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        // The whole transport (TCP, QUIC, relayed) is wrapped in this deadline, from accept or
        // dial to an authenticated, multiplexed connection: one that stalls mid-handshake is
        // dropped, and with it what its handshake holds.
        .with_connection_timeout(config.limits.handshake_timeout)
        .build();
    Ok(swarm)
}

/// The relay server's configuration: libp2p's rate limiters per peer and per IP, Agora's caps.
fn relay_config(limits: &RelayLimits) -> relay::Config {
    relay::Config {
        max_reservations: limits.max_reservations,
        max_reservations_per_peer: limits.max_reservations_per_peer,
        reservation_duration: limits.reservation_duration,
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_duration: limits.max_circuit_duration,
        max_circuit_bytes: limits.max_circuit_bytes,
        ..relay::Config::default()
    }
}

/// Refuses new incoming connections while the process's resident memory is above a limit.
/// (libp2p's `memory-connection-limits` does the same but pulls in `sysinfo`; this reads
/// `/proc/self/status`, at most once a second.)
pub(crate) struct MemoryGuard {
    max: Option<u64>,
    checked: Option<std::time::Instant>,
    rss: u64,
}

/// How often the resident memory is read again.
const MEMORY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A connection refused because memory is above the limit.
#[derive(Debug, thiserror::Error)]
#[error("resident memory {rss} bytes is above the limit of {max} bytes")]
pub(crate) struct MemoryExceeded {
    rss: u64,
    max: u64,
}

impl MemoryGuard {
    fn new(max: Option<u64>) -> Self {
        Self {
            max,
            checked: None,
            rss: 0,
        }
    }

    fn check(&mut self) -> Result<(), ConnectionDenied> {
        let Some(max) = self.max else {
            return Ok(());
        };
        let stale = self
            .checked
            .is_none_or(|t| t.elapsed() >= MEMORY_CHECK_INTERVAL);
        if stale {
            self.rss = resident_memory().unwrap_or(0);
            self.checked = Some(std::time::Instant::now());
        }
        if self.rss > max {
            return Err(ConnectionDenied::new(MemoryExceeded { rss: self.rss, max }));
        }
        Ok(())
    }
}

/// This process's resident set size in bytes (Linux), or `None`.
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl NetworkBehaviour for MemoryGuard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check()
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
