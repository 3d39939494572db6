//! `results.json` (schema `quadbench.results/1`), raw samples as CSV and claim verdicts with
//! confidence intervals. Written incrementally: a finished run is on disk (atomic rename) before
//! the next one starts. Reports (`crate::report`) are regenerated from these files alone.

use crate::method::{Method, Outliers};
use quadbench_protocol::{MemoryPhase, OutputImage, OutputTensor, RunResult, Storage, Strategy, SwitchEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Schema tag of results.json.
pub const RESULTS_SCHEMA: &str = "quadbench.results/1";

/// Distribution summary of latency samples (ms), as `quadbench_report::stats::summarize` computes
/// it (the method is recorded in [`Results::statistics`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Arithmetic mean (ms).
    pub mean: f64,
    /// Sample standard deviation (n - 1), ms.
    pub std: f64,
    /// Smallest sample (ms).
    pub min: f64,
    /// Percentiles by MLPerf LoadGen's rule (see [`crate::method::PERCENTILES`]).
    pub p50: f64,
    /// 90th percentile (ms).
    pub p90: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Largest sample (ms).
    pub max: f64,
    /// Percentiles above computed from fewer samples than they need ([`crate::method::min_samples`]: p90
    /// 10, p99 100): the value is kept, but it is the sample maximum or close to it, not a tail
    /// estimate; reports show these as flagged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub too_few_samples: Vec<String>,
    /// 95% CI of the median (p50), percentile bootstrap; absent below 2 samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<[f64; 2]>,
    /// 95% CI of the mean, Student's t.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ci: Option<[f64; 2]>,
    /// Coefficient of variation, std / mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<f64>,
    /// Tukey fences and outlier indices (outliers stay in every statistic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outliers: Option<Outliers>,
    /// Warnings for people (high variability).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Peak memory of a run, and per phase.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Memory {
    /// Highest VmHWM over the run's phases.
    pub peak_rss_bytes: Option<u64>,
    /// Highest sampled PSS (smaps_rollup).
    pub peak_pss_bytes: Option<u64>,
    /// Per phase: init, first inference, steady state, outputs.
    pub phases: Vec<MemoryPhase>,
}

/// What the runner saw (flattened: same keys as the runner's result) plus what the host knows.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Environment {
    /// What the runner saw (ONNX Runtime version, providers, CPU...).
    #[serde(flatten)]
    pub runner: quadbench_protocol::RunnerEnvironment,
    /// Version of the quadbench host.
    pub quadbench_version: String,
    /// Git revision quadbench was built from (`unknown` when not recorded).
    pub git_revision: String,
    /// The package that ran.
    pub package_sha256: String,
    /// Device model as the transport reports it.
    pub device_model: Option<String>,
    /// Device SoC, where known.
    pub device_soc: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// It ran and produced a result.
    Ok,
    /// It crashed, timed out, was interrupted or lost its device.
    Failed,
    /// The backend cannot run on this device (skipped, with the reason).
    Unsupported,
}

/// One run (device x backend x precision x strategy) in results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `<device>-<backend>-<precision>-<strategy>`: names files and directories.
    pub id: String,
    /// Stable key of the configuration across invocations and hosts:
    /// `<scenario>/<device>/<backend>/<precision>/<strategy>` (absent in older files).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Which replicate of its configuration this run is, 1-based (scenario key `replicates`;
    /// absent when 1, as in older files). Replicates share `key`; their ids end in `-r<k>`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replicate: usize,
    /// The machine that drove the run (its host name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// When the run started and finished, UTC, RFC 3339 (absent in older files).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    /// When the run finished, UTC, RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub finished_at: String,
    /// Device profile name.
    pub device: String,
    /// Backend name.
    pub backend: String,
    /// Precision label of the scenario.
    pub precision: String,
    /// Deployment strategy.
    pub strategy: Strategy,
    /// How it ended.
    pub status: RunState,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Infrastructure problem (device, transport) rather than a failure of the thing measured.
    #[serde(default)]
    pub infrastructure_error: bool,
    /// The runner's last stderr lines when it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
    /// Bytes the strategy needs on the device.
    pub storage: Storage,
    /// Peak memory.
    pub memory: Memory,
    /// Session creation (compile excluded), ms.
    pub init_ms: f64,
    /// The first request after creation, ms.
    pub first_inference_ms: f64,
    /// `<stage>`, `e2e`, `switch`, `switch_load`.
    pub latency_ms: BTreeMap<String, Summary>,
    /// Met its minimum samples and duration (MLPerf LoadGen's rule).
    pub valid: bool,
    /// Why it is (in)valid, in words.
    pub validity_note: String,
    /// Requests run, warm-up included.
    pub requests: u64,
    /// Measured duration (after warm-up), ms.
    pub duration_ms: f64,
    /// What ran it.
    pub environment: Environment,
    /// Raw samples, relative to the results directory.
    pub samples_csv: String,
    /// Every task switch with its timings.
    pub switches: Vec<SwitchEvent>,
    /// Output images, relative to the results directory.
    pub outputs: Vec<OutputImage>,
    /// Tensor outputs (`.npy`, the package's `tensor_outputs`), relative to the results
    /// directory; absent when the package declares none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensor_outputs: Vec<OutputTensor>,
    /// Thermal and frequency readings before the run.
    pub conditions_before: quadbench_protocol::Conditions,
    /// Thermal and frequency readings after the run.
    pub conditions_after: quadbench_protocol::Conditions,
    /// Graphs compiled ahead of time (EP context): size, compile time, node placement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compiled: Vec<quadbench_protocol::CompiledGraph>,
    /// What the storage figures were measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_basis: Option<String>,
    /// Output quality against goldens, per task (absent when not scored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quality: BTreeMap<String, TaskQuality>,
    /// Throttle check and cooldown before the run (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleInfo>,
    /// Raw samples by metric (in memory only: on disk they are `samples_csv`).
    #[serde(skip)]
    pub samples: BTreeMap<String, Vec<f64>>,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// Which run a record is: what every record carries even when the run produced nothing.
#[derive(Debug, Clone, Copy)]
pub struct RunIdentity<'a> {
    /// Run id.
    pub id: &'a str,
    /// Device profile name.
    pub device: &'a str,
    /// Backend name.
    pub backend: &'a str,
    /// Precision label.
    pub precision: &'a str,
    /// Deployment strategy.
    pub strategy: Strategy,
}

/// Image-quality scores of one output against its golden. `None` = not computed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    /// `None` with `identical: true` when the images are identical (PSNR = inf).
    pub psnr_db: Option<f64>,
    /// The output equals the golden bit for bit.
    #[serde(default)]
    pub identical: bool,
    /// SSIM (scikit-image convention).
    pub ssim: Option<f64>,
    /// MS-SSIM (5 scales), when the image is large enough.
    pub ms_ssim: Option<f64>,
    /// The documented weight-free perceptual proxy (not LPIPS).
    pub lpips_proxy: Option<f64>,
    /// LPIPS from a user-supplied ONNX model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lpips: Option<f64>,
}

/// Quality of one task: per input image, the mean over inputs, and threshold verdicts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskQuality {
    /// Scores per input image.
    pub inputs: BTreeMap<String, Scores>,
    /// Mean over the inputs.
    pub mean: Scores,
    /// Inputs whose golden is missing (reported, not scored as failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_golden: Vec<String>,
    /// Threshold checks from the scenario: `"psnr_db >= 30"` -> pass.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, bool>,
    /// All thresholds passed (`None` when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
    /// Tensor outputs against golden tensors, by output (`stage.output`); absent when the
    /// package declares no tensor outputs. Their thresholds are in `thresholds` with the rest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tensors: BTreeMap<String, TensorQuality>,
}

/// Scores of one tensor against its golden tensor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TensorScores {
    /// Elements compared.
    pub elements: usize,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Root mean squared difference.
    pub rmse: f64,
    /// `10 log10(data_range^2 / MSE)`; `None` when the tensors are identical (no finite PSNR).
    pub psnr_db: Option<f64>,
    /// The data range the PSNR was computed with.
    pub data_range: f64,
    /// Cosine similarity; `None` when either tensor is all zeros.
    pub cosine: Option<f64>,
}

/// Mean over a task's inputs of a tensor output's scores (each over the inputs that have it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TensorMean {
    /// Mean of the inputs' largest absolute differences.
    pub max_abs_error: Option<f64>,
    /// Mean RMSE.
    pub rmse: Option<f64>,
    /// Mean of the finite PSNRs (`None` with `identical: true` when every input is identical).
    pub psnr_db: Option<f64>,
    /// Mean cosine similarity.
    pub cosine: Option<f64>,
    /// Every input's tensor equals its golden exactly.
    #[serde(default)]
    pub identical: bool,
}

/// One tensor output of a task against its goldens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TensorQuality {
    /// Where the PSNR's data range comes from: `package range` (the output's `range:` in
    /// package.yaml) or `golden max - min` (per input, of its golden tensor).
    pub data_range_from: String,
    /// Scores per input.
    pub inputs: BTreeMap<String, TensorScores>,
    /// Mean over the inputs.
    pub mean: TensorMean,
    /// Inputs whose golden tensor is missing (reported, not scored as failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_golden: Vec<String>,
}

impl RunRecord {
    /// Build from a runner result.
    pub fn from_result(id: &str, device: &str, r: &RunResult, env: Environment, samples_csv: String) -> RunRecord {
        let (status, error) = match &r.status {
            quadbench_protocol::RunStatus::Ok => (RunState::Ok, None),
            quadbench_protocol::RunStatus::Failed { error } if error.starts_with("backend unsupported") => {
                (RunState::Unsupported, Some(error.clone()))
            }
            quadbench_protocol::RunStatus::Failed { error } => (RunState::Failed, Some(error.clone())),
        };
        // The samples exactly as the CSV stores them, so that a report regenerated from the CSV
        // computes the same statistics as the run did.
        let samples: BTreeMap<String, Vec<f64>> =
            r.samples_ms.iter().map(|(k, v)| (k.clone(), v.iter().map(|x| csv_value(*x)).collect())).collect();
        RunRecord {
            id: id.into(),
            key: String::new(),
            replicate: 1,
            host: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            device: device.into(),
            backend: r.backend.clone(),
            precision: r.precision.clone(),
            strategy: r.strategy,
            status,
            error,
            infrastructure_error: false,
            stderr_tail: String::new(),
            storage: r.storage.clone(),
            memory: Memory {
                peak_rss_bytes: r.peak_rss_bytes(),
                peak_pss_bytes: r.peak_pss_bytes(),
                phases: r.memory.clone(),
            },
            init_ms: r.init_ms,
            first_inference_ms: r.first_inference_ms,
            // Summaries are statistics (`quadbench_report::stats::summaries`); the caller adds them.
            latency_ms: BTreeMap::new(),
            valid: r.valid,
            validity_note: r.validity_note.clone(),
            requests: r.requests,
            duration_ms: r.duration_ms,
            environment: env,
            samples_csv,
            switches: r.switches.clone(),
            outputs: r.outputs.clone(),
            tensor_outputs: r.tensor_outputs.clone(),
            conditions_before: r.conditions_before.clone(),
            conditions_after: r.conditions_after.clone(),
            quality: BTreeMap::new(),
            throttle: None,
            samples,
            compiled: r.compiled.clone(),
            storage_basis: r.storage_basis.clone(),
        }
    }

    /// A run that produced no result (crash, device lost).
    // One argument per field a failed run still has; the callers (run loop, tests) name them all.
    #[allow(clippy::too_many_arguments)]
    pub fn failed(
        run: RunIdentity<'_>,
        storage: Storage,
        error: String,
        stderr_tail: String,
        infra: bool,
    ) -> RunRecord {
        let RunIdentity { id, device, backend, precision, strategy } = run;
        RunRecord {
            id: id.into(),
            key: String::new(),
            replicate: 1,
            host: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            device: device.into(),
            backend: backend.into(),
            precision: precision.into(),
            strategy,
            status: RunState::Failed,
            error: Some(error),
            infrastructure_error: infra,
            stderr_tail,
            storage,
            memory: Memory::default(),
            init_ms: 0.0,
            first_inference_ms: 0.0,
            latency_ms: BTreeMap::new(),
            valid: false,
            validity_note: "invalid: the run did not finish".into(),
            requests: 0,
            duration_ms: 0.0,
            environment: Environment::default(),
            samples_csv: String::new(),
            switches: vec![],
            outputs: vec![],
            tensor_outputs: vec![],
            conditions_before: Default::default(),
            conditions_after: Default::default(),
            quality: BTreeMap::new(),
            throttle: None,
            samples: BTreeMap::new(),
            compiled: vec![],
            storage_basis: None,
        }
    }
}

/// What happened before one run (recorded per run in results.json): the throttle check and
/// cool-downs (see `scheduler::throttle`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ThrottleInfo {
    /// `host-cpu` (calibration workload timed on the host) or `none` (skipped, see `note`).
    pub method: String,
    /// Fastest calibration before this run's checks, ms (the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_ms: Option<f64>,
    /// Each calibration measured before this run, ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration_ms: Vec<f64>,
    /// Last calibration / reference - 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowdown: Option<f64>,
    /// Cool-downs taken because the calibration was too slow.
    pub retries: u32,
    /// Still throttled after all retries: the run's timings are suspect.
    pub throttled: bool,
    /// Time slept before the run (between-run cooldown plus throttle cool-downs), ms.
    pub cooldown_ms: f64,
    /// Why the check was skipped or what it found, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A claim's verdict.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole 95% CI of the ratio is at or above the threshold.
    Pass,
    /// The whole CI is below the threshold: the claim did not reproduce.
    Fail,
    /// The CI straddles the threshold: more samples needed.
    Inconclusive,
    /// A run the claim needs is missing or failed.
    Missing,
}

impl Verdict {
    /// Lower-case name, as in results.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Missing => "missing",
        }
    }

    /// `pass` when `lo >= threshold`, `fail` when `hi < threshold`, otherwise `inconclusive`.
    pub fn of_interval(lo: f64, hi: f64, threshold: f64) -> Verdict {
        if lo >= threshold {
            Verdict::Pass
        } else if hi < threshold {
            Verdict::Fail
        } else {
            Verdict::Inconclusive
        }
    }
}

/// How a claim's interval was obtained.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CiMethod {
    /// Percentile bootstrap of the ratio of medians over both runs' raw samples.
    Bootstrap,
    /// Replicated configurations: hierarchical percentile bootstrap of the ratio of pooled
    /// medians (each side's runs resampled, then the samples within each drawn run).
    HierarchicalBootstrap,
    /// Replicated configurations, one measurement per run (peak memory, init): percentile
    /// bootstrap of the ratio of the means over each side's runs.
    BootstrapOverRuns,
    /// Deterministic metric (storage): the interval is the point.
    Exact,
    /// One measurement per run (peak memory, init): no interval; the verdict uses the point.
    #[default]
    None,
}

/// A claim evaluated on one device x backend x precision group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimResult {
    /// Claim name.
    pub name: String,
    /// Metric key (`crate::metric::Metric`).
    pub metric: String,
    /// Device of the group.
    pub device: String,
    /// Backend of the group.
    pub backend: String,
    /// Precision of the group.
    pub precision: String,
    /// The strategy compared with.
    pub baseline: Strategy,
    /// The strategy the claim is about.
    pub candidate: Strategy,
    /// The baseline run's value.
    pub baseline_value: Option<f64>,
    /// The candidate run's value.
    pub candidate_value: Option<f64>,
    /// baseline / candidate: how many times lower (smaller, faster) the candidate is; medians
    /// for latencies.
    pub ratio: Option<f64>,
    /// 95% CI of the ratio (see `ci_method`).
    #[serde(default)]
    pub ci_low: Option<f64>,
    /// Upper end of the 95% CI of the ratio.
    #[serde(default)]
    pub ci_high: Option<f64>,
    /// How the interval was obtained.
    #[serde(default)]
    pub ci_method: CiMethod,
    /// Bootstrap resamples and seed when `ci_method` is `bootstrap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_resamples: Option<usize>,
    /// Bootstrap seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_seed: Option<u64>,
    /// Successful runs of the baseline and the candidate when a configuration was replicated
    /// (absent when each side is one run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<[usize; 2]>,
    /// The required ratio.
    pub threshold: f64,
    /// Pass, fail, inconclusive or missing.
    pub verdict: Verdict,
    /// Why the interval is what it is, when that needs saying.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The scenario a results file comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Scenario name.
    pub name: String,
    /// Scenario file as given.
    pub path: String,
    /// sha256 of the scenario file's bytes.
    pub sha256: String,
    /// sha256 over the sha256 of every file of the scenario's `tensor_inputs` and `masks`, in
    /// order (the scenario names them; `--resume` compares their contents too); absent when
    /// there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_files_sha256: Option<String>,
}

/// The package the runs used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageInfo {
    /// Package name.
    pub name: String,
    /// Package sha256 (its manifest and files).
    pub sha256: String,
    /// Task names.
    pub tasks: Vec<String>,
    /// Package directory on the host.
    pub dir: String,
    /// Quantization of this package (precision, shared-profile method, anchor, every adapter's
    /// sensitivity score), when it is a quantized variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<serde_json::Value>,
    /// The FP32 package whose goldens the outputs are scored against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden_package: Option<String>,
}

/// A device profile as a run used it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceRef {
    /// Device profile name.
    pub name: String,
    /// Profile file as given.
    pub path: String,
    /// sha256 of the profile file's bytes.
    pub sha256: String,
}

/// The whole results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Schema tag ([`RESULTS_SCHEMA`]).
    pub schema: String,
    /// Version of the quadbench that wrote it.
    pub quadbench_version: String,
    /// The scenario.
    pub scenario: ScenarioInfo,
    /// The package.
    pub package: PackageInfo,
    /// The device profiles the runs used, so that `--resume` can refuse another setup (absent
    /// in older files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRef>,
    /// Every finished run, in plan order.
    pub runs: Vec<RunRecord>,
    /// Claims evaluated on the runs.
    pub claims: Vec<ClaimResult>,
    /// Every run of the scenario has finished (false while running or after an interruption).
    pub complete: bool,
    /// How intervals, outliers and warnings were computed.
    #[serde(default)]
    pub statistics: Method,
}

impl Results {
    /// Read `<dir>/results.json` and every run's raw samples (`samples_csv`).
    pub fn load(dir: &Path) -> Result<Results, LoadError> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LoadError::Read { path: path.display().to_string(), source: e })?;
        let mut r: Results = serde_json::from_str(&text)
            .map_err(|e| LoadError::Parse { path: path.display().to_string(), source: e })?;
        if !r.schema.starts_with("quadbench.results/1") {
            return Err(LoadError::Schema { path: path.display().to_string(), schema: r.schema });
        }
        for run in &mut r.runs {
            if run.samples_csv.is_empty() {
                continue;
            }
            let p = dir.join(&run.samples_csv);
            run.samples = read_samples_csv(&p, &run.id)
                .map_err(|e| LoadError::Samples { path: p.display().to_string(), message: e })?;
        }
        Ok(r)
    }
}

/// A results directory that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot read {path}: {source}\n  hint: pass the results directory of a `quadbench run` (it holds results.json)"
    )]
    /// results.json cannot be read.
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid results file: {source}\n  hint: was it written by a different quadbench version? re-run the scenario"
    )]
    /// results.json is not valid.
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    #[error(
        "{path} has schema `{schema}`; this quadbench reads `{RESULTS_SCHEMA}`\n  hint: use the quadbench version that wrote it"
    )]
    /// results.json has another schema.
    Schema {
        /// The file.
        path: String,
        /// Its schema tag.
        schema: String,
    },
    #[error(
        "raw samples {path}: {message}\n  hint: the report needs the samples/ directory beside results.json; copy it along"
    )]
    /// A samples CSV is missing or invalid.
    Samples {
        /// The samples file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Read one run's samples CSV (`run_id,metric,index,value_ms`) into metric -> samples in index
/// order.
pub fn read_samples_csv(path: &Path, run_id: &str) -> Result<BTreeMap<String, Vec<f64>>, String> {
    let mut rd = csv::Reader::from_path(path).map_err(|e| e.to_string())?;
    let mut rows: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for (line, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| e.to_string())?;
        let bad = |what: &str| format!("row {}: bad {what}", line + 2);
        if rec.len() != 4 {
            return Err(bad("column count (want run_id,metric,index,value_ms)"));
        }
        if &rec[0] != run_id {
            return Err(format!("row {}: run `{}`, expected `{run_id}`", line + 2, &rec[0]));
        }
        let i: usize = rec[2].parse().map_err(|_| bad("index"))?;
        let v: f64 = rec[3].parse().map_err(|_| bad("value_ms"))?;
        rows.entry(rec[1].to_string()).or_default().push((i, v));
    }
    Ok(rows
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|x| x.0);
            (k, v.into_iter().map(|x| x.1).collect())
        })
        .collect())
}

/// Write `value` as JSON atomically (temp file + rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    let r = std::fs::write(&tmp, text + "\n").and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        // Disk full or unwritable: no half-written temporary file stays behind.
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// A sample as written to (and read back from) the samples CSV.
pub fn csv_value(x: f64) -> f64 {
    format!("{x:.6}").parse().unwrap_or(x)
}

/// Raw samples of one run as CSV: `run_id,metric,index,value_ms`.
pub fn write_samples_csv(path: &Path, run_id: &str, samples: &BTreeMap<String, Vec<f64>>) -> Result<(), csv::Error> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["run_id", "metric", "index", "value_ms"])?;
    for (k, v) in samples {
        for (i, x) in v.iter().enumerate() {
            w.write_record([run_id, k, &i.to_string(), &format!("{x:.6}")])?;
        }
    }
    w.flush()?;
    Ok(())
}
