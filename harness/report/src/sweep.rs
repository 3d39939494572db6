//! A sweep's report, regenerated from its directory alone (`sweep.json` and each point's
//! `results.json` + `samples/`): per claim its ratio and 95% interval against each numeric axis
//! (a plot per claim and axis, `plots/sweep-<claim>-<axis>.{svg,png}`, and tables), the
//! crossover points ([`crate::sweep_fit::crossover`]), a least-squares cost model per strategy
//! and metric against the axis' cost driver ([`crate::sweep_fit::fit`]), the memory guard's
//! estimates beside the measured peaks, and `sweep.md`. Tables go out as Markdown (in
//! `sweep.md`), LaTeX and CSV through the same table renderers as a run's report.

use crate::sweep_fit::{self, CurvePoint, Fit};
use crate::tables::{Cell, Column, Table};
use crate::{Artefact, ReportError, csv_out, groups, latex, markdown, plots};
use quadbench_schema::metric::Metric;
use quadbench_schema::protocol::Strategy;
use quadbench_schema::results::{Results, RunState};
use quadbench_schema::sweep::{PointStatus, SWEEP_INDEX_FILE, SweepIndex, SweepPoint};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the index; a directory holding it is a sweep directory.
pub const INDEX_FILE: &str = SWEEP_INDEX_FILE;
/// Foundation sizes the cost models are extrapolated to, bytes (a 1-2 GB phone model).
pub const EXTRAPOLATE_BYTES: [f64; 2] = [1e9, 2e9];
/// Metrics fitted per strategy.
const FIT_METRICS: [Metric; 4] = [Metric::Switch, Metric::E2e, Metric::PeakRss, Metric::StorageTotal];
/// R² below which a straight line is reported as not describing the data...
pub const GOOD_FIT_R2: f64 = 0.9;
/// ...unless its RMSE is within this fraction of the mean |y|: then y is flat in x.
pub const FLAT_RMSE: f64 = 0.05;

/// A sweep directory loaded: its index and each finished point's results (recomputed from the
/// raw samples, as `quadbench report` does).
pub struct Sweep {
    /// `sweep.json`.
    pub index: SweepIndex,
    /// Per point (index order), its results when it finished.
    pub results: Vec<Option<Results>>,
}

/// Load a sweep directory.
pub fn load(dir: &Path) -> Result<Sweep, ReportError> {
    let path = dir.join(INDEX_FILE);
    let bad = |message: String| ReportError::Sweep { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let index: SweepIndex = serde_json::from_str(&text).map_err(|e| bad(format!("not a sweep index: {e}")))?;
    let mut results = Vec::new();
    for p in &index.points {
        let r = if p.status == PointStatus::Done {
            let mut r = Results::load(&dir.join(&p.dir))?;
            crate::recompute(&mut r);
            Some(r)
        } else {
            None
        };
        results.push(r);
    }
    Ok(Sweep { index, results })
}

/// A cost model's regressor: its name, unit, and value at a point.
type Driver = (&'static str, &'static str, fn(&SweepPoint) -> Option<f64>);

/// What a cost model is fitted against for an axis.
fn driver(axis: &str) -> Option<Driver> {
    Some(match axis {
        "width" => ("foundation (denoiser) weights", "MB", |p| p.foundation_bytes.map(|b| b as f64 / 1e6)),
        "rank" => ("adapter weights per task", "MB", |p| p.adapter_bytes.map(|b| b as f64 / 1e6)),
        "tasks" => ("tasks", "", |p| p.values.get("tasks").and_then(|v| v.number()).map(|n| n as f64)),
        "resolution" => {
            ("pixels", "Mpx", |p| p.values.get("resolution").and_then(|v| v.number()).map(|r| (r * r) as f64 / 1e6))
        }
        "steps" => ("denoiser steps", "", |p| p.values.get("steps").and_then(|v| v.number()).map(|n| n as f64)),
        _ => return None,
    })
}

/// One curve: a claim on one group of points along one axis.
struct Curve {
    claim: String,
    axis: String,
    series: String,
    threshold: f64,
    points: Vec<CurvePoint>,
}

/// The numeric axes that vary, each with its points grouped into series by the other axes.
fn axes(s: &Sweep) -> Vec<(String, BTreeMap<String, Vec<usize>>)> {
    let mut out = Vec::new();
    for axis in &s.index.axes {
        let mut xs: Vec<u64> = s.index.points.iter().filter_map(|p| p.values.get(axis)?.number()).collect();
        xs.sort();
        xs.dedup();
        if xs.len() < 2 {
            continue;
        }
        let mut series: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in s.index.points.iter().enumerate() {
            if p.values.get(axis).and_then(|v| v.number()).is_none() {
                continue;
            }
            let others: Vec<String> =
                p.values.iter().filter(|(k, _)| *k != axis).map(|(k, v)| format!("{k}={}", v.label())).collect();
            series.entry(others.join(", ")).or_default().push(i);
        }
        out.push((axis.clone(), series));
    }
    out
}

fn curves(s: &Sweep) -> Vec<Curve> {
    let mut out: Vec<Curve> = Vec::new();
    for (axis, series) in axes(s) {
        for (label, members) in series {
            for &i in &members {
                let (Some(r), Some(x)) = (&s.results[i], s.index.points[i].values[&axis].number()) else { continue };
                let groups: Vec<(&str, &str, &str)> =
                    r.claims.iter().map(|c| (c.device.as_str(), c.backend.as_str(), c.precision.as_str())).collect();
                let several = groups.iter().any(|g| *g != groups[0]);
                for c in r.claims.iter() {
                    let Some(ratio) = c.ratio else { continue };
                    let mut name = label.clone();
                    if several {
                        let g = format!("{}/{}/{}", c.device, c.backend, c.precision);
                        name = if name.is_empty() { g } else { format!("{name}, {g}") };
                    }
                    let cp = CurvePoint {
                        x: x as f64,
                        ratio,
                        lo: c.ci_low.unwrap_or(ratio),
                        hi: c.ci_high.unwrap_or(ratio),
                    };
                    match out.iter_mut().find(|k| k.claim == c.name && k.axis == axis && k.series == name) {
                        Some(k) => k.points.push(cp),
                        None => out.push(Curve {
                            claim: c.name.clone(),
                            axis: axis.clone(),
                            series: name,
                            threshold: c.threshold,
                            points: vec![cp],
                        }),
                    }
                }
            }
        }
    }
    for c in &mut out {
        c.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    out
}

fn col(key: &str, label: &str, numeric: bool) -> Column {
    Column { key: key.into(), label: label.into(), numeric }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::text(s)
}

/// `axis=value, ...` of a point.
fn values_label(p: &SweepPoint) -> String {
    p.values.iter().map(|(k, v)| format!("{k}={}", v.label())).collect::<Vec<_>>().join(", ")
}

fn claims_table(s: &Sweep) -> Table {
    let mut rows = Vec::new();
    for (p, r) in s.index.points.iter().zip(&s.results) {
        for c in r.iter().flat_map(|r| r.claims.iter()) {
            rows.push(vec![
                text(&c.name),
                text(&p.id),
                text(values_label(p)),
                text(format!("{}/{}/{}", c.device, c.backend, c.precision)),
                Cell::ci(c.ratio, c.ci_low.zip(c.ci_high).map(|(l, h)| [l, h]), 2),
                Cell::num(Some(c.threshold), 1),
                text(crate::tables::verdict_text(c.verdict)),
            ]);
        }
    }
    rows.sort_by_key(|r| match &r[0] {
        Cell::Text(t) => t.clone(),
        _ => String::new(),
    });
    Table {
        id: "sweep-claims".into(),
        title: "Claims at each point".into(),
        columns: vec![
            col("claim", "claim", false),
            col("point", "point", false),
            col("values", "axis values", false),
            col("group", "device/backend/precision", false),
            col("ratio", "ratio [95% CI]", true),
            col("threshold", "threshold", true),
            col("verdict", "verdict", false),
        ],
        rows,
        notes: vec!["Ratio = baseline / candidate (how many times better the candidate is); a claim passes where its whole interval is at or above the threshold.".into()],
    }
}

/// Mean over tasks of each run's per-task mean score (identical outputs left out, as the
/// ablation does), and the worst task's PSNR.
fn quality_table(s: &Sweep) -> Table {
    let mut rows = Vec::new();
    for (p, r) in s.index.points.iter().zip(&s.results) {
        for run in r.iter().flat_map(|r| r.runs.iter()).filter(|x| !x.quality.is_empty()) {
            let scored: Vec<_> = run.quality.values().filter(|q| !q.inputs.is_empty()).collect();
            let mean = |f: fn(&quadbench_schema::results::Scores) -> Option<f64>| {
                let v: Vec<f64> = scored.iter().filter(|q| !q.mean.identical).filter_map(|q| f(&q.mean)).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let worst = scored
                .iter()
                .map(|q| if q.mean.identical { f64::INFINITY } else { q.mean.psnr_db.unwrap_or(f64::NAN) })
                .fold(f64::INFINITY, f64::min);
            let failing = run.quality.values().filter(|q| q.pass == Some(false)).count();
            rows.push(vec![
                text(&p.id),
                text(values_label(p)),
                text(run.strategy.as_str()),
                Cell::num(mean(|m| m.psnr_db), 2),
                if worst.is_infinite() && !scored.is_empty() { text("identical") } else { Cell::num(Some(worst), 2) },
                Cell::num(mean(|m| m.ssim), 4),
                Cell::num(Some(scored.len() as f64), 0),
                Cell::num(Some(failing as f64), 0),
            ]);
        }
    }
    Table {
        id: "sweep-quality".into(),
        title: "Quality against the goldens at each point".into(),
        columns: vec![
            col("point", "point", false),
            col("values", "axis values", false),
            col("strategy", "strategy", false),
            col("psnr_db", "mean PSNR dB", true),
            col("worst_psnr_db", "worst-task PSNR dB", true),
            col("ssim", "mean SSIM", true),
            col("tasks_scored", "tasks scored", true),
            col("tasks_failing", "tasks failing thresholds", true),
        ],
        rows,
        notes: vec!["Only tasks whose goldens exist are scored (golden/<package name>/; packages of other parameters have none until blessed). PSNR and SSIM as in a run's report (scikit-image conventions, data range 1).".into()],
    }
}

/// For the width axis, the foundation's weight MB at axis value `x`: the points' own values,
/// interpolated in log between the grid points around `x` as the crossover is.
fn foundation_mb(s: &Sweep, axis: &str, crossing: sweep_fit::Crossing) -> Option<f64> {
    if axis != "width" {
        return None;
    }
    let mb = |w: f64| {
        s.index
            .points
            .iter()
            .find_map(|p| (p.values.get("width")?.number()? as f64 == w).then_some(p.foundation_bytes? as f64 / 1e6))
    };
    match crossing {
        sweep_fit::Crossing::AtOrBelow(x) => mb(x),
        sweep_fit::Crossing::At { x, between: (x0, x1) } => {
            let (m0, m1) = (mb(x0)?, mb(x1)?);
            let t = (x / x0).ln() / (x1 / x0).ln();
            Some((m0.ln() + t * (m1.ln() - m0.ln())).exp())
        }
        sweep_fit::Crossing::NotReached => None,
    }
}

fn crossover_table(s: &Sweep, curves: &[Curve]) -> Table {
    let mut rows = Vec::new();
    for c in curves {
        let pts = &c.points;
        let x = sweep_fit::crossover(pts, c.threshold);
        let range = (pts.first().map_or(0.0, |p| p.x), pts.last().map_or(0.0, |p| p.x));
        rows.push(vec![
            text(&c.claim),
            text(&c.axis),
            text(&c.series),
            Cell::num(Some(c.threshold), 1),
            Cell::num(x.lower.x(), 0),
            Cell::num(foundation_mb(s, &c.axis, x.lower), 1),
            Cell::num(x.holds_until.and_then(|h| h.0.x()), 0),
            text(x.upper.text()),
            text(x.point.text()),
            text(x.lower.text()),
            text(x.reading(range)),
        ]);
    }
    Table {
        id: "sweep-crossover".into(),
        title: "Crossover points".into(),
        columns: vec![
            col("claim", "claim", false),
            col("axis", "axis", false),
            col("series", "other axes", false),
            col("threshold", "threshold", true),
            col("crossover", "crossover", true),
            col("crossover_foundation_mb", "crossover, foundation MB", true),
            col("holds_up_to", "holds up to", true),
            col("upper_crosses", "CI upper bound crosses", false),
            col("ratio_crosses", "ratio crosses", false),
            col("lower_crosses", "CI lower bound crosses", false),
            col("reading", "reading", false),
        ],
        rows,
        notes: vec![
            "Crossover: the smallest axis value from which the claim's whole 95% interval is at or above the threshold at every larger grid point, interpolated between the two grid points around it, linearly in log(x) (linearly in x when an axis value is 0). Its uncertainty runs from where the interval's upper bound crosses to where its lower bound crosses; the ratio's own crossing lies between. On the width axis the crossover is also given as the foundation's (denoiser's) float32 weight MB, interpolated the same way. A claim that holds at the low end and stops holding (a falling curve) gets \"holds up to\": where its lower bound first falls below the threshold, interpolated the same way.".into(),
        ],
    }
}

/// A fitted cost model: which axis, series, strategy and metric, and the line.
struct CostModel {
    axis: String,
    series: String,
    strategy: Strategy,
    metric: Metric,
    driver: (&'static str, &'static str),
    xs: Vec<f64>,
    ys: Vec<f64>,
    fit: Fit,
}

fn cost_models(s: &Sweep) -> Vec<CostModel> {
    let mut out = Vec::new();
    for (axis, series) in axes(s) {
        let Some((dname, dunit, dx)) = driver(&axis) else { continue };
        for (label, members) in series {
            for strategy in Strategy::ALL {
                for metric in FIT_METRICS {
                    let info = metric.info();
                    let (mut xs, mut ys) = (Vec::new(), Vec::new());
                    for &i in &members {
                        let (Some(r), Some(x)) = (&s.results[i], dx(&s.index.points[i])) else { continue };
                        let runs: Vec<_> =
                            r.runs.iter().filter(|x| x.strategy == strategy && x.status == RunState::Ok).collect();
                        if let Some(y) = groups::value(metric, &runs) {
                            xs.push(x);
                            ys.push(y / info.display_divisor);
                        }
                    }
                    if let Some(fit) = sweep_fit::fit(&xs, &ys) {
                        out.push(CostModel {
                            axis: axis.clone(),
                            series: label.clone(),
                            strategy,
                            metric,
                            driver: (dname, dunit),
                            xs,
                            ys,
                            fit,
                        });
                    }
                }
            }
        }
    }
    out
}

fn fits_table(models: &[CostModel]) -> Table {
    let mut rows = Vec::new();
    for m in models {
        let info = m.metric.info();
        let extrapolate = |bytes: f64| {
            if m.axis != "width" {
                return Cell::text("-");
            }
            let x = bytes / 1e6;
            Cell::ci(Some(m.fit.predict(x)), Some(m.fit.prediction_interval(x)), 1)
        };
        let rmse = (m.fit.residuals.iter().map(|r| r * r).sum::<f64>() / m.fit.n as f64).sqrt();
        let mean_abs = m.ys.iter().map(|y| y.abs()).sum::<f64>() / m.ys.len() as f64;
        let mut note = if m.fit.r2 >= GOOD_FIT_R2 {
            "fits".to_string()
        } else if rmse <= FLAT_RMSE * mean_abs {
            format!(
                "flat: y hardly depends on x (RMSE within {:.0}% of its mean; R² is low because there is little variation to explain)",
                FLAT_RMSE * 100.0
            )
        } else {
            format!("poor fit (R² < {GOOD_FIT_R2}): a straight line does not describe it")
        };
        if m.axis == "width" {
            note.push_str(&format!(
                "; 1-2 GB values are extrapolation (measured up to {:.0} {})",
                m.fit.x_max, m.driver.1
            ));
        }
        rows.push(vec![
            text(&m.axis),
            text(&m.series),
            text(m.strategy.as_str()),
            text(format!("{} ({})", info.label, info.display_unit)),
            text(if m.driver.1.is_empty() {
                m.driver.0.to_string()
            } else {
                format!("{} ({})", m.driver.0, m.driver.1)
            }),
            Cell::num(Some(m.fit.n as f64), 0),
            Cell::num(Some(m.fit.a), 2),
            Cell::num(Some(m.fit.b), 4),
            Cell::num(Some(m.fit.r2), 3),
            Cell::num(Some(rmse), 2),
            extrapolate(EXTRAPOLATE_BYTES[0]),
            extrapolate(EXTRAPOLATE_BYTES[1]),
            text(note),
        ]);
    }
    Table {
        id: "sweep-fits".into(),
        title: "Cost models: y = a + b x per strategy (least squares)".into(),
        columns: vec![
            col("axis", "axis", false),
            col("series", "other axes", false),
            col("strategy", "strategy", false),
            col("metric", "y", false),
            col("driver", "x", false),
            col("n", "n", true),
            col("a", "a", true),
            col("b", "b (per unit of x)", true),
            col("r2", "R²", true),
            col("rmse", "RMSE", true),
            col("at_1gb", "at 1 GB [95% PI]", true),
            col("at_2gb", "at 2 GB [95% PI]", true),
            col("note", "note", false),
        ],
        rows,
        notes: vec![
            "Latencies are medians per run, memory the peak RSS, storage the bytes on the device. At 1 GB and 2 GB of foundation weights (width axis only) the line is extrapolated far beyond the measured range, with a 95% prediction interval that holds only if the line still holds there; read it as an order of magnitude, not a measurement.".into(),
        ],
    }
}

fn residuals_table(models: &[CostModel]) -> Table {
    let mut rows = Vec::new();
    for m in models {
        for ((x, y), r) in m.xs.iter().zip(&m.ys).zip(&m.fit.residuals) {
            rows.push(vec![
                text(&m.axis),
                text(&m.series),
                text(m.strategy.as_str()),
                text(m.metric.key()),
                Cell::num(Some(*x), 3),
                Cell::num(Some(*y), 2),
                Cell::num(Some(y - r), 2),
                Cell::num(Some(*r), 2),
            ]);
        }
    }
    Table {
        id: "sweep-residuals".into(),
        title: "Cost-model residuals".into(),
        columns: vec![
            col("axis", "axis", false),
            col("series", "other axes", false),
            col("strategy", "strategy", false),
            col("metric", "metric", false),
            col("x", "x", true),
            col("measured", "measured", true),
            col("fitted", "fitted", true),
            col("residual", "residual", true),
        ],
        rows,
        notes: vec!["Units as in the cost-model table; residual = measured - fitted.".into()],
    }
}

fn points_table(s: &Sweep) -> Table {
    let mut rows = Vec::new();
    for (p, r) in s.index.points.iter().zip(&s.results) {
        let values: Vec<String> = p.values.iter().map(|(k, v)| format!("{k}={}", v.label())).collect();
        for m in &p.memory {
            let measured = r.as_ref().and_then(|r| {
                r.runs.iter().filter(|x| x.strategy == m.strategy).filter_map(|x| x.memory.peak_rss_bytes).max()
            });
            rows.push(vec![
                text(&p.id),
                text(values.join(", ")),
                text(format!("{:?}", p.status).to_lowercase()),
                text(m.strategy.as_str()),
                Cell::num(Some(m.sessions as f64), 0),
                Cell::num(Some(m.peak_bytes as f64 / 1e6), 0),
                Cell::num(measured.map(|b| b as f64 / 1e6), 0),
                text(if m.skipped { "skipped (over the limit)" } else { "" }),
                Cell::num(p.seconds, 0),
            ]);
        }
        if p.memory.is_empty() {
            rows.push(vec![
                text(&p.id),
                text(values.join(", ")),
                text(format!("{:?}", p.status).to_lowercase()),
                text("-"),
                Cell::num(None, 0),
                Cell::num(None, 0),
                Cell::num(None, 0),
                text(&p.note),
                Cell::num(p.seconds, 0),
            ]);
        }
    }
    Table {
        id: "sweep-points".into(),
        title: "Points and the memory guard".into(),
        columns: vec![
            col("point", "point", false),
            col("values", "axis values", false),
            col("status", "status", false),
            col("strategy", "strategy", false),
            col("sessions", "denoiser sessions", true),
            col("estimated_peak_mb", "estimated peak MB", true),
            col("measured_peak_mb", "measured peak RSS MB", true),
            col("guard", "guard", false),
            col("seconds", "point wall s", true),
        ],
        rows,
        notes: vec![format!(
            "Memory limit {:.0} MB ({}). Estimate: runtime overhead + sessions x denoiser weights x a measured factor (see README, \"Sweeps\"); the measured peak is the runner's VmHWM. Wall time includes package generation and the per-point report.",
            s.index.memory_limit_bytes as f64 / 1e6,
            s.index.memory_limit_source
        )],
    }
}

/// Every artefact of a sweep directory: `sweep.md`, `tables/sweep-*.{csv,tex}`,
/// `plots/sweep-<claim>-<axis>.{svg,png}`.
pub fn render(dir: &Path) -> Result<Vec<Artefact>, ReportError> {
    let s = load(dir)?;
    let curves = curves(&s);
    let models = cost_models(&s);
    let tables = [
        points_table(&s),
        claims_table(&s),
        crossover_table(&s, &curves),
        fits_table(&models),
        residuals_table(&models),
        quality_table(&s),
    ];
    let mut out = Vec::new();
    let prefix = format!("qb-sweep-{}", s.index.name);
    for t in &tables {
        out.push(Artefact::text(format!("tables/{}.csv", t.id), csv_out::table(t)?));
        out.push(Artefact::text(format!("tables/{}.tex", t.id), latex::table(t, &prefix)));
    }
    let mut plot_names = Vec::new();
    let mut keys: Vec<(String, String)> = curves.iter().map(|c| (c.claim.clone(), c.axis.clone())).collect();
    keys.dedup();
    for (claim, axis) in keys {
        let group: Vec<plots::sweep::Series> = curves
            .iter()
            .filter(|c| c.claim == claim && c.axis == axis)
            .map(|c| plots::sweep::Series {
                label: if c.series.is_empty() { claim.clone() } else { c.series.clone() },
                points: c.points.clone(),
                threshold: c.threshold,
            })
            .collect();
        let name = format!("sweep-{}-{axis}", safe(&claim));
        let title = format!("{claim} against {axis}");
        let (svg, png) = plots::sweep::render(&name, &title, &axis, &group)?;
        out.push(Artefact::text(format!("plots/{name}.svg"), svg));
        out.push(Artefact { path: format!("plots/{name}.png"), bytes: png });
        plot_names.push((name, title));
    }
    out.push(Artefact::text("sweep.md", markdown_page(&s, &tables, &plot_names)));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn markdown_page(s: &Sweep, tables: &[Table], plots: &[(String, String)]) -> String {
    let ix = &s.index;
    let count = |st: PointStatus| ix.points.iter().filter(|p| p.status == st).count();
    let mut md = format!(
        "# quadbench sweep: {}\n\n{}{}Sweep file `{}` (sha256 `{}`), base scenario `{}` (sha256 `{}`); axes: {}. {} point(s): {} done, {} skipped, {} failed, {} pending{}.\n",
        ix.name,
        ix.description,
        if ix.description.is_empty() { "" } else { "\n\n" },
        file_name(&ix.sweep.path),
        short(&ix.sweep.sha256),
        file_name(&ix.scenario.path),
        short(&ix.scenario.sha256),
        ix.axes.join(", "),
        ix.points.len(),
        count(PointStatus::Done),
        count(PointStatus::Skipped),
        count(PointStatus::Failed),
        count(PointStatus::Pending),
        if ix.complete { "" } else { " (**incomplete**: resume with --resume)" }
    );
    let wall: f64 = ix.points.iter().filter_map(|p| p.seconds).sum();
    md.push_str(&format!("Wall time of the points: {:.0} s.\n", wall));
    for id in ["sweep-crossover", "sweep-claims", "sweep-fits", "sweep-residuals", "sweep-quality", "sweep-points"] {
        if let Some(t) = tables.iter().find(|t| t.id == id) {
            md.push_str(&format!("\n## {}\n\n{}", t.title, markdown::table(t)));
        }
    }
    let skipped: Vec<String> = ix
        .points
        .iter()
        .filter(|p| !p.note.is_empty())
        .map(|p| format!("- `{}` ({}): {}", p.id, format!("{:?}", p.status).to_lowercase(), p.note))
        .collect();
    if !skipped.is_empty() {
        md.push_str(&format!("\n## Skipped and failed\n\n{}\n", skipped.join("\n")));
    }
    if !plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for (name, title) in plots {
            md.push_str(&format!("![{title}](plots/{name}.svg)\n\n"));
        }
    }
    md
}

fn file_name(p: &str) -> String {
    Path::new(p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}
