//! Devices in parallel on one host: each device has its own worker, devices on one physical
//! resource take turns, and results list runs in plan order whatever the finishing order.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// A local device profile with its own work dir and, optionally, a declared resource.
fn device(dir: &Path, name: &str, resource: Option<&str>) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    let extra = resource.map(|r| format!("resource: {r}\n")).unwrap_or_default();
    std::fs::write(
        &p,
        format!("name: {name}\ntransport: local\nwork_dir: {}\n{extra}", dir.join(format!("dev-{name}")).display()),
    )
    .unwrap();
    p
}

/// Two devices, two strategies each, runs of about `seconds` seconds.
fn scenario(dir: &Path, devices: &[PathBuf], seconds: u32) -> PathBuf {
    let sc = small_scenario(dir, "unified, separate-reload", 2, 32, "throttle: {enabled: false}\n");
    let list = devices.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    let text = std::fs::read_to_string(&sc).unwrap();
    let devices_line = text.lines().find(|l| l.starts_with("devices:")).unwrap().to_string();
    let text = text
        .replace(&devices_line, &format!("devices: [{list}]"))
        .replace("min_duration_s: 0", &format!("min_duration_s: {seconds}"))
        .replace("max_duration_s: 30", &format!("max_duration_s: {seconds}"))
        .replace("min_samples: 4", "min_samples: 1000000");
    std::fs::write(&sc, text).unwrap();
    sc
}

/// (start, finish) of every run, as RFC 3339 strings (they sort like the instants they name).
fn spans(r: &serde_json::Value) -> Vec<(String, String, String)> {
    r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let s = |k: &str| x[k].as_str().unwrap().to_string();
            (s("device"), s("started_at"), s("finished_at"))
        })
        .collect()
}

fn overlaps(a: &(String, String, String), b: &(String, String, String)) -> bool {
    a.1 < b.2 && b.1 < a.2
}

#[test]
fn devices_on_separate_resources_measure_at_once_and_results_keep_plan_order() {
    let d = tempfile::tempdir().unwrap();
    let devs = [device(d.path(), "left", Some("board-a")), device(d.path(), "right", Some("board-b"))];
    let sc = scenario(d.path(), &devs, 3);
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let r = results(&out);
    let ids: Vec<&str> = r["runs"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "left-cpu-fp32-unified",
            "left-cpu-fp32-separate-reload",
            "right-cpu-fp32-unified",
            "right-cpu-fp32-separate-reload"
        ],
        "plan order"
    );
    let s = spans(&r);
    assert!(
        s.iter().filter(|a| a.0 == "left").any(|a| s.iter().filter(|b| b.0 == "right").any(|b| overlaps(a, b))),
        "the two devices never ran at the same time: {s:?}"
    );
}

#[test]
fn devices_sharing_the_host_cpu_never_measure_at_the_same_time() {
    let d = tempfile::tempdir().unwrap();
    // Local devices occupy the host's CPU by default.
    let devs = [device(d.path(), "one", None), device(d.path(), "two", None)];
    let sc = scenario(d.path(), &devs, 2);
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let s = spans(&results(&out));
    assert_eq!(s.len(), 4);
    for (i, a) in s.iter().enumerate() {
        for b in &s[i + 1..] {
            assert!(!overlaps(a, b), "{a:?} overlaps {b:?}");
        }
    }
}
