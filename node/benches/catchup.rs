//! What catch-up costs on the wire: encoded bytes and round trips for a node that lacks `d`
//! of a peer's `n` entries, against the lower bound of `d` entries' bytes, and the time one
//! catch-up takes in CPU (both sides, no network).
//!
//! Run with `cargo bench -p agora-node --bench catchup`. It first prints a table (computed
//! once, not timed), then criterion times one whole catch-up (reconciliation, fetches,
//! validation with a cheap fake check) for each `(n, d)`. Items are synthetic: random ids,
//! times spread over a year, entries of [`ENTRY_BYTES`] bytes, so that `n = 100,000` builds
//! in a second; real signed entries would only add signature checks to the timing.
//!
//! Columns: `rounds` counts every round trip and `(recon.)` those of reconciliation;
//! `reconcile` is the bytes of the reconciliation messages, `total` adds the fetch
//! requests and the entries, `lower bound` is `d × ENTRY_BYTES` (the missing entries alone, as
//! if the peer knew for free which they are), and `overhead` is `total / lower bound`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;

use agora_crdt::{EntryError, EntryId, SubwikiId, Timestamp};
use agora_node::proto::{Config, Output, Responder, Session, Snapshot, Stats, Verify};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Bytes of each synthetic entry (a post with a short body is about this size).
const ENTRY_BYTES: usize = 400;
const SUBWIKI: SubwikiId = SubwikiId::from_bytes([7; 32]);
const NOW: Timestamp = Timestamp(1_800_000_000_000);

/// Entries are `id ‖ subwiki ‖ padding`; the check only reads them back.
#[derive(Debug, Clone, Copy)]
struct Fake;

impl Verify for Fake {
    type Entry = (EntryId, SubwikiId);

    fn verify(&self, bytes: &[u8], _now: Timestamp) -> Result<Self::Entry, EntryError> {
        let id: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or(EntryError::TooShort(bytes.len()))?;
        let sw: [u8; 32] = bytes
            .get(32..64)
            .and_then(|b| b.try_into().ok())
            .ok_or(EntryError::TooShort(bytes.len()))?;
        Ok((EntryId::from_bytes(id), SubwikiId::from_bytes(sw)))
    }

    fn id(&self, entry: &Self::Entry) -> EntryId {
        entry.0
    }

    fn subwiki(&self, entry: &Self::Entry) -> SubwikiId {
        entry.1
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The peer's items and entries, and the local node's items: the peer's minus `d`.
struct Case {
    peer_items: Snapshot,
    peer_entries: HashMap<EntryId, Vec<u8>>,
    local_items: Snapshot,
}

fn case(n: usize, d: usize) -> Case {
    let mut rng = Rng(0x5eed ^ ((n as u64) << 20) ^ (d as u64));
    let mut peer = Vec::with_capacity(n);
    let mut peer_entries = HashMap::with_capacity(n);
    for _ in 0..n {
        let time = Timestamp(NOW.0 - 1 - rng.next() % (365 * 24 * 3600 * 1000));
        let mut id = [0u8; 32];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        let id = EntryId::from_bytes(id);
        let mut bytes = Vec::with_capacity(ENTRY_BYTES);
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(SUBWIKI.as_bytes());
        bytes.resize(ENTRY_BYTES, 0);
        peer.push((time, id));
        peer_entries.insert(id, bytes);
    }
    // The local node lacks every (n / d)-th item: differences spread over the whole history.
    let step = (n / d.max(1)).max(1);
    let local: Vec<_> = peer
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step != 0 || i / step >= d)
        .map(|(_, item)| *item)
        .collect();
    Case {
        peer_items: peer.into_iter().collect(),
        peer_entries,
        local_items: local.into_iter().collect(),
    }
}

/// One whole catch-up of the local node from the peer; returns its stats.
fn catch_up(case: &Case) -> Stats {
    let config = Config::default();
    let responder = Responder::with_verifier(config, Fake).unwrap();
    let (mut session, first) =
        Session::with_verifier(SUBWIKI, case.local_items.clone(), config, Fake).unwrap();
    let mut queue = VecDeque::from([first]);
    let mut stored = 0usize;
    while let Some(request) = queue.pop_front() {
        let reply = responder.handle(
            request,
            Some(&case.peer_items),
            |id| case.peer_entries.get(id).cloned(),
            NOW,
        );
        let mut outputs: VecDeque<_> = session.handle(reply.response, NOW).unwrap().into();
        while let Some(output) = outputs.pop_front() {
            match output {
                Output::Send(request) => queue.push_back(request),
                Output::Store(entries) => stored += entries.len(),
                Output::NeedEntries(_) => outputs.extend(session.provide(Vec::new()).unwrap()),
                Output::Invalid { .. } => panic!("fake entries are valid"),
                Output::Done(stats) => {
                    black_box(stored);
                    return stats;
                }
            }
        }
    }
    panic!("session ended without Done")
}

const CASES: [(usize, usize); 4] = [
    (10_000, 10),
    (10_000, 1_000),
    (100_000, 10),
    (100_000, 1_000),
];

fn print_table(cases: &[((usize, usize), Case)]) {
    println!();
    println!(
        "{:>8} {:>6} {:>7} {:>9} {:>10} {:>10} {:>12} {:>9}",
        "n", "d", "rounds", "(recon.)", "reconcile", "total", "lower bound", "overhead"
    );
    for ((n, d), case) in cases {
        let stats = catch_up(case);
        assert_eq!(stats.fetched, *d as u64);
        let total = stats.bytes_sent + stats.bytes_received;
        let bound = (d * ENTRY_BYTES) as u64;
        println!(
            "{n:>8} {d:>6} {:>7} {:>9} {:>10} {:>10} {:>12} {:>8.2}×",
            stats.rounds,
            stats.reconcile_rounds,
            stats.reconcile_bytes,
            total,
            bound,
            total as f64 / bound as f64
        );
    }
    println!();
}

fn bench(c: &mut Criterion) {
    let cases: Vec<_> = CASES.iter().map(|&(n, d)| ((n, d), case(n, d))).collect();
    print_table(&cases);
    let mut group = c.benchmark_group("catch_up");
    group.sample_size(10);
    for ((n, d), case) in &cases {
        group.bench_with_input(BenchmarkId::new(format!("n={n}"), d), case, |b, case| {
            b.iter(|| catch_up(case))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
