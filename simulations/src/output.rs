//! What a run writes: the time series as CSV, a convergence plot as SVG, and a Markdown section.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::SimError;
use crate::metrics::{Row, Summary};

/// The time series as CSV, one row per sample interval.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "t_s,online,identical,holding_target,target_scope,entries,gossip_bytes,control_bytes,\
         catchup_bytes,duplicates,sessions,rejected\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.t_s,
            r.online,
            r.identical,
            r.holding_target,
            r.target_scope,
            r.entries,
            r.gossip_bytes,
            r.control_bytes,
            r.catchup_bytes,
            r.duplicates,
            r.sessions,
            r.rejected
        );
    }
    out
}

/// Plots the share of online honest nodes that hold the current convergence target and that are
/// identical to the union of all, over time.
pub fn plot(path: &Path, title: &str, rows: &[Row]) -> Result<(), SimError> {
    let err = |e: &dyn std::fmt::Display| SimError::Plot(e.to_string());
    let end = rows.last().map_or(1.0, |r| r.t_s).max(1.0);
    let root = SVGBackend::new(path, (800, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, 0f64..100.5)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc("% of online honest nodes")
        .draw()
        .map_err(|e| err(&e))?;
    let share = |a: u32, b: u32| {
        if b == 0 {
            100.0
        } else {
            100.0 * f64::from(a) / f64::from(b)
        }
    };
    chart
        .draw_series(LineSeries::new(
            rows.iter()
                .map(|r| (r.t_s, share(r.holding_target, r.target_scope))),
            &BLUE,
        ))
        .map_err(|e| err(&e))?
        .label("hold the current target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            rows.iter().map(|r| (r.t_s, share(r.identical, r.online))),
            &RED,
        ))
        .map_err(|e| err(&e))?
        .label("identical to the union of all")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}{unit}"))
}

/// A Markdown section with the run's figures. `plot` is the plot's path relative to the page.
pub fn markdown(s: &Summary, description: &str, wall_s: f64, plot: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### `{}`\n", s.name);
    if !description.is_empty() {
        let _ = writeln!(out, "{description}\n");
    }
    let _ = writeln!(
        out,
        "{} nodes (mean degree {:.1}), {} s simulated, seed {}, {} events, {:.1} s wall time.\n",
        s.nodes, s.mean_degree, s.duration_s, s.seed, s.events, wall_s
    );
    if let Some(plot) = plot {
        let _ = writeln!(out, "![convergence of `{}`]({plot})\n", s.name);
    }
    let _ = writeln!(
        out,
        "| convergence target | at | entries | 99 % of nodes after | all nodes after |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let after = |v: Option<f64>| v.map_or_else(|| "**never**".to_owned(), |v| format!("{v:.1} s"));
    for c in &s.convergence {
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {} | {} | {} |",
            c.event,
            c.at_s,
            c.entries,
            after(c.p99_after_s),
            after(c.after_s)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| figure | value |");
    let _ = writeln!(out, "|---|---:|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "| {k} | {v} |");
    };
    row(
        "entries made (honest / Sybil votes / forged)",
        format!(
            "{} / {} / {}",
            s.honest_entries, s.sybil_entries, s.forged_entries
        ),
    );
    row(
        "online honest nodes at the end",
        s.online_at_end.to_string(),
    );
    row("honest entries lost", s.lost_entries.to_string());
    row("honest delivery ratio", format!("{:.4}", s.honest_delivery));
    row(
        "deliveries by gossip (rest by catch-up)",
        format!("{:.1} %", 100.0 * s.gossip_share),
    );
    row(
        "delivery latency p50 / p99",
        format!("{} ms / {} ms", s.latency_p50_ms, s.latency_p99_ms),
    );
    row(
        "bytes received / bytes needed, per node: mean / p50 / p99 / max",
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            s.byte_ratio.mean, s.byte_ratio.p50, s.byte_ratio.p99, s.byte_ratio.max
        ),
    );
    row(
        "same, all nodes together",
        format!("{:.2}", s.byte_ratio_total),
    );
    row(
        "naive flood bytes / Agora bytes",
        format!("{:.2}", s.flood_over_agora),
    );
    row(
        "duplicate receipts per entry stored",
        format!("{:.2} ({} in all)", s.duplicates_per_entry, s.duplicates),
    );
    row(
        "catch-up sessions started / done / failed",
        format!(
            "{} / {} / {}",
            s.sessions_started, s.sessions_done, s.sessions_failed
        ),
    );
    row(
        "round trips per session: mean / p99 / max (reconciliation: mean / max)",
        format!(
            "{:.2} / {:.0} / {:.0} ({:.2} / {:.0})",
            s.session_rounds.mean,
            s.session_rounds.p99,
            s.session_rounds.max,
            s.reconcile_rounds.mean,
            s.reconcile_rounds.max
        ),
    );
    row(
        "window: bytes received / bytes needed",
        opt(s.window_ratio, ""),
    );
    row(
        "window: Agora bytes / Automerge per-document sync bytes",
        opt(s.window_over_automerge, ""),
    );
    row(
        "window: naive flood bytes / Agora bytes",
        opt(s.window_flood_over_agora, ""),
    );
    if s.automerge.sample_docs > 0 {
        row(
            "Automerge, measured per document: in step / extra when behind",
            format!(
                "{:.0} B / {:.0} B ({} docs)",
                s.automerge.in_step_bytes, s.automerge.behind_extra_bytes, s.automerge.sample_docs
            ),
        );
    }
    if s.forged_entries > 0 || s.sybil_entries > 0 {
        row("invalid entries rejected", s.rejected.to_string());
        row(
            "attackers blocked (node, attacker pairs)",
            s.blocks.to_string(),
        );
        row(
            "links to attackers blocked by the end",
            format!("{:.1} %", 100.0 * s.attacker_links_blocked),
        );
        row(
            "Sybil votes stored per node (counted: 0)",
            format!("{:.1}", s.sybil_stored_per_node),
        );
    }
    out
}
