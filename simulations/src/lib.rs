//! The Agora scenario runner: thousands of simulated nodes in one process, each running the
//! real catch-up state machines of [`agora_node::proto`] and a model of gossipsub, over a
//! simulated network with latency, loss, bandwidth, partitions, churn and attackers.
//!
//! A run is deterministic: one seeded random number generator, one event queue in simulated
//! time. A scenario is a TOML file ([`scenario::Scenario`]); [`run`] runs it and returns the
//! time series and a [`metrics::Summary`]; [`output`] writes them as CSV, SVG and Markdown;
//! [`report`] runs the reference scenarios and writes `docs/simulations.md`.
//!
//! [`real`] runs scenario files with `mode = "real"` on 20 to 100 real `agora_node::Node`s in
//! one process (loopback TCP, sled stores in temporary folders), to check the simulator's
//! predictions on the real stack.
//!
//! ```
//! let scenario = agora_sim::scenario::Scenario::parse(r#"
//!     name = "tiny"
//!     seed = 1
//!     nodes = 20
//!     duration_s = 30
//!     [network]
//!     peers_out = 4
//!     [posting]
//!     initial_entries = 10
//!     until_s = 10
//! "#)?;
//! let run = agora_sim::run(scenario, false)?;
//! assert_eq!(run.summary.lost_entries, 0);
//! # Ok::<(), agora_sim::SimError>(())
//! ```

#![deny(missing_docs)]

use std::time::Instant;

use thiserror::Error;

pub mod baseline;
pub mod data;
pub mod engine;
pub mod metrics;
pub mod output;
pub mod real;
pub mod report;
pub mod rng;
pub mod scenario;

use metrics::{Row, Summary};
use scenario::Scenario;

/// Why a run failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// A scenario file that does not parse or is out of range.
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The catch-up state machines refused something the simulator did (a simulator bug).
    #[error("protocol: {0}")]
    Proto(String),
    /// The Automerge baseline failed.
    #[error("automerge baseline: {0}")]
    Automerge(String),
    /// The plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// Bad command-line arguments.
    #[error("{0}")]
    Usage(String),
    /// A real-node run failed to set up or to run (not a measurement: those are reported).
    #[error("real-node run: {0}")]
    Real(String),
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Everything measured (identical for identical seeds).
    pub summary: Summary,
    /// The time series.
    pub rows: Vec<Row>,
    /// The scenario's description.
    pub description: String,
    /// Wall-clock time of the run, in seconds (not part of the summary: it is not deterministic).
    pub wall_s: f64,
}

/// Runs `scenario`, with a progress bar on standard error if `progress` and it is a terminal.
pub fn run(scenario: Scenario, progress: bool) -> Result<RunOutput, SimError> {
    use std::io::IsTerminal;
    let started = Instant::now();
    let description = scenario.description.clone();
    let total = scenario.duration_s * 1_000;
    let bar = if progress && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ms simulated (eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(scenario.name.clone());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut sim = engine::Sim::new(scenario)?;
    sim.run(&mut |now| bar.set_position(now))?;
    bar.finish_and_clear();
    let summary = sim.summary()?;
    Ok(RunOutput {
        summary,
        rows: sim.rows().to_vec(),
        description,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
