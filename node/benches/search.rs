//! What full-text search costs a node holding a real community: indexing its posts, the size of
//! the index, the latency of a search, and what the indexer adds to ingest.
//!
//! ```sh
//! cargo bench -p agora-node --bench search                      # 100,000 posts
//! AGORA_BENCH_POSTS=10000 cargo bench -p agora-node --bench search
//! ```
//!
//! Data: the generated realistic subwiki (`support/realistic.rs`: `AGORA_BENCH_POSTS` posts,
//! 100,000 by default, a title of ~40 and a body of ~600 characters, a quarter with comments,
//! a tenth edited), cached under `target/bench-data/`. Each run builds two fresh homes under
//! `target/bench-data/search-<posts>/` (sled stores, as `agora` opens them) and prints one
//! Markdown table for `docs/performance.md`, every figure from this run:
//!
//! - **ingest**, the baseline: every entry taken as from a peer (`Node::accept_from_peer`, in
//!   batches of 500 as catch-up brings them) by a running node whose search index is off
//!   (`Config::search = false`), in entries per second;
//! - the same ingest by a node whose indexer runs (the default): entries per second, and the
//!   ratio to the baseline (what the indexer's work, on the same two cores, costs ingest);
//!   then the time until every post is searchable;
//! - **indexing from the store**: `Node::rebuild_search` on the baseline's home, opened
//!   offline, whose posts' views were never rendered (the rebuild renders them, building each
//!   post's document); then again, with the views kept (the index's own cost); posts per
//!   second and the time against the ingest's;
//! - **index size** on disk against the entries' own bytes (and the store's size);
//! - **query latency**, median and 99th percentile, on the running node holding every post:
//!   single words taken from random posts' bodies, two such words (both must appear), a
//!   phrase of two adjacent words of a body, a prefix (the first three letters of a word and
//!   `*`), and single words newest first; 200 queries of each kind, 20 hits each (the views
//!   of the hits read as the API does). The baseline is the first feed page (20 posts) of the
//!   same node, read the same number of times.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "support/realistic.rs"]
mod realistic;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_crdt::{DocId, DocKind, Payload};
use agora_node::home::Home;
use agora_node::store::{SledStore, Store};
use agora_node::{Config, Node, SearchQuery};

/// Entries per `accept_from_peer` call.
const BATCH: usize = 500;
/// Queries of each kind.
const QUERIES: usize = 200;
/// How long the indexer may take to catch up before the bench gives up.
const CATCH_UP_GUARD: Duration = Duration::from_secs(3600);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A running node on a fresh sled store in `home`, with its search index on or off.
fn start(rt: &tokio::runtime::Runtime, home: &Path, search: bool) -> Node {
    let identity = Home::new(home).load_or_init().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&Home::new(home).store()).unwrap());
    let mut config = Config::new(home);
    config.listen = Vec::new();
    config.mdns = false;
    config.search = search;
    rt.block_on(Node::start_with(store, identity, &config))
        .unwrap()
}

/// Ingests every entry as from a peer; returns the time it took.
fn ingest(rt: &tokio::runtime::Runtime, node: &Node, sw: &realistic::Subwiki) -> Duration {
    rt.block_on(node.join(sw.id, Vec::new())).unwrap();
    let started = Instant::now();
    for batch in sw.entries.chunks(BATCH) {
        let accepted = node.accept_from_peer(sw.id, batch.to_vec()).unwrap();
        assert!(
            accepted.refused.is_empty(),
            "{:?}",
            accepted.refused.first()
        );
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Times `run` on each query; returns the sorted latencies and the hits found in all.
fn time_queries(node: &Node, queries: &[SearchQuery]) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(queries.len());
    let mut hits = 0;
    for q in queries {
        let started = Instant::now();
        hits += node.search(q).unwrap().len();
        times.push(started.elapsed());
    }
    times.sort();
    (times, hits)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that is not ours means another bench.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && !"search".contains(a.as_str()))
    {
        return;
    }
    let posts: usize = std::env::var("AGORA_BENCH_POSTS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(100_000);
    let sw = realistic::cached(1, posts);
    let entry_bytes = sw.entry_bytes();
    let dir = realistic::data_dir().join(format!("search-{posts}"));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = runtime();
    eprintln!(
        "{} entries ({} posts, {} comments, {} edits), {} bytes",
        sw.entries.len(),
        sw.posts,
        sw.comments,
        sw.edits,
        entry_bytes
    );

    // Ingest with the index off: the baseline.
    let plain_home = dir.join("plain");
    let plain = start(&rt, &plain_home, false);
    let plain_took = ingest(&rt, &plain, &sw);
    rt.block_on(plain.shutdown());
    drop(plain);
    eprintln!("ingest without the index: {plain_took:?}");

    // Ingest with the indexer running, then until every post is searchable.
    let indexed_home = dir.join("indexed");
    let node = start(&rt, &indexed_home, true);
    let mut batches = node.search_commits();
    let started = Instant::now();
    let indexed_took = ingest(&rt, &node, &sw);
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + CATCH_UP_GUARD;
        while node.search_indexed() < sw.posts as u64 {
            tokio::time::timeout_at(deadline, batches.changed())
                .await
                .expect("the index caught up in time")
                .unwrap();
        }
    });
    let searchable = started.elapsed();
    eprintln!("ingest with the index: {indexed_took:?}, all searchable after {searchable:?}");
    let (index_disk, _) = realistic::disk_bytes(&indexed_home.join("search"));
    let (store_disk, _) = realistic::disk_bytes(&Home::new(&indexed_home).store());

    // Query latency on the running node, against its first feed page.
    let post_ids: Vec<DocId> = sw
        .entries
        .iter()
        .filter(|e| matches!(e.payload(), Payload::CreateDocument(c) if c.kind == DocKind::Post))
        .map(|e| DocId::from(e.id()))
        .collect();
    let mut rng = realistic::Rng::new(7);
    let words_of = |rng: &mut realistic::Rng| -> Vec<String> {
        let id = post_ids[rng.below(post_ids.len())];
        node.post(id)
            .unwrap()
            .post
            .content
            .body
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_lowercase)
            .collect()
    };
    let mut kinds: Vec<(&str, Vec<SearchQuery>)> = Vec::new();
    let mut make = |name, rng: &mut realistic::Rng, f: &mut dyn FnMut(&[String]) -> SearchQuery| {
        let queries = (0..QUERIES)
            .map(|_| {
                let words = words_of(rng);
                f(&words)
            })
            .collect();
        kinds.push((name, queries));
    };
    let pick = |w: &[String], i: usize| w[i % w.len()].clone();
    make("one word", &mut rng, &mut |w| SearchQuery::new(pick(w, 1)));
    make("two words", &mut rng, &mut |w| {
        SearchQuery::new(format!("{} {}", pick(w, 0), pick(w, w.len() / 2)))
    });
    make("a phrase of two words", &mut rng, &mut |w| {
        SearchQuery::new(format!("\"{} {}\"", pick(w, 2), pick(w, 3)))
    });
    make("a prefix (3 letters*)", &mut rng, &mut |w| {
        let word = pick(w, 4);
        SearchQuery::new(format!("{}*", &word[..3.min(word.len())]))
    });
    make("one word, newest first", &mut rng, &mut |w| {
        let mut q = SearchQuery::new(pick(w, 5));
        q.newest = true;
        q
    });
    let mut feed_times: Vec<Duration> = (0..QUERIES)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(node.feed(None, None, 20).unwrap().len(), 20);
            started.elapsed()
        })
        .collect();
    feed_times.sort();
    let feed_median = percentile(&feed_times, 0.5);
    let mut latency_rows = Vec::new();
    let mut all = Vec::new();
    for (name, queries) in &kinds {
        let (times, hits) = time_queries(&node, queries);
        all.extend_from_slice(&times);
        latency_rows.push(format!(
            "| {name} | {} | {} | {:.1} | {:.1}× |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            hits as f64 / queries.len() as f64,
            percentile(&times, 0.5).as_secs_f64() / feed_median.as_secs_f64()
        ));
    }
    all.sort();
    rt.block_on(node.shutdown());
    drop(node);

    // Indexing from the store: the baseline's home (views never rendered), then again.
    let offline = Node::open_offline(&plain_home).unwrap();
    let started = Instant::now();
    let held = offline.rebuild_search().unwrap();
    let cold = started.elapsed();
    assert_eq!(held, sw.posts as u64);
    let started = Instant::now();
    offline.rebuild_search().unwrap();
    let warm = started.elapsed();
    rt.block_on(offline.shutdown());
    eprintln!("rebuild: {cold:?} (views rendered), {warm:?} (views kept)");

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let entries = sw.entries.len();
    println!();
    println!(
        "| {} posts ({} entries, {:.0} MB of entries) | figure | against the baseline |",
        sw.posts,
        entries,
        entry_bytes as f64 / 1e6
    );
    println!("|---|---:|---:|");
    println!(
        "| baseline: ingest, index off (`accept_from_peer`, batches of {BATCH}) | {:.0} entries/s ({:.1} s) | 1 |",
        rate(entries, plain_took),
        plain_took.as_secs_f64()
    );
    println!(
        "| ingest, indexer running | {:.0} entries/s ({:.1} s) | **{:.2}×** the time |",
        rate(entries, indexed_took),
        indexed_took.as_secs_f64(),
        indexed_took.as_secs_f64() / plain_took.as_secs_f64()
    );
    println!(
        "| every post searchable, from the ingest's start | {:.1} s | {:.2}× |",
        searchable.as_secs_f64(),
        searchable.as_secs_f64() / plain_took.as_secs_f64()
    );
    println!(
        "| index built from the store, views rendered on the way (`rebuild_search`) | {:.0} posts/s ({:.1} s) | {:.2}× |",
        rate(sw.posts, cold),
        cold.as_secs_f64(),
        cold.as_secs_f64() / plain_took.as_secs_f64()
    );
    println!(
        "| index built again, views kept | {:.0} posts/s ({:.1} s) | {:.2}× |",
        rate(sw.posts, warm),
        warm.as_secs_f64(),
        warm.as_secs_f64() / plain_took.as_secs_f64()
    );
    println!(
        "| index on disk / entry bytes | {:.1} MB | **{:.2}×** (store: {:.2}×) |",
        index_disk as f64 / 1e6,
        index_disk as f64 / entry_bytes as f64,
        store_disk as f64 / entry_bytes as f64
    );
    println!();
    println!(
        "| query over {} posts, {QUERIES} of each | median | 99th percentile | hits per query | median against the feed |",
        sw.posts
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| baseline: first feed page (20 posts) | {} | {} | 20 | 1 |",
        ms(feed_median),
        ms(percentile(&feed_times, 0.99))
    );
    for row in latency_rows {
        println!("{row}");
    }
    println!(
        "| all {} queries | {} | {} | | {:.1}× |",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        percentile(&all, 0.5).as_secs_f64() / feed_median.as_secs_f64()
    );
}
