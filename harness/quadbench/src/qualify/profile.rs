//! Qualification profiles (`scenarios/qualification/*.yaml`, schema `quadbench.qualification/1`):
//! the scenario to run, the SoCs to compile for, and the criteria with their thresholds.
//! [`RawProfile`] mirrors the file; [`Profile::parse`] validates it into typed values (unknown
//! kinds and metrics get the nearest valid name, every error names file, line and fix). The
//! profile alone (without its scenario) is enough for `verify`: it never runs anything.

use crate::metric::{CiRule, Metric};
use crate::quality::QualityMetric;
use crate::yaml::{self, YamlError};
use quadbench_protocol::Strategy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const PROFILE_SCHEMA: &str = "quadbench.qualification/1";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The scenario file, relative to the profile.
    pub scenario: String,
    /// Refuse to count a bundle from a build with uncommitted changes (`verify` fails it).
    #[serde(default)]
    pub require_clean_build: bool,
    /// One base run of the scenario per SoC: backend options merged into the scenario's.
    #[serde(default)]
    pub socs: Vec<RawSoc>,
    #[serde(default)]
    pub compliance: RawCompliance,
    pub criteria: Vec<RawCriterion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoc {
    pub name: String,
    /// Backend name -> options (e.g. `qnn-htp: {soc_model: SM8650}`).
    pub backend_options: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompliance {
    /// TEST05: the workload seed of the alternate run (its order is `random`).
    #[serde(default)]
    pub alternate_seed: Option<u64>,
    /// Sustained run: measured seconds.
    #[serde(default)]
    pub sustained_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCriterion {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub baseline: Option<String>,
    #[serde(default)]
    pub candidate: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// What a criterion checks; one row each in [`KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A claim's ratio baseline / candidate: the lower 95% CI bound >= threshold.
    ClaimRatio,
    /// Every compiled graph: at most `threshold` nodes outside the accelerator's partitions
    /// besides the boundary Quantize/Dequantize of float inputs and outputs.
    FullOffload,
    /// Every task and input against its golden: the quality metric at its floor (ceiling for
    /// lower-is-better metrics).
    QualityFloor,
    /// Every run finished, met its minimum samples and duration, and was not throttled.
    RunValidity,
    /// Between replicates: coefficient of variation of the runs' medians <= threshold.
    ReplicateCv,
    /// TEST01: outputs captured while timed equal the accuracy pass's (max pixel difference).
    ComplianceTest01,
    /// TEST04: distinct inputs and tasks give distinct outputs, and one repeated input is not
    /// faster than rotating inputs by more than `threshold`.
    ComplianceTest04,
    /// TEST05: an alternate seed and task order give medians within `threshold` (fraction).
    ComplianceTest05,
    /// A long run: the last quarter's median latency at most `threshold` slower than the first's.
    Sustained,
    /// Compile matrix: every binary of a SoC's runs records the SoC its profile entry asked for
    /// (`soc_model`); an unrecognised name silently compiles for a default target.
    SocTarget,
}

/// A criterion kind: its name and the keys it needs.
pub struct KindInfo {
    pub kind: Kind,
    pub name: &'static str,
    /// What `metric:` names: `run` (a run metric), `latency` (a run metric with raw samples),
    /// `quality` (an image metric), or none.
    pub metric: Option<&'static str>,
    pub needs_threshold: bool,
    pub default_threshold: Option<f64>,
}

pub const KINDS: &[KindInfo] = &[
    k(Kind::ClaimRatio, "claim-ratio", Some("run"), true, None),
    k(Kind::FullOffload, "full-offload", None, false, Some(0.0)),
    k(Kind::QualityFloor, "quality-floor", Some("quality"), true, None),
    k(Kind::RunValidity, "run-validity", None, false, Some(0.0)),
    k(Kind::ReplicateCv, "replicate-cv", Some("latency"), true, None),
    k(Kind::ComplianceTest01, "compliance-test01", None, false, Some(0.0)),
    k(Kind::ComplianceTest04, "compliance-test04", None, false, Some(0.10)),
    k(Kind::ComplianceTest05, "compliance-test05", Some("latency"), true, None),
    k(Kind::Sustained, "sustained", None, true, None),
    k(Kind::SocTarget, "soc-target", None, false, Some(0.0)),
];

const fn k(
    kind: Kind,
    name: &'static str,
    metric: Option<&'static str>,
    needs_threshold: bool,
    default_threshold: Option<f64>,
) -> KindInfo {
    KindInfo { kind, name, metric, needs_threshold, default_threshold }
}

impl Kind {
    pub fn info(self) -> &'static KindInfo {
        KINDS.iter().find(|i| i.kind == self).expect("every kind has a row")
    }
    pub fn name(self) -> &'static str {
        self.info().name
    }
}

/// A validated criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub id: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Strategy>,
    pub threshold: f64,
    pub required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One SoC of the compile matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Soc {
    pub name: String,
    pub backend_options: BTreeMap<String, BTreeMap<String, String>>,
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The scenario file, relative to the profile's folder.
    pub scenario: String,
    pub require_clean_build: bool,
    pub socs: Vec<Soc>,
    pub alternate_seed: u64,
    pub sustained_s: f64,
    pub criteria: Vec<Criterion>,
}

impl Profile {
    /// Read and validate a profile file.
    pub fn load(path: &Path) -> Result<(Profile, String), YamlError> {
        let (raw, text) = yaml::load::<RawProfile>(path)?;
        Ok((validate(path, raw, &text)?, text))
    }

    /// Validate `text` as the profile at `path` (a bundle's copy).
    pub fn parse(path: &Path, text: &str) -> Result<Profile, YamlError> {
        let raw = yaml::parse::<RawProfile>(path, text)?;
        validate(path, raw, text)
    }

    /// Whether a criterion of `kind` is in the profile (its variant then runs).
    pub fn has(&self, kind: Kind) -> bool {
        self.criteria.iter().any(|c| c.kind == kind)
    }
}

fn validate(path: &Path, raw: RawProfile, text: &str) -> Result<Profile, YamlError> {
    let err = |needle: &str, msg: String, fix: &str| YamlError::at(path, text, needle, msg, fix);
    if raw.schema != PROFILE_SCHEMA {
        return Err(err(
            "schema:",
            format!("schema `{}` is not supported", raw.schema),
            &format!("use `schema: {PROFILE_SCHEMA}`"),
        ));
    }
    if !crate::safe_name(&raw.name) {
        return Err(err(
            "name:",
            format!("name `{}` must be a safe name", raw.name.escape_debug()),
            crate::SAFE_NAME_CHARS,
        ));
    }
    if raw.criteria.is_empty() {
        return Err(err(
            "criteria:",
            "no criteria listed".into(),
            "list at least one, e.g. `{id: valid, kind: run-validity}`",
        ));
    }
    let mut socs: Vec<Soc> = Vec::new();
    for s in &raw.socs {
        if !crate::safe_name(&s.name) || socs.iter().any(|o| o.name == s.name) {
            return Err(err(
                &s.name,
                format!("SoC name `{}` must be a unique safe name", s.name),
                crate::SAFE_NAME_CHARS,
            ));
        }
        socs.push(Soc { name: s.name.clone(), backend_options: s.backend_options.clone() });
    }
    let mut criteria: Vec<Criterion> = Vec::new();
    for c in &raw.criteria {
        let crit = criterion(c, &err)?;
        if criteria.iter().any(|o| o.id == crit.id) {
            return Err(err(
                &format!("id: {}", c.id),
                format!("criterion `{}` is defined twice", c.id),
                "give criteria unique ids",
            ));
        }
        criteria.push(crit);
    }
    let sustained_s = raw.compliance.sustained_s.unwrap_or(10.0);
    if !(sustained_s.is_finite() && (1.0..=86_400.0).contains(&sustained_s)) {
        return Err(err(
            "sustained_s:",
            format!("sustained_s {sustained_s} is outside 1..=86400"),
            "e.g. `sustained_s: 60`",
        ));
    }
    Ok(Profile {
        name: raw.name,
        description: raw.description,
        scenario: raw.scenario,
        require_clean_build: raw.require_clean_build,
        socs,
        alternate_seed: raw.compliance.alternate_seed.unwrap_or(2),
        sustained_s,
        criteria,
    })
}

fn criterion(c: &RawCriterion, err: &dyn Fn(&str, String, &str) -> YamlError) -> Result<Criterion, YamlError> {
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    let info = KINDS.iter().find(|k| k.name == c.kind).ok_or_else(|| {
        let fix = yaml::nearest(&c.kind, names.iter().copied())
            .map(|n| format!("did you mean `{n}`?"))
            .unwrap_or_else(|| format!("known: {}", names.join(", ")));
        err(&c.kind, format!("criterion `{}`: unknown kind `{}`", c.id, c.kind), &fix)
    })?;
    if !crate::safe_name(&c.id) {
        return Err(err(
            &c.id,
            format!("criterion id `{}` must be a safe name", c.id.escape_debug()),
            crate::SAFE_NAME_CHARS,
        ));
    }
    let metric = match (info.metric, &c.metric) {
        (None, Some(m)) => {
            return Err(err(m, format!("criterion `{}` ({}) takes no metric", c.id, info.name), "remove `metric:`"));
        }
        (None, None) => None,
        (Some(_), None) if info.kind == Kind::ComplianceTest05 => Some("latency_ms.e2e".to_string()),
        (Some(what), None) => {
            return Err(err(
                &format!("id: {}", c.id),
                format!("criterion `{}` ({}) needs a metric", c.id, info.name),
                &metric_fix(what),
            ));
        }
        (Some(what), Some(m)) => Some(metric(what, m, &c.id, err)?),
    };
    let strategy = |key: &str, v: &Option<String>| -> Result<Option<Strategy>, YamlError> {
        let Some(v) = v else { return Ok(None) };
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        Strategy::parse(v).map(Some).ok_or_else(|| {
            let fix =
                yaml::nearest(v, names.iter().copied()).map(|n| format!("did you mean `{n}`?")).unwrap_or_default();
            err(&format!("{key}: {v}"), format!("criterion `{}`: unknown strategy `{v}`", c.id), &fix)
        })
    };
    let (baseline, candidate) = (strategy("baseline", &c.baseline)?, strategy("candidate", &c.candidate)?);
    if (info.kind == Kind::ClaimRatio) != (baseline.is_some() && candidate.is_some())
        || (info.kind != Kind::ClaimRatio && (baseline.is_some() || candidate.is_some()))
    {
        return Err(err(
            &format!("id: {}", c.id),
            format!(
                "criterion `{}`: `baseline` and `candidate` belong to claim-ratio criteria, and those need both",
                c.id
            ),
            "e.g. `{kind: claim-ratio, metric: storage.total_bytes, baseline: separate-reload, candidate: unified, threshold: 6}`",
        ));
    }
    let threshold = match (c.threshold, info.default_threshold) {
        (Some(t), _) => t,
        (None, Some(d)) if !info.needs_threshold => d,
        _ => {
            return Err(err(
                &format!("id: {}", c.id),
                format!("criterion `{}` ({}) needs a threshold", c.id, info.name),
                "add `threshold: <number>`",
            ));
        }
    };
    if !threshold.is_finite() || threshold < 0.0 {
        return Err(err(
            &format!("id: {}", c.id),
            format!("criterion `{}`: threshold {threshold} must be a finite number >= 0", c.id),
            "e.g. `threshold: 0.1`",
        ));
    }
    Ok(Criterion {
        id: c.id.clone(),
        kind: info.kind,
        metric,
        baseline,
        candidate,
        threshold,
        required: c.required,
        description: c.description.clone(),
    })
}

fn metric_fix(what: &str) -> String {
    match what {
        "quality" => format!("add `metric:` with one of {}", QualityMetric::keys().join(", ")),
        _ => "add `metric:`, e.g. `latency_ms.e2e` or `storage.total_bytes`".into(),
    }
}

/// `m` as the kind of metric `what` the criterion needs, or the nearest valid name.
fn metric(what: &str, m: &str, id: &str, err: &dyn Fn(&str, String, &str) -> YamlError) -> Result<String, YamlError> {
    let known: Vec<&str> = match what {
        "quality" => QualityMetric::keys(),
        "latency" => Metric::keys()
            .into_iter()
            .filter(|k| Metric::parse(k).is_some_and(|m| matches!(m.info().ci, CiRule::Bootstrap { .. })))
            .collect(),
        _ => Metric::keys(),
    };
    if known.contains(&m) {
        return Ok(m.to_string());
    }
    let fix = yaml::nearest(m, known.iter().copied())
        .map(|n| format!("did you mean `{n}`?"))
        .unwrap_or_else(|| format!("known: {}", known.join(", ")));
    Err(err(m, format!("criterion `{id}`: unknown {what} metric `{m}`"), &fix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(criteria: &str) -> Result<Profile, YamlError> {
        let text = format!("schema: {PROFILE_SCHEMA}\nname: p\nscenario: s.yaml\ncriteria:\n{criteria}");
        Profile::parse(Path::new("p.yaml"), &text)
    }

    #[test]
    fn unknown_kinds_and_metrics_name_the_nearest_and_the_line() {
        let e = parse("  - {id: a, kind: claim-ratio, metric: storage.total_byte, baseline: separate-reload, candidate: unified, threshold: 6}\n").unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.to_string().contains("did you mean `storage.total_bytes`?"), "{e}");
        let e = parse("  - {id: a, kind: full-ofload}\n").unwrap_err();
        assert!(e.to_string().contains("did you mean `full-offload`?"), "{e}");
        let e = parse("  - {id: a, kind: quality-floor, metric: psnr, threshold: 30}\n").unwrap_err();
        assert!(e.to_string().contains("did you mean `psnr_db`?"), "{e}");
    }

    #[test]
    fn defaults_and_required_keys() {
        let p = parse(
            "  - {id: a, kind: full-offload}\n  - {id: b, kind: compliance-test05, threshold: 0.2, required: false}\n",
        )
        .unwrap();
        assert_eq!(p.criteria[0].threshold, 0.0);
        assert!(p.criteria[0].required);
        assert_eq!(p.criteria[1].metric.as_deref(), Some("latency_ms.e2e"));
        assert!(!p.criteria[1].required);
        assert!(parse("  - {id: a, kind: sustained}\n").unwrap_err().to_string().contains("needs a threshold"));
        assert!(parse("  - {id: a, kind: claim-ratio, metric: latency_ms.e2e, threshold: 2}\n").is_err());
        assert!(parse("  - {id: a, kind: run-validity}\n  - {id: a, kind: run-validity}\n").is_err());
        // storage has no raw samples: not a latency metric.
        let e = parse("  - {id: a, kind: replicate-cv, metric: storage.total_bytes, threshold: 0.1}\n").unwrap_err();
        assert!(e.to_string().contains("unknown latency metric"), "{e}");
    }
}
