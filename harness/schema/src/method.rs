//! How the statistics in a results file were computed: the constants every interval, warning
//! and percentile uses, recorded in results.json as [`Method`] (the functions that apply them are
//! `quadbench_report::stats`).

use serde::{Deserialize, Serialize};

/// Confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples.
pub const RESAMPLES: usize = 2000;
/// Bootstrap seed ("QUAD").
pub const SEED: u64 = 0x5155_4144;
/// Coefficient of variation above which a summary carries a warning.
pub const CV_WARN: f64 = 0.10;
/// Median (ms) below which no high-CV warning is raised: 50 us. What is timed there is (nearly)
/// nothing, e.g. switching between sessions that are already resident takes 0.2-0.4 us, so the
/// spread is that of the clock and the OS: a monotonic clock read costs tens of ns and ticks in
/// 1 ns to 1 us steps depending on the device, samples are stored to 1 ns, and preemption or a
/// cache miss adds microseconds to tens of microseconds. A 10% CV is only about the workload
/// once the interval is well above that, i.e. at least ~50x the coarsest tick and above the
/// scheduler's jitter.
pub const CV_MIN_MEDIAN_MS: f64 = 0.05;
/// Tukey's fence factor.
pub const TUKEY_K: f64 = 1.5;

/// How the statistics in a results file were computed (recorded in results.json).
// `default`: results files written before a field existed still load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Method {
    /// Confidence level of every interval.
    pub confidence: f64,
    /// How the median's interval is obtained.
    pub median_ci: String,
    /// How a claim ratio's interval is obtained.
    pub ratio_ci: String,
    /// How the mean's interval is obtained.
    pub mean_ci: String,
    /// Bootstrap resamples.
    pub bootstrap_resamples: usize,
    /// Bootstrap seed.
    pub bootstrap_seed: u64,
    /// The bootstrap's generator.
    pub rng: String,
    /// How outliers are marked.
    pub outliers: String,
    /// Coefficient of variation above which a summary carries a warning.
    pub cv_warn: f64,
    /// No high-CV warning below this median (ms).
    pub cv_min_median_ms: f64,
    /// How p50, p90 and p99 are taken, and when a tail is flagged.
    pub percentiles: String,
    /// How a configuration with several runs (scenario key `replicates`) is summarised and how
    /// its intervals carry the between-run spread ([`between_runs()`]); absent when every
    /// configuration ran once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub between_runs: Option<String>,
}

impl Default for Method {
    fn default() -> Method {
        Method {
            confidence: CONFIDENCE,
            median_ci: "percentile bootstrap of the median".into(),
            ratio_ci:
                "percentile bootstrap of median(baseline)/median(candidate), the two runs resampled independently"
                    .into(),
            mean_ci: "Student's t".into(),
            bootstrap_resamples: RESAMPLES,
            bootstrap_seed: SEED,
            rng: "splitmix64".into(),
            outliers: format!("Tukey fences, k = {TUKEY_K}; outliers kept"),
            cv_warn: CV_WARN,
            cv_min_median_ms: CV_MIN_MEDIAN_MS,
            percentiles: format!(
                "MLPerf LoadGen's rule: sorted samples, element floor(n * p), clamped to the last; p90 needs >= {} samples and p99 >= {}, else it is flagged",
                min_samples(90.0),
                min_samples(99.0)
            ),
            between_runs: None,
        }
    }
}

impl Method {
    /// The method of a results file: [`Method::default`], plus [`between_runs()`] when some
    /// configuration has several runs.
    pub fn for_replicates(replicated: bool) -> Method {
        Method { between_runs: replicated.then(between_runs), ..Method::default() }
    }
}

/// How replicated configurations are summarised (the text recorded in [`Method::between_runs`]).
pub fn between_runs() -> String {
    format!("hierarchical bootstrap: runs, then samples within runs, B = {RESAMPLES}, seed {SEED}. {BETWEEN_RUNS}")
}

/// The rule behind [`between_runs()`].
pub const BETWEEN_RUNS: &str = "A configuration's latency is the median of its runs' pooled samples; its interval resamples the runs with replacement, then each drawn run's samples with replacement, and takes the pooled median (a claim's ratio: both sides resampled so, independently). One-value-per-run metrics (peak memory, init) are the mean over the runs, with a percentile bootstrap over the runs (two or more runs on each side)";

/// How percentiles are taken (the text recorded in [`Method::percentiles`]).
pub const PERCENTILES: &str = "MLPerf LoadGen's rule: sorted samples, element floor(n * p), clamped to the last";

/// Samples a percentile needs before it means anything: at least one sample must lie beyond it,
/// `n * (1 - q/100) >= 1`, so p90 needs 10 and p99 needs 100 (the p99 of 20 samples is just the
/// maximum). Rounded: `100 / (100 - 99)` must give 100, not 100.00000000000001.
pub fn min_samples(q: f64) -> usize {
    if q >= 100.0 { usize::MAX } else { (100.0 / (100.0 - q)).round() as usize }
}

/// Tukey fences and the samples outside them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outliers {
    /// Q1 - k IQR.
    pub low_fence: f64,
    /// Q3 + k IQR.
    pub high_fence: f64,
    /// Indices (in sample order) of the samples outside the fences; kept in all statistics.
    pub indices: Vec<usize>,
}
