//! Every operation of the API, by subject, with the answer types they share.
//!
//! Each request type derives serde (what travels) and clap's `Args` (what the `agora` command
//! parses): one definition per command. Ids are the model's newtypes, names are enums.

use std::str::FromStr;

use agora_crdt::moderation::{Standing, Statement};
use agora_crdt::{
    AuthorId, BlobHash, CommentView, Contribution, DocId, EditPolicy, EntryId, FeedCursor, Genesis,
    Hidden, LogItem, NotCounted, SubwikiId, Timestamp, Version, VoteTarget,
};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::http::server::route;
use crate::http::{ApiError, ErrorKind};
use crate::{FeedItem, Node, PostStatus};

pub mod archive;
pub mod inbox;
pub mod moderation;
pub mod peers;
pub mod posts;
pub mod retraction;
pub mod search;
pub mod subwikis;
mod text;

pub use self::archive::*;
pub use self::inbox::*;
pub use self::moderation::*;
pub use self::peers::*;
pub use self::posts::*;
pub use self::retraction::*;
pub use self::search::*;
pub use self::subwikis::*;

/// Every operation's route.
pub(crate) fn routes(router: Router<Node>) -> Router<Node> {
    let router = route::<SubwikiCreate>(router);
    let router = route::<SubwikiJoin>(router);
    let router = route::<SubwikiLeave>(router);
    let router = route::<SubwikiList>(router);
    let router = route::<SubwikiShow>(router);
    let router = route::<SubwikiDiscover>(router);
    let router = route::<SubwikiInvite>(router);
    let router = route::<PostNew>(router);
    let router = route::<PostEdit>(router);
    let router = route::<PostShow>(router);
    let router = route::<PostHistory>(router);
    let router = route::<PostRevert>(router);
    let router = route::<PostExport>(router);
    let router = route::<PostRetract>(router);
    let router = route::<Redact>(router);
    let router = route::<AccountRetract>(router);
    let router = route::<Comment>(router);
    let router = route::<Feed>(router);
    let router = route::<Search>(router);
    let router = route::<Inbox>(router);
    let router = route::<InboxRead>(router);
    let router = route::<Follow>(router);
    let router = route::<Unfollow>(router);
    let router = route::<Following>(router);
    let router = route::<Vote>(router);
    let router = route::<Mute>(router);
    let router = route::<Unmute>(router);
    let router = route::<Vouch>(router);
    let router = route::<Revoke>(router);
    let router = route::<ModeratorAdd>(router);
    let router = route::<ModeratorRemove>(router);
    let router = route::<Modlog>(router);
    let router = route::<OverrideIgnore>(router);
    let router = route::<OverrideRestore>(router);
    let router = route::<OverrideList>(router);
    let router = route::<Peers>(router);
    let router = route::<Status>(router);
    let router = route::<UiLogin>(router);
    let router = route::<Export>(router);
    route::<Import>(router)
}

/// A clap value parser for any `FromStr` type whose errors read `malformed <what> "<text>": ..`.
pub fn parser<T>(what: &'static str) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    move |text: &str| {
        text.trim()
            .parse()
            .map_err(|e| format!("malformed {what} {text:?}: {e}"))
    }
}

/// A clap value parser for a number in `range`, whose errors name the option: `--limit 0: ...`.
/// The operation checks the same range, for requests that come as JSON.
pub fn within<T>(
    option: &'static str,
    range: std::ops::RangeInclusive<T>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |text: &str| {
        text.trim()
            .parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| out_of_range(option, text, &range))
    }
}

/// `n` if it is in `range`, else the usage error that says the range.
pub(crate) fn check_within<T: PartialOrd + std::fmt::Display + Copy>(
    option: &str,
    n: T,
    range: &std::ops::RangeInclusive<T>,
) -> Result<T, ApiError> {
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::usage(out_of_range(option, n, range)))
    }
}

fn out_of_range<T: std::fmt::Display>(
    option: &str,
    given: impl std::fmt::Display,
    range: &std::ops::RangeInclusive<T>,
) -> String {
    format!(
        "{option} {given}: a whole number from {} to {}",
        range.start(),
        range.end()
    )
}

/// Someone, as shown next to what they wrote: never a name without its key's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// The author id.
    pub id: AuthorId,
    /// Their display name in the subwiki, if they set one.
    pub name: Option<String>,
    /// A short fingerprint of the key.
    pub fingerprint: String,
}

impl Author {
    /// The author `id` with `name`.
    pub fn new(id: AuthorId, name: Option<String>) -> Self {
        Self {
            fingerprint: id.fingerprint(),
            id,
            name,
        }
    }
}

/// A post as it reads now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// Its id.
    pub id: DocId,
    /// Its subwiki.
    pub subwiki: SubwikiId,
    /// Title.
    pub title: String,
    /// Body (Markdown).
    pub body: String,
    /// The link it shares.
    pub link: Option<String>,
    /// Images, by hash.
    pub images: Vec<BlobHash>,
    /// Tags.
    pub tags: Vec<String>,
    /// What the link points to (title, description, site name), if the post holds a card for
    /// its current link.
    #[serde(default)]
    pub card: Option<agora_crdt::LinkCard>,
    /// Who created it.
    pub author: AuthorId,
    /// Their display name.
    pub author_name: Option<String>,
    /// Their key's fingerprint.
    pub author_fingerprint: String,
    /// When it was created (claimed, ms).
    pub created_at: Timestamp,
    /// The latest change (claimed, ms).
    pub updated_at: Timestamp,
    /// Changes after the first.
    pub edits: usize,
    /// Everyone whose changes are in it.
    pub editors: Vec<AuthorId>,
    /// Comments.
    pub comments: usize,
    /// The version this is: what an edit of what the reader sees is based on. None for a
    /// retracted or redacted post, which has no content left.
    pub version: Option<Version>,
    /// Set when the post was retracted by its author or redacted by the founder or a
    /// moderator: who did it, when and why. Its content is gone (the texts above are empty).
    #[serde(default)]
    pub retracted: Option<Tombstone>,
}

impl From<&FeedItem> for Post {
    fn from(item: &FeedItem) -> Self {
        let p = &item.post;
        Self {
            id: p.meta.id,
            subwiki: item.subwiki,
            title: p.content.title.clone(),
            body: p.content.body.clone(),
            link: p.content.link.clone(),
            images: p.content.images.clone(),
            tags: p.content.tags.clone(),
            card: p.content.card_for_link().cloned(),
            author: p.meta.creator,
            author_name: p.author_name.clone(),
            author_fingerprint: p.meta.creator.fingerprint(),
            created_at: p.meta.created_at,
            updated_at: p.updated_at,
            edits: p.edits,
            editors: p.editors.iter().copied().collect(),
            comments: p.comments,
            version: p.retracted.is_none().then(|| p.version.clone()),
            retracted: p
                .retracted
                .as_ref()
                .map(|t| Tombstone::new(t, p.author_name.clone())),
        }
    }
}

/// What is left of a retracted or redacted post or comment: who took it back, when and why,
/// never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Who signed the retraction (the creator) or the redaction (the founder or a moderator).
    pub by: Author,
    /// When (claimed, ms).
    pub at: Timestamp,
    /// The reason given (required for a redaction).
    pub reason: String,
    /// Whether it was a redaction by the founder or a moderator, not a retraction by the
    /// creator.
    pub redaction: bool,
    /// The signed statement that removed it (in the moderation log).
    pub statement: EntryId,
}

impl Tombstone {
    /// The tombstone `t` of a document whose creator's display name is `creator_name`; the
    /// name of a redacting moderator is filled in by [`Tombstone::name_signer`].
    pub fn new(t: &agora_crdt::Tombstone, creator_name: Option<String>) -> Self {
        Self {
            by: Author::new(
                t.signer,
                (!t.is_redaction()).then_some(creator_name).flatten(),
            ),
            at: t.at,
            reason: t.reason.clone(),
            redaction: t.is_redaction(),
            statement: t.by,
        }
    }

    /// Fills in the display name of the founder or moderator who redacted it.
    pub(crate) fn name_signer(&mut self, node: &Node, subwiki: SubwikiId) {
        if self.by.name.is_none() {
            self.by.name = node.display_name_in(subwiki, &self.by.id).ok().flatten();
        }
    }
}

/// Why a post is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenBecause {
    /// Counted hide votes reached the quorum.
    Votes,
    /// Its author is muted in the subwiki.
    AuthorMuted,
    /// (A comment) its post is hidden.
    PostHidden,
}

/// A post's moderation status as this node's owner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostState {
    /// Hidden, and why.
    pub hidden: Option<HiddenBecause>,
    /// Marked misleading by enough counted votes.
    pub disputed: bool,
    /// Marked verified by enough counted votes.
    pub verified: bool,
}

impl From<&PostStatus> for PostState {
    fn from(s: &PostStatus) -> Self {
        Self {
            hidden: s.hidden.map(|h| match h {
                Hidden::ByVotes => HiddenBecause::Votes,
                Hidden::AuthorMuted => HiddenBecause::AuthorMuted,
                Hidden::PostHidden => HiddenBecause::PostHidden,
            }),
            disputed: s.disputed,
            verified: s.verified,
        }
    }
}

/// A subwiki's founding facts, from its genesis entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubwikiAbout {
    /// Its id.
    pub id: SubwikiId,
    /// Name (once the genesis entry is held).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Who may edit others' posts.
    pub edit_policy: Option<EditPolicy>,
    /// Counted votes needed for an outcome.
    pub quorum: Option<u16>,
    /// Trusted vouches that make someone trusted.
    pub vouch_threshold: Option<u8>,
}

impl SubwikiAbout {
    /// The facts of subwiki `id`, from its genesis if held.
    pub fn new(id: SubwikiId, genesis: Option<&Genesis>) -> Self {
        Self {
            id,
            name: genesis.map(|g| g.name.clone()),
            description: genesis.map(|g| g.description.clone()),
            edit_policy: genesis.map(|g| g.policy.edit),
            quorum: genesis.map(|g| g.policy.hide_quorum),
            vouch_threshold: genesis.map(|g| g.policy.vouch_threshold),
        }
    }
}

/// A subwiki this node keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subwiki {
    /// Its founding facts.
    #[serde(flatten)]
    pub about: SubwikiAbout,
    /// Whether the owner is a member.
    pub joined: bool,
    /// Entries held.
    pub entries: usize,
}

impl Subwiki {
    /// The subwiki `id` as kept on `node`; not found if it is not kept.
    pub fn of(node: &Node, id: SubwikiId) -> Result<Self, ApiError> {
        let info = node
            .subwikis()?
            .into_iter()
            .find(|s| s.id == id && Self::kept(s))
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("unknown subwiki {id}")))?;
        Ok(Self::from(info))
    }
}

impl Subwiki {
    /// Whether the node keeps anything of a subwiki it has a record of: it is joined, or holds
    /// entries. A join that received nothing leaves a record of neither (`subwiki join`).
    pub fn kept(info: &crate::SubwikiInfo) -> bool {
        info.joined || info.entries > 0
    }
}

impl From<crate::SubwikiInfo> for Subwiki {
    fn from(info: crate::SubwikiInfo) -> Self {
        Self {
            about: SubwikiAbout::new(info.id, info.genesis.as_ref()),
            joined: info.joined,
            entries: info.entries,
        }
    }
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentItem {
    /// Its id.
    pub id: DocId,
    /// The comment it answers.
    pub reply_to: Option<DocId>,
    /// Who wrote it.
    pub author: Author,
    /// When (claimed, ms).
    pub created_at: Timestamp,
    /// What it says.
    pub text: String,
    /// Set when the comment was retracted or redacted: who did it, when and why. Its text is
    /// gone (empty).
    #[serde(default)]
    pub retracted: Option<Tombstone>,
}

impl From<&CommentView> for CommentItem {
    fn from(c: &CommentView) -> Self {
        Self {
            id: c.meta.id,
            reply_to: c.meta.reply_to,
            author: Author::new(c.meta.creator, c.author_name.clone()),
            created_at: c.meta.created_at,
            text: c.text.clone(),
            retracted: c
                .retracted
                .as_ref()
                .map(|t| Tombstone::new(t, c.author_name.clone())),
        }
    }
}

/// A vote tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Hide votes.
    pub hide: u32,
    /// Keep votes.
    pub keep: u32,
    /// Misleading votes.
    pub misleading: u32,
    /// Verified votes.
    pub verified: u32,
    /// Mute votes.
    pub mute: u32,
    /// Unmute votes.
    pub unmute: u32,
}

impl From<&agora_crdt::Tally> for Tally {
    fn from(t: &agora_crdt::Tally) -> Self {
        Self {
            hide: t.hide,
            keep: t.keep,
            misleading: t.misleading,
            verified: t.verified,
            mute: t.mute,
            unmute: t.unmute,
        }
    }
}

/// What a moderation statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    /// A role statement (appoint, remove, vouch, revoke).
    Role,
    /// A vote.
    Vote,
    /// A retraction by a document's creator or a redaction by the founder or a moderator.
    Retraction,
}

/// One line of a moderation log: a signed statement, whether it counts, what it decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The entry that carries it.
    pub entry: EntryId,
    /// Who signed it.
    pub signer: AuthorId,
    /// Their key's fingerprint.
    pub signer_fingerprint: String,
    /// When (claimed, ms).
    pub timestamp: Timestamp,
    /// Role statement or vote.
    pub kind: StatementKind,
    /// The action or vote (`vouch`, `hide`, ..., `retract`, `redact`).
    pub what: String,
    /// The post, comment or author it is about.
    pub about: String,
    /// The reason given.
    pub reason: String,
    /// Whether it counts.
    pub counted: bool,
    /// If not, why not.
    pub not_counted_because: Option<String>,
    /// What it decided, if anything.
    pub contributed: Option<String>,
}

impl From<&LogItem> for LogLine {
    fn from(item: &LogItem) -> Self {
        let (kind, what, about, reason) = match &item.statement {
            Statement::Role(r) => (
                StatementKind::Role,
                r.action.name(),
                r.subject.to_string(),
                String::new(),
            ),
            Statement::Vote(v) => (
                StatementKind::Vote,
                v.value.name(),
                match v.target {
                    VoteTarget::Post(p) => p.to_string(),
                    VoteTarget::Author(a) => a.to_string(),
                },
                v.reason.clone(),
            ),
            Statement::Retract(r) => (
                StatementKind::Retraction,
                match item.contributed {
                    Some(Contribution::Redacted(_)) => "redact",
                    _ => "retract",
                },
                r.doc.to_string(),
                r.reason.clone(),
            ),
        };
        let (counted, not_counted_because) = match item.standing {
            Standing::Counted => (true, None),
            Standing::NotCounted(n) => (
                false,
                Some(match n {
                    NotCounted::NotFounder => {
                        "only the founder appoints and removes moderators".to_owned()
                    }
                    NotCounted::SignerNotTrusted => "the signer is not trusted".to_owned(),
                    NotCounted::Superseded { by }
                        if matches!(item.statement, Statement::Retract(_)) =>
                    {
                        format!("removed already by {by}")
                    }
                    NotCounted::Superseded { by } => format!("replaced by the signer's later {by}"),
                    NotCounted::Overridden => "you ignore this signer".to_owned(),
                    NotCounted::AboutSelf => "a statement about oneself".to_owned(),
                    NotCounted::NotCreatorOrModerator => {
                        "only its creator retracts, and the founder or a moderator redacts"
                            .to_owned()
                    }
                    NotCounted::DocumentNotHeld => "the document is not on this node".to_owned(),
                }),
            ),
        };
        let contributed = item.contributed.map(|c| match c {
            Contribution::Moderator(a) => format!("made {a} a moderator"),
            Contribution::NotModerator(a) => format!("removed {a} as moderator"),
            Contribution::Trusted(a) => format!("made {a} trusted"),
            Contribution::Barred(a) => format!("barred {a} from trust"),
            Contribution::Hidden(p) => format!("hid {p}"),
            Contribution::KeptVisible(p) => format!("kept {p} visible"),
            Contribution::Disputed(p) => format!("marked {p} disputed"),
            Contribution::Verified(p) => format!("marked {p} verified"),
            Contribution::Muted(a) => format!("muted {a}"),
            Contribution::KeptUnmuted(a) => format!("kept {a} unmuted"),
            Contribution::Retracted(d) => format!("retracted {d}"),
            Contribution::Redacted(d) => format!("redacted {d}"),
        });
        Self {
            entry: item.entry,
            signer: item.signer,
            signer_fingerprint: item.signer.fingerprint(),
            timestamp: item.timestamp,
            kind,
            what: what.to_owned(),
            about,
            reason,
            counted,
            not_counted_because,
            contributed,
        }
    }
}

/// A feed cursor for the position after `item`.
pub(crate) fn cursor_after(item: &FeedItem) -> FeedCursor {
    FeedCursor {
        created_at: item.post.meta.created_at,
        post: item.post.meta.id,
    }
}
