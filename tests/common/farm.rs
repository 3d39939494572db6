//! Farm test helpers: local device profiles, scenarios with long runs, `quadbench farm`
//! commands, agent processes (on this host or in a network namespace) and status polling.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("farm.db").display())
}

/// A local device `name` with its own work dir.
pub fn device(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    let work = dir.join(format!("dev-{name}"));
    std::fs::write(&p, format!("name: {name}\ntransport: local\nwork_dir: {}\n", work.display())).unwrap();
    p
}

/// The small scenario on `devices`, with runs of at least `seconds` s.
pub fn scenario(dir: &Path, devices: &[PathBuf], strategies: &str, seconds: u32) -> PathBuf {
    let sc = small_scenario(dir, strategies, 2, 32, "throttle: {enabled: false}\n");
    let list = devices.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    let text = std::fs::read_to_string(&sc).unwrap();
    let devices_line = text.lines().find(|l| l.starts_with("devices:")).unwrap().to_string();
    let mut text = text.replace(&devices_line, &format!("devices: [{list}]"));
    if seconds > 0 {
        text = text
            .replace("min_duration_s: 0", &format!("min_duration_s: {seconds}"))
            .replace("max_duration_s: 30", &format!("max_duration_s: {seconds}"))
            .replace("min_samples: 4", "min_samples: 1000000");
    }
    std::fs::write(&sc, text).unwrap();
    sc
}

pub fn farm(args: &[&str], db: &str) -> std::process::Output {
    run_within(quadbench().arg("farm").args(args).arg("--db").arg(db), 120)
}

pub fn init(dir: &Path) -> String {
    let db = db_url(dir);
    let o = farm(&["init"], &db);
    assert_eq!(o.status.code(), Some(0));
    db
}

pub fn submit(db: &str, sc: &Path, label: &str, extra: &[&str]) {
    let o = farm(&[&["submit", sc.to_str().unwrap(), "--label", label], extra].concat(), db);
    assert_eq!(o.status.code(), Some(0), "submit");
    assert!(String::from_utf8_lossy(&o.stdout).trim().parse::<i64>().is_ok(), "submit prints the id");
}

/// An agent process; its stderr goes to `<dir>/<name>.log`.
pub fn agent(dir: &Path, db: &str, name: &str, devices: &[&Path], extra: &[&str]) -> Child {
    agent_in(quadbench(), dir, db, name, devices, extra)
}

/// An agent started by `c` (the quadbench binary, or it run inside a namespace).
pub fn agent_in(mut c: Command, dir: &Path, db: &str, name: &str, devices: &[&Path], extra: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    c.args(["agent", "--db", db, "--name", name, "--poll-s", "0.2", "--work"]).arg(dir.join(format!("work-{name}")));
    for d in devices {
        c.arg("--device").arg(d);
    }
    c.args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("spawn agent")
}

pub fn wait(mut child: Child, secs: u64, what: &str) -> Option<i32> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

pub fn status(db: &str, label: &str) -> serde_json::Value {
    let o = farm(&["status", "--label", label, "--json"], db);
    assert_eq!(o.status.code(), Some(0));
    serde_json::from_slice(&o.stdout).expect("status --json is JSON")
}

/// Poll `farm status` until `pred` holds (or fail after `secs`).
pub fn until(
    db: &str,
    label: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(db, label);
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < end, "{what}: not reached in {secs} s: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(st.success());
}

pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
