//! `results.json` (schema `quadbench.results/1`), raw samples as CSV, claim verdicts and the
//! short `report.md`. Written incrementally: a finished run is on disk (atomic rename) before
//! the next one starts.

use crate::scenario::Claim;
use quadbench_protocol::{MemoryPhase, OutputImage, RunResult, Storage, Strategy, SwitchEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const RESULTS_SCHEMA: &str = "quadbench.results/1";

/// Distribution summary of latency samples (ms).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Percentile by linear interpolation between closest ranks (numpy's default, type 7).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Summary {
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n as f64;
        // Sample standard deviation (n - 1), as statistics packages report it.
        let std = if n > 1 { (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(Summary { n, mean, std, min: s[0], p50: percentile(&s, 50.0), p90: percentile(&s, 90.0), p99: percentile(&s, 99.0), max: s[n - 1] })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Memory {
    pub peak_rss_bytes: Option<u64>,
    pub peak_pss_bytes: Option<u64>,
    pub phases: Vec<MemoryPhase>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Environment {
    pub ort_version: Option<String>,
    pub execution_providers: Vec<String>,
    pub cpu_model: Option<String>,
    pub cpu_count: Option<usize>,
    pub kernel: Option<String>,
    pub os: String,
    pub arch: String,
    pub runner_version: String,
    pub quadbench_version: String,
    pub git_revision: String,
    pub package_sha256: String,
    pub device_model: Option<String>,
    pub device_soc: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Ok,
    Failed,
    Unsupported,
}

/// One run (device x backend x precision x strategy) in results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub device: String,
    pub backend: String,
    pub precision: String,
    pub strategy: Strategy,
    pub status: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Infrastructure problem (device, transport) rather than a failure of the thing measured.
    #[serde(default)]
    pub infrastructure_error: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
    pub storage: Storage,
    pub memory: Memory,
    pub init_ms: f64,
    pub first_inference_ms: f64,
    /// `<stage>`, `e2e`, `switch`, `switch_load`.
    pub latency_ms: BTreeMap<String, Summary>,
    pub valid: bool,
    pub validity_note: String,
    pub requests: u64,
    pub duration_ms: f64,
    pub environment: Environment,
    /// Raw samples, relative to the results directory.
    pub samples_csv: String,
    pub switches: Vec<SwitchEvent>,
    pub outputs: Vec<OutputImage>,
    pub conditions_before: quadbench_protocol::Conditions,
    pub conditions_after: quadbench_protocol::Conditions,
    /// Output quality against goldens, per task (absent when not scored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quality: BTreeMap<String, TaskQuality>,
}

/// Image-quality scores of one output against its golden. `None` = not computed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    /// `None` with `identical: true` when the images are identical (PSNR = inf).
    pub psnr_db: Option<f64>,
    #[serde(default)]
    pub identical: bool,
    pub ssim: Option<f64>,
    pub ms_ssim: Option<f64>,
    pub lpips_proxy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lpips: Option<f64>,
}

/// Quality of one task: per input image, the mean over inputs, and threshold verdicts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskQuality {
    pub inputs: BTreeMap<String, Scores>,
    pub mean: Scores,
    /// Inputs whose golden is missing (reported, not scored as failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_golden: Vec<String>,
    /// Threshold checks from the scenario: `"psnr_db >= 30"` -> pass.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, bool>,
    /// All thresholds passed (`None` when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
}

impl RunRecord {
    /// Build from a runner result.
    pub fn from_result(id: &str, device: &str, r: &RunResult, env: Environment, samples_csv: String) -> RunRecord {
        let (status, error) = match &r.status {
            quadbench_protocol::RunStatus::Ok => (RunState::Ok, None),
            quadbench_protocol::RunStatus::Failed { error } if error.starts_with("backend unsupported") => (RunState::Unsupported, Some(error.clone())),
            quadbench_protocol::RunStatus::Failed { error } => (RunState::Failed, Some(error.clone())),
        };
        RunRecord {
            id: id.into(),
            device: device.into(),
            backend: r.backend.clone(),
            precision: r.precision.clone(),
            strategy: r.strategy,
            status,
            error,
            infrastructure_error: false,
            stderr_tail: String::new(),
            storage: r.storage.clone(),
            memory: Memory { peak_rss_bytes: r.peak_rss_bytes(), peak_pss_bytes: r.peak_pss_bytes(), phases: r.memory.clone() },
            init_ms: r.init_ms,
            first_inference_ms: r.first_inference_ms,
            latency_ms: r.samples_ms.iter().filter_map(|(k, v)| Summary::of(v).map(|s| (k.clone(), s))).collect(),
            valid: r.valid,
            validity_note: r.validity_note.clone(),
            requests: r.requests,
            duration_ms: r.duration_ms,
            environment: env,
            samples_csv,
            switches: r.switches.clone(),
            outputs: r.outputs.clone(),
            conditions_before: r.conditions_before.clone(),
            conditions_after: r.conditions_after.clone(),
            quality: BTreeMap::new(),
        }
    }

    /// A run that produced no result (crash, device lost).
    pub fn failed(id: &str, device: &str, backend: &str, precision: &str, strategy: Strategy, storage: Storage, error: String, stderr_tail: String, infra: bool) -> RunRecord {
        RunRecord {
            id: id.into(),
            device: device.into(),
            backend: backend.into(),
            precision: precision.into(),
            strategy,
            status: RunState::Failed,
            error: Some(error),
            infrastructure_error: infra,
            stderr_tail,
            storage,
            memory: Memory::default(),
            init_ms: 0.0,
            first_inference_ms: 0.0,
            latency_ms: BTreeMap::new(),
            valid: false,
            validity_note: "invalid: the run did not finish".into(),
            requests: 0,
            duration_ms: 0.0,
            environment: Environment::default(),
            samples_csv: String::new(),
            switches: vec![],
            outputs: vec![],
            conditions_before: Default::default(),
            conditions_after: Default::default(),
            quality: BTreeMap::new(),
        }
    }

    /// Value of a claim metric (lower is better).
    pub fn metric(&self, metric: &str) -> Option<f64> {
        match metric {
            "storage.total_bytes" => Some(self.storage.total_bytes as f64),
            "memory.peak_rss_bytes" => self.memory.peak_rss_bytes.map(|v| v as f64),
            "memory.peak_pss_bytes" => self.memory.peak_pss_bytes.map(|v| v as f64),
            "init_ms" => Some(self.init_ms),
            m => m.strip_prefix("latency_ms.").and_then(|k| self.latency_ms.get(k)).map(|s| s.p50),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// A run the claim needs is missing or failed.
    Missing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimResult {
    pub name: String,
    pub metric: String,
    pub device: String,
    pub backend: String,
    pub precision: String,
    pub baseline: Strategy,
    pub candidate: Strategy,
    pub baseline_value: Option<f64>,
    pub candidate_value: Option<f64>,
    /// baseline / candidate (how many times lower the candidate is); medians for latencies.
    pub ratio: Option<f64>,
    pub threshold: f64,
    pub verdict: Verdict,
}

/// Evaluate claims for every device x backend x precision group present in `runs`.
pub fn evaluate_claims(claims: &[Claim], runs: &[RunRecord]) -> Vec<ClaimResult> {
    let mut groups: Vec<(String, String, String)> = runs.iter().map(|r| (r.device.clone(), r.backend.clone(), r.precision.clone())).collect();
    groups.dedup();
    groups.sort();
    groups.dedup();
    let mut out = Vec::new();
    for (device, backend, precision) in &groups {
        for c in claims {
            let find = |s: Strategy| runs.iter().find(|r| &r.device == device && &r.backend == backend && &r.precision == precision && r.strategy == s && r.status == RunState::Ok).and_then(|r| r.metric(&c.metric));
            let (b, k) = (find(c.baseline), find(c.candidate));
            let ratio = match (b, k) {
                (Some(b), Some(k)) if k > 0.0 => Some(b / k),
                _ => None,
            };
            let verdict = match ratio {
                None => Verdict::Missing,
                Some(r) if r >= c.threshold => Verdict::Pass,
                Some(_) => Verdict::Fail,
            };
            out.push(ClaimResult { name: c.name.clone(), metric: c.metric.clone(), device: device.clone(), backend: backend.clone(), precision: precision.clone(), baseline: c.baseline, candidate: c.candidate, baseline_value: b, candidate_value: k, ratio, threshold: c.threshold, verdict });
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageInfo {
    pub name: String,
    pub sha256: String,
    pub tasks: Vec<String>,
    pub dir: String,
}

/// The whole results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    pub quadbench_version: String,
    pub scenario: ScenarioInfo,
    pub package: PackageInfo,
    pub runs: Vec<RunRecord>,
    pub claims: Vec<ClaimResult>,
    pub complete: bool,
}

/// Write `value` as JSON atomically (temp file + rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

/// Raw samples of one run as CSV: `run_id,metric,index,value_ms`.
pub fn write_samples_csv(path: &Path, run_id: &str, r: &RunResult) -> Result<(), csv::Error> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["run_id", "metric", "index", "value_ms"])?;
    for (k, v) in &r.samples_ms {
        for (i, x) in v.iter().enumerate() {
            w.write_record([run_id, k, &i.to_string(), &format!("{x:.6}")])?;
        }
    }
    w.flush()?;
    Ok(())
}

fn mb(b: Option<u64>) -> String {
    b.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1e6))
}

fn ms(s: Option<&Summary>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}", s.p50))
}

/// The short markdown report: runs table and claims table.
pub fn report_markdown(r: &Results) -> String {
    let mut s = format!("# quadbench report: {}\n\nPackage `{}` (sha256 {}), scenario `{}`.\n\n", r.scenario.name, r.package.name, &r.package.sha256[..12.min(r.package.sha256.len())], r.scenario.path);
    s.push_str("## Runs\n\nLatencies are medians (p50) in ms; storage and memory in MB (10^6 bytes).\n\n");
    s.push_str("| device | backend | precision | strategy | status | storage MB | peak RSS MB | peak PSS MB | init ms | e2e ms | switch ms | switch load ms | validity |\n|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for run in &r.runs {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:?} | {:.1} | {} | {} | {:.0} | {} | {} | {} | {} |\n",
            run.device,
            run.backend,
            run.precision,
            run.strategy,
            run.status,
            run.storage.total_bytes as f64 / 1e6,
            mb(run.memory.peak_rss_bytes),
            mb(run.memory.peak_pss_bytes),
            run.init_ms,
            ms(run.latency_ms.get("e2e")),
            ms(run.latency_ms.get("switch")),
            ms(run.latency_ms.get("switch_load")),
            run.validity_note
        ));
    }
    let stages: Vec<&String> = r.runs.iter().flat_map(|x| x.latency_ms.keys()).filter(|k| !matches!(k.as_str(), "e2e" | "switch" | "switch_load")).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    if !stages.is_empty() {
        s.push_str(&format!("\n## Stage latency (p50 ms per call)\n\n| run | {} |\n|---|{}\n", stages.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" | "), "---:|".repeat(stages.len())));
        for run in &r.runs {
            s.push_str(&format!("| {} | {} |\n", run.id, stages.iter().map(|k| ms(run.latency_ms.get(*k))).collect::<Vec<_>>().join(" | ")));
        }
    }
    s.push_str("\n## Claims\n\nratio = baseline / candidate (medians for latencies); pass when ratio >= threshold.\n\n| claim | device | backend | metric | baseline | candidate | ratio | threshold | verdict |\n|---|---|---|---|---|---|---:|---:|---|\n");
    for c in &r.claims {
        s.push_str(&format!("| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n", c.name, c.device, c.backend, c.metric, c.baseline, c.candidate, c.ratio.map_or("-".into(), |x| format!("{x:.2}x")), c.threshold, match c.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "**fail (not reproduced)**",
            Verdict::Missing => "missing run",
        }));
    }
    if r.runs.iter().any(|x| !x.quality.is_empty()) {
        s.push_str("\n## Quality per task (mean over inputs, vs goldens)\n\nPSNR in dB (`identical` = bit-exact); SSIM is skimage-compatible (Gaussian sigma 1.5, population covariance, data range 1); lpips_proxy is not LPIPS (see README).\n\n| run | task | PSNR dB | SSIM | MS-SSIM | lpips_proxy | thresholds |\n|---|---|---:|---:|---:|---:|---|\n");
        let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
        for run in &r.runs {
            for (task, q) in &run.quality {
                let psnr = if q.mean.identical { "identical".to_string() } else { f(q.mean.psnr_db, 2) };
                let verdict = if !q.missing_golden.is_empty() {
                    format!("missing golden: {}", q.missing_golden.join(", "))
                } else {
                    match q.pass {
                        Some(true) => "pass".into(),
                        Some(false) => format!("**fail**: {}", q.thresholds.iter().filter(|(_, ok)| !**ok).map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")),
                        None => "-".into(),
                    }
                };
                s.push_str(&format!("| {} | {task} | {psnr} | {} | {} | {} | {verdict} |\n", run.id, f(q.mean.ssim, 5), f(q.mean.ms_ssim, 5), f(q.mean.lpips_proxy, 4)));
            }
        }
    }
    for run in r.runs.iter().filter(|x| x.status != RunState::Ok) {
        s.push_str(&format!("\n### {} {:?}\n\n```\n{}\n{}\n```\n", run.id, run.status, run.error.as_deref().unwrap_or(""), run.stderr_tail));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_numpy_percentiles() {
        // numpy.percentile([1,2,3,4,10], [50,90,99]) = [3.0, 7.6, 9.76]
        let s = Summary::of(&[4.0, 1.0, 10.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.n, s.min, s.max, s.p50), (5, 1.0, 10.0, 3.0));
        assert!((s.p90 - 7.6).abs() < 1e-12 && (s.p99 - 9.76).abs() < 1e-12);
        assert!((s.mean - 4.0).abs() < 1e-12);
        assert!((s.std - 3.5355339059327378).abs() < 1e-12);
        assert!(Summary::of(&[]).is_none());
    }
}
