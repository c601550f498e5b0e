//! Group commit: concurrent writers share one sync.
//!
//! A writer makes its change (in memory, in the database's cache), then calls
//! [`Gate::commit`], which returns once a sync that *started after the call* has finished: that
//! sync covers the writer's change, and every change made before it started. If no sync is
//! running, the caller starts one. If one is running, it may have started before the
//! change was made, so the caller waits for the next one; every writer that arrives meanwhile
//! waits for that same next sync, which one of them starts. N writers arriving together cost
//! two syncs at most, whatever N is. This is the group commit of database write-ahead logs
//! (DeWitt et al., "Implementation techniques for main memory database systems", SIGMOD 1984;
//! PostgreSQL's WAL flush works so): one sync for all the commits queued behind the one in
//! progress.
//!
//! Syncs run on a thread of the gate's own, and writers wait for them for a bounded time: a
//! disk that never answers (or a database that never wakes its flush, see `space.rs`) makes
//! every writer waiting fail after that time, instead of holding the caller (a tokio worker,
//! with its subwiki's lock) for ever. [`Gate::stalled`] then says so, for the store to refuse
//! writes until the sync ends. A failed sync is reported to every writer it covered.
//!
//! [`WriteLock`] is the store's write lock, also with a bounded wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The group-commit gate. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    shared: Arc<Shared>,
    /// Hands syncs to the gate's thread, started with the first sync.
    runner: Mutex<Option<mpsc::SyncSender<Job>>>,
}

/// A sync, with what to do when it ends.
type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug, Default)]
struct Shared {
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
    /// When the running sync started, if one runs.
    running: Option<Instant>,
    /// How the latest finished sync failed, if it did.
    last_error: Option<String>,
    /// Callers waiting for a sync, for tests.
    waiting: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters updated together; a panicking sync leaves them usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Gate {
    /// Returns once a sync that started after this call has finished, with its result; starts
    /// `sync` if no sync is running. `sync` must make durable every change made before it was
    /// called. Fails without waiting longer when no such sync has finished after `wait`.
    pub(crate) fn commit(
        &self,
        wait: Duration,
        sync: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        let mut sync = Some(sync);
        let mut state = self.shared.lock();
        // A sync running now may have started before the caller's change: wait for the next.
        let needed = state.started + 1;
        loop {
            if state.completed >= needed {
                // Syncs run in order, so the latest finished one started after this call too.
                return state.last_error.clone().map_or(Ok(()), Err);
            }
            if state.running.is_none()
                && let Some(sync) = sync.take()
            {
                state.running = Some(Instant::now());
                state.started += 1;
                let this = state.started;
                drop(state);
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                self.start(this, sync);
                state = self.shared.lock();
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the disk has not finished writing for {} s",
                    wait.as_secs()
                ));
            }
            state.waiting += 1;
            state = self
                .shared
                .finished
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            state.waiting -= 1;
        }
    }

    /// Runs sync number `this` on the gate's thread (on the caller's if that thread cannot be
    /// had), then records its result and wakes the writers.
    fn start(&self, this: u64, sync: impl FnOnce() -> Result<(), String> + Send + 'static) {
        let shared = Arc::clone(&self.shared);
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(sync))
                .unwrap_or_else(|_| Err("the sync panicked".into()));
            let mut state = shared.lock();
            state.running = None;
            state.completed = this;
            state.last_error = result.err();
            drop(state);
            shared.finished.notify_all();
        });
        let mut runner = self.runner.lock().unwrap_or_else(|p| p.into_inner());
        if runner.is_none() {
            // One sync runs at a time, so one job at most waits for the thread.
            let (tx, rx) = mpsc::sync_channel::<Job>(1);
            let spawned = std::thread::Builder::new()
                .name("agora-sync".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                });
            if spawned.is_ok() {
                *runner = Some(tx);
            }
        }
        let job = match runner.as_ref() {
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return,
                Err(mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) => {
                    *runner = None;
                    job
                }
            },
            None => job,
        };
        drop(runner);
        job();
    }

    /// Whether a sync has been running for longer than `wait`: the disk is not answering.
    pub(crate) fn stalled(&self, wait: Duration) -> bool {
        self.shared
            .lock()
            .running
            .is_some_and(|since| since.elapsed() > wait)
    }

    /// Syncs run so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.lock().waiting
    }
}

/// The store's write lock, taken for a bounded time. See `sled.rs`: writes that take sled's
/// exclusive lock, and its flushes, hold it, so that none of them queues inside sled behind a
/// flush that never ends.
#[derive(Debug, Default)]
pub(crate) struct WriteLock {
    held: Mutex<bool>,
    freed: Condvar,
}

/// The [`WriteLock`] held; released when dropped.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a>(&'a WriteLock);

impl WriteLock {
    fn held(&self) -> MutexGuard<'_, bool> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock, waiting at most `wait` (for ever if `None`).
    pub(crate) fn acquire(&self, wait: Option<Duration>) -> Option<WriteGuard<'_>> {
        let deadline = wait.map(|w| Instant::now() + w);
        let mut held = self.held();
        while *held {
            held = match deadline {
                None => self.freed.wait(held).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.freed
                        .wait_timeout(held, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        *held = true;
        Some(WriteGuard(self))
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        *self.0.held() = false;
        self.0.freed.notify_one();
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

    /// A guard: no sync in these tests takes this long.
    const WAIT: Duration = Duration::from_secs(30);

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
                gate.commit(WAIT, move || {
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
                    gate.commit(WAIT, move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        // Wait for the event (every writer queued, and the first caller, which waits for the
        // sync it started), with a timeout only as a guard.
        let guard = Instant::now();
        while gate.waiting() < WRITERS + 1 {
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
            gate.commit(WAIT, || Err("disk full".into())),
            Err("disk full".into())
        );
        assert_eq!(gate.commit(WAIT, || Ok(())), Ok(()));
        assert_eq!(gate.syncs(), 2);
    }

    /// A sync that does not end (a disk that never answers) holds no writer for longer than
    /// the wait: each fails, the gate says it is stalled, and all is well once the sync ends.
    #[test]
    fn a_sync_that_does_not_end_fails_its_writers_after_the_wait() {
        let gate = Arc::new(Gate::default());
        let (release_tx, release_rx) = mpsc::sync_channel::<()>(1);
        let short = Duration::from_millis(200);
        let stuck = Instant::now();
        let first = gate.commit(short, move || {
            release_rx.recv().unwrap();
            Ok(())
        });
        assert!(first.unwrap_err().contains("has not finished"));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let gate = gate.clone();
                std::thread::spawn(move || gate.commit(short, || Ok(())))
            })
            .collect();
        for w in waiters {
            assert!(w.join().unwrap().is_err());
        }
        assert!(stuck.elapsed() < WAIT, "the writers waited");
        assert!(gate.stalled(short));
        release_tx.send(()).unwrap();
        assert_eq!(gate.commit(WAIT, || Ok(())), Ok(()));
        assert!(!gate.stalled(Duration::ZERO));
    }

    #[test]
    fn the_write_lock_is_waited_for_at_most_the_wait() {
        let lock = WriteLock::default();
        let held = lock.acquire(None).unwrap();
        assert!(lock.acquire(Some(Duration::from_millis(50))).is_none());
        drop(held);
        assert!(lock.acquire(Some(Duration::ZERO)).is_some());
    }
}
