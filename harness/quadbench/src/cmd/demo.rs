//! `quadbench demo`: the main job. Runs `scenarios/demo.yaml` on this host's CPU, then the NPU
//! comparison (`scenarios/npu.yaml`) where the QNN plugin loads.

use super::exit;
use super::run::run_and_summarise;
use crate::config::checkout;
use std::path::PathBuf;

/// `scenarios/demo.yaml` of the checkout of the current directory or of the executable.
pub fn find_demo_scenario() -> Option<PathBuf> {
    checkout::current().map(|r| r.join("scenarios/demo.yaml")).filter(|p| p.exists())
}

pub fn demo(out: Option<PathBuf>) -> i32 {
    let Some(sc) = find_demo_scenario() else {
        exit::report(&"scenarios/demo.yaml not found; run `quadbench demo` from the quadbench repository checkout");
        return exit::BAD_INPUT;
    };
    let out = out.unwrap_or_else(|| super::run::default_out(&sc, "demo"));
    let code = run_and_summarise(&sc, None, Some(out.clone()), false);
    if code == exit::BAD_INPUT || code == exit::INFRA || code > 128 {
        return code;
    }
    // The NPU comparison, where the QNN plugin loads (x86_64 Linux, glibc >= 2.35).
    let npu = sc.with_file_name("npu.yaml");
    println!(
        "\nNPU comparison (QNN HTP backend; on x86_64 Linux the HTP runs as a simulator, so its latencies say nothing about a phone):"
    );
    match quadbench_runtime::ensure_qnn() {
        Ok(_) if npu.exists() => code.max(run_and_summarise(&npu, None, Some(out.join("npu")), false)),
        Ok(_) => {
            println!("skipped: {} is missing", npu.display());
            code
        }
        Err(e) => {
            println!("skipped: the QNN plugin is not available here: {e}");
            code
        }
    }
}
