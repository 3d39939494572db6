//! `quadbench golden bless|verify`: run the reference configuration on the local host and write
//! its outputs as goldens, listing what would change and refusing to overwrite without
//! `--force`; or check golden files against their manifests.

use super::exit::{
    self, BAD_INPUT as EXIT_BAD_INPUT, CLAIMS_FAILED as EXIT_CLAIMS_FAILED, INFRA as EXIT_INFRA, OK as EXIT_OK, report,
};
use super::run::{package_cache, run_reported};
use crate::config::{Scenario, checkout};
use crate::quality::golden::{
    self, GOLDEN_SCHEMA, GoldenManifest, REFERENCE_BACKEND, REFERENCE_PRECISION, REFERENCE_STRATEGY,
};
use crate::scheduler::RunOptions;
use quadbench_protocol::TaskOrder;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum GoldenCmd {
    /// Produce goldens with the reference configuration (FP32, CPU EP, separate baselines) for
    /// the scenario's package, tasks and inputs. Lists what would change; needs --force to overwrite.
    Bless {
        /// Scenario whose package and inputs to bless (default: scenarios/demo.yaml).
        scenario: Option<PathBuf>,
        /// Overwrite goldens that changed.
        #[arg(long)]
        force: bool,
    },
    /// Check golden files against their manifests (sha256).
    Verify {
        /// Golden directory (default: the checkout's golden/).
        dir: Option<PathBuf>,
    },
}

pub fn golden(c: GoldenCmd) -> i32 {
    match c {
        GoldenCmd::Verify { dir } => verify(dir),
        GoldenCmd::Bless { scenario, force } => {
            let Some(sc) = scenario.or_else(super::demo::find_demo_scenario) else {
                report(&"scenarios/demo.yaml not found; pass a scenario");
                return EXIT_BAD_INPUT;
            };
            bless(&sc, force)
        }
    }
}

fn verify(dir: Option<PathBuf>) -> i32 {
    let Some(dir) = dir.or_else(|| checkout::current().map(|r| r.join("golden"))) else {
        report(&"no golden directory given and none found above the current directory");
        return EXIT_BAD_INPUT;
    };
    match golden::verify(&dir) {
        Ok(n) => {
            println!("ok: {n} golden files match their manifests under {}", dir.display());
            EXIT_OK
        }
        Err(e) => {
            report(&e);
            EXIT_BAD_INPUT
        }
    }
}

/// What blessing would change, one line per file (images, then tensors), on stdout.
fn print_changes(changes: &[golden::Change], tensor_changes: &[golden::TensorChange]) {
    for c in changes {
        let delta = match (c.psnr_db, c.ssim) {
            (Some(p), Some(s)) => format!(" (new vs old: PSNR {p:.2} dB, SSIM {s:.5})"),
            _ => String::new(),
        };
        println!("{:<9} {}{delta}", c.kind, golden::file_name(&c.task, &c.input));
    }
    for c in tensor_changes {
        let delta = match (c.max_abs_error, c.rmse) {
            (Some(m), Some(r)) => format!(" (new vs old: max abs {m:.3e}, RMSE {r:.3e})"),
            _ => String::new(),
        };
        println!("{:<9} {}{delta}", c.kind, c.file);
    }
}

pub fn bless(scenario: &Path, force: bool) -> i32 {
    let mut sc = match Scenario::load(scenario) {
        Ok(s) => s,
        Err(e) => return exit::fail(&e),
    };
    // The reference configuration, and only the outputs pass (no measurement).
    sc.backends = vec![REFERENCE_BACKEND];
    sc.precision = REFERENCE_PRECISION.into();
    sc.strategies = vec![REFERENCE_STRATEGY];
    sc.package.quantize = None; // goldens are FP32
    sc.backend_options.clear();
    sc.require_full_offload = false;
    sc.claims.clear();
    sc.thresholds.clear();
    sc.workload = quadbench_protocol::PlanWorkload {
        order: TaskOrder::RoundRobin,
        seed: 0,
        requests_per_visit: 1,
        warmup_visits: 0,
        min_samples: 0,
        min_switches: 0,
        min_duration_ms: 0,
        max_duration_ms: 60_000,
        capture_timed_outputs: false,
    };
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            report(&format!("cannot create a temporary directory: {e}"));
            return EXIT_INFRA;
        }
    };
    let device = tmp.path().join("local.yaml");
    if let Err(e) = std::fs::write(
        &device,
        format!("name: local\ntransport: local\nwork_dir: {}\n", tmp.path().join("device").display()),
    ) {
        report(&e);
        return EXIT_INFRA;
    }
    let opts = RunOptions {
        out: tmp.path().join("out"),
        device_override: Some(device),
        package_cache: package_cache(),
        resume: false,
    };
    let results = match run_reported(&sc, &opts) {
        Ok(r) => r,
        Err(e) => return exit::Classify::exit_code(&e),
    };
    let Some(r) = results.runs.first().filter(|r| r.status == crate::results::RunState::Ok) else {
        report(&format!(
            "the reference run failed: {}",
            results.runs.first().and_then(|r| r.error.clone()).unwrap_or_default()
        ));
        return EXIT_INFRA;
    };
    let produced: Vec<(String, String, std::path::PathBuf)> =
        r.outputs.iter().map(|o| (o.task.clone(), o.input.clone(), opts.out.join(&o.path))).collect();
    let tensors: Vec<golden::ProducedTensor> = r
        .tensor_outputs
        .iter()
        .map(|o| golden::ProducedTensor {
            task: o.task.clone(),
            input: o.input.clone(),
            output: o.output.clone(),
            path: opts.out.join(&o.path),
        })
        .collect();
    let dir = golden::package_dir(&sc.golden_root, &results.package.name);
    let (changes, tensor_changes) =
        match golden::diff(&dir, &produced).and_then(|c| Ok((c, golden::diff_tensors(&dir, &tensors)?))) {
            Ok(c) => c,
            Err(e) => {
                report(&e);
                return EXIT_BAD_INPUT;
            }
        };
    print_changes(&changes, &tensor_changes);
    let kinds = || changes.iter().map(|c| c.kind).chain(tensor_changes.iter().map(|c| c.kind));
    let changed = kinds().filter(|k| *k == "changed").count();
    if changed > 0 && !force {
        report(&format!(
            "{changed} golden(s) would change; nothing written. Review the deltas above and re-run with --force to overwrite"
        ));
        return EXIT_CLAIMS_FAILED;
    }
    if kinds().all(|k| k == "unchanged") && dir.join(golden::MANIFEST).exists() {
        println!("goldens up to date in {}", dir.display());
        return EXIT_OK;
    }
    let base = GoldenManifest {
        schema: GOLDEN_SCHEMA.into(),
        package: results.package.name.clone(),
        package_sha256: results.package.sha256.clone(),
        backend: REFERENCE_BACKEND.as_str().into(),
        precision: REFERENCE_PRECISION.into(),
        strategy: REFERENCE_STRATEGY.as_str().into(),
        ort_version: r.environment.runner.ort_version.clone().unwrap_or_default(),
        files: vec![],
        tensors: vec![],
    };
    match golden::write(&dir, base, &produced, &tensors) {
        Ok(m) if m.tensors.is_empty() => {
            println!("wrote {} goldens to {}", m.files.len(), dir.display());
            EXIT_OK
        }
        Ok(m) => {
            println!("wrote {} goldens and {} golden tensors to {}", m.files.len(), m.tensors.len(), dir.display());
            EXIT_OK
        }
        Err(e) => {
            report(&e);
            EXIT_INFRA
        }
    }
}
