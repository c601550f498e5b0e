//! `agora-bootstrap`: a volunteer-run peer that keeps the Agora network reachable.
//!
//! A bootstrap peer is an [`agora_node::Node`] with no person behind it, started in server
//! mode ([`Settings::node_config`]):
//!
//! - Kademlia in server mode on Agora's protocol name (`/agora/kad/1.0.0`): it holds the
//!   provider records by which nodes find the peers of a subwiki;
//! - identify, ping, AutoNAT (answers other nodes' reachability probes), and a circuit relay v2
//!   server, so that nodes behind NAT are reachable at `<this peer>/p2p-circuit` until DCUtR
//!   connects them directly;
//! - TCP and QUIC, with limits on connections (total, per peer, pending), resident memory,
//!   requests per peer and relay reservations and circuits;
//! - optional seeding ([`Settings::seed`]): the named subwikis are joined and replicated like a
//!   member node does (store, gossip, reconciliation), within caps on entries and disk
//!   ([`settings::Seeding`]). Without seeding it keeps no store at all: nothing is written to
//!   disk but its key;
//! - Prometheus metrics over HTTP ([`metrics`]).
//!
//! The `agora-bootstrap` binary parses [`Args`], calls [`Bootstrap::start`] and waits for
//! SIGTERM. Tests start it in-process the same way:
//!
//! ```no_run
//! # async fn demo() -> Result<(), agora_bootstrap::BootstrapError> {
//! let mut settings = agora_bootstrap::Settings::default();
//! settings.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("an address")];
//! let peer = agora_bootstrap::Bootstrap::start(settings).await?;
//! for addr in peer.addresses().await {
//!     println!("{addr}");
//! }
//! peer.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod metrics;
pub mod settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agora_crdt::SubwikiId;
use agora_node::home::Home;
use agora_node::store::{MemoryStore, SledStore, Store};
use agora_node::{Node, NodeError};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use thiserror::Error;
use tokio::sync::watch;

pub use settings::{Args, DEFAULT_PORT, Settings};

/// Why a bootstrap peer could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration file is malformed.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node (key, store, network) could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The metrics endpoint could not be opened.
    #[error("metrics on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running bootstrap peer.
#[derive(Debug)]
pub struct Bootstrap {
    node: Node,
    settings: Settings,
    metrics: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl Bootstrap {
    /// Loads (or creates) the node key in the home directory, starts the node in server mode,
    /// joins the seeded subwikis and opens the metrics endpoint.
    pub async fn start(settings: Settings) -> Result<Self, BootstrapError> {
        let home = Home::new(settings.home_dir());
        let identity = home.load_or_init().map_err(NodeError::from)?;
        let registry = agora_node::net::MetricsRegistry::default();
        let mut config = settings.node_config();
        config.metrics = Some(registry.clone());
        // Nobody searches a bootstrap peer: no search index to keep.
        config.search = false;
        // Without seeding there is nothing to keep: no store on disk at all.
        let store: Arc<dyn Store> = if settings.seed.is_empty() {
            Arc::new(MemoryStore::new())
        } else {
            Arc::new(SledStore::open(&home.store()).map_err(NodeError::from)?)
        };
        let node = Node::start_with(store, identity, &config).await?;
        // Stop seeding what is no longer listed (its entries stay in the store).
        for info in node.subwikis()? {
            if info.joined && !settings.seed.contains(&info.id) {
                tracing::info!(subwiki = %info.id, "no longer seeded");
                node.leave(info.id).await?;
            }
        }
        let gauges = metrics::Gauges::new(&registry);
        for subwiki in &settings.seed {
            node.join(*subwiki, Vec::new()).await?;
            tracing::info!(%subwiki, "seeding");
        }
        let (stop, stopped) = watch::channel(false);
        let metrics = match settings.metrics {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| BootstrapError::Metrics { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| BootstrapError::Metrics { addr, source })?;
                let source = metrics::Source {
                    registry,
                    gauges: gauges.clone(),
                    node: node.clone(),
                    store: (!settings.seed.is_empty()).then(|| home.store()),
                };
                tokio::spawn(metrics::serve(listener, source, stopped.clone()));
                Some(local)
            }
            None => None,
        };
        if !settings.seed.is_empty() {
            tokio::spawn(enforce_caps(
                node.clone(),
                settings.clone(),
                home.store(),
                gauges,
                stopped,
            ));
        }
        Ok(Self {
            node,
            settings,
            metrics,
            stop,
        })
    }

    /// The node underneath.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where metrics are served, once bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// The addresses to give to others, with this peer's `/p2p/` id: the listen addresses (each
    /// interface's, for an address on all interfaces) and the configured external ones.
    pub async fn addresses(&self) -> Vec<Multiaddr> {
        let me = self.node.peer_id();
        let mut addrs = self.node.listen_addrs().await;
        for addr in &self.settings.external {
            let full = if addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
                addr.clone()
            } else {
                addr.clone().with(Protocol::P2p(me))
            };
            if !addrs.contains(&full) {
                addrs.push(full);
            }
        }
        addrs
    }

    /// Stops the node and the metrics endpoint.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.node.shutdown().await;
    }
}

/// The size of a directory tree in bytes.
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Checks the seeding caps every `check_secs`: a subwiki that reached its entry cap, or every
/// subwiki once the store reached its disk cap, is left (no longer replicated; its entries
/// stay). A cap therefore stops growth within one check interval.
async fn enforce_caps(
    node: Node,
    settings: Settings,
    store: PathBuf,
    gauges: metrics::Gauges,
    mut stopped: watch::Receiver<bool>,
) {
    let caps = &settings.seeding;
    let mut tick = tokio::time::interval(Duration::from_secs(caps.check_secs.max(1)));
    let mut left: Vec<SubwikiId> = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let disk_full = disk_usage(&store) >= caps.max_disk_mib.saturating_mul(1 << 20);
        let Ok(subwikis) = node.subwikis() else {
            continue;
        };
        for info in subwikis {
            if !info.joined || left.contains(&info.id) {
                continue;
            }
            if disk_full || info.entries >= caps.max_entries_per_subwiki {
                tracing::warn!(
                    subwiki = %info.id,
                    entries = info.entries,
                    disk_full,
                    "seeding cap reached: no longer replicating this subwiki"
                );
                gauges.over_cap(info.id);
                left.push(info.id);
                if let Err(e) = node.leave(info.id).await {
                    tracing::warn!(subwiki = %info.id, "cannot stop seeding: {e}");
                }
            }
        }
    }
}
