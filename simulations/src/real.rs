//! Real-node runs: 20 to 100 real [`agora_node::Node`]s in one process, on loopback TCP
//! (`/ip4/127.0.0.1/tcp/0`, mDNS off), each with a real sled store in a temporary folder, real
//! gossipsub and real reconciliation. Nothing is modelled: what the simulator predicts, these
//! runs check on the real stack at a smaller scale.
//!
//! A run is described by a scenario file with `mode = "real"` ([`RealScenario`]). Every run
//! first builds a network: node 0 founds a subwiki and writes its history, the others start,
//! dial a few random earlier nodes and join it, and the run waits until every node holds the
//! history. Then one event:
//!
//! - **steady**: random nodes write `posts` entries (posts and edits), one every
//!   `interval_ms`; convergence is measured from the last write.
//! - **partition**: half of the nodes shut down (as laptops do); the online half writes
//!   `posts` entries, and each offline node writes its share of `posts` entries offline,
//!   straight into its store; then the offline half restarts on its stores, dialing random
//!   nodes of the other half ("heal"), and convergence is measured from the heal.
//! - **newcomer**: `newcomers` nodes with nothing join the subwiki, dialing `dial` random
//!   holders; the time to the newest page and to the whole history is measured from the join.
//!
//! Waiting is on each node's change notifications ([`Node::changes`]) with `guard_s` as a
//! bound, never a fixed sleep (the only sleep paces the writes of the steady event).
//!
//! # What is measured
//!
//! - **Convergence**: a node has converged when its store's reconciliation index holds every
//!   entry written in the run (the driver keeps every acknowledged entry id); the time is the
//!   last node's. At the end, every node's full entry-id set and its feed (post ids, titles,
//!   bodies) are compared: they must be identical.
//! - **Lost entries**: acknowledged entries that some node lacks at the end (must be 0).
//! - **Bytes**, per node, over the event's window (counters of [`agora_node::SyncStatus`] at the
//!   end minus at the event; a restarted node starts from zero): *payload* is the bytes of every
//!   entry received from peers, by gossip or catch-up, duplicates included (`entry_bytes`);
//!   *catch-up* is the encoded responses of the reconciliation sessions that completed
//!   (`bytes_received`: reconciliation messages plus fetched batches). *Needed* is the bytes of
//!   the entries the node gained in the window and did not write itself. Gossipsub's own
//!   duplicates (dropped by its message cache before the node sees them), IHAVE/IWANT and
//!   transport framing are not visible to the node and are not counted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_crdt::{Base, DocId, EntryId, Policy, PostContent, SubwikiId};
use agora_node::home::Home;
use agora_node::store::{SledStore, Store};
use agora_node::{Config, Node, SyncStatus};
use serde::Deserialize;

use crate::SimError;
use crate::rng::Rng;

/// The most nodes told to dial one node, while others are free: the dialing spreads over the
/// nodes. (The node itself then dials every provider of the subwiki that Kademlia finds, so in
/// these runs every node ends up connected to every other; see the report's findings.)
const MAX_DIALED: u32 = 5;

/// The most posts read from a feed to compare nodes.
const MAX_FEED: usize = 1_000_000;

/// A real-node run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealScenario {
    /// Always `"real"`.
    pub mode: String,
    /// Short name, used in the report.
    pub name: String,
    /// One line on what the run shows.
    #[serde(default)]
    pub description: String,
    /// Seed of the choices (who dials whom, who writes what).
    pub seed: u64,
    /// Nodes in the network (newcomers not included).
    pub nodes: u32,
    /// What happens after the network is built.
    pub event: RealEvent,
    /// Posts node 0 writes before the others join.
    #[serde(default = "default_history")]
    pub history: u32,
    /// Entries written during the event (steady: in all; partition: on each side).
    #[serde(default)]
    pub posts: u32,
    /// Share of the event's entries that edit an existing post.
    #[serde(default = "default_edit_fraction")]
    pub edit_fraction: f64,
    /// Bytes of each post's body.
    #[serde(default = "default_body_bytes")]
    pub body_bytes: u32,
    /// Steady event: time between two writes, in ms.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Random earlier nodes each node dials when it starts.
    #[serde(default = "default_dial")]
    pub dial: u32,
    /// The nodes' periodic reconciliation interval, in seconds (`Config::resync_interval`).
    #[serde(default = "default_resync_s")]
    pub resync_s: u64,
    /// Newcomer event: how many join.
    #[serde(default = "default_newcomers")]
    pub newcomers: u32,
    /// Newcomer event: posts of the newest page whose arrival is timed.
    #[serde(default = "default_page")]
    pub page: u32,
    /// The longest any wait may take, in seconds; past it the run reports "never".
    #[serde(default = "default_guard_s")]
    pub guard_s: u64,
}

fn default_history() -> u32 {
    100
}
fn default_edit_fraction() -> f64 {
    0.3
}
fn default_body_bytes() -> u32 {
    300
}
fn default_interval_ms() -> u64 {
    20
}
fn default_dial() -> u32 {
    3
}
fn default_resync_s() -> u64 {
    60
}
fn default_newcomers() -> u32 {
    1
}
fn default_page() -> u32 {
    20
}
fn default_guard_s() -> u64 {
    120
}

/// The event of a real-node run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RealEvent {
    /// Writes by random nodes while all are online.
    Steady,
    /// Half the nodes go offline, both halves write, the offline half comes back.
    Partition,
    /// Nodes with nothing join.
    Newcomer,
}

impl RealEvent {
    fn label(self) -> &'static str {
        match self {
            RealEvent::Steady => "quiesce",
            RealEvent::Partition => "heal",
            RealEvent::Newcomer => "join",
        }
    }
}

impl RealScenario {
    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let scenario: RealScenario =
            toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Checks that every parameter is in range.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Scenario(what.to_owned()));
        if self.mode != "real" {
            return bad("mode must be \"real\"");
        }
        if !(2..=200).contains(&self.nodes) {
            return bad("nodes must be in 2..=200");
        }
        if self.dial == 0 || self.resync_s == 0 || self.guard_s == 0 || self.history == 0 {
            return bad("dial, resync_s, guard_s and history must be positive");
        }
        if !(0.0..=1.0).contains(&self.edit_fraction) {
            return bad("edit_fraction must be in [0, 1]");
        }
        if self.event == RealEvent::Newcomer && (self.newcomers == 0 || self.page == 0) {
            return bad("newcomer: newcomers and page must be positive");
        }
        if self.event == RealEvent::Partition && self.nodes < 4 {
            return bad("partition: at least 4 nodes");
        }
        Ok(())
    }
}

/// True if a scenario file's text asks for a real-node run (`mode = "real"`).
pub fn is_real(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| t.get("mode").and_then(|m| m.as_str().map(|m| m == "real")))
        .unwrap_or(false)
}

/// Per-node byte figures over the event's window, summarised over nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ratio {
    /// Mean over nodes that needed something.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

/// What a real-node run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RealSummary {
    /// Scenario name.
    pub name: String,
    /// Nodes (newcomers included).
    pub nodes: usize,
    /// The event (`quiesce`, `heal`, `join`).
    pub event: &'static str,
    /// Entries of the subwiki at the end (genesis included).
    pub entries: usize,
    /// Time to build the network and replicate the history, in seconds.
    pub setup_s: f64,
    /// Time from the event until every node held every entry; `None` if not within the guard.
    pub converged_s: Option<f64>,
    /// Median over nodes of that time.
    pub median_s: Option<f64>,
    /// Newcomer event: time from the join to the newest page on the (slowest) newcomer.
    pub page_s: Option<f64>,
    /// Acknowledged entries some node lacks at the end.
    pub lost: usize,
    /// Whether every node's entry-id set and feed are identical at the end.
    pub identical: bool,
    /// Entry bytes received (gossip and catch-up, duplicates included) over bytes needed.
    pub payload_ratio: Ratio,
    /// Catch-up response bytes (reconciliation and fetched batches) over bytes needed.
    pub catchup_ratio: Ratio,
    /// Entries received that were already held, over all nodes.
    pub duplicates: u64,
    /// Bytes of the entries the nodes needed in the window, summed.
    pub needed_bytes: u64,
    /// Connected peers per node at the end: mean.
    pub peers_mean: f64,
    /// Connected peers per node at the end: most.
    pub peers_max: usize,
    /// Store syncs (each a sled flush and an fsync) of all nodes from the event to the end
    /// (a node restarted during the event counts from its restart).
    pub syncs: u64,
    /// Entries written during the event (steady and partition; 0 for a newcomer).
    pub written: usize,
}

/// The outcome of a real-node run.
#[derive(Debug, Clone)]
pub struct RealOutput {
    /// What was measured.
    pub summary: RealSummary,
    /// The scenario's description.
    pub description: String,
    /// Wall-clock time of the whole run, in seconds.
    pub wall_s: f64,
}

/// Runs a real-node scenario on a tokio runtime of its own (two worker threads).
pub fn run(scenario: RealScenario) -> Result<RealOutput, SimError> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SimError::Real(format!("tokio runtime: {e}")))?;
    let description = scenario.description.clone();
    let summary = runtime.block_on(Run::execute(scenario))?;
    Ok(RealOutput {
        summary,
        description,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

fn real<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> SimError + '_ {
    move |e| SimError::Real(format!("{what}: {e}"))
}

/// One node of a run: its home, its store (kept to read the entry-id set), the running node.
struct Peer {
    home: PathBuf,
    store: Option<Arc<SledStore>>,
    node: Option<Node>,
    /// Whether it was restarted during the event (its counters start from zero).
    restarted: bool,
    /// How many times other nodes were told to dial it.
    dialed: u32,
}

struct Run {
    sc: RealScenario,
    rng: Rng,
    guard: Duration,
    _dir: tempfile::TempDir,
    peers: Vec<Peer>,
    subwiki: Option<SubwikiId>,
    /// Every acknowledged entry of the run.
    written: BTreeSet<EntryId>,
    /// Posts that can be edited.
    posts: Vec<DocId>,
    serial: u64,
}

impl Run {
    async fn execute(sc: RealScenario) -> Result<RealSummary, SimError> {
        let dir = tempfile::tempdir().map_err(real("temporary folder"))?;
        let mut run = Run {
            rng: Rng::new(sc.seed),
            guard: Duration::from_secs(sc.guard_s),
            _dir: dir,
            peers: Vec::new(),
            subwiki: None,
            written: BTreeSet::new(),
            posts: Vec::new(),
            serial: 0,
            sc,
        };
        let result = run.events().await;
        run.stop_all().await;
        result
    }

    async fn events(&mut self) -> Result<RealSummary, SimError> {
        let setup = Instant::now();
        self.build().await?;
        let setup_s = setup.elapsed().as_secs_f64();
        let mut page_s = None;
        let syncs_before = self.store_syncs();
        let (baseline, held_before, t0) = match self.sc.event {
            RealEvent::Steady => {
                let (baseline, held) = self.baseline()?;
                self.steady().await?;
                (baseline, held, Instant::now())
            }
            RealEvent::Partition => {
                let (baseline, held) = self.baseline()?;
                let t0 = self.partition().await?;
                (baseline, held, t0)
            }
            RealEvent::Newcomer => {
                let first = self.peers.len();
                for _ in 0..self.sc.newcomers {
                    self.add_peer().await?;
                }
                let (baseline, held) = self.baseline()?;
                let t0 = Instant::now();
                let subwiki = self.subwiki()?;
                for i in first..self.peers.len() {
                    let addrs = self.addrs_of_random(0..first, self.sc.dial).await;
                    self.node(i)?
                        .join(subwiki, addrs)
                        .await
                        .map_err(real("join"))?;
                }
                page_s = self.wait_page(first, t0).await?;
                (baseline, held, t0)
            }
        };
        let times = self.wait_all(t0).await?;
        let mut degrees = Vec::new();
        for peer in &self.peers {
            if let Some(node) = &peer.node {
                degrees.push(node.peers().await.len());
            }
        }
        let mut summary = self.measure(setup_s, page_s, times, &baseline, &held_before)?;
        summary.peers_mean = degrees.iter().sum::<usize>() as f64 / degrees.len().max(1) as f64;
        summary.peers_max = degrees.iter().copied().max().unwrap_or(0);
        summary.syncs = self.store_syncs().saturating_sub(syncs_before);
        summary.written = match self.sc.event {
            RealEvent::Steady => self.sc.posts as usize,
            RealEvent::Partition => 2 * self.sc.posts as usize,
            RealEvent::Newcomer => 0,
        };
        Ok(summary)
    }

    /// Store syncs of the running nodes' stores so far.
    fn store_syncs(&self) -> u64 {
        self.peers
            .iter()
            .filter_map(|p| p.store.as_ref())
            .map(|s| s.syncs())
            .sum()
    }

    fn subwiki(&self) -> Result<SubwikiId, SimError> {
        self.subwiki
            .ok_or_else(|| SimError::Real("no subwiki".to_owned()))
    }

    fn node(&self, i: usize) -> Result<&Node, SimError> {
        self.peers
            .get(i)
            .and_then(|p| p.node.as_ref())
            .ok_or_else(|| SimError::Real(format!("node {i} is not running")))
    }

    fn config(&self, home: &Path, bootstrap: Vec<libp2p::Multiaddr>) -> Result<Config, SimError> {
        let mut config = Config::new(home);
        config.listen = vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .map_err(real("listen address"))?,
        ];
        config.mdns = false;
        config.bootstrap = bootstrap;
        config.resync_interval = Duration::from_secs(self.sc.resync_s);
        Ok(config)
    }

    /// Starts (or restarts) node `i` on its home and store.
    async fn start(&mut self, i: usize, bootstrap: Vec<libp2p::Multiaddr>) -> Result<(), SimError> {
        let home_dir = self
            .peers
            .get(i)
            .map(|p| p.home.clone())
            .ok_or_else(|| SimError::Real(format!("no node {i}")))?;
        let home = Home::new(&home_dir);
        let identity = home.load_or_init().map_err(real("identity"))?;
        let store = Arc::new(SledStore::open(&home.store()).map_err(real("store"))?);
        let config = self.config(&home_dir, bootstrap)?;
        let node = Node::start_with(store.clone(), identity, &config)
            .await
            .map_err(real("node start"))?;
        if let Some(peer) = self.peers.get_mut(i) {
            peer.store = Some(store);
            peer.node = Some(node);
        }
        Ok(())
    }

    /// Adds a node that dials `dial` random running nodes.
    async fn add_peer(&mut self) -> Result<usize, SimError> {
        let i = self.peers.len();
        let home = self._dir.path().join(format!("node-{i}"));
        self.peers.push(Peer {
            home,
            store: None,
            node: None,
            restarted: false,
            dialed: 0,
        });
        let bootstrap = self.addrs_of_random(0..i, self.sc.dial).await;
        self.start(i, bootstrap).await?;
        Ok(i)
    }

    /// Listen addresses of up to `k` random running nodes among `range`, preferring nodes
    /// that were dialed fewer than [`MAX_DIALED`] times.
    async fn addrs_of_random(
        &mut self,
        range: std::ops::Range<usize>,
        k: u32,
    ) -> Vec<libp2p::Multiaddr> {
        let running: Vec<u32> = range
            .filter(|&i| self.peers.get(i).is_some_and(|p| p.node.is_some()))
            .map(|i| i as u32)
            .collect();
        let open: Vec<u32> = running
            .iter()
            .copied()
            .filter(|&i| {
                self.peers
                    .get(i as usize)
                    .is_some_and(|p| p.dialed < MAX_DIALED)
            })
            .collect();
        let pool = if open.len() >= k as usize {
            open
        } else {
            running
        };
        let chosen = self.rng.sample(&pool, k as usize);
        for &i in &chosen {
            if let Some(p) = self.peers.get_mut(i as usize) {
                p.dialed += 1;
            }
        }
        let mut addrs = Vec::new();
        for i in chosen {
            if let Some(node) = self.peers.get(i as usize).and_then(|p| p.node.as_ref())
                && let Ok(Some(addr)) = tokio::time::timeout(self.guard, node.listen_addrs())
                    .await
                    .map(|a| a.into_iter().next())
            {
                addrs.push(addr);
            }
        }
        addrs
    }

    fn content(&mut self, what: &str) -> PostContent {
        self.serial += 1;
        let body = format!("{what} {} ", self.serial);
        let fill = (self.sc.body_bytes as usize).saturating_sub(body.len());
        PostContent {
            title: format!("{what} {}", self.serial),
            body: format!("{body}{}", "x".repeat(fill)),
            ..Default::default()
        }
    }

    /// Writes one entry on `node`: a post, or an edit of a random known post.
    async fn write(&mut self, node: &Node, what: &str) -> Result<(), SimError> {
        let subwiki = self.subwiki()?;
        let edit = !self.posts.is_empty() && self.rng.chance(self.sc.edit_fraction);
        if edit {
            let k = self.rng.below(self.posts.len() as u64) as usize;
            if let Some(&doc) = self.posts.get(k) {
                let content = self.content(&format!("{what} edit"));
                // An edit of a post this node does not hold yet is refused; post instead.
                if let Ok(Some(id)) = node.edit_post(doc, Base::Latest, content).await {
                    self.written.insert(id);
                    return Ok(());
                }
            }
        }
        let content = self.content(what);
        let doc = node
            .create_post(subwiki, content)
            .await
            .map_err(real("post"))?;
        self.written.insert(doc.into());
        self.posts.push(doc);
        Ok(())
    }

    /// Node 0 founds the subwiki and writes its history; the others start and join; waits
    /// until every node holds the history.
    async fn build(&mut self) -> Result<(), SimError> {
        self.add_peer().await?;
        let founder = self.node(0)?.clone();
        let subwiki = founder
            .create_subwiki(&self.sc.name, "a real-node run", Policy::default())
            .await
            .map_err(real("subwiki"))?;
        self.subwiki = Some(subwiki);
        self.written.insert(subwiki.into());
        let edit_fraction = self.sc.edit_fraction;
        self.sc.edit_fraction = 0.0;
        for _ in 0..self.sc.history {
            self.write(&founder, "history").await?;
        }
        self.sc.edit_fraction = edit_fraction;
        // One node at a time, each holding the history before the next starts, so that every
        // node it dials has the history to give.
        let written = Arc::new(self.written.clone());
        for _ in 1..self.sc.nodes {
            let i = self.add_peer().await?;
            let node = self.node(i)?.clone();
            node.join(subwiki, Vec::new()).await.map_err(real("join"))?;
            let store = self
                .peers
                .get(i)
                .and_then(|p| p.store.clone())
                .ok_or_else(|| SimError::Real(format!("node {i} has no store")))?;
            let deadline = Instant::now() + self.guard;
            if !wait_until(&node, deadline, |_| {
                holds_all(store.as_ref(), &subwiki, &written)
            })
            .await
            {
                return Err(SimError::Real(format!(
                    "node {i} did not get the history in time"
                )));
            }
        }
        Ok(())
    }

    /// Each node's counters and held entries at the event.
    #[allow(clippy::type_complexity)]
    fn baseline(&self) -> Result<(Vec<SyncStatus>, Vec<BTreeSet<EntryId>>), SimError> {
        let subwiki = self.subwiki()?;
        let mut status = Vec::new();
        let mut held = Vec::new();
        for peer in &self.peers {
            status.push(
                peer.node
                    .as_ref()
                    .and_then(|n| n.sync_status().get(&subwiki).cloned())
                    .unwrap_or_default(),
            );
            held.push(self.held(peer)?);
        }
        Ok((status, held))
    }

    fn held(&self, peer: &Peer) -> Result<BTreeSet<EntryId>, SimError> {
        let subwiki = self.subwiki()?;
        match &peer.store {
            Some(store) => Ok(store
                .items(&subwiki)
                .map_err(real("store"))?
                .into_iter()
                .map(|(_, id)| id)
                .collect()),
            None => Ok(BTreeSet::new()),
        }
    }

    async fn steady(&mut self) -> Result<(), SimError> {
        let mut pace = tokio::time::interval(Duration::from_millis(self.sc.interval_ms.max(1)));
        for _ in 0..self.sc.posts {
            pace.tick().await;
            let i = self.rng.below(self.peers.len() as u64) as usize;
            let node = self.node(i)?.clone();
            self.write(&node, "steady").await?;
        }
        Ok(())
    }

    /// Splits the network: the odd-numbered nodes shut down and write offline while the others
    /// write online; then they restart. Returns the time of the heal.
    async fn partition(&mut self) -> Result<Instant, SimError> {
        let n = self.peers.len();
        let away: Vec<usize> = (0..n).filter(|i| i % 2 == 1).collect();
        let online: Vec<usize> = (0..n).filter(|i| i % 2 == 0).collect();
        for &i in &away {
            if let Some(peer) = self.peers.get_mut(i) {
                if let Some(node) = peer.node.take() {
                    node.shutdown().await;
                }
                peer.store = None;
                peer.restarted = true;
            }
        }
        // The online half writes while the others are away.
        for _ in 0..self.sc.posts {
            let k = self.rng.below(online.len() as u64) as usize;
            let i = online.get(k).copied().unwrap_or(0);
            let node = self.node(i)?.clone();
            self.write(&node, "online").await?;
        }
        // Each node away writes its share offline, straight into its store.
        let share = (self.sc.posts as usize).div_ceil(away.len().max(1));
        let mut left = self.sc.posts as usize;
        for &i in &away {
            let home = self
                .peers
                .get(i)
                .map(|p| p.home.clone())
                .ok_or_else(|| SimError::Real(format!("no node {i}")))?;
            let offline = Node::open_offline(&home).map_err(real("offline node"))?;
            for _ in 0..share.min(left) {
                self.write(&offline, "offline").await?;
                left -= 1;
            }
        }
        // Heal: the away half restarts on its stores and dials nodes of the online half.
        let t0 = Instant::now();
        for &i in &away {
            let mut bootstrap = Vec::new();
            for _ in 0..self.sc.dial {
                let k = self.rng.below(online.len() as u64) as usize;
                if let Some(&j) = online.get(k) {
                    bootstrap.extend(self.addrs_of_random(j..j + 1, 1).await);
                }
            }
            self.start(i, bootstrap).await?;
        }
        Ok(t0)
    }

    /// Waits until the newest `page` posts are in every newcomer's feed; the slowest's time.
    async fn wait_page(&self, first: usize, t0: Instant) -> Result<Option<f64>, SimError> {
        let subwiki = self.subwiki()?;
        let newest = |node: &Node| -> Vec<DocId> {
            node.feed(Some(subwiki), None, self.sc.page as usize)
                .map(|f| f.into_iter().map(|i| i.post.meta.id).collect())
                .unwrap_or_default()
        };
        let want = newest(self.node(0)?);
        let mut slowest: Option<f64> = Some(0.0);
        for i in first..self.peers.len() {
            let node = self.node(i)?.clone();
            let got = wait_until(&node, t0 + self.guard, |n| newest(n) == want).await;
            slowest = match (slowest, got) {
                (Some(a), true) => Some(a.max(t0.elapsed().as_secs_f64())),
                _ => None,
            };
        }
        Ok(slowest)
    }

    /// Waits, for every running node, until it holds every written entry; each node's time
    /// since `t0` (`None`: not within the guard).
    async fn wait_all(&self, t0: Instant) -> Result<Vec<Option<f64>>, SimError> {
        let subwiki = self.subwiki()?;
        let written = Arc::new(self.written.clone());
        let deadline = t0 + self.guard;
        let mut tasks = tokio::task::JoinSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let (Some(node), Some(store)) = (peer.node.clone(), peer.store.clone()) else {
                continue;
            };
            let written = written.clone();
            tasks.spawn(async move {
                let done = wait_until(&node, deadline, |_| {
                    holds_all(store.as_ref(), &subwiki, &written)
                })
                .await;
                (i, done.then(|| t0.elapsed().as_secs_f64()))
            });
        }
        let mut times = vec![None; self.peers.len()];
        while let Some(joined) = tasks.join_next().await {
            let (i, t) = joined.map_err(real("wait"))?;
            if let Some(slot) = times.get_mut(i) {
                *slot = t;
            }
        }
        Ok(times)
    }

    fn measure(
        &self,
        setup_s: f64,
        page_s: Option<f64>,
        times: Vec<Option<f64>>,
        baseline: &[SyncStatus],
        held_before: &[BTreeSet<EntryId>],
    ) -> Result<RealSummary, SimError> {
        let subwiki = self.subwiki()?;
        let mut lost = BTreeSet::new();
        let mut sets = Vec::new();
        let mut feeds = Vec::new();
        let mut payload = Vec::new();
        let mut catchup = Vec::new();
        let mut duplicates = 0;
        let mut needed_total = 0;
        for (i, peer) in self.peers.iter().enumerate() {
            let (Some(node), Some(store)) = (&peer.node, &peer.store) else {
                continue;
            };
            let held = self.held(peer)?;
            lost.extend(self.written.difference(&held).copied());
            // The feed's posts, each read from the replica (a stored feed view is written just
            // after the entries, so it may lag the notification that woke the wait).
            let mut feed: Vec<(DocId, String, String)> = Vec::new();
            for item in node
                .feed(Some(subwiki), None, MAX_FEED)
                .map_err(real("feed"))?
            {
                let post = node.post(item.post.meta.id).map_err(real("post"))?.post;
                feed.push((post.meta.id, post.content.title, post.content.body));
            }
            // Bytes of what it gained in the window and did not write itself.
            let before = held_before.get(i).cloned().unwrap_or_default();
            let me = node.author();
            let mut needed = 0u64;
            for id in held.difference(&before) {
                if let Some(entry) = store.entry(id).map_err(real("store"))?
                    && entry.author() != me
                {
                    needed += entry.bytes().len() as u64;
                }
            }
            let end = node
                .sync_status()
                .get(&subwiki)
                .cloned()
                .unwrap_or_default();
            let zero = SyncStatus::default();
            let start = if peer.restarted {
                &zero
            } else {
                baseline.get(i).unwrap_or(&zero)
            };
            duplicates += end.duplicates.saturating_sub(start.duplicates);
            if needed > 0 {
                needed_total += needed;
                let got = end.entry_bytes.saturating_sub(start.entry_bytes);
                let sessions = end.bytes_received.saturating_sub(start.bytes_received);
                payload.push(got as f64 / needed as f64);
                catchup.push(sessions as f64 / needed as f64);
            }
            sets.push(held);
            feeds.push(feed);
        }
        let identical = sets.windows(2).all(|w| w.first() == w.last())
            && feeds.windows(2).all(|w| w.first() == w.last());
        let mut done: Vec<f64> = times.iter().flatten().copied().collect();
        done.sort_by(f64::total_cmp);
        let all = times.iter().all(Option::is_some);
        let ratio = |v: &[f64]| Ratio {
            mean: if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            },
            max: v.iter().copied().fold(0.0, f64::max),
        };
        Ok(RealSummary {
            name: self.sc.name.clone(),
            nodes: self.peers.len(),
            event: self.sc.event.label(),
            entries: sets.iter().map(BTreeSet::len).max().unwrap_or(0),
            setup_s,
            converged_s: if all { done.last().copied() } else { None },
            median_s: done.get(done.len() / 2).copied(),
            page_s,
            lost: lost.len(),
            identical,
            payload_ratio: ratio(&payload),
            catchup_ratio: ratio(&catchup),
            duplicates,
            needed_bytes: needed_total,
            peers_mean: 0.0,
            peers_max: 0,
            syncs: 0,
            written: 0,
        })
    }

    async fn stop_all(&mut self) {
        for peer in &mut self.peers {
            if let Some(node) = peer.node.take() {
                node.shutdown().await;
            }
            peer.store = None;
        }
    }
}

/// True if the store holds every id of `written` for `subwiki`.
fn holds_all(store: &dyn Store, subwiki: &SubwikiId, written: &BTreeSet<EntryId>) -> bool {
    let Ok(items) = store.items(subwiki) else {
        return false;
    };
    if items.len() < written.len() {
        return false;
    }
    let held: std::collections::HashSet<EntryId> = items.into_iter().map(|(_, id)| id).collect();
    written.iter().all(|id| held.contains(id))
}

/// Waits until `check` holds on `node`, re-checking whenever it changes, until `deadline`;
/// false if it does not hold by then.
async fn wait_until(node: &Node, deadline: Instant, mut check: impl FnMut(&Node) -> bool) -> bool {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::from_std(deadline);
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

/// The Markdown of one run: a table of its figures.
pub fn markdown(out: &RealOutput) -> String {
    let s = &out.summary;
    let secs = |v: Option<f64>| v.map_or_else(|| "**never**".to_owned(), |v| format!("{v:.2} s"));
    let mut md = format!("### `{}` (real nodes)\n\n{}\n\n", s.name, out.description);
    md.push_str("| measure | value |\n|---|---:|\n");
    let rows: Vec<(String, String)> = vec![
        ("nodes".into(), s.nodes.to_string()),
        (
            "connected peers per node at the end: mean, max".into(),
            format!("{:.1}, {}", s.peers_mean, s.peers_max),
        ),
        (
            "entries in the subwiki at the end".into(),
            s.entries.to_string(),
        ),
        (
            "setup (build the network, replicate the history)".into(),
            format!("{:.1} s", s.setup_s),
        ),
        (
            format!("all nodes identical after ({})", s.event),
            secs(s.converged_s),
        ),
        ("median node after".into(), secs(s.median_s)),
        (
            "newest page on the newcomer after".into(),
            if s.event == "join" {
                secs(s.page_s)
            } else {
                "n/a".into()
            },
        ),
        ("entries lost".into(), s.lost.to_string()),
        (
            "entry sets and feeds identical on every node".into(),
            if s.identical {
                "yes".into()
            } else {
                "**no**".into()
            },
        ),
        (
            "bytes needed in the window (all nodes)".into(),
            s.needed_bytes.to_string(),
        ),
        (
            "entry bytes received / needed, per node: mean, max".into(),
            format!("{:.2}, {:.2}", s.payload_ratio.mean, s.payload_ratio.max),
        ),
        (
            "catch-up response bytes / needed, per node: mean, max".into(),
            format!("{:.2}, {:.2}", s.catchup_ratio.mean, s.catchup_ratio.max),
        ),
        (
            "entries received twice (all nodes)".into(),
            s.duplicates.to_string(),
        ),
        (
            "store syncs (flush + fsync) from the event to the end, all nodes".into(),
            if s.written > 0 {
                format!(
                    "{} ({:.2} per entry written per node)",
                    s.syncs,
                    s.syncs as f64 / (s.written as f64 * s.nodes as f64)
                )
            } else {
                s.syncs.to_string()
            },
        ),
        ("wall time".into(), format!("{:.1} s", out.wall_s)),
    ];
    for (k, v) in rows {
        md.push_str(&format!("| {k} | {v} |\n"));
    }
    md
}
