//! Imported torch packages on the NPU path: the committed fixture (`tests/fixtures/import`) is
//! imported, quantized W8A16 (its int64 shape arithmetic folded away, not calibrated), and its
//! separate baselines run on the QNN HTP backend (simulated on x86_64) compiled to EP context
//! with `require_full_offload`, scored against the FP32 outputs.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/import")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const TASKS: [&str; 3] = ["sharpen", "warm", "cool"];

/// `package quantize` on the imported graph (torch's Shape/Slice/Concat reshape target,
/// Constant nodes, a keepdims=0 ReduceMean) succeeds, and each task's quantized baseline on
/// the CPU EP stays close to torch's FP32 forward pass (measured 48.7-73.7 dB PSNR, max abs <= 0.016,
/// with int8 Conv/Gemm weights; 53.0-69.9 dB when they were 16-bit).
#[test]
fn imported_package_quantizes_and_its_baselines_match_torch() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let (pkg, q) = (d.path().join("pkg"), d.path().join("q"));
    let mut c = quadbench();
    c.args(["package", "import", "--model"]).arg(f.join("model.onnx")).arg("--out").arg(&pkg);
    for t in TASKS {
        c.arg("--adapter").arg(format!("{t}={}", f.join("adapters").join(t).display()));
    }
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(quadbench().args(["package", "quantize"]).arg(&pkg).arg("--out").arg(&q));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let g = quadbench_onnx::read_model(&q.join("baselines/sharpen/model.onnx")).unwrap();
    let ops: Vec<&str> = g.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
    for gone in ["Shape", "Concat", "Constant"] {
        assert!(!ops.contains(&gone), "{gone} left in the quantized graph: {ops:?}");
    }
    // Every layer's weight is int8 (MatMul, Conv and Gemm alike: W8 means 8-bit weights).
    let gr = g.graph.as_ref().unwrap();
    for n in gr.node.iter().filter(|n| matches!(n.op_type.as_str(), "MatMul" | "Conv" | "Gemm")) {
        let Some(dq) = gr.node.iter().find(|d| d.op_type == "DequantizeLinear" && d.output[0] == n.input[1]) else {
            continue; // a run-time second input (attention's q @ k)
        };
        let Some(w) = gr.initializer.iter().find(|t| t.name == dq.input[0]) else { continue };
        assert_eq!(w.data_type, quadbench_onnx::proto::data_type::INT8, "{} {}: weight {}", n.op_type, n.name, w.name);
    }
    assert!(gr.initializer.iter().any(|t| t.name == "conv_in.weight_quantized"), "conv_in's weight was not quantized");
    for t in TASKS {
        let o = run(quadbench()
            .arg("infer")
            .arg(&q)
            .args(["--task", t, "--strategy", "separate-reload", "--inputs"])
            .arg(f.join("inputs.npz"))
            .args(["--out", "-", "--expect"])
            .arg(f.join("expected.npz"))
            .args(["--expect-key", t]));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        eprintln!("w8a16 separate-reload {t} on the CPU EP vs torch fp32: {s}");
        assert!(s["psnr_db"].as_f64().unwrap() >= 45.0 && s["max_abs_error"].as_f64().unwrap() < 0.05, "{t}: {s}");
    }
}

fn scenario(dir: &Path, name: &str, rest: &str) -> PathBuf {
    let f = fixture();
    let a = f.join("adapters");
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &p,
        format!(
            "schema: quadbench.scenario/1\nname: {name}\npackage: {{import: {{model: {m}, adapters: {{sharpen: {a}/sharpen, warm: {a}/warm, cool: {a}/cool}}}}{rest}\ndevices: [{dev}]\nstrategies: [separate-reload]\ninputs: [{img}]\nworkload: {{min_samples: 1, min_switches: 0, min_duration_s: 0, max_duration_s: 20}}\nthrottle: {{enabled: false}}\nquality: {{golden_dir: {gold}, thresholds: {{psnr_db: \">= 50\"}}}}\n",
            m = f.join("model.onnx").display(),
            a = a.display(),
            dev = local_device(dir).display(),
            img = repo().join("golden/inputs/astronaut.png").display(),
            gold = dir.join("golden").display(),
        ),
    )
    .unwrap();
    p
}

/// Separate-reload of the imported, W8A16-quantized fixture on QNN HTP: every graph compiles to
/// an EP-context binary fully offloaded (one partition, no CPU node, CPU fallback disabled), and
/// the outputs score >= 50 dB PSNR against the FP32 goldens (measured 51.2-61.3 dB with int8
/// Conv/Gemm weights, `warm` the lowest; 65.5-71.5 dB when they were 16-bit).
#[test]
fn imported_package_runs_fully_offloaded_on_htp() {
    let d = tempfile::tempdir().unwrap();
    let fp = scenario(d.path(), "fp32", "}\nbackends: [cpu]");
    let bless = run(quadbench().args(["golden", "bless"]).arg(&fp).arg("--force"));
    assert_eq!(bless.status.code(), Some(0), "{}", stderr(&bless));
    let htp = scenario(
        d.path(),
        "htp",
        ", quantize: {precision: w8a16}}\nbackends: [qnn-htp]\nbackend_options: {qnn-htp: {ep_context: \"1\"}}\nrequire_full_offload: true\nprecision: w8a16",
    );
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&htp).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    let run0 = &r["runs"][0];
    assert_eq!(run0["status"], "ok", "{run0}");
    let compiled = run0["compiled"].as_array().unwrap();
    assert_eq!(compiled.len(), 3, "one context binary per task: {run0}");
    let mut bytes = 0;
    for c in compiled {
        let p = &c["placement"];
        assert_eq!((p["partitions"].as_u64(), p["fallback_disabled"].as_bool()), (Some(1), Some(true)), "{c}");
        assert_eq!(p["cpu_nodes"], serde_json::json!({}), "{c}");
        bytes += c["bytes"].as_u64().unwrap();
    }
    let total = run0["storage"]["total_bytes"].as_u64().unwrap();
    eprintln!("htp separate-reload: {} context binaries, {bytes} bytes, storage total {total} bytes", compiled.len());
    for t in TASKS {
        let q = &run0["quality"][t]["mean"];
        eprintln!("htp separate-reload {t} vs fp32 goldens: {q}");
        assert!(q["psnr_db"].as_f64().unwrap() >= 50.0, "{t}: {q}");
    }
}
