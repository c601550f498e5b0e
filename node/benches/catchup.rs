//! What catch-up costs on the wire: encoded bytes and round trips for a node that lacks `d`
//! of a peer's `n` entries, against the lower bound of `d` entries' bytes and against
//! Automerge's own per-document sync protocol on the same data, and the time one catch-up
//! takes in CPU (both sides, no network).
//!
//! Run with `cargo bench -p agora-node --bench catchup`. It first prints a table (computed
//! once, not timed), then criterion times one whole catch-up (reconciliation, fetches,
//! validation with a cheap fake check) for each `(n, d)`. Then it does the same for the
//! comparison with Automerge (below): a second table, then the `same_data` timings. The whole
//! run takes about a minute and a half on a 2-core machine. Items are synthetic: random ids,
//! times spread over a year, entries of [`ENTRY_BYTES`] bytes, so that `n = 100,000` builds
//! in a second; real signed entries would only add signature checks to the timing.
//!
//! Columns: `rounds` counts every round trip and `(recon.)` those of reconciliation;
//! `reconcile` is the bytes of the reconciliation messages, `total` adds the fetch
//! requests and the entries, `lower bound` is `d × ENTRY_BYTES` (the missing entries alone, as
//! if the peer knew for free which they are), and `overhead` is `total / lower bound`.
//!
//! # Baseline: Automerge's own sync protocol, on the same data
//!
//! A second table (and the `same_data` criterion group) compares Agora with Automerge's
//! per-document sync protocol (`automerge::sync`, `generate_sync_message` /
//! `receive_sync_message`) on identical data: one subwiki of [`DOCS`] posts with
//! [`CHANGES_PER_DOC`] changes each, real signed entries made by `Replica::create_post` and
//! `Replica::edit_post` (n = 10,000 entries, plus the genesis). Each post's changes are a few
//! days apart, at a random place in one year. The behind node lacks the newest change of `d`
//! posts (every `DOCS / d`-th post), for d = 10 and 1,000; taking the newest change keeps the
//! behind Automerge document a valid document that lacks exactly one change.
//!
//! - Agora: one reconciliation session over the subwiki's items with the real check
//!   (`Signed`: signatures verified), fetching the `d` entries.
//! - Automerge: for every post, the behind node's document (its Automerge changes minus the
//!   missing one) syncs with the peer's (all its changes), each side starting from a fresh
//!   `sync::State` as after connecting, the behind side first, strictly taking turns, until
//!   neither side has a message. Bytes are the encoded sync messages (no framing, no document id:
//!   Automerge's figures are a floor for what a real transport would send). Round trips are
//!   counted until the behind side has the peer's heads, and the column shows the slowest
//!   document, as if all documents synced at once. "all docs" syncs every post, since the behind
//!   node does not know which ones changed; "the d docs" syncs only the posts that differ, as if
//!   that were known for free.
//! - Lower bounds: the bytes of the `d` missing signed entries, and of the `d` Automerge changes
//!   they carry. `ag/lb` is Agora's total over the entries' bytes, `ag/am` Agora's total over
//!   Automerge's (all documents), `ag/am-d` over Automerge's (only the `d` documents).
//!
//! The criterion timings of that group are not like for like: Agora's include verifying every
//! fetched signature but not applying the changes, Automerge's include applying them.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;

use agora_crdt::{
    AuthorKey, Base, DocId, Entry, EntryError, EntryId, Policy, PostContent, Replica, SubwikiId,
    Timestamp,
};
use agora_node::proto::{Config, Output, Responder, Session, Signed, Snapshot, Stats, Verify};
use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, Change};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};

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
    run_catch_up(
        Fake,
        SUBWIKI,
        &case.local_items,
        &case.peer_items,
        &case.peer_entries,
    )
}

/// One whole catch-up of a node holding `local` from a peer holding `peer` and `entries`.
fn run_catch_up<V: Verify + Copy>(
    verifier: V,
    subwiki: SubwikiId,
    local: &Snapshot,
    peer: &Snapshot,
    entries: &HashMap<EntryId, Vec<u8>>,
) -> Stats {
    let config = Config::default();
    let responder = Responder::with_verifier(config, verifier).unwrap();
    let (mut session, first) =
        Session::with_verifier(subwiki, local.clone(), config, verifier).unwrap();
    let mut queue = VecDeque::from([first]);
    let mut stored = 0usize;
    while let Some(request) = queue.pop_front() {
        let reply = responder.handle(request, Some(peer), |id| entries.get(id).cloned(), NOW);
        let mut outputs: VecDeque<_> = session.handle(reply.response, NOW).unwrap().into();
        while let Some(output) = outputs.pop_front() {
            match output {
                Output::Send(request) => queue.push_back(request),
                Output::Store(entries) => stored += entries.len(),
                Output::NeedEntries(_) => outputs.extend(session.provide(Vec::new()).unwrap()),
                Output::Invalid { first_error, .. } => panic!("invalid entry: {first_error}"),
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

// ---------------------------------------------------------------------------------------------
// The same data, against Automerge's own per-document sync protocol.

/// Documents of the same-data comparison, and the changes each one has.
const DOCS: usize = 1_000;
const CHANGES_PER_DOC: usize = 10;
/// Changes the behind node lacks: the newest change of `d` documents spread over all of them.
const SAME_DATA_D: [usize; 2] = [10, 1_000];
/// Genesis time of the same-data subwiki; documents start over the following year.
const T0: u64 = 1_700_000_000_000;
const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

/// A subwiki of `DOCS` posts with `CHANGES_PER_DOC` changes each (the create and its edits),
/// as real signed entries made by [`Replica::create_post`] and [`Replica::edit_post`].
struct SameData {
    subwiki: SubwikiId,
    genesis: Entry,
    /// Per document, its entries in the order they were made (each depends on the previous).
    docs: Vec<Vec<Entry>>,
}

fn same_data() -> SameData {
    let keys: Vec<AuthorKey> = (1..=8u8)
        .map(|i| AuthorKey::from_secret([i; 32], [i; 8]))
        .collect();
    let (mut replica, genesis) = Replica::found(
        &keys[0],
        Timestamp(T0),
        "catchup",
        "A subwiki for the catch-up benchmark",
        Policy::default(),
    )
    .unwrap();
    let mut rng = Rng(0xa5a5_5a5a_dead_beef);
    let mut docs = Vec::with_capacity(DOCS);
    for i in 0..DOCS {
        // Each document lives at its own place in the year: its changes are a few days apart.
        let mut time = T0 + 1 + rng.next() % YEAR_MS;
        let mut content = PostContent {
            title: format!("Post {i}"),
            body: format!("The first version of post {i}. ").repeat(8),
            ..PostContent::default()
        };
        let create = replica
            .create_post(&keys[i % keys.len()], Timestamp(time), content.clone())
            .unwrap();
        let doc: DocId = create.id().into();
        let mut entries = vec![create];
        for k in 1..CHANGES_PER_DOC {
            time += 1 + rng.next() % (3 * 24 * 3600 * 1000);
            content
                .body
                .push_str(&format!("Edit {k} adds a sentence to post {i}. "));
            let edit = replica
                .edit_post(
                    &keys[(i + k) % keys.len()],
                    Timestamp(time),
                    doc,
                    &Base::Latest,
                    content.clone(),
                )
                .unwrap()
                .expect("the edit changes the body");
            entries.push(edit);
        }
        docs.push(entries);
    }
    SameData {
        subwiki: replica.id(),
        genesis,
        docs,
    }
}

/// One comparison: the peer holds everything, the behind node lacks the newest change of `d`
/// documents (every `DOCS / d`-th one).
struct SameCase {
    d: usize,
    /// Which documents lack their newest change.
    behind_docs: Vec<bool>,
    peer_items: Snapshot,
    local_items: Snapshot,
    peer_entries: HashMap<EntryId, Vec<u8>>,
    /// Bytes of the missing entries (the lower bound of Agora's transfer).
    missing_entry_bytes: usize,
    /// Bytes of the missing Automerge changes alone (what the entries carry, unsigned).
    missing_change_bytes: usize,
    /// Per document: the peer's Automerge document and the behind node's.
    peer_docs: Vec<Automerge>,
    behind_docs_am: Vec<Automerge>,
}

fn same_case(data: &SameData, d: usize) -> SameCase {
    let step = DOCS / d;
    let behind_docs: Vec<bool> = (0..DOCS).map(|i| i % step == 0 && i / step < d).collect();
    let item = |e: &Entry| (e.timestamp(), e.id());
    let all = std::iter::once(&data.genesis).chain(data.docs.iter().flatten());
    let peer_entries = all.clone().map(|e| (e.id(), e.bytes().to_vec())).collect();
    let peer_items = all.map(item).collect();
    let mut local = vec![item(&data.genesis)];
    let mut missing_entry_bytes = 0;
    let mut missing_change_bytes = 0;
    let mut peer_docs = Vec::with_capacity(DOCS);
    let mut behind_docs_am = Vec::with_capacity(DOCS);
    for (entries, &behind) in data.docs.iter().zip(&behind_docs) {
        let held = if behind {
            entries.len() - 1
        } else {
            entries.len()
        };
        local.extend(entries[..held].iter().map(item));
        for missing in &entries[held..] {
            missing_entry_bytes += missing.bytes().len();
            missing_change_bytes += missing.change().unwrap().raw_bytes().len();
        }
        let changes: Vec<Change> = entries
            .iter()
            .map(|e| e.change().unwrap().clone())
            .collect();
        let mut peer = Automerge::new();
        peer.apply_changes(changes.iter().cloned()).unwrap();
        let mut mine = Automerge::new();
        mine.apply_changes(changes[..held].iter().cloned()).unwrap();
        peer_docs.push(peer);
        behind_docs_am.push(mine);
    }
    SameCase {
        d,
        behind_docs,
        peer_items,
        local_items: local.into_iter().collect(),
        peer_entries,
        missing_entry_bytes,
        missing_change_bytes,
        peer_docs,
        behind_docs_am,
    }
}

/// What Automerge's sync of one document cost.
#[derive(Debug, Clone, Copy, Default)]
struct DocSync {
    /// Messages sent either way until neither side had anything to send.
    messages: usize,
    /// Encoded bytes of those messages.
    bytes: usize,
    /// Messages sent until the behind side had the peer's heads.
    messages_until_current: usize,
}

impl DocSync {
    /// Round trips until the behind side is current: it sends first, so messages 1 and 2 are
    /// the first round trip.
    fn round_trips(&self) -> usize {
        self.messages_until_current.div_ceil(2)
    }
}

/// Runs Automerge's sync protocol on one document between the behind side (which starts, with
/// a fresh [`sync::State`], as after connecting) and the peer, strictly taking turns, until
/// neither side has a message to send. Each message is encoded, counted and decoded again.
fn automerge_sync(behind: &mut Automerge, peer: &mut Automerge) -> DocSync {
    let mut target = peer.get_heads();
    target.sort();
    let mut behind_state = sync::State::new();
    let mut peer_state = sync::State::new();
    let mut out = DocSync::default();
    let mut current = false;
    let mut behind_turn = true;
    let mut silent = 0;
    while silent < 2 {
        let message = if behind_turn {
            behind.generate_sync_message(&mut behind_state)
        } else {
            peer.generate_sync_message(&mut peer_state)
        };
        behind_turn = !behind_turn;
        let Some(message) = message else {
            silent += 1;
            continue;
        };
        silent = 0;
        let encoded = message.encode();
        out.messages += 1;
        out.bytes += encoded.len();
        let message = sync::Message::decode(&encoded).unwrap();
        // `behind_turn` was flipped: it now names the receiver.
        if behind_turn {
            behind
                .receive_sync_message(&mut behind_state, message)
                .unwrap();
        } else {
            peer.receive_sync_message(&mut peer_state, message).unwrap();
        }
        if !current {
            let mut heads = behind.get_heads();
            heads.sort();
            if heads == target {
                current = true;
                out.messages_until_current = out.messages;
            }
        }
        assert!(out.messages < 1_000, "automerge sync does not settle");
    }
    assert!(current, "automerge sync left the behind side out of date");
    out
}

/// Automerge's sync of every document, one after another, on clones of the case's documents.
fn automerge_sync_all(case: &SameCase) -> Vec<DocSync> {
    case.behind_docs_am
        .iter()
        .zip(&case.peer_docs)
        .map(|(behind, peer)| automerge_sync(&mut behind.clone(), &mut peer.clone()))
        .collect()
}

#[derive(Debug, Default)]
struct SyncTotals {
    messages: usize,
    bytes: usize,
    /// Round trips if every document syncs at the same time: the slowest one.
    max_round_trips: usize,
    /// Documents that needed more than one round trip (a Bloom filter false positive hides a
    /// change the behind side lacks, and it has to ask for it by hash).
    slow_docs: usize,
}

fn totals<'a>(syncs: impl Iterator<Item = &'a DocSync>) -> SyncTotals {
    syncs.fold(SyncTotals::default(), |t, s| SyncTotals {
        messages: t.messages + s.messages,
        bytes: t.bytes + s.bytes,
        max_round_trips: t.max_round_trips.max(s.round_trips()),
        slow_docs: t.slow_docs + usize::from(s.round_trips() > 1),
    })
}

fn print_same_data_table(data: &SameData, cases: &[SameCase]) {
    let n = 1 + data.docs.iter().map(Vec::len).sum::<usize>();
    println!();
    println!(
        "Same data: {DOCS} posts x {CHANGES_PER_DOC} changes = {n} signed entries (with the \
         genesis); the behind node lacks the newest change of d posts."
    );
    println!(
        "{:>6} | {:>6} {:>9} {:>7} | {:>8} {:>6} {:>9} | {:>8} {:>6} {:>9} | {:>9} {:>9} | {:>8} {:>8} {:>8}",
        "d",
        "rounds",
        "bytes",
        "fetched",
        "messages",
        "rtt",
        "bytes",
        "messages",
        "rtt",
        "bytes",
        "entries",
        "changes",
        "ag/lb",
        "ag/am",
        "ag/am-d",
    );
    println!(
        "{:>6} | {:^24} | {:^25} | {:^25} | {:^19} |",
        "", "Agora reconciliation", "Automerge, all docs", "Automerge, the d docs", "lower bound"
    );
    for case in cases {
        let stats = run_catch_up(
            Signed,
            data.subwiki,
            &case.local_items,
            &case.peer_items,
            &case.peer_entries,
        );
        assert_eq!(stats.fetched, case.d as u64);
        let agora = stats.bytes_sent + stats.bytes_received;
        let syncs = automerge_sync_all(case);
        let all = totals(syncs.iter());
        let only = totals(
            syncs
                .iter()
                .zip(&case.behind_docs)
                .filter(|(_, behind)| **behind)
                .map(|(s, _)| s),
        );
        // Documents already in step still cost a message each way to find that out.
        let in_step = totals(
            syncs
                .iter()
                .zip(&case.behind_docs)
                .filter(|(_, behind)| !**behind)
                .map(|(s, _)| s),
        );
        println!(
            "{:>6} | {:>6} {:>9} {:>7} | {:>8} {:>6} {:>9} | {:>8} {:>6} {:>9} | {:>9} {:>9} | {:>7.2}x {:>7.3}x {:>7.2}x",
            case.d,
            stats.rounds,
            agora,
            stats.fetched,
            all.messages,
            all.max_round_trips,
            all.bytes,
            only.messages,
            only.max_round_trips,
            only.bytes,
            case.missing_entry_bytes,
            case.missing_change_bytes,
            agora as f64 / case.missing_entry_bytes as f64,
            agora as f64 / all.bytes as f64,
            agora as f64 / only.bytes as f64,
        );
        println!(
            "{:>6}   recon. rounds {}, recon. bytes {}; automerge: {} docs in step cost {} \
             messages / {} bytes; {} docs needed 2+ round trips; d docs: {:.2}x their \
             changes' bytes",
            "",
            stats.reconcile_rounds,
            stats.reconcile_bytes,
            DOCS - case.d,
            in_step.messages,
            in_step.bytes,
            all.slow_docs,
            only.bytes as f64 / case.missing_change_bytes as f64,
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

    let data = same_data();
    let same: Vec<SameCase> = SAME_DATA_D.iter().map(|&d| same_case(&data, d)).collect();
    print_same_data_table(&data, &same);
    let mut group = c.benchmark_group("same_data");
    group.sample_size(10);
    for case in &same {
        group.bench_with_input(BenchmarkId::new("agora_signed", case.d), case, |b, case| {
            b.iter(|| {
                run_catch_up(
                    Signed,
                    data.subwiki,
                    &case.local_items,
                    &case.peer_items,
                    &case.peer_entries,
                )
            })
        });
        group.bench_with_input(
            BenchmarkId::new("automerge_sync_all_docs", case.d),
            case,
            |b, case| {
                b.iter_batched(
                    || (case.behind_docs_am.clone(), case.peer_docs.clone()),
                    |(mut behind, mut peer)| {
                        behind
                            .iter_mut()
                            .zip(&mut peer)
                            .map(|(b, p)| automerge_sync(b, p))
                            .count()
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
