//! Full-text search over the joined subwikis: an embedded [tantivy] index (BM25 relevance, the
//! inverted index of Lucene) of every post's title, body, comments, link (with its card), tags
//! and author's display name, kept in the home as an index derived from the entries.
//!
//! ```text
//! <home>/search/                the tantivy index; safe to delete, built again from the store
//! <home>/search/agora-pending   posts written by a node opened offline, to index next
//! ```
//!
//! **Updated as entries are accepted, never on the path that accepts them.** The core
//! broadcasts every durable write of entries with the posts it changes ([`crate::Stored`]). A
//! running node's indexer (a task on the node's runtime whose work runs on a blocking thread;
//! see `indexer.rs`) gathers what arrives for a moment, reads those posts' views (rendering
//! the ones that are missing, as a reader would) and commits them in one batch. Each commit
//! carries a *stamp*: per subwiki, how many stored entries the index reflects. At a start, and
//! whenever the indexer fell behind the broadcast (it lagged and lost writes), each subwiki's
//! stamp is checked against the store's count of its entries; a subwiki whose count differs is
//! indexed again from its posts in the background while searches go on against what is
//! committed. A node opened offline for one command starts no indexer: the posts it writes are
//! appended to a small journal when it shuts down, and the next indexer (or an offline
//! `agora search`, which brings the index up to date before it answers) takes them in.
//!
//! **Moderation is applied when searching**, from the subwiki's moderation summary: a hide vote
//! or a mute needs no reindexing, and hidden posts are left out unless asked for. The hits are
//! read from the posts' current views, so a hit shows what the post says now.
//!
//! **Bounded**: a query is short ([`MAX_QUERY_BYTES`], [`MAX_CLAUSES`]), a prefix stands for at
//! most [`MAX_EXPANSIONS`] words, a page holds at most [`MAX_RESULTS`] hits, and a search looks
//! at no more than [`MAX_SCAN`] matching posts to fill a page past hidden ones. The query
//! language is in `query.rs`.
//!
//! [tantivy]: https://github.com/quickwit-oss/tantivy

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use agora_crdt::{AuthorId, DocKind, DocMeta, SubwikiId};
use tantivy::collector::TopDocs;
use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument};
use thiserror::Error;
use tokio::sync::{broadcast, watch};

use crate::core::Core;
use crate::error::NodeError;
use crate::moderation::Summary;
use crate::{FeedItem, PostStatus, Stored};

mod indexer;
mod query;
mod schema;
#[cfg(test)]
mod tests;

pub use self::query::{MAX_CLAUSES, MAX_EXPANSIONS, MAX_PHRASE, MAX_QUERY_BYTES};

/// The most hits one search returns.
pub const MAX_RESULTS: usize = 100;
/// The furthest a search pages (hits skipped).
pub const MAX_OFFSET: usize = 1000;
/// The most matching posts one search looks at to fill a page (hidden ones are skipped).
pub const MAX_SCAN: usize = 5000;
/// The longest snippet, in characters.
const SNIPPET_CHARS: usize = 200;
/// The index writer's memory, in bytes (one indexing thread, one merge thread).
const WRITER_MEMORY: usize = 32 << 20;
/// The journal of posts written offline, in the index's directory.
const JOURNAL: &str = "agora-pending";

/// A search that could not be run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The query cannot be run as written (empty, too long, too many parts).
    #[error("search: {0}")]
    Query(String),
    /// The index could not be read or written.
    #[error("search index: {0}")]
    Index(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        Self::Index(e.to_string())
    }
}

/// Whose posts a search is limited to: an author id, or the 8-character fingerprint shown next
/// to names (which every key starting the same way shares: give the id to be sure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorFilter {
    /// This author.
    Id(AuthorId),
    /// Authors whose id starts with this fingerprint.
    Fingerprint(String),
}

impl FromStr for AuthorFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(id) = s.parse() {
            return Ok(Self::Id(id));
        }
        let fingerprint = s.to_ascii_lowercase();
        let base32 = |c: char| c.is_ascii_digit() || ('a'..='v').contains(&c);
        if fingerprint.len() == 8 && fingerprint.chars().all(base32) {
            return Ok(Self::Fingerprint(fingerprint));
        }
        Err("not an author id (au_...) or an 8-character key fingerprint".into())
    }
}

impl fmt::Display for AuthorFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Fingerprint(fp) => f.write_str(fp),
        }
    }
}

impl serde::Serialize for AuthorFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AuthorFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A search of the joined subwikis (see `search.rs` for the query language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words, "phrases", prefix*es and -exclusions.
    pub text: String,
    /// Only this subwiki (which may be one the owner left); default: every joined one.
    pub subwiki: Option<SubwikiId>,
    /// Only posts by this author.
    pub author: Option<AuthorFilter>,
    /// Newest first instead of most relevant first.
    pub newest: bool,
    /// Include posts moderation hides.
    pub show_hidden: bool,
    /// Hits wanted, 1 to [`MAX_RESULTS`].
    pub limit: usize,
    /// Hits skipped first (the pages before), at most [`MAX_OFFSET`].
    pub offset: usize,
}

impl SearchQuery {
    /// The first 20 hits for `text` in every joined subwiki, most relevant first.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            subwiki: None,
            author: None,
            newest: false,
            show_hidden: false,
            limit: 20,
            offset: 0,
        }
    }
}

/// A part of a post's text around the words found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snippet {
    /// The text (from the body).
    pub text: String,
    /// The byte ranges of `text` that matched.
    pub highlights: Vec<Range<usize>>,
}

/// A post found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The post as it reads now, with its subwiki.
    pub item: FeedItem,
    /// Its moderation status.
    pub status: PostStatus,
    /// Its relevance (BM25, higher is better); `None` when sorted newest first.
    pub score: Option<f32>,
    /// Where the words are in its body (the body's start if they are elsewhere).
    pub snippet: Snippet,
}

/// An open index.
struct Opened {
    index: Index,
    fields: schema::Fields,
    reader: IndexReader,
    /// The writer (made on first use) and the stamp of what the index reflects.
    writer: Mutex<WriterState>,
}

/// The writer's side of an open index.
struct WriterState {
    writer: Option<IndexWriter>,
    stamp: indexer::Stamp,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Opened {
    /// Opens the index in `dir` (in memory if `None`); one that is missing, damaged, or of
    /// another schema version is deleted and made anew, empty (every subwiki is then indexed
    /// again, as its stamp is missing).
    fn open(dir: Option<&Path>) -> Result<Self, SearchError> {
        let (schema, fields) = schema::Fields::schema();
        let (index, stamp) = match dir {
            None => (Index::create_in_ram(schema), indexer::Stamp::default()),
            Some(dir) => match Self::existing(dir) {
                Some(found) => found,
                None => {
                    match std::fs::remove_dir_all(dir) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(SearchError::Index(format!("{}: {e}", dir.display())));
                        }
                        _ => {}
                    }
                    std::fs::create_dir_all(dir)
                        .map_err(|e| SearchError::Index(format!("{}: {e}", dir.display())))?;
                    (
                        Index::create_in_dir(dir, schema)?,
                        indexer::Stamp::default(),
                    )
                }
            },
        };
        schema::register(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            fields,
            reader,
            writer: Mutex::new(WriterState {
                writer: None,
                stamp,
            }),
        })
    }

    /// The index in `dir` and its stamp, if it is there, readable and of this version.
    fn existing(dir: &Path) -> Option<(Index, indexer::Stamp)> {
        if !dir.join("meta.json").is_file() {
            return None;
        }
        let index = Index::open_in_dir(dir)
            .inspect_err(|e| tracing::warn!("search index unreadable, built again: {e}"))
            .ok()?;
        let metas = index.load_metas().ok()?;
        let stamp = indexer::Stamp::decode(metas.payload.as_deref()?)?;
        if stamp.version != schema::VERSION {
            tracing::info!("search index of another version, built again");
            return None;
        }
        Some((index, stamp))
    }
}

/// The node's search index: opened on first use, kept up to date by an indexer task while the
/// node runs (see the module's doc).
pub(crate) struct SearchIndex {
    /// `<home>/search`, or `None` for an index in memory.
    dir: Option<PathBuf>,
    opened: Mutex<Option<Arc<Opened>>>,
    /// The writes of entries not indexed yet; taken by the indexer when it starts. A node
    /// without one keeps it and reads it when searching or shutting down.
    stored: Mutex<Option<broadcast::Receiver<Stored>>>,
    /// The running indexer.
    indexer: Mutex<Option<indexer::Handle>>,
    /// Whether subwikis are being indexed again (a search may miss some of their posts).
    busy: AtomicBool,
    /// Search is off on this node ([`crate::Config::search`]).
    off: AtomicBool,
    /// Bumped after every batch indexed (committed or found to change nothing).
    commits: watch::Sender<u64>,
    /// Subwikis indexed again from all their posts (for tests of when that happens).
    #[cfg(test)]
    full: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SearchIndex {
    /// The index in `dir` (none yet opened), following the writes `stored` receives.
    pub(crate) fn new(dir: Option<PathBuf>, stored: broadcast::Receiver<Stored>) -> Self {
        Self {
            dir,
            opened: Mutex::new(None),
            stored: Mutex::new(Some(stored)),
            indexer: Mutex::new(None),
            busy: AtomicBool::new(false),
            off: AtomicBool::new(false),
            commits: watch::channel(0).0,
            #[cfg(test)]
            full: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The open index, opened now if it is not yet.
    fn opened(&self) -> Result<Arc<Opened>, SearchError> {
        let mut opened = lock(&self.opened);
        if let Some(o) = opened.as_ref() {
            return Ok(o.clone());
        }
        let o = Arc::new(Opened::open(self.dir.as_deref())?);
        *opened = Some(o.clone());
        Ok(o)
    }

    /// Whether subwikis are being indexed again, so that a search may miss some posts.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// A receiver bumped after every batch the indexer takes in.
    pub(crate) fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The posts the committed index holds (0 if it is not open yet).
    pub(crate) fn indexed(&self) -> u64 {
        lock(&self.opened)
            .as_ref()
            .map_or(0, |o| o.reader.searcher().num_docs())
    }

    /// Runs a search. On a node without a running indexer, the index is first brought up to
    /// date with what was written since it was last.
    pub(crate) fn search(&self, core: &Core, q: &SearchQuery) -> Result<Vec<SearchHit>, NodeError> {
        if !(1..=MAX_RESULTS).contains(&q.limit) || q.offset > MAX_OFFSET {
            return Err(SearchError::Query(format!(
                "a page is 1 to {MAX_RESULTS} hits, at most {MAX_OFFSET} hits in"
            ))
            .into());
        }
        if self.off.load(Ordering::Relaxed) {
            return Err(SearchError::Index("search is off on this node".into()).into());
        }
        let parsed = query::parse(&q.text, &mut schema::analyzer())?;
        self.catch_up_offline(core)?;
        let opened = self.opened()?;
        let subwikis = match q.subwiki {
            Some(s) => vec![s],
            None => core.joined()?,
        };
        if subwikis.is_empty() {
            return Ok(Vec::new());
        }
        let fields = opened.fields;
        let query = query::build(&parsed, &fields, &subwikis, q.author.as_ref());
        let searcher = opened.reader.searcher();
        let want = q.offset + q.limit;
        let mut window = (want * 2).clamp(32, MAX_SCAN);
        let mut summaries: HashMap<SubwikiId, Summary> = HashMap::new();
        let visible = loop {
            let found: Vec<(Option<f32>, DocAddress)> = if q.newest {
                searcher
                    .search(
                        &query,
                        &TopDocs::with_limit(window)
                            .order_by_u64_field(schema::CREATED, Order::Desc),
                    )
                    .map_err(SearchError::from)?
                    .into_iter()
                    .map(|(_, a)| (None, a))
                    .collect()
            } else {
                searcher
                    .search(&query, &TopDocs::with_limit(window).order_by_score())
                    .map_err(SearchError::from)?
                    .into_iter()
                    .map(|(score, a)| (Some(score), a))
                    .collect()
            };
            let mut visible = Vec::new();
            for (score, address) in &found {
                let doc: TantivyDocument = searcher.doc(*address).map_err(SearchError::from)?;
                let Some(stored) = fields.read(&doc) else {
                    continue;
                };
                let summary = match summaries.entry(stored.subwiki) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(core.moderation_summary(stored.subwiki)?)
                    }
                };
                let meta = DocMeta {
                    id: stored.post,
                    kind: DocKind::Post,
                    creator: stored.author,
                    created_at: stored.created,
                    parent: None,
                    reply_to: None,
                };
                let status = summary.status(&meta);
                if status.hidden.is_none() || q.show_hidden {
                    visible.push((*score, stored, status));
                    if visible.len() == want {
                        break;
                    }
                }
            }
            if visible.len() >= want || found.len() < window || window >= MAX_SCAN {
                break visible;
            }
            window = (window * 4).min(MAX_SCAN);
        };
        let snippets = snippet_generator(&searcher, query.as_ref(), fields.body)?;
        let mut hits = Vec::with_capacity(q.limit);
        for (score, stored, status) in visible.into_iter().skip(q.offset) {
            // A post the store no longer holds (the index is behind) is not a hit.
            let Some(item) = core.post_view(stored.subwiki, stored.post)? else {
                continue;
            };
            let snippet = snippet(&snippets, &item.post.content.body);
            hits.push(SearchHit {
                item,
                status,
                score,
                snippet,
            });
        }
        Ok(hits)
    }

    /// Turns search off on a running node that keeps no index: writes are no longer followed
    /// (nothing is kept for an indexer), and a search is refused.
    pub(crate) fn turn_off(&self) {
        self.off.store(true, Ordering::Relaxed);
        *lock(&self.stored) = None;
    }

    /// Starts the indexer on the current tokio runtime: it brings the index up to date in the
    /// background, then follows every write.
    pub(crate) fn start(self: &Arc<Self>, core: std::sync::Weak<Core>) {
        let Some(stored) = lock(&self.stored).take() else {
            return;
        };
        let handle = indexer::spawn(self.clone(), core, stored);
        *lock(&self.indexer) = Some(handle);
    }

    /// Stops the indexer after it has committed what it holds (bounded by
    /// [`indexer::STOP_WAIT`]); on a node without one, appends the posts written since the
    /// index was last brought up to date to the journal, for the next indexer.
    pub(crate) async fn shut_down(&self, core: &Core) {
        let handle = lock(&self.indexer).take();
        match handle {
            Some(handle) => handle.stop().await,
            None => {
                let rx = lock(&self.stored).take();
                if let Some(mut rx) = rx {
                    if let Err(e) = self.write_journal(core, &mut rx) {
                        tracing::warn!("posts written offline not noted for search: {e}");
                    }
                    *lock(&self.stored) = Some(rx);
                }
            }
        }
    }

    /// Deletes the index and builds it again from the store, on this thread; returns how many
    /// posts it holds. For `agora-node rebuild-indexes`, on a node opened offline.
    pub(crate) fn rebuild(&self, core: &Core) -> Result<u64, NodeError> {
        if lock(&self.indexer).is_some() || self.off.load(Ordering::Relaxed) {
            return Err(SearchError::Index(
                "the node's indexer is running, or search is off: rebuild the index on a node \
                 opened offline"
                    .into(),
            )
            .into());
        }
        *lock(&self.opened) = None;
        if let Some(dir) = &self.dir {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(SearchError::Index(format!("{}: {e}", dir.display())).into());
                }
                _ => {}
            }
        }
        self.catch_up_offline(core)?;
        let opened = self.opened()?;
        Ok(opened.reader.searcher().num_docs())
    }

    /// On a node without a running indexer: indexes what was written since the index was last
    /// brought up to date (the journal, this process's writes, any subwiki whose count
    /// differs from its stamp), on this thread.
    fn catch_up_offline(&self, core: &Core) -> Result<(), NodeError> {
        let rx = lock(&self.stored).take();
        let Some(mut rx) = rx else {
            // The indexer has it: it keeps the index up to date.
            return Ok(());
        };
        let mut pending = indexer::Pending::rescan();
        let result = self
            .opened()
            .and_then(|_| self.read_journal(&mut pending))
            .map_err(NodeError::from)
            .and_then(|()| self.apply(core, &mut pending, &mut rx, &AtomicBool::new(false)));
        *lock(&self.stored) = Some(rx);
        result
    }

    fn journal(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(JOURNAL))
    }
}

/// A snippet generator for the body field, or none if the query has no words of it.
fn snippet_generator(
    searcher: &tantivy::Searcher,
    query: &dyn tantivy::query::Query,
    field: Field,
) -> Result<SnippetGenerator, SearchError> {
    let mut generator = SnippetGenerator::create(searcher, query, field)?;
    generator.set_max_num_chars(SNIPPET_CHARS);
    Ok(generator)
}

/// The part of `body` around the words found, or its start.
fn snippet(generator: &SnippetGenerator, body: &str) -> Snippet {
    let found = generator.snippet(body);
    if !found.is_empty() && !found.highlighted().is_empty() {
        return Snippet {
            text: found.fragment().to_owned(),
            highlights: found.highlighted().to_vec(),
        };
    }
    let mut end = body.len().min(SNIPPET_CHARS);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    Snippet {
        text: body.get(..end).unwrap_or_default().to_owned(),
        highlights: Vec::new(),
    }
}

impl crate::Node {
    /// Searches the joined subwikis (or `query.subwiki`) for posts with the query's words in
    /// their title, body, comments, link, tags or author's name: most relevant first, or
    /// newest first; posts moderation hides are left out unless `query.show_hidden`. See
    /// [`crate::search`] for the query language and its limits.
    ///
    /// Blocking: on a node opened offline it first indexes what was written since the index
    /// was last brought up to date (all of it if there is no index yet). On a running node it
    /// reads what the indexer has committed (a moment behind the writes; see
    /// [`crate::Node::search_catching_up`]).
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, NodeError> {
        self.search_index().search(self.core(), query)
    }

    /// Whether the search index is indexing subwikis again (after a start, a lag or a new
    /// index), so that a search may miss some of their posts for now.
    pub fn search_catching_up(&self) -> bool {
        self.search_index().is_busy()
    }

    /// A receiver that changes whenever the search index has taken in a batch of writes (or
    /// found it had nothing to take): wait on it instead of sleeping.
    pub fn search_commits(&self) -> watch::Receiver<u64> {
        self.search_index().commits()
    }

    /// The posts the search index holds as committed (0 before it is opened). For benchmarks
    /// and tests that wait for the indexer.
    #[doc(hidden)]
    pub fn search_indexed(&self) -> u64 {
        self.search_index().indexed()
    }

    /// Deletes the search index and builds it again from the store, on this thread; returns
    /// how many posts it holds. On a node opened offline (`agora-node rebuild-indexes`).
    pub fn rebuild_search(&self) -> Result<u64, NodeError> {
        self.search_index().rebuild(self.core())
    }
}
