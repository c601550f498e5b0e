//! What the on-disk store costs a node with a large history: opening it, counting it, and the
//! first page of the feed, with 100,000 real signed posts against the same with 1,000.
//!
//! Run with `cargo bench -p agora-node --bench store` (add `-- <filter>` to run some of it,
//! e.g. `-- feed`). The stores are built once, outside any measurement, and kept under
//! `target/bench-data/` (`$CARGO_TARGET_DIR/bench-data/` if that is set): `store-1k` and
//! `store-100k`. A rerun reuses them; a store whose completion marker is missing or different
//! is deleted and built again (100 s for 100,000 entries on a 2-core machine: about 1 ms per
//! post to sign it, build its Automerge change and ingest it into a replica). Delete the
//! directories to force a rebuild.
//!
//! Data: 20 subwikis, each founded by its own key (`AuthorKey::from_secret([i; 32], [i; 8])`),
//! each with `posts / 20` posts made by [`Replica::create_post`] (a title and a body of about
//! 300 bytes), stored with [`Store::put_entries`] in batches of 1,000. Posts of the 20
//! subwikis interleave in time, one minute apart, so a feed page over all 20 really merges them.
//! A store holds `posts + 20` entries (the genesis entries too).
//!
//! Groups:
//!
//! - `store_open/{1k,100k}`: [`SledStore::open`] alone; `open_feed`: open, then the first feed
//!   page (20 posts) over all 20 subwikis, as a node does when it starts and shows its home
//!   page; and `open_len_feed`: the same with [`Store::len`] between them (sled counts by
//!   reading every entry). Closing the store is not timed. The files are in the OS page cache
//!   (warm open): a cold open after a reboot reads them from disk as well.
//! - `store_ops/{1k,100k}`: on an open store, [`Store::len`] alone.
//! - `feed_100k`: on the open 100k store, the first page (`limit` 20) over all 20 subwikis, a
//!   deep page (`before` the 50,000th newest post), and the first page of one subwiki.
//! - `replica_load_5k`: [`Store::load`] of one subwiki of the 100k store (5,000 posts, every
//!   entry validated), [`Replica::ingest`] of them into a fresh replica, and both one after
//!   the other (`load_and_ingest`). The node builds a subwiki's replica this way the first
//!   time it needs it after starting (`Core::with_replica` in `core.rs`): to accept entries
//!   from a peer, to write one, or to show a post whose rendered view is not stored. The
//!   ingest builds no document (documents are built on demand); `ingest_then_one_post` adds
//!   reading the oldest post, whose document is then built alone.
//!   `load` reads entries back with [`agora_crdt::reopen`] (batched signature check).

//!
//! # Realistic subwiki: writes, syncs, open, disk use
//!
//! Before the groups above, the bench measures the store on one generated realistic subwiki
//! (`support/realistic.rs`: one genesis, 8 authors, posts of a ~40-character title and a
//! ~600-character body, a quarter with comments, a tenth edited), of `AGORA_BENCH_POSTS` posts
//! (10,000 by default; 100,000 for the figures in `docs/performance.md`). It prints one table,
//! each figure measured once in this run:
//!
//! - the baseline: [`agora_crdt::reopen`] of all the entries (decode, blake3, ed25519 batch
//!   verification), in entries per second;
//! - [`Store::put_entries`] of all of them into a fresh store in batches of 1,000 and of 100,
//!   in entries per second and as a ratio to the baseline, with the syncs it took;
//! - single-entry writes, as gossip delivers them: from one thread (one sync each), and from 8
//!   threads at once (group commit: writers share syncs), in writes and syncs per second;
//! - disk use against the entries' own bytes, for sled's default options and other ones;
//! - store open time ([`SledStore::open`], warm) and [`Store::len`] / [`Store::count`] after it.
//!
//! `AGORA_BENCH_1M=1` also builds a store of 1,000,000 entries (the realistic subwiki plus
//! moderation votes carrying a 600-byte reason, signed with [`Entry::sign`]: cheap to make,
//! the size of a post) under `target/bench-data/store-1m` and times its open.
//! `AGORA_BENCH_REALISTIC_ONLY=1` skips the criterion groups below.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agora_crdt::{
    AuthorKey, DocId, DocKind, Entry, Payload, Policy, PostContent, Replica, SubwikiId, Timestamp,
    Vote, VoteTarget, VoteValue,
};
use agora_node::store::{FeedKey, Options, SledStore, Store};
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};

#[path = "support/realistic.rs"]
mod realistic;

/// Genesis time of every subwiki (ms since the epoch).
const T0: u64 = 1_700_000_000_000;
const SUBWIKIS: usize = 20;
/// Posts per `put_entries` call.
const BATCH: usize = 1_000;
const PAGE: usize = 20;
/// Bump when the generated data changes, so cached stores are rebuilt.
const DATA_VERSION: u32 = 2;

fn author(i: usize) -> AuthorKey {
    let b = u8::try_from(i + 1).unwrap();
    AuthorKey::from_secret([b; 32], [b; 8])
}

/// About 300 bytes of text that differs from post to post.
fn body(subwiki: usize, post: usize) -> String {
    const WORDS: &[&str] = &[
        "replica", "entry", "subwiki", "gossip", "signed", "merge", "feed", "peer", "history",
        "document", "edit", "page",
    ];
    let mut x = ((subwiki as u64) << 32) | post as u64 | 1;
    let mut out = String::with_capacity(320);
    while out.len() < 300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        out.push(' ');
    }
    out
}

fn data_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench-data")
}

/// A store of `posts` posts over [`SUBWIKIS`] subwikis: the cached one if complete, else built.
/// Returns its directory and the subwiki ids.
fn store_with(posts: usize, name: &str) -> (PathBuf, Vec<SubwikiId>) {
    let dir = data_dir().join(name);
    let marker = dir.join("complete");
    let expected = format!("v{DATA_VERSION} subwikis={SUBWIKIS} posts={posts}\n");
    let cached = std::fs::read_to_string(&marker).unwrap_or_default();
    let keys: Vec<AuthorKey> = (0..SUBWIKIS).map(author).collect();
    let geneses: Vec<Entry> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            Replica::found(
                key,
                Timestamp(T0),
                &format!("bench {i}"),
                "A subwiki for the store benchmark",
                Policy::default(),
            )
            .unwrap()
            .1
        })
        .collect();
    let ids: Vec<SubwikiId> = geneses.iter().map(|g| g.id().into()).collect();
    if cached.starts_with(&expected) {
        eprintln!("{} reused: {}", dir.display(), describe(&dir, &cached));
        return (dir, ids);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let store = SledStore::open(&dir.join("db")).unwrap();
    store.put_entries(&geneses).unwrap();
    let mut entry_bytes: usize = geneses.iter().map(|e| e.bytes().len()).sum();
    let per_subwiki = posts / SUBWIKIS;
    let mut batch = Vec::with_capacity(BATCH);
    for (s, (key, genesis)) in keys.iter().zip(&geneses).enumerate() {
        // A fresh replica per batch keeps memory flat; the entries are the same as with one.
        let mut replica = Replica::new(genesis.clone()).unwrap();
        for p in 0..per_subwiki {
            let time = Timestamp(T0 + 60_000 * (1 + (p * SUBWIKIS + s) as u64));
            let content = PostContent {
                title: format!("Post {p} of subwiki {s}"),
                body: body(s, p),
                ..PostContent::default()
            };
            let entry = replica.create_post(key, time, content).unwrap();
            entry_bytes += entry.bytes().len();
            batch.push(entry);
            if batch.len() == BATCH {
                store.put_entries(&batch).unwrap();
                batch.clear();
                replica = Replica::new(genesis.clone()).unwrap();
            }
        }
    }
    store.put_entries(&batch).unwrap();
    assert_eq!(store.len().unwrap(), posts + SUBWIKIS);
    drop(store);
    let marker_text = format!("{expected}entry_bytes={entry_bytes}\n");
    std::fs::write(&marker, &marker_text).unwrap();
    eprintln!(
        "built {} in {:.1} s: {}",
        dir.display(),
        started.elapsed().as_secs_f64(),
        describe(&dir, &marker_text)
    );
    (dir, ids)
}

/// The marker's contents and the store's size on disk, on one line.
fn describe(dir: &Path, marker: &str) -> String {
    fn size(path: &Path) -> u64 {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => std::fs::read_dir(path)
                .unwrap()
                .map(|e| size(&e.unwrap().path()))
                .sum(),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    format!(
        "{}, {} bytes on disk",
        marker.trim().replace('\n', ", "),
        size(&dir.join("db"))
    )
}

fn open_feed(db: &Path, subwikis: &[SubwikiId]) -> (SledStore, Vec<FeedKey>) {
    let store = SledStore::open(db).unwrap();
    let page = store.feed(subwikis, None, PAGE).unwrap();
    (store, page)
}

fn open_len_feed(db: &Path, subwikis: &[SubwikiId]) -> (SledStore, usize, Vec<FeedKey>) {
    let store = SledStore::open(db).unwrap();
    let len = store.len().unwrap();
    let page = store.feed(subwikis, None, PAGE).unwrap();
    (store, len, page)
}

fn bench_open(c: &mut Criterion) {
    let sizes = [(1_000, "store-1k", "1k"), (100_000, "store-100k", "100k")];
    let stores: Vec<_> = sizes
        .iter()
        .map(|&(posts, name, label)| (posts, label, store_with(posts, name)))
        .collect();
    let mut group = c.benchmark_group("store_open");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (posts, label, (dir, subwikis)) in &stores {
        let db = dir.join("db");
        let (_, len, page) = open_len_feed(&db, subwikis);
        assert_eq!(len, posts + SUBWIKIS);
        assert_eq!(page.len(), PAGE);
        // Opening and closing are timed apart: closing (sled's drop) is left out.
        group.bench_function(BenchmarkId::new("open", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let store = SledStore::open(&db).unwrap();
                    total += start.elapsed();
                    drop(black_box(store));
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new("open_feed", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let opened = open_feed(&db, subwikis);
                    total += start.elapsed();
                    drop(black_box(opened));
                }
                total
            });
        });
        group.bench_function(BenchmarkId::new("open_len_feed", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let opened = open_len_feed(&db, subwikis);
                    total += start.elapsed();
                    drop(black_box(opened));
                }
                total
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store_ops");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (_, label, (dir, _)) in &stores {
        let store = SledStore::open(&dir.join("db")).unwrap();
        group.bench_function(BenchmarkId::new("len", label), |b| {
            b.iter(|| store.len().unwrap());
        });
    }
    group.finish();
}

fn bench_feed(c: &mut Criterion) {
    let (dir, subwikis) = store_with(100_000, "store-100k");
    let store = SledStore::open(&dir.join("db")).unwrap();
    let middle = *store.feed(&subwikis, None, 50_000).unwrap().last().unwrap();
    let cursor = Some((middle.created_at, middle.post));
    let deep = store.feed(&subwikis, cursor, PAGE).unwrap();
    assert_eq!(deep.len(), PAGE);
    assert!(deep.iter().all(|k| k.created_at < middle.created_at));
    let first = store.feed(&subwikis, None, PAGE).unwrap();
    // Interleaved subwikis: the first page takes one post from each.
    assert_eq!(first.len(), PAGE);
    assert!(first.windows(2).all(|w| w[0] > w[1]));

    let mut group = c.benchmark_group("feed_100k");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("first_page_20_subwikis", |b| {
        b.iter(|| store.feed(black_box(&subwikis), None, PAGE).unwrap());
    });
    group.bench_function("deep_page_20_subwikis", |b| {
        b.iter(|| store.feed(black_box(&subwikis), cursor, PAGE).unwrap());
    });
    group.bench_function("first_page_1_subwiki", |b| {
        b.iter(|| store.feed(black_box(&subwikis[..1]), None, PAGE).unwrap());
    });
    group.finish();

    let mut group = c.benchmark_group("replica_load_5k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    let genesis = store.entry(&subwikis[0].into()).unwrap().unwrap();
    group.bench_function("load", |b| {
        b.iter(|| store.load(&subwikis[0]).unwrap());
    });
    group.bench_function("ingest", |b| {
        b.iter_batched(
            || store.load(&subwikis[0]).unwrap().entries,
            |entries| {
                let mut replica = Replica::new(genesis.clone()).unwrap();
                replica.ingest(entries);
                replica
            },
            BatchSize::PerIteration,
        );
    });
    // Reading one old post after that: its document is built on demand, alone.
    let old_post = store
        .feed(&subwikis[..1], None, 5_000)
        .unwrap()
        .last()
        .unwrap()
        .post;
    group.bench_function("ingest_then_one_post", |b| {
        b.iter_batched(
            || store.load(&subwikis[0]).unwrap().entries,
            |entries| {
                let mut replica = Replica::new(genesis.clone()).unwrap();
                replica.ingest(entries);
                assert!(replica.post(&old_post).is_some());
                replica
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("load_and_ingest", |b| {
        b.iter(|| {
            let loaded = store.load(&subwikis[0]).unwrap();
            assert!(loaded.corrupt.is_empty());
            let mut replica = Replica::new(genesis.clone()).unwrap();
            let report = replica.ingest(loaded.entries);
            assert!(report.rejected.is_empty());
            replica
        });
    });
    group.finish();
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Puts `entries` into a fresh store at `dir` in batches of `batch`; returns the time, the
/// syncs, and the disk bytes (allocated, apparent) once closed.
fn put_all(
    dir: &Path,
    options: Options,
    entries: &[Entry],
    batch: usize,
) -> (Duration, u64, (u64, u64)) {
    let _ = std::fs::remove_dir_all(dir);
    let store = SledStore::open_with(dir, options).unwrap();
    let started = Instant::now();
    for chunk in entries.chunks(batch) {
        store.put_entries(chunk).unwrap();
    }
    let took = started.elapsed();
    let syncs = store.syncs();
    assert_eq!(store.len().unwrap(), entries.len());
    drop(store);
    (took, syncs, realistic::disk_bytes(dir))
}

/// Single-entry writes of `entries` from `threads` threads at once; returns the time and syncs.
fn put_single(dir: &Path, entries: &[Entry], threads: usize) -> (Duration, u64) {
    let _ = std::fs::remove_dir_all(dir);
    let store = SledStore::open(dir).unwrap();
    let before = store.syncs();
    let per = entries.len().div_ceil(threads);
    let barrier = std::sync::Barrier::new(threads);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in entries.chunks(per) {
            let (store, barrier) = (store.clone(), &barrier);
            scope.spawn(move || {
                barrier.wait();
                for e in chunk {
                    store.put_entries(std::slice::from_ref(e)).unwrap();
                }
            });
        }
    });
    let took = started.elapsed();
    (took, store.syncs() - before)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Opens the store at `dir` `n` times; the median open time, then `len` and `count` after it.
fn time_open(dir: &Path, subwiki: &SubwikiId, n: usize) -> (Duration, Duration, usize) {
    let mut opens = Vec::new();
    let mut counts = Vec::new();
    let mut len = 0;
    for _ in 0..n {
        let started = Instant::now();
        let store = SledStore::open(dir).unwrap();
        opens.push(started.elapsed());
        let started = Instant::now();
        len = store.len().unwrap();
        black_box(store.count(subwiki).unwrap());
        counts.push(started.elapsed());
        drop(store);
    }
    (median(opens), median(counts), len)
}

fn bench_realistic(_c: &mut Criterion) {
    let posts: usize = std::env::var("AGORA_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sw = realistic::cached(1, posts);
    let entries = &sw.entries;
    let entry_bytes = sw.entry_bytes();
    let n = entries.len();
    println!(
        "\nrealistic subwiki: {} posts, {} comments, {} edits: {n} entries, {entry_bytes} bytes ({:.0} per entry)",
        sw.posts,
        sw.comments,
        sw.edits,
        entry_bytes as f64 / n as f64
    );
    let stored: Vec<_> = entries.iter().map(|e| (e.id(), e.bytes())).collect();
    let started = Instant::now();
    let reopened = agora_crdt::reopen(&stored);
    let verify = started.elapsed();
    assert!(reopened.iter().all(Result::is_ok));
    drop(reopened);
    let verify_rate = rate(n, verify);
    println!("| measurement | figure | against the baseline |\n|---|---:|---:|");
    println!(
        "| baseline: `agora_crdt::reopen` (decode + batched ed25519 verify) | {verify_rate:.0} entries/s ({:.2} s) | 1 |",
        verify.as_secs_f64()
    );
    let scratch = realistic::data_dir().join("scratch");
    let db = scratch.join("put");
    let mut default_disk = (0, 0);
    for batch in [1_000, 100] {
        let (took, syncs, disk) = put_all(&db, Options::default(), entries, batch);
        if batch == 1_000 {
            default_disk = disk;
        }
        let r = rate(n, took);
        println!(
            "| `put_entries`, batches of {batch} | {r:.0} entries/s ({:.2} s, {syncs} syncs, {:.0} syncs/s) | {:.2}× |",
            took.as_secs_f64(),
            syncs as f64 / took.as_secs_f64(),
            r / verify_rate
        );
        println!(
            "| disk after batches of {batch}: allocated (apparent) / entry bytes | {:.2}× ({:.2}×), {} MB | |",
            disk.0 as f64 / entry_bytes as f64,
            disk.1 as f64 / entry_bytes as f64,
            disk.0 / 1_000_000
        );
    }
    let single = &entries[..n.min(2_000)];
    let (one, one_syncs) = put_single(&db, single, 1);
    let (eight, eight_syncs) = put_single(&db, single, 8);
    println!(
        "| single-entry writes, 1 thread ({} writes) | {:.0} writes/s, {one_syncs} syncs, {:.0} syncs/s | |",
        single.len(),
        rate(single.len(), one),
        one_syncs as f64 / one.as_secs_f64()
    );
    println!(
        "| single-entry writes, 8 threads at once ({} writes) | {:.0} writes/s, {eight_syncs} syncs ({:.1} writes per sync), {:.0} syncs/s | {:.2}× the writes/s of 1 thread |",
        single.len(),
        rate(single.len(), eight),
        single.len() as f64 / eight_syncs as f64,
        eight_syncs as f64 / eight.as_secs_f64(),
        one.as_secs_f64() / eight.as_secs_f64()
    );
    // Disk use with other sled options (a fresh store each, batches of 1,000).
    for (label, options) in [
        (
            "segment_size 256 KiB",
            Options {
                segment_size: 256 * 1024,
                ..Options::default()
            },
        ),
        (
            "segment_size 2 MiB",
            Options {
                segment_size: 2 * 1024 * 1024,
                ..Options::default()
            },
        ),
    ] {
        let (_, _, disk) = put_all(&db, options, entries, 1_000);
        println!(
            "| disk with {label}: allocated (apparent) / entry bytes | {:.2}× ({:.2}×) | {:.2}× the default's |",
            disk.0 as f64 / entry_bytes as f64,
            disk.1 as f64 / entry_bytes as f64,
            disk.0 as f64 / default_disk.0 as f64
        );
    }
    let (_, _, _) = put_all(&db, Options::default(), entries, 1_000);
    let (open, len_count, len) = time_open(&db, &sw.id, 11);
    assert_eq!(len, n);
    println!(
        "| `SledStore::open` at {n} entries (warm, median of 11) | {:.2} ms | |",
        open.as_secs_f64() * 1e3
    );
    println!(
        "| `len` + `count` right after open | {:.1} µs | |",
        len_count.as_secs_f64() * 1e6
    );
    if env_flag("AGORA_BENCH_1M") {
        let dir = realistic::data_dir().join("store-1m");
        let marker = dir.join("complete");
        let target = 1_000_000;
        if std::fs::read_to_string(&marker).ok().as_deref() != Some("v1\n") {
            let _ = std::fs::remove_dir_all(&dir);
            let started = Instant::now();
            let store = SledStore::open(&dir.join("db")).unwrap();
            for chunk in entries.chunks(1_000) {
                store.put_entries(chunk).unwrap();
            }
            let keys = realistic::authors();
            let mut rng = realistic::Rng::new(2);
            let posts: Vec<DocId> = entries
                .iter()
                .filter(|e| matches!(e.payload(), Payload::CreateDocument(c) if c.kind == DocKind::Post))
                .map(|e| e.id().into())
                .collect();
            let mut batch = Vec::with_capacity(1_000);
            let mut made = entries.len();
            while made < target {
                let vote = Vote {
                    target: VoteTarget::Post(posts[rng.below(posts.len())]),
                    value: VoteValue::Keep,
                    reason: realistic::text(&mut rng, 600),
                };
                let e = Entry::sign(
                    &keys[rng.below(keys.len())],
                    Some(sw.id),
                    Timestamp(realistic::T0 + 1_000 * made as u64),
                    Payload::Vote(vote),
                )
                .unwrap();
                batch.push(e);
                made += 1;
                if batch.len() == 1_000 {
                    store.put_entries(&batch).unwrap();
                    batch.clear();
                }
            }
            store.put_entries(&batch).unwrap();
            drop(store);
            std::fs::write(&marker, "v1\n").unwrap();
            eprintln!(
                "built {} in {:.0} s",
                dir.display(),
                started.elapsed().as_secs_f64()
            );
        }
        let (open, len_count, len) = time_open(&dir.join("db"), &sw.id, 5);
        let disk = realistic::disk_bytes(&dir.join("db"));
        println!(
            "| `SledStore::open` at {len} entries (warm, median of 5) | {:.1} ms ({} MB on disk) | {:.1}× the open at {n} |",
            open.as_secs_f64() * 1e3,
            disk.0 / 1_000_000,
            open.as_secs_f64() / time_open(&db, &sw.id, 5).0.as_secs_f64()
        );
        println!(
            "| `len` + `count` right after open, {len} entries | {:.1} µs | |",
            len_count.as_secs_f64() * 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if env_flag("AGORA_BENCH_REALISTIC_ONLY") {
        std::process::exit(0);
    }
}

criterion_group!(benches, bench_realistic, bench_open, bench_feed);
criterion_main!(benches);
