//! Executes the package pipeline for one request: stages in order, repeated stages with their
//! loop-carried value and schedule, LoRA inputs bound from the active adapter (unified),
//! supplied by ONNX Runtime from the task's activated `.onnx_adapter` files
//! (unified-ort-adapter), or merged into the task's baseline session (separate strategies;
//! separate-shared-weights creates those sessions from one shared EP context).
//! Measures per-stage latency.

use crate::backend;
use ort::session::{Adapter, RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor};
use quadbench_protocol::{
    DType, LoraPart, Plan, PlanLoraSlot, PlanStage, Source, StageOutputRef, Strategy, TensorSpec,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub type Error = String;

/// A loaded adapter: slot -> (A `[in, r]`, B `[r, out]` scaled by alpha/r), ready to bind.
pub struct BoundAdapter {
    pub task: String,
    tensors: HashMap<(String, LoraPart), Tensor<f32>>,
}

impl BoundAdapter {
    /// The bound tensor of one side of a slot.
    pub fn tensor(&self, slot: &str, part: LoraPart) -> Option<&Tensor<f32>> {
        self.tensors.get(&(slot.to_string(), part))
    }
}

/// One side of a LoRA slot laid out as the graph input wants it: `[in, rank]` for A,
/// `[rank, out]` for B (scaled by `alpha / rank`); a convolution slot keeps PEFT's layout
/// (`[rank, in, kh, kw]`, `[out, rank, 1, 1]`).
pub struct SlotTensor {
    pub slot: String,
    pub part: LoraPart,
    /// The graph input this tensor feeds (`input_a` or `input_b` of the slot).
    pub input: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Read a PEFT safetensors adapter and lay every slot out for the graph's inputs. Pure Rust (no
/// ONNX Runtime): the host writes `.onnx_adapter` files from these same arrays, so both ways of
/// supplying an adapter feed the graph bit-identical tensors.
pub fn adapter_arrays(path: &Path, slots: &[PlanLoraSlot]) -> Result<Vec<SlotTensor>, Error> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read adapter {}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("adapter {} is not valid safetensors: {e}", path.display()))?;
    let mut out = Vec::with_capacity(slots.len() * 2);
    for slot in slots {
        let [shape_a, shape_b] = slot.adapter_shapes();
        for (part, want) in [(LoraPart::A, shape_a), (LoraPart::B, shape_b)] {
            let suffix = if part == LoraPart::A { "lora_A.weight" } else { "lora_B.weight" };
            let names = [format!("base_model.model.{}.{suffix}", slot.module), format!("{}.{suffix}", slot.module)];
            let t = names.iter().find_map(|n| st.tensor(n).ok()).ok_or_else(|| {
                format!("adapter {} lacks tensor `{}` (slot `{}`)", path.display(), names[0], slot.name)
            })?;
            if t.shape() != want || t.dtype() != safetensors::Dtype::F32 {
                return Err(format!(
                    "adapter {} tensor for slot `{}` {suffix} is {:?} {:?}, expected F32 {want:?}",
                    path.display(),
                    slot.name,
                    t.dtype(),
                    t.shape()
                ));
            }
            let data: Vec<f32> =
                t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let scale = if part == LoraPart::B { slot.alpha / slot.rank as f32 } else { 1.0 };
            let shape: Vec<usize> =
                slot.input_shapes()[if part == LoraPart::A { 0 } else { 1 }].iter().map(|&d| d as usize).collect();
            let v = if slot.kernel.is_some() {
                // Convolution slots take PEFT's layout as it is.
                data.iter().map(|v| v * scale).collect()
            } else {
                // PEFT: A is [r, in], B is [out, r]; the graph wants A^T [in, r] and B^T [r, out].
                let (rows, cols) = (want[0], want[1]);
                let mut v = vec![0f32; rows * cols];
                for r in 0..rows {
                    for c in 0..cols {
                        v[c * rows + r] = data[r * cols + c] * scale;
                    }
                }
                v
            };
            let input = if part == LoraPart::A { &slot.input_a } else { &slot.input_b };
            out.push(SlotTensor { slot: slot.name.clone(), part, input: input.clone(), shape, data: v });
        }
    }
    Ok(out)
}

/// Read a PEFT safetensors adapter and lay it out for the graph's inputs.
pub fn load_adapter(path: &Path, task: &str, slots: &[PlanLoraSlot]) -> Result<BoundAdapter, Error> {
    let mut tensors = HashMap::new();
    for t in adapter_arrays(path, slots)? {
        let tensor = Tensor::from_array((t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(), t.data))
            .map_err(|e| e.to_string())?;
        tensors.insert((t.slot, t.part), tensor);
    }
    Ok(BoundAdapter { task: task.into(), tensors })
}

/// The active task's ONNX Runtime adapters (`unified-ort-adapter`): per stage, run options with
/// that stage's `.onnx_adapter` activated (ONNX Runtime then feeds its tensors as the LoRA
/// inputs of every run made with them).
pub struct ActiveOrtAdapter {
    pub task: String,
    run_options: HashMap<String, RunOptions>,
}

/// Per-request timing of stages.
#[derive(Default)]
pub struct RequestTiming {
    /// (stage, ms) in execution order; repeated stages appear once per step.
    pub stages_ms: Vec<(String, f64)>,
    pub e2e_ms: f64,
}

/// Sessions and state of one strategy.
pub struct Executor<'p> {
    plan: &'p Plan,
    dir: PathBuf,
    env: &'p ort::environment::Environment,
    /// Stage sessions shared by all tasks (unified: all stages; separate: stages without baselines).
    shared: HashMap<String, Session>,
    /// (task, stage) -> baseline session (separate strategies).
    baselines: HashMap<(String, String), Session>,
    adapter: Option<BoundAdapter>,
    ort_adapter: Option<ActiveOrtAdapter>,
    schedules: HashMap<(String, u32), DynValue>,
    /// `<stage>/<input>` -> seeded noise (made once).
    noise: HashMap<String, Tensor<f32>>,
    /// Per-request tensor sets (`Source::Tensor`, `Source::Mask`), one per request input, by
    /// stage input name.
    request: Vec<HashMap<String, DynValue>>,
    /// Task -> its `source: task` constants by stage input name: the active task's only, or
    /// every task's for the strategies that keep every task resident.
    task_inputs: HashMap<String, HashMap<String, DynValue>>,
    /// The set the next requests use.
    request_no: usize,
    /// Session creations: (name, graph, ms).
    pub created: Vec<(String, String, f64)>,
    /// Graph -> compiled EP-context graph loaded in its place (see `compile`).
    pub compiled: HashMap<String, String>,
}

impl<'p> Executor<'p> {
    pub fn new(plan: &'p Plan, dir: &Path, env: &'p ort::environment::Environment) -> Result<Self, Error> {
        let mut schedules = HashMap::new();
        let mut noise = HashMap::new();
        for st in &plan.pipeline.stages {
            for i in &st.inputs {
                if let Source::Noise { seed, std } = &i.source {
                    let mut rng =
                        quadbench_protocol::rng::SplitMix64::derive(*seed, &format!("{}/{}", st.name, i.tensor.name));
                    let n = i.tensor.shape.iter().product::<i64>().max(1) as usize;
                    let data: Vec<f32> = (0..n).map(|_| (rng.normal() * *std as f64) as f32).collect();
                    let t = Tensor::from_array((i.tensor.shape.clone(), data)).map_err(|e| e.to_string())?;
                    noise.insert(format!("{}/{}", st.name, i.tensor.name), t);
                }
                if let Source::Schedule { values } = &i.source {
                    for (step, v) in values.iter().enumerate() {
                        let t = filled(&i.tensor, *v)?;
                        schedules.insert((format!("{}/{}", st.name, i.tensor.name), step as u32), t);
                    }
                }
            }
        }
        Ok(Executor {
            plan,
            dir: dir.to_path_buf(),
            env,
            shared: HashMap::new(),
            baselines: HashMap::new(),
            adapter: None,
            ort_adapter: None,
            schedules,
            noise,
            request: Vec::new(),
            request_no: 0,
            task_inputs: HashMap::new(),
            created: Vec::new(),
            compiled: HashMap::new(),
        })
    }

    fn create(&mut self, name: &str, graph: &str) -> Result<Session, Error> {
        self.create_with(name, graph, &[])
    }

    /// Create a session with extra session config entries (`config`).
    fn create_with(&mut self, name: &str, graph: &str, config: &[(&str, &str)]) -> Result<Session, Error> {
        let t0 = Instant::now();
        let mut b = Session::builder(self.env).map_err(|e| e.to_string())?;
        for (k, v) in config {
            b = b.with_config_entry(*k, *v).map_err(|e| e.to_string())?;
        }
        // Threads come from the environment's global pool (see `execute`).
        if self.plan.backend.require_full_offload {
            b = b.with_config_entry("session.disable_cpu_ep_fallback", "1").map_err(|e| e.to_string())?;
        }
        let mut b = backend::configure(b, self.env, &self.plan.backend).map_err(|e| e.to_string())?;
        let path = self.dir.join(self.compiled.get(graph).map_or(graph, |c| c.as_str()));
        let s = b.commit_from_file(&path).map_err(|e| {
            let msg = format!("cannot create a session for package file {}: {e}", package_file(graph));
            if self.plan.backend.name == quadbench_protocol::Backend::Cpu.as_str() {
                // The CPU EP runs every standard operator: an accelerator hint would mislead.
                format!("{msg}\n  hint: ONNX Runtime's CPU EP cannot load this graph (an operator or opset it does not know, or an invalid graph); check the package's export (opset >= 17, standard operators)")
            } else {
                crate::compile::unsupported_ops_hint(&msg)
            }
        })?;
        self.created.push((name.into(), graph.into(), t0.elapsed().as_secs_f64() * 1e3));
        Ok(s)
    }

    fn baseline_graph(&self, task: &str, stage: &str) -> Option<String> {
        self.plan.pipeline.tasks.iter().find(|t| t.name == task).and_then(|t| t.baselines.get(stage).cloned())
    }

    fn has_baseline(&self, stage: &str) -> bool {
        self.plan.strategy.is_separate() && self.plan.pipeline.tasks.iter().any(|t| t.baselines.contains_key(stage))
    }

    /// Create the sessions the strategy keeps from the start.
    pub fn init(&mut self, first_task: &str) -> Result<(), Error> {
        if self.every_task_resident() {
            for t in &self.plan.pipeline.tasks {
                let v = self.load_task_inputs(&t.name)?;
                self.task_inputs.insert(t.name.clone(), v);
            }
        }
        if self.plan.strategy == Strategy::SeparateSharedWeights {
            return self.init_shared();
        }
        let stages: Vec<PlanStage> = self.plan.pipeline.stages.clone();
        for st in &stages {
            if !self.has_baseline(&st.name) {
                let s = self.create(&st.name, &st.graph)?;
                self.shared.insert(st.name.clone(), s);
            }
        }
        match self.plan.strategy {
            Strategy::Unified | Strategy::UnifiedOrtAdapter => {}
            Strategy::SeparateResident => {
                let tasks: Vec<String> = self.plan.pipeline.tasks.iter().map(|t| t.name.clone()).collect();
                for t in tasks {
                    self.create_baselines(&t)?;
                }
            }
            Strategy::SeparateReload => self.create_baselines(first_task)?,
            Strategy::SeparateSharedWeights => unreachable!("handled by init_shared"),
        }
        Ok(())
    }

    /// `separate-shared-weights`: every session (shared stages, then each task's baselines) is
    /// created from the one shared EP context, as one sharing group (`compile::share_config`):
    /// the QNN EP loads the context binary once and each session takes its graph from it.
    fn init_shared(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        let mut todo: Vec<(Option<String>, String, String)> = Vec::new(); // (task, stage, graph)
        for st in &plan.pipeline.stages {
            if !self.has_baseline(&st.name) {
                todo.push((None, st.name.clone(), st.graph.clone()));
            }
        }
        for t in &plan.pipeline.tasks {
            for st in &plan.pipeline.stages {
                if let Some(g) = t.baselines.get(&st.name) {
                    todo.push((Some(t.name.clone()), st.name.clone(), g.clone()));
                }
            }
        }
        let n = todo.len();
        for (i, (task, stage, graph)) in todo.into_iter().enumerate() {
            let config = crate::compile::share_config(plan.strategy, i, n);
            let name = task.as_ref().map_or_else(|| stage.clone(), |t| format!("{stage}/{t}"));
            let s = self.create_with(&name, &graph, &config).map_err(shared_context_refused)?;
            match task {
                None => self.shared.insert(stage, s),
                Some(task) => self.baselines.insert((task, stage), s),
            };
        }
        Ok(())
    }

    fn create_baselines(&mut self, task: &str) -> Result<(), Error> {
        for st in self.plan.pipeline.stages.clone() {
            if let Some(g) = self.baseline_graph(task, &st.name) {
                let s = self.create(&format!("{}/{task}", st.name), &g)?;
                self.baselines.insert((task.into(), st.name.clone()), s);
            }
        }
        Ok(())
    }

    /// `task`'s `source: task` constants, by stage input name (its `inputs` files).
    fn load_task_inputs(&self, task: &str) -> Result<HashMap<String, DynValue>, Error> {
        let t =
            self.plan.pipeline.tasks.iter().find(|t| t.name == task).ok_or_else(|| format!("unknown task `{task}`"))?;
        let mut out = HashMap::new();
        for i in self.plan.pipeline.stages.iter().flat_map(|s| &s.inputs).filter(|i| i.source == Source::Task) {
            if out.contains_key(&i.tensor.name) {
                continue;
            }
            let file = t.inputs.get(&i.tensor.name).ok_or_else(|| {
                format!(
                    "task `{task}` gives no value for the per-task input `{}` (package.yaml: the task's `inputs`)",
                    i.tensor.name
                )
            })?;
            out.insert(i.tensor.name.clone(), load_tensor(&self.dir.join(file), &i.tensor)?);
        }
        Ok(out)
    }

    /// Whether the strategy keeps every task ready (their per-task constants loaded up front).
    fn every_task_resident(&self) -> bool {
        matches!(self.plan.strategy, Strategy::SeparateResident | Strategy::SeparateSharedWeights)
    }

    /// Make `task` the active one: load and bind its adapter (unified), load and activate its
    /// `.onnx_adapter` files (unified-ort-adapter), recreate its baseline sessions
    /// (separate-reload), or nothing (separate-resident); and, but for the resident strategies,
    /// load its per-task constants. Returns the time spent, ms.
    pub fn switch_to(&mut self, task: &str) -> Result<f64, Error> {
        let t0 = Instant::now();
        if !self.every_task_resident() && !self.task_inputs.contains_key(task) {
            // One task's constants in memory at a time, as its adapter.
            self.task_inputs.clear();
            let v = self.load_task_inputs(task)?;
            self.task_inputs.insert(task.to_string(), v);
        }
        match self.plan.strategy {
            Strategy::Unified => {
                if self.adapter.as_ref().is_some_and(|a| a.task == task) {
                    return Ok(0.0);
                }
                // Drop the old buffers first so peak memory holds one adapter, as on a device.
                self.adapter = None;
                let t = self
                    .plan
                    .pipeline
                    .tasks
                    .iter()
                    .find(|t| t.name == task)
                    .ok_or_else(|| format!("unknown task `{task}`"))?;
                self.adapter = Some(load_adapter(&self.dir.join(&t.adapter), task, &self.plan.pipeline.lora_slots)?);
            }
            Strategy::UnifiedOrtAdapter => {
                if self.ort_adapter.as_ref().is_some_and(|a| a.task == task) {
                    return Ok(0.0);
                }
                self.ort_adapter = None;
                self.ort_adapter = Some(self.load_ort_adapters(task)?);
            }
            Strategy::SeparateReload => {
                if self.baselines.keys().any(|(t, _)| t == task) {
                    return Ok(0.0);
                }
                self.baselines.clear();
                self.create_baselines(task)?;
            }
            // Every task's session is resident: a switch only changes the session `run` uses.
            Strategy::SeparateResident | Strategy::SeparateSharedWeights => {}
        }
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }

    /// Load the `.onnx_adapter` file of every stage with LoRA inputs and activate each in its own
    /// run options. ONNX Runtime memory-maps the file (pages are read when the first run touches
    /// them, so that cost lands in the switch's inference, not in its load). The tensors stay in
    /// host memory, as plain inputs do: an accelerator EP copies them in at every run. (ONNX
    /// Runtime can copy them to a device once at load when given a device allocator; the runner
    /// does not do that yet.)
    fn load_ort_adapters(&self, task: &str) -> Result<ActiveOrtAdapter, Error> {
        let t =
            self.plan.pipeline.tasks.iter().find(|t| t.name == task).ok_or_else(|| format!("unknown task `{task}`"))?;
        let mut run_options = HashMap::new();
        for st in &self.plan.pipeline.stages {
            if !st.inputs.iter().any(|i| matches!(i.source, Source::Lora { .. })) {
                continue;
            }
            let file = t.ort_adapters.get(&st.name).ok_or_else(|| {
                format!("the plan gives task `{task}` no .onnx_adapter for stage `{}` (strategy unified-ort-adapter); the host writes them at staging time", st.name)
            })?;
            let path = self.dir.join(file);
            let adapter = Adapter::from_file(&path, None)
                .map_err(|e| format!("ONNX Runtime cannot load adapter {}: {e}", package_file(file)))?;
            let mut o = RunOptions::new().map_err(|e| e.to_string())?;
            o.add_adapter(&adapter).map_err(|e| format!("cannot activate adapter {}: {e}", package_file(file)))?;
            run_options.insert(st.name.clone(), o);
        }
        Ok(ActiveOrtAdapter { task: task.into(), run_options })
    }

    /// The tensors the next requests feed to `Source::Tensor` and `Source::Mask` inputs, by
    /// input name.
    pub fn set_request_tensors(&mut self, tensors: HashMap<String, DynValue>) {
        self.request = vec![tensors];
        self.request_no = 0;
    }

    /// The tensor sets of the plan's inputs (in order); [`Self::use_request`] picks one.
    pub fn set_request_sets(&mut self, sets: Vec<HashMap<String, DynValue>>) {
        self.request = sets;
        self.request_no = 0;
    }

    /// Feed the next requests the tensors of input `k` (no copy: the sets are loaded once).
    pub fn use_request(&mut self, k: usize) {
        self.request_no = k;
    }

    /// Run one request of the active task on `image`. Returns the final image tensor.
    pub fn run(&mut self, task: &str, image: &Tensor<f32>, timing: &mut RequestTiming) -> Result<DynValue, Error> {
        Ok(self.run_keep(task, image, timing, &[])?.0)
    }

    /// [`Self::run`], also returning the stage outputs `keep` (in its order; `None` for one that
    /// is the image itself), taken out of the request's values before its end-to-end time is
    /// read, as the image is.
    pub fn run_keep(
        &mut self,
        task: &str,
        image: &Tensor<f32>,
        timing: &mut RequestTiming,
        keep: &[StageOutputRef],
    ) -> Result<(DynValue, Vec<Option<DynValue>>), Error> {
        let t_req = Instant::now();
        let mut values = self.run_values(task, image, timing)?;
        let r = &self.plan.pipeline.image_output;
        let img = values.remove(&(r.stage.clone(), r.output.clone())).ok_or("final image missing")?;
        let mut kept = Vec::with_capacity(keep.len());
        for k in keep {
            if k == r {
                kept.push(None);
                continue;
            }
            let v = values.remove(&(k.stage.clone(), k.output.clone()));
            kept.push(Some(v.ok_or_else(|| format!("stage output `{}` missing", k.label()))?));
        }
        timing.e2e_ms = t_req.elapsed().as_secs_f64() * 1e3;
        Ok((img, kept))
    }

    /// Run one request of the active task on `image`. Returns every stage output of the request
    /// by (stage, output); of a repeated stage, its last step's.
    pub fn run_values(
        &mut self,
        task: &str,
        image: &Tensor<f32>,
        timing: &mut RequestTiming,
    ) -> Result<HashMap<(String, String), DynValue>, Error> {
        let plan = self.plan;
        let mut values: HashMap<(String, String), DynValue> = HashMap::new();
        for st in &plan.pipeline.stages {
            let use_baseline = self.has_baseline(&st.name);
            if plan.strategy == Strategy::Unified
                && !plan.pipeline.lora_slots.is_empty()
                && self.adapter.as_ref().is_none_or(|a| a.task != task)
            {
                return Err(format!(
                    "internal: task `{task}` requested but adapter `{}` is bound",
                    self.adapter.as_ref().map_or("none", |a| a.task.as_str())
                ));
            }
            if plan.strategy == Strategy::UnifiedOrtAdapter && self.ort_adapter.as_ref().is_none_or(|a| a.task != task)
            {
                return Err(format!(
                    "internal: task `{task}` requested but the .onnx_adapter of `{}` is active",
                    self.ort_adapter.as_ref().map_or("none", |a| a.task.as_str())
                ));
            }
            let run_options = self.ort_adapter.as_ref().and_then(|a| a.run_options.get(&st.name));
            for step in 0..st.repeat {
                let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(st.inputs.len());
                for i in &st.inputs {
                    let v: SessionInputValue<'_> = match &i.source {
                        Source::Image => image.into(),
                        Source::Stage { stage, output } => values
                            .get(&(stage.clone(), output.clone()))
                            .ok_or_else(|| format!("stage `{}`: value {stage}.{output} missing", st.name))?
                            .into(),
                        Source::Carry { stage, init_output, output } => {
                            let key = if step == 0 {
                                (stage.clone(), init_output.clone())
                            } else {
                                (st.name.clone(), output.clone())
                            };
                            values
                                .get(&key)
                                .ok_or_else(|| format!("stage `{}`: carried value missing", st.name))?
                                .into()
                        }
                        Source::Tensor | Source::Mask => self
                            .request
                            .get(self.request_no)
                            .and_then(|m| m.get(&i.tensor.name))
                            .ok_or_else(|| {
                                format!(
                                    "stage `{}` input `{}` is a per-request {} and this request has none (give it in the scenario's `{}` or `quadbench infer --inputs FILE.npz`)",
                                    st.name,
                                    i.tensor.name,
                                    if i.source == Source::Mask { "mask" } else { "tensor" },
                                    if i.source == Source::Mask { "masks" } else { "tensor_inputs" },
                                )
                            })?
                            .into(),
                        Source::Task => self
                            .task_inputs
                            .get(task)
                            .and_then(|m| m.get(&i.tensor.name))
                            .ok_or_else(|| format!("stage `{}` input `{}`: task `{task}`'s constant is not loaded", st.name, i.tensor.name))?
                            .into(),
                        Source::Noise { .. } => self
                            .noise
                            .get(&format!("{}/{}", st.name, i.tensor.name))
                            .ok_or("noise missing")?
                            .into(),
                        Source::Schedule { .. } => self
                            .schedules
                            .get(&(format!("{}/{}", st.name, i.tensor.name), step))
                            .ok_or("schedule missing")?
                            .into(),
                        Source::Lora { slot, part } => {
                            if use_baseline || run_options.is_some() {
                                continue; // merged into the baseline graph, or fed by ONNX Runtime
                            }
                            self.adapter
                                .as_ref()
                                .and_then(|a| a.tensors.get(&(slot.clone(), *part)))
                                .ok_or_else(|| format!("no adapter tensor bound for slot `{slot}`"))?
                                .into()
                        }
                    };
                    inputs.push((i.tensor.name.clone(), v));
                }
                let session = if use_baseline {
                    self.baselines
                        .get_mut(&(task.to_string(), st.name.clone()))
                        .ok_or_else(|| format!("no baseline session of task `{task}` for stage `{}`", st.name))?
                } else {
                    self.shared.get_mut(&st.name).ok_or_else(|| format!("no session for stage `{}`", st.name))?
                };
                let t0 = Instant::now();
                let run = match run_options {
                    Some(o) => session.run_with_options(inputs, o),
                    None => session.run(inputs),
                };
                let mut out = run.map_err(|e| format!("stage `{}` step {step}: {e}", st.name))?;
                timing.stages_ms.push((st.name.clone(), t0.elapsed().as_secs_f64() * 1e3));
                let mut fresh = Vec::new();
                for o in &st.outputs {
                    let v = out
                        .remove(&o.name)
                        .ok_or_else(|| format!("stage `{}` produced no output `{}`", st.name, o.name))?;
                    fresh.push(((st.name.clone(), o.name.clone()), v));
                }
                drop(out);
                values.extend(fresh);
            }
        }
        Ok(values)
    }

    /// Sessions currently held, for reporting.
    pub fn session_count(&self) -> usize {
        self.shared.len() + self.baselines.len()
    }
}

/// A QNN backend that compiles a weight-shared context but cannot load one answers
/// `QNN_COMMON_ERROR_NOT_SUPPORTED` from `contextCreateFromBinary` (seen with QNN EP 2.7.0,
/// QAIRT 2.51, on the x86_64 HTP simulator): the strategy is unsupported there, not failed, and
/// the run keeps the compiled storage it measured.
fn shared_context_refused(e: Error) -> Error {
    if e.contains("QNN_COMMON_ERROR_NOT_SUPPORTED") {
        // The generic hint (quantize, allow fallback) does not apply: the graphs compiled.
        let e = e.split("\n  hint:").next().unwrap_or(&e);
        format!(
            "{}strategy separate-shared-weights: the QNN EP compiled the shared EP context (one context binary for every graph) but cannot load it here: {e}",
            crate::backend::UNSUPPORTED_PREFIX
        )
    } else {
        e
    }
}

/// NCHW f32 [0,1] -> RGB8 PNG.
pub fn write_png(v: &DynValue, path: &Path) -> Result<(), Error> {
    let (shape, data) = v.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
    let dims: Vec<i64> = shape.iter().copied().collect();
    let [1, c, h, w] = dims[..] else { return Err(format!("output image has shape {dims:?}, expected [1, C, H, W]")) };
    let (c, h, w) = (c as usize, h as usize, w as usize);
    let mut buf = vec![0u8; h * w * 3];
    for y in 0..h {
        for x in 0..w {
            for k in 0..3 {
                let ch = if c == 1 { 0 } else { k };
                buf[(y * w + x) * 3 + k] = (data[ch * h * w + y * w + x].clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            }
        }
    }
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    image::save_buffer(path, &buf, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A tensor of `spec`'s shape and dtype with every element `v`: a schedule's value for one step,
/// cast for integer inputs (a diffusion timestep is i64).
fn filled(spec: &TensorSpec, v: f32) -> Result<DynValue, Error> {
    let n = spec.shape.iter().product::<i64>().max(1) as usize;
    let shape = spec.shape.clone();
    let e = |e: ort::Error| e.to_string();
    Ok(match spec.dtype {
        DType::F32 => Tensor::from_array((shape, vec![v; n])).map_err(e)?.into_dyn(),
        DType::I64 => Tensor::from_array((shape, vec![v as i64; n])).map_err(e)?.into_dyn(),
        DType::I32 => Tensor::from_array((shape, vec![v as i32; n])).map_err(e)?.into_dyn(),
        other => {
            return Err(format!(
                "schedule input `{}` is {}: schedules feed f32, i64 or i32 inputs",
                spec.name,
                other.as_str()
            ));
        }
    })
}

/// A tensor input file, checked against the stage input `spec`: a `.npy` of its dtype and shape,
/// or (as the host wrote before typed inputs) raw little-endian f32.
pub fn load_tensor(path: &Path, spec: &TensorSpec) -> Result<DynValue, Error> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read input {}: {e}", path.display()))?;
    if !b.starts_with(b"\x93NUMPY") {
        if spec.dtype != DType::F32 {
            return Err(format!(
                "input {} is not a .npy file; input `{}` is {}",
                path.display(),
                spec.name,
                spec.dtype.as_str()
            ));
        }
        return Ok(raw_f32(&b, path, &spec.shape)?.into_dyn());
    }
    let a = quadbench_protocol::npy::parse(&b).map_err(|e| format!("input {}: {e}", path.display()))?;
    let want: Vec<usize> = spec.shape.iter().map(|&d| d as usize).collect();
    if a.shape != want || a.dtype != spec.dtype {
        return Err(format!(
            "input {} holds {} {:?}; stage input `{}` takes {} {want:?}",
            path.display(),
            a.dtype.as_str(),
            a.shape,
            spec.name,
            spec.dtype.as_str()
        ));
    }
    npy_value(&a).map_err(|e| format!("input {}: {e}", path.display()))
}

/// A typed array as an ONNX Runtime value (f32 must be finite).
pub fn npy_value(a: &quadbench_protocol::npy::NpyArray) -> Result<DynValue, Error> {
    fn le<T, const N: usize>(d: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        d.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N bytes"))).collect()
    }
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    let e = |e: ort::Error| e.to_string();
    Ok(match a.dtype {
        DType::F32 => {
            let d = le(&a.data, f32::from_le_bytes);
            if d.iter().any(|v| !v.is_finite()) {
                return Err("holds NaN or infinite values".into());
            }
            Tensor::from_array((shape, d)).map_err(e)?.into_dyn()
        }
        DType::I64 => Tensor::from_array((shape, le(&a.data, i64::from_le_bytes))).map_err(e)?.into_dyn(),
        DType::I32 => Tensor::from_array((shape, le(&a.data, i32::from_le_bytes))).map_err(e)?.into_dyn(),
        DType::I16 => Tensor::from_array((shape, le(&a.data, i16::from_le_bytes))).map_err(e)?.into_dyn(),
        DType::U16 => Tensor::from_array((shape, le(&a.data, u16::from_le_bytes))).map_err(e)?.into_dyn(),
        DType::I8 => Tensor::from_array((shape, le(&a.data, i8::from_le_bytes))).map_err(e)?.into_dyn(),
        DType::U8 => Tensor::from_array((shape, a.data.clone())).map_err(e)?.into_dyn(),
        DType::F16 => {
            let d = le(&a.data, |b: [u8; 2]| half::f16::from_bits(u16::from_le_bytes(b)));
            if d.iter().any(|v| !v.is_finite()) {
                return Err("holds NaN or infinite values".into());
            }
            Tensor::from_array((shape, d)).map_err(e)?.into_dyn()
        }
    })
}

/// Raw little-endian f32 NCHW file -> tensor of `shape`.
pub fn load_input(path: &Path, shape: &[i64]) -> Result<Tensor<f32>, Error> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read input {}: {e}", path.display()))?;
    raw_f32(&b, path, shape)
}

fn raw_f32(b: &[u8], path: &Path, shape: &[i64]) -> Result<Tensor<f32>, Error> {
    let n: i64 = shape.iter().product();
    if b.len() != n as usize * 4 {
        return Err(format!("input {} has {} bytes, expected {} for shape {shape:?}", path.display(), b.len(), n * 4));
    }
    let data: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if data.iter().any(|v| !v.is_finite()) {
        return Err(format!("input {} holds NaN or infinite values", path.display()));
    }
    Tensor::from_array((shape.to_vec(), data)).map_err(|e| e.to_string())
}

/// Sample statistics keyed by name.
pub type Samples = BTreeMap<String, Vec<f64>>;

/// A graph as its package names it (`decoder.onnx`), not as the plan reaches it on the device
/// (`../../packages/<digest>/decoder.onnx`).
pub fn package_file(graph: &str) -> &str {
    graph.split_once("packages/").and_then(|(_, r)| r.split_once('/')).map_or(graph, |(_, f)| f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_name_the_package_file_not_the_device_path() {
        assert_eq!(super::package_file("../../packages/0123456789abcdef/decoder.onnx"), "decoder.onnx");
        assert_eq!(
            super::package_file("../../packages/0123/baselines/blur/denoiser.onnx"),
            "baselines/blur/denoiser.onnx"
        );
        assert_eq!(super::package_file("/abs/model.onnx"), "/abs/model.onnx");
    }
}
