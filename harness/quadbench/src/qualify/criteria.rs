//! Verdicts per criterion, derived from the evidence in a bundle alone (results directories with
//! raw samples, run results with node placements, output images and the goldens copied beside
//! them). `qualify` and `verify` call the same [`evaluate`] on the same files, so a signed
//! verdict can be re-derived bit for bit. The compliance checks are in [`super::compliance`].

use super::compliance;
use super::profile::{Criterion, Kind, Profile};
use super::variant::{Evidence, Purpose};
use crate::metric::{CiRule, Metric};
use crate::quality::QualityMetric;
use crate::results::{RunRecord, RunState, Verdict};
use quadbench_schema::claim::Claim;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Folder of the goldens inside a bundle: `goldens/<package>/<task>__<input>.png`.
pub const GOLDENS: &str = "goldens";

/// One criterion's verdict with the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionVerdict {
    pub id: String,
    pub kind: Kind,
    pub required: bool,
    pub threshold: f64,
    pub verdict: Verdict,
    /// The deciding figure (the worst over runs and SoCs), where there is one.
    pub value: Option<f64>,
    /// What was found, one line per results directory, configuration or problem.
    pub detail: Vec<String>,
    /// Bundle-relative files the verdict is derived from.
    pub evidence: Vec<String>,
}

/// What one check found: verdict, deciding value, lines, evidence files.
#[derive(Default)]
pub struct Finding {
    pub verdicts: Vec<Verdict>,
    pub values: Vec<f64>,
    pub detail: Vec<String>,
    pub evidence: Vec<String>,
}

impl Finding {
    pub fn push(&mut self, v: Verdict, line: String) {
        self.verdicts.push(v);
        self.detail.push(line);
    }
    pub fn file(&mut self, ev: &Evidence, rel: &str) {
        let p = format!("{}/{rel}", ev.variant.dir);
        if !self.evidence.contains(&p) {
            self.evidence.push(p);
        }
    }
    /// Samples CSV and results.json of `runs`.
    pub fn runs(&mut self, ev: &Evidence, runs: &[&RunRecord]) {
        self.file(ev, "results.json");
        for r in runs.iter().filter(|r| !r.samples_csv.is_empty()) {
            self.file(ev, &r.samples_csv);
        }
    }
}

/// Pass < inconclusive < missing < fail: the worst decides.
fn worst(vs: &[Verdict]) -> Verdict {
    let rank = |v: &Verdict| match v {
        Verdict::Pass => 0,
        Verdict::Inconclusive => 1,
        Verdict::Missing => 2,
        Verdict::Fail => 3,
    };
    vs.iter().copied().max_by_key(rank).unwrap_or(Verdict::Missing)
}

/// Every criterion of the profile over the bundle's evidence (`root`: the bundle).
pub fn evaluate(p: &Profile, evidence: &[Evidence], root: &Path) -> Vec<CriterionVerdict> {
    p.criteria.iter().map(|c| criterion(p, c, evidence, root)).collect()
}

fn criterion(p: &Profile, c: &Criterion, evidence: &[Evidence], root: &Path) -> CriterionVerdict {
    let base: Vec<&Evidence> = evidence.iter().filter(|e| e.variant.purpose == Purpose::Base).collect();
    let of = |p: Purpose| evidence.iter().find(|e| e.variant.purpose == p);
    let mut f = Finding::default();
    // Lower is better for these: the worst is the largest.
    let mut worst_is_max = true;
    match c.kind {
        Kind::ClaimRatio => {
            worst_is_max = false;
            base.iter().for_each(|e| claim_ratio(c, e, &mut f));
        }
        Kind::FullOffload => base.iter().for_each(|e| full_offload(c, e, &mut f)),
        Kind::QualityFloor => {
            let lower = c.metric.as_deref().is_some_and(|m| m.starts_with("lpips"));
            worst_is_max = lower;
            base.iter().for_each(|e| quality_floor(c, e, root, lower, &mut f));
        }
        Kind::RunValidity => evidence.iter().for_each(|e| run_validity(e, &mut f)),
        Kind::ReplicateCv => base.iter().for_each(|e| replicate_cv(c, e, &mut f)),
        Kind::ComplianceTest01 => compliance::test01(c, of(Purpose::Test01), &mut f),
        Kind::ComplianceTest04 => {
            worst_is_max = false;
            compliance::test04(c, base.first().copied(), of(Purpose::Test04), &mut f);
        }
        Kind::ComplianceTest05 => compliance::test05(c, base.first().copied(), of(Purpose::Test05), &mut f),
        Kind::Sustained => compliance::sustained(c, of(Purpose::Sustained), &mut f),
        Kind::SocTarget => base.iter().for_each(|e| soc_target(p, e, &mut f)),
    }
    if base.is_empty() {
        f.push(Verdict::Missing, "no base results".into());
    }
    let finite = f.values.iter().copied().filter(|v| v.is_finite());
    let value = if worst_is_max { finite.reduce(f64::max) } else { finite.reduce(f64::min) };
    CriterionVerdict {
        id: c.id.clone(),
        kind: c.kind,
        required: c.required,
        threshold: c.threshold,
        verdict: worst(&f.verdicts),
        value,
        detail: f.detail,
        evidence: f.evidence,
    }
}

/// The claim's verdict per device x backend x precision, from the report crate's claims code.
fn claim_ratio(c: &Criterion, ev: &Evidence, f: &mut Finding) {
    let (Some(metric), Some(baseline), Some(candidate)) =
        (c.metric.as_deref().and_then(Metric::parse), c.baseline, c.candidate)
    else {
        return f.push(Verdict::Missing, "criterion lacks metric, baseline or candidate".into());
    };
    let claim = Claim { name: c.id.clone(), metric, baseline, candidate, threshold: c.threshold };
    let runs = &ev.results.runs;
    let involved: Vec<&RunRecord> = runs.iter().filter(|r| r.strategy == baseline || r.strategy == candidate).collect();
    f.runs(ev, &involved);
    let results = crate::claims::evaluate_claims(&[claim], runs);
    if results.is_empty() {
        f.push(Verdict::Missing, format!("{}: no runs", ev.variant.name));
    }
    for r in results {
        if let Some(lo) = r.ci_low.or(r.ratio) {
            f.values.push(lo);
        }
        let ci = match (r.ci_low, r.ci_high) {
            (Some(lo), Some(hi)) => format!(" [95% CI {lo:.3}, {hi:.3}]"),
            _ => String::new(),
        };
        let ratio = r.ratio.map_or("-".into(), |x| format!("{x:.3}x"));
        f.push(
            r.verdict,
            format!(
                "{} {}/{}: {} {ratio}{ci}, needs >= {}: {}",
                ev.variant.name,
                r.device,
                r.backend,
                r.metric,
                c.threshold,
                r.verdict.as_str()
            ),
        );
    }
}

/// Nodes outside the compiled partitions other than the boundary Quantize/Dequantize.
pub fn fallback_nodes(g: &quadbench_protocol::CompiledGraph) -> u64 {
    g.placement
        .cpu_nodes
        .iter()
        .filter(|(op, _)| !matches!(op.as_str(), "QuantizeLinear" | "DequantizeLinear"))
        .map(|(_, n)| n)
        .sum()
}

fn full_offload(c: &Criterion, ev: &Evidence, f: &mut Finding) {
    let ok: Vec<&RunRecord> = ev.results.runs.iter().filter(|r| r.status == RunState::Ok).collect();
    f.file(ev, "results.json");
    for r in &ok {
        f.file(ev, &format!("runs/{}/result.json", r.id));
        if r.compiled.is_empty() {
            f.push(
                Verdict::Missing,
                format!("{} {}: no compiled graphs, so no placement to check", ev.variant.name, r.id),
            );
            continue;
        }
        for g in &r.compiled {
            let n = fallback_nodes(g);
            f.values.push(n as f64);
            let v = if g.placement.partitions >= 1 && n as f64 <= c.threshold { Verdict::Pass } else { Verdict::Fail };
            f.push(
                v,
                format!(
                    "{} {} {}: {} partition(s) on {}, {n} fallback node(s), boundary Q/DQ on CPU {}",
                    ev.variant.name,
                    r.id,
                    g.graph,
                    g.placement.partitions,
                    g.placement.execution_provider,
                    g.placement.cpu_nodes.values().sum::<u64>() - n
                ),
            );
        }
    }
    if ok.is_empty() {
        f.push(Verdict::Missing, format!("{}: no successful runs", ev.variant.name));
    }
}

/// Every output re-scored against the bundle's golden; the recorded score must agree.
fn quality_floor(c: &Criterion, ev: &Evidence, root: &Path, lower: bool, f: &mut Finding) {
    let Some(m) = c.metric.as_deref().and_then(QualityMetric::parse) else {
        return f.push(Verdict::Missing, "criterion lacks a quality metric".into());
    };
    let pkg = ev.results.package.golden_package.clone().unwrap_or_else(|| ev.results.package.name.clone());
    f.file(ev, "results.json");
    let mut scored = 0;
    for r in ev.results.runs.iter().filter(|r| r.status == RunState::Ok) {
        for o in &r.outputs {
            let golden_rel = format!("{GOLDENS}/{pkg}/{}__{}.png", o.task, o.input);
            let label = format!("{} {} {}/{}", ev.variant.name, r.id, o.task, o.input);
            if !root.join(&golden_rel).is_file() {
                f.push(Verdict::Missing, format!("{label}: no golden in the bundle"));
                continue;
            }
            f.file(ev, &o.path);
            if !f.evidence.contains(&golden_rel) {
                f.evidence.push(golden_rel.clone());
            }
            let scores = match crate::quality::score(&root.join(&golden_rel), &ev.dir.join(&o.path)) {
                Ok(s) => s,
                Err(e) => {
                    f.push(Verdict::Fail, format!("{label}: cannot score: {e}"));
                    continue;
                }
            };
            let Some(v) = m.of(&scores) else {
                f.push(Verdict::Missing, format!("{label}: {} not computed", m.info().key));
                continue;
            };
            scored += 1;
            let recorded = r.quality.get(&o.task).and_then(|q| q.inputs.get(&o.input)).and_then(|s| m.of(s));
            if recorded.is_some_and(|x| x != v && !(x - v).abs().le(&1e-9)) || recorded.is_none() {
                f.push(Verdict::Fail, format!("{label}: results.json records {recorded:?}, the files give {v}"));
            }
            f.values.push(v);
            let ok = if lower { v <= c.threshold } else { v >= c.threshold };
            if !ok {
                let op = if lower { "<=" } else { ">=" };
                f.push(Verdict::Fail, format!("{label}: {} {v:.4}, needs {op} {}", m.info().key, c.threshold));
            } else {
                f.verdicts.push(Verdict::Pass);
            }
        }
    }
    if scored == 0 {
        f.push(Verdict::Missing, format!("{}: no output scored", ev.variant.name));
    } else {
        f.detail.push(format!("{}: {scored} outputs scored against the goldens", ev.variant.name));
    }
}

fn run_validity(ev: &Evidence, f: &mut Finding) {
    f.file(ev, "results.json");
    let mut bad = 0;
    if !ev.results.complete {
        bad += 1;
        f.push(Verdict::Fail, format!("{}: results are incomplete (interrupted)", ev.variant.name));
    }
    for r in &ev.results.runs {
        let throttled = r.throttle.as_ref().is_some_and(|t| t.throttled);
        let problem = match r.status {
            RunState::Ok if !r.valid => Some(r.validity_note.clone()),
            RunState::Ok if throttled => Some("still throttled after every cool-down".into()),
            RunState::Ok => None,
            _ => Some(format!("{:?}: {}", r.status, r.error.clone().unwrap_or_default())),
        };
        if let Some(p) = problem {
            bad += 1;
            f.push(Verdict::Fail, format!("{} {}: {p}", ev.variant.name, r.id));
        } else {
            f.verdicts.push(Verdict::Pass);
        }
    }
    f.values.push(bad as f64);
    f.detail.push(format!("{}: {} runs, {bad} problem(s)", ev.variant.name, ev.results.runs.len()));
}

/// Median by LoadGen's percentile rule (an observed sample), as every latency here.
pub fn median(x: &[f64]) -> f64 {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    crate::stats::percentile(&v, 50.0)
}

/// Coefficient of variation (sample std / mean) of the replicates' medians per configuration.
pub fn cv_of_medians(runs: &[&RunRecord], key: &str) -> Option<f64> {
    let medians: Vec<f64> =
        runs.iter().filter_map(|r| r.samples.get(key)).filter(|s| !s.is_empty()).map(|s| median(s)).collect();
    if medians.len() < 2 {
        return None;
    }
    let n = medians.len() as f64;
    let mean = medians.iter().sum::<f64>() / n;
    let var = medians.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean > 0.0).then(|| var.sqrt() / mean)
}

fn replicate_cv(c: &Criterion, ev: &Evidence, f: &mut Finding) {
    let Some(CiRule::Bootstrap { sample_key }) = c.metric.as_deref().and_then(Metric::parse).map(|m| m.info().ci)
    else {
        return f.push(Verdict::Missing, "criterion lacks a latency metric".into());
    };
    for cfg in crate::report::groups::configs(&ev.results.runs) {
        let ok = cfg.ok();
        f.runs(ev, &ok);
        let label = format!("{} {}/{}/{}", ev.variant.name, cfg.backend, cfg.precision, cfg.strategy.as_str());
        match cv_of_medians(&ok, sample_key) {
            None => f.push(Verdict::Missing, format!("{label}: fewer than 2 successful replicates")),
            Some(cv) => {
                f.values.push(cv);
                let v = if cv <= c.threshold { Verdict::Pass } else { Verdict::Fail };
                f.push(v, format!("{label}: CV of {} replicate medians {cv:.4}, ceiling {}", ok.len(), c.threshold));
            }
        }
    }
}

/// The `soc_model` a SoC entry of the profile asks for.
fn requested_soc(p: &Profile, name: &str) -> Option<String> {
    let soc = p.socs.iter().find(|s| s.name == name)?;
    soc.backend_options.values().find_map(|o| o.get("soc_model").cloned())
}

fn soc_target(p: &Profile, ev: &Evidence, f: &mut Finding) {
    let Some(want) = ev.variant.soc.as_deref().and_then(|s| requested_soc(p, s)) else {
        return f.push(Verdict::Missing, format!("{}: no SoC with a soc_model in the profile", ev.variant.name));
    };
    f.file(ev, "results.json");
    for r in ev.results.runs.iter().filter(|r| r.status == RunState::Ok) {
        if r.compiled.is_empty() {
            f.push(Verdict::Missing, format!("{} {}: no compiled binaries", ev.variant.name, r.id));
        }
        for g in &r.compiled {
            let got = g.target_soc.as_deref().unwrap_or("(not recorded)");
            let arch = g.target_arch.as_deref().unwrap_or("?");
            let v = if got.eq_ignore_ascii_case(&want) { Verdict::Pass } else { Verdict::Fail };
            f.push(
                v,
                format!("{} {} {}: compiled for {got} (arch {arch}); asked for {want}", ev.variant.name, r.id, g.graph),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::RunIdentity;
    use quadbench_protocol::{Storage, Strategy};

    fn run(e2e: &[f64]) -> RunRecord {
        let id = RunIdentity { id: "r", device: "d", backend: "cpu", precision: "fp32", strategy: Strategy::Unified };
        let mut r = RunRecord::failed(id, Storage::default(), String::new(), String::new(), false);
        r.samples.insert("e2e".into(), e2e.to_vec());
        r
    }

    #[test]
    fn the_worst_verdict_decides_and_nothing_is_missing() {
        assert_eq!(worst(&[Verdict::Pass, Verdict::Inconclusive]), Verdict::Inconclusive);
        assert_eq!(worst(&[Verdict::Pass, Verdict::Missing, Verdict::Inconclusive]), Verdict::Missing);
        assert_eq!(worst(&[Verdict::Missing, Verdict::Fail, Verdict::Pass]), Verdict::Fail);
        assert_eq!(worst(&[]), Verdict::Missing, "no evidence is never a pass");
    }

    #[test]
    fn cv_is_over_the_replicates_medians() {
        let (a, b) = (run(&[1.0, 10.0, 10.0]), run(&[12.0, 12.0, 100.0]));
        // Medians 10 and 12: mean 11, sample std sqrt(2).
        let cv = cv_of_medians(&[&a, &b], "e2e").unwrap();
        assert!((cv - 2f64.sqrt() / 11.0).abs() < 1e-12, "{cv}");
        assert_eq!(cv_of_medians(&[&a], "e2e"), None, "one replicate has no spread");
    }
}
