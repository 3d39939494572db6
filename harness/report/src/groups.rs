//! Configurations and their runs. Several runs of one device x backend x precision x strategy
//! (scenario key `replicates`) are one configuration in claims, KPI and ratio tables. With one
//! run per configuration every figure is that run's, exactly as without replicates; with
//! several, values and intervals come from the between-run methods of [`crate::stats`]: the
//! pooled median with a hierarchical bootstrap for latencies, the mean over runs with a
//! bootstrap over runs for one-value-per-run metrics.

use crate::stats;
use quadbench_schema::metric::{CiRule, Metric};
use quadbench_schema::protocol::Strategy;
use quadbench_schema::results::{RunRecord, RunState};

/// One configuration and every run of it, in results order.
#[derive(Debug, Clone)]
pub struct Config<'a> {
    /// Device profile name.
    pub device: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// Precision label.
    pub precision: &'a str,
    /// Deployment strategy.
    pub strategy: Strategy,
    /// Its runs, whatever their status.
    pub runs: Vec<&'a RunRecord>,
}

impl<'a> Config<'a> {
    /// The runs that produced a result.
    pub fn ok(&self) -> Vec<&'a RunRecord> {
        self.runs.iter().copied().filter(|r| r.status == RunState::Ok).collect()
    }
}

/// Every configuration of `runs`, in order of first appearance.
pub fn configs(runs: &[RunRecord]) -> Vec<Config<'_>> {
    let mut out: Vec<Config<'_>> = Vec::new();
    for r in runs {
        let same = |c: &&mut Config<'_>| {
            (c.device, c.backend, c.precision, c.strategy)
                == (r.device.as_str(), r.backend.as_str(), r.precision.as_str(), r.strategy)
        };
        match out.iter_mut().find(same) {
            Some(c) => c.runs.push(r),
            None => out.push(Config {
                device: &r.device,
                backend: &r.backend,
                precision: &r.precision,
                strategy: r.strategy,
                runs: vec![r],
            }),
        }
    }
    out
}

/// Whether some configuration has several runs (the between-run methods apply).
pub fn replicated(runs: &[RunRecord]) -> bool {
    configs(runs).iter().any(|c| c.runs.len() > 1)
}

/// The successful runs of one configuration.
pub fn ok_runs<'a>(runs: &'a [RunRecord], group: (&str, &str, &str), strategy: Strategy) -> Vec<&'a RunRecord> {
    runs.iter()
        .filter(|r| {
            (r.device.as_str(), r.backend.as_str(), r.precision.as_str()) == group
                && r.strategy == strategy
                && r.status == RunState::Ok
        })
        .collect()
}

/// Every run's raw samples of `key`, or `None` when a run lacks them.
pub fn samples<'a>(runs: &[&'a RunRecord], key: &str) -> Option<Vec<&'a [f64]>> {
    runs.iter().map(|r| r.samples.get(key).map(Vec::as_slice)).collect()
}

/// Median latency of `key` over `runs` with its 95% CI: one run's summary (p50 and its
/// bootstrap CI); several runs' pooled median with the hierarchical bootstrap CI, or, without
/// raw samples, the mean of the runs' medians and no interval.
pub fn latency(runs: &[&RunRecord], key: &str) -> (Option<f64>, Option<[f64; 2]>) {
    if let [run] = runs {
        let s = run.latency_ms.get(key);
        return (s.map(|s| s.p50), s.and_then(|s| s.p50_ci));
    }
    match samples(runs, key) {
        Some(s) if !s.is_empty() => (stats::pooled_median(&s), stats::hierarchical_median_ci(&s, stats::SEED)),
        _ => {
            let medians: Vec<f64> = runs.iter().filter_map(|r| r.latency_ms.get(key).map(|s| s.p50)).collect();
            (stats::mean_over_runs(&medians), None)
        }
    }
}

/// A one-value-per-run metric's values over `runs` (runs without one left out).
pub fn per_run(metric: Metric, runs: &[&RunRecord]) -> Vec<f64> {
    runs.iter().filter_map(|r| metric.of(r)).collect()
}

/// A metric's value over `runs`: the run's own for one run; for several, the pooled median
/// (latencies, [`latency`]) or the mean over the runs.
pub fn value(metric: Metric, runs: &[&RunRecord]) -> Option<f64> {
    match (runs, metric.info().ci) {
        ([run], _) => metric.of(run),
        (_, CiRule::Bootstrap { sample_key }) => latency(runs, sample_key).0,
        _ => stats::mean_over_runs(&per_run(metric, runs)),
    }
}

/// A one-value-per-run metric over `runs` with its interval: the run's own value and no interval
/// for one run; the mean over runs with a bootstrap over runs for several.
pub fn per_run_ci(metric: Metric, runs: &[&RunRecord]) -> (Option<f64>, Option<[f64; 2]>) {
    let v = per_run(metric, runs);
    (value(metric, runs), if runs.len() > 1 { stats::mean_over_runs_ci(&v, stats::SEED) } else { None })
}
