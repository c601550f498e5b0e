//! Drives [`crate::proto`] sessions over the request-response protocol: runs catch-up sessions
//! with peers, answers peers' requests with a [`proto::Responder`], and hands every valid entry
//! to the node's core.
//!
//! # Several peers at once, each entry fetched once
//!
//! A subwiki has one *lane*: sessions with up to [`MAX_SESSIONS`] peers run in it at once, the
//! other peers wait in a queue. The lane's sessions share one [`proto::Claims`]: an id one of
//! them is fetching or has fetched is not fetched by another, so a newcomer with three holders
//! splits the download across them instead of downloading the history three times (or waiting
//! for one session after another). A peer's slot is freed once what its session fetched is
//! stored, and the lane (with its claims) goes when no session is left, so a later session
//! starts from a snapshot of the local set that holds everything fetched before.
//!
//! # Back pressure
//!
//! Fetched entries go to the ingest worker with at most [`ingest::MAX_FETCHED_BATCHES`] batches
//! waiting. When that many wait, the session that fetched the next one is *parked*: its outputs
//! (that batch, its next requests) wait here until the worker reports it has taken a batch in.
//! The network task never stores entries itself and never holds more than a few batches.
//!
//! # Answering peers
//!
//! Peers' requests are answered on blocking threads, at most [`MAX_ANSWERING`] at once; more
//! wait in a queue of [`MAX_WAITING`], past which they are refused as busy (the peer tries
//! again at its next resync): a fetch reads up to 4 MiB of
//! entries, and a reconciliation reads the subwiki's index when it changed. The network task
//! only sends the answers. Pull-only sessions fetch from us and send nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agora_crdt::{EntryId, SubwikiId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{PeerId, Swarm};

use super::Behaviour;
use super::ingest;
use crate::core::{CatchUp, Core, now};
use crate::proto::{self, Claims, Output, Request, Response, Session, Snapshot};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What an outstanding request belongs to.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// A reconciliation session; for a fetch, its [`Request::fetch_key`].
    Session(PeerId, SubwikiId, Option<EntryId>),
    /// The first fetch of a subwiki joined by id: its genesis entry.
    Genesis(PeerId, SubwikiId),
}

/// Peers that may wait for a subwiki's lane; when it is full, a request to start one more is
/// dropped (the next periodic resync asks again).
const MAX_QUEUED: usize = 256;

/// The most periodic resyncs a quiet (peer, subwiki) pair skips in a row, plus one: with the
/// default resync every minute, a quiet pair is still reconciled every 16 minutes.
const MAX_QUIET_SPACING: u32 = 16;
/// How long after an upgrade to a direct connection a peer's pairs are not spaced out.
const AFTER_UPGRADE: Duration = Duration::from_secs(5 * 60);
/// Quiet pairs remembered.
const MAX_QUIET_PAIRS: usize = 16_384;

/// (peer, subwiki) pairs whose periodic sessions exchanged nothing: for each, the quiet sessions
/// in a row and the periodic resyncs skipped since the last one ran.
#[derive(Debug, Default)]
struct QuietPairs(HashMap<(PeerId, SubwikiId), (u32, u32)>);

impl QuietPairs {
    fn exchanged(&mut self, pair: (PeerId, SubwikiId), quiet: bool) {
        if !quiet {
            self.0.remove(&pair);
            return;
        }
        if self.0.len() >= MAX_QUIET_PAIRS && !self.0.contains_key(&pair) {
            self.0.clear();
        }
        let (streak, _) = self.0.entry(pair).or_insert((0, 0));
        *streak = streak.saturating_add(1);
    }

    fn due(&mut self, pair: (PeerId, SubwikiId)) -> bool {
        let Some((streak, skipped)) = self.0.get_mut(&pair) else {
            return true;
        };
        let spacing = 4u32
            .checked_pow(*streak)
            .unwrap_or(u32::MAX)
            .min(MAX_QUIET_SPACING);
        *skipped += 1;
        if *skipped >= spacing {
            *skipped = 0;
            true
        } else {
            false
        }
    }

    fn forget(&mut self, peer: &PeerId) {
        self.0.retain(|(p, _), _| p != peer);
    }
}

/// Ids per fetch from a peer reached only through a relay, to start with.
const RELAYED_FETCH_BATCH: usize = 16;
/// Relayed peers whose fetch size is remembered.
const MAX_RELAYED_PEERS: usize = 1024;

/// Sessions about one subwiki that run at once, with different peers.
pub(crate) const MAX_SESSIONS: usize = 3;

/// Sessions with one peer that run at once, over all subwikis: a node in hundreds of subwikis
/// would otherwise open more catch-up streams to one peer than a connection takes (64), and
/// the ones refused would wait for the next resync. The others wait in their lanes and start
/// as these end.
pub(crate) const MAX_SESSIONS_PER_PEER: usize = 16;

/// How long, by default, a peer may hold a slot of a subwiki's lane without bringing a new
/// entry while other peers wait ([`crate::Config::catch_up_stall`]).
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(60);

/// The catch-up of one subwiki: the peers being reconciled with and those waiting.
#[derive(Debug, Default)]
struct Lane {
    /// The peers whose session (or genesis fetch) is in progress, or whose fetched entries are
    /// being stored.
    active: Vec<PeerId>,
    /// Peers to reconcile with next, first come first served.
    queue: VecDeque<PeerId>,
    /// Who fetches what, shared by the lane's sessions.
    claims: Claims,
    /// Whether more than one peer may run: once the first session has fetched a batch (the
    /// newest entries) or ended. Until then it has the machine to itself, so the newest page
    /// comes first.
    opened: bool,
}

/// Sessions in progress and the responder's cache.
pub(crate) struct Syncer {
    sessions: HashMap<(PeerId, SubwikiId), Session>,
    /// When each lane member last brought something: its start, or its last batch of new
    /// entries. See [`Syncer::expire_stalled`].
    progress: HashMap<(PeerId, SubwikiId), Instant>,
    /// How long a lane member may bring nothing while other peers wait.
    stall_limit: Duration,
    /// Outputs of sessions waiting for room at the ingest worker, in order.
    parked: HashMap<(PeerId, SubwikiId), VecDeque<Output>>,
    /// One lane per subwiki being caught up.
    lanes: HashMap<SubwikiId, Lane>,
    requests: HashMap<OutboundRequestId, Pending>,
    /// Pairs whose last periodic sessions exchanged nothing: how many in a row, and how many
    /// periodic resyncs were skipped since the last one ran (see [`Syncer::resync_due`]).
    quiet: QuietPairs,
    /// Whether quiet pairs are spaced out at all ([`crate::Config::space_quiet_resyncs`]).
    pub(crate) space_quiet: bool,
    /// Peers whose relayed connection was just replaced by a direct one, and when: their
    /// pairs are not spaced out for [`AFTER_UPGRADE`] (see [`Syncer::upgraded`]).
    upgraded: HashMap<PeerId, Instant>,
    /// Ids per fetch for peers reached only through a relay: small, since a relay closes a
    /// circuit after so many bytes, and halved each time a fetch dies with its circuit, so that
    /// one answer fits what a circuit carries and every new circuit makes progress. Peers not
    /// in it get [`proto::MAX_FETCH_IDS`].
    relayed_batch: HashMap<PeerId, usize>,
    /// Each subwiki's items, with the subwiki's generation they were read at: for the responder
    /// and for starting sessions.
    snapshots: Snapshots,
    /// Where fetched entries go to be stored (off the network task); without it they are
    /// stored here.
    ingest: Option<ingest::Handle>,
    /// Where work done on blocking threads (answers to peers' requests, snapshots to start
    /// sessions from) comes back to the network task.
    answers: Option<mpsc::Sender<Done>>,
    /// Peers' requests being answered, at most [`MAX_ANSWERING`].
    answering: Arc<Semaphore>,
    /// Peers' requests waiting to be answered, at most [`MAX_WAITING`]; past that a request is
    /// refused as busy.
    waiting: VecDeque<(PeerId, Vec<u8>, ResponseChannel<Vec<u8>>)>,
    /// The core, for the blocking threads that answer.
    core: Option<Arc<Core>>,
    /// The data budget: while it says so, catch-up waits for the next day (`net/budget.rs`).
    meter: Option<Arc<super::Meter>>,
}

/// Peers' requests that may wait for a blocking thread.
pub(crate) const MAX_WAITING: usize = 256;

/// Peers' requests answered at once, each on a blocking thread (a fetch reads up to 4 MiB of
/// entries from the store; a reconciliation may read the subwiki's whole index).
pub(crate) const MAX_ANSWERING: usize = 4;

/// Answers waiting to be sent.
pub(crate) const ANSWER_CAPACITY: usize = 64;

/// The responder's (and sessions') view of each subwiki, shared with the blocking threads.
type Snapshots = Arc<Mutex<HashMap<SubwikiId, (u64, Instant, Snapshot)>>>;

/// Work done on a blocking thread, for the network task.
pub(crate) enum Done {
    /// An answer to a peer's request, to send.
    Answer(Answer),
    /// The items a session with the peer about the subwiki starts from.
    Snapshot(PeerId, SubwikiId, Result<Snapshot, String>),
    /// The entries of a fetch's response, checked: for the session with the peer about the
    /// subwiki, answering the fetch with that key.
    Checked(PeerId, SubwikiId, Option<EntryId>, proto::Checked),
}

/// An answer to a peer's request, made off the network task.
pub(crate) struct Answer {
    peer: PeerId,
    channel: ResponseChannel<Vec<u8>>,
    response: Vec<u8>,
    strikes: Vec<u32>,
}

/// Invalid entries or protocol violations per peer, to penalise.
pub(crate) type Strikes = Vec<(PeerId, u32)>;

impl Default for Syncer {
    fn default() -> Self {
        Self {
            sessions: HashMap::new(),
            progress: HashMap::new(),
            stall_limit: DEFAULT_STALL_LIMIT,
            parked: HashMap::new(),
            lanes: HashMap::new(),
            requests: HashMap::new(),
            relayed_batch: HashMap::new(),
            quiet: QuietPairs::default(),
            space_quiet: true,
            upgraded: HashMap::new(),
            snapshots: Snapshots::default(),
            ingest: None,
            answers: None,
            answering: Arc::new(Semaphore::new(MAX_ANSWERING)),
            waiting: VecDeque::new(),
            core: None,
            meter: None,
        }
    }
}

impl Syncer {
    /// A syncer that hands what it fetches to the ingest worker and answers peers on blocking
    /// threads, sending the answers back through `answers`.
    pub(crate) fn new(
        core: Arc<Core>,
        ingest: ingest::Handle,
        answers: mpsc::Sender<Done>,
        stall_limit: Duration,
        meter: Arc<super::Meter>,
    ) -> Self {
        Self {
            stall_limit,
            ingest: Some(ingest),
            answers: Some(answers),
            core: Some(core),
            meter: Some(meter),
            ..Self::default()
        }
    }

    /// Takes work done on a blocking thread; returns peers to penalise.
    pub(crate) fn done(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        done: Done,
    ) -> Strikes {
        match done {
            Done::Answer(answer) => self.answered(swarm, answer),
            Done::Snapshot(peer, subwiki, items) => {
                self.on_snapshot(swarm, core, peer, subwiki, items);
                Strikes::new()
            }
            Done::Checked(peer, subwiki, fetch, checked) => {
                let mut strikes = Strikes::new();
                // The session may have ended meanwhile (its peer went): then the entries are
                // dropped, and fetched again by a later session.
                if let Some(mut session) = self.sessions.remove(&(peer, subwiki)) {
                    let outputs = session.handle_checked(fetch, checked);
                    self.drive(swarm, core, peer, subwiki, session, outputs, &mut strikes);
                }
                strikes
            }
        }
    }

    /// Sends an answer made off the network task, and starts answering the next waiting
    /// request; returns the peer's strikes.
    fn answered(&mut self, swarm: &mut Swarm<Behaviour>, answer: Answer) -> Strikes {
        let _ = swarm
            .behaviour_mut()
            .sync
            .send_response(answer.channel, answer.response);
        while !self.waiting.is_empty() {
            let Ok(permit) = self.answering.clone().try_acquire_owned() else {
                break;
            };
            if let Some((peer, request, channel)) = self.waiting.pop_front() {
                self.dispatch(permit, peer, request, channel);
            }
        }
        answer
            .strikes
            .into_iter()
            .map(|n| (answer.peer, n))
            .collect()
    }

    /// Answers a request on a blocking thread, which holds `permit` until the answer is made.
    fn dispatch(
        &self,
        permit: OwnedSemaphorePermit,
        peer: PeerId,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let (Some(core), Some(answers)) = (self.core.clone(), self.answers.clone()) else {
            return;
        };
        let snapshots = Arc::clone(&self.snapshots);
        tokio::task::spawn_blocking(move || {
            let (response, strikes) = respond(&core, &snapshots, peer, &request);
            let answer = Answer {
                peer,
                channel,
                response: response.encode(),
                strikes,
            };
            // Free the place first, so that the network task, told of this answer, can start
            // the next waiting request.
            drop(permit);
            // The network task may be gone (shutting down): nobody to answer.
            let _ = answers.blocking_send(Done::Answer(answer));
        });
    }

    /// A connection to `peer` was established; `relayed_only` if every connection to it goes
    /// through a relay.
    pub(crate) fn connected(&mut self, peer: PeerId, relayed_only: bool) {
        if relayed_only {
            if self.relayed_batch.len() >= MAX_RELAYED_PEERS {
                self.relayed_batch.clear();
            }
            self.relayed_batch
                .entry(peer)
                .or_insert(RELAYED_FETCH_BATCH);
        } else {
            self.relayed_batch.remove(&peer);
        }
    }

    /// A session with `peer` about `subwiki` ended; `quiet` if it exchanged no entry.
    pub(crate) fn exchanged(&mut self, peer: PeerId, subwiki: SubwikiId, quiet: bool) {
        self.quiet.exchanged((peer, subwiki), quiet);
    }

    /// Whether the periodic resync should reconcile `subwiki` with `peer` now. Gossip carries
    /// new entries as they are written; the periodic sessions catch what it missed, and most
    /// of them find nothing (an idle node in 20 subwikis with 3 peers spent 96 % of its bytes
    /// on them, `docs/performance.md` §9). After `n` quiet sessions in a row the pair is
    /// reconciled every 4^n-th resync, at most every [`MAX_QUIET_SPACING`]-th; one session
    /// that exchanges entries, or a new connection, brings it back to every resync.
    pub(crate) fn resync_due(&mut self, peer: PeerId, subwiki: SubwikiId) -> bool {
        let fresh = self
            .upgraded
            .get(&peer)
            .is_some_and(|t| t.elapsed() < AFTER_UPGRADE);
        // While the subwiki is catching up (sessions running or waiting for a slot), nothing is
        // spaced: a peer whose session ended quiet may be the one that has what is missing.
        let catching_up = self
            .lanes
            .get(&subwiki)
            .is_some_and(|l| !l.active.is_empty() || !l.queue.is_empty());
        !self.space_quiet || fresh || catching_up || self.quiet.due((peer, subwiki))
    }

    /// The relayed connections to `peer` were closed for a direct one. Gossip on the new
    /// connection was once seen not to flow (the lab test in CI: a post gossiped right after
    /// the upgrade never arrived; cause not found), so for a while every periodic resync
    /// reconciles with the peer, whatever it found before.
    pub(crate) fn upgraded(&mut self, peer: PeerId) {
        self.upgraded.retain(|_, t| t.elapsed() < AFTER_UPGRADE);
        if self.upgraded.len() < MAX_QUIET_PAIRS {
            self.upgraded.insert(peer, Instant::now());
        }
    }

    /// Halves the fetch size for a relayed peer (see [`Syncer::relayed_batch`]).
    fn shrink_relayed_batch(&mut self, peer: &PeerId) {
        if let Some(batch) = self.relayed_batch.get_mut(peer) {
            *batch = (*batch / 2).max(1);
            tracing::debug!(%peer, batch = *batch, "a relayed request died with its circuit: smaller batches");
        }
    }

    /// The protocol limits of a session with `peer`.
    fn session_config(&self, peer: &PeerId) -> proto::Config {
        let mut config = proto::Config::default();
        if let Some(&batch) = self.relayed_batch.get(peer) {
            config.fetch_batch = batch;
            config.push_batch = batch;
        }
        config
    }

    /// Forgets a peer that has gone; the subwikis it was catching up go on with the others.
    pub(crate) fn disconnected(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: &PeerId,
    ) {
        self.sessions.retain(|(p, _), _| p != peer);
        self.quiet.forget(peer);
        let in_flight = self.requests.values().any(|pending| match pending {
            Pending::Session(p, _, _) | Pending::Genesis(p, _) => p == peer,
        });
        self.requests.retain(|_, pending| match pending {
            Pending::Session(p, _, _) | Pending::Genesis(p, _) => p != peer,
        });
        // A relayed connection that ended with a request in flight: the relay most likely cut
        // the circuit at its byte limit, mid-answer. Ask for less at a time on the next one.
        if in_flight {
            self.shrink_relayed_batch(peer);
        }
        // What its session fetched is valid and counted as fetched by the lane's claims:
        // store it, even though the rest of its session is gone.
        let parked: Vec<_> = self
            .parked
            .keys()
            .filter(|(p, _)| p == peer)
            .copied()
            .collect();
        for key in parked {
            for output in self.parked.remove(&key).unwrap_or_default() {
                if let Output::Store(entries) = output {
                    match &self.ingest {
                        Some(ingest) => ingest.fetched(core, key.1, entries),
                        None => ingest::take_fetched(core, key.1, entries),
                    }
                }
            }
        }
        let mut orphaned = Vec::new();
        for (subwiki, lane) in &mut self.lanes {
            lane.queue.retain(|p| p != peer);
            if lane.active.contains(peer) {
                orphaned.push(*subwiki);
            }
        }
        for subwiki in orphaned {
            self.finish(swarm, core, subwiki, *peer);
        }
    }

    /// Whether catch-up waits for the next day: the day's data budget is nearly used.
    fn paused(&self) -> bool {
        self.meter.as_ref().is_some_and(|m| m.catch_up_paused())
    }

    /// Reconciles `subwiki` with `peer`: at once if the lane has room, otherwise once a slot
    /// frees. Nothing if `peer` is already running or queued for it, or while catch-up is
    /// paused by the data budget (the first resync of the next day starts it).
    pub(crate) fn start(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
    ) {
        if self.paused() {
            return;
        }
        let lane = self.lanes.entry(subwiki).or_default();
        if lane.active.contains(&peer) || lane.queue.contains(&peer) {
            tracing::trace!(%peer, %subwiki, active = lane.active.contains(&peer), "catch-up already running or queued");
            return;
        }
        if lane.queue.len() < MAX_QUEUED {
            lane.queue.push_back(peer);
        }
        self.fill(swarm, core, subwiki);
    }

    /// The entries of the session with `peer` are stored: if that peer still holds a slot in
    /// the subwiki's lane (it did not go meanwhile), the slot is freed.
    pub(crate) fn stored(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        subwiki: SubwikiId,
        peer: PeerId,
    ) {
        let active = self
            .lanes
            .get(&subwiki)
            .is_some_and(|l| l.active.contains(&peer));
        if active && !self.sessions.contains_key(&(peer, subwiki)) {
            self.finish(swarm, core, subwiki, peer);
        }
    }

    /// Frees `peer`'s slot in the subwiki's lane and starts queued peers in the free slots.
    fn finish(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        subwiki: SubwikiId,
        peer: PeerId,
    ) {
        self.sessions.remove(&(peer, subwiki));
        self.parked.remove(&(peer, subwiki));
        self.progress.remove(&(peer, subwiki));
        if let Some(lane) = self.lanes.get_mut(&subwiki) {
            lane.active.retain(|p| *p != peer);
            lane.opened = true;
        }
        self.fill(swarm, core, subwiki);
        // A slot with this peer is free: a lane that waits for it may start.
        let waiting: Vec<SubwikiId> = self
            .lanes
            .iter()
            .filter(|(s, l)| **s != subwiki && l.queue.contains(&peer))
            .map(|(s, _)| *s)
            .collect();
        for other in waiting {
            if self.busy_with(&peer) {
                break;
            }
            self.fill(swarm, core, other);
        }
    }

    /// Whether `peer` already runs [`MAX_SESSIONS_PER_PEER`] sessions with this node.
    fn busy_with(&self, peer: &PeerId) -> bool {
        self.lanes
            .values()
            .filter(|l| l.active.contains(peer))
            .count()
            >= MAX_SESSIONS_PER_PEER
    }

    /// Starts queued peers while the lane has room; removes the lane when nothing is left.
    /// While the subwiki's genesis is not held, only one peer runs (it fetches the genesis,
    /// then reconciles, and the others start after that).
    fn fill(&mut self, swarm: &mut Swarm<Behaviour>, core: &Core, subwiki: SubwikiId) {
        if self.paused()
            && let Some(lane) = self.lanes.get_mut(&subwiki)
        {
            // The data budget: nobody waiting starts today.
            lane.queue.clear();
        }
        loop {
            let Some(lane) = self.lanes.get(&subwiki) else {
                return;
            };
            let genesis: EntryId = subwiki.into();
            let room = if lane.opened && core.store().contains(&genesis).unwrap_or(false) {
                MAX_SESSIONS
            } else {
                1
            };
            if lane.active.len() >= room {
                break;
            }
            // The first queued peer not busy with other lanes; busy ones keep their place.
            let Some(at) = lane.queue.iter().position(|p| !self.busy_with(p)) else {
                break;
            };
            let Some(lane) = self.lanes.get_mut(&subwiki) else {
                return;
            };
            let Some(peer) = lane.queue.remove(at) else {
                break;
            };
            if !swarm.is_connected(&peer) {
                continue;
            }
            lane.active.push(peer);
            if !self.begin(swarm, core, peer, subwiki)
                && let Some(lane) = self.lanes.get_mut(&subwiki)
            {
                lane.active.retain(|p| *p != peer);
            }
        }
        if self
            .lanes
            .get(&subwiki)
            .is_some_and(|l| l.active.is_empty() && l.queue.is_empty())
        {
            self.lanes.remove(&subwiki);
        }
        self.report(core, subwiki);
    }

    /// Ends the catch-up of peers that hold a slot of a lane while others wait and have brought
    /// no new entry for longer than the stall limit (a peer answering slowly or not at all, on
    /// purpose or not, must not keep a subwiki's catch-up to itself); each goes to the back of
    /// its lane's queue. A session parked behind the ingest worker, or waiting for this node to
    /// read its own index, is waiting on this node, not on the peer, and is left alone.
    pub(crate) fn expire_stalled(&mut self, swarm: &mut Swarm<Behaviour>, core: &Core) {
        let stalled: Vec<(PeerId, SubwikiId)> = self
            .progress
            .iter()
            .filter(|(key, since)| {
                since.elapsed() > self.stall_limit
                    && !self.parked.contains_key(key)
                    && self
                        .lanes
                        .get(&key.1)
                        .is_some_and(|lane| !lane.queue.is_empty())
                    && (self.sessions.contains_key(key)
                        || self.requests.values().any(|pending| {
                            matches!(pending, Pending::Genesis(p, s) if (*p, *s) == **key)
                        }))
            })
            .map(|(key, _)| *key)
            .collect();
        for (peer, subwiki) in stalled {
            tracing::info!(%peer, %subwiki, "catch-up stalled: the slot goes to a waiting peer");
            self.end_session(swarm, core, peer, subwiki);
            self.start(swarm, core, peer, subwiki);
        }
    }

    /// Publishes the progress of the subwiki's catch-up in its sync status.
    fn report(&self, core: &Core, subwiki: SubwikiId) {
        let progress = self.lanes.get(&subwiki).map(|lane| {
            let sessions = self.sessions.iter().filter(|((_, s), _)| *s == subwiki);
            let mut catch_up = CatchUp {
                peers: lane.active.len() as u32,
                fetched: lane.claims.fetched() as u64,
                ..CatchUp::default()
            };
            for (_, session) in sessions {
                catch_up.reconciling |= session.is_reconciling();
                catch_up.remaining = catch_up
                    .remaining
                    .saturating_add(session.remaining() as u64);
            }
            catch_up
        });
        let mut ended = false;
        core.update_status(subwiki, |s| {
            ended = s.catch_up.is_some() && progress.is_none();
            s.catch_up = progress;
        });
        if ended {
            // Watchers see the end of a catch-up (progress itself is read when wanted).
            core.notify();
        }
    }

    /// Sends the first request of a session with `peer` (or of the fetch of the subwiki's
    /// genesis, when it is not held yet); false if none could be sent.
    fn begin(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
    ) -> bool {
        self.progress.insert((peer, subwiki), Instant::now());
        let genesis: EntryId = subwiki.into();
        if !core.store().contains(&genesis).unwrap_or(false) {
            let request = Request::Fetch {
                subwiki,
                ids: vec![genesis],
            };
            let id = swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, request.encode());
            self.requests.insert(id, Pending::Genesis(peer, subwiki));
            return true;
        }
        if let Some(items) = fresh_snapshot(&self.snapshots, core, subwiki) {
            return self.start_session(swarm, peer, subwiki, items);
        }
        // Reading the subwiki's index takes a while for a large one (and is needed again each
        // time the store changed): off the network task when there is a blocking pool.
        let (Some(core), Some(answers)) = (self.core.clone(), self.answers.clone()) else {
            return match snapshot(&self.snapshots, core, subwiki) {
                Ok(items) => self.start_session(swarm, peer, subwiki, items),
                Err(e) => {
                    tracing::warn!(%subwiki, "cannot read the reconciliation index: {e}");
                    false
                }
            };
        };
        let snapshots = Arc::clone(&self.snapshots);
        tokio::task::spawn_blocking(move || {
            let items = snapshot(&snapshots, &core, subwiki);
            let _ = answers.blocking_send(Done::Snapshot(peer, subwiki, items));
        });
        true
    }

    /// The snapshot for a session with `peer` is ready: the session starts, if the peer still
    /// holds its slot.
    fn on_snapshot(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
        items: Result<Snapshot, String>,
    ) {
        let waiting = self
            .lanes
            .get(&subwiki)
            .is_some_and(|l| l.active.contains(&peer))
            && !self.sessions.contains_key(&(peer, subwiki));
        if !waiting {
            return;
        }
        let started = match items {
            Ok(items) if swarm.is_connected(&peer) => {
                self.start_session(swarm, peer, subwiki, items)
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(%subwiki, "cannot read the reconciliation index: {e}");
                false
            }
        };
        if !started {
            self.finish(swarm, core, subwiki, peer);
        }
    }

    /// Starts a session from `items` and sends its first request; false if it cannot start.
    fn start_session(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        subwiki: SubwikiId,
        items: Snapshot,
    ) -> bool {
        match Session::start(subwiki, items, self.session_config(&peer)) {
            Ok((mut session, request)) => {
                tracing::debug!(%peer, %subwiki, "catch-up session starts");
                if let Some(lane) = self.lanes.get(&subwiki) {
                    session.share(&lane.claims);
                }
                let id = swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, request.encode());
                self.requests
                    .insert(id, Pending::Session(peer, subwiki, None));
                self.sessions.insert((peer, subwiki), session);
                true
            }
            Err(e) => {
                tracing::warn!(%subwiki, "cannot start reconciliation: {e}");
                false
            }
        }
    }

    /// Handles a request-response event; returns peers to penalise.
    pub(crate) fn handle(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Arc<Core>,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) -> Strikes {
        let mut strikes = Strikes::new();
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.answer(swarm, core, peer, request, channel, &mut strikes),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(pending) = self.requests.remove(&request_id) {
                        self.on_response(swarm, core, pending, &response, &mut strikes);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => match self.requests.remove(&request_id) {
                Some(Pending::Session(peer, subwiki, _)) => {
                    // A fetch, or a request carrying pushed entries, cut with its circuit.
                    if matches!(error, request_response::OutboundFailure::ConnectionClosed) {
                        self.shrink_relayed_batch(&peer);
                    }
                    tracing::debug!(%peer, %subwiki, "reconciliation request failed: {error}");
                    self.end_session(swarm, core, peer, subwiki);
                }
                Some(Pending::Genesis(peer, subwiki)) => {
                    tracing::debug!(%peer, %subwiki, "reconciliation request failed: {error}");
                    self.end_session(swarm, core, peer, subwiki);
                }
                None => {}
            },
            _ => {}
        }
        strikes
    }

    /// Ends a session that failed: its other request in flight is forgotten, its slot freed.
    fn end_session(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
    ) {
        self.requests.retain(|_, pending| {
            !matches!(pending, Pending::Session(p, s, _) | Pending::Genesis(p, s) if *p == peer && *s == subwiki)
        });
        // Entries it fetched and parked are valid: store them.
        for output in self.parked.remove(&(peer, subwiki)).unwrap_or_default() {
            if let Output::Store(entries) = output {
                match &self.ingest {
                    Some(ingest) => ingest.fetched(core, subwiki, entries),
                    None => ingest::take_fetched(core, subwiki, entries),
                }
            }
        }
        self.finish(swarm, core, subwiki, peer);
    }

    /// Answers a peer's request on a blocking thread (here if there is no answer channel, as
    /// in tests); past [`MAX_ANSWERING`] it waits, past [`MAX_WAITING`] it is refused as busy.
    fn answer(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Arc<Core>,
        peer: PeerId,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
        strikes: &mut Strikes,
    ) {
        if self.paused() {
            let refused = Response::Refused {
                reason: "data budget: catch-up paused until tomorrow".into(),
            };
            let _ = swarm
                .behaviour_mut()
                .sync
                .send_response(channel, refused.encode());
            return;
        }
        if self.answers.is_none() || self.core.is_none() {
            let response = respond(core, &self.snapshots, peer, &request);
            let _ = swarm
                .behaviour_mut()
                .sync
                .send_response(channel, response.0.encode());
            strikes.extend(response.1.into_iter().map(|n| (peer, n)));
            return;
        }
        if let Ok(permit) = self.answering.clone().try_acquire_owned() {
            self.dispatch(permit, peer, request, channel);
        } else if self.waiting.len() < MAX_WAITING {
            self.waiting.push_back((peer, request, channel));
        } else {
            let busy = Response::Refused {
                reason: "busy: too many requests waiting".into(),
            };
            let _ = swarm
                .behaviour_mut()
                .sync
                .send_response(channel, busy.encode());
        }
    }

    fn on_response(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        pending: Pending,
        bytes: &[u8],
        strikes: &mut Strikes,
    ) {
        let encoded_len = bytes.len();
        let response = match Response::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                let (Pending::Session(peer, subwiki, _) | Pending::Genesis(peer, subwiki)) =
                    pending;
                tracing::debug!(%peer, %subwiki, "malformed response: {e}");
                strikes.push((peer, 1));
                self.end_session(swarm, core, peer, subwiki);
                return;
            }
        };
        match pending {
            Pending::Genesis(peer, subwiki) => {
                self.on_genesis(swarm, core, peer, subwiki, response, strikes)
            }
            Pending::Session(peer, subwiki, fetch) => {
                if !self.sessions.contains_key(&(peer, subwiki)) {
                    self.end_session(swarm, core, peer, subwiki);
                    return;
                }
                let response = match (response, &self.answers) {
                    // Checking a batch (decoding, Automerge, signatures) is most of the work of
                    // a catch-up: done on blocking threads, the network task goes on meanwhile.
                    (Response::Entries { entries }, Some(answers)) => {
                        let answers = answers.clone();
                        tokio::task::spawn_blocking(move || {
                            let checked = check_entries(&entries, encoded_len, now());
                            let done = Done::Checked(peer, subwiki, fetch, checked);
                            let _ = answers.blocking_send(done);
                        });
                        return;
                    }
                    (response, _) => response,
                };
                let Some(mut session) = self.sessions.remove(&(peer, subwiki)) else {
                    return;
                };
                let outputs = session.handle_reply(fetch, response, now());
                self.drive(swarm, core, peer, subwiki, session, outputs, strikes);
            }
        }
    }

    fn on_genesis(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
        response: Response,
        strikes: &mut Strikes,
    ) {
        let Response::Entries { entries } = response else {
            // The peer does not have it; another peer may.
            self.finish(swarm, core, subwiki, peer);
            return;
        };
        let genesis: EntryId = subwiki.into();
        let mut invalid = false;
        let mut found = None;
        for bytes in &entries {
            match agora_crdt::validate(bytes, now()) {
                Ok(entry) if entry.id() == genesis => found = Some(entry),
                Ok(_) => {}
                Err(e) => invalid |= !e.is_retriable(),
            }
        }
        if invalid {
            strikes.push((peer, 1));
        }
        let started = match found {
            Some(entry) if matches!(entry.payload(), agora_crdt::Payload::Genesis(_)) => {
                match core.accept(subwiki, vec![entry]) {
                    // The same peer goes on with the session proper, and the lane opens to
                    // the others.
                    Ok(_) => {
                        let started = self.begin(swarm, core, peer, subwiki);
                        self.fill(swarm, core, subwiki);
                        started
                    }
                    Err(e) => {
                        tracing::warn!(%subwiki, "genesis not stored: {e}");
                        false
                    }
                }
            }
            Some(_) => {
                tracing::warn!(%subwiki, "this id names an entry that is not a subwiki");
                false
            }
            None => false,
        };
        if !started {
            self.finish(swarm, core, subwiki, peer);
        }
    }

    /// Takes a session's new outputs (behind any it has parked) and carries them out.
    #[allow(clippy::too_many_arguments)]
    fn drive(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
        session: Session,
        outputs: Result<Vec<Output>, proto::ProtoError>,
        strikes: &mut Strikes,
    ) {
        let outputs = match outputs {
            Ok(outputs) => outputs,
            Err(proto::ProtoError::Refused { reason }) => {
                tracing::debug!(%peer, %subwiki, "peer declined to reconcile: {reason}");
                drop(session);
                self.end_session(swarm, core, peer, subwiki);
                return;
            }
            Err(e) => {
                tracing::debug!(%peer, %subwiki, "reconciliation failed: {e}");
                strikes.push((peer, 1));
                drop(session);
                self.end_session(swarm, core, peer, subwiki);
                return;
            }
        };
        let key = (peer, subwiki);
        if let Some(parked) = self.parked.get_mut(&key) {
            // Behind what waits already, in order.
            parked.extend(outputs);
            self.sessions.insert(key, session);
            return;
        }
        self.carry_out(swarm, core, key, session, outputs.into(), strikes);
    }

    /// Resumes parked sessions while the ingest worker has room; called when it took a batch.
    pub(crate) fn unpark(&mut self, swarm: &mut Swarm<Behaviour>, core: &Core) -> Strikes {
        let mut strikes = Strikes::new();
        let keys: Vec<_> = self.parked.keys().copied().collect();
        for key in keys {
            if self.ingest.as_ref().is_some_and(|i| !i.has_room()) {
                break;
            }
            let Some(outputs) = self.parked.remove(&key) else {
                continue;
            };
            let Some(session) = self.sessions.remove(&key) else {
                continue;
            };
            self.carry_out(swarm, core, key, session, outputs, &mut strikes);
        }
        strikes
    }

    /// Carries out a session's outputs in order; parks the rest when the ingest worker has no
    /// room for a fetched batch.
    fn carry_out(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        (peer, subwiki): (PeerId, SubwikiId),
        mut session: Session,
        mut queue: VecDeque<Output>,
        strikes: &mut Strikes,
    ) {
        // The slot is freed when the worker reports this session's entries stored.
        let mut deferred = false;
        let mut open = false;
        // The data budget paused catch-up: no more requests; what was fetched is stored.
        let mut halted = false;
        while let Some(output) = queue.pop_front() {
            if matches!(&output, Output::Store(entries) if !entries.is_empty()) {
                // New valid entries: the peer is bringing something, and the first batch (the
                // newest entries) opens the lane to the other peers.
                self.progress.insert((peer, subwiki), Instant::now());
                if let Some(lane) = self.lanes.get_mut(&subwiki) {
                    open |= !lane.opened;
                    lane.opened = true;
                }
            }
            match output {
                Output::Send(_) if halted || self.paused() => halted = true,
                Output::Send(request) => {
                    let key = request.fetch_key();
                    let id = swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, request.encode());
                    self.requests
                        .insert(id, Pending::Session(peer, subwiki, key));
                }
                Output::Store(entries) => match &self.ingest {
                    Some(ingest) => {
                        if let Err(entries) = ingest.try_fetched(subwiki, entries) {
                            queue.push_front(Output::Store(entries));
                            self.parked.insert((peer, subwiki), queue);
                            self.sessions.insert((peer, subwiki), session);
                            if open {
                                self.fill(swarm, core, subwiki);
                            }
                            self.report(core, subwiki);
                            return;
                        }
                    }
                    None => ingest::take_fetched(core, subwiki, entries),
                },
                Output::Invalid { count, first_error } => {
                    tracing::warn!(%peer, %subwiki, count, "peer sent invalid entries: {first_error}");
                    core.update_status(subwiki, |s| s.refused += count as u64);
                    strikes.push((peer, u32::try_from(count).unwrap_or(u32::MAX)));
                }
                Output::NeedEntries(_) => {
                    // Pull only: the peer runs its own session with us and fetches what it
                    // lacks, so pushing the same entries would send them twice.
                    match session.provide(Vec::new()) {
                        Ok(more) => queue.extend(more),
                        Err(e) => tracing::debug!(%subwiki, "session ended: {e}"),
                    }
                }
                Output::Done(stats) => match &self.ingest {
                    Some(ingest) => {
                        ingest.reconciled(subwiki, peer, stats);
                        deferred = true;
                    }
                    None => ingest::reconciled(core, subwiki, peer, stats),
                },
            }
        }
        if halted && !session.is_finished() {
            tracing::debug!(%peer, %subwiki, "catch-up paused by the data budget");
            drop(session);
            self.end_session(swarm, core, peer, subwiki);
        } else if !session.is_finished() {
            self.sessions.insert((peer, subwiki), session);
            if open {
                self.fill(swarm, core, subwiki);
            }
            self.report(core, subwiki);
        } else {
            drop(session);
            if deferred {
                self.report(core, subwiki);
            } else {
                self.finish(swarm, core, subwiki, peer);
            }
        }
    }
}

/// Checks the entries of a fetch's response, on two threads for a large batch (one blocking
/// thread per response otherwise: three sessions' batches are checked side by side).
fn check_entries(
    entries: &[Vec<u8>],
    encoded_len: usize,
    now: agora_crdt::Timestamp,
) -> proto::Checked {
    const SPLIT_FROM: usize = 64;
    if entries.len() < SPLIT_FROM {
        return proto::Checked::check(&proto::Signed, entries, encoded_len, now);
    }
    let (first, second) = entries.split_at(entries.len() / 2);
    let parts = std::thread::scope(|scope| {
        let other = scope.spawn(|| proto::Checked::check(&proto::Signed, second, 0, now));
        let mine = proto::Checked::check(&proto::Signed, first, 0, now);
        match other.join() {
            Ok(theirs) => vec![mine, theirs],
            // A panic in a check is a bug, never the peer's bytes' doing (validation contains
            // them): check that half again here.
            Err(_) => vec![mine, proto::Checked::check(&proto::Signed, second, 0, now)],
        }
    });
    proto::Checked::join(parts, encoded_len)
}

/// The subwiki's items, if read since the store last changed.
fn fresh_snapshot(snapshots: &Snapshots, core: &Core, subwiki: SubwikiId) -> Option<Snapshot> {
    let generation = core.generation(&subwiki);
    lock(snapshots)
        .get(&subwiki)
        .filter(|(g, read, _)| *g == generation && read.elapsed() < SNAPSHOT_LIFETIME)
        .map(|(_, _, s)| s.clone())
}

/// How long a subwiki's snapshot is used at most, even if nothing was written to it: the store
/// also removes entries by itself (a damaged one, found as it is read), without saying so.
const SNAPSHOT_LIFETIME: Duration = Duration::from_secs(60);

/// The subwiki's items, read again only when the store has changed since.
fn snapshot(snapshots: &Snapshots, core: &Core, subwiki: SubwikiId) -> Result<Snapshot, String> {
    if let Some(snapshot) = fresh_snapshot(snapshots, core, subwiki) {
        return Ok(snapshot);
    }
    // The generation before reading: a write during the read makes the snapshot stale at once.
    let generation = core.generation(&subwiki);
    let read = Instant::now();
    let items = core.store().items(&subwiki).map_err(|e| e.to_string())?;
    let refused = core
        .store()
        .purged_ids(&subwiki)
        .map_err(|e| e.to_string())?;
    let snapshot = Snapshot::new(items).refusing(refused);
    lock(snapshots).insert(subwiki, (generation, read, snapshot.clone()));
    Ok(snapshot)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Entries read to answer a fetch: those of `ids` held in `subwiki`, read and checked in
/// chunks, as many as fit one response (the responder stops at the same byte limit).
fn read_for_fetch(core: &Core, subwiki: SubwikiId, ids: &[EntryId]) -> HashMap<EntryId, Vec<u8>> {
    const CHUNK: usize = 64;
    let mut read = HashMap::new();
    let mut total = 0usize;
    for chunk in ids.chunks(CHUNK).take(proto::MAX_FETCH_IDS / CHUNK) {
        let Ok(found) = core.store().entry_bytes(chunk) else {
            break;
        };
        for (id, (of, bytes)) in chunk.iter().zip(found).filter_map(|(id, f)| Some((id, f?))) {
            if of == subwiki {
                total = total.saturating_add(bytes.len());
                read.insert(*id, bytes);
            }
        }
        if total > proto::MAX_BATCH_BYTES {
            break;
        }
    }
    read
}

/// Answers one request of a peer: the response, and the strikes it earned.
fn respond(core: &Core, snapshots: &Snapshots, peer: PeerId, bytes: &[u8]) -> (Response, Vec<u32>) {
    let request = match Request::decode(bytes) {
        Ok(request) => request,
        Err(e) => {
            let response = Response::Refused {
                reason: format!("malformed request: {e}"),
            };
            return (response, vec![1]);
        }
    };
    let subwiki = request.subwiki();
    let snapshot = if core.is_joined(&subwiki) {
        match snapshot(snapshots, core, subwiki) {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                let response = Response::Refused {
                    reason: format!("store: {e}"),
                };
                return (response, Vec::new());
            }
        }
    } else {
        None
    };
    let responder = match proto::Responder::new(proto::Config::default()) {
        Ok(r) => r,
        Err(e) => {
            let response = Response::Refused {
                reason: e.to_string(),
            };
            return (response, Vec::new());
        }
    };
    // A fetch's entries are read (and checked for damage) together, in batches; only entries
    // of the subwiki asked about are served (and the responder only answers for subwikis this
    // node is in).
    let mut read = match &request {
        Request::Fetch { ids, .. } if snapshot.is_some() => read_for_fetch(core, subwiki, ids),
        _ => HashMap::new(),
    };
    let load = move |id: &EntryId| read.remove(id);
    let reply = responder.handle(request, snapshot.as_ref(), load, now());
    let mut strikes = Vec::new();
    match reply.fault {
        Some(proto::Fault::Invalid { count, .. }) => {
            strikes.push(u32::try_from(count).unwrap_or(u32::MAX));
        }
        Some(proto::Fault::Protocol(_)) => strikes.push(1),
        None => {}
    }
    if reply.store.is_empty() {
        return (reply.response, strikes);
    }
    // Pushed entries are stored here, on this blocking thread, before the answer: `Accepted`
    // says how many are durable (new or already held); if storing fails, the answer says so
    // and the peer pushes them again later.
    tracing::debug!(%peer, %subwiki, count = reply.store.len(), "peer pushed entries");
    let response = match ingest::take_pushed(core, subwiki, reply.store) {
        Ok(count) => Response::Accepted {
            count: u32::try_from(count).unwrap_or(u32::MAX),
        },
        Err(e) => Response::Refused {
            reason: format!("not stored: {e}"),
        },
    };
    (response, strikes)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]

    use std::sync::atomic::{AtomicBool, Ordering};

    use agora_crdt::{
        BlobHash, DocId, Entry, EntryId, Policy, PostContent, Purged, Replica, Timestamp, Tombstone,
    };

    use super::*;
    use crate::home::Home;

    #[test]
    fn quiet_pairs_are_resynced_less_and_less_often_until_something_is_exchanged() {
        let mut quiet = QuietPairs::default();
        let pair = (PeerId::random(), SubwikiId::from_bytes([7; 32]));
        let runs = |quiet: &mut QuietPairs, resyncs: usize| {
            (0..resyncs).filter(|_| quiet.due(pair)).count()
        };
        assert_eq!(runs(&mut quiet, 10), 10, "an unknown pair runs every time");
        quiet.exchanged(pair, true);
        assert_eq!(
            runs(&mut quiet, 12),
            3,
            "one quiet session: every fourth resync"
        );
        for _ in 0..10 {
            quiet.exchanged(pair, true);
        }
        assert_eq!(runs(&mut quiet, 64), 4, "at most every sixteenth");
        quiet.exchanged(pair, false);
        assert_eq!(
            runs(&mut quiet, 3),
            3,
            "entries exchanged: every resync again"
        );
        quiet.exchanged(pair, true);
        quiet.forget(&pair.0);
        assert!(quiet.due(pair), "a peer that went starts afresh");
    }
    use crate::store::{
        FeedKey, Loaded, MemoryStore, Put, Rebuilt, Store, StoreError, SubwikiRecord,
    };

    /// A memory store whose entry writes fail while `failing` holds (a full disk), and whose
    /// view writes fail while `views_failing` does.
    #[derive(Default)]
    struct Failing {
        inner: MemoryStore,
        failing: AtomicBool,
        views_failing: AtomicBool,
    }

    impl Failing {
        fn views(&self) -> Result<(), StoreError> {
            if self.views_failing.load(Ordering::SeqCst) {
                return Err(StoreError::Io("no space left on device".into()));
            }
            Ok(())
        }
    }

    impl Store for Failing {
        fn put_entries(&self, entries: &[Entry]) -> Result<Put, StoreError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Io("no space left on device".into()));
            }
            self.inner.put_entries(entries)
        }
        fn remove_entries(&self, ids: &[EntryId]) -> Result<(), StoreError> {
            self.inner.remove_entries(ids)
        }
        fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
            self.inner.entry(id)
        }
        fn contains(&self, id: &EntryId) -> Result<bool, StoreError> {
            self.inner.contains(id)
        }
        fn len(&self) -> Result<usize, StoreError> {
            self.inner.len()
        }
        fn count(&self, subwiki: &SubwikiId) -> Result<usize, StoreError> {
            self.inner.count(subwiki)
        }
        fn items(&self, subwiki: &SubwikiId) -> Result<Vec<(Timestamp, EntryId)>, StoreError> {
            self.inner.items(subwiki)
        }
        fn load(&self, subwiki: &SubwikiId) -> Result<Loaded, StoreError> {
            self.inner.load(subwiki)
        }
        fn index(&self, subwiki: &SubwikiId) -> Result<Option<Vec<agora_crdt::Held>>, StoreError> {
            self.inner.index(subwiki)
        }
        fn feed(
            &self,
            subwikis: &[SubwikiId],
            before: Option<(Timestamp, DocId)>,
            limit: usize,
        ) -> Result<Vec<FeedKey>, StoreError> {
            self.inner.feed(subwikis, before, limit)
        }
        fn set_subwiki(&self, record: SubwikiRecord) -> Result<(), StoreError> {
            self.inner.set_subwiki(record)
        }
        fn subwikis(&self) -> Result<Vec<SubwikiRecord>, StoreError> {
            self.inner.subwikis()
        }
        fn put_snapshots(&self, snapshots: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
            self.inner.put_snapshots(snapshots)
        }
        fn snapshot(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.snapshot(doc)
        }
        fn put_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
            self.views()?;
            self.inner.put_views(views)
        }
        fn cache_views(&self, views: &[(DocId, Vec<u8>)]) -> Result<(), StoreError> {
            self.views()?;
            self.inner.cache_views(views)
        }
        fn remove_views(&self, docs: &[DocId]) -> Result<(), StoreError> {
            self.inner.remove_views(docs)
        }
        fn view(&self, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.view(doc)
        }
        fn put_blob(&self, bytes: &[u8]) -> Result<BlobHash, StoreError> {
            self.inner.put_blob(bytes)
        }
        fn blob(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.blob(hash)
        }
        fn remove_blob(&self, hash: &BlobHash) -> Result<(), StoreError> {
            self.inner.remove_blob(hash)
        }
        fn purge(&self, subwiki: &SubwikiId, purged: &[Purged]) -> Result<(), StoreError> {
            self.inner.purge(subwiki, purged)
        }
        fn unpurge(&self, subwiki: &SubwikiId, docs: &[DocId]) -> Result<(), StoreError> {
            self.inner.unpurge(subwiki, docs)
        }
        fn tombstones(&self, subwiki: &SubwikiId) -> Result<Vec<Tombstone>, StoreError> {
            self.inner.tombstones(subwiki)
        }
        fn purged_ids(&self, subwiki: &SubwikiId) -> Result<Vec<EntryId>, StoreError> {
            self.inner.purged_ids(subwiki)
        }
        fn remove_subwiki(&self, subwiki: &SubwikiId) -> Result<(), StoreError> {
            self.inner.remove_subwiki(subwiki)
        }
        fn rebuild_indexes(&self) -> Result<Rebuilt, StoreError> {
            self.inner.rebuild_indexes()
        }
    }

    /// A subwiki's reconciliation snapshot is read again only when its own entries changed:
    /// entries stored in another subwiki, and peers coming and going, leave it as it is.
    #[test]
    fn a_snapshot_is_read_again_only_when_its_subwiki_changed() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Home::new(dir.path()).load_or_init().unwrap();
        let key = identity.author.clone();
        let core = Core::new(Arc::new(MemoryStore::new()), identity, None);
        let (mut one, first) = Replica::found(&key, now(), "one", "", Policy::default()).unwrap();
        let (mut two, second) = Replica::found(&key, now(), "two", "", Policy::default()).unwrap();
        core.accept(one.id(), vec![first]).unwrap();
        core.accept(two.id(), vec![second]).unwrap();
        let snapshots = Snapshots::default();
        let before = snapshot(&snapshots, &core, one.id()).unwrap();
        assert!(fresh_snapshot(&snapshots, &core, one.id()).is_some());

        // A post in the other subwiki, and a change a peer's coming would notify.
        let post = PostContent {
            title: "elsewhere".into(),
            ..PostContent::default()
        };
        let elsewhere = two.create_post(&key, now(), post).unwrap();
        core.accept(two.id(), vec![elsewhere]).unwrap();
        core.notify();
        assert!(
            fresh_snapshot(&snapshots, &core, one.id()).is_some(),
            "still fresh"
        );

        // A post in this subwiki: read again, with it.
        let post = PostContent {
            title: "here".into(),
            ..PostContent::default()
        };
        let here = one.create_post(&key, now(), post).unwrap();
        core.accept(one.id(), vec![here.clone()]).unwrap();
        assert!(fresh_snapshot(&snapshots, &core, one.id()).is_none());
        let after = snapshot(&snapshots, &core, one.id()).unwrap();
        assert_eq!(after.len(), before.len() + 1);
    }

    /// A push is answered once its entries are durable: `Accepted` counts what was stored, and
    /// a push the store could not take is refused, never acknowledged.
    #[test]
    fn a_push_is_acknowledged_only_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Home::new(dir.path()).load_or_init().unwrap();
        let key = identity.author.clone();
        let store = Arc::new(Failing::default());
        let core = Core::new(store.clone(), identity, None);
        let (mut replica, genesis) =
            Replica::found(&key, now(), "s", "", Policy::default()).unwrap();
        let subwiki = replica.id();
        core.accept(subwiki, vec![genesis]).unwrap();
        core.store()
            .set_subwiki(SubwikiRecord {
                id: subwiki,
                joined: true,
            })
            .unwrap();
        let posts: Vec<Entry> = (0..2)
            .map(|i| {
                let post = PostContent {
                    title: format!("p{i}"),
                    ..PostContent::default()
                };
                replica.create_post(&key, now(), post).unwrap()
            })
            .collect();
        let snapshots = Snapshots::default();
        let peer = PeerId::random();
        let push = |entries: &[Entry]| {
            Request::Push {
                subwiki,
                entries: entries.iter().map(|e| e.bytes().to_vec()).collect(),
            }
            .encode()
        };

        // The disk is full: refused, nothing acknowledged, nothing stored.
        store.failing.store(true, Ordering::SeqCst);
        let (response, strikes) = respond(&core, &snapshots, peer, &push(&posts[..1]));
        assert!(
            matches!(&response, Response::Refused { reason } if reason.contains("not stored")),
            "{response:?}"
        );
        assert!(strikes.is_empty(), "the peer did nothing wrong");
        assert!(!store.contains(&posts[0].id()).unwrap());

        // Space again: both stored before the answer, which counts them.
        store.failing.store(false, Ordering::SeqCst);
        let (response, _) = respond(&core, &snapshots, peer, &push(&posts));
        assert_eq!(response, Response::Accepted { count: 2 });
        for post in &posts {
            assert!(store.contains(&post.id()).unwrap());
        }
    }

    /// A local write whose entry is durable is acknowledged even if the views derived from it
    /// cannot be kept (they are rendered on the next read); the summary it makes stale is gone.
    #[test]
    fn a_durable_local_write_is_acknowledged_when_its_views_cannot_be_kept() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Home::new(dir.path()).load_or_init().unwrap();
        let store = Arc::new(Failing::default());
        let core = Core::new(store.clone(), identity, None);
        let subwiki = SubwikiId::from(core.found("s", "", Policy::default()).unwrap().id());
        let post = core
            .local(subwiki, |r, key, t| {
                r.create_post(key, t, PostContent::default()).map(Some)
            })
            .unwrap()
            .unwrap();
        store.views_failing.store(true, Ordering::SeqCst);
        let vote = core
            .local(subwiki, |r, key, t| {
                let target = agora_crdt::VoteTarget::Post(post.id().into());
                r.vote(key, t, target, agora_crdt::VoteValue::Hide, "")
                    .map(Some)
            })
            .expect("acknowledged: the vote is on the disk")
            .unwrap();
        assert!(store.contains(&vote.id()).unwrap());
        let key = crate::moderation::summary_key(&subwiki);
        assert_eq!(
            store.view(&key).unwrap(),
            None,
            "no stale summary is left behind"
        );
        // Space again: the summary is computed from the entries, with the vote, and kept.
        store.views_failing.store(false, Ordering::SeqCst);
        core.moderation_summary(subwiki).unwrap();
        assert!(store.view(&key).unwrap().is_some());
        assert_eq!(
            core.with_replica(subwiki, |r| Ok(r.votes().count()))
                .unwrap(),
            1
        );
    }
}
