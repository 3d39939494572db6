//! The run loop: resolve the package, runtime and runner, stage inputs, then for every device x
//! backend x strategy push, execute and pull, recording each finished run to disk before the
//! next starts. It reports progress only through [`Event`]s; reporters decide what to show.

use crate::device::{DeviceError, DeviceProfile, ExecLimits, Transport};
use crate::package::{self, Manifest, manifest::sha256_file};
use crate::results::{self, Environment, PackageInfo, RESULTS_SCHEMA, Results, RunRecord, RunState, ScenarioInfo};
use crate::scenario::{PackageRef, Scenario};
use quadbench_protocol::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the run loop reports.
#[derive(Debug, Clone)]
pub enum Event {
    Step {
        message: String,
    },
    RunStart {
        index: usize,
        total: usize,
        id: String,
    },
    Heartbeat {
        id: String,
        phase: String,
        requests: u64,
        elapsed_ms: u64,
    },
    RunEnd {
        id: String,
        status: RunState,
        note: String,
    },
    ResultsWritten {
        path: PathBuf,
    },
    /// A run failed with an infrastructure error and is retried after `wait_ms`.
    Retry {
        id: String,
        attempt: u32,
        retries: u32,
        wait_ms: u64,
        error: String,
    },
    /// A device failed every retry; its remaining runs are recorded as failed without running.
    DeviceUnhealthy {
        device: String,
        error: String,
    },
}

pub trait Reporter {
    fn event(&mut self, e: &Event);
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Package(#[from] package::PackageError),
    #[error(transparent)]
    Runtime(#[from] quadbench_runtime::RuntimeError),
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    #[error("output directory {path} is not writable: {source}\n  hint: choose another with --out, or free disk space")]
    Output { path: String, source: std::io::Error },
    #[error(
        "runner binary not found at {path}\n  hint: build it with `cargo build --release -p quadbench-runner` (it must sit beside the quadbench binary), or set `runner:` in the device profile"
    )]
    RunnerMissing { path: String },
    #[error("input image {path}: {message}")]
    Input { path: String, message: String },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("cannot resume: {0}")]
    Resume(String),
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

/// The package directory for a scenario, generating and caching the reference package.
pub fn resolve_package(r: &PackageRef, cache: &Path, rep: &mut dyn Reporter) -> Result<(PathBuf, Manifest), RunError> {
    let dir = match r {
        PackageRef::Dir(d) => d.clone(),
        PackageRef::Reference(p) => {
            let dir = cache.join(p.cache_key());
            std::fs::create_dir_all(cache).map_err(|e| package::PackageError::io(cache, e))?;
            // One generator at a time per cache entry; others wait and reuse it.
            let lock = std::fs::File::create(cache.join(format!(".{}.lock", p.cache_key())))
                .map_err(|e| package::PackageError::io(cache, e))?;
            lock.lock().map_err(|e| package::PackageError::io(cache, e))?;
            if !dir.join(package::MANIFEST_FILE).exists() {
                rep.event(&Event::Step {
                    message: format!("generating reference package {} (cached in {})", p.cache_key(), dir.display()),
                });
                let tmp = cache.join(format!(".{}.tmp", p.cache_key()));
                let _ = std::fs::remove_dir_all(&tmp);
                package::reference::generate(&tmp, p)?;
                std::fs::rename(&tmp, &dir).map_err(|e| package::PackageError::io(&dir, e))?;
            }
            dir
        }
    };
    rep.event(&Event::Step { message: format!("checking package {}", dir.display()) });
    let m = package::check(&dir)?;
    Ok((dir, m))
}

/// Load an image, centre-crop to square, resize to `size` and write raw f32 NCHW.
pub fn prepare_input(src: &Path, size: u32, dst: &Path) -> Result<(), RunError> {
    let err = |m: String| RunError::Input { path: src.display().to_string(), message: m };
    // Regular files only, and no larger than compare accepts (QUADBENCH_MAX_IMAGE_PIXELS).
    let limits = quadbench_metrics::ImageLimits::from_env().map_err(|e| err(e.to_string()))?;
    let img = quadbench_metrics::open_image(src, &limits).map_err(|e| err(e.to_string()))?.to_rgb32f();
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(err("image is empty".into()));
    }
    let side = w.min(h);
    let cropped = image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let resized = image::imageops::resize(&cropped, size, size, image::imageops::FilterType::CatmullRom);
    let n = (size * size) as usize;
    let mut planar = vec![0f32; 3 * n];
    for (i, p) in resized.pixels().enumerate() {
        for c in 0..3 {
            planar[c * n + i] = p.0[c].clamp(0.0, 1.0);
        }
    }
    let bytes: Vec<u8> = planar.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dst, bytes).map_err(|e| err(format!("cannot write {}: {e}", dst.display())))?;
    // A viewable copy beside it, for reports.
    let png = image::RgbImage::from_fn(size, size, |x, y| {
        let i = (y * size + x) as usize;
        image::Rgb([0, 1, 2].map(|c| (planar[c * n + i] * 255.0 + 0.5) as u8))
    });
    png.save(dst.with_extension("png")).map_err(|e| err(format!("cannot write preview: {e}")))
}

/// Storage a strategy needs: which package files it pushes and how they count.
pub fn strategy_files(m: &Manifest, strategy: Strategy) -> (Vec<String>, Storage) {
    let size = |rel: &str| m.raw.files.iter().find(|f| f.path == rel).map_or(0, |f| f.bytes);
    let replaced = |stage: &str| m.pipeline.tasks.iter().any(|t| t.baselines.contains_key(stage));
    let mut files = Vec::new();
    let mut s = Storage::default();
    for st in &m.pipeline.stages {
        if strategy.is_separate() && replaced(&st.name) {
            continue;
        }
        files.push(st.graph.clone());
        s.foundation_bytes += size(&st.graph);
    }
    for t in &m.pipeline.tasks {
        if strategy.is_separate() {
            for g in t.baselines.values() {
                files.push(g.clone());
                s.baseline_bytes += size(g);
            }
        } else if !m.pipeline.lora_slots.is_empty() {
            files.push(t.adapter.clone());
            s.adapter_bytes += size(&t.adapter);
        }
    }
    s.total_bytes = s.foundation_bytes + s.adapter_bytes + s.baseline_bytes;
    (files, s)
}

/// A token unique to this process and moment.
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

fn git_revision() -> String {
    option_env!("QUADBENCH_GIT_REVISION").unwrap_or("unknown").to_string()
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

/// Run a scenario end to end. Returns the results (also written to `<out>/results.json`).
pub fn run_scenario(sc: &Scenario, opts: &RunOptions, rep: &mut dyn Reporter) -> Result<Results, RunError> {
    let out = &opts.out;
    let out_err = |e: std::io::Error| RunError::Output { path: out.display().to_string(), source: e };
    std::fs::create_dir_all(out).map_err(out_err)?;
    std::fs::write(out.join(".write-probe"), b"ok")
        .and_then(|_| std::fs::remove_file(out.join(".write-probe")))
        .map_err(out_err)?;

    // Validate every input before touching a device.
    let device_paths = opts.device_override.clone().map(|d| vec![d]).unwrap_or_else(|| sc.devices.clone());
    let profiles = device_paths.iter().map(|p| DeviceProfile::load(p)).collect::<Result<Vec<_>, _>>()?;
    let (fp32_dir, fp32) = resolve_package(&sc.package, &opts.package_cache, rep)?;
    // Quantized variants are scored against the FP32 package's goldens.
    let golden_package = fp32.raw.name.clone();
    let (pkg_dir, m) = match &sc.quantize {
        None => (fp32_dir, fp32),
        Some(q) => crate::npu::quantized_package(&fp32_dir, q, &sc.inputs, &opts.package_cache, rep)?,
    };
    rep.event(&Event::Step { message: "locating ONNX Runtime".into() });
    let ort = quadbench_runtime::ensure_onnxruntime()?;
    let inputs_dir = out.join("inputs");
    std::fs::create_dir_all(&inputs_dir).map_err(out_err)?;
    let mut inputs = Vec::new();
    for (name, path) in &sc.inputs {
        let dst = inputs_dir.join(format!("{name}.f32"));
        prepare_input(path, m.pipeline.image_width.min(m.pipeline.image_height), &dst)?;
        inputs.push((name.clone(), dst));
    }

    let mut results = Results {
        schema: RESULTS_SCHEMA.into(),
        quadbench_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioInfo {
            name: sc.name.clone(),
            path: sc.path.display().to_string(),
            sha256: sc.sha256.clone(),
        },
        package: PackageInfo {
            name: m.raw.name.clone(),
            sha256: m.sha256.clone(),
            tasks: m.pipeline.tasks.iter().map(|t| t.name.clone()).collect(),
            dir: pkg_dir.display().to_string(),
            quantization: m
                .raw
                .generator
                .as_ref()
                .and_then(|g| g.get("quantization"))
                .and_then(|q| serde_json::from_str(q).ok()),
            golden_package: (golden_package != m.raw.name).then(|| golden_package.clone()),
        },
        runs: Vec::new(),
        claims: Vec::new(),
        complete: false,
        statistics: Default::default(),
    };
    let quality = crate::quality::QualityConfig {
        golden_root: sc.golden_root.clone(),
        package_name: golden_package,
        thresholds: sc.thresholds.clone(),
    };
    let results_path = out.join("results.json");
    let mut resume = if opts.resume {
        crate::resilience::Resume::load(&results_path, &m.sha256).map_err(RunError::Resume)?
    } else {
        Default::default()
    };
    let total = profiles.len() * sc.backends.len() * sc.strategies.len();
    let mut index = 0;
    let mut governor = crate::throttle::Governor::new(sc.throttle.clone(), sc.cooldown_s);
    for profile in &profiles {
        let runner = profile.runner.clone().unwrap_or_else(default_runner);
        if !runner.exists() {
            return Err(RunError::RunnerMissing { path: runner.display().to_string() });
        }
        let ort_lib = profile.ort_library.clone().unwrap_or_else(|| ort.library.clone());
        let mut session = crate::resilience::DeviceSession::new(profile);
        for backend in &sc.backends {
            // Located (and, for pushing transports, hashed) once per device and backend.
            let ep = crate::npu::ep_bundle(backend, profile, profile.transport != "local");
            for &strategy in &sc.strategies {
                index += 1;
                let id = format!("{}-{}-{}-{}", profile.name, backend, sc.precision, strategy);
                rep.event(&Event::RunStart { index, total, id: id.clone() });
                let (record, note) = match resume.take(&id) {
                    Some(r) => (r, "finished earlier, kept (--resume)".to_string()),
                    None => {
                        let throttle = governor.before_run(profile.transport == "local", rep);
                        let failed = |msg: String| {
                            RunRecord::failed(
                                &id,
                                &profile.name,
                                backend,
                                &sc.precision,
                                strategy,
                                strategy_files(&m, strategy).1,
                                msg,
                                String::new(),
                                true,
                            )
                        };
                        let mut r = session.run(
                            &id,
                            rep,
                            &mut |t, info, rep| {
                                run_one(
                                    RunSpec {
                                        sc,
                                        m: &m,
                                        pkg_dir: &pkg_dir,
                                        id: &id,
                                        profile,
                                        backend,
                                        strategy,
                                        runner: &runner,
                                        ort_lib: &ort_lib,
                                        ep: &ep,
                                        inputs: &inputs,
                                        out,
                                    },
                                    t,
                                    info,
                                    rep,
                                )
                            },
                            &failed,
                        );
                        r.throttle = Some(throttle);
                        crate::quality::score_run(&mut r, out, &quality);
                        let note = r.error.clone().unwrap_or_else(|| r.validity_note.clone());
                        (r, note)
                    }
                };
                rep.event(&Event::RunEnd { id: id.clone(), status: record.status, note });
                results.runs.push(record);
                results.claims = results::evaluate_claims(&sc.claims, &results.runs);
                results::write_json_atomic(&results_path, &results).map_err(out_err)?;
            }
        }
    }
    results.complete = true;
    results::write_json_atomic(&results_path, &results).map_err(out_err)?;
    rep.event(&Event::ResultsWritten { path: results_path });
    Ok(results)
}

struct RunSpec<'a> {
    sc: &'a Scenario,
    m: &'a Manifest,
    pkg_dir: &'a Path,
    id: &'a str,
    profile: &'a DeviceProfile,
    backend: &'a str,
    strategy: Strategy,
    runner: &'a Path,
    ort_lib: &'a Path,
    /// The backend's plugin libraries, or why it cannot run on this device.
    ep: &'a Result<Option<crate::npu::EpBundle>, String>,
    inputs: &'a [(String, PathBuf)],
    out: &'a Path,
}

fn run_one(
    s: RunSpec<'_>,
    t: &mut dyn Transport,
    info: &crate::device::DeviceInfo,
    rep: &mut dyn Reporter,
) -> RunRecord {
    let (files, storage) = strategy_files(s.m, s.strategy);
    let fail = |msg: String, tail: String, infra: bool| {
        RunRecord::failed(
            s.id,
            &s.profile.name,
            s.backend,
            &s.sc.precision,
            s.strategy,
            storage.clone(),
            msg,
            tail,
            infra,
        )
    };
    if let Err(why) = s.ep {
        // Known before touching the device: skipped, like a backend the runner cannot load.
        let mut r = fail(format!("backend unsupported: {why}"), String::new(), false);
        r.status = RunState::Unsupported;
        r.validity_note = "skipped: backend unsupported on this device".into();
        return r;
    }
    match stage_and_execute(&s, &files, &storage, t, rep) {
        Ok((result, tail)) => {
            let local_run = s.out.join("runs").join(s.id);
            let csv_rel = format!("samples/{}.csv", s.id);
            if let Err(e) = results::write_samples_csv(&s.out.join(&csv_rel), s.id, &result) {
                return fail(format!("cannot write samples: {e}"), tail, false);
            }
            let env = Environment {
                runner: result.environment.clone(),
                quadbench_version: env!("CARGO_PKG_VERSION").into(),
                git_revision: git_revision(),
                package_sha256: s.m.sha256.clone(),
                device_model: info.model.clone(),
                device_soc: info.soc.clone(),
            };
            let mut rec = RunRecord::from_result(s.id, &s.profile.name, &result, env, csv_rel);
            rec.stderr_tail = if rec.status == RunState::Ok { String::new() } else { tail };
            for o in &mut rec.outputs {
                o.path = format!("outputs/{}/{}__{}.png", s.id, o.task, o.input);
                let _ = std::fs::create_dir_all(local_run.parent().unwrap_or(s.out));
            }
            rec
        }
        Err((e, tail)) => {
            let infra = matches!(e, DeviceError::Infra { .. });
            fail(e.to_string(), tail, infra)
        }
    }
}

/// Push what the run needs, execute the runner, pull the result and outputs.
fn stage_and_execute(
    s: &RunSpec<'_>,
    files: &[String],
    storage: &Storage,
    t: &mut dyn Transport,
    rep: &mut dyn Reporter,
) -> Result<(RunResult, String), (DeviceError, String)> {
    let e0 = |e: DeviceError| (e, String::new());
    let sha = |p: &Path| {
        sha256_file(p).map_err(|e| {
            e0(DeviceError::Infra {
                device: s.profile.name.clone(),
                message: format!("cannot hash {}: {e}", p.display()),
            })
        })
    };
    let runner_remote = "bin/quadbench-runner".to_string();
    t.push(s.runner, &sha(s.runner)?, &runner_remote).map_err(e0)?;
    let lib_name =
        s.ort_lib.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "libonnxruntime.so".into());
    let lib_remote = format!("runtime/{lib_name}");
    t.push(s.ort_lib, &sha(s.ort_lib)?, &lib_remote).map_err(e0)?;
    let mut ep_libraries = std::collections::BTreeMap::new();
    let mut lib_dirs = Vec::new();
    if let Ok(Some(b)) = s.ep {
        if b.files.is_empty() {
            // The local transport shares the host's files: the plugin is used in place.
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
                t.push(&b.dir.join(rel), sha, &format!("{}/{rel}", b.remote_dir)).map_err(e0)?;
            }
            ep_libraries.insert(b.ep.clone(), format!("../../{}/{}", b.remote_dir, b.library));
            lib_dirs = b.remote_lib_dirs();
        }
    }
    let pkg_remote = format!("packages/{}", &s.m.sha256[..16]);
    for rel in files {
        let f = s.m.raw.files.iter().find(|f| &f.path == rel).expect("listed file");
        t.push(&s.pkg_dir.join(rel), &f.sha256, &format!("{pkg_remote}/{rel}")).map_err(e0)?;
    }
    // Unique per invocation, so concurrent runs sharing a device root never collide.
    let run_remote = format!("runs/{}.{}", s.id, session_token());
    // A failed earlier attempt may have left a result behind: start from an empty directory.
    t.remove_dir(&run_remote).map_err(e0)?;
    let mut plan_inputs = Vec::new();
    for (name, local) in s.inputs {
        t.push(local, &sha(local)?, &format!("{run_remote}/inputs/{name}.f32")).map_err(e0)?;
        plan_inputs.push(PlanInput { name: name.clone(), tensor: format!("inputs/{name}.f32") });
    }
    // Paths in the plan are relative to the run directory.
    let up = "../..";
    let mut pipeline = s.m.pipeline.clone();
    for st in &mut pipeline.stages {
        st.graph = format!("{up}/{pkg_remote}/{}", st.graph);
    }
    for task in &mut pipeline.tasks {
        task.adapter = format!("{up}/{pkg_remote}/{}", task.adapter);
        for g in task.baselines.values_mut() {
            *g = format!("{up}/{pkg_remote}/{g}");
        }
    }
    let plan = Plan {
        schema: PLAN_SCHEMA.into(),
        run_id: s.id.into(),
        strategy: s.strategy,
        precision: s.sc.precision.clone(),
        backend: PlanBackend {
            name: s.backend.into(),
            options: s.sc.backend_options.get(s.backend).cloned().unwrap_or_default(),
            require_full_offload: s.sc.require_full_offload,
            intra_threads: s.sc.threads,
        },
        runtime: PlanRuntime { ort_library: format!("{up}/{lib_remote}"), ep_libraries },
        pipeline,
        workload: s.sc.workload.clone(),
        inputs: plan_inputs,
        output_dir: "outputs".into(),
        heartbeat_ms: 500,
        storage: storage.clone(),
    };
    let local_run = s.out.join("runs").join(s.id);
    let io = |e: std::io::Error| {
        e0(DeviceError::Infra {
            device: s.profile.name.clone(),
            message: format!("cannot write {}: {e}", local_run.display()),
        })
    };
    std::fs::create_dir_all(&local_run).map_err(io)?;
    let plan_path = local_run.join("plan.json");
    results::write_json_atomic(&plan_path, &plan).map_err(io)?;
    t.push(&plan_path, &sha(&plan_path)?, &format!("{run_remote}/plan.json")).map_err(e0)?;
    let limits = ExecLimits {
        deadline: Duration::from_millis(s.sc.workload.max_duration_ms * 3 + 300_000),
        max_silence: Duration::from_secs(120),
    };
    let id = s.id.to_string();
    let mut on_line = |line: &str| {
        if let Some(h) = Heartbeat::parse_line(line) {
            rep.event(&Event::Heartbeat {
                id: id.clone(),
                phase: h.phase,
                requests: h.requests,
                elapsed_ms: h.elapsed_ms,
            });
        }
    };
    let outcome =
        t.exec(&[runner_remote, "plan.json".into()], &run_remote, &lib_dirs, limits, &mut on_line).map_err(e0)?;
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
    for o in &result.outputs {
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
        let dst = s.out.join("outputs").join(s.id).join(format!("{}__{}.png", o.task, o.input));
        t.pull(&format!("{run_remote}/{}", o.path), &dst).map_err(|e| (e, tail.clone()))?;
    }
    if !s.profile.keep_runs {
        let _ = t.remove_dir(&run_remote);
    }
    Ok((result, tail))
}
