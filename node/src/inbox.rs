//! The owner's inbox: what concerns this node's author, derived locally from the entries it
//! holds. Nothing is sent or published; read and unread is the owner's own, kept apart.
//!
//! # What it holds
//!
//! One item per entry by someone else that is about the owner ([`Kind`]): a comment on one of
//! their posts, a reply to one of their comments, an edit of one of their posts, a mention of
//! them ([`mention`]: their full author id, never a name), a vote on one of their posts or about
//! them, a role statement about them (vouch, revoke, appoint, remove). And one item per
//! standing outcome: each of their posts hidden, marked misleading or marked verified by the
//! subwiki, and their own standing (moderator, trusted, barred, muted), as the owner's view of
//! moderation has it now.
//!
//! An entry's item is a function of the entry and of which documents are the owner's, so the
//! inbox depends on the set of entries held, not on the order they came in: an entry about a
//! document not held yet gives no item, and when one of the owner's own documents arrives (from
//! their other device), the entries about it already held are looked at again. Outcome items
//! are recomputed from the subwiki's moderation whenever it may have changed.
//!
//! # How it is kept
//!
//! Incrementally, off the ingest path: a task follows [`crate::Stored`] (every durable write of
//! entries) and derives items from the entries written, with the subwiki's index to tell whose
//! documents they are about. Ingest never waits for it. Items live in memory and in
//! `<home>/inbox/items.json`, written at most once a second; each entry looked at is recorded in
//! `<home>/inbox/seen/<subwiki>` (append-only, 32 bytes an entry) only after the items it gave
//! are on disk. At start (and whenever the task fell behind the broadcast) the entries a subwiki
//! holds are compared with those recorded, and the others are looked at: entries written while
//! no task ran (an offline command, an import, a crash before a write) are never missed, and
//! items of entries no longer held go. A node opened without the task (the `agora` command
//! without a running node) does the same comparison before it answers. Deleting
//! `<home>/inbox/` rebuilds it from the entries.
//!
//! The inbox keeps the newest [`MAX_ITEMS`] entry items (by claimed time): a flood of comments
//! or votes pushes older items out but cannot grow it. Items from authors muted in their
//! subwiki, and from subwikis left, are not shown. Read and unread is kept in
//! `<home>/inbox-read.txt`.

mod derive;
mod files;
mod mention;
mod task;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use agora_crdt::{AuthorId, DocId, EntryId, SubwikiId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Node;
use crate::core::Core;
use crate::error::NodeError;

pub(crate) use self::files::replace as replace_file;
pub use self::mention::{mention, mentioned, mentions};
pub(crate) use self::task::spawn;

/// The most items derived from entries the inbox keeps: the newest by claimed time.
pub const MAX_ITEMS: usize = 5_000;

/// What an item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// A comment on one of the owner's posts.
    Comment,
    /// A reply to one of the owner's comments.
    Reply,
    /// Someone else changed one of the owner's posts.
    Edit,
    /// A post, comment or change by someone else whose text mentions the owner's author id.
    Mention,
    /// A vote on one of the owner's posts (`post` set), or about the owner (mute, unmute).
    Vote,
    /// A role statement about the owner: vouch, revoke, appoint or remove as moderator.
    Role,
    /// One of the owner's posts is hidden, marked misleading or marked verified (`detail`).
    Status,
    /// The owner's standing in a subwiki: moderator, trusted, barred or muted (`detail`).
    Standing,
}

/// One thing in the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Its key: the entry's id (`en_…`) for an item from an entry; `status.<post>.<what>` or
    /// `standing.<subwiki>.<what>` for an outcome.
    pub key: String,
    /// What it is about.
    pub kind: Kind,
    /// Its subwiki.
    pub subwiki: SubwikiId,
    /// The entry's claimed time (for an outcome, the newest statement behind it).
    pub time: Timestamp,
    /// Who signed the entry (none for an outcome).
    pub actor: Option<AuthorId>,
    /// The post it is about, when the entry names it.
    pub post: Option<DocId>,
    /// The document the entry creates or changes (a comment, a post), if any.
    pub doc: Option<DocId>,
    /// The vote (`hide`, `mute`, …), role action (`vouch`, …) or outcome (`hidden`,
    /// `misleading`, `verified`, `moderator`, `trusted`, `barred`, `muted`).
    pub detail: String,
    /// The start of the text the entry wrote (a comment, what an edit added), or a vote's
    /// reason. Written by others: show it as text.
    pub excerpt: String,
    /// Whether that text mentions the owner.
    pub mention: bool,
}

impl Item {
    /// The entry it comes from, if it comes from one.
    pub fn entry(&self) -> Option<EntryId> {
        self.key.parse().ok()
    }
}

/// The inbox as shown: items newest first, each with whether it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxView {
    /// The items asked for, newest first, with their read flag.
    pub items: Vec<(Item, bool)>,
    /// Unread items in the whole inbox.
    pub unread: usize,
    /// Items in the whole inbox.
    pub total: usize,
}

/// The inbox's state in memory, its files, and whether a task keeps it up to date.
#[derive(Debug)]
pub(crate) struct Inbox {
    files: files::Files,
    state: Mutex<State>,
    /// A task follows the node's writes (a started node); without one, every read compares the
    /// store with what was looked at first.
    live: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the items file was read.
    loaded: bool,
    /// Items from entries, by key.
    items: BTreeMap<String, Item>,
    /// Outcome items, by subwiki.
    outcomes: BTreeMap<SubwikiId, Vec<Item>>,
    /// The overrides the outcomes were computed with.
    overrides: BTreeSet<AuthorId>,
    /// Keys of items read (loaded with the items).
    read: BTreeSet<String>,
    /// Items changed since the items file was written.
    unsaved: bool,
    /// Entries looked at, to record once the items they gave are written.
    looked_at: Vec<(SubwikiId, EntryId)>,
    /// Entries looked at, per subwiki, for an inbox kept without files.
    seen_in_memory: HashMap<SubwikiId, HashSet<EntryId>>,
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inbox {
    /// The inbox kept in `home` (in memory only without one).
    pub(crate) fn new(home: Option<&Path>) -> Self {
        Self {
            files: files::Files::new(home),
            state: Mutex::new(State::default()),
            live: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = lock(&self.state);
        if !state.loaded {
            state.loaded = true;
            match self.files.load_items() {
                Some(saved) => {
                    state.items = saved
                        .items
                        .into_iter()
                        .map(|i| (i.key.clone(), i))
                        .collect();
                    state.outcomes = saved.outcomes;
                    state.overrides = saved.overrides;
                }
                // None, or damaged: everything is looked at again, and the file written.
                None => {
                    self.files.forget_seen();
                    state.unsaved = true;
                }
            }
            state.read = self.files.load_read();
        }
        state
    }

    /// Adds or replaces items from entries, keeping the newest [`MAX_ITEMS`]; records the
    /// entries as looked at. Returns whether any item changed.
    fn put(&self, items: Vec<Item>, looked_at: Vec<(SubwikiId, EntryId)>) -> bool {
        let mut state = self.state();
        let mut changed = false;
        for item in items {
            if state.items.get(&item.key) != Some(&item) {
                state.items.insert(item.key.clone(), item);
                changed = true;
            }
        }
        if state.items.len() > MAX_ITEMS {
            let mut by_age: Vec<(Timestamp, String)> = state
                .items
                .values()
                .map(|i| (i.time, i.key.clone()))
                .collect();
            by_age.sort();
            let excess = state.items.len() - MAX_ITEMS;
            for (_, key) in by_age.into_iter().take(excess) {
                state.items.remove(&key);
            }
        }
        if self.files.is_on_disk() {
            state.looked_at.extend(looked_at);
        } else {
            for (subwiki, id) in looked_at {
                state.seen_in_memory.entry(subwiki).or_default().insert(id);
            }
        }
        state.unsaved |= changed;
        changed
    }

    /// Drops the items of a subwiki's entries that are no longer held.
    fn retain_held(&self, subwiki: SubwikiId, held: &HashSet<EntryId>) -> bool {
        let mut state = self.state();
        let before = state.items.len();
        state.items.retain(|_, item| {
            item.subwiki != subwiki || item.entry().is_none_or(|e| held.contains(&e))
        });
        let changed = state.items.len() != before;
        state.unsaved |= changed;
        if let Some(seen) = state.seen_in_memory.get_mut(&subwiki) {
            seen.retain(|id| held.contains(id));
        }
        changed
    }

    /// The entries of a subwiki looked at and recorded.
    fn seen(&self, subwiki: SubwikiId) -> HashSet<EntryId> {
        let state = self.state();
        if self.files.is_on_disk() {
            drop(state);
            self.files.load_seen(subwiki)
        } else {
            state
                .seen_in_memory
                .get(&subwiki)
                .cloned()
                .unwrap_or_default()
        }
    }

    /// Replaces a subwiki's outcome items; returns whether they changed.
    fn set_outcomes(
        &self,
        subwiki: SubwikiId,
        items: Vec<Item>,
        overrides: &BTreeSet<AuthorId>,
    ) -> bool {
        let mut state = self.state();
        state.overrides = overrides.clone();
        let changed = state
            .outcomes
            .get(&subwiki)
            .map_or(!items.is_empty(), |o| *o != items);
        let new = !state.outcomes.contains_key(&subwiki);
        // Kept even when empty, so that they are not computed again at every read.
        state.outcomes.insert(subwiki, items);
        state.unsaved |= changed || new;
        changed
    }

    fn has_outcomes(&self, subwiki: &SubwikiId) -> bool {
        self.state().outcomes.contains_key(subwiki)
    }

    fn outcome_overrides(&self) -> BTreeSet<AuthorId> {
        self.state().overrides.clone()
    }

    /// Writes the items if they changed, then records the entries looked at since the last
    /// write (only then: an entry is recorded once the items it gave are on disk).
    pub(crate) fn flush(&self) {
        let (saved, looked_at) = {
            let mut state = self.state();
            let saved = state.unsaved.then(|| files::Saved {
                items: state.items.values().cloned().collect(),
                outcomes: state.outcomes.clone(),
                overrides: state.overrides.clone(),
            });
            state.unsaved = false;
            (saved, std::mem::take(&mut state.looked_at))
        };
        if let Some(saved) = saved
            && let Err(e) = self.files.save_items(&saved)
        {
            tracing::warn!("inbox not written (derived again at the next start): {e}");
            lock(&self.state).unsaved = true;
            return;
        }
        if let Err(e) = self.files.append_seen(&looked_at) {
            tracing::debug!("inbox: entries looked at not recorded (looked at again): {e}");
        }
    }

    /// Every item, newest first, with its read flag: the joined subwikis' only, without those
    /// from authors muted where they wrote.
    fn visible(&self, core: &Core) -> Result<Vec<(Item, bool)>, NodeError> {
        let joined: HashSet<SubwikiId> = core.joined()?.into_iter().collect();
        let (mut items, read) = {
            let state = self.state();
            let items: Vec<Item> = state
                .items
                .values()
                .chain(state.outcomes.values().flatten())
                .filter(|i| joined.contains(&i.subwiki))
                .cloned()
                .collect();
            (items, state.read.clone())
        };
        let mut muted: HashMap<SubwikiId, crate::moderation::Summary> = HashMap::new();
        let mut shown = Vec::with_capacity(items.len());
        for item in items.drain(..) {
            if let Some(actor) = item.actor {
                let summary = match muted.entry(item.subwiki) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(core.moderation_summary(item.subwiki)?)
                    }
                };
                if summary.is_muted(&actor) {
                    continue;
                }
            }
            let was_read = read.contains(&item.key);
            shown.push((item, was_read));
        }
        shown.sort_by(|(a, _), (b, _)| (b.time, &b.key).cmp(&(a.time, &a.key)));
        Ok(shown)
    }

    /// Brings the inbox up to date when no task does (see [`Inbox::live`]), and the outcomes
    /// when the owner's overrides changed since they were computed.
    fn refresh(&self, core: &std::sync::Arc<Core>) -> Result<(), NodeError> {
        if !self.live.load(Ordering::Acquire) {
            task::catch_up(&std::sync::Arc::downgrade(core), self)?;
            self.flush();
        } else if core.overrides().ignored != self.outcome_overrides() {
            for subwiki in core.joined()? {
                if core.store().contains(&subwiki.into())? {
                    derive::refresh_outcomes(core, self, subwiki)?;
                }
            }
        }
        Ok(())
    }

    /// Marks an item (or every item shown) read; `None` if there is no such item.
    fn mark_read(&self, core: &Core, key: Option<&str>) -> Result<Option<usize>, NodeError> {
        let shown = self.visible(core)?;
        let keys: Vec<String> = match key {
            Some(key) => match shown.iter().find(|(i, _)| i.key == key) {
                Some((item, _)) => vec![item.key.clone()],
                None => return Ok(None),
            },
            None => shown.into_iter().map(|(i, _)| i.key).collect(),
        };
        let mut state = self.state();
        let mut marked = 0;
        for key in keys {
            if state.read.insert(key) {
                marked += 1;
            }
        }
        // Keys of items gone (pushed out, or whose entry is no longer held) are forgotten.
        let current: HashSet<&String> = state
            .items
            .keys()
            .chain(state.outcomes.values().flatten().map(|i| &i.key))
            .collect();
        let read: BTreeSet<String> = state
            .read
            .iter()
            .filter(|k| current.contains(k))
            .cloned()
            .collect();
        state.read = read;
        self.files
            .save_read(&state.read)
            .map_err(|e| NodeError::File {
                path: PathBuf::from(files::READ_FILE),
                reason: e.to_string(),
            })?;
        Ok(Some(marked))
    }
}

impl Node {
    /// The owner's inbox (see the `inbox` module): the newest `limit` items (only the unread
    /// ones with `unread_only`), with the number of unread items.
    pub fn inbox(&self, unread_only: bool, limit: usize) -> Result<InboxView, NodeError> {
        let inbox = self.inbox_state();
        inbox.refresh(self.core())?;
        let shown = inbox.visible(self.core())?;
        let unread = shown.iter().filter(|(_, read)| !read).count();
        let total = shown.len();
        let items = shown
            .into_iter()
            .filter(|(_, read)| !unread_only || !read)
            .take(limit)
            .collect();
        Ok(InboxView {
            items,
            unread,
            total,
        })
    }

    /// An author's display name in a subwiki, if they set one there.
    pub fn display_name_in(
        &self,
        subwiki: SubwikiId,
        author: &AuthorId,
    ) -> Result<Option<String>, NodeError> {
        if !self.core().store().contains(&subwiki.into())? {
            return Ok(None);
        }
        self.core()
            .with_replica(subwiki, |r| Ok(r.display_name(author)))
    }

    /// The post a document is part of: itself for a post, its post for a comment.
    pub(crate) fn post_of(&self, doc: DocId) -> Option<DocId> {
        let entry = self.core().store().entry(&doc.into()).ok()??;
        match entry.payload() {
            agora_crdt::Payload::CreateDocument(c) => match c.kind {
                agora_crdt::DocKind::Post => Some(doc),
                agora_crdt::DocKind::Comment => c.parent,
                _ => None,
            },
            _ => None,
        }
    }

    /// How many items of the inbox are unread.
    pub fn inbox_unread(&self) -> Result<usize, NodeError> {
        Ok(self.inbox(true, 0)?.unread)
    }

    /// Marks an item of the inbox read (by its key), or every item with `None`. Returns how many
    /// were not read before, or `None` if there is no such item. Kept in the home only.
    pub fn mark_read(&self, key: Option<&str>) -> Result<Option<usize>, NodeError> {
        let inbox = self.inbox_state();
        inbox.refresh(self.core())?;
        let marked = inbox.mark_read(self.core(), key)?;
        if marked.is_some_and(|n| n > 0) {
            self.core().notify();
        }
        Ok(marked)
    }
}
