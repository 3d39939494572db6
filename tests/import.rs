//! `quadbench package import` and `quadbench infer` on the committed torch fixture
//! (`tests/fixtures/import`, made by its `make_fixture.py`): every task, unified and
//! separate-reload, equals torch's PEFT forward pass; the package checks; a scenario measures it
//! end to end; bad adapters and models exit 2 naming the problem.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Torch's outputs are f32; ours go through ONNX Runtime's kernels in another order. Measured
/// max-abs differences are ~1e-7 (the report lists them); 1e-5 leaves room for other CPUs while
/// staying far below the smallest adapter effect (0.058, `sharpen`).
const TOLERANCE: f32 = 1e-5;

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/import")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Import the three PEFT tasks and the kohya copy of `sharpen` into `out`.
fn import(out: &Path) -> std::process::Output {
    let f = fixture();
    let mut c = quadbench();
    c.args(["package", "import", "--model"]).arg(f.join("model.onnx")).arg("--out").arg(out);
    for (name, rel) in [
        ("sharpen", "adapters/sharpen"),
        ("warm", "adapters/warm"),
        ("cool", "adapters/cool"),
        ("sharpen_kohya", "kohya_sharpen.safetensors"),
    ] {
        c.arg("--adapter").arg(format!("{name}={}", f.join(rel).display()));
    }
    run(&mut c)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn imported_tasks_equal_torch_peft_unified_and_separate() {
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("pkg");
    let o = import(&pkg);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    // Every Linear/Conv target of the three adapters, by op type (the kohya copy adds none).
    assert!(err.contains("lora slots: 9 (4 Conv, 1 Gemm, 4 MatMul)"), "{err}");
    assert!(err.contains("task warm: peft, 5 layers, rank 2-3, scale 2.3094-2.8284"), "rsLoRA scales: {err}");
    assert!(err.contains("task sharpen_kohya: kohya, 4 layers, rank 4, scale 2.0000"), "{err}");
    let check = run(quadbench().args(["package", "check"]).arg(&pkg));
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let expected = quadbench::npy::read(&fixture().join("expected.npz")).unwrap();
    let base = &expected["base"].data;
    for (task, golden) in [("sharpen", "sharpen"), ("warm", "warm"), ("cool", "cool"), ("sharpen_kohya", "sharpen")] {
        let want = &expected[golden].data;
        // The adapter changes the output far beyond the tolerance, so equality is not vacuous.
        assert!(max_abs(want, base) > 0.05, "{task}: torch's adapter barely changes the output");
        for strategy in ["unified", "separate-reload"] {
            let out = d.path().join(format!("{task}-{strategy}.npz"));
            let o = run(quadbench()
                .arg("infer")
                .arg(&pkg)
                .args(["--task", task, "--strategy", strategy, "--inputs"])
                .arg(fixture().join("inputs.npz"))
                .arg("--out")
                .arg(&out)
                .arg("--expect")
                .arg(fixture().join("expected.npz"))
                .args(["--expect-key", golden]));
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let got = quadbench::npy::read(&out).unwrap();
            assert_eq!(got["out"].shape, vec![1, 3, 32, 32]);
            let diff = max_abs(&got["out"].data, want);
            eprintln!("max |infer - torch| {task} {strategy}: {diff:e}");
            assert!(diff < TOLERANCE, "{task} {strategy}: max abs {diff} vs torch's PEFT forward");
            let scores: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!((scores["max_abs_error"].as_f64().unwrap() - diff as f64).abs() < 1e-9, "{scores}");
            assert!(scores["cosine"].as_f64().unwrap() > 0.999_999, "{scores}");
        }
    }
}

#[test]
fn scenario_measures_the_imported_package() {
    // The scenario imports the fixture itself (`package: {import: ...}`, cached by content).
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let device = local_device(d.path());
    let sc = d.path().join("imported.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1\nname: imported\npackage: {{import: {{model: {m}, adapters: {{sharpen: {a}/sharpen, warm: {a}/warm, cool: {a}/cool}}}}}}\ndevices: [{}]\nbackends: [cpu]\nstrategies: [unified, separate-reload]\ninputs: [{}]\nworkload: {{order: round-robin, requests_per_visit: 2, warmup_visits: 1, min_samples: 4, min_switches: 3, min_duration_s: 0, max_duration_s: 30}}\nquality: {{golden_dir: golden, thresholds: {{psnr_db: \">= 40\"}}}}\n",
            device.display(),
            repo().join("golden/inputs/astronaut.png").display(),
            m = f.join("model.onnx").display(),
            a = f.join("adapters").display(),
        ),
    )
    .unwrap();
    let bless = run(quadbench().args(["golden", "bless"]).arg(&sc).arg("--force"));
    assert_eq!(bless.status.code(), Some(0), "{}", stderr(&bless));
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    let pkg = std::path::PathBuf::from(r["package"]["dir"].as_str().unwrap());
    let m = quadbench::package::load(&pkg).unwrap();
    assert_eq!(m.pipeline.lora_slots.len(), 9);
    let size = |rel: &str| m.raw.files.iter().find(|f| f.path == rel).unwrap().bytes;
    let adapters: u64 = m.pipeline.tasks.iter().map(|t| size(&t.adapter)).sum();
    let baselines: u64 = m.pipeline.tasks.iter().map(|t| size(&t.baselines["model"])).sum();
    for run in r["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "ok", "{run}");
        assert_eq!(run["valid"], true, "{}", run["validity_note"]);
        let total = run["storage"]["total_bytes"].as_u64().unwrap();
        let switch = &run["latency_ms"]["switch"];
        assert!(switch["n"].as_u64().unwrap() >= 3 && switch["p50"].as_f64().unwrap() > 0.0, "{switch}");
        match run["strategy"].as_str().unwrap() {
            "unified" => assert_eq!(total, size("model.onnx") + adapters),
            _ => assert_eq!(total, baselines),
        }
        eprintln!(
            "{}: storage {total} bytes, switch p50 {:.3} ms, e2e p50 {:.3} ms",
            run["strategy"], switch["p50"], run["latency_ms"]["e2e"]["p50"]
        );
        let q = serde_json::to_string(&run["quality"]).unwrap();
        assert!(q.contains("psnr_db"), "outputs were not scored against the goldens: {q}");
    }
}

/// Import one adapter into a fresh directory; the output and exit code.
fn import_one(d: &Path, model: &Path, adapter: &Path) -> (Option<i32>, String) {
    let out = d.join(format!("bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = run(quadbench()
        .args(["package", "import", "--model"])
        .arg(model)
        .arg("--adapter")
        .arg(format!("t={}", adapter.display()))
        .arg("--out")
        .arg(&out));
    assert!(!out.join("package.yaml").exists(), "a failed import left a package.yaml");
    (o.status.code(), stderr(&o))
}

#[test]
fn bad_adapters_and_models_exit_2_naming_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let model = f.join("model.onnx");
    let cases: Vec<(PathBuf, PathBuf, Vec<&str>)> = vec![
        (model.clone(), f.join("bad/other_base"), vec!["lora A [4, 24]", "needs A [4, 16]", "another base model"]),
        (model.clone(), f.join("bad/dora"), vec!["DoRA", "use_dora"]),
        (model.clone(), f.join("bad/loha"), vec!["LOHA", "LoHa", "not supported"]),
        (f.join("model_dynamic.onnx"), f.join("adapters/cool"), vec!["dynamic shape on `image`", "[?, 3, ?, ?]"]),
    ];
    for (m, a, parts) in cases {
        let (code, err) = import_one(d.path(), &m, &a);
        assert_eq!(code, Some(2), "{err}");
        for p in parts {
            assert!(err.contains(p), "missing `{p}` in: {err}");
        }
    }
    // Keys that match no layer: listed with the nearest graph layers.
    let bytes = std::fs::read(f.join("adapters/cool/adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().map(|(n, t)| (n.replace("to_q", "to_qz"), t)).collect();
    let unmatched = d.path().join("unmatched.safetensors");
    std::fs::write(&unmatched, safetensors::serialize(renamed, None).unwrap()).unwrap();
    let (code, err) = import_one(d.path(), &model, &unmatched);
    assert_eq!(code, Some(2), "{err}");
    for p in
        ["1 adapter key matches no", "down_blocks.0.attentions.0.to_qz", "nearest: `down_blocks.0.attentions.0.to_q`"]
    {
        assert!(err.contains(p), "missing `{p}` in: {err}");
    }
    // A config that disagrees with its tensors.
    let cfg_dir = d.path().join("disagree");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::copy(f.join("adapters/cool/adapter_model.safetensors"), cfg_dir.join("adapter_model.safetensors"))
        .unwrap();
    let cfg = std::fs::read_to_string(f.join("adapters/cool/adapter_config.json")).unwrap();
    assert!(cfg.contains("\"r\": 3"), "{cfg}");
    std::fs::write(cfg_dir.join("adapter_config.json"), cfg.replace("\"r\": 3", "\"r\": 8")).unwrap();
    let (code, err) = import_one(d.path(), &model, &cfg_dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("disagrees with the tensors") && err.contains("rank 8") && err.contains("rank 3"), "{err}");
    // Weights in external data files (how 2 GB+ exports are saved): a clear refusal.
    let mut external = quadbench_onnx::read_model(&model).unwrap();
    let w = external.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == "conv_in.weight").unwrap();
    w.raw_data.clear();
    w.data_location = 1;
    w.external_data =
        vec![quadbench_onnx::proto::StringStringEntryProto { key: "location".into(), value: "model.onnx.data".into() }];
    let ext = d.path().join("external.onnx");
    std::fs::write(&ext, quadbench_onnx::encode(&external)).unwrap();
    let (code, err) = import_one(d.path(), &ext, &f.join("adapters/cool"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("external data") && err.contains("conv_in.weight"), "{err}");
    // A rank cap below what the adapters need.
    let out = d.path().join("capped");
    let o = run(quadbench()
        .args(["package", "import", "--max-rank", "2", "--model"])
        .arg(&model)
        .arg("--adapter")
        .arg(format!("cool={}", f.join("adapters/cool").display()))
        .arg("--out")
        .arg(&out));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("above --max-rank 2"), "{}", stderr(&o));
}

#[test]
fn a_second_model_input_becomes_a_per_request_tensor() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let pkg = d.path().join("pkg");
    let o = run(quadbench()
        .args(["package", "import", "--model"])
        .arg(f.join("model_cond.onnx"))
        .arg("--adapter")
        .arg(format!("sharpen={}", f.join("adapters/sharpen").display()))
        .arg("--out")
        .arg(&pkg));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let yaml = std::fs::read_to_string(pkg.join("package.yaml")).unwrap();
    assert!(yaml.contains("name: cond") && yaml.contains("source: tensor"), "{yaml}");
    let expected = quadbench::npy::read(&f.join("expected_cond.npz")).unwrap();
    assert!(max_abs(&expected["sharpen"].data, &expected["base"].data) > 0.05);
    for strategy in ["unified", "separate-reload"] {
        let out = d.path().join(format!("{strategy}.npz"));
        let o = run(quadbench()
            .arg("infer")
            .arg(&pkg)
            .args(["--task", "sharpen", "--strategy", strategy, "--inputs"])
            .arg(f.join("inputs_cond.npz"))
            .arg("--out")
            .arg(&out));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let diff = max_abs(&quadbench::npy::read(&out).unwrap()["out"].data, &expected["sharpen"].data);
        eprintln!("max |infer - torch| cond sharpen {strategy}: {diff:e}");
        assert!(diff < TOLERANCE, "{strategy}: {diff}");
    }
    // Without the tensor the request is refused before anything runs, naming it.
    let o = run(quadbench()
        .arg("infer")
        .arg(&pkg)
        .args(["--task", "sharpen", "--inputs"])
        .arg(f.join("inputs.npz"))
        .args(["--out", "-"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no array `cond`"), "{}", stderr(&o));
    // The same input as seeded noise (`source: noise:<seed>:<std>`): the image alone suffices,
    // and the noise is the same on every request.
    std::fs::write(pkg.join("package.yaml"), yaml.replace("source: tensor", "source: noise:3:0.5")).unwrap();
    let noisy: Vec<Vec<f32>> = (0..2)
        .map(|i| {
            let out = d.path().join(format!("noise{i}.npz"));
            let o = run(quadbench()
                .arg("infer")
                .arg(&pkg)
                .args(["--task", "sharpen", "--inputs"])
                .arg(f.join("inputs.npz"))
                .arg("--out")
                .arg(&out));
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            quadbench::npy::read(&out).unwrap()["out"].data.clone()
        })
        .collect();
    assert_eq!(noisy[0], noisy[1]);
    assert!(max_abs(&noisy[0], &expected["sharpen"].data) > 1e-3, "the noise input had no effect");
}

/// On the QNN HTP backend (simulated here) the unified strategy of a package with convolution
/// slots is reported unsupported with the reason, not run into a failure.
#[test]
fn conv_slots_on_htp_are_unsupported_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let sc = d.path().join("htp.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1\nname: htp\npackage: {{import: {{model: {m}, adapters: {{cool: {a}}}}}}}\ndevices: [{dev}]\nbackends: [qnn-htp]\nstrategies: [unified]\ninputs: [{img}]\nworkload: {{min_samples: 1, min_switches: 0, min_duration_s: 0, max_duration_s: 10}}\nthrottle: {{enabled: false}}\n",
            m = f.join("model.onnx").display(),
            a = f.join("adapters/cool").display(),
            dev = local_device(d.path()).display(),
            img = repo().join("golden/inputs/astronaut.png").display()
        ),
    )
    .unwrap();
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    let r = results(&out);
    let run0 = &r["runs"][0];
    assert_eq!(run0["status"], "unsupported", "{run0}\n{}", stderr(&o));
    let why = run0.to_string();
    assert!(why.contains("convolution LoRA slot") && why.contains("QNN HTP"), "{why}");
}

/// `--target REGEX`: only layers whose module path matches get slots; the adapters' other layers
/// are left out of the unified graph and the merged baselines alike (the two still agree), and
/// a pattern that leaves a task nothing, or is no regular expression, exits 2 naming it.
#[test]
fn target_keeps_only_matching_layers() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let target = |out: &Path, pattern: &str| {
        run(quadbench()
            .args(["package", "import", "--target", pattern, "--model"])
            .arg(f.join("model.onnx"))
            .arg("--adapter")
            .arg(format!("warm={}", f.join("adapters/warm").display()))
            .arg("--out")
            .arg(out))
    };
    let pkg = d.path().join("pkg");
    let o = target(&pkg, r"attentions\.0\.to_");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("lora slots: 2 (2 MatMul)") && err.contains("task warm: peft, 2 layers"), "{err}");
    let outs: Vec<Vec<f32>> = ["unified", "separate-reload"]
        .iter()
        .map(|s| {
            let out = d.path().join(format!("{s}.npz"));
            let o = run(quadbench()
                .arg("infer")
                .arg(&pkg)
                .args(["--task", "warm", "--strategy", s, "--inputs"])
                .arg(f.join("inputs.npz"))
                .arg("--out")
                .arg(&out));
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            quadbench::npy::read(&out).unwrap()["out"].data.clone()
        })
        .collect();
    assert!(max_abs(&outs[0], &outs[1]) < TOLERANCE);
    let expected = quadbench::npy::read(&fixture().join("expected.npz")).unwrap();
    // Without its conv layers the task is not torch's full `warm` (0.39 apart), and its attention
    // layers still act (9.1e-4 from the base model, 90x the tolerance).
    assert!(max_abs(&outs[0], &expected["warm"].data) > 0.05);
    assert!(max_abs(&outs[0], &expected["base"].data) > 10.0 * TOLERANCE);
    for (pattern, want) in
        [("nothing", "no layer it adapts matches --target `nothing`"), ("(", "not a regular expression")]
    {
        let o = target(&d.path().join(format!("bad-{}", pattern.len())), pattern);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
}
