//! `quadbench ablation SCENARIO`: the paper's mixed-precision ablation. Runs the scenario once per
//! W8A8:W8A16 layer ratio (its `package.quantize` is the base setting) and writes a table of
//! quality against the FP32 goldens and latency per ratio: `ablation.md` and `ablation.csv`.

use super::exit::{self, BAD_INPUT as EXIT_BAD_INPUT, INFRA as EXIT_INFRA, OK as EXIT_OK, report};
use super::run::{package_cache, run_reported};
use crate::config::{Scenario, checkout};
use crate::package::qprofile::Quantize;
use crate::quality::mean;
use crate::results::{RunState, Scores};
use crate::scheduler::RunOptions;
use quadbench_protocol::sample_key;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct AblationArgs {
    /// Scenario with `package.quantize` (e.g. scenarios/precision-ablation.yaml).
    scenario: PathBuf,
    /// Fractions of MatMul layers with 8-bit activations.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    a8_ratios: Vec<f64>,
    /// Output directory (default: reports/<scenario name>-ablation-<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Row {
    ratio: f64,
    strategy: String,
    psnr_db: Option<f64>,
    ssim: Option<f64>,
    init_ms: f64,
    e2e_ms: Option<f64>,
    lora_mb: f64,
    status: String,
}

pub fn ablation(a: AblationArgs) -> i32 {
    let (scenario, ratios) = (a.scenario.as_path(), a.a8_ratios.as_slice());
    let base = match Scenario::load(scenario) {
        Ok(s) => s,
        Err(e) => return exit::fail(&e),
    };
    let Some(q0) = base.package.quantize.clone() else {
        report(&format!(
            "{}: the ablation sweeps `package.quantize.a8_ratio`, so the scenario needs `package: {{quantize: {{...}}}}`",
            scenario.display()
        ));
        return EXIT_BAD_INPUT;
    };
    if ratios.is_empty() || ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
        report(&"--a8-ratios takes fractions within [0, 1], e.g. 0,0.25,0.5,0.75,1");
        return EXIT_BAD_INPUT;
    }
    let root = checkout::root_above(scenario.parent().unwrap_or(Path::new("."))).unwrap_or_else(|| PathBuf::from("."));
    let out = a
        .out
        .unwrap_or_else(|| root.join("reports").join(format!("{}-ablation-{}", base.name, crate::time::utc_stamp())));
    let mut rows = Vec::new();
    for &ratio in ratios {
        let mut sc = base.clone();
        sc.package.quantize = Some(Quantize { a8_ratio: ratio, ..q0.clone() });
        // Run ids are built from the precision label, so it must be a safe file-name component.
        sc.precision = format!("{}-a8r{ratio:.2}", q0.precision.as_str());
        eprintln!("W8A8:W8A16 = {:.0}:{:.0}", ratio * 100.0, (1.0 - ratio) * 100.0);
        let opts = RunOptions {
            out: out.join(format!("a8r-{ratio:.2}")),
            device_override: None,
            package_cache: package_cache(),
            resume: false,
        };
        let results = match run_reported(&sc, &opts) {
            Ok(r) => r,
            Err(e) => return exit::Classify::exit_code(&e),
        };
        for r in &results.runs {
            let q = |f: fn(&Scores) -> Option<f64>| {
                mean(r.quality.values().map(|t| if t.mean.identical { None } else { f(&t.mean) }))
            };
            rows.push(Row {
                ratio,
                strategy: r.strategy.as_str().into(),
                psnr_db: q(|s| s.psnr_db),
                ssim: q(|s| s.ssim),
                init_ms: r.init_ms,
                e2e_ms: r.latency_ms.get(sample_key::E2E).map(|s| s.p50),
                lora_mb: r.storage.adapter_bytes as f64 / 1e6,
                status: match r.status {
                    RunState::Ok => "ok".into(),
                    RunState::Failed => format!("failed: {}", r.error.clone().unwrap_or_default()),
                    RunState::Unsupported => "unsupported".into(),
                },
            });
        }
    }
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
    let mut md = format!(
        "# Mixed-precision ablation: {}\n\nQuality is the mean over tasks and inputs against the FP32 goldens; latency is the median end-to-end request; init is session creation (compile excluded).\n\n| W8A8:W8A16 | strategy | PSNR dB | SSIM | init ms | e2e ms | LoRA ROM MB | status |\n|---|---|---:|---:|---:|---:|---:|---|\n",
        base.name
    );
    let mut csv = String::from("a8_ratio,strategy,psnr_db,ssim,init_ms,e2e_ms,lora_rom_mb,status\n");
    for r in &rows {
        let label = format!("{:.0}:{:.0}", r.ratio * 100.0, (1.0 - r.ratio) * 100.0);
        md.push_str(&format!(
            "| {label} | {} | {} | {} | {:.0} | {} | {:.2} | {} |\n",
            r.strategy,
            f(r.psnr_db, 2),
            f(r.ssim, 4),
            r.init_ms,
            f(r.e2e_ms, 1),
            r.lora_mb,
            r.status
        ));
        csv.push_str(&format!(
            "{},{},{},{},{:.3},{},{:.4},\"{}\"\n",
            r.ratio,
            r.strategy,
            f(r.psnr_db, 4),
            f(r.ssim, 6),
            r.init_ms,
            f(r.e2e_ms, 3),
            r.lora_mb,
            r.status.replace('"', "'")
        ));
    }
    if let Err(e) = std::fs::create_dir_all(&out)
        .and_then(|_| std::fs::write(out.join("ablation.md"), &md))
        .and_then(|_| std::fs::write(out.join("ablation.csv"), &csv))
    {
        report(&format!("cannot write the ablation table to {}: {e}", out.display()));
        return EXIT_INFRA;
    }
    print!("{md}");
    println!("\ntable: {}\n       {}", out.join("ablation.md").display(), out.join("ablation.csv").display());
    EXIT_OK
}
