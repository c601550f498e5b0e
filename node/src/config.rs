//! How to run a node: what [`crate::Node::start`] is given.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::net;

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
    /// Space out the periodic reconciliation of a subwiki with a peer while it finds nothing
    /// (every 4th, then every 16th resync; see `net/sync.rs`). On by default; tests that count
    /// reconciliations turn it off.
    pub space_quiet_resyncs: bool,
    /// How long a peer may hold one of a subwiki's catch-up slots without bringing a new entry
    /// while other peers wait for one; past that its session ends and it waits at the back of
    /// the queue, so that a slow or hostile peer cannot keep a catch-up to itself.
    pub catch_up_stall: Duration,
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
    /// Whether the node fetches a card for the links its owner posts (on by default), and
    /// which addresses it may fetch from ([`crate::cards`]).
    pub link_cards: crate::cards::LinkCards,
    /// Keep the full-text search index up to date while running (on by default; a bootstrap
    /// peer, which nobody searches, turns it off). See [`crate::search`].
    pub search: bool,
    /// Bytes the node may send and receive on the network per day (UTC), both together; `None`
    /// for no cap. From four fifths of it catch-up pauses until the next day while gossip goes
    /// on; at the cap the node is offline until the next day ([`net::budget`]).
    pub daily_data_budget: Option<u64>,
    /// Which day it is for the data budget: the system clock's, in UTC, unless a test sets it.
    pub data_day: net::DayClock,
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
            catch_up_stall: net::DEFAULT_STALL_LIMIT,
            space_quiet_resyncs: true,
            dht_server: false,
            relay_server: None,
            relay_via: Vec::new(),
            limits: net::Limits::default(),
            link_cards: crate::cards::LinkCards::default(),
            search: true,
            daily_data_budget: None,
            data_day: net::DayClock::system(),
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }
}
