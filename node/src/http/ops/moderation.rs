//! Votes, role statements, the moderation log and personal overrides.

use agora_crdt::{AuthorId, DocId, EntryId, RoleAction, SubwikiId, VoteTarget, VoteValue};
use serde::{Deserialize, Serialize};

use super::{LogLine, Subwiki, parser};
use crate::Node;
use crate::http::{ApiError, Operation};

/// A vote on a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PostVote {
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

impl From<PostVote> for VoteValue {
    fn from(v: PostVote) -> Self {
        match v {
            PostVote::Hide => VoteValue::Hide,
            PostVote::Keep => VoteValue::Keep,
            PostVote::Misleading => VoteValue::Misleading,
            PostVote::Verified => VoteValue::Verified,
            PostVote::Withdraw => VoteValue::Withdraw,
        }
    }
}

/// Vote on a post: hide, keep, misleading, verified, or withdraw your vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Vote {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
    /// Your vote.
    #[arg(value_enum)]
    pub value: PostVote,
    /// Why (shown in the moderation log).
    #[arg(long, default_value = "")]
    #[serde(default)]
    pub reason: String,
}

/// A vote on a post, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voted {
    /// The vote's entry.
    pub id: EntryId,
    /// The post.
    pub post: DocId,
}

impl Operation for Vote {
    const PATH: &'static str = "vote";
    type Answer = Voted;

    async fn run(self, node: &Node) -> Result<Voted, ApiError> {
        let id = node
            .vote_post(self.post, self.value.into(), &self.reason)
            .await
            .map_err(ApiError::from)?;
        Ok(Voted {
            id,
            post: self.post,
        })
    }
}

/// A statement about an author, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stated {
    /// The statement's entry.
    pub id: EntryId,
    /// Whom it is about.
    pub author: AuthorId,
}

async fn vote_author(
    node: &Node,
    subwiki: SubwikiId,
    author: AuthorId,
    value: VoteValue,
    reason: &str,
) -> Result<Stated, ApiError> {
    let id = node
        .vote(subwiki, VoteTarget::Author(author), value, reason)
        .await
        .map_err(ApiError::from)?;
    Ok(Stated { id, author })
}

async fn state_role(
    node: &Node,
    subwiki: SubwikiId,
    author: AuthorId,
    action: RoleAction,
) -> Result<Stated, ApiError> {
    let id = node.state_role(subwiki, action, author).await?;
    Ok(Stated { id, author })
}

/// Vote to mute an author in a subwiki (their posts and comments are hidden once enough
/// trusted members agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Mute {
    /// The author.
    #[arg(value_parser = parser::<AuthorId>("author id"))]
    pub author: AuthorId,
    /// The subwiki.
    #[arg(long, value_parser = parser::<SubwikiId>("subwiki id"))]
    pub subwiki: SubwikiId,
    /// Why.
    #[arg(long, default_value = "")]
    #[serde(default)]
    pub reason: String,
}

impl Operation for Mute {
    const PATH: &'static str = "mute";
    type Answer = Stated;

    async fn run(self, node: &Node) -> Result<Stated, ApiError> {
        vote_author(
            node,
            self.subwiki,
            self.author,
            VoteValue::Mute,
            &self.reason,
        )
        .await
    }
}

/// An author and a subwiki: what unmute, vouch, revoke and moderator changes are about.
macro_rules! about_author {
    ($(#[$doc:meta])* $name:ident, $path:literal, |$node:ident, $op:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
        pub struct $name {
            /// The member.
            #[arg(value_parser = parser::<AuthorId>("author id"))]
            pub author: AuthorId,
            /// The subwiki.
            #[arg(long, value_parser = parser::<SubwikiId>("subwiki id"))]
            pub subwiki: SubwikiId,
        }

        impl Operation for $name {
            const PATH: &'static str = $path;
            type Answer = Stated;

            async fn run(self, $node: &Node) -> Result<Stated, ApiError> {
                let $op = self;
                $body.await
            }
        }
    };
}

about_author!(
    /// Take back your mute vote on an author.
    Unmute, "unmute",
    |node, op| vote_author(node, op.subwiki, op.author, VoteValue::Unmute, "")
);
about_author!(
    /// Vouch that a member is trustworthy (counts if you are trusted, a moderator or the
    /// founder).
    Vouch, "vouch",
    |node, op| state_role(node, op.subwiki, op.author, RoleAction::Vouch)
);
about_author!(
    /// Take back your vouch for a member.
    Revoke, "revoke",
    |node, op| state_role(node, op.subwiki, op.author, RoleAction::Revoke)
);
about_author!(
    /// Make a member a moderator (the founder only).
    ModeratorAdd, "moderator/add",
    |node, op| state_role(node, op.subwiki, op.author, RoleAction::AppointModerator)
);
about_author!(
    /// Remove a moderator (the founder only).
    ModeratorRemove, "moderator/remove",
    |node, op| state_role(node, op.subwiki, op.author, RoleAction::RemoveModerator)
);

/// The moderation log of a subwiki: every role statement and vote, who signed it, whether it
/// counts and what it decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Modlog {
    /// The subwiki.
    #[arg(value_parser = parser::<SubwikiId>("subwiki id"))]
    pub subwiki: SubwikiId,
}

/// A subwiki's roles, outcomes and log, as this node's owner sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationLog {
    /// The subwiki.
    pub id: SubwikiId,
    /// Its founder.
    pub founder: AuthorId,
    /// Its moderators.
    pub moderators: Vec<AuthorId>,
    /// Its trusted members.
    pub trusted: Vec<AuthorId>,
    /// Members barred from trust.
    pub barred: Vec<AuthorId>,
    /// Hidden posts.
    pub hidden: Vec<DocId>,
    /// Muted authors.
    pub muted: Vec<AuthorId>,
    /// Authors whose statements the owner does not count.
    pub overridden: Vec<AuthorId>,
    /// Every statement, oldest first.
    pub log: Vec<LogLine>,
    /// Members who signed two versions of one change (an equivocation), with the proof; their
    /// versions, and what they built on them, are left out of the document (protocol §11.2).
    #[serde(default)]
    pub equivocations: Vec<EquivocationLine>,
}

/// An equivocation in the moderation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquivocationLine {
    /// Who signed both.
    pub author: AuthorId,
    /// Their key's fingerprint.
    pub author_fingerprint: String,
    /// The document.
    pub doc: DocId,
    /// The sequence number signed twice.
    pub seq: u64,
    /// The entries that carry the versions.
    pub entries: Vec<EntryId>,
}

/// Equivocations listed in a moderation log, at most.
const MAX_EQUIVOCATIONS_LISTED: usize = 100;

impl Operation for Modlog {
    const PATH: &'static str = "modlog";
    type Answer = ModerationLog;

    async fn run(self, node: &Node) -> Result<ModerationLog, ApiError> {
        Subwiki::of(node, self.subwiki)?;
        let moderation = node.moderation(self.subwiki)?;
        let roles = moderation.roles();
        Ok(ModerationLog {
            id: self.subwiki,
            founder: roles.founder(),
            moderators: roles.moderators().iter().copied().collect(),
            trusted: roles.trusted().iter().copied().collect(),
            barred: roles.barred().iter().copied().collect(),
            hidden: moderation
                .posts()
                .iter()
                .filter(|(_, o)| o.hidden)
                .map(|(p, _)| *p)
                .collect(),
            muted: moderation.muted().collect(),
            overridden: node.overrides().ignored.iter().copied().collect(),
            log: moderation.log().iter().map(LogLine::from).collect(),
            equivocations: node
                .equivocations(self.subwiki, MAX_EQUIVOCATIONS_LISTED)?
                .into_iter()
                .map(|e| EquivocationLine {
                    author_fingerprint: e.author.fingerprint(),
                    author: e.author,
                    doc: e.doc,
                    seq: e.seq,
                    entries: e.entries,
                })
                .collect(),
        })
    }
}

/// The people whose votes the owner does not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// Them.
    pub ignored: Vec<AuthorId>,
}

fn overrides(node: &Node) -> Overrides {
    Overrides {
        ignored: node.overrides().ignored.iter().copied().collect(),
    }
}

/// Stop counting this person's votes and role statements in your view (never published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct OverrideIgnore {
    /// The author.
    #[arg(value_parser = parser::<AuthorId>("author id"))]
    pub author: AuthorId,
}

impl Operation for OverrideIgnore {
    const PATH: &'static str = "override/ignore";
    type Answer = Overrides;

    async fn run(self, node: &Node) -> Result<Overrides, ApiError> {
        node.set_override(self.author, true)?;
        Ok(overrides(node))
    }
}

/// Count their votes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct OverrideRestore {
    /// The author.
    #[arg(value_parser = parser::<AuthorId>("author id"))]
    pub author: AuthorId,
}

impl Operation for OverrideRestore {
    const PATH: &'static str = "override/restore";
    type Answer = Overrides;

    async fn run(self, node: &Node) -> Result<Overrides, ApiError> {
        node.set_override(self.author, false)?;
        Ok(overrides(node))
    }
}

/// The people whose votes you do not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct OverrideList {}

impl Operation for OverrideList {
    const PATH: &'static str = "override/list";
    type Answer = Overrides;

    async fn run(self, node: &Node) -> Result<Overrides, ApiError> {
        Ok(overrides(node))
    }
}
