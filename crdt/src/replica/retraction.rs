//! Retraction and redaction: a signed statement ([`Payload::Retract`]) that a document's
//! content be deleted everywhere.
//!
//! A statement *counts* against a document when its signer created the document (a
//! retraction), or is the founder or a moderator in the replica's roles and is not among the
//! authors the reader ignores (a redaction, see [`Replica::set_ignored`]). A document with a
//! counting statement is *purged*: its index, its entries (the create entry and every change,
//! whoever signed them) and its built document are dropped, and a [`Tombstone`] keeps what is
//! needed to refuse it in the future and to say what happened (who created it and when, the
//! statement that removed it), never its content. Entries of a purged document are refused
//! with [`IngestError::Retracted`].
//!
//! The statements themselves are kept, like votes. A statement that does not count (signed by
//! someone else, or by an ignored moderator) does nothing; one whose document has not arrived
//! yet waits for it, and the document is purged as it arrives. Which documents are purged is a
//! function of the set of entries held, the roles they give and the reader's ignored authors:
//! when roles or overrides change so that no statement counts against a tombstone any more,
//! the tombstone goes ([`IngestReport::restored`]) and the document may be fetched again.

use std::collections::BTreeSet;
use std::sync::PoisonError;

use crate::doc::DocMeta;
use crate::entry::{DocKind, Entry, Payload, Retraction, Timestamp, WritePolicy};
use crate::entry::{kind_of_tag, kind_tag};
use crate::held::{Held, HeldKind, Reader, push_links};
use crate::id::{AuthorId, DocId, EntryId};
use crate::key::AuthorKey;
use crate::moderation::{Contribution, LogItem, NotCounted, Standing, Statement};

use super::{IngestError, IngestReport, LocalError, Replica};

/// What is left of a purged document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The document's fixed facts: kind, creator, creation time, parent post.
    pub meta: DocMeta,
    /// The statement that counts against it (the earliest, by claimed time then id).
    pub by: EntryId,
    /// Its signer.
    pub signer: AuthorId,
    /// Its claimed time.
    pub at: Timestamp,
    /// Its reason.
    pub reason: String,
}

impl Tombstone {
    /// A redaction (signed by someone other than the creator) rather than a retraction.
    pub fn is_redaction(&self) -> bool {
        self.signer != self.meta.creator
    }

    /// The record's bytes, for a store: `version(1) doc(32) kind(1) creator(32) created(8)
    /// flags(1) [parent(32)] [reply_to(32)] by(32) signer(32) at(8) reason-len(u16) reason`.
    pub fn encode(&self) -> Vec<u8> {
        let reason = self.reason.as_bytes();
        let reason = reason.get(..usize::from(u16::MAX)).unwrap_or(reason);
        let mut out = Vec::with_capacity(180 + reason.len());
        out.push(1);
        out.extend_from_slice(self.meta.id.as_bytes());
        out.push(kind_tag(self.meta.kind));
        out.extend_from_slice(self.meta.creator.as_bytes());
        out.extend_from_slice(&self.meta.created_at.0.to_be_bytes());
        push_links(&mut out, self.meta.parent, self.meta.reply_to);
        out.extend_from_slice(self.by.as_bytes());
        out.extend_from_slice(self.signer.as_bytes());
        out.extend_from_slice(&self.at.0.to_be_bytes());
        let len = u16::try_from(reason.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(reason);
        out
    }

    /// Reads a record; `None` if it is not a whole one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.byte()? != 1 {
            return None;
        }
        let id = DocId::from_bytes(r.array()?);
        let kind = kind_of_tag(r.byte()?)?;
        let creator = AuthorId::from_bytes(r.array()?);
        let created_at = Timestamp(u64::from_be_bytes(r.array()?));
        let (parent, reply_to) = r.links()?;
        let by = EntryId::from_bytes(r.array()?);
        let signer = AuthorId::from_bytes(r.array()?);
        let at = Timestamp(u64::from_be_bytes(r.array()?));
        let len = usize::from(u16::from_be_bytes(r.array()?));
        let reason = String::from_utf8(r.take(len)?.to_vec()).ok()?;
        if !r.0.is_empty() {
            return None;
        }
        Some(Self {
            meta: DocMeta {
                id,
                kind,
                creator,
                created_at,
                parent,
                reply_to,
            },
            by,
            signer,
            at,
            reason,
        })
    }
}

/// A document purged by one ingest: its tombstone and the ids of the entries the replica
/// dropped (held before, or accepted earlier in the same call). The replica's owner deletes
/// them from its store and remembers the ids so as never to fetch them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// What is left of it.
    pub tombstone: Tombstone,
    /// The entries dropped.
    pub ids: Vec<EntryId>,
}

impl Replica {
    /// The documents purged in this subwiki, with what is left of each.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.tombstones.values()
    }

    /// What is left of a purged document.
    pub fn tombstone(&self, doc: &DocId) -> Option<&Tombstone> {
        self.tombstones.get(doc)
    }

    /// The retraction and redaction statements held (counting or not), oldest first.
    pub fn retractions(&self) -> impl Iterator<Item = &Entry> {
        self.retractions
            .iter()
            .filter_map(|(_, id)| self.held.get(id))
    }

    /// Gives the replica the tombstones a store kept, after [`Replica::restore`] (and after
    /// [`Replica::set_ignored`]): the documents they name were purged, their entries are gone
    /// from the store, and entries of theirs are refused from now on. Then settles every
    /// statement held: the report names documents to purge (a purge the store did not finish)
    /// and tombstones to forget (their document is held again, or no statement counts against
    /// them any more).
    pub fn restore_tombstones(&mut self, tombstones: Vec<Tombstone>) -> IngestReport {
        let mut report = IngestReport::default();
        let mut held_again = Vec::new();
        for tombstone in tombstones {
            let doc = tombstone.meta.id;
            if self.docs.contains_key(&doc) {
                held_again.push(doc);
                continue;
            }
            self.tombstones.insert(doc, tombstone);
            self.keep_in_views(doc);
            self.pending_retractions.insert(doc);
        }
        let named: Vec<DocId> = self.retracting.keys().copied().collect();
        self.pending_retractions.extend(named);
        self.settle_retractions(false, &mut report);
        // A tombstone whose document is held and stays so: the store forgets it.
        report.restored.extend(
            held_again
                .into_iter()
                .filter(|doc| !self.tombstones.contains_key(doc)),
        );
        report
    }

    /// Sets the authors whose redactions this reader does not act on (their personal
    /// overrides, the same authors whose votes they do not count). A creator's retraction of
    /// their own document always counts. Returns what the change did: documents purged now,
    /// tombstones gone.
    pub fn set_ignored(&mut self, ignored: BTreeSet<AuthorId>) -> IngestReport {
        let mut report = IngestReport::default();
        if ignored != self.ignored {
            self.ignored = ignored;
            self.settle_retractions(true, &mut report);
        }
        report
    }

    /// Whether `author` may retract (as creator) or redact (as founder or moderator) `doc`,
    /// and which: `Ok(false)` for a retraction, `Ok(true)` for a redaction.
    pub fn may_retract(&self, author: &AuthorId, doc: &DocId) -> Result<bool, LocalError> {
        if self.tombstones.contains_key(doc) {
            return Err(LocalError::AlreadyRetracted(*doc));
        }
        let meta = self
            .doc_meta(doc)
            .ok_or(LocalError::UnknownDocument(*doc))?;
        if meta.creator == *author {
            Ok(false)
        } else if self.may_redact(author) {
            Ok(true)
        } else {
            Err(LocalError::NotAllowedToRetract { doc: *doc })
        }
    }

    /// Signs and ingests a retraction (by the creator) or redaction (by the founder or a
    /// moderator) of a document; returns the entry and what it purged.
    pub fn retract(
        &mut self,
        key: &AuthorKey,
        now: Timestamp,
        doc: DocId,
        reason: &str,
    ) -> Result<(Entry, IngestReport), LocalError> {
        self.may_retract(&key.id(), &doc)?;
        let entry = Entry::sign(
            key,
            Some(self.id()),
            now,
            Payload::Retract(Retraction {
                doc,
                reason: reason.to_owned(),
            }),
        )?;
        let report = self.ingest([entry.clone()]);
        if let Some((_, e)) = report.rejected.iter().find(|(id, _)| *id == entry.id()) {
            return Err(e.clone().into());
        }
        Ok((entry, report))
    }

    /// The moderation log's items for the statements held: the one that removed a document
    /// counts; the others say why they do not.
    pub(super) fn retraction_log(&self) -> Vec<LogItem> {
        self.retractions()
            .filter_map(|e| {
                let Payload::Retract(r) = e.payload() else {
                    return None;
                };
                let (standing, contributed) = match self.tombstones.get(&r.doc) {
                    Some(t) if t.by == e.id() => {
                        let contribution = if t.is_redaction() {
                            Contribution::Redacted(r.doc)
                        } else {
                            Contribution::Retracted(r.doc)
                        };
                        (Standing::Counted, Some(contribution))
                    }
                    Some(t) => (
                        Standing::NotCounted(NotCounted::Superseded { by: t.by }),
                        None,
                    ),
                    None if !self.docs.contains_key(&r.doc) => {
                        (Standing::NotCounted(NotCounted::DocumentNotHeld), None)
                    }
                    None if self.ignored.contains(&e.author()) => {
                        (Standing::NotCounted(NotCounted::Overridden), None)
                    }
                    None => (
                        Standing::NotCounted(NotCounted::NotCreatorOrModerator),
                        None,
                    ),
                };
                Some(LogItem {
                    entry: e.id(),
                    signer: e.author(),
                    timestamp: e.timestamp(),
                    statement: Statement::Retract(r.clone()),
                    standing,
                    contributed,
                })
            })
            .collect()
    }

    fn may_redact(&self, author: &AuthorId) -> bool {
        (*author == self.founder() || self.computed_roles.moderators().contains(author))
            && !self.ignored.contains(author)
    }

    /// Notes a statement held: its document is looked at when the ingest settles.
    pub(super) fn note_retraction(&mut self, entry: &Entry) {
        if let Payload::Retract(r) = entry.payload() {
            self.retractions.insert((entry.timestamp(), entry.id()));
            self.retracting
                .entry(r.doc)
                .or_default()
                .insert((entry.timestamp(), entry.id()));
            self.pending_retractions.insert(r.doc);
        }
    }

    /// The earliest statement that counts against a document with these facts.
    fn counting(&self, meta: &DocMeta) -> Option<&Entry> {
        self.retracting
            .get(&meta.id)?
            .iter()
            .filter_map(|(_, id)| self.held.get(id))
            .find(|e| e.author() == meta.creator || self.may_redact(&e.author()))
    }

    /// Purges the documents that a counting statement names, and drops the tombstones no
    /// statement counts against any more: those named since the last settle, or every one
    /// named by a statement if `all` (the roles or the ignored authors changed).
    pub(super) fn settle_retractions(&mut self, all: bool, report: &mut IngestReport) {
        let docs: Vec<DocId> = if all {
            self.pending_retractions.clear();
            self.retracting.keys().copied().collect()
        } else {
            std::mem::take(&mut self.pending_retractions)
                .into_iter()
                .collect()
        };
        for doc in docs {
            if let Some(tombstone) = self.tombstones.get(&doc) {
                let meta = tombstone.meta.clone();
                match self.counting(&meta).map(tombstone_of(&meta)) {
                    Some(now) => {
                        self.tombstones.insert(doc, now);
                    }
                    None => {
                        self.tombstones.remove(&doc);
                        self.drop_from_views(&meta);
                        report.restored.push(doc);
                    }
                }
            } else if let Some(meta) = self.docs.get(&doc).map(|i| i.meta.clone())
                && let Some(tombstone) = self.counting(&meta).map(tombstone_of(&meta))
            {
                self.purge(tombstone, report);
            }
        }
    }

    /// Drops a document's index, entries and built document, keeping its tombstone.
    fn purge(&mut self, tombstone: Tombstone, report: &mut IngestReport) {
        let doc = tombstone.meta.id;
        let mut ids: Vec<EntryId> = Vec::new();
        if let Some(index) = self.docs.remove(&doc) {
            ids.extend(index.entries.iter().map(|(_, id)| *id));
        }
        if let Some(waiting) = self.waiting.remove(&doc) {
            ids.extend(waiting.iter().map(|w| w.held.id));
        }
        for id in &ids {
            self.purged.insert(*id, doc);
            self.ids.remove(id);
            self.held.remove(id);
            self.waiting_ids.remove(id);
            if let Some(at) = report.accepted.iter().position(|a| a == id) {
                report.accepted.remove(at);
                report.rejected.push((*id, IngestError::Retracted(doc)));
            }
        }
        // Changes waiting for one of its changes as their document: refused, as they were
        // while it was held.
        for id in ids.iter().filter(|id| **id != EntryId::from(doc)) {
            self.refuse_waiting_on(*id, report);
        }
        self.equivocators.retain(|(d, _)| *d != doc);
        if let DocKind::Profile = tombstone.meta.kind
            && let Some(profiles) = self.profiles.get_mut(&tombstone.meta.creator)
        {
            profiles.remove(&(tombstone.meta.created_at, doc));
        }
        self.cache
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&doc);
        self.tombstones.insert(doc, tombstone.clone());
        report.purged.push(Purged { tombstone, ids });
    }

    /// Keeps a purged post or comment in the feed and comment indexes, where it reads as
    /// retracted.
    fn keep_in_views(&mut self, doc: DocId) {
        let Some(meta) = self.tombstones.get(&doc).map(|t| t.meta.clone()) else {
            return;
        };
        let key = (meta.created_at, doc);
        match (meta.kind, meta.parent) {
            (DocKind::Post, _) => {
                self.posts.insert(key);
            }
            (DocKind::Comment, Some(parent)) => {
                self.comments.entry(parent).or_default().insert(key);
            }
            _ => {}
        }
    }

    /// Takes a document that is no longer purged out of the views until it arrives again.
    fn drop_from_views(&mut self, meta: &DocMeta) {
        let key = (meta.created_at, meta.id);
        match (meta.kind, meta.parent) {
            (DocKind::Post, _) => {
                self.posts.remove(&key);
            }
            (DocKind::Comment, Some(parent)) => {
                if let Some(comments) = self.comments.get_mut(&parent) {
                    comments.remove(&key);
                }
            }
            _ => {}
        }
    }

    /// Whether an entry of a purged document would have been held had the document been: a
    /// change to a document only its creator may change, by someone else, would not.
    pub(super) fn would_have_held(&self, held: &Held, doc: &DocId) -> bool {
        match (self.tombstones.get(doc), held.what) {
            (Some(t), HeldKind::Change { .. }) => {
                t.meta.kind.write_policy() != WritePolicy::Owner || held.author == t.meta.creator
            }
            _ => true,
        }
    }

    /// Refuses an entry of a purged document, and a change naming as its document a change
    /// that was purged (refused as it was while that change was held).
    pub(super) fn check_not_purged(&self, doc: &DocId) -> Result<(), IngestError> {
        if self.tombstones.contains_key(doc) {
            return Err(IngestError::Retracted(*doc));
        }
        match self.purged.get(&EntryId::from(*doc)) {
            Some(of) if of != doc => Err(IngestError::NotADocument(*doc)),
            _ => Ok(()),
        }
    }
}

fn tombstone_of(meta: &DocMeta) -> impl Fn(&Entry) -> Tombstone + '_ {
    move |statement| Tombstone {
        meta: meta.clone(),
        by: statement.id(),
        signer: statement.author(),
        at: statement.timestamp(),
        reason: match statement.payload() {
            Payload::Retract(r) => r.reason.clone(),
            _ => String::new(),
        },
    }
}
