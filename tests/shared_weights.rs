//! Strategy `separate-shared-weights`: the per-task merged baselines (and the shared stages)
//! compiled by the QNN EP as one weight-sharing group into one context binary. Other backends
//! are refused when the scenario loads; on the QNN HTP backend (simulated on x86_64) the storage
//! of the shared context is measured beside separate-reload's per-graph binaries, and the run
//! either gives separate-reload's outputs or is recorded as unsupported with the QNN error.

mod common;
use common::*;
use std::path::Path;

fn npu_scenario(dir: &Path, backends: &str, options: &str, strategies: &str) -> std::path::PathBuf {
    let device = local_device(dir);
    let img = repo().join("golden/inputs/astronaut.png");
    let sc = dir.join("shared.yaml");
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1
name: shared-weights
package:
  reference: {{tasks: 3, width: 128, resolution: 64, steps: 2, seed: 7}}
  quantize: {{precision: w8a16, profile: anchor}}
devices: [{device}]
backends: [{backends}]
{options}
require_full_offload: true
precision: w8a16
strategies: [{strategies}]
inputs: [{img}]
workload: {{order: round-robin, requests_per_visit: 2, warmup_visits: 1, min_samples: 2, min_switches: 3, min_duration_s: 0, max_duration_s: 60}}
throttle: {{enabled: false}}
",
            device = device.display(),
            img = img.display()
        ),
    )
    .unwrap();
    sc
}

#[test]
fn other_backends_and_a_missing_compile_phase_are_refused_at_load() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("cpu", "", "does not run on backend `cpu`"),
        ("cpu, qnn-htp", "backend_options:\n  qnn-htp: {ep_context: \"1\"}", "does not run on backend `cpu`"),
        ("qnn-htp", "", "needs the compile phase"),
    ];
    for (backends, options, want) in cases {
        let sc = npu_scenario(d.path(), backends, options, "separate-reload, separate-shared-weights");
        let out = d.path().join("out");
        let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
        assert_eq!(o.status.code(), Some(2), "{backends}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("shared.yaml:") && err.contains(want), "want `{want}` in: {err}");
        assert!(!out.join("results.json").exists(), "nothing runs on bad input");
    }
}

/// Measured here (QNN EP 2.7.0, QAIRT 2.51, x86_64 simulator): the EP writes one context
/// binary for all five graphs, smaller than separate-reload's five binaries together, but
/// cannot load it (`contextCreateFromBinary`: `QNN_COMMON_ERROR_NOT_SUPPORTED`), so the run is
/// unsupported. Where it loads, its outputs must be separate-reload's (the same graphs).
#[test]
fn qnn_htp_compiles_one_shared_context_and_runs_it_or_says_why_not() {
    let d = tempfile::tempdir().unwrap();
    let options = "backend_options:\n  qnn-htp: {ep_context: \"1\"}";
    let sc = npu_scenario(d.path(), "qnn-htp", options, "separate-reload, separate-shared-weights");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    let (reload, shared) = (&runs[0], &runs[1]);
    assert_eq!(
        (reload["strategy"].as_str(), shared["strategy"].as_str()),
        (Some("separate-reload"), Some("separate-shared-weights"))
    );
    assert_eq!(reload["status"], "ok", "{reload}");
    // Every graph compiled fully offloaded, into one folder, with one binary between them.
    let compiled = shared["compiled"].as_array().unwrap();
    assert_eq!(compiled.len(), 5, "{shared}");
    for c in compiled {
        let p = &c["placement"];
        assert_eq!((p["partitions"].as_u64(), p["fallback_disabled"].as_bool()), (Some(1), Some(true)), "{c}");
        assert!(p["cpu_nodes"].as_object().is_none_or(|m| m.is_empty()), "{c}");
        assert!(c["context_graph"].as_str().unwrap().contains("/shared-weights/"), "{c}");
    }
    let bins: Vec<_> = glob_bins(&d.path().join("device/packages"));
    assert_eq!(bins.len(), 1, "one shared context binary: {bins:?}");
    let bin_bytes = std::fs::metadata(&bins[0]).unwrap().len();
    let ctx_bytes: u64 = compiled.iter().map(|c| c["bytes"].as_u64().unwrap()).sum();
    let ctx_models: u64 = std::fs::read_dir(bins[0].parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(ctx_bytes, bin_bytes + ctx_models, "the binary counts once");
    assert_eq!(shared["storage"]["total_bytes"].as_u64(), Some(ctx_bytes));
    let reload_bytes = reload["storage"]["total_bytes"].as_u64().unwrap();
    assert!(ctx_bytes < reload_bytes, "shared {ctx_bytes} bytes vs separate-reload {reload_bytes}");
    match shared["status"].as_str() {
        Some("ok") => {
            assert_eq!(o.status.code(), Some(0));
            let png = |x: &serde_json::Value, i: usize| {
                std::fs::read(out.join(x["outputs"][i]["path"].as_str().unwrap())).unwrap()
            };
            for i in 0..3 {
                assert_eq!(png(reload, i), png(shared, i), "output {i}");
            }
        }
        Some("unsupported") => {
            let e = shared["error"].as_str().unwrap();
            assert!(e.contains("contextCreateFromBinary") && e.contains("QNN_COMMON_ERROR_NOT_SUPPORTED"), "{e}");
            assert!(!e.contains("hint: the accelerator needs QDQ"), "{e}");
        }
        s => panic!("separate-shared-weights ended {s:?}: {shared}"),
    }
}

fn glob_bins(packages: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for p in std::fs::read_dir(packages).unwrap() {
        let dir = p.unwrap().path().join("shared-weights");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            out.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "bin")));
        }
    }
    out
}
