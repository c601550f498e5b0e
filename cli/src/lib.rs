//! The `agora` command: a personal Agora node and everything a person does with it.
//!
//! - [`args`]: the command line (clap), the contract with users and scripts.
//! - [`call`]: each command as a [`call::Call`], run on an [`agora_node::Node`] by
//!   [`call::execute`], answering JSON.
//! - [`api`]: the local HTTP+JSON API of `agora up` that carries the same calls, bound to
//!   loopback, authenticated by a token file readable only by the owner.
//! - [`output`]: the human rendering of each answer; `--json` prints the answer itself.
//! - [`keyfile`]: author keys exported under a passphrase, for a second device.
//! - `up`: the node in the foreground.
//!
//! A command first looks for a running node for its home (`<home>/api.json`); if there is
//! none, it opens the store itself (starting a temporary network node for the commands that
//! need peers, such as `subwiki join`), so every command works either way.

#![deny(missing_docs)]

pub mod api;
pub mod args;
pub mod call;
pub mod keyfile;
pub mod output;
mod up;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agora_node::home::Home;
use agora_node::{Config, Node, NodeError};
use clap::{CommandFactory, Parser};
use serde_json::{Value, json};

use crate::api::{ClientError, Files};
use crate::args::{BodyArgs, Cli, Command, KeyCommand, PostCommand, SubwikiCommand};
use crate::call::{Call, CallError, Kind, set};

/// The profile kept in the home: the display name published in each subwiki joined.
const PROFILE_FILE: &str = "profile.json";

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("agora: {}", e.message);
            ExitCode::from(e.kind.exit_code())
        }
    }
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

fn failed(e: impl std::fmt::Display) -> CallError {
    CallError::new(Kind::Failed, e.to_string())
}

fn usage(e: impl std::fmt::Display) -> CallError {
    CallError::new(Kind::Usage, e.to_string())
}

/// The home directory: `--home`, `AGORA_HOME`, or the platform's data directory.
fn home_dir(cli: &Cli) -> Result<PathBuf, CallError> {
    if let Some(home) = &cli.home {
        return Ok(home.clone());
    }
    dirs::data_dir()
        .map(|d| d.join("agora"))
        .ok_or_else(|| usage("no data directory on this system: pass --home DIR"))
}

fn read_profile_name(home: &Path) -> Option<String> {
    let bytes = std::fs::read(home.join(PROFILE_FILE)).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value
        .get("name")
        .unwrap_or(&Value::Null)
        .as_str()
        .map(str::to_owned)
}

fn absolute(path: &Path) -> Result<PathBuf, CallError> {
    std::path::absolute(path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

fn print(json_out: bool, call: &Call, value: &Value) -> Result<(), CallError> {
    let text = if json_out {
        let mut t = serde_json::to_string_pretty(value).map_err(failed)?;
        t.push('\n');
        t
    } else {
        output::render(call, value)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(failed)
}

async fn run(cli: Cli) -> Result<(), CallError> {
    let home = home_dir(&cli)?;
    let json_out = cli.json;
    let quiet = cli.quiet;
    match cli.command {
        Command::Init { name } => init(&home, name, json_out),
        Command::Whoami => {
            let identity = load_identity(&home)?;
            let value = json!({
                "author": identity.author.id().to_string(),
                "fingerprint": identity.author.id().fingerprint(),
                "name": read_profile_name(&home),
                "peer_id": identity.node.public().to_peer_id().to_string(),
            });
            print(json_out, &Call::Whoami { name: None }, &value)
        }
        Command::Up(args) => up::run(&home, args, json_out).await,
        Command::Key(KeyCommand::Export { file }) => key_export(&home, &file, json_out),
        Command::Key(KeyCommand::Import { file }) => key_import(&home, &file, json_out),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "agora", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let page = clap_mangen::Man::new(Cli::command());
            let mut out = std::io::stdout().lock();
            page.render(&mut out).map_err(failed)
        }
        command => {
            let call = to_call(&home, command)?;
            let progress = !json_out && !quiet && std::io::stderr().is_terminal();
            let value = dispatch(&home, call.clone(), progress).await?;
            print(json_out, &call, &value)
        }
    }
}

fn load_identity(home: &Path) -> Result<agora_node::home::Identity, CallError> {
    let h = Home::new(home);
    if !h.is_initialised() {
        return Err(CallError::new(
            Kind::NoIdentity,
            format!("no identity in {}: run `agora init` first", home.display()),
        ));
    }
    h.load().map_err(failed)
}

fn init(home: &Path, name: Option<String>, json_out: bool) -> Result<(), CallError> {
    let identity = Home::new(home).init().map_err(|e| match e {
        agora_node::home::HomeError::Exists(_) => CallError::new(
            Kind::Failed,
            format!(
                "an identity already exists in {} (refusing to replace it)",
                home.display()
            ),
        ),
        e => failed(e),
    })?;
    if let Some(name) = &name {
        std::fs::write(home.join(PROFILE_FILE), json!({ "name": name }).to_string())
            .map_err(failed)?;
    }
    let value = json!({
        "id": identity.author.id().to_string(),
        "author": identity.author.id().to_string(),
        "fingerprint": identity.author.id().fingerprint(),
        "name": name,
        "peer_id": identity.node.public().to_peer_id().to_string(),
        "home": home,
    });
    if json_out {
        println!("{value:#}");
    } else {
        println!(
            "Created an identity in {}\nauthor   {}\npeer id  {}",
            home.display(),
            value
                .get("author")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            value
                .get("peer_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn passphrase(confirm: bool) -> Result<String, CallError> {
    if let Ok(p) = std::env::var("AGORA_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "a passphrase is needed: run on a terminal, or set AGORA_PASSPHRASE",
        ));
    }
    let first = rpassword::prompt_password("Passphrase: ").map_err(failed)?;
    if confirm {
        let again = rpassword::prompt_password("Passphrase again: ").map_err(failed)?;
        if again != first {
            return Err(usage("the passphrases differ"));
        }
    }
    Ok(first)
}

fn key_export(home: &Path, file: &Path, json_out: bool) -> Result<(), CallError> {
    let identity = load_identity(home)?;
    if file.exists() {
        return Err(usage(format!(
            "{}: exists already (refusing to overwrite)",
            file.display()
        )));
    }
    let text = keyfile::seal(&identity.author, &passphrase(true)?).map_err(usage)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| failed(format!("{}: {e}", file.display())))?;
    let value = json!({ "author": identity.author.id().to_string(), "file": file });
    if json_out {
        println!("{value:#}");
    } else {
        println!(
            "Exported author {} to {}\nOn the other device: agora key import {}",
            identity.author.id(),
            file.display(),
            file.display()
        );
    }
    Ok(())
}

fn key_import(home: &Path, file: &Path, json_out: bool) -> Result<(), CallError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    if Home::new(home).is_initialised() {
        return Err(CallError::new(
            Kind::Failed,
            format!(
                "an identity already exists in {} (import into a new home)",
                home.display()
            ),
        ));
    }
    let key = keyfile::open(&text, &passphrase(false)?).map_err(usage)?;
    let identity = Home::new(home).init_device(&key).map_err(failed)?;
    let value = json!({
        "author": identity.author.id().to_string(),
        "peer_id": identity.node.public().to_peer_id().to_string(),
        "home": home,
    });
    if json_out {
        println!("{value:#}");
    } else {
        println!(
            "This device now writes as {} (with its own device key)\npeer id  {}",
            identity.author.id(),
            value
                .get("peer_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Reads a post body from the options, from $EDITOR on a terminal, or none.
fn body(args: BodyArgs, current: Option<&str>) -> Result<Option<String>, CallError> {
    if let Some(body) = args.body {
        return Ok(Some(body));
    }
    if let Some(path) = args.body_file {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| usage(format!("standard input: {e}")))?;
        } else {
            text = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        }
        return Ok(Some(text));
    }
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return edit(current.unwrap_or_default()).map(Some);
    }
    Ok(None)
}

/// Opens `$VISUAL` or `$EDITOR` (default `vi`) on `text` and returns what was saved.
fn edit(text: &str) -> Result<String, CallError> {
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

fn to_call(home: &Path, command: Command) -> Result<Call, CallError> {
    let profile_name = read_profile_name(home);
    Ok(match command {
        Command::Subwiki(SubwikiCommand::Create {
            name,
            description,
            edit_policy,
            quorum,
            vouch_threshold,
        }) => Call::SubwikiCreate {
            quorum,
            vouch_threshold,
            name,
            description,
            edit_policy: match edit_policy {
                args::EditPolicyArg::Open => "open".into(),
                args::EditPolicyArg::Trusted => "trusted".into(),
            },
            profile_name,
        },
        Command::Subwiki(SubwikiCommand::Join { id, peer, timeout }) => Call::SubwikiJoin {
            id,
            peers: peer,
            timeout_secs: timeout,
            profile_name,
        },
        Command::Subwiki(SubwikiCommand::Leave { id }) => Call::SubwikiLeave { id },
        Command::Subwiki(SubwikiCommand::List) => Call::SubwikiList,
        Command::Subwiki(SubwikiCommand::Show { id }) => Call::SubwikiShow { id },
        Command::Subwiki(SubwikiCommand::Discover) => Call::SubwikiDiscover,
        Command::Subwiki(SubwikiCommand::Invite { id }) => Call::SubwikiInvite { id },
        Command::Post(PostCommand::New {
            subwiki,
            title,
            body: body_args,
            link,
            image,
        }) => Call::PostNew {
            subwiki,
            title,
            body: body(body_args, None)?.unwrap_or_default(),
            link,
            image: image.as_deref().map(absolute).transpose()?,
        },
        Command::Post(PostCommand::Edit {
            post,
            title,
            body: body_args,
        }) => {
            let interactive = body_args.body.is_none()
                && body_args.body_file.is_none()
                && title.is_none()
                && std::io::stdin().is_terminal()
                && std::io::stdout().is_terminal();
            let body = if interactive {
                // The editor opens on the current text, read through the same path.
                let current = futures_current_body(home, &post)?;
                Some(edit(&current)?)
            } else {
                body(body_args, None)?
            };
            if title.is_none() && body.is_none() {
                return Err(usage(
                    "nothing to change: give --title, --body or --body-file",
                ));
            }
            Call::PostEdit { post, title, body }
        }
        Command::Post(PostCommand::Show { post, at }) => Call::PostShow { post, at },
        Command::Post(PostCommand::History { post }) => Call::PostHistory { post },
        Command::Post(PostCommand::Revert { post, version }) => Call::PostRevert { post, version },
        Command::Post(PostCommand::Export { post, file }) => Call::PostExport {
            post,
            file: absolute(&file)?,
        },
        Command::Comment { post, text } => Call::Comment { post, text },
        Command::Feed {
            subwiki,
            show_hidden,
            limit,
            before,
        } => Call::Feed {
            subwiki,
            show_hidden,
            limit,
            before,
        },
        Command::Vote {
            post,
            value,
            reason,
        } => Call::Vote {
            post,
            value: match value {
                args::VoteArg::Hide => "hide",
                args::VoteArg::Keep => "keep",
                args::VoteArg::Misleading => "misleading",
                args::VoteArg::Verified => "verified",
                args::VoteArg::Withdraw => "withdraw",
            }
            .into(),
            reason,
        },
        Command::Mute {
            author,
            subwiki,
            reason,
        } => Call::VoteAuthor {
            subwiki,
            author,
            value: "mute".into(),
            reason,
        },
        Command::Unmute { author, subwiki } => Call::VoteAuthor {
            subwiki,
            author,
            value: "unmute".into(),
            reason: String::new(),
        },
        Command::Vouch { author, subwiki } => Call::Role {
            subwiki,
            author,
            action: "vouch".into(),
        },
        Command::Revoke { author, subwiki } => Call::Role {
            subwiki,
            author,
            action: "revoke".into(),
        },
        Command::Moderator(args::ModeratorCommand::Add { author, subwiki }) => Call::Role {
            subwiki,
            author,
            action: "appoint_moderator".into(),
        },
        Command::Moderator(args::ModeratorCommand::Remove { author, subwiki }) => Call::Role {
            subwiki,
            author,
            action: "remove_moderator".into(),
        },
        Command::Peers => Call::Peers,
        Command::Status => Call::Status,
        Command::Export { subwiki, file } => Call::Export {
            subwiki,
            file: absolute(&file)?,
        },
        Command::Import { file } => Call::Import {
            file: absolute(&file)?,
        },
        Command::Modlog { subwiki } => Call::Modlog { subwiki },
        Command::Override(args::OverrideCommand::Ignore { author }) => Call::Override {
            action: "ignore".into(),
            author: Some(author),
        },
        Command::Override(args::OverrideCommand::Restore { author }) => Call::Override {
            action: "restore".into(),
            author: Some(author),
        },
        Command::Override(args::OverrideCommand::List) => Call::Override {
            action: "list".into(),
            author: None,
        },
        Command::Init { .. }
        | Command::Whoami
        | Command::Up(_)
        | Command::Key(_)
        | Command::Completions { .. }
        | Command::Man => return Err(failed("not a node call")),
    })
}

/// The current body of a post, for the editor (a blocking read through a small runtime).
fn futures_current_body(home: &Path, post: &str) -> Result<String, CallError> {
    let call = Call::PostShow {
        post: post.to_owned(),
        at: None,
    };
    let home = home.to_owned();
    let value = std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(failed)?
                .block_on(dispatch(&home, call, false))
        })
        .join()
        .unwrap_or_else(|_| Err(failed("reading the post failed")))
    })?;
    Ok(value
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

/// Runs a call: through the running node's API if there is one, else on the store directly.
pub async fn dispatch(home: &Path, call: Call, progress: bool) -> Result<Value, CallError> {
    if let Some((endpoint, token)) = Files::new(home).read() {
        let body = serde_json::to_value(&call).map_err(failed)?;
        let request = api::request(&endpoint, &token, "POST", "/v1/call", Some(&body));
        let result = with_progress(progress, &call, request, || {
            let endpoint = endpoint.clone();
            let token = token.clone();
            async move {
                let status = serde_json::to_value(&Call::Status).ok()?;
                api::request(&endpoint, &token, "POST", "/v1/call", Some(&status))
                    .await
                    .ok()
            }
        })
        .await;
        match result {
            Ok(mut value) => {
                if matches!(call, Call::Status) {
                    set(&mut value, "running", json!(true));
                }
                return Ok(value);
            }
            Err(ClientError::Call(e)) => return Err(e),
            Err(ClientError::Broken(e)) => {
                return Err(failed(format!(
                    "the running node ({}) did not answer properly: {e}",
                    endpoint.addr
                )));
            }
            // Stale files from a node that did not stop cleanly: work on the store.
            Err(ClientError::NotRunning) => {}
        }
    }
    load_identity(home)?;
    let node = if call::needs_network(&call) {
        let mut config = Config::new(home);
        config.listen = Vec::new();
        Node::start(config).await
    } else {
        Node::open_offline(home)
    }
    .map_err(|e| match e {
        NodeError::Store(agora_node::store::StoreError::Locked(_)) => CallError::new(
            Kind::Locked,
            format!(
                "the store in {} is in use by another process; try again, or stop it",
                home.display()
            ),
        ),
        e => CallError::from(e),
    })?;
    let probe_node = node.clone();
    let result = with_progress(progress, &call, call::execute(&node, call.clone()), || {
        let node = probe_node.clone();
        async move { call::execute(&node, Call::Status).await.ok() }
    })
    .await;
    node.shutdown().await;
    let mut value = result?;
    if matches!(call, Call::Status) {
        set(&mut value, "running", json!(false));
    }
    Ok(value)
}

/// Runs `work`; for a join or an import on a terminal, shows a spinner with the entries held
/// so far (read with `status`, whose answer `probe` gives).
async fn with_progress<T, F, P, PF>(show: bool, call: &Call, work: F, probe: P) -> T
where
    F: std::future::Future<Output = T>,
    P: Fn() -> PF,
    PF: std::future::Future<Output = Option<Value>>,
{
    let label = match call {
        Call::SubwikiJoin { .. } => "Catching up",
        Call::Import { .. } => "Importing",
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
                    let entries: u64 = status.get("subwikis").unwrap_or(&Value::Null)
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s["entries"].as_u64())
                        .sum();
                    bar.set_message(format!("{label}… {entries} entries held"));
                }
                bar.tick();
            }
        }
    }
}
