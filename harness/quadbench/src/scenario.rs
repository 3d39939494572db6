//! Scenarios (`scenarios/*.yaml`, schema `quadbench.scenario/1`): what to run, where, how long,
//! and which claims to check. [`RawScenario`] mirrors the file; [`Scenario::load`] validates it
//! into domain types before any device is touched.

use crate::package::reference::ReferenceParams;
use crate::yaml::{self, YamlError};
use quadbench_protocol::{PlanWorkload, Strategy, TaskOrder};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SCENARIO_SCHEMA: &str = "quadbench.scenario/1";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub package: RawPackageRef,
    pub devices: Vec<String>,
    pub backends: Vec<String>,
    #[serde(default = "default_precision")]
    pub precision: String,
    pub strategies: Vec<String>,
    /// Input image names under `golden/inputs/` (without extension) or paths to images.
    pub inputs: Vec<String>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuality {
    /// Golden directory (default: the repository's `golden/`).
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

/// Either a package directory or the generated reference package.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPackageRef {
    #[serde(default)]
    pub path: Option<String>,
    /// Quantize the package (QDQ) before running; quality is still scored against the FP32 goldens.
    #[serde(default)]
    pub quantize: Option<RawQuantize>,
    #[serde(default)]
    pub reference: Option<RawReference>,
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
pub struct RawReference {
    #[serde(default)]
    pub tasks: Option<usize>,
    #[serde(default)]
    pub width: Option<usize>,
    #[serde(default)]
    pub resolution: Option<usize>,
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub seed: Option<u64>,
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

/// Where the package comes from.
#[derive(Debug, Clone)]
pub enum PackageRef {
    Dir(PathBuf),
    Reference(ReferenceParams),
}

/// How to quantize the package before running.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantize {
    pub precision: String,
    pub profile: String,
    pub a8_ratio: f64,
    pub per_channel: bool,
}

impl Quantize {
    /// Cache key suffix of the quantized variant.
    pub fn key(&self) -> String {
        format!(
            "q{}-{}-{}-a8r{:.2}{}",
            crate::package::quantize::QDQ_REVISION,
            self.precision,
            self.profile,
            self.a8_ratio,
            if self.per_channel { "-pc" } else { "" }
        )
    }
}

/// A claim to verify: `metric(baseline) / metric(candidate) >= threshold`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub name: String,
    pub metric: String,
    pub baseline: Strategy,
    pub candidate: Strategy,
    pub threshold: f64,
}

/// Metrics a claim may name (all lower-is-better; the ratio is baseline / candidate).
pub const CLAIM_METRICS: &[&str] = &[
    "storage.total_bytes",
    "memory.peak_rss_bytes",
    "memory.peak_pss_bytes",
    "init_ms",
    "latency_ms.switch",
    "latency_ms.switch_load",
    "latency_ms.e2e",
];

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub sha256: String,
    pub package: PackageRef,
    pub quantize: Option<Quantize>,
    pub devices: Vec<PathBuf>,
    pub backends: Vec<String>,
    pub precision: String,
    pub strategies: Vec<Strategy>,
    pub inputs: Vec<(String, PathBuf)>,
    pub workload: PlanWorkload,
    pub threads: usize,
    pub backend_options: BTreeMap<String, BTreeMap<String, String>>,
    pub require_full_offload: bool,
    pub claims: Vec<Claim>,
    /// Golden directory and thresholds; outputs are scored whenever goldens exist.
    pub golden_root: PathBuf,
    pub thresholds: Vec<crate::quality::Threshold>,
    pub cooldown_s: f64,
    pub throttle: crate::throttle::ThrottleConfig,
}

/// Backends a scenario may name (the runner's registry decides what a device can serve).
pub const KNOWN_BACKENDS: &[&str] = &["cpu", "qnn-htp", "cuda", "nnapi", "xnnpack", "coreml", "openvino"];

impl Scenario {
    /// Load and validate; relative paths resolve against the scenario's directory, input names
    /// against `golden/inputs/` of the repository (`repo_root`).
    pub fn load(path: &Path, repo_root: &Path) -> Result<Scenario, YamlError> {
        let (raw, text) = yaml::load::<RawScenario>(path)?;
        let err = |needle: &str, msg: String, fix: &str| YamlError::at(path, &text, needle, msg, fix);
        if raw.schema != SCENARIO_SCHEMA {
            return Err(err(
                "schema:",
                format!("schema `{}` is not supported", raw.schema),
                &format!("use `schema: {SCENARIO_SCHEMA}`"),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let package = match (&raw.package.path, &raw.package.reference) {
            (Some(p), None) => PackageRef::Dir(base.join(p)),
            (None, Some(r)) => {
                let d = ReferenceParams::default();
                let p = ReferenceParams {
                    tasks: r.tasks.unwrap_or(d.tasks),
                    width: r.width.unwrap_or(d.width),
                    resolution: r.resolution.unwrap_or(d.resolution),
                    steps: r.steps.unwrap_or(d.steps),
                    seed: r.seed.unwrap_or(d.seed),
                };
                p.validate().map_err(|e| err("reference:", e.to_string(), ""))?;
                PackageRef::Reference(p)
            }
            _ => {
                return Err(err(
                    "package:",
                    "package needs exactly one of `path` or `reference`".into(),
                    "e.g. `package: {path: ../my-package}` or `package: {reference: {tasks: 10}}`",
                ));
            }
        };
        let quantize = match &raw.package.quantize {
            None => None,
            Some(q) => {
                let precision = q.precision.clone().unwrap_or_else(|| "w8a16".into());
                if !["w8a16", "w8a8"].contains(&precision.as_str()) {
                    return Err(err(
                        "precision:",
                        format!("unknown quantization precision `{precision}`"),
                        "use `w8a16` or `w8a8`",
                    ));
                }
                let profile = q.profile.clone().unwrap_or_else(|| "anchor".into());
                if !["anchor", "merge"].contains(&profile.as_str()) {
                    return Err(err(
                        "profile:",
                        format!("unknown shared profile method `{profile}`"),
                        "use `anchor` (QUAD) or `merge`",
                    ));
                }
                let a8_ratio = q.a8_ratio.unwrap_or(if precision == "w8a8" { 1.0 } else { 0.0 });
                if !(0.0..=1.0).contains(&a8_ratio) {
                    return Err(err(
                        "a8_ratio:",
                        format!("a8_ratio {a8_ratio} must be within [0, 1]"),
                        "0 = all W8A16, 1 = all W8A8",
                    ));
                }
                Some(Quantize { precision, profile, a8_ratio, per_channel: q.per_channel.unwrap_or(false) })
            }
        };
        if !crate::safe_name(&raw.precision) {
            return Err(err(
                "precision:",
                format!(
                    "precision label `{}` must be a safe name (it becomes part of run ids and paths)",
                    raw.precision
                ),
                &format!("use {}, e.g. `fp32` or `w8a16`", crate::SAFE_NAME_CHARS),
            ));
        }
        for b in raw.backend_options.keys() {
            if !raw.backends.contains(b) {
                return Err(err(
                    &format!("{b}:"),
                    format!("backend_options for `{b}`, which is not in `backends`"),
                    "add it to `backends` or remove its options",
                ));
            }
        }
        if raw.devices.is_empty() {
            return Err(err("devices:", "no devices listed".into(), "e.g. `devices: [../devices/local.yaml]`"));
        }
        let devices = raw.devices.iter().map(|d| base.join(d)).collect();
        for b in &raw.backends {
            if !KNOWN_BACKENDS.contains(&b.as_str()) {
                let fix = yaml::nearest(b, KNOWN_BACKENDS.iter().copied())
                    .map(|n| format!("did you mean `{n}`?"))
                    .unwrap_or_else(|| format!("known backends: {}", KNOWN_BACKENDS.join(", ")));
                return Err(err(b, format!("unknown backend `{b}`"), &fix));
            }
        }
        if raw.backends.is_empty() {
            return Err(err("backends:", "no backends listed".into(), "e.g. `backends: [cpu]`"));
        }
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        let parse_strategy = |s: &str| {
            Strategy::parse(s).ok_or_else(|| {
                let fix = yaml::nearest(s, names.iter().copied())
                    .map(|n| format!("did you mean `{n}`?"))
                    .unwrap_or_else(|| format!("strategies: {}", names.join(", ")));
                err(s, format!("unknown strategy `{s}`"), &fix)
            })
        };
        let strategies = raw.strategies.iter().map(|s| parse_strategy(s)).collect::<Result<Vec<_>, _>>()?;
        if strategies.is_empty() {
            return Err(err(
                "strategies:",
                "no strategies listed".into(),
                &format!("choose from {}", names.join(", ")),
            ));
        }
        if raw.inputs.is_empty() {
            return Err(err(
                "inputs:",
                "no input images listed".into(),
                "e.g. `inputs: [astronaut, coffee]` (files in golden/inputs/)",
            ));
        }
        let mut inputs = Vec::new();
        for i in &raw.inputs {
            let p = if i.contains('/') || i.contains('.') {
                base.join(i)
            } else {
                repo_root.join("golden/inputs").join(format!("{i}.png"))
            };
            if !p.exists() {
                let known: Vec<String> = std::fs::read_dir(repo_root.join("golden/inputs"))
                    .map(|rd| {
                        rd.flatten()
                            .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
                            .filter(|n| n != "SOURCES")
                            .collect()
                    })
                    .unwrap_or_default();
                let fix = yaml::nearest(i, known.iter().map(|s| s.as_str())).map(|n| format!("did you mean `{n}`?")).unwrap_or_else(|| format!("name a file of golden/inputs/ without extension ({}), or give a path relative to the scenario", known.join(", ")));
                return Err(err(i, format!("input image `{i}` not found at {}", p.display()), &fix));
            }
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if !crate::safe_name(&name) {
                return Err(err(i, format!("input name `{name}` is not a safe file name"), "rename the image"));
            }
            inputs.push((name, p));
        }
        let w = &raw.workload;
        let order = match w.order.as_str() {
            "round-robin" => TaskOrder::RoundRobin,
            "random" => TaskOrder::Random,
            o => return Err(err("order:", format!("unknown workload order `{o}`"), "use `round-robin` or `random`")),
        };
        if !(w.min_duration_s >= 0.0 && w.max_duration_s > 0.0 && w.max_duration_s >= w.min_duration_s) {
            return Err(err(
                "max_duration_s:",
                format!(
                    "durations must satisfy 0 <= min_duration_s ({}) <= max_duration_s ({})",
                    w.min_duration_s, w.max_duration_s
                ),
                "raise max_duration_s",
            ));
        }
        let workload = PlanWorkload {
            order,
            seed: w.seed,
            requests_per_visit: w.requests_per_visit.max(1),
            warmup_visits: w.warmup_visits,
            min_samples: w.min_samples,
            min_switches: w.min_switches,
            min_duration_ms: (w.min_duration_s * 1e3) as u64,
            max_duration_ms: (w.max_duration_s * 1e3) as u64,
        };
        let mut claims = Vec::new();
        let mut seen = BTreeMap::new();
        for c in &raw.claims {
            if seen.insert(c.name.clone(), ()).is_some() {
                return Err(err(
                    &format!("name: {}", c.name),
                    format!("claim `{}` is defined twice", c.name),
                    "give claims unique names",
                ));
            }
            if !CLAIM_METRICS.contains(&c.metric.as_str()) {
                let fix = yaml::nearest(&c.metric, CLAIM_METRICS.iter().copied())
                    .map(|n| format!("did you mean `{n}`?"))
                    .unwrap_or_else(|| format!("metrics: {}", CLAIM_METRICS.join(", ")));
                return Err(err(&c.metric, format!("claim `{}`: unknown metric `{}`", c.name, c.metric), &fix));
            }
            if c.threshold <= 0.0 {
                return Err(err(
                    &format!("name: {}", c.name),
                    format!("claim `{}`: threshold must be positive", c.name),
                    "",
                ));
            }
            claims.push(Claim {
                name: c.name.clone(),
                metric: c.metric.clone(),
                baseline: parse_strategy(&c.baseline)?,
                candidate: parse_strategy(&c.candidate)?,
                threshold: c.threshold,
            });
        }
        let golden_root = raw
            .quality
            .as_ref()
            .and_then(|q| q.golden_dir.as_ref())
            .map(|d| base.join(d))
            .unwrap_or_else(|| repo_root.join("golden"));
        let mut thresholds = Vec::new();
        for (metric, expr) in raw.quality.iter().flat_map(|q| q.thresholds.iter()) {
            let t = crate::quality::Threshold::parse(metric, expr).map_err(|m| {
                let fix = yaml::nearest(metric, crate::quality::QUALITY_METRICS.iter().copied())
                    .filter(|n| n != metric)
                    .map(|n| format!("did you mean `{n}`?"))
                    .unwrap_or_default();
                err(&format!("{metric}:"), m, &fix)
            })?;
            thresholds.push(t);
        }
        if !(raw.cooldown_s.is_finite() && (0.0..=3600.0).contains(&raw.cooldown_s)) {
            return Err(err(
                "cooldown_s:",
                format!("cooldown_s must be between 0 and 3600 seconds, not {}", raw.cooldown_s),
                "e.g. `cooldown_s: 10`",
            ));
        }
        let d = crate::throttle::ThrottleConfig::default();
        let throttle = match &raw.throttle {
            None => d,
            Some(t) => crate::throttle::ThrottleConfig {
                enabled: t.enabled.unwrap_or(d.enabled),
                max_slowdown: t.max_slowdown.unwrap_or(d.max_slowdown),
                retries: t.retries.unwrap_or(d.retries),
                cooldown_s: t.cooldown_s.unwrap_or(d.cooldown_s),
            },
        };
        if !(throttle.max_slowdown.is_finite() && throttle.max_slowdown > 0.0 && throttle.max_slowdown <= 10.0) {
            return Err(err(
                "max_slowdown:",
                format!("throttle.max_slowdown must be a fraction in (0, 10], not {}", throttle.max_slowdown),
                "e.g. `max_slowdown: 0.10` (10% slower counts as throttled)",
            ));
        }
        if throttle.retries > 20 {
            return Err(err(
                "retries:",
                format!("throttle.retries {} is more than 20", throttle.retries),
                "use a few retries with a longer cooldown_s",
            ));
        }
        if !(throttle.cooldown_s.is_finite() && (0.0..=3600.0).contains(&throttle.cooldown_s)) {
            return Err(err(
                "throttle:",
                format!("throttle.cooldown_s must be between 0 and 3600 seconds, not {}", throttle.cooldown_s),
                "e.g. `throttle: {cooldown_s: 30}`",
            ));
        }
        Ok(Scenario {
            golden_root,
            thresholds,
            cooldown_s: raw.cooldown_s,
            throttle,
            path: path.to_path_buf(),
            name: raw.name,
            sha256: crate::package::manifest::sha256_bytes(text.as_bytes()),
            package,
            quantize,
            backend_options: raw.backend_options,
            require_full_offload: raw.require_full_offload,
            devices,
            backends: raw.backends,
            precision: raw.precision,
            strategies,
            inputs,
            workload,
            threads: raw.threads,
            claims,
        })
    }
}
