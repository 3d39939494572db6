//! From recorded runs to trends: runs are grouped by series (their key) and night (their
//! label), nights ordered by their first run's start, and each night reduced to one point per
//! metric ([`HISTORY_METRICS`] says which, with its unit, direction and how it is compared).

use crate::stats;
use quadbench_schema::history::{NightPoint, Trend};
use quadbench_schema::metric::METRICS;
use quadbench_schema::results::{RunRecord, RunState};
use std::collections::BTreeMap;

/// One recorded run and the night it belongs to.
#[derive(Debug, Clone)]
pub struct HistoryRun {
    /// The night's label.
    pub night: String,
    /// When the run started, RFC 3339 with fixed width (orders as text).
    pub started_at: String,
    /// The run, with its raw samples.
    pub record: RunRecord,
}

/// How a metric is compared across nights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    /// Deterministic: any change is reported.
    Exact,
    /// Noisy: changes below `min_effect` (relative) are `unchanged`; larger ones are tested
    /// against the night-to-night spread.
    Noisy {
        /// Smallest relative change reported as a regression or improvement.
        min_effect: f64,
    },
}

/// A family of history metrics: every metric key starting with `prefix`.
#[derive(Debug, Clone, Copy)]
pub struct HistoryMetric {
    /// Key prefix (`latency_ms.` covers every stage, `e2e`, `switch`, ...).
    pub prefix: &'static str,
    /// Unit of the values.
    pub unit: &'static str,
    /// Smaller is better.
    pub lower_is_better: bool,
    /// How nights are compared.
    pub comparison: Comparison,
    /// Smallest absolute change (in `unit`) a noisy metric reports, besides the relative one
    /// (Perfherder's absolute threshold per series): sub-0.05 ms stages move by more than 10%
    /// with the timer and the scheduler alone.
    pub min_abs: f64,
}

/// Every metric history tracks. Minimum effects come from this machine's own noise: two demo
/// runs back to back differed by 4% in e2e median and 11% in peak RSS ratio (issue 13), so a
/// 10% latency floor keeps back-to-back noise out; memory of one configuration varies less
/// than the ratio of two (5%); init times are dominated by file-cache state (25%); quality is
/// deterministic on CPU but not on accelerators (2%).
pub const HISTORY_METRICS: &[HistoryMetric] = &[
    HistoryMetric {
        prefix: "latency_ms.",
        unit: "ms",
        lower_is_better: true,
        comparison: Comparison::Noisy { min_effect: 0.10 },
        min_abs: 0.05,
    },
    HistoryMetric {
        prefix: "init_ms",
        unit: "ms",
        lower_is_better: true,
        comparison: Comparison::Noisy { min_effect: 0.25 },
        min_abs: 0.0,
    },
    HistoryMetric {
        prefix: "memory.",
        unit: "bytes",
        lower_is_better: true,
        comparison: Comparison::Noisy { min_effect: 0.05 },
        min_abs: 0.0,
    },
    HistoryMetric {
        prefix: "storage.",
        unit: "bytes",
        lower_is_better: true,
        comparison: Comparison::Exact,
        min_abs: 0.0,
    },
    HistoryMetric {
        prefix: "quality.",
        unit: "score",
        lower_is_better: false,
        comparison: Comparison::Noisy { min_effect: 0.02 },
        min_abs: 0.0,
    },
    HistoryMetric {
        prefix: "fallback.",
        unit: "count",
        lower_is_better: true,
        comparison: Comparison::Exact,
        min_abs: 0.0,
    },
    HistoryMetric {
        prefix: "runs.",
        unit: "count",
        lower_is_better: true,
        comparison: Comparison::Exact,
        min_abs: 0.0,
    },
];

/// The row of [`HISTORY_METRICS`] for a metric key.
pub fn history_metric(key: &str) -> Option<&'static HistoryMetric> {
    HISTORY_METRICS.iter().find(|m| key.starts_with(m.prefix))
}

/// PSNR of identical images is infinite; history caps it here so that nights stay comparable.
pub const PSNR_CAP_DB: f64 = 100.0;

/// One run's value of every metric it has (latency medians, init, memory, storage, quality,
/// CPU-fallback nodes), keyed as in [`HISTORY_METRICS`]. Failed runs have none.
pub fn run_values(r: &RunRecord) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if r.status != RunState::Ok {
        return out;
    }
    for (k, s) in &r.latency_ms {
        out.insert(format!("latency_ms.{k}"), s.p50);
    }
    // Init, memory and storage as the run-metric table reads them (its latency rows are
    // among the stages above).
    for m in METRICS.iter().filter(|m| !m.key.starts_with("latency_ms.")) {
        if let Some(v) = m.metric.of(r) {
            out.insert(m.key.to_string(), v);
        }
    }
    for (task, q) in &r.quality {
        let psnr = if q.mean.identical { Some(PSNR_CAP_DB) } else { q.mean.psnr_db.map(|p| p.min(PSNR_CAP_DB)) };
        if let Some(p) = psnr {
            out.insert(format!("quality.{task}.psnr_db"), p);
        }
        if let Some(s) = q.mean.ssim {
            out.insert(format!("quality.{task}.ssim"), s);
        }
    }
    if !r.compiled.is_empty() {
        let cpu: u64 = r.compiled.iter().flat_map(|g| g.placement.cpu_nodes.values()).sum();
        out.insert("fallback.cpu_nodes".into(), cpu as f64);
    }
    out
}

/// The series (keys) and, per series, its nights in order, each with its runs.
pub fn group(runs: &[HistoryRun]) -> BTreeMap<String, Vec<(String, Vec<&HistoryRun>)>> {
    let mut by_series: BTreeMap<String, BTreeMap<String, Vec<&HistoryRun>>> = BTreeMap::new();
    for r in runs {
        by_series.entry(r.record.key.clone()).or_default().entry(r.night.clone()).or_default().push(r);
    }
    by_series
        .into_iter()
        .map(|(key, nights)| {
            let mut nights: Vec<(String, Vec<&HistoryRun>)> = nights.into_iter().collect();
            for (_, rs) in &mut nights {
                rs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
            }
            nights.sort_by(|a, b| (&a.1[0].started_at, &a.0).cmp(&(&b.1[0].started_at, &b.0)));
            (key, nights)
        })
        .collect()
}

/// One night of one series as points, one per metric the night has.
pub fn night_points(night: &str, runs: &[&HistoryRun]) -> BTreeMap<String, NightPoint> {
    let first = &runs[0];
    let env = &first.record.environment;
    let point = |value: f64, ci: Option<[f64; 2]>, n: usize| NightPoint {
        night: night.to_string(),
        started_at: first.started_at.clone(),
        runs: n,
        value,
        ci,
        package_sha256: env.package_sha256.clone(),
        git_revision: env.git_revision.clone(),
        ort_version: env.runner.ort_version.clone().unwrap_or_default(),
    };
    let mut per_metric: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for (k, v) in run_values(&r.record) {
            per_metric.entry(k).or_default().push(v);
        }
    }
    let ok: Vec<&RunRecord> = runs.iter().map(|r| &r.record).filter(|r| r.status == RunState::Ok).collect();
    let mut out = BTreeMap::new();
    for (k, vals) in per_metric {
        // Latencies as the report computes a replicated configuration's: the pooled median
        // with its hierarchical bootstrap interval (one run: its own median and interval).
        let (value, ci) = match k.strip_prefix("latency_ms.") {
            Some(stage) => crate::groups::latency(&ok, stage),
            None => (Some(median(&vals)), if vals.len() >= 2 { stats::median_ci(&vals, stats::SEED) } else { None }),
        };
        out.insert(k, point(value.unwrap_or_else(|| median(&vals)), ci, vals.len()));
    }
    let failed = runs.iter().filter(|r| r.record.status != RunState::Ok || !r.record.valid).count();
    out.insert("runs.failed".into(), point(failed as f64, None, runs.len()));
    out
}

/// The median (LoadGen's rule, as everywhere in reports).
pub fn median(vals: &[f64]) -> f64 {
    let mut v = vals.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    stats::percentile(&v, 50.0)
}

/// Every series' trends, one per metric, nights oldest first.
pub fn trends(runs: &[HistoryRun]) -> Vec<Trend> {
    let mut out = Vec::new();
    for (key, nights) in group(runs) {
        let mut by_metric: BTreeMap<String, Vec<NightPoint>> = BTreeMap::new();
        for (night, rs) in &nights {
            for (k, p) in night_points(night, rs) {
                by_metric.entry(k).or_default().push(p);
            }
        }
        for (metric, points) in by_metric {
            let Some(m) = history_metric(&metric) else { continue };
            out.push(Trend {
                key: key.clone(),
                metric,
                unit: m.unit.to_string(),
                lower_is_better: m.lower_is_better,
                points,
            });
        }
    }
    out
}
