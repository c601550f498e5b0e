//! `agora up`: the personal node in the foreground, with its local API.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agora_node::home::Home;
use agora_node::{Config, Node, NodeError};
use libp2p::Multiaddr;
use serde::Serialize;

use agora_node::http::{self, ApiError, Endpoint, ErrorKind, Files};

use crate::args::UpArgs;

/// How long `up` waits for its first listen address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

fn usage(e: impl std::fmt::Display) -> ApiError {
    ApiError::usage(e.to_string())
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::failed(e)
}

/// What `agora up --json` prints once it listens.
#[derive(Debug, Serialize)]
struct Started {
    peer_id: String,
    author: agora_crdt::AuthorId,
    listen: Vec<String>,
    api: SocketAddr,
    /// A one-time link that opens the web UI, signed in.
    ui: String,
}

/// Where the API and the web UI listen unless told otherwise (a free port if it is taken).
pub const DEFAULT_API: &str = "127.0.0.1:7130";

/// A one-time sign-in link to the web UI of a node whose API is on `addr`.
pub fn login_url(addr: SocketAddr, node: &Node) -> Result<String, ApiError> {
    let secret = node
        .sessions()
        .new_link()
        .ok_or_else(|| failed("no randomness for a login link"))?;
    Ok(format!("http://{addr}/login?t={secret}"))
}

/// `agora open`: a one-time sign-in link from the running node, opened in the browser.
pub async fn open(home: &Path, print: bool) -> Result<(), ApiError> {
    let Some(client) = http::Client::for_home(home) else {
        return Err(ApiError::new(
            ErrorKind::Unreachable,
            "no node is running for this home: start it with `agora up`",
        ));
    };
    let link = client
        .call(&http::ops::UiLogin {})
        .await
        .map_err(|e| match e {
            http::ClientError::Api(e) => e,
            e => ApiError::new(
                ErrorKind::Unreachable,
                format!("the node did not answer: {e}"),
            ),
        })?;
    let url = format!("http://{}/login?t={}", client.endpoint().addr, link.secret);
    if print {
        say(&url);
        return Ok(());
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener).arg(&url).status() {
        Ok(status) if status.success() => {
            say("Opened Agora in your browser.");
            Ok(())
        }
        _ => {
            say(&format!(
                "Open this link in your browser (it works once): {url}"
            ));
            Ok(())
        }
    }
}

/// Prints a line on stdout at once (scripts and tests read it while the node runs).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the node until Ctrl-C or SIGTERM.
pub async fn run(home: &Path, args: UpArgs, json_out: bool) -> Result<(), ApiError> {
    let chosen = args.api.is_some();
    let api_text = args.api.clone().unwrap_or_else(|| DEFAULT_API.to_owned());
    let api_addr: SocketAddr = api_text
        .parse()
        .map_err(|e| usage(format!("malformed --api address {api_text:?}: {e}")))?;
    if !api_addr.ip().is_loopback() {
        return Err(usage(format!(
            "--api {api_addr}: the local API only listens on loopback (127.0.0.1 or ::1)"
        )));
    }
    let parse = |list: &[String], what: &str| -> Result<Vec<Multiaddr>, ApiError> {
        list.iter()
            .map(|a| {
                a.parse()
                    .map_err(|e| usage(format!("malformed {what} address {a:?}: {e}")))
            })
            .collect()
    };
    let mut config = Config::new(home);
    if !args.listen.is_empty() {
        config.listen = parse(&args.listen, "--listen")?;
    }
    let builtin: Vec<String> = agora_node::net::DEFAULT_BOOTSTRAP
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    config.bootstrap = if args.bootstrap.is_empty() {
        parse(&builtin, "built-in bootstrap")?
    } else {
        parse(&args.bootstrap, "--bootstrap")?
    };
    // Without --relay, a node behind NAT picks relays among its bootstrap peers by itself
    // once AutoNAT says it is not reachable (and none while it is).
    config.relay_via = parse(&args.relay, "--relay")?;
    // A personal node spaces out the reconciliations that find nothing (its data use).
    config.space_quiet_resyncs = true;
    config.mdns = !args.no_mdns;
    config.link_cards.enabled = !args.no_link_cards;
    config.daily_data_budget = args
        .daily_data_mib
        .map(agora_node::net::budget::daily_cap_from_mib)
        .transpose()
        .map_err(usage)?;

    let fresh = !Home::new(home).is_initialised();
    let node = match Node::start(config).await {
        Ok(node) => node,
        Err(NodeError::Store(agora_node::store::StoreError::Locked(_))) => {
            let hint = Files::new(home)
                .read()
                .map(|(e, _)| format!(" (pid {}, API on {})", e.pid, e.addr))
                .unwrap_or_default();
            return Err(ApiError::new(
                ErrorKind::Locked,
                format!(
                    "another agora node is already running for {}{hint}",
                    home.display()
                ),
            ));
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    if fresh {
        tracing::info!(home = %home.display(), "new identity created");
    }
    // Said on stderr whatever the log level: a person must not miss it.
    for d in node.damage().map_err(ApiError::from)? {
        eprintln!(
            "agora: STORE DAMAGED: subwiki {} lost {} of its {} entries{}",
            d.subwiki,
            d.missing(),
            d.expected,
            if d.joined {
                "; fetching them again from peers (`agora status` shows the progress)"
            } else {
                ""
            }
        );
    }
    let listener = match tokio::net::TcpListener::bind(api_addr).await {
        Ok(listener) => listener,
        // The default port is taken (another node, another program): any free one will do.
        Err(e) if !chosen && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(api_addr.ip(), 0);
            tokio::net::TcpListener::bind(any)
                .await
                .map_err(|e| failed(format!("cannot listen for the API on {any}: {e}")))?
        }
        Err(e) => {
            return Err(failed(format!(
                "cannot listen for the API on {api_addr}: {e}"
            )));
        }
    };
    let bound = listener.local_addr().map_err(failed)?;
    let files = Files::new(home);
    let token = files
        .publish(&Endpoint {
            addr: bound,
            pid: std::process::id(),
        })
        .map_err(|e| {
            failed(format!(
                "cannot write the API files in {}: {e}",
                home.display()
            ))
        })?;
    let ui = login_url(bound, &node)?;
    let router = http::router(node.clone(), bound.port(), token);
    let server = tokio::spawn(http::serve(listener, router));

    let addrs = tokio::time::timeout(LISTEN_TIMEOUT, node.listen_addrs())
        .await
        .unwrap_or_default();
    if json_out {
        let started = Started {
            peer_id: node.peer_id().to_string(),
            author: node.author(),
            listen: addrs.iter().map(ToString::to_string).collect(),
            api: bound,
            ui: ui.clone(),
        };
        say(&serde_json::to_string(&started).map_err(failed)?);
    } else {
        say(&format!("peer {}", node.peer_id()));
        say(&format!("author {}", node.author()));
        for addr in &addrs {
            say(&format!("listening {addr}"));
        }
        say(&format!("api {bound}"));
        say(&format!("Open Agora in your browser: {ui}"));
    }

    let result = wait_for_signal().await;
    tracing::info!("shutting down");
    exit_after(SHUTDOWN_WAIT);
    server.abort();
    files.remove();
    node.shutdown().await;
    // A store that failed a write is left without its last flush (see `store/sled.rs`).
    match node.writable() {
        Err(NodeError::Store(agora_node::store::StoreError::DiskFull { .. })) | Ok(()) => result,
        Err(e) => Err(failed(format!(
            "the store was not closed cleanly ({e}); every write acknowledged was already on disk"
        ))),
    }
}

/// How long `up` may take to stop after Ctrl-C or SIGTERM (the store's last flush included)
/// before it exits regardless.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// Ends the process with exit code 1, saying so, if it is still running after `wait`: a disk
/// that stopped answering must not keep the node from stopping. Everything acknowledged was
/// made durable before it was acknowledged.
fn exit_after(wait: Duration) {
    let watchdog = move || {
        std::thread::sleep(wait);
        eprintln!(
            "agora: the node did not stop within {} s (is the disk full or failing?); stopping \
             anyway: every write acknowledged was already on disk",
            wait.as_secs()
        );
        std::process::exit(1);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("agora-shutdown".into())
        .spawn(watchdog)
    {
        tracing::warn!("no shutdown watchdog: {e}");
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> Result<(), ApiError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(failed)?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(failed),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Result<(), ApiError> {
    tokio::signal::ctrl_c().await.map_err(failed)
}
