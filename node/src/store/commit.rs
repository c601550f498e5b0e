//! Group commit: concurrent writers share one sync.
//!
//! A writer makes its change (in memory, in the database's cache), then calls
//! [`Gate::commit`], which returns once a sync that *started after the call* has finished: that
//! sync covers the writer's change, and every change made before it started. If no sync is
//! running, the caller runs one itself. If one is running, it may have started before the
//! change was made, so the caller waits for the next one; every writer that arrives meanwhile
//! waits for that same next sync, which one of them runs. N writers arriving together cost
//! two syncs at most, whatever N is. This is the group commit of database write-ahead logs
//! (DeWitt et al., "Implementation techniques for main memory database systems", SIGMOD 1984;
//! PostgreSQL's WAL flush works so): one sync for all the commits queued behind the one in
//! progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The group-commit gate. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<State>,
    finished: Condvar,
    syncs: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Syncs started so far; the running one, if any, is number `started`.
    started: u64,
    /// The latest sync finished (syncs run one at a time, in order).
    completed: u64,
    running: bool,
    /// How the latest finished sync failed, if it did.
    last_error: Option<String>,
    /// Callers waiting for a sync, for tests.
    waiting: usize,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters updated together; a panicking sync leaves them usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once a sync that started after this call has finished, with its result; runs
    /// `sync` if no other caller is running one. `sync` must make durable every change made
    /// before it was called.
    pub(crate) fn commit(&self, sync: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let mut state = self.lock();
        // A sync running now may have started before the caller's change: wait for the next.
        let needed = state.started + 1;
        loop {
            if state.completed >= needed {
                // Syncs run in order, so the latest finished one started after this call too.
                return state.last_error.clone().map_or(Ok(()), Err);
            }
            if !state.running {
                state.running = true;
                state.started += 1;
                let this = state.started;
                drop(state);
                self.syncs.fetch_add(1, Ordering::Relaxed);
                let result = sync();
                let mut state = self.lock();
                state.running = false;
                state.completed = this;
                state.last_error = result.clone().err();
                drop(state);
                self.finished.notify_all();
                return result;
            }
            state.waiting += 1;
            state = self.finished.wait(state).unwrap_or_else(|p| p.into_inner());
            state.waiting -= 1;
        }
    }

    /// Syncs run so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiting
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// While one sync is held running, N writers arrive; they all return after one more sync.
    #[test]
    fn writers_arriving_during_a_sync_share_the_next_one() {
        const WRITERS: usize = 16;
        let gate = Arc::new(Gate::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let (release_tx, release_rx) = mpsc::sync_channel::<()>(1);
        let first = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.commit(|| {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok(())
                })
            })
        };
        started_rx.recv().unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (gate, ran) = (gate.clone(), ran.clone());
                std::thread::spawn(move || {
                    gate.commit(|| {
                        ran.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        // Wait for the event (every writer queued), with a timeout only as a guard.
        let guard = Instant::now();
        while gate.waiting() < WRITERS {
            assert!(
                guard.elapsed() < Duration::from_secs(30),
                "writers never queued"
            );
            std::thread::yield_now();
        }
        release_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "one sync covered all writers"
        );
        assert_eq!(gate.syncs(), 2);
    }

    #[test]
    fn a_failed_sync_is_reported_to_the_writers_it_covered_and_the_next_one_runs() {
        let gate = Gate::default();
        assert_eq!(
            gate.commit(|| Err("disk full".into())),
            Err("disk full".into())
        );
        assert_eq!(gate.commit(|| Ok(())), Ok(()));
        assert_eq!(gate.syncs(), 2);
    }
}
