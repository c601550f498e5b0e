//! What the operator configures: a TOML file ([`Settings`]), overridden by the command line
//! ([`Args`]). Every limit has a default sized for a server with 1 GiB of memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_crdt::SubwikiId;
use clap::Parser;
use libp2p::Multiaddr;
use serde::Deserialize;

use crate::BootstrapError;

/// The well-known port of Agora bootstrap peers, TCP and UDP (QUIC).
pub const DEFAULT_PORT: u16 = 7411;

/// The command line. Anything given here replaces the same setting from `--config`.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "agora-bootstrap",
    version,
    about = "A volunteer bootstrap peer for Agora"
)]
pub struct Args {
    /// A TOML configuration file (see docs/operators.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the node key (and the store, when seeding); default: the working directory.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Address to listen on (repeatable); default TCP and QUIC on all IPv4 interfaces, port 7411.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// A public address of this server (repeatable), e.g. `/dns4/boot.example.org/tcp/7411`.
    #[arg(long, value_name = "MULTIADDR")]
    pub external: Vec<Multiaddr>,
    /// Another bootstrap peer to connect to at start (repeatable), with its `/p2p/` id.
    #[arg(long, value_name = "MULTIADDR")]
    pub peer: Vec<Multiaddr>,
    /// Serve Prometheus metrics over HTTP at this address, e.g. `127.0.0.1:9464`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Keep this subwiki replicated (repeatable).
    #[arg(long, value_name = "SUBWIKI_ID")]
    pub seed: Vec<SubwikiId>,
    /// Established connections in total.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
    /// Established connections with one peer.
    #[arg(long, value_name = "N")]
    pub max_connections_per_peer: Option<u32>,
    /// Refuse new connections while the process uses more memory than this (MiB).
    #[arg(long, value_name = "MIB")]
    pub max_memory_mib: Option<u64>,
    /// Reconciliation and image requests one peer may make per minute.
    #[arg(long, value_name = "N")]
    pub requests_per_minute: Option<u32>,
    /// Relay reservations held in total.
    #[arg(long, value_name = "N")]
    pub max_reservations: Option<usize>,
    /// Relay circuits open in total.
    #[arg(long, value_name = "N")]
    pub max_circuits: Option<usize>,
    /// Stop seeding a subwiki once it holds this many entries.
    #[arg(long, value_name = "N")]
    pub max_entries_per_subwiki: Option<usize>,
    /// Stop seeding once the store takes this much disk (MiB).
    #[arg(long, value_name = "MIB")]
    pub max_disk_mib: Option<u64>,
}

/// Everything the bootstrap peer runs with. Deserialised from the TOML file; every field has a
/// default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory for the node key and the store; `None` for the working directory.
    pub home: Option<PathBuf>,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Public addresses of this server, announced to peers.
    pub external: Vec<Multiaddr>,
    /// Other bootstrap peers to connect to at start.
    pub peers: Vec<Multiaddr>,
    /// Where to serve Prometheus metrics; `None` for nowhere.
    pub metrics: Option<SocketAddr>,
    /// Subwikis to keep replicated.
    #[serde(deserialize_with = "subwiki_ids")]
    pub seed: Vec<SubwikiId>,
    /// Connection, memory and request limits.
    pub limits: Limits,
    /// Circuit relay limits.
    pub relay: Relay,
    /// Caps on what seeding may store.
    pub seeding: Seeding,
}

/// Connection, memory and request limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Established connections in total.
    pub max_connections: u32,
    /// Established connections with one peer.
    pub max_connections_per_peer: u32,
    /// Incoming connections still in their handshake.
    pub max_pending_incoming: u32,
    /// Resident memory (MiB) above which new incoming connections are refused.
    pub max_memory_mib: u64,
    /// Reconciliation and image requests one peer may make per minute.
    pub requests_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 2000,
            max_connections_per_peer: 4,
            max_pending_incoming: 128,
            max_memory_mib: 640,
            requests_per_minute: 300,
        }
    }
}

/// Circuit relay (v2) limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Relay {
    /// Serve as a relay at all.
    pub enabled: bool,
    /// Reservations held in total.
    pub max_reservations: usize,
    /// Reservations held by one peer.
    pub max_reservations_per_peer: usize,
    /// Seconds a reservation lasts before it must be renewed.
    pub reservation_secs: u64,
    /// Circuits open in total.
    pub max_circuits: usize,
    /// Circuits open to or from one peer.
    pub max_circuits_per_peer: usize,
    /// Seconds one circuit may stay open.
    pub circuit_secs: u64,
    /// KiB one circuit may carry.
    pub circuit_kib: u64,
}

impl Default for Relay {
    fn default() -> Self {
        let d = agora_node::net::RelayLimits::default();
        Self {
            enabled: true,
            max_reservations: d.max_reservations,
            max_reservations_per_peer: d.max_reservations_per_peer,
            reservation_secs: d.reservation_duration.as_secs(),
            max_circuits: d.max_circuits,
            max_circuits_per_peer: d.max_circuits_per_peer,
            circuit_secs: d.max_circuit_duration.as_secs(),
            circuit_kib: d.max_circuit_bytes / 1024,
        }
    }
}

/// Caps on seeding.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seeding {
    /// A seeded subwiki that reaches this many entries is no longer seeded.
    pub max_entries_per_subwiki: usize,
    /// When the store reaches this size (MiB), no subwiki is seeded any more.
    pub max_disk_mib: u64,
    /// Seconds between two checks of the caps.
    pub check_secs: u64,
}

impl Default for Seeding {
    fn default() -> Self {
        Self {
            max_entries_per_subwiki: 50_000,
            max_disk_mib: 2048,
            check_secs: 30,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            home: None,
            listen: default_listen(),
            external: Vec::new(),
            peers: Vec::new(),
            metrics: None,
            seed: Vec::new(),
            limits: Limits::default(),
            relay: Relay::default(),
            seeding: Seeding::default(),
        }
    }
}

/// Subwiki ids written as strings (`sw_…`).
fn subwiki_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SubwikiId>, D::Error> {
    let ids = Vec::<String>::deserialize(d)?;
    ids.iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// TCP and QUIC on all IPv4 interfaces on [`DEFAULT_PORT`].
pub fn default_listen() -> Vec<Multiaddr> {
    [
        format!("/ip4/0.0.0.0/tcp/{DEFAULT_PORT}"),
        format!("/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1"),
    ]
    .iter()
    .filter_map(|a| a.parse().ok())
    .collect()
}

impl Settings {
    /// Reads the file named by `--config` (if any) and applies the command line over it.
    pub fn load(args: &Args) -> Result<Self, BootstrapError> {
        let mut settings = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        settings.apply(args);
        Ok(settings)
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, BootstrapError> {
        let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| BootstrapError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Applies the command line: lists given there replace the file's, values override.
    pub fn apply(&mut self, args: &Args) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *target = v.clone();
            }
        }
        fn replace<T: Clone>(target: &mut Vec<T>, values: &[T]) {
            if !values.is_empty() {
                *target = values.to_vec();
            }
        }
        if args.home.is_some() {
            self.home.clone_from(&args.home);
        }
        replace(&mut self.listen, &args.listen);
        replace(&mut self.external, &args.external);
        replace(&mut self.peers, &args.peer);
        replace(&mut self.seed, &args.seed);
        if args.metrics.is_some() {
            self.metrics = args.metrics;
        }
        set(&mut self.limits.max_connections, &args.max_connections);
        set(
            &mut self.limits.max_connections_per_peer,
            &args.max_connections_per_peer,
        );
        set(&mut self.limits.max_memory_mib, &args.max_memory_mib);
        set(
            &mut self.limits.requests_per_minute,
            &args.requests_per_minute,
        );
        set(&mut self.relay.max_reservations, &args.max_reservations);
        set(&mut self.relay.max_circuits, &args.max_circuits);
        set(
            &mut self.seeding.max_entries_per_subwiki,
            &args.max_entries_per_subwiki,
        );
        set(&mut self.seeding.max_disk_mib, &args.max_disk_mib);
    }

    /// The home directory: `home`, or the working directory.
    pub fn home_dir(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// The node's configuration: DHT server, relay server, limits; mDNS off (a server is not
    /// on anyone's LAN).
    pub fn node_config(&self) -> agora_node::Config {
        let mut config = agora_node::Config::new(self.home_dir());
        config.listen = self.listen.clone();
        config.external = self.external.clone();
        config.bootstrap = self.peers.clone();
        config.mdns = false;
        config.dht_server = true;
        config.relay_server = self.relay.enabled.then(|| agora_node::net::RelayLimits {
            max_reservations: self.relay.max_reservations,
            max_reservations_per_peer: self.relay.max_reservations_per_peer,
            reservation_duration: Duration::from_secs(self.relay.reservation_secs),
            max_circuits: self.relay.max_circuits,
            max_circuits_per_peer: self.relay.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(self.relay.circuit_secs),
            max_circuit_bytes: self.relay.circuit_kib.saturating_mul(1024),
        });
        config.limits = agora_node::net::Limits {
            max_connections: self.limits.max_connections,
            max_connections_per_peer: self.limits.max_connections_per_peer,
            // A server's connections are nearly all incoming ones: the total bounds them.
            max_established_incoming: None,
            max_pending_incoming: Some(self.limits.max_pending_incoming),
            handshake_timeout: agora_node::net::DEFAULT_HANDSHAKE_TIMEOUT,
            max_memory_bytes: Some(self.limits.max_memory_mib.saturating_mul(1 << 20)),
            requests_per_minute: Some(self.limits.requests_per_minute),
        };
        config
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_command_line_overrides_the_file() {
        let file: Settings = toml::from_str(
            r#"
            listen = ["/ip4/0.0.0.0/tcp/9000"]
            metrics = "127.0.0.1:9464"
            [limits]
            max_connections = 100
            requests_per_minute = 10
            [relay]
            max_circuits = 5
            "#,
        )
        .unwrap();
        assert_eq!(file.limits.max_connections, 100);
        assert_eq!(file.limits.max_connections_per_peer, 4, "default kept");
        assert_eq!(file.relay.max_circuits, 5);
        let args = Args::parse_from([
            "agora-bootstrap",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--max-connections",
            "7",
        ]);
        let mut settings = file;
        settings.apply(&args);
        assert_eq!(
            settings.listen,
            vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
        );
        assert_eq!(settings.limits.max_connections, 7);
        assert_eq!(settings.limits.requests_per_minute, 10);
        assert_eq!(settings.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn the_shipped_example_reads_as_the_defaults() {
        let shipped: Settings =
            toml::from_str(include_str!("../dist/agora-bootstrap.toml")).unwrap();
        assert_eq!(shipped, Settings::default());
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<Settings>("max_conections = 3").is_err());
    }

    #[test]
    fn defaults_listen_on_the_well_known_port() {
        let s = Settings::default();
        assert_eq!(s.listen.len(), 2);
        assert!(s.listen.iter().all(|a| a.to_string().contains("7411")));
        let config = s.node_config();
        assert!(config.dht_server && config.relay_server.is_some() && !config.mdns);
    }
}
