//! Keeping the index up to date: the indexer of a running node, the catch-up of a node opened
//! offline, and the journal between them.
//!
//! **What the index reflects.** Every commit stores a stamp: per subwiki, the number of stored
//! entries whose posts are indexed. Writes the indexer takes from the broadcast add their
//! entries to it. To check a subwiki, the indexer holds the subwiki's lock (every write of its
//! entries, with its broadcast, happens under that lock), takes every write received so far,
//! and reads the store's count: stamp plus writes not yet indexed must equal the count. If they
//! do not (writes were lost to a lag, the node was stopped before a commit, entries were
//! removed, or the index is new), the subwiki is indexed again from all its posts, and its
//! stamp becomes that count: the writes received after it are added as usual. A subwiki is
//! checked at every start of the indexer, after a lag, and before an offline search.
//!
//! A long job (indexing a large subwiki again) takes what the broadcast brings every
//! [`DRAIN_EVERY`] posts, so it never lags for being busy, and gives up at a stop, leaving that
//! subwiki unstamped (to be indexed again at the next start) and committing the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use agora_crdt::{DocId, DocKind, EntryId, Payload, SubwikiId};
use tantivy::indexer::IndexWriterOptions;
use tantivy::{IndexWriter, Term};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use super::schema::{self, Fields};
use super::{Opened, SearchError, SearchIndex, WRITER_MEMORY, lock};
use crate::Stored;
use crate::core::Core;
use crate::error::NodeError;

/// How long the indexer gathers writes after the first one before indexing them.
const BATCH_WINDOW: Duration = Duration::from_millis(250);
/// Posts indexed between two looks at the broadcast during a long job.
const DRAIN_EVERY: usize = 256;
/// Posts read from the feed index at a time when a subwiki is indexed again.
const FEED_PAGE: usize = 512;
/// How long a stopping node waits for the indexer's last commit.
pub(crate) const STOP_WAIT: Duration = Duration::from_secs(10);
/// How long the indexer waits before trying again after the index failed.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// A journal larger than this is not read (the subwikis' counts catch what it held).
const MAX_JOURNAL_BYTES: u64 = 64 << 20;

/// Per subwiki, the stored entries whose posts the index reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The schema version it was written with.
    pub(super) version: u32,
    counts: BTreeMap<SubwikiId, u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StampFile {
    version: u32,
    counts: BTreeMap<String, u64>,
}

impl Stamp {
    /// The count for a subwiki; one (its genesis, which no write broadcasts) if none is kept.
    fn get(&self, subwiki: &SubwikiId) -> u64 {
        self.counts.get(subwiki).copied().unwrap_or(1)
    }

    pub(super) fn encode(&self) -> String {
        let file = StampFile {
            version: schema::VERSION,
            counts: self
                .counts
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
        };
        serde_json::to_string(&file).unwrap_or_default()
    }

    /// Reads a stamp; `None` if it is damaged. A subwiki that does not parse is left out (and
    /// indexed again).
    pub(super) fn decode(text: &str) -> Option<Self> {
        let file: StampFile = serde_json::from_str(text).ok()?;
        Some(Self {
            version: file.version,
            counts: file
                .counts
                .into_iter()
                .filter_map(|(s, n)| Some((s.parse().ok()?, n)))
                .collect(),
        })
    }
}

/// Writes received and not indexed yet.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Posts to index again.
    posts: BTreeMap<SubwikiId, BTreeSet<DocId>>,
    /// Other documents changed (a comment edited: its post is looked up).
    docs: BTreeMap<SubwikiId, BTreeSet<DocId>>,
    /// Entries written, less entries removed.
    entries: BTreeMap<SubwikiId, i64>,
    /// Entries were removed: once committed, segments holding deleted documents are merged,
    /// so the removed text leaves the index's files.
    merge: bool,
    /// Check every subwiki's count against the stamp.
    rescan: bool,
    /// The journal was read into this: delete it once indexed.
    journal: bool,
}

impl Pending {
    /// Nothing yet, every subwiki to check.
    pub(super) fn rescan() -> Self {
        Self {
            rescan: true,
            ..Self::default()
        }
    }

    fn take(&mut self, stored: &Stored) {
        let s = stored.subwiki;
        let written = i64::try_from(stored.entries.len()).unwrap_or(i64::MAX);
        let removed = i64::try_from(stored.removed).unwrap_or(i64::MAX);
        *self.entries.entry(s).or_default() += written - removed;
        if stored.removed > 0 {
            self.merge = true;
            // A whole subwiki deleted: the check of every subwiki drops what it had.
            self.rescan |= stored.posts.is_empty();
        }
        let posts = self.posts.entry(s).or_default();
        posts.extend(stored.posts.iter().copied());
        for entry in stored.entries.iter() {
            if let Payload::Change(change) = entry.payload()
                && !stored.posts.contains(&change.doc)
            {
                self.docs.entry(s).or_default().insert(change.doc);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.posts.is_empty() && self.docs.is_empty() && self.entries.is_empty() && !self.rescan
    }

    /// Forgets what a subwiki about to be indexed again had pending.
    fn forget(&mut self, subwiki: &SubwikiId) {
        self.posts.remove(subwiki);
        self.docs.remove(subwiki);
        self.entries.remove(subwiki);
    }
}

/// Takes every write received so far; returns false once the broadcast is closed.
fn drain(rx: &mut Receiver<Stored>, pending: &mut Pending) -> bool {
    loop {
        match rx.try_recv() {
            Ok(stored) => pending.take(&stored),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Lagged(lost)) => {
                tracing::debug!(
                    lost,
                    "the search indexer fell behind; every subwiki is checked"
                );
                pending.rescan = true;
            }
            Err(TryRecvError::Closed) => return false,
        }
    }
}

/// The posts of comments among `docs` (other documents are not searched).
fn posts_of_comments(core: &Core, docs: &BTreeSet<DocId>) -> Result<BTreeSet<DocId>, NodeError> {
    let mut posts = BTreeSet::new();
    for doc in docs {
        let entry = core.store().entry(&EntryId::from(*doc))?;
        if let Some(Payload::CreateDocument(c)) = entry.as_ref().map(|e| e.payload())
            && c.kind == DocKind::Comment
            && let Some(parent) = c.parent
        {
            posts.insert(parent);
        }
    }
    Ok(posts)
}

/// Why a job stopped before its end.
enum Stop {
    /// The node is stopping.
    Asked,
    /// It failed.
    Failed(NodeError),
}

impl From<NodeError> for Stop {
    fn from(e: NodeError) -> Self {
        Self::Failed(e)
    }
}

impl From<tantivy::TantivyError> for Stop {
    fn from(e: tantivy::TantivyError) -> Self {
        Self::Failed(SearchError::from(e).into())
    }
}

fn post_term(fields: &Fields, post: &DocId) -> Term {
    Term::from_field_bytes(fields.post, post.as_bytes())
}

fn subwiki_term(fields: &Fields, subwiki: &SubwikiId) -> Term {
    Term::from_field_bytes(fields.subwiki, subwiki.as_bytes())
}

/// Adds a post as it reads now (with its comments); nothing if the store no longer has it.
fn add_post(
    core: &Core,
    fields: &Fields,
    writer: &IndexWriter,
    subwiki: SubwikiId,
    post: DocId,
) -> Result<(), Stop> {
    let Some(item) = core.post_view(subwiki, post)? else {
        return Ok(());
    };
    if item.post.retracted.is_some() {
        // Its text is gone: nothing to find it by.
        return Ok(());
    }
    let comments = if item.post.comments > 0 {
        core.with_replica(subwiki, |r| Ok(r.comments(&post)))?
    } else {
        Vec::new()
    };
    writer.add_document(fields.document(&item, &comments))?;
    Ok(())
}

/// Rewrites the segments that hold deleted documents without them, and deletes the old
/// segments' files: the text of a retracted post leaves the index's files, not only its
/// results. Costs a rewrite of those segments (see `docs/performance.md`), which only a
/// retraction asks for.
fn merge_deletes(index: &tantivy::Index, writer: &mut IndexWriter) -> Result<(), SearchError> {
    let segments: Vec<tantivy::index::SegmentId> = index
        .searchable_segment_metas()?
        .iter()
        .filter(|m| m.has_deletes())
        .map(tantivy::index::SegmentMeta::id)
        .collect();
    if !segments.is_empty() {
        writer.merge(&segments).wait()?;
        writer.garbage_collect_files().wait()?;
    }
    Ok(())
}

impl SearchIndex {
    /// Indexes what `pending` holds (checking every subwiki first if it says so, and taking
    /// what `rx` brings meanwhile), and commits it with the new stamp. On failure nothing of it
    /// is committed, and `pending` asks for a check of every subwiki.
    pub(super) fn apply(
        &self,
        core: &Core,
        pending: &mut Pending,
        rx: &mut Receiver<Stored>,
        stopping: &AtomicBool,
    ) -> Result<(), NodeError> {
        let opened = self.opened()?;
        let mut state = lock(&opened.writer);
        if state.writer.is_none() {
            let options = IndexWriterOptions::builder()
                .memory_budget_per_thread(WRITER_MEMORY)
                .num_worker_threads(1)
                .num_merge_threads(1)
                .build();
            state.writer = Some(
                opened
                    .index
                    .writer_with_options(options)
                    .map_err(SearchError::from)?,
            );
        }
        let stamp = state.stamp.clone();
        let Some(writer) = state.writer.as_mut() else {
            return Ok(());
        };
        match self.index_pending(core, &opened, writer, stamp, pending, rx, stopping) {
            Ok(Some(stamp)) => {
                let mut prepared = writer.prepare_commit().map_err(SearchError::from)?;
                prepared.set_payload(&stamp.encode());
                prepared.commit().map_err(SearchError::from)?;
                if std::mem::take(&mut pending.merge) {
                    merge_deletes(&opened.index, writer)?;
                }
                state.stamp = stamp;
                opened.reader.reload().map_err(SearchError::from)?;
            }
            Ok(None) => {}
            Err(e) => {
                if let Err(r) = writer.rollback() {
                    tracing::warn!("search index: rollback failed: {r}");
                }
                pending.rescan = true;
                return Err(e);
            }
        }
        if pending.journal
            && let Some(path) = self.journal()
        {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!("{}: {e}", path.display());
                }
                _ => pending.journal = false,
            }
        }
        if !pending.rescan {
            self.busy.store(false, Ordering::Relaxed);
        }
        self.commits.send_modify(|n| *n += 1);
        Ok(())
    }

    /// [`SearchIndex::apply`]'s work before the commit; the stamp to commit, or `None` if
    /// nothing changed.
    #[allow(clippy::too_many_arguments)]
    fn index_pending(
        &self,
        core: &Core,
        opened: &Opened,
        writer: &mut IndexWriter,
        mut stamp: Stamp,
        pending: &mut Pending,
        rx: &mut Receiver<Stored>,
        stopping: &AtomicBool,
    ) -> Result<Option<Stamp>, NodeError> {
        let store = core.store();
        let fields = &opened.fields;
        let mut dirty = false;
        let mut again = BTreeSet::new();
        if std::mem::take(&mut pending.rescan) {
            let records = store.subwikis()?;
            for record in &records {
                let s = record.id;
                let count = core.holding(s, || {
                    drain(rx, pending);
                    store.count(&s)
                })? as u64;
                let expected = stamp
                    .get(&s)
                    .saturating_add_signed(pending.entries.get(&s).copied().unwrap_or(0));
                if expected != count {
                    tracing::debug!(subwiki = %s, expected, count, "indexing a subwiki again for search");
                    again.insert(s);
                    pending.forget(&s);
                    stamp.counts.insert(s, count);
                    dirty = true;
                }
            }
            let gone: Vec<SubwikiId> = stamp
                .counts
                .keys()
                .filter(|s| !records.iter().any(|r| r.id == **s))
                .copied()
                .collect();
            for s in gone {
                writer.delete_term(subwiki_term(fields, &s));
                stamp.counts.remove(&s);
                dirty = true;
            }
        }
        if !again.is_empty() {
            self.busy.store(true, Ordering::Relaxed);
        }
        let mut again = again.into_iter();
        while let Some(s) = again.next() {
            writer.delete_term(subwiki_term(fields, &s));
            match self.index_subwiki(core, fields, writer, s, pending, rx, stopping) {
                Ok(()) => {}
                Err(Stop::Asked) => {
                    // The node is stopping: this subwiki and those after it are left
                    // unstamped, to be indexed again at the next start; the rest is committed.
                    stamp.counts.remove(&s);
                    for rest in again.by_ref() {
                        stamp.counts.remove(&rest);
                    }
                    pending.rescan = true;
                }
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
        drain(rx, pending);
        let entries = std::mem::take(&mut pending.entries);
        let mut posts = std::mem::take(&mut pending.posts);
        for (s, docs) in std::mem::take(&mut pending.docs) {
            posts
                .entry(s)
                .or_default()
                .extend(posts_of_comments(core, &docs)?);
        }
        let mut done = 0usize;
        for (s, posts) in posts {
            for post in posts {
                writer.delete_term(post_term(fields, &post));
                match add_post(core, fields, writer, s, post) {
                    Ok(()) => dirty = true,
                    Err(Stop::Asked) => {}
                    Err(Stop::Failed(e)) => return Err(e),
                }
                done += 1;
                if done.is_multiple_of(DRAIN_EVERY) {
                    // A large batch takes a while: what arrives meanwhile waits in `pending`,
                    // not in the broadcast, which would lag.
                    drain(rx, pending);
                }
            }
        }
        for (s, n) in entries {
            let count = stamp.get(&s).saturating_add_signed(n);
            stamp.counts.insert(s, count);
            dirty = true;
        }
        Ok(dirty.then_some(stamp))
    }

    /// Adds every post of a subwiki (whose documents were deleted), taking what the broadcast
    /// brings meanwhile.
    #[allow(clippy::too_many_arguments)]
    fn index_subwiki(
        &self,
        core: &Core,
        fields: &Fields,
        writer: &IndexWriter,
        subwiki: SubwikiId,
        pending: &mut Pending,
        rx: &mut Receiver<Stored>,
        stopping: &AtomicBool,
    ) -> Result<(), Stop> {
        #[cfg(test)]
        self.full.fetch_add(1, Ordering::Relaxed);
        let mut cursor = None;
        let mut done = 0usize;
        loop {
            let keys = core
                .store()
                .feed(&[subwiki], cursor, FEED_PAGE)
                .map_err(NodeError::from)?;
            for key in &keys {
                cursor = Some((key.created_at, key.post));
                add_post(core, fields, writer, subwiki, key.post)?;
                done += 1;
                if done.is_multiple_of(DRAIN_EVERY) {
                    drain(rx, pending);
                    if stopping.load(Ordering::Relaxed) {
                        return Err(Stop::Asked);
                    }
                }
            }
            if keys.len() < FEED_PAGE {
                tracing::debug!(%subwiki, posts = done, "subwiki indexed for search");
                return Ok(());
            }
        }
    }

    /// Notes the writes `rx` holds in the journal, for the next indexer (a node opened offline,
    /// shutting down). Not synced: a journal lost in a crash is caught by the counts.
    pub(super) fn write_journal(
        &self,
        core: &Core,
        rx: &mut Receiver<Stored>,
    ) -> Result<(), NodeError> {
        let Some(path) = self.journal() else {
            return Ok(());
        };
        let mut pending = Pending::default();
        drain(rx, &mut pending);
        if pending.entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        if pending.merge {
            text.push_str(MERGE_LINE);
            text.push('\n');
        }
        for (s, n) in &pending.entries {
            let mut posts = pending.posts.get(s).cloned().unwrap_or_default();
            if let Some(docs) = pending.docs.get(s) {
                posts.extend(posts_of_comments(core, docs)?);
            }
            text.push_str(&format!("{s} {n}"));
            for post in posts {
                text.push_str(&format!(" {post}"));
            }
            text.push('\n');
        }
        let io = |e: std::io::Error| SearchError::Index(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(io)?;
        Ok(())
    }

    /// Adds the journal's writes to `pending` (a line that does not parse is skipped: the
    /// subwiki's count then differs and it is indexed again).
    pub(super) fn read_journal(&self, pending: &mut Pending) -> Result<(), SearchError> {
        let Some(path) = self.journal() else {
            return Ok(());
        };
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(_) => return Ok(()),
        };
        pending.journal = true;
        if size > MAX_JOURNAL_BYTES {
            return Ok(());
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        // Entries were removed (a retraction made offline): merge their text away.
        pending.merge |= text.lines().any(|line| line == MERGE_LINE);
        for (s, n, posts) in text.lines().filter_map(journal_line) {
            *pending.entries.entry(s).or_default() += n;
            pending.posts.entry(s).or_default().extend(posts);
        }
        Ok(())
    }
}

/// The journal line that says entries were removed: the next indexer merges the segments
/// that hold deleted posts.
const MERGE_LINE: &str = "merge";

/// A line of the journal: `<subwiki> <entries written less entries removed> <post>...`.
fn journal_line(line: &str) -> Option<(SubwikiId, i64, Vec<DocId>)> {
    let mut words = line.split_whitespace();
    let subwiki = words.next()?.parse().ok()?;
    let entries = words.next()?.parse().ok()?;
    let posts = words
        .map(|w| w.parse().ok())
        .collect::<Option<Vec<DocId>>>()?;
    Some((subwiki, entries, posts))
}

/// The running indexer.
pub(crate) struct Handle {
    stop: watch::Sender<bool>,
    stopping: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Asks the indexer to commit what it holds and stop; waits at most [`STOP_WAIT`].
    pub(crate) async fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_WAIT, self.task).await.is_err() {
            tracing::warn!("the search indexer did not stop in time; it catches up next start");
        }
    }
}

/// Starts the indexer on the current runtime.
pub(crate) fn spawn(index: Arc<SearchIndex>, core: Weak<Core>, rx: Receiver<Stored>) -> Handle {
    let (stop, stop_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    index.busy.store(true, Ordering::Relaxed);
    let task = tokio::spawn(run(index, core, rx, stop_rx, stopping.clone()));
    Handle {
        stop,
        stopping,
        task,
    }
}

/// The indexer: waits for writes, gathers them for [`BATCH_WINDOW`], indexes them on a
/// blocking thread; first, and after a failure, it checks every subwiki.
async fn run(
    index: Arc<SearchIndex>,
    core: Weak<Core>,
    mut rx: Receiver<Stored>,
    mut stop: watch::Receiver<bool>,
    stopping: Arc<AtomicBool>,
) {
    let mut pending = Pending::rescan();
    let mut first = true;
    let mut failed = false;
    loop {
        let mut last = *stop.borrow();
        if failed && !last {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_AFTER) => {}
                _ = stop.changed() => last = true,
            }
        } else if !first && !last && pending.is_empty() {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(stored) => pending.take(&stored),
                    Err(RecvError::Lagged(_)) => pending.rescan = true,
                    Err(RecvError::Closed) => return,
                },
                _ = stop.changed() => last = true,
            }
            if !last {
                tokio::select! {
                    _ = tokio::time::sleep(BATCH_WINDOW) => {}
                    _ = stop.changed() => last = true,
                }
            }
        }
        let Some(strong) = core.upgrade() else {
            return;
        };
        let job = index.clone();
        let flag = stopping.clone();
        let read_journal = std::mem::take(&mut first);
        let done = tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            if read_journal {
                result = job.read_journal(&mut pending).map_err(NodeError::from);
            }
            let result = result.and_then(|()| job.apply(&strong, &mut pending, &mut rx, &flag));
            (pending, rx, result)
        })
        .await;
        let Ok((p, r, result)) = done else {
            tracing::warn!("the search indexer stopped: its job panicked");
            return;
        };
        pending = p;
        rx = r;
        failed = match result {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!("search index not updated (trying again later): {e}");
                true
            }
        };
        if last {
            return;
        }
    }
}
