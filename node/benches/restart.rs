//! A node holding a real community, restarted: what the first things a person or a peer asks
//! cost, and how much memory it holds.
//!
//! ```sh
//! AGORA_BENCH_POSTS=100000 cargo bench -p agora-node --bench restart
//! AGORA_BENCH_SUBWIKIS=20 AGORA_BENCH_POSTS=5000 cargo bench -p agora-node --bench restart
//! ```
//!
//! `AGORA_BENCH_SUBWIKIS` subwikis (1 by default) of `AGORA_BENCH_POSTS` posts each. Before the
//! restart, the node is opened once and its first feed page read (timed: that renders and keeps
//! the page's views and the moderation summaries, as any use of the node does), so the
//! restart is that of a node that has been used.
//!
//! The bench generates a realistic subwiki (`support/realistic.rs`, `AGORA_BENCH_POSTS` posts,
//! 10,000 by default), builds a node's home holding it under `target/bench-data/`, and then,
//! in a child process of its own (so that the figures are the node's, not the generator's):
//!
//! - opens the node offline (store, identity) as `agora` does;
//! - the first feed page (20 posts), the first `post show` of the oldest post, its history
//!   (which builds its document), the first edit of it, and the first entry accepted from a
//!   peer (a new post by another author, through the same path as gossip and catch-up);
//! - the resident memory (VmRSS) after those, after showing 1,000 old posts, and after reading
//!   the history of 1,000 old posts (each builds a document, kept in the bounded cache).
//!
//! The baselines, measured in the same run: `SledStore::open` of the same store alone, and
//! `agora_crdt::reopen` of every entry (decode and batched signature check) for the import.
//! The import of the export file into a fresh home is timed too (entries/s against that
//! baseline). Figures are printed as a Markdown table for `docs/performance.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "support/realistic.rs"]
mod realistic;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agora_crdt::{Base, DocId, PostContent, Replica, Timestamp};
use agora_node::Node;
use agora_node::home::Home;
use agora_node::store::{SledStore, Store, SubwikiRecord};

/// Read from the child's environment: the home to restart.
const CHILD_HOME: &str = "AGORA_BENCH_RESTART_HOME";

fn main() {
    if let Ok(home) = std::env::var(CHILD_HOME) {
        child(Path::new(&home));
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument that is not ours means another bench.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "restart")
    {
        return;
    }
    let posts: usize = std::env::var("AGORA_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let count: u64 = std::env::var("AGORA_BENCH_SUBWIKIS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let all: Vec<realistic::Subwiki> = (1..=count)
        .map(|seed| realistic::cached(seed, posts))
        .collect();
    let sw = &all[0];
    let n: usize = all.iter().map(|s| s.entries.len()).sum();
    let entry_bytes: usize = all.iter().map(realistic::Subwiki::entry_bytes).sum();
    println!(
        "\nrestart: a node holding {count} realistic subwiki(s) of {posts} posts ({} comments, {} edits in all; {n} entries, {entry_bytes} bytes)",
        all.iter().map(|s| s.comments).sum::<usize>(),
        all.iter().map(|s| s.edits).sum::<usize>(),
    );
    let stored: Vec<_> = all
        .iter()
        .flat_map(|s| s.entries.iter())
        .map(|e| (e.id(), e.bytes()))
        .collect();
    let started = Instant::now();
    assert!(agora_crdt::reopen(&stored).iter().all(Result::is_ok));
    let verify = started.elapsed();
    drop(stored);

    let dir = realistic::data_dir().join(format!("restart-{count}x{posts}"));
    let home = dir.join("home");
    // A fresh home every run: the child edits it.
    {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&home).unwrap();
        let store = SledStore::open(&Home::new(&home).store()).unwrap();
        for s in &all {
            for chunk in s.entries.chunks(1_000) {
                store.put_entries(chunk).unwrap();
            }
            store
                .set_subwiki(SubwikiRecord {
                    id: s.id,
                    joined: true,
                })
                .unwrap();
        }
        drop(store);
    }

    // Import of the (first) subwiki into a fresh home, as `agora import` does.
    let export = dir.join("subwiki.agora");
    std::fs::write(&export, agora_node::export::encode(&sw.entries)).unwrap();
    let fresh = dir.join("imported");
    let _ = std::fs::remove_dir_all(&fresh);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Meanwhile, every 100 ms, the owner reads the feed and the status: the worst answer.
    let (import, worst_read) = runtime.block_on(async {
        let node = Node::open_offline(&fresh).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probe = {
            let node = node.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let reader = node.clone();
                    let started = Instant::now();
                    let _ = tokio::task::spawn_blocking(move || {
                        let _ = reader.subwikis();
                        reader.feed(None, None, 20)
                    })
                    .await;
                    worst = worst.max(started.elapsed());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                worst
            })
        };
        let started = Instant::now();
        let (_, accepted) = node.import(&export).await.unwrap();
        let took = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(accepted.new.len(), sw.entries.len());
        (took, probe.await.unwrap())
    });
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_file(&export);

    // The node used once: its first feed page read, which renders and keeps its views.
    let first_use = runtime.block_on(async {
        let node = Node::open_offline(&home).unwrap();
        let started = Instant::now();
        assert_eq!(node.feed(None, None, 20).unwrap().len(), 20);
        let took = started.elapsed();
        node.shutdown().await;
        took
    });

    // A post made by another author, as a peer would send it.
    let genesis = sw.entries[0].clone();
    let mut replica = Replica::new(genesis).unwrap();
    let newest = sw.entries.iter().map(|e| e.timestamp().0).max().unwrap();
    let peer_post = replica
        .create_post(
            &realistic::authors()[1],
            Timestamp(newest + 1_000),
            PostContent {
                title: "A new post from a peer".into(),
                body: "It arrives right after the restart.".into(),
                ..Default::default()
            },
        )
        .unwrap();
    std::fs::write(
        dir.join("peer-entry.agora"),
        agora_node::export::encode(&[replica.genesis_entry().clone(), peer_post]),
    )
    .unwrap();

    // The posts, oldest first, for the child to read (it must not page the whole feed to find
    // them: that would render every post).
    let mut posts: Vec<(Timestamp, DocId)> = all
        .iter()
        .flat_map(|s| s.entries.iter())
        .filter(|e| {
            matches!(e.payload(), agora_crdt::Payload::CreateDocument(c) if c.kind == agora_crdt::DocKind::Post)
        })
        .map(|e| (e.timestamp(), DocId::from(e.id())))
        .collect();
    posts.sort();
    let list: Vec<String> = posts.iter().map(|(_, id)| id.to_string()).collect();
    std::fs::write(dir.join("posts.txt"), list.join("\n")).unwrap();

    // The node's figures, from a process of its own.
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_HOME, &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = String::from_utf8_lossy(&out.stdout);
    println!("| measurement | figure | against the baseline |\n|---|---:|---:|");
    println!(
        "| baseline: `agora_crdt::reopen` of every entry | {:.0} entries/s | 1 |",
        rate(n, verify)
    );
    let imported = sw.entries.len();
    println!(
        "| `Node::import` of the (first) subwiki's export file into a fresh home | {:.0} entries/s ({:.1} s) | {:.2}× |",
        rate(imported, import),
        import.as_secs_f64(),
        rate(imported, import) / rate(n, verify)
    );
    println!(
        "| worst status + feed read (20 posts) while the import runs, every 100 ms | {} | |",
        ms(worst_read)
    );
    println!(
        "| before the restart: first feed page of the node never used (loads the indexes, renders 20 posts) | {} | |",
        ms(first_use)
    );
    print!("{child}");
    let _ = std::fs::remove_file(dir.join("peer-entry.agora"));
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

/// Resident memory of this process, in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1_000.0)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

/// The restarted node: prints table rows.
fn child(home: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store_dir: PathBuf = Home::new(home).store();
        let (store, open_store) = timed(|| SledStore::open(&store_dir).unwrap());
        drop(store);
        let (node, open) = timed(|| Node::open_offline(home).unwrap());
        let baseline = open_store.max(Duration::from_micros(1));
        let row = |what: &str, took: Duration| {
            println!(
                "| {what} | {} | {:.2}× |",
                ms(took),
                took.as_secs_f64() / baseline.as_secs_f64()
            );
        };
        println!(
            "| baseline: `SledStore::open` of the home's store (warm) | {} | 1 |",
            ms(open_store)
        );
        row("`Node::open_offline` (store, identity)", open);
        let (page, first_page) = timed(|| node.feed(None, None, 20).unwrap());
        assert_eq!(page.len(), 20);
        row(
            "first feed page (20 posts; views kept from before)",
            first_page,
        );
        // The posts, oldest first, as the parent listed them.
        let list = std::fs::read_to_string(home.parent().unwrap().join("posts.txt")).unwrap();
        let old: Vec<DocId> = list.lines().map(|l| l.parse().unwrap()).collect();
        let oldest = old[0];
        let (_, show) = timed(|| node.post(oldest).unwrap());
        row(
            "first `post show` of the oldest post (loads its subwiki's index, renders it)",
            show,
        );
        let (_, history) = timed(|| node.history(oldest).unwrap());
        row("its history (builds the one document)", history);
        let current = node.post(oldest).unwrap().post.content;
        let edited = PostContent {
            body: format!("{}\n\nEdited after the restart.", current.body),
            ..current
        };
        let (_, edit) = {
            let started = Instant::now();
            node.edit_post(oldest, Base::Latest, edited).await.unwrap();
            ((), started.elapsed())
        };
        row("first edit of it", edit);
        let peer_file = home.parent().unwrap().join("peer-entry.agora");
        let started = Instant::now();
        let (_, accepted) = node.import(&peer_file).await.unwrap();
        let peer = started.elapsed();
        assert_eq!(accepted.new.len(), 1);
        row("first entry accepted from a peer (a new post)", peer);
        println!(
            "| RSS after the restart and the above | {:.0} MB | |",
            rss_mb()
        );
        let sample: Vec<DocId> = old
            .iter()
            .step_by((old.len() / 1_000).max(1))
            .take(1_000)
            .copied()
            .collect();
        let (_, shown) = timed(|| {
            for id in &sample {
                node.post(*id).unwrap();
            }
        });
        println!(
            "| `post show` of 1,000 old posts | {} per post | |",
            ms(shown / sample.len().max(1) as u32)
        );
        println!("| RSS after showing them | {:.0} MB | |", rss_mb());
        let (_, built) = timed(|| {
            for id in &sample {
                node.history(*id).unwrap();
            }
        });
        println!(
            "| history of 1,000 old posts (each builds its document) | {} per post | |",
            ms(built / sample.len().max(1) as u32)
        );
        println!(
            "| RSS after reading their histories | {:.0} MB | |",
            rss_mb()
        );
        // The web UI's pages, served by the node's router in process (no socket): the server
        // time of each, and its size with the page's two assets.
        let router = agora_node::http::router(node.clone(), 7130, "t".into());
        let link = node.sessions().new_link().unwrap();
        let session = node.sessions().log_in(&link).unwrap();
        let mut assets = 0;
        for path in ["/assets/app.css", "/assets/app.js"] {
            assets += timed_page(&router, path, &session).await.1;
        }
        let post_path = format!("/post/{oldest}");
        let history_path = format!("/post/{oldest}/history");
        for (what, path) in [
            ("first feed page", "/feed"),
            ("feed page again", "/feed"),
            ("post page (the oldest post)", post_path.as_str()),
            ("history page (the oldest post)", history_path.as_str()),
        ] {
            let (took, bytes) = timed_page(&router, path, &session).await;
            println!(
                "| web UI: {what} | {} server time, {:.1} KB with its assets | |",
                ms(took),
                (bytes + assets) as f64 / 1_000.0
            );
        }
        let (_, closed) = {
            let started = Instant::now();
            node.shutdown().await;
            drop(node);
            ((), started.elapsed())
        };
        row("shutdown (offline node)", closed);
    });
}

/// Serves one GET of the web UI through `router`; its status must be 200. Returns the time and
/// the body's size.
async fn timed_page(router: &axum::Router, path: &str, session: &str) -> (Duration, usize) {
    use tower::Service;
    let request = axum::http::Request::builder()
        .uri(path)
        .header("host", "127.0.0.1:7130")
        .header("cookie", format!("agora_session={session}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let started = Instant::now();
    let response = router.clone().call(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let took = started.elapsed();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    (took, body.len())
}
