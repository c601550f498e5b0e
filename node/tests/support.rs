//! Shared helpers for the node's integration tests: real nodes on loopback TCP with on-disk
//! stores in temporary directories; waiting is on the nodes' change notifications, bounded by
//! a guard timeout, never a sleep.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use agora_node::{Config, Node};
use libp2p::Multiaddr;

/// How long any one wait may take before the test fails.
pub const GUARD: Duration = Duration::from_secs(60);

/// Starts a node in `home` listening on a free loopback port, mDNS off.
pub async fn start(home: &Path, bootstrap: Vec<Multiaddr>) -> Node {
    start_with(home, bootstrap, |_| {}).await
}

/// Like [`start`], with a change to the configuration.
pub async fn start_with(
    home: &Path,
    bootstrap: Vec<Multiaddr>,
    change: impl FnOnce(&mut Config),
) -> Node {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = Config::new(home);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.mdns = false;
    config.bootstrap = bootstrap;
    config.resync_interval = Duration::from_secs(5);
    change(&mut config);
    Node::start(config).await.expect("node starts")
}

/// The node's first listen address, with its peer id.
pub async fn addr(node: &Node) -> Multiaddr {
    tokio::time::timeout(GUARD, node.listen_addrs())
        .await
        .expect("listening in time")
        .into_iter()
        .next()
        .expect("a listen address")
}

/// Waits until `check` holds on `node`, re-checking whenever the node stores entries.
pub async fn until(node: &Node, what: &str, mut check: impl FnMut(&Node) -> bool) {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if check(node) {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("node stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits until `node` is connected to `peer`.
pub async fn until_connected(node: &Node, peer: libp2p::PeerId) {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let peers = node.peers().await;
        if peers.iter().any(|p| p.peer == peer) {
            return;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("node stopped while waiting for a connection"),
            Err(_) => panic!("timed out waiting for a connection to {peer}"),
        }
    }
}
