//! The initiator's side: one catch-up session with one peer about one subwiki.
//!
//! A session has two lanes of requests: one reconciliation round in flight, and up to
//! [`Config::fetches_in_flight`] fetches (or one push) alongside:
//!
//! 1. **Reconcile**: negentropy rounds until the responder has nothing more to say. Each
//!    round's response yields ids we lack (with their rank, see [`super::reconcile`]) and ids
//!    the peer lacks. Items are ordered newest first ([`Snapshot`]), so the first rounds name
//!    the newest entries.
//! 2. **Transfer**, alongside: the ids we lack are fetched as soon as a round names them,
//!    newest first, in batches of [`Config::fetch_batch`], while reconciliation goes on; with
//!    two fetches in flight the peer reads the next batch while this side checks the last. Each
//!    batch's entries are validated; valid ones are handed out with [`Output::Store`]. Once
//!    reconciliation is over and nothing is left to fetch, the ids the peer lacks, newest first,
//!    are asked of the driver ([`Output::NeedEntries`], [`Config::push_batch`] at a time); what
//!    it [`provides`](Session::provide) is pushed in batches of at most [`MAX_BATCH_ENTRIES`]
//!    entries and [`MAX_BATCH_BYTES`] bytes.
//!
//! Sessions of one subwiki with several peers can share [`Claims`]: an id one session is
//! fetching, or has fetched, is not fetched by another, so the work is split across the peers
//! instead of every peer sending the whole difference.
//!
//! A protocol violation ends the session with a [`ProtoError`]. Entries that fail validation
//! end it with [`Output::Invalid`] then [`Output::Done`]; nothing of that batch is stored.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use agora_crdt::limits::MAX_ENTRY_BYTES;
use agora_crdt::{Entry, EntryId, SubwikiId, Timestamp};
use negentropy::Negentropy;

use super::reconcile::{Rank, guarded, scan};
use super::{
    Config, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_RECONCILE_PAYLOAD, ProtoError, Rejection,
    Request, Response, Signed, Snapshot, Stats, Verify,
};

/// What the driver must do after a call into a [`Session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<E = Entry> {
    /// Send this request to the peer and pass its response to [`Session::handle`].
    Send(Request),
    /// Store these entries: they were asked for, are valid and belong to the subwiki.
    Store(Vec<E>),
    /// The peer sent entries that fail validation or belong elsewhere: penalise it. Nothing of
    /// that batch was stored, and the session ends.
    Invalid {
        /// How many entries of the batch were refused.
        count: usize,
        /// The first reason.
        first_error: Rejection,
    },
    /// The peer lacks these entries: load them from the store (those still there) and pass
    /// their bytes to [`Session::provide`], which pushes them. Always answer, with an empty
    /// list if none could be loaded; the session waits for it.
    NeedEntries(Vec<EntryId>),
    /// The session is over; nothing more will be sent.
    Done(Stats),
}

/// The entries of an `Entries` response, checked away from the session: validation (decoding,
/// Automerge, signature) is most of the work of a catch-up, and a driver may run it on other
/// threads, then hand the result to [`Session::handle_checked`].
#[derive(Debug)]
pub struct Checked<E = Entry> {
    /// The response's encoded length, for the statistics.
    encoded_len: usize,
    /// How many entries came, and their bytes.
    count: usize,
    bytes: usize,
    /// Each entry checked, in order; empty when the batch is over the limits (then nothing is
    /// checked: the session refuses the batch as a whole).
    results: Vec<Result<E, agora_crdt::EntryError>>,
}

impl<E> Checked<E> {
    /// Checks the entries of a response with `verifier`; `encoded_len` is the response's
    /// encoded length, `now` the local clock. A batch over [`MAX_BATCH_ENTRIES`] entries or
    /// [`MAX_BATCH_BYTES`] bytes is not checked at all.
    pub fn check<V: Verify<Entry = E>>(
        verifier: &V,
        entries: &[Vec<u8>],
        encoded_len: usize,
        now: Timestamp,
    ) -> Self {
        let bytes: usize = entries.iter().map(Vec::len).sum();
        let over = entries.len() > MAX_BATCH_ENTRIES || bytes > MAX_BATCH_BYTES;
        let results = if over {
            Vec::new()
        } else {
            entries.iter().map(|b| verifier.verify(b, now)).collect()
        };
        Self {
            encoded_len,
            count: entries.len(),
            bytes,
            results,
        }
    }

    /// Joins checks of consecutive parts of one response (checked on several threads), in
    /// order.
    pub fn join(parts: Vec<Self>, encoded_len: usize) -> Self {
        let mut joined = Self {
            encoded_len,
            count: 0,
            bytes: 0,
            results: Vec::new(),
        };
        for part in parts {
            joined.count += part.count;
            joined.bytes += part.bytes;
            joined.results.extend(part.results);
        }
        joined
    }
}

/// Who fetches which id, shared by the sessions of one subwiki with different peers.
///
/// A session claims an id before it asks for it; an id claimed by another session is left to
/// that session (and tried again at the end, in case that one failed), an id already fetched by
/// any session is not asked for again. A session's claims are released when it ends, however it
/// ends (it is dropped). Cheap to clone: the clones share one set.
#[derive(Clone, Default)]
pub struct Claims {
    inner: Arc<Mutex<ClaimsInner>>,
}

#[derive(Default)]
struct ClaimsInner {
    next_session: u64,
    /// Ids being fetched, by the session fetching them.
    fetching: HashMap<[u8; 32], u64>,
    /// Ids fetched (and handed over to store) by any session.
    fetched: HashSet<[u8; 32]>,
}

/// What [`Claims::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Ours to fetch.
    Ours,
    /// Another session is fetching it.
    Taken,
    /// Already fetched.
    Fetched,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("Claims")
            .field("fetching", &inner.fetching.len())
            .field("fetched", &inner.fetched.len())
            .finish()
    }
}

impl Claims {
    /// An empty set of claims.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, ClaimsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ids being fetched now, by all sessions.
    pub fn fetching(&self) -> usize {
        self.lock().fetching.len()
    }

    /// Ids fetched so far, by all sessions.
    pub fn fetched(&self) -> usize {
        self.lock().fetched.len()
    }

    fn join(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_session = inner.next_session.wrapping_add(1);
        inner.next_session
    }

    fn claim(&self, session: u64, id: &EntryId) -> Claim {
        let mut inner = self.lock();
        if inner.fetched.contains(id.as_bytes()) {
            return Claim::Fetched;
        }
        match inner.fetching.entry(*id.as_bytes()) {
            std::collections::hash_map::Entry::Occupied(o) if *o.get() != session => Claim::Taken,
            std::collections::hash_map::Entry::Occupied(_) => Claim::Ours,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(session);
                Claim::Ours
            }
        }
    }

    fn done(&self, ids: impl IntoIterator<Item = EntryId>) {
        let mut inner = self.lock();
        for id in ids {
            inner.fetching.remove(id.as_bytes());
            inner.fetched.insert(*id.as_bytes());
        }
    }

    fn release(&self, session: u64, ids: impl IntoIterator<Item = EntryId>) {
        let mut inner = self.lock();
        for id in ids {
            if inner.fetching.get(id.as_bytes()) == Some(&session) {
                inner.fetching.remove(id.as_bytes());
            }
        }
    }

    fn release_all(&self, session: u64) {
        self.lock().fetching.retain(|_, s| *s != session);
    }
}

/// The initiator of catch-up with one peer about one subwiki: a state machine without IO.
pub struct Session<V: Verify = Signed> {
    subwiki: SubwikiId,
    config: Config,
    verifier: V,
    snapshot: Snapshot,
    negentropy: Negentropy<'static, Snapshot>,
    /// A reconciliation request is in flight.
    reconciling: bool,
    /// Reconciliation is over: every id either side lacks is known.
    reconciled: bool,
    finished: bool,
    /// The fetches in flight, oldest first: the ids of each, with their ranks.
    fetches: Vec<Vec<(Rank, EntryId)>>,
    /// The push in flight: how many entries it carries.
    pushing: Option<usize>,
    round: u32,
    stats: Stats,
    /// Ids we lack that reconciliation named so far (to count them and drop repeats).
    named: HashSet<[u8; 32]>,
    /// Ids the peer lacks, as learnt during reconciliation.
    have: HashSet<[u8; 32]>,
    /// Ids still to fetch, by rank: newest first.
    to_fetch: BTreeMap<Rank, EntryId>,
    /// Ids another session was fetching when their turn came; tried again at the end.
    deferred: Vec<(Rank, EntryId)>,
    /// The sessions this one shares its fetches with, and its number among them.
    claims: Claims,
    claimant: u64,
    /// Ids still to ask the driver for, newest first.
    to_push: VecDeque<EntryId>,
    /// An [`Output::NeedEntries`] is waiting for [`Session::provide`].
    awaiting_entries: bool,
    /// Push batches ready to send.
    push_queue: VecDeque<Vec<Vec<u8>>>,
}

impl<V: Verify> std::fmt::Debug for Session<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("subwiki", &self.subwiki)
            .field("reconciled", &self.reconciled)
            .field("finished", &self.finished)
            .field("to_fetch", &self.to_fetch.len())
            .field("to_push", &self.to_push.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<V: Verify> Drop for Session<V> {
    fn drop(&mut self) {
        self.claims.release_all(self.claimant);
    }
}

impl Session {
    /// Starts catch-up of `subwiki`, whose local items are `items`; returns the session and
    /// the first request to send. Received entries are checked with [`agora_crdt::validate`].
    pub fn start(
        subwiki: SubwikiId,
        items: Snapshot,
        config: Config,
    ) -> Result<(Self, Request), ProtoError> {
        Self::with_verifier(subwiki, items, config, Signed)
    }
}

impl<V: Verify> Session<V> {
    /// [`Session::start`] with another check of received entries.
    pub fn with_verifier(
        subwiki: SubwikiId,
        items: Snapshot,
        config: Config,
        verifier: V,
    ) -> Result<(Self, Request), ProtoError> {
        config.check()?;
        let mut negentropy =
            guarded(|| Negentropy::owned(items.clone(), config.frame_size_limit as u64))?;
        let payload = guarded(|| negentropy.initiate())?;
        let claims = Claims::new();
        let claimant = claims.join();
        let mut session = Self {
            subwiki,
            config,
            verifier,
            snapshot: items,
            negentropy,
            reconciling: true,
            reconciled: false,
            finished: false,
            fetches: Vec::new(),
            pushing: None,
            round: 0,
            stats: Stats::default(),
            named: HashSet::new(),
            have: HashSet::new(),
            to_fetch: BTreeMap::new(),
            deferred: Vec::new(),
            claims,
            claimant,
            to_push: VecDeque::new(),
            awaiting_entries: false,
            push_queue: VecDeque::new(),
        };
        let request = Request::Reconcile {
            subwiki,
            round: 0,
            payload,
        };
        session.count_sent(&request);
        Ok((session, request))
    }

    /// Shares fetches with the other sessions that hold a clone of `claims` (sessions of the
    /// same subwiki with other peers). Call it before the first response.
    pub fn share(&mut self, claims: &Claims) {
        self.claims.release_all(self.claimant);
        self.claims = claims.clone();
        self.claimant = claims.join();
    }

    /// The subwiki being caught up.
    pub fn subwiki(&self) -> SubwikiId {
        self.subwiki
    }

    /// What the session has cost so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True once the session has ended, by [`Output::Done`] or by an error.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True while reconciliation goes on (more ids to fetch may still be named).
    pub fn is_reconciling(&self) -> bool {
        !self.reconciled && !self.finished
    }

    /// Ids named so far that are not fetched yet (being fetched included).
    pub fn remaining(&self) -> usize {
        let in_flight: usize = self.fetches.iter().map(Vec::len).sum();
        self.to_fetch
            .len()
            .saturating_add(self.deferred.len())
            .saturating_add(in_flight)
    }

    /// Takes the peer's response to one of the requests in flight. `now` is the local clock,
    /// for validating entries. An error ends the session: the peer broke the protocol (or
    /// refused). With several fetches in flight, entries are taken as the answer to the oldest;
    /// a driver whose responses may come out of order uses [`Session::handle_reply`].
    pub fn handle(
        &mut self,
        response: Response,
        now: Timestamp,
    ) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        self.handle_reply(None, response, now)
    }

    /// [`Session::handle`], told which request `response` answers: `fetch` is the
    /// [`Request::fetch_key`] of that request (`None` for the others).
    pub fn handle_reply(
        &mut self,
        fetch: Option<EntryId>,
        response: Response,
        now: Timestamp,
    ) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        if self.finished {
            return Err(ProtoError::Finished);
        }
        let len = response.encoded_len() as u64;
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(len);
        self.stats.rounds = self.stats.rounds.saturating_add(1);
        let mut out = Vec::new();
        let answered = self.answered(fetch);
        let result = match (response, answered) {
            (Response::Refused { reason }, _) => Err(ProtoError::Refused { reason }),
            (Response::Reconcile { payload }, _) if self.reconciling => {
                self.reconciling = false;
                self.stats.reconcile_bytes = self.stats.reconcile_bytes.saturating_add(len);
                self.stats.reconcile_rounds = self.stats.reconcile_rounds.saturating_add(1);
                self.on_reconcile(payload, &mut out)
            }
            (Response::Entries { entries }, Some(at)) => {
                let requested = self.fetches.remove(at);
                let checked = Checked::check(&self.verifier, &entries, len as usize, now);
                self.on_entries(&requested, checked, &mut out)
            }
            (Response::Accepted { count }, _) if self.pushing.is_some() => {
                if let Some(sent) = self.pushing.take() {
                    let accepted = usize::try_from(count).unwrap_or(usize::MAX).min(sent);
                    self.stats.pushed = self.stats.pushed.saturating_add(accepted as u64);
                }
                Ok(())
            }
            (response, _) => Err(ProtoError::Unexpected {
                expected: self.expects(),
                got: response.kind(),
            }),
        };
        match result {
            Ok(()) => {
                self.next(&mut out);
                Ok(out)
            }
            Err(e) => self.fail(e),
        }
    }

    /// Takes the entries of the peer's response to a fetch, checked by the driver with
    /// [`Checked::check`] (on another thread, say); `fetch` is as for
    /// [`Session::handle_reply`]. The same as passing the response to `handle_reply`.
    pub fn handle_checked(
        &mut self,
        fetch: Option<EntryId>,
        checked: Checked<V::Entry>,
    ) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        if self.finished {
            return Err(ProtoError::Finished);
        }
        self.stats.bytes_received = self
            .stats
            .bytes_received
            .saturating_add(checked.encoded_len as u64);
        self.stats.rounds = self.stats.rounds.saturating_add(1);
        let mut out = Vec::new();
        let result = match self.answered(fetch) {
            Some(at) => {
                let requested = self.fetches.remove(at);
                self.on_entries(&requested, checked, &mut out)
            }
            None => Err(ProtoError::Unexpected {
                expected: self.expects(),
                got: "entries",
            }),
        };
        match result {
            Ok(()) => {
                self.next(&mut out);
                Ok(out)
            }
            Err(e) => self.fail(e),
        }
    }

    /// The fetch in flight a response answers: the one whose key is `fetch`, or the oldest.
    fn answered(&self, fetch: Option<EntryId>) -> Option<usize> {
        match fetch {
            Some(key) => self
                .fetches
                .iter()
                .position(|f| f.first().map(|(_, id)| *id) == Some(key)),
            None => (!self.fetches.is_empty()).then_some(0),
        }
    }

    /// What the requests in flight expect, for errors.
    fn expects(&self) -> &'static str {
        if self.reconciling {
            "reconcile"
        } else if !self.fetches.is_empty() {
            "entries"
        } else if self.pushing.is_some() {
            "accepted"
        } else {
            "no response"
        }
    }

    /// Hands over the bytes of the entries asked for by the last [`Output::NeedEntries`]
    /// (those the store still has, in any order). They are pushed to the peer.
    pub fn provide(&mut self, entries: Vec<Vec<u8>>) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        if self.finished {
            return Err(ProtoError::Finished);
        }
        if !self.awaiting_entries {
            return Err(ProtoError::NotAwaitingEntries);
        }
        self.awaiting_entries = false;
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        for entry in entries {
            if entry.is_empty() || entry.len() > MAX_ENTRY_BYTES {
                continue;
            }
            if batch.len() == MAX_BATCH_ENTRIES
                || batch_bytes.saturating_add(entry.len()) > MAX_BATCH_BYTES
            {
                self.push_queue.push_back(std::mem::take(&mut batch));
                batch_bytes = 0;
            }
            batch_bytes = batch_bytes.saturating_add(entry.len());
            batch.push(entry);
        }
        if !batch.is_empty() {
            self.push_queue.push_back(batch);
        }
        let mut out = Vec::new();
        self.next(&mut out);
        Ok(out)
    }

    fn fail(&mut self, error: ProtoError) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        self.finished = true;
        self.reconciling = false;
        self.fetches.clear();
        self.pushing = None;
        self.awaiting_entries = false;
        self.claims.release_all(self.claimant);
        Err(error)
    }

    fn count_sent(&mut self, request: &Request) {
        let len = request.encoded_len() as u64;
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(len);
        if let Request::Reconcile { .. } = request {
            self.stats.reconcile_bytes = self.stats.reconcile_bytes.saturating_add(len);
        }
    }

    fn send(&mut self, request: Request, out: &mut Vec<Output<V::Entry>>) {
        self.count_sent(&request);
        out.push(Output::Send(request));
    }

    fn on_reconcile(
        &mut self,
        payload: Option<Vec<u8>>,
        out: &mut Vec<Output<V::Entry>>,
    ) -> Result<(), ProtoError> {
        let Some(payload) = payload else {
            self.finish_reconcile(out);
            return Ok(());
        };
        if payload.len() > MAX_RECONCILE_PAYLOAD {
            return Err(ProtoError::FrameTooLarge {
                len: payload.len(),
                max: MAX_RECONCILE_PAYLOAD,
            });
        }
        let mut ranks = HashMap::new();
        scan(&payload, |rank, id| {
            ranks.insert(id, rank);
        })?;
        let mut have = Vec::new();
        let mut need = Vec::new();
        let negentropy = &mut self.negentropy;
        let next = guarded(|| negentropy.reconcile_with_ids(&payload, &mut have, &mut need))?;
        self.have.extend(have.iter().map(|id| id.to_bytes()));
        for id in need {
            let id = id.to_bytes();
            if !self.named.insert(id) {
                continue;
            }
            if self.named.len() > self.config.max_missing {
                return Err(ProtoError::TooManyMissing {
                    max: self.config.max_missing,
                });
            }
            let id = EntryId::from_bytes(id);
            // A hostile peer could list, under a wrong bound, ids we hold.
            if self.snapshot.contains_id(&id) {
                continue;
            }
            // Every id negentropy reports missing came in one of this message's id lists.
            let rank = ranks.get(id.as_bytes()).copied().unwrap_or_default();
            self.to_fetch.insert(rank, id);
        }
        match next {
            None => {
                self.finish_reconcile(out);
                Ok(())
            }
            Some(message) => {
                if message.len() > self.config.frame_size_limit {
                    return Err(ProtoError::FrameTooLarge {
                        len: message.len(),
                        max: self.config.frame_size_limit,
                    });
                }
                self.round = self.round.saturating_add(1);
                if self.round >= self.config.max_rounds {
                    return Err(ProtoError::TooManyRounds {
                        max: self.config.max_rounds,
                    });
                }
                self.reconciling = true;
                let request = Request::Reconcile {
                    subwiki: self.subwiki,
                    round: self.round,
                    payload: message,
                };
                self.send(request, out);
                Ok(())
            }
        }
    }

    fn finish_reconcile(&mut self, out: &mut Vec<Output<V::Entry>>) {
        self.reconciled = true;
        self.named = HashSet::new();
        if !self.have.is_empty() {
            // One pass over the local set, newest first: the ids the peer lacks, in order.
            self.to_push = self
                .snapshot
                .iter()
                .filter(|(_, id)| self.have.contains(id.as_bytes()))
                .map(|(_, id)| id)
                .collect();
        }
        self.have = HashSet::new();
        if !self.to_push.is_empty() && self.to_fetch.is_empty() && self.deferred.is_empty() {
            self.ask_for_entries(out);
        }
    }

    fn on_entries(
        &mut self,
        requested: &[(Rank, EntryId)],
        checked: Checked<V::Entry>,
        out: &mut Vec<Output<V::Entry>>,
    ) -> Result<(), ProtoError> {
        if checked.count > requested.len() {
            return Err(ProtoError::BatchTooLarge {
                what: "entries",
                got: checked.count,
                max: requested.len(),
            });
        }
        if checked.bytes > MAX_BATCH_BYTES {
            return Err(ProtoError::BatchTooLarge {
                what: "bytes",
                got: checked.bytes,
                max: MAX_BATCH_BYTES,
            });
        }
        let mut wanted: HashSet<EntryId> = requested.iter().map(|(_, id)| *id).collect();
        let mut valid = Vec::with_capacity(checked.count);
        let mut invalid = 0usize;
        let mut first_error = None;
        for result in checked.results {
            match result {
                Ok(entry) => {
                    let id = self.verifier.id(&entry);
                    if !wanted.remove(&id) {
                        return Err(ProtoError::NotRequested { id });
                    }
                    let actual = self.verifier.subwiki(&entry);
                    if actual == self.subwiki {
                        valid.push(entry);
                    } else {
                        invalid += 1;
                        first_error.get_or_insert(Rejection::WrongSubwiki {
                            id,
                            expected: self.subwiki,
                            actual,
                        });
                    }
                }
                // Claimed time ahead of our clock: not acceptable yet, fetched again next time.
                Err(e) if e.is_retriable() => {}
                Err(e) => {
                    invalid += 1;
                    first_error.get_or_insert(Rejection::Entry(e));
                }
            }
        }
        if let Some(first_error) = first_error {
            self.stats.invalid = self.stats.invalid.saturating_add(invalid as u64);
            out.push(Output::Invalid {
                count: invalid,
                first_error,
            });
            self.finished = true;
            self.reconciling = false;
            self.claims.release_all(self.claimant);
            out.push(Output::Done(self.stats));
            return Ok(());
        }
        let received = requested
            .iter()
            .filter(|(_, id)| !wanted.contains(id))
            .map(|(_, id)| *id);
        self.claims.done(received);
        if valid.is_empty() {
            // Nothing came: the peer no longer has them (or they are not valid yet). Not asked
            // again in this session, so it ends.
            self.claims.release(self.claimant, wanted);
        } else {
            // The responder stops at its byte limit: ask again for what it did not send, as
            // long as each round makes progress (so this ends).
            for (rank, id) in requested {
                if wanted.contains(id) {
                    self.to_fetch.insert(*rank, *id);
                }
            }
            self.stats.fetched = self.stats.fetched.saturating_add(valid.len() as u64);
            out.push(Output::Store(valid));
        }
        Ok(())
    }

    fn ask_for_entries(&mut self, out: &mut Vec<Output<V::Entry>>) {
        let n = self.config.push_batch.min(self.to_push.len());
        let ids: Vec<EntryId> = self.to_push.drain(..n).collect();
        self.awaiting_entries = true;
        out.push(Output::NeedEntries(ids));
    }

    /// The next ids to fetch, newest first, that no other session is fetching or has fetched.
    fn fetch_batch(&mut self) -> Vec<(Rank, EntryId)> {
        let mut batch = Vec::new();
        while batch.len() < self.config.fetch_batch {
            let Some((rank, id)) = self.to_fetch.pop_first() else {
                break;
            };
            match self.claims.claim(self.claimant, &id) {
                Claim::Ours => batch.push((rank, id)),
                Claim::Taken => self.deferred.push((rank, id)),
                Claim::Fetched => {}
            }
        }
        if batch.is_empty() && self.reconciled && !self.deferred.is_empty() {
            // Last: what other sessions were fetching. Those they fetched are done; those they
            // gave up (a session that failed releases its claims) are ours; those they are
            // still fetching are left to them.
            for (rank, id) in std::mem::take(&mut self.deferred) {
                if batch.len() < self.config.fetch_batch
                    && self.claims.claim(self.claimant, &id) == Claim::Ours
                {
                    batch.push((rank, id));
                }
            }
        }
        batch
    }

    /// Sends what can be sent now, or ends the session.
    fn next(&mut self, out: &mut Vec<Output<V::Entry>>) {
        if self.finished || self.pushing.is_some() {
            return;
        }
        while self.fetches.len() < self.config.fetches_in_flight {
            let batch = self.fetch_batch();
            if batch.is_empty() {
                break;
            }
            let ids = batch.iter().map(|(_, id)| *id).collect();
            self.fetches.push(batch);
            let request = Request::Fetch {
                subwiki: self.subwiki,
                ids,
            };
            self.send(request, out);
        }
        if !self.fetches.is_empty() || !self.reconciled {
            // Fetches are in flight, or reconciliation goes on and more ids may come.
            return;
        }
        if let Some(entries) = self.push_queue.pop_front() {
            self.pushing = Some(entries.len());
            let request = Request::Push {
                subwiki: self.subwiki,
                entries,
            };
            self.send(request, out);
            // Let the driver load the next batch while this one travels.
            if self.push_queue.is_empty() && !self.awaiting_entries && !self.to_push.is_empty() {
                self.ask_for_entries(out);
            }
            return;
        }
        if self.awaiting_entries {
            return;
        }
        if !self.to_push.is_empty() {
            self.ask_for_entries(out);
            return;
        }
        self.finished = true;
        self.claims.release_all(self.claimant);
        out.push(Output::Done(self.stats));
    }
}
