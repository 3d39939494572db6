//! Helpers shared by the integration tests: small scenarios, device profiles and the binaries.
#![allow(dead_code)]

pub mod adb;
pub mod chromium;
pub mod farm;
pub mod history;
pub mod netns;
pub mod pg;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Repository root (tests run with the package dir as cwd).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("golden/inputs").is_dir())
        .expect("repository root")
        .to_path_buf()
}

/// Builds `quadbench-runner` beside the quadbench binary once: it is another package, which
/// `cargo test -p quadbench` does not build, and every run needs it.
pub fn ensure_runner() {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let bin = Path::new(env!("CARGO_BIN_EXE_quadbench"));
        let runner = bin.with_file_name("quadbench-runner");
        let profile_dir = bin.parent().unwrap();
        let target_dir = profile_dir.parent().unwrap();
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(["build", "-q", "-p", "quadbench-runner", "--target-dir"]).arg(target_dir).current_dir(repo());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        let st = c.status().expect("running cargo to build quadbench-runner");
        assert!(st.success() && runner.exists(), "building quadbench-runner failed; {} missing", runner.display());
    });
}

/// The quadbench binary under test (with the runner built beside it).
pub fn quadbench() -> Command {
    ensure_runner();
    let mut c = Command::new(env!("CARGO_BIN_EXE_quadbench"));
    c.env_remove("QUADBENCH_RUNNER_FAULT");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("spawn");
    eprintln!("--- stdout\n{}\n--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// Runs `cmd` like [`run`], but kills it and fails the test when it has not exited after `secs`
/// seconds, so a command that hangs (reading a FIFO, hashing /dev/zero) fails instead of hanging.
pub fn run_within(cmd: &mut Command, secs: u64) -> Output {
    use std::io::Read;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} was still running after {secs} s (killed)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() };
    eprintln!("--- stdout\n{}\n--- stderr\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// A child process killed (and reaped) on drop, so that a failing test leaves none behind;
/// [`ChildGuard::take`] hands it over to code that waits for it.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    pub fn take(mut self) -> Child {
        self.0.take().expect("not taken")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Makes a FIFO (named pipe) at `path`.
pub fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

// `bomb_png` and friends: the metrics crate's test PNG builder, one copy for both test suites.
include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../metrics/tests/common/png.rs"));

/// A local device profile whose work dir is private to `dir`.
pub fn local_device(dir: &Path) -> PathBuf {
    let p = dir.join("local.yaml");
    std::fs::write(&p, format!("name: local\ntransport: local\nwork_dir: {}\n", dir.join("device").display())).unwrap();
    p
}

/// A small, fast scenario: `tasks` tasks of a small reference package.
pub fn small_scenario(dir: &Path, strategies: &str, tasks: usize, width: usize, extra: &str) -> PathBuf {
    let device = local_device(dir);
    let img = repo().join("golden/inputs/astronaut.png");
    let p = dir.join("small.yaml");
    std::fs::write(
        &p,
        format!(
            "schema: quadbench.scenario/1
name: small
package:
  reference: {{tasks: {tasks}, width: {width}, resolution: 64, steps: 2, seed: 3}}
devices: [{device}]
backends: [cpu]
strategies: [{strategies}]
inputs: [{img}]
workload:
  order: round-robin
  requests_per_visit: 2
  warmup_visits: 1
  min_samples: 4
  min_switches: 2
  min_duration_s: 0
  max_duration_s: 30
claims:
  - {{name: storage-6x, metric: storage.total_bytes, baseline: separate-reload, candidate: unified, threshold: 6}}
{extra}",
            device = device.display(),
            img = img.display()
        ),
    )
    .unwrap();
    p
}

pub fn results(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("results.json")).unwrap()
}

/// Options of a library-level scenario run into `out`, with the shared package cache.
pub fn run_options(out: &Path, resume: bool) -> quadbench::scheduler::RunOptions {
    quadbench::scheduler::RunOptions {
        out: out.to_path_buf(),
        device_override: None,
        package_cache: quadbench_runtime::cache_dir().join("packages"),
        resume,
    }
}

/// Collects events and lets a test act on them (inject faults at the right moment).
pub struct Recorder<F: FnMut(&quadbench::events::Event)> {
    pub events: Vec<quadbench::events::Event>,
    pub hook: F,
}

impl<F: FnMut(&quadbench::events::Event)> quadbench::events::Reporter for Recorder<F> {
    fn event(&mut self, e: &quadbench::events::Event) {
        (self.hook)(e);
        self.events.push(e.clone());
    }
}

/// A plan for running a package in process on the CPU EP (the runner's `Executor`), as `quadbench
/// infer` makes it.
pub fn cpu_plan(m: &quadbench::package::Manifest, strategy: quadbench_protocol::Strategy) -> quadbench_protocol::Plan {
    quadbench::plan::in_process(m, strategy, String::new())
}
