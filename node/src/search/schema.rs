//! What the index holds: one tantivy document per post, its words in six text fields and the
//! facts a query filters and sorts on. Posts are the unit a reader finds; a post's comments are
//! words of the post.
//!
//! | field | kind | for |
//! |---|---|---|
//! | `post`, `subwiki`, `author` | 32 bytes, indexed and stored | replacing a post, filters, a hit's identity and moderation status |
//! | `fingerprint` | the author key's fingerprint, untokenised | `--author` by fingerprint |
//! | `created` | u64 (ms), fast and stored | newest first |
//! | `title`, `body`, `comments`, `link`, `tags`, `author_name` | text with positions | words, phrases, prefixes |
//!
//! Text is split on anything that is not a letter or digit, lower-cased and folded to ASCII
//! (`Café` is found by `cafe`); tokens over [`MAX_TOKEN`] bytes are dropped. No stemming: what
//! is found is what was written.

use agora_crdt::{AuthorId, CommentView, DocId, SubwikiId, Timestamp};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, TantivyDocument};

use crate::FeedItem;

/// The analyser's name in the index.
pub(super) const TOKENIZER: &str = "agora";
/// Bumped whenever the schema or the analysis changes: an index of another version is deleted
/// and built again from the store.
pub(super) const VERSION: u32 = 1;
/// Longer tokens (a base64 blob, a long URL path) are not indexed.
pub(super) const MAX_TOKEN: usize = 40;
/// The `created` field's name, for sorting.
pub(super) const CREATED: &str = "created";

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields {
    pub(super) post: Field,
    pub(super) subwiki: Field,
    pub(super) author: Field,
    pub(super) fingerprint: Field,
    pub(super) created: Field,
    pub(super) title: Field,
    pub(super) body: Field,
    pub(super) comments: Field,
    pub(super) link: Field,
    pub(super) tags: Field,
    pub(super) author_name: Field,
}

/// What a stored document says about its post.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stored {
    pub(super) post: DocId,
    pub(super) subwiki: SubwikiId,
    pub(super) author: AuthorId,
    pub(super) created: Timestamp,
}

impl Fields {
    /// The schema and its fields.
    pub(super) fn schema() -> (Schema, Self) {
        let mut b = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Self {
            post: b.add_bytes_field("post", INDEXED | STORED),
            subwiki: b.add_bytes_field("subwiki", INDEXED | STORED),
            author: b.add_bytes_field("author", INDEXED | STORED),
            fingerprint: b.add_text_field("fingerprint", STRING),
            created: b.add_u64_field(CREATED, FAST | STORED),
            title: b.add_text_field("title", text.clone()),
            body: b.add_text_field("body", text.clone()),
            comments: b.add_text_field("comments", text.clone()),
            link: b.add_text_field("link", text.clone()),
            tags: b.add_text_field("tags", text.clone()),
            author_name: b.add_text_field("author_name", text),
        };
        (b.build(), fields)
    }

    /// The text fields a word is looked for in, with the weight of a match in each: a word of
    /// the title or a tag says more about a post than one of a comment.
    pub(super) fn text(&self) -> [(Field, f32); 6] {
        [
            (self.title, 3.0),
            (self.tags, 2.0),
            (self.author_name, 2.0),
            (self.body, 1.0),
            (self.link, 1.0),
            (self.comments, 0.5),
        ]
    }

    /// The document of a post with its comments.
    pub(super) fn document(&self, item: &FeedItem, comments: &[CommentView]) -> TantivyDocument {
        let post = &item.post;
        let content = &post.content;
        let mut doc = TantivyDocument::default();
        doc.add_bytes(self.post, post.meta.id.as_bytes());
        doc.add_bytes(self.subwiki, item.subwiki.as_bytes());
        doc.add_bytes(self.author, post.meta.creator.as_bytes());
        doc.add_text(self.fingerprint, post.meta.creator.fingerprint());
        doc.add_u64(self.created, post.meta.created_at.0);
        doc.add_text(self.title, &content.title);
        doc.add_text(self.body, &content.body);
        for comment in comments {
            doc.add_text(self.comments, &comment.text);
        }
        if let Some(link) = &content.link {
            doc.add_text(self.link, link);
        }
        if let Some(card) = content.card_for_link() {
            for text in [&card.title, &card.description, &card.site_name] {
                doc.add_text(self.link, text);
            }
        }
        for tag in &content.tags {
            doc.add_text(self.tags, tag);
        }
        if let Some(name) = &post.author_name {
            doc.add_text(self.author_name, name);
        }
        doc
    }

    /// The facts a stored document keeps; `None` if it lacks one (a damaged index).
    pub(super) fn read(&self, doc: &TantivyDocument) -> Option<Stored> {
        let id = |field| -> Option<[u8; 32]> { doc.get_first(field)?.as_bytes()?.try_into().ok() };
        Some(Stored {
            post: DocId::from_bytes(id(self.post)?),
            subwiki: SubwikiId::from_bytes(id(self.subwiki)?),
            author: AuthorId::from_bytes(id(self.author)?),
            created: Timestamp(doc.get_first(self.created)?.as_u64()?),
        })
    }
}

/// The analyser of every text field, and of queries.
pub(super) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Makes the analyser known to an index just opened (tokenizers are not kept on disk).
pub(super) fn register(index: &Index) {
    index.tokenizers().register(TOKENIZER, analyzer());
}
