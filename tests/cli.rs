//! `quadbench run` end to end on the local device with the real runner and ONNX Runtime: sane
//! numbers per strategy, located YAML errors, a runner crash that loses nothing else, and bad
//! environments that get clear errors.

mod common;
use common::*;

#[test]
fn three_strategies_give_sane_numbers() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified, separate-resident, separate-reload", 3, 64, "");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    // 3 tasks cannot give 6x storage: the claim fails honestly, exit code 1.
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("unified vs separate-reload") && stdout.contains("FAIL (not reproduced)"), "{stdout}");
    let r = results(&out);
    assert_eq!(r["schema"], "quadbench.results/1");
    assert_eq!(r["complete"], true);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let pkg = quadbench::package::load(std::path::Path::new(r["package"]["dir"].as_str().unwrap())).unwrap();
    let size = |rel: &str| pkg.raw.files.iter().find(|f| f.path == rel).unwrap().bytes;
    let graphs: u64 = pkg.pipeline.stages.iter().map(|s| size(&s.graph)).sum();
    let adapters: u64 = pkg.pipeline.tasks.iter().map(|t| size(&t.adapter)).sum();
    let baselines: u64 = pkg.pipeline.tasks.iter().map(|t| size(&t.baselines["denoiser"])).sum();
    for run in runs {
        assert_eq!(run["status"], "ok", "{run}");
        assert_eq!(run["valid"], true, "{}", run["validity_note"]);
        let st = &run["storage"];
        let total = st["total_bytes"].as_u64().unwrap();
        match run["strategy"].as_str().unwrap() {
            "unified" => {
                assert_eq!(st["foundation_bytes"].as_u64().unwrap(), graphs);
                assert_eq!(st["adapter_bytes"].as_u64().unwrap(), adapters);
                assert_eq!(total, graphs + adapters);
            }
            _ => {
                assert_eq!(st["baseline_bytes"].as_u64().unwrap(), baselines);
                assert_eq!(total, graphs - size("denoiser.onnx") + baselines);
            }
        }
        for k in ["encoder", "denoiser", "decoder", "e2e", "switch"] {
            let s = &run["latency_ms"][k];
            let (min, p50, max) = (s["min"].as_f64().unwrap(), s["p50"].as_f64().unwrap(), s["max"].as_f64().unwrap());
            assert!(min > 0.0 && min <= p50 && p50 <= max, "{k}: {s}");
        }
        // Two steps per request: the denoiser has twice the e2e sample count.
        assert_eq!(
            run["latency_ms"]["denoiser"]["n"].as_u64().unwrap(),
            2 * run["latency_ms"]["e2e"]["n"].as_u64().unwrap()
        );
        assert!(run["memory"]["peak_rss_bytes"].as_u64().unwrap() > 10_000_000);
        assert!(run["environment"]["ort_version"].as_str().unwrap().starts_with("1.31"), "{}", run["environment"]);
        let csv = std::fs::read_to_string(out.join(run["samples_csv"].as_str().unwrap())).unwrap();
        assert!(csv.starts_with("run_id,metric,index,value_ms\n") && csv.contains(",e2e,"));
        assert_eq!(run["outputs"].as_array().unwrap().len(), 3);
        for o in run["outputs"].as_array().unwrap() {
            let img = image::open(out.join(o["path"].as_str().unwrap())).unwrap();
            assert_eq!((img.width(), img.height()), (64, 64));
        }
    }
    let claim = &r["claims"][0];
    assert_eq!(claim["verdict"], "fail");
    assert!(claim["ratio"].as_f64().unwrap() > 1.0);
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("| storage-6x |"));
}

fn peak_rss(tasks: usize) -> u64 {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "separate-resident", tasks, 512, "");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(o.status.code().is_some_and(|c| c <= 1));
    results(&out)["runs"][0]["memory"]["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn separate_resident_memory_grows_with_tasks() {
    // Width 512: each baseline denoiser holds ~19 MB of weights.
    let (two, six) = (peak_rss(2), peak_rss(6));
    eprintln!("peak RSS: 2 tasks {two} B, 6 tasks {six} B");
    assert!(six > two + 4 * 15_000_000, "2 tasks {two} B, 6 tasks {six} B");
}

#[test]
fn scenario_errors_name_file_line_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    let text = std::fs::read_to_string(&sc).unwrap();
    let cases = [
        (text.replace("strategies:", "strategis:"), "did you mean `strategies`?"),
        (text.replace("[unified]", "[unifed]"), "did you mean `unified`?"),
        (text.replace("  min_samples: 4", "  min_samples: four"), "min_samples"),
        (text.replace("backends: [cpu]", "backends: [cpu"), "small.yaml:"),
        (text.replace("metric: storage.total_bytes", "metric: storage.bytes"), "did you mean `storage.total_bytes`?"),
        (text.replace("backends: [cpu]", "backends: [cpu]\nprecision: \"w8:a16\""), "must be a safe name"),
    ];
    for (bad, want) in cases {
        std::fs::write(&sc, &bad).unwrap();
        let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")));
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("small.yaml:") && err.contains(want), "want `{want}` in: {err}");
        // file:line:column
        let loc = err.split("small.yaml:").nth(1).unwrap();
        assert!(loc.split(':').take(2).all(|n| n.trim().parse::<usize>().is_ok()), "{err}");
    }
    assert!(!d.path().join("out").join("results.json").exists(), "nothing runs on bad input");
}

#[test]
fn runner_killed_mid_run_is_recorded_and_others_survive() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified, separate-resident, separate-reload", 3, 64, "");
    let out = d.path().join("out");
    let o = run(quadbench()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .env("QUADBENCH_RUNNER_FAULT", "abort:separate-resident:3"));
    assert_eq!(o.status.code(), Some(4), "some runs failed");
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let failed = runs.iter().find(|x| x["strategy"] == "separate-resident").unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("wrote no result"), "{failed}");
    assert!(failed["stderr_tail"].as_str().unwrap().contains("fault injection"), "{failed}");
    for x in runs.iter().filter(|x| x["strategy"] != "separate-resident") {
        assert_eq!(x["status"], "ok");
        assert!(x["latency_ms"]["e2e"]["n"].as_u64().unwrap() >= 4);
    }
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("fault injection"));
}

#[test]
fn unwritable_output_and_missing_runtime_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    let file = d.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(file.join("out")));
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not writable"));
    let o = run(quadbench()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(d.path().join("out"))
        .env("QUADBENCH_ORT_LIB", "/nonexistent/libonnxruntime.so"));
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/libonnxruntime.so") && err.contains("QUADBENCH_ORT_LIB"), "{err}");
}

/// A backend this machine cannot run is recorded `unsupported` with the reason and the fix, and
/// the other backends' runs go on (here: no CUDA build fetched, or no NVIDIA driver).
#[test]
fn unavailable_backend_is_unsupported_not_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    std::fs::write(&sc, std::fs::read_to_string(&sc).unwrap().replace("backends: [cpu]", "backends: [cuda, cpu]"))
        .unwrap();
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    let by = |b: &str| runs.iter().find(|x| x["backend"] == b).unwrap_or_else(|| panic!("no {b} run: {r}"));
    assert_eq!(by("cpu")["status"], "ok", "{}", by("cpu"));
    let cuda = by("cuda");
    assert_eq!(cuda["status"], "unsupported", "{cuda}");
    let why = cuda["error"].as_str().unwrap();
    assert!(why.contains("quadbench runtime fetch onnxruntime-gpu") || why.contains("libcuda"), "{why}");
    assert!(
        o.status.code().is_some_and(|c| c != 3),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}
