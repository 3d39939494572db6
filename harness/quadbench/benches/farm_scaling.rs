//! Benchmark: how the farm scales. Prints its figures; asserts nothing about time.
//!
//! (a) Makespan of one submission of 16 jobs on 1, 2, 4, 8 and 16 devices served by one agent,
//!     against the ideal T(1)/N. The runs are made device-bound: each device's `runner:` is a
//!     wrapper that sleeps `QB_BENCH_DEVICE_S` seconds (default 4) before exec'ing the real
//!     runner, as a phone's NPU keeps the device, not the host, busy. Each device declares its
//!     own `resource:` so the agent does not serialise them.
//! (b) Jobs claimed and finished per second by 16 agents (16 connection pools, one thread each)
//!     draining 2,000 jobs, on SQLite and on PostgreSQL (a throw-away server started here when
//!     Debian's postgresql is installed).
//!
//!     cargo build --release -p quadbench-runner
//!     cargo bench -p quadbench --bench farm_scaling
//!
//! `QB_BENCH_PARTS=a` or `=b` runs one part.

#[path = "../../../tests/common/pg.rs"]
#[allow(dead_code)]
mod pg;

use quadbench::config::{DeviceProfile, Scenario};
use quadbench::farm::agent::{self, AgentConfig};
use quadbench::farm::{Db, Requirement, submit};
use quadbench_farm::{DeviceReg, Health, NewJob, NewSubmission, RunWrite};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const JOBS: usize = 16;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|d| d.join("golden/inputs").is_dir()).unwrap().to_path_buf()
}

fn main() {
    let parts = std::env::var("QB_BENCH_PARTS").unwrap_or_else(|_| "ab".into());
    if parts.contains('a') {
        makespan();
    }
    if parts.contains('b') {
        claims_per_second();
    }
}

fn scenario(dir: &Path) -> Scenario {
    let p = dir.join("bench.yaml");
    std::fs::write(
        &p,
        format!(
            "schema: quadbench.scenario/1\nname: farmbench\npackage: {{reference: {{tasks: 2, width: 32, resolution: 64, steps: 2, seed: 3}}}}\ndevices: [{dev}]\nbackends: [cpu]\nstrategies: [unified]\ninputs: [{img}]\nthrottle: {{enabled: false}}\nworkload: {{requests_per_visit: 2, warmup_visits: 1, min_samples: 4, min_switches: 2, min_duration_s: 0, max_duration_s: 30}}\n",
            dev = dir.join("d0.yaml").display(),
            img = repo().join("golden/inputs/astronaut.png").display()
        ),
    )
    .unwrap();
    Scenario::load(&p).unwrap()
}

/// `n` local devices whose runner sleeps `sleep_s` first; each on its own resource.
fn devices(dir: &Path, n: usize, sleep_s: f64) -> Vec<DeviceProfile> {
    let exe = std::env::current_exe().unwrap();
    let runner = exe.parent().unwrap().parent().unwrap().join("quadbench-runner");
    assert!(runner.is_file(), "build the runner first: cargo build --release -p quadbench-runner");
    let wrapper = dir.join("slow-runner.sh");
    std::fs::write(&wrapper, format!("#!/bin/sh\nsleep {sleep_s}\nexec {} \"$@\"\n", runner.display())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&wrapper).status().unwrap();
    (0..n.max(1))
        .map(|i| {
            let p = dir.join(format!("d{i}.yaml"));
            let work = dir.join(format!("work-d{i}"));
            std::fs::write(
                &p,
                format!(
                    "name: d{i}\ntransport: local\nwork_dir: {}\nresource: board-{i}\nrunner: {}\n",
                    work.display(),
                    wrapper.display()
                ),
            )
            .unwrap();
            DeviceProfile::load(&p).unwrap()
        })
        .collect()
}

fn submit_replicated(db: &Db, sc: &Scenario, label: &str, jobs: usize) {
    let abi = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    let one = submit::jobs(sc, &[Requirement { abi: Some(abi), ..Default::default() }]).unwrap().remove(0);
    let jobs: Vec<NewJob> =
        (0..jobs).map(|i| NewJob { index: i as i64, key: format!("{}/rep{i}", one.key), ..one.clone() }).collect();
    let text = std::fs::read_to_string(&sc.path).unwrap();
    let s = NewSubmission {
        label: label.into(),
        scenario_name: sc.name.clone(),
        scenario_path: sc.path.display().to_string(),
        scenario_sha256: sc.sha256.clone(),
        scenario_text: text,
        priority: 0,
        max_attempts: 3,
    };
    db.submit(&s, &jobs).unwrap();
}

fn drain(dir: &Path, db: &Db, devices: Vec<DeviceProfile>) -> f64 {
    let cfg = AgentConfig {
        db: db.clone(),
        name: "bench".into(),
        devices,
        until_idle: true,
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(100),
        work: dir.join("agent"),
        package_cache: quadbench_runtime::cache_dir().join("packages"),
        db_wait: Duration::from_secs(30),
        keep_work: false,
    };
    let t = Instant::now();
    agent::run(&cfg, &|_| {}).unwrap();
    t.elapsed().as_secs_f64()
}

fn makespan() {
    let sleep_s: f64 = std::env::var("QB_BENCH_DEVICE_S").ok().and_then(|v| v.parse().ok()).unwrap_or(4.0);
    println!("(a) makespan of {JOBS} jobs, device-bound runs (runner sleeps {sleep_s} s first), one agent, SQLite");
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path());
    // Warm-up: the package and runtime caches, one job.
    {
        let db = Db::init(&format!("sqlite://{}", dir.path().join("warm.db").display())).unwrap();
        submit_replicated(&db, &sc, "warm", 1);
        drain(dir.path(), &db, devices(dir.path(), 1, 0.0));
    }
    let mut t1 = 0.0;
    println!("  {:>7} {:>10} {:>10} {:>11}", "devices", "makespan s", "ideal s", "efficiency");
    for n in [1, 2, 4, 8, 16] {
        let db = Db::init(&format!("sqlite://{}", dir.path().join(format!("n{n}.db")).display())).unwrap();
        submit_replicated(&db, &sc, &format!("n{n}"), JOBS);
        let wall = drain(dir.path(), &db, devices(dir.path(), n, sleep_s));
        let done = db.jobs(None).unwrap().iter().filter(|j| j.state == quadbench_farm::JobState::Done).count();
        assert_eq!(done, JOBS, "every job done");
        if n == 1 {
            t1 = wall;
        }
        let ideal = t1 / n as f64;
        println!("  {n:>7} {wall:>10.1} {ideal:>10.1} {:>10.0}%", 100.0 * ideal / wall);
    }
}

/// 16 agents, each its own pool and device, claim and finish until the queue is empty.
fn claims_per_second() {
    const TOTAL: usize = 2000;
    const AGENTS: usize = 16;
    println!("(b) {AGENTS} agents claiming and finishing {TOTAL} jobs");
    let dir = tempfile::tempdir().unwrap();
    let mut engines = vec![("sqlite", format!("sqlite://{}", dir.path().join("claims.db").display()), None)];
    match pg::PgServer::start(&[]) {
        Some(server) => engines.push(("postgresql", server.url("127.0.0.1"), Some(server))),
        None => println!("  postgresql: not installed here, skipped"),
    }
    for (name, url, _server) in &engines {
        let db = Db::init(url).unwrap();
        let jobs: Vec<NewJob> = (0..TOTAL)
            .map(|i| NewJob {
                index: i as i64,
                key: format!("bench/any/cpu/fp32/unified/{i}"),
                requirement: Requirement::default(),
                payload: "{}".into(),
            })
            .collect();
        let s = NewSubmission {
            label: "claims".into(),
            scenario_name: "bench".into(),
            scenario_path: "/dev/null".into(),
            scenario_sha256: String::new(),
            scenario_text: String::new(),
            priority: 0,
            max_attempts: 3,
        };
        db.submit(&s, &jobs).unwrap();
        let t = Instant::now();
        let counts: Vec<usize> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..AGENTS)
                .map(|a| {
                    let url = url.clone();
                    sc.spawn(move || {
                        let db = Db::open(&url).unwrap();
                        let name = format!("agent{a}");
                        let reg = DeviceReg {
                            name: format!("dev{a}"),
                            host: name.clone(),
                            transport: "local".into(),
                            profile_sha256: String::new(),
                            soc: None,
                            abi: None,
                            model: None,
                        };
                        db.heartbeat(&name).unwrap();
                        db.register_device(&reg).unwrap();
                        db.set_health(&reg.name, Health::Good, "").unwrap();
                        let row = db.device(&reg.name).unwrap().unwrap();
                        let mut n = 0;
                        while let Some(c) = db.claim(&name, &row, 60_000).unwrap() {
                            let w = RunWrite {
                                run_id: format!("r{}", c.job_id),
                                key: c.key.clone(),
                                record_json: "{}".into(),
                                header_json: "{}".into(),
                                artefacts: vec![("samples/x.csv".into(), vec![0u8; 256])],
                                history: None,
                            };
                            db.finish(&c, &w).unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wall = t.elapsed().as_secs_f64();
        let total: usize = counts.iter().sum();
        assert_eq!(total, TOTAL, "every job claimed exactly once");
        println!(
            "  {name:<10} {total} jobs in {wall:.2} s: {:.0} claim+finish/s (per agent min {} max {})",
            total as f64 / wall,
            counts.iter().min().unwrap(),
            counts.iter().max().unwrap()
        );
    }
}
