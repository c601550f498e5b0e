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
    "partition-1k-serial",
    "partition-10k",
    "churn",
    "newcomer",
    "newcomer-serial",
    "attack",
];

/// The workspace this binary was built from.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
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
    let scenario = Scenario::load(path)?;
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
    let page = format!(
        "{}\n{}\n## The runs\n\n{sections}",
        PREAMBLE,
        headline(&runs)
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
