//! The initiator's side: one catch-up session with one peer about one subwiki.
//!
//! A session goes through three phases, one request in flight at a time:
//!
//! 1. **Reconcile**: negentropy rounds until the responder has nothing more to say. Each
//!    round's response yields ids we lack (with their rank, see [`super::reconcile`]) and ids
//!    the peer lacks.
//! 2. **Fetch**: the ids we lack, sorted newest first, in batches of [`Config::fetch_batch`].
//!    Each batch's entries are validated; valid ones are handed out with [`Output::Store`].
//! 3. **Push**: the ids the peer lacks, newest first, are asked of the driver
//!    ([`Output::NeedEntries`], [`Config::push_batch`] at a time); what it
//!    [`provides`](Session::provide) is sent in batches of at most [`MAX_BATCH_ENTRIES`] entries
//!    and [`MAX_BATCH_BYTES`] bytes.
//!
//! A protocol violation ends the session with a [`ProtoError`]. Entries that fail validation
//! end it with [`Output::Invalid`] then [`Output::Done`]; nothing of that batch is stored.

use std::collections::{HashMap, HashSet, VecDeque};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reconciling,
    Transfer,
    Finished,
}

#[derive(Debug)]
enum InFlight {
    Reconcile,
    Fetch(Vec<EntryId>),
    Push(usize),
}

impl InFlight {
    fn expects(&self) -> &'static str {
        match self {
            InFlight::Reconcile => "reconcile",
            InFlight::Fetch(_) => "entries",
            InFlight::Push(_) => "accepted",
        }
    }
}

/// The initiator of catch-up with one peer about one subwiki: a state machine without IO.
pub struct Session<V: Verify = Signed> {
    subwiki: SubwikiId,
    config: Config,
    verifier: V,
    snapshot: Snapshot,
    negentropy: Negentropy<'static, Snapshot>,
    phase: Phase,
    in_flight: Option<InFlight>,
    round: u32,
    stats: Stats,
    /// Ids we lack, as learnt during reconciliation, with their rank.
    need: HashMap<[u8; 32], Rank>,
    /// Ids the peer lacks, as learnt during reconciliation.
    have: HashSet<[u8; 32]>,
    /// Ids still to fetch, newest first.
    to_fetch: VecDeque<EntryId>,
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
            .field("phase", &self.phase)
            .field("in_flight", &self.in_flight.as_ref().map(InFlight::expects))
            .field("to_fetch", &self.to_fetch.len())
            .field("to_push", &self.to_push.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
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
        let mut session = Self {
            subwiki,
            config,
            verifier,
            snapshot: items,
            negentropy,
            phase: Phase::Reconciling,
            in_flight: Some(InFlight::Reconcile),
            round: 0,
            stats: Stats::default(),
            need: HashMap::new(),
            have: HashSet::new(),
            to_fetch: VecDeque::new(),
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
        self.phase == Phase::Finished
    }

    /// Takes the peer's response to the request in flight. `now` is the local clock, for
    /// validating entries. An error ends the session: the peer broke the protocol (or refused).
    pub fn handle(
        &mut self,
        response: Response,
        now: Timestamp,
    ) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        if self.phase == Phase::Finished {
            return Err(ProtoError::Finished);
        }
        let Some(in_flight) = self.in_flight.take() else {
            return self.fail(ProtoError::Unexpected {
                expected: "no response",
                got: response.kind(),
            });
        };
        let len = response.encoded_len() as u64;
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(len);
        self.stats.rounds = self.stats.rounds.saturating_add(1);
        let mut out = Vec::new();
        let result = match (in_flight, response) {
            (_, Response::Refused { reason }) => Err(ProtoError::Refused { reason }),
            (InFlight::Reconcile, Response::Reconcile { payload }) => {
                self.stats.reconcile_bytes = self.stats.reconcile_bytes.saturating_add(len);
                self.stats.reconcile_rounds = self.stats.reconcile_rounds.saturating_add(1);
                self.on_reconcile(payload, &mut out)
            }
            (InFlight::Fetch(requested), Response::Entries { entries }) => {
                self.on_entries(&requested, entries, now, &mut out)
            }
            (InFlight::Push(sent), Response::Accepted { count }) => {
                let accepted = usize::try_from(count).unwrap_or(usize::MAX).min(sent);
                self.stats.pushed = self.stats.pushed.saturating_add(accepted as u64);
                self.next(&mut out);
                Ok(())
            }
            (in_flight, response) => Err(ProtoError::Unexpected {
                expected: in_flight.expects(),
                got: response.kind(),
            }),
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => self.fail(e),
        }
    }

    /// Hands over the bytes of the entries asked for by the last [`Output::NeedEntries`]
    /// (those the store still has, in any order). They are pushed to the peer.
    pub fn provide(&mut self, entries: Vec<Vec<u8>>) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        if self.phase == Phase::Finished {
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
        if self.in_flight.is_none() {
            self.next(&mut out);
        }
        Ok(out)
    }

    fn fail(&mut self, error: ProtoError) -> Result<Vec<Output<V::Entry>>, ProtoError> {
        self.phase = Phase::Finished;
        self.in_flight = None;
        self.awaiting_entries = false;
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
            if self.need.contains_key(&id) {
                continue;
            }
            if self.need.len() >= self.config.max_missing {
                return Err(ProtoError::TooManyMissing {
                    max: self.config.max_missing,
                });
            }
            // Every id negentropy reports missing came in one of this message's id lists.
            let rank = ranks.get(&id).copied().unwrap_or_default();
            self.need.insert(id, rank);
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
                self.in_flight = Some(InFlight::Reconcile);
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
        self.phase = Phase::Transfer;
        let mut have = Vec::with_capacity(self.have.len());
        if !self.need.is_empty() || !self.have.is_empty() {
            // One pass over the local set: find the times of the ids the peer lacks, and drop
            // ids we hold from the ones to fetch (a hostile peer could list them).
            for (time, id) in self.snapshot.iter() {
                self.need.remove(id.as_bytes());
                if self.have.contains(id.as_bytes()) {
                    have.push((time, id));
                }
            }
        }
        let mut need: Vec<(Rank, [u8; 32])> =
            self.need.drain().map(|(id, rank)| (rank, id)).collect();
        need.sort_unstable_by(|a, b| b.cmp(a));
        self.to_fetch = need
            .into_iter()
            .map(|(_, id)| EntryId::from_bytes(id))
            .collect();
        have.sort_unstable_by(|a, b| b.cmp(a));
        self.to_push = have.into_iter().map(|(_, id)| id).collect();
        self.have = HashSet::new();
        self.need = HashMap::new();
        if !self.to_push.is_empty() {
            self.ask_for_entries(out);
        }
        self.next(out);
    }

    fn on_entries(
        &mut self,
        requested: &[EntryId],
        entries: Vec<Vec<u8>>,
        now: Timestamp,
        out: &mut Vec<Output<V::Entry>>,
    ) -> Result<(), ProtoError> {
        if entries.len() > requested.len() {
            return Err(ProtoError::BatchTooLarge {
                what: "entries",
                got: entries.len(),
                max: requested.len(),
            });
        }
        let total: usize = entries.iter().map(Vec::len).sum();
        if total > MAX_BATCH_BYTES {
            return Err(ProtoError::BatchTooLarge {
                what: "bytes",
                got: total,
                max: MAX_BATCH_BYTES,
            });
        }
        let mut wanted: HashSet<EntryId> = requested.iter().copied().collect();
        let mut valid = Vec::with_capacity(entries.len());
        let mut invalid = 0usize;
        let mut first_error = None;
        for bytes in &entries {
            match self.verifier.verify(bytes, now) {
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
            self.phase = Phase::Finished;
            out.push(Output::Done(self.stats));
            return Ok(());
        }
        if !valid.is_empty() {
            // The responder stops at its byte limit: ask again for what it did not send, as
            // long as each round makes progress (so this ends).
            for id in requested.iter().rev() {
                if wanted.contains(id) {
                    self.to_fetch.push_front(*id);
                }
            }
            self.stats.fetched = self.stats.fetched.saturating_add(valid.len() as u64);
            out.push(Output::Store(valid));
        }
        self.next(out);
        Ok(())
    }

    fn ask_for_entries(&mut self, out: &mut Vec<Output<V::Entry>>) {
        let n = self.config.push_batch.min(self.to_push.len());
        let ids: Vec<EntryId> = self.to_push.drain(..n).collect();
        self.awaiting_entries = true;
        out.push(Output::NeedEntries(ids));
    }

    /// Sends the next request, asks for entries, or ends the session.
    fn next(&mut self, out: &mut Vec<Output<V::Entry>>) {
        if !self.to_fetch.is_empty() {
            let n = self.config.fetch_batch.min(self.to_fetch.len());
            let ids: Vec<EntryId> = self.to_fetch.drain(..n).collect();
            self.in_flight = Some(InFlight::Fetch(ids.clone()));
            let request = Request::Fetch {
                subwiki: self.subwiki,
                ids,
            };
            self.send(request, out);
            return;
        }
        if let Some(entries) = self.push_queue.pop_front() {
            self.in_flight = Some(InFlight::Push(entries.len()));
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
        self.phase = Phase::Finished;
        out.push(Output::Done(self.stats));
    }
}
