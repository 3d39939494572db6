//! `quadbench run SCENARIO`: run a scenario, print the summary table, write every report.

use super::exit::{self, Classify};
use super::progress::StderrReporter;
use crate::config::{Scenario, checkout};
use crate::metric::Metric;
use crate::results::{Results, RunRecord, RunState, Scores, Verdict};
use crate::scheduler::{self, RunError, RunOptions};
use quadbench_protocol::{Strategy, sample_key};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario YAML.
    scenario: PathBuf,
    /// Device profile replacing the scenario's devices.
    #[arg(long)]
    device: Option<PathBuf>,
    /// Results directory (default: reports/<scenario name>-<UTC time> in the checkout the
    /// scenario lies in, else in the current directory). Never overwritten: an existing one
    /// needs --resume.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted run in --out: keep its finished runs, run the rest.
    #[arg(long, requires = "out")]
    resume: bool,
}

pub fn run(a: RunArgs) -> i32 {
    run_and_summarise(&a.scenario, a.device, a.out, a.resume)
}

/// Where results go by default: `reports/<name>-<UTC time>` of the scenario's checkout, else of
/// the current directory.
pub fn default_out(scenario: &Path, name: &str) -> PathBuf {
    let base = checkout::root_above(scenario.parent().unwrap_or(Path::new("."))).unwrap_or_else(|| PathBuf::from("."));
    base.join("reports").join(format!("{name}-{}", crate::time::utc_stamp()))
}

/// The package cache every command shares.
pub fn package_cache() -> PathBuf {
    quadbench_runtime::cache_dir().join("packages")
}

/// Run a scenario with progress on stderr, SIGINT/SIGTERM recorded rather than fatal. An error
/// is reported on stderr; callers choose the exit code.
pub fn run_reported(sc: &Scenario, opts: &RunOptions) -> Result<Results, RunError> {
    if let Err(e) = crate::interrupt::install() {
        exit::report(&format!("cannot handle SIGINT/SIGTERM ({e}); an interrupt will end the run abruptly"));
    }
    let mut rep = StderrReporter::new();
    let r = scheduler::run_scenario(sc, opts, &mut rep);
    rep.finish();
    if let Err(e) = &r {
        exit::report(e);
    }
    r
}

/// Run, summarise, report; the exit code.
pub fn run_and_summarise(scenario: &Path, device: Option<PathBuf>, out: Option<PathBuf>, resume: bool) -> i32 {
    let sc = match Scenario::load(scenario) {
        Ok(s) => s,
        Err(e) => return exit::fail(&e),
    };
    let out = out.unwrap_or_else(|| default_out(scenario, &sc.name));
    let opts = RunOptions { out: out.clone(), device_override: device, package_cache: package_cache(), resume };
    let results = match run_reported(&sc, &opts) {
        Ok(r) => r,
        Err(e) => return e.exit_code(),
    };
    print!("{}", summary_table(&results));
    println!("results: {}", out.join("results.json").display());
    if let Err(e) = crate::report::generate(&out, &[], None) {
        return exit::fail(&e);
    }
    for f in ["report.md", "report.html", "junit.xml", "tables/", "plots/"] {
        println!("report:  {}", out.join(f).display());
    }
    results_exit_code(&results)
}

/// The exit code a finished scenario earns.
pub fn results_exit_code(r: &Results) -> i32 {
    let failed = |infra: bool| r.runs.iter().any(|x| x.status == RunState::Failed && x.infrastructure_error == infra);
    if failed(true) {
        exit::INFRA
    } else if failed(false) {
        exit::RUNS_FAILED
    } else if r.claims.iter().any(|c| c.verdict == Verdict::Fail)
        || r.runs.iter().any(|x| x.quality.values().any(|q| q.pass == Some(false)))
    {
        exit::CLAIMS_FAILED
    } else {
        exit::OK
    }
}

/// The demo's short table: storage, peak RAM, switch latency per strategy, then ratios.
pub fn summary_table(r: &Results) -> String {
    let mut s = String::new();
    let mut groups: Vec<(String, String)> = r.runs.iter().map(|x| (x.device.clone(), x.backend.clone())).collect();
    groups.dedup();
    for (device, backend) in groups {
        let runs: Vec<_> = r.runs.iter().filter(|x| x.device == device && x.backend == backend).collect();
        s.push_str(&format!("\n{device} / {backend} ({} tasks)\n", r.package.tasks.len()));
        s.push_str(&format!("{:<22}", "strategy"));
        for h in ["storage MB", "peak RSS MB", "switch p50 ms", "e2e p50 ms", "status"] {
            s.push_str(&format!("{h:>15}"));
        }
        s.push('\n');
        // With replicates a strategy has several rows: each says which run it is.
        let replicated = runs.iter().any(|x| x.replicate > 1);
        let label = |x: &RunRecord| {
            if replicated { format!("{} r{}", x.strategy, x.replicate) } else { x.strategy.to_string() }
        };
        for x in &runs {
            let p50 = |k: &str| x.latency_ms.get(k).map_or("-".to_string(), |v| format!("{:.1}", v.p50));
            let status = match x.status {
                RunState::Ok if x.valid => "ok",
                RunState::Ok => "ok (invalid)",
                RunState::Failed => "FAILED",
                RunState::Unsupported => "unsupported",
            };
            s.push_str(&format!(
                "{:<22}{:>15.1}{:>15}{:>15}{:>15}{:>15}\n",
                label(x),
                x.storage.total_bytes as f64 / 1e6,
                x.memory.peak_rss_bytes.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6)),
                p50(sample_key::SWITCH),
                p50(sample_key::E2E),
                status
            ));
        }
        // Every successful run of a strategy: replicates are compared as a whole.
        let get = |st: Strategy| -> Vec<_> {
            runs.iter().copied().filter(|x| x.strategy == st && x.status == RunState::Ok).collect()
        };
        let u = get(Strategy::Unified);
        if !u.is_empty() {
            for other in [
                Strategy::UnifiedOrtAdapter,
                Strategy::SeparateResident,
                Strategy::SeparateReload,
                Strategy::SeparateSharedWeights,
            ] {
                let o = get(other);
                if o.is_empty() {
                    continue;
                }
                let ratio =
                    |m: Metric| crate::claims::compare(m, &o, &u).ratio.map_or("-".into(), |v| format!("{v:.2}x"));
                let parts: Vec<String> = [Metric::StorageTotal, Metric::PeakRss, Metric::Switch]
                    .into_iter()
                    .map(|m| format!("{} {}", m.info().label, ratio(m)))
                    .collect();
                s.push_str(&format!("unified vs {:<18} {}\n", other.as_str(), parts.join("  ")));
            }
        }
        for x in runs.iter().filter(|x| !x.quality.is_empty()) {
            s.push_str(&quality_line(x, &label(x)));
        }
        for c in r.claims.iter().filter(|c| c.device == device && c.backend == backend) {
            let verdict = match c.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL (not reproduced)",
                Verdict::Inconclusive => "inconclusive (CI straddles the threshold)",
                Verdict::Missing => "missing run",
            };
            let ci = match (c.ci_low, c.ci_high) {
                (Some(lo), Some(hi)) => format!(" [95% CI {lo:.2}, {hi:.2}]"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "claim {:<20} {} {} vs {}: {}{ci} (needs >= {:.1}x): {verdict}\n",
                c.name,
                c.metric,
                c.candidate,
                c.baseline,
                c.ratio.map_or("-".into(), |v| format!("{v:.2}x")),
                c.threshold
            ));
        }
    }
    s
}

/// One run's worst-task quality against the goldens.
fn quality_line(x: &RunRecord, label: &str) -> String {
    // Only scored tasks count: a task whose goldens are all missing has no mean.
    let worst = |f: &dyn Fn(&Scores) -> Option<f64>| {
        x.quality
            .values()
            .filter(|q| !q.inputs.is_empty())
            .filter_map(|q| if q.mean.identical { Some(f64::INFINITY) } else { f(&q.mean) })
            .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.min(v))))
    };
    let scored = x.quality.values().filter(|q| !q.inputs.is_empty()).count();
    let missing = x.quality.values().filter(|q| !q.missing_golden.is_empty()).count();
    let failed = x.quality.values().filter(|q| q.pass == Some(false)).count();
    let fmt = |v: Option<f64>, unit: &str| match v {
        None => "-".to_string(),
        Some(v) if v.is_infinite() => "identical".to_string(),
        Some(v) => format!("{v:.2}{unit}"),
    };
    if x.outputs.is_empty() && !x.tensor_outputs.is_empty() {
        // A package without an image: its quality is the tensor line's.
        return tensor_line(x, label, Some(failed));
    }
    let line = format!(
        "quality {:<18} vs goldens: worst-task PSNR {}, SSIM {}; {scored} tasks scored, {missing} missing goldens, {failed} failing thresholds\n",
        label,
        fmt(worst(&|m| m.psnr_db), " dB"),
        fmt(worst(&|m| m.ssim), "")
    );
    line + &tensor_line(x, label, None)
}

/// One run's largest tensor errors against the golden tensors (nothing without tensor outputs),
/// with the count of tasks failing their thresholds when no image line gives it.
fn tensor_line(x: &RunRecord, label: &str, failed: Option<usize>) -> String {
    let scores: Vec<_> = x.quality.values().flat_map(|q| q.tensors.values()).flat_map(|t| t.inputs.values()).collect();
    if scores.is_empty() {
        return String::new();
    }
    let max = |f: fn(&crate::results::TensorScores) -> f64| scores.iter().map(|s| f(s)).fold(0f64, f64::max);
    format!(
        "tensors {:<18} vs golden tensors: largest max abs error {:.3e}, largest RMSE {:.3e}; {} tensors scored{}\n",
        label,
        max(|s| s.max_abs_error),
        max(|s| s.rmse),
        scores.len(),
        failed.map_or(String::new(), |f| format!(", {f} failing thresholds"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{PackageInfo, RunIdentity, RunRecord, ScenarioInfo};
    use quadbench_protocol::Storage;

    fn results(runs: Vec<RunRecord>) -> Results {
        Results {
            schema: crate::results::RESULTS_SCHEMA.into(),
            quadbench_version: String::new(),
            scenario: ScenarioInfo {
                name: "s".into(),
                path: "s.yaml".into(),
                sha256: String::new(),
                request_files_sha256: None,
            },
            package: PackageInfo {
                name: "p".into(),
                sha256: String::new(),
                tasks: vec![],
                dir: String::new(),
                quantization: None,
                golden_package: None,
            },
            devices: vec![],
            runs,
            claims: vec![],
            complete: true,
            statistics: Default::default(),
        }
    }

    fn failed(infra: bool) -> RunRecord {
        let id = RunIdentity { id: "r", device: "d", backend: "cpu", precision: "fp32", strategy: Strategy::Unified };
        RunRecord::failed(id, Storage::default(), "boom".into(), String::new(), infra)
    }

    #[test]
    fn device_failures_exit_3_and_test_failures_exit_4_as_documented() {
        assert_eq!(results_exit_code(&results(vec![])), exit::OK);
        assert_eq!(results_exit_code(&results(vec![failed(false)])), exit::RUNS_FAILED);
        assert_eq!(results_exit_code(&results(vec![failed(true)])), exit::INFRA);
        assert_eq!(results_exit_code(&results(vec![failed(false), failed(true)])), exit::INFRA);
    }
}
