//! Scenario runs feeding per-request tensor inputs (`tensor_inputs: [FILE.npz, ...]`) to a
//! package's `source: tensor` stage inputs: the fixture's two-input model
//! (`tests/fixtures/import/model_cond.onnx`, imported by the scenario) runs end to end with each
//! image's own tensors (its outputs equal `quadbench infer` on the same image and tensor), and a
//! missing file, array or shape exits 2 naming the scenario line.

mod common;
use common::*;
use quadbench::npy::{self, Array};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/import")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The fixture's `cond` tensor, and a second one with other values (so the two images' requests
/// differ in what they are fed, not only in the image).
fn cond_files(dir: &Path) -> [PathBuf; 2] {
    let inputs = npy::read(&fixture().join("inputs_cond.npz")).unwrap();
    let cond = inputs["cond"].clone();
    let other = Array { shape: cond.shape.clone(), data: cond.data.iter().map(|v| 0.5 - 2.0 * v).collect() };
    let files = [dir.join("cond_a.npz"), dir.join("cond_b.npz")];
    for (f, a) in files.iter().zip([cond, other]) {
        npy::write(f, &BTreeMap::from([("cond".to_string(), a)])).unwrap();
    }
    files
}

/// A scenario importing `model_cond.onnx` with two tasks, images astronaut and coffee, and `extra`
/// (its `tensor_inputs` line) appended.
fn scenario(dir: &Path, extra: &str) -> PathBuf {
    let f = fixture();
    let sc = dir.join("cond.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1\nname: cond\npackage: {{import: {{model: {m}, adapters: {{sharpen: {a}/sharpen, warm: {a}/warm}}}}}}\ndevices: [{dev}]\nbackends: [cpu]\nstrategies: [unified, separate-reload]\ninputs: [{img}/astronaut.png, {img}/coffee.png]\nworkload: {{order: round-robin, requests_per_visit: 2, warmup_visits: 1, min_samples: 4, min_switches: 3, min_duration_s: 0, max_duration_s: 30}}\nthrottle: {{enabled: false}}\n{extra}",
            m = f.join("model_cond.onnx").display(),
            a = f.join("adapters").display(),
            dev = local_device(dir).display(),
            img = repo().join("golden/inputs").display(),
        ),
    )
    .unwrap();
    sc
}

fn png_rgb(path: &Path) -> Vec<u8> {
    image::open(path).unwrap().to_rgb8().into_raw()
}

/// The run's output for (task, image) equals `quadbench infer` on the image as staged and that
/// image's tensor file, to the PNG's 8-bit rounding (one level).
fn assert_output_equals_infer(out: &Path, run: &serde_json::Value, pkg: &Path, image: &str, cond: &Path) {
    let staged = std::fs::read(out.join(format!("inputs/{image}.f32"))).unwrap();
    let data: Vec<f32> = staged.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let side = ((data.len() / 3) as f64).sqrt() as usize;
    // The fixture's request file names the image input; the run's image replaces its array.
    let image_input = npy::read(&fixture().join("inputs_cond.npz")).unwrap().into_keys().find(|k| k != "cond").unwrap();
    let mut arrays = npy::read(cond).unwrap();
    arrays.insert(image_input, Array { shape: vec![1, 3, side, side], data });
    let tmp = tempfile::tempdir().unwrap();
    let req = tmp.path().join("req.npz");
    npy::write(&req, &arrays).unwrap();
    let strategy = run["strategy"].as_str().unwrap();
    for task in ["sharpen", "warm"] {
        let res = tmp.path().join(format!("{task}.npz"));
        let o = run_cmd(pkg, task, strategy, &req, &res);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let got = npy::read(&res).unwrap()["out"].clone();
        let (c, hw) = (got.shape[1], got.shape[2] * got.shape[3]);
        let o = run["outputs"].as_array().unwrap().iter().find(|o| o["task"] == task && o["input"] == image).unwrap();
        let png = png_rgb(&out.join(o["path"].as_str().unwrap()));
        let mut worst = 0i32;
        for (p, px) in png.chunks_exact(3).enumerate() {
            for (k, &v) in px.iter().enumerate() {
                let ch = if c == 1 { 0 } else { k };
                let want = (got.data[ch * hw + p].clamp(0.0, 1.0) * 255.0 + 0.5) as i32;
                worst = worst.max((want - v as i32).abs());
            }
        }
        assert!(worst <= 1, "{strategy} {task} {image}: run output differs from infer by {worst} levels");
    }
}

fn run_cmd(pkg: &Path, task: &str, strategy: &str, req: &Path, res: &Path) -> std::process::Output {
    run(quadbench()
        .arg("infer")
        .arg(pkg)
        .args(["--task", task, "--strategy", strategy, "--inputs"])
        .arg(req)
        .arg("--out")
        .arg(res))
}

#[test]
fn scenario_feeds_each_image_its_own_tensor_inputs() {
    let d = tempfile::tempdir().unwrap();
    let [a, b] = cond_files(d.path());
    let sc = scenario(d.path(), "tensor_inputs: [cond_a.npz, cond_b.npz]\n");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    let pkg = PathBuf::from(r["package"]["dir"].as_str().unwrap());
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["status"], "ok", "{run}");
        assert_eq!(run["valid"], true, "{}", run["validity_note"]);
        eprintln!(
            "{}: switch p50 {:.3} ms, e2e p50 {:.3} ms",
            run["strategy"], run["latency_ms"]["switch"]["p50"], run["latency_ms"]["e2e"]["p50"]
        );
        let id = run["id"].as_str().unwrap();
        let plan = std::fs::read_to_string(out.join(format!("runs/{id}/plan.json"))).unwrap();
        assert!(plan.contains("\"tensors\"") && plan.contains("astronaut.t0.npy"), "{plan}");
        assert_output_equals_infer(&out, run, &pkg, "astronaut", &a);
        assert_output_equals_infer(&out, run, &pkg, "coffee", &b);
    }
    // The tensor reaches the outputs: the other file gives the same image another output.
    let png = |image: &str| {
        let o = runs[0]["outputs"].as_array().unwrap().iter().find(|o| o["task"] == "sharpen" && o["input"] == image);
        png_rgb(&out.join(o.unwrap()["path"].as_str().unwrap()))
    };
    let first = png("astronaut");
    std::fs::write(&sc, std::fs::read_to_string(&sc).unwrap().replace("[cond_a.npz, cond_b.npz]", "[cond_b.npz]"))
        .unwrap();
    let out2 = d.path().join("out2");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out2));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r2 = results(&out2);
    let o2 = r2["runs"][0]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["task"] == "sharpen" && o["input"] == "astronaut");
    assert_ne!(first, png_rgb(&out2.join(o2.unwrap()["path"].as_str().unwrap())), "the tensor input had no effect");
}

#[test]
fn bad_tensor_inputs_exit_2_naming_the_line() {
    let d = tempfile::tempdir().unwrap();
    cond_files(d.path());
    let inputs = npy::read(&fixture().join("inputs_cond.npz")).unwrap();
    let cond = inputs["cond"].clone();
    npy::write(&d.path().join("renamed.npz"), &BTreeMap::from([("cnd".to_string(), cond.clone())])).unwrap();
    let short = Array { shape: vec![cond.data.len() - 1], data: cond.data[1..].to_vec() };
    npy::write(&d.path().join("short.npz"), &BTreeMap::from([("cond".to_string(), short)])).unwrap();
    let mut nan = cond.clone();
    nan.data[0] = f32::NAN;
    npy::write(&d.path().join("nan.npz"), &BTreeMap::from([("cond".to_string(), nan)])).unwrap();
    let cases = [
        ("tensor_inputs: [missing.npz]\n", "tensor input file `missing.npz` not found"),
        ("tensor_inputs: [cond_a.npz, cond_b.npz, cond_a.npz]\n", "3 tensor input files listed for 2 input images"),
        ("tensor_inputs: [renamed.npz]\n", "no array `cond`"),
        ("tensor_inputs: [short.npz]\n", "the package needs"),
        ("tensor_inputs: [nan.npz]\n", "NaN or infinite"),
        ("", "the scenario feeds none"),
    ];
    for (extra, want) in cases {
        let sc = scenario(d.path(), extra);
        let out = d.path().join("out");
        let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra}: {e}");
        assert!(e.contains(want), "{extra}: {e}");
        let line = if extra.is_empty() { ":7:" } else { ":10:" };
        assert!(e.contains(&format!("cond.yaml{line}")), "{extra}: no file:line in {e}");
        assert!(!out.exists(), "{extra}: a refused scenario created its output directory");
    }
}
