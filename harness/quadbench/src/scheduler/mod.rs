//! The run loop: validate everything (device profiles, package, runtime, runner, output
//! directory) before any device is touched, then for every run of the plan push, execute and
//! pull through the device's transport, and emit each finished run's record as an event that the
//! result sinks persist at once. It reports only through events; reporters decide what to show.
//!
//! `worker`: one thread per device, devices on one physical resource taking turns; `stage`: one
//! run on one device; `retry`: infrastructure failures and unhealthy devices; `resume`:
//! carrying finished runs over; `throttle`: cool-downs and the throttle check.

pub mod resume;
pub mod retry;
pub mod stage;
pub mod throttle;
pub mod worker;

use crate::config::{DeviceProfile, Scenario};
use crate::events::{Event, Reporter};
use crate::package::{self, PackageError};
use crate::results::{DeviceRef, PackageInfo, RESULTS_SCHEMA, Results, ScenarioInfo};
use crate::sink::{ResultSink, SinkError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Runtime(#[from] quadbench_runtime::RuntimeError),
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    #[error("output directory {path} is not writable: {source}\n  hint: choose another with --out, or free disk space")]
    Output { path: String, source: std::io::Error },
    #[error(
        "{path} already holds results (results.json); nothing was overwritten\n  hint: add --resume to finish its runs, or choose a new --out"
    )]
    OutputExists { path: String },
    #[error(
        "{path} is in use by another quadbench (pid {pid}); nothing was written\n  hint: wait for it to finish, or choose another --out"
    )]
    OutputLocked { path: String, pid: String },
    #[error(
        "runner binary not found at {path}\n  hint: build it with `cargo build --release -p quadbench-runner` (it must sit beside the quadbench binary), or set `runner:` in the device profile"
    )]
    RunnerMissing { path: String },
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// SIGINT or SIGTERM: the run in flight was stopped and recorded, results are written.
    #[error("interrupted by {}; finished runs are in {out}, resume with --resume", crate::interrupt::name(*.signal))]
    Interrupted { signal: i32, out: String },
}

/// Options of one scenario run.
pub struct RunOptions {
    pub out: PathBuf,
    /// Replaces the scenario's devices.
    pub device_override: Option<PathBuf>,
    /// Package cache for generated reference packages.
    pub package_cache: PathBuf,
    /// Keep finished runs of `<out>/results.json` and run only the others.
    pub resume: bool,
}

/// An advisory lock on a results directory, held for the whole invocation; the holder's pid is
/// in the lock file so that the refusal can name it.
pub struct OutLock {
    _file: std::fs::File,
}

impl OutLock {
    pub const FILE: &'static str = ".quadbench.lock";

    pub fn acquire(out: &Path) -> Result<OutLock, RunError> {
        let path = out.join(Self::FILE);
        let out_err = |e: std::io::Error| RunError::Output { path: out.display().to_string(), source: e };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(out_err)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
                return Err(RunError::OutputLocked {
                    path: out.display().to_string(),
                    pid: if pid.is_empty() { "unknown".into() } else { pid },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(out_err(e)),
        }
        f.set_len(0).and_then(|_| write!(f, "{}", std::process::id())).map_err(out_err)?;
        Ok(OutLock { _file: f })
    }
}

/// The machine driving the runs.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Where `quadbench-runner` is expected: beside the running executable.
pub fn default_runner() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps; the runner in target/<profile>.
    let cand = dir.join("quadbench-runner");
    if !cand.exists() && dir.ends_with("deps") {
        return dir.parent().unwrap_or(&dir).join("quadbench-runner");
    }
    cand
}

fn device_refs(profiles: &[DeviceProfile]) -> Vec<DeviceRef> {
    profiles
        .iter()
        .map(|p| DeviceRef {
            name: p.name.clone(),
            path: p.path.display().to_string(),
            sha256: std::fs::read(&p.path).map(|b| package::manifest::sha256_bytes(&b)).unwrap_or_default(),
        })
        .collect()
}

/// Run a scenario end to end, persisting through the default sinks of `opts.out`. Returns the
/// results (also in `<out>/results.json`).
pub fn run_scenario(sc: &Scenario, opts: &RunOptions, rep: &mut dyn Reporter) -> Result<Results, RunError> {
    let out = &opts.out;
    let out_err = |e: std::io::Error| RunError::Output { path: out.display().to_string(), source: e };
    // Everything that can be refused is refused before the output directory is created.
    let device_paths = opts.device_override.clone().map(|d| vec![d]).unwrap_or_else(|| sc.devices.clone());
    let profiles = device_paths.iter().map(|p| DeviceProfile::load(p)).collect::<Result<Vec<_>, _>>()?;
    let refuse_existing = || {
        if !opts.resume && out.join("results.json").exists() {
            return Err(RunError::OutputExists { path: out.display().to_string() });
        }
        Ok(())
    };
    refuse_existing()?;
    for p in &profiles {
        let runner = p.runner.clone().unwrap_or_else(default_runner);
        if !runner.is_file() {
            return Err(RunError::RunnerMissing { path: runner.display().to_string() });
        }
    }
    let pkg = sc.package.resolve(&opts.package_cache, &sc.inputs, rep)?;
    images_match(sc, &pkg.manifest)?;
    crate::config::tensor_inputs::check(&sc.path, &sc.tensor_inputs, &pkg.manifest)?;
    crate::config::masks::check(&sc.path, &sc.masks, &pkg.manifest)?;
    crate::quality::tensor::check_thresholds(&sc.path, &sc.thresholds, &pkg.manifest)?;
    rep.event(&Event::Step { message: "locating ONNX Runtime".into() });
    let ort = quadbench_runtime::ensure_onnxruntime()?;
    std::fs::create_dir_all(out).map_err(out_err)?;
    let _lock = OutLock::acquire(out)?;
    refuse_existing()?;
    let devices = device_refs(&profiles);
    let mut resume = if opts.resume {
        let setup = resume::Setup {
            scenario_sha256: &sc.sha256,
            request_files_sha256: sc.request_files_sha256(),
            package_sha256: &pkg.manifest.sha256,
            devices: &devices,
        };
        resume::Resume::load(out, &setup).map_err(RunError::Resume)?
    } else {
        Default::default()
    };
    let inputs = prepare_inputs(sc, &pkg.manifest, out)?;
    let mut request_tensors =
        crate::config::tensor_inputs::stage(&sc.tensor_inputs, &pkg.manifest, &inputs, &out.join("inputs"))
            .map_err(|e| RunError::Output { path: out.join("inputs").display().to_string(), source: e })?;
    crate::config::masks::stage(&sc.masks, &pkg.manifest, &inputs, &out.join("inputs"), &mut request_tensors)?;
    let ort_adapters = prepare_ort_adapters(sc, &pkg, out)?;
    let header = header(sc, &pkg, devices);
    let specs = crate::plan::runs(sc, &profiles);
    let mut sinks = crate::sink::for_dir(out);
    let mut results = header.clone();
    let started = Event::ScenarioStarted {
        header: Box::new(header),
        claims: sc.claims.clone(),
        resumed_runs: resume.count(),
        order: specs.iter().map(|s| s.id.clone()).collect(),
    };
    emit(&mut sinks, rep, started)?;
    // Runs finished by an earlier invocation are carried over first; the rest go to the devices.
    let mut todo: Vec<Vec<&crate::plan::RunSpec>> = vec![Vec::new(); profiles.len()];
    for spec in &specs {
        match resume.take(&spec.id) {
            Some(r) => {
                let note = "finished earlier, kept (--resume)".to_string();
                results.runs.push(r.clone());
                emit(&mut sinks, rep, Event::RunFinished { record: Box::new(r), note, resumed: true })?;
            }
            None => todo[spec.device].push(spec),
        }
    }
    let shared = stage::Shared {
        sc,
        m: &pkg.manifest,
        pkg_dir: &pkg.dir,
        inputs: &inputs,
        request_tensors: &request_tensors,
        ort_adapters: &ort_adapters,
        out,
        host_output_error: Default::default(),
    };
    let quality = crate::quality::QualityConfig {
        golden_root: sc.golden_root.clone(),
        package_name: pkg.fp32.raw.name.clone(),
        thresholds: sc.thresholds.clone(),
        tensor_ranges: crate::quality::tensor::declared_ranges(&pkg.fp32.raw),
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let common = worker::Common {
        shared: &shared,
        quality: &quality,
        ort_library: ort.library.clone(),
        host: host_name(),
        total: specs.len(),
        stop: &stop,
        resources: profiles
            .iter()
            .filter_map(|p| p.resource())
            .map(|r| (r, Arc::new(Mutex::new(throttle::Governor::new(sc.throttle.clone(), sc.cooldown_s)))))
            .collect(),
    };
    let mut sink_error = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for (profile, specs) in profiles.iter().zip(&todo).filter(|(_, s)| !s.is_empty()) {
            let (tx, common) = (tx.clone(), &common);
            scope.spawn(move || worker::device_worker(common, profile, specs, tx));
        }
        drop(tx);
        // The workers' messages, in the order they happen, until every worker is done.
        for msg in rx {
            match msg {
                worker::Msg::Event(e) => rep.event(&e),
                worker::Msg::Finished(r) => {
                    let note = r.error.clone().unwrap_or_else(|| r.validity_note.clone());
                    results.runs.push((*r).clone());
                    let failed_output = shared.host_output_error.lock().unwrap_or_else(|p| p.into_inner()).is_some();
                    let emitted = emit(&mut sinks, rep, Event::RunFinished { record: r, note, resumed: false });
                    if let Err(e) = emitted {
                        sink_error.get_or_insert(e);
                    }
                    if sink_error.is_some() || failed_output {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }
    });
    if let Some(e) = sink_error {
        return Err(e);
    }
    if let Some((path, message)) = shared.host_output_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(RunError::Output { path, source: std::io::Error::other(message) });
    }
    if let Some(signal) = crate::interrupt::received() {
        return Err(RunError::Interrupted { signal, out: out.display().to_string() });
    }
    let order = |id: &str| specs.iter().position(|s| s.id == id).unwrap_or(usize::MAX);
    results.runs.sort_by_key(|r| order(&r.id));
    results.claims = crate::claims::evaluate_claims(&sc.claims, &results.runs);
    results.statistics =
        quadbench_schema::method::Method::for_replicates(crate::report::groups::replicated(&results.runs));
    results.complete = true;
    emit(&mut sinks, rep, Event::ScenarioFinished { out: out.clone() })?;
    Ok(results)
}

/// Deliver `e` to every sink (a failing sink stops the run), then to the reporter.
fn emit(sinks: &mut [Box<dyn ResultSink>], rep: &mut dyn Reporter, e: Event) -> Result<(), RunError> {
    for s in sinks.iter_mut() {
        s.event(&e)?;
    }
    rep.event(&e);
    Ok(())
}

/// A package that takes an image needs the scenario's `inputs`; one without an image (no
/// `source: image` input) needs a scenario without them, whose requests are its tensor files.
fn images_match(sc: &Scenario, m: &package::Manifest) -> Result<(), RunError> {
    let takes_image =
        m.pipeline.stages.iter().flat_map(|s| &s.inputs).any(|i| i.source == quadbench_protocol::Source::Image);
    if takes_image != sc.tensor_only {
        return Ok(());
    }
    let text = std::fs::read_to_string(&sc.path).unwrap_or_default();
    let (msg, fix) = if takes_image {
        (
            format!("package `{}` takes an image and the scenario lists no `inputs`", m.raw.name),
            "list the input images: `inputs: [astronaut, coffee]`",
        )
    } else {
        (
            format!(
                "package `{}` takes no image (no `source: image` input), and the scenario lists input images",
                m.raw.name
            ),
            "drop `inputs` and give one `tensor_inputs` file per request (its stem names the request)",
        )
    };
    Err(crate::yaml::YamlError::at(&sc.path, &text, if takes_image { "tensor_inputs:" } else { "inputs:" }, msg, fix)
        .into())
}

/// Decode and stage every input image as the runner reads it, under `<out>/inputs/`; a scenario
/// without images names its requests only (no file staged).
fn prepare_inputs(sc: &Scenario, m: &package::Manifest, out: &Path) -> Result<Vec<(String, PathBuf)>, RunError> {
    let dir = out.join("inputs");
    std::fs::create_dir_all(&dir).map_err(|e| RunError::Output { path: dir.display().to_string(), source: e })?;
    if sc.tensor_only {
        return Ok(sc.inputs.iter().map(|(n, _)| (n.clone(), PathBuf::new())).collect());
    }
    let mut inputs = Vec::new();
    for (name, path) in &sc.inputs {
        let dst = dir.join(format!("{name}.f32"));
        package::input::prepare_input(path, m.pipeline.image_width.min(m.pipeline.image_height), &dst)
            .map_err(PackageError::from)?;
        inputs.push((name.clone(), dst));
    }
    Ok(inputs)
}

/// The `.onnx_adapter` files of strategy `unified-ort-adapter`, derived from the checked package
/// under `<out>/ort-adapters/` when the scenario runs that strategy (see `package::ort_adapter`).
fn prepare_ort_adapters(
    sc: &Scenario,
    pkg: &package::source::Resolved,
    out: &Path,
) -> Result<Vec<package::ort_adapter::OrtAdapterFile>, RunError> {
    if !sc.strategies.contains(&quadbench_protocol::Strategy::UnifiedOrtAdapter) {
        return Ok(Vec::new());
    }
    Ok(package::ort_adapter::write_all(&pkg.manifest, &pkg.dir, &out.join("ort-adapters"))?)
}

/// The results header: scenario, package, devices; no runs yet.
fn header(sc: &Scenario, pkg: &package::source::Resolved, devices: Vec<DeviceRef>) -> Results {
    let m = &pkg.manifest;
    let golden_package = pkg.fp32.raw.name.clone();
    Results {
        schema: RESULTS_SCHEMA.into(),
        quadbench_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioInfo {
            name: sc.name.clone(),
            path: sc.path.display().to_string(),
            sha256: sc.sha256.clone(),
            request_files_sha256: sc.request_files_sha256(),
        },
        package: PackageInfo {
            name: m.raw.name.clone(),
            sha256: m.sha256.clone(),
            tasks: m.pipeline.tasks.iter().map(|t| t.name.clone()).collect(),
            dir: pkg.dir.display().to_string(),
            quantization: m
                .raw
                .generator
                .as_ref()
                .and_then(|g| g.get("quantization"))
                .and_then(|q| serde_json::from_str(q).ok()),
            golden_package: (golden_package != m.raw.name).then_some(golden_package),
        },
        devices,
        runs: Vec::new(),
        claims: Vec::new(),
        complete: false,
        statistics: Default::default(),
    }
}
