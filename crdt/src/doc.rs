//! Document contents over Automerge: the schema of each kind, read at any version, written by
//! diff.
//!
//! Every document is an Automerge map at the root. Free text lives in Automerge `Text` objects
//! and is only ever changed with `update_text`, which diffs the old text against the new, so
//! two people who edit different paragraphs at the same time both keep their edit. Short
//! fields are plain strings (last writer wins) and small lists of strings are kept as ordered
//! sets (items removed and appended, never rewritten), so concurrent additions all survive.
//!
//! | kind | fields |
//! |---|---|
//! | post | `title` text, `body` text, `link` string (absent when none), `images` list of blob ids, `tags` list of strings, `card` map of strings (absent when none; see [`LinkCard`]) |
//! | comment | `text` text |
//! | profile | `name` text, `bio` text |
//! | info | `name` text, `description` text |
//!
//! Reading never fails: a field that is missing or has an unexpected type (anyone can write any
//! operation into a wiki document) reads as empty.
//!
//! [`DocMeta`] holds what never changes about a document (kind, creator, parent), from its
//! create-document entry; the replica and moderation both read it, so it lives here, below both.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};

use crate::entry::{DocKind, Timestamp};
use crate::id::{AuthorId, BlobHash, DocId};

/// The fixed facts about a document, from its create-document entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMeta {
    /// Its id.
    pub id: DocId,
    /// Its kind.
    pub kind: DocKind,
    /// Who created it.
    pub creator: AuthorId,
    /// When, as claimed by the creator.
    pub created_at: Timestamp,
    /// For a comment, the post.
    pub parent: Option<DocId>,
    /// For a comment, the comment it answers.
    pub reply_to: Option<DocId>,
}

/// The contents of a post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostContent {
    /// Title.
    pub title: String,
    /// Body text (an article, or a few lines about the link).
    pub body: String,
    /// The link shared, if any.
    pub link: Option<String>,
    /// Images, by the blake3 hash of their bytes.
    pub images: Vec<BlobHash>,
    /// Tags.
    pub tags: Vec<String>,
    /// What the link points to, as the node that wrote the link fetched it once; shown only
    /// while it is for the current link ([`PostContent::card_for_link`]).
    pub card: Option<LinkCard>,
}

impl PostContent {
    /// The link card, if there is one for the post's current link: a card made for another
    /// URL (the link was edited since) is not shown.
    pub fn card_for_link(&self) -> Option<&LinkCard> {
        self.card
            .as_ref()
            .filter(|c| self.link.as_deref() == Some(c.url.as_str()))
    }
}

/// A preview of a post's link: the page's title, description and site name, fetched once by
/// the node of whoever wrote the link and stored in the post (readers never contact the site).
/// Stored under the post's `card` key as a map of string scalars `url`, `title`, `description`
/// and `site_name` (an empty field is absent). Every field is bounded and cleaned by
/// [`LinkCard::new`], both when it is written and when it is read, whoever wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkCard {
    /// The link the card was made for: it is shown only while the post's link is this.
    pub url: String,
    /// The page's title (`og:title`, else `<title>`).
    pub title: String,
    /// Its description (`og:description`, else `<meta name="description">`).
    pub description: String,
    /// The site's name (`og:site_name`).
    pub site_name: String,
}

impl LinkCard {
    /// The longest URL a card is kept for, in bytes.
    pub const MAX_URL: usize = 2048;
    /// The longest title kept, in bytes.
    pub const MAX_TITLE: usize = 300;
    /// The longest description kept, in bytes.
    pub const MAX_DESCRIPTION: usize = 1000;
    /// The longest site name kept, in bytes.
    pub const MAX_SITE_NAME: usize = 100;

    /// A card for `url`. The texts are cleaned (control and bidirectional formatting
    /// characters removed, runs of white space made one space, trimmed) and cut on a character
    /// boundary to their limits; the URL is kept as given, cut to [`LinkCard::MAX_URL`].
    pub fn new(url: &str, title: &str, description: &str, site_name: &str) -> Self {
        Self {
            url: truncate(url, Self::MAX_URL).to_owned(),
            title: clean(title, Self::MAX_TITLE),
            description: clean(description, Self::MAX_DESCRIPTION),
            site_name: clean(site_name, Self::MAX_SITE_NAME),
        }
    }

    /// Whether it says nothing about the page.
    pub fn is_empty(&self) -> bool {
        self.title.is_empty() && self.description.is_empty() && self.site_name.is_empty()
    }

    fn text_bytes(&self) -> usize {
        self.url.len() + self.title.len() + self.description.len() + self.site_name.len()
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Text made safe to show on one line: no control or bidirectional formatting characters, white
/// space collapsed, trimmed, at most `max` bytes (cut on a character boundary).
fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        let bidi = matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if c.is_control() || bidi {
            continue;
        }
        let extra = c.len_utf8() + usize::from(space);
        if out.len() + extra > max {
            break;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// The contents of a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommentContent {
    /// What the commenter wrote.
    pub text: String,
}

/// A member's profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileContent {
    /// Display name; not unique, always shown with a key fingerprint.
    pub name: String,
    /// A few words about the member.
    pub bio: String,
}

/// A subwiki's information page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoContent {
    /// The subwiki's current name.
    pub name: String,
    /// What it is about.
    pub description: String,
}

/// The contents of a document of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A post.
    Post(PostContent),
    /// A comment.
    Comment(CommentContent),
    /// A profile.
    Profile(ProfileContent),
    /// An information page.
    Info(InfoContent),
}

/// A field of the document schema that a change may touch; used to summarise history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// Post title.
    Title,
    /// Post body.
    Body,
    /// Post link.
    Link,
    /// Post images.
    Images,
    /// Post tags.
    Tags,
    /// Post link card.
    Card,
    /// Comment text.
    Text,
    /// Profile or info name.
    Name,
    /// Profile bio.
    Bio,
    /// Info description.
    Description,
}

impl Field {
    /// The field stored under a root key of a document, if the schema has one.
    pub fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "title" => Field::Title,
            "body" => Field::Body,
            "link" => Field::Link,
            "images" => Field::Images,
            "tags" => Field::Tags,
            "card" => Field::Card,
            "text" => Field::Text,
            "name" => Field::Name,
            "bio" => Field::Bio,
            "description" => Field::Description,
            _ => return None,
        })
    }
}

/// The most text a document written on this node may hold, all fields together: a post's whole
/// text fits in one change ([`crate::Limits::MAX_CHANGE_BYTES`]) with room to spare, and an edit
/// never has to compare more (the diff of two texts is what costs: 7 s for a 1 MB body). Checked
/// before any work by [`crate::Replica`]'s writes; documents made elsewhere may grow larger, by
/// many changes, and are read as they are.
pub const MAX_CONTENT_BYTES: usize = 200 * 1024;

impl Content {
    /// Bytes of text in all its fields (an image counts as its 32-byte hash).
    pub fn text_bytes(&self) -> usize {
        match self {
            Content::Post(p) => {
                p.title.len()
                    + p.body.len()
                    + p.link.as_ref().map_or(0, String::len)
                    + p.images.len() * 32
                    + p.tags.iter().map(String::len).sum::<usize>()
                    + p.card.as_ref().map_or(0, LinkCard::text_bytes)
            }
            Content::Comment(c) => c.text.len(),
            Content::Profile(p) => p.name.len() + p.bio.len(),
            Content::Info(i) => i.name.len() + i.description.len(),
        }
    }

    /// An empty document of the given kind.
    pub fn empty(kind: DocKind) -> Self {
        match kind {
            DocKind::Post => Content::Post(PostContent::default()),
            DocKind::Comment => Content::Comment(CommentContent::default()),
            DocKind::Profile => Content::Profile(ProfileContent::default()),
            DocKind::Info => Content::Info(InfoContent::default()),
        }
    }

    /// The kind of document this content belongs to.
    pub fn kind(&self) -> DocKind {
        match self {
            Content::Post(_) => DocKind::Post,
            Content::Comment(_) => DocKind::Comment,
            Content::Profile(_) => DocKind::Profile,
            Content::Info(_) => DocKind::Info,
        }
    }

    /// Reads a document of `kind`, at `heads` if given (an earlier version), else as it is now.
    pub fn read<R: ReadDoc>(kind: DocKind, doc: &R, heads: Option<&[ChangeHash]>) -> Self {
        let r = Read { doc, heads };
        match kind {
            DocKind::Post => Content::Post(PostContent {
                title: r.text("title"),
                body: r.text("body"),
                link: r.string("link"),
                images: r
                    .list("images")
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                tags: r.list("tags"),
                card: r.card(),
            }),
            DocKind::Comment => Content::Comment(CommentContent {
                text: r.text("text"),
            }),
            DocKind::Profile => Content::Profile(ProfileContent {
                name: r.text("name"),
                bio: r.text("bio"),
            }),
            DocKind::Info => Content::Info(InfoContent {
                name: r.text("name"),
                description: r.text("description"),
            }),
        }
    }

    /// Writes this content into `doc` as the smallest set of operations that turns what the
    /// document holds now into it (text by diff). The caller commits.
    pub fn write<T: Transactable>(&self, doc: &mut T) -> Result<(), AutomergeError> {
        match self {
            Content::Post(p) => {
                write_text(doc, "title", &p.title)?;
                write_text(doc, "body", &p.body)?;
                write_string(doc, "link", p.link.as_deref())?;
                let images: Vec<String> = p.images.iter().map(ToString::to_string).collect();
                write_list(doc, "images", &images)?;
                write_list(doc, "tags", &p.tags)?;
                write_card(doc, p.card.as_ref())
            }
            Content::Comment(c) => write_text(doc, "text", &c.text),
            Content::Profile(p) => {
                write_text(doc, "name", &p.name)?;
                write_text(doc, "bio", &p.bio)
            }
            Content::Info(i) => {
                write_text(doc, "name", &i.name)?;
                write_text(doc, "description", &i.description)
            }
        }
    }

    /// The fields in which `self` and `other` differ (both must be of the same kind).
    pub fn changed_fields(&self, other: &Content) -> Vec<Field> {
        let mut out = Vec::new();
        let mut check = |changed: bool, field| {
            if changed {
                out.push(field);
            }
        };
        match (self, other) {
            (Content::Post(a), Content::Post(b)) => {
                check(a.title != b.title, Field::Title);
                check(a.body != b.body, Field::Body);
                check(a.link != b.link, Field::Link);
                check(a.images != b.images, Field::Images);
                check(a.tags != b.tags, Field::Tags);
                check(a.card != b.card, Field::Card);
            }
            (Content::Comment(a), Content::Comment(b)) => check(a.text != b.text, Field::Text),
            (Content::Profile(a), Content::Profile(b)) => {
                check(a.name != b.name, Field::Name);
                check(a.bio != b.bio, Field::Bio);
            }
            (Content::Info(a), Content::Info(b)) => {
                check(a.name != b.name, Field::Name);
                check(a.description != b.description, Field::Description);
            }
            _ => {}
        }
        out
    }
}

struct Read<'a, R> {
    doc: &'a R,
    heads: Option<&'a [ChangeHash]>,
}

impl<R: ReadDoc> Read<'_, R> {
    fn get(&self, obj: &ObjId, prop: &str) -> Option<(Value<'_>, ObjId)> {
        let got = match self.heads {
            Some(heads) => self.doc.get_at(obj, prop, heads),
            None => self.doc.get(obj, prop),
        };
        got.ok().flatten()
    }

    fn text(&self, prop: &str) -> String {
        match self.get(&ROOT, prop) {
            Some((Value::Object(ObjType::Text), id)) => match self.heads {
                Some(heads) => self.doc.text_at(&id, heads),
                None => self.doc.text(&id),
            }
            .unwrap_or_default(),
            Some((Value::Scalar(s), _)) => s.as_str().unwrap_or_default().to_owned(),
            _ => String::new(),
        }
    }

    fn string(&self, prop: &str) -> Option<String> {
        self.string_in(&ROOT, prop)
    }

    fn string_in(&self, obj: &ObjId, prop: &str) -> Option<String> {
        match self.get(obj, prop) {
            Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// The link card: a map with a string `url`; anything else reads as no card.
    fn card(&self) -> Option<LinkCard> {
        let Some((Value::Object(ObjType::Map), map)) = self.get(&ROOT, "card") else {
            return None;
        };
        let url = self.string_in(&map, "url")?;
        let field = |prop| self.string_in(&map, prop).unwrap_or_default();
        Some(LinkCard::new(
            &url,
            &field("title"),
            &field("description"),
            &field("site_name"),
        ))
    }

    fn list(&self, prop: &str) -> Vec<String> {
        let Some((Value::Object(ObjType::List), id)) = self.get(&ROOT, prop) else {
            return Vec::new();
        };
        let len = match self.heads {
            Some(heads) => self.doc.length_at(&id, heads),
            None => self.doc.length(&id),
        };
        (0..len)
            .filter_map(|i| {
                let got = match self.heads {
                    Some(heads) => self.doc.get_at(&id, i, heads),
                    None => self.doc.get(&id, i),
                };
                match got.ok().flatten() {
                    Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
                    _ => None,
                }
            })
            .collect()
    }
}

fn write_text<T: Transactable>(doc: &mut T, prop: &str, new: &str) -> Result<(), AutomergeError> {
    let text = match doc.get(&ROOT, prop)? {
        Some((Value::Object(ObjType::Text), id)) => id,
        _ => {
            if new.is_empty() {
                return Ok(());
            }
            doc.put_object(&ROOT, prop, ObjType::Text)?
        }
    };
    if doc.text(&text)? != new {
        doc.update_text(&text, new)?;
    }
    Ok(())
}

fn write_string<T: Transactable>(
    doc: &mut T,
    prop: &str,
    new: Option<&str>,
) -> Result<(), AutomergeError> {
    let current = match doc.get(&ROOT, prop)? {
        Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
        Some(_) => Some(String::new()),
        None => None,
    };
    match new {
        Some(new) if current.as_deref() != Some(new) => doc.put(&ROOT, prop, new),
        None if current.is_some() => doc.delete(&ROOT, prop),
        _ => Ok(()),
    }
}

fn write_card<T: Transactable>(doc: &mut T, new: Option<&LinkCard>) -> Result<(), AutomergeError> {
    let current = doc.get(&ROOT, "card")?;
    let Some(card) = new else {
        if current.is_some() {
            doc.delete(&ROOT, "card")?;
        }
        return Ok(());
    };
    let map = match current {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => doc.put_object(&ROOT, "card", ObjType::Map)?,
    };
    let fields = [
        ("url", &card.url),
        ("title", &card.title),
        ("description", &card.description),
        ("site_name", &card.site_name),
    ];
    for (prop, value) in fields {
        let held = match doc.get(&map, prop)? {
            Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
            Some(_) => Some(String::new()),
            None => None,
        };
        if value.is_empty() {
            if held.is_some() {
                doc.delete(&map, prop)?;
            }
        } else if held.as_deref() != Some(value.as_str()) {
            doc.put(&map, prop, value.as_str())?;
        }
    }
    // Keys the schema does not know are dropped, so a card holds nothing else.
    let others: Vec<String> = doc
        .keys(&map)
        .filter(|k| !matches!(k.as_str(), "url" | "title" | "description" | "site_name"))
        .collect();
    for key in others {
        doc.delete(&map, key.as_str())?;
    }
    Ok(())
}

fn write_list<T: Transactable>(
    doc: &mut T,
    prop: &str,
    new: &[String],
) -> Result<(), AutomergeError> {
    let list = match doc.get(&ROOT, prop)? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => {
            if new.is_empty() {
                return Ok(());
            }
            doc.put_object(&ROOT, prop, ObjType::List)?
        }
    };
    // Lists are ordered sets: remove what is gone (and anything that is not a string), append
    // what is new, so that two people adding different items at the same time both keep theirs.
    let mut kept: Vec<String> = Vec::new();
    for i in (0..doc.length(&list)).rev() {
        let item = match doc.get(&list, i)? {
            Some((Value::Scalar(s), _)) => s.as_str().map(str::to_owned),
            _ => None,
        };
        match item {
            Some(item) if new.contains(&item) && !kept.contains(&item) => kept.push(item),
            _ => doc.delete(&list, i)?,
        }
    }
    let mut len = doc.length(&list);
    for item in new {
        if !kept.contains(item) {
            doc.insert(&list, len, item.as_str())?;
            len += 1;
        }
    }
    Ok(())
}
