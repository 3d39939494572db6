//! `quadbench-runner PLAN.json [RESULT.json]`: run a plan, write the result (default
//! `result.json` beside the plan). Exit codes: 0 ok, 1 the run failed (result written with its
//! error), 2 the plan could not be read.

use quadbench_protocol::{Plan, RunStatus};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!(
            "usage: quadbench-runner PLAN.json [RESULT.json]\nRuns a quadbench plan (protocol {}) and writes its result.",
            quadbench_protocol::PLAN_SCHEMA
        );
        std::process::exit(if args.is_empty() { 2 } else { 0 });
    }
    if args[0] == "--version" {
        println!("quadbench-runner {} ({})", env!("CARGO_PKG_VERSION"), quadbench_protocol::PLAN_SCHEMA);
        return;
    }
    let plan_path = PathBuf::from(&args[0]);
    let dir = plan_path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let result_path = args.get(1).map(PathBuf::from).unwrap_or_else(|| dir.join("result.json"));
    let plan: Plan = match std::fs::read_to_string(&plan_path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot read plan {}: {e}", plan_path.display());
            std::process::exit(2);
        }
    };
    let result = quadbench_runner::execute(&plan, &dir);
    let tmp = result_path.with_extension("json.tmp");
    let json = serde_json::to_string_pretty(&result).expect("result serialises");
    if let Err(e) = std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, &result_path)) {
        eprintln!("error: cannot write result {}: {e}", result_path.display());
        std::process::exit(1);
    }
    if let RunStatus::Failed { error } = &result.status {
        eprintln!("error: run failed: {error}");
        std::process::exit(1);
    }
}
