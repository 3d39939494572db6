//! Claims and their verdicts: `metric(baseline) / metric(candidate) >= threshold` per device x
//! backend x precision, with a 95% interval obtained as the metric table says
//! ([`crate::metric::CiRule`]).

use crate::stats;
use quadbench_schema::claim::Claim;
use quadbench_schema::metric::CiRule;
use quadbench_schema::protocol::Strategy;
use quadbench_schema::results::{CiMethod, ClaimResult, RunRecord, RunState, Verdict};

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
            let run = |s: Strategy| {
                runs.iter().find(|r| {
                    &r.device == device
                        && &r.backend == backend
                        && &r.precision == precision
                        && r.strategy == s
                        && r.status == RunState::Ok
                })
            };
            let (br, kr) = (run(c.baseline), run(c.candidate));
            let (b, k) = (br.and_then(|r| c.metric.of(r)), kr.and_then(|r| c.metric.of(r)));
            let ratio = match (b, k) {
                (Some(b), Some(k)) => c.metric.ratio(b, k),
                _ => None,
            };
            let mut res = ClaimResult {
                name: c.name.clone(),
                metric: c.metric.key().to_string(),
                device: device.clone(),
                backend: backend.clone(),
                precision: precision.clone(),
                baseline: c.baseline,
                candidate: c.candidate,
                baseline_value: b,
                candidate_value: k,
                ratio,
                ci_low: None,
                ci_high: None,
                ci_method: CiMethod::None,
                bootstrap_resamples: None,
                bootstrap_seed: None,
                threshold: c.threshold,
                verdict: Verdict::Missing,
                note: String::new(),
            };
            let (Some(r), Some(br), Some(kr)) = (ratio, br, kr) else {
                res.note = "a run this claim needs is missing or failed".into();
                out.push(res);
                continue;
            };
            match c.metric.info().ci {
                CiRule::Exact => {
                    (res.ci_low, res.ci_high, res.ci_method) = (Some(r), Some(r), CiMethod::Exact);
                    res.note = "deterministic: interval = point".into();
                }
                CiRule::Bootstrap { sample_key } => match (br.samples.get(sample_key), kr.samples.get(sample_key)) {
                    (Some(bs), Some(ks)) => match stats::ratio_of_medians_ci(bs, ks, stats::SEED) {
                        Some([lo, hi]) => {
                            (res.ci_low, res.ci_high, res.ci_method) = (Some(lo), Some(hi), CiMethod::Bootstrap);
                            (res.bootstrap_resamples, res.bootstrap_seed) = (Some(stats::RESAMPLES), Some(stats::SEED));
                        }
                        None => res.note = "too few samples for an interval".into(),
                    },
                    _ => res.note = "raw samples unavailable: no interval".into(),
                },
                CiRule::PerRun => {
                    res.note =
                        "one measurement per run: no interval (repeat runs for one); verdict from the point".into();
                }
            }
            res.verdict = match (res.ci_low, res.ci_high, c.metric.info().ci) {
                (Some(lo), Some(hi), _) => Verdict::of_interval(lo, hi, c.threshold),
                // Latency without an interval is not evidence either way.
                (_, _, CiRule::Bootstrap { .. }) => Verdict::Inconclusive,
                _ => Verdict::of_interval(r, r, c.threshold),
            };
            out.push(res);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summaries;
    use quadbench_schema::metric::Metric;
    use quadbench_schema::protocol::Storage;
    use quadbench_schema::results::RunIdentity;

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

    #[test]
    fn claim_verdicts_follow_the_interval() {
        let claim = |metric: &str, threshold: f64| Claim {
            name: "c".into(),
            metric: Metric::parse(metric).unwrap(),
            baseline: Strategy::SeparateReload,
            candidate: Strategy::Unified,
            threshold,
        };
        let spread =
            |centre: f64| (0..30).map(|i| centre * (1.0 + ((i * 7) % 11) as f64 * 0.02 - 0.1)).collect::<Vec<_>>();
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
}
