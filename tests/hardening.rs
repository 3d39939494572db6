//! Hostile and clumsy use of `quadbench run`, as a nightly farm meets it: two invocations into one
//! results directory, resuming with another setup, re-running into finished results, killing the
//! host, interrupting it, hostile names and absurd numbers, and a user's scenario outside the
//! checkout. Each case is one the hardening issue reported against bc77517 (exit 0 and lost or
//! mixed results, a runner left running, names escaping their directories, a refusal to run).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A small scenario whose runs take about `seconds` each (so something can happen meanwhile).
fn slow_scenario(dir: &Path, strategies: &str, seconds: u32) -> PathBuf {
    let sc = small_scenario(dir, strategies, 2, 32, "throttle: {enabled: false}\n");
    let text = std::fs::read_to_string(&sc)
        .unwrap()
        .replace("min_duration_s: 0", &format!("min_duration_s: {seconds}"))
        .replace("max_duration_s: 30", &format!("max_duration_s: {seconds}"))
        .replace("min_samples: 4", "min_samples: 1000000");
    std::fs::write(&sc, text).unwrap();
    sc
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn quadbench")
}

/// Wait until `cond` holds, at most `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Pids of processes whose executable lies under `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&dir)))
        .collect()
}

fn output(child: Child) -> (Option<i32>, String) {
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("--- stderr\n{err}");
    (o.status.code(), err)
}

#[test]
fn a_second_run_into_the_same_results_directory_is_refused_naming_the_holder() {
    let d = tempfile::tempdir().unwrap();
    let sc = slow_scenario(d.path(), "unified", 6);
    let out = d.path().join("out");
    let first = spawn(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    let pid = first.id();
    let lock = out.join(".quadbench.lock");
    assert!(
        wait_for(Duration::from_secs(120), || std::fs::read_to_string(&lock)
            .is_ok_and(|s| s.trim() == pid.to_string())),
        "the first invocation never took the lock"
    );
    let t0 = Instant::now();
    let second = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(second.status.code(), Some(3));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&out.display().to_string()) && err.contains(&format!("pid {pid}")), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(60), "refused at once, not after waiting");
    let (code, _) = output(first);
    assert!(matches!(code, Some(0 | 1)), "the first invocation finished normally: {code:?}");
    assert_eq!(results(&out)["runs"].as_array().unwrap().len(), 1);
}

#[test]
fn finished_results_are_never_overwritten_and_resume_refuses_another_setup() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(matches!(o.status.code(), Some(0 | 1)));
    let before = std::fs::read(out.join("results.json")).unwrap();

    // A plain run into it: refused, nothing touched.
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already holds results") && err.contains("--resume"), "{err}");
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);

    // --resume with another workload: refused, naming the scenario.
    let other = d.path().join("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&sc).unwrap().replace("requests_per_visit: 2", "requests_per_visit: 3"),
    )
    .unwrap();
    let o = run(quadbench().arg("run").arg(&other).arg("--out").arg(&out).arg("--resume"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("scenario differs"), "{err}");
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);

    // --resume with another device profile under the same name: refused, naming the device.
    let dev = d.path().join("local.yaml");
    std::fs::write(&dev, format!("{}keep_runs: true\n", std::fs::read_to_string(&dev).unwrap())).unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out).arg("--resume"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("device profile `local` differs"), "{err}");
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
}

#[test]
fn the_runner_dies_with_its_host_even_on_kill_9() {
    let d = tempfile::tempdir().unwrap();
    let sc = slow_scenario(d.path(), "unified", 30);
    let device = d.path().join("device");
    let mut host = spawn(quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")));
    assert!(wait_for(Duration::from_secs(120), || !processes_under(&device).is_empty()), "the runner never started");
    host.kill().unwrap(); // SIGKILL: no handler runs in the host
    host.wait().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || processes_under(&device).is_empty()),
        "runner still alive after its host was killed: {:?}",
        processes_under(&device)
    );
}

#[test]
fn sigint_records_the_interrupted_run_writes_results_and_exits_130() {
    let d = tempfile::tempdir().unwrap();
    let sc = slow_scenario(d.path(), "unified, separate-reload", 30);
    let device = d.path().join("device");
    let out = d.path().join("out");
    let host = spawn(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(wait_for(Duration::from_secs(120), || !processes_under(&device).is_empty()), "the runner never started");
    let t0 = Instant::now();
    // SAFETY: signalling a child we spawned.
    assert_eq!(unsafe { libc::kill(host.id() as i32, libc::SIGINT) }, 0);
    let (code, err) = output(host);
    assert_eq!(code, Some(130), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20), "stopped promptly");
    assert!(err.contains("interrupted by SIGINT") && err.contains("--resume"), "{err}");
    assert!(processes_under(&device).is_empty(), "no runner left behind");
    let r = results(&out);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the run in flight is recorded, the next one never started: {r}");
    assert_eq!(runs[0]["status"], "failed");
    assert!(runs[0]["error"].as_str().unwrap().contains("interrupted by SIGINT"), "{}", runs[0]);
    assert_eq!(r["complete"], false);
    assert!(std::fs::read_dir(device.join("runs")).map(|mut e| e.next().is_none()).unwrap_or(true), "run dir removed");
}

#[test]
fn hostile_names_and_absurd_numbers_are_refused_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "");
    let text = std::fs::read_to_string(&sc).unwrap();
    let cache = d.path().join("cache");
    for (from, to, key) in [
        ("name: small", "name: \"../escape\"", "name"),
        ("name: small", "name: \"a\\nb\"", "name"),
        ("resolution: 64", "resolution: 1000000000", "resolution"),
        ("backends: [cpu]\n", "backends: [cpu]\nthreads: 100000\n", "threads"),
        ("warmup_visits: 1", "warmup_visits: 4294967295", "warmup_visits"),
        ("requests_per_visit: 2", "requests_per_visit: 0", "requests_per_visit"),
        ("max_duration_s: 30", "max_duration_s: 1e300", "max_duration_s"),
    ] {
        let bad = d.path().join("bad.yaml");
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let out = d.path().join("never");
        let t0 = Instant::now();
        let o = run(quadbench().arg("run").arg(&bad).arg("--out").arg(&out).env("QUADBENCH_CACHE_DIR", &cache));
        assert_eq!(o.status.code(), Some(2), "{to}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("bad.yaml:") && err.contains(key), "{to}: {err}");
        assert!(t0.elapsed() < Duration::from_secs(30), "{to}: refused at once");
        assert!(!out.exists(), "{to}: no output directory for refused input");
        let leftovers: Vec<_> = std::fs::read_dir(cache.join("packages"))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "{to}: package cache touched: {leftovers:?}");
    }
    // A package named to climb out of golden/ fails its check.
    let pkg = d.path().join("pkg");
    let o = run(quadbench()
        .args(["package", "reference", "--tasks", "2", "--width", "32", "--resolution", "64", "--out"])
        .arg(&pkg));
    assert_eq!(o.status.code(), Some(0));
    let manifest = pkg.join("package.yaml");
    let m = std::fs::read_to_string(&manifest).unwrap();
    let name_line = m.lines().find(|l| l.starts_with("name:")).unwrap().to_string();
    std::fs::write(&manifest, m.replacen(&name_line, "name: ../../../tmp/x", 1)).unwrap();
    let o = run(quadbench().arg("package").arg("check").arg(&pkg));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("package.yaml:"), "file:line named");
}

#[test]
fn a_users_scenario_runs_from_any_directory_with_bundled_inputs() {
    let d = tempfile::tempdir().unwrap();
    let elsewhere = d.path().join("my-project");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let sc = small_scenario(&elsewhere, "unified", 2, 32, "");
    // Inputs by name (bundled), devices relative to the scenario, run from its own directory.
    let text = std::fs::read_to_string(&sc).unwrap();
    let inputs_line = text.lines().find(|l| l.starts_with("inputs:")).unwrap().to_string();
    let devices_line = text.lines().find(|l| l.starts_with("devices:")).unwrap().to_string();
    std::fs::write(
        &sc,
        text.replace(&inputs_line, "inputs: [astronaut]").replace(&devices_line, "devices: [local.yaml]"),
    )
    .unwrap();
    let o = run(quadbench().arg("run").arg("small.yaml").current_dir(&elsewhere));
    assert!(matches!(o.status.code(), Some(0 | 1)), "ran outside the checkout");
    let reports: Vec<_> = std::fs::read_dir(elsewhere.join("reports")).unwrap().flatten().collect();
    assert_eq!(reports.len(), 1, "results under ./reports of the current directory");
    let r = results(&reports[0].path());
    assert_eq!(r["runs"][0]["status"], "ok", "{r}");
    assert!(r["runs"][0]["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r["runs"][0]["key"], "small/local/cpu/fp32/unified");
}

/// A full disk (here: the temporary file behind results.json or plan.json is /dev/full, which
/// fails every write with ENOSPC) is an output error: exit 3 with the system's words, no retries
/// of a device that did nothing wrong, and no temporary file left behind.
#[test]
fn a_full_disk_is_an_output_error_that_leaves_no_temporary_files() {
    let d = tempfile::tempdir().unwrap();
    let sc = small_scenario(d.path(), "unified", 2, 32, "throttle: {enabled: false}\n");
    let gone = |p: &Path| std::fs::symlink_metadata(p).is_err();

    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let tmp = out.join("results.json.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("results.json") && err.contains("No space left on device"), "{err}");
    assert!(gone(&tmp), "results.json.tmp left behind");

    let out = d.path().join("out2");
    let run_dir = out.join("runs/local-cpu-fp32-unified");
    std::fs::create_dir_all(&run_dir).unwrap();
    let tmp = run_dir.join("plan.json.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device") && !err.contains("retry"), "{err}");
    assert!(gone(&tmp), "plan.json.tmp left behind");
    let r = results(&out);
    assert!(r["runs"][0]["error"].as_str().unwrap().contains("on this host"), "{r}");
}
