//! Resident memory of a bootstrap peer with many connected peers.
//!
//! Starts the real `agora-bootstrap` binary (same profile as the bench) on loopback, opens
//! `PEERS` lightweight client peers in this process, in waves of 100, (TCP, noise, yamux, identify, ping every
//! second, gossipsub on the directory topic: what every personal node speaks to a bootstrap
//! peer), waits until every one is connected and has pinged, then reads the bootstrap process's
//! `VmRSS` and `VmHWM` from `/proc/<pid>/status`, and again after another round of pings.
//!
//! Run: `cargo bench -p agora-bootstrap --bench peers` (`PEERS=N` to change the count,
//! default 1000). Linux only (it reads `/proc`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/client.rs"]
mod client;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use client::Report;
use libp2p::Multiaddr;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let peers: usize = std::env::var("PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(peers));
}

async fn run(peers: usize) {
    let home = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora-bootstrap"))
        .arg("--home")
        .arg(home.path())
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--max-connections", &(peers + 100).to_string()])
        .args(["--requests-per-minute", "600"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr: Option<Multiaddr> = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(a) = line.strip_prefix("address: ") {
            addr = Some(a.parse().unwrap());
            break;
        }
    }
    let addr = addr.expect("the bootstrap peer printed its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let idle = status_kib(pid, "VmRSS:");

    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel(4096);
    let mut tasks = Vec::with_capacity(peers);
    let mut connected = HashSet::new();
    let mut pinged = HashSet::new();
    let mut refused = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    // Dial in waves of `WAVE`, below the pending-connection limit (128): that limit is tested
    // elsewhere, memory is measured here.
    const WAVE: usize = 100;
    let mut next = 0;
    while next < peers || pinged.len() + refused < peers {
        if next < peers && connected.len() + refused >= next {
            for n in next..(next + WAVE).min(peers) {
                tasks.push(client::spawn(n, addr.clone(), tx.clone()));
            }
            next = (next + WAVE).min(peers);
        }
        let report = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("every client connected in time")
            .unwrap();
        match report {
            Report::Connected(n) => {
                connected.insert(n);
            }
            Report::Pinged(n) => {
                pinged.insert(n);
            }
            Report::Refused(_) => refused += 1,
        }
    }
    let up = started.elapsed();
    let rss = status_kib(pid, "VmRSS:");
    // Another full round of pings through every connection.
    let mut again = HashSet::new();
    while again.len() < pinged.len() {
        if let Report::Pinged(n) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("pings in time")
            .unwrap()
        {
            again.insert(n);
        }
    }
    let steady = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "bootstrap peer with {} connected peers ({refused} refused), all up in {up:.1?}",
        pinged.len()
    );
    println!("  RSS idle            {:>8.1} MiB", mib(idle));
    println!("  RSS all connected   {:>8.1} MiB", mib(rss));
    println!("  RSS after a round   {:>8.1} MiB", mib(steady));
    println!("  RSS peak (VmHWM)    {:>8.1} MiB", mib(peak));
    println!(
        "  per peer            {:>8.1} KiB",
        steady.saturating_sub(idle) as f64 / pinged.len().max(1) as f64
    );
    for task in tasks {
        task.abort();
    }
    let _ = child.kill().await;
}
