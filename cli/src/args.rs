//! The command line, as clap definitions. The names here are the contract with users and
//! scripts: `docs/user-guide.md` documents them, the man page and completions are generated
//! from them.

use std::path::PathBuf;

use agora_node::http::ops;
use clap::{Args, Parser, Subcommand};

/// A personal node of Agora, the peer-to-peer network of topic communities.
///
/// Every command works whether or not `agora up` is running for the home: with a node running
/// it goes through the node's local API, without one it opens the store itself and what it
/// writes is sent when the node next runs.
#[derive(Debug, Parser)]
#[command(name = "agora", version, propagate_version = true)]
pub struct Cli {
    /// The node's home directory (keys, store). Default: the platform's data directory for
    /// "agora" (on Linux `~/.local/share/agora`).
    #[arg(long, global = true, env = "AGORA_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (repeat for more); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands. Each command that runs on a node is one operation of the node's local API
/// ([`agora_node::http::ops`]): its arguments are the operation's request type, parsed here by
/// clap and sent as it is to the running node, or run on the store when none is running.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the author key and the node key in the home.
    Init {
        /// The name others see next to your posts (with a key fingerprint).
        #[arg(long)]
        name: Option<String>,
    },
    /// Show who this node writes as: author id, display name, node peer id.
    Whoami,
    /// Check the store entry by entry and repair it: damaged entries are removed, a database
    /// that cannot be opened is moved aside and what can still be read from it kept, and the
    /// subwikis it lost are recorded again, to be fetched from peers by `agora up`. Says what
    /// is missing. Run it with the node stopped.
    Repair,
    /// Run the node in the foreground until interrupted (Ctrl-C or SIGTERM).
    Up(UpArgs),
    /// Open the running node's web UI in the browser, signed in (a one-time link).
    Open {
        /// Print the link instead of opening a browser.
        #[arg(long)]
        print: bool,
    },
    /// Found, join, leave and list subwikis.
    #[command(subcommand)]
    Subwiki(SubwikiCommand),
    /// Write, edit and read posts.
    #[command(subcommand)]
    Post(PostCommand),
    /// Comment on a post.
    Comment(ops::Comment),
    /// The feed of the joined subwikis, newest first. Hidden posts are left out.
    Feed(ops::Feed),
    /// Search the joined subwikis: words (all must appear), "a phrase", pref* and -word, in
    /// titles, bodies, comments, links, tags and author names; most relevant first, or
    /// --newest. Hidden posts are left out.
    Search(ops::Search),
    /// Your inbox, newest first: comments on your posts, replies to your comments, edits of
    /// your posts, mentions of you, votes and role changes about you. `agora inbox read ID`
    /// (or `--all`) marks items read.
    Inbox(InboxArgs),
    /// Follow an author, on this device only (never published): their posts are in
    /// `agora feed --following`.
    Follow(ops::Follow),
    /// Stop following an author.
    Unfollow(ops::Unfollow),
    /// The authors you follow.
    Following(ops::Following),
    /// Vote on a post: hide, keep, misleading, verified, or withdraw your vote.
    Vote(ops::Vote),
    /// Vote to mute an author in a subwiki (their posts and comments are hidden once enough
    /// trusted members agree).
    Mute(ops::Mute),
    /// Take back your mute vote on an author.
    Unmute(ops::Unmute),
    /// Vouch that a member is trustworthy (counts if you are trusted, a moderator or the
    /// founder).
    Vouch(ops::Vouch),
    /// Take back your vouch for a member.
    Revoke(ops::Revoke),
    /// Redact a post or comment of a subwiki you founded or moderate, with a reason: every node
    /// that counts you as its moderator deletes its content and shows in its place who
    /// redacted it, when and why.
    Redact(ops::Redact),
    /// Appoint or remove a moderator (the founder only).
    #[command(subcommand)]
    Moderator(ModeratorCommand),
    /// The moderation log of a subwiki: every role statement and vote, who signed it, whether
    /// it counts and what it decided.
    Modlog(ops::Modlog),
    /// Stop or start again counting someone's votes in your own view (never published).
    #[command(subcommand)]
    Override(OverrideCommand),
    /// Peers the running node is connected to.
    Peers(ops::Peers),
    /// Sync state per subwiki: entries held, peers, last sync.
    Status(ops::Status),
    /// Write a subwiki's signed entries to a file.
    Export(ops::Export),
    /// Read a file of signed entries; every entry is checked, a bad file changes nothing.
    Import(ops::Import),
    /// Move your author key to another device, protected by a passphrase.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Take back everything you wrote: `agora account retract --subwiki ID` (or `--all`).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Print shell completions for the given shell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Options of `agora up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to listen on (repeatable). Default: TCP and QUIC on all interfaces, ports
    /// chosen by the system.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// A peer to dial at start, with its /p2p/ id (repeatable). Default: the built-in list of
    /// public bootstrap peers (empty until volunteers run some).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// A relay (an `agora-bootstrap` peer) to be reachable through always (repeatable). Not
    /// needed behind a NAT: the node finds out by itself and picks relays among its bootstrap
    /// peers.
    #[arg(long, value_name = "MULTIADDR")]
    pub relay: Vec<String>,
    /// Do not look for peers on the local network.
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not fetch the page of a link you post for its card (title, description, site name).
    /// By default the node fetches it once, in the background.
    #[arg(long)]
    pub no_link_cards: bool,
    /// Where the local API and the web UI listen; loopback only. By default 127.0.0.1:7130,
    /// or a free port when that one is taken.
    #[arg(long, value_name = "ADDR")]
    pub api: Option<String>,
    /// At most this many MiB a day (UTC) on the network, sent and received together (1 to
    /// 1048576). From four fifths of it, catching up waits for the next day while new posts
    /// still arrive by gossip; at the cap the node is offline until the next day. Default: no
    /// cap.
    #[arg(long, value_name = "MIB")]
    pub daily_data_mib: Option<u64>,
}

/// `agora subwiki ...`
#[derive(Debug, Subcommand)]
pub enum SubwikiCommand {
    /// Found a subwiki; prints its id.
    Create(ops::SubwikiCreate),
    /// Join a subwiki by id or by an invite from `agora subwiki invite`, and catch up.
    Join(ops::SubwikiJoin),
    /// Stop replicating a subwiki; with --purge, also delete everything of it from this home.
    Leave(ops::SubwikiLeave),
    /// The subwikis kept on this node.
    List(ops::SubwikiList),
    /// A subwiki's name, description, policy and size.
    Show(ops::SubwikiShow),
    /// Subwikis announced on the network that this node has heard of.
    Discover(ops::SubwikiDiscover),
    /// Print an invite: the subwiki id with this node's addresses, for `agora subwiki join`.
    Invite(ops::SubwikiInvite),
}

/// `agora inbox [read ...]`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InboxArgs {
    /// Mark items read.
    #[command(subcommand)]
    pub command: Option<InboxCommand>,
    /// Which items to list.
    #[command(flatten)]
    pub list: ops::Inbox,
}

/// `agora inbox ...`
#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Mark an item read (by the id `agora inbox` prints), or every item with --all.
    Read(ops::InboxRead),
}

/// `agora moderator ...`
#[derive(Debug, Subcommand)]
pub enum ModeratorCommand {
    /// Make a member a moderator.
    Add(ops::ModeratorAdd),
    /// Remove a moderator.
    Remove(ops::ModeratorRemove),
}

/// `agora override ...`
#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
    /// Stop counting this person's votes and role statements in your view.
    Ignore(ops::OverrideIgnore),
    /// Count them again.
    Restore(ops::OverrideRestore),
    /// The people whose votes you do not count.
    List(ops::OverrideList),
}

/// `agora post ...`
#[derive(Debug, Subcommand)]
pub enum PostCommand {
    /// Write a post; prints its id. Without --body or --body-file on a terminal, opens $EDITOR.
    New(ops::PostNew),
    /// Edit any post, wiki-style: the change is a diff against the version you edited, so
    /// concurrent edits merge. Without body options on a terminal, opens $EDITOR on the
    /// current text.
    Edit(ops::PostEdit),
    /// Show a post with its comments, now or at an earlier version.
    Show(ops::PostShow),
    /// Every change to a post: version, who, when, which fields.
    History(ops::PostHistory),
    /// Restore a post to an earlier version (as a new change).
    Revert(ops::PostRevert),
    /// Write the post as a standard Automerge file, which any Automerge implementation opens.
    Export(ops::PostExport),
    /// Retract a post or comment you wrote: every node that has it deletes its content and
    /// shows in its place that you retracted it, and when. It cannot be undone.
    Retract(ops::PostRetract),
}

/// `agora account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Retract everything you wrote in a subwiki (--subwiki ID) or in every subwiki you joined
    /// (--all): your posts, comments and profile. It cannot be undone.
    Retract(ops::AccountRetract),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

/// `agora key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write the author key to a file, encrypted with a passphrase (asked on the terminal, or
    /// taken from AGORA_PASSPHRASE).
    Export {
        /// The file to write.
        file: PathBuf,
    },
    /// Use an exported author key on this device (a new home): this device writes as the same
    /// author, with its own device suffix.
    Import {
        /// The exported key file.
        file: PathBuf,
    },
}
