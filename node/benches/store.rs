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
//!   time it needs it after starting (`Core::with_replica` in `api.rs`): to accept entries
//!   from a peer, to write one, or to show a post whose rendered view is not stored.
//!   `ingest_from_snapshots` is the same ingest with each document starting from its saved
//!   Automerge snapshot, as the node does since it writes them ([`Replica::ingest_with_snapshots`]).
//!   `load` reads entries back with [`agora_crdt::reopen`] (no signature check).

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

use agora_crdt::{AuthorKey, Entry, Policy, PostContent, Replica, SubwikiId, Timestamp};
use agora_node::store::{FeedKey, SledStore, Store};
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};

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
    // What a reopened node does: the same entries, each document starting from its saved
    // snapshot (held in memory here; reading them from sled is one get per document).
    let snapshots: std::collections::HashMap<_, _> = {
        let mut replica = Replica::new(genesis.clone()).unwrap();
        replica.ingest(store.load(&subwikis[0]).unwrap().entries);
        replica
            .doc_ids()
            .into_iter()
            .map(|d| (d, replica.save_document(&d).unwrap()))
            .collect()
    };
    group.bench_function("ingest_from_snapshots", |b| {
        b.iter_batched(
            || store.load(&subwikis[0]).unwrap().entries,
            |entries| {
                let mut replica = Replica::new(genesis.clone()).unwrap();
                let report = replica.ingest_with_snapshots(entries, |d| snapshots.get(d).cloned());
                assert_eq!(report.from_snapshots, snapshots.len());
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

criterion_group!(benches, bench_open, bench_feed);
criterion_main!(benches);
