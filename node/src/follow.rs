//! Follows: the authors the owner follows, kept in `<home>/following.txt` (one author id a
//! line), never published, and the "following" feed: the posts of those authors across the
//! joined subwikis, newest first by creation time like every feed, never ranked.
//!
//! The feed is read from the subwikis' indexes (who created each post, in memory), so it
//! costs a pass over the posts newer than the page, not a read of every post's view.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use agora_crdt::{AuthorId, DocId, FeedCursor, SubwikiId, Timestamp};

use crate::core::FeedItem;
use crate::error::NodeError;
use crate::moderation::Summary;
use crate::{Node, PostStatus};

/// The file in the home.
const FILE: &str = "following.txt";

/// The authors followed, and where they are kept.
#[derive(Debug)]
pub(crate) struct Follows {
    path: Option<PathBuf>,
    authors: Mutex<Option<BTreeSet<AuthorId>>>,
}

impl Follows {
    pub(crate) fn new(home: Option<&Path>) -> Self {
        Self {
            path: home.map(|h| h.join(FILE)),
            authors: Mutex::new(None),
        }
    }

    /// The set, read from the file on first use; lines that do not parse are reported and
    /// skipped.
    fn authors(&self) -> MutexGuard<'_, Option<BTreeSet<AuthorId>>> {
        let mut authors = self
            .authors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if authors.is_none() {
            let mut set = BTreeSet::new();
            let text = self
                .path
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                match line.parse() {
                    Ok(author) => {
                        set.insert(author);
                    }
                    Err(e) => tracing::warn!("ignoring a bad line of {FILE}: {e}"),
                }
            }
            *authors = Some(set);
        }
        authors
    }

    fn list(&self) -> BTreeSet<AuthorId> {
        self.authors().clone().unwrap_or_default()
    }

    /// Adds (`follow`) or removes an author; saves the file durably. Whether it changed.
    fn set(&self, author: AuthorId, follow: bool) -> Result<bool, NodeError> {
        let mut guard = self.authors();
        let authors = guard.get_or_insert_with(BTreeSet::new);
        let changed = if follow {
            authors.insert(author)
        } else {
            authors.remove(&author)
        };
        if changed && let Some(path) = &self.path {
            let mut text = String::new();
            for a in authors.iter() {
                text.push_str(&a.to_string());
                text.push('\n');
            }
            crate::inbox::replace_file(path, text.as_bytes()).map_err(|e| NodeError::File {
                path: PathBuf::from(FILE),
                reason: e.to_string(),
            })?;
        }
        Ok(changed)
    }
}

impl Node {
    /// Follows an author: their posts are in the "following" feed. Kept in the home, never
    /// published. Returns whether they were not followed before.
    pub fn follow(&self, author: AuthorId) -> Result<bool, NodeError> {
        let changed = self.follows().set(author, true)?;
        if changed {
            self.core().notify();
        }
        Ok(changed)
    }

    /// Stops following an author. Returns whether they were followed.
    pub fn unfollow(&self, author: AuthorId) -> Result<bool, NodeError> {
        let changed = self.follows().set(author, false)?;
        if changed {
            self.core().notify();
        }
        Ok(changed)
    }

    /// The authors followed, sorted by id.
    pub fn following(&self) -> Vec<AuthorId> {
        self.follows().list().into_iter().collect()
    }

    /// Whether an author is followed.
    pub fn is_following(&self, author: &AuthorId) -> bool {
        self.follows().list().contains(author)
    }

    /// The author's display name in the first joined subwiki where they set one.
    pub fn author_name(&self, author: &AuthorId) -> Result<Option<String>, NodeError> {
        let core = self.core();
        for subwiki in core.joined()? {
            if !core.store().contains(&subwiki.into())? {
                continue;
            }
            if let Some(name) = core.with_replica(subwiki, |r| Ok(r.display_name(author)))? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// A page of the "following" feed: posts by the authors followed, in the joined subwikis
    /// (or one), newest first, `limit` after `before`, each with its moderation status; hidden
    /// posts are left out unless `show_hidden`.
    pub fn following_feed(
        &self,
        subwiki: Option<SubwikiId>,
        before: Option<FeedCursor>,
        limit: usize,
        show_hidden: bool,
    ) -> Result<Vec<(FeedItem, PostStatus)>, NodeError> {
        let followed = self.follows().list();
        if limit == 0 || followed.is_empty() {
            return Ok(Vec::new());
        }
        let core = self.core();
        let mut subwikis = Vec::new();
        for s in match subwiki {
            Some(s) => vec![s],
            None => core.joined()?,
        } {
            if core.store().contains(&s.into())? {
                subwikis.push(s);
            }
        }
        let mut summaries: HashMap<SubwikiId, Summary> = HashMap::new();
        let mut items = Vec::new();
        let mut cursor = before.map(|c| (c.created_at, c.post));
        // Hidden posts are skipped, so a page may take more than one pass.
        loop {
            let mut keys: Vec<(Timestamp, DocId, SubwikiId)> = Vec::new();
            for s in &subwikis {
                let found = core.with_replica(*s, |r| {
                    Ok(r.feed_keys()
                        .rev()
                        .filter(|(t, id)| cursor.is_none_or(|c| (*t, *id) < c))
                        .filter(|(_, id)| {
                            r.doc_meta(id)
                                .is_some_and(|m| followed.contains(&m.creator))
                        })
                        .take(limit)
                        .map(|(t, id)| (*t, *id, *s))
                        .collect::<Vec<_>>())
                })?;
                keys.extend(found);
            }
            keys.sort_by_key(|k| std::cmp::Reverse((k.0, k.1)));
            keys.truncate(limit);
            let exhausted = keys.len() < limit;
            for (time, post, s) in keys {
                cursor = Some((time, post));
                let Some(item) = core.post_view(s, post)? else {
                    continue;
                };
                let summary = match summaries.entry(s) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(core.moderation_summary(s)?)
                    }
                };
                let status = summary.status(&item.post.meta);
                if status.hidden.is_none() || show_hidden {
                    items.push((item, status));
                    if items.len() == limit {
                        return Ok(items);
                    }
                }
            }
            if exhausted {
                return Ok(items);
            }
        }
    }
}
