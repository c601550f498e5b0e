//! The real `agora-bootstrap` binary: its metrics endpoint, its connection limits, its key,
//! `--version` and shutdown on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod client;
mod support;

use std::collections::HashSet;

use agora_crdt::{Policy, PostContent};
use client::Report;
use support::*;
use tokio::sync::mpsc;

/// The metrics endpoint answers in Prometheus text format with libp2p's metrics and Agora's:
/// entries per seeded subwiki, reconciliations served, relay events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_text_format() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // A holds a subwiki before the bootstrap peer exists, to pass its id to `--seed`.
    let a = start_node(dirs[1].path(), vec![]).await;
    let subwiki = a
        .create_subwiki("measured", "", Policy::default())
        .await
        .unwrap();
    for i in 0..5 {
        let post = PostContent {
            title: format!("p{i}"),
            ..Default::default()
        };
        a.create_post(subwiki, post).await.unwrap();
    }
    let seed = subwiki.to_string();
    let boot = spawn_bootstrap(
        dirs[0].path(),
        &["--metrics", "127.0.0.1:0", "--seed", &seed],
    )
    .await;
    let url = boot.metrics.clone().unwrap();
    a.dial(boot.addr.clone()).await;
    // B reaches the bootstrap peer through a relay reservation, for relay metrics.
    let b = start_node_with(dirs[2].path(), vec![], |c| {
        c.listen = Vec::new();
        c.relay_via = vec![boot.addr.clone()];
    })
    .await;
    tokio::time::timeout(GUARD, b.listen_addrs()).await.unwrap();

    let held = format!("agora_seed_entries{{subwiki=\"{seed}\"}} 6");
    let text = scrape_until(&url, "the seeded subwiki's 6 entries", |t| {
        t.contains(&held) && t.contains("libp2p_relay_events_total")
    })
    .await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        // Header names are case-insensitive (hyper writes them in lower case).
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"));
    for family in [
        "libp2p_swarm_connections_established",
        "libp2p_kad_",
        "libp2p_identify_received",
        "libp2p_ping_rtt_seconds",
        "libp2p_gossipsub_messages",
        "libp2p_relay_events",
        "agora_reconciliations_served",
        "agora_sync_requests_served",
        "agora_seed_entries",
        "agora_store_bytes",
        "agora_resident_memory_bytes",
        "agora_connected_peers",
    ] {
        assert!(
            body.lines()
                .any(|l| l.starts_with("# TYPE ") && l.contains(family)),
            "no {family} in\n{body}"
        );
    }
    // The bootstrap peer answered A's reconciliation of the seeded subwiki.
    let served = body
        .lines()
        .find_map(|l| l.strip_prefix("agora_reconciliations_served_total "))
        .map(|v| v.trim().parse::<u64>().unwrap())
        .unwrap();
    assert!(served >= 1, "reconciliations served: {served}");

    let other = url.replace("/metrics", "/other");
    assert!(http(&other, "GET").await.starts_with("HTTP/1.1 404"));
    assert!(http(&url, "POST").await.starts_with("HTTP/1.1 405"));
    a.shutdown().await;
    b.shutdown().await;
}

async fn next(rx: &mut mpsc::Receiver<Report>, deadline: tokio::time::Instant) -> Report {
    tokio::time::timeout_at(deadline, rx.recv())
        .await
        .expect("a report in time")
        .expect("clients running")
}

/// With `--max-connections 3`, a fourth client is refused while the first three stay
/// connected and keep answering pings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let boot = spawn_bootstrap(
        dir.path(),
        &["--max-connections", "3", "--metrics", "127.0.0.1:0"],
    )
    .await;
    let (tx, mut rx) = mpsc::channel(64);
    let mut tasks = Vec::new();
    let deadline = tokio::time::Instant::now() + GUARD;
    for n in 0..3 {
        tasks.push(client::spawn(n, boot.addr.clone(), tx.clone()));
        loop {
            match next(&mut rx, deadline).await {
                Report::Connected(m) if m == n => break,
                Report::Refused(m) => panic!("client {m} refused below the limit"),
                _ => {}
            }
        }
    }
    // A client sees its connection up before the bootstrap peer counts it; under load the
    // fourth could otherwise be counted before the third and take its place.
    let url = boot.metrics.clone().unwrap();
    scrape_until(&url, "three connected peers", |t| {
        t.lines().any(|l| l == "agora_connected_peers 3")
    })
    .await;
    tasks.push(client::spawn(3, boot.addr.clone(), tx.clone()));
    loop {
        match next(&mut rx, deadline).await {
            Report::Refused(3) => break,
            Report::Refused(m) => panic!("client {m} lost its connection"),
            _ => {}
        }
    }
    // After the refusal, each of the first three still gets pings through.
    let mut alive = HashSet::new();
    while alive.len() < 3 {
        match next(&mut rx, deadline).await {
            Report::Pinged(m) if m < 3 => {
                alive.insert(m);
            }
            Report::Refused(m) if m < 3 => panic!("client {m} lost its connection"),
            _ => {}
        }
    }
    for task in tasks {
        task.abort();
    }
}

/// With `--max-memory-mib 1` (below what any process uses), a client is refused: new
/// connections are turned away while the resident memory is over the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_refused_while_memory_is_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let boot = spawn_bootstrap(dir.path(), &["--max-memory-mib", "1"]).await;
    let (tx, mut rx) = mpsc::channel(64);
    let task = client::spawn(0, boot.addr.clone(), tx.clone());
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        match next(&mut rx, deadline).await {
            Report::Refused(0) => break,
            Report::Pinged(0) => panic!("a client got in while the memory is over the limit"),
            _ => {}
        }
    }
    task.abort();
}

/// The node key is created on first start and reused, so the peer id (and address) is stable;
/// SIGTERM stops the process cleanly; `--version` prints the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_id_is_stable_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_bootstrap(dir.path(), &[]).await;
    assert!(dir.path().join("node.key").exists());
    let pid = first.child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(GUARD, first.child.wait())
        .await
        .expect("stopped in time")
        .unwrap();
    assert!(status.success(), "{status}");

    let second = spawn_bootstrap(dir.path(), &[]).await;
    assert_eq!(second.peer, first.peer);

    let version = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora-bootstrap"))
        .arg("--version")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(version.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("agora-bootstrap {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A malformed configuration file stops the binary with a one-line error naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bootstrap.toml");
    std::fs::write(&config, "[limits]\nmax_connection = 5\n").unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora-bootstrap"))
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bootstrap.toml"), "{stderr}");
    assert!(stderr.contains("max_connection"), "{stderr}");
}
