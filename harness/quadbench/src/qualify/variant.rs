//! The scenario variants a profile runs, and the evidence they leave in a bundle. The list is a
//! pure function of the profile ([`variants`]), so `verify` recomputes it and checks that the
//! bundle holds exactly these results directories, each run as its variant says
//! ([`check_plan`]: seed, order, inputs, captured outputs, duration).

use super::profile::{Kind, Profile};
use crate::config::Scenario;
use crate::results::Results;
use quadbench_protocol::{Backend, Plan, TaskOrder};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a variant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// The scenario as written (one per SoC of the matrix).
    Base,
    /// TEST01: outputs of measured requests kept.
    Test01,
    /// TEST04: one input repeated instead of rotating inputs.
    Test04,
    /// TEST05: random task order with the alternate seed.
    Test05,
    /// A long run of the scenario's first strategy.
    Sustained,
}

/// One scenario variant and where its results directory lies in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub purpose: Purpose,
    /// The SoC of the matrix it was compiled for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc: Option<String>,
    /// Results directory, relative to the bundle.
    pub dir: String,
    /// What differs from the scenario, in words.
    pub change: String,
}

/// Every variant the profile runs, in run order: the base per SoC (or once), then one per
/// compliance check the criteria need (on the first SoC).
pub fn variants(p: &Profile) -> Vec<Variant> {
    let socs: Vec<Option<&str>> =
        if p.socs.is_empty() { vec![None] } else { p.socs.iter().map(|s| Some(s.name.as_str())).collect() };
    let v = |name: String, purpose, soc: Option<&str>, change: String| Variant {
        dir: format!("results/{name}"),
        name,
        purpose,
        soc: soc.map(str::to_string),
        change,
    };
    let mut out: Vec<Variant> = socs
        .iter()
        .map(|s| match s {
            Some(s) => v(format!("base-{s}"), Purpose::Base, Some(s), format!("backend options of SoC {s}")),
            None => v("base".into(), Purpose::Base, None, "none".into()),
        })
        .collect();
    let first = socs[0];
    let extra = [
        (
            Kind::ComplianceTest01,
            Purpose::Test01,
            "test01",
            "outputs of measured requests kept; one replicate".to_string(),
        ),
        (Kind::ComplianceTest04, Purpose::Test04, "test04", "only the first input, repeated; one replicate".into()),
        (
            Kind::ComplianceTest05,
            Purpose::Test05,
            "test05",
            format!("random task order, seed {}; one replicate", p.alternate_seed),
        ),
        (
            Kind::Sustained,
            Purpose::Sustained,
            "sustained",
            format!("first strategy only, at least {} s measured; one replicate", p.sustained_s),
        ),
    ];
    for (kind, purpose, name, change) in extra {
        if p.has(kind) {
            out.push(v(name.into(), purpose, first, change));
        }
    }
    out
}

/// The scenario a variant runs.
pub fn scenario(base: &Scenario, p: &Profile, v: &Variant) -> Result<Scenario, String> {
    let mut sc = base.clone();
    if let Some(soc) = v.soc.as_deref().and_then(|n| p.socs.iter().find(|s| s.name == n)) {
        for (b, opts) in &soc.backend_options {
            let backend = Backend::parse(b).ok_or_else(|| format!("SoC `{}`: unknown backend `{b}`", soc.name))?;
            if !sc.backends.contains(&backend) {
                return Err(format!("SoC `{}`: backend `{b}` is not in the scenario's backends", soc.name));
            }
            sc.backend_options.entry(backend).or_default().extend(opts.clone());
        }
    }
    if v.purpose != Purpose::Base {
        sc.replicates = 1;
    }
    match v.purpose {
        Purpose::Base => {}
        Purpose::Test01 => sc.workload.capture_timed_outputs = true,
        Purpose::Test04 => sc.inputs.truncate(1),
        Purpose::Test05 => {
            sc.workload.order = TaskOrder::Random;
            sc.workload.seed = p.alternate_seed;
        }
        Purpose::Sustained => {
            sc.strategies.truncate(1);
            let ms = (p.sustained_s * 1e3) as u64;
            sc.workload.min_duration_ms = ms;
            sc.workload.max_duration_ms = sc.workload.max_duration_ms.max(2 * ms + 60_000);
        }
    }
    Ok(sc)
}

/// A variant's run plan breaks its rule: what, in words. `base` is the plan of the same
/// strategy in the first base variant.
pub fn check_plan(v: &Variant, p: &Profile, plan: &Plan, base: Option<&Plan>) -> Option<String> {
    let w = &plan.workload;
    let bad = match v.purpose {
        Purpose::Test01 if !w.capture_timed_outputs => "did not keep the outputs of measured requests",
        Purpose::Test04 if plan.inputs.len() != 1 => "has more than one input",
        Purpose::Test04 if base.is_some_and(|b| b.inputs.len() < 2) => "compares with a base run of one input",
        Purpose::Test05 if w.order != TaskOrder::Random || w.seed != p.alternate_seed => {
            "does not use the random order with the alternate seed"
        }
        Purpose::Test05 if base.is_some_and(|b| b.workload.seed == w.seed && b.workload.order == w.order) => {
            "runs the same task order as the base run"
        }
        Purpose::Sustained if (w.min_duration_ms as f64) < p.sustained_s * 1e3 => {
            "measures less than the sustained time"
        }
        _ => return None,
    };
    Some(format!("{}: run {} {bad}", v.name, plan.run_id))
}

/// A variant's results directory, read back.
pub struct Evidence {
    pub variant: Variant,
    pub dir: PathBuf,
    pub results: Results,
}

/// Read every variant's results (with raw samples) from `root`.
pub fn load(root: &Path, vs: &[Variant]) -> Result<Vec<Evidence>, String> {
    vs.iter()
        .map(|v| {
            let dir = root.join(&v.dir);
            let results = Results::load(&dir).map_err(|e| format!("{}: {e}", v.name))?;
            Ok(Evidence { variant: v.clone(), dir, results })
        })
        .collect()
}

/// The runner plan of a run, as stored in its results directory.
pub fn plan_of(dir: &Path, run_id: &str) -> Result<Plan, String> {
    let p = dir.join("runs").join(run_id).join("plan.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a run plan: {e}", p.display()))
}

/// The runner's own result of a run, as stored in its results directory.
pub fn result_of(dir: &Path, run_id: &str) -> Result<quadbench_protocol::RunResult, String> {
    let p = dir.join("runs").join(run_id).join("result.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a run result: {e}", p.display()))
}
