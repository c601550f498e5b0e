//! Fuzz targets for `agora-crdt`. The code they run is in [`harness`], which the regression test
//! `crdt/tests/fuzz_regressions.rs` also includes, so saved inputs replay exactly.
//!
//! This file adds what only a fuzzing run needs: a panic hook that tells panics that escape
//! (crashes) from panics that `agora-crdt` catches itself (Automerge panics while applying
//! changes, which it turns into an excluded change, or while reading, editing or saving a
//! document, which it turns into an error), and an allocator that aborts on a single
//! huge allocation (libFuzzer's `-malloc_limit_mb` needs a sanitizer's allocator to work).

#![deny(unsafe_code)]

pub mod harness;

mod alloc_limit;

pub use alloc_limit::set_max_alloc_mb;

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, OnceLock};

thread_local! {
    /// The panics of this run, in order: where and what, and the backtrace (resolved only if
    /// shown).
    static PANICS: RefCell<Vec<(String, Backtrace)>> = const { RefCell::new(Vec::new()) };
}

fn seen_locations() -> &'static Mutex<HashSet<String>> {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Everything a target does once before the first input: [`install_panic_hook`], and the
/// allocation limit from `AGORA_FUZZ_MAX_ALLOC_MB` (default 256; 0 turns it off).
pub fn init() {
    install_panic_hook();
    let mb = std::env::var("AGORA_FUZZ_MAX_ALLOC_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    set_max_alloc_mb(mb);
}

/// Replaces libfuzzer-sys's abort-on-every-panic hook. A panic is recorded with its backtrace,
/// and the first one at each source location is printed (one line); whether it is a crash is decided by
/// [`guard`] once we know if it was caught.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(|| "<unknown>".to_owned(), |l| l.to_string());
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let what = format!("{location}: {message}");
        let backtrace = Backtrace::force_capture();
        let new = seen_locations()
            .lock()
            .map(|mut seen| seen.insert(location))
            .unwrap_or(false);
        if new {
            eprintln!("[agora-fuzz] new panic location (may be caught): {what}");
        }
        PANICS.with(|p| {
            let mut panics = p.borrow_mut();
            if panics.len() < 64 {
                panics.push((what, backtrace));
            }
        });
    }));
}

/// Runs one input. A panic that escapes is a crash: it is printed and the process aborts, so
/// libFuzzer saves the input. With `AGORA_FUZZ_ABORT_ON_CAUGHT=1`, a panic that `agora-crdt`
/// caught also aborts (to collect inputs that make Automerge panic); set it to a substring of
/// `file:line:col: message` to abort only on matching ones. With
/// `AGORA_FUZZ_KNOWN_PANICS` set to comma-separated substrings of `file:line:col: message`, an
/// escaping panic that matches one is a known bug, already saved: it is not a crash, so the run
/// can look for others.
pub fn guard(run: impl FnOnce()) {
    PANICS.with(|p| p.borrow_mut().clear());
    let outcome = catch_unwind(AssertUnwindSafe(run));
    let panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    // The panic that escaped, if any, is the last one; the others were caught.
    let (caught, escaped) = match outcome {
        Ok(()) => (panics.as_slice(), None),
        Err(_) => match panics.split_last() {
            Some((last, rest)) => (rest, Some(last)),
            None => (panics.as_slice(), None),
        },
    };
    for (what, backtrace) in caught {
        if abort_on_caught(what) {
            eprintln!(
                "[agora-fuzz] caught panic (AGORA_FUZZ_ABORT_ON_CAUGHT): {what}\n{backtrace}"
            );
            std::process::abort();
        }
    }
    match (outcome.is_err(), escaped) {
        (true, Some((what, _))) if is_known(what) => {}
        (true, escaped) => {
            let (what, backtrace) = escaped.map(|(w, b)| (w.as_str(), b.to_string())).unzip();
            eprintln!(
                "[agora-fuzz] UNCAUGHT PANIC: {}\n{}",
                what.unwrap_or_default(),
                backtrace.unwrap_or_default()
            );
            std::process::abort();
        }
        (false, _) => {}
    }
}

fn abort_on_caught(what: &str) -> bool {
    static PATTERN: OnceLock<Option<String>> = OnceLock::new();
    match PATTERN.get_or_init(|| std::env::var("AGORA_FUZZ_ABORT_ON_CAUGHT").ok()) {
        Some(pattern) => pattern == "1" || what.contains(pattern.as_str()),
        None => false,
    }
}

fn is_known(what: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("AGORA_FUZZ_KNOWN_PANICS")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|known| what.contains(known.as_str()))
}
