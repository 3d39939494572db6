//! The farm on a real PostgreSQL server with agents on several hosts: network namespaces made by
//! the test (`common::netns`), whose agents reach the server over their veth addresses only.
//! Two hosts drain one submission while the database is restarted under them (they ride the
//! outage out and carry on), every run stored exactly once; two hosts each drive their own
//! loopback ADB phone through their own adb server, inside their namespace; two agents racing
//! for one device never hold it at the same time.
//!
//! As root (CI) these need Debian's `postgresql` and `iproute2` (tests/run.sh installs them) and
//! fail without them; as another user the namespace parts are skipped with a note.

mod common;

use common::adb::{AdbServer, DEVICE_ROOT};
use common::farm::*;
use common::netns::Netns;
use common::pg::PgServer;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The quadbench binary (with its runner built) run inside `ns`.
fn in_ns(ns: &Netns) -> Command {
    ensure_runner();
    let mut c = ns.command(env!("CARGO_BIN_EXE_quadbench"));
    c.env_remove("QUADBENCH_RUNNER_FAULT");
    c
}

fn keys_once(r: &serde_json::Value, n: usize) {
    let mut keys: Vec<&str> = r["runs"].as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), n, "{keys:?}");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "every run exactly once");
}

#[test]
fn two_hosts_drain_one_submission_through_a_database_restart() {
    if !Netns::available_or_skip() {
        return;
    }
    let hosts = [Netns::create(0), Netns::create(1)];
    let Some(mut pg) = PgServer::start(&[hosts[0].host_addr(), hosts[1].host_addr()]) else { return };
    let d = tempfile::tempdir().unwrap();
    let db = pg.url("127.0.0.1");
    assert_eq!(farm(&["init"], &db).status.code(), Some(0));
    let (one, two) = (device(d.path(), "one"), device(d.path(), "two"));
    let sc = scenario(d.path(), &[one.clone(), two.clone()], "unified, separate-reload", 2);
    submit(&db, &sc, "nightly", &[]);
    // Leases renewed every second: the agents meet the outage even in the middle of a run.
    let agent_args = ["--until-idle", "--lease-s", "3"];
    let a = agent_in(in_ns(&hosts[0]), d.path(), &pg.url(hosts[0].host_addr()), "host-a", &[&one], &agent_args);
    let b = agent_in(in_ns(&hosts[1]), d.path(), &pg.url(hosts[1].host_addr()), "host-b", &[&two], &agent_args);
    // Restart the server once the first run is stored and others are still to come.
    let s = until(&db, "nightly", 240, "a first run stored", |s| s["counts"]["done"].as_i64() >= Some(1));
    eprintln!("stopping the database at {}", s["counts"]);
    // Down for longer than a run and than the pool's 10 s connect wait, so that the agents'
    // queries fail (renewals, stores, claims) and are retried until the server is back.
    pg.stop();
    std::thread::sleep(Duration::from_secs(13));
    pg.start_again();
    assert_eq!(wait(a, 300, "agent a"), Some(0), "{}", log(d.path(), "host-a"));
    assert_eq!(wait(b, 300, "agent b"), Some(0), "{}", log(d.path(), "host-b"));
    let logs = log(d.path(), "host-a") + &log(d.path(), "host-b");
    assert!(
        logs.contains("database unavailable") || logs.contains("lease renewal failed"),
        "an agent met the outage:\n{logs}"
    );
    let s = status(&db, "nightly");
    assert_eq!(s["counts"]["done"], 4, "{s:#}");
    let hosts_seen: Vec<&str> = s["hosts"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert!(hosts_seen.contains(&"host-a") && hosts_seen.contains(&"host-b"), "{hosts_seen:?}");
    for j in s["jobs"].as_array().unwrap() {
        assert_eq!(j["attempts"], 1, "no job ran twice: {j:#}");
    }
    let out = d.path().join("results");
    let o = farm(&["results", "nightly", "--out", out.to_str().unwrap()], &db);
    assert!(matches!(o.status.code(), Some(0 | 1)));
    keys_once(&results(&out), 4);
}

/// Each namespace is a host with a phone: its own adb server and `quadbench loopback-device`,
/// both inside the namespace on its own `lo`, and an agent there whose adb profile points at that
/// server.
#[test]
fn hosts_in_namespaces_drive_their_own_loopback_adb_phones() {
    if !Netns::available_or_skip() {
        return;
    }
    let hosts = [Netns::create(0), Netns::create(1)];
    let Some(pg) = PgServer::start(&[hosts[0].host_addr(), hosts[1].host_addr()]) else { return };
    let d = tempfile::tempdir().unwrap();
    let db = pg.url("127.0.0.1");
    assert_eq!(farm(&["init"], &db).status.code(), Some(0));
    let (names, agents) = (["phone-a", "phone-b"], ["host-a", "host-b"]);
    // Declared after the namespaces: dropped (killed) before them.
    let servers = hosts.each_ref().map(AdbServer::start_in);
    let phones = servers.each_ref().map(|s| s.spawn_loopback());
    let profiles: Vec<PathBuf> =
        (0..2).map(|i| servers[i].profile(d.path(), names[i], phones[i].serial(), 1, 500)).collect();
    let sc = scenario(d.path(), &profiles, "unified, separate-reload", 1);
    submit(&db, &sc, "phones", &[]);
    let running = [0, 1].map(|i| {
        let url = pg.url(hosts[i].host_addr());
        ChildGuard::new(agent_in(in_ns(&hosts[i]), d.path(), &url, agents[i], &[&profiles[i]], &["--until-idle"]))
    });
    for (i, a) in running.into_iter().enumerate() {
        assert_eq!(wait(a.take(), 300, agents[i]), Some(0), "{}", log(d.path(), agents[i]));
    }
    let s = status(&db, "phones");
    assert_eq!(s["counts"]["done"], 4, "{s:#}");
    for j in s["jobs"].as_array().unwrap() {
        let i = names.iter().position(|n| j["device"] == *n).unwrap_or_else(|| panic!("{j:#}"));
        assert_eq!(j["agent"], agents[i], "each phone's jobs ran on the agent of its namespace: {j:#}");
        assert_eq!(j["attempts"], 1, "{j:#}");
    }
    for dev in s["devices"].as_array().unwrap() {
        assert_eq!((&dev["reg"]["transport"], &dev["health"]), (&"adb".into(), &"good".into()), "{dev:#}");
    }
    let out = d.path().join("results");
    let o = farm(&["results", "phones", "--out", out.to_str().unwrap()], &db);
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let r = results(&out);
    keys_once(&r, 4);
    for run in r["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "ok", "{run:#}");
        assert_eq!(run["environment"]["device_model"], "quadbench-loopback", "{run:#}");
    }
    // The runner went to each phone's own storage.
    for (i, p) in phones.iter().enumerate() {
        let runner = p.host_path(&format!("{DEVICE_ROOT}/bin/quadbench-runner"));
        assert!(runner.is_file(), "{} missing on {}:\n{}", runner.display(), names[i], p.log());
    }
}

#[test]
fn two_agents_racing_for_one_device_never_hold_it_together() {
    let Some(pg) = PgServer::start(&[]) else { return };
    let d = tempfile::tempdir().unwrap();
    let db = pg.url("127.0.0.1");
    assert_eq!(farm(&["init"], &db).status.code(), Some(0));
    // Two hosts claim a device of the same name (a misconfigured farm, or a device moved).
    let (x, y) = (d.path().join("x"), d.path().join("y"));
    std::fs::create_dir_all(&x).unwrap();
    std::fs::create_dir_all(&y).unwrap();
    let (dx, dy) = (device(&x, "shared"), device(&y, "shared"));
    let sc = scenario(d.path(), std::slice::from_ref(&dx), "unified, separate-reload, separate-resident", 1);
    submit(&db, &sc, "race", &[]);
    let a = agent(d.path(), &db, "host-a", &[&dx], &["--until-idle"]);
    let b = agent(d.path(), &db, "host-b", &[&dy], &["--until-idle"]);
    assert_eq!(wait(a, 300, "agent a"), Some(0), "{}", log(d.path(), "host-a"));
    assert_eq!(wait(b, 300, "agent b"), Some(0), "{}", log(d.path(), "host-b"));
    let out = d.path().join("results");
    let o = farm(&["results", "race", "--out", out.to_str().unwrap()], &db);
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let r = results(&out);
    keys_once(&r, 3);
    let spans: Vec<(String, String)> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["started_at"].as_str().unwrap().to_string(), x["finished_at"].as_str().unwrap().to_string()))
        .collect();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            assert!(!(a.0 < b.1 && b.0 < a.1), "runs on device `shared` overlapped: {a:?} {b:?}");
        }
    }
}
