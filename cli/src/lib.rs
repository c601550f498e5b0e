//! The `agora` command: a personal Agora node and everything a person does with it.
//!
//! - [`args`]: the command line (clap), the contract with users and scripts. Every command that
//!   runs on a node is an operation of the node's local API ([`agora_node::http::ops`]): clap
//!   parses its request type, and [`dispatch`] sends it to the running node or runs it on the
//!   store.
//! - [`output`]: the human rendering of each answer; `--json` prints the answer itself.
//! - [`keyfile`]: author keys exported under a passphrase, for a second device.
//! - `up`: the node in the foreground, serving its local API.
//!
//! A command first looks for a running node for its home (`<home>/api.json`); if there is
//! none, it opens the store itself (starting a temporary network node for the operations that
//! need peers, such as `subwiki join`), so every command works either way.

#![deny(missing_docs)]

pub mod args;
pub mod keyfile;
mod keys;
pub mod output;
mod repair;
mod up;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agora_node::http::{ApiError, Client, ClientError, ErrorKind, Operation, ops};
use agora_node::{Config, Node, NodeError};
use clap::{CommandFactory, Parser};
use serde::{Deserialize, Serialize};

use crate::args::{
    AccountCommand, Cli, Command, InboxArgs, InboxCommand, KeyCommand, ModeratorCommand,
    OverrideCommand, PostCommand, SubwikiCommand,
};
use crate::output::Render;

/// The profile kept in the home: the display name published in each subwiki joined.
pub(crate) const PROFILE_FILE: &str = "profile.json";

/// The process exit code for a kind of failure (documented in `docs/user-guide.md`).
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Locked => 4,
        ErrorKind::Unreachable => 5,
        ErrorKind::NoIdentity => 6,
        ErrorKind::NotAllowed => 7,
        ErrorKind::Gone => 8,
        _ => 1,
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agora: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the message quotes (a name, a path).
            eprintln!("agora: {}", output::printable(&e.message, None));
            ExitCode::from(exit_code(e.kind))
        }
    }
}

/// A command line clap refused: a malformed value is one line (`agora: malformed post id
/// ...`, exit 2), like every other error; help, version and usage errors are clap's own.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    if e.kind() == Clap::ValueValidation
        && let Some(source) = std::error::Error::source(&e)
    {
        eprintln!("agora: {source}");
        return ExitCode::from(2);
    }
    e.exit()
}

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else {
        match (cli.verbose, matches!(cli.command, Command::Up(_))) {
            // Kademlia warns at every periodic bootstrap while it knows no peer: not news.
            (0, true) => "warn,libp2p_kad=error,agora_node=info,agora_cli=info",
            (0, false) => "warn,libp2p_kad=error",
            (1, _) => "info,agora_node=debug,agora_cli=debug",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::failed(e)
}

pub(crate) fn usage(e: impl std::fmt::Display) -> ApiError {
    ApiError::usage(e.to_string())
}

/// The home directory: `--home`, `AGORA_HOME`, or the platform's data directory.
fn home_dir(cli: &Cli) -> Result<PathBuf, ApiError> {
    if let Some(home) = &cli.home {
        return Ok(home.clone());
    }
    dirs::data_dir()
        .map(|d| d.join("agora"))
        .ok_or_else(|| usage("no data directory on this system: pass --home DIR"))
}

/// The profile kept in the home.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// The display name.
    pub(crate) name: Option<String>,
}

pub(crate) fn read_profile_name(home: &Path) -> Option<String> {
    let bytes = std::fs::read(home.join(PROFILE_FILE)).ok()?;
    serde_json::from_slice::<Profile>(&bytes).ok()?.name
}

fn absolute(path: &Path) -> Result<PathBuf, ApiError> {
    std::path::absolute(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// How a command's answer is printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    json: bool,
    progress: bool,
}

impl Out {
    pub(crate) fn print<T: Serialize>(
        self,
        answer: &T,
        human: impl FnOnce() -> String,
    ) -> Result<(), ApiError> {
        let text = if self.json {
            let mut t = serde_json::to_string_pretty(answer).map_err(failed)?;
            t.push('\n');
            t
        } else {
            human()
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(failed)
    }
}

/// Runs an operation (through the running node or on the store) and prints its answer.
async fn exec<O: Render>(home: &Path, out: Out, op: O) -> Result<(), ApiError> {
    let (answer, _) = dispatch(home, &op, out.progress).await?;
    out.print(&answer, || op.render(&answer))
}

async fn run(cli: Cli) -> Result<(), ApiError> {
    let home = home_dir(&cli)?;
    let out = Out {
        json: cli.json,
        progress: !cli.json && !cli.quiet && std::io::stderr().is_terminal(),
    };
    let home = home.as_path();
    let profile_name = || read_profile_name(home);
    match cli.command {
        Command::Init { name } => keys::init(home, name, out),
        Command::Whoami => keys::whoami(home, out),
        Command::Repair => repair::run(home, out),
        Command::Up(args) => up::run(home, args, out.json).await,
        Command::Open { print } => up::open(home, print).await,
        Command::Key(KeyCommand::Export { file }) => keys::export(home, &file, out),
        Command::Key(KeyCommand::Import { file }) => keys::import(home, &file, out),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "agora", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let page = clap_mangen::Man::new(Cli::command());
            let mut stdout = std::io::stdout().lock();
            page.render(&mut stdout).map_err(failed)
        }
        Command::Subwiki(command) => match command {
            SubwikiCommand::Create(mut op) => {
                op.profile_name = profile_name();
                exec(home, out, op).await
            }
            SubwikiCommand::Join(mut op) => {
                op.profile_name = profile_name();
                exec(home, out, op).await
            }
            SubwikiCommand::Leave(op) => exec(home, out, op).await,
            SubwikiCommand::List(op) => exec(home, out, op).await,
            SubwikiCommand::Show(op) => exec(home, out, op).await,
            SubwikiCommand::Discover(op) => exec(home, out, op).await,
            SubwikiCommand::Invite(op) => exec(home, out, op).await,
        },
        Command::Post(command) => match command {
            PostCommand::New(mut op) => {
                op.body =
                    Some(body(op.body.take(), op.body_file.take(), None)?.unwrap_or_default());
                op.image = op.image.as_deref().map(absolute).transpose()?;
                exec(home, out, op).await
            }
            PostCommand::Edit(op) => exec(home, out, edit_request(home, op)?).await,
            PostCommand::Show(op) => exec(home, out, op).await,
            PostCommand::History(op) => exec(home, out, op).await,
            PostCommand::Revert(op) => exec(home, out, op).await,
            PostCommand::Export(mut op) => {
                op.file = absolute(&op.file)?;
                exec(home, out, op).await
            }
            PostCommand::Retract(op) => exec(home, out, op).await,
        },
        Command::Comment(op) => exec(home, out, op).await,
        Command::Feed(op) => exec(home, out, op).await,
        Command::Search(op) => exec(home, out, op).await,
        Command::Inbox(InboxArgs {
            command: Some(InboxCommand::Read(op)),
            ..
        }) => exec(home, out, op).await,
        Command::Inbox(args) => exec(home, out, args.list).await,
        Command::Follow(op) => exec(home, out, op).await,
        Command::Unfollow(op) => exec(home, out, op).await,
        Command::Following(op) => exec(home, out, op).await,
        Command::Vote(op) => exec(home, out, op).await,
        Command::Mute(op) => exec(home, out, op).await,
        Command::Unmute(op) => exec(home, out, op).await,
        Command::Vouch(op) => exec(home, out, op).await,
        Command::Revoke(op) => exec(home, out, op).await,
        Command::Redact(op) => exec(home, out, op).await,
        Command::Account(AccountCommand::Retract(op)) => exec(home, out, op).await,
        Command::Moderator(ModeratorCommand::Add(op)) => exec(home, out, op).await,
        Command::Moderator(ModeratorCommand::Remove(op)) => exec(home, out, op).await,
        Command::Modlog(op) => exec(home, out, op).await,
        Command::Override(OverrideCommand::Ignore(op)) => exec(home, out, op).await,
        Command::Override(OverrideCommand::Restore(op)) => exec(home, out, op).await,
        Command::Override(OverrideCommand::List(op)) => exec(home, out, op).await,
        Command::Peers(op) => exec(home, out, op).await,
        Command::Status(op) => {
            let (mut answer, through_api) = dispatch(home, &op, out.progress).await?;
            answer.running = through_api;
            out.print(&answer, || op.render(&answer))
        }
        Command::Export(mut op) => {
            op.file = absolute(&op.file)?;
            exec(home, out, op).await
        }
        Command::Import(mut op) => {
            op.file = absolute(&op.file)?;
            exec(home, out, op).await
        }
    }
}

/// Reads a post body from `--body`, from `--body-file`, from $EDITOR on a terminal (starting
/// from `current`), or none.
fn body(
    text: Option<String>,
    file: Option<PathBuf>,
    current: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if let Some(body) = text {
        return Ok(Some(body));
    }
    if let Some(path) = file {
        // Read with a cap: `/dev/zero` or a pipe that never ends is refused, not read forever.
        let max = agora_crdt::MAX_CONTENT_BYTES;
        let mut text = String::new();
        let (name, read) = if path.as_os_str() == "-" {
            let read = std::io::stdin()
                .take(max as u64 + 1)
                .read_to_string(&mut text);
            ("standard input".to_owned(), read)
        } else {
            let read = std::fs::File::open(&path)
                .and_then(|f| f.take(max as u64 + 1).read_to_string(&mut text));
            (path.display().to_string(), read)
        };
        read.map_err(|e| usage(format!("{name}: {e}")))?;
        if text.len() > max {
            return Err(usage(format!(
                "{name}: over the limit of {max} bytes for a post"
            )));
        }
        return Ok(Some(text));
    }
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return edit(current.unwrap_or_default()).map(Some);
    }
    Ok(None)
}

/// A post edit as the user asked it: the body from the options, or, on a terminal with no
/// options, from $EDITOR opened on the post as it read then.
fn edit_request(home: &Path, mut op: ops::PostEdit) -> Result<ops::PostEdit, ApiError> {
    let interactive = op.body.is_none()
        && op.body_file.is_none()
        && op.title.is_none()
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    if interactive {
        // The editor opens on the current text, read through the same path.
        let shown = read_blocking(
            home,
            ops::PostShow {
                post: op.post,
                at: None,
            },
        )?;
        if shown.post.retracted.is_some() {
            return Err(ApiError::new(
                ErrorKind::Gone,
                format!("{} was retracted or redacted: nothing to edit", op.post),
            ));
        }
        op.body = Some(edit(&shown.post.body)?);
    } else {
        op.body = body(op.body.take(), op.body_file.take(), None)?;
    }
    Ok(op)
}

/// Runs a read on a small runtime of its own (for the editor, before the command's own call).
fn read_blocking<O: Operation>(home: &Path, op: O) -> Result<O::Answer, ApiError> {
    let home = home.to_owned();
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(failed)?
                .block_on(async { dispatch(&home, &op, false).await.map(|(a, _)| a) })
        })
        .join()
        .unwrap_or_else(|_| Err(failed("reading the post failed")))
    })
}

/// Runs an operation: through the running node's API if there is one, else on the store
/// directly. Also says whether it went through a running node.
pub async fn dispatch<O: Operation>(
    home: &Path,
    op: &O,
    progress: bool,
) -> Result<(O::Answer, bool), ApiError> {
    if let Some(client) = Client::for_home(home) {
        let probe = || {
            let client = client.clone();
            async move { client.call(&ops::Status {}).await.ok() }
        };
        match with_progress(progress, O::PATH, client.call(op), probe).await {
            Ok(answer) => return Ok((answer, true)),
            Err(ClientError::Api(e)) => return Err(e),
            // Stale files from a node that did not stop cleanly: work on the store.
            Err(ClientError::NotRunning) => {}
            Err(e) => {
                return Err(failed(format!(
                    "the running node ({}) did not answer properly: {e}",
                    client.endpoint().addr
                )));
            }
        }
    }
    keys::load_identity(home)?;
    let node = if O::NEEDS_NETWORK {
        let mut config = Config::new(home);
        config.listen = Vec::new();
        Node::start(config).await
    } else {
        Node::open_offline(home)
    }
    .map_err(|e| match e {
        NodeError::Store(agora_node::store::StoreError::Locked(_)) => ApiError::new(
            ErrorKind::Locked,
            format!(
                "the store in {} is in use by another process; try again, or stop it",
                home.display()
            ),
        ),
        e => ApiError::from(e),
    })?;
    let probe = || {
        let node = node.clone();
        async move { ops::Status {}.run(&node).await.ok() }
    };
    let result = with_progress(progress, O::PATH, op.clone().run(&node), probe).await;
    node.shutdown().await;
    Ok((result?, false))
}

/// Runs `work`; for a join or an import on a terminal, shows a spinner with the entries held
/// so far (from the status that `probe` reads).
async fn with_progress<T, F, P, PF>(show: bool, path: &str, work: F, probe: P) -> T
where
    F: std::future::Future<Output = T>,
    P: Fn() -> PF,
    PF: std::future::Future<Output = Option<ops::NodeStatus>>,
{
    let label = match path {
        p if p == ops::SubwikiJoin::PATH => "Catching up",
        p if p == ops::Import::PATH => "Importing",
        _ => return work.await,
    };
    if !show {
        return work.await;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("{label}…"));
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            result = &mut work => {
                bar.finish_and_clear();
                return result;
            }
            _ = tick.tick() => {
                if let Some(status) = probe().await {
                    let entries: usize = status.subwikis.iter().map(|s| s.entries).sum();
                    bar.set_message(format!("{label}… {entries} entries held"));
                }
                bar.tick();
            }
        }
    }
}

/// Opens `$VISUAL` or `$EDITOR` (default `vi`) on `text` and returns what was saved.
fn edit(text: &str) -> Result<String, ApiError> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut file = tempfile::Builder::new()
        .prefix("agora-post-")
        .suffix(".md")
        .tempfile()
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    let path = file.path().to_owned();
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(&path)
        .status()
        .map_err(|e| failed(format!("cannot run the editor {editor:?}: {e}")))?;
    if !status.success() {
        return Err(failed(format!(
            "the editor {editor:?} failed; nothing saved"
        )));
    }
    std::fs::read_to_string(&path).map_err(failed)
}
