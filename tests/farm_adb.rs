//! The farm with adb devices, end to end with real parts: agents (separate processes) on the
//! embedded SQLite database driving loopback phones through a private adb server
//! (`common::adb`). A phone that goes offline while it runs a job fails the job as an
//! infrastructure failure: the job is requeued away from it and runs on another phone, and the
//! phone fails its health check and is kept out (`bad`). Agents in network namespaces, each with
//! its own adb server and phone: tests/farm_pg.rs.

mod common;

use common::adb::{AdbServer, DEVICE_ROOT};
use common::farm::*;
use common::*;
use quadbench_loopback::{Faults, LoopbackDevice};
use std::time::{Duration, Instant};

/// Whether the runner has been started on `dev`: a run directory holds its plan (the last file
/// pushed before the runner is started).
fn runner_started(dev: &LoopbackDevice) -> bool {
    let runs = dev.host_path(&format!("{DEVICE_ROOT}/runs"));
    std::fs::read_dir(runs).is_ok_and(|d| d.flatten().any(|e| e.path().join("plan.json").is_file()))
}

#[test]
fn a_phone_going_offline_mid_run_is_quarantined_and_its_job_runs_on_another_phone() {
    let d = tempfile::tempdir().unwrap();
    let db = init(d.path());
    let adb = AdbServer::start();
    let (a, b) = (adb.attach_loopback(), adb.attach_loopback());
    // One retry after 200 ms: the profile's own retry happens, quickly (each reattach of an
    // offline phone waits 15 s for it to come online).
    let pa = adb.profile(d.path(), "phone-a", &a.dev.serial(), 1, 200);
    let pb = adb.profile(d.path(), "phone-b", &b.dev.serial(), 1, 200);
    // One job of 6 s that any phone of the loopback's ABI may run.
    let abi = quadbench_loopback::default_props()["ro.product.cpu.abi"].clone();
    let sc = scenario(d.path(), std::slice::from_ref(&pa), "unified", 6);
    submit(&db, &sc, "offline", &["--on", &format!("abi={abi}")]);

    // --until-idle: once phone-a is bad, agent a has nothing left to do and exits. Leases of 6 s:
    // short (the failing phone is avoided for two of them), yet renewed (every 2 s) in time on a
    // loaded machine, so that the failure is agent a's to record.
    let agent_a = ChildGuard::new(agent(d.path(), &db, "host-a", &[&pa], &["--until-idle", "--lease-s", "6"]));
    until(&db, "offline", 240, "phone-a holds the job", |s| {
        s["jobs"][0]["state"] == "running" && s["jobs"][0]["device"] == "phone-a"
    });
    let end = Instant::now() + Duration::from_secs(240);
    while !runner_started(&a.dev) {
        assert!(Instant::now() < end, "the runner never started on phone-a:\n{}", log(d.path(), "host-a"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Offline for good: every connection closed, new ones refused, the health check included.
    a.dev.set_faults(Faults { offline: true, ..Default::default() });
    let t0 = Instant::now();

    let agent_b = ChildGuard::new(agent(d.path(), &db, "host-b", &[&pb], &["--until-idle", "--lease-s", "6"]));
    assert_eq!(wait(agent_b.take(), 300, "agent b"), Some(0), "{}", log(d.path(), "host-b"));
    assert_eq!(wait(agent_a.take(), 120, "agent a"), Some(0), "{}", log(d.path(), "host-a"));
    eprintln!("from the fault to both agents done: {:.1} s", t0.elapsed().as_secs_f64());

    let s = status(&db, "offline");
    let job = &s["jobs"][0];
    assert_eq!(job["state"], "done", "{s:#}");
    assert_eq!((job["device"].as_str(), job["agent"].as_str()), (Some("phone-b"), Some("host-b")), "{s:#}");
    assert_eq!(job["attempts"], 2, "{s:#}");
    let device = |name: &str| s["devices"].as_array().unwrap().iter().find(|x| x["reg"]["name"] == name).unwrap();
    for name in ["phone-a", "phone-b"] {
        assert_eq!(device(name)["reg"]["abi"], abi.as_str(), "the ABI the loopback phone reports: {s:#}");
        assert_eq!(device(name)["reg"]["transport"], "adb");
    }
    assert_eq!(device("phone-a")["health"], "bad", "{s:#}");
    assert_eq!(device("phone-b")["health"], "good", "{s:#}");
    let note = device("phone-a")["health_note"].as_str().unwrap();
    assert!(note.contains("health check failed"), "{note}");

    let log_a = log(d.path(), "host-a");
    assert!(log_a.contains("infrastructure failure on phone-a") && log_a.contains("requeued"), "{log_a}");
    assert!(log_a.contains("device phone-a: health check FAILED"), "{log_a}");
    assert!(log_a.contains("done: 0 stored"), "phone-a stored no run:\n{log_a}");

    let out = d.path().join("results");
    let o = farm(&["results", "offline", "--out", out.to_str().unwrap()], &db);
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the run appears exactly once: {runs:#?}");
    assert_eq!(runs[0]["device"], "phone-b");
    assert_eq!(runs[0]["status"], "ok", "{:#}", runs[0]);
    assert_eq!(runs[0]["infrastructure_error"], false);
    assert_eq!(runs[0]["environment"]["device_model"], "quadbench-loopback");
}
