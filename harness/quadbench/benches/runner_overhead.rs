//! Benchmark: the runner's measurement overhead. Compares the steady-state latency of the
//! denoiser stage as the runner reports it (a real `quadbench run`, unified strategy, default
//! reference package) with a bare loop of `session.run` on the same graph and inputs in one
//! process. Prints both medians and their ratio.
//!
//!     cargo bench -p quadbench --bench runner_overhead
//!
//! (`cargo bench` builds release binaries; the runner must be built too:
//! `cargo build --release -p quadbench-runner` first.)

use quadbench::config::Scenario;
use quadbench::events::Quiet;
use quadbench::package::reference::ReferenceParams;
use quadbench::package::source::PackageSource;
use quadbench::package::source::reference::Reference;
use quadbench::scheduler::{self as run, RunOptions};
use quadbench::stats::percentile;
use quadbench_protocol::LoraPart;
use std::time::Instant;

const SAMPLES: u32 = 40;

fn main() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("golden/inputs").is_dir())
        .unwrap()
        .to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let params = ReferenceParams::default();
    let cache = quadbench_runtime::cache_dir().join("packages");
    let pkg_dir = Reference(params.clone()).resolve(&cache, &mut Quiet).unwrap();
    let m = quadbench::package::check(&pkg_dir).unwrap();

    let lib = quadbench_runtime::ensure_onnxruntime().unwrap();
    let env = ort::init_from(&lib.library).unwrap().with_name("bare").build().unwrap();
    // Bare loops before and after the runner run, so drifting machine load shows up as a
    // difference between the two rather than as runner overhead.
    let bare_before = bare_loop(&env, &pkg_dir, &m);

    // 1. Through the runner: SAMPLES steady requests (a task switch opens every visit).
    let device = tmp.path().join("local.yaml");
    std::fs::write(&device, format!("name: local\ntransport: local\nwork_dir: {}\n", tmp.path().join("dev").display()))
        .unwrap();
    let sc_path = tmp.path().join("overhead.yaml");
    std::fs::write(&sc_path, format!(
        "schema: quadbench.scenario/1\nname: overhead\npackage: {{path: {}}}\ndevices: [{}]\nbackends: [cpu]\nstrategies: [unified]\ninputs: [{}]\nworkload: {{requests_per_visit: 5, warmup_visits: 1, min_samples: {SAMPLES}, min_switches: 0, min_duration_s: 0, max_duration_s: 120}}\n",
        pkg_dir.display(), device.display(), repo.join("golden/inputs/astronaut.png").display()
    )).unwrap();
    let sc = Scenario::load(&sc_path).unwrap();
    let opts = RunOptions { out: tmp.path().join("out"), device_override: None, package_cache: cache, resume: false };
    let results = run::run_scenario(&sc, &opts, &mut Quiet)
        .expect("runner run (build it: cargo build --release -p quadbench-runner)");
    let r = &results.runs[0];
    let runner_p50 = r.latency_ms["denoiser"].p50;
    let runner_n = r.latency_ms["denoiser"].n;

    let bare_after = bare_loop(&env, &pkg_dir, &m);
    println!("runner overhead benchmark (reference package {}, denoiser stage, CPU EP)", params.cache_key());
    println!("  denoiser p50 as reported by the runner:       {runner_p50:8.2} ms  (n = {runner_n})");
    println!("  denoiser p50, bare session.run loop, before:  {bare_before:8.2} ms  (n = {SAMPLES})");
    println!("  denoiser p50, bare session.run loop, after:   {bare_after:8.2} ms  (n = {SAMPLES})");
    let bare = (bare_before + bare_after) / 2.0;
    println!("  ratio runner / bare (mean of before, after):  {:.3}", runner_p50 / bare);
}

/// Median latency of the denoiser graph in a bare loop: same graph, inputs of the same
/// shapes, the first task's adapter bound.
fn bare_loop(env: &ort::environment::Environment, pkg_dir: &std::path::Path, m: &quadbench::package::Manifest) -> f64 {
    let stage = m.pipeline.stages.iter().find(|s| s.name == "denoiser").unwrap();
    let mut session =
        ort::session::Session::builder(env).unwrap().commit_from_file(pkg_dir.join(&stage.graph)).unwrap();
    let adapter = quadbench_runner::pipeline::load_adapter(
        &pkg_dir.join(&m.pipeline.tasks[0].adapter),
        &m.pipeline.tasks[0].name,
        &m.pipeline.lora_slots,
    )
    .unwrap();
    let mut owned: Vec<(String, ort::value::Tensor<f32>)> = Vec::new();
    for i in &stage.inputs {
        if let quadbench_protocol::Source::Lora { .. } = i.source {
            continue;
        }
        let n: i64 = i.tensor.shape.iter().product();
        let data: Vec<f32> = (0..n).map(|k| ((k * 7919) % 1000) as f32 / 1000.0).collect();
        owned.push((i.tensor.name.clone(), ort::value::Tensor::from_array((i.tensor.shape.clone(), data)).unwrap()));
    }
    let mut bare = Vec::new();
    for k in 0..(SAMPLES + 5) {
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> =
            owned.iter().map(|(n, t)| (n.clone(), t.into())).collect();
        for slot in &m.pipeline.lora_slots {
            inputs.push((slot.input_a.clone(), adapter.tensor(&slot.name, LoraPart::A).unwrap().into()));
            inputs.push((slot.input_b.clone(), adapter.tensor(&slot.name, LoraPart::B).unwrap().into()));
        }
        let t0 = Instant::now();
        let out = session.run(inputs).unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        drop(out);
        if k >= 5 {
            bare.push(ms);
        }
    }
    bare.sort_by(|a, b| a.total_cmp(b));
    percentile(&bare, 50.0)
}
