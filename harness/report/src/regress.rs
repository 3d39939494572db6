//! Regression detection over nights: each series' metric on its latest night against a back
//! window of the nights before it. Built not to cry wolf on a noisy machine:
//!
//! - **minimum effect** per metric ([`crate::nights::HISTORY_METRICS`]): a change smaller than it
//!   is `unchanged`, whatever a test says;
//! - **night-to-night variance**: the test's spread is the standard deviation of the back
//!   window's night values (each night a separate run on another day), not the within-night
//!   sample spread, which understates reproducibility (two back-to-back demo runs on this machine
//!   gave non-overlapping within-run CIs). The statistic is the Student t of a new observation
//!   against the back window (a prediction interval), `t = (x - m) / (s sqrt(1 + 1/n))` with
//!   `n - 1` degrees of freedom, on log values (changes are factors; slow nights skew right),
//!   where `m` and `s` are the back nights' mean and standard deviation, `s` floored so that
//!   with identical earlier
//!   nights exactly the minimum effect is significant (a window of near-identical nights must
//!   not make every wobble significant; within-night CIs were tried as the floor and are far
//!   too wide here: 20 samples of a bimodal round-robin workload gave [0.80, 5.19] ms around a
//!   0.98 ms median);
//! - **enough history**: fewer than [`MIN_BACK_NIGHTS`] back nights gives `inconclusive`, never
//!   `regression` (Perfherder asks for 12; Chromium's change-point detector for 6 per segment);
//! - exact metrics (storage, CPU-fallback nodes, failed runs) report any change.
//!
//! The window is the last [`BACK_WINDOW`] comparable nights (Perfherder's 12). Nights on
//! another device model or SoC under the same series name are not comparable.

use crate::nights::{Comparison, HistoryMetric, HistoryRun, history_metric};
use quadbench_schema::history::{Change, Finding, NightPoint, Trend, ratio_bucket};
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;

/// Nights compared against, at most (Perfherder's back window is 12 to 24).
pub const BACK_WINDOW: usize = 12;
/// Fewer comparable back nights than this: `inconclusive` at most.
pub const MIN_BACK_NIGHTS: usize = 3;
/// One-sided significance level of the t test.
pub const DEFAULT_ALPHA: f64 = 0.01;

/// What the detector is told.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// One-sided significance level.
    pub alpha: f64,
    /// Per metric prefix, a minimum effect replacing the table's.
    pub min_effect: Vec<(String, f64)>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions { alpha: DEFAULT_ALPHA, min_effect: Vec::new() }
    }
}

impl DetectOptions {
    fn comparison(&self, metric: &str, m: &HistoryMetric) -> Comparison {
        let over = self.min_effect.iter().filter(|(p, _)| metric.starts_with(p.as_str())).max_by_key(|(p, _)| p.len());
        match (m.comparison, over) {
            (Comparison::Noisy { .. }, Some((_, e))) => Comparison::Noisy { min_effect: *e },
            (c, _) => c,
        }
    }
}

/// Which nights of a trend a verdict compares: the latest and its comparable back window.
/// `comparable(a, b)` says whether two nights may be compared (same device model and SoC).
pub fn detect(
    trend: &Trend,
    latest_night: &str,
    comparable: &dyn Fn(&NightPoint, &NightPoint) -> bool,
    opts: &DetectOptions,
) -> Finding {
    let mut f = Finding {
        key: trend.key.clone(),
        metric: trend.metric.clone(),
        change: Change::New,
        night: String::new(),
        latest: None,
        baseline: None,
        worse_ratio: None,
        effect: None,
        test: String::new(),
        statistic: None,
        p_value: None,
        back_nights: 0,
        bucket: String::new(),
        confirmed: None,
        note: String::new(),
    };
    let Some(last) = trend.points.last() else { return f };
    if last.night != latest_night {
        f.change = Change::Missing;
        f.night = last.night.clone();
        f.note = format!("no run on the latest night `{latest_night}`; last seen on `{}`", last.night);
        return f;
    }
    f.night = last.night.clone();
    f.latest = Some(last.value);
    let earlier = &trend.points[..trend.points.len() - 1];
    if earlier.is_empty() {
        f.note = "first night of this series".into();
        return f;
    }
    let back: Vec<&NightPoint> = earlier.iter().filter(|p| comparable(p, last)).collect();
    if back.is_empty() {
        f.change = Change::NotComparable;
        f.note = "every earlier night ran on another device model or SoC under this name: not compared".into();
        return f;
    }
    let back = &back[back.len().saturating_sub(BACK_WINDOW)..];
    f.back_nights = back.len();
    let m = history_metric(&trend.metric).copied().unwrap_or(crate::nights::HISTORY_METRICS[0]);
    match opts.comparison(&trend.metric, &m) {
        Comparison::Exact => exact(&mut f, back, last.value, m.lower_is_better),
        Comparison::Noisy { min_effect } => noisy(&mut f, back, last, &m, (min_effect, m.min_abs), opts.alpha),
    }
    f
}

fn set_effect(f: &mut Finding, baseline: f64, latest: f64, lower_is_better: bool) {
    f.baseline = Some(baseline);
    if baseline != 0.0 {
        f.effect = Some(latest / baseline - 1.0);
    }
    let ratio = if lower_is_better { latest / baseline } else { baseline / latest };
    if ratio.is_finite() && ratio > 0.0 {
        f.worse_ratio = Some(ratio);
        f.bucket = ratio_bucket(ratio);
    }
}

/// Exact metrics: compared with the previous comparable night; any change counts.
fn exact(f: &mut Finding, back: &[&NightPoint], latest: f64, lower_is_better: bool) {
    let prev = back[back.len() - 1].value;
    set_effect(f, prev, latest, lower_is_better);
    f.test = "exact (any change against the previous night)".into();
    let worse = if lower_is_better { latest > prev } else { latest < prev };
    f.change = if latest == prev {
        Change::Unchanged
    } else if worse {
        Change::Regression
    } else {
        Change::Improvement
    };
    if f.metric == "runs.failed" {
        f.bucket = match (prev == 0.0, latest == 0.0) {
            (true, false) => "new failure".into(),
            (false, true) => "fixed failure".into(),
            _ => f.bucket.clone(),
        };
    }
}

/// `min`: the minimum relative and absolute effects.
fn noisy(f: &mut Finding, back: &[&NightPoint], last: &NightPoint, m: &HistoryMetric, min: (f64, f64), alpha: f64) {
    let (min_effect, min_abs) = min;
    let lower_is_better = m.lower_is_better;
    // Timings and sizes change by factors, and slow nights skew right: positive values are
    // compared on a log scale (the baseline is then the geometric mean).
    let log = last.value > 0.0 && back.iter().all(|p| p.value > 0.0);
    let tr = |v: f64| if log { v.ln() } else { v };
    let vals: Vec<f64> = back.iter().map(|p| tr(p.value)).collect();
    let n = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / n;
    let baseline = if log { mean.exp() } else { mean };
    set_effect(f, baseline, last.value, lower_is_better);
    let effect = f.effect.unwrap_or(0.0);
    let worse = if lower_is_better { effect > 0.0 } else { effect < 0.0 };
    if effect.abs() < min_effect || (last.value - baseline).abs() < min_abs {
        f.change = Change::Unchanged;
        f.test = if min_abs > 0.0 {
            format!("below the minimum effect ({:.0}% and {min_abs} {})", min_effect * 100.0, m.unit)
        } else {
            format!("below the minimum effect ({:.0}%)", min_effect * 100.0)
        };
        return;
    }
    if vals.len() < MIN_BACK_NIGHTS {
        f.change = Change::Inconclusive;
        f.test = "none (too little history)".into();
        f.note = format!(
            "{:+.1}% against {} earlier night(s); a verdict needs {MIN_BACK_NIGHTS} nights of history",
            effect * 100.0,
            vals.len()
        );
        return;
    }
    let s_between = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let Ok(dist) = StudentsT::new(0.0, 1.0, n - 1.0) else { return };
    // A back window that happens to agree closely must not make every wobble significant: the
    // spread is floored so that, with identical earlier nights, exactly the minimum effect is
    // significant at `alpha` (the minimum effect is this machine's measured noise floor).
    let t_crit = dist.inverse_cdf(1.0 - alpha);
    let s_floor =
        (if log { (1.0 + min_effect).ln() } else { baseline.abs() * min_effect }) / (t_crit * (1.0 + 1.0 / n).sqrt());
    let s = s_between.max(s_floor);
    let scale = if log { "log " } else { "" };
    f.test = format!("prediction t on {scale}values, {} nights ({} df)", vals.len(), vals.len() - 1);
    if s <= 0.0 {
        // A zero baseline with zero spread (linear scale): any change beyond it is certain.
        f.change = if worse { Change::Regression } else { Change::Improvement };
        f.note = "earlier nights identical".into();
        return;
    }
    let t = (tr(last.value) - mean) / (s * (1.0 + 1.0 / n).sqrt());
    let p = 1.0 - dist.cdf(t.abs());
    f.statistic = Some(t);
    f.p_value = Some(p);
    f.change = match (p < alpha, worse) {
        (true, true) => Change::Regression,
        (true, false) => Change::Improvement,
        (false, _) => Change::Inconclusive,
    };
    if f.change == Change::Inconclusive {
        f.note = format!("{:+.1}% but within night-to-night spread (p = {p:.3})", effect * 100.0);
    }
}

/// Decides `findings`' regressions on a confirmation rerun (`regressions --confirm`): the
/// rerun's runs take night `night`'s place for the series they reran, the detector runs again,
/// and each regression is marked confirmed when it is still one (else it is annotated with
/// `label`, the rerun's name).
pub fn confirm(
    runs: &[HistoryRun],
    night: &str,
    rerun: &[HistoryRun],
    label: &str,
    findings: &mut [Finding],
    opts: &DetectOptions,
) {
    let reran: Vec<&str> = rerun.iter().map(|r| r.record.key.as_str()).collect();
    let mut replaced: Vec<HistoryRun> =
        runs.iter().filter(|r| !(r.night == night && reran.contains(&r.record.key.as_str()))).cloned().collect();
    replaced.extend(rerun.iter().map(|r| HistoryRun { night: night.to_string(), ..r.clone() }));
    let (_, again) = analyse(&replaced, opts);
    for f in findings.iter_mut().filter(|f| f.change == Change::Regression) {
        let still = again.iter().any(|g| g.key == f.key && g.metric == f.metric && g.change == Change::Regression);
        f.confirmed = Some(still);
        if !still {
            f.note = format!("not confirmed by the rerun `{label}`");
        }
    }
}

/// What a device said it is (model, SoC): nights where it differs are not compared.
type DeviceIdentity<'a> = (Option<&'a str>, Option<&'a str>);

/// Trends and a finding per series and metric, for the runs given (already filtered by label).
/// The latest night is the night of the most recently started run; a series without a run
/// that night is `missing`. Findings are sorted by key, then metric.
pub fn analyse(runs: &[HistoryRun], opts: &DetectOptions) -> (Vec<Trend>, Vec<Finding>) {
    let trends = crate::nights::trends(runs);
    let Some(latest) = runs.iter().max_by(|a, b| (&a.started_at, &a.night).cmp(&(&b.started_at, &b.night))) else {
        return (trends, Vec::new());
    };
    // Per series and night: the device model and SoC its runs reported.
    let mut device: BTreeMap<(&str, &str), DeviceIdentity<'_>> = BTreeMap::new();
    for r in runs {
        let env = &r.record.environment;
        device.insert((&r.record.key, &r.night), (env.device_model.as_deref(), env.device_soc.as_deref()));
    }
    let findings = trends
        .iter()
        .map(|t| {
            let of = |p: &NightPoint| device.get(&(t.key.as_str(), p.night.as_str())).copied();
            detect(t, &latest.night, &|a, b| of(a) == of(b), opts)
        })
        .collect();
    (trends, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point(i: usize, v: f64, ci: Option<[f64; 2]>) -> NightPoint {
        NightPoint {
            night: format!("n{i:02}"),
            started_at: format!("2026-11-{:02}T00:00:00.000Z", i + 1),
            runs: 1,
            value: v,
            ci,
            package_sha256: "p".into(),
            git_revision: "g".into(),
            ort_version: "1.31.1".into(),
        }
    }

    fn trend(metric: &str, vals: &[f64]) -> Trend {
        Trend {
            key: "s/d/cpu/fp32/unified".into(),
            metric: metric.into(),
            unit: "ms".into(),
            lower_is_better: true,
            points: vals.iter().enumerate().map(|(i, v)| point(i, *v, Some([v * 0.98, v * 1.02]))).collect(),
        }
    }

    fn run(t: &Trend) -> Finding {
        let last = t.points.last().unwrap().night.clone();
        detect(t, &last, &|_, _| true, &DetectOptions::default())
    }

    #[test]
    fn an_eightfold_slowdown_after_four_nights_is_a_regression() {
        let f = run(&trend("latency_ms.e2e", &[10.0, 10.3, 9.8, 10.1, 80.0]));
        assert_eq!(f.change, Change::Regression, "{f:?}");
        assert_eq!(f.bucket, "5x");
        assert!(f.p_value.unwrap() < 0.01);
    }

    #[test]
    fn small_wobbles_are_unchanged_and_big_ones_without_history_inconclusive() {
        assert_eq!(run(&trend("latency_ms.e2e", &[10.0, 10.3, 9.8, 10.5])).change, Change::Unchanged);
        assert_eq!(run(&trend("latency_ms.e2e", &[10.0, 20.0])).change, Change::Inconclusive);
        assert_eq!(run(&trend("latency_ms.e2e", &[10.0])).change, Change::New);
    }

    #[test]
    fn slow_back_nights_widen_the_spread_and_only_large_changes_stand() {
        // A machine that sometimes runs a night 3x slow: a 60% slower night is within that, a
        // 10x slower one is not. (Robust estimates, median/MAD or outlier rejection, were
        // tried: on 30 recorded nights they doubled the false alarms, because the latest night
        // is as exposed to a slow night as the back window.)
        let back = [10.0, 10.2, 9.9, 30.0, 10.1, 10.0];
        let with = |last: f64| run(&trend("latency_ms.e2e", &[&back[..], &[last]].concat()));
        assert_eq!(with(16.0).change, Change::Inconclusive);
        assert_eq!(with(100.0).change, Change::Regression);
    }

    #[test]
    fn a_change_within_night_to_night_spread_is_inconclusive() {
        // Nights vary by ~20%: a 15% slower night is not significant.
        let f = run(&trend("latency_ms.e2e", &[10.0, 12.5, 8.0, 11.0, 9.0, 12.0]));
        assert_eq!(f.change, Change::Inconclusive, "{f:?}");
    }

    #[test]
    fn exact_metrics_report_any_change_and_failures_get_buckets() {
        let mut t = trend("storage.total_bytes", &[100.0, 100.0, 101.0]);
        assert_eq!(run(&t).change, Change::Regression);
        t.metric = "runs.failed".into();
        t.points[2].value = 1.0;
        t.points[1].value = 0.0;
        assert_eq!(run(&t).bucket, "new failure");
    }

    #[test]
    fn missing_and_not_comparable() {
        let t = trend("latency_ms.e2e", &[10.0, 10.0]);
        assert_eq!(detect(&t, "later", &|_, _| true, &DetectOptions::default()).change, Change::Missing);
        assert_eq!(detect(&t, "n01", &|_, _| false, &DetectOptions::default()).change, Change::NotComparable);
    }

    #[test]
    fn improvements_mirror_regressions_for_higher_is_better() {
        let mut t = trend("quality.remove.psnr_db", &[30.0, 30.1, 29.9, 30.0, 20.0]);
        t.lower_is_better = false;
        let f = run(&t);
        assert_eq!(f.change, Change::Regression, "{f:?}");
        assert!(f.worse_ratio.unwrap() > 1.4);
    }

    /// A run of series `s/d/cpu/fp32/unified` on `night` with e2e samples around `ms`.
    fn history_run(night: usize, ms: f64) -> HistoryRun {
        use quadbench_schema::results::{RunIdentity, RunRecord, RunState};
        let id = RunIdentity {
            id: "d-cpu-fp32-unified",
            device: "d",
            backend: "cpu",
            precision: "fp32",
            strategy: quadbench_schema::protocol::Strategy::Unified,
        };
        let mut record = RunRecord::failed(id, Default::default(), String::new(), String::new(), false);
        (record.status, record.valid, record.key) = (RunState::Ok, true, "s/d/cpu/fp32/unified".into());
        let samples: Vec<f64> = (0..20).map(|i| ms * (1.0 + (i % 5) as f64 * 0.01)).collect();
        record.latency_ms.insert("e2e".into(), crate::stats::summarize(&samples).unwrap());
        record.samples.insert("e2e".into(), samples);
        HistoryRun {
            night: format!("n{night:02}"),
            started_at: format!("2026-11-{:02}T00:00:00.000Z", night + 1),
            record,
        }
    }

    #[test]
    fn a_rerun_confirms_a_real_regression_and_clears_a_passing_one() {
        let opts = DetectOptions::default();
        let mut runs: Vec<HistoryRun> =
            [10.0, 10.3, 9.8, 10.1, 10.2].iter().enumerate().map(|(i, v)| history_run(i, *v)).collect();
        runs.push(history_run(5, 30.0));
        let e2e = |f: &[Finding]| f.iter().find(|x| x.metric == "latency_ms.e2e").cloned().unwrap();
        let (_, findings) = analyse(&runs, &opts);
        assert_eq!(e2e(&findings).change, Change::Regression);
        for (rerun_ms, confirmed) in [(31.0, true), (10.1, false)] {
            let mut f = findings.clone();
            confirm(&runs, "n05", &[history_run(6, rerun_ms)], "n05~confirm-1", &mut f, &opts);
            let got = e2e(&f);
            assert_eq!(got.confirmed, Some(confirmed), "rerun at {rerun_ms} ms: {got:?}");
            assert_eq!(got.note.contains("not confirmed"), !confirmed);
        }
    }

    proptest! {
        /// Nights drawn from one distribution (10 ms, 3% night-to-night spread) never raise a
        /// regression: the minimum effect and the prediction test both stand in the way.
        #[test]
        fn stable_nights_raise_no_alarm(noise in proptest::collection::vec(-0.03f64..0.03, 4..20)) {
            let vals: Vec<f64> = noise.iter().map(|e| 10.0 * (1.0 + e)).collect();
            prop_assert_ne!(run(&trend("latency_ms.e2e", &vals)).change, Change::Regression);
        }

        /// Scaling every night by the same factor does not change the verdict.
        #[test]
        fn verdicts_do_not_depend_on_the_unit(scale in 0.001f64..1000.0, last in 5.0f64..40.0) {
            let base = [10.0, 10.4, 9.7, 10.2, last];
            let scaled: Vec<f64> = base.iter().map(|v| v * scale).collect();
            prop_assert_eq!(run(&trend("latency_ms.e2e", &base)).change, run(&trend("latency_ms.e2e", &scaled)).change);
        }
    }
}
