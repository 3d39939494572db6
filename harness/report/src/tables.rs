//! The report's tables, built once from the results and rendered by every exporter: "On-device
//! KPIs", "Quality per task", "Claims", "Runs", "Unified vs separate strategies" and "Latency
//! percentiles". Cells keep their numbers (value and interval), so CSV and JSON get raw values
//! and Markdown, LaTeX and HTML get formatted text.

use crate::{claims as compare, groups, stats};
use quadbench_schema::metric::Metric;
use quadbench_schema::protocol::Strategy;
use quadbench_schema::protocol::sample_key;
use quadbench_schema::results::{CiMethod, ClaimResult, Results, RunRecord, RunState, Scores, Verdict};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
/// One table cell: text, or a number that keeps its value for CSV and JSON.
pub enum Cell {
    /// Text.
    Text(String),
    /// A number.
    Num {
        /// The value (`None`: not available).
        value: Option<f64>,
        /// Decimals shown.
        #[serde(skip)]
        digits: usize,
    },
    /// A point estimate with its 95% CI.
    Ci {
        /// The point.
        value: Option<f64>,
        /// Lower end of the interval.
        ci_low: Option<f64>,
        /// Upper end of the interval.
        ci_high: Option<f64>,
        /// Decimals shown.
        #[serde(skip)]
        digits: usize,
    },
    /// A value that must not be read as a measurement (a p99 of 20 samples): kept raw for CSV and
    /// JSON, shown as `flag` in human tables.
    Flagged {
        /// The raw value.
        value: Option<f64>,
        /// What people see instead.
        flag: String,
    },
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// A number shown with `digits` decimals (`-` when absent or not finite).
    pub fn num(v: Option<f64>, digits: usize) -> Cell {
        Cell::Num { value: v.filter(|x| x.is_finite()), digits }
    }

    /// A point with its 95% CI.
    pub fn ci(v: Option<f64>, ci: Option<[f64; 2]>, digits: usize) -> Cell {
        Cell::Ci { value: v, ci_low: ci.map(|c| c[0]), ci_high: ci.map(|c| c[1]), digits }
    }

    /// A value kept in CSV and JSON but shown as `flag` (too few samples).
    pub fn flagged(v: Option<f64>, flag: impl Into<String>) -> Cell {
        Cell::Flagged { value: v.filter(|x| x.is_finite()), flag: flag.into() }
    }

    /// The point and the interval as separate strings (interval empty when absent).
    pub fn parts(&self) -> (String, String) {
        let f = |v: f64, d: usize| format!("{v:.d$}");
        match self {
            Cell::Text(s) => (s.clone(), String::new()),
            Cell::Flagged { flag, .. } => (flag.clone(), String::new()),
            Cell::Num { value, digits } => (value.map_or("-".into(), |v| f(v, *digits)), String::new()),
            Cell::Ci { value, ci_low, ci_high, digits } => {
                let point = value.map_or("-".into(), |v| f(v, *digits));
                let ci = match (ci_low, ci_high) {
                    // A deterministic metric's interval is the point itself: show the point alone.
                    (Some(l), Some(h)) if value.is_some() && !(l == h && Some(*l) == *value) => {
                        format!("[{}, {}]", f(*l, *digits), f(*h, *digits))
                    }
                    _ => String::new(),
                };
                (point, ci)
            }
        }
    }

    /// Human text: `12.3 [11.9, 12.8]`.
    pub fn display(&self) -> String {
        match self.parts() {
            (p, ci) if ci.is_empty() => p,
            (p, ci) => format!("{p} {ci}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
/// A column: header and kind.
pub struct Column {
    /// Machine name (CSV header, JSON key).
    pub key: String,
    /// Human header.
    pub label: String,
    /// Right-aligned numbers.
    pub numeric: bool,
}

fn col(key: &str, label: &str, numeric: bool) -> Column {
    Column { key: key.into(), label: label.into(), numeric }
}

#[derive(Debug, Clone, Serialize)]
/// A table every exporter renders.
pub struct Table {
    /// File stem: `tables/<id>.csv`, `tables/<id>.tex`.
    pub id: String,
    /// Caption.
    pub title: String,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// Footnotes: units, methods, caveats.
    pub notes: Vec<String>,
}

/// Every table of the report (the order of report.json; the documents choose their own).
pub fn all(r: &Results) -> Vec<Table> {
    let mut t = vec![kpis(r), quality(r), claims(r), runs(r), ratios(r), percentiles(r)];
    // Only packages with tensor outputs have the table, so other reports keep their bytes.
    if r.runs.iter().any(|x| x.quality.values().any(|q| !q.tensors.is_empty())) {
        t.insert(2, tensor_quality(r));
    }
    t
}

/// Text columns with the same value on every row (of two or more), and numeric columns with no
/// value at all: page layouts (HTML, LaTeX) state them once above the table instead of repeating
/// them on every row. A numeric result stays in its column even when it is the same everywhere.
pub fn constant_columns(t: &Table) -> Vec<usize> {
    if t.rows.len() < 2 {
        return vec![];
    }
    let same = |i: usize| t.rows.iter().all(|r| r[i].display() == t.rows[0][i].display());
    let empty = |i: usize| t.rows.iter().all(|r| r[i].display() == "-");
    (0..t.columns.len()).filter(|&i| if t.columns[i].numeric { empty(i) } else { same(i) }).collect()
}

/// `label value` of each constant column, as a sentence part: "device local, precision fp32".
pub fn constants_text(t: &Table, cols: &[usize]) -> String {
    let v = |i: usize| match t.rows[0][i].display() {
        d if d == "-" => "n/a".to_string(),
        d => d,
    };
    cols.iter().map(|&i| format!("{} {}", t.columns[i].label, v(i))).collect::<Vec<_>>().join(", ")
}

/// The table without the columns `drop`.
pub fn without(t: &Table, drop: &[usize]) -> Table {
    let keep = |i: &usize| !drop.contains(i);
    Table {
        columns: (0..t.columns.len()).filter(keep).map(|i| t.columns[i].clone()).collect(),
        rows: t.rows.iter().map(|r| (0..r.len()).filter(keep).map(|i| r[i].clone()).collect()).collect(),
        ..t.clone()
    }
}

/// One table per distinct value of the `by` columns (first-appearance order), those columns
/// removed; the values come with it. The notes stay with the last part.
pub fn split_by(t: &Table, by: &[&str]) -> Vec<(Vec<String>, Table)> {
    let idx: Vec<usize> = by.iter().filter_map(|k| t.columns.iter().position(|c| c.key == *k)).collect();
    let mut keys: Vec<Vec<String>> = Vec::new();
    for r in &t.rows {
        let k: Vec<String> = idx.iter().map(|&i| r[i].display()).collect();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let n = keys.len();
    keys.into_iter()
        .enumerate()
        .map(|(j, k)| {
            let rows =
                t.rows.iter().filter(|r| idx.iter().zip(&k).all(|(&i, v)| r[i].display() == *v)).cloned().collect();
            let part = Table { rows, notes: if j + 1 == n { t.notes.clone() } else { vec![] }, ..t.clone() };
            (k, without(&part, &idx))
        })
        .collect()
}

/// Stage metrics in pipeline order: encoder, denoiser, decoder first, others alphabetically.
pub fn stages(r: &Results) -> Vec<String> {
    let mut v: Vec<String> = r
        .runs
        .iter()
        .flat_map(|x| x.latency_ms.keys().cloned())
        .filter(|k| ![sample_key::E2E, sample_key::SWITCH, sample_key::SWITCH_LOAD].contains(&k.as_str()))
        .collect();
    v.sort_by_key(|k| {
        (["encoder", "denoiser", "decoder"].iter().position(|s| s == k).unwrap_or(usize::MAX), k.clone())
    });
    v.dedup();
    v
}

/// Whether a stage runs several times per request (more samples than end-to-end).
fn per_step(r: &Results, stage: &str) -> bool {
    r.runs.iter().any(
        |x| matches!((x.latency_ms.get(stage), x.latency_ms.get(sample_key::E2E)), (Some(s), Some(e)) if s.n > e.n),
    )
}

const MB: f64 = 1e6;

/// A run's status in words.
pub fn status(run: &RunRecord) -> String {
    match run.status {
        RunState::Ok if run.valid => "ok".into(),
        RunState::Ok => run.validity_note.clone(),
        RunState::Failed if run.infrastructure_error => "infrastructure error".into(),
        RunState::Failed => "failed".into(),
        RunState::Unsupported => "unsupported".into(),
    }
}

/// A configuration's latency cell: its run's median and CI, or over several runs the pooled
/// median with the hierarchical CI ([`groups::latency`]).
fn group_lat(runs: &[&RunRecord], key: &str) -> Cell {
    let (v, ci) = groups::latency(runs, key);
    Cell::ci(v, ci, 1)
}

/// The status of a configuration with several runs: `ok (3 runs)`, or each status with its count.
fn group_status(runs: &[&RunRecord]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for run in runs {
        let st = status(run);
        match counts.iter_mut().find(|(s, _)| *s == st) {
            Some((_, n)) => *n += 1,
            None => counts.push((st, 1)),
        }
    }
    match &counts[..] {
        [(st, _)] => format!("{st} ({} runs)", runs.len()),
        _ => counts.iter().map(|(st, n)| format!("{st} x{n}")).collect::<Vec<_>>().join(", "),
    }
}

/// One KPI row: a single run's figures, or a replicated configuration's over its successful runs.
fn kpi_row(stages: &[String], c: &groups::Config<'_>) -> Vec<Cell> {
    let mut row =
        vec![Cell::text(c.device), Cell::text(c.backend), Cell::text(c.precision), Cell::text(c.strategy.as_str())];
    let mb = |v: f64| v / Metric::PeakRss.info().display_divisor;
    let (runs, peak, status) = match &c.runs[..] {
        [run] => (vec![*run], Cell::num(Metric::PeakRss.of(run).map(mb), 1), status(run)),
        _ => {
            let (v, ci) = groups::per_run_ci(Metric::PeakRss, &c.ok());
            (c.ok(), Cell::ci(v.map(mb), ci.map(|[l, h]| [mb(l), mb(h)]), 1), group_status(&c.runs))
        }
    };
    row.extend(stages.iter().map(|s| group_lat(&runs, s)));
    // Storage is deterministic: every run of a configuration has the same.
    let storage = &runs.first().copied().unwrap_or(c.runs[0]).storage;
    row.extend([
        group_lat(&runs, sample_key::E2E),
        group_lat(&runs, sample_key::SWITCH),
        Cell::num(Some(storage.foundation_bytes as f64 / MB), 1),
        Cell::num(Some(storage.adapter_bytes as f64 / MB), 1),
        Cell::num(Some(storage.baseline_bytes as f64 / MB), 1),
        peak,
        Cell::text(status),
    ]);
    row
}

fn kpis(r: &Results) -> Table {
    let stages = stages(r);
    let mut columns = run_columns().to_vec();
    for s in &stages {
        let unit = if per_step(r, s) { "ms/step" } else { "ms" };
        columns.push(col(&format!("{s}_ms"), &format!("{s} {unit}"), true));
    }
    columns.extend([
        col("e2e_ms", "end-to-end ms", true),
        col("switch_ms", "switch ms", true),
        col("foundation_rom_mb", "foundation ROM MB", true),
        col("lora_rom_mb", "LoRA ROM MB", true),
        col("task_binaries_rom_mb", "task binaries ROM MB", true),
        col("peak_ram_mb", "peak RAM MB", true),
        col("status", "status", false),
    ]);
    let configs = groups::configs(&r.runs);
    let rows = configs.iter().map(|c| kpi_row(&stages, c)).collect();
    let replicated = configs.iter().any(|c| c.runs.len() > 1);
    let over = if replicated {
        "over the run's steady-state samples, or a configuration's runs' pooled samples (CI by hierarchical bootstrap: runs, then samples within runs)"
    } else {
        "over the run's steady-state samples"
    };
    let peak = if replicated {
        "Peak RAM: peak RSS of the runner, one measurement per run; for a configuration with several runs, the mean over its successful runs [95% CI: percentile bootstrap over the runs]."
    } else {
        "Peak RAM: peak RSS of the runner, one measurement per run, so no CI (repeat runs for one)."
    };
    Table {
        id: "kpis".into(),
        title: "On-device KPIs".into(),
        columns,
        rows,
        notes: vec![
            format!("Latencies: median [95% CI] in ms, {} (median = p50 by MLPerf LoadGen's percentile rule; percentile bootstrap, {} resamples, seed {}); per step for repeated stages. Switch: task-switch request to first output of the new task.", over, stats::RESAMPLES, stats::SEED),
            "ROM: bytes pushed to the device, MB = 10^6 bytes; task binaries = the per-task merged graphs of the separate strategies.".into(),
            peak.into(),
        ],
    }
}

fn quality(r: &Results) -> Table {
    let mut columns = vec![col("task", "task", false)];
    columns.extend(run_columns());
    columns.extend([
        col("psnr_db", "PSNR dB", true),
        col("ssim", "SSIM", true),
        col("ms_ssim", "MS-SSIM", true),
        col("lpips", "LPIPS", true),
        col("lpips_proxy", "LPIPS proxy", true),
        col("thresholds", "thresholds", false),
    ]);
    let mut rows = Vec::new();
    let tasks = quality_tasks(r);
    let mut identical = false;
    for task in tasks {
        for run in r.runs.iter() {
            let Some(q) = run.quality.get(task) else { continue };
            let m: &Scores = &q.mean;
            identical |= m.identical;
            let psnr = if m.identical && m.psnr_db.is_none() { Cell::text("inf") } else { Cell::num(m.psnr_db, 2) };
            let verdict = match q.pass {
                // A missing golden is reported as missing, never as a failed metric.
                None if !q.missing_golden.is_empty() => format!("missing golden: {}", q.missing_golden.join(", ")),
                None => "-".to_string(),
                Some(p) => {
                    let failed: Vec<&str> =
                        q.thresholds.iter().filter(|(_, ok)| !**ok).map(|(k, _)| k.as_str()).collect();
                    if p { "pass".into() } else { format!("fail: {}", failed.join("; ")) }
                }
            };
            let mut row = vec![Cell::text(task)];
            row.extend(run_cells(run));
            row.extend([
                psnr,
                Cell::num(m.ssim, 4),
                Cell::num(m.ms_ssim, 4),
                Cell::num(m.lpips, 4),
                Cell::num(m.lpips_proxy, 4),
                Cell::text(verdict),
            ]);
            rows.push(row);
        }
    }
    let mut notes = vec!["Mean over the scenario's input images of each output against its golden. LPIPS proxy: a deterministic stand-in when no LPIPS network is available; lower is better.".to_string()];
    if identical {
        notes.push("inf: output identical to the golden.".into());
    }
    if rows.is_empty() {
        notes.push("No quality scores in results.json: the run had no goldens to compare with.".into());
    }
    Table { id: "quality".into(), title: "Quality per task".into(), columns, rows, notes }
}

/// Errors of tensors span many decades (1e-7 for float rounding, 1e-2 for quantization):
/// three significant digits in scientific notation, the exact value in the text.
fn sci(v: Option<f64>) -> Cell {
    v.filter(|x| x.is_finite()).map_or(Cell::num(None, 0), |x| Cell::text(format!("{x:.3e}")))
}

fn tensor_quality(r: &Results) -> Table {
    let mut columns = vec![col("task", "task", false), col("output", "output", false)];
    columns.extend(run_columns());
    columns.extend([
        col("max_abs_error", "max abs error", true),
        col("rmse", "RMSE", true),
        col("psnr_db", "PSNR dB", true),
        col("cosine", "cosine", true),
        col("data_range_from", "PSNR data range", false),
    ]);
    let mut rows = Vec::new();
    let tasks = quality_tasks(r);
    let mut identical = false;
    for task in tasks {
        for run in r.runs.iter() {
            let Some(q) = run.quality.get(task) else { continue };
            for (output, t) in &q.tensors {
                let m = &t.mean;
                identical |= m.identical;
                let psnr = if m.identical { Cell::text("inf") } else { Cell::num(m.psnr_db, 2) };
                let range = if t.missing_golden.is_empty() {
                    t.data_range_from.clone()
                } else {
                    format!("{} (missing golden: {})", t.data_range_from, t.missing_golden.join(", "))
                };
                let mut row = vec![Cell::text(task), Cell::text(output)];
                row.extend(run_cells(run));
                row.extend([sci(m.max_abs_error), sci(m.rmse), psnr, Cell::num(m.cosine, 8), Cell::text(range)]);
                rows.push(row);
            }
        }
    }
    let mut notes = vec!["Mean over the scenario's inputs of each tensor output (`.npy`) against its golden tensor: largest absolute difference, RMSE, PSNR = 10 log10(range^2 / MSE) over the whole tensor, cosine similarity. PSNR data range: the output's `range:` in package.yaml (package range), else each golden's max - min. Threshold verdicts are in the quality table.".to_string()];
    if identical {
        notes.push("inf: every input's tensor identical to its golden.".into());
    }
    Table { id: "tensor-quality".into(), title: "Tensor quality per task".into(), columns, rows, notes }
}

/// A verdict in words.
pub fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Missing => "missing run",
    }
}

/// A claim's interval method in words; the runs per side when a configuration was replicated.
fn ci_method_text(c: &ClaimResult) -> String {
    let runs = c.runs.map(|[b, k]| format!(", {b} vs {k} runs")).unwrap_or_default();
    match c.ci_method {
        CiMethod::Bootstrap => "bootstrap".into(),
        CiMethod::HierarchicalBootstrap => format!("hierarchical bootstrap{runs}"),
        CiMethod::BootstrapOverRuns => format!("bootstrap over runs{runs}"),
        CiMethod::Exact => "exact".into(),
        CiMethod::None if c.runs.is_some() => format!("none{runs}"),
        CiMethod::None => "none (n = 1)".into(),
    }
}

fn claims(r: &Results) -> Table {
    let columns = vec![
        col("claim", "claim", false),
        col("metric", "metric", false),
        col("device", "device", false),
        col("backend", "backend", false),
        col("precision", "precision", false),
        col("baseline", "baseline", false),
        col("candidate", "candidate", false),
        col("ratio", "ratio baseline/candidate [95% CI]", true),
        col("threshold", "threshold", true),
        col("verdict", "verdict", false),
        col("ci_method", "CI", false),
    ];
    let rows = r
        .claims
        .iter()
        .map(|c| {
            let ci = c.ci_low.zip(c.ci_high).map(|(l, h)| [l, h]);
            vec![
                Cell::text(&c.name),
                Cell::text(&c.metric),
                Cell::text(&c.device),
                Cell::text(&c.backend),
                Cell::text(&c.precision),
                Cell::text(c.baseline.as_str()),
                Cell::text(c.candidate.as_str()),
                Cell::ci(c.ratio, ci, 2),
                Cell::num(Some(c.threshold), 1),
                Cell::text(verdict_text(c.verdict)),
                Cell::text(ci_method_text(c)),
            ]
        })
        .collect();
    let mut t = Table {
        id: "claims".into(),
        title: "Claims".into(),
        columns,
        rows,
        notes: vec![
            "ratio = baseline / candidate: how many times smaller (storage, memory) or faster (latency) the candidate is; medians for latencies.".into(),
            format!("95% CI: bootstrap = percentile bootstrap of the ratio of medians, both runs' raw samples resampled independently ({} resamples, seed {}); exact = deterministic metric; none = one measurement per run.", stats::RESAMPLES, stats::SEED),
            "Verdict: pass when the whole CI is at or above the threshold, fail when it is entirely below, inconclusive when it straddles the threshold.".into(),
        ],
    };
    if r.claims.iter().any(|c| c.runs.is_some()) {
        t.notes.insert(2, format!("Replicated configurations (several runs each): hierarchical bootstrap = the ratio of pooled medians, each side's runs resampled with replacement, then the samples within each drawn run ({} resamples, seed {}); bootstrap over runs = the ratio of the means of one value per run, each side's runs resampled (needs 2 or more runs a side).", stats::RESAMPLES, stats::SEED));
    }
    t
}

/// Warnings of one run: high variability, outliers, throttling, validity.
pub fn run_warnings(run: &RunRecord) -> Vec<String> {
    let mut w = Vec::new();
    for (k, s) in &run.latency_ms {
        for x in &s.warnings {
            w.push(format!("{k}: {x}"));
        }
    }
    if let Some(t) = &run.throttle
        && t.throttled
    {
        w.push(format!("throttled: {}", t.note));
    }
    if run.status == RunState::Ok && !run.valid {
        w.push(run.validity_note.clone());
    }
    w
}

fn runs(r: &Results) -> Table {
    let columns = vec![
        col("run", "run", false),
        col("status", "status", false),
        col("validity", "validity", false),
        col("requests", "requests", true),
        col("duration_s", "duration s", true),
        col("e2e_samples", "e2e samples", true),
        col("e2e_outliers", "e2e outliers", true),
        col("e2e_cv", "e2e CV", true),
        col("switch_samples", "switch samples", true),
        col("throttle", "throttle check", false),
        col("warnings", "warnings", true),
    ];
    let rows = r
        .runs
        .iter()
        .map(|run| {
            let e2e = run.latency_ms.get(sample_key::E2E);
            let throttle = match &run.throttle {
                None => "-".to_string(),
                Some(t) if t.method == "none" => "skipped".into(),
                Some(t) => format!(
                    "{}{}",
                    if t.throttled { "throttled" } else { "ok" },
                    if t.retries > 0 { format!(" after {} cool-down(s)", t.retries) } else { String::new() }
                ),
            };
            vec![
                Cell::text(&run.id),
                Cell::text(status(run)),
                Cell::text(if run.status == RunState::Ok {
                    run.validity_note.as_str()
                } else {
                    run.error.as_deref().unwrap_or("")
                }),
                Cell::num(Some(run.requests as f64), 0),
                Cell::num(Some(run.duration_ms / 1e3), 1),
                Cell::num(e2e.map(|s| s.n as f64), 0),
                Cell::num(e2e.and_then(|s| s.outliers.as_ref()).map(|o| o.indices.len() as f64), 0),
                Cell::num(e2e.and_then(|s| s.cv), 3),
                Cell::num(run.latency_ms.get(sample_key::SWITCH).map(|s| s.n as f64), 0),
                Cell::text(throttle),
                Cell::num(Some(run_warnings(run).len() as f64), 0),
            ]
        })
        .collect();
    Table {
        id: "runs".into(),
        title: "Runs".into(),
        columns,
        rows,
        notes: vec![
            "Validity as MLPerf LoadGen defines it: minimum samples and minimum duration met.".into(),
            format!(
                "Outliers: outside Tukey fences (k = {}), marked and kept. CV = std / mean; above {:.0}% a warning is raised, unless the median is under {} us (there the spread is the clock's and the scheduler's, not the workload's).",
                stats::TUKEY_K,
                stats::CV_WARN * 100.0,
                stats::CV_MIN_MEDIAN_MS * 1e3
            ),
        ],
    }
}

/// What the console prints after a run, as a table: per device x backend x precision, how many
/// times smaller (storage, peak RSS) or faster (switch latency, medians) the unified graph is
/// than each separate strategy. Only where both runs succeeded.
fn ratios(r: &Results) -> Table {
    let columns = vec![
        col("device", "device", false),
        col("backend", "backend", false),
        col("precision", "precision", false),
        col("separate", "unified vs", false),
        col("storage_ratio", "storage ratio", true),
        col("peak_rss_ratio", "peak RSS ratio", true),
        col("switch_ratio", "switch latency ratio [95% CI]", true),
    ];
    let mut sets: Vec<(&str, &str, &str)> = Vec::new();
    for x in &r.runs {
        let g = (x.device.as_str(), x.backend.as_str(), x.precision.as_str());
        if !sets.contains(&g) {
            sets.push(g);
        }
    }
    let mut rows = Vec::new();
    for group in sets {
        let (device, backend, precision) = group;
        let unified = groups::ok_runs(&r.runs, group, Strategy::Unified);
        if unified.is_empty() {
            continue;
        }
        for other in [Strategy::SeparateResident, Strategy::SeparateReload, Strategy::SeparateSharedWeights] {
            let o = groups::ok_runs(&r.runs, group, other);
            if o.is_empty() {
                continue;
            }
            let cmp = |m: Metric| compare::compare(m, &o, &unified);
            let peak = cmp(Metric::PeakRss);
            let switch = cmp(Metric::Switch);
            rows.push(vec![
                Cell::text(device),
                Cell::text(backend),
                Cell::text(precision),
                Cell::text(other.as_str()),
                Cell::num(cmp(Metric::StorageTotal).ratio, 2),
                if peak.ci.is_some() { Cell::ci(peak.ratio, peak.ci, 2) } else { Cell::num(peak.ratio, 2) },
                Cell::ci(switch.ratio, switch.ci, 2),
            ]);
        }
    }
    let mut notes = vec![
        "ratio = separate / unified: how many times smaller (storage on the device, peak RSS) or faster (median task-switch latency) the unified graph is; above 1 favours unified.".to_string(),
        format!("Switch latency CI: percentile bootstrap of the ratio of medians, both runs resampled independently ({} resamples, seed {}); storage is exact and peak RSS one measurement per run, so no CI.", stats::RESAMPLES, stats::SEED),
    ];
    if groups::replicated(&r.runs) {
        notes.push("Configurations with several runs: medians of the pooled samples with a hierarchical bootstrap (runs, then samples within runs) for switch latency, means over the runs with a bootstrap over runs for peak RSS [95% CI].".into());
    }
    if rows.is_empty() {
        notes.push("No device and backend has both a successful unified run and a successful separate run.".into());
    }
    Table { id: "ratios".into(), title: "Unified vs separate strategies".into(), columns, rows, notes }
}

/// Latency percentiles per run and metric. A tail from fewer samples than it needs is shown as
/// `n < N` (its raw value stays in CSV, report.json and results.json).
fn percentiles(r: &Results) -> Table {
    let columns = vec![
        col("run", "run", false),
        col("metric", "metric", false),
        col("n", "samples", true),
        col("p50_ms", "p50 ms", true),
        col("p90_ms", "p90 ms", true),
        col("p99_ms", "p99 ms", true),
        col("max_ms", "max ms", true),
    ];
    let mut order = stages(r);
    order.extend([sample_key::E2E, sample_key::SWITCH, sample_key::SWITCH_LOAD].map(String::from));
    let mut rows = Vec::new();
    for run in &r.runs {
        for key in &order {
            let Some(s) = run.latency_ms.get(key) else { continue };
            let tail = |name: &str, q: f64, v: f64| {
                if s.too_few_samples.iter().any(|f| f == name) {
                    Cell::flagged(Some(v), format!("n < {}", stats::min_samples(q)))
                } else {
                    Cell::num(Some(v), 2)
                }
            };
            rows.push(vec![
                Cell::text(&run.id),
                Cell::text(key),
                Cell::num(Some(s.n as f64), 0),
                Cell::num(Some(s.p50), 2),
                tail("p90", 90.0, s.p90),
                tail("p99", 99.0, s.p99),
                Cell::num(Some(s.max), 2),
            ]);
        }
    }
    Table {
        id: "percentiles".into(),
        title: "Latency percentiles".into(),
        columns,
        rows,
        notes: vec![
            "Percentiles in ms by MLPerf LoadGen's rule: the sorted samples' element floor(n x p), clamped to the last; per step for repeated stages.".into(),
            format!(
                "n < N: too few samples for that percentile to be a tail estimate (p90 needs {}, p99 {}); the raw value is kept in results.json, tables/percentiles.csv and report.json, flagged.",
                stats::min_samples(90.0),
                stats::min_samples(99.0)
            ),
        ],
    }
}

/// The columns naming a run's configuration, as [`run_cells`] fills them.
fn run_columns() -> [Column; 4] {
    [
        col("device", "device", false),
        col("backend", "backend", false),
        col("precision", "precision", false),
        col("strategy", "strategy", false),
    ]
}

/// A run's configuration: device, backend, precision, strategy.
fn run_cells(run: &RunRecord) -> [Cell; 4] {
    [Cell::text(&run.device), Cell::text(&run.backend), Cell::text(&run.precision), Cell::text(run.strategy.as_str())]
}

/// Tasks with quality records, in the package's task order (then by name), each once.
fn quality_tasks(r: &Results) -> Vec<&String> {
    let mut tasks: Vec<&String> = r.runs.iter().flat_map(|x| x.quality.keys()).collect();
    tasks.sort_by_key(|t| (r.package.tasks.iter().position(|p| p == *t).unwrap_or(usize::MAX), t.to_string()));
    tasks.dedup();
    tasks
}
