//! Running scenario files and writing their results: one run (`agora-sim run`), or the
//! reference runs that make `docs/simulations.md` (`agora-sim report`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::metrics::Summary;
use crate::scenario::Scenario;
use crate::{RunOutput, SimError, output};

/// The reference scenarios, in the order of the report: files in `simulations/scenarios/`.
pub const REFERENCE: [&str; 9] = [
    "small",
    "steady",
    "partition-1k",
    "partition-1k-parallel",
    "partition-10k",
    "churn",
    "newcomer",
    "newcomer-parallel",
    "attack",
];

/// The reference real-node runs (`mode = "real"`), in the order of the report.
pub const REAL: [&str; 3] = ["real-steady", "real-partition", "real-newcomer"];

/// The workspace this binary was built from.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

fn read(path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|e| SimError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn write(path: &Path, text: &str) -> Result<(), SimError> {
    std::fs::write(path, text).map_err(|e| SimError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn create_dir(path: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(path).map_err(|e| SimError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// Writes `NAME.csv`, `NAME.svg` and `NAME.md` of a run into `dir`; returns the Markdown, with
/// the plot linked as `plot_prefix/NAME.svg`.
pub fn write_run(run: &RunOutput, dir: &Path, plot_prefix: &str) -> Result<String, SimError> {
    create_dir(dir)?;
    let name = &run.summary.name;
    write(&dir.join(format!("{name}.csv")), &output::csv(&run.rows))?;
    let svg = dir.join(format!("{name}.svg"));
    output::plot(&svg, &format!("{name}: convergence"), &run.rows)?;
    let link = if plot_prefix.is_empty() {
        format!("{name}.svg")
    } else {
        format!("{plot_prefix}/{name}.svg")
    };
    let md = output::markdown(&run.summary, &run.description, run.wall_s, Some(&link));
    write(&dir.join(format!("{name}.md")), &md)?;
    Ok(md)
}

/// `agora-sim run`: one scenario file, results in `out`, the Markdown on standard output.
pub fn run_one(path: &Path, out: &Path) -> Result<(), SimError> {
    let text = read(path)?;
    if crate::real::is_real(&text) {
        let run = crate::real::run(crate::real::RealScenario::parse(&text)?)?;
        let md = crate::real::markdown(&run);
        create_dir(out)?;
        write(&out.join(format!("{}.md", run.summary.name)), &md)?;
        println!("{md}");
        println!("(written to {})", out.display());
        return Ok(());
    }
    let scenario = Scenario::parse(&text)?;
    let run = crate::run(scenario, true)?;
    let md = write_run(&run, out, "")?;
    println!("{md}");
    println!("(written to {})", out.display());
    Ok(())
}

/// `agora-sim report`: runs the reference scenarios of `root/simulations/scenarios/`, writes
/// their plots and series to `root/docs/sim/` and the report to `root/docs/simulations.md`.
pub fn reference(root: &Path) -> Result<(), SimError> {
    let scenarios = root.join("simulations").join("scenarios");
    let sim_dir = root.join("docs").join("sim");
    let mut runs = Vec::new();
    let mut sections = String::new();
    for name in REFERENCE {
        let scenario = Scenario::load(&scenarios.join(format!("{name}.toml")))?;
        eprintln!("running {name} ({} nodes)", scenario.nodes);
        let run = crate::run(scenario, true)?;
        eprintln!("  {name}: {:.1} s wall time", run.wall_s);
        sections.push_str(&write_run(&run, &sim_dir, "sim")?);
        sections.push('\n');
        // The per-run Markdown is in the report itself.
        let _ = std::fs::remove_file(sim_dir.join(format!("{name}.md")));
        runs.push(run);
    }
    let mut real_runs = Vec::new();
    for name in REAL {
        let scenario =
            crate::real::RealScenario::parse(&read(&scenarios.join(format!("{name}.toml")))?)?;
        eprintln!("running {name} ({} real nodes)", scenario.nodes);
        let run = crate::real::run(scenario)?;
        eprintln!("  {name}: {:.1} s wall time", run.wall_s);
        real_runs.push(run);
    }
    let page = format!(
        "{}\n{}\n{}\n## The runs\n\n{sections}\n{}",
        PREAMBLE,
        headline(&runs),
        real_headline(&real_runs),
        real_sections(&real_runs),
    );
    write(&root.join("docs").join("simulations.md"), &page)?;
    eprintln!(
        "wrote {}",
        root.join("docs").join("simulations.md").display()
    );
    Ok(())
}

fn converge(s: &Summary, event: &str) -> String {
    s.convergence.iter().find(|c| c.event == event).map_or_else(
        || "n/a".to_owned(),
        |c| {
            c.after_s
                .map_or_else(|| "never".to_owned(), |v| format!("{v:.1} s"))
        },
    )
}

fn headline(runs: &[RunOutput]) -> String {
    let mut out = String::from(
        "## Headline figures\n\n\
         | run | nodes | converged after | lost | delivery | bytes / needed (mean, p99) | \
         flood / Agora | window: Agora / needed | window: Agora / Automerge | wall time |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let s = &run.summary;
        let event = ["heal", "join", "churn-end", "quiesce"]
            .into_iter()
            .find(|e| s.convergence.iter().any(|c| c.event == *e))
            .unwrap_or("quiesce");
        let window = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "| `{}` | {} | {} ({event}) | {} | {:.4} | {:.2}, {:.2} | {:.1} | {} | {} | {:.1} s |",
            s.name,
            s.nodes,
            converge(s, event),
            s.lost_entries,
            s.honest_delivery,
            s.byte_ratio.mean,
            s.byte_ratio.p99,
            s.flood_over_agora,
            window(s.window_ratio),
            window(s.window_over_automerge),
            run.wall_s,
        );
    }
    out
}

const PREAMBLE: &str = include_str!("report_preamble.md");

fn real_headline(runs: &[crate::real::RealOutput]) -> String {
    let mut out = String::from(
        "## Real-node runs\n\n\
         Real `agora_node::Node`s in one process: libp2p on loopback TCP, sled stores in \
         temporary folders, real gossipsub and reconciliation (`mode = \"real\"` scenarios, \
         `simulations/src/real.rs`). Times are wall-clock on a 2-core machine running every \
         node, so they vary from run to run; entries lost and identical state do not.\n\n\
         | run | nodes | entries | all identical after | median node | newest page | lost | \
         identical | entry bytes / needed (mean, max) | catch-up bytes / needed (mean, max) | \
         wall time |\n\
         |---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    let secs = |v: Option<f64>| v.map_or_else(|| "never".to_owned(), |v| format!("{v:.2} s"));
    for run in runs {
        let s = &run.summary;
        let page = if s.event == "join" {
            secs(s.page_s)
        } else {
            "n/a".to_owned()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} ({}) | {} | {} | {} | {} | {:.2}, {:.2} | {:.2}, {:.2} | {:.1} s |",
            s.name,
            s.nodes,
            s.entries,
            secs(s.converged_s),
            s.event,
            secs(s.median_s),
            page,
            s.lost,
            if s.identical { "yes" } else { "no" },
            s.payload_ratio.mean,
            s.payload_ratio.max,
            s.catchup_ratio.mean,
            s.catchup_ratio.max,
            run.wall_s,
        );
    }
    out.push('\n');
    out.push_str(REAL_FINDINGS);
    out
}

/// What the real-node runs showed about the node (text, not figures: those are in the tables).
const REAL_FINDINGS: &str = "\
Findings of the real-node runs:

- **Nothing is lost and every node ends identical** (entry-id sets, and every post's title and \
  body read from each node's replica), in every run.
- **Catch-up fetches each entry once**: entry bytes received over bytes needed are 1.00 per \
  node after a heal and for a newcomer, which receives its history from one peer at a time.
- **Gossip stopped with many peers on one IP (fixed, not yet fast).** gossipsub's default \
  peer scoring penalised each peer past 10 sharing an IP, and from 14 the node ignored them \
  all: on loopback (and behind one NAT) new entries travelled only by the 60 s catch-up. The \
  node now allows 64 peers per IP and exempts loopback (`node/src/net/behaviour.rs`), and \
  dials at most 4 providers per DHT lookup. In a `real-steady` run after the fix (run alone \
  with `agora-sim run`, while a clean CI build used the same two cores) gossip delivers again \
  (entry bytes received 1.33 of needed, duplicates appear), but every node still ends \
  connected to all 49 others and convergence stays slow (78.9 s): 50 nodes share two cores \
  and one disk, and every accepted gossip entry is made durable with its own sled flush \
  (about 20,000 flushes for 400 entries). Batching the flushes of gossip entries, and a \
  quiet machine, are the next things to measure.
- **Gossip taken in by batches (measured).** With the ingest worker (gossip validated off the \
  network task and stored by batches, one sync per batch), a `real-steady` run alone on the \
  machine (2026-12-04) had every node identical 0.98 s after the last write instead of 51 s, \
  with 5,607 store syncs for 400 entries on 50 nodes (0.28 per entry per node, against about \
  one before); catch-up carried 0.10 of the needed bytes, gossip the rest, with 1,776 \
  duplicate receipts.
";

fn real_sections(runs: &[crate::real::RealOutput]) -> String {
    let mut out = String::new();
    for run in runs {
        out.push_str(&crate::real::markdown(run));
        out.push('\n');
    }
    out
}
