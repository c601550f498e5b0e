//! What it costs to take in remote entries: signature checks, [`agora_crdt::validate`], and
//! [`agora_crdt::Replica::ingest`] into many small posts and into one large post.
//!
//! Run with `cargo bench -p agora-crdt --bench ingest` (add `-- <filter>` to run some of it,
//! e.g. `-- verify`). A whole run takes about two to three minutes on a 2-core machine, a good
//! part of it spent building the inputs, which is not measured. The slow benchmarks take one
//! iteration per sample on purpose, so criterion warns that it cannot complete the samples in
//! the target time: that warning is expected.
//!
//! Groups:
//!
//! - `verify`: the floor. Raw ed25519 `verify_strict` over 1,000 signatures by 1,000 distinct
//!   keys, one at a time, and `ed25519_dalek::verify_batch` over the same 1,000. Each signs a
//!   message like the one an entry signs (the domain, then 32 id bytes).
//! - `validate_ingest_10k`: 10,000 signed post edits: 100 posts with 100 edits each, by 8
//!   authors writing on 2 authoring replicas. In each round two authors edit every post
//!   concurrently, so most changes merge two heads. Every edit is a diff of the body text made
//!   by `Replica::edit_post`. Measured: `validate` of all 10,000 byte strings; `validate` then
//!   `Replica::ingest` in batches of 200 (one round: two edits of each post) into a fresh
//!   replica that already holds the genesis and the 100 create entries; and, as a baseline,
//!   plain Automerge `apply_changes` of the same changes in the same batches (one call per
//!   post per batch, as the replica does) into 100 documents holding their first change.
//! - `apply_batch_into_10k`: one post that already has 10,000 applied changes (8 authors, one
//!   after the other). Measured: ingesting a batch of 200 changes, and a batch of 1, made by
//!   another author on top of that state; and ingesting one change that has to wait for a
//!   missing dependency, which runs only the replica's own bookkeeping. The entries are
//!   validated beforehand (that cost is in the group above); each iteration gets a replica
//!   freshly built from the same entries, outside the timed part. Plain Automerge
//!   `apply_changes` of the same changes into a document with the same 10,000 changes is the
//!   baseline.
//!
//! Key material is derived from fixed bytes and every timestamp is fixed, so every run signs
//! the same entries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Duration;

use agora_crdt::entry::SIGNATURE_DOMAIN;
use agora_crdt::{
    AuthorKey, Base, Content, DocChange, DocId, DocKind, Entry, Payload, Policy, PostContent,
    Replica, SubwikiId, Timestamp, validate,
};
use automerge::transaction::CommitOptions;
use automerge::{Automerge, Change};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Genesis time of the benchmark subwikis (ms since the epoch).
const T0: u64 = 1_700_000_000_000;
/// The receiver's clock: later than every entry.
const NOW: Timestamp = Timestamp(T0 + 1_000_000_000);

const SIGNATURES: usize = 1_000;
const POSTS: usize = 100;
const EDITS_PER_POST: usize = 100;
const AUTHORS: u8 = 8;
const AUTHORING_REPLICAS: usize = 2;
const BATCH: usize = 200;
const BIG_POST_CHANGES: usize = 10_000;

/// A person's key from fixed bytes: `i` is 1-based.
fn author(i: u8) -> AuthorKey {
    AuthorKey::from_secret([i; 32], [i; 8])
}

/// A small deterministic generator (xorshift64*), so every run edits the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "replica",
    "holds",
    "every",
    "valid",
    "entry",
    "of",
    "a",
    "subwiki",
    "and",
    "derives",
    "its",
    "documents",
    "from",
    "set",
    "peers",
    "gossip",
    "signed",
    "changes",
    "which",
    "merge",
    "without",
    "coordination",
    "so",
    "two",
    "editors",
    "keep",
    "both",
    "paragraphs",
    "when",
    "they",
    "write",
    "at",
    "same",
    "time",
    "rust",
    "compiler",
    "borrow",
    "checker",
    "release",
];

fn word(rng: &mut Rng) -> &'static str {
    WORDS[rng.below(WORDS.len())]
}

/// About 1 KB of text in a few paragraphs.
fn initial_body(rng: &mut Rng) -> String {
    let mut words: Vec<String> = (0..160).map(|_| word(rng).to_owned()).collect();
    for i in (40..160).step_by(40) {
        words[i].push_str(".\n\n");
    }
    words.join(" ")
}

/// One wiki edit of a body: insert a phrase, replace a word or delete a few words, at a random
/// place. The text outside the edit is left byte for byte as it was (splitting on single spaces
/// and joining again is the identity), so `update_text` turns it into a small diff. The body
/// stays between roughly 100 and 250 words.
fn mutate(body: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = body.split(' ').map(str::to_owned).collect();
    let op = match words.len() {
        0..=100 => 0,
        251.. => 2,
        _ => rng.below(3),
    };
    let at = rng.below(words.len());
    match op {
        0 => {
            let phrase: Vec<String> = (0..3 + rng.below(6))
                .map(|_| word(rng).to_owned())
                .collect();
            words.splice(at..at, phrase);
        }
        1 => {
            let old = std::mem::take(&mut words[at]);
            words[at] = format!("{}{}", word(rng), if old.ends_with('s') { "" } else { "s" });
        }
        _ => {
            let end = (at + 1 + rng.below(5)).min(words.len());
            words.drain(at..end);
        }
    }
    let new = words.join(" ");
    if new == body {
        format!("{new} edited")
    } else {
        new
    }
}

fn post_body(replica: &Replica, post: &DocId) -> PostContent {
    let Some(Content::Post(content)) = replica.content(post) else {
        unreachable!("{post} is a post")
    };
    content
}

// ---------------------------------------------------------------------------------------------
// verify

fn bench_verify(c: &mut Criterion) {
    let signing: Vec<SigningKey> = (0..SIGNATURES)
        .map(|i| {
            let mut secret = [7u8; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&secret)
        })
        .collect();
    let keys: Vec<VerifyingKey> = signing.iter().map(SigningKey::verifying_key).collect();
    let messages: Vec<Vec<u8>> = (0..SIGNATURES)
        .map(|i| {
            let mut message = SIGNATURE_DOMAIN.to_vec();
            message.extend_from_slice(blake3::hash(&(i as u64).to_le_bytes()).as_bytes());
            message
        })
        .collect();
    let signatures: Vec<Signature> = signing
        .iter()
        .zip(&messages)
        .map(|(key, message)| key.sign(message))
        .collect();
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();

    let mut group = c.benchmark_group("verify");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(SIGNATURES as u64));
    group.bench_function("verify_strict_1000", |b| {
        b.iter(|| {
            for ((key, message), signature) in keys.iter().zip(&messages).zip(&signatures) {
                key.verify_strict(black_box(message), black_box(signature))
                    .unwrap();
            }
        });
    });
    group.bench_function("verify_batch_1000", |b| {
        b.iter(|| {
            ed25519_dalek::verify_batch(black_box(&message_refs), &signatures, &keys).unwrap();
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// validate_ingest_10k

/// 100 posts with 100 edits each, as a node would receive them.
struct Posts {
    genesis: Entry,
    creates: Vec<Entry>,
    /// The edits' bytes in the order they were made: round by round, two per post per round.
    edits: Vec<Vec<u8>>,
}

fn build_posts() -> Posts {
    let keys: Vec<AuthorKey> = (1..=AUTHORS).map(author).collect();
    let (mut origin, genesis) = Replica::found(
        &keys[0],
        Timestamp(T0),
        "bench",
        "A subwiki for the ingest benchmark",
        Policy::default(),
    )
    .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let creates: Vec<Entry> = (0..POSTS)
        .map(|p| {
            let content = PostContent {
                title: format!("Post number {p}"),
                body: initial_body(&mut rng),
                tags: vec!["bench".to_owned()],
                ..PostContent::default()
            };
            origin
                .create_post(
                    &keys[p % keys.len()],
                    Timestamp(T0 + 1_000 * (p as u64 + 1)),
                    content,
                )
                .unwrap()
        })
        .collect();
    let posts: Vec<DocId> = creates.iter().map(|e| e.id().into()).collect();
    // Author `a` writes on replica `a % AUTHORING_REPLICAS`; the two authors of a round's edits
    // of one post (`a` and `a + 1`) are always on different replicas, so their edits are
    // concurrent and the next round's edits merge them.
    let mut replicas: Vec<Replica> = (0..AUTHORING_REPLICAS)
        .map(|_| {
            let mut replica = Replica::new(genesis.clone()).unwrap();
            replica.ingest(creates.iter().cloned());
            replica
        })
        .collect();
    let mut time = T0 + 1_000_000;
    let mut edits = Vec::with_capacity(POSTS * EDITS_PER_POST);
    for round in 0..EDITS_PER_POST / 2 {
        let mut made = Vec::with_capacity(2 * POSTS);
        for (p, post) in posts.iter().enumerate() {
            let first = (p + round) % keys.len();
            for a in [first, (first + 1) % keys.len()] {
                let replica = &mut replicas[a % AUTHORING_REPLICAS];
                let mut content = post_body(replica, post);
                content.body = mutate(&content.body, &mut rng);
                time += 1_000;
                let entry = replica
                    .edit_post(&keys[a], Timestamp(time), *post, &Base::Latest, content)
                    .unwrap()
                    .expect("the edit changes the body");
                made.push(entry);
            }
        }
        for replica in &mut replicas {
            let report = replica.ingest(made.iter().cloned());
            assert!(report.rejected.is_empty(), "{report:?}");
        }
        edits.extend(made.iter().map(|e| e.bytes().to_vec()));
    }
    Posts {
        genesis,
        creates,
        edits,
    }
}

/// A replica holding the genesis and the create entries, nothing else.
fn replica_with_creates(posts: &Posts) -> Replica {
    let mut replica = Replica::new(posts.genesis.clone()).unwrap();
    replica.ingest(posts.creates.iter().cloned());
    replica
}

fn validate_and_ingest(replica: &mut Replica, edits: &[Vec<u8>]) {
    for chunk in edits.chunks(BATCH) {
        let entries: Vec<Entry> = chunk.iter().map(|b| validate(b, NOW).unwrap()).collect();
        let report = replica.ingest(entries);
        assert_eq!(report.accepted.len(), chunk.len());
    }
}

fn bench_validate_ingest(c: &mut Criterion) {
    let posts = build_posts();
    // The inputs are what they claim to be: every edit applies, none waits.
    {
        let mut replica = replica_with_creates(&posts);
        validate_and_ingest(&mut replica, &posts.edits);
        assert!(replica.pending().is_empty());
        for create in &posts.creates {
            let view = replica.post(&create.id().into()).unwrap();
            assert_eq!(view.edits, EDITS_PER_POST);
        }
    }
    let mut group = c.benchmark_group("validate_ingest_10k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(posts.edits.len() as u64));
    group.bench_function("validate", |b| {
        b.iter(|| {
            for bytes in &posts.edits {
                black_box(validate(black_box(bytes), NOW).unwrap());
            }
        });
    });
    // Slow: one iteration per sample.
    group.measurement_time(Duration::from_secs(1));
    group.bench_function("validate_then_ingest_batches_of_200", |b| {
        b.iter_batched(
            || replica_with_creates(&posts),
            |mut replica| {
                validate_and_ingest(&mut replica, &posts.edits);
                replica
            },
            BatchSize::PerIteration,
        );
    });
    let (docs, batches) = automerge_baseline(&posts);
    group.bench_function("automerge_apply_changes_batches_of_200", |b| {
        b.iter_batched(
            || (docs.clone(), batches.clone()),
            |(mut docs, batches)| {
                for batch in batches {
                    for (post, changes) in batch {
                        docs[post].apply_changes(changes).unwrap();
                    }
                }
                docs
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// Plain Automerge documents holding each post's first change, and the edits' changes in the
/// same batches of 200, grouped by post.
#[allow(clippy::type_complexity)]
fn automerge_baseline(posts: &Posts) -> (Vec<Automerge>, Vec<Vec<(usize, Vec<Change>)>>) {
    let index: HashMap<DocId, usize> = posts
        .creates
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id().into(), i))
        .collect();
    let docs: Vec<Automerge> = posts
        .creates
        .iter()
        .map(|e| {
            let mut doc = Automerge::new();
            doc.apply_changes([e.change().unwrap().clone()]).unwrap();
            doc
        })
        .collect();
    let batches = posts
        .edits
        .chunks(BATCH)
        .map(|chunk| {
            let mut by_post: BTreeMap<usize, Vec<Change>> = BTreeMap::new();
            for bytes in chunk {
                let entry = validate(bytes, NOW).unwrap();
                let Payload::Change(change) = entry.payload() else {
                    unreachable!("edits are changes")
                };
                by_post
                    .entry(index[&change.doc])
                    .or_default()
                    .push(entry.change().unwrap().clone());
            }
            by_post.into_iter().collect()
        })
        .collect();
    (docs, batches)
}

// ---------------------------------------------------------------------------------------------
// apply_batch_into_10k

/// One post with 10,000 changes, and 200 more by another author on top of them.
struct BigPost {
    genesis: Entry,
    create: Entry,
    history: Vec<Entry>,
    remote: Vec<Entry>,
}

/// Makes the change `Replica::edit_post` would make (the same `Content::write` diff in one
/// transaction, committed with the same options), on a document kept across edits: the
/// replica forks its whole document for every local edit, which would make building 10,000
/// edits quadratic.
fn local_edit(
    doc: &mut Automerge,
    key: &AuthorKey,
    subwiki: SubwikiId,
    post: DocId,
    time: Timestamp,
    rng: &mut Rng,
) -> Entry {
    let Content::Post(mut content) = Content::read(DocKind::Post, &*doc, None) else {
        unreachable!("reading a post gives a post")
    };
    content.body = mutate(&content.body, rng);
    doc.set_actor(key.actor());
    let mut tx = doc.transaction();
    Content::Post(content).write(&mut tx).unwrap();
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(time.as_secs()));
    assert!(hash.is_some(), "the edit changes the body");
    let change = doc.get_last_local_change().unwrap();
    Entry::sign(
        key,
        Some(subwiki),
        time,
        Payload::Change(DocChange {
            doc: post,
            change: change.raw_bytes().to_vec(),
        }),
    )
    .unwrap()
}

fn build_big_post() -> BigPost {
    let keys: Vec<AuthorKey> = (1..=AUTHORS + 1).map(author).collect();
    let (mut origin, genesis) = Replica::found(
        &keys[0],
        Timestamp(T0),
        "big",
        "A subwiki with one much-edited post",
        Policy::default(),
    )
    .unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let create = origin
        .create_post(
            &keys[0],
            Timestamp(T0 + 1_000),
            PostContent {
                title: "A much-edited post".to_owned(),
                body: initial_body(&mut rng),
                tags: vec!["bench".to_owned()],
                ..PostContent::default()
            },
        )
        .unwrap();
    let post: DocId = create.id().into();
    let subwiki = origin.id();
    let mut doc = Automerge::new();
    doc.apply_changes([create.change().unwrap().clone()])
        .unwrap();
    let mut time = T0 + 1_000_000;
    let mut edit = |doc: &mut Automerge, key: &AuthorKey, rng: &mut Rng| {
        time += 1_000;
        local_edit(doc, key, subwiki, post, Timestamp(time), rng)
    };
    let history: Vec<Entry> = (0..BIG_POST_CHANGES)
        .map(|i| edit(&mut doc, &keys[i % usize::from(AUTHORS)], &mut rng))
        .collect();
    let remote: Vec<Entry> = (0..BATCH)
        .map(|_| edit(&mut doc, &keys[usize::from(AUTHORS)], &mut rng))
        .collect();
    BigPost {
        genesis,
        create,
        history,
        remote,
    }
}

/// A replica holding the post with its 10,000 changes, built from the entries.
fn big_replica(big: &BigPost) -> Replica {
    let mut replica = Replica::new(big.genesis.clone()).unwrap();
    replica.ingest([big.create.clone()]);
    replica.ingest(big.history.iter().cloned());
    replica
}

/// A plain Automerge document with the same 10,000 changes.
fn big_doc(big: &BigPost) -> Automerge {
    let mut doc = Automerge::new();
    let changes: Vec<Change> = std::iter::once(&big.create)
        .chain(&big.history)
        .map(|e| e.change().unwrap().clone())
        .collect();
    doc.apply_changes(changes).unwrap();
    doc
}

fn bench_apply_batch(c: &mut Criterion) {
    let big = build_big_post();
    let post: DocId = big.create.id().into();
    // The inputs are what they claim to be: the post has 10,000 edits applied, and the remote
    // batch applies on top of them.
    {
        let mut replica = big_replica(&big);
        assert_eq!(replica.post(&post).unwrap().edits, BIG_POST_CHANGES);
        assert!(replica.pending().is_empty());
        let report = replica.ingest(big.remote.iter().cloned());
        assert_eq!(report.accepted.len(), BATCH);
        assert_eq!(replica.post(&post).unwrap().edits, BIG_POST_CHANGES + BATCH);
        assert!(replica.pending().is_empty());
        // The second remote change alone waits for the first.
        let mut replica = big_replica(&big);
        let report = replica.ingest([big.remote[1].clone()]);
        assert_eq!(report.accepted.len(), 1);
        assert_eq!(replica.pending(), vec![big.remote[1].id()]);
    }
    let base_doc = big_doc(&big);
    let remote_changes: Vec<Change> = big
        .remote
        .iter()
        .map(|e| e.change().unwrap().clone())
        .collect();

    let mut group = c.benchmark_group("apply_batch_into_10k");
    // Every iteration needs a fresh 10,000-change replica (about 0.4 s to build), built outside
    // the timed part: one iteration per sample keeps the number of rebuilds down.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    for n in [BATCH, 1] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("replica_ingest_{n}"), |b| {
            b.iter_batched(
                || (big_replica(&big), big.remote[..n].to_vec()),
                |(mut replica, batch)| {
                    let report = replica.ingest(batch);
                    assert_eq!(report.accepted.len(), n);
                    (replica, report)
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function(format!("automerge_apply_changes_{n}"), |b| {
            b.iter_batched(
                || (base_doc.clone(), remote_changes[..n].to_vec()),
                |(mut doc, changes)| {
                    doc.apply_changes(changes).unwrap();
                    doc
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("replica_ingest_1_waiting", |b| {
        b.iter_batched(
            || (big_replica(&big), vec![big.remote[1].clone()]),
            |(mut replica, batch)| {
                let report = replica.ingest(batch);
                assert_eq!(report.accepted.len(), 1);
                (replica, report)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_verify,
    bench_validate_ingest,
    bench_apply_batch
);
criterion_main!(benches);
