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
    agora_in(None, home)
}

/// The `agora` command for `home`, run inside network namespace `ns` if one is given (`ip
/// netns exec`; the namespace's loopback is where that node's API listens).
pub fn agora_in(ns: Option<&str>, home: &Path) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_agora")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_agora")),
    };
    c.arg("--home")
        .arg(home)
        .env_remove("AGORA_HOME")
        .env_remove("RUST_LOG")
        .envs(std::env::var("AGORA_TEST_LOG").map(|f| ("RUST_LOG", f)))
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
pub fn until(home: &Path, args: &[&str], what: &str, check: impl FnMut(&Value) -> bool) -> Value {
    until_in(None, GUARD, home, args, what, check)
}

/// Polls `agora --json ARGS` in namespace `ns` (if any) until `check` holds, for at most
/// `guard`.
pub fn until_in(
    ns: Option<&str>,
    guard: Duration,
    home: &Path,
    args: &[&str],
    what: &str,
    mut check: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + guard;
    loop {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = agora_in(ns, home).args(&all).output().expect("agora runs");
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
        Self::start_in(None, home, &["--listen", "/ip4/127.0.0.1/tcp/0"], extra)
    }

    /// Starts `agora up` in namespace `ns` (if any), mDNS off, on the `listen` arguments;
    /// waits until its API is up.
    pub fn start_in(ns: Option<&str>, home: &Path, listen: &[&str], extra: &[&str]) -> Up {
        let mut child = agora_in(ns, home)
            .args(["up", "--no-mdns"])
            .args(listen)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(Self::log_path(home)).expect("a log file"))
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

    /// Where its log (stderr) goes: next to its home.
    pub fn log_path(home: &Path) -> PathBuf {
        home.with_extension("log")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(Self::log_path(&self.home)).unwrap_or_default()
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
