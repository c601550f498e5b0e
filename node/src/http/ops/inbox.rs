//! The owner's inbox (what concerns them, derived locally; read and unread kept in the home)
//! and the authors they follow (local, never published).

use agora_crdt::{AuthorId, DocId, SubwikiId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Author, check_within, parser, within};
use crate::Node;
use crate::http::{ApiError, ErrorKind, Operation};
use crate::inbox::{Item, Kind, MAX_ITEMS};

/// Your inbox, newest first: comments on your posts, replies to your comments, edits of your
/// posts by others, mentions of you (`@au_…`, your author id in full), votes on your posts and
/// about you, role changes about you, and your posts' moderation status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Inbox {
    /// Only the items not marked read.
    #[arg(long)]
    #[serde(default)]
    pub unread: bool,
    /// How many items, 1 to 5000.
    #[arg(long, default_value_t = 50, value_parser = within("--limit", 1..=MAX_ITEMS))]
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    50
}

/// An item of the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    /// Its id, for `agora inbox read`: the entry's id, or `status.…`/`standing.…` for a
    /// moderation outcome.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    /// Whether it was marked read.
    pub read: bool,
    /// Its subwiki.
    pub subwiki: SubwikiId,
    /// The subwiki's name.
    pub subwiki_name: Option<String>,
    /// When (claimed, ms).
    pub time: Timestamp,
    /// Who did it (none for an outcome), with their name in the subwiki.
    pub actor: Option<Author>,
    /// The post it is about.
    pub post: Option<DocId>,
    /// That post's title, if it is held.
    pub post_title: Option<String>,
    /// The document written (the comment, the post).
    pub doc: Option<DocId>,
    /// The vote, role action or outcome (`hide`, `vouch`, `hidden`, `trusted`, …).
    pub detail: String,
    /// The start of what they wrote, or a vote's reason: text from others.
    pub excerpt: String,
    /// Whether what they wrote mentions you.
    pub mention: bool,
}

impl InboxItem {
    /// What happened, in words, without any text from others: "commented on your post".
    pub fn what(&self) -> String {
        let detail = self.detail.replace('_', " ");
        let on_post = self.post.is_some();
        match self.kind {
            Kind::Comment => "commented on your post".into(),
            Kind::Reply => "replied to your comment".into(),
            Kind::Edit => "edited your post".into(),
            Kind::Mention => "mentioned you".into(),
            Kind::Vote if on_post => format!("voted {detail} on your post"),
            Kind::Vote => format!("voted to {detail} you"),
            Kind::Role => match detail.as_str() {
                "vouch" => "vouched for you".into(),
                "revoke" => "revoked their vouch for you".into(),
                "appoint moderator" => "appointed you moderator".into(),
                "remove moderator" => "removed you as moderator".into(),
                other => format!("stated {other} about you"),
            },
            Kind::Status => match detail.as_str() {
                "hidden" => "Your post is hidden by the subwiki's votes".into(),
                // Said after who did it.
                "redacted" => "redacted your post or comment".into(),
                other => format!("Your post is marked {other}"),
            },
            Kind::Standing => match detail.as_str() {
                "moderator" => "You are a moderator".into(),
                "trusted" => "You are trusted".into(),
                "barred" => "You are barred from trust".into(),
                "muted" => "You are muted".into(),
                other => format!("Your standing: {other}"),
            },
        }
    }
}

/// The inbox answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPage {
    /// Unread items in the whole inbox.
    pub unread: usize,
    /// Items in the whole inbox.
    pub total: usize,
    /// The items asked for, newest first.
    pub items: Vec<InboxItem>,
}

impl Operation for Inbox {
    const PATH: &'static str = "inbox";
    type Answer = InboxPage;

    async fn run(self, node: &Node) -> Result<InboxPage, ApiError> {
        let limit = check_within("limit", self.limit, &(1..=MAX_ITEMS))?;
        let view = node.inbox(self.unread, limit)?;
        let names: std::collections::HashMap<SubwikiId, String> = node
            .subwikis()?
            .into_iter()
            .filter_map(|s| Some((s.id, s.genesis?.name)))
            .collect();
        let mut items = Vec::with_capacity(view.items.len());
        for (item, read) in view.items {
            let subwiki_name = names.get(&item.subwiki).cloned();
            items.push(shown(node, item, read, subwiki_name)?);
        }
        Ok(InboxPage {
            unread: view.unread,
            total: view.total,
            items,
        })
    }
}

/// An item with the names and the title a reader wants.
fn shown(
    node: &Node,
    item: Item,
    read: bool,
    subwiki_name: Option<String>,
) -> Result<InboxItem, ApiError> {
    let actor = match item.actor {
        Some(a) => Some(Author::new(a, node.display_name_in(item.subwiki, &a)?)),
        None => None,
    };
    let post = match item.post {
        Some(p) => Some(p),
        None => item.doc.and_then(|d| node.post_of(d)),
    };
    let post_title = post
        .and_then(|p| node.post(p).ok())
        .map(|p| p.post.content.title);
    Ok(InboxItem {
        id: item.key,
        kind: item.kind,
        read,
        subwiki: item.subwiki,
        subwiki_name,
        time: item.time,
        actor,
        post,
        post_title,
        doc: item.doc,
        detail: item.detail,
        excerpt: item.excerpt,
        mention: item.mention,
    })
}

/// Mark an item of your inbox read (by its id), or every item with --all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct InboxRead {
    /// The item's id, as `agora inbox` prints it.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    #[serde(default)]
    pub item: Option<String>,
    /// Every item.
    #[arg(long)]
    #[serde(default)]
    pub all: bool,
}

/// What marking read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMarked {
    /// Items marked read that were not before.
    pub marked: usize,
    /// Unread items left.
    pub unread: usize,
}

impl Operation for InboxRead {
    const PATH: &'static str = "inbox/read";
    type Answer = InboxMarked;

    async fn run(self, node: &Node) -> Result<InboxMarked, ApiError> {
        let key = match (&self.item, self.all) {
            (Some(item), false) => Some(item.trim()),
            (None, true) => None,
            _ => return Err(ApiError::usage("give an item's id or --all, not both")),
        };
        let marked = node.mark_read(key)?.ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("no item {:?} in the inbox", key.unwrap_or_default()),
            )
        })?;
        Ok(InboxMarked {
            marked,
            unread: node.inbox_unread()?,
        })
    }
}

/// Follow an author: their posts are in `agora feed --following`. Kept on this device only,
/// never published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Follow {
    /// The author id (`au_…`).
    #[arg(value_parser = parser::<AuthorId>("author id"))]
    pub author: AuthorId,
}

/// Stop following an author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Unfollow {
    /// The author id (`au_…`).
    #[arg(value_parser = parser::<AuthorId>("author id"))]
    pub author: AuthorId,
}

/// Whom a follow or unfollow was about, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followed {
    /// The author, with a display name from a joined subwiki.
    pub author: Author,
    /// Whether they are followed now.
    pub following: bool,
    /// Whether that changed.
    pub changed: bool,
}

fn followed(node: &Node, author: AuthorId, changed: bool) -> Result<Followed, ApiError> {
    Ok(Followed {
        author: Author::new(author, node.author_name(&author)?),
        following: node.is_following(&author),
        changed,
    })
}

impl Operation for Follow {
    const PATH: &'static str = "follow";
    type Answer = Followed;

    async fn run(self, node: &Node) -> Result<Followed, ApiError> {
        if self.author == node.author() {
            return Err(ApiError::usage("that is you: your posts are yours already"));
        }
        let changed = node.follow(self.author)?;
        followed(node, self.author, changed)
    }
}

impl Operation for Unfollow {
    const PATH: &'static str = "unfollow";
    type Answer = Followed;

    async fn run(self, node: &Node) -> Result<Followed, ApiError> {
        let changed = node.unfollow(self.author)?;
        followed(node, self.author, changed)
    }
}

/// The authors you follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Following {}

impl Operation for Following {
    const PATH: &'static str = "following";
    type Answer = Vec<Author>;

    async fn run(self, node: &Node) -> Result<Vec<Author>, ApiError> {
        node.following()
            .into_iter()
            .map(|a| Ok(Author::new(a, node.author_name(&a)?)))
            .collect()
    }
}
