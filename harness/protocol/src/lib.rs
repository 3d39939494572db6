//! The plan/result protocol between the host (`quadbench`) and the device-side runner
//! (`quadbench-runner`), defined once and versioned.
//!
//! The host writes a [`Plan`] as JSON (`plan.json`) next to the package files it pushed; the
//! runner executes it and writes a [`RunResult`] (`result.json`) plus output PNGs, and prints
//! heartbeat lines ([`HEARTBEAT_PREFIX`]) on stdout while it works so that the host can tell a
//! hang from slow work. Paths inside a plan are relative to the plan's directory, so the same plan
//! runs on the local host, over ADB or over SSH.
//!
//! Versioning: [`PLAN_SCHEMA`] and [`RESULT_SCHEMA`] carry a major version. A runner refuses a
//! plan whose schema string it does not know; additive changes (new optional fields) keep the
//! version, anything else bumps it.

pub mod backend;
pub mod npy;
pub mod rng;

pub use backend::{BACKENDS, Backend, BackendInfo};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sample keys of a run result's `samples_ms` besides the per-stage ones (which are stage names).
pub mod sample_key {
    /// End-to-end latency of a steady-state request.
    pub const E2E: &str = "e2e";
    /// Task switch: from the switch request to the first output of the new task.
    pub const SWITCH: &str = "switch";
    /// The load part of a switch (adapter load + bind, `.onnx_adapter` load + activation, or
    /// session re-creation).
    pub const SWITCH_LOAD: &str = "switch_load";
}

/// Schema tag of a run plan.
pub const PLAN_SCHEMA: &str = "quadbench.plan/1";
/// Schema tag of a runner result.
pub const RESULT_SCHEMA: &str = "quadbench.run-result/1";
/// Every heartbeat line the runner prints on stdout starts with this.
pub const HEARTBEAT_PREFIX: &str = "QB-HEARTBEAT ";

/// How tasks are deployed on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One session per stage; adapters loaded from storage and bound as graph inputs.
    Unified,
    /// The unified graph, each task's adapter an ONNX Runtime `.onnx_adapter` file per stage,
    /// activated through the run options instead of bound as inputs.
    UnifiedOrtAdapter,
    /// Every task's merged baseline session created up front.
    SeparateResident,
    /// One baseline session at a time, recreated at each task switch.
    SeparateReload,
    /// Every task's merged baseline compiled into one shared EP context (QNN HTP only: the QNN
    /// EP's `ep.share_ep_contexts`, identical weights stored once), all sessions created up
    /// front from it; a switch changes the session used.
    SeparateSharedWeights,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Unified,
        Strategy::UnifiedOrtAdapter,
        Strategy::SeparateResident,
        Strategy::SeparateReload,
        Strategy::SeparateSharedWeights,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Unified => "unified",
            Strategy::UnifiedOrtAdapter => "unified-ort-adapter",
            Strategy::SeparateResident => "separate-resident",
            Strategy::SeparateReload => "separate-reload",
            Strategy::SeparateSharedWeights => "separate-shared-weights",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this strategy runs per-task merged baselines (as opposed to adapters as inputs).
    pub fn is_separate(self) -> bool {
        !matches!(self, Strategy::Unified | Strategy::UnifiedOrtAdapter)
    }

    /// The only backend this strategy runs on, if it is tied to one (`separate-shared-weights`
    /// needs the QNN EP's shared EP contexts), with the reason.
    pub fn only_backend(self) -> Option<(Backend, &'static str)> {
        match self {
            Strategy::SeparateSharedWeights => Some((
                Backend::QnnHtp,
                "it compiles the baselines into one shared QNN context (ep.share_ep_contexts), which only the QNN EP offers",
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Element type of a tensor, as written in package manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    U8,
    I8,
    U16,
    I16,
    I32,
    I64,
}

impl DType {
    pub const ALL: [DType; 8] =
        [DType::F32, DType::F16, DType::U8, DType::I8, DType::U16, DType::I16, DType::I32, DType::I64];

    /// The type named as in manifests (`f32`, `i64`, ...).
    pub fn parse(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::U16 => "u16",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }
}

/// A named tensor with a static shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: DType,
}

/// Where a stage input gets its value from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// The request's input image, NCHW f32 in `[0, 1]`.
    Image,
    /// An output of an earlier stage.
    Stage { stage: String, output: String },
    /// A loop-carried value of a repeated stage: `init` on the first step, then this stage's own
    /// output `output` from the previous step.
    Carry { stage: String, init_output: String, output: String },
    /// A per-step scalar schedule (e.g. the sampler's mixing factor), one value per step.
    Schedule { values: Vec<f32> },
    /// One side of a LoRA slot (`a` or `b`), bound from the active task's adapter.
    Lora { slot: String, part: LoraPart },
    /// A tensor given with each request under the stage input's name (`quadbench infer --inputs
    /// FILE.npz`; in scenario runs `tensor_inputs`, carried by [`PlanInput::tensors`]), of the
    /// input's dtype.
    Tensor,
    /// A mask image given with each request, f32 `[1, 1, H, W]` in `[0, 1]` (white = 1): the
    /// scenario's `masks`, staged by the host as a tensor of [`PlanInput::tensors`] under the
    /// stage input's name.
    Mask,
    /// A per-task constant (e.g. a task's prompt embedding): the active task's
    /// [`PlanTask::inputs`] file for this stage input, loaded when the task becomes active.
    Task,
    /// Seeded Gaussian noise `N(0, std^2)` of the input's shape, the same for every request (a
    /// sampler's initial latent): `rng::SplitMix64::derive(seed, "<stage>/<input>")`.
    Noise { seed: u64, std: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraPart {
    A,
    B,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageInput {
    #[serde(flatten)]
    pub tensor: TensorSpec,
    pub source: Source,
}

/// One ONNX graph run in pipeline order, possibly repeated (`repeat` steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStage {
    pub name: String,
    /// Graph file used by the unified strategy (relative to the plan directory).
    pub graph: String,
    pub repeat: u32,
    pub inputs: Vec<StageInput>,
    pub outputs: Vec<TensorSpec>,
}

/// A LoRA slot: graph inputs `input_a` `[in, rank]` and `input_b` `[rank, out]` of `stage`,
/// bound from the PEFT tensors `<module>.lora_A.weight` `[rank, in]` and
/// `<module>.lora_B.weight` `[out, rank]` of the adapter file, scaled by `alpha / rank`.
/// A convolution slot (`kernel` set, PEFT LoCon) binds the tensors in PEFT's own layout:
/// A `[rank, in, kh, kw]` (a conv with the layer's stride and padding), B `[out, rank, 1, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLoraSlot {
    pub name: String,
    pub stage: String,
    pub module: String,
    pub input_a: String,
    pub input_b: String,
    pub in_features: usize,
    pub out_features: usize,
    pub rank: usize,
    pub alpha: f32,
    /// `[kh, kw]` of a convolution slot; absent for a MatMul/Gemm slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<[usize; 2]>,
}

impl PlanLoraSlot {
    /// Shapes of the graph inputs A and B.
    pub fn input_shapes(&self) -> [Vec<i64>; 2] {
        let (i, o, r) = (self.in_features as i64, self.out_features as i64, self.rank as i64);
        match self.kernel {
            Some([kh, kw]) => [vec![r, i, kh as i64, kw as i64], vec![o, r, 1, 1]],
            None => [vec![i, r], vec![r, o]],
        }
    }

    /// Shapes of the adapter file's `lora_A.weight` and `lora_B.weight` (PEFT layout).
    pub fn adapter_shapes(&self) -> [Vec<usize>; 2] {
        let (i, o, r) = (self.in_features, self.out_features, self.rank);
        match self.kernel {
            Some([kh, kw]) => [vec![r, i, kh, kw], vec![o, r, 1, 1]],
            None => [vec![r, i], vec![o, r]],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanTask {
    pub name: String,
    /// Adapter safetensors file (relative to the plan directory).
    pub adapter: String,
    /// Stage name -> the task's ONNX Runtime adapter (`.onnx_adapter`) for that stage's LoRA
    /// inputs, in graph layout (strategy `unified-ort-adapter`; written by the host at staging
    /// time from `adapter`, empty otherwise).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ort_adapters: BTreeMap<String, String>,
    /// Stage name -> merged baseline graph that replaces that stage for this task.
    pub baselines: BTreeMap<String, String>,
    /// Stage input name -> `.npy` file (relative to the plan directory) of that `source: task`
    /// input's value for this task.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

/// The pipeline as the runner needs it: stages, slots, tasks, and where the image goes in and out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPipeline {
    pub stages: Vec<PlanStage>,
    pub lora_slots: Vec<PlanLoraSlot>,
    pub tasks: Vec<PlanTask>,
    /// `stage.output` holding the final image (NCHW f32 in `[0, 1]`).
    pub image_output: StageOutputRef,
    /// Input image size expected by the graphs.
    pub image_height: u32,
    pub image_width: u32,
    /// Stage outputs saved as `.npy` tensors (typed by their dtype) for every task and input in
    /// the outputs pass, besides the image ([`RunResult::tensor_outputs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensor_outputs: Vec<StageOutputRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StageOutputRef {
    pub stage: String,
    pub output: String,
}

impl StageOutputRef {
    /// `stage.output`, as package.yaml spells it (and tensor output files are named).
    pub fn label(&self) -> String {
        format!("{}.{}", self.stage, self.output)
    }
}

/// Execution backend selection for the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanBackend {
    /// Backend name from the backend registry (`cpu`, `qnn-htp`, `cuda`, ...).
    pub name: String,
    /// Backend options, passed as execution-provider options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Fail session creation when any node would fall back to the CPU EP.
    #[serde(default)]
    pub require_full_offload: bool,
    /// Intra-op threads (0 = ONNX Runtime's default).
    #[serde(default)]
    pub intra_threads: usize,
}

/// Where the runner finds ONNX Runtime on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRuntime {
    /// Path of `libonnxruntime.so` (absolute, or relative to the plan directory).
    pub ort_library: String,
    /// Plugin execution-provider libraries to register: registration name -> path.
    #[serde(default)]
    pub ep_libraries: BTreeMap<String, String>,
}

/// Order in which the workload visits tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskOrder {
    RoundRobin,
    Random,
}

/// The request sequence and how long to measure (MLPerf LoadGen style: minimum samples AND
/// minimum duration, with a hard cap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanWorkload {
    pub order: TaskOrder,
    pub seed: u64,
    /// Requests per task visit; the first request of a visit is the task switch.
    pub requests_per_visit: u32,
    /// Task visits run (and discarded) before measuring.
    pub warmup_visits: u32,
    /// Minimum end-to-end samples (steady-state requests).
    pub min_samples: u32,
    /// Minimum task-switch samples.
    pub min_switches: u32,
    pub min_duration_ms: u64,
    /// Stop after this long even if the minimums are not met (the run is then invalid).
    pub max_duration_ms: u64,
    /// Save the output of the first measured request of each task and input
    /// ([`RunResult::timed_outputs`]), after its timing, for the qualification's TEST01
    /// check (outputs while timed equal the accuracy pass's). Off in ordinary runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture_timed_outputs: bool,
}

/// One input image available to the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub name: String,
    /// Raw f32 NCHW file (little endian) of the expected image size, relative to the plan dir.
    pub tensor: String,
    /// Values of the `source: tensor` and `source: mask` stage inputs for requests on this
    /// input: graph input name -> `.npy` file of that input's shape and dtype (or, as written
    /// before typed inputs, a raw little-endian f32 file), relative to the plan dir.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tensors: BTreeMap<String, String>,
}

/// Storage a strategy needs on the device, measured by the host on the files it pushed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    pub foundation_bytes: u64,
    pub adapter_bytes: u64,
    pub baseline_bytes: u64,
    pub total_bytes: u64,
}

/// A run plan: everything the runner needs, nothing host-specific.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    pub run_id: String,
    pub strategy: Strategy,
    pub precision: String,
    pub backend: PlanBackend,
    pub runtime: PlanRuntime,
    pub pipeline: PlanPipeline,
    pub workload: PlanWorkload,
    pub inputs: Vec<PlanInput>,
    /// Directory (relative to the plan dir) for output PNGs, one per task and input, and the
    /// `.npy` tensor outputs ([`PlanPipeline::tensor_outputs`]).
    pub output_dir: String,
    /// Heartbeat period.
    pub heartbeat_ms: u64,
    /// Storage of this strategy, computed by the host (the runner copies it into its result).
    pub storage: Storage,
}

/// Memory high-water marks of one phase of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryPhase {
    pub phase: String,
    /// VmHWM after the phase (the high-water mark is reset at the phase start when the kernel
    /// allows it, see `hwm_reset`).
    pub peak_rss_bytes: Option<u64>,
    /// Largest PSS (smaps_rollup) sampled during the phase.
    pub peak_pss_bytes: Option<u64>,
    /// Whether `/proc/self/clear_refs` accepted the reset at the start of this phase.
    pub hwm_reset: bool,
}

/// One task switch as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchEvent {
    /// Time since the measured workload started.
    pub at_ms: f64,
    pub from_task: Option<String>,
    pub to_task: String,
    /// Adapter load+bind (unified), `.onnx_adapter` load + activation (unified-ort-adapter) or
    /// session (re)creation (separate-reload); 0 for resident.
    pub load_ms: f64,
    /// Switch request -> first output of the new task.
    pub latency_ms: f64,
    /// Discarded warm-up switch.
    pub warmup: bool,
}

/// Session creation of one graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInit {
    pub name: String,
    pub graph: String,
    pub create_ms: f64,
}

/// A thermal zone reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalReading {
    pub zone: String,
    pub kind: String,
    pub temp_c: f64,
}

/// Device conditions sampled before and after the run; missing when unreadable (never 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    pub thermal: Vec<ThermalReading>,
    /// Current frequency per CPU, kHz; `None` where unreadable.
    pub cpu_freq_khz: Vec<Option<u64>>,
}

/// Environment the runner saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerEnvironment {
    pub runner_version: String,
    pub ort_version: Option<String>,
    pub execution_providers: Vec<String>,
    pub cpu_model: Option<String>,
    pub cpu_count: Option<usize>,
    pub kernel: Option<String>,
    pub os: String,
    pub arch: String,
}

/// An output image the runner wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputImage {
    pub task: String,
    pub input: String,
    /// Relative to the plan directory.
    pub path: String,
}

/// An output tensor the runner wrote: `<output_dir>/<task>__<input>__<stage>.<output>.npy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputTensor {
    pub task: String,
    pub input: String,
    /// The stage output, `stage.output` ([`StageOutputRef::label`]).
    pub output: String,
    /// Relative to the plan directory.
    pub path: String,
}

impl OutputTensor {
    /// The file name of a tensor output of `task` on `input`.
    pub fn file_name(task: &str, input: &str, output: &str) -> String {
        format!("{task}__{input}__{output}.npy")
    }
}

/// Final state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RunStatus {
    Ok,
    Failed { error: String },
}

/// What the runner writes as `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema: String,
    pub run_id: String,
    pub strategy: Strategy,
    pub backend: String,
    pub precision: String,
    pub status: RunStatus,
    pub environment: RunnerEnvironment,
    pub storage: Storage,
    pub memory: Vec<MemoryPhase>,
    pub sessions: Vec<SessionInit>,
    /// Sum of the session creations done before the first request.
    pub init_ms: f64,
    /// First (cold) request, end to end.
    pub first_inference_ms: f64,
    /// Raw latency samples: `<stage>` (per step for repeated stages), `e2e`, `switch`,
    /// `switch_load`.
    pub samples_ms: BTreeMap<String, Vec<f64>>,
    pub switches: Vec<SwitchEvent>,
    /// Measured workload: requests run, wall time.
    pub requests: u64,
    pub duration_ms: f64,
    /// Minimum samples and duration met (LoadGen's validity rule).
    pub valid: bool,
    pub validity_note: String,
    pub conditions_before: Conditions,
    pub conditions_after: Conditions,
    pub outputs: Vec<OutputImage>,
    /// With [`PlanWorkload::capture_timed_outputs`]: outputs of measured requests (paths under
    /// `<output_dir>/timed/`), one per task and input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timed_outputs: Vec<OutputImage>,
    /// The pipeline's [`PlanPipeline::tensor_outputs`] of the outputs pass, one per task, input
    /// and output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensor_outputs: Vec<OutputTensor>,
    /// With [`PlanWorkload::capture_timed_outputs`]: the tensor outputs of the same measured
    /// requests as [`Self::timed_outputs`] (under `<output_dir>/timed/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timed_tensor_outputs: Vec<OutputTensor>,
    /// Graphs compiled ahead of time into EP-context models before the run (backends that
    /// compile, with the `ep_context` option); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiled: Vec<CompiledGraph>,
    /// What the storage figures were measured on (`package files`, or `compiled ep-context
    /// artefacts` when the runner compiled the graphs and measured those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_basis: Option<String>,
}

/// Where a graph's nodes run, read from its compiled EP-context model: the nodes fused into
/// compiled partitions (`EPContext` nodes) run on the accelerator; every other node runs on the
/// CPU EP (for QDQ graphs, the boundary Quantize/Dequantize of the float inputs and outputs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub execution_provider: String,
    /// Number of compiled partitions (EPContext nodes).
    pub partitions: u64,
    /// Nodes of the source graph (before compilation).
    pub source_nodes: u64,
    /// Nodes left outside the partitions (run by the CPU EP), by op type.
    pub cpu_nodes: BTreeMap<String, u64>,
    /// `session.disable_cpu_ep_fallback=1` was set: session creation would have failed had the
    /// EP rejected any node, so every non-boundary node is proven to run on the accelerator.
    pub fallback_disabled: bool,
}

/// One graph compiled into an EP-context model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledGraph {
    pub graph: String,
    /// The EP-context model the sessions load instead (relative to the plan directory).
    pub context_graph: String,
    pub compile_ms: f64,
    /// Bytes of the context model plus its context binaries; a binary shared with a graph
    /// listed before this one (`separate-shared-weights`) counts once, with that graph.
    pub bytes: u64,
    pub placement: Placement,
    /// The SoC and HTP architecture the context binary was prepared for, as the binary itself
    /// records them (QNN: `soc_type=SM8650;arch=75` among its prepare options); absent when the
    /// binary does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_soc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_arch: Option<String>,
    /// sha256 of each compiled artefact (the context model and its context binaries), by file
    /// name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artefacts_sha256: BTreeMap<String, String>,
}

impl RunResult {
    /// Overall peak RSS over phases.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.memory.iter().filter_map(|p| p.peak_rss_bytes).max()
    }

    /// Overall peak sampled PSS over phases.
    pub fn peak_pss_bytes(&self) -> Option<u64> {
        self.memory.iter().filter_map(|p| p.peak_pss_bytes).max()
    }
}

/// A heartbeat line's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub phase: String,
    pub elapsed_ms: u64,
    pub requests: u64,
}

impl Heartbeat {
    pub fn to_line(&self) -> String {
        format!("{HEARTBEAT_PREFIX}{}", serde_json::to_string(self).unwrap_or_default())
    }

    pub fn parse_line(line: &str) -> Option<Heartbeat> {
        serde_json::from_str(line.strip_prefix(HEARTBEAT_PREFIX)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Strategy::parse("merged"), None);
    }

    #[test]
    fn heartbeat_line_round_trips_and_rejects_other_lines() {
        let hb = Heartbeat { phase: "steady".into(), elapsed_ms: 12, requests: 3 };
        assert_eq!(Heartbeat::parse_line(&hb.to_line()), Some(hb));
        assert_eq!(Heartbeat::parse_line("hello"), None);
    }

    #[test]
    fn source_is_tagged() {
        let s = Source::Lora { slot: "q".into(), part: LoraPart::B };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"kind":"lora","slot":"q","part":"b"}"#);
    }
}
