//! The discrete-event simulator: simulated time in ms, one seeded RNG, one event queue ordered
//! by `(time, sequence)`, and every node's state.
//!
//! Each node runs two layers, as the real node does:
//!
//! - **Push** — a model of gossipsub (Vyzovitis et al., "GossipSub: Attack-Resilient Message
//!   Propagation in the Filecoin and ETH2.0 Networks", 2020): a symmetric mesh of degree `D`
//!   kept between `D_lo` and `D_hi` at each heartbeat, flood publishing, forwarding to the mesh
//!   after validation, lazy gossip (IHAVE with the ids of the last `history_gossip` heartbeats
//!   to at least `D_lazy` non-mesh peers, answered by IWANT), IDONTWANT for large messages, and
//!   deduplication by entry id (the store: an entry held is a duplicate).
//! - **Pull** — catch-up sessions that run the real [`agora_node::proto::Session`] and
//!   [`agora_node::proto::Responder`] state machines, periodically with a few peers and when a
//!   node (re)connects. Their requests and responses travel as simulated messages, with the
//!   protocol's own encoded sizes.
//!
//! Peers that send invalid entries get strikes, and are blocked at [`MAX_STRIKES`] as the node
//! does (`node/src/net.rs`). Each node knows a bounded random set of peers, so the cost of a run
//! grows with nodes × degree, not nodes².

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use agora_crdt::Timestamp;
use agora_node::proto::{
    Config, Output, ProtoError, Request, Responder, Response, Session, Snapshot,
};

use crate::SimError;
use crate::baseline::{self, ENVELOPE_BYTES};
use crate::data::{Bits, EPOCH_MS, Entries, Kind, SUBWIKI, SimVerify};
use crate::metrics::{AutomergeCost, Convergence, Histogram, NodeStats, Row, Spread, Summary};
use crate::rng::Rng;
use crate::scenario::Scenario;

/// Invalid entries a peer may send before it is blocked (as `MAX_STRIKES` in the node).
pub const MAX_STRIKES: u32 = 8;
/// Bytes of an IHAVE or IWANT envelope, and of one id in it.
const CONTROL_BYTES: u32 = 40;
const CONTROL_ID_BYTES: u32 = 34;
/// Snapshot items the cache may hold over all nodes, before it is emptied.
const SNAPSHOT_CACHE_ITEMS: usize = 4_000_000;
/// Documents of the Automerge sample.
const AUTOMERGE_SAMPLE_DOCS: u32 = 40;

#[derive(Debug)]
enum Msg {
    Gossip(u32),
    IHave(Vec<u32>),
    IWant(Vec<u32>),
    IDontWant(u32),
    Request { session: u64, request: Request },
    Response { session: u64, response: Response },
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: u32,
        to: u32,
        size: u32,
        msg: Msg,
    },
    Heartbeat(u32),
    CatchUp(u32),
    Post,
    Forge(u32),
    Sybil(u32),
    Toggle(u32),
    ChurnEnd,
    PartitionStart(usize),
    Heal(usize),
    HealConnect(u32),
    Join(usize),
    Quiesce,
    Timeout {
        session: u64,
        sent: u32,
    },
    Check,
    Sample,
}

#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Gossip,
    CatchUp,
}

#[derive(Debug, Default)]
struct Node {
    attacker: bool,
    online: bool,
    joined: bool,
    churns: bool,
    peers: Vec<u32>,
    blocked: HashSet<u32>,
    mesh: Vec<u32>,
    have: Bits,
    generation: u64,
    seen_invalid: HashSet<u32>,
    strikes: HashMap<u32, u32>,
    mcache: VecDeque<Vec<u32>>,
    dont_want: HashMap<(u32, u32), u64>,
    down_free_us: u64,
    sessions: Vec<(u32, u64)>,
    /// Peers to catch up with once a session slot is free (`catchup.max_sessions`).
    pending: VecDeque<u32>,
    stats: NodeStats,
}

#[derive(Debug)]
struct Active {
    node: u32,
    peer: u32,
    session: Session<SimVerify>,
    sent: u32,
}

#[derive(Debug)]
struct Target {
    event: &'static str,
    at: u64,
    bits: Bits,
    scope: Option<Vec<u32>>,
    reached: Option<u64>,
    reached_99: Option<u64>,
}

/// One run of a scenario.
#[derive(Debug)]
pub struct Sim {
    sc: Scenario,
    rng: Rng,
    now: u64,
    end: u64,
    seq: u64,
    events: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<Node>,
    entries: Entries,
    sessions: BTreeMap<u64, Active>,
    next_session: u64,
    responder: Responder<SimVerify>,
    config: Config,
    groups: Option<Vec<u32>>,
    healed_groups: Vec<u32>,
    snapshots: HashMap<u32, (u64, Snapshot)>,
    snapshot_items: usize,
    empty: Snapshot,
    targets: Vec<Target>,
    window: Option<usize>,
    window_docs_at_start: u32,
    newcomers: Vec<Vec<u32>>,
    row: Row,
    rows: Vec<Row>,
    latency: Histogram,
    session_rounds: Vec<f64>,
    reconcile_rounds: Vec<f64>,
    sessions_started: u64,
    sessions_done: u64,
    sessions_failed: u64,
    rejected: u64,
    blocks: u64,
}

impl Sim {
    /// Builds the network of `sc`: nodes, links, roles, the initial history, the first events.
    pub fn new(sc: Scenario) -> Result<Self, SimError> {
        sc.check()?;
        let mut rng = Rng::new(sc.seed);
        let n = sc.nodes;
        let mut nodes: Vec<Node> = (0..n)
            .map(|_| Node {
                online: true,
                joined: true,
                mcache: VecDeque::from([Vec::new()]),
                ..Node::default()
            })
            .collect();
        // Roles: attackers, newcomers and churners are disjoint random sets.
        let mut order: Vec<u32> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut cursor = order.into_iter();
        if let Some(attack) = &sc.attack {
            let k = (f64::from(n) * attack.fraction).round() as usize;
            for i in cursor.by_ref().take(k) {
                if let Some(node) = nodes.get_mut(i as usize) {
                    node.attacker = true;
                }
            }
        }
        let mut newcomers = Vec::new();
        for join in &sc.join {
            let group: Vec<u32> = cursor.by_ref().take(join.count as usize).collect();
            for &i in &group {
                if let Some(node) = nodes.get_mut(i as usize) {
                    node.joined = false;
                }
            }
            newcomers.push(group);
        }
        if let Some(churn) = &sc.churn {
            let rest: Vec<u32> = cursor.collect();
            let k = (rest.len() as f64 * churn.fraction).round() as usize;
            for &i in rest.iter().take(k) {
                if let Some(node) = nodes.get_mut(i as usize) {
                    node.churns = true;
                }
            }
        }
        // Links: each node dials `peers_out` random others; links are symmetric.
        let mut adjacency: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
        for a in 0..n {
            let mut picked = 0;
            let mut tries = 0;
            while picked < sc.network.peers_out && tries < sc.network.peers_out * 8 {
                tries += 1;
                let b = rng.below(u64::from(n)) as u32;
                if b == a {
                    continue;
                }
                picked += 1;
                if let Some(list) = adjacency.get_mut(a as usize) {
                    list.push(b);
                }
                if let Some(list) = adjacency.get_mut(b as usize) {
                    list.push(a);
                }
            }
        }
        for (node, mut peers) in nodes.iter_mut().zip(adjacency) {
            peers.sort_unstable();
            peers.dedup();
            node.peers = peers;
        }
        let config = Config::default();
        let responder = Responder::with_verifier(config, SimVerify)
            .map_err(|e| SimError::Proto(e.to_string()))?;
        let end = sc.duration_s * 1_000;
        let mut sim = Self {
            rng,
            now: 0,
            end,
            seq: 0,
            events: 0,
            queue: BinaryHeap::new(),
            nodes,
            entries: Entries::default(),
            sessions: BTreeMap::new(),
            next_session: 0,
            responder,
            config,
            groups: None,
            healed_groups: Vec::new(),
            snapshots: HashMap::new(),
            snapshot_items: 0,
            empty: Snapshot::default(),
            targets: Vec::new(),
            window: None,
            window_docs_at_start: 0,
            newcomers,
            row: Row::default(),
            rows: Vec::new(),
            latency: Histogram::default(),
            session_rounds: Vec::new(),
            reconcile_rounds: Vec::new(),
            sessions_started: 0,
            sessions_done: 0,
            sessions_failed: 0,
            rejected: 0,
            blocks: 0,
            sc,
        };
        sim.seed_history();
        sim.schedule_start();
        Ok(sim)
    }

    /// The initial history, held by every node but the newcomers: times spread over the year
    /// before the run.
    fn seed_history(&mut self) {
        const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
        for _ in 0..self.sc.posting.initial_entries {
            let time = EPOCH_MS - 1 - self.rng.below(YEAR_MS);
            let (kind, doc) = self.pick_kind();
            let len = self.entry_size();
            let author = self.rng.below(u64::from(self.sc.nodes)) as u32;
            let e = self.entries.make(kind, author, doc, time, 0, len);
            for node in self.nodes.iter_mut().filter(|n| n.joined) {
                node.have.insert(e);
            }
        }
    }

    fn schedule_start(&mut self) {
        // Initial meshes, then staggered timers.
        for i in 0..self.sc.nodes {
            self.maintain_mesh(i);
        }
        let hb = self.sc.gossip.heartbeat_ms;
        let interval = self.sc.catchup.interval_s * 1_000;
        for i in 0..self.sc.nodes {
            let t = self.rng.below(hb);
            self.at(t, Event::Heartbeat(i));
            let t = self.rng.below(interval);
            self.at(t, Event::CatchUp(i));
        }
        let p = &self.sc.posting;
        if p.rate_per_s > 0.0 && p.until_s > p.start_s {
            let t = p.start_s * 1_000 + self.rng.exp(1_000.0 / p.rate_per_s) as u64;
            self.at(t, Event::Post);
        }
        let until = self.sc.posting.until_s * 1_000;
        if until < self.end {
            self.at(until, Event::Quiesce);
        }
        if let Some(attack) = self.sc.attack.clone() {
            for i in 0..self.sc.nodes {
                if !self.is_attacker(i) {
                    continue;
                }
                let start = attack.start_s * 1_000;
                if attack.invalid_per_s > 0.0 {
                    let t = start + self.rng.exp(1_000.0 / attack.invalid_per_s) as u64;
                    self.at(t, Event::Forge(i));
                }
                if attack.sybil_per_s > 0.0 {
                    let t = start + self.rng.exp(1_000.0 / attack.sybil_per_s) as u64;
                    self.at(t, Event::Sybil(i));
                }
            }
        }
        if let Some(churn) = self.sc.churn.clone() {
            for i in 0..self.sc.nodes {
                if self.nodes.get(i as usize).is_some_and(|n| n.churns) {
                    let t =
                        churn.start_s * 1_000 + self.rng.exp(churn.online_mean_s * 1_000.0) as u64;
                    self.at(t, Event::Toggle(i));
                }
            }
            self.at(churn.until_s * 1_000, Event::ChurnEnd);
        }
        for (i, part) in self.sc.partition.clone().iter().enumerate() {
            self.at(part.start_s * 1_000, Event::PartitionStart(i));
            self.at(part.heal_s * 1_000, Event::Heal(i));
        }
        for (i, join) in self.sc.join.clone().iter().enumerate() {
            self.at(join.at_s * 1_000, Event::Join(i));
        }
        self.at(self.sc.check_ms, Event::Check);
        self.at(self.sc.sample_ms, Event::Sample);
    }

    fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            time,
            seq: self.seq,
            event,
        });
    }

    fn pick_kind(&mut self) -> (Kind, u32) {
        let docs = self.entries.docs();
        if docs > 0 && self.rng.chance(self.sc.posting.edit_fraction) {
            (Kind::Edit, self.rng.below(u64::from(docs)) as u32)
        } else {
            (Kind::Post, 0)
        }
    }

    /// Log-uniform between the scenario's smallest and largest entry.
    fn entry_size(&mut self) -> u32 {
        let (lo, hi) = (
            f64::from(self.sc.posting.size_min),
            f64::from(self.sc.posting.size_max),
        );
        (lo.ln() + self.rng.unit() * (hi.ln() - lo.ln()))
            .exp()
            .round() as u32
    }

    fn is_attacker(&self, i: u32) -> bool {
        self.nodes.get(i as usize).is_some_and(|n| n.attacker)
    }

    fn is_up(&self, i: u32) -> bool {
        self.nodes
            .get(i as usize)
            .is_some_and(|n| n.online && n.joined)
    }

    /// True if `a` and `b` can talk now: both up, neither blocked the other, same side of any
    /// partition.
    fn linked(&self, a: u32, b: u32) -> bool {
        let (Some(x), Some(y)) = (self.nodes.get(a as usize), self.nodes.get(b as usize)) else {
            return false;
        };
        x.online
            && x.joined
            && y.online
            && y.joined
            && !x.blocked.contains(&b)
            && !y.blocked.contains(&a)
            && self
                .groups
                .as_ref()
                .is_none_or(|g| g.get(a as usize) == g.get(b as usize))
    }

    fn linked_peers(&self, a: u32) -> Vec<u32> {
        self.nodes
            .get(a as usize)
            .map(|n| {
                n.peers
                    .iter()
                    .copied()
                    .filter(|&b| self.linked(a, b))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs to the end; `progress` gets the simulated time now and then.
    pub fn run(&mut self, progress: &mut dyn FnMut(u64)) -> Result<(), SimError> {
        while let Some(next) = self.queue.pop() {
            if next.time > self.end {
                break;
            }
            self.now = next.time;
            self.events += 1;
            if let Event::Sample = next.event {
                progress(self.now);
            }
            self.handle(next.event)?;
        }
        self.now = self.end;
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Deliver {
                from,
                to,
                size,
                msg,
            } => self.deliver(from, to, size, msg)?,
            Event::Heartbeat(i) => self.heartbeat(i),
            Event::CatchUp(i) => self.catch_up_tick(i)?,
            Event::Post => self.post()?,
            Event::Forge(i) => self.forge(i),
            Event::Sybil(i) => self.sybil(i),
            Event::Toggle(i) => self.toggle(i)?,
            Event::ChurnEnd => self.churn_end()?,
            Event::PartitionStart(i) => self.partition_start(i),
            Event::Heal(i) => self.heal(i),
            Event::HealConnect(i) => self.heal_connect(i)?,
            Event::Join(i) => self.join(i)?,
            Event::Quiesce => self.add_target("quiesce", None, None),
            Event::Timeout { session, sent } => {
                if self.sessions.get(&session).is_some_and(|a| a.sent == sent) {
                    self.end_session(session, false)?;
                }
            }
            Event::Check => {
                self.check_targets();
                self.at(self.now + self.sc.check_ms, Event::Check);
            }
            Event::Sample => {
                self.sample();
                self.at(self.now + self.sc.sample_ms, Event::Sample);
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Messages.

    fn send(&mut self, from: u32, to: u32, msg: Msg, size: u32) {
        if !self.linked(from, to) || self.rng.chance(self.sc.network.loss) {
            return;
        }
        let net = &self.sc.network;
        let latency = net.latency_ms + self.rng.below(net.jitter_ms + 1);
        let mut at_us = (self.now + latency) * 1_000;
        if let Some(tx_us) = (u64::from(size) * 8 * 1_000).checked_div(net.bandwidth_kbps)
            && let Some(node) = self.nodes.get_mut(to as usize)
        {
            let start = at_us.max(node.down_free_us);
            at_us = start + tx_us;
            node.down_free_us = at_us;
        }
        self.at(
            at_us.div_ceil(1_000),
            Event::Deliver {
                from,
                to,
                size,
                msg,
            },
        );
    }

    fn deliver(&mut self, from: u32, to: u32, size: u32, msg: Msg) -> Result<(), SimError> {
        if !self.linked(from, to) {
            return Ok(());
        }
        let window = self.window_open();
        if let Some(node) = self.nodes.get_mut(to as usize) {
            node.stats.received += u64::from(size);
            if window {
                node.stats.window_received += u64::from(size);
            }
        }
        let size = u64::from(size);
        match msg {
            Msg::Gossip(e) => {
                self.row.gossip_bytes += size;
                self.on_gossip(to, from, e);
            }
            Msg::IHave(ids) => {
                self.row.control_bytes += size;
                self.on_ihave(to, from, ids);
            }
            Msg::IWant(ids) => {
                self.row.control_bytes += size;
                self.on_iwant(to, from, ids);
            }
            Msg::IDontWant(e) => {
                self.row.control_bytes += size;
                let expires = self.now + 3 * self.sc.gossip.heartbeat_ms;
                if let Some(node) = self.nodes.get_mut(to as usize) {
                    node.dont_want.insert((from, e), expires);
                }
            }
            Msg::Request { session, request } => {
                self.row.catchup_bytes += size;
                self.on_request(to, from, session, request);
            }
            Msg::Response { session, response } => {
                self.row.catchup_bytes += size;
                self.on_response(session, response)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Entries arriving.

    /// Stores entry `e` at node `i`; false (and a duplicate counted) if it was held.
    fn ingest(&mut self, i: u32, e: u32, via: Via) -> bool {
        let Some(meta) = self.entries.meta(e).copied() else {
            return false;
        };
        let window = self.window_open();
        let Some(node) = self.nodes.get_mut(i as usize) else {
            return false;
        };
        if !node.have.insert(e) {
            node.stats.duplicates += 1;
            self.row.duplicates += 1;
            return false;
        }
        node.generation += 1;
        node.stats.needed += u64::from(meta.len);
        match via {
            Via::Gossip => node.stats.via_gossip += 1,
            Via::CatchUp => node.stats.via_catchup += 1,
        }
        if window {
            node.stats.window_needed += u64::from(meta.len);
            node.stats.window_docs.push(meta.doc);
        }
        if !node.attacker && meta.kind.is_honest() && meta.created_ms > 0 {
            self.latency.add(self.now.saturating_sub(meta.created_ms));
        }
        true
    }

    /// Counts `count` strikes against `offender` at `victim`; blocks it at [`MAX_STRIKES`].
    fn strike(&mut self, victim: u32, offender: u32, count: u32) {
        let Some(node) = self.nodes.get_mut(victim as usize) else {
            return;
        };
        if node.attacker {
            return;
        }
        let strikes = node.strikes.entry(offender).or_default();
        *strikes = strikes.saturating_add(count);
        if *strikes >= MAX_STRIKES && node.blocked.insert(offender) {
            node.mesh.retain(|&p| p != offender);
            self.blocks += 1;
        }
    }

    fn on_gossip(&mut self, to: u32, from: u32, e: u32) {
        let Some(meta) = self.entries.meta(e).copied() else {
            return;
        };
        let Some(node) = self.nodes.get_mut(to as usize) else {
            return;
        };
        if node.have.contains(e) || node.seen_invalid.contains(&e) {
            node.stats.duplicates += 1;
            self.row.duplicates += 1;
            return;
        }
        if meta.kind == Kind::Forged {
            if !node.attacker {
                node.seen_invalid.insert(e);
                self.rejected += 1;
                self.row.rejected += 1;
                self.strike(to, from, 1);
            }
            return;
        }
        self.ingest(to, e, Via::Gossip);
        let mesh = self
            .nodes
            .get(to as usize)
            .map(|n| n.mesh.clone())
            .unwrap_or_default();
        let threshold = self.sc.gossip.idontwant_bytes;
        if threshold > 0 && meta.len >= threshold {
            for &p in mesh.iter().filter(|&&p| p != from) {
                self.send(to, p, Msg::IDontWant(e), CONTROL_BYTES + CONTROL_ID_BYTES);
            }
        }
        // Attackers drop honest gossip (they relay only their own kind).
        if !self.is_attacker(to) || meta.kind == Kind::Sybil {
            self.forward(to, e, Some(from), &mesh);
        }
    }

    fn forward(&mut self, i: u32, e: u32, except: Option<u32>, mesh: &[u32]) {
        let size = self.gossip_size(e);
        for &p in mesh {
            if Some(p) == except {
                continue;
            }
            let unwanted = self
                .nodes
                .get(i as usize)
                .is_some_and(|n| n.dont_want.contains_key(&(p, e)));
            if !unwanted {
                self.send(i, p, Msg::Gossip(e), size);
            }
        }
        if let Some(window) = self
            .nodes
            .get_mut(i as usize)
            .and_then(|n| n.mcache.front_mut())
        {
            window.push(e);
        }
    }

    fn gossip_size(&self, e: u32) -> u32 {
        self.entries.meta(e).map_or(0, |m| m.len) + self.sc.gossip.envelope_bytes
    }

    /// A new entry made at `i`: to every connected peer (flood publishing) or to the mesh.
    fn publish(&mut self, i: u32, e: u32) {
        let targets = if self.sc.gossip.flood_publish {
            self.linked_peers(i)
        } else {
            self.nodes
                .get(i as usize)
                .map(|n| n.mesh.clone())
                .unwrap_or_default()
        };
        self.forward(i, e, None, &targets);
    }

    fn on_ihave(&mut self, to: u32, from: u32, ids: Vec<u32>) {
        let Some(node) = self.nodes.get(to as usize) else {
            return;
        };
        let wanted: Vec<u32> = ids
            .into_iter()
            .filter(|e| !node.have.contains(*e) && !node.seen_invalid.contains(e))
            .collect();
        if !wanted.is_empty() {
            let size = CONTROL_BYTES + CONTROL_ID_BYTES * wanted.len() as u32;
            self.send(to, from, Msg::IWant(wanted), size);
        }
    }

    fn on_iwant(&mut self, to: u32, from: u32, ids: Vec<u32>) {
        if self.is_attacker(to) {
            return;
        }
        for e in ids {
            if self
                .nodes
                .get(to as usize)
                .is_some_and(|n| n.have.contains(e))
            {
                let size = self.gossip_size(e);
                self.send(to, from, Msg::Gossip(e), size);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Gossip heartbeat.

    fn maintain_mesh(&mut self, i: u32) {
        let linked = self.linked_peers(i);
        let g = self.sc.gossip.clone();
        let Some(node) = self.nodes.get_mut(i as usize) else {
            return;
        };
        node.mesh.retain(|p| linked.contains(p));
        let mut added = Vec::new();
        let mut removed = Vec::new();
        if node.mesh.len() < g.d_lo {
            let candidates: Vec<u32> = linked
                .iter()
                .copied()
                .filter(|p| !node.mesh.contains(p))
                .collect();
            added = self.rng.sample(&candidates, g.d - node.mesh.len());
            node.mesh.extend(&added);
        } else if node.mesh.len() > g.d_hi {
            self.rng.shuffle(&mut node.mesh);
            removed = node.mesh.split_off(g.d);
        }
        // GRAFT and PRUNE are symmetric.
        for p in added {
            if let Some(peer) = self.nodes.get_mut(p as usize)
                && !peer.mesh.contains(&i)
            {
                peer.mesh.push(i);
            }
        }
        for p in removed {
            if let Some(peer) = self.nodes.get_mut(p as usize) {
                peer.mesh.retain(|&q| q != i);
            }
        }
    }

    fn heartbeat(&mut self, i: u32) {
        self.at(self.now + self.sc.gossip.heartbeat_ms, Event::Heartbeat(i));
        if !self.is_up(i) {
            return;
        }
        self.maintain_mesh(i);
        let g = self.sc.gossip.clone();
        let now = self.now;
        let Some(node) = self.nodes.get_mut(i as usize) else {
            return;
        };
        node.dont_want.retain(|_, expires| *expires > now);
        let ids: Vec<u32> = node
            .mcache
            .iter()
            .take(g.history_gossip)
            .flatten()
            .copied()
            .collect();
        node.mcache.push_front(Vec::new());
        node.mcache.truncate(g.history_gossip.max(1));
        let attacker = node.attacker;
        let mesh = node.mesh.clone();
        if ids.is_empty() || attacker {
            return;
        }
        let candidates: Vec<u32> = self
            .linked_peers(i)
            .into_iter()
            .filter(|p| !mesh.contains(p))
            .collect();
        let k = g.d_lazy.max(candidates.len() / 4);
        let size = CONTROL_BYTES + CONTROL_ID_BYTES * ids.len() as u32;
        for p in self.rng.sample(&candidates, k) {
            self.send(i, p, Msg::IHave(ids.clone()), size);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Catch-up.

    fn snapshot(&mut self, i: u32) -> Snapshot {
        let Some(node) = self.nodes.get(i as usize) else {
            return Snapshot::default();
        };
        if let Some((generation, snapshot)) = self.snapshots.get(&i)
            && *generation == node.generation
        {
            return snapshot.clone();
        }
        let snapshot = Snapshot::new(
            node.have
                .iter()
                .filter_map(|e| self.entries.meta(e))
                .map(|m| (m.time, m.id)),
        );
        if self.snapshot_items + snapshot.len() > SNAPSHOT_CACHE_ITEMS {
            self.snapshots.clear();
            self.snapshot_items = 0;
        }
        self.snapshot_items += snapshot.len();
        if let Some((_, old)) = self
            .snapshots
            .insert(i, (node.generation, snapshot.clone()))
        {
            self.snapshot_items = self.snapshot_items.saturating_sub(old.len());
        }
        snapshot
    }

    fn catch_up_tick(&mut self, i: u32) -> Result<(), SimError> {
        self.at(
            self.now + self.sc.catchup.interval_s * 1_000,
            Event::CatchUp(i),
        );
        if !self.is_up(i) {
            return Ok(());
        }
        let peers = self.linked_peers(i);
        self.catch_up_with(i, &peers, self.sc.catchup.peers)
    }

    /// Starts sessions from `i` with `k` of `peers` (0: all of them).
    fn catch_up_with(&mut self, i: u32, peers: &[u32], k: usize) -> Result<(), SimError> {
        let chosen = if k == 0 {
            peers.to_vec()
        } else {
            self.rng.sample(peers, k)
        };
        for p in chosen {
            self.start_session(i, p)?;
        }
        Ok(())
    }

    /// Starts a session from `i` with `peer`, or queues it when every slot is taken; true if
    /// a session started.
    fn start_session(&mut self, i: u32, peer: u32) -> Result<bool, SimError> {
        let max = self.sc.catchup.max_sessions;
        let Some(node) = self.nodes.get_mut(i as usize) else {
            return Ok(false);
        };
        if node.sessions.iter().any(|(p, _)| *p == peer) || node.pending.contains(&peer) {
            return Ok(false);
        }
        if max > 0 && node.sessions.len() >= max {
            node.pending.push_back(peer);
            return Ok(false);
        }
        if !self.linked(i, peer) {
            return Ok(false);
        }
        let snapshot = self.snapshot(i);
        let (session, request) = Session::with_verifier(SUBWIKI, snapshot, self.config, SimVerify)
            .map_err(|e| SimError::Proto(e.to_string()))?;
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            id,
            Active {
                node: i,
                peer,
                session,
                sent: 0,
            },
        );
        if let Some(node) = self.nodes.get_mut(i as usize) {
            node.sessions.push((peer, id));
        }
        self.sessions_started += 1;
        self.row.sessions += 1;
        self.send_request(id, request);
        Ok(true)
    }

    fn send_request(&mut self, id: u64, request: Request) {
        let Some(active) = self.sessions.get_mut(&id) else {
            return;
        };
        active.sent += 1;
        let (from, to, sent) = (active.node, active.peer, active.sent);
        let size = request.encoded_len() as u32;
        self.send(
            from,
            to,
            Msg::Request {
                session: id,
                request,
            },
            size,
        );
        let timeout = self.now + self.sc.catchup.timeout_s * 1_000;
        self.at(timeout, Event::Timeout { session: id, sent });
    }

    fn end_session(&mut self, id: u64, done: bool) -> Result<(), SimError> {
        let Some(active) = self.sessions.remove(&id) else {
            return Ok(());
        };
        if let Some(node) = self.nodes.get_mut(active.node as usize) {
            node.sessions.retain(|(_, s)| *s != id);
        }
        if done {
            let stats = active.session.stats();
            self.sessions_done += 1;
            self.session_rounds.push(f64::from(stats.rounds));
            self.reconcile_rounds
                .push(f64::from(stats.reconcile_rounds));
        } else {
            self.sessions_failed += 1;
        }
        // The first queued peer still linked takes the free slot (as the node's lanes do).
        while let Some(peer) = self
            .nodes
            .get_mut(active.node as usize)
            .and_then(|n| n.pending.pop_front())
        {
            if self.start_session(active.node, peer)? {
                break;
            }
        }
        Ok(())
    }

    fn on_request(&mut self, to: u32, from: u32, session: u64, request: Request) {
        let snapshot = match request {
            Request::Reconcile { .. } => self.snapshot(to),
            _ => self.empty.clone(),
        };
        let now = Timestamp(EPOCH_MS + self.now);
        let Some(node) = self.nodes.get(to as usize) else {
            return;
        };
        let entries = &self.entries;
        let have = &node.have;
        let reply = self.responder.handle(
            request,
            Some(&snapshot),
            |id| {
                entries
                    .number(id)
                    .filter(|&e| have.contains(e))
                    .and_then(|e| entries.bytes(e))
                    .map(<[u8]>::to_vec)
            },
            now,
        );
        for (id, _) in &reply.store {
            if let Some(e) = self.entries.number(id) {
                self.ingest(to, e, Via::CatchUp);
            }
        }
        match reply.fault {
            Some(agora_node::proto::Fault::Invalid { count, .. }) => {
                self.rejected += count as u64;
                self.row.rejected += count as u64;
                self.strike(to, from, u32::try_from(count).unwrap_or(u32::MAX));
            }
            Some(_) => self.strike(to, from, 1),
            None => {}
        }
        let size = reply.response.encoded_len() as u32;
        let response = reply.response;
        self.send(to, from, Msg::Response { session, response }, size);
    }

    fn on_response(&mut self, id: u64, response: Response) -> Result<(), SimError> {
        let now = Timestamp(EPOCH_MS + self.now);
        let Some(active) = self.sessions.get_mut(&id) else {
            return Ok(());
        };
        let (node, peer) = (active.node, active.peer);
        match active.session.handle(response, now) {
            Ok(outputs) => self.drive(id, node, peer, outputs.into()),
            Err(ProtoError::Refused { .. }) => self.end_session(id, false),
            Err(_) => {
                self.strike(node, peer, 1);
                self.end_session(id, false)
            }
        }
    }

    fn drive(
        &mut self,
        id: u64,
        node: u32,
        peer: u32,
        mut outputs: VecDeque<Output<(agora_crdt::EntryId, agora_crdt::SubwikiId)>>,
    ) -> Result<(), SimError> {
        while let Some(output) = outputs.pop_front() {
            match output {
                Output::Send(request) => self.send_request(id, request),
                Output::Store(stored) => {
                    for (entry_id, _) in stored {
                        if let Some(e) = self.entries.number(&entry_id) {
                            self.ingest(node, e, Via::CatchUp);
                        }
                    }
                }
                Output::NeedEntries(ids) => {
                    // Pull only (the node's policy): the peer's own session fetches what it
                    // lacks, so nothing is pushed.
                    let ids = if self.sc.catchup.push {
                        ids
                    } else {
                        Vec::new()
                    };
                    let have = self.nodes.get(node as usize).map(|n| &n.have);
                    let bytes: Vec<Vec<u8>> = ids
                        .iter()
                        .filter_map(|id| self.entries.number(id))
                        .filter(|&e| have.is_some_and(|h| h.contains(e)))
                        .filter_map(|e| self.entries.bytes(e))
                        .map(<[u8]>::to_vec)
                        .collect();
                    let Some(active) = self.sessions.get_mut(&id) else {
                        return Ok(());
                    };
                    match active.session.provide(bytes) {
                        Ok(more) => outputs.extend(more),
                        Err(e) => return Err(SimError::Proto(e.to_string())),
                    }
                }
                Output::Invalid { count, .. } => {
                    self.rejected += count as u64;
                    self.row.rejected += count as u64;
                    self.strike(node, peer, u32::try_from(count).unwrap_or(u32::MAX));
                }
                Output::Done(_) => return self.end_session(id, true),
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Scenario events.

    fn post(&mut self) -> Result<(), SimError> {
        let p = self.sc.posting.clone();
        let next = self.now + self.rng.exp(1_000.0 / p.rate_per_s) as u64;
        if next < p.until_s * 1_000 {
            self.at(next, Event::Post);
        }
        // A random online honest node is the author.
        let mut author = None;
        for _ in 0..64 {
            let i = self.rng.below(u64::from(self.sc.nodes)) as u32;
            if self.is_up(i) && !self.is_attacker(i) {
                author = Some(i);
                break;
            }
        }
        let Some(author) = author else {
            return Ok(());
        };
        let (kind, doc) = self.pick_kind();
        let len = self.entry_size();
        let e = self
            .entries
            .make(kind, author, doc, EPOCH_MS + self.now, self.now.max(1), len);
        self.make_own(author, e);
        self.publish(author, e);
        Ok(())
    }

    /// Entry `e` was made at `i`: held, not needed.
    fn make_own(&mut self, i: u32, e: u32) {
        if let Some(node) = self.nodes.get_mut(i as usize) {
            node.have.insert(e);
            node.generation += 1;
        }
    }

    fn forge(&mut self, i: u32) {
        let Some(attack) = self.sc.attack.clone() else {
            return;
        };
        let next = self.now + self.rng.exp(1_000.0 / attack.invalid_per_s) as u64;
        self.at(next, Event::Forge(i));
        if !self.is_up(i) {
            return;
        }
        let len = self.entry_size();
        let e = self.entries.make(
            Kind::Forged,
            i,
            0,
            EPOCH_MS + self.now,
            self.now.max(1),
            len,
        );
        self.make_own(i, e);
        let size = self.gossip_size(e);
        for p in self.linked_peers(i) {
            self.send(i, p, Msg::Gossip(e), size);
        }
    }

    fn sybil(&mut self, i: u32) {
        let Some(attack) = self.sc.attack.clone() else {
            return;
        };
        let next = self.now + self.rng.exp(1_000.0 / attack.sybil_per_s) as u64;
        self.at(next, Event::Sybil(i));
        if !self.is_up(i) {
            return;
        }
        let docs = self.entries.docs().max(1);
        let doc = self.rng.below(u64::from(docs)) as u32;
        let len = self.sc.posting.size_min;
        let e = self.entries.make(
            Kind::Sybil,
            i,
            doc,
            EPOCH_MS + self.now,
            self.now.max(1),
            len,
        );
        self.make_own(i, e);
        self.publish(i, e);
    }

    fn toggle(&mut self, i: u32) -> Result<(), SimError> {
        let Some(churn) = self.sc.churn.clone() else {
            return Ok(());
        };
        if self.now >= churn.until_s * 1_000 {
            return Ok(());
        }
        let online = self.nodes.get(i as usize).is_some_and(|n| n.online);
        if online {
            if let Some(node) = self.nodes.get_mut(i as usize) {
                node.online = false;
                node.mesh.clear();
            }
            let t = self.now + self.rng.exp(churn.offline_mean_s * 1_000.0) as u64;
            self.at(t, Event::Toggle(i));
        } else {
            self.come_online(i)?;
            let t = self.now + self.rng.exp(churn.online_mean_s * 1_000.0) as u64;
            self.at(t, Event::Toggle(i));
        }
        Ok(())
    }

    fn come_online(&mut self, i: u32) -> Result<(), SimError> {
        if let Some(node) = self.nodes.get_mut(i as usize) {
            node.online = true;
        }
        let peers = self.linked_peers(i);
        self.catch_up_with(i, &peers, self.sc.catchup.on_connect)
    }

    fn churn_end(&mut self) -> Result<(), SimError> {
        for i in 0..self.sc.nodes {
            let back = self
                .nodes
                .get(i as usize)
                .is_some_and(|n| n.churns && !n.online);
            if back {
                self.come_online(i)?;
            }
        }
        self.add_target("churn-end", None, None);
        Ok(())
    }

    fn partition_start(&mut self, i: usize) {
        let groups = self.sc.partition.get(i).map_or(2, |p| p.groups);
        let mut order: Vec<u32> = (0..self.sc.nodes).collect();
        self.rng.shuffle(&mut order);
        let mut group = vec![0u32; self.sc.nodes as usize];
        for (pos, n) in order.into_iter().enumerate() {
            if let Some(g) = group.get_mut(n as usize) {
                *g = pos as u32 % groups;
            }
        }
        self.groups = Some(group);
    }

    fn heal(&mut self, _i: usize) {
        let Some(groups) = self.groups.take() else {
            return;
        };
        self.healed_groups = groups;
        self.add_target("heal", None, None);
        // Links across the cut come back over the next seconds, as nodes redial.
        for i in 0..self.sc.nodes {
            let delay = self.rng.below(self.sc.network.redial_ms + 1);
            self.at(self.now + delay, Event::HealConnect(i));
        }
    }

    /// Node `i` reconnects to its peers across a healed cut and catches up with a few.
    fn heal_connect(&mut self, i: u32) -> Result<(), SimError> {
        if !self.is_up(i) {
            return Ok(());
        }
        let groups = &self.healed_groups;
        let mine = groups.get(i as usize);
        let across: Vec<u32> = self
            .linked_peers(i)
            .into_iter()
            .filter(|p| groups.get(*p as usize) != mine)
            .collect();
        self.catch_up_with(i, &across, self.sc.catchup.on_connect)
    }

    fn join(&mut self, j: usize) -> Result<(), SimError> {
        let group = self.newcomers.get(j).cloned().unwrap_or_default();
        let page = self.sc.join.get(j).map_or(50, |x| x.page);
        for &i in &group {
            if let Some(node) = self.nodes.get_mut(i as usize) {
                node.joined = true;
                node.online = true;
            }
        }
        // The newest page: the `page` newest honest entries held by anyone online.
        let union = self.union_online();
        let mut newest: Vec<(u64, u32)> = union
            .iter()
            .filter_map(|e| self.entries.meta(e).map(|m| (m, e)))
            .filter(|(m, _)| m.kind.is_honest())
            .map(|(m, e)| (m.time.0, e))
            .collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        let mut page_bits = Bits::default();
        for (_, e) in newest.into_iter().take(page as usize) {
            page_bits.insert(e);
        }
        self.add_target("page", Some(group.clone()), Some(page_bits));
        self.add_target("join", Some(group.clone()), None);
        for &i in &group {
            self.maintain_mesh(i);
            let peers = self.linked_peers(i);
            self.catch_up_with(i, &peers, self.sc.catchup.on_connect)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Measurement.

    fn honest_up(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.online && n.joined && !n.attacker)
    }

    fn union_online(&self) -> Bits {
        let mut union = Bits::default();
        for node in self.honest_up() {
            union.union_with(&node.have);
        }
        union
    }

    fn window_open(&self) -> bool {
        self.window
            .and_then(|w| self.targets.get(w))
            .is_some_and(|t| t.reached.is_none())
    }

    /// A convergence target: `bits` (default: the union of online honest nodes) must reach
    /// every online honest node in `scope` (default: all of them).
    fn add_target(&mut self, event: &'static str, scope: Option<Vec<u32>>, bits: Option<Bits>) {
        let bits = bits.unwrap_or_else(|| self.union_online());
        self.targets.push(Target {
            event,
            at: self.now,
            bits,
            scope,
            reached: None,
            reached_99: None,
        });
        let measured = matches!(event, "heal" | "join");
        if measured && self.window.is_none() {
            self.window = Some(self.targets.len() - 1);
            self.window_docs_at_start = self.entries.docs();
            for node in &mut self.nodes {
                node.stats.window_received = 0;
                node.stats.window_needed = 0;
                node.stats.window_docs.clear();
            }
        }
    }

    fn holding(&self, target: &Target) -> (u32, u32) {
        let mut scope = 0;
        let mut holding = 0;
        let mut count = |node: &Node| {
            if node.online && node.joined && !node.attacker {
                scope += 1;
                if node.have.is_superset(&target.bits) {
                    holding += 1;
                }
            }
        };
        match &target.scope {
            Some(list) => list
                .iter()
                .filter_map(|&i| self.nodes.get(i as usize))
                .for_each(&mut count),
            None => self.nodes.iter().for_each(&mut count),
        }
        (holding, scope)
    }

    fn check_targets(&mut self) {
        for t in 0..self.targets.len() {
            let Some(target) = self.targets.get(t) else {
                continue;
            };
            if target.reached.is_some() {
                continue;
            }
            let (holding, scope) = self.holding(target);
            let now = self.now;
            if let Some(target) = self.targets.get_mut(t) {
                if holding == scope {
                    target.reached = Some(now);
                }
                if target.reached_99.is_none() && f64::from(holding) >= 0.99 * f64::from(scope) {
                    target.reached_99 = Some(now);
                }
            }
        }
    }

    fn sample(&mut self) {
        let union = self.union_online();
        let mut row = std::mem::take(&mut self.row);
        row.t_s = self.now as f64 / 1_000.0;
        row.entries = self.entries.len() as u64;
        for node in self.honest_up() {
            row.online += 1;
            if node.have == union {
                row.identical += 1;
            }
        }
        if let Some(target) = self.targets.last() {
            let (holding, scope) = self.holding(target);
            row.holding_target = holding;
            row.target_scope = scope;
        } else {
            row.holding_target = row.identical;
            row.target_scope = row.online;
        }
        self.rows.push(row);
    }

    /// The time series, one row per sample interval.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.sc
    }

    /// Everything measured, after [`Sim::run`].
    pub fn summary(&mut self) -> Result<Summary, SimError> {
        let mut honest_mask = Bits::default();
        let mut sybil_mask = Bits::default();
        let (mut honest, mut sybil, mut forged) = (0u64, 0u64, 0u64);
        for (e, meta) in self.entries.all().iter().enumerate() {
            match meta.kind {
                Kind::Post | Kind::Edit => {
                    honest += 1;
                    honest_mask.insert(e as u32);
                }
                Kind::Sybil => {
                    sybil += 1;
                    sybil_mask.insert(e as u32);
                }
                Kind::Forged => forged += 1,
            }
        }
        let up: Vec<&Node> = self.honest_up().collect();
        let online = up.len() as u32;
        // Lost: honest entries some online honest node lacks.
        let mut lost = 0;
        for e in honest_mask.iter() {
            if up.iter().any(|n| !n.have.contains(e)) {
                lost += 1;
            }
        }
        let held: u64 = up.iter().map(|n| n.have.count_and(&honest_mask)).sum();
        let delivery = held as f64 / (honest as f64 * f64::from(online)).max(1.0);
        let sybil_held: u64 = up.iter().map(|n| n.have.count_and(&sybil_mask)).sum();
        let (gossip, catchup) = up.iter().fold((0u64, 0u64), |(g, c), n| {
            (g + n.stats.via_gossip, c + n.stats.via_catchup)
        });
        let ratios: Vec<f64> = up
            .iter()
            .filter(|n| n.stats.needed > 0)
            .map(|n| n.stats.received as f64 / n.stats.needed as f64)
            .collect();
        let received: u64 = up.iter().map(|n| n.stats.received).sum();
        let needed: u64 = up.iter().map(|n| n.stats.needed).sum();
        let degree = |n: &Node| n.peers.iter().filter(|p| !n.blocked.contains(p)).count() as f64;
        let flood: f64 = up.iter().map(|n| degree(n) * n.stats.needed as f64).sum();
        let duplicates: u64 = up.iter().map(|n| n.stats.duplicates).sum();
        let mean_degree =
            self.nodes.iter().map(|n| n.peers.len() as f64).sum::<f64>() / f64::from(self.sc.nodes);
        // Attacker links blocked.
        let (mut attacker_links, mut blocked_links) = (0u64, 0u64);
        for node in self.nodes.iter().filter(|n| !n.attacker) {
            for p in &node.peers {
                if self.is_attacker(*p) {
                    attacker_links += 1;
                    if node.blocked.contains(p) {
                        blocked_links += 1;
                    }
                }
            }
        }
        let automerge = self.automerge_cost()?;
        let window = self.window_figures(&automerge);
        let convergence = self
            .targets
            .iter()
            .map(|t| Convergence {
                event: t.event.to_owned(),
                at_s: t.at as f64 / 1_000.0,
                entries: t.bits.count(),
                after_s: t.reached.map(|r| (r - t.at) as f64 / 1_000.0),
                p99_after_s: t.reached_99.map(|r| (r - t.at) as f64 / 1_000.0),
            })
            .collect();
        Ok(Summary {
            name: self.sc.name.clone(),
            seed: self.sc.seed,
            nodes: self.sc.nodes,
            duration_s: self.sc.duration_s,
            events: self.events,
            honest_entries: honest,
            sybil_entries: sybil,
            forged_entries: forged,
            docs: self.entries.docs(),
            mean_degree,
            convergence,
            online_at_end: online,
            lost_entries: lost,
            honest_delivery: delivery,
            gossip_share: gossip as f64 / ((gossip + catchup) as f64).max(1.0),
            byte_ratio: Spread::of(ratios),
            byte_ratio_total: received as f64 / (needed as f64).max(1.0),
            flood_over_agora: flood / (received as f64).max(1.0),
            duplicates_per_entry: duplicates as f64 / ((gossip + catchup) as f64).max(1.0),
            duplicates,
            latency_p50_ms: self.latency.quantile(0.5),
            latency_p99_ms: self.latency.quantile(0.99),
            sessions_started: self.sessions_started,
            sessions_done: self.sessions_done,
            sessions_failed: self.sessions_failed,
            session_rounds: Spread::of(self.session_rounds.clone()),
            reconcile_rounds: Spread::of(self.reconcile_rounds.clone()),
            window_ratio: window.map(|w| w.0),
            window_over_automerge: window.map(|w| w.1),
            window_flood_over_agora: window.map(|w| w.2),
            automerge,
            rejected: self.rejected,
            blocks: self.blocks,
            attacker_links_blocked: blocked_links as f64 / (attacker_links as f64).max(1.0),
            sybil_stored_per_node: sybil_held as f64 / f64::from(online.max(1)),
        })
    }

    /// Runs Automerge's sync on sample documents shaped like this run's.
    fn automerge_cost(&mut self) -> Result<AutomergeCost, SimError> {
        if self.window.is_none() {
            return Ok(AutomergeCost::default());
        }
        let docs = self.entries.docs().max(1);
        let honest = self
            .entries
            .all()
            .iter()
            .filter(|m| m.kind.is_honest())
            .count() as u32;
        let per_doc = honest.div_ceil(docs);
        let sizes: Vec<u32> = self
            .entries
            .all()
            .iter()
            .filter(|m| m.kind.is_honest())
            .map(|m| m.len)
            .take(1_000)
            .collect();
        let mut rng = Rng::new(self.sc.seed ^ 0xa0_70_6e_72_67_65);
        baseline::measure(AUTOMERGE_SAMPLE_DOCS, per_doc, &sizes, &mut rng)
    }

    /// Window figures: (Agora / needed, Agora / Automerge, flood / Agora).
    fn window_figures(&self, am: &AutomergeCost) -> Option<(f64, f64, f64)> {
        self.window?;
        let (mut agora, mut needed, mut automerge, mut flood) = (0f64, 0f64, 0f64, 0f64);
        let scope = self
            .window
            .and_then(|w| self.targets.get(w))
            .and_then(|t| t.scope.clone());
        let in_scope = |i: usize| scope.as_ref().is_none_or(|s| s.contains(&(i as u32)));
        for (_, node) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !n.attacker && n.joined && in_scope(*i))
        {
            let s = &node.stats;
            if s.window_needed == 0 {
                continue;
            }
            agora += s.window_received as f64;
            needed += s.window_needed as f64;
            let mut docs = s.window_docs.clone();
            let entries = docs.len() as f64;
            docs.sort_unstable();
            docs.dedup();
            let changes = s.window_needed as f64 - entries * f64::from(ENVELOPE_BYTES);
            automerge += f64::from(self.window_docs_at_start) * am.in_step_bytes
                + docs.len() as f64 * am.behind_extra_bytes
                + changes.max(0.0);
            let degree = node
                .peers
                .iter()
                .filter(|p| !node.blocked.contains(p))
                .count() as f64;
            flood += degree * s.window_needed as f64;
        }
        if needed == 0.0 {
            return None;
        }
        Some((
            agora / needed,
            agora / automerge.max(1.0),
            flood / agora.max(1.0),
        ))
    }
}
