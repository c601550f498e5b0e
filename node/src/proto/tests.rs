//! The protocol test suite: two sides driven directly with function calls, every message
//! going through the codec, with a seeded RNG.
//!
//! Set `AGORA_TEST_SEED` to replay a failure; each test prints the seed it used (shown when it
//! fails). Run with `--nocapture` to see the measured costs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::OnceLock;

use agora_crdt::{
    AuthorKey, Entry, EntryError, EntryId, Policy, PostContent, Replica, SubwikiId, Timestamp,
    VoteTarget, VoteValue,
};
use negentropy::{Id, Negentropy};
use proptest::prelude::*;

use super::reconcile::guarded;
use super::*;

// ---------------------------------------------------------------------------------------------
// Seeded randomness.

/// xorshift64*: tiny, deterministic, good enough to pick test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

/// The seed from `AGORA_TEST_SEED`, or a fixed default; printed so a failure can be replayed.
fn seeded(test: &str) -> Rng {
    let seed = std::env::var("AGORA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_a60a);
    eprintln!("{test}: AGORA_TEST_SEED={seed}");
    Rng::new(seed)
}

// ---------------------------------------------------------------------------------------------
// Two nodes and a driver.

/// What a test node keeps of a stored entry.
trait Stored {
    fn key(&self) -> (Timestamp, EntryId);
    fn raw(&self) -> Vec<u8>;
}

impl Stored for Entry {
    fn key(&self) -> (Timestamp, EntryId) {
        (self.timestamp(), self.id())
    }
    fn raw(&self) -> Vec<u8> {
        self.bytes().to_vec()
    }
}

/// A synthetic entry: `id(32) ‖ subwiki(32) ‖ time(8, LE) ‖ padding`. The fake check accepts
/// any such bytes unless the first padding byte is [`FORGED`].
#[derive(Debug, Clone, PartialEq)]
struct FakeEntry {
    id: EntryId,
    subwiki: SubwikiId,
    time: Timestamp,
    bytes: Vec<u8>,
}

const FORGED: u8 = 0xee;

fn fake_bytes(subwiki: SubwikiId, time: Timestamp, id: EntryId, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size.max(72));
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(subwiki.as_bytes());
    bytes.extend_from_slice(&time.0.to_le_bytes());
    bytes.resize(size.max(72), 0);
    bytes
}

impl Stored for FakeEntry {
    fn key(&self) -> (Timestamp, EntryId) {
        (self.time, self.id)
    }
    fn raw(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

#[derive(Debug, Clone, Copy)]
struct Fake;

impl Verify for Fake {
    type Entry = FakeEntry;

    fn verify(&self, bytes: &[u8], _now: Timestamp) -> Result<FakeEntry, EntryError> {
        if bytes.len() < 72 {
            return Err(EntryError::TooShort(bytes.len()));
        }
        if bytes.get(72) == Some(&FORGED) {
            return Err(EntryError::BadSignature);
        }
        Ok(FakeEntry {
            id: EntryId::from_bytes(bytes[..32].try_into().unwrap()),
            subwiki: SubwikiId::from_bytes(bytes[32..64].try_into().unwrap()),
            time: Timestamp(u64::from_le_bytes(bytes[64..72].try_into().unwrap())),
            bytes: bytes.to_vec(),
        })
    }

    fn id(&self, entry: &FakeEntry) -> EntryId {
        entry.id
    }

    fn subwiki(&self, entry: &FakeEntry) -> SubwikiId {
        entry.subwiki
    }
}

#[derive(Debug, Default, Clone)]
struct Node {
    entries: HashMap<EntryId, (Timestamp, Vec<u8>)>,
}

impl Node {
    fn put(&mut self, entry: &impl Stored) {
        let (time, id) = entry.key();
        self.entries.insert(id, (time, entry.raw()));
    }

    fn put_raw(&mut self, time: Timestamp, id: EntryId, bytes: Vec<u8>) {
        self.entries.insert(id, (time, bytes));
    }

    fn get(&self, id: &EntryId) -> Option<Vec<u8>> {
        self.entries.get(id).map(|(_, bytes)| bytes.clone())
    }

    fn time(&self, id: &EntryId) -> Timestamp {
        self.entries[id].0
    }

    fn snapshot(&self) -> Snapshot {
        self.entries
            .iter()
            .map(|(id, (time, _))| (*time, *id))
            .collect()
    }

    fn ids(&self) -> BTreeSet<EntryId> {
        self.entries.keys().copied().collect()
    }
}

/// What one sync did.
#[derive(Debug, Default)]
struct Run {
    stats: Option<Stats>,
    /// Every id asked for, in the order asked (first time only).
    fetch_order: Vec<EntryId>,
    /// The ids of each fetch request.
    fetch_batches: Vec<Vec<EntryId>>,
    invalid: Vec<(usize, Rejection)>,
    fetch_requests: usize,
}

/// True if `keys` are in reconciliation order: newest first, equal times by id.
fn newest_first(keys: &[(Timestamp, EntryId)]) -> bool {
    keys.windows(2)
        .all(|w| (std::cmp::Reverse(w[0].0), w[0].1) < (std::cmp::Reverse(w[1].0), w[1].1))
}

/// Catches `a` up with `b` (and `b` with `a`): `a` runs a session, `b` a responder. Every
/// message goes through the codec.
fn sync<V>(
    a: &mut Node,
    b: &mut Node,
    subwiki: SubwikiId,
    config: Config,
    verifier: V,
    now: Timestamp,
) -> Result<Run, ProtoError>
where
    V: Verify + Clone,
    V::Entry: Stored,
{
    let responder = Responder::with_verifier(config, verifier.clone()).unwrap();
    let b_items = b.snapshot();
    let (mut session, first) = Session::with_verifier(subwiki, a.snapshot(), config, verifier)?;
    let mut run = Run::default();
    let mut asked = std::collections::HashSet::new();
    let mut queue = VecDeque::from([first]);
    while let Some(request) = queue.pop_front() {
        let request = Request::decode(&request.encode()).expect("request decodes");
        if let Request::Fetch { ids, .. } = &request {
            run.fetch_requests += 1;
            run.fetch_batches.push(ids.clone());
            assert!(ids.len() <= config.fetch_batch);
            run.fetch_order
                .extend(ids.iter().filter(|id| asked.insert(**id)).copied());
        }
        if let Request::Reconcile { payload, .. } = &request {
            assert!(payload.len() <= config.frame_size_limit);
        }
        let reply = responder.handle(request, Some(&b_items), |id| b.get(id), now);
        assert_eq!(reply.fault, None, "honest initiator, no fault");
        for entry in &reply.store {
            b.put(entry);
        }
        let response = Response::decode(&reply.response.encode()).expect("response decodes");
        if let Response::Reconcile {
            payload: Some(payload),
        } = &response
        {
            assert!(payload.len() <= config.frame_size_limit);
        }
        let mut outputs: VecDeque<_> = session.handle(response, now)?.into();
        while let Some(output) = outputs.pop_front() {
            match output {
                Output::Send(request) => queue.push_back(request),
                Output::Store(entries) => {
                    for entry in &entries {
                        a.put(entry);
                    }
                }
                Output::NeedEntries(ids) => {
                    let bytes = ids.iter().filter_map(|id| a.get(id)).collect();
                    outputs.extend(session.provide(bytes)?);
                }
                Output::Invalid { count, first_error } => run.invalid.push((count, first_error)),
                Output::Done(stats) => run.stats = Some(stats),
            }
        }
        assert!(
            queue.len() <= 1 + config.fetches_in_flight,
            "at most a reconciliation round and the fetches allowed in flight"
        );
    }
    assert!(session.is_finished());
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// Real signed entries.

const T0: u64 = 1_700_000_000_000;
const NOW: Timestamp = Timestamp(T0 + 1_000_000_000);

struct Pool {
    subwiki: SubwikiId,
    /// Genesis first, then posts and votes.
    entries: Vec<Entry>,
    /// An entry of another subwiki.
    foreign: Entry,
}

/// ~150 real entries of one subwiki, by five authors, some sharing a timestamp. Made once.
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let founder = AuthorKey::from_secret([1; 32], [1; 8]);
        let (mut replica, genesis) = Replica::found(
            &founder,
            Timestamp(T0),
            "rust",
            "All things Rust",
            Policy::default(),
        )
        .unwrap();
        let authors: Vec<AuthorKey> = (1..=5u8)
            .map(|i| AuthorKey::from_secret([i; 32], [i; 8]))
            .collect();
        let mut entries = vec![genesis];
        let mut posts = Vec::new();
        for j in 0..30u64 {
            let post = replica
                .create_post(
                    &authors[j as usize % authors.len()],
                    Timestamp(T0 + 1_000 * (j + 1)),
                    PostContent {
                        title: format!("Post {j}"),
                        body: "Body.".into(),
                        ..Default::default()
                    },
                )
                .unwrap();
            posts.push(post.id());
            entries.push(post);
        }
        let values = [
            VoteValue::Hide,
            VoteValue::Keep,
            VoteValue::Misleading,
            VoteValue::Verified,
        ];
        for j in 0..120u64 {
            let vote = replica
                .vote(
                    &authors[j as usize % authors.len()],
                    // Three votes per millisecond: equal timestamps, ordered by id.
                    Timestamp(T0 + 100_000 + j / 3),
                    VoteTarget::Post(posts[j as usize % posts.len()].into()),
                    values[j as usize % values.len()],
                    "",
                )
                .unwrap();
            entries.push(vote);
        }
        let other = AuthorKey::from_secret([9; 32], [9; 8]);
        let (mut elsewhere, _) =
            Replica::found(&other, Timestamp(T0), "go", "Gophers", Policy::default()).unwrap();
        let foreign = elsewhere
            .vote(
                &other,
                Timestamp(T0 + 5),
                VoteTarget::Author(authors[0].id()),
                VoteValue::Mute,
                "",
            )
            .unwrap();
        Pool {
            subwiki: replica.id(),
            entries,
            foreign,
        }
    })
}

/// Splits the pool at random: each entry on one side, the other, or both (genesis on both).
fn split_pool(rng: &mut Rng, only_a: u64, only_b: u64) -> (Node, Node) {
    let mut a = Node::default();
    let mut b = Node::default();
    for (i, entry) in pool().entries.iter().enumerate() {
        let roll = rng.below(100);
        if i == 0 || roll >= only_a + only_b {
            a.put(entry);
            b.put(entry);
        } else if roll < only_a {
            a.put(entry);
        } else {
            b.put(entry);
        }
    }
    (a, b)
}

#[test]
fn real_entries_converge() {
    let mut rng = seeded("real_entries_converge");
    let subwiki = pool().subwiki;
    for (only_a, only_b) in [(20, 20), (0, 50), (50, 0), (0, 0), (5, 90)] {
        let (mut a, mut b) = split_pool(&mut rng, only_a, only_b);
        let union: BTreeSet<_> = a.ids().union(&b.ids()).copied().collect();
        let a_lacks = union.len() - a.ids().len();
        let b_lacks = union.len() - b.ids().len();
        let run = sync(&mut a, &mut b, subwiki, Config::default(), Signed, NOW).unwrap();
        let stats = run.stats.unwrap();
        assert_eq!(a.ids(), union);
        assert_eq!(b.ids(), union);
        assert_eq!(stats.fetched, a_lacks as u64);
        assert_eq!(stats.pushed, b_lacks as u64);
        assert_eq!(stats.invalid, 0);
        assert!(run.invalid.is_empty());
        // A second sync finds nothing to do, in one round trip.
        let again = sync(&mut a, &mut b, subwiki, Config::default(), Signed, NOW).unwrap();
        let stats = again.stats.unwrap();
        assert_eq!((stats.rounds, stats.fetched, stats.pushed), (1, 0, 0));
    }
}

#[test]
fn real_entries_newcomer_fetches_newest_first() {
    let mut rng = seeded("real_entries_newcomer_fetches_newest_first");
    let subwiki = pool().subwiki;
    let (_, mut b) = split_pool(&mut rng, 0, 0);
    let mut a = Node::default();
    let config = Config {
        fetch_batch: 16,
        ..Config::default()
    };
    let run = sync(&mut a, &mut b, subwiki, config, Signed, NOW).unwrap();
    assert_eq!(a.ids(), b.ids());
    let keys: Vec<_> = run.fetch_order.iter().map(|id| (b.time(id), *id)).collect();
    assert_eq!(keys.len(), pool().entries.len());
    assert!(newest_first(&keys), "newest first");
}

// ---------------------------------------------------------------------------------------------
// Synthetic sets: many items, no signatures.

fn random_item(rng: &mut Rng) -> (Timestamp, EntryId) {
    // Within a year, at millisecond resolution.
    (
        Timestamp(T0 + rng.below(365 * 24 * 3600 * 1000)),
        EntryId::from_bytes(rng.bytes32()),
    )
}

/// Two nodes of `n` items each: `n − d/2` shared, `d/2` on each side only (`d` differences).
fn synthetic(rng: &mut Rng, subwiki: SubwikiId, n: usize, d: usize, size: usize) -> (Node, Node) {
    let mut a = Node::default();
    let mut b = Node::default();
    let shared = n - d / 2;
    for _ in 0..shared {
        let (time, id) = random_item(rng);
        let bytes = fake_bytes(subwiki, time, id, size);
        a.put_raw(time, id, bytes.clone());
        b.put_raw(time, id, bytes);
    }
    for side in [&mut a, &mut b] {
        for _ in 0..d / 2 {
            let (time, id) = random_item(rng);
            side.put_raw(time, id, fake_bytes(subwiki, time, id, size));
        }
    }
    (a, b)
}

const SW: SubwikiId = SubwikiId::from_bytes([7; 32]);

#[test]
fn synthetic_sets_converge() {
    let mut rng = seeded("synthetic_sets_converge");
    for (n, d, frame) in [
        (20_000, 2_000, DEFAULT_FRAME_SIZE_LIMIT),
        (5_000, 600, MIN_FRAME_SIZE_LIMIT),
        (3_000, 3_000, MIN_FRAME_SIZE_LIMIT),
    ] {
        let (mut a, mut b) = synthetic(&mut rng, SW, n, d, 100);
        let union: BTreeSet<_> = a.ids().union(&b.ids()).copied().collect();
        let config = Config {
            frame_size_limit: frame,
            ..Config::default()
        };
        let run = sync(&mut a, &mut b, SW, config, Fake, NOW).unwrap();
        assert_eq!(a.ids(), union, "n={n} d={d} frame={frame}");
        assert_eq!(b.ids(), union, "n={n} d={d} frame={frame}");
        let stats = run.stats.unwrap();
        assert_eq!(stats.fetched, (d / 2) as u64);
        assert_eq!(stats.pushed, (d / 2) as u64);
    }
}

#[test]
fn newcomer_fetches_newest_first() {
    let mut rng = seeded("newcomer_fetches_newest_first");
    for (have, frame) in [
        (0, MIN_FRAME_SIZE_LIMIT),
        (3_000, MIN_FRAME_SIZE_LIMIT),
        (0, DEFAULT_FRAME_SIZE_LIMIT),
    ] {
        let mut b = Node::default();
        for i in 0..6_000u64 {
            let (time, id) = random_item(&mut rng);
            // Many equal timestamps: order falls back to the id.
            let time = if i % 4 == 0 {
                Timestamp(T0 + i / 40)
            } else {
                time
            };
            b.put_raw(time, id, fake_bytes(SW, time, id, 80));
        }
        let mut a = Node::default();
        for (id, (time, bytes)) in b.entries.iter().take(have) {
            a.put_raw(*time, *id, bytes.clone());
        }
        let config = Config {
            frame_size_limit: frame,
            fetch_batch: 100,
            ..Config::default()
        };
        let run = sync(&mut a, &mut b, SW, config, Fake, NOW).unwrap();
        assert_eq!(a.ids(), b.ids());
        let keys: Vec<_> = run.fetch_order.iter().map(|id| (b.time(id), *id)).collect();
        assert_eq!(keys.len(), 6_000 - have);
        if have == 0 {
            // A newcomer: every round names ids older than the last one's.
            assert!(newest_first(&keys), "newest first, frame {frame}");
        } else {
            // Each batch is newest first among what was known when it was sent.
            for batch in &run.fetch_batches {
                let keys: Vec<_> = batch.iter().map(|id| (b.time(id), *id)).collect();
                assert!(newest_first(&keys), "batch newest first, frame {frame}");
            }
        }
        let stats = run.stats.unwrap();
        eprintln!(
            "newcomer (holding {have}) to 6,000, frame {frame}: {} reconcile rounds, {} bytes",
            stats.reconcile_rounds, stats.reconcile_bytes
        );
    }
}

#[test]
fn a_newcomer_fetches_while_reconciliation_goes_on() {
    let mut rng = seeded("a_newcomer_fetches_while_reconciliation_goes_on");
    let mut b = Node::default();
    for _ in 0..6_000 {
        let (time, id) = random_item(&mut rng);
        b.put_raw(time, id, fake_bytes(SW, time, id, 80));
    }
    let config = Config {
        frame_size_limit: MIN_FRAME_SIZE_LIMIT,
        fetch_batch: 50,
        ..Config::default()
    };
    let responder = Responder::with_verifier(config, Fake).unwrap();
    let b_items = b.snapshot();
    let (mut session, first) =
        Session::with_verifier(SW, Node::default().snapshot(), config, Fake).unwrap();
    let reply = responder.handle(first, Some(&b_items), |id| b.get(id), NOW);
    let outputs = session.handle(reply.response, NOW).unwrap();
    // The first answer names the newest ids: the session fetches them and goes on reconciling,
    // two requests in flight.
    let fetch = outputs.iter().find_map(|o| match o {
        Output::Send(Request::Fetch { ids, .. }) => Some(ids.clone()),
        _ => None,
    });
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::Send(Request::Reconcile { .. })))
    );
    assert!(session.is_reconciling());
    let fetch = fetch.expect("a fetch during reconciliation");
    let newest: Vec<EntryId> = b_items.iter().take(50).map(|(_, id)| id).collect();
    assert_eq!(
        fetch, newest,
        "the first fetch asks for the 50 newest entries"
    );
}

/// Two fetches in flight, the peer reading the next batch while this side checks the last;
/// their responses may come back in either order, and each is taken for its own fetch.
#[test]
fn two_fetches_in_flight_answered_out_of_order() {
    let mut rng = seeded("two_fetches_in_flight_answered_out_of_order");
    let mut b = Node::default();
    for _ in 0..2_000 {
        let (time, id) = random_item(&mut rng);
        b.put_raw(time, id, fake_bytes(SW, time, id, 80));
    }
    let config = Config {
        fetch_batch: 50,
        fetches_in_flight: 2,
        ..Config::default()
    };
    let responder = Responder::with_verifier(config, Fake).unwrap();
    let b_items = b.snapshot();
    let mut a = Node::default();
    let (mut session, first) = Session::with_verifier(SW, a.snapshot(), config, Fake).unwrap();
    let mut queue = VecDeque::from([first]);
    let mut most_fetches = 0;
    let mut rounds = 0;
    while !session.is_finished() {
        rounds += 1;
        assert!(rounds < 10_000, "the session ends");
        // Answer the newest request first: responses out of order.
        let request = queue.pop_back().expect("a request in flight");
        let key = request.fetch_key();
        let reply = responder.handle(request, Some(&b_items), |id| b.get(id), NOW);
        for output in session.handle_reply(key, reply.response, NOW).unwrap() {
            match output {
                Output::Send(request) => queue.push_back(request),
                Output::Store(entries) => {
                    for entry in &entries {
                        a.put(entry);
                    }
                }
                Output::NeedEntries(_) => {
                    queue.extend(session.provide(Vec::new()).unwrap().into_iter().filter_map(
                        |o| match o {
                            Output::Send(r) => Some(r),
                            _ => None,
                        },
                    ));
                }
                Output::Invalid { .. } => panic!("honest peer"),
                Output::Done(_) => {}
            }
        }
        let fetches = queue
            .iter()
            .filter(|r| matches!(r, Request::Fetch { .. }))
            .count();
        assert!(fetches <= 2, "at most two fetches in flight");
        most_fetches = most_fetches.max(fetches);
    }
    assert_eq!(most_fetches, 2, "two fetches were in flight at once");
    assert_eq!(a.snapshot().len(), b_items.len(), "everything fetched once");
}

/// A session being driven: its requests to send, the responses it has had.
type Running = (Session<Fake>, VecDeque<Request>, usize);

/// Runs sessions of `a` with several peers at once, sharing one set of claims, answering their
/// requests in turn; `fail_after[i]` drops peer i's session after that many responses. Returns
/// the ids each peer was asked for.
fn sync_with_many(
    a: &mut Node,
    peers: &[&Node],
    config: Config,
    fail_after: &[Option<usize>],
) -> Vec<Vec<EntryId>> {
    let claims = Claims::new();
    let responder = Responder::with_verifier(config, Fake).unwrap();
    let snapshots: Vec<Snapshot> = peers.iter().map(|p| p.snapshot()).collect();
    let mut sessions: Vec<Option<Running>> = peers
        .iter()
        .map(|_| {
            let (mut session, first) =
                Session::with_verifier(SW, a.snapshot(), config, Fake).unwrap();
            session.share(&claims);
            Some((session, VecDeque::from([first]), 0))
        })
        .collect();
    let mut asked = vec![Vec::new(); peers.len()];
    while sessions.iter().any(Option::is_some) {
        for (i, slot) in sessions.iter_mut().enumerate() {
            let Some((session, queue, answered)) = slot else {
                continue;
            };
            let Some(request) = queue.pop_front() else {
                assert!(session.is_finished(), "a session waits for nothing");
                *slot = None;
                continue;
            };
            if let Request::Fetch { ids, .. } = &request {
                asked[i].extend(ids.iter().copied());
            }
            let peer = peers[i];
            let reply = responder.handle(request, Some(&snapshots[i]), |id| peer.get(id), NOW);
            let mut outputs: VecDeque<_> = session.handle(reply.response, NOW).unwrap().into();
            while let Some(output) = outputs.pop_front() {
                match output {
                    Output::Send(request) => queue.push_back(request),
                    Output::Store(entries) => entries.iter().for_each(|e| a.put(e)),
                    Output::NeedEntries(_) => outputs.extend(session.provide(vec![]).unwrap()),
                    Output::Invalid { .. } => panic!("honest peers"),
                    Output::Done(_) => {}
                }
            }
            *answered += 1;
            if fail_after[i].is_some_and(|n| *answered >= n) {
                // The peer goes away: its session is dropped, its claims released.
                *slot = None;
            }
        }
    }
    asked
}

#[test]
fn sessions_with_several_peers_split_the_fetches() {
    let mut rng = seeded("sessions_with_several_peers_split_the_fetches");
    let mut full = Node::default();
    for _ in 0..3_000 {
        let (time, id) = random_item(&mut rng);
        full.put_raw(time, id, fake_bytes(SW, time, id, 80));
    }
    let config = Config {
        frame_size_limit: MIN_FRAME_SIZE_LIMIT,
        fetch_batch: 40,
        ..Config::default()
    };
    let (b, c, d) = (full.clone(), full.clone(), full.clone());
    let mut a = Node::default();
    let asked = sync_with_many(&mut a, &[&b, &c, &d], config, &[None, None, None]);
    assert_eq!(a.ids(), full.ids());
    let total: usize = asked.iter().map(Vec::len).sum();
    assert_eq!(total, 3_000, "every entry fetched from one peer only");
    assert!(
        asked.iter().all(|ids| ids.len() > 300),
        "the work is split: {:?}",
        asked.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[test]
fn when_a_peer_goes_the_others_fetch_what_it_was_fetching() {
    let mut rng = seeded("when_a_peer_goes_the_others_fetch_what_it_was_fetching");
    let mut full = Node::default();
    for _ in 0..3_000 {
        let (time, id) = random_item(&mut rng);
        full.put_raw(time, id, fake_bytes(SW, time, id, 80));
    }
    let config = Config {
        frame_size_limit: MIN_FRAME_SIZE_LIMIT,
        fetch_batch: 40,
        ..Config::default()
    };
    let (b, c) = (full.clone(), full.clone());
    for after in [1, 3, 10, 40] {
        let mut a = Node::default();
        let asked = sync_with_many(&mut a, &[&b, &c], config, &[None, Some(after)]);
        assert_eq!(a.ids(), full.ids(), "peer gone after {after} responses");
        assert!(asked[0].len() >= 3_000 - asked[1].len());
    }
}

#[test]
fn fetch_respects_the_byte_limit_and_asks_again() {
    let mut rng = seeded("fetch_respects_the_byte_limit_and_asks_again");
    // 50 entries of 200 KiB: 20 fit a 4 MiB response.
    let mut b = Node::default();
    for _ in 0..50 {
        let (time, id) = random_item(&mut rng);
        b.put_raw(time, id, fake_bytes(SW, time, id, 200 * 1024));
    }
    let mut a = Node::default();
    let run = sync(&mut a, &mut b, SW, Config::default(), Fake, NOW).unwrap();
    assert_eq!(a.ids(), b.ids());
    assert_eq!(run.fetch_requests, 3);
    let keys: Vec<_> = run.fetch_order.iter().map(|id| (b.time(id), *id)).collect();
    assert!(newest_first(&keys));
}

#[test]
fn pushes_are_batched_by_bytes() {
    let mut rng = seeded("pushes_are_batched_by_bytes");
    // The initiator holds 40 entries of 250 KiB the responder lacks: 10 MB, three pushes.
    let mut a = Node::default();
    for _ in 0..40 {
        let (time, id) = random_item(&mut rng);
        a.put_raw(time, id, fake_bytes(SW, time, id, 250 * 1024));
    }
    let mut b = Node::default();
    let config = Config {
        push_batch: 25,
        ..Config::default()
    };
    let run = sync(&mut a, &mut b, SW, config, Fake, NOW).unwrap();
    assert_eq!(b.ids(), a.ids());
    let stats = run.stats.unwrap();
    assert_eq!(stats.pushed, 40);
    // One reconcile round, then pushes of at most 16 entries (4 MiB / 250 KiB).
    assert_eq!(stats.rounds, 1 + 3);
}

/// Reconciliation cost of `d` differences among `n` items each, in encoded bytes and round
/// trips (fetch and push excluded).
fn reconcile_cost(rng: &mut Rng, n: usize, d: usize) -> Stats {
    let (mut a, mut b) = synthetic(rng, SW, n, d, 72);
    let run = sync(&mut a, &mut b, SW, Config::default(), Fake, NOW).unwrap();
    assert_eq!(a.ids(), b.ids());
    run.stats.unwrap()
}

#[test]
fn cost_grows_with_the_difference_not_the_set() {
    let mut rng = seeded("cost_grows_with_the_difference_not_the_set");
    let mut table = Vec::new();
    let mut cost = |n: usize, d: usize| {
        let stats = reconcile_cost(&mut rng, n, d);
        table.push((n, d, stats.reconcile_bytes, stats.reconcile_rounds));
        stats.reconcile_bytes
    };
    let small = cost(1_000, 10);
    let medium = cost(10_000, 10);
    let large = cost(100_000, 10);
    let d100 = cost(10_000, 100);
    let d1000 = cost(10_000, 1_000);
    eprintln!("{:>8} {:>6} {:>10} {:>7}", "n", "d", "bytes", "rounds");
    for (n, d, bytes, rounds) in &table {
        eprintln!("{n:>8} {d:>6} {bytes:>10} {rounds:>7}");
    }
    // Each difference costs one chain of ranges from the root down to an id list: about
    // log16(n / 32) levels of 16 fingerprints (~20 bytes each), then an id list of under 32
    // ids (~1 KB) on each side. Going from n = 1,000 (1–2 levels) to n = 100,000 (3–4 levels)
    // adds two levels, ~640 bytes per difference on top of ~2 KB: well under 3×.
    assert!(large <= 3 * small, "n=1k: {small} B, n=100k: {large} B");
    assert!(medium <= 3 * small, "n=1k: {small} B, n=10k: {medium} B");
    // Sending the ids outright would cost n × 32 bytes; this is far below (under 1%).
    assert!(large < 100_000 * 32 / 100, "n=100k: {large} B");
    // Roughly linear in d: 10× the differences, between 3× and 20× the bytes (below 10× as
    // nearby differences share ranges, never far above).
    assert!(
        d100 >= 3 * medium && d100 <= 20 * medium,
        "d=10: {medium}, d=100: {d100}"
    );
    assert!(
        d1000 >= 3 * d100 && d1000 <= 20 * d100,
        "d=100: {d100}, d=1000: {d1000}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile peers.

/// A session on `a`'s items, and the first request it sends.
fn session_on(a: &Node) -> (Session, Request) {
    Session::start(pool().subwiki, a.snapshot(), Config::default()).unwrap()
}

/// Drives a session on real entries with an honest responder on `b` until the session sends
/// its first fetch; returns the ids asked.
fn until_first_fetch(session: &mut Session, first: Request, b: &Node) -> Vec<EntryId> {
    let responder = Responder::new(Config::default()).unwrap();
    let b_items = b.snapshot();
    let mut request = first;
    loop {
        let reply = responder.handle(request, Some(&b_items), |id| b.get(id), NOW);
        let outputs = session.handle(reply.response, NOW).unwrap();
        let next = outputs.into_iter().find_map(|o| match o {
            Output::Send(r) => Some(r),
            _ => None,
        });
        match next {
            Some(Request::Fetch { ids, .. }) => return ids,
            Some(r) => request = r,
            None => panic!("no fetch"),
        }
    }
}

fn newcomer_and_full() -> (Node, Node) {
    let mut b = Node::default();
    for entry in &pool().entries {
        b.put(entry);
    }
    (Node::default(), b)
}

#[test]
fn malformed_payloads_are_typed_errors() {
    let a = {
        let mut a = Node::default();
        for entry in &pool().entries {
            a.put(entry);
        }
        a
    };
    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x62],
        vec![0x61, 0x81],
        vec![0x61, 0x00, 0x00, 0x02, 0xc0, 0x80, 0x80, 0x80, 0x00],
        vec![0x61, 0x00, 0x00, 0x05],
        vec![0x61, 0x00, 0x00, 0x01, 0x01],
        vec![0x61, 0x01, 0x21],
    ];
    bad.push(vec![0x61; MAX_RECONCILE_PAYLOAD + 1]);
    for payload in bad {
        let (mut session, _) = session_on(&a);
        let err = session
            .handle(
                Response::Reconcile {
                    payload: Some(payload.clone()),
                },
                NOW,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                ProtoError::Malformed(_) | ProtoError::FrameTooLarge { .. }
            ),
            "{payload:x?}: {err}"
        );
        assert!(session.is_finished());
        assert_eq!(
            session.handle(Response::Reconcile { payload: None }, NOW),
            Err(ProtoError::Finished)
        );
    }
}

#[test]
fn unexpected_responses_are_typed_errors() {
    let (a, _) = newcomer_and_full();
    for response in [
        Response::Entries { entries: vec![] },
        Response::Accepted { count: 1 },
    ] {
        let (mut session, _) = session_on(&a);
        assert!(matches!(
            session.handle(response, NOW),
            Err(ProtoError::Unexpected {
                expected: "reconcile",
                ..
            })
        ));
    }
    let (mut session, _) = session_on(&a);
    assert_eq!(
        session.handle(
            Response::Refused {
                reason: "busy".into()
            },
            NOW
        ),
        Err(ProtoError::Refused {
            reason: "busy".into()
        })
    );
    // Done, then anything more.
    let (mut session, _) = session_on(&a);
    let outputs = session
        .handle(Response::Reconcile { payload: None }, NOW)
        .unwrap();
    assert!(matches!(outputs.as_slice(), [Output::Done(_)]));
    assert_eq!(
        session.handle(Response::Reconcile { payload: None }, NOW),
        Err(ProtoError::Finished)
    );
    assert_eq!(session.provide(vec![]), Err(ProtoError::Finished));
}

#[test]
fn unrequested_entries_are_refused_and_nothing_stored() {
    let (a, b) = newcomer_and_full();
    let (mut session, first) = session_on(&a);
    let asked = until_first_fetch(&mut session, first, &b);
    let stranger = &pool().foreign;
    assert!(!asked.contains(&stranger.id()));
    let mut entries: Vec<Vec<u8>> = asked.iter().take(3).map(|id| b.get(id).unwrap()).collect();
    entries.push(stranger.bytes().to_vec());
    let err = session
        .handle(Response::Entries { entries }, NOW)
        .unwrap_err();
    assert_eq!(err, ProtoError::NotRequested { id: stranger.id() });
    assert!(session.is_finished());
    // The same entry twice is not asked for twice.
    let (mut session, first) = session_on(&a);
    let asked = until_first_fetch(&mut session, first, &b);
    let twice = b.get(&asked[0]).unwrap();
    let err = session
        .handle(
            Response::Entries {
                entries: vec![twice.clone(), twice],
            },
            NOW,
        )
        .unwrap_err();
    assert_eq!(err, ProtoError::NotRequested { id: asked[0] });
}

#[test]
fn forged_entries_are_invalid_and_nothing_stored() {
    let (a, b) = newcomer_and_full();
    let (mut session, first) = session_on(&a);
    let asked = until_first_fetch(&mut session, first, &b);
    let mut entries: Vec<Vec<u8>> = asked.iter().take(5).map(|id| b.get(id).unwrap()).collect();
    // Damage the signature of the third.
    let last = entries[2].len() - 1;
    entries[2][last] ^= 1;
    let outputs = session.handle(Response::Entries { entries }, NOW).unwrap();
    assert!(!outputs.iter().any(|o| matches!(o, Output::Store(_))));
    match outputs.as_slice() {
        [Output::Invalid { count, first_error }, Output::Done(stats)] => {
            assert_eq!(*count, 1);
            assert_eq!(*first_error, Rejection::Entry(EntryError::BadSignature));
            assert_eq!(stats.invalid, 1);
            assert_eq!(stats.fetched, 0);
        }
        other => panic!("{other:?}"),
    }
    assert!(session.is_finished());
}

/// A batch checked apart from the session (as the node does, on other threads, in two
/// halves) gives the session exactly what checking it inside gives: for whole batches, and for
/// one with a forged entry.
#[test]
fn entries_checked_apart_give_the_same_outputs() {
    let (a, b) = newcomer_and_full();
    for forge in [false, true] {
        let (mut inside, first) = session_on(&a);
        let (mut apart, second) = session_on(&a);
        let asked = until_first_fetch(&mut inside, first, &b);
        assert_eq!(until_first_fetch(&mut apart, second, &b), asked);
        let mut entries: Vec<Vec<u8>> = asked.iter().map(|id| b.get(id).unwrap()).collect();
        if forge {
            let last = entries[3].len() - 1;
            entries[3][last] ^= 1;
        }
        let response = Response::Entries {
            entries: entries.clone(),
        };
        let len = response.encoded_len();
        let expected = inside.handle(response, NOW).unwrap();
        let (one, two) = entries.split_at(entries.len() / 2);
        let checked = Checked::join(
            vec![
                Checked::check(&Signed, one, 0, NOW),
                Checked::check(&Signed, two, 0, NOW),
            ],
            len,
        );
        assert_eq!(apart.handle_checked(None, checked).unwrap(), expected);
        assert_eq!(apart.stats(), inside.stats());
        assert!(expected.iter().any(|o| matches!(o, Output::Invalid { .. })) == forge);
    }
}

#[test]
fn entries_of_another_subwiki_are_invalid() {
    // The responder lists a foreign entry in the subwiki's set; the fetch brings it.
    let (mut a, mut b) = newcomer_and_full();
    for entry in &pool().entries {
        a.put(entry);
    }
    b.put(&pool().foreign);
    let run = sync(
        &mut a,
        &mut b,
        pool().subwiki,
        Config::default(),
        Signed,
        NOW,
    )
    .unwrap();
    assert!(!a.entries.contains_key(&pool().foreign.id()));
    assert_eq!(run.invalid.len(), 1);
    assert!(matches!(
        run.invalid[0],
        (1, Rejection::WrongSubwiki { id, .. }) if id == pool().foreign.id()
    ));
}

#[test]
fn endless_reconciliation_hits_the_round_limit() {
    let mut rng = seeded("endless_reconciliation_hits_the_round_limit");
    let a: Snapshot = (0..1_000).map(|_| random_item(&mut rng)).collect();
    let config = Config {
        max_rounds: 8,
        ..Config::default()
    };
    let (mut session, _) = Session::with_verifier(SW, a, config, Fake).unwrap();
    // A responder that always says the whole range differs.
    let mut rounds = 0;
    let err = loop {
        let mut payload = vec![0x61, 0x00, 0x00, 0x01];
        payload.extend(rng.bytes32().get(..16).unwrap());
        match session.handle(
            Response::Reconcile {
                payload: Some(payload),
            },
            NOW,
        ) {
            Ok(outputs) => {
                assert!(matches!(
                    outputs.as_slice(),
                    [Output::Send(Request::Reconcile { .. })]
                ));
                rounds += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, ProtoError::TooManyRounds { max: 8 });
    assert_eq!(rounds, 7);
}

#[test]
fn a_peer_cannot_announce_unbounded_missing_ids() {
    let mut rng = seeded("a_peer_cannot_announce_unbounded_missing_ids");
    let config = Config {
        max_missing: 50,
        ..Config::default()
    };
    let (mut session, _) = Session::with_verifier(SW, Snapshot::default(), config, Fake).unwrap();
    let mut payload = vec![0x61, 0x00, 0x00, 0x02, 100];
    for _ in 0..100 {
        payload.extend(rng.bytes32());
    }
    assert_eq!(
        session.handle(
            Response::Reconcile {
                payload: Some(payload)
            },
            NOW
        ),
        Err(ProtoError::TooManyMissing { max: 50 })
    );
}

#[test]
fn ids_we_hold_are_not_fetched() {
    // A hostile responder lists, under the wrong bound, ids we hold: they are not fetched.
    let mut rng = seeded("ids_we_hold_are_not_fetched");
    let items: Vec<_> = (0..10).map(|_| random_item(&mut rng)).collect();
    let (mut session, _) =
        Session::with_verifier(SW, items.iter().copied().collect(), Config::default(), Fake)
            .unwrap();
    // Bound: time 1 (encoded 2), empty prefix; our items are all later.
    let mut payload = vec![0x61, 0x02, 0x00, 0x02, 10];
    for (_, id) in &items {
        payload.extend(id.as_bytes());
    }
    let outputs = session
        .handle(
            Response::Reconcile {
                payload: Some(payload),
            },
            NOW,
        )
        .unwrap();
    // Nothing to fetch; our items are offered (the peer's message says it lacks them).
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::Send(Request::Fetch { .. })))
    );
}

#[test]
fn responder_refuses_hostile_requests() {
    let (_, b) = newcomer_and_full();
    let items = b.snapshot();
    let responder = Responder::new(Config::default()).unwrap();
    let subwiki = pool().subwiki;
    let handle = |request| responder.handle(request, Some(&items), |id| b.get(id), NOW);

    // Malformed reconciliation.
    let reply = handle(Request::Reconcile {
        subwiki,
        round: 0,
        payload: vec![0x61, 0x00, 0x00, 0x09],
    });
    assert!(matches!(reply.response, Response::Refused { .. }));
    assert!(matches!(
        reply.fault,
        Some(Fault::Protocol(ProtoError::Malformed(_)))
    ));
    // Too many rounds.
    let reply = handle(Request::Reconcile {
        subwiki,
        round: Config::default().max_rounds,
        payload: vec![0x61],
    });
    assert_eq!(
        reply.fault,
        Some(Fault::Protocol(ProtoError::TooManyRounds {
            max: Config::default().max_rounds
        }))
    );
    // Forged push: refused, nothing stored.
    let mut forged = pool().entries[3].bytes().to_vec();
    forged[10] ^= 1;
    let reply = handle(Request::Push {
        subwiki,
        entries: vec![pool().entries[1].bytes().to_vec(), forged],
    });
    assert!(matches!(reply.response, Response::Refused { .. }));
    assert!(reply.store.is_empty());
    assert!(matches!(reply.fault, Some(Fault::Invalid { count: 1, .. })));
    // A push of another subwiki's entry.
    let reply = handle(Request::Push {
        subwiki,
        entries: vec![pool().foreign.bytes().to_vec()],
    });
    assert!(matches!(
        reply.fault,
        Some(Fault::Invalid {
            count: 1,
            first_error: Rejection::WrongSubwiki { .. }
        })
    ));
    // A good push.
    let reply = handle(Request::Push {
        subwiki,
        entries: vec![pool().entries[1].bytes().to_vec()],
    });
    assert_eq!(reply.response, Response::Accepted { count: 1 });
    assert_eq!(reply.store.len(), 1);
    assert_eq!(reply.fault, None);
    // A subwiki not held: refused, no fault.
    let reply = responder.handle(
        Request::Fetch {
            subwiki,
            ids: vec![],
        },
        None,
        |_| None,
        NOW,
    );
    assert!(matches!(reply.response, Response::Refused { .. }));
    assert_eq!(reply.fault, None);
    // Too many ids, built in-process (the decoder would refuse them first).
    let reply = handle(Request::Fetch {
        subwiki,
        ids: vec![pool().entries[0].id(); MAX_FETCH_IDS + 1],
    });
    assert!(matches!(
        reply.fault,
        Some(Fault::Protocol(ProtoError::BatchTooLarge { .. }))
    ));
}

// ---------------------------------------------------------------------------------------------
// Codec and hostile bytes: properties.

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<[u8; 32]>(), any::<u32>(), arb_bytes(300)).prop_map(|(s, round, payload)| {
            Request::Reconcile {
                subwiki: SubwikiId::from_bytes(s),
                round,
                payload,
            }
        }),
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..40)
        )
            .prop_map(|(s, ids)| Request::Fetch {
                subwiki: SubwikiId::from_bytes(s),
                ids: ids.into_iter().map(EntryId::from_bytes).collect(),
            }),
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(arb_bytes(200), 0..10)
        )
            .prop_map(|(s, entries)| Request::Push {
                subwiki: SubwikiId::from_bytes(s),
                entries,
            }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        proptest::option::of(arb_bytes(300)).prop_map(|payload| Response::Reconcile { payload }),
        proptest::collection::vec(arb_bytes(200), 0..10)
            .prop_map(|entries| Response::Entries { entries }),
        (0..=MAX_BATCH_ENTRIES as u32).prop_map(|count| Response::Accepted { count }),
        "\\PC{0,60}".prop_map(|reason| Response::Refused { reason }),
    ]
}

/// A negentropy-shaped message with arbitrary field values: reaches deeper into the decoder
/// than random bytes.
fn arb_negentropy_message() -> impl Strategy<Value = Vec<u8>> {
    let range = (
        prop_oneof![Just(0u64), 1..1_000u64, any::<u64>()],
        0..40usize,
        0..4u64,
        0..40usize,
        any::<u8>(),
    );
    (proptest::collection::vec(range, 0..12), any::<bool>()).prop_map(|(ranges, truncate)| {
        fn varint(out: &mut Vec<u8>, n: u64) {
            let mut groups = vec![(n & 0x7f) as u8];
            let mut n = n >> 7;
            while n > 0 {
                groups.push((n & 0x7f) as u8 | 0x80);
                n >>= 7;
            }
            out.extend(groups.iter().rev());
        }
        let mut out = vec![0x61];
        for (time, len, mode, count, fill) in ranges {
            varint(&mut out, time);
            varint(&mut out, len as u64);
            out.extend(std::iter::repeat_n(fill, len.min(32)));
            varint(&mut out, mode);
            match mode {
                1 => out.extend([fill; 16]),
                2 => {
                    varint(&mut out, count as u64);
                    for i in 0..count {
                        out.extend([fill.wrapping_add(i as u8); 32]);
                    }
                }
                _ => {}
            }
        }
        if truncate && out.len() > 1 {
            out.pop();
        }
        out
    })
}

fn snapshot_of(n: u64) -> Snapshot {
    (0..n)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            (Timestamp(i * 7), EntryId::from_bytes(id))
        })
        .collect()
}

proptest! {
    #[test]
    fn requests_round_trip(request in arb_request()) {
        let bytes = request.encode();
        prop_assert_eq!(bytes.len(), request.encoded_len());
        prop_assert_eq!(Request::decode(&bytes), Ok(request));
    }

    #[test]
    fn responses_round_trip(response in arb_response()) {
        let bytes = response.encode();
        prop_assert_eq!(bytes.len(), response.encoded_len());
        prop_assert_eq!(Response::decode(&bytes), Ok(response));
    }

    #[test]
    fn random_bytes_never_panic_and_decode_canonically(bytes in arb_bytes(600)) {
        if let Ok(request) = Request::decode(&bytes) {
            prop_assert_eq!(request.encode(), bytes.clone());
        }
        if let Ok(response) = Response::decode(&bytes) {
            prop_assert_eq!(response.encode(), bytes);
        }
    }

    #[test]
    fn damaged_messages_never_panic(
        request in arb_request(),
        response in arb_response(),
        at in any::<usize>(),
        flip in any::<u8>(),
        cut in any::<bool>(),
    ) {
        for mut bytes in [request.encode(), response.encode()] {
            let i = at % bytes.len();
            if cut { bytes.truncate(i) } else { bytes[i] ^= flip }
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
    }

    /// Negentropy itself, without our parser in front, on hostile messages: never panics, on
    /// either side (a panic would show as `NegentropyPanicked`).
    #[test]
    fn negentropy_does_not_panic_on_hostile_messages(
        message in prop_oneof![arb_negentropy_message(), arb_bytes(400)],
        n in prop_oneof![Just(0u64), 1..40u64, 200..400u64],
    ) {
        let items = snapshot_of(n);
        let responder = guarded(|| Negentropy::borrowed(&items, 4096)?.reconcile(&message));
        prop_assert_ne!(responder, Err(ProtoError::NegentropyPanicked));
        let initiator = guarded(|| {
            let mut neg = Negentropy::borrowed(&items, 4096)?;
            neg.initiate()?;
            let (mut have, mut need): (Vec<Id>, Vec<Id>) = (Vec::new(), Vec::new());
            neg.reconcile_with_ids(&message, &mut have, &mut need)
        });
        prop_assert_ne!(initiator, Err(ProtoError::NegentropyPanicked));
    }

    /// The same messages through our two sides: typed errors or answers, never a panic.
    #[test]
    fn both_sides_survive_hostile_messages(
        message in prop_oneof![arb_negentropy_message(), arb_bytes(400)],
        n in prop_oneof![Just(0u64), 1..40u64, 200..400u64],
    ) {
        let items = snapshot_of(n);
        let responder = Responder::with_verifier(Config::default(), Fake).unwrap();
        let reply = responder.handle(
            Request::Reconcile { subwiki: SW, round: 0, payload: message.clone() },
            Some(&items),
            |_| None,
            NOW,
        );
        prop_assert!(!matches!(reply.fault, Some(Fault::Protocol(ProtoError::NegentropyPanicked))));
        if let Response::Reconcile { payload: Some(p) } = &reply.response {
            prop_assert!(p.len() <= DEFAULT_FRAME_SIZE_LIMIT);
        }
        let (mut session, _) =
            Session::with_verifier(SW, items, Config::default(), Fake).unwrap();
        let result = session.handle(Response::Reconcile { payload: Some(message) }, NOW);
        prop_assert_ne!(result.err(), Some(ProtoError::NegentropyPanicked));
    }
}
