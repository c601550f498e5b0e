//! A replica of one subwiki, in memory: ingest entries in any order, answer the feed, posts,
//! comments and history.
//!
//! The replica's state is a function of the *set* of valid entries it holds. Entries may come
//! in any order and any number of times. A change whose document is not known yet waits for
//! the create-document entry; a change whose Automerge dependencies are missing waits for them.
//! Remote changes are applied to a document in one batch per [`Replica::ingest`] call.
//!
//! # Equivocation
//!
//! Two different changes with the same actor and sequence number in one document are an
//! equivocation: one device signed two histories. Both entries are kept as evidence, and both
//! changes are left out of the document together with every change that depends on them
//! (directly, through Automerge dependencies, or through the implicit dependency of a change on
//! the same actor's previous sequence number). Every replica that holds the same entries
//! excludes the same changes, whatever order they came in.
//!
//! Those dependents include other authors' work built on the equivocator's change. So that an
//! equivocation costs only the equivocator, each of those authors *rescues* their work
//! ([`Replica::rescue`]): their node makes one new change on the view as it reads now, doing
//! again what their left-out changes did (a three-way merge: what each change did to the
//! document its author saw, applied to the view), and names the changes it carries in its
//! Automerge commit message (`agora-rescue:` and their hashes), so that none is carried twice.
//! The new change depends only on applied changes, so it is part of the view everywhere. The
//! equivocator's own changes stay out.
//!
//! # Edit policy `trusted`
//!
//! In a subwiki founded with [`EditPolicy::Trusted`], a change to a post by someone who is
//! neither its creator nor counted in the final roles ([`Replica::roles`], computed from every
//! role statement held) is excluded as [`Exclusion::Untrusted`], with everything that depends
//! on it, and kept as evidence. The roles are recomputed whenever a role statement arrives, and
//! the posts whose editors' standing changed are settled again, so the view follows the final
//! roles: a vouch that arrives late brings the change in, a revocation takes it out.
//! Local edits are made on the view (the applied changes only), as it reads now or at an
//! earlier [`Version`] the writer saw (see [`Base`]), so they never depend on a change the view
//! leaves out; [`Replica::edit`] refuses an edit the policy would exclude
//! ([`LocalError::NotTrusted`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash};
use thiserror::Error;

use crate::Entry;
use crate::doc::{CommentContent, Content, DocMeta, Field, PostContent, ProfileContent};
use crate::entry::{
    CreateDocument, DocChange, DocKind, EditPolicy, EntryError, Genesis, Payload, Policy,
    RoleAction, RoleStatement, Timestamp, Vote, VoteTarget, VoteValue, WritePolicy,
};
use crate::held::{Held, HeldKind};
use crate::id::{AuthorId, DocId, EntryId, IdError, SubwikiId};
use crate::key::{AuthorKey, DEVICE_SUFFIX_LEN};
use crate::moderation::{Moderation, Overrides, Roles};
use crate::version::{Base, Version};

pub mod retraction;
pub use self::retraction::{Purged, Tombstone};

/// Why a valid entry does not belong in this replica.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The entry belongs to another subwiki.
    #[error("entry belongs to subwiki {got}, not {expected}")]
    WrongSubwiki {
        /// This replica's subwiki.
        expected: SubwikiId,
        /// The entry's.
        got: SubwikiId,
    },
    /// The entry claims a time before the subwiki was founded.
    #[error("entry claims a time before the subwiki's genesis")]
    BeforeGenesis,
    /// A change to a document that only its creator may change, by someone else.
    #[error("document {doc} may only be changed by its creator")]
    NotOwner {
        /// The document.
        doc: DocId,
    },
    /// Only the founder may create the subwiki's information page.
    #[error("only the founder may create the subwiki's information page")]
    NotFounder,
    /// A change names an entry that is not a create-document entry.
    #[error("{0} is not a document")]
    NotADocument(DocId),
    /// The replica was given an entry that is not a genesis entry to start from.
    #[error("a replica starts from a genesis entry")]
    NotGenesis,
    /// An entry of a document that was retracted or redacted: its content is not kept.
    #[error("{0} was retracted or redacted")]
    Retracted(DocId),
}

/// A local operation that could not be done.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LocalError {
    /// No such document in this subwiki.
    #[error("no document {0} in this subwiki")]
    UnknownDocument(DocId),
    /// The document is of another kind than the operation needs.
    #[error("{doc} is a {actual:?}, not a {expected:?}")]
    WrongKind {
        /// The document.
        doc: DocId,
        /// Its kind.
        actual: DocKind,
        /// The kind wanted.
        expected: DocKind,
    },
    /// The version named is not a change of this document, or is not part of its view.
    #[error("{0} is not a version of this document")]
    UnknownVersion(EntryId),
    /// A version that names no change at all.
    #[error("a version names at least one change")]
    EmptyVersion,
    /// The subwiki's edit policy is `trusted` and the author, who did not create this post,
    /// is not trusted (as far as this replica knows): the change would be left out of every
    /// view.
    #[error("only trusted members may edit others' posts in this subwiki ({doc})")]
    NotTrusted {
        /// The post.
        doc: DocId,
    },
    /// Automerge refused the edit.
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
    /// Automerge failed (panicked) while working on this document: its view holds a change
    /// that Automerge applied but cannot work with, which only a hostile or broken client
    /// makes. The document still reads as it is now.
    #[error(
        "the history of {doc} contains a change Agora cannot process: it can be read as it is \
         now, but not edited or read at another version"
    )]
    Unprocessable {
        /// The document.
        doc: DocId,
    },
    /// The document would hold more text than [`crate::MAX_CONTENT_BYTES`]; refused before
    /// any work.
    #[error("{bytes} bytes of text, over the limit of {max} bytes for a document")]
    TooLarge {
        /// Its text.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The entry could not be made.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The replica refused the entry.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// Only a document's creator may retract it, and only the founder or a moderator redact
    /// it.
    #[error(
        "only its creator may retract {doc}, and only the founder or a moderator may redact it"
    )]
    NotAllowedToRetract {
        /// The document.
        doc: DocId,
    },
    /// The document was retracted or redacted already.
    #[error("{0} was retracted or redacted already")]
    AlreadyRetracted(DocId),
}

/// Refuses content over [`crate::MAX_CONTENT_BYTES`] before any Automerge work.
fn check_size(content: &Content) -> Result<(), LocalError> {
    let bytes = content.text_bytes();
    if bytes > crate::MAX_CONTENT_BYTES {
        return Err(LocalError::TooLarge {
            bytes,
            max: crate::MAX_CONTENT_BYTES,
        });
    }
    Ok(())
}

/// What one [`Replica::ingest`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Entries now held (including those waiting for dependencies).
    pub accepted: Vec<EntryId>,
    /// Entries that were already held.
    pub duplicates: usize,
    /// Entries refused, with the reason; this includes entries that were waiting and turned out
    /// to break a rule once their document arrived. None of them is held.
    pub rejected: Vec<(EntryId, IngestError)>,
    /// Documents purged by a retraction or redaction (see [`retraction`]).
    pub purged: Vec<Purged>,
    /// Purged documents no statement counts against any more (the roles or the reader's
    /// overrides changed): their tombstones are gone, and they may be fetched again.
    pub restored: Vec<DocId>,
}

/// Why a change is left out of its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exclusion {
    /// Its actor signed another change with the same sequence number.
    Equivocation,
    /// Automerge refused it (a hostile or broken change); it is tried again whenever the
    /// document grows.
    Invalid,
    /// It depends on an excluded change.
    DependsOnExcluded,
    /// A change to someone else's post, in a subwiki whose edit policy is `trusted`, by an
    /// author who is not trusted in the final roles. Applied once they are.
    Untrusted,
}

/// Where a change stands in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeStatus {
    /// Part of the document.
    Applied,
    /// Waiting for changes it depends on.
    Pending,
    /// Left out, for the reason given.
    Excluded(Exclusion),
}

/// One change in a document's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// The entry that carried the change; name it to see or restore this version.
    pub version: EntryId,
    /// Who made it.
    pub author: AuthorId,
    /// When, as they claim.
    pub timestamp: Timestamp,
    /// The Automerge change hash.
    pub change: ChangeHash,
    /// Whether it is part of the document.
    pub status: ChangeStatus,
    /// The fields it changed (empty unless applied).
    pub fields: Vec<Field>,
}

/// Evidence that one device signed two histories of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The document.
    pub doc: DocId,
    /// The author whose device equivocated.
    pub author: AuthorId,
    /// The full Automerge actor id (author key and device suffix).
    pub actor: Vec<u8>,
    /// The sequence number used twice or more.
    pub seq: u64,
    /// The entries carrying the conflicting changes.
    pub entries: Vec<EntryId>,
}

/// A post as shown to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostView {
    /// Fixed facts.
    pub meta: DocMeta,
    /// Current contents.
    pub content: PostContent,
    /// The creator's display name in this subwiki, if they set a profile.
    pub author_name: Option<String>,
    /// Changes after the first, as applied.
    pub edits: usize,
    /// Everyone whose changes are applied, creator included.
    pub editors: BTreeSet<AuthorId>,
    /// Comments held for this post.
    pub comments: usize,
    /// The latest claimed time among the applied changes.
    pub updated_at: Timestamp,
    /// The version read: what an edit of this text names as its [`Base`].
    pub version: Version,
    /// Set when the post was retracted or redacted: its content is gone (empty here).
    pub retracted: Option<Tombstone>,
}

/// A comment as shown to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentView {
    /// Fixed facts: parent post, the comment it answers.
    pub meta: DocMeta,
    /// What it says.
    pub text: String,
    /// The commenter's display name, if any.
    pub author_name: Option<String>,
    /// Set when the comment was retracted or redacted: its text is gone (empty here).
    pub retracted: Option<Tombstone>,
}

/// A position in the feed: posts are ordered newest first by (creation time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedCursor {
    /// Creation time of the last post shown.
    pub created_at: Timestamp,
    /// Its id.
    pub post: DocId,
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at.0, self.post)
    }
}

impl FromStr for FeedCursor {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let malformed = || IdError::Malformed("feed cursor");
        let (time, post) = s.split_once('.').ok_or_else(malformed)?;
        Ok(Self {
            created_at: Timestamp(time.parse().map_err(|_| malformed())?),
            post: post.parse()?,
        })
    }
}

/// Someone who has signed something in a subwiki ([`Replica::members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Who.
    pub author: AuthorId,
    /// Posts they created.
    pub posts: usize,
    /// Documents (posts, comments, profiles, the information page) they created or changed.
    pub documents: usize,
    /// Votes and role statements they signed.
    pub votes: usize,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// Posts, newest first.
    pub items: Vec<PostView>,
    /// Where the next page starts, if there are more posts.
    pub next: Option<FeedCursor>,
}

#[derive(Debug, Clone)]
struct ChangeRecord {
    /// Every entry carrying these exact change bytes, by (time, id); the first names it.
    entries: BTreeSet<(Timestamp, EntryId)>,
    author: AuthorId,
    change: Change,
}

impl ChangeRecord {
    fn first(&self) -> (Timestamp, EntryId) {
        self.entries
            .first()
            .copied()
            .unwrap_or((Timestamp(0), EntryId::from_bytes([0; 32])))
    }
}

struct DocState {
    meta: DocMeta,
    changes: HashMap<ChangeHash, ChangeRecord>,
    by_actor_seq: BTreeMap<(Vec<u8>, u64), BTreeSet<ChangeHash>>,
    /// Changes Automerge refused; retried whenever the document grows.
    failing: BTreeSet<ChangeHash>,
    excluded: BTreeMap<ChangeHash, Exclusion>,
    applied: HashSet<ChangeHash>,
    doc: Automerge,
    /// Everyone who signed a change held, creator included.
    authors: BTreeSet<AuthorId>,
    /// Authors whose changes are left out under the `trusted` edit policy.
    barred: BTreeSet<AuthorId>,
}

impl DocState {
    fn new(meta: DocMeta) -> Self {
        Self {
            meta,
            changes: HashMap::new(),
            by_actor_seq: BTreeMap::new(),
            failing: BTreeSet::new(),
            excluded: BTreeMap::new(),
            applied: HashSet::new(),
            doc: Automerge::new(),
            authors: BTreeSet::new(),
            barred: BTreeSet::new(),
        }
    }

    /// Sets the authors whose changes the edit policy leaves out: for a post in a `trusted`
    /// subwiki, every author of a change held who is neither its creator nor counted in
    /// `roles`. Returns whether that changed (and the document must be settled again).
    fn gate(&mut self, policy: EditPolicy, roles: &Roles) -> bool {
        let barred: BTreeSet<AuthorId> =
            if policy == EditPolicy::Trusted && self.meta.kind == DocKind::Post {
                self.authors
                    .iter()
                    .filter(|a| **a != self.meta.creator && !roles.counts(a))
                    .copied()
                    .collect()
            } else {
                BTreeSet::new()
            };
        if barred == self.barred {
            return false;
        }
        self.barred = barred;
        true
    }

    fn add(&mut self, entry: &Entry, change: &Change) {
        let hash = change.hash();
        let key = (entry.timestamp(), entry.id());
        if let Some(record) = self.changes.get_mut(&hash) {
            record.entries.insert(key);
            return;
        }
        self.by_actor_seq
            .entry((change.actor_id().to_bytes().to_vec(), change.seq()))
            .or_default()
            .insert(hash);
        self.authors.insert(entry.author());
        self.changes.insert(
            hash,
            ChangeRecord {
                entries: BTreeSet::from([key]),
                author: entry.author(),
                change: change.clone(),
            },
        );
    }

    /// The changes a change waits for: its Automerge dependencies and its actor's previous
    /// sequence number (all changes with it, if there are several).
    fn dependencies(&self, change: &Change) -> Vec<ChangeHash> {
        let mut deps = change.deps().to_vec();
        if change.seq() > 1 {
            let previous = (change.actor_id().to_bytes().to_vec(), change.seq() - 1);
            match self.by_actor_seq.get(&previous) {
                Some(hashes) => deps.extend(hashes.iter().copied()),
                // Not held yet: wait for it under a hash no change has.
                None => deps.push(ChangeHash([0; 32])),
            }
        }
        deps
    }

    fn compute_exclusions(&self) -> BTreeMap<ChangeHash, Exclusion> {
        let mut excluded: BTreeMap<ChangeHash, Exclusion> = BTreeMap::new();
        for hashes in self.by_actor_seq.values().filter(|h| h.len() > 1) {
            excluded.extend(hashes.iter().map(|h| (*h, Exclusion::Equivocation)));
        }
        if !self.barred.is_empty() {
            for (hash, record) in &self.changes {
                if self.barred.contains(&record.author) {
                    excluded.entry(*hash).or_insert(Exclusion::Untrusted);
                }
            }
        }
        for hash in &self.failing {
            excluded.entry(*hash).or_insert(Exclusion::Invalid);
        }
        if excluded.is_empty() {
            return excluded;
        }
        let mut children: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        for (hash, record) in &self.changes {
            for dep in self.dependencies(&record.change) {
                children.entry(dep).or_default().push(*hash);
            }
        }
        let mut stack: Vec<ChangeHash> = excluded.keys().copied().collect();
        while let Some(hash) = stack.pop() {
            for child in children.get(&hash).into_iter().flatten() {
                if !excluded.contains_key(child) {
                    excluded.insert(*child, Exclusion::DependsOnExcluded);
                    stack.push(*child);
                }
            }
        }
        excluded
    }

    /// The changes that can be applied now, in an order where each comes after what it needs.
    fn ready(&self) -> Vec<ChangeHash> {
        let candidates: BTreeSet<ChangeHash> = self
            .changes
            .keys()
            .filter(|h| !self.applied.contains(h) && !self.excluded.contains_key(h))
            .copied()
            .collect();
        let mut waiting_on: HashMap<ChangeHash, usize> = HashMap::new();
        let mut children: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
        let mut queue = Vec::new();
        for hash in &candidates {
            let Some(record) = self.changes.get(hash) else {
                continue;
            };
            let mut open = 0;
            for dep in self.dependencies(&record.change) {
                if self.applied.contains(&dep) {
                    continue;
                }
                open += 1;
                if candidates.contains(&dep) {
                    children.entry(dep).or_default().push(*hash);
                }
            }
            if open == 0 {
                queue.push(*hash);
            } else {
                waiting_on.insert(*hash, open);
            }
        }
        let mut order = Vec::new();
        while let Some(hash) = queue.pop() {
            order.push(hash);
            for child in children.get(&hash).into_iter().flatten() {
                if let Some(open) = waiting_on.get_mut(child) {
                    *open -= 1;
                    if *open == 0 {
                        queue.push(*child);
                    }
                }
            }
        }
        order
    }

    fn apply(doc: &mut Automerge, changes: Vec<Change>) -> bool {
        matches!(
            catch_unwind(AssertUnwindSafe(|| doc.apply_changes(changes))),
            Ok(Ok(()))
        )
    }

    /// Brings the Automerge document in line with the set of changes held.
    ///
    /// Changes that Automerge refuses (only hostile or broken ones: an honest change applies on
    /// top of its dependencies) are set aside for this round, with everything that depends on
    /// them, and tried again whenever the document gets new changes. A change that fails only
    /// because it uses an operation from a change it does not declare as a dependency therefore
    /// ends up applied on every replica once that change is held, whatever the arrival order.
    fn settle(&mut self) {
        let mut grew = false;
        loop {
            let excluded = self.compute_exclusions();
            let reset = excluded.keys().any(|h| self.applied.contains(h));
            self.excluded = excluded;
            if reset {
                self.doc = Automerge::new();
                self.applied.clear();
            }
            let ready = self.ready();
            if !ready.is_empty() {
                let batch: Vec<Change> = ready
                    .iter()
                    .filter_map(|h| self.changes.get(h).map(|r| r.change.clone()))
                    .collect();
                if Self::apply(&mut self.doc, batch) {
                    self.applied.extend(ready);
                    grew = true;
                } else {
                    // Something in the batch does not apply. Go back to what is known to
                    // apply, then try each change of the batch on a copy first, in a fixed
                    // order: a refused change costs a copy of the document, not a rebuild.
                    self.rebuild();
                    for hash in self.ready_sorted(ready) {
                        if self.try_apply(hash) {
                            grew = true;
                        } else {
                            self.failing.insert(hash);
                        }
                    }
                }
                continue;
            }
            // Nothing else is ready. Changes refused earlier get another chance only when the
            // document grew: what they lacked may have arrived.
            if !grew || self.failing.is_empty() {
                return;
            }
            grew = false;
            let retry: Vec<ChangeHash> = self
                .failing
                .iter()
                .filter(|h| {
                    // Only changes left out for being refused: not those the rules exclude.
                    matches!(self.excluded.get(h), None | Some(Exclusion::Invalid))
                        && self.changes.get(h).is_some_and(|r| {
                            self.dependencies(&r.change)
                                .iter()
                                .all(|d| self.applied.contains(d))
                        })
                })
                .copied()
                .collect();
            for hash in retry {
                if self.try_apply(hash) {
                    self.failing.remove(&hash);
                    grew = true;
                }
            }
            if !grew {
                return;
            }
        }
    }

    /// Starts the document from a saved Automerge snapshot instead of applying its changes one
    /// by one. The snapshot is only a cache: it is taken if the document has applied nothing
    /// yet, it loads, and the changes it holds are exactly a causally closed set of changes held
    /// here, none of them excluded. Otherwise it is ignored and the changes are applied as
    /// usual. Either way [`DocState::settle`] then applies whatever the snapshot lacks, so the
    /// result is the same document as without it.
    fn adopt(&mut self, snapshot: &[u8]) -> bool {
        if !self.applied.is_empty() {
            return false;
        }
        let Ok(Ok(doc)) = catch_unwind(|| Automerge::load(snapshot)) else {
            return false;
        };
        self.excluded = self.compute_exclusions();
        // The snapshot's changes are its heads and everything they depend on: walk that graph
        // through the changes held here (the same hash is the same change, with the same deps).
        let mut closure: HashSet<ChangeHash> = HashSet::new();
        let mut stack = doc.get_heads();
        while let Some(hash) = stack.pop() {
            if !closure.insert(hash) {
                continue;
            }
            let Some(record) = self.changes.get(&hash) else {
                return false;
            };
            if self.excluded.contains_key(&hash) || self.failing.contains(&hash) {
                return false;
            }
            stack.extend(record.change.deps().iter().copied());
        }
        // Each change's implicit dependency on its actor's previous change must be in too.
        let closed = closure.iter().all(|hash| {
            self.changes.get(hash).is_some_and(|record| {
                self.dependencies(&record.change)
                    .iter()
                    .all(|d| closure.contains(d))
            })
        });
        if !closed {
            return false;
        }
        self.doc = doc;
        self.applied = closure;
        true
    }

    /// Applies one change on a copy of the document and keeps the copy if it worked.
    fn try_apply(&mut self, hash: ChangeHash) -> bool {
        let Some(change) = self.changes.get(&hash).map(|r| r.change.clone()) else {
            return false;
        };
        let mut trial = self.doc.fork();
        if Self::apply(&mut trial, vec![change]) {
            self.doc = trial;
            self.applied.insert(hash);
            true
        } else {
            false
        }
    }

    /// A fresh document holding exactly the applied changes.
    fn rebuild(&mut self) {
        self.doc = Automerge::new();
        let changes: Vec<Change> = self
            .applied
            .iter()
            .filter_map(|h| self.changes.get(h).map(|r| r.change.clone()))
            .collect();
        if !Self::apply(&mut self.doc, changes) {
            self.doc = Automerge::new();
            self.applied.clear();
        }
    }

    /// A topological order of `changes` that is fixed by the set: repeatedly the smallest
    /// (by entry time, then id) change whose dependencies are applied or earlier in the order.
    fn ready_sorted(&self, changes: Vec<ChangeHash>) -> Vec<ChangeHash> {
        let mut remaining: BTreeMap<(Timestamp, EntryId), ChangeHash> = changes
            .into_iter()
            .filter_map(|h| self.changes.get(&h).map(|r| (r.first(), h)))
            .collect();
        let mut done: HashSet<ChangeHash> = HashSet::new();
        let mut order = Vec::new();
        while !remaining.is_empty() {
            let next = remaining.iter().find_map(|(key, hash)| {
                let record = self.changes.get(hash)?;
                self.dependencies(&record.change)
                    .iter()
                    .all(|d| self.applied.contains(d) || done.contains(d))
                    .then_some(*key)
            });
            let Some(key) = next else { break };
            if let Some(hash) = remaining.remove(&key) {
                done.insert(hash);
                order.push(hash);
            }
        }
        order
    }

    /// The view's contents; empty if Automerge fails to read it (see [`contained`]).
    fn content(&self) -> Content {
        contained(|| Content::read(self.meta.kind, &self.doc, None))
            .unwrap_or_else(|| Content::empty(self.meta.kind))
    }

    /// The view as it read at `heads` (applied changes), as a document of its own: a copy if
    /// `heads` are the view's heads, else built again from the changes' own bytes. Not
    /// `Automerge::fork_at`, which rebuilds the changes from the document's operations and
    /// panics on some hostile changes that Automerge applied (an operation whose predecessor is
    /// in no change it depends on, found by fuzzing). `None` if Automerge fails.
    fn doc_at(&self, heads: &[ChangeHash]) -> Option<Automerge> {
        let mut wanted = heads.to_vec();
        wanted.sort();
        wanted.dedup();
        if wanted == self.heads() {
            return Some(self.doc.clone());
        }
        let changes: Vec<Change> = self
            .closure(heads)
            .iter()
            .filter_map(|h| self.changes.get(h).map(|r| r.change.clone()))
            .collect();
        let mut doc = Automerge::new();
        Self::apply(&mut doc, changes).then_some(doc)
    }

    /// The view as a standard Automerge file: Automerge's own save or, if that fails, the
    /// applied changes' chunks one after the other (by entry time and id), which Automerge
    /// loads into the same document.
    fn save(&self) -> Vec<u8> {
        contained(|| self.doc.save()).unwrap_or_else(|| {
            let mut records: Vec<&ChangeRecord> = self
                .applied
                .iter()
                .filter_map(|h| self.changes.get(h))
                .collect();
            records.sort_by_key(|r| r.first());
            records
                .iter()
                .flat_map(|r| r.change.raw_bytes().iter().copied())
                .collect()
        })
    }

    /// What a held change did: the document its author saw (everything it depends on,
    /// excluded changes included) and the same with the change. `None` if Automerge refuses
    /// them or something it depends on is not held.
    fn delta(&self, hash: &ChangeHash) -> Option<(Content, Content)> {
        let record = self.changes.get(hash)?;
        let before: Vec<Change> = self
            .closure(record.change.deps())
            .iter()
            .map(|h| self.changes.get(h).map(|r| r.change.clone()))
            .collect::<Option<_>>()?;
        let mut doc = Automerge::new();
        if !Self::apply(&mut doc, before) {
            return None;
        }
        let seen = contained(|| Content::read(self.meta.kind, &doc, None))?;
        if !Self::apply(&mut doc, vec![record.change.clone()]) {
            return None;
        }
        let made = contained(|| Content::read(self.meta.kind, &doc, None))?;
        Some((seen, made))
    }

    /// `author`'s changes that the view leaves out only because they were built on another
    /// author's equivocation, and that no change of theirs has rescued yet; each comes after
    /// those it depends on.
    fn lost_to_equivocation(&self, author: &AuthorId) -> Vec<ChangeHash> {
        let others_equivocated = self
            .by_actor_seq
            .values()
            .filter(|hashes| hashes.len() > 1)
            .flatten()
            .any(|h| self.changes.get(h).is_some_and(|r| r.author != *author));
        if !others_equivocated {
            return Vec::new();
        }
        let rescued: HashSet<ChangeHash> = self
            .changes
            .values()
            .filter(|r| r.author == *author)
            .filter_map(|r| {
                r.change
                    .message()?
                    .strip_prefix(RESCUE_PREFIX)
                    .map(str::to_owned)
            })
            .flat_map(|list| {
                list.split(' ')
                    .filter_map(|h| h.parse::<ChangeHash>().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut lost: Vec<(usize, ChangeHash)> = self
            .changes
            .iter()
            .filter(|(hash, record)| {
                record.author == *author
                    && self.excluded.get(hash) == Some(&Exclusion::DependsOnExcluded)
                    && !rescued.contains(hash)
            })
            .filter_map(|(hash, record)| {
                let past = self.closure(record.change.deps());
                let by_equivocation = past.iter().any(|h| {
                    self.excluded.get(h) == Some(&Exclusion::Equivocation)
                        && self.changes.get(h).is_some_and(|r| r.author != *author)
                });
                by_equivocation.then_some((past.len(), *hash))
            })
            .collect();
        // A change's past holds the past of everything it depends on: sorting by its size puts
        // each change after those it builds on.
        lost.sort();
        lost.into_iter().map(|(_, hash)| hash).collect()
    }

    /// The view as it reads now with what `author`'s changes lost to another's equivocation
    /// did done again, and the changes that carries (at most [`MAX_RESCUED_PER_CHANGE`]).
    fn rescue_plan(&self, author: &AuthorId) -> Option<(Content, Vec<ChangeHash>)> {
        let mut current = self.content();
        let mut carried = Vec::new();
        for hash in self.lost_to_equivocation(author) {
            if carried.len() == MAX_RESCUED_PER_CHANGE {
                break;
            }
            let Some((seen, made)) = self.delta(&hash) else {
                continue;
            };
            if seen != made {
                let Some(merged) = merge3(self.meta.kind, &seen, &made, &current) else {
                    continue;
                };
                current = merged;
            }
            carried.push(hash);
        }
        (!carried.is_empty()).then_some((current, carried))
    }

    /// The schema fields each applied change touches, read from the changes' operations in
    /// one pass (an operation on a nested object counts for the root field holding it). A
    /// change that Automerge fails to decode touches none.
    fn fields_touched(&self) -> HashMap<ChangeHash, Vec<Field>> {
        use automerge::legacy::{Key, ObjectId, OpId, OpType};
        let decoded: Vec<(ChangeHash, automerge::ExpandedChange)> = self
            .applied
            .iter()
            .filter_map(|h| {
                let record = self.changes.get(h)?;
                contained(|| record.change.decode()).map(|change| (*h, change))
            })
            .collect();
        // Where each object was made: its parent object and key.
        let mut parents: HashMap<OpId, (ObjectId, Key)> = HashMap::new();
        for (_, change) in &decoded {
            for (i, op) in change.operations.iter().enumerate() {
                if matches!(op.action, OpType::Make(_)) {
                    let id = OpId(
                        change.start_op.get().saturating_add(i as u64),
                        change.actor_id.clone(),
                    );
                    parents.insert(id, (op.obj.clone(), op.key.clone()));
                }
            }
        }
        let root_field = |obj: &ObjectId, key: &Key| {
            let (mut obj, mut key) = (obj.clone(), key.clone());
            for _ in 0..32 {
                match obj {
                    ObjectId::Root => {
                        return match key {
                            Key::Map(name) => Field::from_key(&name),
                            Key::Seq(_) => None,
                        };
                    }
                    ObjectId::Id(id) => {
                        let (o, k) = parents.get(&id)?.clone();
                        obj = o;
                        key = k;
                    }
                }
            }
            None
        };
        decoded
            .iter()
            .map(|(hash, change)| {
                let fields: BTreeSet<Field> = change
                    .operations
                    .iter()
                    .filter_map(|op| root_field(&op.obj, &op.key))
                    .collect();
                (*hash, fields.into_iter().collect())
            })
            .collect()
    }

    fn heads(&self) -> Vec<ChangeHash> {
        let mut heads = self.doc.get_heads();
        heads.sort();
        heads
    }

    /// The changes `heads` are made of: the heads and everything they depend on.
    fn closure(&self, heads: &[ChangeHash]) -> HashSet<ChangeHash> {
        let mut closure = HashSet::new();
        let mut stack = heads.to_vec();
        while let Some(hash) = stack.pop() {
            if closure.insert(hash)
                && let Some(record) = self.changes.get(&hash)
            {
                stack.extend(record.change.deps().iter().copied());
            }
        }
        closure
    }

    /// The version of the applied view: the entries carrying its heads.
    fn version(&self) -> Version {
        Version::new(
            self.doc
                .get_heads()
                .iter()
                .filter_map(|h| self.changes.get(h).map(|r| r.first().1)),
        )
    }

    /// The heads of `version`: the change each of its entries carries, which must be applied.
    fn heads_of(&self, version: &Version) -> Result<Vec<ChangeHash>, LocalError> {
        if version.entries().is_empty() {
            return Err(LocalError::EmptyVersion);
        }
        version
            .entries()
            .iter()
            .map(|id| {
                self.find_version(*id)
                    .filter(|h| self.applied.contains(h))
                    .ok_or(LocalError::UnknownVersion(*id))
            })
            .collect()
    }

    fn status(&self, hash: &ChangeHash) -> ChangeStatus {
        if self.applied.contains(hash) {
            ChangeStatus::Applied
        } else if let Some(reason) = self.excluded.get(hash) {
            ChangeStatus::Excluded(*reason)
        } else {
            ChangeStatus::Pending
        }
    }

    /// The Automerge actor a local edit by `key` on `base` (a fork of the view, at its heads
    /// or at an earlier version) uses. Normally this device's actor. But if changes of that
    /// actor are held and not in the base (left out of the view because the author lost trust
    /// or built on a change that was later left out, or made after the base version), a new
    /// change made on the base would reuse their sequence numbers and look like an
    /// equivocation. The edit then uses the first actor of a fixed sequence derived from this
    /// device's actor (same author key, suffix `blake3(tag || actor || n)[..8]`) all of whose
    /// held changes are in the base.
    fn actor_for(&self, key: &AuthorKey, in_base: impl Fn(&ChangeHash) -> bool) -> ActorId {
        let base = key.actor().to_bytes().to_vec();
        let mut candidate = base.clone();
        for n in 0..MAX_ACTOR_ROTATIONS {
            let fits = self
                .by_actor_seq
                .range((candidate.clone(), 0)..=(candidate.clone(), u64::MAX))
                .flat_map(|(_, hashes)| hashes)
                .all(&in_base);
            if fits {
                break;
            }
            let mut hasher = blake3::Hasher::new();
            hasher.update(ACTOR_ROTATION_TAG);
            hasher.update(&base);
            hasher.update(&n.to_be_bytes());
            candidate = key.id().as_bytes().to_vec();
            candidate.extend(hasher.finalize().as_bytes().iter().take(DEVICE_SUFFIX_LEN));
        }
        ActorId::from(candidate)
    }

    fn find_version(&self, version: EntryId) -> Option<ChangeHash> {
        self.changes
            .iter()
            .find(|(_, r)| r.entries.iter().any(|(_, id)| *id == version))
            .map(|(h, _)| *h)
    }
}

/// Runs Automerge work on a document made of others' changes, and turns a panic into `None`.
///
/// Automerge 0.12 applies some hostile changes (an operation whose predecessor is in no change
/// it depends on, a mark operation outside any text, found by fuzzing) and then panics later,
/// when it reads, edits, saves or rebuilds changes of that document (assertions and unwraps in
/// its op collector and mark index). Every such call on a built document goes through here, so a
/// signed change from a hostile author can at worst make a document fail to be edited
/// ([`LocalError::Unprocessable`]), never crash the program that reads it. The work is done on
/// a copy or on data only read, so a panic part way leaves the document as it was.
fn contained<T>(work: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(work)).ok()
}

/// Domain tag of the actors a device derives for itself ([`DocState::actor_for`]).
const ACTOR_ROTATION_TAG: &[u8] = b"agora-actor-rotation-v1";

/// How a rescuing change's commit message starts; the hashes of the changes it carries follow,
/// separated by spaces ([`Replica::rescue`]).
pub const RESCUE_PREFIX: &str = "agora-rescue:";

/// The most left-out changes one rescuing change carries (its message stays small); a later
/// rescue carries the rest.
const MAX_RESCUED_PER_CHANGE: usize = 64;

/// `current` with what turned `seen` into `made` done to it as well: a three-way merge, made by
/// Automerge (`seen` written first; `made` and `current` each written on top of it as
/// concurrent changes, which Automerge merges, text by character). `None` if Automerge fails.
fn merge3(kind: DocKind, seen: &Content, made: &Content, current: &Content) -> Option<Content> {
    let merged = catch_unwind(AssertUnwindSafe(|| -> Result<Content, AutomergeError> {
        let mut base = Automerge::new().with_actor(ActorId::from(&[0u8][..]));
        let mut tx = base.transaction();
        seen.write(&mut tx)?;
        tx.commit();
        let mut mine = base.fork().with_actor(ActorId::from(&[1u8][..]));
        let mut tx = mine.transaction();
        made.write(&mut tx)?;
        tx.commit();
        let mut theirs = base.fork().with_actor(ActorId::from(&[2u8][..]));
        let mut tx = theirs.transaction();
        current.write(&mut tx)?;
        tx.commit();
        theirs.merge(&mut mine)?;
        Ok(Content::read(kind, &theirs, None))
    }));
    match merged {
        Ok(Ok(content)) => Some(content),
        _ => None,
    }
}
/// How many derived actors a device tries for one document before giving up and using the
/// last one (its change will then be left out like the earlier ones).
const MAX_ACTOR_ROTATIONS: u32 = 64;

/// Where a replica reads what it does not keep in memory: the entries it was told to
/// [release](Replica::release) (because its owner keeps them, in a store), and documents'
/// saved Automerge snapshots. A node implements it over its store; a replica made with
/// [`Replica::new`] keeps everything in memory and needs none.
pub trait Source: Send + Sync {
    /// The entries with these ids that the source holds (intact), in any order.
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry>;
    /// A document's saved snapshot, if there is one. It is only a cache: a snapshot that does
    /// not load or does not match the entries is ignored.
    fn snapshot(&self, doc: &DocId) -> Option<Vec<u8>>;
    /// Keeps a document's snapshot, made after the replica built it from more than one change.
    fn save_snapshot(&self, doc: &DocId, bytes: Vec<u8>);
}

/// The source of a replica that keeps every entry in memory.
#[derive(Debug)]
struct InMemory;

impl Source for InMemory {
    fn entries(&self, _: &[EntryId]) -> Vec<Entry> {
        Vec::new()
    }
    fn snapshot(&self, _: &DocId) -> Option<Vec<u8>> {
        None
    }
    fn save_snapshot(&self, _: &DocId, _: Vec<u8>) {}
}

/// What a replica keeps of a document without building it.
#[derive(Debug, Clone)]
struct DocIndex {
    meta: DocMeta,
    /// The entries that carry its changes (the create entry and every change entry), sorted
    /// by (claimed time, id). Sorted vectors, not sets: most documents have one entry and one
    /// author, and a set's first node costs hundreds of bytes.
    entries: Vec<(Timestamp, EntryId)>,
    /// Everyone who signed one of them, creator included, sorted.
    authors: Vec<AuthorId>,
    /// Bytes of the changes, for the cache's estimate of the built document's size.
    change_bytes: usize,
}

impl DocIndex {
    fn add(&mut self, held: &Held, change_bytes: u32) {
        let key = (held.timestamp, held.id);
        if let Err(at) = self.entries.binary_search(&key) {
            self.entries.insert(at, key);
            if let Err(at) = self.authors.binary_search(&held.author) {
                self.authors.insert(at, held.author);
            }
            self.change_bytes = self
                .change_bytes
                .saturating_add(usize::try_from(change_bytes).unwrap_or(usize::MAX));
        }
    }

    /// Estimated memory of the built document: Automerge keeps every operation expanded, about
    /// this many times the compressed change bytes (measured on realistic posts, see
    /// `docs/performance.md`), plus the bookkeeping of a [`DocState`].
    fn cost(&self) -> usize {
        self.change_bytes
            .saturating_mul(BUILT_BYTES_PER_CHANGE_BYTE)
            .saturating_add(DOC_OVERHEAD_BYTES)
    }
}

/// See [`DocIndex::cost`].
const BUILT_BYTES_PER_CHANGE_BYTE: usize = 24;
const DOC_OVERHEAD_BYTES: usize = 4096;

/// The default budget of a replica's document cache, in estimated bytes.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Built documents, least recently used evicted first once their estimated size passes the
/// budget.
struct Cache {
    docs: HashMap<DocId, Cached>,
    clock: u64,
    bytes: usize,
    budget: usize,
}

struct Cached {
    state: DocState,
    used: u64,
    cost: usize,
}

impl Cache {
    fn new(budget: usize) -> Self {
        Self {
            docs: HashMap::new(),
            clock: 0,
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, doc: &DocId) -> Option<&mut DocState> {
        self.clock += 1;
        let cached = self.docs.get_mut(doc)?;
        cached.used = self.clock;
        Some(&mut cached.state)
    }

    fn insert(&mut self, doc: DocId, state: DocState, cost: usize) {
        self.clock += 1;
        if let Some(old) = self.docs.insert(
            doc,
            Cached {
                state,
                used: self.clock,
                cost,
            },
        ) {
            self.bytes = self.bytes.saturating_sub(old.cost);
        }
        self.bytes = self.bytes.saturating_add(cost);
        self.evict(Some(doc));
    }

    fn remove(&mut self, doc: &DocId) {
        if let Some(gone) = self.docs.remove(doc) {
            self.bytes = self.bytes.saturating_sub(gone.cost);
        }
    }

    /// Records a cached document's new size estimate.
    fn resize(&mut self, doc: &DocId, cost: usize) {
        if let Some(cached) = self.docs.get_mut(doc) {
            self.bytes = self.bytes.saturating_sub(cached.cost).saturating_add(cost);
            cached.cost = cost;
        }
    }

    /// Drops the least recently used documents until the estimate fits the budget; `keep` (the
    /// one just used) stays even if it alone is over.
    fn evict(&mut self, keep: Option<DocId>) {
        while self.bytes > self.budget {
            let coldest = self
                .docs
                .iter()
                .filter(|(id, _)| Some(**id) != keep)
                .min_by_key(|(_, c)| c.used)
                .map(|(id, _)| *id);
            let Some(id) = coldest else { return };
            if let Some(gone) = self.docs.remove(&id) {
                self.bytes = self.bytes.saturating_sub(gone.cost);
            }
        }
    }
}

fn lock(cache: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A change that waits for its document's create entry.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    held: Held,
    change_bytes: u32,
}

/// A replica of one subwiki. See the module documentation.
///
/// # Documents on demand
///
/// A replica keeps an index of what it holds (every entry id, each document's fixed facts and
/// the entries of its changes, the feed, comment and profile indexes, the votes and role
/// statements themselves), not the documents. A document is built from its entries (and its
/// saved snapshot, if the [`Source`] has one) when something reads or edits it, and kept in a
/// cache bounded by an estimate of its size ([`Replica::set_cache_budget`]); an entry that
/// arrives for a cached document is applied to it at once, others only when they are read.
/// The replica's owner may [release](Replica::release) entries it has stored, and the replica
/// then reads them from its [`Source`] when it builds their document. Every view is the same
/// as if every document had been built eagerly: the state is still a function of the set of
/// entries held.
pub struct Replica {
    genesis: Entry,
    genesis_body: Genesis,
    /// Every entry held.
    ids: HashSet<EntryId>,
    /// The entries kept in memory: votes, role statements and the genesis always, others
    /// until they are released.
    held: HashMap<EntryId, Entry>,
    docs: HashMap<DocId, DocIndex>,
    /// Change entries whose document is not held yet.
    waiting: HashMap<DocId, Vec<Waiting>>,
    /// The ids of the entries in `waiting`: held, but not yet known to be valid changes.
    waiting_ids: HashSet<EntryId>,
    /// The stamp of every change in the documents' indexes: (document, actor and sequence
    /// number) fingerprint to change-hash fingerprint.
    stamps: HashMap<u64, u64>,
    /// (document, author) pairs with two different changes under one actor and sequence
    /// number.
    equivocators: BTreeSet<(DocId, AuthorId)>,
    posts: BTreeSet<(Timestamp, DocId)>,
    comments: HashMap<DocId, BTreeSet<(Timestamp, DocId)>>,
    profiles: HashMap<AuthorId, BTreeSet<(Timestamp, DocId)>>,
    votes: BTreeSet<(Timestamp, EntryId)>,
    roles: BTreeSet<(Timestamp, EntryId)>,
    /// Roles computed from the role statements held; recomputed when one arrives.
    computed_roles: Roles,
    /// Retraction and redaction statements, like votes.
    retractions: BTreeSet<(Timestamp, EntryId)>,
    /// The statements naming each document.
    retracting: HashMap<DocId, BTreeSet<(Timestamp, EntryId)>>,
    /// Documents named by a statement since the last settle.
    pending_retractions: BTreeSet<DocId>,
    /// What is left of the purged documents.
    tombstones: HashMap<DocId, Tombstone>,
    /// The entries purged with them (this replica's life only), each with its document: a
    /// change naming one of them as its document is refused as if it were still held.
    purged: HashMap<EntryId, DocId>,
    /// Authors whose redactions the reader does not act on.
    ignored: BTreeSet<AuthorId>,
    source: Arc<dyn Source>,
    /// False for a replica without a source ([`Replica::new`]): it keeps every entry.
    may_release: bool,
    cache: Mutex<Cache>,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("subwiki", &self.id())
            .field("entries", &self.ids.len())
            .field("documents", &self.docs.len())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// A replica of the subwiki that `genesis` founds, holding nothing else yet, that keeps
    /// every entry in memory.
    pub fn new(genesis: Entry) -> Result<Self, IngestError> {
        let mut replica = Self::with_source(genesis, Arc::new(InMemory))?;
        replica.may_release = false;
        Ok(replica)
    }

    /// A replica that reads released entries and snapshots from `source`.
    pub fn with_source(genesis: Entry, source: Arc<dyn Source>) -> Result<Self, IngestError> {
        let Payload::Genesis(body) = genesis.payload().clone() else {
            return Err(IngestError::NotGenesis);
        };
        let mut held = HashMap::new();
        held.insert(genesis.id(), genesis.clone());
        let computed_roles = Roles::founder_only(genesis.author());
        Ok(Self {
            ids: HashSet::from([genesis.id()]),
            genesis,
            genesis_body: body,
            held,
            docs: HashMap::new(),
            waiting: HashMap::new(),
            waiting_ids: HashSet::new(),
            stamps: HashMap::new(),
            equivocators: BTreeSet::new(),
            posts: BTreeSet::new(),
            comments: HashMap::new(),
            profiles: HashMap::new(),
            votes: BTreeSet::new(),
            roles: BTreeSet::new(),
            computed_roles,
            retractions: BTreeSet::new(),
            retracting: HashMap::new(),
            pending_retractions: BTreeSet::new(),
            tombstones: HashMap::new(),
            purged: HashMap::new(),
            ignored: BTreeSet::new(),
            source,
            may_release: true,
            cache: Mutex::new(Cache::new(DEFAULT_CACHE_BYTES)),
        })
    }

    /// A replica restored from the records of the entries it held ([`Held`], as a store keeps
    /// them beside the entries) and the entries of its votes and role statements, without
    /// reading any other entry: it reads them from `source` when it builds their documents.
    /// Gives the same replica as [`Replica::ingest`] of the entries, then
    /// [`Replica::release`] of them all; records of votes or role statements whose entry is
    /// not given are left out (a damaged one, say), and the report says what the replica
    /// refused, as `ingest` would have. Retractions are settled by
    /// [`Replica::restore_tombstones`], which the caller runs next (with the tombstones it
    /// kept, if any).
    pub fn restore(
        genesis: Entry,
        source: Arc<dyn Source>,
        records: impl IntoIterator<Item = Held>,
        statements: Vec<Entry>,
    ) -> Result<(Self, IngestReport), IngestError> {
        let mut replica = Self::with_source(genesis, source)?;
        let mut statements: HashMap<EntryId, Entry> =
            statements.into_iter().map(|e| (e.id(), e)).collect();
        let mut report = IngestReport::default();
        let mut touched = BTreeSet::new();
        for held in records {
            if replica.ids.contains(&held.id) {
                report.duplicates += 1;
                continue;
            }
            let statement = if held.is_statement() {
                match statements.remove(&held.id) {
                    Some(entry) => Some(entry),
                    None => continue,
                }
            } else {
                None
            };
            match replica.admit(&held, None, &mut touched, &mut report) {
                Ok(()) => {
                    replica.ids.insert(held.id);
                    if let Some(entry) = statement {
                        replica.note_retraction(&entry);
                        replica.held.insert(held.id, entry);
                    }
                    report.accepted.push(held.id);
                }
                Err(e) => report.rejected.push((held.id, e)),
            }
        }
        replica.computed_roles = Roles::compute(
            replica.genesis.author(),
            &replica.genesis_body.policy,
            replica
                .roles
                .iter()
                .filter_map(|(_, id)| replica.held.get(id)),
        );
        Ok((replica, report))
    }

    /// Founds a new subwiki: signs its genesis entry and returns the replica and the entry.
    pub fn found(
        key: &AuthorKey,
        now: Timestamp,
        name: &str,
        description: &str,
        policy: Policy,
    ) -> Result<(Self, Entry), LocalError> {
        let genesis = Entry::sign(
            key,
            None,
            now,
            Payload::Genesis(Genesis {
                name: name.to_owned(),
                description: description.to_owned(),
                policy,
            }),
        )?;
        Ok((Self::new(genesis.clone())?, genesis))
    }

    /// Sets the budget of the document cache, in estimated bytes (0 builds every document at
    /// every read), and evicts what no longer fits.
    pub fn set_cache_budget(&mut self, bytes: usize) {
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        cache.budget = bytes;
        cache.evict(None);
    }

    /// Number of documents built and cached now.
    pub fn cached_documents(&self) -> usize {
        lock(&self.cache).docs.len()
    }

    /// Lets the replica drop these entries from memory: its [`Source`] holds them now. Votes,
    /// role statements and the genesis entry stay, and a replica made without a source
    /// ([`Replica::new`]) keeps everything.
    pub fn release<'a>(&mut self, ids: impl IntoIterator<Item = &'a EntryId>) {
        if !self.may_release {
            return;
        }
        for id in ids {
            let keep = self.held.get(id).is_none_or(|e| {
                matches!(
                    e.payload(),
                    Payload::Genesis(_) | Payload::Vote(_) | Payload::Role(_) | Payload::Retract(_)
                )
            });
            if !keep {
                self.held.remove(id);
            }
        }
    }

    /// The subwiki's id.
    pub fn id(&self) -> SubwikiId {
        self.genesis.id().into()
    }

    /// The genesis entry.
    pub fn genesis_entry(&self) -> &Entry {
        &self.genesis
    }

    /// The founding name, description and policy.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis_body
    }

    /// The founder.
    pub fn founder(&self) -> AuthorId {
        self.genesis.author()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if only the genesis entry is held.
    pub fn is_empty(&self) -> bool {
        self.ids.len() <= 1
    }

    /// Whether an entry is held.
    pub fn contains(&self, id: &EntryId) -> bool {
        self.ids.contains(id)
    }

    /// The ids of every entry held, in no particular order.
    pub fn entry_ids(&self) -> impl Iterator<Item = &EntryId> {
        self.ids.iter()
    }

    /// An entry kept in memory (every entry held, unless it was [released](Replica::release)).
    pub fn entry(&self, id: &EntryId) -> Option<&Entry> {
        self.held.get(id)
    }

    /// Every entry kept in memory, in no particular order: every entry held, unless some were
    /// [released](Replica::release).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.held.values()
    }

    /// Vote entries held, oldest first.
    pub fn votes(&self) -> impl Iterator<Item = &Entry> {
        self.votes.iter().filter_map(|(_, id)| self.held.get(id))
    }

    /// Role statements held, oldest first.
    pub fn role_statements(&self) -> impl Iterator<Item = &Entry> {
        self.roles.iter().filter_map(|(_, id)| self.held.get(id))
    }

    /// The roles computed from the role statements held (see [`crate::moderation`]). Kept up
    /// to date by [`Replica::ingest`]; the same on every replica holding the same entries.
    pub fn roles(&self) -> &Roles {
        &self.computed_roles
    }

    /// Moderation as a reader with these personal `overrides` sees it: roles, the outcome of
    /// every voted post and author, and the log. Computed from the role statements and votes
    /// held, in O(n log n); with [`Overrides::none`] it is the same on every replica holding the
    /// same entries.
    pub fn moderation(&self, overrides: &Overrides) -> Moderation {
        let mut moderation = Moderation::compute(
            self.founder(),
            &self.genesis_body.policy,
            self.role_statements().chain(self.votes()),
            overrides,
        );
        moderation.extend_log(self.retraction_log());
        moderation
    }

    /// Whether a change by `author` to `doc` would be part of the document's view, as far as
    /// this replica knows: a document that only its creator may change, by its creator; a post
    /// in an `open` subwiki, by anyone; a post in a `trusted` subwiki, by its creator or by the
    /// founder, a moderator or a trusted member. False for a document not held.
    pub fn may_edit(&self, author: &AuthorId, doc: &DocId) -> bool {
        let Some(index) = self.docs.get(doc) else {
            return false;
        };
        *author == index.meta.creator
            || match index.meta.kind.write_policy() {
                WritePolicy::Owner => false,
                WritePolicy::Wiki => {
                    self.genesis_body.policy.edit == EditPolicy::Open
                        || self.computed_roles.counts(author)
                }
            }
    }

    /// Posts with a change signed by someone other than their creator: the posts whose view a
    /// change of roles can change under the `trusted` edit policy.
    pub fn posts_edited_by_others(&self) -> Vec<DocId> {
        self.posts
            .iter()
            .filter(|(_, id)| {
                self.docs
                    .get(id)
                    .is_some_and(|d| d.authors.iter().any(|a| *a != d.meta.creator))
            })
            .map(|(_, id)| *id)
            .collect()
    }

    /// Takes in valid entries, in any order and with duplicates. Documents that are built (in
    /// the cache) are brought up to date at once, one Automerge batch per document; the others
    /// when they are next read.
    pub fn ingest(&mut self, entries: impl IntoIterator<Item = Entry>) -> IngestReport {
        let mut report = IngestReport::default();
        let mut touched = BTreeSet::new();
        let mut roles_changed = false;
        // Entries refused as a purged document's: taken again if the purge is undone before
        // this call ends (see below).
        let mut refused_purged: Vec<Entry> = Vec::new();
        for entry in entries {
            let id = entry.id();
            if self.ids.contains(&id) {
                report.duplicates += 1;
                continue;
            }
            // A role statement whose signer is neither the founder nor counted in the current
            // roles cannot change them: appointments count only from the founder, and a
            // vouch or revoke only changes edges out of its signer, which the least fixed point
            // never follows while the signer is outside it. So a flood of statements from
            // untrusted keys costs no recomputation.
            let may_change_roles = matches!(entry.payload(), Payload::Role(_))
                && self.computed_roles.counts(&entry.author());
            let admitted = if entry.subwiki() == self.id() {
                self.admit(&Held::of(&entry), Some(&entry), &mut touched, &mut report)
            } else {
                Err(IngestError::WrongSubwiki {
                    expected: self.id(),
                    got: entry.subwiki(),
                })
            };
            match admitted {
                Ok(()) => {
                    self.ids.insert(id);
                    self.note_retraction(&entry);
                    self.held.insert(id, entry);
                    report.accepted.push(id);
                    roles_changed |= may_change_roles;
                }
                Err(e) => {
                    if matches!(e, IngestError::Retracted(_)) {
                        refused_purged.push(entry);
                    }
                    report.rejected.push((id, e));
                }
            }
        }
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        let policy = self.genesis_body.policy.edit;
        let mut roles_did_change = false;
        if roles_changed {
            let roles = Roles::compute(
                self.genesis.author(),
                &self.genesis_body.policy,
                self.roles.iter().filter_map(|(_, id)| self.held.get(id)),
            );
            if roles != self.computed_roles {
                self.computed_roles = roles;
                roles_did_change = true;
                // Under the `trusted` edit policy, built posts whose editors' trust changed are
                // settled again, so the view follows the final roles (the others are gated
                // when they are built).
                for (id, cached) in &mut cache.docs {
                    if cached.state.gate(policy, &self.computed_roles) {
                        touched.insert(*id);
                    }
                }
            }
        }
        for doc in touched {
            if let Some(state) = cache.get(&doc) {
                state.gate(policy, &self.computed_roles);
                state.settle();
            }
            if let Some(index) = self.docs.get(&doc) {
                cache.resize(&doc, index.cost());
            }
        }
        cache.evict(None);
        self.settle_retractions(roles_did_change, &mut report);
        if !report.restored.is_empty() && !refused_purged.is_empty() {
            // A purge undone by what this call brought (its redactor is no longer a
            // moderator): the entries of that document it refused are held after all, as if
            // they had come after.
            let restored: BTreeSet<DocId> = report.restored.iter().copied().collect();
            let again: Vec<Entry> = refused_purged
                .into_iter()
                .filter(|e| {
                    report.rejected.iter().any(|(id, err)| {
                        *id == e.id()
                            && matches!(err, IngestError::Retracted(d) if restored.contains(d))
                    })
                })
                .collect();
            report
                .rejected
                .retain(|(id, _)| !again.iter().any(|e| e.id() == *id));
            let more = self.ingest(again);
            report.accepted.extend(more.accepted);
            report.duplicates += more.duplicates;
            report.rejected.extend(more.rejected);
            report.purged.extend(more.purged);
            report.restored.extend(more.restored);
        }
        report
    }

    /// The admission checks and index updates of one entry, from its record; `entry` is the
    /// entry itself when it is at hand (not when the index is restored from records), to
    /// bring a built document up to date.
    fn admit(
        &mut self,
        held: &Held,
        entry: Option<&Entry>,
        touched: &mut BTreeSet<DocId>,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        if held.timestamp < self.genesis.timestamp() {
            return Err(IngestError::BeforeGenesis);
        }
        let key = (held.timestamp, held.id);
        let admitted = match held.what {
            HeldKind::Genesis => Err(IngestError::WrongSubwiki {
                expected: self.id(),
                got: held.id.into(),
            }),
            HeldKind::Create {
                kind,
                parent,
                reply_to,
                change_bytes,
            } => self.admit_create(held, kind, parent, reply_to, change_bytes, report),
            HeldKind::Change { doc, change_bytes } => {
                self.admit_change(held, doc, change_bytes, entry, touched)
            }
            HeldKind::Vote => {
                self.votes.insert(key);
                Ok(())
            }
            HeldKind::Role => {
                self.roles.insert(key);
                Ok(())
            }
            // Noted by the caller, which has the entry (statements are always at hand).
            HeldKind::Retract => Ok(()),
        };
        // Changes that named this entry as their document were waiting for a document that
        // will never come: refuse them now, as they would have been had this come first. Only
        // once this entry is known to be held as what it is: a change still waiting for its
        // own document may yet be refused, and then the changes naming it wait on, as they
        // would have had it never come.
        if admitted.is_ok()
            && !matches!(held.what, HeldKind::Create { .. })
            && !self.waiting_ids.contains(&held.id)
        {
            self.refuse_waiting_on(held.id, report);
        }
        if let Err(IngestError::Retracted(doc)) = admitted
            && self.would_have_held(held, &doc)
        {
            // Refused as a purged document's, but it would have been held had the document
            // been: changes naming it are refused as they would have been then (see
            // `Replica::check_not_purged`).
            self.purged.insert(held.id, doc);
            if matches!(held.what, HeldKind::Change { .. }) {
                self.refuse_waiting_on(held.id, report);
            }
        }
        admitted
    }

    /// Refuses the changes waiting for `id` as their document: `id` is held, and is not a
    /// document.
    fn refuse_waiting_on(&mut self, id: EntryId, report: &mut IngestReport) {
        for waiting in self.waiting.remove(&DocId::from(id)).unwrap_or_default() {
            self.waiting_ids.remove(&waiting.held.id);
            self.forget(&waiting.held.id, report);
            report
                .rejected
                .push((waiting.held.id, IngestError::NotADocument(id.into())));
        }
    }

    /// Drops an entry accepted earlier that turned out to break a rule.
    fn forget(&mut self, id: &EntryId, report: &mut IngestReport) {
        self.ids.remove(id);
        self.held.remove(id);
        report.accepted.retain(|a| a != id);
    }

    fn admit_create(
        &mut self,
        held: &Held,
        kind: DocKind,
        parent: Option<DocId>,
        reply_to: Option<DocId>,
        change_bytes: u32,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        if kind == DocKind::Info && held.author != self.founder() {
            return Err(IngestError::NotFounder);
        }
        let id = DocId::from(held.id);
        self.check_not_purged(&id)?;
        if self.retracting.contains_key(&id) {
            self.pending_retractions.insert(id);
        }
        let mut index = DocIndex {
            meta: DocMeta {
                id,
                kind,
                creator: held.author,
                created_at: held.timestamp,
                parent,
                reply_to,
            },
            entries: Vec::new(),
            authors: vec![held.author],
            change_bytes: 0,
        };
        index.add(held, change_bytes);
        self.note_stamp(id, held);
        let mut admitted = Vec::new();
        for waiting in self.waiting.remove(&id).unwrap_or_default() {
            self.waiting_ids.remove(&waiting.held.id);
            if kind.write_policy() == WritePolicy::Owner && waiting.held.author != held.author {
                self.forget(&waiting.held.id, report);
                report
                    .rejected
                    .push((waiting.held.id, IngestError::NotOwner { doc: id }));
                continue;
            }
            index.add(&waiting.held, waiting.change_bytes);
            self.note_stamp(id, &waiting.held);
            admitted.push(waiting.held.id);
        }
        // Those changes are now known to be held as changes: changes naming one of them as
        // their document are refused.
        for change in admitted {
            self.refuse_waiting_on(change, report);
        }
        let key = (held.timestamp, id);
        match kind {
            DocKind::Post => {
                self.posts.insert(key);
            }
            DocKind::Comment => {
                if let Some(parent) = parent {
                    self.comments.entry(parent).or_default().insert(key);
                }
            }
            DocKind::Profile => {
                self.profiles.entry(held.author).or_default().insert(key);
            }
            DocKind::Info => {}
        }
        self.docs.insert(id, index);
        Ok(())
    }

    fn admit_change(
        &mut self,
        held: &Held,
        doc: DocId,
        change_bytes: u32,
        entry: Option<&Entry>,
        touched: &mut BTreeSet<DocId>,
    ) -> Result<(), IngestError> {
        self.check_not_purged(&doc)?;
        let Some(index) = self.docs.get_mut(&doc) else {
            // Held, and not a change still waiting for its own document (which may yet be
            // refused): not a document.
            let named = EntryId::from(doc);
            if self.ids.contains(&named) && !self.waiting_ids.contains(&named) {
                return Err(IngestError::NotADocument(doc));
            }
            self.waiting.entry(doc).or_default().push(Waiting {
                held: *held,
                change_bytes,
            });
            self.waiting_ids.insert(held.id);
            return Ok(());
        };
        if index.meta.kind.write_policy() == WritePolicy::Owner && held.author != index.meta.creator
        {
            return Err(IngestError::NotOwner { doc });
        }
        index.add(held, change_bytes);
        self.note_stamp(doc, held);
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = cache.get(&doc) {
            if let Some(entry) = entry
                && let Some(decoded) = entry.change()
            {
                state.add(entry, decoded);
            } else {
                // Restored from a record: the document is built again when next read.
                cache.remove(&doc);
            }
            touched.insert(doc);
        }
        Ok(())
    }

    /// Builds a document from its entries (kept in memory or read from the source) and its
    /// snapshot, and saves a new snapshot if it took applying changes beyond the old one.
    fn build(&self, index: &DocIndex) -> DocState {
        let mut state = DocState::new(index.meta.clone());
        let mut released = Vec::new();
        for (_, id) in &index.entries {
            match self.held.get(id) {
                Some(entry) => {
                    if let Some(change) = entry.change() {
                        state.add(entry, change);
                    }
                }
                None => released.push(*id),
            }
        }
        if !released.is_empty() {
            for entry in self.source.entries(&released) {
                if index
                    .entries
                    .binary_search(&(entry.timestamp(), entry.id()))
                    .is_ok()
                    && let Some(change) = entry.change()
                {
                    state.add(&entry, change);
                }
            }
        }
        state.gate(self.genesis_body.policy.edit, &self.computed_roles);
        let snapshot = self.source.snapshot(&index.meta.id);
        let adopted = snapshot.is_some_and(|bytes| state.adopt(&bytes));
        let from_snapshot = state.applied.len();
        state.settle();
        if state.changes.len() > 1
            && (!adopted || state.applied.len() != from_snapshot)
            && let Some(bytes) = contained(|| state.doc.save())
        {
            self.source.save_snapshot(&index.meta.id, bytes);
        }
        state
    }

    /// Runs `f` on a document, built on demand. `None` if the document is not held.
    fn with_doc<T>(&self, doc: &DocId, f: impl FnOnce(&DocState) -> T) -> Option<T> {
        let index = self.docs.get(doc)?;
        let mut cache = lock(&self.cache);
        if let Some(state) = cache.get(doc) {
            return Some(f(state));
        }
        let state = self.build(index);
        let out = f(&state);
        cache.insert(*doc, state, index.cost());
        Some(out)
    }

    /// Entries held that are not part of any view yet: changes waiting for their document or
    /// for changes they depend on. Builds every document: for tests and tools.
    pub fn pending(&self) -> Vec<EntryId> {
        let mut out: Vec<EntryId> = self.waiting.values().flatten().map(|w| w.held.id).collect();
        for doc in self.doc_ids() {
            self.with_doc(&doc, |state| {
                for (hash, record) in &state.changes {
                    if state.status(hash) == ChangeStatus::Pending {
                        out.extend(record.entries.iter().map(|(_, id)| *id));
                    }
                }
            });
        }
        out.sort();
        out
    }

    /// Every equivocation seen, with the entries that prove it. Builds every document: for
    /// tests and tools.
    pub fn equivocations(&self) -> Vec<Equivocation> {
        self.doc_ids()
            .iter()
            .flat_map(|doc| self.equivocations_in(doc))
            .collect()
    }

    /// The equivocations in one document, with the entries that prove them, by actor and
    /// sequence number. Builds the document.
    pub fn equivocations_in(&self, doc: &DocId) -> Vec<Equivocation> {
        let mut out = Vec::new();
        self.with_doc(doc, |state| {
            for ((actor, seq), hashes) in state.by_actor_seq.iter().filter(|(_, h)| h.len() > 1) {
                let mut entries: Vec<EntryId> = hashes
                    .iter()
                    .filter_map(|h| state.changes.get(h))
                    .flat_map(|r| r.entries.iter().map(|(_, id)| *id))
                    .collect();
                entries.sort();
                let author = actor
                    .get(..32)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(AuthorId::from_bytes)
                    .unwrap_or(state.meta.creator);
                out.push(Equivocation {
                    doc: state.meta.id,
                    author,
                    actor: actor.clone(),
                    seq: *seq,
                    entries,
                });
            }
        });
        out.sort_by(|a, b| (a.doc, &a.actor, a.seq).cmp(&(b.doc, &b.actor, b.seq)));
        out
    }

    /// Every (document, author) where the author signed two different changes with the same
    /// actor and sequence number: the equivocators, from the index (builds nothing; the
    /// evidence is in [`Replica::equivocations_in`]). Entries stored before stamps existed
    /// ([`crate::Stamp`]) are not counted until the store's indexes are rebuilt.
    pub fn equivocators(&self) -> &BTreeSet<(DocId, AuthorId)> {
        &self.equivocators
    }

    /// Notes the stamp of a change now in `doc`'s index; a second change with the same actor
    /// and sequence number and another hash makes its author an equivocator.
    fn note_stamp(&mut self, doc: DocId, held: &Held) {
        let Some(stamp) = held.stamp else {
            return;
        };
        let mut prefix = [0u8; 8];
        for (p, b) in prefix.iter_mut().zip(doc.as_bytes()) {
            *p = *b;
        }
        let key = stamp.actor_seq ^ u64::from_be_bytes(prefix);
        match self.stamps.entry(key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(stamp.hash);
            }
            std::collections::hash_map::Entry::Occupied(slot) => {
                if *slot.get() != stamp.hash {
                    self.equivocators.insert((doc, held.author));
                }
            }
        }
    }

    /// The fixed facts of a document.
    pub fn doc_meta(&self, doc: &DocId) -> Option<&DocMeta> {
        self.docs.get(doc).map(|s| &s.meta)
    }

    /// Ids of every document held, sorted.
    pub fn doc_ids(&self) -> Vec<DocId> {
        let mut ids: Vec<DocId> = self.docs.keys().copied().collect();
        ids.sort();
        ids
    }

    /// A document's current contents.
    pub fn content(&self, doc: &DocId) -> Option<Content> {
        self.with_doc(doc, DocState::content)
    }

    /// A document's current Automerge heads, sorted.
    pub fn heads(&self, doc: &DocId) -> Option<Vec<ChangeHash>> {
        self.with_doc(doc, DocState::heads)
    }

    /// A document's current version: what an edit of the text read now names as its base.
    pub fn version(&self, doc: &DocId) -> Option<Version> {
        self.with_doc(doc, DocState::version)
    }

    /// The document as a standard Automerge file, which any Automerge implementation opens.
    pub fn save_document(&self, doc: &DocId) -> Option<Vec<u8>> {
        self.with_doc(doc, DocState::save)
    }

    /// The author's display name in this subwiki: the name in their newest profile.
    pub fn display_name(&self, author: &AuthorId) -> Option<String> {
        let (_, doc) = self.profiles.get(author)?.last()?;
        match self.content(doc)? {
            Content::Profile(p) if !p.name.trim().is_empty() => Some(p.name),
            _ => None,
        }
    }

    /// A post as a reader sees it now.
    pub fn post(&self, doc: &DocId) -> Option<PostView> {
        if let Some(tombstone) = self.tombstones.get(doc) {
            return (tombstone.meta.kind == DocKind::Post).then(|| PostView {
                meta: tombstone.meta.clone(),
                content: PostContent::default(),
                author_name: self.display_name(&tombstone.meta.creator),
                edits: 0,
                editors: BTreeSet::new(),
                comments: self.comments.get(doc).map_or(0, BTreeSet::len),
                updated_at: tombstone.at,
                version: Version::new([]),
                retracted: Some(tombstone.clone()),
            });
        }
        let mut view = self.with_doc(doc, |state| {
            let Content::Post(content) = state.content() else {
                return None;
            };
            let applied: Vec<&ChangeRecord> = state
                .applied
                .iter()
                .filter_map(|h| state.changes.get(h))
                .collect();
            Some(PostView {
                content,
                author_name: None,
                edits: applied.len().saturating_sub(1),
                editors: applied.iter().map(|r| r.author).collect(),
                comments: 0,
                updated_at: applied
                    .iter()
                    .map(|r| r.first().0)
                    .max()
                    .unwrap_or(state.meta.created_at),
                version: state.version(),
                meta: state.meta.clone(),
                retracted: None,
            })
        })??;
        view.author_name = self.display_name(&view.meta.creator);
        view.comments = self.comments.get(doc).map_or(0, BTreeSet::len);
        Some(view)
    }

    /// The comments on a post, oldest first. Each names the comment it answers, if any.
    pub fn comments(&self, post: &DocId) -> Vec<CommentView> {
        self.comments
            .get(post)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| {
                if let Some(tombstone) = self.tombstones.get(id) {
                    return Some(CommentView {
                        author_name: self.display_name(&tombstone.meta.creator),
                        meta: tombstone.meta.clone(),
                        text: String::new(),
                        retracted: Some(tombstone.clone()),
                    });
                }
                let (meta, text) = self.with_doc(id, |state| match state.content() {
                    Content::Comment(c) => Some((state.meta.clone(), c.text)),
                    _ => None,
                })??;
                Some(CommentView {
                    author_name: self.display_name(&meta.creator),
                    meta,
                    text,
                    retracted: None,
                })
            })
            .collect()
    }

    /// The feed: posts newest first by creation time (ties by id), `limit` at a time, starting
    /// after `cursor` (exclusive) if given.
    pub fn feed(&self, cursor: Option<FeedCursor>, limit: usize) -> FeedPage {
        let keys: Vec<(Timestamp, DocId)> = match cursor {
            Some(c) => self
                .posts
                .range(..(c.created_at, c.post))
                .rev()
                .take(limit + 1)
                .copied()
                .collect(),
            None => self.posts.iter().rev().take(limit + 1).copied().collect(),
        };
        let more = keys.len() > limit;
        let items: Vec<PostView> = keys
            .iter()
            .take(limit)
            .filter_map(|(_, id)| self.post(id))
            .collect();
        let next = if more {
            keys.get(limit.saturating_sub(1)).map(|(t, id)| FeedCursor {
                created_at: *t,
                post: *id,
            })
        } else {
            None
        };
        FeedPage { items, next }
    }

    /// Everyone who has signed something in this subwiki that the replica holds (a document
    /// or a change to one, a vote, a role statement), with what they did, ordered by author
    /// id. Joining a subwiki publishes nothing, so a member who has signed nothing yet is not
    /// known to anyone else. Costs one pass over the index; builds no document.
    pub fn members(&self) -> Vec<Member> {
        fn member(members: &mut BTreeMap<AuthorId, Member>, author: AuthorId) -> &mut Member {
            members.entry(author).or_insert(Member {
                author,
                posts: 0,
                documents: 0,
                votes: 0,
            })
        }
        let mut members = BTreeMap::new();
        member(&mut members, self.genesis.author());
        for index in self.docs.values() {
            for author in &index.authors {
                member(&mut members, *author).documents += 1;
            }
            if index.meta.kind == DocKind::Post {
                member(&mut members, index.meta.creator).posts += 1;
            }
        }
        for entry in self.votes().chain(self.role_statements()) {
            member(&mut members, entry.author()).votes += 1;
        }
        members.into_values().collect()
    }

    /// Feed keys (creation time, post id) of every post held: what a node merges across
    /// subwikis.
    pub fn feed_keys(&self) -> impl DoubleEndedIterator<Item = &(Timestamp, DocId)> {
        self.posts.iter()
    }

    /// Every change of a document, ordered by claimed time then entry id: who changed what,
    /// when, and whether it is part of the document.
    pub fn history(&self, doc: &DocId) -> Option<Vec<HistoryItem>> {
        self.with_doc(doc, |state| {
            let touched = state.fields_touched();
            let mut items: Vec<HistoryItem> = state
                .changes
                .iter()
                .map(|(hash, record)| {
                    let (timestamp, version) = record.first();
                    let status = state.status(hash);
                    let fields = if status == ChangeStatus::Applied {
                        touched.get(hash).cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    HistoryItem {
                        version,
                        author: record.author,
                        timestamp,
                        change: *hash,
                        status,
                        fields,
                    }
                })
                .collect();
            items.sort_by_key(|i| (i.timestamp, i.version));
            items
        })
    }

    /// A document as it read at `version`: a [`PostView::version`], or one entry id from its
    /// history (the document right after that change).
    pub fn content_at(&self, doc: &DocId, version: &Version) -> Result<Content, LocalError> {
        self.with_doc(doc, |state| {
            let heads = state.heads_of(version)?;
            contained(|| Content::read(state.meta.kind, &state.doc, Some(&heads)))
                .ok_or(LocalError::Unprocessable { doc: *doc })
        })
        .ok_or(LocalError::UnknownDocument(*doc))?
    }

    fn publish(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        payload: Payload,
    ) -> Result<Entry, LocalError> {
        let entry = Entry::sign(key, Some(self.id()), now, payload)?;
        let report = self.ingest([entry.clone()]);
        if let Some((_, e)) = report
            .rejected
            .into_iter()
            .find(|(id, _)| *id == entry.id())
        {
            return Err(e.into());
        }
        Ok(entry)
    }

    fn create(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        content: &Content,
        parent: Option<DocId>,
        reply_to: Option<DocId>,
    ) -> Result<Entry, LocalError> {
        check_size(content)?;
        let mut doc = Automerge::new().with_actor(key.actor());
        let mut tx = doc.transaction();
        automerge::transaction::Transactable::put(
            &mut tx,
            automerge::ROOT,
            "kind",
            kind_name(content.kind()),
        )?;
        content.write(&mut tx)?;
        tx.commit_with(CommitOptions::default().with_time(now.as_secs()));
        let change = doc
            .get_last_local_change()
            .ok_or(LocalError::Automerge(AutomergeError::Fail))?;
        self.publish(
            key,
            now,
            Payload::CreateDocument(CreateDocument {
                kind: content.kind(),
                parent,
                reply_to,
                change: change.raw_bytes().to_vec(),
            }),
        )
    }

    /// Changes a document so that it reads `content`: the change is the diff between the
    /// document at `base` and `content`, and is then merged with everything applied since
    /// `base`, like an edit made offline. Returns `None` if the base already read `content`.
    /// A version as base must consist of applied changes of this document
    /// ([`LocalError::UnknownVersion`] otherwise).
    pub fn edit(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        doc: DocId,
        base: &Base,
        content: &Content,
    ) -> Result<Option<Entry>, LocalError> {
        self.edit_with_message(key, now, doc, base, content, None)
    }

    /// Does again, in one new change on the view, what `key`'s author's changes to `doc` did
    /// that the view leaves out only because they were built on another author's equivocation
    /// (see the module documentation). `None` when there is nothing to rescue, or when the
    /// view already reads as the rescue would make it. Builds the document.
    pub fn rescue(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        doc: DocId,
    ) -> Result<Option<Entry>, LocalError> {
        let author = key.id();
        let plan = self
            .with_doc(&doc, |state| state.rescue_plan(&author))
            .ok_or(LocalError::UnknownDocument(doc))?;
        let Some((content, carried)) = plan else {
            return Ok(None);
        };
        let list: Vec<String> = carried.iter().map(ToString::to_string).collect();
        let message = format!("{RESCUE_PREFIX}{}", list.join(" "));
        self.edit_with_message(key, now, doc, &Base::Latest, &content, Some(message))
    }

    /// Whether `author` created or changed `doc` (from the index; builds nothing).
    pub fn contributed_to(&self, author: &AuthorId, doc: &DocId) -> bool {
        self.docs
            .get(doc)
            .is_some_and(|index| index.authors.binary_search(author).is_ok())
    }

    fn edit_with_message(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        doc: DocId,
        base: &Base,
        content: &Content,
        message: Option<String>,
    ) -> Result<Option<Entry>, LocalError> {
        check_size(content)?;
        let meta = self
            .doc_meta(&doc)
            .cloned()
            .ok_or(LocalError::UnknownDocument(doc))?;
        if meta.kind != content.kind() {
            return Err(LocalError::WrongKind {
                doc,
                actual: meta.kind,
                expected: content.kind(),
            });
        }
        if meta.kind.write_policy() == WritePolicy::Owner && key.id() != meta.creator {
            return Err(IngestError::NotOwner { doc }.into());
        }
        if !self.may_edit(&key.id(), &doc) {
            return Err(LocalError::NotTrusted { doc });
        }
        let change = self
            .with_doc(&doc, |state| -> Result<Option<Vec<u8>>, LocalError> {
                // The fork holds applied changes only (the view, or the part of it the base
                // names): an edit never depends on a change the view leaves out (a vandal's,
                // an equivocation).
                let mut fork = match base {
                    Base::Latest => state
                        .doc
                        .fork()
                        .with_actor(state.actor_for(key, |h| state.applied.contains(h))),
                    Base::At(version) => {
                        let heads = state.heads_of(version)?;
                        let closure = state.closure(&heads);
                        state
                            .doc_at(&heads)
                            .ok_or(LocalError::Unprocessable { doc })?
                            .with_actor(state.actor_for(key, |h| closure.contains(h)))
                    }
                };
                // On a copy: a panic part way leaves the view as it was.
                contained(move || {
                    let mut tx = fork.transaction();
                    content.write(&mut tx)?;
                    let mut options = CommitOptions::default().with_time(now.as_secs());
                    if let Some(message) = message {
                        options = options.with_message(message);
                    }
                    let (hash, _) = tx.commit_with(options);
                    if hash.is_none() {
                        return Ok(None);
                    }
                    let change = fork
                        .get_last_local_change()
                        .ok_or(LocalError::Automerge(AutomergeError::Fail))?;
                    Ok(Some(change.raw_bytes().to_vec()))
                })
                .unwrap_or(Err(LocalError::Unprocessable { doc }))
            })
            .ok_or(LocalError::UnknownDocument(doc))??;
        let Some(change) = change else {
            return Ok(None);
        };
        self.publish(key, now, Payload::Change(DocChange { doc, change }))
            .map(Some)
    }

    /// Creates a post; returns its create-document entry (its id is the post's id).
    pub fn create_post(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        post: PostContent,
    ) -> Result<Entry, LocalError> {
        self.create(key, now, &Content::Post(post), None, None)
    }

    /// Changes a post to read `post`, computed against `base` (a wiki edit: any member may).
    /// `None` if the base already read so.
    pub fn edit_post(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        doc: DocId,
        base: &Base,
        post: PostContent,
    ) -> Result<Option<Entry>, LocalError> {
        self.edit(key, now, doc, base, &Content::Post(post))
    }

    /// Restores a document to how it read at `version`, as a new signed change; the history
    /// keeps everything. `None` if it already reads so.
    pub fn revert(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        doc: DocId,
        version: EntryId,
    ) -> Result<Option<Entry>, LocalError> {
        let content = self.content_at(&doc, &version.into())?;
        self.edit(key, now, doc, &Base::Latest, &content)
    }

    /// Comments on a post, optionally answering another comment.
    pub fn comment(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        post: DocId,
        reply_to: Option<DocId>,
        text: &str,
    ) -> Result<Entry, LocalError> {
        let content = Content::Comment(CommentContent {
            text: text.to_owned(),
        });
        self.create(key, now, &content, Some(post), reply_to)
    }

    /// Sets this author's profile in the subwiki: edits their newest profile, or creates one.
    pub fn set_profile(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        profile: ProfileContent,
    ) -> Result<Option<Entry>, LocalError> {
        let content = Content::Profile(profile);
        match self
            .profiles
            .get(&key.id())
            .and_then(|p| p.last())
            .map(|(_, d)| *d)
        {
            Some(doc) => self.edit(key, now, doc, &Base::Latest, &content),
            None => self.create(key, now, &content, None, None).map(Some),
        }
    }

    /// Signs and ingests a moderation vote.
    pub fn vote(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        target: VoteTarget,
        value: VoteValue,
        reason: &str,
    ) -> Result<Entry, LocalError> {
        let vote = Vote {
            target,
            value,
            reason: reason.to_owned(),
        };
        self.publish(key, now, Payload::Vote(vote))
    }

    /// Signs and ingests a role statement.
    pub fn state_role(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        action: RoleAction,
        subject: AuthorId,
    ) -> Result<Entry, LocalError> {
        self.publish(key, now, Payload::Role(RoleStatement { action, subject }))
    }
}

fn kind_name(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Post => "post",
        DocKind::Comment => "comment",
        DocKind::Profile => "profile",
        DocKind::Info => "info",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use automerge::legacy::{ElementId, Key, ObjectId, Op, OpId, OpType};

    use super::*;

    /// An edit that panics inside Automerge is refused with `Unprocessable`, signs nothing and
    /// leaves the document as it was. The trigger, an increment inserted at the head of the
    /// title text (edits that replace the title's first characters then hit an assertion of
    /// Automerge's op set), is refused at validation (`EntryError::UnexpectedOperation`), and no
    /// change that validation accepts is known to make an edit panic; so the increment is given
    /// to the built document directly, past validation and ingest.
    #[test]
    fn an_edit_that_panics_inside_automerge_is_refused_as_unprocessable() {
        let alice = AuthorKey::from_secret([1; 32], [1; 8]);
        let mallory = AuthorKey::from_secret([3; 32], [3; 8]);
        let t0 = 1_700_000_000_000;
        let (mut replica, _) =
            Replica::found(&alice, Timestamp(t0), "test", "", Policy::default()).unwrap();
        let post = |title: &str| PostContent {
            title: title.into(),
            body: "Rust is a language.".into(),
            ..PostContent::default()
        };
        let created = replica
            .create_post(&alice, Timestamp(t0 + 1), post("Rust"))
            .unwrap();
        let doc = DocId::from(created.id());
        let first = created.change().unwrap().decode();
        let title = first
            .operations
            .iter()
            .zip(u64::from(first.start_op)..)
            .find(|(op, _)| {
                matches!(op.action, OpType::Make(_)) && op.key == Key::Map("title".into())
            })
            .map(|(_, counter)| OpId(counter, first.actor_id.clone()))
            .unwrap();
        let increment = automerge::ExpandedChange {
            operations: vec![Op {
                action: OpType::Increment(1),
                obj: ObjectId::Id(title),
                key: Key::Seq(ElementId::Head),
                pred: Vec::new().into(),
                insert: true,
            }],
            actor_id: mallory.actor(),
            hash: None,
            seq: 1,
            start_op: std::num::NonZeroU64::new(created.change().unwrap().max_op() + 1).unwrap(),
            time: 0,
            message: None,
            deps: replica.heads(&doc).unwrap(),
            extra_bytes: Vec::new(),
            author: None,
        };
        let increment = Change::from(increment);
        let signed = Entry::sign(
            &mallory,
            Some(replica.id()),
            Timestamp(t0 + 2),
            Payload::Change(DocChange {
                doc,
                change: increment.raw_bytes().to_vec(),
            }),
        );
        assert!(
            matches!(signed, Err(EntryError::UnexpectedOperation { .. })),
            "{signed:?}"
        );
        lock(&replica.cache)
            .get(&doc)
            .expect("the document is built")
            .doc
            .apply_changes([increment])
            .unwrap();
        let before = replica.content(&doc).unwrap();
        let held = replica.len();

        let edit = replica.edit_post(
            &alice,
            Timestamp(t0 + 3),
            doc,
            &Base::Latest,
            post("Edited."),
        );
        assert!(
            matches!(edit, Err(LocalError::Unprocessable { doc: d }) if d == doc),
            "{edit:?}"
        );
        let message = edit.unwrap_err().to_string();
        assert!(message.contains("cannot process"), "{message}");
        assert_eq!(replica.len(), held, "a failed edit signs nothing");
        assert_eq!(
            replica.content(&doc).unwrap(),
            before,
            "and changes nothing"
        );
    }
}
