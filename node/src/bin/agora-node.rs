//! `agora-node`: maintenance and test driver commands over the node library.
//!
//! Thin on purpose: parse the command line, call the library, print what it did, and map an
//! error to exit code 1 with its chain on one line of stderr (usage errors exit 2, from clap).
//!
//! - `rebuild-indexes --home DIR`: recomputes every index of the store from the entries, and
//!   says what its manifest counts that it no longer holds (`missing`); then builds the search
//!   index again from the posts (`search posts N`).
//! - `write-stream --home DIR --count N`: writes N posts offline, printing `done <post id>`
//!   after each is durable (the crash test kills it mid-stream).
//! - `serve --home DIR ...`: runs a node, optionally founding or joining a subwiki, and waits
//!   until its feed holds enough posts, then prints the peers it is connected to (the LAN
//!   test runs two in network namespaces).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agora_crdt::{
    AuthorKey, Base, DocId, Policy, PostContent, Replica, SubwikiId, Timestamp, VoteValue,
};
use agora_node::home::Home;
use agora_node::store::{SledStore, Store};
use agora_node::{Config, Node};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use libp2p::Multiaddr;

/// How long `serve` waits for its first listen address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Agora node maintenance and test commands.
#[derive(Debug, Parser)]
#[command(name = "agora-node", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Recompute the store's indexes from the signed entries (removes damaged entries), then
    /// the search index.
    RebuildIndexes {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
    },
    /// Found a subwiki offline and write posts to it one after another, printing
    /// `done <post id>` once each is durable; every third post is then edited
    /// (`edited <post id> <entry id>`) and every fourth voted on (`voted <entry id>`), and
    /// every fifth time a post by another author, in a subwiki that author founded, is taken
    /// as a peer's entries are (`received <post id>`), each printed once durable.
    WriteStream {
        /// The node's home directory (created if missing).
        #[arg(long)]
        home: PathBuf,
        /// How many posts to write.
        #[arg(long)]
        count: u64,
    },
    /// Run a node; optionally found or join a subwiki and wait for posts in the feed.
    Serve {
        /// The node's home directory (created if missing).
        #[arg(long)]
        home: PathBuf,
        /// Address to listen on (repeatable); default: TCP and QUIC on all interfaces.
        #[arg(long = "listen", value_name = "MULTIADDR")]
        listen: Vec<Multiaddr>,
        /// Do not look for peers on the local network.
        #[arg(long)]
        no_mdns: bool,
        /// Found a subwiki with this name and print `subwiki <id>`.
        #[arg(long, value_name = "NAME", conflicts_with = "join")]
        create: Option<String>,
        /// Join a subwiki by id; peers are found by discovery.
        #[arg(long, value_name = "SUBWIKI_ID")]
        join: Option<SubwikiId>,
        /// Write a post with this title to the subwiki founded or joined.
        #[arg(long, value_name = "TITLE")]
        post: Option<String>,
        /// Exit 0 once the feed holds at least this many posts.
        #[arg(long, value_name = "N")]
        expect_posts: Option<usize>,
        /// Give up after this many seconds: exit 1 if posts were expected, else exit 0.
        #[arg(long, value_name = "S")]
        timeout_secs: Option<u64>,
        /// At most this many MiB a day on the network, sent and received together (1 to
        /// 1048576): catch-up pauses at four fifths, the node goes offline at the cap.
        #[arg(long, value_name = "MIB")]
        daily_data_mib: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agora-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::RebuildIndexes { home } => rebuild_indexes(&home),
        Command::WriteStream { home, count } => write_stream(&home, count).await,
        Command::Serve {
            home,
            listen,
            no_mdns,
            create,
            join,
            post,
            expect_posts,
            timeout_secs,
            daily_data_mib,
        } => {
            let mut config = Config::new(home);
            if !listen.is_empty() {
                config.listen = listen;
            }
            config.mdns = !no_mdns;
            config.daily_data_budget = daily_data_mib
                .map(agora_node::net::budget::daily_cap_from_mib)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let serve = Serve {
                config,
                create,
                join,
                post,
                expect_posts,
                timeout: timeout_secs.map(Duration::from_secs),
            };
            serve.run().await
        }
    }
}

/// Prints one line and flushes it, so that a reader sees it before whatever comes next.
fn say(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

fn rebuild_indexes(home: &Path) -> Result<()> {
    let dir = Home::new(home).store();
    if !dir.is_dir() {
        bail!("no store at {}", dir.display());
    }
    let store = SledStore::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let rebuilt = store
        .rebuild_indexes()
        .with_context(|| format!("rebuilding the indexes of {}", dir.display()))?;
    // What the store's manifest says it once held and no longer does.
    let damage = store
        .damage()
        .with_context(|| format!("checking {} against its manifest", dir.display()))?;
    say(format_args!(
        "entries {} posts {} corrupt {} missing {}",
        rebuilt.entries,
        rebuilt.posts,
        rebuilt.corrupt.len(),
        damage.iter().map(|d| d.missing()).sum::<u64>()
    ))?;
    for d in damage {
        say(format_args!(
            "missing {} held {} of {}",
            d.subwiki, d.held, d.expected
        ))?;
    }
    drop(store);
    // The search index, derived from the posts: deleted and built again.
    let node = Node::open_offline(home).with_context(|| format!("opening {}", home.display()))?;
    let posts = node
        .rebuild_search()
        .with_context(|| format!("rebuilding the search index of {}", home.display()))?;
    say(format_args!("search posts {posts}"))
}

fn post(title: String) -> PostContent {
    PostContent {
        title,
        ..Default::default()
    }
}

async fn write_stream(home: &Path, count: u64) -> Result<()> {
    let node = Node::open_offline(home).with_context(|| format!("opening {}", home.display()))?;
    let subwiki = node
        .create_subwiki(
            "stream",
            "posts written one after another",
            Policy::default(),
        )
        .await
        .context("founding the subwiki")?;
    say(format_args!("subwiki {subwiki}"))?;
    // Another author's subwiki, whose entries come in as a peer's do (gossip and catch-up take
    // the same path).
    let theirs_key = AuthorKey::from_secret([7; 32], [7; 8]);
    let (mut peer, genesis) = Replica::found(&theirs_key, now(), "theirs", "", Policy::default())
        .context("founding the other author's subwiki")?;
    let theirs = peer.id();
    node.accept_from_peer(theirs, vec![genesis])
        .context("taking the other author's genesis")?;
    node.join(theirs, Vec::new())
        .await
        .context("joining the other author's subwiki")?;
    for i in 0..count {
        let id = node
            .create_post(subwiki, post(format!("post {i}")))
            .await
            .with_context(|| format!("writing post {i}"))?;
        say(format_args!("done {id}"))?;
        if i % 3 == 1 {
            let edit = node
                .edit_post(id, Base::Latest, post(format!("post {i}, edited")))
                .await
                .with_context(|| format!("editing post {i}"))?;
            if let Some(edit) = edit {
                say(format_args!("edited {id} {edit}"))?;
            }
        }
        if i % 4 == 2 {
            let vote = node
                .vote_post(id, VoteValue::Keep, "")
                .await
                .with_context(|| format!("voting on post {i}"))?;
            say(format_args!("voted {vote}"))?;
        }
        if i % 5 == 3 {
            let entry = peer
                .create_post(&theirs_key, now(), post(format!("their post {i}")))
                .context("the other author's post")?;
            let id = entry.id();
            let accepted = node
                .accept_from_peer(theirs, vec![entry])
                .with_context(|| format!("taking their post {i}"))?;
            if !accepted.new.contains(&id) {
                bail!("their post {i} was not taken: {:?}", accepted.refused);
            }
            say(format_args!("received {}", DocId::from(id)))?;
        }
    }
    Ok(())
}

/// The current time as an entry timestamp.
fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

struct Serve {
    config: Config,
    create: Option<String>,
    join: Option<SubwikiId>,
    post: Option<String>,
    expect_posts: Option<usize>,
    timeout: Option<Duration>,
}

impl Serve {
    async fn run(self) -> Result<()> {
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let listening = !self.config.listen.is_empty();
        let node = Node::start(self.config.clone())
            .await
            .with_context(|| format!("starting the node in {}", self.config.home.display()))?;
        say(format_args!("peer {}", node.peer_id()))?;
        if listening {
            let addrs = tokio::time::timeout(LISTEN_TIMEOUT, node.listen_addrs())
                .await
                .context("no listen address in time")?;
            for addr in addrs {
                say(format_args!("listening {addr}"))?;
            }
        }
        let subwiki = match (&self.create, self.join) {
            (Some(name), _) => {
                let id = node
                    .create_subwiki(name, "", Policy::default())
                    .await
                    .with_context(|| format!("founding subwiki {name:?}"))?;
                say(format_args!("subwiki {id}"))?;
                Some(id)
            }
            (None, Some(id)) => {
                node.join(id, Vec::new())
                    .await
                    .with_context(|| format!("joining {id}"))?;
                say(format_args!("joined {id}"))?;
                Some(id)
            }
            (None, None) => None,
        };
        if let Some(title) = self.post.clone() {
            let Some(subwiki) = subwiki else {
                bail!("--post needs --create or --join");
            };
            let id = node
                .create_post(subwiki, post(title))
                .await
                .context("writing the post")?;
            say(format_args!("post {id}"))?;
        }
        let result = self.wait(&node, deadline).await;
        for peer in node.peers().await {
            say(format_args!("connected {}", peer.peer))?;
        }
        node.shutdown().await;
        result
    }

    /// Waits until the feed holds the posts expected (re-checking whenever the node stores
    /// entries), or until the deadline.
    async fn wait(&self, node: &Node, deadline: Option<tokio::time::Instant>) -> Result<()> {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_deadline);
        let Some(expected) = self.expect_posts else {
            until_deadline.await;
            return Ok(());
        };
        let mut changes = node.changes();
        loop {
            let held = node
                .feed(None, None, expected)
                .context("reading the feed")?
                .len();
            if held >= expected {
                return say(format_args!("feed {held}"));
            }
            tokio::select! {
                changed = changes.changed() => changed.context("the node stopped")?,
                () = &mut until_deadline => {
                    bail!("timed out with {held} of {expected} posts in the feed");
                }
            }
        }
    }
}
