//! The ssh transport end to end, with no mocks: Debian's OpenSSH server started by each test
//! (`common::sshd`: its own configuration, host key, authorized key and port; killed on drop),
//! the system's `ssh` client driven by the transport, and the real runner. The "board" is this
//! machine: runner and ONNX Runtime are this host's builds (`runner`/`ort_library: auto`), the
//! board's root a temporary directory whose name holds a space and a quote. Faults are real:
//! sshd is killed while the runner runs. Workloads are tiny (3 tasks at 64 px) to stay fast.

mod common;

use common::sshd::{self, HostKey, Sshd};
use common::{Recorder, run_options};
use quadbench::config::Scenario;
use quadbench::device::ssh::{Ssh, SshSettings};
use quadbench::device::{DeviceError, ExecLimits, Transport};
use quadbench::events::Event;
use quadbench::package::manifest::sha256_file;
use quadbench::results::{Results, RunState};
use quadbench::scheduler as run;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STRATEGIES: [&str; 3] = ["unified", "separate-resident", "separate-reload"];

/// `common::small_scenario` (3 tasks, 64 px) on `device`, with the runner busy at least
/// `min_duration_s` per run.
fn scenario(dir: &Path, device: &Path, min_duration_s: u32) -> Scenario {
    let sub = dir.join(format!("scenario-{}", device.file_stem().unwrap().to_str().unwrap()));
    std::fs::create_dir_all(&sub).unwrap();
    let p = common::small_scenario(&sub, &STRATEGIES.join(", "), 3, 64, "threads: 1\n");
    let text = std::fs::read_to_string(&p).unwrap();
    let devices = text.lines().find(|l| l.starts_with("devices:")).unwrap().to_string();
    let text = text
        .replace(&devices, &format!("devices: [{}]", serde_json::to_string(&device.display().to_string()).unwrap()))
        .replace("min_duration_s: 0", &format!("min_duration_s: {min_duration_s}"));
    std::fs::write(&p, text).unwrap();
    Scenario::load(&p).unwrap()
}

fn assert_each_run_once(r: &Results, device: &str) {
    let mut ids: Vec<String> = r.runs.iter().map(|x| x.id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = STRATEGIES.iter().map(|s| format!("{device}-cpu-fp32-{s}")).collect();
    want.sort();
    assert_eq!(ids, want, "every run exactly once");
}

/// A board root whose name needs quoting (a space and a quote).
fn board_root(work: &Path) -> PathBuf {
    work.join("board root's dir")
}

/// Waits until no process works in `dir` (a runner left behind), at most 10 s.
fn assert_nothing_runs_in(dir: &Path) {
    let t0 = Instant::now();
    while !sshd::processes_in(dir).is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sshd::processes_in(dir), [], "processes left behind in {}", dir.display());
}

#[test]
fn scenario_over_ssh_matches_local() {
    let Some(server) = Sshd::start() else { return };
    common::ensure_runner();
    let work = tempfile::tempdir().unwrap();
    let root = board_root(work.path());
    let profile = server.profile(work.path(), "board", root.to_str().unwrap(), HostKey::Right, "retries: 1\n");
    let mut rec = Recorder { events: vec![], hook: |_: &Event| {} };
    let local = run::run_scenario(
        &scenario(work.path(), &common::local_device(work.path()), 0),
        &run_options(&work.path().join("out-local"), false),
        &mut rec,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut rec = Recorder { events: vec![], hook: |_: &Event| {} };
    let ssh = run::run_scenario(
        &scenario(work.path(), &profile, 0),
        &run_options(&work.path().join("out-ssh"), false),
        &mut rec,
    )
    .unwrap();
    eprintln!("scenario over ssh: {:?}", t0.elapsed());
    assert!(ssh.complete);
    assert_each_run_once(&ssh, "board");
    assert!(rec.events.iter().any(|e| matches!(e, Event::Heartbeat { .. })), "heartbeats stream through ssh");
    for a in &ssh.runs {
        assert_eq!(a.status, RunState::Ok, "{}: {:?} {}", a.id, a.error, a.stderr_tail);
        assert!(a.valid && !a.infrastructure_error, "{}: {}", a.id, a.validity_note);
        assert!(a.environment.device_model.is_some(), "the board's fingerprint is in the record");
        let l = local.runs.iter().find(|l| l.strategy == a.strategy).unwrap();
        assert_eq!(a.storage, l.storage, "{}: storage is a property of the package, identical on both", a.id);
        assert_eq!(a.outputs.len(), l.outputs.len());
        for o in &a.outputs {
            assert!(work.path().join("out-ssh").join(&o.path).is_file(), "output {} pulled", o.path);
        }
        for k in ["e2e", "switch"] {
            let (x, y) = (a.latency_ms[k].p50, l.latency_ms[k].p50);
            eprintln!("{:<18} {k:<7} p50 ssh {x:8.2} ms  local {y:8.2} ms", a.strategy.as_str());
            assert!(x > 0.0 && a.latency_ms[k].n > 0, "{} {k}: no latency samples", a.id);
            // Same order of magnitude: milliseconds on a shared 2-core machine are noisy.
            assert!(x / y < 10.0 && y / x < 10.0, "{} {k}: ssh {x} ms vs local {y} ms", a.id);
        }
    }
    // The runner and the package went to the board once, the run directories are gone.
    assert!(root.join("bin/quadbench-runner").is_file());
    assert!(std::fs::read_dir(root.join("runs")).map(|mut d| d.next().is_none()).unwrap_or(true), "runs cleaned");
    assert_nothing_runs_in(&root);
}

#[test]
fn sshd_killed_mid_run_is_retried_and_every_run_recorded_once() {
    let Some(server) = Sshd::start() else { return };
    common::ensure_runner();
    let work = tempfile::tempdir().unwrap();
    let root = board_root(work.path());
    let profile =
        server.profile(work.path(), "board", root.to_str().unwrap(), HostKey::Right, "retries: 4\nbackoff_ms: 500\n");
    let sc = scenario(work.path(), &profile, 3);
    let server = Arc::new(Mutex::new(server));
    let armed = Arc::new(Mutex::new(None::<String>));
    let hook = {
        let (server, armed, root) = (server.clone(), armed.clone(), root.clone());
        move |e: &Event| {
            if let Event::Heartbeat { id, .. } = e
                && id.ends_with("separate-resident")
                && armed.lock().unwrap().is_none()
            {
                // The runner is working: take the whole server down, bring it back later.
                let runners = sshd::processes_in(&root.join("runs"));
                *armed.lock().unwrap() = Some(format!("{runners:?}"));
                server.lock().unwrap().kill();
                let server = server.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1500));
                    server.lock().unwrap().restart();
                });
            }
        }
    };
    let mut rec = Recorder { events: vec![], hook };
    let r = run::run_scenario(&sc, &run_options(&work.path().join("out"), false), &mut rec).unwrap();
    let seen = armed.lock().unwrap().clone().expect("sshd was killed while the runner ran");
    assert!(seen.contains("quadbench-runn"), "a runner was working at the kill: {seen}");
    let retries: Vec<&Event> = rec
        .events
        .iter()
        .filter(|e| matches!(e, Event::Retry { id, .. } if id.ends_with("separate-resident")))
        .collect();
    assert!(
        !retries.is_empty(),
        "the disconnect was retried; events: {:?}",
        rec.events.iter().filter(|e| !matches!(e, Event::Heartbeat { .. })).collect::<Vec<_>>()
    );
    for e in &retries {
        eprintln!("{e:?}");
    }
    if let Event::Retry { error, .. } = retries[0] {
        assert!(error.contains("infrastructure error"), "classified as infrastructure: {error}");
    }
    assert_each_run_once(&r, "board");
    for run in &r.runs {
        assert_eq!(run.status, RunState::Ok, "{}: {:?}", run.id, run.error);
    }
    let on_disk: Results =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("out/results.json")).unwrap()).unwrap();
    assert_each_run_once(&on_disk, "board");
    assert!(on_disk.complete);
    // The runner that lost its session was killed on the board, not left running.
    assert_nothing_runs_in(&root);
}

#[test]
fn unknown_or_changed_host_key_is_refused_with_exit_3() {
    let Some(server) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    for (which, name) in [(HostKey::Unknown, "unknown"), (HostKey::Wrong, "changed")] {
        let root = work.path().join(format!("root-{name}"));
        let profile = server.profile(work.path(), name, root.to_str().unwrap(), which, "retries: 0\n");
        let known_hosts = work.path().join(format!("{name}.known_hosts"));
        let before = std::fs::read(&known_hosts).unwrap();
        let sc = scenario(work.path(), &profile, 0);
        let o = common::run_within(
            common::quadbench().arg("run").arg(&sc.path).arg("--out").arg(work.path().join(format!("out-{name}"))),
            300,
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains("host key"), "{name}: {stderr}");
        let o = common::run_within(common::quadbench().args(["devices", "list", "--device"]).arg(&profile), 60);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains("host key") && stderr.contains("ssh-keyscan -p"), "{name}: {stderr}");
        assert_eq!(std::fs::read(&known_hosts).unwrap(), before, "{name}: known_hosts is never written");
        assert!(!root.exists(), "{name}: nothing was done on the board");
    }
    // The right key: `devices list --device` shows the board's fingerprint.
    let root = work.path().join("root-right");
    let profile = server.profile(work.path(), "right", root.to_str().unwrap(), HostKey::Right, "");
    let o = common::run_within(common::quadbench().args(["devices", "list", "--device"]).arg(&profile), 60);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    let uname = |a: &str| String::from_utf8(std::process::Command::new("uname").arg(a).output().unwrap().stdout);
    let (machine, hostname) = (uname("-m").unwrap(), uname("-n").unwrap());
    for want in ["right", "hostname", "arch", "cpu", "kernel", "memory", "soc", machine.trim(), hostname.trim()] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
}

#[test]
fn hostile_names_are_quoted_or_refused() {
    let Some(server) = Sshd::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    // Executed anywhere, any of these would create `pwned*` in the work directory.
    let root = format!("{w}/it's a \"board\" $(touch {w}/pwned) `touch {w}/pwned2` $HOME");
    let settings = |abi: Option<&str>| SshSettings {
        host: "127.0.0.1".into(),
        port: server.port(),
        user: Some(sshd::user()),
        identity_file: Some(server.identity()),
        known_hosts: Some(server.known_hosts(&work.path().join("kh"), HostKey::Right)),
        root: root.clone(),
        abi: abi.map(str::to_string),
    };
    // A board of another machine is refused before anything happens there.
    let Err(e) = Ssh::connect("b", &settings(Some("mips64"))) else { panic!("abi mismatch accepted") };
    assert!(matches!(&e, DeviceError::Test(m) if m.contains("uname -m") && m.contains("mips64")), "{e}");
    assert!(!Path::new(&root).exists());
    let mut t = Ssh::connect("b", &settings(Some(quadbench::device::ssh::host_machine()))).expect("connects");
    assert!(Path::new(&root).is_dir(), "the root is the literal path");

    let src = work.path().join("blob.bin");
    std::fs::write(&src, (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()).unwrap();
    let sha = sha256_file(&src).unwrap();
    assert!(t.push(&src, &sha, "packages/p1/blob.bin").unwrap(), "first push transfers");
    let on_board = Path::new(&root).join("packages/p1/blob.bin");
    assert_eq!(std::fs::read(&on_board).unwrap(), std::fs::read(&src).unwrap());
    assert!(!t.push(&src, &sha, "packages/p1/blob.bin").unwrap(), "same hash: skipped");
    std::fs::write(&on_board, b"changed on the board").unwrap();
    assert!(t.push(&src, &sha, "packages/p1/blob.bin").unwrap(), "changed in place: pushed again");
    let back = work.path().join("back/blob.bin");
    t.pull("packages/p1/blob.bin", &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());

    let script = work.path().join("echo.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\npwd\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\necho oops >&2\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.push(&script, &sha256_file(&script).unwrap(), "bin/echo.sh").unwrap();
    let hostile = ["it's", "$(touch pwned3)", "a b", "`id`", "x;exit 0", "\\", "*", "ü", "-n", "\"q\""];
    let argv: Vec<String> = std::iter::once("bin/echo.sh").chain(hostile).map(str::to_string).collect();
    let limits = ExecLimits { deadline: Duration::from_secs(30), max_silence: Duration::from_secs(30) };
    t.push(&src, &sha, "runs/r1/input.bin").unwrap();
    let mut lines = Vec::new();
    let o = t.exec(&argv, "runs/r1", &["runtime/qnn-x".into()], limits, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!((o.exit_code, o.timed_out), (Some(7), false));
    assert!(o.stderr_tail.contains("oops"), "{:?}", o.stderr_tail);
    assert_eq!(lines[0], format!("{root}/runs/r1"), "runs in its cwd under the literal root");
    let want: Vec<String> = hostile.iter().map(|h| format!("[{h}]")).collect();
    assert_eq!(&lines[1..], &want[..], "arguments arrive verbatim");
    assert!(t.exec(&["bin/echo.sh".into(), "nul\0byte".into()], "runs/r1", &[], limits, &mut |_| {}).is_err());

    // Hostile remote names are refused before anything reaches the board.
    for bad in ["../escape", "/etc/passwd", "a b/c", "x'y", "runs/../../x", "", "a//b", "q;rm -rf ~", "$(id)"] {
        assert!(matches!(t.push(&src, &sha, bad), Err(DeviceError::Test(_))), "push to {bad:?} must be refused");
        assert!(t.pull(bad, &work.path().join("x")).is_err(), "pull of {bad:?}");
        assert!(t.remove_dir(bad).is_err(), "remove of {bad:?}");
    }

    // A runner that goes silent is killed on the board: a test failure, not a lost device.
    let quiet = work.path().join("quiet.sh");
    std::fs::write(&quiet, "#!/bin/sh\necho started\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&quiet, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.push(&quiet, &sha256_file(&quiet).unwrap(), "bin/quiet.sh").unwrap();
    let t0 = Instant::now();
    let silence = ExecLimits { deadline: Duration::from_secs(60), max_silence: Duration::from_secs(2) };
    let o = t.exec(&["bin/quiet.sh".into()], "runs/r1", &[], silence, &mut |_| {}).unwrap();
    assert!(o.timed_out && t0.elapsed() < Duration::from_secs(15), "{o:?} after {:?}", t0.elapsed());
    assert_nothing_runs_in(Path::new(&root));

    t.remove_dir("packages").unwrap();
    assert!(!Path::new(&root).join("packages").exists());
    let pwned: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    assert!(pwned.is_empty(), "something was executed: {pwned:?}");
    assert!(!Path::new(&root).join("runs/r1/pwned3").exists(), "an argument was executed");
}
