//! Runs the real `agora` binary against temporary homes. Nodes listen on loopback port 0 with
//! mDNS off; waits poll the command's own output, bounded by a guard timeout.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one wait may take before the test fails.
pub const GUARD: Duration = Duration::from_secs(60);
/// Between two polls of a command's output.
const POLL: Duration = Duration::from_millis(100);

/// The `agora` command for `home`, with a clean environment for the things it reads.
pub fn agora(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agora"));
    c.arg("--home")
        .arg(home)
        .env_remove("AGORA_HOME")
        .env_remove("RUST_LOG")
        .env_remove("EDITOR")
        .env_remove("VISUAL")
        .stdin(Stdio::null());
    c
}

/// Runs `agora --home HOME ARGS...` to completion.
pub fn run(home: &Path, args: &[&str]) -> Output {
    agora(home).args(args).output().expect("agora runs")
}

/// Runs it, expects success, returns stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = run(home, args);
    assert!(
        out.status.success(),
        "agora {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs it with `--json`, expects success, returns the parsed answer.
pub fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, &all)).unwrap()
}

/// Runs it, expects failure with `code`, returns stderr (checked to be one line).
pub fn fails(home: &Path, args: &[&str], code: i32) -> String {
    let out = run(home, args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "agora {args:?}: stdout {:?}, stderr {stderr:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr:?}");
    assert!(stderr.starts_with("agora: "), "{stderr:?}");
    stderr
}

/// Polls `agora --json ARGS` until `check` holds on its answer.
pub fn until(
    home: &Path,
    args: &[&str],
    what: &str,
    mut check: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + GUARD;
    loop {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = run(home, &all);
        if out.status.success() {
            let value: Value = serde_json::from_slice(&out.stdout).unwrap();
            if check(&value) {
                return value;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// A running `agora up`, stopped with SIGTERM when dropped.
#[derive(Debug)]
pub struct Up {
    child: Child,
    /// Its home.
    pub home: PathBuf,
    /// Its peer id.
    pub peer_id: String,
    /// Its listen addresses (with /p2p/).
    pub addrs: Vec<String>,
    /// Its API address.
    pub api: String,
    /// A one-time sign-in link to its web UI.
    pub ui: String,
}

impl Up {
    /// Starts `agora up` on loopback, mDNS off, with extra arguments; waits until its API is
    /// up.
    pub fn start(home: &Path, extra: &[&str]) -> Up {
        let mut child = agora(home)
            .args(["up", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("agora up starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child,
            home: home.to_owned(),
            peer_id: String::new(),
            addrs: Vec::new(),
            api: String::new(),
            ui: String::new(),
        };
        let deadline = Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("agora up prints its addresses");
            let (key, value) = line.split_once(' ').unwrap_or((&line, ""));
            match key {
                "peer" => up.peer_id = value.to_owned(),
                "listening" => up.addrs.push(value.to_owned()),
                "api" => up.api = value.to_owned(),
                "Open" => {
                    up.ui = value.rsplit(' ').next().unwrap_or_default().to_owned();
                    return up;
                }
                _ => {}
            }
        }
    }

    /// Stops it with SIGTERM and waits for it to exit; returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agora up did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// The titles in a `--json feed` answer.
pub fn titles(feed: &Value) -> Vec<String> {
    feed.as_array()
        .into_iter()
        .flatten()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}
