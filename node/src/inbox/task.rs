//! The task that keeps the inbox of a started node up to date, and the catch-up that compares a
//! subwiki's entries with those looked at.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use agora_crdt::EntryId;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{Inbox, derive};
use crate::Stored;
use crate::core::Core;
use crate::error::NodeError;

/// How long changed items may wait before they are written: a flood of items rewrites the file
/// at most this often.
const WRITE_DELAY: Duration = Duration::from_secs(1);
/// Writes taken from the broadcast at once.
const MAX_BATCH: usize = 64;
/// Entries read from the store at once when catching up.
const CATCH_UP_CHUNK: usize = 512;
/// Chunks between writes of the items while catching up, so that a long catch-up keeps its
/// progress.
const CHUNKS_PER_WRITE: usize = 16;

/// Starts the task that keeps `inbox` up to date with the writes of `core`'s entries. It holds
/// the core only while it works on something, and ends when the core is gone.
pub(crate) fn spawn(core: &Arc<Core>, inbox: &Arc<Inbox>) {
    inbox.live.store(true, Ordering::Release);
    // Subscribed before the catch-up: nothing written meanwhile is missed.
    let stored = core.subscribe_stored();
    tokio::spawn(run(Arc::downgrade(core), inbox.clone(), stored));
}

/// Runs `work` on a blocking thread with the core, if it is still there.
async fn blocking(
    core: &Weak<Core>,
    inbox: &Arc<Inbox>,
    work: impl FnOnce(&Weak<Core>, &Inbox) -> Result<bool, NodeError> + Send + 'static,
) {
    let (weak, shared) = (core.clone(), inbox.clone());
    let done = tokio::task::spawn_blocking(move || {
        let changed = work(&weak, shared.as_ref());
        match changed {
            Ok(true) => {
                if let Some(core) = weak.upgrade() {
                    core.notify();
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("inbox not brought up to date (tried again at the next start): {e}")
            }
        }
    })
    .await;
    if let Err(e) = done {
        tracing::debug!("inbox work stopped: {e}");
    }
}

async fn run(core: Weak<Core>, inbox: Arc<Inbox>, mut stored: Receiver<Stored>) {
    blocking(&core, &inbox, catch_up).await;
    blocking(&core, &inbox, flush).await;
    let mut write_at: Option<tokio::time::Instant> = None;
    loop {
        let wait = async {
            match write_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = stored.recv() => {
                let mut batch = Vec::new();
                let mut lagged = false;
                match received {
                    Ok(first) => batch.push(first),
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => break,
                }
                while batch.len() < MAX_BATCH && !lagged {
                    match stored.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(TryRecvError::Lagged(_)) => lagged = true,
                        Err(_) => break,
                    }
                }
                // Entries were deleted (a retraction): the items they gave go, with their text.
                let removed = batch.iter().any(|write| write.removed > 0);
                blocking(&core, &inbox, move |core, inbox| {
                    let Some(core) = core.upgrade() else { return Ok(false) };
                    let mut changed = false;
                    for write in &batch {
                        changed |= derive::apply_entries(&core, inbox, write.subwiki, &write.entries)?;
                        if write.moderation {
                            changed |= derive::refresh_outcomes(&core, inbox, write.subwiki)?;
                        }
                    }
                    Ok(changed)
                })
                .await;
                if lagged || removed {
                    // Writes were missed, or entries removed: compare the store with what was
                    // looked at.
                    blocking(&core, &inbox, catch_up).await;
                }
                write_at.get_or_insert_with(|| tokio::time::Instant::now() + WRITE_DELAY);
            }
            () = wait => {
                write_at = None;
                blocking(&core, &inbox, flush).await;
            }
        }
    }
    // The core is gone, and with it the store: what was not written is derived again at the
    // next start (its entries were not recorded as looked at). Writing now could race with a
    // node started again on the same home.
}

/// Writes the inbox, holding the core meanwhile: never after the node is gone.
fn flush(core: &Weak<Core>, inbox: &Inbox) -> Result<bool, NodeError> {
    if let Some(_alive) = core.upgrade() {
        inbox.flush();
    }
    Ok(false)
}

/// Looks at every entry of the joined subwikis that was not looked at (written while no task
/// ran, or missed), and drops the items of entries no longer held. Holds the core one chunk of
/// entries at a time. Returns whether an item changed.
pub(super) fn catch_up(weak: &Weak<Core>, inbox: &Inbox) -> Result<bool, NodeError> {
    let Some(core) = weak.upgrade() else {
        return Ok(false);
    };
    let joined = core.joined()?;
    drop(core);
    let mut changed = false;
    for subwiki in joined {
        let Some(core) = weak.upgrade() else {
            return Ok(changed);
        };
        if !core.store().contains(&subwiki.into())? {
            continue;
        }
        let held: Vec<EntryId> = core
            .store()
            .items(&subwiki)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let held_set: HashSet<EntryId> = held.iter().copied().collect();
        changed |= inbox.retain_held(subwiki, &held_set);
        let seen = inbox.seen(subwiki);
        if seen.iter().any(|id| !held_set.contains(id)) {
            let kept: HashSet<EntryId> = seen.intersection(&held_set).copied().collect();
            if let Err(e) = inbox.files.rewrite_seen(subwiki, &kept) {
                tracing::debug!(%subwiki, "inbox: record of entries looked at not rewritten: {e}");
            }
        }
        let unseen: Vec<EntryId> = held.into_iter().filter(|id| !seen.contains(id)).collect();
        drop((seen, held_set, core));
        if !unseen.is_empty() {
            tracing::debug!(%subwiki, entries = unseen.len(), "inbox: looking at entries");
        }
        for (i, chunk) in unseen.chunks(CATCH_UP_CHUNK).enumerate() {
            let Some(core) = weak.upgrade() else {
                return Ok(changed);
            };
            let mut entries = Vec::with_capacity(chunk.len());
            for id in chunk {
                if let Some(entry) = core.store().entry(id)? {
                    entries.push(entry);
                }
            }
            changed |= derive::apply_entries(&core, inbox, subwiki, &entries)?;
            if (i + 1) % CHUNKS_PER_WRITE == 0 {
                inbox.flush();
            }
        }
        let Some(core) = weak.upgrade() else {
            return Ok(changed);
        };
        let stale = !unseen.is_empty()
            || !inbox.has_outcomes(&subwiki)
            || core.overrides().ignored != inbox.outcome_overrides();
        if stale {
            changed |= derive::refresh_outcomes(&core, inbox, subwiki)?;
        }
    }
    Ok(changed)
}
