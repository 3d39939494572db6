//! Sweep files (`scenarios/sweeps/*.yaml`, schema `quadbench.sweep/1`): a base scenario and the
//! axes to vary, as a grid or a list of points. [`RawSweep`] mirrors the file; [`Sweep::load`]
//! validates it (axis names, values, that package axes meet a generated reference package)
//! before anything runs; [`Sweep::scenario_at`] makes the scenario of one point; the memory
//! guard ([`estimate`]) says what each strategy of a point would hold in memory before it runs.
//! `cmd/sweep.rs` runs the points; the report crate's `sweep` module draws the results.

use crate::config::Scenario;
use crate::package::qprofile::{Precision, Quantize};
use crate::package::reference::ReferenceParams;
use crate::package::source::reference::Reference;
use crate::yaml::{self, YamlError};
use quadbench_protocol::{Backend, Strategy};
use quadbench_schema::sweep::{AxisValue, MemoryEstimate};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SWEEP_SCHEMA: &str = "quadbench.sweep/1";
/// Most points a sweep may have (a grid's product included).
pub const MAX_POINTS: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The base scenario, relative to the sweep file.
    pub scenario: String,
    /// Every combination of these axes' values.
    #[serde(default)]
    pub grid: Option<RawAxes>,
    /// Or these points, each setting some axes.
    #[serde(default)]
    pub points: Option<Vec<RawPoint>>,
    #[serde(default)]
    pub memory: Option<RawMemory>,
}

/// The axes of a grid: each a list of values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAxes {
    pub width: Option<Vec<usize>>,
    pub tasks: Option<Vec<usize>>,
    pub rank: Option<Vec<usize>>,
    pub resolution: Option<Vec<usize>>,
    pub steps: Option<Vec<usize>>,
    pub backend: Option<Vec<String>>,
    pub precision: Option<Vec<String>>,
    pub strategies: Option<Vec<Vec<String>>>,
}

/// One point of a list: each axis at most once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoint {
    pub width: Option<usize>,
    pub tasks: Option<usize>,
    pub rank: Option<usize>,
    pub resolution: Option<usize>,
    pub steps: Option<usize>,
    pub backend: Option<String>,
    pub precision: Option<String>,
    pub strategies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    /// Memory the points may use, MB (default: MemAvailable of this host).
    #[serde(default)]
    pub limit_mb: Option<u64>,
    /// `refuse` (default): a point over the limit refuses the sweep; `skip`: its strategies
    /// over the limit are left out and listed.
    #[serde(default)]
    pub over_limit: Option<String>,
}

/// A sweep axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    Width,
    Tasks,
    Rank,
    Resolution,
    Steps,
    Backend,
    Precision,
    Strategies,
}

impl Axis {
    pub const ALL: [Axis; 8] = [
        Axis::Width,
        Axis::Tasks,
        Axis::Rank,
        Axis::Resolution,
        Axis::Steps,
        Axis::Backend,
        Axis::Precision,
        Axis::Strategies,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Axis::Width => "width",
            Axis::Tasks => "tasks",
            Axis::Rank => "rank",
            Axis::Resolution => "resolution",
            Axis::Steps => "steps",
            Axis::Backend => "backend",
            Axis::Precision => "precision",
            Axis::Strategies => "strategies",
        }
    }

    /// A parameter of the generated reference package (the others are scenario keys).
    pub fn is_package(self) -> bool {
        matches!(self, Axis::Width | Axis::Tasks | Axis::Rank | Axis::Resolution | Axis::Steps)
    }
}

/// What to do with a point whose estimate exceeds the memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    Refuse,
    Skip,
}

/// One point: a value per axis it sets.
pub type Point = Vec<(Axis, AxisValue)>;

/// A validated sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub sha256: String,
    pub base: Scenario,
    /// Axes set by any point, in the file's order.
    pub axes: Vec<Axis>,
    pub points: Vec<Point>,
    pub limit_mb: Option<u64>,
    pub over_limit: OverLimit,
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, needle: &str, msg: String, fix: &str) -> YamlError {
        YamlError::at(self.path, self.text, needle, msg, fix)
    }

    fn unknown(&self, needle: &str, what: &str, name: &str, known: &[&str]) -> YamlError {
        let fix = yaml::nearest(name, known.iter().copied())
            .map(|n| format!("did you mean `{n}`?"))
            .unwrap_or_else(|| format!("known: {}", known.join(", ")));
        self.err(needle, format!("unknown {what} `{name}`"), &fix)
    }
}

impl Sweep {
    /// Load and validate a sweep file and its base scenario.
    pub fn load(path: &Path) -> Result<Sweep, YamlError> {
        let (raw, text) = yaml::load::<RawSweep>(path)?;
        let cx = Ctx { path, text: &text };
        if raw.schema != SWEEP_SCHEMA {
            return Err(cx.err(
                "schema:",
                format!("schema `{}` is not supported", raw.schema),
                &format!("use `schema: {SWEEP_SCHEMA}`"),
            ));
        }
        if !crate::safe_name(&raw.name) {
            return Err(cx.err(
                "name:",
                format!("name `{}` must be a safe name (it names the sweep directory)", raw.name.escape_debug()),
                &format!("use {}", crate::SAFE_NAME_CHARS),
            ));
        }
        let scenario_path = path.parent().unwrap_or(Path::new(".")).join(&raw.scenario);
        if !scenario_path.is_file() {
            return Err(cx.err(
                "scenario:",
                format!("base scenario {} not found", scenario_path.display()),
                "give the scenario's path relative to this sweep file, e.g. `scenario: ../demo.yaml`",
            ));
        }
        let base = Scenario::load(&scenario_path)?;
        let points = match (&raw.grid, &raw.points) {
            (Some(g), None) => grid(&cx, g)?,
            (None, Some(p)) if !p.is_empty() => p.iter().map(point).collect(),
            (None, Some(_)) => return Err(cx.err("points:", "no points listed".into(), "list at least one point")),
            _ => {
                return Err(cx.err(
                    "schema:",
                    "a sweep needs exactly one of `grid:` (every combination) or `points:` (a list)".into(),
                    "e.g. `grid: {width: [256, 512, 1024]}` or `points: [{width: 256, tasks: 2}]`",
                ));
            }
        };
        if points.len() > MAX_POINTS {
            return Err(cx.err(
                if raw.grid.is_some() { "grid:" } else { "points:" },
                format!("{} points; a sweep has at most {MAX_POINTS}", points.len()),
                "sweep fewer values, or split the sweep",
            ));
        }
        let mut axes: Vec<Axis> = points.iter().flatten().map(|(a, _)| *a).collect();
        axes.sort_by_key(|a| yaml::locate(&text, &format!("{}:", a.name())).unwrap_or((usize::MAX, 0)));
        axes.dedup();
        for p in &points {
            check_point(&cx, &base, p)?;
        }
        let over_limit = match raw.memory.as_ref().and_then(|m| m.over_limit.as_deref()) {
            None | Some("refuse") => OverLimit::Refuse,
            Some("skip") => OverLimit::Skip,
            Some(o) => return Err(cx.unknown("over_limit:", "over_limit policy", o, &["refuse", "skip"])),
        };
        let limit_mb = raw.memory.as_ref().and_then(|m| m.limit_mb);
        if limit_mb == Some(0) {
            return Err(cx.err("limit_mb:", "limit_mb must be positive".into(), "e.g. `limit_mb: 16000`"));
        }
        Ok(Sweep {
            path: path.to_path_buf(),
            name: raw.name,
            description: raw.description,
            sha256: crate::package::manifest::sha256_bytes(text.as_bytes()),
            base,
            axes,
            points,
            limit_mb,
            over_limit,
        })
    }

    /// The scenario of one point: the base with the point's package parameters and scenario keys.
    pub fn scenario_at(&self, point: &Point) -> Scenario {
        apply(&self.base, point).expect("points are checked against the base scenario in Sweep::load")
    }
}

/// Every combination of the grid's axes (the first axis in the struct's order varies slowest;
/// ids and plots do not depend on that order).
fn grid(cx: &Ctx<'_>, g: &RawAxes) -> Result<Vec<Point>, YamlError> {
    let num = |v: &Option<Vec<usize>>| v.as_ref().map(|v| v.iter().map(|&n| AxisValue::Number(n as u64)).collect());
    let name = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.iter().cloned().map(AxisValue::Name).collect());
    let lists: Vec<(Axis, Option<Vec<AxisValue>>)> = vec![
        (Axis::Width, num(&g.width)),
        (Axis::Tasks, num(&g.tasks)),
        (Axis::Rank, num(&g.rank)),
        (Axis::Resolution, num(&g.resolution)),
        (Axis::Steps, num(&g.steps)),
        (Axis::Backend, name(&g.backend)),
        (Axis::Precision, name(&g.precision)),
        (Axis::Strategies, g.strategies.as_ref().map(|v| v.iter().cloned().map(AxisValue::Names).collect())),
    ];
    let mut points: Vec<Point> = vec![Vec::new()];
    let mut any = false;
    for (axis, values) in lists {
        let Some(values) = values else { continue };
        any = true;
        if values.is_empty() {
            return Err(cx.err(
                &format!("{}:", axis.name()),
                format!("axis `{}` has no values", axis.name()),
                "list at least one value",
            ));
        }
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((axis, v.clone()));
                    q
                })
            })
            .take(MAX_POINTS + 1)
            .collect();
    }
    if !any {
        return Err(cx.err(
            "grid:",
            "the grid has no axes".into(),
            "e.g. `grid: {width: [256, 512, 1024]}`; axes: width, tasks, rank, resolution, steps, backend, precision, strategies",
        ));
    }
    Ok(points)
}

fn point(p: &RawPoint) -> Point {
    let mut out = Vec::new();
    let mut num = |a: Axis, v: Option<usize>| {
        if let Some(v) = v {
            out.push((a, AxisValue::Number(v as u64)));
        }
    };
    num(Axis::Width, p.width);
    num(Axis::Tasks, p.tasks);
    num(Axis::Rank, p.rank);
    num(Axis::Resolution, p.resolution);
    num(Axis::Steps, p.steps);
    if let Some(b) = &p.backend {
        out.push((Axis::Backend, AxisValue::Name(b.clone())));
    }
    if let Some(b) = &p.precision {
        out.push((Axis::Precision, AxisValue::Name(b.clone())));
    }
    if let Some(s) = &p.strategies {
        out.push((Axis::Strategies, AxisValue::Names(s.clone())));
    }
    out
}

/// Why a point cannot be made from the base scenario, located at the axis in the sweep file.
fn check_point(cx: &Ctx<'_>, base: &Scenario, p: &[(Axis, AxisValue)]) -> Result<(), YamlError> {
    for (axis, value) in p {
        let at = format!("{}:", axis.name());
        match (axis, value) {
            (a, _) if a.is_package() && base.package.source.reference().is_none() => {
                return Err(cx.err(
                    &at,
                    format!(
                        "axis `{}` varies a parameter of the generated reference package, but the base scenario runs {}",
                        a.name(),
                        base.package.source.describe()
                    ),
                    "package axes (width, tasks, rank, resolution, steps) need `package: {reference: {...}}` in the base scenario; a package made elsewhere can only be swept over backend, precision and strategies",
                ));
            }
            (Axis::Backend, AxisValue::Name(b)) if Backend::parse(b).is_none() => {
                return Err(cx.unknown(b, "backend", b, &Backend::names()));
            }
            (Axis::Precision, AxisValue::Name(s)) if s != "fp32" && Precision::parse(s).is_none() => {
                let mut known = vec!["fp32"];
                known.extend(Precision::ALL.iter().map(|p| p.as_str()));
                return Err(cx.unknown(s, "precision", s, &known));
            }
            (Axis::Strategies, AxisValue::Names(list)) => {
                let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
                if list.is_empty() {
                    return Err(cx.err(
                        &at,
                        "an empty strategy list".into(),
                        &format!("choose from {}", names.join(", ")),
                    ));
                }
                if let Some(s) = list.iter().find(|s| Strategy::parse(s).is_none()) {
                    return Err(cx.unknown(s, "strategy", s, &names));
                }
            }
            _ => {}
        }
    }
    if let Some(params) = package_params(base, p)
        && let Err(e) = params.validate()
    {
        let axis = p.iter().find(|(a, _)| a.is_package()).map_or("grid", |(a, _)| a.name());
        return Err(cx.err(&format!("{axis}:"), e.to_string(), "change the axis values"));
    }
    Ok(())
}

/// The reference parameters at point `p` (`None`: the base package is not generated).
pub fn package_params(base: &Scenario, p: &[(Axis, AxisValue)]) -> Option<ReferenceParams> {
    let mut params = base.package.source.reference()?.clone();
    for (axis, value) in p {
        let Some(n) = value.number() else { continue };
        let n = n as usize;
        match axis {
            Axis::Width => params.width = n,
            Axis::Tasks => params.tasks = n,
            Axis::Rank => params.rank = n,
            Axis::Resolution => params.resolution = n,
            Axis::Steps => params.steps = n,
            _ => {}
        }
    }
    Some(params)
}

fn apply(base: &Scenario, p: &[(Axis, AxisValue)]) -> Result<Scenario, String> {
    let mut sc = base.clone();
    if p.iter().any(|(a, _)| a.is_package()) {
        let params = package_params(base, p).ok_or("package axes need the reference package")?;
        sc.package.source = Arc::new(Reference(params));
    }
    for (axis, value) in p {
        match (axis, value) {
            (Axis::Backend, AxisValue::Name(b)) => {
                let b = Backend::parse(b).ok_or("unknown backend")?;
                sc.backends = vec![b];
                sc.backend_options.retain(|k, _| *k == b);
            }
            (Axis::Precision, AxisValue::Name(s)) if s == "fp32" => {
                sc.package.quantize = None;
                sc.precision = "fp32".into();
            }
            (Axis::Precision, AxisValue::Name(s)) => {
                let precision = Precision::parse(s).ok_or("unknown precision")?;
                let q = match &base.package.quantize {
                    Some(q) => Quantize { precision, ..q.clone() },
                    None => Quantize::parse(Some(s), None, None, false).map_err(|e| e.message)?,
                };
                sc.package.quantize = Some(q);
                sc.precision = s.clone();
            }
            (Axis::Strategies, AxisValue::Names(list)) => {
                sc.strategies = list.iter().filter_map(|s| Strategy::parse(s)).collect();
            }
            _ => {}
        }
    }
    Ok(sc)
}

/// A point's directory name: `p<NN>-<axis><value>...` (safe file-name characters only).
pub fn point_id(index: usize, p: &Point) -> String {
    let mut id = format!("p{index:02}");
    for (axis, value) in p {
        let v: String = value
            .label()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '_' })
            .collect();
        id.push_str(&format!("-{}{v}", axis.name()));
    }
    id.chars().take(120).collect()
}

/// Runtime and runner memory besides the weights, bytes: the largest intercept of peak RSS
/// against denoiser weight bytes in the foundation-size sweep of README.md, "Sweeps" (46, 98
/// and 94 MB for unified, separate-resident and separate-reload), rounded up.
pub const RUNTIME_OVERHEAD_BYTES: u64 = 110_000_000;
/// Resident bytes per byte of denoiser weights per session: above the largest slope per
/// session in the same sweep (unified 1.30, separate-resident 4.24 / 4 sessions = 1.06,
/// separate-reload 1.27). With 1.2, the first calibration, unified at width 8192 measured 1%
/// above its estimate; hence 1.35.
pub const SESSION_BYTES_PER_WEIGHT_BYTE: f64 = 1.35;
/// Resident bytes per session besides its weights (graph, arena): the task-count sweep's
/// separate-resident peak grew 16.1 MB per task with 9.05 MB of weights, 3.9 MB above 1.35x the
/// weights (the rank sweep's ten sessions: 1.8 MB each); without it, separate-resident with 32
/// tasks measured 5% above its estimate. Rounded up.
pub const SESSION_OVERHEAD_BYTES: u64 = 8_000_000;
/// Extra resident bytes when a point runs on a plugin EP (its library and, for QNN, the HTP
/// libraries): the QNN sweep of README.md measured peaks of 202-213 MB against 121-126 MB
/// estimated without it (84-87 MB more). Measured on qnn-htp only; applied to every plugin EP.
pub const PLUGIN_EP_OVERHEAD_BYTES: u64 = 100_000_000;
/// Bytes the host needs per byte of denoiser weights to generate a package: the float64
/// foundation (2x) and one encoded graph with its builder (2x).
pub const GENERATOR_BYTES_PER_WEIGHT_BYTE: u64 = 4;

/// Denoiser sessions a strategy holds at its peak: separate-resident one per task;
/// separate-reload counted as two (the old session and the next one being made), which the
/// measured peaks (about one session's worth) show to be conservative. The strategies merged
/// after the guard's calibration are counted by their sessions, not measured: unified-ort-adapter
/// holds one session, separate-shared-weights one per task (all created up front).
pub fn sessions(strategy: Strategy, tasks: usize) -> u64 {
    match strategy {
        Strategy::Unified | Strategy::UnifiedOrtAdapter => 1,
        Strategy::SeparateResident | Strategy::SeparateSharedWeights => tasks as u64,
        Strategy::SeparateReload => 2,
    }
}

/// The memory guard's estimate of each strategy's peak (`None`: not a generated package, whose
/// weights are not known before it is resolved).
pub fn estimate(sc: &Scenario) -> Option<Vec<MemoryEstimate>> {
    let p = sc.package.source.reference()?;
    let weights = p.denoiser_weight_bytes() as f64;
    // Activations: a handful of token tensors of the encoder's width per request.
    let tokens = ((p.resolution / 4) * (p.resolution / 4)) as u64;
    let activations = 8 * tokens * (crate::package::filters::TOKEN_DIM as u64 + 64) * 4;
    let plugin = if sc.backends.iter().any(|b| *b != Backend::Cpu) { PLUGIN_EP_OVERHEAD_BYTES } else { 0 };
    Some(
        sc.strategies
            .iter()
            .map(|&s| {
                let n = sessions(s, p.tasks);
                let adapters = if s.is_separate() { 0 } else { 2 * p.adapter_weight_bytes() };
                let peak = RUNTIME_OVERHEAD_BYTES
                    + plugin
                    + n * SESSION_OVERHEAD_BYTES
                    + (n as f64 * weights * SESSION_BYTES_PER_WEIGHT_BYTE) as u64
                    + adapters
                    + activations;
                MemoryEstimate { strategy: s, sessions: n, peak_bytes: peak, skipped: false }
            })
            .collect(),
    )
}

/// Bytes the host needs to generate the point's package (`None`: not generated).
pub fn generator_bytes(sc: &Scenario) -> Option<u64> {
    sc.package.source.reference().map(|p| GENERATOR_BYTES_PER_WEIGHT_BYTE * p.denoiser_weight_bytes())
}

/// MemAvailable of this host, bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_follow_the_strategy() {
        assert_eq!(sessions(Strategy::SeparateResident, 10), 10);
        assert_eq!(sessions(Strategy::Unified, 10), 1);
        assert_eq!(sessions(Strategy::SeparateReload, 10), 2);
    }

    #[test]
    fn point_ids_are_safe_names() {
        let p = vec![
            (Axis::Width, AxisValue::Number(1024)),
            (Axis::Strategies, AxisValue::Names(vec!["unified".into(), "separate-reload".into()])),
        ];
        let id = point_id(3, &p);
        assert_eq!(id, "p03-width1024-strategiesunified_separate_reload");
        assert!(crate::safe_name(&id));
    }

    #[test]
    fn the_default_package_weighs_what_the_demo_measured() {
        // README: the 10-task default package's storage for separate-reload is 421.3 MB, of which
        // ten denoisers; a denoiser graph is its weights plus a few KB of graph.
        let w = ReferenceParams::default().denoiser_weight_bytes() as f64;
        assert!((w / 1e6 - 42.0).abs() < 0.5, "{w}");
    }
}
