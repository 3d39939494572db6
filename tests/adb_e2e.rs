//! The adb transport end to end, with no mocks: a private adb server (the real `adb`, Debian
//! 1.0.41; CI installs it) on its own port with `ADB_EMU=0` and a private HOME, the loopback
//! device (`quadbench-loopback`, confined with bubblewrap, authenticating that server's key)
//! attached to it with `adb connect`, and the real runner. Device paths are real device paths
//! (`/data/local/tmp/quadbench`); the tests look at the device's storage through
//! `LoopbackDevice::host_path`. Faults are injected through the loopback's fault switch while
//! work is in flight.
//!
//! Each test owns its adb server and loopback device and kills them at the end, so tests can run
//! in parallel. Workloads are tiny (reference package with 3 tasks at 64 px) to stay fast. The
//! server and devices: `common::adb`.

mod common;

use common::adb::{AdbServer, DEVICE_ROOT, Loopback, free_port, run_with_deadline};
use common::{Recorder, ensure_runner, repo, run_options};
use quadbench::config::Scenario;
use quadbench::device::adb::Adb;
use quadbench::device::adb::AdbSettings;
use quadbench::device::{DeviceError, ExecLimits, Transport};
use quadbench::events::Event;
use quadbench::results::{Results, RunState};
use quadbench::scheduler as run;
use quadbench_loopback::{Faults, LoopbackDevice};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An adb server with one loopback device attached.
struct Rig {
    adb: AdbServer,
    dev: Arc<LoopbackDevice>,
    _storage: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Rig {
    fn start() -> Rig {
        let adb = AdbServer::start();
        let Loopback { dev, storage } = adb.attach_loopback();
        Rig { adb, dev, _storage: storage, work: tempfile::tempdir().unwrap() }
    }

    /// The quadbench directory on the device, as on a phone.
    fn root(&self) -> String {
        DEVICE_ROOT.to_string()
    }

    /// Host path of `rel` under the device's quadbench directory.
    fn on_host(&self, rel: &str) -> PathBuf {
        self.dev.host_path(&format!("{DEVICE_ROOT}/{rel}"))
    }

    fn settings(&self) -> AdbSettings {
        AdbSettings { serial: self.dev.serial(), server: self.adb.addr(), root: self.root(), abi: None }
    }

    fn transport(&self) -> Adb {
        Adb::connect("loopback", &self.settings()).expect("the adb transport reaches the loopback device")
    }

    /// A device profile for this rig.
    fn profile(&self, name: &str, retries: u32, backoff_ms: u64) -> PathBuf {
        self.adb.profile(self.work.path(), name, &self.dev.serial(), retries, backoff_ms)
    }
}

fn local_profile(dir: &Path) -> PathBuf {
    let p = dir.join("local.yaml");
    std::fs::write(
        &p,
        format!(
            "name: local\ntransport: local\nwork_dir: \"{}\"\nrunner: auto\nort_library: auto\n",
            dir.join("local-device").display()
        ),
    )
    .unwrap();
    p
}

/// A 3-strategy scenario on the small reference package.
fn scenario(dir: &Path, device: &Path, min_duration_s: f64) -> Scenario {
    let p = dir.join(format!("scenario-{}.yaml", device.file_stem().unwrap().to_str().unwrap()));
    let text = format!(
        "schema: quadbench.scenario/1\nname: adb-e2e\npackage:\n  reference: {{tasks: 3, width: 64, resolution: 64, steps: 2}}\ndevices: [\"{}\"]\nbackends: [cpu]\nstrategies: [unified, separate-resident, separate-reload]\ninputs: [astronaut]\nworkload:\n  min_samples: 4\n  min_switches: 2\n  min_duration_s: {min_duration_s}\n  max_duration_s: 20\nthreads: 1\n",
        device.display()
    );
    std::fs::write(&p, text).unwrap();
    Scenario::load(&p).unwrap()
}

fn ids(r: &Results) -> Vec<String> {
    let mut v: Vec<String> = r.runs.iter().map(|x| x.id.clone()).collect();
    v.sort();
    v
}

fn assert_each_run_once(r: &Results, device: &str) {
    let want: Vec<String> =
        ["separate-reload", "separate-resident", "unified"].iter().map(|s| format!("{device}-cpu-fp32-{s}")).collect();
    assert_eq!(ids(r), want, "every run exactly once");
}

#[test]
fn real_adb_client_and_transport_pass_against_loopback() {
    let rig = Rig::start();
    // The real client: shell with exit code, push and pull.
    let (code, out) = rig.adb.run(&["-s", &rig.dev.serial(), "shell", "echo hello; exit 3"]);
    assert_eq!((code, out.trim()), (Some(3), "hello"));
    let (code, out) = rig.adb.run(&["devices"]);
    assert!(code == Some(0) && out.contains(&format!("{}\tdevice", rig.dev.serial())), "{out}");

    let mut t = rig.transport();
    let info = t.info();
    assert_eq!(
        (info.transport.as_str(), info.model.as_deref(), info.soc.as_deref()),
        ("adb", Some("quadbench-loopback"), Some("loopback"))
    );
    assert_eq!(info.os_version.as_deref(), Some("Android 14 (SDK 34)"));

    // Push: transferred, verified on the device, skipped while the hash matches.
    let src = rig.work.path().join("blob.bin");
    std::fs::write(&src, (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()).unwrap();
    let sha = quadbench::package::manifest::sha256_file(&src).unwrap();
    assert!(t.push(&src, &sha, "packages/p1/blob.bin").unwrap(), "first push transfers");
    let on_device = rig.on_host("packages/p1/blob.bin");
    assert_eq!(std::fs::read(&on_device).unwrap(), std::fs::read(&src).unwrap());
    assert!(!t.push(&src, &sha, "packages/p1/blob.bin").unwrap(), "second push is skipped: same hash");
    // The real client sees it too.
    let pulled = rig.work.path().join("via-adb.bin");
    let device_path = format!("{DEVICE_ROOT}/packages/p1/blob.bin");
    let (code, out) = rig.adb.run(&["-s", &rig.dev.serial(), "pull", &device_path, pulled.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(std::fs::read(&pulled).unwrap(), std::fs::read(&src).unwrap());
    // A changed file is pushed again.
    std::fs::write(&src, b"changed").unwrap();
    let sha2 = quadbench::package::manifest::sha256_file(&src).unwrap();
    assert!(t.push(&src, &sha2, "packages/p1/blob.bin").unwrap());
    assert_eq!(std::fs::read(&on_device).unwrap(), b"changed");

    // Pull through the transport.
    let back = rig.work.path().join("back/blob.bin");
    t.pull("packages/p1/blob.bin", &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), b"changed");

    // Exec: exit code, streamed stdout lines, stderr tail, hostile arguments verbatim.
    let script = rig.work.path().join("echo.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\npwd -P\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\necho oops >&2\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ssha = quadbench::package::manifest::sha256_file(&script).unwrap();
    t.push(&script, &ssha, "bin/echo.sh").unwrap();
    let hostile = ["it's", "$(touch pwned)", "a b", "`id`", "x;exit 0", "\\", "*", "ü"];
    let mut argv = vec!["bin/echo.sh".to_string()];
    argv.extend(hostile.iter().map(|s| s.to_string()));
    let mut lines = Vec::new();
    let limits = ExecLimits { deadline: Duration::from_secs(30), max_silence: Duration::from_secs(30) };
    std::fs::create_dir_all(rig.on_host("runs/r1")).unwrap();
    let o = t.exec(&argv, "runs/r1", &[], limits, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(o.exit_code, Some(7));
    assert!(!o.timed_out);
    assert!(o.stderr_tail.contains("oops"), "{:?}", o.stderr_tail);
    assert_eq!(lines[0], format!("{DEVICE_ROOT}/runs/r1"), "runs in its cwd, a device path");
    let want: Vec<String> = hostile.iter().map(|h| format!("[{h}]")).collect();
    assert_eq!(&lines[1..], &want[..], "arguments arrive verbatim");
    assert!(!rig.on_host("runs/r1/pwned").exists() && !rig.dev.host_path("/pwned").exists(), "no injection");
    assert!(t.exec(&["bin/echo.sh".into(), "nul\0byte".into()], "runs/r1", &[], limits, &mut |_| {}).is_err());
    // Library directories reach the command as absolute loader paths (QNN's HTP libraries).
    let env_script = rig.work.path().join("env.sh");
    std::fs::write(&env_script, "#!/bin/sh\necho \"LD=$LD_LIBRARY_PATH\"\necho \"ADSP=$ADSP_LIBRARY_PATH\"\n").unwrap();
    std::fs::set_permissions(&env_script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t.push(&env_script, &quadbench::package::manifest::sha256_file(&env_script).unwrap(), "bin/env.sh").unwrap();
    let mut lines = Vec::new();
    let o = t
        .exec(
            &["bin/env.sh".into()],
            "runs/r1",
            &["runtime/qnn-x/lib".into(), "runtime/qnn-x/lib.libs".into()],
            limits,
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap();
    assert_eq!(o.exit_code, Some(0));
    let root = rig.root();
    assert!(
        lines[0].starts_with(&format!("LD={root}/runtime/qnn-x/lib:{root}/runtime/qnn-x/lib.libs:{root}/runtime")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "ADSP={root}/runtime/qnn-x/lib;{root}/runtime/qnn-x/lib.libs;/vendor/lib/rfsa/adsp;"
        )) && lines[1].ends_with(";/dsp"),
        "{lines:?}"
    );
    assert!(
        t.exec(&["bin/env.sh".into()], "runs/r1", &["../escape".into()], limits, &mut |_| {}).is_err(),
        "library dirs are validated like every remote path"
    );

    // Hostile remote names are refused before anything reaches the device.
    for bad in ["../escape", "/etc/passwd", "a b/c", "x'y", "runs/../../x", "", "a//b", "ok/..", "q;rm -rf ~"] {
        assert!(matches!(t.push(&src, &sha2, bad), Err(DeviceError::Test(_))), "push to {bad:?} must be refused");
        assert!(t.pull(bad, &rig.work.path().join("x")).is_err(), "pull of {bad:?}");
        assert!(t.remove_dir(bad).is_err(), "remove of {bad:?}");
    }

    t.remove_dir("packages/p1").unwrap();
    assert!(!rig.on_host("packages/p1").exists());
}

#[test]
fn lost_exit_status_and_corrupt_push_are_infrastructure_errors() {
    let rig = Rig::start();
    let mut t = rig.transport();
    // Corruption in transit: detected by the on-device hash, nothing left under the name.
    rig.dev.set_faults(Faults { corrupt_push: true, ..Default::default() });
    let src = rig.work.path().join("model.bin");
    std::fs::write(&src, vec![42u8; 100_000]).unwrap();
    let sha = quadbench::package::manifest::sha256_file(&src).unwrap();
    match t.push(&src, &sha, "packages/m/model.bin") {
        Err(DeviceError::Infra { message, .. }) => assert!(message.contains("hash mismatch"), "{message}"),
        other => panic!("expected a hash mismatch infrastructure error, got {other:?}"),
    }
    assert!(!rig.on_host("packages/m/model.bin").exists(), "a corrupted upload never takes the final name");
    rig.dev.set_faults(Faults::default());
    assert!(t.push(&src, &sha, "packages/m/model.bin").unwrap());

    // The connection dies while a command runs: no exit status -> infrastructure error.
    let script = rig.work.path().join("slow.sh");
    std::fs::write(&script, "#!/bin/sh\nwhile true; do echo tick; sleep 0.1; done\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t.push(&script, &quadbench::package::manifest::sha256_file(&script).unwrap(), "bin/slow.sh").unwrap();
    let dev = rig.dev.clone();
    let mut ticks = 0;
    let limits = ExecLimits { deadline: Duration::from_secs(60), max_silence: Duration::from_secs(60) };
    let t0 = Instant::now();
    let r = t.exec(&["bin/slow.sh".into()], "bin", &[], limits, &mut |_| {
        ticks += 1;
        if ticks == 3 {
            dev.set_faults(Faults { drop_after_bytes: Some(1), ..Default::default() });
        }
    });
    match r {
        Err(DeviceError::Infra { .. }) => {}
        other => panic!("expected an infrastructure error, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "classified promptly, not at the deadline");
    rig.dev.set_faults(Faults::default());

    // A silent runner on a healthy device is killed at max_silence and reported as timed out.
    let mut t = rig.transport();
    let quiet = rig.work.path().join("quiet.sh");
    std::fs::write(&quiet, "#!/bin/sh\nsleep 60\n").unwrap();
    std::fs::set_permissions(&quiet, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t.push(&quiet, &quadbench::package::manifest::sha256_file(&quiet).unwrap(), "bin/quiet.sh").unwrap();
    let t0 = Instant::now();
    let o = t
        .exec(
            &["bin/quiet.sh".into()],
            "bin",
            &[],
            ExecLimits { deadline: Duration::from_secs(60), max_silence: Duration::from_secs(2) },
            &mut |_| {},
        )
        .unwrap();
    assert!(o.timed_out && t0.elapsed() < Duration::from_secs(15), "{o:?} after {:?}", t0.elapsed());
}

#[test]
fn cli_loopback_device_and_devices_list() {
    let adb = AdbServer::start();
    let storage = tempfile::tempdir().unwrap();
    // Without a key to check, the device does not start: exit 2, naming the file and the fix.
    let no_home = tempfile::tempdir().unwrap();
    let mut missing = Command::new(env!("CARGO_BIN_EXE_quadbench"));
    missing.args(["loopback-device", "--port", &free_port().to_string(), "--root"]).arg(storage.path());
    missing.env("HOME", no_home.path());
    let (code, out) = run_with_deadline(missing, no_home.path(), Duration::from_secs(30));
    assert_eq!(code, Some(2), "{out}");
    let want = no_home.path().join(".android/adbkey.pub");
    assert!(out.contains(&want.display().to_string()) && out.contains("adb start-server"), "{out}");
    // The default key is the one of this HOME's adb server: the common case needs no flag.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quadbench"))
        .args(["loopback-device", "--port", &port.to_string(), "--root"])
        .arg(storage.path())
        .env("HOME", adb.home())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serial = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&serial).is_err() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out) = adb.run(&["connect", &serial]);
    assert!(code == Some(0) && out.contains("connected"), "{out}");
    let (code, out) = adb.run(&["-s", &serial, "shell", "pwd; echo cli > /data/local/tmp/cli.txt"]);
    assert_eq!((code, out.trim()), (Some(0), "/"));
    assert_eq!(std::fs::read_to_string(storage.path().join("data/local/tmp/cli.txt")).unwrap(), "cli\n");
    let mut list = Command::new(env!("CARGO_BIN_EXE_quadbench"));
    list.args(["devices", "list", "--adb-server", &adb.addr().to_string()]);
    let (code, out) = run_with_deadline(list, adb.home(), Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, Some(0), "{out}");
    let line = out.lines().find(|l| l.starts_with(&serial)).unwrap_or_else(|| panic!("device missing from:\n{out}"));
    for want in ["device", "quadbench-loopback", "loopback", "Android 14"] {
        assert!(line.contains(want), "{want} missing in {line:?}");
    }
}

#[test]
fn scenario_over_adb_matches_local() {
    ensure_runner();
    let rig = Rig::start();
    let sc_adb = scenario(rig.work.path(), &rig.profile("lb", 2, 200), 0.0);
    let sc_local = scenario(rig.work.path(), &local_profile(rig.work.path()), 0.0);
    let t0 = Instant::now();
    let mut rec = Recorder { events: vec![], hook: |_: &Event| {} };
    let local =
        run::run_scenario(&sc_local, &run_options(&rig.work.path().join("out-local"), false), &mut rec).unwrap();
    let t_local = t0.elapsed();
    let t0 = Instant::now();
    let mut rec = Recorder { events: vec![], hook: |_: &Event| {} };
    let adb = run::run_scenario(&sc_adb, &run_options(&rig.work.path().join("out-adb"), false), &mut rec).unwrap();
    let t_adb = t0.elapsed();
    assert!(adb.complete);
    assert_each_run_once(&adb, "lb");
    assert!(rec.events.iter().any(|e| matches!(e, Event::Heartbeat { .. })), "heartbeats stream through adb");
    for a in &adb.runs {
        assert_eq!(a.status, RunState::Ok, "{}: {:?} {}", a.id, a.error, a.stderr_tail);
        assert!(!a.infrastructure_error);
        assert_eq!(a.environment.device_model.as_deref(), Some("quadbench-loopback"));
        let l = local.runs.iter().find(|l| l.strategy == a.strategy).unwrap();
        assert_eq!(a.storage, l.storage, "{}: storage is a property of the package, identical on both", a.id);
        assert_eq!(a.outputs.len(), l.outputs.len());
        for o in &a.outputs {
            assert!(rig.work.path().join("out-adb").join(&o.path).is_file(), "output {} pulled", o.path);
        }
        for k in ["e2e", "switch"] {
            let (x, y) = (a.latency_ms[k].p50, l.latency_ms[k].p50);
            eprintln!("{:<18} {k:<7} p50 adb {x:8.2} ms  local {y:8.2} ms  ratio {:.2}", a.strategy.as_str(), x / y);
            // Same order of magnitude: milliseconds on a shared 2-core machine are noisy.
            assert!(x / y < 10.0 && y / x < 10.0, "{} {k}: adb {x} ms vs local {y} ms are not the same order", a.id);
        }
    }
    eprintln!("wall: local {t_local:?}, adb {t_adb:?}");
    // The runner and package went to the device once: a second run pushes only per-run files.
    assert!(rig.on_host("bin/quadbench-runner").is_file());
    assert!(
        !rig.on_host("runs").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false),
        "run directories cleaned up"
    );
}

#[test]
fn disconnect_mid_run_is_retried_and_every_run_recorded_once() {
    ensure_runner();
    let rig = Rig::start();
    let sc = scenario(rig.work.path(), &rig.profile("lb", 4, 500), 3.0);
    let dev = rig.dev.clone();
    let armed = Arc::new(Mutex::new(false));
    let hook = {
        let armed = armed.clone();
        move |e: &Event| {
            if let Event::Heartbeat { id, .. } = e
                && id.ends_with("separate-resident")
            {
                let mut a = armed.lock().unwrap();
                if !*a {
                    *a = true;
                    // Cut every connection of the device, then heal it a little later.
                    dev.set_faults(Faults { drop_after_bytes: Some(1), ..Default::default() });
                    let dev = dev.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(1500));
                        dev.set_faults(Faults::default());
                    });
                }
            }
        }
    };
    let mut rec = Recorder { events: vec![], hook };
    let r = run::run_scenario(&sc, &run_options(&rig.work.path().join("out"), false), &mut rec).unwrap();
    assert!(*armed.lock().unwrap(), "the fault was injected while the runner ran");
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
    if let Event::Retry { error, .. } = retries[0] {
        assert!(error.contains("infrastructure error"), "classified as infrastructure: {error}");
    }
    assert_each_run_once(&r, "lb");
    for run in &r.runs {
        assert_eq!(run.status, RunState::Ok, "{}: {:?}", run.id, run.error);
    }
    let on_disk: Results =
        serde_json::from_str(&std::fs::read_to_string(rig.work.path().join("out/results.json")).unwrap()).unwrap();
    assert_each_run_once(&on_disk, "lb");
    assert!(on_disk.complete);
}

#[test]
fn unhealthy_device_then_resume_skips_finished_runs() {
    ensure_runner();
    let rig = Rig::start();
    let profile = rig.profile("lb", 1, 100);
    let sc = scenario(rig.work.path(), &profile, 0.0);
    let out = rig.work.path().join("out");
    // From the second run on, every upload is corrupted: a persistent infrastructure error.
    let dev = rig.dev.clone();
    let hook = move |e: &Event| {
        if let Event::RunStarted { index: 2, .. } = e {
            dev.set_faults(Faults { corrupt_push: true, ..Default::default() });
        }
    };
    let mut rec = Recorder { events: vec![], hook };
    let t0 = Instant::now();
    let first = run::run_scenario(&sc, &run_options(&out, false), &mut rec).unwrap();
    assert_each_run_once(&first, "lb");
    let by = |r: &Results, s: &str| r.runs.iter().find(|x| x.id.ends_with(s)).unwrap().clone();
    assert_eq!(by(&first, "-unified").status, RunState::Ok);
    let second = by(&first, "separate-resident");
    assert!(second.status == RunState::Failed && second.infrastructure_error, "{second:?}");
    assert!(second.error.as_deref().unwrap().contains("hash mismatch"), "{:?}", second.error);
    let third = by(&first, "separate-reload");
    assert!(
        third.infrastructure_error && third.error.as_deref().unwrap().contains("not run"),
        "unhealthy device: remaining runs skipped: {:?}",
        third.error
    );
    assert!(rec.events.iter().any(|e| matches!(e, Event::DeviceUnhealthy { .. })));
    assert!(t0.elapsed() < Duration::from_secs(120));

    // Healthy again: --resume (through the CLI) keeps the finished run and redoes the others.
    rig.dev.set_faults(Faults::default());
    let unified_json = |r: serde_json::Value| {
        r["runs"].as_array().unwrap().iter().find(|x| x["strategy"] == "unified").unwrap().clone()
    };
    let kept_before =
        unified_json(serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap());
    let csv_mtime = std::fs::metadata(out.join(&by(&first, "-unified").samples_csv)).unwrap().modified().unwrap();
    let mut cli = Command::new(env!("CARGO_BIN_EXE_quadbench"));
    cli.arg("run").arg(&sc.path).arg("--out").arg(&out).arg("--resume").current_dir(repo());
    let (code, log) = run_with_deadline(cli, rig.work.path(), Duration::from_secs(300));
    assert_eq!(code, Some(0), "quadbench run --resume failed:\n{log}");
    assert_eq!(log.matches("kept (--resume)").count(), 1, "exactly the finished run is skipped:\n{log}");
    let resumed: Results = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_each_run_once(&resumed, "lb");
    assert!(resumed.complete);
    assert!(
        resumed.runs.iter().all(|r| r.status == RunState::Ok),
        "{:?}",
        resumed.runs.iter().map(|r| (&r.id, &r.error)).collect::<Vec<_>>()
    );
    let kept_after =
        unified_json(serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap());
    assert!(kept_after == kept_before, "the finished run is carried over untouched:\n{kept_before}\n{kept_after}");
    assert_eq!(
        std::fs::metadata(out.join(&by(&resumed, "-unified").samples_csv)).unwrap().modified().unwrap(),
        csv_mtime,
        "and not re-measured"
    );
}

/// The NPU path through adb: the QNN plugin directory (its vendored `libc++-….so.1.0` included)
/// is pushed with its layout kept, the runner finds it through the plan and the loaders' paths,
/// every graph compiles to one HTP partition on the device, and the outputs are bit-identical
/// to the same scenario on the local transport (the HTP simulator is deterministic).
#[test]
fn npu_scenario_over_adb_pushes_the_qnn_plugin_and_matches_local() {
    ensure_runner();
    let rig = Rig::start();
    let npu_scenario = |device: &Path| {
        let p = rig.work.path().join(format!("npu-{}.yaml", device.file_stem().unwrap().to_str().unwrap()));
        let text = format!(
            "schema: quadbench.scenario/1\nname: adb-npu\npackage:\n  reference: {{tasks: 2, width: 128, resolution: 64, steps: 2, seed: 7}}\n  quantize: {{precision: w8a16, profile: anchor}}\ndevices: [\"{}\"]\nbackends: [qnn-htp]\nbackend_options:\n  qnn-htp: {{ep_context: \"1\"}}\nrequire_full_offload: true\nprecision: w8a16\nstrategies: [unified]\ninputs: [astronaut]\nworkload:\n  min_samples: 2\n  min_switches: 2\n  min_duration_s: 0\n  max_duration_s: 30\nthrottle: {{enabled: false}}\n",
            device.display()
        );
        std::fs::write(&p, text).unwrap();
        Scenario::load(&p).unwrap()
    };
    let mut rec = Recorder { events: vec![], hook: |_: &Event| {} };
    let local = run::run_scenario(
        &npu_scenario(&local_profile(rig.work.path())),
        &run_options(&rig.work.path().join("out-local"), false),
        &mut rec,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut rec = Recorder { events: vec![], hook: |_: &Event| {} };
    let adb = run::run_scenario(
        &npu_scenario(&rig.profile("lb", 1, 200)),
        &run_options(&rig.work.path().join("out-adb"), false),
        &mut rec,
    )
    .unwrap();
    eprintln!("npu over adb: {:?} (plugin push included)", t0.elapsed());
    let (a, l) = (&adb.runs[0], &local.runs[0]);
    for r in [a, l] {
        assert_eq!(r.status, RunState::Ok, "{}: {:?}\n{}", r.id, r.error, r.stderr_tail);
        assert!(!r.compiled.is_empty(), "{}: compiled to EP-context binaries", r.id);
        for c in &r.compiled {
            assert_eq!(
                (c.placement.execution_provider.as_str(), c.placement.partitions),
                ("QNNExecutionProvider", 1),
                "{}: {}",
                r.id,
                c.graph
            );
            assert!(
                c.placement.cpu_nodes.is_empty(),
                "{}: {} has nodes on the CPU EP: {:?}",
                r.id,
                c.graph,
                c.placement.cpu_nodes
            );
        }
    }
    assert!(
        rec.events
            .iter()
            .any(|e| matches!(e, Event::Step { message } if message.starts_with("staging QNNExecutionProvider")))
    );
    // The plugin and its vendored C++ runtime are on the device, under a per-build directory.
    let runtime = rig.on_host("runtime");
    let qnn_dir = std::fs::read_dir(&runtime)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("qnn-"))
        .expect("runtime/qnn-<digest> on the device");
    assert!(qnn_dir.join("onnxruntime_qnn/libonnxruntime_providers_qnn.so").is_file());
    assert!(qnn_dir.join("onnxruntime_qnn.libs/libc++-71bc274c.so.1.0").is_file());
    assert!(!qnn_dir.join("onnxruntime_qnn/Qualcomm_LICENSE.pdf").exists(), "only libraries are pushed");
    assert_eq!(a.storage, l.storage);
    assert_eq!(a.storage_basis, l.storage_basis);
    assert_eq!(a.outputs.len(), l.outputs.len());
    for o in &a.outputs {
        let lo = l.outputs.iter().find(|x| x.task == o.task && x.input == o.input).unwrap();
        let (ab, lb) = (
            std::fs::read(rig.work.path().join("out-adb").join(&o.path)).unwrap(),
            std::fs::read(rig.work.path().join("out-local").join(&lo.path)).unwrap(),
        );
        assert!(ab == lb, "{}/{}: the NPU output over adb differs from the local one", o.task, o.input);
    }
}
