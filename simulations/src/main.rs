//! `agora-sim`: runs simulation scenarios.
//!
//! ```text
//! agora-sim run SCENARIO.toml [--out DIR]   one run: CSV, SVG, Markdown in DIR (default sim-out)
//! agora-sim report [--root DIR]             the reference runs, written to DIR/docs/
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use agora_sim::SimError;

const USAGE: &str =
    "usage: agora-sim run SCENARIO.toml [--out DIR] | agora-sim report [--root DIR]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agora-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), SimError> {
    let usage = || SimError::Usage(USAGE.to_owned());
    let mut args = args.into_iter();
    let command = args.next().ok_or_else(usage)?;
    let mut positional = Vec::new();
    let mut out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" | "--root" => out = Some(PathBuf::from(args.next().ok_or_else(usage)?)),
            "-h" | "--help" => return Err(usage()),
            _ => positional.push(arg),
        }
    }
    match (command.as_str(), positional.as_slice()) {
        ("run", [path]) => {
            let out = out.unwrap_or_else(|| PathBuf::from("sim-out"));
            agora_sim::report::run_one(&PathBuf::from(path), &out)
        }
        ("report", []) => {
            let root = out.unwrap_or_else(agora_sim::report::workspace_root);
            agora_sim::report::reference(&root)
        }
        _ => Err(usage()),
    }
}
