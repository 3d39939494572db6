//! `report.md`: claims first, then the unified-vs-separate ratios, KPIs, percentiles, quality,
//! runs, plots, warnings, failures and the statistics method.

use super::tables::{self, Table};
use super::{Artefact, Report, ReportError};
use quadbench_schema::results::{RunState, Verdict};

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One table as GitHub-flavoured Markdown, notes as a list below it.
pub fn table(t: &Table) -> String {
    let mut s = format!("| {} |\n|", t.columns.iter().map(|c| esc(&c.label)).collect::<Vec<_>>().join(" | "));
    for c in &t.columns {
        s.push_str(if c.numeric { "---:|" } else { "---|" });
    }
    s.push('\n');
    for row in &t.rows {
        s.push_str(&format!("| {} |\n", row.iter().map(|c| esc(&c.display())).collect::<Vec<_>>().join(" | ")));
    }
    if t.rows.is_empty() {
        s = String::new();
    }
    let notes: Vec<String> = t.notes.iter().map(|n| format!("- {}", esc(n))).collect();
    if !s.is_empty() && !notes.is_empty() {
        s.push('\n');
    }
    s.push_str(&notes.join("\n"));
    s.push('\n');
    s
}

/// One-line claim tally: `2 claims: 1 pass, 1 fail`.
pub fn tally(r: &quadbench_schema::results::Results) -> String {
    let n = |v: Verdict| r.claims.iter().filter(|c| c.verdict == v).count();
    let parts: Vec<String> = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive, Verdict::Missing]
        .iter()
        .filter(|v| n(**v) > 0)
        .map(|v| format!("{} {}", n(*v), tables::verdict_text(*v)))
        .collect();
    format!("{} claim check(s): {}", r.claims.len(), if parts.is_empty() { "none".into() } else { parts.join(", ") })
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    let r = &rep.results;
    let mut s = format!("# quadbench report: {}\n\n", r.scenario.name);
    s.push_str(&format!(
        "Package `{}` (sha256 `{}`), scenario `{}` (sha256 `{}`), {} run(s){}. {}.\n",
        r.package.name,
        &r.package.sha256[..12.min(r.package.sha256.len())],
        super::scenario_file(r),
        &r.scenario.sha256[..12.min(r.scenario.sha256.len())],
        r.runs.len(),
        if r.complete { "" } else { ", **incomplete** (the scenario did not finish)" },
        tally(r)
    ));
    for id in ["claims", "ratios", "kpis", "percentiles", "quality", "tensor-quality", "runs"] {
        let Some(t) = rep.table(id) else { continue };
        s.push_str(&format!("\n## {}\n\n", t.title));
        if id == "ratios" && !t.rows.is_empty() {
            // One small table per device / backend, as the console prints it.
            for (k, part) in tables::split_by(t, &["device", "backend"]) {
                s.push_str(&format!("### {}\n\n{}", esc(&k.join(" / ")), table(&part)));
            }
        } else {
            s.push_str(&table(t));
        }
    }
    if !rep.plots.is_empty() {
        s.push_str("\n## Plots\n\n");
        for p in &rep.plots {
            s.push_str(&format!("![{}](plots/{}.svg)\n\n", p.title, p.name));
        }
    }
    let warnings: Vec<String> = r
        .runs
        .iter()
        .flat_map(|run| tables::run_warnings(run).into_iter().map(move |w| format!("- `{}`: {}", run.id, esc(&w))))
        .collect();
    if !warnings.is_empty() {
        s.push_str(&format!("\n## Warnings\n\n{}\n", warnings.join("\n")));
    }
    for run in r.runs.iter().filter(|x| x.status != RunState::Ok) {
        s.push_str(&format!(
            "\n## {} ({})\n\n```\n{}\n{}\n```\n",
            run.id,
            tables::status(run),
            run.error.as_deref().unwrap_or(""),
            run.stderr_tail.trim_end()
        ));
    }
    let m = &r.statistics;
    s.push_str(&format!("\n## Statistics\n\n{}\n", statistics(m)));
    Ok(vec![Artefact::text("report.md", s)])
}

/// The statistics method as one paragraph (plain text; Markdown and HTML both use it).
pub fn statistics(m: &crate::stats::Method) -> String {
    format!(
        "{:.0}% intervals. Median: {}. Ratio: {}. Mean: {}. {} resamples, seed {}, {} generator. Outliers: {}. Percentiles: {}. High-variability warnings: CV above {:.0}% with a median of at least {} ms.",
        m.confidence * 100.0,
        m.median_ci,
        m.ratio_ci,
        m.mean_ci,
        m.bootstrap_resamples,
        m.bootstrap_seed,
        m.rng,
        m.outliers,
        m.percentiles,
        m.cv_warn * 100.0,
        m.cv_min_median_ms
    ) + &m.between_runs.as_ref().map(|b| format!(" Replicated configurations: {b}.")).unwrap_or_default()
}
