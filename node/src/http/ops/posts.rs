//! Writing, editing, reading, reverting and exporting posts; comments; the feed.

use std::collections::HashMap;
use std::path::PathBuf;

use agora_crdt::{
    AuthorId, Base, ChangeStatus, DocId, EntryId, Exclusion, FeedCursor, Field, HistoryItem,
    PostContent, SubwikiId, Timestamp, Version,
};
use serde::{Deserialize, Serialize};

use super::{
    CommentItem, LogLine, Post, PostState, Subwiki, Tally, check_within, cursor_after, parser,
    within,
};
use crate::Node;
use crate::http::{ApiError, ErrorKind, Operation};
use crate::store::MAX_BLOB_BYTES;

/// The most posts one feed page may ask for.
pub const MAX_PAGE: usize = 1000;

/// Write a post; prints its id. Without --body or --body-file on a terminal, opens $EDITOR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostNew {
    /// The subwiki.
    #[arg(value_parser = parser::<SubwikiId>("subwiki id"))]
    pub subwiki: SubwikiId,
    /// Its title.
    #[arg(long)]
    pub title: String,
    /// The body text (Markdown).
    #[arg(long, group = "body_source")]
    #[serde(default)]
    pub body: Option<String>,
    /// Read the body from a file (`-` for standard input); the command reads it.
    #[arg(long, value_name = "FILE", group = "body_source")]
    #[serde(skip)]
    pub body_file: Option<PathBuf>,
    /// A link it shares: an http(s) URL.
    #[arg(long)]
    #[serde(default)]
    pub link: Option<String>,
    /// An image file to attach (at most 5 MiB), read by the node: an absolute path.
    #[arg(long)]
    #[serde(default)]
    pub image: Option<PathBuf>,
}

/// Refuses a blank title. Checked when the owner writes a post, never on posts from peers.
pub fn check_title(title: &str) -> Result<(), ApiError> {
    if title.trim().is_empty() {
        return Err(ApiError::usage("a post needs a title"));
    }
    Ok(())
}

/// The link the owner typed, trimmed, if it is an http(s) URL with a host and no spaces or
/// control characters. Checked when the owner writes a post, never on posts from peers.
pub fn check_link(link: &str) -> Result<String, ApiError> {
    let link = link.trim();
    let refuse = || {
        ApiError::usage(format!(
            "link {link:?}: not an http(s) URL (https://example.org/...)"
        ))
    };
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        link.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .and_then(|_| link.get(scheme.len()..))
    });
    let authority = rest
        .and_then(|r| r.split(['/', '?', '#']).next())
        .ok_or_else(refuse)?;
    let host = authority.rsplit('@').next().unwrap_or_default();
    let unprintable = link.chars().any(|c| c.is_whitespace() || c.is_control());
    if host.is_empty() || host.starts_with(':') || unprintable {
        return Err(refuse());
    }
    Ok(link.to_owned())
}

/// Refuses to change a post that was retracted or redacted: its content is gone for good.
fn still_there(item: &crate::FeedItem) -> Result<(), ApiError> {
    match &item.post.retracted {
        Some(t) => Err(ApiError::new(
            ErrorKind::Gone,
            format!(
                "{} was {} by {}: it cannot be changed or commented on",
                item.post.meta.id,
                if t.is_redaction() {
                    "redacted"
                } else {
                    "retracted"
                },
                t.signer.fingerprint()
            ),
        )),
        None => Ok(()),
    }
}

fn read_image(path: &std::path::Path) -> Result<Vec<u8>, ApiError> {
    crate::node::read_local_file(path, MAX_BLOB_BYTES as u64)
        .map_err(|e| ApiError::usage(format!("{}: {e}", path.display())))
}

impl Operation for PostNew {
    const PATH: &'static str = "post/new";
    type Answer = Post;

    async fn run(self, node: &Node) -> Result<Post, ApiError> {
        check_title(&self.title)?;
        let link = self
            .link
            .filter(|l| !l.trim().is_empty())
            .map(|l| check_link(&l))
            .transpose()?;
        let image = self.image.as_deref().map(read_image).transpose()?;
        let id = node
            .create_post_with_images(
                self.subwiki,
                PostContent {
                    title: self.title,
                    body: self.body.unwrap_or_default(),
                    link,
                    ..PostContent::default()
                },
                &image.as_deref().into_iter().collect::<Vec<_>>(),
            )
            .await?;
        Ok(Post::from(&node.post(id)?))
    }
}

/// Edit any post, wiki-style: the change is a diff, so concurrent edits merge. Without body
/// options on a terminal, opens $EDITOR on the current text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostEdit {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
    /// A new title.
    #[arg(long)]
    #[serde(default)]
    pub title: Option<String>,
    /// The new body.
    #[arg(long, group = "body_source")]
    #[serde(default)]
    pub body: Option<String>,
    /// Read the new body from a file (`-` for standard input); the command reads it.
    #[arg(long, value_name = "FILE", group = "body_source")]
    #[serde(skip)]
    pub body_file: Option<PathBuf>,
    /// The version the new text was written from (`agora post show` prints it), or `latest`.
    /// The edit is computed against it and merged with whatever came since, so it never
    /// undoes others' changes. Required in the API; with $EDITOR, the version it opened.
    #[arg(long, default_value = "latest", value_parser = parser::<Base>("version"))]
    pub base: Base,
}

/// A post after an edit or a revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edited {
    /// The post as it reads now, merged with whatever arrived since the edit's base.
    #[serde(flatten)]
    pub post: Post,
    /// The change made, if the content differed.
    pub change: Option<EntryId>,
    /// Whether others had changed the post since the edit's base: what it reads now is the
    /// edit merged with their changes.
    pub merged: bool,
}

impl Operation for PostEdit {
    const PATH: &'static str = "post/edit";
    type Answer = Edited;

    async fn run(self, node: &Node) -> Result<Edited, ApiError> {
        if self.title.is_none() && self.body.is_none() {
            return Err(ApiError::usage(
                "nothing to change: give --title, --body or --body-file",
            ));
        }
        if let Some(title) = &self.title {
            check_title(title)?;
        }
        let item = node.post(self.post)?;
        still_there(&item)?;
        let now = item.post;
        // Fields the edit leaves alone are taken from the base, so they are not changed.
        let base_content = match &self.base {
            Base::Latest => now.content.clone(),
            Base::At(v) => node.post_at(self.post, v.clone()).map_err(ApiError::from)?,
        };
        let merged = matches!(&self.base, Base::At(v) if *v != now.version);
        let edited = PostContent {
            title: self.title.unwrap_or_else(|| base_content.title.clone()),
            body: self.body.unwrap_or_else(|| base_content.body.clone()),
            ..base_content
        };
        let change = node
            .edit_post(self.post, self.base, edited)
            .await
            .map_err(ApiError::from)?;
        Ok(Edited {
            post: Post::from(&node.post(self.post)?),
            change,
            merged,
        })
    }
}

/// Show a post with its comments, now or at an earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostShow {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
    /// A version (from `agora post history`).
    #[arg(long, value_parser = parser::<Version>("version"))]
    #[serde(default)]
    pub at: Option<Version>,
}

/// The votes on a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Votes {
    /// Votes that count (trusted members, moderators, the founder).
    pub counted: Option<Tally>,
    /// Votes shown as signals only.
    pub signals: Option<Tally>,
    /// The statements behind the post's status.
    pub behind: Vec<LogLine>,
}

/// A post with everything a reader sees on its page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostPage {
    /// The post (at the version asked for, if any).
    #[serde(flatten)]
    pub post: Post,
    /// The version shown, when one was asked for.
    pub at: Option<Version>,
    /// Its moderation status.
    pub status: PostState,
    /// The votes on it.
    pub votes: Votes,
    /// Its comments, oldest first, without those of muted authors.
    pub comment_list: Vec<CommentItem>,
}

impl Operation for PostShow {
    const PATH: &'static str = "post/show";
    type Answer = PostPage;

    async fn run(self, node: &Node) -> Result<PostPage, ApiError> {
        let id = self.post;
        let item = node.post(id)?;
        let mut post = Post::from(&item);
        if let Some(t) = &mut post.retracted {
            t.name_signer(node, item.subwiki);
        }
        let mut comment_list: Vec<CommentItem> =
            node.comments(id)?.iter().map(CommentItem::from).collect();
        for t in comment_list.iter_mut().filter_map(|c| c.retracted.as_mut()) {
            t.name_signer(node, item.subwiki);
        }
        let moderation = node.moderation(item.subwiki)?;
        let outcome = moderation.post(&id);
        if let Some(at) = &self.at {
            let content = node.post_at(id, at.clone()).map_err(ApiError::from)?;
            post.title = content.title;
            post.body = content.body;
            post.link = content.link;
            post.images = content.images;
            post.tags = content.tags;
            post.version = Some(at.clone());
        }
        Ok(PostPage {
            post,
            at: self.at,
            status: PostState::from(&node.post_status(id)?),
            votes: Votes {
                counted: outcome.map(|o| Tally::from(&o.counted)),
                signals: outcome.map(|o| Tally::from(&o.signals)),
                behind: moderation
                    .explain_post(&id)
                    .into_iter()
                    .map(LogLine::from)
                    .collect(),
            },
            comment_list,
        })
    }
}

/// Every change to a post: version, who, when, which fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostHistory {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
}

/// Where a change stands in its post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Part of the post.
    Applied,
    /// Waiting for changes it depends on.
    Pending,
    /// Left out: its device signed another change with the same sequence number.
    Equivocation,
    /// Left out: Automerge refused it.
    Invalid,
    /// Left out: it depends on a change that is left out.
    DependsOnExcluded,
    /// Left out: by an untrusted member, in a subwiki where only trusted members edit.
    Untrusted,
}

impl From<ChangeStatus> for ChangeState {
    fn from(s: ChangeStatus) -> Self {
        match s {
            ChangeStatus::Applied => Self::Applied,
            ChangeStatus::Pending => Self::Pending,
            ChangeStatus::Excluded(Exclusion::Equivocation) => Self::Equivocation,
            ChangeStatus::Excluded(Exclusion::Invalid) => Self::Invalid,
            ChangeStatus::Excluded(Exclusion::DependsOnExcluded) => Self::DependsOnExcluded,
            ChangeStatus::Excluded(Exclusion::Untrusted) => Self::Untrusted,
        }
    }
}

/// A field of a post or comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldName {
    /// Title.
    Title,
    /// Body.
    Body,
    /// Link.
    Link,
    /// Images.
    Images,
    /// Tags.
    Tags,
    /// The link card.
    Card,
    /// A comment's text.
    Text,
    /// A profile's name.
    Name,
    /// A profile's bio.
    Bio,
    /// The subwiki's description.
    Description,
}

impl From<Field> for FieldName {
    fn from(f: Field) -> Self {
        match f {
            Field::Title => Self::Title,
            Field::Body => Self::Body,
            Field::Link => Self::Link,
            Field::Images => Self::Images,
            Field::Tags => Self::Tags,
            Field::Card => Self::Card,
            Field::Text => Self::Text,
            Field::Name => Self::Name,
            Field::Bio => Self::Bio,
            Field::Description => Self::Description,
        }
    }
}

/// One change in a post's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The entry that carried it: the version to show or restore.
    pub version: EntryId,
    /// Who made it.
    pub author: AuthorId,
    /// Their key's fingerprint.
    pub author_fingerprint: String,
    /// When (claimed, ms).
    pub timestamp: Timestamp,
    /// Whether it is in the post.
    pub status: ChangeState,
    /// The fields it changed.
    pub fields: Vec<FieldName>,
}

impl From<&HistoryItem> for Change {
    fn from(h: &HistoryItem) -> Self {
        Self {
            version: h.version,
            author: h.author,
            author_fingerprint: h.author.fingerprint(),
            timestamp: h.timestamp,
            status: h.status.into(),
            fields: h.fields.iter().copied().map(FieldName::from).collect(),
        }
    }
}

impl Operation for PostHistory {
    const PATH: &'static str = "post/history";
    type Answer = Vec<Change>;

    async fn run(self, node: &Node) -> Result<Vec<Change>, ApiError> {
        Ok(node.history(self.post)?.iter().map(Change::from).collect())
    }
}

/// Restore a post to an earlier version (as a new change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostRevert {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
    /// The version to restore.
    #[arg(id = "target_version", value_name = "VERSION", value_parser = parser::<EntryId>("version"))]
    pub version: EntryId,
}

impl Operation for PostRevert {
    const PATH: &'static str = "post/revert";
    type Answer = Edited;

    async fn run(self, node: &Node) -> Result<Edited, ApiError> {
        still_there(&node.post(self.post)?)?;
        let change = node
            .revert(self.post, self.version)
            .await
            .map_err(ApiError::from)?;
        Ok(Edited {
            post: Post::from(&node.post(self.post)?),
            change,
            merged: false,
        })
    }
}

/// Write the post as a standard Automerge file, which any Automerge implementation opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct PostExport {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
    /// The file to write (the node writes it: an absolute path).
    pub file: PathBuf,
}

/// A post written to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostExported {
    /// The post.
    pub id: DocId,
    /// The file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: usize,
}

impl Operation for PostExport {
    const PATH: &'static str = "post/export";
    type Answer = PostExported;

    async fn run(self, node: &Node) -> Result<PostExported, ApiError> {
        let bytes = node.export_post(self.post)?;
        std::fs::write(&self.file, &bytes)
            .map_err(|e| ApiError::failed(format!("{}: {e}", self.file.display())))?;
        Ok(PostExported {
            id: self.post,
            file: self.file,
            bytes: bytes.len(),
        })
    }
}

/// Comment on a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Comment {
    /// The post.
    #[arg(value_parser = parser::<DocId>("post id"))]
    pub post: DocId,
    /// What to say.
    pub text: String,
}

/// A comment written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commented {
    /// The comment.
    pub id: DocId,
    /// Its post.
    pub post: DocId,
}

impl Operation for Comment {
    const PATH: &'static str = "comment";
    type Answer = Commented;

    async fn run(self, node: &Node) -> Result<Commented, ApiError> {
        if self.text.trim().is_empty() {
            return Err(ApiError::usage("an empty comment"));
        }
        if let Ok(item) = node.post(self.post) {
            still_there(&item)?;
        }
        let id = node
            .comment(self.post, None, &self.text)
            .await
            .map_err(ApiError::from)?;
        Ok(Commented {
            id,
            post: self.post,
        })
    }
}

/// The feed of the joined subwikis, newest first. Hidden posts are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Feed {
    /// Only this subwiki.
    #[arg(long, value_parser = parser::<SubwikiId>("subwiki id"))]
    #[serde(default)]
    pub subwiki: Option<SubwikiId>,
    /// Show hidden posts too, each with its status.
    #[arg(long)]
    #[serde(default)]
    pub show_hidden: bool,
    /// How many posts, 1 to 1000.
    #[arg(long, default_value_t = 20, value_parser = within("--limit", 1..=MAX_PAGE))]
    #[serde(default = "default_page")]
    pub limit: usize,
    /// Continue after this cursor (printed at the end of a page).
    #[arg(long, value_parser = parser::<FeedCursor>("cursor"))]
    #[serde(default)]
    pub before: Option<FeedCursor>,
    /// Only the posts of the authors you follow (`agora follow`), still newest first.
    #[arg(long)]
    #[serde(default)]
    pub following: bool,
}

fn default_page() -> usize {
    20
}

/// A post in the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPost {
    /// The post.
    #[serde(flatten)]
    pub post: Post,
    /// Its moderation status.
    pub status: PostState,
    /// Its subwiki's name.
    pub subwiki_name: Option<String>,
    /// Where the next page starts, if this is the last post of the page.
    pub cursor: FeedCursor,
}

impl Operation for Feed {
    const PATH: &'static str = "feed";
    type Answer = Vec<FeedPost>;

    async fn run(self, node: &Node) -> Result<Vec<FeedPost>, ApiError> {
        if let Some(id) = self.subwiki {
            Subwiki::of(node, id)?;
        }
        let limit = check_within("limit", self.limit, &(1..=MAX_PAGE))?;
        let items = if self.following {
            node.following_feed(self.subwiki, self.before, limit, self.show_hidden)?
        } else {
            node.feed_page(self.subwiki, self.before, limit, self.show_hidden)?
        };
        let names: HashMap<SubwikiId, String> = node
            .subwikis()?
            .into_iter()
            .filter_map(|s| Some((s.id, s.genesis?.name)))
            .collect();
        Ok(items
            .iter()
            .map(|(item, status)| {
                let mut post = Post::from(item);
                if let Some(t) = &mut post.retracted {
                    t.name_signer(node, item.subwiki);
                }
                FeedPost {
                    post,
                    status: PostState::from(status),
                    subwiki_name: names.get(&item.subwiki).cloned(),
                    cursor: cursor_after(item),
                }
            })
            .collect())
    }
}
