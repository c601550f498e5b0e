//! Drives [`crate::proto`] sessions over the request-response protocol: runs catch-up sessions
//! with peers, answers peers' requests with a [`proto::Responder`], and hands every valid entry
//! to the node's core.
//!
//! # One session per subwiki at a time
//!
//! A session learns what it lacks from a snapshot of the local set taken when it starts, so two
//! sessions about the same subwiki running at once (with two peers) would each fetch the whole
//! difference: a newcomer that joined with three peers connected downloaded the history three
//! times. So each subwiki has one *lane*: at most one session (or first fetch of its genesis)
//! runs at a time, and the other peers wait in a queue. When a session ends, however it ends,
//! the next queued peer starts, from a fresh snapshot that includes what the last one fetched,
//! so it only reconciles (one round trip when nothing differs) and fetches what is really new.
//! Answering peers' sessions is not limited: pull-only, they fetch from us and send nothing.

use std::collections::{HashMap, VecDeque};

use agora_crdt::{EntryId, SubwikiId};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::{Multiaddr, PeerId, Swarm};

use super::Behaviour;
use super::ingest;
use crate::core::{Core, now};
use crate::proto::{self, Output, Request, Response, Session, Snapshot};

/// What an outstanding request belongs to.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// A reconciliation session.
    Session(PeerId, SubwikiId),
    /// The first fetch of a subwiki joined by id: its genesis entry.
    Genesis(PeerId, SubwikiId),
}

/// Peers that may wait for a subwiki's lane; when it is full, a request to start one more is
/// dropped (the next periodic resync asks again).
const MAX_QUEUED: usize = 256;

/// The catch-up of one subwiki: the peer being reconciled with and those waiting.
#[derive(Debug, Default)]
struct Lane {
    /// The peer whose session, or genesis fetch, is in progress.
    active: Option<PeerId>,
    /// Peers to reconcile with next, first come first served.
    queue: VecDeque<PeerId>,
}

/// Sessions in progress and the responder's cache.
#[derive(Default)]
pub(crate) struct Syncer {
    sessions: HashMap<(PeerId, SubwikiId), Session>,
    /// One lane per subwiki being caught up.
    lanes: HashMap<SubwikiId, Lane>,
    requests: HashMap<OutboundRequestId, Pending>,
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// The responder's view of each subwiki, with the store generation it was read at.
    snapshots: HashMap<SubwikiId, (u64, Snapshot)>,
    /// Where fetched entries go to be stored (off the network task); without it they are
    /// stored here.
    ingest: Option<ingest::Handle>,
}

/// Invalid entries or protocol violations per peer, to penalise.
pub(crate) type Strikes = Vec<(PeerId, u32)>;

impl Syncer {
    /// A syncer that hands what it fetches to the ingest worker.
    pub(crate) fn new(ingest: ingest::Handle) -> Self {
        Self {
            ingest: Some(ingest),
            ..Self::default()
        }
    }

    /// Stores fetched (or pushed) entries: through the ingest worker if there is one.
    fn store(&self, core: &Core, subwiki: SubwikiId, entries: Vec<agora_crdt::Entry>) {
        match &self.ingest {
            Some(ingest) => ingest.fetched(core, subwiki, entries),
            None => ingest::take_fetched(core, subwiki, entries),
        }
    }

    pub(crate) fn connected(&mut self, peer: PeerId, addr: Multiaddr) {
        let addrs = self.addresses.entry(peer).or_default();
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// Forgets a peer that has gone; the subwikis it was catching up go on with the next peer.
    pub(crate) fn disconnected(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: &PeerId,
    ) {
        self.addresses.remove(peer);
        self.sessions.retain(|(p, _), _| p != peer);
        self.requests.retain(|_, pending| match pending {
            Pending::Session(p, _) | Pending::Genesis(p, _) => p != peer,
        });
        let mut orphaned = Vec::new();
        for (subwiki, lane) in &mut self.lanes {
            lane.queue.retain(|p| p != peer);
            if lane.active == Some(*peer) {
                orphaned.push(*subwiki);
            }
        }
        for subwiki in orphaned {
            self.finish(swarm, core, subwiki);
        }
    }

    pub(crate) fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.addresses.get(peer).cloned().unwrap_or_default()
    }

    /// Reconciles `subwiki` with `peer`: at once if no other session about it is running,
    /// otherwise once those queued before it are done. Nothing if `peer` is already running or
    /// queued for it.
    pub(crate) fn start(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
    ) {
        let lane = self.lanes.entry(subwiki).or_default();
        if lane.active == Some(peer) || lane.queue.contains(&peer) {
            return;
        }
        if lane.active.is_some() {
            if lane.queue.len() < MAX_QUEUED {
                lane.queue.push_back(peer);
            }
            return;
        }
        lane.active = Some(peer);
        if !self.begin(swarm, core, peer, subwiki) {
            self.finish(swarm, core, subwiki);
        }
    }

    /// Ends the lane's current session and starts the next queued peer that is still
    /// connected, if any.
    /// The entries of the session with `peer` are stored: if it is still the subwiki's active
    /// one (the peer did not go meanwhile), the next queued session starts.
    pub(crate) fn stored(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        subwiki: SubwikiId,
        peer: PeerId,
    ) {
        let active = self.lanes.get(&subwiki).and_then(|l| l.active);
        if active == Some(peer) && !self.sessions.contains_key(&(peer, subwiki)) {
            self.finish(swarm, core, subwiki);
        }
    }

    /// Ends the subwiki's current session and starts the next queued one, if any.
    fn finish(&mut self, swarm: &mut Swarm<Behaviour>, core: &Core, subwiki: SubwikiId) {
        loop {
            let Some(lane) = self.lanes.get_mut(&subwiki) else {
                return;
            };
            lane.active = None;
            let Some(peer) = lane.queue.pop_front() else {
                self.lanes.remove(&subwiki);
                return;
            };
            if !swarm.is_connected(&peer) {
                continue;
            }
            lane.active = Some(peer);
            if self.begin(swarm, core, peer, subwiki) {
                return;
            }
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
        let items = match core.store().items(&subwiki) {
            Ok(items) => Snapshot::new(items),
            Err(e) => {
                tracing::warn!(%subwiki, "cannot read the reconciliation index: {e}");
                return false;
            }
        };
        match Session::start(subwiki, items, proto::Config::default()) {
            Ok((session, request)) => {
                let id = swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, request.encode());
                self.requests.insert(id, Pending::Session(peer, subwiki));
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
        core: &Core,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) -> Strikes {
        let mut strikes = Strikes::new();
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = self.respond(core, peer, &request, &mut strikes);
                    let _ = swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response.encode());
                }
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
                Some(Pending::Session(peer, subwiki) | Pending::Genesis(peer, subwiki)) => {
                    tracing::debug!(%peer, %subwiki, "reconciliation request failed: {error}");
                    self.sessions.remove(&(peer, subwiki));
                    self.finish(swarm, core, subwiki);
                }
                None => {}
            },
            _ => {}
        }
        strikes
    }

    fn respond(
        &mut self,
        core: &Core,
        peer: PeerId,
        bytes: &[u8],
        strikes: &mut Strikes,
    ) -> Response {
        let request = match Request::decode(bytes) {
            Ok(request) => request,
            Err(e) => {
                strikes.push((peer, 1));
                return Response::Refused {
                    reason: format!("malformed request: {e}"),
                };
            }
        };
        let subwiki = request.subwiki();
        let generation = core.generation();
        let snapshot = if core.is_joined(&subwiki) {
            let fresh = self
                .snapshots
                .get(&subwiki)
                .is_some_and(|(g, _)| *g == generation);
            if !fresh {
                match core.store().items(&subwiki) {
                    Ok(items) => {
                        self.snapshots
                            .insert(subwiki, (generation, Snapshot::new(items)));
                    }
                    Err(e) => {
                        return Response::Refused {
                            reason: format!("store: {e}"),
                        };
                    }
                }
            }
            self.snapshots.get(&subwiki).map(|(_, s)| s)
        } else {
            None
        };
        let responder = match proto::Responder::new(proto::Config::default()) {
            Ok(r) => r,
            Err(e) => {
                return Response::Refused {
                    reason: e.to_string(),
                };
            }
        };
        // Only entries of the subwiki asked about (and the responder only answers for
        // subwikis this node is in).
        let load = |id: &EntryId| {
            core.store()
                .entry(id)
                .ok()
                .flatten()
                .filter(|e| e.subwiki() == subwiki)
                .map(|e| e.bytes().to_vec())
        };
        let reply = responder.handle(request, snapshot, load, now());
        match reply.fault {
            Some(proto::Fault::Invalid { count, .. }) => {
                strikes.push((peer, u32::try_from(count).unwrap_or(u32::MAX)));
            }
            Some(proto::Fault::Protocol(_)) => strikes.push((peer, 1)),
            None => {}
        }
        if !reply.store.is_empty() {
            self.store(core, subwiki, reply.store);
        }
        reply.response
    }

    fn on_response(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        pending: Pending,
        bytes: &[u8],
        strikes: &mut Strikes,
    ) {
        let response = match Response::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                let (Pending::Session(peer, subwiki) | Pending::Genesis(peer, subwiki)) = pending;
                tracing::debug!(%peer, %subwiki, "malformed response: {e}");
                self.sessions.remove(&(peer, subwiki));
                strikes.push((peer, 1));
                self.finish(swarm, core, subwiki);
                return;
            }
        };
        match pending {
            Pending::Genesis(peer, subwiki) => {
                self.on_genesis(swarm, core, peer, subwiki, response, strikes)
            }
            Pending::Session(peer, subwiki) => {
                let Some(mut session) = self.sessions.remove(&(peer, subwiki)) else {
                    self.finish(swarm, core, subwiki);
                    return;
                };
                let outputs = session.handle(response, now());
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
            self.finish(swarm, core, subwiki);
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
                    // The same peer goes on with the session proper.
                    Ok(_) => self.begin(swarm, core, peer, subwiki),
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
            self.finish(swarm, core, subwiki);
        }
    }

    /// Carries out a session's outputs until it waits for the peer again.
    #[allow(clippy::too_many_arguments)]
    fn drive(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        core: &Core,
        peer: PeerId,
        subwiki: SubwikiId,
        mut session: Session,
        outputs: Result<Vec<Output>, proto::ProtoError>,
        strikes: &mut Strikes,
    ) {
        let mut queue = match outputs {
            Ok(outputs) => outputs,
            Err(proto::ProtoError::Refused { reason }) => {
                tracing::debug!(%peer, %subwiki, "peer declined to reconcile: {reason}");
                self.finish(swarm, core, subwiki);
                return;
            }
            Err(e) => {
                tracing::debug!(%peer, %subwiki, "reconciliation failed: {e}");
                strikes.push((peer, 1));
                self.finish(swarm, core, subwiki);
                return;
            }
        };
        let mut waiting = false;
        // The next session waits for this one's entries to be stored when the worker stores
        // them: it starts when the worker reports them stored.
        let mut deferred = false;
        while let Some(output) = (!queue.is_empty()).then(|| queue.remove(0)) {
            match output {
                Output::Send(request) => {
                    let id = swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, request.encode());
                    self.requests.insert(id, Pending::Session(peer, subwiki));
                    waiting = true;
                }
                Output::Store(entries) => self.store(core, subwiki, entries),
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
        if waiting && !session.is_finished() {
            self.sessions.insert((peer, subwiki), session);
        } else if !deferred {
            self.finish(swarm, core, subwiki);
        }
    }
}
