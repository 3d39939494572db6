//! Unified (LoRA as graph inputs) equals the merged per-task baseline to 1e-4 for every task,
//! and both equal the task's analytic image edit; the ten default edits differ visibly on a real
//! photograph. Runs the real runner pipeline in process with the real ONNX Runtime.

mod common;

use common::cpu_plan as plan;
use quadbench::package::{self, filters, reference::ReferenceParams};
use quadbench_protocol::*;
use quadbench_runner::pipeline::{Executor, RequestTiming, load_input};
use std::path::Path;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|d| d.join("golden/inputs").is_dir()).unwrap().to_path_buf()
}

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (1.0 / mse).log10()
}

#[test]
fn unified_equals_merged_and_the_analytic_edit() {
    let lib = quadbench_runtime::ensure_onnxruntime().expect("ONNX Runtime (quadbench runtime fetch)");
    let env = ort::init_from(&lib.library).unwrap().with_name("equivalence").build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = 64;
    let m = package::reference::generate(
        dir.path(),
        &ReferenceParams { tasks: 10, width: 128, resolution: res, steps: 3, seed: 5, ..Default::default() },
    )
    .unwrap();
    let input_file = dir.path().join("astronaut.f32");
    quadbench::package::input::prepare_input(&repo().join("golden/inputs/astronaut.png"), res as u32, &input_file)
        .unwrap();
    let image = load_input(&input_file, &[1, 3, res as i64, res as i64]).unwrap();
    let raw: Vec<f32> = std::fs::read(&input_file)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();

    let (pu, ps) = (plan(&m, Strategy::Unified), plan(&m, Strategy::SeparateResident));
    let mut unified = Executor::new(&pu, dir.path(), &env).unwrap();
    let mut merged = Executor::new(&ps, dir.path(), &env).unwrap();
    unified.init(&m.pipeline.tasks[0].name).unwrap();
    merged.init(&m.pipeline.tasks[0].name).unwrap();
    let edits = filters::edits(10, 5);
    let mut worst = 0f32;
    for (t, edit) in m.pipeline.tasks.iter().zip(&edits) {
        unified.switch_to(&t.name).unwrap();
        let a = unified.run(&t.name, &image, &mut RequestTiming::default()).unwrap();
        let b = merged.run(&t.name, &image, &mut RequestTiming::default()).unwrap();
        let (a, b) =
            (a.try_extract_tensor::<f32>().unwrap().1.to_vec(), b.try_extract_tensor::<f32>().unwrap().1.to_vec());
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        worst = worst.max(diff);
        assert!(diff <= 1e-4, "task {}: unified vs merged max abs diff {diff}", t.name);
        let expect = edit.apply_reference(&raw, res, res);
        let p = psnr(&a, &expect);
        eprintln!("{:<14} unified-merged {diff:.2e}  vs analytic edit {p:.1} dB", t.name);
        assert!(p > 35.0, "task {}: network output is {p:.1} dB from its analytic edit", t.name);
    }
    eprintln!("largest unified vs merged difference: {worst:.3e}");
}

#[test]
fn default_edits_differ_visibly_on_photographs() {
    for photo in ["astronaut", "coffee", "chelsea", "rocket"] {
        edits_differ_on(photo);
    }
}

fn edits_differ_on(photo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.f32");
    let res = ReferenceParams::default().resolution;
    quadbench::package::input::prepare_input(&repo().join(format!("golden/inputs/{photo}.png")), res as u32, &f)
        .unwrap();
    let raw: Vec<f32> =
        std::fs::read(&f).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let outs: Vec<(String, Vec<f32>)> = filters::edits(10, ReferenceParams::default().seed)
        .iter()
        .map(|e| (e.name.clone(), e.apply_reference(&raw, res, res)))
        .collect();
    let mut highest = (0.0, String::new());
    for i in 0..outs.len() {
        let own = psnr(&outs[i].1, &raw);
        assert!(own < 35.0, "{photo}: {} barely changes the image ({own:.1} dB)", outs[i].0);
        for j in i + 1..outs.len() {
            let p = psnr(&outs[i].1, &outs[j].1);
            if p > highest.0 {
                highest = (p, format!("{}/{}", outs[i].0, outs[j].0));
            }
            assert!(p < 30.0, "{photo}: {} and {} differ by only {p:.1} dB PSNR", outs[i].0, outs[j].0);
        }
    }
    eprintln!("{photo}: closest pair of tasks: {} at {:.1} dB", highest.1, highest.0);
}
