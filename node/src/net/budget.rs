//! The data budget: the bytes this node sent and received on the network today, and the daily
//! cap it keeps to ([`crate::Config::daily_data_budget`]).
//!
//! Bytes are counted where they leave and enter the process ([`counted`]): on the TCP socket,
//! under noise and yamux, so their framing is counted; and on QUIC's streams (QUIC's own packet
//! headers and handshakes are not seen). Relayed connections run as streams of a connection to
//! the relay, so their bytes are counted once, on that connection. IP and TCP headers are not
//! counted by anything in the process.
//!
//! The day is the calendar day in UTC (days since 1970). Its count is kept in the home
//! ([`FILE`]), written on each resync tick and at shutdown, so a restart the same day goes on
//! from it. With a cap:
//!
//! - below [`catch_up_limit`] (four fifths of the cap) everything runs as usual;
//! - from there, catch-up pauses: this node starts no reconciliation, ends the ones running
//!   before their next request, and refuses peers' requests ("data budget"); gossip (new
//!   entries as they are written, a few hundred bytes each) goes on in the last fifth;
//! - at the cap the node goes offline until the next day: its connections close, it dials no one
//!   and takes no connection. What its owner writes meanwhile is stored, and goes out by
//!   catch-up when the day turns.
//!
//! When the day turns the count starts again from zero and the next resync catches up every
//! subwiki that waited.

pub(crate) mod counted;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The file in the home that keeps the day's count across restarts: one line, `day received
/// sent`.
pub const FILE: &str = "data-budget";

/// Seconds in a day.
const SECS_PER_DAY: u64 = 86_400;

/// The smallest daily cap a front end takes, in MiB.
pub const MIN_DAILY_MIB: u64 = 1;
/// The largest daily cap a front end takes, in MiB (1 TiB).
pub const MAX_DAILY_MIB: u64 = 1 << 20;

/// A daily cap given in MiB (`--daily-data-mib`), in bytes; an error that says the range if it
/// is out of it.
pub fn daily_cap_from_mib(mib: u64) -> Result<u64, String> {
    if !(MIN_DAILY_MIB..=MAX_DAILY_MIB).contains(&mib) {
        return Err(format!(
            "--daily-data-mib {mib}: the daily data budget must be from {MIN_DAILY_MIB} to \
             {MAX_DAILY_MIB} MiB"
        ));
    }
    Ok(mib << 20)
}

/// Bytes of the day (in and out together) past which catch-up pauses: four fifths of the cap,
/// the last fifth kept for gossip.
pub fn catch_up_limit(cap: u64) -> u64 {
    cap - cap / 5
}

/// Which day it is for the data budget: days since 1970 in UTC, from the system clock, unless a
/// test set it by hand ([`DayClock::manual`]).
#[derive(Debug, Clone, Default)]
pub struct DayClock(Option<Arc<AtomicU64>>);

impl DayClock {
    /// The system clock's day.
    pub fn system() -> Self {
        Self(None)
    }

    /// A day that only [`DayClock::set`] changes (shared by the clones).
    pub fn manual(day: u64) -> Self {
        Self(Some(Arc::new(AtomicU64::new(day))))
    }

    /// Sets a manual clock's day; does nothing to the system clock.
    pub fn set(&self, day: u64) {
        if let Some(d) = &self.0 {
            d.store(day, Ordering::SeqCst);
        }
    }

    /// Today.
    pub fn today(&self) -> u64 {
        match &self.0 {
            Some(d) => d.load(Ordering::SeqCst),
            None => {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default()
                    / SECS_PER_DAY
            }
        }
    }
}

/// The day's network use, as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataUse {
    /// The day counted: days since 1970, UTC.
    pub day: u64,
    /// Bytes received today.
    pub received: u64,
    /// Bytes sent today.
    pub sent: u64,
    /// The daily cap on both together, if any.
    pub daily_cap: Option<u64>,
    /// Catch-up is paused until the next day (four fifths of the cap are used).
    pub catch_up_paused: bool,
    /// The cap is reached: the node is offline until the next day.
    pub exhausted: bool,
}

/// The count of one day, against the meter's running totals. Pure: the day and the totals are
/// given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Day {
    day: u64,
    /// The running totals (received, sent) when the day started, or when this process did.
    base: (u64, u64),
    /// What an earlier run counted the same day (from [`FILE`]).
    carried: (u64, u64),
}

impl Day {
    /// Starts a new count if `today` is not the day counted (a clock set back counts as a new
    /// day too: the count never mixes days).
    fn roll(&mut self, today: u64, totals: (u64, u64)) -> bool {
        if today == self.day {
            return false;
        }
        *self = Day {
            day: today,
            base: totals,
            carried: (0, 0),
        };
        true
    }

    /// Bytes (received, sent) of the day, given the running totals.
    fn used(&self, totals: (u64, u64)) -> (u64, u64) {
        (
            self.carried
                .0
                .saturating_add(totals.0.saturating_sub(self.base.0)),
            self.carried
                .1
                .saturating_add(totals.1.saturating_sub(self.base.1)),
        )
    }
}

/// Reads the file's line; `None` if it is not three numbers.
fn parse(text: &str) -> Option<(u64, u64, u64)> {
    let mut words = text.split_whitespace().map(str::parse::<u64>);
    let day = words.next()?.ok()?;
    let received = words.next()?.ok()?;
    let sent = words.next()?.ok()?;
    words.next().is_none().then_some((day, received, sent))
}

/// Counts the node's network bytes and keeps them to the day's cap. Shared by the transport
/// (which counts), the network task (which saves and asks) and the node handle (status).
#[derive(Debug)]
pub struct Meter {
    /// Bytes received and sent since the process started.
    received: AtomicU64,
    sent: AtomicU64,
    cap: Option<u64>,
    clock: DayClock,
    day: Mutex<Day>,
    /// Where the day's count is kept; `None` keeps nothing.
    path: Option<PathBuf>,
}

impl Meter {
    /// A meter for a node with `cap` bytes a day (or none), going on from the count kept in
    /// `home` if it is today's.
    pub fn new(cap: Option<u64>, clock: DayClock, home: Option<&std::path::Path>) -> Self {
        let path = home.map(|h| h.join(FILE));
        let today = clock.today();
        let carried = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| {
                let parsed = parse(&text);
                if parsed.is_none() {
                    tracing::warn!("the data budget file is damaged: today's count starts at 0");
                }
                parsed
            })
            .filter(|(day, _, _)| *day == today)
            .map_or((0, 0), |(_, received, sent)| (received, sent));
        Self {
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            cap,
            clock,
            day: Mutex::new(Day {
                day: today,
                base: (0, 0),
                carried,
            }),
            path,
        }
    }

    pub(crate) fn add_received(&self, bytes: usize) {
        let n = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_sent(&self, bytes: usize) {
        let n = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    fn totals(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }

    /// Today's (day, received, sent), starting a new day's count if the day turned.
    fn today(&self) -> (u64, u64, u64) {
        let today = self.clock.today();
        let mut day = self.day.lock().unwrap_or_else(PoisonError::into_inner);
        let totals = self.totals();
        if day.roll(today, totals) {
            tracing::info!(day = today, "a new day: the data budget starts again");
        }
        let (received, sent) = day.used(totals);
        (today, received, sent)
    }

    fn used(&self) -> u64 {
        let (_, received, sent) = self.today();
        received.saturating_add(sent)
    }

    /// Whether catch-up waits for the next day: four fifths of the cap are used.
    pub fn catch_up_paused(&self) -> bool {
        self.cap
            .is_some_and(|cap| self.used() >= catch_up_limit(cap))
    }

    /// Whether the cap is reached: no more traffic today.
    pub fn exhausted(&self) -> bool {
        self.cap.is_some_and(|cap| self.used() >= cap)
    }

    /// The day's use, for the status.
    pub fn status(&self) -> DataUse {
        let (day, received, sent) = self.today();
        let used = received.saturating_add(sent);
        DataUse {
            day,
            received,
            sent,
            daily_cap: self.cap,
            catch_up_paused: self.cap.is_some_and(|c| used >= catch_up_limit(c)),
            exhausted: self.cap.is_some_and(|c| used >= c),
        }
    }

    /// The line to keep in the file, and where; `None` if the meter keeps nothing.
    pub(crate) fn to_save(&self) -> Option<(PathBuf, String)> {
        let path = self.path.clone()?;
        let (day, received, sent) = self.today();
        Some((path, format!("{day} {received} {sent}\n")))
    }

    /// Writes the day's count to the home now (at shutdown; a few bytes).
    pub(crate) fn save(&self) {
        if let Some((path, line)) = self.to_save() {
            write(&path, &line);
        }
    }
}

/// Writes the file, logging a failure (the count then restarts from the last one kept).
pub(crate) fn write(path: &std::path::Path, line: &str) {
    if let Err(e) = crate::export::write_file(path, line.as_bytes()) {
        tracing::debug!(path = %path.display(), "data budget not kept: {e}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_day_counts_from_its_start_and_a_new_day_from_zero() {
        let mut day = Day {
            day: 10,
            base: (100, 50),
            carried: (7, 3),
        };
        assert_eq!(day.used((150, 60)), (57, 13));
        assert!(!day.roll(10, (150, 60)), "same day");
        assert!(day.roll(11, (150, 60)), "the day turned");
        assert_eq!(day.used((150, 60)), (0, 0));
        assert_eq!(day.used((151, 65)), (1, 5));
        assert!(day.roll(9, (151, 65)), "a clock set back is a new count");
        assert_eq!(day.used((151, 65)), (0, 0));
        // Totals never go back, but a bad base does not underflow.
        assert_eq!(day.used((0, 0)), (0, 0));
    }

    #[test]
    fn the_cap_in_mib_is_range_checked() {
        assert_eq!(daily_cap_from_mib(1), Ok(1 << 20));
        assert_eq!(daily_cap_from_mib(100), Ok(100 << 20));
        assert_eq!(daily_cap_from_mib(MAX_DAILY_MIB), Ok(1 << 40));
        for bad in [0, MAX_DAILY_MIB + 1, u64::MAX] {
            let e = daily_cap_from_mib(bad).unwrap_err();
            assert!(e.contains("from 1 to 1048576 MiB"), "{e}");
        }
    }

    #[test]
    fn the_file_is_three_numbers_or_nothing() {
        assert_eq!(parse("20000 12 34\n"), Some((20000, 12, 34)));
        for bad in [
            "",
            "1 2",
            "1 2 3 4",
            "a b c",
            "1 -2 3",
            "99999999999999999999 1 1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn catch_up_pauses_at_four_fifths_and_everything_stops_at_the_cap() {
        let clock = DayClock::manual(5);
        let meter = Meter::new(Some(1000), clock.clone(), None);
        assert!(!meter.catch_up_paused() && !meter.exhausted());
        meter.add_received(500);
        meter.add_sent(299);
        assert!(!meter.catch_up_paused(), "799 of 1000");
        meter.add_sent(1);
        assert!(meter.catch_up_paused() && !meter.exhausted(), "800 of 1000");
        meter.add_received(200);
        assert!(meter.exhausted(), "the cap");
        let status = meter.status();
        assert_eq!((status.day, status.received, status.sent), (5, 700, 300));
        assert!(status.catch_up_paused && status.exhausted);

        // The next day starts again.
        clock.set(6);
        assert!(!meter.catch_up_paused() && !meter.exhausted());
        meter.add_sent(10);
        assert_eq!(meter.status().sent, 10);

        // Without a cap nothing is ever paused.
        let free = Meter::new(None, DayClock::manual(5), None);
        free.add_received(usize::MAX);
        assert!(!free.catch_up_paused() && !free.exhausted());
    }

    #[test]
    fn a_restart_the_same_day_goes_on_from_the_kept_count() {
        let dir = tempfile::tempdir().unwrap();
        let clock = DayClock::manual(42);
        let meter = Meter::new(Some(10_000), clock.clone(), Some(dir.path()));
        meter.add_received(3000);
        meter.add_sent(1000);
        meter.save();
        drop(meter);

        let again = Meter::new(Some(10_000), clock.clone(), Some(dir.path()));
        let status = again.status();
        assert_eq!((status.received, status.sent), (3000, 1000));
        again.add_sent(5);
        assert_eq!(again.status().sent, 1005);

        // A count kept yesterday is not today's.
        clock.set(43);
        let next_day = Meter::new(Some(10_000), clock, Some(dir.path()));
        assert_eq!(next_day.status().received, 0);

        // A damaged file counts from zero.
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        let damaged = Meter::new(Some(10_000), DayClock::manual(42), Some(dir.path()));
        assert_eq!(damaged.status().received, 0);
    }
}
