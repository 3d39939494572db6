//! quadbench-runner: executes a run plan on the device and produces a [`RunResult`].
//!
//! Phases: `init` (ONNX Runtime environment + the strategy's resident sessions), `first_inference`
//! (the cold first request), `steady` (warm-up visits, then the measured workload), `outputs`
//! (one unmeasured request per task and input, saved as PNG, and the pipeline's tensor outputs
//! as `.npy`). The RSS high-water mark is reset at each phase start; PSS is sampled by the
//! heartbeat thread and at phase ends.

pub mod backend;
pub mod compile;
pub mod pipeline;
pub mod sysinfo;
pub mod tensor_out;

use pipeline::{Executor, RequestTiming, Samples};
use quadbench_protocol::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared between the run loop and the heartbeat thread.
struct Monitor {
    phase: Mutex<String>,
    requests: AtomicU64,
    peak_pss: AtomicU64,
    stop: AtomicBool,
}

impl Monitor {
    fn sample(&self) {
        if let Some(p) = sysinfo::pss_bytes() {
            self.peak_pss.fetch_max(p, Ordering::Relaxed);
        }
    }
}

/// Order of task visits.
pub fn visit_order(tasks: usize, order: TaskOrder, seed: u64, count: usize) -> Vec<usize> {
    let mut rng = rng::XorShift64::new(seed);
    let mut next = move || rng.next_u64();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let t = match order {
            TaskOrder::RoundRobin => i % tasks,
            TaskOrder::Random if tasks > 1 => {
                // A visit always switches task: pick among the others.
                let prev = out.last().copied().unwrap_or(tasks);
                let mut t = (next() % tasks as u64) as usize;
                if t == prev {
                    t = (t + 1 + (next() % (tasks as u64 - 1)) as usize) % tasks;
                }
                t
            }
            TaskOrder::Random => 0,
        };
        out.push(t);
    }
    out
}

fn environment(ort_version: Option<String>) -> RunnerEnvironment {
    RunnerEnvironment {
        runner_version: env!("CARGO_PKG_VERSION").into(),
        ort_version,
        execution_providers: Vec::new(),
        cpu_model: sysinfo::cpu_model(),
        cpu_count: sysinfo::cpu_count(),
        kernel: sysinfo::kernel(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
    }
}

/// Execute `plan` (whose relative paths resolve against `dir`). Never panics on bad input: every
/// failure becomes a `Failed` status in the returned result, with what was measured so far.
pub fn execute(plan: &Plan, dir: &Path) -> RunResult {
    let mut r = RunResult {
        schema: RESULT_SCHEMA.into(),
        run_id: plan.run_id.clone(),
        strategy: plan.strategy,
        backend: plan.backend.name.clone(),
        precision: plan.precision.clone(),
        status: RunStatus::Ok,
        environment: environment(None),
        storage: plan.storage.clone(),
        memory: Vec::new(),
        sessions: Vec::new(),
        init_ms: 0.0,
        first_inference_ms: 0.0,
        samples_ms: Samples::new(),
        switches: Vec::new(),
        requests: 0,
        duration_ms: 0.0,
        valid: false,
        validity_note: String::new(),
        conditions_before: sysinfo::conditions(),
        conditions_after: Conditions::default(),
        outputs: Vec::new(),
        timed_outputs: Vec::new(),
        tensor_outputs: Vec::new(),
        timed_tensor_outputs: Vec::new(),
        compiled: Vec::new(),
        storage_basis: None,
    };
    let monitor = Arc::new(Monitor {
        phase: Mutex::new("start".into()),
        requests: AtomicU64::new(0),
        peak_pss: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let hb = {
        let m = monitor.clone();
        let period = Duration::from_millis(plan.heartbeat_ms.max(50));
        let start = Instant::now();
        std::thread::spawn(move || {
            while !m.stop.load(Ordering::Relaxed) {
                m.sample();
                let line = Heartbeat {
                    phase: m.phase.lock().map(|p| p.clone()).unwrap_or_default(),
                    elapsed_ms: start.elapsed().as_millis() as u64,
                    requests: m.requests.load(Ordering::Relaxed),
                }
                .to_line();
                println!("{line}");
                std::thread::sleep(period);
            }
        })
    };
    if let Err(e) = run_phases(plan, dir, &monitor, &mut r) {
        r.status = RunStatus::Failed { error: e };
    }
    monitor.stop.store(true, Ordering::Relaxed);
    let _ = hb.join();
    r.conditions_after = sysinfo::conditions();
    r
}

fn begin_phase(m: &Monitor, name: &str) -> bool {
    if let Ok(mut p) = m.phase.lock() {
        *p = name.into();
    }
    m.peak_pss.store(0, Ordering::Relaxed);
    m.sample();
    sysinfo::reset_peak_rss()
}

fn end_phase(m: &Monitor, name: &str, reset: bool, r: &mut RunResult) {
    m.sample();
    let pss = m.peak_pss.load(Ordering::Relaxed);
    r.memory.push(MemoryPhase {
        phase: name.into(),
        peak_rss_bytes: sysinfo::peak_rss_bytes(),
        peak_pss_bytes: (pss > 0).then_some(pss),
        hwm_reset: reset,
    });
}

/// Fault injection for tests of the host's crash handling: `QUADBENCH_RUNNER_FAULT=abort:<strategy>:<n>`
/// aborts the process (SIGABRT, no result written) after `n` measured requests of that strategy.
fn abort_after(strategy: Strategy) -> Option<u64> {
    let v = std::env::var("QUADBENCH_RUNNER_FAULT").ok()?;
    let mut it = v.split(':');
    (it.next()? == "abort" && it.next()? == strategy.as_str()).then_some(())?;
    it.next()?.parse().ok()
}

/// A Conv whose weight is a graph input (a convolution LoRA slot fed as inputs) does not run on
/// the QNN HTP backend: session creation fails in its NHWC layout transformer
/// (shared/notes/runtime.md). Said as "unsupported" up front instead of a failed run.
fn conv_slots_supported(plan: &Plan) -> Result<(), String> {
    let conv = plan.pipeline.lora_slots.iter().filter(|s| s.kernel.is_some()).count();
    if conv > 0 && !plan.strategy.is_separate() && plan.backend.name == Backend::QnnHtp.as_str() {
        return Err(backend::BackendError::Unsupported(format!(
            "{conv} convolution LoRA slot(s) feed conv weights as graph inputs, which the QNN HTP backend does not run (its layout transformer rejects a Conv whose weight is not a constant); run the unified strategies on cpu (separate strategies on qnn-htp need a quantized package, which `package quantize` cannot yet make of an imported graph)"
        ))
        .to_string());
    }
    Ok(())
}

/// Each plan input's per-request tensors (`PlanInput::tensors`), loaded once, by stage input
/// name, each with the shape its `source: tensor` stage input declares.
fn request_tensors(plan: &Plan, dir: &Path) -> Result<Vec<HashMap<String, ort::value::DynValue>>, String> {
    let declared: HashMap<&str, &quadbench_protocol::TensorSpec> = plan
        .pipeline
        .stages
        .iter()
        .flat_map(|s| &s.inputs)
        .filter(|i| matches!(i.source, Source::Tensor | Source::Mask))
        .map(|i| (i.tensor.name.as_str(), &i.tensor))
        .collect();
    plan.inputs
        .iter()
        .map(|pi| {
            pi.tensors
                .iter()
                .map(|(name, file)| {
                    let spec = declared.get(name.as_str()).ok_or_else(|| {
                        format!(
                            "plan input `{}` carries tensor `{name}`, which no stage input takes as `source: tensor` or `source: mask`",
                            pi.name
                        )
                    })?;
                    Ok((name.clone(), pipeline::load_tensor(&dir.join(file), spec)?))
                })
                .collect()
        })
        .collect()
}

fn push(samples: &mut Samples, key: &str, v: f64) {
    samples.entry(key.to_string()).or_default().push(v);
}

fn run_phases(plan: &Plan, dir: &Path, m: &Monitor, r: &mut RunResult) -> Result<(), String> {
    if plan.schema != PLAN_SCHEMA {
        return Err(format!(
            "plan schema `{}` is not supported by this runner (expects `{PLAN_SCHEMA}`); update the runner on the device",
            plan.schema
        ));
    }
    if plan.pipeline.tasks.is_empty() || plan.inputs.is_empty() {
        return Err("plan has no tasks or no inputs".into());
    }
    let reset = begin_phase(m, "init");
    let lib = if Path::new(&plan.runtime.ort_library).is_absolute() {
        plan.runtime.ort_library.clone().into()
    } else {
        dir.join(&plan.runtime.ort_library)
    };
    // Before dlopen: a truncated library would kill the runner with SIGBUS and no result.
    quadbench_native::check_shared_library(&lib).map_err(|e| format!("refusing to load ONNX Runtime: {e}; run `quadbench runtime fetch` on the host and push the runtime again, or fix the device profile's library path"))?;
    let builder = ort::init_from(&lib).map_err(|e| format!("cannot load ONNX Runtime from {}: {e}; run `quadbench runtime fetch` on the host or fix the device profile's library path", lib.display()))?;
    // One intra-op thread pool for all sessions: with a pool per session, the threads of the
    // session that just ran keep spinning and steal the cores from the next stage's session
    // (measured: the denoiser ran 2.3x slower inside the pipeline than alone on 2 cores).
    let pool = ort::environment::GlobalThreadPoolOptions::default()
        .with_intra_threads(plan.backend.intra_threads)
        .map_err(|e| format!("cannot configure the ONNX Runtime thread pool: {e}"))?;
    let env = builder
        .with_name("quadbench-runner")
        .with_global_thread_pool(pool)
        .build()
        .map_err(|e| format!("cannot create ONNX Runtime environment: {e}"))?;
    // ONNX Runtime's own version string: its build-info string does not carry the version.
    r.environment = environment(quadbench_native::ort::version(&lib).ok());
    let be = backend::prepare(&env, &plan.backend, &plan.runtime, dir).map_err(|e| e.to_string())?;
    conv_slots_supported(plan)?;
    r.environment.execution_providers = vec![be.execution_provider().to_string()];
    // Compile phase (EP-context models), before init so that neither init nor switches pay it.
    let mut compiled = std::collections::HashMap::new();
    let compile = be.compiles() && plan.backend.options.get(backend::OPT_EP_CONTEXT).is_some_and(|v| v == "1");
    if plan.strategy == quadbench_protocol::Strategy::SeparateSharedWeights && !compile {
        // The host refuses such scenarios at load; a hand-made plan gets the same answer.
        return Err(format!(
            "strategy {} needs backend qnn-htp with option ep_context=1 (its shared EP context is made in the compile phase); this plan has backend {}",
            plan.strategy, plan.backend.name
        ));
    }
    if compile {
        let (records, map) = compile::compile_all(plan, dir, &env, be)?;
        r.storage = compile::compiled_storage(plan, &records);
        r.storage_basis = Some("compiled ep-context artefacts".into());
        r.compiled = records;
        compiled = map;
    }
    // A package without an image (no stage takes one) runs its requests on their tensors alone,
    // and saves no PNG: its outputs are the tensor outputs.
    let image_shape = plan
        .pipeline
        .stages
        .iter()
        .flat_map(|s| &s.inputs)
        .find(|i| i.source == Source::Image)
        .map(|i| &i.tensor.shape);
    let inputs = plan
        .inputs
        .iter()
        .map(|i| {
            let v = match image_shape {
                Some(shape) => pipeline::load_input(&dir.join(&i.tensor), shape)?,
                None => ort::value::Tensor::from_array((vec![1i64], vec![0f32])).map_err(|e| e.to_string())?,
            };
            Ok((i.name.clone(), v))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let request_sets = request_tensors(plan, dir)?;
    let dtypes = tensor_out::dtypes(plan)?;
    let tasks: Vec<String> = plan.pipeline.tasks.iter().map(|t| t.name.clone()).collect();
    let mut ex = Executor::new(plan, dir, &env)?;
    ex.set_request_sets(request_sets);
    ex.compiled = compiled;
    ex.init(&tasks[0])?;
    r.sessions =
        ex.created.iter().map(|(n, g, ms)| SessionInit { name: n.clone(), graph: g.clone(), create_ms: *ms }).collect();
    r.init_ms = ex.created.iter().map(|c| c.2).sum();
    end_phase(m, "init", reset, r);

    // First (cold) request, including binding the first adapter.
    let reset = begin_phase(m, "first_inference");
    let t0 = Instant::now();
    ex.switch_to(&tasks[0])?;
    let mut timing = RequestTiming::default();
    ex.use_request(0);
    ex.run(&tasks[0], &inputs[0].1, &mut timing)?;
    r.first_inference_ms = t0.elapsed().as_secs_f64() * 1e3;
    m.requests.fetch_add(1, Ordering::Relaxed);
    end_phase(m, "first_inference", reset, r);

    let reset = begin_phase(m, "steady");
    let w = &plan.workload;
    let per_visit = w.requests_per_visit.max(1) as usize;
    // Long enough for any stopping point; visits are cheap to enumerate.
    let order = visit_order(tasks.len(), w.order, w.seed, 1 << 20);
    let mut visit = 0usize;
    let mut current = tasks[0].clone();
    let mut req_no = 0usize;
    let mut measured_start: Option<Instant> = None;
    let (mut e2e_n, mut sw_n) = (0u32, 0u32);
    let mut captured = std::collections::HashSet::new();
    let abort_at = abort_after(plan.strategy);
    // The cap counts warm-up too: a long warm-up ends the run (invalid) instead of running on.
    let steady_start = Instant::now();
    loop {
        let warmup = visit < w.warmup_visits as usize;
        if !warmup && measured_start.is_none() {
            measured_start = Some(Instant::now());
        }
        if steady_start.elapsed().as_millis() as u64 >= w.max_duration_ms {
            break;
        }
        if let Some(s) = measured_start {
            let el = s.elapsed().as_millis() as u64;
            let met = e2e_n >= w.min_samples && sw_n >= w.min_switches && el >= w.min_duration_ms;
            if met {
                break;
            }
        }
        let task = tasks[order[visit % order.len()]].clone();
        for k in 0..per_visit {
            let input_no = req_no % inputs.len();
            let input = &inputs[input_no].1;
            req_no += 1;
            let t_sw = Instant::now();
            let load_ms = if k == 0 { ex.switch_to(&task)? } else { 0.0 };
            let mut timing = RequestTiming::default();
            ex.use_request(input_no);
            let capture = w.capture_timed_outputs && !warmup && !captured.contains(&(task.clone(), input_no));
            let (img, kept) = ex.run_keep(&task, input, &mut timing, tensor_out::keep(plan, capture))?;
            let latency = t_sw.elapsed().as_secs_f64() * 1e3;
            // After the request's timing: what this request computed, kept for TEST01.
            if capture {
                captured.insert((task.clone(), input_no));
                let (input_name, timed_dir) = (&inputs[input_no].0, format!("{}/timed", plan.output_dir));
                if image_shape.is_some() {
                    let rel = format!("{timed_dir}/{task}__{input_name}.png");
                    pipeline::write_png(&img, &dir.join(&rel))?;
                    r.timed_outputs.push(OutputImage { task: task.clone(), input: input_name.clone(), path: rel });
                }
                let t = tensor_out::write_all(plan, &dtypes, dir, &timed_dir, &task, input_name, &img, &kept)?;
                r.timed_tensor_outputs.extend(t);
            }
            let done = m.requests.fetch_add(1, Ordering::Relaxed) + 1;
            if abort_at.is_some_and(|n| done > n) {
                eprintln!(
                    "quadbench-runner: fault injection (QUADBENCH_RUNNER_FAULT): aborting after {n} requests",
                    n = done - 1
                );
                std::process::abort();
            }
            if k == 0 {
                let switched = task != current;
                if switched {
                    r.switches.push(SwitchEvent {
                        at_ms: measured_start.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3),
                        from_task: Some(current.clone()),
                        to_task: task.clone(),
                        load_ms,
                        latency_ms: latency,
                        warmup,
                    });
                    if !warmup {
                        push(&mut r.samples_ms, sample_key::SWITCH, latency);
                        push(&mut r.samples_ms, sample_key::SWITCH_LOAD, load_ms);
                        sw_n += 1;
                    }
                }
                current = task.clone();
                if switched || tasks.len() > 1 {
                    continue;
                }
            }
            if !warmup {
                for (stage, ms) in &timing.stages_ms {
                    push(&mut r.samples_ms, stage, *ms);
                }
                push(&mut r.samples_ms, sample_key::E2E, timing.e2e_ms);
                e2e_n += 1;
                r.requests += 1;
            }
        }
        visit += 1;
    }
    r.requests += sw_n as u64;
    r.duration_ms = measured_start.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3);
    r.valid = e2e_n >= w.min_samples && sw_n >= w.min_switches && r.duration_ms >= w.min_duration_ms as f64;
    r.validity_note = if r.valid {
        format!(
            "valid: {e2e_n} samples (min {}), {sw_n} switches (min {}), {:.0} ms (min {})",
            w.min_samples, w.min_switches, r.duration_ms, w.min_duration_ms
        )
    } else {
        format!(
            "invalid: {e2e_n} of {} samples, {sw_n} of {} switches in {:.0} ms (max {} ms)",
            w.min_samples, w.min_switches, r.duration_ms, w.max_duration_ms
        )
    };
    end_phase(m, "steady", reset, r);

    // One output per task and input, for quality scoring; not measured.
    let reset = begin_phase(m, "outputs");
    for t in &tasks {
        ex.switch_to(t)?;
        for (k, (name, input)) in inputs.iter().enumerate() {
            let mut timing = RequestTiming::default();
            ex.use_request(k);
            let (img, kept) = ex.run_keep(t, input, &mut timing, tensor_out::keep(plan, true))?;
            if image_shape.is_some() {
                let rel = format!("{}/{t}__{name}.png", plan.output_dir);
                pipeline::write_png(&img, &dir.join(&rel))?;
                r.outputs.push(OutputImage { task: t.clone(), input: name.clone(), path: rel });
            }
            let tensors = tensor_out::write_all(plan, &dtypes, dir, &plan.output_dir, t, name, &img, &kept)?;
            r.tensor_outputs.extend(tensors);
        }
    }
    end_phase(m, "outputs", reset, r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_random_always_switches() {
        assert_eq!(visit_order(3, TaskOrder::RoundRobin, 0, 7), vec![0, 1, 2, 0, 1, 2, 0]);
        let v = visit_order(4, TaskOrder::Random, 9, 1000);
        assert!(v.windows(2).all(|w| w[0] != w[1]));
        assert!((0..4).all(|t| v.contains(&t)));
        assert_eq!(v, visit_order(4, TaskOrder::Random, 9, 1000));
        assert_ne!(v, visit_order(4, TaskOrder::Random, 10, 1000));
    }
}
