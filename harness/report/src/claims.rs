//! Claims and their verdicts: `metric(baseline) / metric(candidate) >= threshold` per device x
//! backend x precision, with a 95% interval obtained as the metric table says
//! ([`crate::metric::CiRule`]). A configuration with several runs (scenario key `replicates`)
//! is compared as a whole ([`compare`]): pooled medians with a hierarchical bootstrap for
//! latencies, means with a bootstrap over runs for one-value-per-run metrics.

use crate::groups;
use crate::stats;
use quadbench_schema::claim::Claim;
use quadbench_schema::metric::{Better, CiRule, Metric};
use quadbench_schema::results::{CiMethod, ClaimResult, RunRecord, Verdict};

/// A metric compared between two configurations' runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The baseline's value ([`groups::value`]).
    pub baseline: Option<f64>,
    /// The candidate's value.
    pub candidate: Option<f64>,
    /// How many times better the candidate is ([`Metric::ratio`]).
    pub ratio: Option<f64>,
    /// 95% CI of the ratio.
    pub ci: Option<[f64; 2]>,
    /// How the interval was obtained.
    pub method: CiMethod,
    /// Why the interval is what it is, when that needs saying.
    pub note: String,
}

/// Compare `metric` between the baseline's and the candidate's successful runs (one or more
/// each). One run a side: the single-run rules; several: the between-run rules.
pub fn compare(metric: Metric, baseline: &[&RunRecord], candidate: &[&RunRecord]) -> Comparison {
    let (b, k) = (groups::value(metric, baseline), groups::value(metric, candidate));
    let ratio = match (b, k) {
        (Some(b), Some(k)) => metric.ratio(b, k),
        _ => None,
    };
    let mut c = Comparison { baseline: b, candidate: k, ratio, ci: None, method: CiMethod::None, note: String::new() };
    let Some(r) = ratio else { return c };
    let single = baseline.len() == 1 && candidate.len() == 1;
    match metric.info().ci {
        CiRule::Exact => {
            (c.ci, c.method) = (Some([r, r]), CiMethod::Exact);
            c.note = "deterministic: interval = point".into();
        }
        CiRule::Bootstrap { sample_key } => {
            match (groups::samples(baseline, sample_key), groups::samples(candidate, sample_key)) {
                (Some(bs), Some(ks)) => {
                    let (ci, method) = if single {
                        (stats::ratio_of_medians_ci(bs[0], ks[0], stats::SEED), CiMethod::Bootstrap)
                    } else {
                        (stats::hierarchical_ratio_ci(&bs, &ks, stats::SEED), CiMethod::HierarchicalBootstrap)
                    };
                    match ci {
                        Some(ci) => (c.ci, c.method) = (Some(ci), method),
                        None => c.note = "too few samples for an interval".into(),
                    }
                }
                _ => c.note = "raw samples unavailable: no interval".into(),
            }
        }
        CiRule::PerRun if single => {
            c.note = "one measurement per run: no interval (repeat runs for one); verdict from the point".into();
        }
        CiRule::PerRun => {
            let (bv, kv) = (groups::per_run(metric, baseline), groups::per_run(metric, candidate));
            let (num, den) = match metric.info().better {
                Better::Lower => (bv, kv),
                Better::Higher => (kv, bv),
            };
            match stats::ratio_of_means_ci(&num, &den, stats::SEED) {
                Some(ci) => (c.ci, c.method) = (Some(ci), CiMethod::BootstrapOverRuns),
                None => {
                    c.note = "fewer than 2 successful runs on a side: no interval; verdict from the point".into();
                }
            }
        }
    }
    c
}

/// Evaluate claims for every device x backend x precision group present in `runs`. Latency
/// claims need the runs' raw samples ([`RunRecord::samples`]) for their interval.
pub fn evaluate_claims(claims: &[Claim], runs: &[RunRecord]) -> Vec<ClaimResult> {
    let mut groups: Vec<(String, String, String)> =
        runs.iter().map(|r| (r.device.clone(), r.backend.clone(), r.precision.clone())).collect();
    groups.sort();
    groups.dedup();
    let mut out = Vec::new();
    for (device, backend, precision) in &groups {
        for c in claims {
            let group = (device.as_str(), backend.as_str(), precision.as_str());
            let (br, kr) = (groups::ok_runs(runs, group, c.baseline), groups::ok_runs(runs, group, c.candidate));
            out.push(evaluate(c, group, &br, &kr));
        }
    }
    out
}

/// One claim on one group, from the baseline's and the candidate's successful runs.
fn evaluate(
    c: &Claim,
    (device, backend, precision): (&str, &str, &str),
    br: &[&RunRecord],
    kr: &[&RunRecord],
) -> ClaimResult {
    // A side without runs has no value; the other side's value is still reported.
    let cmp = compare(c.metric, br, kr);
    let mut res = ClaimResult {
        name: c.name.clone(),
        metric: c.metric.key().to_string(),
        device: device.into(),
        backend: backend.into(),
        precision: precision.into(),
        baseline: c.baseline,
        candidate: c.candidate,
        baseline_value: cmp.baseline,
        candidate_value: cmp.candidate,
        ratio: cmp.ratio,
        ci_low: None,
        ci_high: None,
        ci_method: CiMethod::None,
        bootstrap_resamples: None,
        bootstrap_seed: None,
        runs: (br.len() > 1 || kr.len() > 1).then_some([br.len(), kr.len()]),
        threshold: c.threshold,
        verdict: Verdict::Missing,
        note: String::new(),
    };
    let Some(r) = res.ratio else {
        res.note = "a run this claim needs is missing or failed".into();
        return res;
    };
    (res.ci_low, res.ci_high, res.ci_method, res.note) =
        (cmp.ci.map(|x| x[0]), cmp.ci.map(|x| x[1]), cmp.method, cmp.note);
    if matches!(res.ci_method, CiMethod::Bootstrap | CiMethod::HierarchicalBootstrap | CiMethod::BootstrapOverRuns) {
        (res.bootstrap_resamples, res.bootstrap_seed) = (Some(stats::RESAMPLES), Some(stats::SEED));
    }
    res.verdict = match (res.ci_low, res.ci_high, c.metric.info().ci) {
        (Some(lo), Some(hi), _) => Verdict::of_interval(lo, hi, c.threshold),
        // Latency without an interval is not evidence either way.
        (_, _, CiRule::Bootstrap { .. }) => Verdict::Inconclusive,
        _ => Verdict::of_interval(r, r, c.threshold),
    };
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summaries;
    use quadbench_schema::protocol::{Storage, Strategy};
    use quadbench_schema::results::{RunIdentity, RunState};

    fn run_with(strategy: Strategy, switch: Vec<f64>, total_bytes: u64) -> RunRecord {
        let storage = Storage { total_bytes, ..Default::default() };
        let mut r = RunRecord::failed(
            RunIdentity { id: "r", device: "dev", backend: "cpu", precision: "fp32", strategy },
            storage,
            String::new(),
            String::new(),
            false,
        );
        r.status = RunState::Ok;
        r.samples.insert("switch".into(), switch);
        r.latency_ms = summaries(&r.samples);
        r
    }

    /// A claim that unified beats separate-reload by `threshold` on `metric`.
    fn claim(metric: &str, threshold: f64) -> Claim {
        Claim {
            name: "c".into(),
            metric: Metric::parse(metric).unwrap(),
            baseline: Strategy::SeparateReload,
            candidate: Strategy::Unified,
            threshold,
        }
    }

    /// 30 samples within +-10% of `centre`.
    fn spread(centre: f64) -> Vec<f64> {
        (0..30).map(|i| centre * (1.0 + ((i * 7) % 11) as f64 * 0.02 - 0.1)).collect()
    }

    #[test]
    fn claim_verdicts_follow_the_interval() {
        let runs =
            [run_with(Strategy::Unified, spread(100.0), 100), run_with(Strategy::SeparateReload, spread(400.0), 900)];
        let eval = |c: Claim| evaluate_claims(&[c], &runs).remove(0);
        let pass = eval(claim("latency_ms.switch", 3.5));
        let (lo, hi) = (pass.ci_low.unwrap(), pass.ci_high.unwrap());
        assert!(lo < 4.0 && 4.0 < hi && lo > 3.5, "{lo} {hi}");
        assert_eq!(
            (pass.verdict, pass.ci_method, pass.bootstrap_seed),
            (Verdict::Pass, CiMethod::Bootstrap, Some(stats::SEED))
        );
        assert_eq!(eval(claim("latency_ms.switch", 4.5)).verdict, Verdict::Fail);
        assert_eq!(eval(claim("latency_ms.switch", 4.0)).verdict, Verdict::Inconclusive);
        let storage = eval(claim("storage.total_bytes", 9.0));
        assert_eq!((storage.verdict, storage.ci_low, storage.ci_method), (Verdict::Pass, Some(9.0), CiMethod::Exact));
        let missing = evaluate_claims(
            &[Claim { candidate: Strategy::SeparateResident, ..claim("storage.total_bytes", 2.0) }],
            &runs,
        )
        .remove(0);
        assert_eq!(missing.verdict, Verdict::Missing);
    }

    #[test]
    fn replicated_configurations_get_between_run_intervals() {
        let rep = |strategy, centre: f64, rss: u64, k: usize| {
            let mut r = run_with(strategy, spread(centre), 100);
            (r.memory.peak_rss_bytes, r.replicate) = (Some(rss), k);
            r
        };
        // A B A B; the two separate-reload runs disagree by 20%.
        let runs = [
            rep(Strategy::Unified, 100.0, 100_000_000, 1),
            rep(Strategy::SeparateReload, 400.0, 500_000_000, 1),
            rep(Strategy::Unified, 100.0, 102_000_000, 2),
            rep(Strategy::SeparateReload, 480.0, 520_000_000, 2),
        ];
        let eval = |c: Claim, runs: &[RunRecord]| evaluate_claims(&[c], runs).remove(0);
        let lat = eval(claim("latency_ms.switch", 3.0), &runs);
        assert_eq!(
            (lat.ci_method, lat.runs, lat.bootstrap_seed),
            (CiMethod::HierarchicalBootstrap, Some([2, 2]), Some(stats::SEED))
        );
        let (lo, hi, ratio) = (lat.ci_low.unwrap(), lat.ci_high.unwrap(), lat.ratio.unwrap());
        assert!(lo <= ratio && ratio <= hi, "{lo} {ratio} {hi}");
        let side = |s: Strategy| runs.iter().filter(move |r| r.strategy == s).flat_map(|r| r.samples["switch"].clone());
        let pooled: Vec<f64> = side(Strategy::SeparateReload).collect();
        let unified: Vec<f64> = side(Strategy::Unified).collect();
        let [plo, phi] = stats::ratio_of_medians_ci(&pooled, &unified, stats::SEED).unwrap();
        assert!(hi - lo > 2.0 * (phi - plo), "between-run spread counts: [{lo}, {hi}] vs pooled [{plo}, {phi}]");
        let mem = eval(claim("memory.peak_rss_bytes", 4.0), &runs);
        assert_eq!((mem.ci_method, mem.verdict), (CiMethod::BootstrapOverRuns, Verdict::Pass));
        let (lo, hi) = (mem.ci_low.unwrap(), mem.ci_high.unwrap());
        assert!((mem.ratio.unwrap() - 510.0 / 101.0).abs() < 1e-12 && lo >= 500.0 / 102.0 && hi <= 520.0 / 100.0);
        // One run a side: the single-run rules, as without replicates.
        let single = eval(claim("memory.peak_rss_bytes", 4.0), &runs[..2]);
        assert_eq!((single.ci_method, single.runs, single.ci_low), (CiMethod::None, None, None));
        // A failed replicate leaves one run on a side: no interval over runs, the point decides.
        let mut failed = runs.clone();
        failed[3].status = RunState::Failed;
        let one_side = eval(claim("memory.peak_rss_bytes", 4.0), &failed);
        assert_eq!(
            (one_side.ci_method, one_side.runs, one_side.verdict),
            (CiMethod::None, Some([1, 2]), Verdict::Pass)
        );
    }
}
