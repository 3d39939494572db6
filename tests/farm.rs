//! The farm on the embedded SQLite database, end to end with real agents (separate processes)
//! and local devices: two agents drain one submission with every run stored exactly once and
//! `farm results` equal to what `quadbench report` makes; an agent stopped (SIGSTOP) past its
//! lease loses the job to another and its late run is refused by the fence; an agent killed -9
//! mid-job loses nothing; SIGTERM hands the job back; bad input is refused with the fix.
//! PostgreSQL and several hosts (network namespaces): tests/farm_pg.rs.

mod common;

use common::farm::*;
use common::*;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[test]
fn two_agents_drain_one_submission_each_run_once_and_results_equal_a_report() {
    let d = tempfile::tempdir().unwrap();
    let db = init(d.path());
    let (one, two) = (device(d.path(), "one"), device(d.path(), "two"));
    let sc = scenario(d.path(), &[one.clone(), two.clone()], "unified, separate-reload", 0);
    submit(&db, &sc, "nightly-1", &[]);
    let a = agent(d.path(), &db, "host-a", &[&one], &["--until-idle"]);
    let b = agent(d.path(), &db, "host-b", &[&two], &["--until-idle"]);
    assert_eq!(wait(a, 300, "agent a"), Some(0), "{}", log(d.path(), "host-a"));
    assert_eq!(wait(b, 300, "agent b"), Some(0), "{}", log(d.path(), "host-b"));
    let s = status(&db, "nightly-1");
    assert_eq!(s["counts"]["done"], 4, "{s:#}");
    for j in s["jobs"].as_array().unwrap() {
        let (dev, host) = (j["device"].as_str().unwrap(), j["agent"].as_str().unwrap());
        assert_eq!(host, if dev == "one" { "host-a" } else { "host-b" }, "each device's jobs ran on its host");
    }
    let out = d.path().join("results");
    let o = farm(&["results", "nightly-1", "--out", out.to_str().unwrap()], &db);
    assert!(matches!(o.status.code(), Some(0 | 1)), "exit 0 or 1 (claims)");
    let r = results(&out);
    let ids: Vec<&str> = r["runs"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "one-cpu-fp32-unified",
            "one-cpu-fp32-separate-reload",
            "two-cpu-fp32-unified",
            "two-cpu-fp32-separate-reload"
        ],
        "every run once, in plan order"
    );
    assert_eq!(r["complete"], true);
    assert_eq!(r["devices"].as_array().unwrap().len(), 2);
    assert_eq!(r["claims"][0]["name"], "storage-6x", "the submission's claims are evaluated over all runs");
    for run in r["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "ok", "{run:#}");
        let samples = out.join(run["samples_csv"].as_str().unwrap());
        assert!(samples.is_file(), "{} travelled through the database", samples.display());
        assert!(out.join("runs").join(run["id"].as_str().unwrap()).join("plan.json").is_file());
        assert!(out.join("outputs").join(run["id"].as_str().unwrap()).is_dir());
    }
    // `quadbench report` on a copy of the results (results.json, samples, outputs, run files)
    // gives the same reports, byte for byte.
    let copy = d.path().join("copy");
    let copied = Command::new("cp").arg("-r").arg(&out).arg(&copy).status().unwrap();
    assert!(copied.success());
    let inputs = ["results.json", "samples/", "outputs/", "runs/"];
    let reports: Vec<String> = files(&out).into_iter().filter(|f| !inputs.iter().any(|i| f.starts_with(i))).collect();
    for f in &reports {
        std::fs::remove_file(copy.join(f)).unwrap();
    }
    let o = run_within(quadbench().arg("report").arg(&copy), 120);
    assert_eq!(o.status.code(), Some(0));
    assert!(reports.iter().any(|f| f == "report.html") && reports.iter().any(|f| f.starts_with("plots/")));
    assert_eq!(files(&copy), files(&out), "the same set of files");
    for f in &reports {
        let same = std::fs::read(out.join(f)).unwrap() == std::fs::read(copy.join(f)).unwrap();
        assert!(same, "{f} differs between `farm results` and `quadbench report`");
    }
    // Never overwritten.
    let o = farm(&["results", "nightly-1", "--out", out.to_str().unwrap()], &db);
    assert_eq!(o.status.code(), Some(2));
}

/// One long job for any device of this host's ABI; agent `a` (lease 1 s) claims it, then is
/// stopped (`sig`) before it finishes; agent `b` takes the job over after the lease expires.
fn lease_takeover(sig: &str) -> (tempfile::TempDir, String, Child) {
    let d = tempfile::tempdir().unwrap();
    let db = init(d.path());
    let (a1, b1) = (device(d.path(), "a1"), device(d.path(), "b1"));
    let sc = scenario(d.path(), std::slice::from_ref(&a1), "unified", 4);
    let abi = format!("abi={}-{}", std::env::consts::ARCH, std::env::consts::OS);
    submit(&db, &sc, "takeover", &["--on", &abi]);
    let a = agent(d.path(), &db, "host-a", &[&a1], &["--lease-s", "1"]);
    until(&db, "takeover", 120, "agent a holds the job", |s| s["jobs"][0]["state"] == "running");
    signal(&a, sig);
    std::thread::sleep(Duration::from_millis(1500));
    let b = agent(d.path(), &db, "host-b", &[&b1], &["--until-idle", "--lease-s", "10"]);
    assert_eq!(wait(b, 300, "agent b"), Some(0), "{}", log(d.path(), "host-b"));
    let s = status(&db, "takeover");
    let job = &s["jobs"][0];
    assert_eq!(job["state"], "done", "{s:#}");
    assert_eq!((job["agent"].as_str(), job["device"].as_str()), (Some("host-b"), Some("b1")));
    assert_eq!(job["attempts"], 2);
    assert!(job["fencing_token"].as_i64().unwrap() >= 2);
    (d, db, a)
}

fn only_run_is_b1s(dir: &Path, db: &str) {
    let out = dir.join("results");
    let o = farm(&["results", "takeover", "--out", out.to_str().unwrap()], db);
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the run appears exactly once");
    assert_eq!(runs[0]["device"], "b1");
}

#[test]
fn an_agent_killed_mid_job_loses_its_lease_and_the_job_runs_once_elsewhere() {
    let (d, db, a) = lease_takeover("-KILL");
    let _ = wait(a, 10, "killed agent");
    only_run_is_b1s(d.path(), &db);
}

#[test]
fn a_stopped_agent_that_comes_back_after_losing_its_lease_cannot_store_its_run() {
    let (d, db, a) = lease_takeover("-STOP");
    signal(&a, "-CONT");
    // Its run finishes (the runner kept going), the fence refuses it, the agent goes on.
    let end = Instant::now() + Duration::from_secs(120);
    while !log(d.path(), "host-a").contains("discarded") {
        assert!(Instant::now() < end, "agent a never reported the refused run:\n{}", log(d.path(), "host-a"));
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&a, "-TERM");
    let _ = wait(a, 60, "agent a");
    only_run_is_b1s(d.path(), &db);
}

#[test]
fn sigterm_hands_the_job_back_uncounted() {
    let d = tempfile::tempdir().unwrap();
    let db = init(d.path());
    let one = device(d.path(), "one");
    let sc = scenario(d.path(), std::slice::from_ref(&one), "unified", 6);
    submit(&db, &sc, "term", &[]);
    let a = agent(d.path(), &db, "host-a", &[&one], &[]);
    until(&db, "term", 120, "agent holds the job", |s| s["jobs"][0]["state"] == "running");
    std::thread::sleep(Duration::from_millis(500));
    signal(&a, "-TERM");
    assert_eq!(wait(a, 60, "agent"), Some(143), "{}", log(d.path(), "host-a"));
    assert!(log(d.path(), "host-a").contains("handed back"), "{}", log(d.path(), "host-a"));
    let s = status(&db, "term");
    assert_eq!(s["jobs"][0]["state"], "queued", "{s:#}");
    assert_eq!(s["jobs"][0]["attempts"], 0, "the interrupted attempt is not counted");
}

#[test]
fn bad_input_is_refused_with_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", d.path().join("none.db").display());
    let o = farm(&["status"], &missing);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("quadbench farm init"));
    let o = farm(&["status"], "postgres://quadbench@127.0.0.1:1/farm");
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot connect"));
    let o = farm(&["status"], "mysql://x");
    assert_eq!(o.status.code(), Some(2));

    // A database from a newer quadbench: refused with the fix, left as it is.
    let newer = d.path().join("newer");
    std::fs::create_dir_all(&newer).unwrap();
    let newer_db = init(&newer);
    let bump = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('update farm_schema set version=99'); c.commit()";
    let st = std::process::Command::new("python3").args(["-c", bump]).arg(newer.join("farm.db")).status().unwrap();
    assert!(st.success());
    let o = farm(&["status"], &newer_db);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("newer") && err.contains("upgrade quadbench"), "{err}");

    let db = init(d.path());
    let one = device(d.path(), "one");
    let sc = scenario(d.path(), std::slice::from_ref(&one), "unified", 0);
    submit(&db, &sc, "ghost", &["--on", "device=ghost"]);
    let o = farm(&["submit", sc.to_str().unwrap(), "--label", "ghost"], &db);
    assert_eq!(o.status.code(), Some(2), "labels are unique");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = farm(&["status", "--label", "ghost"], &db);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no registered device meets device=ghost"));

    // An invalid device profile: exit 2 before anything is registered.
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "name: bad\ntransport: lokal\n").unwrap();
    let o = run_within(quadbench().args(["agent", "--db", &db, "--device"]).arg(&bad), 60);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.yaml:2"));
    let o = farm(&["device", "list"], &db);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("bad"), "nothing registered");
}

#[test]
fn a_device_failing_its_health_check_is_kept_out_until_reset() {
    let d = tempfile::tempdir().unwrap();
    let db = init(d.path());
    // Its work dir cannot be made: its parent is a regular file.
    std::fs::write(d.path().join("blocker"), "").unwrap();
    let p = d.path().join("broken.yaml");
    std::fs::write(&p, format!("name: broken\ntransport: local\nwork_dir: {}\n", d.path().join("blocker/w").display()))
        .unwrap();
    let sc = scenario(d.path(), std::slice::from_ref(&p), "unified", 0);
    submit(&db, &sc, "sick", &[]);
    let a = agent(d.path(), &db, "host-a", &[&p], &["--until-idle"]);
    assert_eq!(wait(a, 120, "agent"), Some(0));
    assert!(log(d.path(), "host-a").contains("health check FAILED"), "{}", log(d.path(), "host-a"));
    let o = farm(&["status", "--label", "sick"], &db);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("every device meeting device=broken is bad"), "{text}");
    let o = farm(&["device", "reset", "broken"], &db);
    assert_eq!(o.status.code(), Some(0));
    let o = farm(&["device", "list"], &db);
    assert!(String::from_utf8_lossy(&o.stdout).contains("unknown"));
    let o = farm(&["device", "reset", "nosuch"], &db);
    assert_eq!(o.status.code(), Some(2));
}
