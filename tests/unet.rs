//! A real diffusers `UNet2DConditionModel` (the committed fixture `tests/fixtures/unet`, made by
//! its `make_fixture.py` with diffusers and peft from PyPI): latents, an int64 timestep and text
//! embeddings in, a noise prediction out, no image. `package import` grafts its attention
//! projections, `infer` equals torch's PEFT forward pass for every task and strategy, and a
//! scenario without images runs it on tensor requests, scored against golden tensors.

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
}

/// The shipped scenario with this test's device, golden directory and a short workload.
fn scenario(dir: &std::path::Path, extra: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(repo().join("scenarios/unet-fixture.yaml")).unwrap();
    let text = shipped
        .replace("../tests/fixtures/unet", &fixture().display().to_string())
        .replace("../devices/local.yaml", &local_device(dir).display().to_string())
        .replace("quality:", &format!("{extra}quality:\n  golden_dir: {}", dir.join("golden").display()))
        .replace("min_samples: 40", "min_samples: 4")
        .replace("min_switches: 20", "min_switches: 3")
        .replace("min_duration_s: 2", "min_duration_s: 0");
    let p = dir.join("unet.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn scenario_without_images_runs_the_unet_on_tensor_requests_scored_against_golden_tensors() {
    ensure_runner();
    let d = tempfile::tempdir().unwrap();
    let sc = scenario(d.path(), "");
    let o = run(quadbench().args(["golden", "bless"]).arg(&sc));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(said.contains("wrote 0 goldens and 2 golden tensors"), "{said}");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", stderr(&o));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert_eq!(run["status"], "ok", "{run}");
        assert_eq!(run["valid"], true, "{}", run["validity_note"]);
        // No image: no PNG, one tensor per task and request, each within the threshold.
        assert!(run["outputs"].as_array().is_none_or(|o| o.is_empty()), "{run}");
        assert_eq!(run["tensor_outputs"].as_array().map(|t| t.len()), Some(2), "{run}");
        for task in ["style", "detail"] {
            let q = &run["quality"][task];
            assert_eq!(q["pass"], true, "{}: {q}", run["strategy"]);
            let e = q["tensors"]["model.out_sample"]["inputs"]["request"]["max_abs_error"].as_f64().unwrap();
            assert!(e < 1e-5, "{} {task}: {e}", run["strategy"]);
        }
    }
    // A package without an image given images, and one with an image given none, exit 2.
    let with_images = scenario(d.path(), "");
    let text = std::fs::read_to_string(&with_images).unwrap().replace(
        "tensor_inputs:",
        &format!("inputs: [{}]\ntensor_inputs:", repo().join("golden/inputs/astronaut.png").display()),
    );
    std::fs::write(&with_images, text).unwrap();
    let o = run(quadbench().arg("run").arg(&with_images).arg("--out").arg(d.path().join("o2")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("takes no image") && stderr(&o).contains("drop `inputs`"), "{}", stderr(&o));
}

/// Re-sign a bundle's statement over its current files with `key` (as an insider with the key
/// could): only re-deriving the verdicts from the evidence can catch an edit then.
fn resign(b: &std::path::Path, key: &std::path::Path) {
    use quadbench::qualify::{bundle, sign};
    let env: sign::Envelope =
        serde_json::from_str(&std::fs::read_to_string(b.join(bundle::ENVELOPE)).unwrap()).unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    st["subject"] = serde_json::to_value(bundle::files(b).unwrap().0).unwrap();
    let env = sign::envelope(&sign::read_signing_key(key).unwrap(), &serde_json::to_vec(&st).unwrap());
    std::fs::write(b.join(bundle::ENVELOPE), serde_json::to_string(&env).unwrap()).unwrap();
}

#[test]
fn qualification_test01_compares_the_tensors_kept_while_timed() {
    ensure_runner();
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let sc = d.path().join("unet.scenario.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1\nname: unet-q\npackage: {{import: {{model: {m}/unet.onnx, name: diffusers-unet, adapters: {{detail: {m}/adapters/detail, style: {m}/adapters/style}}}}}}\ndevices: [{dev}]\nbackends: [cpu]\nstrategies: [unified, separate-reload]\ntensor_inputs: [{m}/request.npz]\nworkload: {{order: round-robin, seed: 1, requests_per_visit: 2, warmup_visits: 1, min_samples: 4, min_switches: 3, min_duration_s: 0, max_duration_s: 30}}\n",
            m = f.display(),
            dev = local_device(d.path()).display()
        ),
    )
    .unwrap();
    let profile = d.path().join("unet.yaml");
    std::fs::write(
        &profile,
        "schema: quadbench.qualification/1\nname: unet-q\nscenario: unet.scenario.yaml\nrequire_clean_build: false\ncriteria:\n  - {id: valid-runs, kind: run-validity}\n  - {id: test01-timed-outputs, kind: compliance-test01, threshold: 0}\n",
    )
    .unwrap();
    let key = d.path().join("key");
    assert!(run(quadbench().args(["keygen", "--out"]).arg(&key)).status.success());
    let b = d.path().join("bundle");
    let o = run(quadbench().arg("qualify").arg(&profile).arg("--signing-key").arg(&key).arg("--out").arg(&b));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = std::fs::read_to_string(b.join("report.md")).unwrap();
    assert!(
        report
            .contains("2 tensor outputs kept while timed; largest absolute difference from the accuracy pass 0.000e0"),
        "{report}"
    );
    // A timed tensor that differs from the accuracy pass, re-signed with the right key: verify
    // re-derives TEST01 from the tensors and fails it.
    let timed_dir = b.join("results/test01/outputs/local-cpu-fp32-unified/timed");
    let timed = std::fs::read_dir(&timed_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "npy"))
        .unwrap();
    let mut a = quadbench_protocol::npy::parse(&std::fs::read(&timed).unwrap()).unwrap();
    a.data[0] ^= 0x40; // one element of the f32 output changes
    std::fs::write(&timed, a.to_bytes()).unwrap();
    resign(&b, &key);
    let o = run(quadbench().arg("verify").arg(&b).arg("--public-key").arg(format!("{}.pub", key.display())));
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL criterion test01-timed-outputs: signed verdict pass, re-derived from the evidence fail"),
        "{out}"
    );
}
