//! The CI real-node run (`scenarios/real-small.toml`: 6 real nodes on loopback, half of them
//! offline while both halves write, then restarted on their stores) converges to identical
//! state with nothing lost. Every wait in the run is bounded by the scenario's guard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use agora_sim::real::{RealScenario, is_real};

#[test]
fn six_real_nodes_converge_after_a_partition_with_nothing_lost() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/real-small.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(is_real(&text));
    let scenario = RealScenario::parse(&text).unwrap();
    let run = agora_sim::real::run(scenario).unwrap();
    let s = &run.summary;
    assert_eq!(s.nodes, 6);
    assert!(s.converged_s.is_some(), "not converged: {s:#?}");
    assert_eq!(s.lost, 0, "{s:#?}");
    assert!(s.identical, "{s:#?}");
    // Genesis, 30 history posts, 20 entries on each side.
    assert_eq!(s.entries, 71);
    assert!(s.needed_bytes > 0);
    // Each entry a node needed arrived about once (catch-up is one session at a time).
    assert!(s.payload_ratio.max < 1.5, "{s:#?}");
}

#[test]
fn every_real_scenario_file_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for name in agora_sim::report::REAL.iter().chain(&["real-small"]) {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        assert!(is_real(&text), "{name}");
        RealScenario::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(
        RealScenario::parse(
            "mode = \"sim\"\nname = \"x\"\nseed = 1\nnodes = 4\nevent = \"steady\""
        )
        .is_err()
    );
}
