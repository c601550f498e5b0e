//! The network task: one libp2p swarm per node, driven by commands from the [`crate::Node`].
//!
//! The swarm combines TCP and QUIC (noise, yamux), identify, ping, Kademlia on Agora's own
//! protocol name (provider records keyed by subwiki id find a subwiki's peers), optional mDNS,
//! gossipsub (one topic per joined subwiki plus the directory topic; message id = entry id;
//! every message validated before it is forwarded), request-response for reconciliation
//! ([`crate::proto`]), relay client, DCUtR and AutoNAT, connection limits and a block list for
//! peers that send invalid data.
//!
//! The task makes no protocol decisions of its own beyond wiring: reconciliation logic lives in
//! [`crate::proto`], validation and storage in the node's core.

mod behaviour;
mod book;
pub mod budget;
mod codec;
mod ingest;
mod reach;
mod strikes;
mod sync;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use agora_crdt::{BlobHash, Entry, Genesis, Payload, SubwikiId};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::core::{Core, now};
use crate::error::NodeError;

pub use self::behaviour::resident_memory;
pub(crate) use self::behaviour::{Behaviour, BehaviourEvent};
pub use self::budget::{DataUse, DayClock, Meter};
pub use self::reach::{MAX_AUTO_RELAYS, NetworkStatus, Reachability};
pub use self::sync::DEFAULT_STALL_LIMIT;

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its transport identity.
    pub peer: PeerId,
    /// Addresses it is connected on.
    pub addresses: Vec<Multiaddr>,
    /// Whether every connection to it goes through a relay (no direct one, yet or at all).
    pub relayed: bool,
}

/// Capacity of the command channel from node handles to the network task.
const COMMAND_CAPACITY: usize = 256;
/// Name of the directory topic, where new subwikis are announced.
pub const DIRECTORY_TOPIC: &str = "agora/directory/1";
/// Subwikis remembered from the directory.
const MAX_DISCOVERED: usize = 10_000;
/// Where the directory is kept, in the home: its genesis entries, as an export file.
const DIRECTORY_FILE: &str = "directory.agora";

/// Seconds since 1970, for the address book.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The directory kept by an earlier run: the genesis entries of its file, each checked again;
/// empty if there is none, or it is damaged (it fills again from the directory topic).
fn load_directory(home: &std::path::Path) -> BTreeMap<SubwikiId, Entry> {
    let path = home.join(DIRECTORY_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return BTreeMap::new();
    };
    match crate::export::decode(&bytes, now()) {
        Ok(entries) => entries
            .into_iter()
            .filter(|e| matches!(e.payload(), Payload::Genesis(_)))
            .take(MAX_DISCOVERED)
            .map(|e| (e.subwiki(), e))
            .collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "directory file not read: {e}");
            BTreeMap::new()
        }
    }
}

/// The gossip topic of a subwiki.
pub fn topic(subwiki: &SubwikiId) -> IdentTopic {
    IdentTopic::new(format!("agora/sw/1/{subwiki}"))
}

/// Bootstrap peers a node dials when it is given none (`/dns/.../p2p/<peer id>` addresses).
/// Empty until public volunteer peers exist; front ends use it as the default for
/// [`Config::bootstrap`].
pub const DEFAULT_BOOTSTRAP: &[&str] = &[];

/// Limits on what peers may take from this node. The defaults fit a personal node; bootstrap
/// peers set their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Established connections in total.
    pub max_connections: u32,
    /// Established connections with one peer.
    pub max_connections_per_peer: u32,
    /// Established connections that others opened, so that connections coming in cannot take
    /// every slot and leave none for the node's own dials (libp2p's advice against eclipse
    /// attacks); `None` for no limit beyond [`Limits::max_connections`].
    pub max_established_incoming: Option<u32>,
    /// Incoming connections still in their handshake; past it, a new connection is closed as
    /// soon as it is accepted, before anything is read from it. `None` for no limit.
    pub max_pending_incoming: Option<u32>,
    /// How long a connection may take from the TCP accept (or the dial, or the first QUIC
    /// packet) to being authenticated and multiplexed (noise, yamux); a connection that has not
    /// finished its handshake by then is closed.
    pub handshake_timeout: Duration,
    /// Resident memory of the process, in bytes, above which new incoming connections are
    /// refused (read from `/proc/self/status`; no effect where that does not exist).
    pub max_memory_bytes: Option<u64>,
    /// Reconciliation and blob requests one peer may make per minute (a token bucket that
    /// holds a minute's worth); requests past it are refused. `None` for no limit.
    pub requests_per_minute: Option<u32>,
}

/// Default of [`Limits::max_established_incoming`]: three quarters of the default 256, the rest
/// kept for the node's own dials.
pub const DEFAULT_MAX_ESTABLISHED_INCOMING: u32 = 192;
/// Default of [`Limits::max_pending_incoming`]: far above what honest peers need (a handshake
/// takes milliseconds), and each connection in its handshake holds about 16 KB.
pub const DEFAULT_MAX_PENDING_INCOMING: u32 = 128;
/// Default of [`Limits::handshake_timeout`] (libp2p's own default).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_connections_per_peer: 2,
            max_established_incoming: Some(DEFAULT_MAX_ESTABLISHED_INCOMING),
            max_pending_incoming: Some(DEFAULT_MAX_PENDING_INCOMING),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_memory_bytes: None,
            requests_per_minute: None,
        }
    }
}

/// Limits of the circuit relay (v2) server ([`Config::relay_server`]). Reservations let a node
/// behind NAT be reachable at `<relay>/p2p-circuit`; circuits carry connections to it until
/// DCUtR replaces them with direct ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held in total.
    pub max_reservations: usize,
    /// Reservations held by one peer.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the node must renew it.
    pub reservation_duration: std::time::Duration,
    /// Circuits open in total.
    pub max_circuits: usize,
    /// Circuits open to or from one peer.
    pub max_circuits_per_peer: usize,
    /// How long one circuit may stay open.
    pub max_circuit_duration: std::time::Duration,
    /// Bytes one circuit may carry (both directions) before it is closed.
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    /// Sized for a small (1 GiB) server: circuits are meant for reaching a node and for DCUtR's
    /// hole punching, with enough bytes left for a small catch-up where punching fails.
    fn default() -> Self {
        Self {
            max_reservations: 512,
            max_reservations_per_peer: 4,
            reservation_duration: std::time::Duration::from_secs(60 * 60),
            max_circuits: 128,
            max_circuits_per_peer: 8,
            max_circuit_duration: std::time::Duration::from_secs(10 * 60),
            max_circuit_bytes: 8 << 20,
        }
    }
}

/// A Prometheus registry shared between the network task, which records into it, and whoever
/// serves it over HTTP.
#[cfg(feature = "metrics")]
pub type MetricsRegistry = Arc<std::sync::Mutex<prometheus_client::registry::Registry>>;

/// What a node handle asks of the network task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start replicating a subwiki: subscribe, announce, find peers, dial `peers`, reconcile.
    Join {
        subwiki: SubwikiId,
        peers: Vec<Multiaddr>,
    },
    /// Stop replicating a subwiki.
    Leave { subwiki: SubwikiId },
    /// Publish an entry on a subwiki's topic.
    Publish { subwiki: SubwikiId, bytes: Vec<u8> },
    /// Announce a new subwiki on the directory topic.
    Announce { genesis: Vec<u8> },
    /// Dial an address.
    Dial(Multiaddr),
    /// Dial an address and report how the dial ended: the peer reached, or the error.
    Connect {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, String>>,
    },
    /// Connected peers.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// How the node is reachable, its relays and hole punches.
    Network(oneshot::Sender<NetworkStatus>),
    /// Listen addresses.
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    /// Subwikis heard of on the directory topic.
    Discovered(oneshot::Sender<Vec<(SubwikiId, Genesis)>>),
    /// Find a blob at connected peers; answers `None` if none has it.
    FetchBlob {
        hash: BlobHash,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// Stop.
    Shutdown(oneshot::Sender<()>),
}

/// A blob being looked for: the peers still to ask and who waits for it.
struct BlobSearch {
    hash: BlobHash,
    untried: Vec<PeerId>,
    reply: oneshot::Sender<Option<Vec<u8>>>,
}

/// Builds the swarm, starts listening and dialing, and spawns the task.
pub(crate) async fn spawn(
    core: Arc<Core>,
    config: &Config,
) -> Result<(mpsc::Sender<Command>, Arc<Meter>), NodeError> {
    let meter = Arc::new(Meter::new(
        config.daily_data_budget,
        config.data_day.clone(),
        Some(&config.home),
    ));
    let mut swarm = behaviour::build_swarm(core.identity_keypair(), config, Arc::clone(&meter))?;
    for addr in &config.external {
        swarm.add_external_address(addr.clone());
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Network(format!("cannot listen on {addr}: {e}")))?;
    }
    let mut relays = Vec::new();
    for addr in &config.relay_via {
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(NodeError::Network(format!(
                "relay address {addr} does not end with /p2p/<peer id>"
            )));
        };
        relays.push(Relay {
            peer,
            addr: addr.clone(),
            listener: None,
            reserved: false,
            chosen: false,
        });
    }
    let bootstrap_peers = config
        .bootstrap
        .iter()
        .filter_map(|addr| match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        })
        .collect();
    let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
    let (answers_tx, answers) = mpsc::channel(sync::ANSWER_CAPACITY);
    let (ingest, reports, worker) = ingest::start(core.clone())
        .map_err(|e| NodeError::Network(format!("cannot start the ingest worker: {e}")))?;
    let mut syncer = sync::Syncer::new(
        Arc::clone(&core),
        ingest.clone(),
        answers_tx,
        config.catch_up_stall,
        Arc::clone(&meter),
    );
    syncer.space_quiet = config.space_quiet_resyncs;
    let mut actor = Actor {
        swarm,
        core,
        topics: HashMap::new(),
        strikes: strikes::Strikes::default(),
        discovered: load_directory(&config.home),
        book: book::Book::load(Some(&config.home)),
        directory_file: config.home.join(DIRECTORY_FILE),
        directory_dirty: false,
        sync: syncer,
        answers,
        listen_waiters: Vec::new(),
        dials: HashMap::new(),
        blob_searches: HashMap::new(),
        dht_peers: HashSet::new(),
        advertise_listen: config.listen.iter().all(is_specific),
        rates: RateLimiter::new(config.limits.requests_per_minute),
        relays,
        bootstrap: config.bootstrap.clone(),
        bootstrap_peers,
        members: HashSet::new(),
        identified: HashMap::new(),
        lost: HashMap::new(),
        started_at: std::time::Instant::now(),
        resyncs: 0,
        last_network_change: None,
        reach: reach::Reach::default(),
        stats: Stats::new(config),
        ingest,
        reports,
        worker: Some(worker),
        meter: Arc::clone(&meter),
    };
    actor.subscribe_directory();
    actor.redial();
    for subwiki in actor.core.joined()? {
        actor.join(subwiki, Vec::new());
    }
    for addr in &config.bootstrap {
        actor.dial(addr.clone());
    }
    // A relay is listened through once connected to it (see `Actor::listen_through`).
    let relays: Vec<Multiaddr> = actor.relays.iter().map(|r| r.addr.clone()).collect();
    for addr in relays {
        if !config.bootstrap.contains(&addr) {
            actor.dial(addr);
        }
    }
    let resync = config.resync_interval;
    // Stalled catch-ups are looked for a few times per stall limit.
    let stall_check =
        (config.catch_up_stall / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
    tokio::spawn(actor.run(rx, resync, stall_check));
    Ok((tx, meter))
}

/// True if the address names one IP rather than all interfaces.
fn is_specific(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => !ip.is_unspecified(),
        Protocol::Ip6(ip) => !ip.is_unspecified(),
        Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) => true,
        _ => false,
    })
}

/// Connection attempts a caller may wait on at once.
const MAX_PENDING_CONNECTS: usize = 64;

/// Providers of a subwiki dialled per lookup result.
const MAX_PROVIDER_DIALS: usize = 4;
/// Beyond this many connected peers, providers found are not dialled.
const MAX_CONNECTED_FOR_PROVIDERS: usize = 24;

/// Up to this many DHT peers, every new one triggers a new announcement of the joined subwikis.
const SMALL_DHT: usize = 8;

struct Actor {
    swarm: Swarm<Behaviour>,
    core: Arc<Core>,
    /// Topic hash of every joined subwiki.
    topics: HashMap<TopicHash, SubwikiId>,
    /// Invalid entries received per peer.
    /// Strikes against peers that sent invalid data, and the blocks they led to.
    strikes: strikes::Strikes,
    /// Subwikis heard of on the directory topic.
    /// The genesis entries heard on the directory topic, kept in [`DIRECTORY_FILE`] so a
    /// restart remembers them.
    discovered: BTreeMap<SubwikiId, Entry>,
    directory_file: std::path::PathBuf,
    /// Something was heard since the file was last written.
    directory_dirty: bool,
    /// The peers met, kept in the home, redialled at a start and when none is left.
    book: book::Book,
    sync: sync::Syncer,
    /// Catch-up work done on blocking threads: answers to peers' requests to send, snapshots
    /// to start sessions from.
    answers: mpsc::Receiver<sync::Done>,
    /// Callers waiting for a first listen address.
    listen_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    /// Callers of [`Command::Connect`] waiting for their dial to end.
    dials: HashMap<libp2p::swarm::ConnectionId, oneshot::Sender<Result<PeerId, String>>>,
    /// Whether listen addresses are advertised as this node's addresses (in DHT provider
    /// records): when every configured listen address names a specific IP. An address on all
    /// interfaces says nothing about which of them others can reach; AutoNAT decides those.
    advertise_listen: bool,
    /// Connected peers known to speak Agora's Kademlia protocol (from identify).
    dht_peers: HashSet<PeerId>,
    /// Blob requests in flight.
    blob_searches: HashMap<OutboundRequestId, BlobSearch>,
    /// Requests each peer may still make.
    rates: RateLimiter,
    /// Relays to be reachable through: those configured ([`Config::relay_via`]), and those
    /// chosen when AutoNAT says this node is behind NAT ([`Actor::choose_relays`]).
    relays: Vec<Relay>,
    /// The configured bootstrap peers, dialled again when the network changes.
    bootstrap: Vec<Multiaddr>,
    /// The peer ids of the configured bootstrap peers: preferred as relays.
    bootstrap_peers: HashSet<PeerId>,
    /// Connected peers that share a joined subwiki (they subscribed to its topic).
    members: HashSet<PeerId>,
    /// The addresses connected peers listen on (identify; relay circuits included), at most
    /// [`MAX_IDENTIFIED_ADDRS`] each.
    identified: HashMap<PeerId, Vec<Multiaddr>>,
    /// Members lost (their last connection closed): redialled with backoff, a few times.
    lost: HashMap<PeerId, Redial>,
    /// When the network task started: listen addresses that appear later mean a new network.
    started_at: std::time::Instant,
    /// Periodic resyncs so far.
    resyncs: u64,
    /// When the network last changed.
    last_network_change: Option<std::time::Instant>,
    /// NAT status, connection paths, relay candidates, hole punches.
    reach: reach::Reach,
    /// Metrics, when asked for.
    stats: Stats,
    /// Hands gossip to the ingest worker.
    ingest: ingest::Handle,
    /// What the ingest worker made of gossip messages and catch-ups.
    reports: mpsc::Receiver<ingest::Report>,
    /// The ingest worker, joined at shutdown.
    worker: Option<std::thread::JoinHandle<()>>,
    /// The day's bytes and the data budget (`net/budget.rs`).
    meter: Arc<Meter>,
}

/// Peers lost at once that are redialled; more are left to the periodic lookups.
const MAX_LOST: usize = 64;
/// A subwiki with this many connected peers on its topic is looked up in the DHT only at every
/// [`FULL_LOOKUP_EVERY`]-th resync.
const ENOUGH_TOPIC_PEERS: usize = 3;
/// Every this many resyncs, every joined subwiki is looked up.
const FULL_LOOKUP_EVERY: u64 = 16;
/// Addresses kept per connected peer, for redialling it.
const MAX_IDENTIFIED_ADDRS: usize = 16;
/// Listen addresses that appear this long after the start mean the network changed (those
/// before are the interfaces found at the start).
const SETTLING: Duration = Duration::from_secs(5);
/// Redials of a lost peer, 1, 2, 4, ... 32 s apart.
const LOST_REDIALS: u32 = 6;

/// A lost peer to dial again.
struct Redial {
    addrs: Vec<Multiaddr>,
    attempts: u32,
    due: std::time::Instant,
}

/// A relay this node listens through.
struct Relay {
    peer: PeerId,
    addr: Multiaddr,
    /// The circuit listener, while there is one.
    listener: Option<libp2p::core::transport::ListenerId>,
    /// Whether the relay accepted the reservation (the circuit address is listened on).
    reserved: bool,
    /// Chosen by the node itself (not configured): given up when the node turns out to be
    /// public, or when the relay goes away.
    chosen: bool,
}

/// True for a relayed (`/p2p-circuit`) address.
fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// A token bucket per peer for the requests it makes (reconciliation and blobs): it holds a
/// minute's worth and refills continuously.
struct RateLimiter {
    per_minute: Option<u32>,
    buckets: HashMap<PeerId, (f64, std::time::Instant)>,
}

impl RateLimiter {
    fn new(per_minute: Option<u32>) -> Self {
        Self {
            per_minute,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `peer`; false if it has none left.
    fn allow(&mut self, peer: PeerId) -> bool {
        let Some(per_minute) = self.per_minute else {
            return true;
        };
        let capacity = f64::from(per_minute);
        let now = std::time::Instant::now();
        let (tokens, last) = self.buckets.entry(peer).or_insert((capacity, now));
        let refill = now.duration_since(*last).as_secs_f64() * capacity / 60.0;
        *tokens = (*tokens + refill).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn forget(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

/// libp2p's metrics and Agora's own, recorded into [`Config::metrics`]'s registry.
#[cfg(feature = "metrics")]
struct NetMetrics {
    libp2p: libp2p::metrics::Metrics,
    /// Reconciliation requests served, by kind.
    requests: prometheus_client::metrics::family::Family<
        [(&'static str, &'static str); 1],
        prometheus_client::metrics::counter::Counter,
    >,
    /// Reconciliations served: first rounds answered.
    reconciliations: prometheus_client::metrics::counter::Counter,
    /// Requests refused for exceeding the rate limit.
    rate_limited: prometheus_client::metrics::counter::Counter,
}

/// Records network metrics when the node was given a registry; does nothing otherwise.
struct Stats {
    #[cfg(feature = "metrics")]
    metrics: Option<NetMetrics>,
}

impl Stats {
    #[cfg(feature = "metrics")]
    fn new(config: &Config) -> Self {
        let metrics = config.metrics.as_ref().map(|registry| {
            let mut registry = registry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let libp2p = libp2p::metrics::Metrics::new(&mut registry);
            let agora = registry.sub_registry_with_prefix("agora");
            let requests = prometheus_client::metrics::family::Family::default();
            agora.register(
                "sync_requests_served",
                "Reconciliation requests answered, by kind",
                requests.clone(),
            );
            let reconciliations = prometheus_client::metrics::counter::Counter::default();
            agora.register(
                "reconciliations_served",
                "Reconciliations served (first rounds answered)",
                reconciliations.clone(),
            );
            let rate_limited = prometheus_client::metrics::counter::Counter::default();
            agora.register(
                "requests_rate_limited",
                "Requests refused because the peer exceeded its rate",
                rate_limited.clone(),
            );
            NetMetrics {
                libp2p,
                requests,
                reconciliations,
                rate_limited,
            }
        });
        Self { metrics }
    }

    #[cfg(not(feature = "metrics"))]
    fn new(_: &Config) -> Self {
        Self {}
    }

    fn swarm(&self, event: &SwarmEvent<BehaviourEvent>) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            use libp2p::metrics::Recorder;
            m.libp2p.record(event);
        }
        let _ = event;
    }

    fn behaviour(&self, event: &BehaviourEvent) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            use libp2p::metrics::Recorder;
            match event {
                BehaviourEvent::Kad(e) => m.libp2p.record(e),
                BehaviourEvent::Gossipsub(e) => m.libp2p.record(e),
                BehaviourEvent::Identify(e) => m.libp2p.record(e),
                BehaviourEvent::Ping(e) => m.libp2p.record(e),
                BehaviourEvent::RelayServer(e) => m.libp2p.record(e),
                BehaviourEvent::Dcutr(e) => m.libp2p.record(e),
                _ => {}
            }
        }
        let _ = event;
    }

    /// A reconciliation request about to be answered.
    fn served(&self, request: &[u8]) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            let kind = match crate::proto::Request::decode(request) {
                Ok(crate::proto::Request::Reconcile { round, .. }) => {
                    if round == 0 {
                        m.reconciliations.inc();
                    }
                    "reconcile"
                }
                Ok(crate::proto::Request::Fetch { .. }) => "fetch",
                Ok(crate::proto::Request::Push { .. }) => "push",
                Err(_) => "malformed",
            };
            m.requests.get_or_create(&[("kind", kind)]).inc();
        }
        let _ = request;
    }

    fn rate_limited(&self) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.rate_limited.inc();
        }
    }
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        resync: Duration,
        stall_check: Duration,
    ) {
        let mut tick = tokio::time::interval(resync);
        tick.tick().await;
        let mut stalls = tokio::time::interval(stall_check);
        let mut redials = tokio::time::interval(Duration::from_secs(1));
        redials.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        stalls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(command) => self.handle_command(command),
                    None => break None,
                },
                event = self.swarm.select_next_some() => self.handle_event(event),
                Some(report) = self.reports.recv() => {
                    match report {
                        ingest::Report::Gossip(verdict) => self.report(verdict),
                        ingest::Report::Reconciled { subwiki, peer, quiet } => {
                            self.sync.exchanged(peer, subwiki, quiet);
                            self.sync.stored(&mut self.swarm, &self.core, subwiki, peer);
                        }
                        ingest::Report::Drained => {
                            let strikes = self.sync.unpark(&mut self.swarm, &self.core);
                            for (peer, count) in strikes {
                                self.strike(peer, count);
                            }
                        }
                    }
                    self.send_outbox();
                }
                Some(done) = self.answers.recv() => {
                    for (peer, count) in self.sync.done(&mut self.swarm, &self.core, done) {
                        self.strike(peer, count);
                    }
                }
                _ = tick.tick() => {
                    self.send_outbox();
                    self.resync();
                    self.expire_blocks();
                    self.save_directory();
                    if self.swarm.connected_peers().next().is_none() {
                        self.redial();
                    }
                    self.save_book();
                    if let Some((path, line)) = self.meter.to_save() {
                        tokio::task::spawn_blocking(move || budget::write(&path, &line));
                    }
                }
                _ = stalls.tick() => self.sync.expire_stalled(&mut self.swarm, &self.core),
                _ = redials.tick() => self.redial_lost(),
            }
        };
        // Close the swarm, let the ingest worker finish what it was given and let go of the
        // store before saying so, so that whoever asked can reopen the store at once.
        self.meter.save();
        let worker = self.worker.take();
        drop(self);
        if let Some(worker) = worker {
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Gossips an entry of a subwiki. No peer on the topic yet is normal (offline, or alone);
    /// reconciliation carries the entry later.
    fn publish(&mut self, subwiki: SubwikiId, bytes: Vec<u8>) {
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic(&subwiki), bytes)
        {
            tracing::debug!(%subwiki, "not published by gossip: {e}");
        }
    }

    /// Gossips what the core made on its own (rescues), if anything.
    fn send_outbox(&mut self) {
        for (subwiki, entry) in self.core.take_outbox() {
            self.publish(subwiki, entry.bytes().to_vec());
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Join { subwiki, peers } => self.join(subwiki, peers),
            Command::Leave { subwiki } => {
                let topic = topic(&subwiki);
                self.topics.remove(&topic.hash());
                let _ = self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&kad::RecordKey::new(subwiki.as_bytes()));
            }
            Command::Publish { subwiki, bytes } => self.publish(subwiki, bytes),
            Command::Announce { genesis } => {
                let directory = IdentTopic::new(DIRECTORY_TOPIC);
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(directory, genesis)
                {
                    tracing::debug!("subwiki not announced: {e}");
                }
            }
            Command::Dial(addr) => self.dial(addr),
            Command::Connect { addr, reply } => self.connect(addr, reply),
            Command::Peers(reply) => {
                let peers = self.swarm.connected_peers().copied().collect::<Vec<_>>();
                let infos = peers
                    .into_iter()
                    .map(|peer| PeerInfo {
                        peer,
                        addresses: self.reach.addresses(&peer),
                        relayed: self.reach.relayed_only(&peer),
                    })
                    .collect();
                let _ = reply.send(infos);
            }
            Command::Network(reply) => {
                let _ = reply.send(self.network_status());
            }
            Command::ListenAddrs(reply) => {
                let addrs = self.listen_addrs();
                if addrs.is_empty() {
                    self.listen_waiters.push(reply);
                } else {
                    let _ = reply.send(addrs);
                }
            }
            Command::Discovered(reply) => {
                let _ = reply.send(
                    self.discovered
                        .iter()
                        .filter_map(|(k, e)| match e.payload() {
                            Payload::Genesis(g) => Some((*k, g.clone())),
                            _ => None,
                        })
                        .collect(),
                );
            }
            Command::FetchBlob { hash, reply } => {
                let untried = self.swarm.connected_peers().copied().collect();
                self.ask_next_peer(BlobSearch {
                    hash,
                    untried,
                    reply,
                });
            }
            Command::Shutdown(_) => {}
        }
    }

    /// Asks the next untried peer for a blob, or answers `None` when none is left.
    fn ask_next_peer(&mut self, mut search: BlobSearch) {
        match search.untried.pop() {
            Some(peer) => {
                let request = search.hash.as_bytes().to_vec();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_request(&peer, request);
                self.blob_searches.insert(id, search);
            }
            None => {
                let _ = search.reply.send(None);
            }
        }
    }

    fn handle_blob_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let blob = <[u8; 32]>::try_from(request.as_slice())
                        .ok()
                        .map(BlobHash::from_bytes)
                        .and_then(|hash| self.core.store().blob(&hash).ok().flatten())
                        .unwrap_or_default();
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blobs
                        .send_response(channel, blob);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some(search) = self.blob_searches.remove(&request_id) else {
                        return;
                    };
                    // Kept only if it is what was asked for; otherwise ask someone else.
                    if BlobHash::of(&response) == search.hash
                        && self.core.store().put_blob(&response).is_ok()
                    {
                        let _ = search.reply.send(Some(response));
                    } else {
                        self.ask_next_peer(search);
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, .. } => {
                if let Some(search) = self.blob_searches.remove(&request_id) {
                    self.ask_next_peer(search);
                }
            }
            _ => {}
        }
    }

    fn listen_addrs(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        self.swarm
            .listeners()
            .map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a))
            .collect()
    }

    /// Dials `addr` and answers with the peer reached, or why not, once the dial ends.
    fn connect(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, String>>) {
        // A `/p2p/` suffix makes it a dial to that peer: reaching another one is an error.
        let opts = libp2p::swarm::dial_opts::DialOpts::from(addr);
        let id = opts.connection_id();
        if self.dials.len() >= MAX_PENDING_CONNECTS {
            let _ = reply.send(Err("too many connection attempts at once".into()));
            return;
        }
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr) {
        if let Err(e) = self.swarm.dial(addr.clone()) {
            tracing::warn!(%addr, "cannot dial: {e}");
        }
    }

    fn subscribe_directory(&mut self) {
        let directory = IdentTopic::new(DIRECTORY_TOPIC);
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&directory) {
            tracing::warn!("cannot subscribe to the directory: {e}");
        }
    }

    fn join(&mut self, subwiki: SubwikiId, peers: Vec<Multiaddr>) {
        let topic = topic(&subwiki);
        self.topics.insert(topic.hash(), subwiki);
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::warn!(%subwiki, "cannot subscribe: {e}");
        }
        self.announce(subwiki);
        for addr in peers {
            self.dial(addr);
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            self.sync.start(&mut self.swarm, &self.core, peer, subwiki);
        }
    }

    /// Announces this node as a provider of the subwiki in the DHT and looks for the others.
    fn announce(&mut self, subwiki: SubwikiId) {
        let key = kad::RecordKey::new(subwiki.as_bytes());
        let kad = &mut self.swarm.behaviour_mut().kad;
        if let Err(e) = kad.start_providing(key.clone()) {
            tracing::debug!(%subwiki, "not announced in the DHT: {e}");
        }
        kad.get_providers(key);
    }

    /// Looks up the providers of joined subwikis again (peers come and go): at each resync
    /// those with fewer than [`ENOUGH_TOPIC_PEERS`] connected peers on their topic, and every
    /// [`FULL_LOOKUP_EVERY`]-th resync all of them. A lookup costs a DHT query of several
    /// peers: once a minute for every subwiki, it was a good part of an idle node's traffic.
    fn find_providers(&mut self) {
        self.resyncs = self.resyncs.wrapping_add(1);
        let all = self.resyncs.is_multiple_of(FULL_LOOKUP_EVERY);
        let mut on_topic: HashMap<&TopicHash, usize> = HashMap::new();
        for (_, topics) in self.swarm.behaviour().gossipsub.all_peers() {
            for topic in topics {
                *on_topic.entry(topic).or_default() += 1;
            }
        }
        let wanted: Vec<SubwikiId> = self
            .core
            .joined()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                all || on_topic.get(&topic(s).hash()).copied().unwrap_or(0) < ENOUGH_TOPIC_PEERS
            })
            .collect();
        for subwiki in wanted {
            let key = kad::RecordKey::new(subwiki.as_bytes());
            self.swarm.behaviour_mut().kad.get_providers(key);
        }
    }

    /// Listens on `<relay>/p2p-circuit` at each relay `peer` is, unless already listening there.
    /// Called once a direct connection to the relay exists, so that the reservation is made on
    /// it (the relay client would otherwise dial the relay itself, and give up if another dial
    /// to it were in flight).
    fn listen_through(&mut self, peer: PeerId) {
        for relay in self.relays.iter_mut().filter(|r| r.peer == peer) {
            if relay.listener.is_some() {
                continue;
            }
            let circuit = relay.addr.clone().with(Protocol::P2pCircuit);
            match self.swarm.listen_on(circuit) {
                Ok(id) => relay.listener = Some(id),
                Err(e) => {
                    tracing::warn!(relay = %relay.addr, "cannot listen through the relay: {e}")
                }
            }
        }
    }

    /// Listens again through relays whose reservation ended, dialing those not connected. A
    /// relay the node chose that went away is replaced by another candidate instead.
    fn renew_relays(&mut self) {
        let swarm = &self.swarm;
        self.relays
            .retain(|r| !r.chosen || r.listener.is_some() || swarm.is_connected(&r.peer));
        let lost: Vec<(PeerId, Multiaddr)> = self
            .relays
            .iter()
            .filter(|r| r.listener.is_none())
            .map(|r| (r.peer, r.addr.clone()))
            .collect();
        for (peer, addr) in lost {
            if self.swarm.is_connected(&peer) {
                self.listen_through(peer);
            } else {
                self.dial(addr);
            }
        }
        self.choose_relays();
    }

    /// Behind NAT (AutoNAT says private), takes reservations at up to [`MAX_AUTO_RELAYS`]
    /// connected relay peers, bootstrap peers first; once public, gives up the relays it chose.
    fn choose_relays(&mut self) {
        match self.reach.nat() {
            libp2p::autonat::NatStatus::Private => {
                let chosen = self.relays.iter().filter(|r| r.chosen).count();
                let have: HashSet<PeerId> = self.relays.iter().map(|r| r.peer).collect();
                let picks: Vec<(PeerId, Multiaddr)> = self
                    .reach
                    .relay_candidates(&self.bootstrap_peers)
                    .into_iter()
                    .filter(|p| !have.contains(p))
                    .filter_map(|p| {
                        let addr = self.reach.direct_address(&p)?.clone();
                        Some((p, addr.clone().with_p2p(p).unwrap_or(addr)))
                    })
                    .take(MAX_AUTO_RELAYS.saturating_sub(chosen))
                    .collect();
                for (peer, addr) in picks {
                    tracing::info!(relay = %addr, "behind NAT: taking a reservation at a relay");
                    self.relays.push(Relay {
                        peer,
                        addr,
                        listener: None,
                        reserved: false,
                        chosen: true,
                    });
                    self.listen_through(peer);
                }
            }
            libp2p::autonat::NatStatus::Public(_) => {
                let (chosen, kept) = std::mem::take(&mut self.relays)
                    .into_iter()
                    .partition(|r| r.chosen);
                self.relays = kept;
                for relay in chosen {
                    tracing::info!(relay = %relay.addr, "public: giving up the relay");
                    if let Some(id) = relay.listener {
                        self.swarm.remove_listener(id);
                    }
                }
            }
            libp2p::autonat::NatStatus::Unknown => {}
        }
    }

    /// How the node is reachable, from AutoNAT, its reservations and its own addresses.
    fn network_status(&self) -> NetworkStatus {
        let reserved = self
            .relays
            .iter()
            .filter(|r| r.reserved)
            .map(|r| r.addr.to_string())
            .collect();
        let public = self.swarm.external_addresses().any(|a| !is_circuit(a));
        self.reach.status(reserved, public)
    }

    fn resync(&mut self) {
        self.renew_relays();
        self.find_providers();
        let joined = self.core.joined().unwrap_or_default();
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for subwiki in joined {
            for peer in &connected {
                if self.sync.resync_due(*peer, subwiki) {
                    self.sync.start(&mut self.swarm, &self.core, *peer, subwiki);
                }
            }
        }
    }

    /// Reconciles every joined subwiki with `peer` (sessions already running go on).
    fn catch_up_with(&mut self, peer: PeerId) {
        for subwiki in self.core.joined().unwrap_or_default() {
            self.sync.start(&mut self.swarm, &self.core, peer, subwiki);
        }
    }

    /// Counts invalid entries from a peer; blocks it for a while past
    /// [`strikes::MAX_STRIKES`] (see `net/strikes.rs`).
    fn strike(&mut self, peer: PeerId, count: u32) {
        let now = std::time::Instant::now();
        let was_blocked = self.strikes.is_blocked(&peer, now);
        if let strikes::Verdict::Blocked(length) = self.strikes.strike(peer, count, now)
            && !was_blocked
        {
            tracing::warn!(%peer, minutes = length.as_secs() / 60, "blocking a peer that sent invalid entries");
            let behaviour = self.swarm.behaviour_mut();
            behaviour.gossipsub.blacklist_peer(&peer);
            behaviour.blocked.block_peer(peer);
        }
    }

    /// Writes the directory's file if something was heard since (on a blocking thread: a
    /// slow disk never holds the network task).
    fn save_directory(&mut self) {
        if !std::mem::take(&mut self.directory_dirty) {
            return;
        }
        let entries: Vec<Entry> = self.discovered.values().cloned().collect();
        let path = self.directory_file.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::export::write_file(&path, &crate::export::encode(&entries)) {
                tracing::debug!(path = %path.display(), "directory not kept: {e}");
            }
        });
    }

    /// Dials the most recently seen peers of the address book this node is not connected to.
    fn redial(&mut self) {
        let swarm = &self.swarm;
        let joined = self.core.joined().unwrap_or_default();
        let addrs = self.book.to_dial(&joined, |p| swarm.is_connected(p));
        if !addrs.is_empty() {
            tracing::debug!(addresses = addrs.len(), "dialling peers met before");
        }
        for addr in addrs {
            self.dial(addr);
        }
    }

    /// Dials the lost peers whose turn it is (see [`Actor::lost`]).
    fn redial_lost(&mut self) {
        let now = std::time::Instant::now();
        let due: Vec<PeerId> = self
            .lost
            .iter()
            .filter(|(_, r)| r.due <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            let Some(redial) = self.lost.get_mut(&peer) else {
                continue;
            };
            if self.swarm.is_connected(&peer) || redial.attempts >= LOST_REDIALS {
                self.lost.remove(&peer);
                continue;
            }
            redial.attempts += 1;
            redial.due = now + Duration::from_secs(1 << redial.attempts);
            tracing::debug!(%peer, attempt = redial.attempts, "dialling a lost peer again");
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(redial.addrs.clone())
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, "cannot dial a lost peer: {e}");
            }
        }
    }

    /// The node's own addresses changed after its start (a laptop woke on another network, a
    /// link came up): its bootstrap peers and the peers it met are dialled again, and its
    /// relays renewed, at most once every few seconds.
    fn network_changed(&mut self) {
        let now = std::time::Instant::now();
        if self
            .last_network_change
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(5))
        {
            return;
        }
        self.last_network_change = Some(now);
        tracing::info!("the network changed: dialling peers again");
        for addr in self.bootstrap.clone() {
            self.dial(addr);
        }
        self.redial();
        self.renew_relays();
    }

    /// Writes the address book if it changed (on a blocking thread).
    fn save_book(&mut self) {
        if let Some((path, text)) = self.book.take_changes() {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = crate::export::write_file(&path, text.as_bytes()) {
                    tracing::debug!(path = %path.display(), "address book not kept: {e}");
                }
            });
        }
    }

    /// Lifts the blocks that are over.
    fn expire_blocks(&mut self) {
        for peer in self.strikes.expire(std::time::Instant::now()) {
            tracing::info!(%peer, "a blocked peer may connect again");
            let behaviour = self.swarm.behaviour_mut();
            behaviour.gossipsub.remove_blacklisted_peer(&peer);
            behaviour.blocked.unblock_peer(peer);
        }
    }

    fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.stats.swarm(&event);
        match event {
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                tracing::info!(%address, "listening");
                for relay in &mut self.relays {
                    if relay.listener == Some(listener_id) {
                        relay.reserved = true;
                    }
                }
                if !is_circuit(&address) && self.started_at.elapsed() > SETTLING {
                    self.network_changed();
                }
                if is_circuit(&address) {
                    // Reachable through a relay: advertise it, and announce the joined
                    // subwikis again so that provider records carry the new address.
                    self.swarm.add_external_address(address);
                    for subwiki in self.core.joined().unwrap_or_default() {
                        self.announce(subwiki);
                    }
                } else if self.advertise_listen {
                    self.swarm.add_external_address(address);
                }
                let addrs = self.listen_addrs();
                for waiter in self.listen_waiters.drain(..) {
                    let _ = waiter.send(addrs.clone());
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some(reply) = self.dials.remove(&connection_id) {
                    // libp2p's dial errors span lines (one per address tried): one line.
                    let text = error.to_string();
                    let _ = reply.send(Err(text.split_whitespace().collect::<Vec<_>>().join(" ")));
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if is_circuit(&address) {
                    self.swarm.remove_external_address(&address);
                } else {
                    self.network_changed();
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                let relayed = endpoint.is_relayed();
                tracing::info!(peer = %peer_id, address = %endpoint.get_remote_address(), relayed, "connected");
                let redundant = self.reach.opened(
                    peer_id,
                    connection_id,
                    endpoint.get_remote_address().clone(),
                    relayed,
                );
                // A direct connection replaces the relayed ones: the relay's bytes are kept
                // for peers that cannot connect directly. Sessions on them end, and start
                // again on the direct one when they close (below).
                for id in redundant {
                    tracing::info!(peer = %peer_id, "direct connection: closing the relayed one");
                    self.swarm.close_connection(id);
                    self.sync.upgraded(peer_id);
                }
                if !relayed {
                    self.listen_through(peer_id);
                }
                self.sync
                    .connected(peer_id, self.reach.relayed_only(&peer_id));
                self.core.notify();
                self.catch_up_with(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                self.reach.closed(peer_id, connection_id);
                // Sessions that ran on the closed connection failed: start them again on the
                // connection left (a no-op for those still running).
                self.catch_up_with(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                self.reach.closed(peer_id, connection_id);
                match cause {
                    Some(cause) => tracing::info!(peer = %peer_id, "disconnected: {cause}"),
                    None => tracing::info!(peer = %peer_id, "disconnected"),
                }
                // A peer of a joined subwiki that went (a relay's circuit ended, a network
                // changed, the peer restarted) is dialled again for a while; one that was
                // blocked is not.
                let addrs = self.identified.remove(&peer_id).unwrap_or_default();
                if self.members.remove(&peer_id)
                    && !self.strikes.is_blocked(&peer_id, std::time::Instant::now())
                    && self.lost.len() < MAX_LOST
                {
                    self.lost.insert(
                        peer_id,
                        Redial {
                            addrs,
                            attempts: 0,
                            due: std::time::Instant::now() + Duration::from_secs(1),
                        },
                    );
                }
                self.sync
                    .disconnected(&mut self.swarm, &self.core, &peer_id);
                self.dht_peers.remove(&peer_id);
                self.rates.forget(&peer_id);
                self.core.notify();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                for relay in &mut self.relays {
                    if relay.listener == Some(listener_id) {
                        tracing::info!(relay = %relay.addr, ?reason, "relay reservation ended");
                        relay.listener = None;
                        relay.reserved = false;
                    }
                }
            }
            SwarmEvent::Behaviour(event) => self.handle_behaviour(event),
            _ => {}
        }
    }

    /// Lets a peer's request through if its rate allows, answering it with a refusal if not.
    fn admit(&mut self, event: BehaviourEvent) -> Option<BehaviourEvent> {
        use request_response::{Event, Message};
        match event {
            BehaviourEvent::Sync(Event::Message {
                peer,
                connection_id,
                message:
                    Message::Request {
                        request_id,
                        request,
                        channel,
                    },
            }) => {
                if !self.rates.allow(peer) {
                    self.stats.rate_limited();
                    let refused = crate::proto::Response::Refused {
                        reason: "too many requests".into(),
                    };
                    let sync = &mut self.swarm.behaviour_mut().sync;
                    let _ = sync.send_response(channel, refused.encode());
                    return None;
                }
                self.stats.served(&request);
                Some(BehaviourEvent::Sync(Event::Message {
                    peer,
                    connection_id,
                    message: Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                }))
            }
            BehaviourEvent::Blobs(Event::Message {
                peer,
                message: Message::Request { channel, .. },
                ..
            }) if !self.rates.allow(peer) => {
                self.stats.rate_limited();
                // Nothing: the same answer as for a blob this node does not have.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blobs
                    .send_response(channel, Vec::new());
                None
            }
            other => Some(other),
        }
    }

    fn handle_behaviour(&mut self, event: BehaviourEvent) {
        self.stats.behaviour(&event);
        let Some(event) = self.admit(event) else {
            return;
        };
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                if let Some(acceptance) = self.on_gossip(
                    propagation_source,
                    &message_id,
                    &message.topic,
                    message.data,
                ) {
                    self.report(ingest::Verdict {
                        message_id,
                        source: propagation_source,
                        acceptance,
                    });
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                if let Some(subwiki) = self.topics.get(&topic).copied() {
                    self.members.insert(peer_id);
                    self.book.shares(peer_id, subwiki);
                    self.sync
                        .start(&mut self.swarm, &self.core, peer_id, subwiki);
                }
            }
            BehaviourEvent::Sync(event) => {
                let strikes = self.sync.handle(&mut self.swarm, &self.core, event);
                for (peer, count) in strikes {
                    self.strike(peer, count);
                }
            }
            BehaviourEvent::Blobs(event) => self.handle_blob_event(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.book
                    .met(peer_id, info.listen_addrs.iter().cloned(), unix_secs());
                // Subscriptions may have come before identify: note them now too.
                let shared: Vec<SubwikiId> = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(p, _)| **p == peer_id)
                    .flat_map(|(_, topics)| topics)
                    .filter_map(|t| self.topics.get(t).copied())
                    .collect();
                for subwiki in shared {
                    self.book.shares(peer_id, subwiki);
                }
                if self.swarm.is_connected(&peer_id) {
                    let addrs = info.listen_addrs.iter().take(MAX_IDENTIFIED_ADDRS).cloned();
                    self.identified.insert(peer_id, addrs.collect());
                }
                if info.protocols.contains(&libp2p::relay::HOP_PROTOCOL_NAME) {
                    self.reach.relay_offered(peer_id);
                    self.choose_relays();
                }
                let kad_protocol = behaviour::kad_protocol();
                if info.protocols.contains(&kad_protocol) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                    // While the DHT this node sees is small, each new DHT peer may be one of
                    // the closest to a subwiki's key: announce again so that provider records
                    // made before any peer was known (a subwiki created offline, then a
                    // bootstrap peer reached) land somewhere. Past that, Kademlia's own
                    // republishing and the periodic lookups take over.
                    if self.dht_peers.insert(peer_id) && self.dht_peers.len() <= SMALL_DHT {
                        for subwiki in self.core.joined().unwrap_or_default() {
                            self.announce(subwiki);
                        }
                    }
                }
            }
            BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                // A connection that stops answering pings is dead (the network changed, a
                // router forgot the mapping): close it, so that the peer is dialled again
                // instead of waiting for TCP to give up.
                tracing::info!(%peer, "no answer to ping, closing the connection: {e}");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Autonat(libp2p::autonat::Event::StatusChanged { old, new }) => {
                tracing::info!(?old, ?new, "reachability (AutoNAT)");
                self.reach.set_nat(new);
                self.choose_relays();
            }
            BehaviourEvent::Dcutr(libp2p::dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                match &result {
                    Ok(_) => {
                        tracing::info!(peer = %remote_peer_id, "hole punched: direct connection")
                    }
                    Err(e) => {
                        tracing::info!(peer = %remote_peer_id, "hole punching failed, staying relayed: {e}")
                    }
                }
                self.reach.punched(result.is_ok());
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut seen = HashSet::new();
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if seen.insert(peer) && !self.swarm.is_connected(&peer) {
                        self.dial(addr);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result:
                    kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                        providers,
                        ..
                    })),
                ..
            }) => {
                // A few providers are enough: gossip and catch-up spread the rest. Dialling
                // every provider of a popular subwiki would connect everyone to everyone.
                let me = *self.swarm.local_peer_id();
                let room = MAX_CONNECTED_FOR_PROVIDERS
                    .saturating_sub(self.swarm.connected_peers().count());
                let new: Vec<PeerId> = providers
                    .into_iter()
                    .filter(|p| *p != me && !self.swarm.is_connected(p))
                    .take(room.min(MAX_PROVIDER_DIALS))
                    .collect();
                for peer in new {
                    let _ = self.swarm.dial(peer);
                }
            }
            _ => {}
        }
    }

    /// Tells gossipsub what the ingest worker made of a message (Accept forwards a valid, new
    /// entry of the topic's subwiki; Ignore drops what is early, held or not for us; Reject
    /// what is invalid), and penalises a peer that sent garbage.
    fn report(&mut self, verdict: ingest::Verdict) {
        if verdict.acceptance == MessageAcceptance::Reject {
            self.strike(verdict.source, 1);
        }
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(
                &verdict.message_id,
                &verdict.source,
                verdict.acceptance,
            );
    }

    /// A gossip message: a subwiki's goes to the ingest worker, which reports on it later
    /// (`None` here); the directory's is taken at once.
    fn on_gossip(
        &mut self,
        from: PeerId,
        message_id: &gossipsub::MessageId,
        topic: &TopicHash,
        data: Vec<u8>,
    ) -> Option<MessageAcceptance> {
        if *topic == IdentTopic::new(DIRECTORY_TOPIC).hash() {
            let entry = match agora_crdt::validate(&data, now()) {
                Ok(entry) => entry,
                Err(e) if e.is_retriable() => return Some(MessageAcceptance::Ignore),
                Err(e) => {
                    tracing::debug!(peer = %from, "invalid directory entry: {e}");
                    return Some(MessageAcceptance::Reject);
                }
            };
            return Some(match entry.payload() {
                Payload::Genesis(_) => {
                    if self.discovered.len() < MAX_DISCOVERED
                        && !self.discovered.contains_key(&entry.subwiki())
                    {
                        self.discovered.insert(entry.subwiki(), entry);
                        self.directory_dirty = true;
                        self.core.notify();
                    }
                    MessageAcceptance::Accept
                }
                _ => MessageAcceptance::Reject,
            });
        }
        let Some(subwiki) = self.topics.get(topic).copied() else {
            return Some(MessageAcceptance::Ignore);
        };
        // Too busy: not forwarded; catch-up brings it later.
        (!self.ingest.gossip(subwiki, data, message_id.clone(), from))
            .then_some(MessageAcceptance::Ignore)
    }
}
