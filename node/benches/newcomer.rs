//! A newcomer joins a real community: how soon it shows the newest posts, how soon it holds
//! everything, what it downloads and how much memory it takes, from one holder and from three;
//! and whether the newcomer and the holders keep answering meanwhile.
//!
//! ```sh
//! AGORA_BENCH_POSTS=100000 cargo bench -p agora-node --bench newcomer
//! ```
//!
//! The bench generates a realistic subwiki (`support/realistic.rs`, `AGORA_BENCH_POSTS` posts,
//! 10,000 by default) and stores it in the homes of three holders under `target/bench-data/`.
//! For one holder and then for three, it starts the holders as real nodes on loopback TCP in
//! this process, and the newcomer, a real node with an empty home, in a child process of its
//! own (so that its memory is its own). The newcomer joins the subwiki by id, dialing the
//! holders, and measures from the join:
//!
//! - the time until its feed's first page is the subwiki's 20 newest posts;
//! - the time until it holds every entry, and the rate against the baseline below;
//! - the bytes its catch-up sessions received against the entries' own bytes;
//! - its peak resident memory (VmHWM);
//! - every 100 ms meanwhile, the time its network task takes to answer (`Node::peers`, the
//!   path of `agora peers`) and the time a feed read takes (`Node::feed`, the path of
//!   `agora feed`): the worst of each.
//!
//! The parent meanwhile asks the first holder's network task the same way, every 100 ms: the
//! worst answer while it serves the newcomer.
//!
//! Baseline, measured in the same run: `agora_crdt::reopen` of every entry (decode and batched
//! signature check), the rate at which the entries could at best be checked.

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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_crdt::{DocId, SubwikiId, Timestamp};
use agora_node::home::Home;
use agora_node::store::{SledStore, Store, SubwikiRecord};
use agora_node::{Config, Node};
use libp2p::Multiaddr;

/// Read from the child's environment: the run's folder.
const CHILD_DIR: &str = "AGORA_BENCH_NEWCOMER_DIR";
/// How many posts the newest page shows.
const PAGE: usize = 20;
/// How often the probes ask.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The most a run may take.
const GUARD: Duration = Duration::from_secs(1_800);

fn main() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(Path::new(&dir));
        return;
    }
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "newcomer")
    {
        return;
    }
    let posts: usize = std::env::var("AGORA_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sw = realistic::cached(1, posts);
    let n = sw.entries.len();
    let entry_bytes = sw.entry_bytes();
    println!(
        "\nnewcomer: one realistic subwiki of {} posts, {} comments, {} edits ({n} entries, {entry_bytes} bytes)",
        sw.posts, sw.comments, sw.edits
    );
    let stored: Vec<_> = sw.entries.iter().map(|e| (e.id(), e.bytes())).collect();
    let started = Instant::now();
    assert!(agora_crdt::reopen(&stored).iter().all(Result::is_ok));
    let verify = started.elapsed();
    drop(stored);
    let verify_rate = n as f64 / verify.as_secs_f64();

    let dir = realistic::data_dir().join(format!("newcomer-{posts}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let holders: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("holder{i}"))).collect();
    for home in &holders {
        std::fs::create_dir_all(home).unwrap();
        let store = SledStore::open(&Home::new(home).store()).unwrap();
        for chunk in sw.entries.chunks(1_000) {
            store.put_entries(chunk).unwrap();
        }
        store
            .set_subwiki(SubwikiRecord {
                id: sw.id,
                joined: true,
            })
            .unwrap();
    }
    // The newest page the newcomer must show: posts by creation time, newest first (ties by id).
    let mut newest: Vec<(Timestamp, DocId)> = sw
        .entries
        .iter()
        .filter(|e| {
            matches!(e.payload(), agora_crdt::Payload::CreateDocument(c) if c.kind == agora_crdt::DocKind::Post)
        })
        .map(|e| (e.timestamp(), DocId::from(e.id())))
        .collect();
    newest.sort_by(|a, b| b.cmp(a));
    let page: Vec<String> = newest
        .iter()
        .take(PAGE)
        .map(|(_, id)| id.to_string())
        .collect();
    std::fs::write(dir.join("page.txt"), page.join("\n")).unwrap();
    std::fs::write(
        dir.join("subwiki.txt"),
        format!("{}\n{n}\n{entry_bytes}\n{verify_rate}", sw.id),
    )
    .unwrap();

    println!(
        "| measurement | 1 holder | 3 holders |\n|---|---:|---:|\n| baseline: `agora_crdt::reopen` of every entry | {verify_rate:.0} entries/s | |"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut columns = Vec::new();
    for count in [1, 3] {
        let (rows, worst_holder) = runtime.block_on(run(&dir, &holders[..count]));
        columns.push((rows, worst_holder));
    }
    let (one, three) = (&columns[0], &columns[1]);
    for (i, (what, a)) in one.0.iter().enumerate() {
        let b = three.0.get(i).map_or("", |(_, b)| b.as_str());
        println!("| {what} | {a} | {b} |");
    }
    println!(
        "| worst answer of the (first) holder's network task while serving | {} | {} |",
        ms(one.1),
        ms(three.1)
    );
}

/// One run: the holders in this process, the newcomer in a child. Returns the child's rows and
/// the first holder's worst network-task answer.
async fn run(dir: &Path, holders: &[PathBuf]) -> (Vec<(String, String)>, Duration) {
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for home in holders {
        let node = Node::start(config(home)).await.unwrap();
        let addr = node
            .listen_addrs()
            .await
            .into_iter()
            .find(|a| a.to_string().starts_with("/ip4/127.0.0.1/tcp/"))
            .unwrap();
        addrs.push(format!("{addr}/p2p/{}", node.peer_id()));
        nodes.push(node);
    }
    let home = dir.join("newcomer");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::write(dir.join("holders.txt"), addrs.join("\n")).unwrap();
    // Probe the first holder while the child runs.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let holder = nodes[0].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let _ = holder.peers().await;
                worst = worst.max(started.elapsed());
                tokio::time::sleep(PROBE_EVERY).await;
            }
            worst
        })
    };
    let exe = std::env::current_exe().unwrap();
    let dir_arg = dir.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(exe).env(CHILD_DIR, &dir_arg).output().unwrap()
    })
    .await
    .unwrap();
    done.store(true, Ordering::Relaxed);
    let worst_holder = probe.await.unwrap();
    assert!(
        out.status.success(),
        "newcomer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in &nodes {
        node.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&home);
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    (rows, worst_holder)
}

fn config(home: &Path) -> Config {
    let mut config = Config::new(home);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.mdns = false;
    config.bootstrap = Vec::new();
    config
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A line of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1_000.0)
}

fn entries(node: &Node, subwiki: SubwikiId) -> usize {
    node.subwikis()
        .unwrap()
        .iter()
        .find(|s| s.id == subwiki)
        .map_or(0, |s| s.entries)
}

/// The newcomer: prints `what\tfigure` lines.
fn child(dir: &Path) {
    let info = std::fs::read_to_string(dir.join("subwiki.txt")).unwrap();
    let mut lines = info.lines();
    let subwiki: SubwikiId = lines.next().unwrap().parse().unwrap();
    let n: usize = lines.next().unwrap().parse().unwrap();
    let entry_bytes: f64 = lines.next().unwrap().parse().unwrap();
    let verify_rate: f64 = lines.next().unwrap().parse().unwrap();
    let page: Vec<DocId> = std::fs::read_to_string(dir.join("page.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let holders: Vec<Multiaddr> = std::fs::read_to_string(dir.join("holders.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let home = dir.join("newcomer");
        let node = Node::start(config(&home)).await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        // Probes: the network task (`agora peers`) and a feed read (`agora feed`).
        let probe = {
            let node = node.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let (mut network, mut feed) = (Duration::ZERO, Duration::ZERO);
                while !done.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let _ = node.peers().await;
                    network = network.max(started.elapsed());
                    let started = Instant::now();
                    let reader = node.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || reader.feed(Some(subwiki), None, PAGE))
                            .await;
                    feed = feed.max(started.elapsed());
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                (network, feed)
            })
        };
        let started = Instant::now();
        node.join(subwiki, holders).await.unwrap();
        let mut changes = node.changes();
        let mut newest_page = None;
        let everything = loop {
            if newest_page.is_none() {
                let shown: Vec<DocId> = node
                    .feed(Some(subwiki), None, PAGE)
                    .map(|items| items.iter().map(|i| i.post.meta.id).collect())
                    .unwrap_or_default();
                if shown == page {
                    newest_page = Some(started.elapsed());
                }
            }
            if entries(&node, subwiki) >= n {
                break started.elapsed();
            }
            assert!(started.elapsed() < GUARD, "the newcomer did not catch up");
            let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
        };
        let newest_page = newest_page.unwrap_or(everything);
        done.store(true, Ordering::Relaxed);
        let (network, feed) = probe.await.unwrap();
        let status = node
            .sync_status()
            .get(&subwiki)
            .cloned()
            .unwrap_or_default();
        let rate = n as f64 / everything.as_secs_f64();
        let row = |what: &str, figure: String| println!("{what}\t{figure}");
        row("time to the newest page (20 posts)", secs(newest_page));
        row("time to every entry", secs(everything));
        row(
            "entries/s (against the baseline)",
            format!("{rate:.0} ({:.2}×)", rate / verify_rate),
        );
        row(
            "bytes of completed sessions (reconciliation + fetches) / entry bytes",
            format!(
                "{:.1} MB / {:.1} MB = {:.2}×",
                status.bytes_received as f64 / 1e6,
                entry_bytes / 1e6,
                status.bytes_received as f64 / entry_bytes
            ),
        );
        row(
            "entries received twice",
            format!("{} of {}", status.duplicates, status.received),
        );
        row(
            "peak RSS of the newcomer (VmHWM)",
            format!("{:.0} MB", status_mb("VmHWM:")),
        );
        row("worst answer of its network task (`peers`)", ms(network));
        row("worst feed read (`feed`, 20 posts)", ms(feed));
        let started = Instant::now();
        node.shutdown().await;
        row(
            "shutdown of the newcomer (online node)",
            ms(started.elapsed()),
        );
    });
}
