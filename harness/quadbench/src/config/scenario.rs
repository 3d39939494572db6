//! Scenarios (`scenarios/*.yaml`, schema `quadbench.scenario/1`): what to run, where, how long,
//! and which claims to check. [`RawScenario`] mirrors the file; [`Scenario::load`] validates it
//! into domain types before any device is touched. Every numeric key has a documented range
//! (README, "Scenario keys"); every error names the file, the line and the fix.

use super::checkout;
use crate::metric::Metric;
use crate::package::qprofile::Quantize;
use crate::package::source::{self, PackageSpec};
use crate::quality::{Threshold, ThresholdMetric};
use crate::yaml::{self, YamlError};
use quadbench_protocol::{Backend, PlanWorkload, Strategy, TaskOrder};
use quadbench_schema::claim::Claim;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SCENARIO_SCHEMA: &str = "quadbench.scenario/1";

/// Ranges of the numeric keys (inclusive).
pub mod limits {
    /// ONNX Runtime intra-op threads (0: its default).
    pub const THREADS: (usize, usize) = (0, 256);
    pub const REQUESTS_PER_VISIT: (u32, u32) = (1, 10_000);
    pub const WARMUP_VISITS: (u32, u32) = (0, 1_000);
    pub const MIN_SAMPLES: (u32, u32) = (0, 1_000_000);
    pub const MIN_SWITCHES: (u32, u32) = (0, 1_000_000);
    /// Seconds; also the range of `min_duration_s`.
    pub const MAX_DURATION_S: (f64, f64) = (0.001, 86_400.0);
    pub const COOLDOWN_S: (f64, f64) = (0.0, 3_600.0);
    pub const INPUTS: usize = 64;
    pub const DEVICES: usize = 1_024;
    pub const CLAIM_THRESHOLD: (f64, f64) = (1e-6, 1e6);
    /// Runs of each configuration (`replicates`).
    pub const REPLICATES: (usize, usize) = (1, 100);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub package: RawPackage,
    pub devices: Vec<String>,
    pub backends: Vec<String>,
    #[serde(default = "default_precision")]
    pub precision: String,
    pub strategies: Vec<String>,
    /// Input image names (bundled examples, or files of the checkout's `golden/inputs/`) or
    /// paths relative to the scenario. Omitted for a package without an image: then each
    /// `tensor_inputs` file is one request input.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Per-request tensor inputs: `.npz` files relative to the scenario (see `tensor_inputs`).
    #[serde(default)]
    pub tensor_inputs: Vec<String>,
    /// Mask images for `source: mask` inputs, relative to the scenario (see `masks`).
    #[serde(default)]
    pub masks: Vec<String>,
    pub workload: RawWorkload,
    #[serde(default)]
    pub threads: usize,
    /// Per backend: options passed to it (e.g. `qnn-htp: {ep_context: "1", htp_performance_mode: burst}`).
    #[serde(default)]
    pub backend_options: BTreeMap<String, BTreeMap<String, String>>,
    /// Fail a run when any node would fall back to the CPU EP.
    #[serde(default)]
    pub require_full_offload: bool,
    #[serde(default)]
    pub claims: Vec<RawClaim>,
    /// Output quality against goldens.
    #[serde(default)]
    pub quality: Option<RawQuality>,
    /// Pause between runs, seconds (default 0).
    #[serde(default)]
    pub cooldown_s: f64,
    /// Throttle check before each run (default: on, 10% slowdown, 2 retries, 5 s cool-down).
    #[serde(default)]
    pub throttle: Option<RawThrottle>,
    /// Runs of each configuration, interleaved (A B A B), each in a fresh runner process
    /// (default 1).
    #[serde(default = "one")]
    pub replicates: usize,
}

fn one() -> usize {
    1
}

/// `package:`: exactly one source key (`crate::package::source::SOURCES`), optionally `quantize:`.
#[derive(Debug, Deserialize)]
pub struct RawPackage {
    #[serde(default)]
    pub quantize: Option<RawQuantize>,
    #[serde(flatten)]
    pub source: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuantize {
    /// `w8a16` (default) or `w8a8`.
    #[serde(default)]
    pub precision: Option<String>,
    /// Shared profile for the unified graph: `anchor` (QUAD, default) or `merge`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Fraction of MatMul layers with 8-bit activations (mixed-precision ablation).
    #[serde(default)]
    pub a8_ratio: Option<f64>,
    #[serde(default)]
    pub per_channel: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuality {
    /// Golden directory (default: the checkout's `golden/`, else `golden/` beside the scenario).
    #[serde(default)]
    pub golden_dir: Option<String>,
    /// Metric -> condition, e.g. `psnr_db: ">= 30"`; every input of every task must pass.
    #[serde(default)]
    pub thresholds: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThrottle {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub max_slowdown: Option<f64>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub cooldown_s: Option<f64>,
}

fn default_precision() -> String {
    "fp32".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    #[serde(default = "default_order")]
    pub order: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "two")]
    pub requests_per_visit: u32,
    #[serde(default = "two")]
    pub warmup_visits: u32,
    pub min_samples: u32,
    pub min_switches: u32,
    pub min_duration_s: f64,
    pub max_duration_s: f64,
    /// Keep the output of the first measured request per task and input (qualification TEST01).
    #[serde(default)]
    pub capture_timed_outputs: bool,
}

fn default_order() -> String {
    "round-robin".into()
}
fn two() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaim {
    pub name: String,
    pub metric: String,
    pub baseline: String,
    pub candidate: String,
    /// Required ratio baseline/candidate (metrics where lower is better).
    pub threshold: f64,
}

/// Throttle check settings (`throttle:` and `cooldown_s:`).
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Slowdown of the calibration workload above which the device counts as throttled.
    pub max_slowdown: f64,
    /// Cool-down-and-recheck attempts before running anyway.
    pub retries: u32,
    /// Sleep per attempt.
    pub cooldown_s: f64,
}

impl Scenario {
    /// sha256 over the sha256 of each `tensor_inputs` and `masks` file, in order; `None` when
    /// the scenario names none (then the scenario's own sha256 says it all).
    pub fn request_files_sha256(&self) -> Option<String> {
        let shas: Vec<&str> = self
            .tensor_inputs
            .iter()
            .map(|f| f.sha256.as_str())
            .chain(self.masks.iter().map(|m| m.sha256.as_str()))
            .collect();
        (!shas.is_empty()).then(|| crate::package::manifest::sha256_bytes(shas.join("\n").as_bytes()))
    }
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig { enabled: true, max_slowdown: 0.10, retries: 2, cooldown_s: 5.0 }
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub sha256: String,
    pub package: PackageSpec,
    pub devices: Vec<PathBuf>,
    pub backends: Vec<Backend>,
    pub precision: String,
    pub strategies: Vec<Strategy>,
    pub inputs: Vec<(String, PathBuf)>,
    /// No images: `inputs` are the `tensor_inputs` files, named by their stems (a package without
    /// an image, such as a diffusion UNet).
    pub tensor_only: bool,
    /// Values of the package's `source: tensor` inputs: none, one for every image, or one per image.
    pub tensor_inputs: Vec<super::tensor_inputs::TensorInputFile>,
    /// Masks of the package's `source: mask` inputs: none, one for every image, or one per image.
    pub masks: Vec<super::masks::MaskFile>,
    pub workload: PlanWorkload,
    pub threads: usize,
    pub backend_options: BTreeMap<Backend, BTreeMap<String, String>>,
    pub require_full_offload: bool,
    pub claims: Vec<Claim>,
    /// Golden directory and thresholds; outputs are scored whenever goldens exist.
    pub golden_root: PathBuf,
    pub thresholds: Vec<Threshold>,
    pub cooldown_s: f64,
    pub throttle: ThrottleConfig,
    /// Runs of each configuration (1 = no replicates): `plan::runs` interleaves them.
    pub replicates: usize,
    /// Not a scenario key: run only this replicate (a farm job is one run of a replicated
    /// scenario; its id and record still say which replicate it is).
    pub only_replicate: Option<usize>,
}

/// Builds located errors for one scenario file.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, needle: &str, msg: String, fix: &str) -> YamlError {
        YamlError::at(self.path, self.text, needle, msg, fix)
    }

    /// `value` within `[lo, hi]`, else an error at `key:`.
    fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        value: T,
        (lo, hi): (T, T),
    ) -> Result<T, YamlError> {
        if value >= lo && value <= hi {
            Ok(value)
        } else {
            Err(self.err(
                &format!("{key}:"),
                format!("{key}: {value} is outside {lo}..={hi}"),
                &format!("use a value between {lo} and {hi}"),
            ))
        }
    }

    /// An unknown name among `known`, with the nearest as the fix.
    fn unknown(&self, needle: &str, what: &str, name: &str, known: &[&str]) -> YamlError {
        let fix = yaml::nearest(name, known.iter().copied())
            .map(|n| format!("did you mean `{n}`?"))
            .unwrap_or_else(|| format!("known: {}", known.join(", ")));
        self.err(needle, format!("unknown {what} `{name}`"), &fix)
    }
}

impl Scenario {
    /// Load and validate. Relative paths resolve against the scenario's folder; input names
    /// against the checkout's `golden/inputs/` when the scenario lies in one, else the bundled
    /// example inputs.
    pub fn load(path: &Path) -> Result<Scenario, YamlError> {
        let (raw, text) = yaml::load::<RawScenario>(path)?;
        Self::validate(path, raw, &text)
    }

    /// Validate `text` as if it were the file at `path` (relative paths resolve against its
    /// folder): a farm agent runs the scenario text that was submitted, not whatever the file
    /// holds now.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, YamlError> {
        if text.len() as u64 > yaml::MAX_FILE_BYTES {
            let message = format!("{} bytes is too large for a quadbench file", text.len());
            return Err(YamlError::at(path, "", "", message, "check that this is the right file"));
        }
        let raw = yaml::parse::<RawScenario>(path, text)?;
        Self::validate(path, raw, text)
    }

    fn validate(path: &Path, raw: RawScenario, text: &str) -> Result<Scenario, YamlError> {
        let cx = Ctx { path, text };
        if raw.schema != SCENARIO_SCHEMA {
            return Err(cx.err(
                "schema:",
                format!("schema `{}` is not supported", raw.schema),
                &format!("use `schema: {SCENARIO_SCHEMA}`"),
            ));
        }
        for (key, value) in [("name", &raw.name), ("precision", &raw.precision)] {
            if !crate::safe_name(value) {
                return Err(cx.err(
                    &format!("{key}:"),
                    format!(
                        "{key} `{}` must be a safe name (it becomes part of run ids and paths)",
                        value.escape_debug()
                    ),
                    &format!("use {}, at most 128 characters", crate::SAFE_NAME_CHARS),
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let package = package(&cx, &raw.package, base)?;
        let (backends, backend_options) = backends(&cx, &raw)?;
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        let parse_strategy = |s: &str| Strategy::parse(s).ok_or_else(|| cx.unknown(s, "strategy", s, &names));
        let strategies = raw.strategies.iter().map(|s| parse_strategy(s)).collect::<Result<Vec<_>, _>>()?;
        if strategies.is_empty() {
            return Err(cx.err(
                "strategies:",
                "no strategies listed".into(),
                &format!("choose from {}", names.join(", ")),
            ));
        }
        strategy_backends(&cx, &strategies, &backends, &backend_options)?;
        if raw.devices.is_empty() || raw.devices.len() > limits::DEVICES {
            return Err(cx.err(
                "devices:",
                format!("{} devices listed", raw.devices.len()),
                &format!("list 1 to {} device profiles, e.g. `devices: [../devices/local.yaml]`", limits::DEVICES),
            ));
        }
        let devices = raw.devices.iter().map(|d| base.join(d)).collect();
        let tensor_only = raw.inputs.is_empty() && !raw.tensor_inputs.is_empty();
        let inputs = if tensor_only { Vec::new() } else { inputs(&cx, &raw.inputs, base)? };
        let tensor_inputs = super::tensor_inputs::load(path, text, &raw.tensor_inputs, base, inputs.len())?;
        let inputs =
            if tensor_only { super::tensor_inputs::request_names(path, text, &tensor_inputs)? } else { inputs };
        let masks = super::masks::load(path, text, &raw.masks, base, inputs.len())?;
        let workload = workload(&cx, &raw.workload)?;
        let claims = claims(&cx, &raw.claims, &parse_strategy)?;
        let golden_root = match raw.quality.as_ref().and_then(|q| q.golden_dir.as_ref()) {
            Some(d) => base.join(d),
            None => checkout::root_above(base).map_or_else(|| base.join("golden"), |r| r.join("golden")),
        };
        let thresholds = thresholds(&cx, raw.quality.as_ref())?;
        let cooldown_s = cx.range("cooldown_s", raw.cooldown_s, limits::COOLDOWN_S)?;
        let throttle = throttle(&cx, raw.throttle.as_ref())?;
        Ok(Scenario {
            golden_root,
            thresholds,
            cooldown_s,
            throttle,
            path: path.to_path_buf(),
            name: raw.name,
            sha256: crate::package::manifest::sha256_bytes(text.as_bytes()),
            package,
            backend_options,
            require_full_offload: raw.require_full_offload,
            devices,
            backends,
            precision: raw.precision,
            strategies,
            inputs,
            tensor_only,
            tensor_inputs,
            masks,
            workload,
            threads: cx.range("threads", raw.threads, limits::THREADS)?,
            replicates: cx.range("replicates", raw.replicates, limits::REPLICATES)?,
            only_replicate: None,
            claims,
        })
    }
}

fn package(cx: &Ctx<'_>, raw: &RawPackage, base: &Path) -> Result<PackageSpec, YamlError> {
    let keys = source::keys();
    let examples: Vec<&str> = source::SOURCES.iter().map(|s| s.example).collect();
    let mut found = Vec::new();
    for (key, value) in &raw.source {
        let Some(kind) = source::SOURCES.iter().find(|s| s.key == key) else {
            let mut valid = keys.clone();
            valid.push("quantize");
            return Err(cx.unknown(&format!("{key}:"), "package key", key, &valid));
        };
        found.push((kind, value.clone()));
    }
    let [(kind, value)] = <[_; 1]>::try_from(found).map_err(|_| {
        cx.err(
            "package:",
            format!(
                "package needs exactly one of {}",
                keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ),
            &format!("e.g. {}", examples.join(" or ")),
        )
    })?;
    let src = (kind.parse)(value, base).map_err(|e| YamlError::for_key(cx.path, cx.text, e))?;
    let quantize = match &raw.quantize {
        None => None,
        Some(q) => Some(
            Quantize::parse(q.precision.as_deref(), q.profile.as_deref(), q.a8_ratio, q.per_channel.unwrap_or(false))
                .map_err(|e| YamlError::for_key(cx.path, cx.text, e))?,
        ),
    };
    Ok(PackageSpec { source: src, quantize })
}

type BackendOptions = BTreeMap<Backend, BTreeMap<String, String>>;

fn backends(cx: &Ctx<'_>, raw: &RawScenario) -> Result<(Vec<Backend>, BackendOptions), YamlError> {
    let known = Backend::names();
    let parse = |b: &str| Backend::parse(b).ok_or_else(|| cx.unknown(b, "backend", b, &known));
    let backends = raw.backends.iter().map(|b| parse(b)).collect::<Result<Vec<_>, _>>()?;
    if backends.is_empty() {
        return Err(cx.err("backends:", "no backends listed".into(), "e.g. `backends: [cpu]`"));
    }
    let mut options = BTreeMap::new();
    for (name, opts) in &raw.backend_options {
        let b = parse(name)?;
        if !backends.contains(&b) {
            return Err(cx.err(
                &format!("{name}:"),
                format!("backend_options for `{name}`, which is not in `backends`"),
                "add it to `backends` or remove its options",
            ));
        }
        options.insert(b, opts.clone());
    }
    Ok((backends, options))
}

/// Strategies tied to one backend (`Strategy::only_backend`) refuse the others, with the reason;
/// `separate-shared-weights` also needs the compile phase, where the shared context is made.
fn strategy_backends(
    cx: &Ctx<'_>,
    strategies: &[Strategy],
    backends: &[Backend],
    options: &BackendOptions,
) -> Result<(), YamlError> {
    for s in strategies {
        let Some((only, why)) = s.only_backend() else { continue };
        if let Some(other) = backends.iter().find(|b| **b != only) {
            return Err(cx.err(
                "strategies:",
                format!("strategy `{s}` does not run on backend `{other}`: {why}"),
                &format!("run `{s}` in a scenario whose `backends` is [{only}], or remove it from `strategies`"),
            ));
        }
        if options.get(&only).and_then(|o| o.get("ep_context")).is_none_or(|v| v != "1") {
            return Err(cx.err(
                "strategies:",
                format!("strategy `{s}` needs the compile phase, where its shared EP context is made"),
                &format!("set `backend_options: {{{only}: {{ep_context: \"1\"}}}}`"),
            ));
        }
    }
    Ok(())
}

fn inputs(cx: &Ctx<'_>, raw: &[String], base: &Path) -> Result<Vec<(String, PathBuf)>, YamlError> {
    if raw.is_empty() || raw.len() > limits::INPUTS {
        return Err(cx.err(
            "inputs:",
            format!("{} input images listed", raw.len()),
            &format!(
                "list 1 to {} images, e.g. `inputs: [astronaut, coffee]` (bundled examples); a package without an image takes `tensor_inputs` files instead",
                limits::INPUTS
            ),
        ));
    }
    let mut out = Vec::new();
    for i in raw {
        let p = if i.contains('/') || i.contains('.') {
            base.join(i)
        } else {
            match checkout::input(base, i) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    let known = checkout::input_names(base);
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    return Err(cx.err(
                        i,
                        format!("input image `{i}` is neither a bundled example nor a file of golden/inputs/"),
                        &yaml::nearest(i, known.iter().copied())
                            .map(|n| format!("did you mean `{n}`?"))
                            .unwrap_or_else(|| {
                                format!("name one of {}, or give a path relative to the scenario", known.join(", "))
                            }),
                    ));
                }
                Err(e) => {
                    return Err(cx.err(
                        i,
                        format!("cannot provide input `{i}`: {e}"),
                        "check that the cache directory is writable",
                    ));
                }
            }
        };
        if let Some(kind) = quadbench_native::file::non_regular_kind(&p) {
            return Err(cx.err(
                i,
                format!("input image {} is {}, not a regular file", p.display(), kind.describe()),
                "point at the image file itself",
            ));
        }
        if !p.is_file() {
            return Err(cx.err(
                i,
                format!("input image `{i}` not found at {}", p.display()),
                "give a path relative to the scenario file, or a bundled example name",
            ));
        }
        let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if !crate::safe_name(&name) {
            return Err(cx.err(
                i,
                format!("input name `{}` is not a safe file name", name.escape_debug()),
                "rename the image",
            ));
        }
        if out.iter().any(|(n, _)| n == &name) {
            return Err(cx.err(i, format!("two inputs are named `{name}`"), "rename one of the images"));
        }
        out.push((name, p));
    }
    Ok(out)
}

fn workload(cx: &Ctx<'_>, w: &RawWorkload) -> Result<PlanWorkload, YamlError> {
    let order = match w.order.as_str() {
        "round-robin" => TaskOrder::RoundRobin,
        "random" => TaskOrder::Random,
        o => return Err(cx.unknown("order:", "workload order", o, &["round-robin", "random"])),
    };
    let max_s = cx.range("max_duration_s", w.max_duration_s, limits::MAX_DURATION_S)?;
    if !(w.min_duration_s.is_finite() && w.min_duration_s >= 0.0 && w.min_duration_s <= max_s) {
        return Err(cx.err(
            "min_duration_s:",
            format!("durations must satisfy 0 <= min_duration_s ({}) <= max_duration_s ({max_s})", w.min_duration_s),
            "raise max_duration_s or lower min_duration_s",
        ));
    }
    Ok(PlanWorkload {
        order,
        seed: w.seed,
        requests_per_visit: cx.range("requests_per_visit", w.requests_per_visit, limits::REQUESTS_PER_VISIT)?,
        warmup_visits: cx.range("warmup_visits", w.warmup_visits, limits::WARMUP_VISITS)?,
        min_samples: cx.range("min_samples", w.min_samples, limits::MIN_SAMPLES)?,
        min_switches: cx.range("min_switches", w.min_switches, limits::MIN_SWITCHES)?,
        min_duration_ms: (w.min_duration_s * 1e3) as u64,
        max_duration_ms: (max_s * 1e3) as u64,
        capture_timed_outputs: w.capture_timed_outputs,
    })
}

fn claims(
    cx: &Ctx<'_>,
    raw: &[RawClaim],
    parse_strategy: &dyn Fn(&str) -> Result<Strategy, YamlError>,
) -> Result<Vec<Claim>, YamlError> {
    let mut claims: Vec<Claim> = Vec::new();
    for c in raw {
        if claims.iter().any(|d| d.name == c.name) {
            return Err(cx.err(
                &format!("name: {}", c.name),
                format!("claim `{}` is defined twice", c.name),
                "give claims unique names",
            ));
        }
        let metric = Metric::parse(&c.metric)
            .ok_or_else(|| cx.unknown(&c.metric, "claim metric", &c.metric, &Metric::keys()))?;
        let (lo, hi) = limits::CLAIM_THRESHOLD;
        if !(c.threshold >= lo && c.threshold <= hi) {
            return Err(cx.err(
                &format!("name: {}", c.name),
                format!("claim `{}`: threshold {} must be a positive ratio up to {hi}", c.name, c.threshold),
                "e.g. `threshold: 4` (the candidate is 4x better)",
            ));
        }
        claims.push(Claim {
            name: c.name.clone(),
            metric,
            baseline: parse_strategy(&c.baseline)?,
            candidate: parse_strategy(&c.candidate)?,
            threshold: c.threshold,
        });
    }
    Ok(claims)
}

fn thresholds(cx: &Ctx<'_>, q: Option<&RawQuality>) -> Result<Vec<Threshold>, YamlError> {
    let mut out = Vec::new();
    for (metric, expr) in q.iter().flat_map(|q| q.thresholds.iter()) {
        let t = Threshold::parse(metric, expr).map_err(|m| {
            let fix = yaml::nearest(metric, ThresholdMetric::keys())
                .filter(|n| n != metric)
                .map(|n| format!("did you mean `{n}`?"))
                .unwrap_or_default();
            cx.err(&format!("{metric}:"), m, &fix)
        })?;
        out.push(t);
    }
    Ok(out)
}

fn throttle(cx: &Ctx<'_>, t: Option<&RawThrottle>) -> Result<ThrottleConfig, YamlError> {
    let d = ThrottleConfig::default();
    let Some(t) = t else { return Ok(d) };
    let c = ThrottleConfig {
        enabled: t.enabled.unwrap_or(d.enabled),
        max_slowdown: t.max_slowdown.unwrap_or(d.max_slowdown),
        retries: t.retries.unwrap_or(d.retries),
        cooldown_s: t.cooldown_s.unwrap_or(d.cooldown_s),
    };
    if !(c.max_slowdown.is_finite() && c.max_slowdown > 0.0 && c.max_slowdown <= 10.0) {
        return Err(cx.err(
            "max_slowdown:",
            format!("throttle.max_slowdown must be a fraction in (0, 10], not {}", c.max_slowdown),
            "e.g. `max_slowdown: 0.10` (10% slower counts as throttled)",
        ));
    }
    cx.range("retries", c.retries, (0, 20))?;
    if !(c.cooldown_s.is_finite() && (0.0..=3600.0).contains(&c.cooldown_s)) {
        return Err(cx.err(
            "throttle:",
            format!("throttle.cooldown_s must be between 0 and 3600 seconds, not {}", c.cooldown_s),
            "e.g. `throttle: {cooldown_s: 30}`",
        ));
    }
    Ok(c)
}
