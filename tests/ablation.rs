//! The mixed-precision ablation end to end on the QNN HTP backend (simulator on x86_64): one run
//! per W8A8:W8A16 ratio, quality against the FP32 goldens and latency in one table.

mod common;
use common::*;

#[test]
fn ablation_sweeps_ratios_into_one_table() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("abl");
    let o = run(quadbench()
        .args(["ablation"])
        .arg(repo().join("scenarios/precision-ablation.yaml"))
        .args(["--a8-ratios", "0,1", "--out"])
        .arg(&out));
    assert!(o.status.success());
    let csv = std::fs::read_to_string(out.join("ablation.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let psnr: Vec<f64> =
        rows.iter().map(|r| r[2].parse::<f64>().unwrap_or_else(|_| panic!("no PSNR: {csv}"))).collect();
    for r in &rows {
        assert_eq!(r[7], "\"ok\"", "{csv}");
        assert!(r[5].parse::<f64>().is_ok(), "e2e latency missing: {csv}");
    }
    eprintln!("W8A16 {:.2} dB, W8A8 {:.2} dB", psnr[0], psnr[1]);
    // 16-bit activations are never meaningfully worse than 8-bit ones.
    assert!(psnr[1] <= psnr[0] + 0.5, "{csv}");
    assert!(psnr.iter().all(|p| *p > 20.0), "{csv}");
    assert!(std::fs::read_to_string(out.join("ablation.md")).unwrap().contains("| 100:0 | unified |"));
}

#[test]
fn scenario_without_quantize_is_refused() {
    let o = run(quadbench().args(["ablation"]).arg(repo().join("scenarios/demo.yaml")));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("package.quantize"));
}
