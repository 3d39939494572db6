//! The metric table: every scalar a run reports that claims, KPI tables, the console summary and
//! plots talk about, with its key (as in results.json and scenarios), unit, which direction is
//! better, how its interval is obtained, how to read it from a run, and its label. Adding a
//! scalar metric is one row here (plus its extractor); nothing else matches metric names.

use crate::results::RunRecord;
use quadbench_protocol::sample_key;
use serde::{Deserialize, Serialize};

/// A scalar run metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    /// Bytes the strategy needs on the device.
    #[serde(rename = "storage.total_bytes")]
    StorageTotal,
    /// Highest VmHWM over the run.
    #[serde(rename = "memory.peak_rss_bytes")]
    PeakRss,
    /// Highest sampled PSS.
    #[serde(rename = "memory.peak_pss_bytes")]
    PeakPss,
    /// Session creation.
    #[serde(rename = "init_ms")]
    Init,
    /// Task switch to first output (median).
    #[serde(rename = "latency_ms.switch")]
    Switch,
    /// The load part of a switch (median).
    #[serde(rename = "latency_ms.switch_load")]
    SwitchLoad,
    /// End-to-end steady-state request (median).
    #[serde(rename = "latency_ms.e2e")]
    E2e,
}

/// Which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Smaller values are better (bytes, milliseconds).
    Lower,
    /// Larger values are better.
    Higher,
}

/// How a claim on the metric gets its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiRule {
    /// Deterministic (storage): the interval is the point.
    Exact,
    /// Percentile bootstrap over the runs' raw samples of this sample key; hierarchical (runs,
    /// then samples within runs) when a configuration has several runs.
    Bootstrap {
        /// Which raw samples.
        sample_key: &'static str,
    },
    /// One measurement per run: no interval from a single run (the verdict uses the point); with
    /// two or more runs per side, a percentile bootstrap of the ratio of means over the runs.
    PerRun,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct MetricInfo {
    /// The metric.
    pub metric: Metric,
    /// Key in results.json and scenarios.
    pub key: &'static str,
    /// Short human label (tables, console).
    pub label: &'static str,
    /// Unit of the raw value.
    pub unit: &'static str,
    /// Unit and divisor for display (`MB`, 1e6).
    pub display_unit: &'static str,
    /// Divide the raw value by this for display.
    pub display_divisor: f64,
    /// Which direction is better.
    pub better: Better,
    /// How a claim gets its interval.
    pub ci: CiRule,
    /// Its value in a run.
    pub extract: fn(&RunRecord) -> Option<f64>,
}

fn p50(r: &RunRecord, key: &str) -> Option<f64> {
    r.latency_ms.get(key).map(|s| s.p50)
}

/// Every scalar run metric.
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        metric: Metric::StorageTotal,
        key: "storage.total_bytes",
        label: "storage",
        unit: "bytes",
        display_unit: "MB",
        display_divisor: 1e6,
        better: Better::Lower,
        ci: CiRule::Exact,
        extract: |r| Some(r.storage.total_bytes as f64),
    },
    MetricInfo {
        metric: Metric::PeakRss,
        key: "memory.peak_rss_bytes",
        label: "peak RSS",
        unit: "bytes",
        display_unit: "MB",
        display_divisor: 1e6,
        better: Better::Lower,
        ci: CiRule::PerRun,
        extract: |r| r.memory.peak_rss_bytes.map(|v| v as f64),
    },
    MetricInfo {
        metric: Metric::PeakPss,
        key: "memory.peak_pss_bytes",
        label: "peak PSS",
        unit: "bytes",
        display_unit: "MB",
        display_divisor: 1e6,
        better: Better::Lower,
        ci: CiRule::PerRun,
        extract: |r| r.memory.peak_pss_bytes.map(|v| v as f64),
    },
    MetricInfo {
        metric: Metric::Init,
        key: "init_ms",
        label: "init",
        unit: "ms",
        display_unit: "ms",
        display_divisor: 1.0,
        better: Better::Lower,
        ci: CiRule::PerRun,
        extract: |r| Some(r.init_ms),
    },
    MetricInfo {
        metric: Metric::Switch,
        key: "latency_ms.switch",
        label: "switch latency",
        unit: "ms",
        display_unit: "ms",
        display_divisor: 1.0,
        better: Better::Lower,
        ci: CiRule::Bootstrap { sample_key: sample_key::SWITCH },
        extract: |r| p50(r, sample_key::SWITCH),
    },
    MetricInfo {
        metric: Metric::SwitchLoad,
        key: "latency_ms.switch_load",
        label: "switch load",
        unit: "ms",
        display_unit: "ms",
        display_divisor: 1.0,
        better: Better::Lower,
        ci: CiRule::Bootstrap { sample_key: sample_key::SWITCH_LOAD },
        extract: |r| p50(r, sample_key::SWITCH_LOAD),
    },
    MetricInfo {
        metric: Metric::E2e,
        key: "latency_ms.e2e",
        label: "e2e latency",
        unit: "ms",
        display_unit: "ms",
        display_divisor: 1.0,
        better: Better::Lower,
        ci: CiRule::Bootstrap { sample_key: sample_key::E2E },
        extract: |r| p50(r, sample_key::E2E),
    },
];

impl Metric {
    /// Its row of [`METRICS`].
    pub fn info(self) -> &'static MetricInfo {
        METRICS.iter().find(|m| m.metric == self).expect("every metric has a row")
    }

    /// Key in results.json and scenarios.
    pub fn key(self) -> &'static str {
        self.info().key
    }

    /// The metric with this key.
    pub fn parse(key: &str) -> Option<Metric> {
        METRICS.iter().find(|m| m.key == key).map(|m| m.metric)
    }

    /// Every key, for messages.
    pub fn keys() -> Vec<&'static str> {
        METRICS.iter().map(|m| m.key).collect()
    }

    /// The run's value (for latencies: the median).
    pub fn of(self, r: &RunRecord) -> Option<f64> {
        (self.info().extract)(r)
    }

    /// How many times better `candidate` is than `baseline` (> 1: the candidate wins).
    pub fn ratio(self, baseline: f64, candidate: f64) -> Option<f64> {
        let (num, den) = match self.info().better {
            Better::Lower => (baseline, candidate),
            Better::Higher => (candidate, baseline),
        };
        (den > 0.0).then(|| num / den)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_parse_and_serde() {
        for m in METRICS {
            assert_eq!(Metric::parse(m.key), Some(m.metric));
            assert_eq!(serde_json::to_string(&m.metric).unwrap(), format!("\"{}\"", m.key));
        }
        assert_eq!(Metric::parse("latency_ms.p99"), None);
    }

    #[test]
    fn ratio_is_baseline_over_candidate_for_lower_is_better() {
        assert_eq!(Metric::StorageTotal.ratio(900.0, 100.0), Some(9.0));
        assert_eq!(Metric::E2e.ratio(1.0, 0.0), None);
    }
}
