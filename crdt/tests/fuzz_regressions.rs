//! Replays fuzzing inputs through the exact code the fuzz targets run (`crdt/fuzz/src/harness.rs`,
//! included below), without any fuzzing dependency.
//!
//! * `crdt/tests/fuzz-crashers/<target>-<name>`: inputs that once crashed a target (or edge cases
//!   kept on purpose). Each must replay without a panic. A name `<target>-invalid-…` must also
//!   be refused (`validate` returns `Err`, or no chunk or record makes a valid entry), and
//!   `<target>-valid-…` must be accepted entirely.
//! * `crdt/fuzz/seeds/<target>/*`: the seed corpus, real entries of every kind. Each must be
//!   accepted entirely and replay without a panic.
//!
//! The directories must exist and hold files, so that this test never passes by testing
//! nothing. To regenerate the seeds after a change to the entry format:
//! `cargo test -p agora-crdt --test fuzz_regressions -- --ignored write_seeds`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

const CRASHERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-crashers");
const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");
const TARGETS: [&str; 3] = ["validate", "replica", "signed_changes"];

/// What an input is expected to do beyond not panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Anything,
    Invalid,
    Valid,
}

/// Runs one input through a target's harness function; `Err` says what went wrong.
fn replay(target: &str, data: &[u8], expect: Expect) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| match target {
        "validate" => {
            let result = harness::run_validate(data);
            match (expect, &result) {
                (Expect::Invalid, Ok(entry)) => Err(format!("was accepted: {entry:?}")),
                (Expect::Valid, Err(e)) => Err(format!("was refused: {e}")),
                _ => Ok(()),
            }
        }
        "replica" => {
            let run = harness::run_replica(data);
            match expect {
                Expect::Invalid if run.valid > 0 => Err(format!("had valid entries: {run:?}")),
                Expect::Valid if run.invalid > 0 || run.valid == 0 => {
                    Err(format!("was not entirely valid: {run:?}"))
                }
                _ => Ok(()),
            }
        }
        "signed_changes" => {
            let run = harness::run_signed_changes(data);
            match expect {
                Expect::Invalid if run.signed > 0 => Err(format!("signed entries: {run:?}")),
                Expect::Valid if run.refused > 0 || run.signed == 0 => {
                    Err(format!("was not entirely signed: {run:?}"))
                }
                _ => Ok(()),
            }
        }
        other => Err(format!("unknown target `{other}`")),
    }));
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("panicked: {message}"))
        }
    }
}

/// The files of a directory, sorted; fails if it is missing or empty.
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} must exist: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path());
    let mut files: Vec<PathBuf> = entries.filter(|p| p.is_file()).collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{} holds no files: the regression test would test nothing",
        dir.display()
    );
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn crashers_replay_without_panicking() {
    let mut failures = Vec::new();
    for path in files(Path::new(CRASHERS)) {
        let name = file_name(&path);
        let Some((target, rest)) = TARGETS.iter().find_map(|t| {
            name.strip_prefix(t)
                .and_then(|r| r.strip_prefix('-'))
                .map(|r| (*t, r))
        }) else {
            failures.push(format!(
                "{name}: name must start with one of {TARGETS:?} and `-`"
            ));
            continue;
        };
        let expect = if rest.starts_with("invalid-") {
            Expect::Invalid
        } else if rest.starts_with("valid-") {
            Expect::Valid
        } else {
            Expect::Anything
        };
        let data = fs::read(&path).unwrap();
        if let Err(e) = replay(target, &data, expect) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz regressions:\n{}",
        failures.join("\n")
    );
}

#[test]
fn seeds_are_valid_and_replay_without_panicking() {
    let mut failures = Vec::new();
    for target in TARGETS {
        for path in files(&Path::new(SEEDS).join(target)) {
            let data = fs::read(&path).unwrap();
            if let Err(e) = replay(target, &data, Expect::Valid) {
                failures.push(format!("{target}/{}: {e}", file_name(&path)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seeds (regenerate with `cargo test -p agora-crdt --test fuzz_regressions -- \
         --ignored write_seeds` if the entry format changed):\n{}",
        failures.join("\n")
    );
}

/// Writes the seed corpus to `crdt/fuzz/seeds/<target>/`.
#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_seeds() {
    for (target, name, bytes) in harness::seed_inputs() {
        let dir = Path::new(SEEDS).join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The harness rebuilds a change chunk from its body (header, length, checksum) exactly, so the
/// `signed_changes` seeds sign the same changes as the real entries.
#[test]
fn harness_rebuilds_change_chunks_exactly() {
    let mut changes = 0;
    for (name, entry) in harness::seed_entries() {
        if let Some(chunk) = entry.payload().change_bytes() {
            let body = harness::change_body(chunk).expect("a change chunk");
            assert_eq!(harness::wrap_change(body), chunk, "{name}");
            changes += 1;
        }
    }
    assert!(changes >= 5, "the seeds carry changes");
}
