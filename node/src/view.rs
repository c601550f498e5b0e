//! The stored form of a rendered post ([`FeedItem`]): what the feed shows, kept in the store so
//! that a feed page needs no replay of its subwiki. Derived data: a view that does not decode
//! is simply rendered again from the entries.
//!
//! Layout (all integers big-endian, strings and byte lists with a u32 length): format byte 3,
//! subwiki, post id, creator, created at, title, body, link (0 or 1 then string), images (count
//! then 32-byte hashes), tags (count then strings), link card (0, or 1 then url, title,
//! description and site name as strings), author name (0 or 1 then string), edits, editors
//! (count then 32-byte ids), comments, updated at, the version read (count then 32-byte entry
//! ids), the tombstone of a retracted post (0, or 1 then its record, [`Tombstone::encode`], as
//! a byte string). Format 1 had no version, 2 no card and 3 no tombstone; such views no longer
//! decode and are rendered again.

use std::collections::BTreeSet;

use agora_crdt::{
    AuthorId, BlobHash, DocId, DocKind, DocMeta, EntryId, LinkCard, PostContent, PostView,
    SubwikiId, Timestamp, Tombstone, Version,
};

use crate::core::FeedItem;

/// The format of a stored view: bumped whenever the layout changes, so older views are
/// rendered again instead of read wrongly.
const FORMAT: u8 = 4;
/// No list in a view is longer than this (a guard against a damaged record).
const MAX_ITEMS: usize = 1 << 16;

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn len(&mut self, n: usize) {
        self.0
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }
    fn id(&mut self, v: &[u8; 32]) {
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.len(v.len());
        self.0.extend_from_slice(v.as_bytes());
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.str(v);
            }
        }
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        (n <= self.0.len().max(MAX_ITEMS)).then_some(n)
    }
    fn id(&mut self) -> Option<[u8; 32]> {
        self.take(32)?.try_into().ok()
    }
    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.str().map(Some),
            _ => None,
        }
    }
    fn list<T>(&mut self, mut each: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let n = self.len()?;
        (n <= MAX_ITEMS).then_some(())?;
        (0..n).map(|_| each(self)).collect()
    }
}

/// Encodes a rendered post.
pub(crate) fn encode(item: &FeedItem) -> Vec<u8> {
    let p = &item.post;
    let mut out = Out::default();
    out.0.push(FORMAT);
    out.id(item.subwiki.as_bytes());
    out.id(p.meta.id.as_bytes());
    out.id(p.meta.creator.as_bytes());
    out.u64(p.meta.created_at.0);
    out.str(&p.content.title);
    out.str(&p.content.body);
    out.opt_str(p.content.link.as_deref());
    out.len(p.content.images.len());
    for image in &p.content.images {
        out.id(image.as_bytes());
    }
    out.len(p.content.tags.len());
    for tag in &p.content.tags {
        out.str(tag);
    }
    match &p.content.card {
        None => out.0.push(0),
        Some(card) => {
            out.0.push(1);
            for field in [&card.url, &card.title, &card.description, &card.site_name] {
                out.str(field);
            }
        }
    }
    out.opt_str(p.author_name.as_deref());
    out.u64(p.edits as u64);
    out.len(p.editors.len());
    for editor in &p.editors {
        out.id(editor.as_bytes());
    }
    out.u64(p.comments as u64);
    out.u64(p.updated_at.0);
    out.len(p.version.entries().len());
    for entry in p.version.entries() {
        out.id(entry.as_bytes());
    }
    match &p.retracted {
        None => out.0.push(0),
        Some(tombstone) => {
            out.0.push(1);
            let record = tombstone.encode();
            out.len(record.len());
            out.0.extend_from_slice(&record);
        }
    }
    out.0
}

/// Decodes a rendered post; `None` if the record is damaged or of another format.
pub(crate) fn decode(bytes: &[u8]) -> Option<FeedItem> {
    let mut r = In(bytes);
    (r.u8()? == FORMAT).then_some(())?;
    let subwiki = SubwikiId::from_bytes(r.id()?);
    let id = DocId::from_bytes(r.id()?);
    let creator = AuthorId::from_bytes(r.id()?);
    let created_at = Timestamp(r.u64()?);
    let content = PostContent {
        title: r.str()?,
        body: r.str()?,
        link: r.opt_str()?,
        images: r.list(|r| r.id().map(BlobHash::from_bytes))?,
        tags: r.list(In::str)?,
        card: match r.u8()? {
            0 => None,
            1 => Some(LinkCard::new(&r.str()?, &r.str()?, &r.str()?, &r.str()?)),
            _ => return None,
        },
    };
    let author_name = r.opt_str()?;
    let edits = usize::try_from(r.u64()?).ok()?;
    let editors: BTreeSet<AuthorId> = r
        .list(|r| r.id().map(AuthorId::from_bytes))?
        .into_iter()
        .collect();
    let comments = usize::try_from(r.u64()?).ok()?;
    let updated_at = Timestamp(r.u64()?);
    let version = Version::new(r.list(|r| r.id().map(EntryId::from_bytes))?);
    let retracted = match r.u8()? {
        0 => None,
        1 => {
            let n = r.len()?;
            Some(Tombstone::decode(r.take(n)?)?)
        }
        _ => return None,
    };
    r.0.is_empty().then_some(())?;
    Some(FeedItem {
        subwiki,
        post: PostView {
            meta: DocMeta {
                id,
                kind: DocKind::Post,
                creator,
                created_at,
                parent: None,
                reply_to: None,
            },
            content,
            author_name,
            edits,
            editors,
            comments,
            updated_at,
            version,
            retracted,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn a_view_round_trips_and_damage_is_detected() {
        let item = FeedItem {
            subwiki: SubwikiId::from_bytes([1; 32]),
            post: PostView {
                meta: DocMeta {
                    id: DocId::from_bytes([2; 32]),
                    kind: DocKind::Post,
                    creator: AuthorId::from_bytes([3; 32]),
                    created_at: Timestamp(42),
                    parent: None,
                    reply_to: None,
                },
                content: PostContent {
                    title: "t".into(),
                    body: "b\u{e9}".into(),
                    link: Some("https://example.org".into()),
                    images: vec![BlobHash::from_bytes([4; 32])],
                    tags: vec!["x".into(), "y".into()],
                    card: Some(LinkCard::new("https://example.org", "T", "D", "")),
                },
                author_name: Some("Ann".into()),
                edits: 3,
                editors: [AuthorId::from_bytes([3; 32])].into_iter().collect(),
                comments: 7,
                updated_at: Timestamp(99),
                version: Version::new([EntryId::from_bytes([5; 32]), EntryId::from_bytes([6; 32])]),
                retracted: None,
            },
        };
        let bytes = encode(&item);
        assert_eq!(decode(&bytes), Some(item));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        // A view in a previous format (no version, no card, no tombstone) is not read.
        let mut old = bytes[..bytes.len() - (1 + 4 + 2 * 32)].to_vec();
        old[0] = 1;
        assert_eq!(decode(&old), None);
        let mut old = bytes.clone();
        old[0] = 2;
        assert_eq!(decode(&old), None);
        let mut old = bytes[..bytes.len() - 1].to_vec();
        old[0] = 3;
        assert_eq!(decode(&old), None);
    }

    #[test]
    fn a_retracted_post_keeps_its_tombstone_and_no_content() {
        let meta = DocMeta {
            id: DocId::from_bytes([2; 32]),
            kind: DocKind::Post,
            creator: AuthorId::from_bytes([3; 32]),
            created_at: Timestamp(42),
            parent: None,
            reply_to: None,
        };
        let item = FeedItem {
            subwiki: SubwikiId::from_bytes([1; 32]),
            post: PostView {
                meta: meta.clone(),
                content: PostContent::default(),
                author_name: None,
                edits: 0,
                editors: BTreeSet::new(),
                comments: 1,
                updated_at: Timestamp(50),
                version: Version::new([]),
                retracted: Some(Tombstone {
                    meta,
                    by: EntryId::from_bytes([7; 32]),
                    signer: AuthorId::from_bytes([8; 32]),
                    at: Timestamp(50),
                    reason: "doxxing".into(),
                }),
            },
        };
        let bytes = encode(&item);
        assert_eq!(decode(&bytes), Some(item));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None);
        }
    }
}
