//! Strategy `unified-ort-adapter`: the `.onnx_adapter` files the host writes are read by ONNX
//! Runtime itself (the runner activates them through the run options) and by the Python
//! `onnxruntime.AdapterFormat` reader, and the strategy's outputs equal `unified`'s (LoRA
//! tensors bound as plain inputs) bit for bit; `quadbench run` measures it beside `unified` and
//! `separate-reload`.

mod common;
use common::cpu_plan as plan;
use common::*;
use quadbench::package::{self, ort_adapter, reference::ReferenceParams};
use quadbench_protocol::*;
use quadbench_runner::pipeline::{Executor, RequestTiming, load_input};
use std::path::Path;
use std::process::Command;

fn small_package(dir: &Path) -> package::Manifest {
    package::reference::generate(
        dir,
        &ReferenceParams { tasks: 3, width: 64, resolution: 64, steps: 2, seed: 5, ..Default::default() },
    )
    .unwrap()
}

fn output(ex: &mut Executor<'_>, task: &str, image: &ort::value::Tensor<f32>) -> Vec<f32> {
    ex.switch_to(task).unwrap();
    let v = ex.run(task, image, &mut RequestTiming::default()).unwrap();
    v.try_extract_tensor::<f32>().unwrap().1.to_vec()
}

#[test]
fn onnx_runtime_loads_the_files_and_gives_unifieds_outputs_bit_for_bit() {
    let lib = quadbench_runtime::ensure_onnxruntime().expect("ONNX Runtime (quadbench runtime fetch)");
    let env = ort::init_from(&lib.library).unwrap().with_name("ort-adapter").build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = small_package(dir.path());
    let files = ort_adapter::write_all(&m, dir.path(), &dir.path().join("ort")).unwrap();
    // One file per task: every LoRA slot of the reference package is in the denoiser.
    assert_eq!(files.len(), 3);
    assert!(files.iter().all(|f| f.stage == "denoiser" && f.bytes > 0));

    // ONNX Runtime's own reader: from memory, and a file with a foreign identifier is refused.
    let bytes = std::fs::read(&files[0].path).unwrap();
    ort::session::Adapter::from_memory(&bytes, None).expect("ONNX Runtime reads the encoded adapter");
    let mut bad = bytes.clone();
    bad[4..8].copy_from_slice(b"XXXX");
    let e = ort::session::Adapter::from_memory(&bad, None).unwrap_err().to_string();
    assert!(e.contains("lora") || e.contains("adapter"), "{e}");

    let input_file = dir.path().join("astronaut.f32");
    package::input::prepare_input(&repo().join("golden/inputs/astronaut.png"), 64, &input_file).unwrap();
    let image = load_input(&input_file, &[1, 3, 64, 64]).unwrap();
    let pu = plan(&m, Strategy::Unified);
    let mut po = plan(&m, Strategy::UnifiedOrtAdapter);
    for t in &mut po.pipeline.tasks {
        for f in files.iter().filter(|f| f.task == t.name) {
            t.ort_adapters.insert(f.stage.clone(), format!("ort/{}", f.rel));
        }
    }
    let first = m.pipeline.tasks[0].name.clone();
    let mut unified = Executor::new(&pu, dir.path(), &env).unwrap();
    let mut ort = Executor::new(&po, dir.path(), &env).unwrap();
    unified.init(&first).unwrap();
    ort.init(&first).unwrap();
    let mut seen: Vec<Vec<f32>> = Vec::new();
    // Twice round: switching back to a task activates its adapter again.
    for t in m.pipeline.tasks.iter().chain(&m.pipeline.tasks) {
        let (a, b) = (output(&mut unified, &t.name, &image), output(&mut ort, &t.name, &image));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&a) == bits(&b), "task {}: unified-ort-adapter differs from unified", t.name);
        seen.push(b);
    }
    // The adapter matters: the three tasks' outputs differ from each other.
    assert!(seen[0] != seen[1] && seen[1] != seen[2] && seen[0] != seen[2]);
    assert!(seen[0] == seen[3]);

    // A plan that lacks a task's file is refused at the switch, naming the stage.
    let mut missing = po.clone();
    missing.pipeline.tasks[1].ort_adapters.clear();
    let mut ex = Executor::new(&missing, dir.path(), &env).unwrap();
    ex.init(&first).unwrap();
    let e = ex.switch_to(&m.pipeline.tasks[1].name).unwrap_err();
    assert!(e.contains("no .onnx_adapter for stage `denoiser`"), "{e}");
}

/// A Python with `onnxruntime` and `numpy`, created on first use (the `tests/onnx_checker.rs`
/// pattern): an independent reader of the adapter format.
fn ort_python() -> std::path::PathBuf {
    let venv = quadbench_runtime::cache_dir().join("pycheck-ort-1.31.1");
    let py = venv.join("bin/python");
    let ok =
        |p: &Path| Command::new(p).args(["-c", "import onnxruntime, numpy"]).output().is_ok_and(|o| o.status.success());
    if !ok(&py) {
        let python = std::env::var("QUADBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let st =
            Command::new(&python).args(["-m", "venv"]).arg(&venv).status().expect("python3 (set QUADBENCH_PYTHON)");
        assert!(st.success(), "cannot create a venv at {} with {python}", venv.display());
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "onnxruntime==1.31.1", "numpy"])
            .status()
            .unwrap();
        assert!(st.success(), "pip install onnxruntime==1.31.1 numpy failed (network to PyPI needed once)");
    }
    assert!(ok(&py), "onnxruntime not importable from {}", py.display());
    py
}

#[test]
fn python_onnxruntime_reads_the_same_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let m = small_package(dir.path());
    let files = ort_adapter::write_all(&m, dir.path(), &dir.path().join("ort")).unwrap();
    let script = "import sys, hashlib, numpy as np, onnxruntime as ort
a = ort.AdapterFormat.read_adapter(sys.argv[1])
print('versions', a.get_adapter_version(), a.get_model_version())
for name, v in sorted(a.get_parameters().items()):
    x = v.numpy()
    print(name, x.dtype, list(x.shape), hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest())
";
    let out = Command::new(ort_python()).arg("-c").arg(script).arg(&files[0].path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // What the runner would bind as inputs for that task, hashed the same way.
    let arrays = quadbench_runner::pipeline::adapter_arrays(
        &dir.path().join(&m.pipeline.tasks[0].adapter),
        &m.pipeline.lora_slots,
    )
    .unwrap();
    let mut want = vec!["versions 1 1".to_string()];
    let mut lines: Vec<String> = arrays
        .iter()
        .map(|a| {
            let bytes: Vec<u8> = a.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let sha = package::manifest::sha256_bytes(&bytes);
            format!("{} float32 [{}, {}] {sha}", a.input, a.shape[0], a.shape[1])
        })
        .collect();
    lines.sort();
    want.extend(lines);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);
}

#[test]
fn run_measures_it_beside_unified_and_separate_reload() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified, unified-ort-adapter, separate-reload", 3, 64, "");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    // 3 tasks cannot give 6x storage: the scenario's claim fails honestly, exit code 1.
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("unified vs unified-ort-adapter"), "{stdout}");
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    let strategies: Vec<&str> = runs.iter().map(|x| x["strategy"].as_str().unwrap()).collect();
    assert_eq!(strategies, ["unified", "unified-ort-adapter", "separate-reload"]);
    for x in runs {
        assert_eq!(x["status"], "ok", "{x}");
        assert_eq!(x["valid"], true, "{}", x["validity_note"]);
        for k in ["e2e", "switch", "switch_load"] {
            assert!(x["latency_ms"][k]["p50"].as_f64().unwrap() > 0.0, "{}: {k}", x["strategy"]);
        }
    }
    // Storage: the same graphs, the derived files as adapters (their bytes as written).
    let (u, o_) = (&runs[0]["storage"], &runs[1]["storage"]);
    assert_eq!(u["foundation_bytes"], o_["foundation_bytes"]);
    let mut written = 0;
    for t in r["package"]["tasks"].as_array().unwrap() {
        written += std::fs::metadata(out.join(format!("ort-adapters/{}/denoiser.onnx_adapter", t.as_str().unwrap())))
            .unwrap()
            .len();
    }
    assert_eq!(o_["adapter_bytes"].as_u64().unwrap(), written);
    assert_eq!(
        o_["total_bytes"].as_u64().unwrap(),
        o_["foundation_bytes"].as_u64().unwrap() + o_["adapter_bytes"].as_u64().unwrap()
    );
    // Bit-identical outputs make identical PNGs.
    let png =
        |x: &serde_json::Value, i: usize| std::fs::read(out.join(x["outputs"][i]["path"].as_str().unwrap())).unwrap();
    for i in 0..3 {
        assert_eq!(png(&runs[0], i), png(&runs[1], i), "output {i}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("unified-ort-adapter"), "{md}");
}

/// On the QNN HTP backend (a plugin EP; simulated on x86_64) the adapter files feed the
/// compiled EP-context graph like plain inputs do: every graph stays one HTP partition with no
/// node on the CPU EP, and the outputs are the same images.
#[test]
fn qnn_htp_runs_it_fully_offloaded_with_unifieds_outputs() {
    let d = tempfile::tempdir().unwrap();
    let device = local_device(d.path());
    let img = repo().join("golden/inputs/astronaut.png");
    let sc = d.path().join("npu.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1
name: npu-ort-adapter
package:
  reference: {{tasks: 3, width: 128, resolution: 64, steps: 2, seed: 7}}
  quantize: {{precision: w8a16, profile: anchor}}
devices: [{device}]
backends: [qnn-htp]
backend_options:
  qnn-htp: {{ep_context: \"1\"}}
require_full_offload: true
precision: w8a16
strategies: [unified, unified-ort-adapter]
inputs: [{img}]
workload: {{order: round-robin, requests_per_visit: 2, warmup_visits: 1, min_samples: 2, min_switches: 3, min_duration_s: 0, max_duration_s: 60}}
throttle: {{enabled: false}}
",
            device = device.display(),
            img = img.display()
        ),
    )
    .unwrap();
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(0));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for x in runs {
        assert_eq!(x["status"], "ok", "{x}");
        let compiled = x["compiled"].as_array().unwrap();
        assert_eq!(compiled.len(), 3, "{x}");
        for c in compiled {
            let p = &c["placement"];
            assert_eq!((p["partitions"].as_u64(), p["fallback_disabled"].as_bool()), (Some(1), Some(true)), "{c}");
            assert!(p["cpu_nodes"].as_object().is_none_or(|m| m.is_empty()), "{c}");
        }
    }
    let png =
        |x: &serde_json::Value, i: usize| std::fs::read(out.join(x["outputs"][i]["path"].as_str().unwrap())).unwrap();
    for i in 0..3 {
        assert_eq!(png(&runs[0], i), png(&runs[1], i), "output {i}");
    }
}
