//! One run on one device: push what it needs (runner, runtime, plugin libraries, package files,
//! inputs, plan), execute the runner under the watchdog, pull its result and outputs, and turn
//! them into a [`RunRecord`].

use crate::backend::EpBundle;
use crate::config::{DeviceProfile, Scenario};
use crate::device::{DeviceError, DeviceInfo, ExecLimits, Transport};
use crate::events::{Event, Reporter};
use crate::package::Manifest;
use crate::package::manifest::sha256_file;
use crate::package::ort_adapter::OrtAdapterFile;
use crate::plan::{self, RemoteLayout, RunSpec};
use crate::results::{self, Environment, RunIdentity, RunRecord, RunState};
use quadbench_protocol::{Heartbeat, OutputTensor, PlanInput, RunResult, Strategy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What every run of a scenario shares.
pub struct Shared<'a> {
    pub sc: &'a Scenario,
    pub m: &'a Manifest,
    pub pkg_dir: &'a Path,
    pub inputs: &'a [(String, PathBuf)],
    /// Per input (same order): graph input name -> its staged per-request tensor (raw f32).
    pub request_tensors: &'a [std::collections::BTreeMap<String, PathBuf>],
    /// The `.onnx_adapter` files of strategy `unified-ort-adapter` (empty when no run uses it).
    pub ort_adapters: &'a [OrtAdapterFile],
    pub out: &'a Path,
    /// Set when a run could not write on this host (disk full): the scheduler stops.
    pub host_output_error: std::sync::Mutex<Option<(String, String)>>,
}

/// What one device's runs share.
pub struct DeviceRun<'a> {
    pub profile: &'a DeviceProfile,
    pub runner: &'a Path,
    pub ort_lib: &'a Path,
}

/// A record for a run that produced no result.
pub fn failed(s: &Shared<'_>, d: &DeviceRun<'_>, spec: &RunSpec, msg: String, tail: String, infra: bool) -> RunRecord {
    let storage = crate::package::storage::strategy_files(s.m, spec.strategy, s.ort_adapters).1;
    let run = RunIdentity {
        id: &spec.id,
        device: &d.profile.name,
        backend: spec.backend.as_str(),
        precision: &s.sc.precision,
        strategy: spec.strategy,
    };
    RunRecord::failed(run, storage, msg, tail, infra)
}

/// Run `spec` through transport `t`.
pub fn run_one(
    s: &Shared<'_>,
    d: &DeviceRun<'_>,
    spec: &RunSpec,
    ep: &Result<Option<EpBundle>, String>,
    t: &mut dyn Transport,
    info: &DeviceInfo,
    rep: &mut dyn Reporter,
) -> RunRecord {
    let ep = match ep {
        Ok(ep) => ep.as_ref(),
        Err(why) => {
            // Known before touching the device: skipped, like a backend the runner cannot load.
            let mut r = failed(s, d, spec, format!("backend unsupported: {why}"), String::new(), false);
            r.status = RunState::Unsupported;
            r.validity_note = "skipped: backend unsupported on this device".into();
            return r;
        }
    };
    match stage_and_execute(s, d, spec, ep, t, rep) {
        Ok((result, tail)) => {
            let env = Environment {
                runner: result.environment.clone(),
                quadbench_version: env!("CARGO_PKG_VERSION").into(),
                git_revision: option_env!("QUADBENCH_GIT_REVISION").unwrap_or("unknown").to_string(),
                package_sha256: s.m.sha256.clone(),
                device_model: info.model.clone(),
                device_soc: info.soc.clone(),
            };
            let csv_rel = format!("samples/{}.csv", spec.id);
            let mut rec = RunRecord::from_result(&spec.id, &d.profile.name, &result, env, csv_rel);
            rec.latency_ms = crate::stats::summaries(&rec.samples);
            rec.stderr_tail = if rec.status == RunState::Ok { String::new() } else { tail };
            for o in &mut rec.outputs {
                o.path = format!("outputs/{}/{}__{}.png", spec.id, o.task, o.input);
            }
            for o in &mut rec.tensor_outputs {
                o.path = format!("outputs/{}/{}", spec.id, OutputTensor::file_name(&o.task, &o.input, &o.output));
            }
            rec
        }
        Err((DeviceError::HostOutput { path, message }, tail)) => {
            let e = DeviceError::HostOutput { path: path.clone(), message: message.clone() };
            *s.host_output_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((path, message));
            failed(s, d, spec, e.to_string(), tail, false)
        }
        Err((DeviceError::Interrupted(sig), tail)) => {
            let mut r = failed(s, d, spec, DeviceError::Interrupted(sig).to_string(), tail, false);
            r.validity_note = format!("invalid: interrupted by {}", crate::interrupt::name(sig));
            r
        }
        Err((e, tail)) => {
            let infra = matches!(e, DeviceError::Infra { .. });
            failed(s, d, spec, e.to_string(), tail, infra)
        }
    }
}

/// A token unique to this process and moment, so concurrent invocations sharing a device root
/// never collide in `runs/`.
fn session_token() -> String {
    use std::sync::OnceLock;
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            format!("{}-{nanos:x}", std::process::id())
        })
        .clone()
}

type Staged<T> = Result<T, (DeviceError, String)>;

fn no_tail(e: DeviceError) -> (DeviceError, String) {
    (e, String::new())
}

/// Push the runner, the runtime and the plugin libraries; returns the plan's EP libraries and
/// the remote library directories.
fn stage_runtime(
    d: &DeviceRun<'_>,
    ep: Option<&EpBundle>,
    t: &mut dyn Transport,
    rep: &mut dyn Reporter,
) -> Staged<(BTreeMap<String, String>, Vec<String>, String)> {
    let sha = |p: &Path| {
        sha256_file(p).map_err(|e| {
            no_tail(DeviceError::Infra {
                device: d.profile.name.clone(),
                message: format!("cannot hash {}: {e}", p.display()),
            })
        })
    };
    t.push(d.runner, &sha(d.runner)?, "bin/quadbench-runner").map_err(no_tail)?;
    let lib_name =
        d.ort_lib.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "libonnxruntime.so".into());
    let lib_remote = format!("runtime/{lib_name}");
    t.push(d.ort_lib, &sha(d.ort_lib)?, &lib_remote).map_err(no_tail)?;
    let mut ep_libraries = BTreeMap::new();
    let mut lib_dirs = Vec::new();
    if let Some(b) = ep {
        if b.files.is_empty() {
            // The device shares the host's files: the plugin is used in place.
            ep_libraries.insert(b.ep.clone(), b.dir.join(&b.library).display().to_string());
        } else {
            let bytes: u64 =
                b.files.iter().map(|(rel, _)| std::fs::metadata(b.dir.join(rel)).map_or(0, |m| m.len())).sum();
            rep.event(&Event::Step {
                message: format!(
                    "staging {} ({} libraries, {:.0} MB; files the device already has are skipped)",
                    b.ep,
                    b.files.len(),
                    bytes as f64 / 1e6
                ),
            });
            for (rel, sha) in &b.files {
                t.push(&b.dir.join(rel), sha, &format!("{}/{rel}", b.remote_dir)).map_err(no_tail)?;
            }
            ep_libraries.insert(b.ep.clone(), format!("{}/{}", b.remote_dir, b.library));
            lib_dirs = b.remote_lib_dirs();
        }
    }
    Ok((ep_libraries, lib_dirs, lib_remote))
}

/// Push what the run needs, execute the runner, pull the result and outputs.
fn stage_and_execute(
    s: &Shared<'_>,
    d: &DeviceRun<'_>,
    spec: &RunSpec,
    ep: Option<&EpBundle>,
    t: &mut dyn Transport,
    rep: &mut dyn Reporter,
) -> Staged<(RunResult, String)> {
    let infra = |message: String| no_tail(DeviceError::Infra { device: d.profile.name.clone(), message });
    let (ep_libraries, lib_dirs, ort_remote) = stage_runtime(d, ep, t, rep)?;
    let (files, storage) = crate::package::storage::strategy_files(s.m, spec.strategy, s.ort_adapters);
    let pkg_remote = format!("packages/{}", &s.m.sha256[..16]);
    for rel in &files {
        let f = s.m.raw.files.iter().find(|f| &f.path == rel).expect("listed file");
        t.push(&s.pkg_dir.join(rel), &f.sha256, &format!("{pkg_remote}/{rel}")).map_err(no_tail)?;
    }
    // Derived from the package's checked adapters, so they live beside it on the device.
    let adapters_remote = format!("{pkg_remote}/ort-adapters");
    if spec.strategy == Strategy::UnifiedOrtAdapter {
        for f in s.ort_adapters {
            t.push(&f.path, &f.sha256, &format!("{adapters_remote}/{}", f.rel)).map_err(no_tail)?;
        }
    }
    let run_remote = format!("runs/{}.{}", spec.id, session_token());
    // A failed earlier attempt may have left a result behind: start from an empty directory.
    t.remove_dir(&run_remote).map_err(no_tail)?;
    let mut plan_inputs = Vec::new();
    for (k, (name, local)) in s.inputs.iter().enumerate() {
        // A scenario without images stages no image file (the plan input's `tensor` stays empty).
        let image = !local.as_os_str().is_empty();
        if image {
            let sha = sha256_file(local).map_err(|e| infra(format!("cannot hash {}: {e}", local.display())))?;
            t.push(local, &sha, &format!("{run_remote}/inputs/{name}.f32")).map_err(no_tail)?;
        }
        let mut tensors = std::collections::BTreeMap::new();
        for (input, local) in s.request_tensors.get(k).into_iter().flatten() {
            let file = local.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let sha = sha256_file(local).map_err(|e| infra(format!("cannot hash {}: {e}", local.display())))?;
            t.push(local, &sha, &format!("{run_remote}/inputs/{file}")).map_err(no_tail)?;
            tensors.insert(input.clone(), format!("inputs/{file}"));
        }
        let tensor = if image { format!("inputs/{name}.f32") } else { String::new() };
        plan_inputs.push(PlanInput { name: name.clone(), tensor, tensors });
    }
    let remote = RemoteLayout { package: &pkg_remote, ort_library: &ort_remote, ep_libraries, inputs: plan_inputs };
    let mut plan = plan::runner_plan(s.sc, s.m, spec, &storage, remote);
    if spec.strategy == Strategy::UnifiedOrtAdapter {
        for task in &mut plan.pipeline.tasks {
            for f in s.ort_adapters.iter().filter(|f| f.task == task.name) {
                task.ort_adapters.insert(f.stage.clone(), format!("../../{adapters_remote}/{}", f.rel));
            }
        }
    }
    let local_run = s.out.join("runs").join(&spec.id);
    // Writing the plan on this host is not the device's business: a full disk stops the run.
    let io = |e: std::io::Error| {
        no_tail(DeviceError::HostOutput { path: local_run.display().to_string(), message: e.to_string() })
    };
    std::fs::create_dir_all(&local_run).map_err(io)?;
    let plan_path = local_run.join("plan.json");
    results::write_json_atomic(&plan_path, &plan).map_err(io)?;
    let plan_sha = sha256_file(&plan_path).map_err(io)?;
    t.push(&plan_path, &plan_sha, &format!("{run_remote}/plan.json")).map_err(no_tail)?;
    let outcome = execute(s, spec, &run_remote, &lib_dirs, t, rep);
    // The run directory goes whatever happened (unless the profile keeps runs).
    let cleanup = |t: &mut dyn Transport| {
        if !d.profile.keep_runs {
            let _ = t.remove_dir(&run_remote);
        }
    };
    let r = outcome.and_then(|tail| pull(s, spec, &run_remote, &local_run, t, tail));
    cleanup(t);
    r
}

fn execute(
    s: &Shared<'_>,
    spec: &RunSpec,
    run_remote: &str,
    lib_dirs: &[String],
    t: &mut dyn Transport,
    rep: &mut dyn Reporter,
) -> Staged<crate::device::ExecOutcome> {
    let limits = ExecLimits {
        deadline: Duration::from_millis(s.sc.workload.max_duration_ms * 3 + 300_000),
        max_silence: Duration::from_secs(120),
    };
    let mut on_line = |line: &str| {
        if let Some(h) = Heartbeat::parse_line(line) {
            rep.event(&Event::Heartbeat {
                id: spec.id.clone(),
                phase: h.phase,
                requests: h.requests,
                elapsed_ms: h.elapsed_ms,
            });
        }
    };
    t.exec(&["bin/quadbench-runner".into(), "plan.json".into()], run_remote, lib_dirs, limits, &mut on_line)
        .map_err(no_tail)
}

fn pull(
    s: &Shared<'_>,
    spec: &RunSpec,
    run_remote: &str,
    local_run: &Path,
    t: &mut dyn Transport,
    outcome: crate::device::ExecOutcome,
) -> Staged<(RunResult, String)> {
    let tail = outcome.stderr_tail.clone();
    let result_local = local_run.join("result.json");
    let pulled = t.pull(&format!("{run_remote}/result.json"), &result_local);
    let parsed: Option<RunResult> = pulled
        .ok()
        .and_then(|_| std::fs::read_to_string(&result_local).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(result) = parsed else {
        let why = if outcome.timed_out {
            "the runner timed out (no heartbeat or past its deadline) and was killed".to_string()
        } else {
            format!(
                "the runner exited with {} and wrote no result",
                outcome.exit_code.map_or("a signal".into(), |c| format!("code {c}"))
            )
        };
        return Err((DeviceError::Test(why), tail));
    };
    let timed = result.timed_outputs.iter().map(|o| (o, "timed/"));
    for (o, sub) in result.outputs.iter().map(|o| (o, "")).chain(timed) {
        // Names come from the device: they must not steer where we write on the host.
        if !(crate::safe_name(&o.task) && crate::safe_name(&o.input) && crate::safe_relative_path(&o.path)) {
            return Err((
                DeviceError::Test(format!(
                    "the runner reported an unsafe output name (task {:?}, input {:?}, path {:?}); refusing to pull it",
                    o.task, o.input, o.path
                )),
                tail,
            ));
        }
        let dst = s.out.join("outputs").join(&spec.id).join(format!("{sub}{}__{}.png", o.task, o.input));
        t.pull(&format!("{run_remote}/{}", o.path), &dst).map_err(|e| (e, tail.clone()))?;
    }
    let timed = result.timed_tensor_outputs.iter().map(|o| (o, "timed/"));
    for (o, sub) in result.tensor_outputs.iter().map(|o| (o, "")).chain(timed) {
        let names = [&o.task, &o.input, &o.output];
        if !(names.iter().all(|n| crate::safe_name(n)) && crate::safe_relative_path(&o.path)) {
            return Err((
                DeviceError::Test(format!(
                    "the runner reported an unsafe tensor output name (task {:?}, input {:?}, output {:?}, path {:?}); refusing to pull it",
                    o.task, o.input, o.output, o.path
                )),
                tail,
            ));
        }
        let name = OutputTensor::file_name(&o.task, &o.input, &o.output);
        let dst = s.out.join("outputs").join(&spec.id).join(format!("{sub}{name}"));
        t.pull(&format!("{run_remote}/{}", o.path), &dst).map_err(|e| (e, tail.clone()))?;
    }
    Ok((result, tail))
}
