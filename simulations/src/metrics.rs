//! What a run measures: the time series, the per-node counters and the summary.

use serde::Serialize;

/// One row of the time series: what happened during one sample interval, and the state at its
/// end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    /// End of the interval, in seconds.
    pub t_s: f64,
    /// Honest nodes online (and joined).
    pub online: u32,
    /// Online honest nodes whose entry set equals the union of all online honest nodes' sets.
    pub identical: u32,
    /// Online honest nodes in scope of the current convergence target that hold it.
    pub holding_target: u32,
    /// Online honest nodes in scope of the current convergence target.
    pub target_scope: u32,
    /// Entries made so far (all kinds).
    pub entries: u64,
    /// Bytes received by all nodes, gossip messages (full entries).
    pub gossip_bytes: u64,
    /// Bytes received by all nodes, gossip control (IHAVE, IWANT, IDONTWANT).
    pub control_bytes: u64,
    /// Bytes received by all nodes, catch-up requests and responses.
    pub catchup_bytes: u64,
    /// Entries received that the receiver already held.
    pub duplicates: u64,
    /// Catch-up sessions started.
    pub sessions: u64,
    /// Invalid entries rejected.
    pub rejected: u64,
}

/// Counters of one node.
#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    /// Every byte received.
    pub received: u64,
    /// Bytes of the distinct valid entries it stored that it did not make.
    pub needed: u64,
    /// Entries received that it already held.
    pub duplicates: u64,
    /// Entries stored from gossip.
    pub via_gossip: u64,
    /// Entries stored from catch-up.
    pub via_catchup: u64,
    /// Bytes received during the measurement window (from a heal or join to convergence).
    pub window_received: u64,
    /// Bytes of entries stored during the window.
    pub window_needed: u64,
    /// Distinct documents touched by the entries stored during the window.
    pub window_docs: Vec<u32>,
}

/// A latency histogram: 10 ms buckets up to 10 s, then 1 s buckets up to about an hour.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; 1_000 + 3_600],
            count: 0,
        }
    }
}

impl Histogram {
    fn bucket(ms: u64) -> usize {
        if ms < 10_000 {
            (ms / 10) as usize
        } else {
            (1_000 + (ms - 10_000) / 1_000).min(1_000 + 3_599) as usize
        }
    }

    fn upper_ms(bucket: usize) -> u64 {
        if bucket < 1_000 {
            (bucket as u64 + 1) * 10
        } else {
            10_000 + (bucket as u64 - 999) * 1_000
        }
    }

    /// Records one value.
    pub fn add(&mut self, ms: u64) {
        if let Some(b) = self.buckets.get_mut(Self::bucket(ms)) {
            *b += 1;
            self.count += 1;
        }
    }

    /// The `q` quantile's bucket upper bound, in ms (0 if empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return Self::upper_ms(i);
            }
        }
        Self::upper_ms(self.buckets.len().saturating_sub(1))
    }
}

/// Mean, median, 99th percentile and maximum of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((values.len() as f64 - 1.0) * q).round() as usize;
            values.get(i).copied().unwrap_or_default()
        };
        Self {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: at(0.5),
            p99: at(0.99),
            max: values.last().copied().unwrap_or_default(),
        }
    }
}

/// A convergence target's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convergence {
    /// What started it: `heal`, `join`, `page`, `churn-end`, `quiesce`.
    pub event: String,
    /// When it started, in seconds.
    pub at_s: f64,
    /// Entries in the target set.
    pub entries: u64,
    /// Seconds from the start until every online node in scope held the target (None: never).
    pub after_s: Option<f64>,
    /// Seconds from the start until 99 % of them held it.
    pub p99_after_s: Option<f64>,
}

/// The Automerge baseline over the measurement window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AutomergeCost {
    /// Measured: bytes of one document's sync when both sides are in step.
    pub in_step_bytes: f64,
    /// Measured: extra bytes of a document's sync when one side lacks one change, beyond the
    /// change's own bytes.
    pub behind_extra_bytes: f64,
    /// Documents synced to measure.
    pub sample_docs: u32,
}

/// Everything a run reports; equal for equal seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// Simulated seconds.
    pub duration_s: u64,
    /// Events processed.
    pub events: u64,
    /// Entries made: honest, Sybil votes, forged.
    pub honest_entries: u64,
    /// Sybil votes made.
    pub sybil_entries: u64,
    /// Forged entries made.
    pub forged_entries: u64,
    /// Documents.
    pub docs: u32,
    /// Mean peers per node at start.
    pub mean_degree: f64,
    /// Convergence targets and when they were reached.
    pub convergence: Vec<Convergence>,
    /// Online honest nodes at the end.
    pub online_at_end: u32,
    /// Honest entries that some online honest node lacks at the end (must be 0).
    pub lost_entries: u64,
    /// Share of (honest entry, online honest node) pairs delivered by the end.
    pub honest_delivery: f64,
    /// Share of deliveries of honest entries to honest nodes that came by gossip.
    pub gossip_share: f64,
    /// Per online honest node: bytes received / bytes of the distinct entries it needed.
    pub byte_ratio: Spread,
    /// Sum over honest nodes of bytes received / of bytes needed.
    pub byte_ratio_total: f64,
    /// Naive flood (every entry from every neighbour) over Agora's bytes, same nodes.
    pub flood_over_agora: f64,
    /// Duplicate entry receipts per entry stored (honest nodes).
    pub duplicates_per_entry: f64,
    /// Total duplicate receipts.
    pub duplicates: u64,
    /// Delivery latency (first receipt after creation), honest entries to honest nodes, ms.
    pub latency_p50_ms: u64,
    /// 99th percentile of the same.
    pub latency_p99_ms: u64,
    /// Catch-up sessions started / finished / failed (timeout, refusal, protocol error).
    pub sessions_started: u64,
    /// Sessions that ended with `Done`.
    pub sessions_done: u64,
    /// Sessions dropped: timed out or broke the protocol.
    pub sessions_failed: u64,
    /// Round trips per finished session.
    pub session_rounds: Spread,
    /// Reconciliation round trips per finished session.
    pub reconcile_rounds: Spread,
    /// Window (heal or join until converged): Agora bytes received over needed entry bytes.
    pub window_ratio: Option<f64>,
    /// Window: Agora bytes over Automerge's per-document sync of the same needs.
    pub window_over_automerge: Option<f64>,
    /// Window: naive flood over Agora.
    pub window_flood_over_agora: Option<f64>,
    /// The measured Automerge costs the window comparison uses.
    pub automerge: AutomergeCost,
    /// Invalid entries rejected by honest nodes.
    pub rejected: u64,
    /// Attackers blocked, summed over honest nodes.
    pub blocks: u64,
    /// Share of attacker links that honest nodes blocked by the end.
    pub attacker_links_blocked: f64,
    /// Sybil votes stored per online honest node (they count nothing).
    pub sybil_stored_per_node: f64,
}
