//! Statistics for results and reports: confidence intervals, outliers, variability.
//!
//! Which intervals, and why:
//! - **Median CI**: percentile bootstrap (resample the run's samples with replacement
//!   [`RESAMPLES`] times, take the 2.5th and 97.5th percentiles of the resampled medians).
//!   Latency distributions are skewed and have outliers, so no normality is assumed.
//! - **Ratio-of-medians CI** (claims): percentile bootstrap over two independent samples: each
//!   resample draws the baseline and the candidate independently, with replacement, and takes
//!   `median(baseline) / median(candidate)`.
//! - **Replicated configurations** (scenario key `replicates`, several runs of one
//!   configuration): the value is the median of the runs' pooled samples, and its interval a
//!   hierarchical bootstrap ([`hierarchical_median_ci`]): each resample draws as many runs as
//!   there are, with replacement, then each drawn run's samples with replacement, and takes the
//!   pooled median; so runs that disagree widen the interval, which pooling alone would hide.
//!   With one run it is exactly [`median_ci`] (no draw is spent on choosing the run). Claims
//!   resample each side so, independently ([`hierarchical_ratio_ci`]). Per-run values (peak
//!   memory, init) get a percentile bootstrap of the mean over runs ([`mean_over_runs_ci`],
//!   [`ratio_of_means_ci`]).
//! - **Mean CI**: Student's t interval (`statrs`), reported for completeness only.
//! - **Outliers**: Tukey fences `[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`; outliers are marked (indices
//!   into the samples) and kept in every statistic and plot.
//! - **Percentiles** (p50, p90, p99, the medians inside intervals and ratios, quartiles, interval
//!   end points): MLPerf LoadGen's rule, [`percentile`], so that a run's validity and its
//!   percentiles follow the same reference. A tail needs enough samples to exist at all
//!   ([`min_samples`]); below that it is flagged, never presented as a measurement.
//! - **High-CV warnings** only above a median of [`CV_MIN_MEDIAN_MS`]: below it the spread is
//!   the clock's and the scheduler's, not the workload's.
//!
//! The bootstrap is seeded ([`SEED`]) with SplitMix64 (`quadbench_schema::protocol::rng`) so that the
//! same samples give the same interval on every machine and every library version.

use quadbench_schema::protocol::rng::SplitMix64;
use quadbench_schema::results::Summary;
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;

pub use quadbench_schema::method::{
    CONFIDENCE, CV_MIN_MEDIAN_MS, CV_WARN, Method, Outliers, RESAMPLES, SEED, TUKEY_K, min_samples,
};

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut s = x.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// Percentile `q` (in percent) of sorted samples by MLPerf LoadGen's rule: the element at index
/// `floor(n * q / 100)`, clamped to the last element. No interpolation: every percentile is an
/// observed sample, as in LoadGen's summaries.
///
/// LoadGen source (mlcommons/inference, `loadgen/results.cc`, commit 7ad9af18,
/// `PerformanceSummary::ProcessLatencies`): after `std::sort(pr.sample_latencies...)` it takes
/// `lp.sample_latency = pr.sample_latencies[sample_count * lp.percentile];` with
/// `assert(lp.percentile < 1.0)`, i.e. a `size_t * double` product truncated to an index. The
/// same double product is computed here, so indices match LoadGen's bit for bit; the clamp covers
/// `q = 100`, which LoadGen asserts away.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = (sorted.len() as f64 * (q / 100.0)) as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn resampled_median(x: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..x.len()).map(|_| x[rng.below(x.len())]));
    buf.sort_by(|a, b| a.total_cmp(b));
    percentile(buf, 50.0)
}

fn interval(mut stats: Vec<f64>) -> [f64; 2] {
    stats.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - CONFIDENCE) / 2.0 * 100.0;
    [percentile(&stats, tail), percentile(&stats, 100.0 - tail)]
}

/// Percentile-bootstrap CI of the median. `None` for fewer than 2 samples.
pub fn median_ci(x: &[f64], seed: u64) -> Option<[f64; 2]> {
    if x.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64::from_state(seed);
    let mut buf = Vec::with_capacity(x.len());
    Some(interval((0..RESAMPLES).map(|_| resampled_median(x, &mut rng, &mut buf)).collect()))
}

/// Percentile-bootstrap CI of `median(baseline) / median(candidate)`, the two samples resampled
/// independently. `None` when either has fewer than 2 samples or a resampled median is not
/// positive.
pub fn ratio_of_medians_ci(baseline: &[f64], candidate: &[f64], seed: u64) -> Option<[f64; 2]> {
    if baseline.len() < 2 || candidate.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64::from_state(seed);
    let (mut bb, mut cb) = (Vec::with_capacity(baseline.len()), Vec::with_capacity(candidate.len()));
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let b = resampled_median(baseline, &mut rng, &mut bb);
        let c = resampled_median(candidate, &mut rng, &mut cb);
        if c <= 0.0 {
            return None;
        }
        ratios.push(b / c);
    }
    Some(interval(ratios))
}

/// One hierarchical resample of several runs' samples: as many runs as there are, drawn with
/// replacement, then each drawn run's samples with replacement; the pooled median. With one run
/// no draw chooses it, so the stream is [`resampled_median`]'s.
fn resampled_pooled_median(runs: &[&[f64]], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    for _ in 0..runs.len() {
        let run = if runs.len() == 1 { runs[0] } else { runs[rng.below(runs.len())] };
        buf.extend((0..run.len()).map(|_| run[rng.below(run.len())]));
    }
    buf.sort_by(|a, b| a.total_cmp(b));
    percentile(buf, 50.0)
}

/// The runs that have samples, and their total count.
fn nonempty<'a>(runs: &[&'a [f64]]) -> (Vec<&'a [f64]>, usize) {
    let v: Vec<&[f64]> = runs.iter().copied().filter(|r| !r.is_empty()).collect();
    let n = v.iter().map(|r| r.len()).sum();
    (v, n)
}

/// Median of several runs' pooled samples (LoadGen rule); `None` without samples.
pub fn pooled_median(runs: &[&[f64]]) -> Option<f64> {
    let pooled = sorted(&runs.concat());
    (!pooled.is_empty()).then(|| percentile(&pooled, 50.0))
}

/// Hierarchical percentile-bootstrap CI of the pooled median of several runs (runs resampled,
/// then samples within each drawn run). Equals [`median_ci`] for one run; `None` for fewer than
/// 2 samples in all.
pub fn hierarchical_median_ci(runs: &[&[f64]], seed: u64) -> Option<[f64; 2]> {
    let (runs, n) = nonempty(runs);
    if n < 2 {
        return None;
    }
    let mut rng = SplitMix64::from_state(seed);
    let mut buf = Vec::with_capacity(n);
    Some(interval((0..RESAMPLES).map(|_| resampled_pooled_median(&runs, &mut rng, &mut buf)).collect()))
}

/// Hierarchical percentile-bootstrap CI of `pooled median(baseline) / pooled median(candidate)`,
/// each side's runs (then samples) resampled independently. Equals [`ratio_of_medians_ci`] when
/// each side is one run; `None` when a side has fewer than 2 samples or a resampled median is
/// not positive.
pub fn hierarchical_ratio_ci(baseline: &[&[f64]], candidate: &[&[f64]], seed: u64) -> Option<[f64; 2]> {
    let ((baseline, nb), (candidate, nc)) = (nonempty(baseline), nonempty(candidate));
    if nb < 2 || nc < 2 {
        return None;
    }
    let mut rng = SplitMix64::from_state(seed);
    let (mut bb, mut cb) = (Vec::with_capacity(nb), Vec::with_capacity(nc));
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let b = resampled_pooled_median(&baseline, &mut rng, &mut bb);
        let c = resampled_pooled_median(&candidate, &mut rng, &mut cb);
        if c <= 0.0 {
            return None;
        }
        ratios.push(b / c);
    }
    Some(interval(ratios))
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn resampled_mean(x: &[f64], rng: &mut SplitMix64) -> f64 {
    (0..x.len()).map(|_| x[rng.below(x.len())]).sum::<f64>() / x.len() as f64
}

/// The mean of one value per run (peak memory, init); `None` without values.
pub fn mean_over_runs(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| mean(values))
}

/// Percentile-bootstrap CI of the mean of one value per run (the runs resampled with
/// replacement). `None` for fewer than 2 runs.
pub fn mean_over_runs_ci(values: &[f64], seed: u64) -> Option<[f64; 2]> {
    if values.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64::from_state(seed);
    Some(interval((0..RESAMPLES).map(|_| resampled_mean(values, &mut rng)).collect()))
}

/// Percentile-bootstrap CI of `mean(num) / mean(den)` over one value per run, each side's runs
/// resampled independently. `None` when a side has fewer than 2 runs or a resampled `den` mean
/// is not positive.
pub fn ratio_of_means_ci(num: &[f64], den: &[f64], seed: u64) -> Option<[f64; 2]> {
    if num.len() < 2 || den.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64::from_state(seed);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let (n, d) = (resampled_mean(num, &mut rng), resampled_mean(den, &mut rng));
        if d <= 0.0 {
            return None;
        }
        ratios.push(n / d);
    }
    Some(interval(ratios))
}

/// Student's t CI of the mean.
pub fn mean_ci(x: &[f64]) -> Option<[f64; 2]> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?.inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0);
    let h = t * sd / (n as f64).sqrt();
    Some([mean - h, mean + h])
}

/// Tukey fences over `x` (at least 4 samples) and the samples outside them.
pub fn tukey(x: &[f64]) -> Option<Outliers> {
    if x.len() < 4 {
        return None;
    }
    let s = sorted(x);
    let (q1, q3) = (percentile(&s, 25.0), percentile(&s, 75.0));
    let iqr = q3 - q1;
    let (low_fence, high_fence) = (q1 - TUKEY_K * iqr, q3 + TUKEY_K * iqr);
    let indices = x.iter().enumerate().filter(|(_, v)| **v < low_fence || **v > high_fence).map(|(i, _)| i).collect();
    Some(Outliers { low_fence, high_fence, indices })
}

/// Coefficient of variation (sample standard deviation / mean).
pub fn cv(mean: f64, std: f64) -> Option<f64> {
    (mean > 0.0 && std.is_finite()).then(|| std / mean)
}

/// The high-CV warning text, if any; none when the median is below [`CV_MIN_MEDIAN_MS`].
pub fn cv_warning(cv: Option<f64>, median_ms: f64) -> Option<String> {
    if median_ms.is_nan() || median_ms < CV_MIN_MEDIAN_MS {
        return None;
    }
    cv.filter(|c| *c > CV_WARN).map(|c| format!("high variability: CV {:.1}% > {:.0}%", c * 100.0, CV_WARN * 100.0))
}

/// The distribution summary of `samples` (ms): LoadGen percentiles, intervals, outliers,
/// warnings; `None` without samples.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let mean = s.iter().sum::<f64>() / n as f64;
    // Sample standard deviation (n - 1), as statistics packages report it.
    let std = if n > 1 { (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let cv = cv(mean, std).filter(|_| n > 1);
    let p50 = percentile(&s, 50.0);
    let too_few_samples =
        [("p90", 90.0), ("p99", 99.0)].iter().filter(|(_, q)| n < min_samples(*q)).map(|x| x.0.into()).collect();
    Some(Summary {
        n,
        mean,
        std,
        min: s[0],
        p50,
        p90: percentile(&s, 90.0),
        p99: percentile(&s, 99.0),
        max: s[n - 1],
        too_few_samples,
        p50_ci: median_ci(samples, SEED),
        mean_ci: mean_ci(samples),
        cv,
        outliers: tukey(samples),
        warnings: cv_warning(cv, p50).into_iter().collect(),
    })
}

/// Summaries of every metric's samples.
pub fn summaries(samples: &BTreeMap<String, Vec<f64>>) -> BTreeMap<String, Summary> {
    samples.iter().filter_map(|(k, v)| summarize(v).map(|s| (k.clone(), s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation).
        let mut r = SplitMix64::from_state(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn median_ci_brackets_the_median_and_is_reproducible() {
        let x: Vec<f64> = (0..41).map(|i| 100.0 + ((i * 37) % 41) as f64).collect();
        let ci = median_ci(&x, SEED).unwrap();
        let median = percentile(&sorted(&x), 50.0);
        assert!(ci[0] <= median && median <= ci[1], "{ci:?}");
        assert!(ci[1] - ci[0] < 20.0);
        assert_eq!(ci, median_ci(&x, SEED).unwrap());
        assert!(median_ci(&[1.0], SEED).is_none());
    }

    #[test]
    fn ratio_ci_of_scaled_samples_is_near_the_scale() {
        let c: Vec<f64> = (0..30).map(|i| 10.0 + (i % 7) as f64 * 0.1).collect();
        let b: Vec<f64> = c.iter().map(|v| v * 4.0).collect();
        let ci = ratio_of_medians_ci(&b, &c, SEED).unwrap();
        assert!(ci[0] > 3.8 && ci[1] < 4.2 && ci[0] <= 4.0 && 4.0 <= ci[1], "{ci:?}");
    }

    #[test]
    fn mean_ci_matches_t_table() {
        // n = 5, mean 3, sd sqrt(2.5); t(0.975, 4) = 2.776445
        let ci = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let h = 2.776_445_105 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!((ci[0] - (3.0 - h)).abs() < 1e-6 && (ci[1] - (3.0 + h)).abs() < 1e-6, "{ci:?}");
    }

    #[test]
    fn tukey_marks_and_keeps_outliers() {
        let x = [10.0, 11.0, 10.5, 10.2, 50.0, 10.8, 9.9, 1.0];
        let o = tukey(&x).unwrap();
        assert_eq!(o.indices, vec![4, 7]);
        assert!(o.low_fence < 9.9 && o.high_fence > 11.0);
    }

    #[test]
    fn cv_warning_above_threshold() {
        assert!(cv_warning(cv(100.0, 5.0), 100.0).is_none());
        assert!(cv_warning(cv(100.0, 20.0), 100.0).unwrap().contains("CV 20.0%"));
    }

    #[test]
    fn no_cv_warning_below_the_median_floor() {
        // A no-op timed at 0.2 us with a 40% CV: clock noise, not a finding.
        assert!(cv_warning(cv(0.0002, 0.00008), 0.0002).is_none());
        assert!(cv_warning(cv(0.04, 0.02), 0.04).is_none());
        assert!(cv_warning(cv(0.05, 0.02), 0.05).is_some());
        assert!(cv_warning(cv(0.5, 0.1), f64::NAN).is_none());
    }

    #[test]
    fn percentiles_follow_loadgen() {
        // LoadGen: sorted[floor(n * p)]. n = 20: p50 -> [10], p90 -> [18], p99 -> [19].
        let s: Vec<f64> = (0..20).map(|i| i as f64 * 10.0).collect();
        assert_eq!((percentile(&s, 50.0), percentile(&s, 90.0), percentile(&s, 99.0)), (100.0, 180.0, 190.0));
        // n = 100: p99 -> [99] (100 * 0.99 is exactly 99 in doubles, as in LoadGen).
        let s: Vec<f64> = (0..100).map(|i| i as f64).collect();
        assert_eq!((percentile(&s, 99.0), percentile(&s, 50.0), percentile(&s, 100.0)), (99.0, 50.0, 99.0));
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert_eq!((min_samples(50.0), min_samples(90.0), min_samples(99.0), min_samples(99.9)), (2, 10, 100, 1000));
    }

    #[test]
    fn summary_uses_loadgen_percentiles_and_flags_thin_tails() {
        // LoadGen on [1,2,3,4,10]: p50 = s[floor(2.5)] = 3, p90 = s[floor(4.5)] = 10, p99 = s[4];
        // five samples are too few for either tail (numpy's interpolation gave 7.6 and 9.76).
        let s = summarize(&[4.0, 1.0, 10.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.n, s.min, s.max, s.p50, s.p90, s.p99), (5, 1.0, 10.0, 3.0, 10.0, 10.0));
        assert_eq!(s.too_few_samples, ["p90", "p99"]);
        let x: Vec<f64> = (0..100).map(f64::from).collect();
        let s = summarize(&x).unwrap();
        assert_eq!((s.p50, s.p90, s.p99), (50.0, 90.0, 99.0));
        assert!(s.too_few_samples.is_empty());
        assert_eq!(summarize(&x[..99]).unwrap().too_few_samples, ["p99"]);
        let s = summarize(&[4.0, 1.0, 10.0, 3.0, 2.0]).unwrap();
        assert!((s.mean - 4.0).abs() < 1e-12);
        assert!((s.std - 3.5355339059327378).abs() < 1e-12);
        assert!(summarize(&[]).is_none());
    }
    #[test]
    fn between_run_intervals_of_per_run_values() {
        let (b, c) = ([400.0, 420.0, 410.0], [100.0, 104.0, 98.0]);
        let ci = mean_over_runs_ci(&b, SEED).unwrap();
        assert!(ci[0] >= 400.0 && ci[0] <= 410.0 && 410.0 <= ci[1] && ci[1] <= 420.0, "{ci:?}");
        assert_eq!(mean_over_runs(&b), Some(410.0));
        let r = ratio_of_means_ci(&b, &c, SEED).unwrap();
        let point = 410.0 / (302.0 / 3.0);
        assert!(r[0] <= point && point <= r[1] && r[0] > 400.0 / 104.0 && r[1] < 420.0 / 98.0, "{r:?}");
        assert_eq!(r, ratio_of_means_ci(&b, &c, SEED).unwrap(), "reproducible");
        assert!(mean_over_runs_ci(&[1.0], SEED).is_none() && ratio_of_means_ci(&b, &[1.0], SEED).is_none());
    }

    #[test]
    fn hierarchical_interval_needs_two_samples_and_skips_empty_runs() {
        assert!(hierarchical_median_ci(&[&[1.0], &[]], SEED).is_none());
        let x = [3.0, 1.0, 2.0, 5.0];
        assert_eq!(hierarchical_median_ci(&[&x, &[]], SEED), median_ci(&x, SEED));
        assert_eq!(pooled_median(&[&[1.0, 2.0], &[3.0]]), Some(2.0));
        assert_eq!(pooled_median(&[]), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Samples of one run: `n` values spread over `[offset, offset + spread)`.
        fn run(offset: f64, spread: f64, unit: &[f64]) -> Vec<f64> {
            unit.iter().map(|u| offset + spread * u).collect()
        }

        fn width(ci: [f64; 2]) -> f64 {
            ci[1] - ci[0]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

            #[test]
            fn one_run_is_the_plain_bootstrap(
                b in prop::collection::vec(1.0f64..100.0, 0..40),
                c in prop::collection::vec(1.0f64..100.0, 0..40),
                seed in any::<u64>(),
            ) {
                prop_assert_eq!(hierarchical_median_ci(&[&b], seed), median_ci(&b, seed));
                prop_assert_eq!(hierarchical_ratio_ci(&[&b], &[&c], seed), ratio_of_medians_ci(&b, &c, seed));
            }

            #[test]
            fn the_interval_contains_the_pooled_median(
                units in prop::collection::vec(prop::collection::vec(0.0f64..1.0, 5..30), 1..6),
                offsets in prop::collection::vec(0.0f64..50.0, 6),
            ) {
                let runs: Vec<Vec<f64>> = units.iter().zip(&offsets).map(|(u, o)| run(100.0 + o, 10.0, u)).collect();
                let refs: Vec<&[f64]> = runs.iter().map(Vec::as_slice).collect();
                let point = pooled_median(&refs).unwrap();
                let ci = hierarchical_median_ci(&refs, SEED).unwrap();
                prop_assert!(ci[0] <= point && point <= ci[1], "{:?} {}", ci, point);
                let half = refs.len().div_ceil(2);
                let ratio = point / pooled_median(&refs[..half]).unwrap();
                let rci = hierarchical_ratio_ci(&refs, &refs[..half], SEED).unwrap();
                prop_assert!(rci[0] <= ratio && ratio <= rci[1], "{:?} {}", rci, ratio);
            }

            #[test]
            fn runs_that_disagree_widen_the_interval_beyond_pooling(
                // Enough samples per run that the pooled median stays in the middle run (with 5
                // identical samples a run, the pooled bootstrap already spans every run).
                unit in prop::collection::vec(0.0f64..1.0, 30..60),
                k in prop_oneof![Just(3usize), Just(5usize)],
                gap in 10.0f64..100.0,
            ) {
                // Each run is the same within-run spread (1 ms) shifted by a multiple of `gap`.
                let runs: Vec<Vec<f64>> = (0..k).map(|i| run(100.0 + gap * i as f64, 1.0, &unit)).collect();
                let refs: Vec<&[f64]> = runs.iter().map(Vec::as_slice).collect();
                let hier = hierarchical_median_ci(&refs, SEED).unwrap();
                let pooled = median_ci(&runs.concat(), SEED).unwrap();
                prop_assert!(width(hier) >= gap && width(hier) > 2.0 * width(pooled), "{:?} vs {:?}", hier, pooled);
            }
        }
    }
}
