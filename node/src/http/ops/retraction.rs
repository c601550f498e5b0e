//! Taking things back: the retraction of a post or comment by its author, its redaction by the
//! founder or a moderator, and the retraction of everything one wrote in a subwiki. (Leaving a
//! subwiki and deleting it from the home is `subwiki leave --purge`.)
//!
//! One signed statement does both: signed by the document's creator it is a retraction, by the
//! founder or a moderator a redaction. Every honest node that accepts it deletes the document's
//! content and shows in its place who took it back, when and why.

use agora_crdt::{DocId, EntryId, SubwikiId};
use serde::{Deserialize, Serialize};

use super::parser;
use crate::Node;
use crate::http::{ApiError, Operation};

/// What one retraction or redaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retracted {
    /// The signed statement.
    pub entry: EntryId,
    /// The subwiki.
    pub subwiki: SubwikiId,
    /// The post, comment or profile taken back.
    pub doc: DocId,
    /// Whether it was a redaction (of someone else's document, by the founder or a moderator)
    /// rather than a retraction by its creator.
    pub redaction: bool,
}

impl From<crate::Retracted> for Retracted {
    fn from(r: crate::Retracted) -> Self {
        Self {
            entry: r.entry,
            subwiki: r.subwiki,
            doc: r.doc,
            redaction: r.redaction,
        }
    }
}

/// Retract a post or comment you wrote: every node that has it deletes its content, and shows
/// in its place that you retracted it, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostRetract {
    /// The post or comment.
    #[arg(value_name = "ID", value_parser = parser::<DocId>("post or comment id"))]
    pub id: DocId,
    /// Why (shown in its place and in the moderation log).
    #[arg(long, default_value = "")]
    #[serde(default)]
    pub reason: String,
}

impl Operation for PostRetract {
    const PATH: &'static str = "post/retract";
    type Answer = Retracted;

    async fn run(self, node: &Node) -> Result<Retracted, ApiError> {
        Ok(node.retract(self.id, self.reason.trim()).await?.into())
    }
}

/// Redact a post or comment of a subwiki you founded or moderate: every node that counts you as
/// its moderator deletes its content and shows in its place that you redacted it, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Redact {
    /// The post or comment.
    #[arg(value_name = "ID", value_parser = parser::<DocId>("post or comment id"))]
    pub id: DocId,
    /// Why (required: shown in its place and in the moderation log).
    #[arg(long)]
    pub reason: String,
}

impl Operation for Redact {
    const PATH: &'static str = "redact";
    type Answer = Retracted;

    async fn run(self, node: &Node) -> Result<Retracted, ApiError> {
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err(ApiError::usage(
                "a redaction needs a reason (--reason TEXT): the moderation log shows it",
            ));
        }
        Ok(node.retract(self.id, reason).await?.into())
    }
}

/// Retract everything you wrote in a subwiki (or in every subwiki you joined): your posts,
/// your comments and your profile there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[group(required = true, multiple = false)]
pub struct AccountRetract {
    /// The subwiki.
    #[arg(long, value_parser = parser::<SubwikiId>("subwiki id"))]
    #[serde(default)]
    pub subwiki: Option<SubwikiId>,
    /// Every subwiki you joined.
    #[arg(long)]
    #[serde(default)]
    pub all: bool,
}

impl Operation for AccountRetract {
    const PATH: &'static str = "account/retract";
    type Answer = Vec<Retracted>;

    async fn run(self, node: &Node) -> Result<Vec<Retracted>, ApiError> {
        if self.subwiki.is_some() == self.all {
            return Err(ApiError::usage(
                "say where: --subwiki ID, or --all for every subwiki you joined",
            ));
        }
        let done = node.retract_account(self.subwiki).await?;
        Ok(done.into_iter().map(Retracted::from).collect())
    }
}
