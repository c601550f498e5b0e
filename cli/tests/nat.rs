//! The NAT lab: two people's real `agora up` nodes, each at home behind its own NAT router, and
//! a real `agora-bootstrap` on the "internet" between them, all in network namespaces this test
//! makes and removes.
//!
//! ```text
//!  home A 10.1.0.2 ── router A 10.1.0.1 | 11.0.0.11 (masquerade) ──┐
//!                                                                   bridge: bootstrap 11.0.0.1
//!  home B 10.2.0.2 ── router B 10.2.0.1 | 11.0.0.12 (masquerade) ──┘
//! ```
//!
//! The "internet" is 11.0.0.0/24 because AutoNAT only uses and dials back peers at global
//! addresses; the namespaces have no link to the host's, so nothing leaves them. Each node is
//! given the bootstrap peer and nothing else (no relay, no peer, no mDNS): it must learn from
//! AutoNAT that it is behind NAT, take a relay reservation at the bootstrap peer by itself, find
//! the other's subwiki through the bootstrap's DHT, connect through the relay and, where the
//! NATs allow it, upgrade to a direct connection by hole punching (DCUtR). The path each node
//! reports (`agora peers`: direct or relayed) and the replicated posts are what is asserted.
//!
//! Cases: ordinary (port-preserving) NATs over TCP, the same over UDP (QUIC) only with TCP
//! dropped by both routers, and symmetric NATs (a random port per connection), where hole
//! punching cannot work and replication must go on over the relay within the bootstrap's limit
//! on bytes per circuit.
//!
//! Needs root (or CAP_NET_ADMIN), iproute2 and nftables; without them each test says why and
//! skips, unless `AGORA_REQUIRE_NAMESPACES` is set (CI), where it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// How long one wait in the lab may take: AutoNAT's first probe comes 5 s after a start, and a
/// hole punch may need a retry.
const LAB_GUARD: Duration = Duration::from_secs(120);
const BOOTSTRAP_IP: &str = "11.0.0.1";

/// The kind of NAT both routers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nat {
    /// Linux's masquerade: a connection keeps its source port where it can (endpoint-
    /// independent mapping), as most home routers do.
    PortPreserving,
    /// A new random port for every connection (endpoint-dependent mapping): what a peer sees is
    /// not what another peer could reach. Hole punching cannot work.
    Symmetric,
}

/// Runs a command; the error says what failed.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    sh("ip", args)
}

/// Loads an nftables ruleset into namespace `ns`.
fn nft(ns: &str, rules: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `nft`: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces of one lab; all deleted when dropped (which removes their links too).
struct Lab {
    internet: String,
    homes: [String; 2],
    created: Vec<String>,
}

impl Lab {
    fn create(nat: Nat, udp_only: bool) -> Result<Self, String> {
        static LABS: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "agora-nat-{}-{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Self {
            internet: format!("{tag}-inet"),
            homes: [format!("{tag}-home-a"), format!("{tag}-home-b")],
            created: Vec::new(),
        };
        let routers = [format!("{tag}-router-a"), format!("{tag}-router-b")];
        for ns in [
            &lab.internet,
            &routers[0],
            &routers[1],
            &lab.homes[0],
            &lab.homes[1],
        ] {
            ip(&["netns", "add", ns])?;
            lab.created.push(ns.clone());
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let inet = lab.internet.as_str();
        ip(&["-n", inet, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            inet,
            "addr",
            "add",
            &format!("{BOOTSTRAP_IP}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", inet, "link", "set", "br0", "up"])?;
        for (i, (router, home)) in routers.iter().zip(&lab.homes).enumerate() {
            let n = i + 1;
            let port = format!("port{n}");
            // Links are made directly inside the namespaces: nothing touches the host's.
            ip(&[
                "link", "add", "name", "wan0", "netns", router, "type", "veth", "peer", "name",
                &port, "netns", inet,
            ])?;
            ip(&["-n", inet, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                router,
                "addr",
                "add",
                &format!("11.0.0.1{n}/24"),
                "dev",
                "wan0",
            ])?;
            ip(&["-n", router, "link", "set", "wan0", "up"])?;
            ip(&[
                "link", "add", "name", "lan0", "netns", router, "type", "veth", "peer", "name",
                "home0", "netns", home,
            ])?;
            ip(&[
                "-n",
                router,
                "addr",
                "add",
                &format!("10.{n}.0.1/24"),
                "dev",
                "lan0",
            ])?;
            ip(&["-n", router, "link", "set", "lan0", "up"])?;
            ip(&[
                "-n",
                home,
                "addr",
                "add",
                &format!("10.{n}.0.2/24"),
                "dev",
                "home0",
            ])?;
            ip(&["-n", home, "link", "set", "home0", "up"])?;
            ip(&[
                "-n",
                home,
                "route",
                "add",
                "default",
                "via",
                &format!("10.{n}.0.1"),
            ])?;
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    router,
                    "sh",
                    "-c",
                    "echo 1 > /proc/sys/net/ipv4/ip_forward",
                ],
            )?;
            let masquerade = match nat {
                Nat::PortPreserving => "masquerade",
                Nat::Symmetric => "masquerade fully-random",
            };
            // Like a home router's firewall, what arrives from outside unasked is dropped
            // silently (no reset, no ICMP): a hole punch's first packet may arrive before the
            // other side's has opened the mapping, and must not end the attempt.
            let tcp = if udp_only {
                "meta l4proto tcp drop;"
            } else {
                ""
            };
            nft(
                router,
                &format!(
                    "table ip lab {{
                        chain leaving {{ type nat hook postrouting priority srcnat; oifname \"wan0\" {masquerade}; }}
                        chain passing {{ type filter hook forward priority filter; {tcp} }}
                        chain arriving {{ type filter hook input priority filter; iifname \"wan0\" ct state new drop; }}
                    }}"
                ),
            )?;
        }
        Ok(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.created {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// The lab, or `None` after saying why it cannot be made here (a failure where CI requires it).
fn lab(nat: Nat, udp_only: bool) -> Option<Lab> {
    match Lab::create(nat, udp_only) {
        Ok(lab) => Some(lab),
        Err(e) if std::env::var_os("AGORA_REQUIRE_NAMESPACES").is_some() => {
            panic!("the NAT lab must run here (AGORA_REQUIRE_NAMESPACES): {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot make the NAT lab (needs root, iproute2, nftables): {e}");
            None
        }
    }
}

/// The real `agora-bootstrap`, running in the lab's internet; killed when dropped.
struct Bootstrap {
    child: Child,
    /// Its TCP and QUIC addresses, with `/p2p/`.
    tcp: String,
    quic: String,
}

impl Bootstrap {
    fn start(lab: &Lab, home: &Path, circuit_kib: u64) -> Self {
        // Built by `cargo test --workspace` next to `agora`.
        let binary = Path::new(env!("CARGO_BIN_EXE_agora")).with_file_name("agora-bootstrap");
        assert!(
            binary.exists(),
            "{} is not built: run the workspace's tests (cargo test --workspace)",
            binary.display()
        );
        let config = home.join("bootstrap.toml");
        std::fs::create_dir_all(home).unwrap();
        std::fs::write(&config, format!("[relay]\ncircuit_kib = {circuit_kib}\n")).unwrap();
        let tcp = format!("/ip4/{BOOTSTRAP_IP}/tcp/7411");
        let quic = format!("/ip4/{BOOTSTRAP_IP}/udp/7411/quic-v1");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.internet])
            .arg(&binary)
            .arg("--home")
            .arg(home)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &tcp, "--listen", &quic])
            .args(["--external", &tcp, "--external", &quic])
            .envs(std::env::var("AGORA_TEST_LOG").map(|f| ("RUST_LOG", f)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(home.join("bootstrap.log")).unwrap(),
            ))
            .spawn()
            .expect("agora-bootstrap starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let peer = loop {
            let line = rx
                .recv_timeout(GUARD)
                .expect("agora-bootstrap prints its peer id");
            if let Some(peer) = line.strip_prefix("peer id: ") {
                break peer.to_owned();
            }
        };
        Self {
            child,
            tcp: format!("{tcp}/p2p/{peer}"),
            quic: format!("{quic}/p2p/{peer}"),
        }
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person at home: an `agora up` in the home's namespace.
struct Person {
    ns: String,
    up: Up,
}

impl Person {
    fn start(ns: &str, home: &Path, name: &str, listen: &str, bootstrap: &str) -> Self {
        std::fs::create_dir_all(home).unwrap();
        let init = agora_in(Some(ns), home)
            .args(["init", "--name", name])
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        let up = Up::start_in(
            Some(ns),
            home,
            &["--listen", listen],
            &["--bootstrap", bootstrap],
        );
        Self {
            ns: ns.to_owned(),
            up,
        }
    }

    fn home(&self) -> &Path {
        &self.up.home
    }

    /// `agora ARGS` in the person's namespace; stdout, or a panic with the node's log.
    fn ok(&self, args: &[&str]) -> String {
        let out = agora_in(Some(&self.ns), self.home())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "agora {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.up.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn until(&self, args: &[&str], what: &str, check: impl FnMut(&Value) -> bool) -> Value {
        let ns = Some(self.ns.as_str());
        let home = self.home().to_owned();
        let log = Up::log_path(&home);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            until_in(ns, LAB_GUARD, &home, args, what, check)
        }));
        result.unwrap_or_else(|e| {
            eprintln!(
                "--- log of {}:\n{}",
                home.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::panic::resume_unwind(e)
        })
    }

    /// The path (`direct` or `relayed`) this node reports to `peer`, once connected.
    fn path_to(&self, peer: &str, path: &str) -> Value {
        self.until(&["peers"], &format!("a {path} connection to {peer}"), |v| {
            v.as_array()
                .into_iter()
                .flatten()
                .any(|p| p["peer_id"] == peer && p["path"] == path)
        })
    }

    fn network(&self) -> Value {
        self.until(&["status"], "the node's status", |_| true)["network"].clone()
    }
}

/// Both people start behind their NATs, A founds a subwiki and posts, B joins it by id alone
/// and gets the post; B posts back. Returns them for the path checks.
fn meet(lab: &Lab, dir: &Path, listen: &str, bootstrap: &str) -> (Person, Person, String) {
    let a = Person::start(&lab.homes[0], &dir.join("a"), "ana", listen, bootstrap);
    let b = Person::start(&lab.homes[1], &dir.join("b"), "ben", listen, bootstrap);
    for p in [&a, &b] {
        // Nobody said so: AutoNAT found out, and the node took the bootstrap as its relay.
        let status = p.until(&["status"], "reachable through the relay", |v| {
            v["network"]["reachability"] == "relayed"
        });
        assert_eq!(status["network"]["nat"], "private", "{status}");
        let relays = status["network"]["relays"].as_array().unwrap().clone();
        assert_eq!(relays.len(), 1, "{status}");
        assert!(
            relays[0].as_str().unwrap().contains(BOOTSTRAP_IP),
            "{status}"
        );
        let text = p.ok(&["status"]);
        assert!(text.contains("reachable: relayed"), "{text}");
    }
    let subwiki = a.ok(&["subwiki", "create", "Lab notes", "--description", "NAT"]);
    let subwiki = subwiki.trim().to_owned();
    a.ok(&[
        "post",
        "new",
        &subwiki,
        "--title",
        "Written behind one NAT",
        "--body",
        "Read behind another.",
    ]);
    // B knows the subwiki's id and the bootstrap peer, nothing about A.
    let joined = b.ok(&["--json", "subwiki", "join", &subwiki, "--timeout", "90"]);
    let joined: Value = serde_json::from_str(&joined).unwrap();
    assert_eq!(joined["name"], "Lab notes");
    b.until(&["feed"], "A's post at B", |f| {
        titles(f).contains(&"Written behind one NAT".to_owned())
    });
    (a, b, subwiki)
}

fn posts_back(a: &Person, b: &Person, subwiki: &str, title: &str) {
    b.ok(&["post", "new", subwiki, "--title", title, "--body", "Back."]);
    a.until(&["feed"], "B's post at A", |f| {
        titles(f).contains(&title.to_owned())
    });
}

fn punched_through(listen: &str, udp_only: bool) {
    let Some(lab) = lab(Nat::PortPreserving, udp_only) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let boot = Bootstrap::start(&lab, &dir.path().join("boot"), 1024);
    let bootstrap = if udp_only { &boot.quic } else { &boot.tcp };
    let (a, b, subwiki) = meet(&lab, dir.path(), listen, bootstrap);
    // The relayed connection was replaced by a direct one through both NATs.
    b.path_to(&a.up.peer_id, "direct");
    a.path_to(&b.up.peer_id, "direct");
    let punched = |p: &Person| p.network()["hole_punches_succeeded"].as_u64().unwrap();
    assert!(
        punched(&a) + punched(&b) >= 1,
        "a hole punch is counted: {} {}",
        a.network(),
        b.network()
    );
    posts_back(&a, &b, &subwiki, "Straight through");
    let peers = b.ok(&["--json", "peers"]);
    let peers: Value = serde_json::from_str(&peers).unwrap();
    let to_a = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == a.up.peer_id.as_str())
        .unwrap();
    let addrs = to_a["addresses"].to_string();
    assert!(
        addrs.contains("11.0.0.11") && !addrs.contains("p2p-circuit"),
        "B reaches A at A's router, not through the relay: {addrs}"
    );
    if udp_only {
        assert!(addrs.contains("quic-v1"), "{addrs}");
    }
}

#[test]
fn two_nodes_behind_nat_meet_through_the_bootstrap_and_punch_through_over_tcp() {
    punched_through("/ip4/0.0.0.0/tcp/0", false);
}

#[test]
fn two_nodes_behind_nat_punch_through_over_quic_when_only_udp_passes() {
    punched_through("/ip4/0.0.0.0/udp/0/quic-v1", true);
}

#[test]
fn a_laptop_that_wakes_at_another_address_finds_its_peers_again_by_itself() {
    let Some(lab) = lab(Nat::PortPreserving, false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let boot = Bootstrap::start(&lab, &dir.path().join("boot"), 8192);
    let (a, b, subwiki) = meet(&lab, dir.path(), "/ip4/0.0.0.0/tcp/0", &boot.tcp);
    b.path_to(&a.up.peer_id, "direct");
    // A's laptop gets another address: every connection it had is dead, and nobody tells it.
    let home = lab.homes[0].as_str();
    ip(&["-n", home, "addr", "del", "10.1.0.2/24", "dev", "home0"]).unwrap();
    ip(&["-n", home, "addr", "add", "10.1.0.3/24", "dev", "home0"]).unwrap();
    ip(&["-n", home, "route", "replace", "default", "via", "10.1.0.1"]).unwrap();
    b.ok(&[
        "post",
        "new",
        &subwiki,
        "--title",
        "Written while A moved",
        "--body",
        "A finds it anyway.",
    ]);
    a.until(&["feed"], "B's post at A after the move", |f| {
        titles(f).contains(&"Written while A moved".to_owned())
    });
    let status = a.until(&["status"], "A reachable through the relay again", |v| {
        v["network"]["reachability"] == "relayed"
    });
    assert_eq!(status["network"]["nat"], "private", "{status}");
}

#[test]
fn behind_symmetric_nats_they_stay_relayed_and_still_replicate_within_the_relay_limits() {
    let Some(lab) = lab(Nat::Symmetric, false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A circuit carries at most 256 KiB: more than that needs several circuits.
    let boot = Bootstrap::start(&lab, &dir.path().join("boot"), 256);
    let (a, b, subwiki) = meet(&lab, dir.path(), "/ip4/0.0.0.0/tcp/0", &boot.tcp);
    b.path_to(&a.up.peer_id, "relayed");
    b.until(&["status"], "a failed hole punch", |v| {
        v["network"]["hole_punches_failed"].as_u64() >= Some(1)
    });
    posts_back(&a, &b, &subwiki, "Through the relay");
    // Posts of 150 KiB each, 600 KiB in all: more than one circuit may carry. The text does
    // not compress (Automerge deflates what it can).
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..4 {
        let body: String = (0..150 * 1024 / 17)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                format!("{seed:016x} ")
            })
            .collect();
        let file = dir.path().join(format!("big-{i}.md"));
        std::fs::write(&file, body).unwrap();
        a.ok(&[
            "post",
            "new",
            &subwiki,
            "--title",
            &format!("Big {i}"),
            "--body-file",
            file.to_str().unwrap(),
        ]);
    }
    b.until(&["feed", "--limit", "20"], "every big post at B", |f| {
        let t = titles(f);
        (0..4).all(|i| t.contains(&format!("Big {i}")))
    });
    let network = b.network();
    assert_eq!(
        network["hole_punches_succeeded"], 0,
        "no direct path exists between symmetric NATs: {network}"
    );
    let reconnected = b.ok(&["--json", "status"]);
    let reconnected: Value = serde_json::from_str(&reconnected).unwrap();
    assert!(
        reconnected["network"]["relayed_connections"].as_u64() >= Some(2),
        "the relay cut a circuit at its limit and B reached A again: {reconnected}"
    );
    drop(boot);
}
