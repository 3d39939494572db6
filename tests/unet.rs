//! A real diffusers `UNet2DConditionModel` (the committed fixture `tests/fixtures/unet`, made by
//! its `make_fixture.py` with diffusers and peft from PyPI): latents, an int64 timestep and text
//! embeddings in, a noise prediction out, no image. `package import` grafts its attention
//! projections, `infer` equals torch's PEFT forward pass for every task and strategy, and a scenario
//! run of the image-less package is refused with the way to run it.

mod common;
use common::*;
use std::path::PathBuf;

/// Measured max-abs differences against torch are ~1e-6 (ONNX Runtime's kernels sum in another
/// order than torch's); the adapters change the output by 0.33-0.54.
const TOLERANCE: f32 = 1e-5;

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/unet")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn diffusers_unet_imports_and_every_strategy_equals_torch() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let pkg = d.path().join("unet");
    let o = run(quadbench()
        .args(["package", "import", "--model"])
        .arg(f.join("unet.onnx"))
        .arg("--adapter")
        .arg(format!("style={}", f.join("adapters/style").display()))
        .arg("--adapter")
        .arg(format!("detail={}", f.join("adapters/detail").display()))
        .arg("--out")
        .arg(&pkg));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    // Every attention projection of the UNet's four transformer blocks (self and cross attention).
    assert!(err.contains("lora slots: 32 (32 MatMul)"), "{err}");
    assert!(err.contains("task detail: peft, 16 layers, rank 2, scale 2.8284"), "{err}");
    assert!(err.contains("no image input"), "{err}");
    let yaml = std::fs::read_to_string(pkg.join("package.yaml")).unwrap();
    assert!(!yaml.contains("\nimage:") && yaml.contains("dtype: i64"), "{yaml}");
    let check = run(quadbench().args(["package", "check"]).arg(&pkg));
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let expected = quadbench::npy::read(&f.join("expected.npz")).unwrap();
    for task in ["style", "detail"] {
        let effect =
            expected[task].data.iter().zip(&expected["base"].data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(effect > 0.1, "{task} changes the output by {effect}");
        for strategy in ["unified", "unified-ort-adapter", "separate-reload"] {
            let out = d.path().join(format!("{task}-{strategy}.npz"));
            let o = run(quadbench()
                .arg("infer")
                .arg(&pkg)
                .args(["--task", task, "--strategy", strategy, "--inputs"])
                .arg(f.join("request.npz"))
                .arg("--out")
                .arg(&out));
            assert_eq!(o.status.code(), Some(0), "{task} {strategy}: {}", stderr(&o));
            let got = quadbench::npy::read(&out).unwrap();
            let diff = got["out_sample"]
                .data
                .iter()
                .zip(&expected[task].data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < TOLERANCE, "{task} {strategy}: max |ours - torch| = {diff}");
        }
    }
    // A scenario feeds images: the image-less package is refused before any device is touched.
    let sc = d.path().join("unet.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1\nname: unet\npackage: {{path: {}}}\ndevices: [{}]\nbackends: [cpu]\nstrategies: [unified]\ninputs: [{}]\nworkload: {{order: round-robin, requests_per_visit: 2, warmup_visits: 1, min_samples: 2, min_switches: 1, min_duration_s: 0, max_duration_s: 10}}\n",
            pkg.display(),
            local_device(d.path()).display(),
            repo().join("golden/inputs/astronaut.png").display()
        ),
    )
    .unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("takes no image") && stderr(&o).contains("quadbench infer"), "{}", stderr(&o));
}
