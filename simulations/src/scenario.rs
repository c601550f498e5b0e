//! Scenario files: one TOML file describes one run (network, gossip and catch-up parameters,
//! posting, and the events: partitions, churn, newcomers, attackers).
//!
//! Every section but the top-level keys has defaults, so a file only says what differs; unknown
//! keys are refused so that a typo does not silently fall back to a default.

use std::path::Path;

use serde::Deserialize;

use crate::SimError;

/// One simulation run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used for output files.
    pub name: String,
    /// One line on what the run shows.
    #[serde(default)]
    pub description: String,
    /// Seed of the run's only random number generator.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: u32,
    /// Simulated duration, in seconds.
    pub duration_s: u64,
    /// Width of a row of the time series (CSV, plot), in milliseconds.
    #[serde(default = "default_sample_ms")]
    pub sample_ms: u64,
    /// How often convergence targets are checked, in milliseconds (their time resolution).
    #[serde(default = "default_check_ms")]
    pub check_ms: u64,
    /// Links, latency, loss, bandwidth.
    #[serde(default)]
    pub network: Network,
    /// The push layer (gossipsub model).
    #[serde(default)]
    pub gossip: Gossip,
    /// The pull layer (catch-up sessions, real `agora_node::proto` state machines).
    #[serde(default)]
    pub catchup: CatchUp,
    /// Who posts what, when.
    #[serde(default)]
    pub posting: Posting,
    /// Partitions: groups that cannot talk between two times.
    #[serde(default)]
    pub partition: Vec<Partition>,
    /// Nodes going offline and coming back.
    #[serde(default)]
    pub churn: Option<Churn>,
    /// Nodes joining the subwiki during the run, with nothing.
    #[serde(default)]
    pub join: Vec<Join>,
    /// Attacking nodes.
    #[serde(default)]
    pub attack: Option<Attack>,
}

fn default_sample_ms() -> u64 {
    1_000
}

fn default_check_ms() -> u64 {
    100
}

/// The network model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Fixed part of one-way latency, in ms.
    pub latency_ms: u64,
    /// Uniform random extra latency, `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability that a message is lost (a lost catch-up message aborts its session by
    /// timeout).
    pub loss: f64,
    /// Downlink bandwidth of every node in kbit/s (0: unlimited). Messages to a node queue on
    /// its downlink.
    pub bandwidth_kbps: u64,
    /// Random peers each node dials at start; links are symmetric, so a node has about twice
    /// this many peers.
    pub peers_out: u32,
    /// When a partition heals, each node redials its peers across the cut after a random
    /// delay of up to this many ms.
    pub redial_ms: u64,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            latency_ms: 40,
            jitter_ms: 40,
            loss: 0.0,
            bandwidth_kbps: 20_000,
            peers_out: 12,
            redial_ms: 2_000,
        }
    }
}

/// The gossipsub model (defaults are gossipsub 1.2's, as in rust-libp2p's gossipsub 0.50).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gossip {
    /// Target mesh degree.
    pub d: usize,
    /// A mesh below this is topped up to `d` at a heartbeat.
    pub d_lo: usize,
    /// A mesh above this is pruned to `d` at a heartbeat.
    pub d_hi: usize,
    /// Non-mesh peers that get an IHAVE at each heartbeat (at least; gossip factor 0.25).
    pub d_lazy: usize,
    /// Heartbeat interval, in ms (rust-libp2p's default is 1 s; the node sets 500 ms).
    pub heartbeat_ms: u64,
    /// Heartbeats of message ids announced in IHAVE.
    pub history_gossip: usize,
    /// A publisher sends a new message to every connected peer, not only its mesh.
    pub flood_publish: bool,
    /// Messages at least this large make the receiver send IDONTWANT to its mesh (0: off).
    pub idontwant_bytes: u32,
    /// Framing bytes added to each gossip message (RPC envelope, topic, id).
    pub envelope_bytes: u32,
}

impl Default for Gossip {
    fn default() -> Self {
        Self {
            d: 6,
            d_lo: 5,
            d_hi: 12,
            d_lazy: 6,
            heartbeat_ms: 1_000,
            history_gossip: 3,
            flood_publish: true,
            idontwant_bytes: 1_000,
            envelope_bytes: 80,
        }
    }
}

/// The catch-up schedule. The defaults are the node's policy (`node/src/net/sync.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatchUp {
    /// Each node starts catch-up periodically, every this many seconds (the node: 60).
    pub interval_s: u64,
    /// Peers per periodic round (0: every connected peer, as the node does).
    pub peers: usize,
    /// Peers a node catches up with when it (re)connects: coming online, a partition healing,
    /// joining (0: every connected peer, as the node does).
    pub on_connect: usize,
    /// A session whose peer has not answered for this long is dropped.
    pub timeout_s: u64,
    /// Sessions a node may run at once as initiator (0: no limit). Sessions over the limit
    /// wait in a queue for a free slot. The node runs one per subwiki at a time (1).
    pub max_sessions: usize,
    /// Whether a session pushes the entries the peer lacks. The node does not (pull only: the
    /// peer's own session fetches them).
    pub push: bool,
}

impl Default for CatchUp {
    fn default() -> Self {
        Self {
            interval_s: 60,
            peers: 0,
            on_connect: 0,
            timeout_s: 10,
            max_sessions: 1,
            push: false,
        }
    }
}

/// Posting and editing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Posting {
    /// Entries that every initial node holds at start (the subwiki's history).
    pub initial_entries: u32,
    /// New entries per second, over the whole network (a Poisson process; the author is a
    /// random online honest node).
    pub rate_per_s: f64,
    /// Posting starts at this time, in seconds.
    pub start_s: u64,
    /// Posting stops at this time; convergence is then measured ("quiesce").
    pub until_s: u64,
    /// Share of new entries that edit an existing post rather than create one.
    pub edit_fraction: f64,
    /// Smallest entry, in bytes.
    pub size_min: u32,
    /// Largest entry, in bytes. Sizes are log-uniform between the two.
    pub size_max: u32,
}

impl Default for Posting {
    fn default() -> Self {
        Self {
            initial_entries: 1_000,
            rate_per_s: 1.0,
            start_s: 0,
            until_s: 60,
            edit_fraction: 0.3,
            size_min: 300,
            size_max: 2_000,
        }
    }
}

/// A partition: between `start_s` and `heal_s` nodes in different groups cannot talk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When the network splits.
    pub start_s: u64,
    /// When it heals; convergence is measured from here.
    pub heal_s: u64,
    /// Number of groups of equal size (nodes are shuffled into them).
    #[serde(default = "default_groups")]
    pub groups: u32,
}

fn default_groups() -> u32 {
    2
}

/// Churn: a share of the honest nodes alternates online and offline periods.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Share of honest nodes that churn.
    pub fraction: f64,
    /// Mean online period, in seconds (exponential).
    pub online_mean_s: f64,
    /// Mean offline period, in seconds (exponential).
    pub offline_mean_s: f64,
    /// Churn starts here.
    #[serde(default)]
    pub start_s: u64,
    /// Churn ends here: every node comes back online, and convergence is measured from here.
    pub until_s: u64,
}

/// Newcomers: nodes that join the subwiki with nothing at `at_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// When they join.
    pub at_s: u64,
    /// How many.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Entries of the newest page: the time to hold them is reported.
    #[serde(default = "default_page")]
    pub page: u32,
}

fn default_count() -> u32 {
    1
}

fn default_page() -> u32 {
    50
}

/// Attackers: a share of the nodes that flood invalid entries, publish Sybil votes (valid
/// signatures from unvouched keys), serve forged entries in catch-up and do not forward honest
/// gossip.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attack {
    /// Share of nodes that attack.
    pub fraction: f64,
    /// Invalid entries each attacker sends per second, to every peer.
    pub invalid_per_s: f64,
    /// Sybil votes each attacker publishes per second.
    pub sybil_per_s: f64,
    /// Attacking starts here.
    #[serde(default)]
    pub start_s: u64,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Checks that every parameter is in range.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Scenario(what.to_owned()));
        if self.nodes < 2 {
            return bad("at least 2 nodes");
        }
        if self.duration_s == 0 || self.sample_ms == 0 || self.check_ms == 0 {
            return bad("duration, sample_ms and check_ms must be positive");
        }
        if self.network.peers_out == 0 || self.network.peers_out >= self.nodes {
            return bad("network.peers_out must be in 1..nodes");
        }
        if !(0.0..1.0).contains(&self.network.loss) {
            return bad("network.loss must be in [0, 1)");
        }
        let g = &self.gossip;
        if g.d == 0 || g.d_lo > g.d || g.d > g.d_hi || g.heartbeat_ms == 0 {
            return bad("gossip: need 0 < d, d_lo <= d <= d_hi, heartbeat_ms > 0");
        }
        if self.catchup.interval_s == 0 || self.catchup.timeout_s == 0 {
            return bad("catchup.interval_s and timeout_s must be positive");
        }
        let p = &self.posting;
        if p.size_min < 64 || p.size_min > p.size_max || p.size_max > 60_000 {
            return bad("posting sizes: 64 <= size_min <= size_max <= 60000");
        }
        if !(0.0..=1.0).contains(&p.edit_fraction) || p.rate_per_s < 0.0 {
            return bad("posting: edit_fraction in [0, 1], rate_per_s >= 0");
        }
        for part in &self.partition {
            if part.heal_s <= part.start_s || part.groups < 2 || part.groups > self.nodes {
                return bad("partition: heal_s > start_s, 2 <= groups <= nodes");
            }
        }
        if let Some(c) = &self.churn
            && (!(0.0..=1.0).contains(&c.fraction)
                || c.online_mean_s <= 0.0
                || c.offline_mean_s <= 0.0)
        {
            return bad("churn: fraction in [0, 1], positive means");
        }
        let joining: u64 = self.join.iter().map(|j| u64::from(j.count)).sum();
        if joining >= u64::from(self.nodes) {
            return bad("join: fewer newcomers than nodes");
        }
        if let Some(a) = &self.attack
            && (!(0.0..0.9).contains(&a.fraction) || a.invalid_per_s < 0.0 || a.sybil_per_s < 0.0)
        {
            return bad("attack: fraction in [0, 0.9), non-negative rates");
        }
        Ok(())
    }
}
