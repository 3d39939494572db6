//! History across nights: what `quadbench regressions`, `quadbench dashboard` and the export
//! read and write. A *series* is one configuration over time (its key is
//! [`crate::results::RunRecord::key`]: `<scenario>/<device>/<backend>/<precision>/<strategy>`);
//! a *night* is one label's runs of it (a farm submission label, or the `--label` given to
//! `history add`), with one or more replicate runs. Each night gives one point per metric; the
//! latest night of a series is compared with the nights before it.

use serde::{Deserialize, Serialize};

/// Schema tag of `quadbench regressions --json`.
pub const REGRESSIONS_SCHEMA: &str = "quadbench.regressions/1";

/// What the detector says of one series' metric on its latest night.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Worse by at least the metric's minimum effect, and the test says it is beyond
    /// night-to-night noise (or, for exact metrics, any change for the worse).
    Regression,
    /// Better, by the same rules.
    Improvement,
    /// Within the minimum effect, or not significant and small.
    Unchanged,
    /// At least the minimum effect but not significant, or too little history to test.
    Inconclusive,
    /// No earlier night: nothing to compare with.
    New,
    /// The series had a point before but none on the latest night.
    Missing,
    /// The context changed in a way that breaks comparison (another device model under the same
    /// name, another backend library): reported, not compared.
    NotComparable,
}

impl Change {
    /// Worst first: the order in which reports list verdicts.
    pub const WORST_FIRST: [Change; 7] = [
        Change::Regression,
        Change::Inconclusive,
        Change::Missing,
        Change::NotComparable,
        Change::Improvement,
        Change::New,
        Change::Unchanged,
    ];

    /// Position in [`Change::WORST_FIRST`] (0: the worst).
    pub fn severity(self) -> usize {
        Change::WORST_FIRST.iter().position(|c| *c == self).unwrap_or(Change::WORST_FIRST.len())
    }

    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Regression => "regression",
            Change::Improvement => "improvement",
            Change::Unchanged => "unchanged",
            Change::Inconclusive => "inconclusive",
            Change::New => "new",
            Change::Missing => "missing",
            Change::NotComparable => "not_comparable",
        }
    }
}

/// One night's figure of one metric of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NightPoint {
    /// The night's label.
    pub night: String,
    /// When its first run started, UTC, RFC 3339 (orders the nights).
    pub started_at: String,
    /// Runs (replicates) behind the point.
    pub runs: usize,
    /// The night's value: for latencies the pooled median of the replicates' samples (as the
    /// report computes a replicated configuration's), for the others the median over replicates.
    pub value: f64,
    /// 95% interval of the value: hierarchical bootstrap over replicates and their samples
    /// (latencies), or over replicates (other metrics with >= 2 replicates); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
    /// sha256 of the package that ran.
    pub package_sha256: String,
    /// quadbench's git revision.
    pub git_revision: String,
    /// ONNX Runtime version on the device.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ort_version: String,
}

/// One series' metric over nights, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The series key.
    pub key: String,
    /// Metric key (`latency_ms.e2e`, `memory.peak_rss_bytes`, `quality.<task>.psnr_db`, ...).
    pub metric: String,
    /// Unit of `value` (`ms`, `bytes`, `dB`, `count`).
    pub unit: String,
    /// Smaller is better.
    pub lower_is_better: bool,
    /// Nights, oldest first.
    pub points: Vec<NightPoint>,
}

/// The verdict on one series' metric for its latest night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The series key.
    pub key: String,
    /// Metric key, as in [`Trend::metric`].
    pub metric: String,
    /// The verdict.
    pub change: Change,
    /// The latest night's label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub night: String,
    /// The latest night's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<f64>,
    /// The baseline it is compared with (the back window's median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// How many times worse the latest night is than the baseline (> 1: worse; for
    /// lower-is-better metrics latest / baseline, for higher-is-better baseline / latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worse_ratio: Option<f64>,
    /// Relative change of the value, latest / baseline - 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    /// The test used, in words (`prediction t (n-1 df) on 12 nights`, `exact`, ...).
    pub test: String,
    /// Its statistic, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    /// Its one-sided p-value, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Nights in the back window.
    pub back_nights: usize,
    /// Qualcomm AI Hub-style bucket of `worse_ratio` (`>= 2x`, `1.1x`, ...; `new failure`,
    /// `fixed failure`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    /// Confirmation rerun: `Some(true)` when the rerun regressed too, `Some(false)` when it did
    /// not (the finding is then reported as inconclusive), `None` when none was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A device as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceHealth {
    /// Device name.
    pub name: String,
    /// Host (agent) it is attached to; empty for runs imported from results directories.
    pub host: String,
    /// `good`, `bad`, `unknown`, `retired`, or `-` when the farm does not know it.
    pub health: String,
    /// Why it is bad, or the operator's note.
    pub note: String,
    /// Its latest run, RFC 3339.
    pub last_run_at: String,
    /// Runs in the history, and how many of them failed.
    pub runs: usize,
    /// Of `runs`, those that failed or were invalid.
    pub failed_runs: usize,
}

/// Everything `quadbench regressions` decides, and what the dashboard draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// [`REGRESSIONS_SCHEMA`].
    pub schema: String,
    /// When it was computed, RFC 3339.
    pub generated_at: String,
    /// The label filter, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// One per series and metric, sorted by key then metric.
    pub findings: Vec<Finding>,
    /// The series over nights (what the findings were computed from).
    pub trends: Vec<Trend>,
    /// Devices seen in the history, with the farm's health where it has it.
    pub devices: Vec<DeviceHealth>,
}

impl RegressionReport {
    /// Regressions that stand (confirmed, or not submitted to a confirmation rerun).
    pub fn regressions(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.change == Change::Regression && f.confirmed != Some(false))
    }
}

/// The AI Hub-style bucket of a worse-ratio (> 1: worse): `>= 10x`, `5x`, `2x`, `1.5x`,
/// `1.3x`, `1.2x`, `1.1x`, or `< 1.1x`; for ratios below 1 (better) the same buckets of the
/// inverse with `better `.
pub fn ratio_bucket(worse_ratio: f64) -> String {
    const EDGES: &[(f64, &str)] =
        &[(10.0, ">= 10x"), (5.0, "5x"), (2.0, "2x"), (1.5, "1.5x"), (1.3, "1.3x"), (1.2, "1.2x"), (1.1, "1.1x")];
    if !worse_ratio.is_finite() || worse_ratio <= 0.0 {
        return String::new();
    }
    let (r, prefix) = if worse_ratio >= 1.0 { (worse_ratio, "") } else { (1.0 / worse_ratio, "better ") };
    match EDGES.iter().find(|(edge, _)| r >= *edge) {
        Some((_, name)) => format!("{prefix}{name}"),
        None => "< 1.1x".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_ai_hub_edges() {
        assert_eq!(ratio_bucket(12.0), ">= 10x");
        assert_eq!(ratio_bucket(8.0), "5x");
        assert_eq!(ratio_bucket(1.15), "1.1x");
        assert_eq!(ratio_bucket(1.05), "< 1.1x");
        assert_eq!(ratio_bucket(0.5), "better 2x");
        assert_eq!(ratio_bucket(f64::NAN), "");
    }

    #[test]
    fn unconfirmed_regressions_do_not_stand() {
        let f = |confirmed| Finding {
            key: "s/d/cpu/fp32/unified".into(),
            metric: "latency_ms.e2e".into(),
            change: Change::Regression,
            night: "n".into(),
            latest: Some(2.0),
            baseline: Some(1.0),
            worse_ratio: Some(2.0),
            effect: Some(1.0),
            test: "t".into(),
            statistic: None,
            p_value: None,
            back_nights: 4,
            bucket: "2x".into(),
            confirmed,
            note: String::new(),
        };
        let r = RegressionReport {
            schema: REGRESSIONS_SCHEMA.into(),
            generated_at: String::new(),
            label: None,
            findings: vec![f(None), f(Some(true)), f(Some(false))],
            trends: vec![],
            devices: vec![],
        };
        assert_eq!(r.regressions().count(), 2);
    }
}
