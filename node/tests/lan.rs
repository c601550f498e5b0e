//! Discovery on a local network: two real `agora-node serve` processes, each in its own
//! network namespace, joined by a veth pair with link-local addresses (169.254.77.0/24, which
//! exists only inside the namespaces the test creates). The first founds a subwiki and posts;
//! the second joins the subwiki by id alone, with no peer address, and must find the first by
//! mDNS and fetch the post.
//!
//! Loopback carries no multicast, hence the namespaces. Creating them needs root (or
//! CAP_NET_ADMIN) and iproute2; without them the test says why and skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any one wait on a node may take before the test fails.
const GUARD: Duration = Duration::from_secs(60);
/// What each node gets as `--timeout-secs`: it exits on its own even if the test is gone.
const NODE_TIMEOUT_SECS: u64 = 90;
const ADDR_A: &str = "169.254.77.1/24";
const ADDR_B: &str = "169.254.77.2/24";

/// Runs `ip` with `args`; the error says what failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted when dropped (which removes the pair too).
struct Lan {
    a: String,
    b: String,
    created: Vec<String>,
}

impl Lan {
    fn create() -> Result<Self, String> {
        let pid = std::process::id();
        let mut lan = Self {
            a: format!("agora-lan-{pid}-a"),
            b: format!("agora-lan-{pid}-b"),
            created: Vec::new(),
        };
        // Interface names have at most 15 bytes.
        let (veth_a, veth_b) = (format!("agv{pid}a"), format!("agv{pid}b"));
        for ns in [lan.a.clone(), lan.b.clone()] {
            ip(&["netns", "add", &ns])?;
            lan.created.push(ns);
        }
        // The pair is created directly inside the namespaces: nothing touches the host's.
        ip(&[
            "link", "add", "name", &veth_a, "netns", &lan.a, "type", "veth", "peer", "name",
            &veth_b, "netns", &lan.b,
        ])?;
        for (ns, dev, addr) in [(&lan.a, &veth_a, ADDR_A), (&lan.b, &veth_b, ADDR_B)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "multicast", "on", "up"])?;
        }
        Ok(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.created {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A child process whose stdout lines arrive on a channel; killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Proc {
    fn spawn(name: &'static str, command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            name,
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next stdout line, or `None` at the end of the output; panics after the guard.
    fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(GUARD) {
            Ok(line) => {
                println!("{}: {line}", self.name);
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let name = self.name;
                let _ = self.child.kill();
                panic!("{}: no output in time; stderr: {}", name, self.stderr())
            }
        }
    }

    /// Reads lines until one starts with `prefix`; returns the rest of it.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.next_line() {
                Some(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                None => {
                    let status = self.child.wait();
                    let name = self.name;
                    panic!(
                        "{} exited ({status:?}) before printing {prefix:?}; stderr: {}",
                        name,
                        self.stderr()
                    )
                }
            }
        }
    }

    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_in(ns: &str, home: &std::path::Path) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .arg(env!("CARGO_BIN_EXE_agora-node"))
        .arg("serve")
        .arg("--home")
        .arg(home)
        .args(["--listen", "/ip4/0.0.0.0/tcp/0"])
        .args(["--timeout-secs", &NODE_TIMEOUT_SECS.to_string()]);
    command
}

#[test]
fn a_node_finds_a_subwiki_peer_on_the_lan_by_mdns() {
    // Declared first, dropped last: the nodes are killed before their namespaces go.
    let lan = match Lan::create() {
        Ok(lan) => lan,
        Err(reason) => {
            // CI sets this where it has checked that namespaces can be made: there a failure
            // to make them is a failure, not a skip.
            assert!(
                std::env::var_os("AGORA_REQUIRE_NAMESPACES").is_none(),
                "cannot make a test network with namespaces, though AGORA_REQUIRE_NAMESPACES \
                 is set: {reason}"
            );
            eprintln!("SKIPPED: cannot make a test network with namespaces: {reason}");
            return;
        }
    };
    let started = Instant::now();
    let homes = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let mut first = Proc::spawn(
        "A",
        serve_in(&lan.a, homes.0.path()).args(["--create", "lan", "--post", "hello"]),
    );
    let first_peer = first.wait_for("peer ");
    let subwiki = first.wait_for("subwiki ");
    first.wait_for("post ");

    // Only the subwiki id: no address, no bootstrap peer. mDNS is the only way to A.
    let mut second = Proc::spawn(
        "B",
        serve_in(&lan.b, homes.1.path()).args(["--join", &subwiki, "--expect-posts", "1"]),
    );
    let held = second.wait_for("feed ");
    assert_eq!(held, "1");
    let peers: Vec<String> = std::iter::from_fn(|| second.next_line())
        .filter_map(|line| line.strip_prefix("connected ").map(str::to_owned))
        .collect();
    let status = second.child.wait().unwrap();
    assert!(status.success(), "B: {status}; stderr: {}", second.stderr());
    assert!(
        peers.contains(&first_peer),
        "B got the post from A ({first_peer}), connected to {peers:?}"
    );
    println!(
        "B found A by mDNS and fetched its post in {:?}",
        started.elapsed()
    );
}
