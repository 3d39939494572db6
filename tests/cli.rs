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

#[test]
fn replicates_run_interleaved_and_claims_carry_between_run_intervals() {
    let d = tempfile::tempdir().unwrap();
    let extra =
        "  - {name: switch, metric: latency_ms.switch, baseline: separate-reload, candidate: unified, threshold: 0.01}
  - {name: rss, metric: memory.peak_rss_bytes, baseline: separate-reload, candidate: unified, threshold: 0.01}
replicates: 2
";
    let sc = small_scenario(d.path(), "unified, separate-reload", 2, 32, extra);
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    // 2 tasks cannot give 6x storage: exit 1, as in the unreplicated test.
    assert_eq!(o.status.code(), Some(1));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|x| x["id"].as_str().unwrap()).collect();
    // A B A B, each run started after the one before it.
    let (a, b) = ("local-cpu-fp32-unified", "local-cpu-fp32-separate-reload");
    assert_eq!(ids, [format!("{a}-r1"), format!("{b}-r1"), format!("{a}-r2"), format!("{b}-r2")]);
    let started: Vec<&str> = runs.iter().map(|x| x["started_at"].as_str().unwrap()).collect();
    assert!(started.windows(2).all(|w| w[0] <= w[1]), "{started:?}");
    for (i, x) in runs.iter().enumerate() {
        assert_eq!(x["status"], "ok", "{x}");
        // `replicate` is left out when 1, as in unreplicated results.
        assert_eq!(x.get("replicate").and_then(|v| v.as_u64()).unwrap_or(1), (i / 2 + 1) as u64);
        assert_eq!(x["key"], runs[i % 2]["key"]);
    }
    assert_eq!(runs[0]["key"], "small/local/cpu/fp32/unified");
    assert!(
        r["statistics"]["between_runs"].as_str().unwrap().starts_with("hierarchical bootstrap: runs, then samples")
    );
    let claim = |name: &str| r["claims"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    for (name, method) in [("switch", "hierarchical-bootstrap"), ("rss", "bootstrap-over-runs")] {
        let c = claim(name);
        assert_eq!((c["ci_method"].as_str(), c["runs"].clone()), (Some(method), serde_json::json!([2, 2])), "{c}");
        let (lo, ratio, hi) =
            (c["ci_low"].as_f64().unwrap(), c["ratio"].as_f64().unwrap(), c["ci_high"].as_f64().unwrap());
        assert!(lo <= ratio && ratio <= hi, "{c}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("Replicated configurations: hierarchical bootstrap: runs, then samples within runs, B = 2000"),
        "{md}"
    );
    assert!(
        md.contains("| hierarchical bootstrap, 2 vs 2 runs |") && md.contains("| bootstrap over runs, 2 vs 2 runs |"),
        "{md}"
    );
    // One KPI row per configuration, over both runs.
    assert_eq!(md.matches("ok (2 runs)").count(), 2, "{md}");
    // Regenerated from the results directory alone: the same bytes.
    let again = d.path().join("again");
    assert_eq!(run(quadbench().arg("report").arg(&out).arg("--out").arg(&again)).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(again.join("report.md")).unwrap(), md);
    // --resume with replicate ids: only the failed replicate runs again, the order stays A B A B.
    let mut v = r.clone();
    v["runs"][3]["status"] = "failed".into();
    v["complete"] = false.into();
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out).arg("--resume"));
    assert_eq!(o.status.code(), Some(1));
    let log = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(log.contains("resuming: 3 finished runs are kept"), "{log}");
    let resumed = results(&out);
    let ids2: Vec<&str> = resumed["runs"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids2, ids);
    assert_eq!(resumed["runs"][3]["status"], "ok");
    assert_ne!(resumed["runs"][3]["started_at"], r["runs"][3]["started_at"], "the failed replicate ran again");
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

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{text}\n--- lacks: {part}");
    }
}

/// A 69-byte PNG claiming 100000x100000 used to make `compare` allocate 120 GB and abort (exit
/// 134). Now it is refused from its header: exit 2, quickly, under a 4 GiB address-space limit.
#[test]
fn compare_refuses_a_decompression_bomb_quickly_in_little_memory() {
    let d = tempfile::tempdir().unwrap();
    let bomb = d.path().join("bomb.png");
    std::fs::write(&bomb, bomb_png(100_000, 100_000)).unwrap();
    let t0 = std::time::Instant::now();
    let o = run_within(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 4194304 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_quadbench"))
            .arg("compare")
            .arg(&bomb)
            .arg(&bomb)
            .env_remove("QUADBENCH_MAX_IMAGE_PIXELS"),
        60,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10), "took {:?}", t0.elapsed());
    assert_mentions(
        &stderr(&o),
        &[
            &bomb.display().to_string(),
            "100000x100000 (10000000000 pixels)",
            "over the limit of 67108864 pixels",
            "--max-pixels 10000000000",
            "QUADBENCH_MAX_IMAGE_PIXELS=10000000000",
        ],
    );
}

/// The limit is configurable (`--max-pixels`, else `QUADBENCH_MAX_IMAGE_PIXELS`) and names itself.
#[test]
fn compare_pixel_limit_comes_from_the_flag_or_the_environment() {
    let img = repo().join("golden/inputs/astronaut.png"); // 512x512
    let compare = || {
        let mut c = quadbench();
        c.arg("compare").arg(&img).arg(&img).env_remove("QUADBENCH_MAX_IMAGE_PIXELS");
        c
    };
    let o = run_within(compare().args(["--max-pixels", "262143"]), 60);
    assert_eq!(o.status.code(), Some(2));
    assert_mentions(&stderr(&o), &["512x512 (262144 pixels), over the limit of 262143 pixels", "--max-pixels 262144"]);
    assert!(run_within(compare().args(["--max-pixels", "262144"]), 60).status.success());
    let o = run_within(compare().env("QUADBENCH_MAX_IMAGE_PIXELS", "1000"), 60);
    assert_eq!(o.status.code(), Some(2));
    assert_mentions(&stderr(&o), &["over the limit of 1000 pixels"]);
    // The flag wins over the environment.
    assert!(
        run_within(compare().env("QUADBENCH_MAX_IMAGE_PIXELS", "1000").args(["--max-pixels", "300000"]), 60)
            .status
            .success()
    );
    let o = run_within(compare().env("QUADBENCH_MAX_IMAGE_PIXELS", "lots"), 60);
    assert_eq!(o.status.code(), Some(2));
    assert_mentions(&stderr(&o), &["QUADBENCH_MAX_IMAGE_PIXELS=\"lots\" is not a positive whole number"]);
}

/// `compare` on a FIFO used to block forever in open(2); a symlink to /dev/zero is no image either.
#[test]
fn compare_refuses_special_files_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let img = repo().join("golden/inputs/astronaut.png");
    let fifo = d.path().join("out.png");
    mkfifo(&fifo);
    let zero = d.path().join("zero.png");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (special, words) in [
        (&fifo, "is a fifo (named pipe), not a regular file"),
        (&zero, "is a character device (a symlink to /dev/zero)"),
    ] {
        let o = run_within(quadbench().arg("compare").arg(&img).arg(special), 60);
        assert_eq!(o.status.code(), Some(2));
        assert_mentions(&stderr(&o), &[&special.display().to_string(), words]);
    }
}

/// The host's input preparation decodes with the same rules: a FIFO input is refused instead of
/// blocking the run, and the pixel limit of the environment applies.
#[test]
fn run_inputs_are_decoded_under_the_same_limits() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    let fifo = d.path().join("fifo.png");
    mkfifo(&fifo);
    let text = std::fs::read_to_string(&sc).unwrap();
    let astronaut = repo().join("golden/inputs/astronaut.png").display().to_string();
    let with_fifo = d.path().join("fifo.yaml");
    std::fs::write(&with_fifo, text.replace(&astronaut, &fifo.display().to_string())).unwrap();
    let o = run_within(quadbench().arg("run").arg(&with_fifo).arg("--out").arg(d.path().join("out1")), 300);
    assert_eq!(o.status.code(), Some(2));
    assert_mentions(&stderr(&o), &[&fifo.display().to_string(), "is a fifo (named pipe), not a regular file"]);
    let o = run_within(
        quadbench()
            .arg("run")
            .arg(&sc)
            .arg("--out")
            .arg(d.path().join("out2"))
            .env("QUADBENCH_MAX_IMAGE_PIXELS", "1000"),
        300,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_mentions(&stderr(&o), &[&astronaut, "512x512", "over the limit of 1000 pixels"]);
}

/// QUADBENCH_ORT_LIB at a cut copy of the real library used to kill the host with SIGBUS in
/// dlopen (exit 135, no message); a directory was reported as missing. Both are exit 3 now.
#[test]
fn a_truncated_or_directory_ort_library_is_exit_3_with_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    let real = quadbench_runtime::ensure_onnxruntime().expect("onnxruntime for the tests").library;
    let bytes = std::fs::read(&real).unwrap();
    let cut = d.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = run_within(
        quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")).env("QUADBENCH_ORT_LIB", &cut),
        300,
    );
    assert_eq!(o.status.code(), Some(3));
    assert_mentions(
        &stderr(&o),
        &["QUADBENCH_ORT_LIB", &cut.display().to_string(), "truncated", "quadbench runtime fetch"],
    );
    let o = run_within(
        quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")).env("QUADBENCH_ORT_LIB", d.path()),
        300,
    );
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert_mentions(&err, &[&d.path().display().to_string(), "is a directory"]);
    assert!(!err.contains("does not exist"), "{err}");
}

/// `compare --lpips-model` loads ONNX Runtime: a cut QUADBENCH_ORT_LIB is an infrastructure
/// error (exit 3) naming the file, not a crash.
#[test]
fn compare_with_a_truncated_ort_library_is_exit_3() {
    let d = tempfile::tempdir().unwrap();
    let real = quadbench_runtime::ensure_onnxruntime().expect("onnxruntime for the tests").library;
    let bytes = std::fs::read(&real).unwrap();
    let cut = d.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let img = repo().join("golden/inputs/astronaut.png");
    let model = repo().join("harness/metrics/tests/fixtures/lpips_msd.onnx");
    let o = run_within(
        quadbench().arg("compare").arg(&img).arg(&img).arg("--lpips-model").arg(&model).env("QUADBENCH_ORT_LIB", &cut),
        120,
    );
    assert_eq!(o.status.code(), Some(3));
    assert_mentions(&stderr(&o), &[&cut.display().to_string(), "truncated", "quadbench runtime fetch"]);
}
