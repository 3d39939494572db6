//! The farm tests' infrastructure works for real: a throw-away PostgreSQL server (`common::pg`)
//! and network namespaces as hosts (`common::netns`) that reach it over veth pairs, isolated from
//! the root namespace's loopback and from each other, and torn down without leftovers.
//!
//! As root (CI) these need the `postgresql` and `iproute2` packages (`tests/run.sh` installs
//! them) and fail without them; as another user the namespace tests are skipped with a note.

mod common;

use common::netns::{Netns, netns_list};
use common::pg::{PgServer, psql_output};
use std::net::TcpStream;
use std::path::Path;
use std::time::Instant;

#[test]
fn postgres_answers_and_survives_a_restart() {
    let t = Instant::now();
    let Some(mut pg) = PgServer::start(&[]) else { return };
    eprintln!("PgServer::start took {:.2} s (port {})", t.elapsed().as_secs_f64(), pg.port());
    assert_eq!(pg.query("127.0.0.1", "SELECT 1").unwrap(), "1");
    assert_eq!(pg.query("127.0.0.1", "SHOW max_connections").unwrap(), "200");
    pg.query("127.0.0.1", "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)").unwrap();

    pg.stop();
    assert!(!pg.is_running());
    let down = pg.query("127.0.0.1", "SELECT 1").expect_err("a stopped server answers no query");
    assert!(down.contains("refused"), "psql against the stopped server: {down}");

    let t = Instant::now();
    pg.start_again();
    eprintln!("PgServer::start_again took {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(pg.query("127.0.0.1", "SELECT 1").unwrap(), "1");
    assert_eq!(pg.query("127.0.0.1", "SELECT v FROM kept").unwrap(), "42", "same cluster after the restart");
    assert!(pg.url("127.0.0.1").ends_with(&format!("@127.0.0.1:{}/postgres", pg.port())));
}

#[test]
fn postgres_is_stopped_and_deleted_when_a_test_panics() {
    let seen = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let Some(pg) = PgServer::start(&[]) else { return };
        *seen.lock().unwrap() = Some((pg.port(), pg.dir().to_path_buf()));
        panic!("test failure while the server runs");
    });
    let Some((port, dir)) = seen.into_inner().unwrap() else { return };
    assert!(r.is_err());
    assert!(!dir.exists(), "cluster dir {} removed", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens on port {port} any more");
}

#[test]
fn namespaces_reach_postgres_over_their_veth() {
    if !Netns::available_or_skip() {
        return;
    }
    let hosts = [Netns::create(0), Netns::create(1)];
    assert_ne!(hosts[0].host_addr(), hosts[1].host_addr());
    let Some(pg) = PgServer::start(&[hosts[0].host_addr(), hosts[1].host_addr()]) else { return };
    for h in &hosts {
        let url = pg.url(h.host_addr());
        let client = psql_output(h.command(pg.psql_path()), &url, "SELECT host(inet_client_addr())")
            .unwrap_or_else(|e| panic!("psql in {} to {url}: {e}\n{}", h.name(), pg.log_tail()));
        assert_eq!(client, h.ns_addr(), "the connection comes from inside {}", h.name());
        let sum = psql_output(h.command(pg.psql_path()), &url, "SELECT 20 + 22").unwrap();
        assert_eq!(sum, "42");
    }
    // The root namespace reaches it at the same addresses and on loopback.
    assert_eq!(pg.query(hosts[0].host_addr(), "SELECT 1").unwrap(), "1");
    assert_eq!(pg.query("127.0.0.1", "SELECT 1").unwrap(), "1");
}

#[test]
fn a_namespace_is_isolated() {
    if !Netns::available_or_skip() {
        return;
    }
    let (a, b) = (Netns::create(2), Netns::create(3));
    let Some(pg) = PgServer::start(&[a.host_addr()]) else { return };
    // The namespace's 127.0.0.1 is its own loopback: the root namespace's server is not there.
    let lo = psql_output(a.command(pg.psql_path()), &pg.url("127.0.0.1"), "SELECT 1")
        .expect_err("127.0.0.1 of the root namespace is reachable from inside a namespace");
    assert!(lo.contains("refused"), "{lo}");
    // Control: the same namespace reaches the server through its veth.
    assert_eq!(psql_output(a.command(pg.psql_path()), &pg.url(a.host_addr()), "SELECT 1").unwrap(), "1");
    // Another namespace has no route to a's subnet.
    let other = psql_output(b.command(pg.psql_path()), &pg.url(a.host_addr()), "SELECT 1")
        .expect_err("a namespace reaches another namespace's subnet");
    assert!(other.contains("unreachable"), "{other}");
    // Inside: only lo and the namespace's veth end, and no default route.
    let links = common::run(a.command("ip").args(["-o", "link", "show"]));
    let links = String::from_utf8_lossy(&links.stdout);
    let names: Vec<&str> =
        links.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap()).collect();
    assert_eq!(names, ["lo", a.ns_veth().as_str()]);
    let routes = common::run(a.command("ip").args(["-4", "route", "show"]));
    assert!(!String::from_utf8_lossy(&routes.stdout).contains("default"));
}

#[test]
fn namespaces_leave_nothing_behind() {
    if !Netns::available_or_skip() {
        return;
    }
    let check_gone = |names: &[(String, String)]| {
        let list = netns_list();
        for (ns, veth) in names {
            assert!(!list.contains(ns), "namespace {ns} still listed: {list:?}");
            assert!(!Path::new("/sys/class/net").join(veth).exists(), "veth {veth} still exists");
            let o = std::process::Command::new("ip").args(["link", "show", "dev", veth]).output().unwrap();
            assert!(!o.status.success(), "ip link show {veth} still finds it");
        }
    };

    let hosts = [Netns::create(4), Netns::create(5)];
    let names: Vec<(String, String)> = hosts.iter().map(|h| (h.name().to_string(), h.host_veth())).collect();
    let list = netns_list();
    for (ns, veth) in &names {
        assert!(list.contains(ns), "{ns} in {list:?}");
        assert!(Path::new("/sys/class/net").join(veth).exists(), "{veth} exists");
    }
    drop(hosts);
    check_gone(&names);

    // Also when the test panics while they exist.
    let made = std::sync::Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(|| {
        let h = Netns::create(6);
        made.lock().unwrap().push((h.name().to_string(), h.host_veth()));
        panic!("test failure with a namespace");
    });
    assert!(r.is_err());
    check_gone(&made.into_inner().unwrap());
}

#[test]
fn a_failed_start_panics_with_the_server_log() {
    // 192.0.2.1 (TEST-NET-1) is on no interface: the server cannot listen there.
    let r = std::panic::catch_unwind(|| PgServer::start(&["192.0.2.1"]).map(|pg| pg.port()));
    let Err(e) = r else {
        assert!(r.unwrap().is_none(), "a server that cannot listen on 192.0.2.1 was reported as started");
        return;
    };
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("server log") && msg.contains("192.0.2.1"), "{msg}");
}
