//! `quadbench golden bless`: run the reference configuration on the local host and write its
//! outputs as goldens, listing what would change and refusing to overwrite without `--force`.

use crate::cli::{EXIT_BAD_INPUT, EXIT_CLAIMS_FAILED, EXIT_INFRA, EXIT_OK, report, run_reported, scenario_repo_root};
use quadbench::golden::{
    self, GOLDEN_SCHEMA, GoldenManifest, REFERENCE_BACKEND, REFERENCE_PRECISION, REFERENCE_STRATEGY,
};
use quadbench::run::RunOptions;
use quadbench::scenario::Scenario;
use quadbench_protocol::{Strategy, TaskOrder};
use std::path::Path;

pub fn bless(scenario: &Path, force: bool) -> i32 {
    let Some(root) = scenario_repo_root(scenario) else {
        report(&"cannot find the repository (golden/inputs) above the scenario");
        return EXIT_BAD_INPUT;
    };
    let mut sc = match Scenario::load(scenario, &root) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return EXIT_BAD_INPUT;
        }
    };
    // The reference configuration, and only the outputs pass (no measurement).
    sc.backends = vec![REFERENCE_BACKEND.into()];
    sc.precision = REFERENCE_PRECISION.into();
    sc.strategies = vec![Strategy::parse(REFERENCE_STRATEGY).expect("known strategy")];
    sc.quantize = None; // goldens are FP32
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
        package_cache: quadbench_runtime::cache_dir().join("packages"),
        resume: false,
    };
    let Ok(results) = run_reported(&sc, &opts) else { return EXIT_INFRA };
    let Some(r) = results.runs.first().filter(|r| r.status == quadbench::results::RunState::Ok) else {
        report(&format!(
            "the reference run failed: {}",
            results.runs.first().and_then(|r| r.error.clone()).unwrap_or_default()
        ));
        return EXIT_INFRA;
    };
    let produced: Vec<(String, String, std::path::PathBuf)> =
        r.outputs.iter().map(|o| (o.task.clone(), o.input.clone(), opts.out.join(&o.path))).collect();
    let dir = golden::package_dir(&sc.golden_root, &results.package.name);
    let changes = match golden::diff(&dir, &produced) {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return EXIT_BAD_INPUT;
        }
    };
    for c in &changes {
        let delta = match (c.psnr_db, c.ssim) {
            (Some(p), Some(s)) => format!(" (new vs old: PSNR {p:.2} dB, SSIM {s:.5})"),
            _ => String::new(),
        };
        println!("{:<9} {}{delta}", c.kind, golden::file_name(&c.task, &c.input));
    }
    let changed = changes.iter().filter(|c| c.kind == "changed").count();
    if changed > 0 && !force {
        report(&format!(
            "{changed} golden(s) would change; nothing written. Review the deltas above and re-run with --force to overwrite"
        ));
        return EXIT_CLAIMS_FAILED;
    }
    if changes.iter().all(|c| c.kind == "unchanged") && dir.join(golden::MANIFEST).exists() {
        println!("goldens up to date in {}", dir.display());
        return EXIT_OK;
    }
    let base = GoldenManifest {
        schema: GOLDEN_SCHEMA.into(),
        package: results.package.name.clone(),
        package_sha256: results.package.sha256.clone(),
        backend: REFERENCE_BACKEND.into(),
        precision: REFERENCE_PRECISION.into(),
        strategy: REFERENCE_STRATEGY.into(),
        ort_version: r.environment.runner.ort_version.clone().unwrap_or_default(),
        files: vec![],
    };
    match golden::write(&dir, base, &produced) {
        Ok(m) => {
            println!("wrote {} goldens to {}", m.files.len(), dir.display());
            EXIT_OK
        }
        Err(e) => {
            report(&e);
            EXIT_INFRA
        }
    }
}
