//! The daily data budget over real nodes: the day's count is kept across a restart; with four
//! fifths of the cap used, catch-up pauses (a post written while the node was away does not
//! arrive) while gossip goes on (a new post does); the next day it catches up. At the cap the
//! node makes no connection until the next day. QUIC traffic is counted as TCP's is.
//!
//! The day is a manual clock ([`DayClock::manual`]); the count is put where a node would have
//! used it by writing the budget file in its home before it starts.
use std::time::Duration;

use super::post;
use super::support::*;
use agora_crdt::{DocId, Policy};
use agora_node::Node;
use agora_node::net::DayClock;
use agora_node::net::budget::FILE;

const MIB: u64 = 1 << 20;
/// The cap of the node under test: far more than the test's own traffic.
const CAP: u64 = 64 * MIB;
const DAY: u64 = 20_000;

fn has(node: &Node, id: DocId) -> bool {
    node.post(id).is_ok()
}

/// The (day, received, sent) kept in the home.
fn kept(home: &std::path::Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(home.join(FILE)).unwrap();
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_waits_for_the_next_day_while_gossip_goes_on() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    let subwiki = a
        .create_subwiki("budget", "", Policy::default())
        .await
        .unwrap();
    let first = a.create_post(subwiki, post("First", "")).await.unwrap();

    let clock = DayClock::manual(DAY);
    let budgeted = |c: &mut agora_node::Config| {
        c.daily_data_budget = Some(CAP);
        c.data_day = clock.clone();
        c.resync_interval = Duration::from_secs(1);
    };
    let b = start_with(dirs[1].path(), vec![a_addr.clone()], budgeted).await;
    b.join(subwiki, vec![a_addr.clone()]).await.unwrap();
    until(&b, "B caught up with the first post", |n| has(n, first)).await;
    let status = b.data_use().unwrap();
    assert_eq!(status.day, DAY);
    assert!(status.received > 0 && status.sent > 0, "{status:?}");
    assert!(!status.catch_up_paused && !status.exhausted);
    assert_eq!(status.daily_cap, Some(CAP));
    b.shutdown().await;
    drop(b);
    // The day's count is kept at shutdown.
    let (day, received, sent) = kept(dirs[1].path());
    assert_eq!(day, DAY);
    assert!(received >= status.received && sent >= status.sent);

    let meanwhile = a
        .create_post(subwiki, post("Meanwhile", "written while B was away"))
        .await
        .unwrap();
    // B comes back having used seven eighths of its cap today.
    let used = CAP / 8 * 7;
    std::fs::write(dirs[1].path().join(FILE), format!("{DAY} {used} 0\n")).unwrap();
    let b = start_with(dirs[1].path(), vec![a_addr.clone()], budgeted).await;
    let status = b.data_use().unwrap();
    assert!(status.received >= used, "the count goes on: {status:?}");
    assert!(status.catch_up_paused && !status.exhausted, "{status:?}");
    until_connected(&a, b.peer_id()).await;

    // Gossip goes on: a new post arrives (A posts again until one does, in case B's
    // subscription had not reached A yet; none of them can come by catch-up).
    let mut gossiped = None;
    for i in 0..20 {
        let id = a
            .create_post(subwiki, post(&format!("News {i}"), "by gossip"))
            .await
            .unwrap();
        let arrived = tokio::time::timeout(
            Duration::from_secs(3),
            until(&b, "a gossiped post", |n| has(n, id)),
        )
        .await;
        if arrived.is_ok() {
            gossiped = Some(id);
            break;
        }
    }
    assert!(gossiped.is_some(), "no gossip reached B");
    // Waiting for something not to happen: a few of B's resync ticks (1 s) and A's (5 s) pass,
    // and catch-up would have brought the post at any of them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        !has(&b, meanwhile),
        "catch-up is paused: the post written while B was away must not arrive"
    );
    assert!(b.data_use().unwrap().catch_up_paused);

    // The next day the count starts again and B catches up at its next resync.
    clock.set(DAY + 1);
    until(&b, "B catches up the next day", |n| has(n, meanwhile)).await;
    let status = b.data_use().unwrap();
    assert_eq!(status.day, DAY + 1);
    assert!(status.received < used && !status.catch_up_paused);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_node_is_offline_until_the_next_day() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), vec![]).await;
    let a_addr = addr(&a).await;
    std::fs::write(dirs[1].path().join(FILE), format!("{DAY} {CAP} 0\n")).unwrap();
    let clock = DayClock::manual(DAY);
    let b = start_with(dirs[1].path(), vec![], |c| {
        c.daily_data_budget = Some(CAP);
        c.data_day = clock.clone();
    })
    .await;
    assert!(b.data_use().unwrap().exhausted);
    let refused = b.connect(a_addr.clone()).await;
    let error = refused.expect_err("no connection at the cap").to_string();
    assert!(error.contains("data budget"), "{error}");
    assert_eq!(b.data_use().unwrap().sent, 0, "nothing was sent");

    clock.set(DAY + 1);
    assert_eq!(b.connect(a_addr).await.unwrap(), a.peer_id());
    a.shutdown().await;
    b.shutdown().await;
}

/// QUIC connections are counted too (on their streams), and carry replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_traffic_is_counted() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let quic = |c: &mut agora_node::Config| {
        c.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    };
    let a = start_with(dirs[0].path(), vec![], quic).await;
    let a_addr = addr(&a).await;
    assert!(a_addr.to_string().contains("quic-v1"), "{a_addr}");
    let subwiki = a.create_subwiki("q", "", Policy::default()).await.unwrap();
    let first = a.create_post(subwiki, post("Over QUIC", "")).await.unwrap();
    let b = start_with(dirs[1].path(), vec![], quic).await;
    b.join(subwiki, vec![a_addr]).await.unwrap();
    until(&b, "the post over QUIC", |n| has(n, first)).await;
    for node in [&a, &b] {
        let d = node.data_use().unwrap();
        assert!(d.received > 0 && d.sent > 0, "{d:?}");
        assert_eq!(d.daily_cap, None);
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// One measurement: a node `me` joined to [`SUBWIKIS`] subwikis with three peers, all with
/// the default resync interval (or `resync`) and gossipsub heartbeat.
struct Figures {
    /// Bytes `me` received and sent during the measured time.
    received: u64,
    sent: u64,
    /// Bytes of the entries `me` gained in that time (the growth of its export files: the
    /// entries plus a few bytes of framing each).
    needed: u64,
    /// Posts written during the measured time.
    posts: usize,
}

const SUBWIKIS: usize = 20;

/// The bytes of every subwiki's export at `node`.
fn exported_bytes(node: &Node, subwikis: &[agora_crdt::SubwikiId], dir: &std::path::Path) -> u64 {
    subwikis
        .iter()
        .map(|s| {
            let path = dir.join(format!("{s}.agora"));
            node.export(*s, &path).unwrap();
            std::fs::metadata(&path).unwrap().len()
        })
        .sum()
}

async fn measure(resync: Duration, posts_per_minute: u32, secs: u64) -> Figures {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    // As `agora up` runs: quiet reconciliations spaced out.
    let config = |c: &mut agora_node::Config| {
        c.resync_interval = resync;
        c.space_quiet_resyncs = true;
    };
    let hub = start_with(dirs[0].path(), vec![], config).await;
    let hub_addr = addr(&hub).await;
    let mut subwikis = Vec::new();
    for i in 0..SUBWIKIS {
        let name = format!("community {i}");
        subwikis.push(
            hub.create_subwiki(&name, "", Policy::default())
                .await
                .unwrap(),
        );
    }
    let mut peers = vec![hub];
    for dir in &dirs[1..3] {
        peers.push(start_with(dir.path(), vec![hub_addr.clone()], config).await);
    }
    let mut boot = vec![hub_addr.clone()];
    for p in &peers[1..] {
        boot.push(addr(p).await);
    }
    let me = start_with(dirs[3].path(), boot.clone(), config).await;
    for s in &subwikis {
        for node in peers[1..].iter().chain([&me]) {
            node.join(*s, vec![hub_addr.clone()]).await.unwrap();
        }
    }
    super::until_every_genesis(&me, SUBWIKIS).await;
    // Settle: first catch-ups, DHT announcements, gossipsub meshes (and, given a longer
    // AGORA_MEASURE_SETTLE_SECS, the spacing of quiet resyncs, to measure the steady state).
    let settle = std::env::var("AGORA_MEASURE_SETTLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    tokio::time::sleep(Duration::from_secs(settle)).await;

    let scratch = dirs[4].path();
    let before_bytes = exported_bytes(&me, &subwikis, scratch);
    let before = me.data_use().unwrap();
    let started = tokio::time::Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut posts = 0usize;
    let body = "A steady stream of ordinary posts: a paragraph of text about the day. ".repeat(9);
    if posts_per_minute > 0 {
        let every = Duration::from_millis(60_000 / u64::from(posts_per_minute));
        let mut next = started;
        while next < end {
            tokio::time::sleep_until(next).await;
            let author = &peers[posts % peers.len()];
            let subwiki = subwikis[posts % SUBWIKIS];
            let title = format!("Post number {posts} of the measurement");
            author
                .create_post(subwiki, post(&title, &body))
                .await
                .unwrap();
            posts += 1;
            next += every;
        }
    }
    tokio::time::sleep_until(end).await;
    let after = me.data_use().unwrap();
    let after_bytes = exported_bytes(&me, &subwikis, scratch);
    for node in peers.iter().chain([&me]) {
        node.shutdown().await;
    }
    Figures {
        received: after.received - before.received,
        sent: after.sent - before.sent,
        needed: after_bytes - before_bytes,
        posts,
    }
}

/// A measurement, not a test: bytes per hour in and out of a node in 20 subwikis with three
/// peers on loopback, idle and with steady posting, against the bytes of the entries it
/// needed. Each case runs `AGORA_MEASURE_SECS` (240 by default) and is scaled to an hour.
/// Figures go to `docs/performance.md` (section "Data budget").
///
/// ```sh
/// cargo test -p agora-node --test replication measure_data_use -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: several minutes"]
async fn measure_data_use() {
    let secs: u64 = std::env::var("AGORA_MEASURE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let default = agora_node::Config::new("unused").resync_interval;
    let cases = [
        ("idle, default resync (60 s)", default, 0),
        ("idle, resync off (1 h)", Duration::from_secs(3600), 0),
        ("10 posts/min, default resync", default, 10),
    ];
    println!("| case | in/hour | out/hour | posts | entry bytes needed | (in+out)/needed |");
    println!("|---|---|---|---|---|---|");
    let only = std::env::var("AGORA_MEASURE_CASES").unwrap_or_default();
    for (name, resync, rate) in cases {
        if !name.contains(only.as_str()) {
            continue;
        }
        let f = measure(resync, rate, secs).await;
        let hour = |b: u64| b * 3600 / secs;
        let ratio = if f.needed == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", (f.received + f.sent) as f64 / f.needed as f64)
        };
        println!(
            "| {name} | {} KiB | {} KiB | {} | {} KiB/h | {ratio} |",
            hour(f.received) / 1024,
            hour(f.sent) / 1024,
            f.posts,
            hour(f.needed) / 1024,
        );
    }
}
