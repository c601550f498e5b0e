//! Shared helpers: the real `agora-bootstrap` binary as a child process (killed when dropped),
//! personal nodes on loopback TCP, and waits on events bounded by a guard timeout.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use agora_node::{Config, Node};
use libp2p::{Multiaddr, PeerId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long any one wait may take before the test fails.
pub const GUARD: Duration = Duration::from_secs(60);

/// A running `agora-bootstrap` process.
#[derive(Debug)]
pub struct Process {
    pub child: Child,
    pub peer: PeerId,
    /// Its first loopback TCP address, with `/p2p/`.
    pub addr: Multiaddr,
    /// Where it serves metrics, if asked to.
    pub metrics: Option<String>,
}

/// Starts `agora-bootstrap` in `home` on a free loopback port with `extra` arguments, and
/// reads the addresses it prints.
pub async fn spawn_bootstrap(home: &Path, extra: &[&str]) -> Process {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora-bootstrap"))
        .arg("--home")
        .arg(home)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("agora-bootstrap starts");
    let wants_metrics = extra.contains(&"--metrics");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut peer, mut addr, mut metrics) = (None, None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.expect("stdout readable") {
            if let Some(p) = line.strip_prefix("peer id: ") {
                peer = Some(p.parse::<PeerId>().expect("a peer id"));
            } else if let Some(a) = line.strip_prefix("address: ") {
                addr.get_or_insert(a.parse::<Multiaddr>().expect("an address"));
            } else if let Some(m) = line.strip_prefix("metrics: ") {
                metrics = Some(m.to_owned());
            }
            if addr.is_some() && (metrics.is_some() || !wants_metrics) {
                return;
            }
        }
        panic!("agora-bootstrap exited before printing its addresses");
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("addresses printed in time");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process {
        child,
        peer: peer.expect("peer id printed"),
        addr: addr.expect("address printed"),
        metrics,
    }
}

/// Starts a personal node in `home` on a free loopback port, mDNS off.
pub async fn start_node(home: &Path, bootstrap: Vec<Multiaddr>) -> Node {
    start_node_with(home, bootstrap, |_| {}).await
}

/// Like [`start_node`], with a change to the configuration.
pub async fn start_node_with(
    home: &Path,
    bootstrap: Vec<Multiaddr>,
    change: impl FnOnce(&mut Config),
) -> Node {
    let mut config = Config::new(home);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.mdns = false;
    config.bootstrap = bootstrap;
    config.resync_interval = Duration::from_secs(5);
    change(&mut config);
    Node::start(config).await.expect("node starts")
}

/// Waits until `check` holds on `node`, re-checking whenever the node changes.
pub async fn until(node: &Node, what: &str, mut check: impl FnMut(&Node) -> bool) {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if check(node) {
            return;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("node stopped while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits until `node` is connected to `peer`.
pub async fn until_connected(node: &Node, peer: PeerId) {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if node.peers().await.iter().any(|p| p.peer == peer) {
            return;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("node stopped while waiting for a connection"),
            Err(_) => panic!("timed out waiting for a connection to {peer}"),
        }
    }
}

/// Entries a node holds of a subwiki.
pub fn entries(node: &Node, subwiki: agora_crdt::SubwikiId) -> usize {
    node.subwikis()
        .unwrap()
        .iter()
        .find(|s| s.id == subwiki)
        .map_or(0, |s| s.entries)
}

/// Feed titles, newest first.
pub fn titles(node: &Node) -> Vec<String> {
    node.feed(None, None, 1000)
        .map(|f| f.into_iter().map(|i| i.post.content.title).collect())
        .unwrap_or_default()
}

/// A one-shot HTTP request; returns the whole response (head and body).
pub async fn http(url: &str, method: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http url");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connects");
    let request = format!("{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(GUARD, stream.read_to_string(&mut response))
        .await
        .expect("answered in time")
        .unwrap();
    response
}

/// Scrapes `url` until `check` holds on the text, at most [`GUARD`] long.
pub async fn scrape_until(url: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let text = http(url, "GET").await;
        if check(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{text}"
        );
    }
}
