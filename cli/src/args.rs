//! The command line, as clap definitions. The names here are the contract with users and
//! scripts: `docs/user-guide.md` documents them, the man page and completions are generated
//! from them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// The commands.
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
    /// Run the node in the foreground until interrupted (Ctrl-C or SIGTERM).
    Up(UpArgs),
    /// Found, join, leave and list subwikis.
    #[command(subcommand)]
    Subwiki(SubwikiCommand),
    /// Write, edit and read posts.
    #[command(subcommand)]
    Post(PostCommand),
    /// Comment on a post.
    Comment {
        /// The post.
        post: String,
        /// What to say.
        text: String,
    },
    /// The feed of the joined subwikis, newest first. Hidden posts are left out.
    Feed {
        /// Only this subwiki.
        #[arg(long)]
        subwiki: Option<String>,
        /// Show hidden posts too, each with its status.
        #[arg(long)]
        show_hidden: bool,
        /// How many posts.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        before: Option<String>,
    },
    /// Vote on a post: hide, keep, misleading, verified, or withdraw your vote.
    Vote {
        /// The post.
        post: String,
        /// Your vote.
        #[arg(value_enum)]
        value: VoteArg,
        /// Why (shown in the moderation log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Vote to mute an author in a subwiki (their posts and comments are hidden once enough
    /// trusted members agree).
    Mute {
        /// The author.
        author: String,
        /// The subwiki.
        #[arg(long)]
        subwiki: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Take back your mute vote on an author.
    Unmute {
        /// The author.
        author: String,
        /// The subwiki.
        #[arg(long)]
        subwiki: String,
    },
    /// Vouch that a member is trustworthy (counts if you are trusted, a moderator or the
    /// founder).
    Vouch {
        /// The member.
        author: String,
        /// The subwiki.
        #[arg(long)]
        subwiki: String,
    },
    /// Take back your vouch for a member.
    Revoke {
        /// The member.
        author: String,
        /// The subwiki.
        #[arg(long)]
        subwiki: String,
    },
    /// Appoint or remove a moderator (the founder only).
    #[command(subcommand)]
    Moderator(ModeratorCommand),
    /// The moderation log of a subwiki: every role statement and vote, who signed it, whether
    /// it counts and what it decided.
    Modlog {
        /// The subwiki.
        subwiki: String,
    },
    /// Stop or start again counting someone's votes in your own view (never published).
    #[command(subcommand)]
    Override(OverrideCommand),
    /// Peers the running node is connected to.
    Peers,
    /// Sync state per subwiki: entries held, peers, last sync.
    Status,
    /// Write a subwiki's signed entries to a file.
    Export {
        /// The subwiki.
        subwiki: String,
        /// The file to write.
        file: PathBuf,
    },
    /// Read a file of signed entries; every entry is checked, a bad file changes nothing.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Move your author key to another device, protected by a passphrase.
    #[command(subcommand)]
    Key(KeyCommand),
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
    /// A relay (an `agora-bootstrap` peer) to be reachable through from behind a NAT
    /// (repeatable). Default: the built-in bootstrap peers, which are relays.
    #[arg(long, value_name = "MULTIADDR")]
    pub relay: Vec<String>,
    /// Do not look for peers on the local network.
    #[arg(long)]
    pub no_mdns: bool,
    /// Where the local API listens; loopback only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub api: String,
}

/// `agora subwiki ...`
#[derive(Debug, Subcommand)]
pub enum SubwikiCommand {
    /// Found a subwiki; prints its id.
    Create {
        /// Its name.
        name: String,
        /// What it is about.
        #[arg(long, default_value = "")]
        description: String,
        /// Who may edit others' posts.
        #[arg(long, value_enum, default_value_t = EditPolicyArg::Open)]
        edit_policy: EditPolicyArg,
        /// Counted votes needed to hide a post, mark it disputed or verified, or mute an
        /// author.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
        quorum: u16,
        /// Trusted members whose vouches make someone trusted (a moderator's alone suffices).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
        vouch_threshold: u8,
    },
    /// Join a subwiki by id or by an invite from `agora subwiki invite`, and catch up.
    Join {
        /// The subwiki id, or an invite.
        id: String,
        /// A peer that has it (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        peer: Vec<String>,
        /// How long to wait for peers and the catch-up, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop replicating a subwiki.
    Leave {
        /// The subwiki.
        id: String,
    },
    /// The subwikis kept on this node.
    List,
    /// A subwiki's name, description, policy and size.
    Show {
        /// The subwiki.
        id: String,
    },
    /// Subwikis announced on the network that this node has heard of.
    Discover,
    /// Print an invite: the subwiki id with this node's addresses, for `agora subwiki join`.
    Invite {
        /// The subwiki.
        id: String,
    },
}

/// A vote on a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VoteArg {
    /// It should not be shown.
    Hide,
    /// It should stay (the appeal against hide votes).
    Keep,
    /// It is misleading.
    Misleading,
    /// It is accurate.
    Verified,
    /// Take back my vote.
    Withdraw,
}

/// `agora moderator ...`
#[derive(Debug, Subcommand)]
pub enum ModeratorCommand {
    /// Make a member a moderator.
    Add {
        /// The member.
        author: String,
        /// The subwiki.
        #[arg(long)]
        subwiki: String,
    },
    /// Remove a moderator.
    Remove {
        /// The member.
        author: String,
        /// The subwiki.
        #[arg(long)]
        subwiki: String,
    },
}

/// `agora override ...`
#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
    /// Stop counting this person's votes and role statements in your view.
    Ignore {
        /// The author.
        author: String,
    },
    /// Count them again.
    Restore {
        /// The author.
        author: String,
    },
    /// The people whose votes you do not count.
    List,
}

/// The edit policy of a new subwiki.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EditPolicyArg {
    /// Every member may improve every post.
    Open,
    /// Only trusted members may edit posts they did not write.
    Trusted,
}

/// `agora post ...`
#[derive(Debug, Subcommand)]
pub enum PostCommand {
    /// Write a post; prints its id. Without --body or --body-file on a terminal, opens $EDITOR.
    New {
        /// The subwiki.
        subwiki: String,
        /// Its title.
        #[arg(long)]
        title: String,
        /// The body.
        #[command(flatten)]
        body: BodyArgs,
        /// A link it shares.
        #[arg(long)]
        link: Option<String>,
        /// An image file to attach (at most 5 MiB).
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// Edit any post, wiki-style: the change is a diff, so concurrent edits merge. Without body
    /// options on a terminal, opens $EDITOR on the current text.
    Edit {
        /// The post.
        post: String,
        /// A new title.
        #[arg(long)]
        title: Option<String>,
        /// The body.
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Show a post with its comments, now or at an earlier version.
    Show {
        /// The post.
        post: String,
        /// A version (from `agora post history`).
        #[arg(long)]
        at: Option<String>,
    },
    /// Every change to a post: version, who, when, which fields.
    History {
        /// The post.
        post: String,
    },
    /// Restore a post to an earlier version (as a new change).
    Revert {
        /// The post.
        post: String,
        /// The version to restore.
        #[arg(id = "target_version", value_name = "VERSION")]
        version: String,
    },
    /// Write the post as a standard Automerge file, which any Automerge implementation opens.
    Export {
        /// The post.
        post: String,
        /// The file to write.
        file: PathBuf,
    },
}

/// Where a post's body comes from.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct BodyArgs {
    /// The body text.
    #[arg(long)]
    pub body: Option<String>,
    /// Read the body from a file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
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
