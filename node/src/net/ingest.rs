//! The ingest worker: where entries from peers are validated, checked against their subwiki
//! and stored, off the network task.
//!
//! The network task must never wait on a disk or on a large batch of Automerge and signature
//! work: while it does, it answers no ping, forwards no gossip and serves no other peer. So it
//! hands what peers send to one worker thread over a bounded channel ([`Handle`]) and goes on:
//!
//! - a gossip message goes as it came (bytes); the worker validates it, takes it into the
//!   subwiki with the other gossip that arrived meanwhile (one [`Core::accept`], so one sync
//!   for all of them), and sends the verdict back ([`Verdict`]), which the network task reports
//!   to gossipsub (forward, ignore, or penalise the sender);
//! - entries fetched by catch-up go as the session validated them;
//! - the end of a session goes behind them, so a subwiki counts as synced only once what the
//!   session fetched is stored.
//!
//! When the channel is full, gossip is ignored (not forwarded: catch-up brings it later), and
//! the end of a session waits in a task of its own. Batches fetched by catch-up wait at most
//! [`MAX_FETCHED_BATCHES`] at a time: past that, [`Handle::try_fetched`] gives the batch back and
//! the session that fetched it waits (see `sync.rs`) until the worker reports
//! [`Report::Drained`]. Entries pushed by peers, and the rare batch of a session whose peer has
//! gone, are taken in on the network task itself when the channel is full, rather than dropped.

use std::sync::Arc;

use agora_crdt::{Entry, EntryId, SubwikiId};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::core::{Core, now};
use crate::proto::Stats as SessionStats;

/// Jobs that may wait for the worker.
const JOB_CAPACITY: usize = 256;
/// Jobs the worker takes at once: their gossip for one subwiki is stored with one sync.
const MAX_BATCH_JOBS: usize = 256;
/// Batches fetched by catch-up that may wait for the worker (each at most
/// [`crate::proto::MAX_BATCH_BYTES`]).
pub(crate) const MAX_FETCHED_BATCHES: usize = 4;

/// Work handed to the worker.
enum Job {
    Gossip {
        subwiki: SubwikiId,
        bytes: Vec<u8>,
        message_id: MessageId,
        source: PeerId,
    },
    Fetched {
        subwiki: SubwikiId,
        entries: Vec<Entry>,
        /// The batch's place among the [`MAX_FETCHED_BATCHES`], freed once it is stored.
        slot: Option<OwnedSemaphorePermit>,
    },
    Reconciled {
        subwiki: SubwikiId,
        peer: PeerId,
        stats: SessionStats,
    },
}

/// What the worker tells the network task.
#[derive(Debug)]
pub(crate) enum Report {
    /// What became of a gossip message, for gossipsub.
    Gossip(Verdict),
    /// A catch-up session's entries are stored: the subwiki's next session may start, from a
    /// snapshot of the local set that has them. `quiet` if it exchanged no entry.
    Reconciled {
        subwiki: SubwikiId,
        peer: PeerId,
        quiet: bool,
    },
    /// A fetched batch was taken in: a session waiting for room may go on.
    Drained,
}

/// What became of a gossip message.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) message_id: MessageId,
    pub(crate) source: PeerId,
    pub(crate) acceptance: MessageAcceptance,
}

/// The network task's end of the worker.
#[derive(Clone)]
pub(crate) struct Handle {
    jobs: mpsc::Sender<Job>,
    fetched_slots: Arc<Semaphore>,
}

/// Starts the worker thread. It runs until every [`Handle`] is dropped and the jobs queued
/// before are done; join it (after dropping the handles) to know the store is let go of.
pub(crate) fn start(
    core: Arc<Core>,
) -> std::io::Result<(Handle, mpsc::Receiver<Report>, std::thread::JoinHandle<()>)> {
    let (jobs, queue) = mpsc::channel(JOB_CAPACITY);
    let (verdicts, verdict_rx) = mpsc::channel(JOB_CAPACITY);
    let worker = std::thread::Builder::new()
        .name("agora-ingest".into())
        .spawn(move || work(&core, queue, &verdicts))?;
    let handle = Handle {
        jobs,
        fetched_slots: Arc::new(Semaphore::new(MAX_FETCHED_BATCHES)),
    };
    Ok((handle, verdict_rx, worker))
}

impl Handle {
    /// Hands a gossip message of a joined subwiki to the worker; false if the worker is too
    /// busy (the message is then ignored, and catch-up brings it later).
    pub(crate) fn gossip(
        &self,
        subwiki: SubwikiId,
        bytes: Vec<u8>,
        message_id: MessageId,
        source: PeerId,
    ) -> bool {
        self.jobs
            .try_send(Job::Gossip {
                subwiki,
                bytes,
                message_id,
                source,
            })
            .is_ok()
    }

    /// True if a fetched batch would be taken now by [`Handle::try_fetched`].
    pub(crate) fn has_room(&self) -> bool {
        self.fetched_slots.available_permits() > 0
    }

    /// Hands a batch a catch-up fetched (already validated) to the worker, or gives it back
    /// when [`MAX_FETCHED_BATCHES`] are waiting already (or the worker is gone).
    pub(crate) fn try_fetched(
        &self,
        subwiki: SubwikiId,
        entries: Vec<Entry>,
    ) -> Result<(), Vec<Entry>> {
        let Ok(slot) = self.fetched_slots.clone().try_acquire_owned() else {
            return Err(entries);
        };
        let job = Job::Fetched {
            subwiki,
            entries,
            slot: Some(slot),
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(
                mpsc::error::TrySendError::Full(Job::Fetched { entries, .. })
                | mpsc::error::TrySendError::Closed(Job::Fetched { entries, .. }),
            ) => Err(entries),
            Err(_) => Ok(()),
        }
    }

    /// Hands entries (pushed by a peer, or fetched by a session whose peer has gone) to the
    /// worker, or, when it is too busy, takes them in here and now.
    pub(crate) fn fetched(&self, core: &Core, subwiki: SubwikiId, entries: Vec<Entry>) {
        if let Err(
            mpsc::error::TrySendError::Full(Job::Fetched {
                subwiki, entries, ..
            })
            | mpsc::error::TrySendError::Closed(Job::Fetched {
                subwiki, entries, ..
            }),
        ) = self.jobs.try_send(Job::Fetched {
            subwiki,
            entries,
            slot: None,
        }) {
            take_fetched(core, subwiki, entries);
        }
    }

    /// Records the end of a catch-up session once the entries handed before it are stored, and
    /// then reports [`Report::Reconciled`].
    pub(crate) fn reconciled(&self, subwiki: SubwikiId, peer: PeerId, stats: SessionStats) {
        let job = Job::Reconciled {
            subwiki,
            peer,
            stats,
        };
        if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
            let jobs = self.jobs.clone();
            tokio::spawn(async move {
                let _ = jobs.send(job).await;
            });
        }
    }
}

fn work(core: &Core, mut queue: mpsc::Receiver<Job>, verdicts: &mpsc::Sender<Report>) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_JOBS {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run(core, batch, verdicts);
    }
}

/// Gossip entries validated and waiting to be stored together, per subwiki.
type GossipBatch = Vec<(SubwikiId, Entry, MessageId, PeerId, u64)>;

/// Runs a batch of jobs in order, except that the gossip between two other jobs is taken in
/// together.
fn run(core: &Core, batch: Vec<Job>, verdicts: &mpsc::Sender<Report>) {
    let mut gossip: GossipBatch = Vec::new();
    for job in batch {
        match job {
            Job::Gossip {
                subwiki,
                bytes,
                message_id,
                source,
            } => match agora_crdt::validate(&bytes, now()) {
                Ok(entry) if entry.subwiki() == subwiki => {
                    gossip.push((subwiki, entry, message_id, source, bytes.len() as u64));
                }
                Ok(_) => say(verdicts, message_id, source, MessageAcceptance::Reject),
                // Claimed too far in the future: not yet, and no fault of the forwarder.
                Err(e) if e.is_retriable() => {
                    say(verdicts, message_id, source, MessageAcceptance::Ignore);
                }
                Err(e) => {
                    tracing::debug!(peer = %source, "invalid gossip entry: {e}");
                    say(verdicts, message_id, source, MessageAcceptance::Reject);
                }
            },
            Job::Fetched {
                subwiki,
                entries,
                slot,
            } => {
                take_gossip(core, std::mem::take(&mut gossip), verdicts);
                take_fetched(core, subwiki, entries);
                if let Some(slot) = slot {
                    drop(slot);
                    let _ = verdicts.blocking_send(Report::Drained);
                }
            }
            Job::Reconciled {
                subwiki,
                peer,
                stats,
            } => {
                take_gossip(core, std::mem::take(&mut gossip), verdicts);
                let quiet = stats.fetched == 0 && stats.pushed == 0 && stats.invalid == 0;
                reconciled(core, subwiki, peer, stats);
                let _ = verdicts.blocking_send(Report::Reconciled {
                    subwiki,
                    peer,
                    quiet,
                });
            }
        }
    }
    take_gossip(core, gossip, verdicts);
}

fn say(
    verdicts: &mpsc::Sender<Report>,
    message_id: MessageId,
    source: PeerId,
    acceptance: MessageAcceptance,
) {
    // The network task may be gone (shutting down): nothing left to tell.
    let _ = verdicts.blocking_send(Report::Gossip(Verdict {
        message_id,
        source,
        acceptance,
    }));
}

/// Stores gossip entries, one [`Core::accept`] per subwiki, and says what became of each:
/// new ones are forwarded; those already held, refused for their context (a change to someone
/// else's comment, say) or not stored are not, and are no fault of the forwarder, who may lack
/// the context.
fn take_gossip(core: &Core, gossip: GossipBatch, verdicts: &mpsc::Sender<Report>) {
    let mut subwikis: Vec<SubwikiId> = gossip.iter().map(|(s, ..)| *s).collect();
    subwikis.sort();
    subwikis.dedup();
    for subwiki in subwikis {
        let mine: Vec<&(SubwikiId, Entry, MessageId, PeerId, u64)> =
            gossip.iter().filter(|(s, ..)| *s == subwiki).collect();
        let entries: Vec<Entry> = mine.iter().map(|(_, e, ..)| e.clone()).collect();
        let accepted = match core.accept(subwiki, entries) {
            Ok(accepted) => Some(accepted),
            Err(e) => {
                tracing::warn!(%subwiki, "gossip entries not stored: {e}");
                None
            }
        };
        for (_, entry, message_id, source, len) in mine {
            let id: EntryId = entry.id();
            let acceptance = match &accepted {
                Some(a) if a.new.contains(&id) => {
                    core.update_status(subwiki, |s| {
                        s.received += 1;
                        s.entry_bytes += len;
                    });
                    MessageAcceptance::Accept
                }
                Some(a) if !a.refused.iter().any(|(r, _)| *r == id) => {
                    core.update_status(subwiki, |s| {
                        s.received += 1;
                        s.entry_bytes += len;
                        s.duplicates += 1;
                    });
                    MessageAcceptance::Ignore
                }
                _ => MessageAcceptance::Ignore,
            };
            say(verdicts, message_id.clone(), *source, acceptance);
        }
    }
}

/// Counts a finished catch-up session.
pub(crate) fn reconciled(core: &Core, subwiki: SubwikiId, peer: PeerId, stats: SessionStats) {
    core.update_status(subwiki, |s| {
        s.syncs += 1;
        s.last_sync = Some(now());
        s.bytes_received += stats.bytes_received;
        s.round_trips += u64::from(stats.rounds);
    });
    tracing::debug!(%peer, %subwiki, ?stats, "reconciled");
    core.notify();
}

/// Stores entries a peer pushed, now; returns how many are durable (new or already held).
pub(crate) fn take_pushed(
    core: &Core,
    subwiki: SubwikiId,
    entries: Vec<Entry>,
) -> Result<usize, crate::NodeError> {
    let count = entries.len() as u64;
    let bytes: u64 = entries.iter().map(|e| e.bytes().len() as u64).sum();
    let accepted = core.accept(subwiki, entries)?;
    core.update_status(subwiki, |s| {
        s.received += count;
        s.entry_bytes += bytes;
        s.duplicates += accepted.duplicates as u64;
    });
    Ok(accepted.new.len() + accepted.duplicates)
}

/// Stores entries a catch-up fetched (they were validated by the session).
pub(crate) fn take_fetched(core: &Core, subwiki: SubwikiId, entries: Vec<Entry>) {
    let count = entries.len() as u64;
    let bytes: u64 = entries.iter().map(|e| e.bytes().len() as u64).sum();
    match core.accept(subwiki, entries) {
        Ok(accepted) => core.update_status(subwiki, |s| {
            s.received += count;
            s.entry_bytes += bytes;
            s.duplicates += accepted.duplicates as u64;
        }),
        Err(e) => tracing::warn!(%subwiki, "fetched entries not stored: {e}"),
    }
}
