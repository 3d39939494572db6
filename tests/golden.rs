//! Goldens and quality scoring end to end: bless writes goldens and refuses to overwrite changed
//! ones without --force, verify catches tampering, runs score every output (thresholds pass and
//! fail), and a missing golden is reported as missing rather than as a failed metric.

mod common;
use common::*;
use std::path::Path;

fn scenario_with_goldens(dir: &Path, thresholds: &str) -> std::path::PathBuf {
    small_scenario(
        dir,
        "unified, separate-reload",
        3,
        64,
        &format!("quality:\n  golden_dir: {}\n  thresholds: {thresholds}\n", dir.join("golden").display()),
    )
}

#[test]
fn bless_verify_and_score() {
    let d = tempfile::tempdir().unwrap();
    let sc = scenario_with_goldens(d.path(), "{psnr_db: \">= 40\", ssim: \">= 0.99\"}");
    // Before blessing: every output is reported with a missing golden, nothing fails.
    let out0 = d.path().join("out0");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out0));
    assert_eq!(o.status.code(), Some(1), "storage claim fails with 3 tasks");
    let r = results(&out0);
    let q = &r["runs"][0]["quality"];
    assert_eq!(q.as_object().unwrap().len(), 3);
    for (_, t) in q.as_object().unwrap() {
        assert_eq!(t["missing_golden"].as_array().unwrap().len(), 1, "{t}");
        assert!(t.get("pass").is_none(), "a missing golden is not a failed metric: {t}");
    }

    let o = run(quadbench().args(["golden", "bless"]).arg(&sc));
    assert!(o.status.success());
    let pkg_dirs: Vec<_> = std::fs::read_dir(d.path().join("golden")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(pkg_dirs.len(), 1);
    let gdir = &pkg_dirs[0];
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gdir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["backend"], "cpu");
    assert_eq!(manifest["precision"], "fp32");
    assert_eq!(manifest["strategy"], "separate-resident");
    assert!(manifest["ort_version"].as_str().unwrap().starts_with("1.31"));
    assert_eq!(manifest["files"].as_array().unwrap().len(), 3);
    assert!(run(quadbench().args(["golden", "verify"]).arg(d.path().join("golden"))).status.success());
    // Blessing again changes nothing.
    let o = run(quadbench().args(["golden", "bless"]).arg(&sc));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("up to date"));

    // Scored run: unified and separate both pass FP32 thresholds.
    let out = d.path().join("out");
    run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    let r = results(&out);
    for x in r["runs"].as_array().unwrap() {
        for (task, t) in x["quality"].as_object().unwrap() {
            assert_eq!(t["pass"], true, "{task}: {t}");
            let m = &t["mean"];
            assert!(m["identical"] == true || m["psnr_db"].as_f64().unwrap() > 40.0, "{m}");
            assert!(m["ssim"].as_f64().unwrap() > 0.99);
            assert!(out.join("grids").join(x["id"].as_str().unwrap()).join(format!("{task}.png")).exists());
        }
    }

    // A golden that differs: verify fails, bless lists the change with deltas and refuses.
    let victim = gdir.join(manifest["files"][0]["path"].as_str().unwrap());
    let mut img = image::open(&victim).unwrap().to_rgb8();
    for p in img.pixels_mut() {
        p.0[0] = 255 - p.0[0];
    }
    img.save(&victim).unwrap();
    let o = run(quadbench().args(["golden", "verify"]).arg(d.path().join("golden")));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match"));
    let o = run(quadbench().args(["golden", "bless"]).arg(&sc));
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("changed") && stdout.contains("PSNR"), "{stdout}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    let o = run(quadbench().args(["golden", "bless", "--force"]).arg(&sc));
    assert!(o.status.success());
    assert!(run(quadbench().args(["golden", "verify"]).arg(d.path().join("golden"))).status.success());
}

#[test]
fn failing_quality_threshold_fails_the_run() {
    let d = tempfile::tempdir().unwrap();
    // SSIM can never exceed 1: a threshold that cannot pass.
    let sc = scenario_with_goldens(d.path(), "{ssim: \"> 1.0\"}");
    assert!(run(quadbench().args(["golden", "bless"]).arg(&sc)).status.success());
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(1));
    let r = results(&out);
    let t = r["runs"][0]["quality"].as_object().unwrap().values().next().unwrap();
    assert_eq!(t["pass"], false);
    assert_eq!(t["thresholds"]["ssim > 1"], false, "{t}");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("fail: ssim > 1"));
}

#[test]
fn bad_threshold_is_a_located_error() {
    let d = tempfile::tempdir().unwrap();
    let sc = scenario_with_goldens(d.path(), "{psnr: \">= 30\"}");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")));
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("small.yaml:") && e.contains("did you mean `psnr_db`?"), "{e}");
}
