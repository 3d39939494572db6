//! The bundle directory and its signed statement: every file but the envelope is an in-toto
//! Statement v1 subject (name relative to the bundle, sha256); the predicate carries the profile
//! hash, the verdicts, toolchain versions, the quadbench revision and whether its tree was dirty.
//!
//! ```text
//! BUNDLE/profile.yaml  scenario.yaml  variants.json  verdicts.json  report.md  report.html
//!        results/<variant>/...        goldens/<package>/<task>__<input>.png
//!        attestation.dsse.json        (DSSE envelope of the statement; not a subject)
//! ```

use super::criteria::CriterionVerdict;
use super::variant::Evidence;
use crate::package::manifest::sha256_bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The bundle layout and predicate version this quadbench writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://example.invalid/quadbench/qualification/v1";
pub const ENVELOPE: &str = "attestation.dsse.json";
pub const PROFILE: &str = "profile.yaml";
pub const SCENARIO: &str = "scenario.yaml";
pub const VARIANTS: &str = "variants.json";
pub const VERDICTS: &str = "verdicts.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Predicate {
    pub format_version: u32,
    pub profile: ProfileRef,
    /// Every required criterion passed.
    pub qualified: bool,
    pub verdicts: Vec<CriterionVerdict>,
    pub toolchain: BTreeMap<String, String>,
    /// Git revision quadbench was built from (without the `-dirty` mark).
    pub quadbench_revision: String,
    /// The build had uncommitted changes.
    pub dirty_tree: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileRef {
    pub name: String,
    pub path: String,
    pub sha256: String,
}

/// Only the version, read before anything else: a newer bundle may differ in everything else.
#[derive(Deserialize)]
pub struct VersionProbe {
    pub predicate: VersionOnly,
}

#[derive(Deserialize)]
pub struct VersionOnly {
    pub format_version: u32,
}

/// Every file under `root` except the envelope, sorted: (relative name, sha256). Anything that
/// is not a regular file or directory (a link, a FIFO) is returned in the second list.
pub fn files(root: &Path) -> std::io::Result<(Vec<Subject>, Vec<String>)> {
    let mut out = Vec::new();
    let mut odd = Vec::new();
    walk(root, root, &mut out, &mut odd)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    odd.sort();
    Ok((out, odd))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Subject>, odd: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
        let t = e.file_type()?;
        if t.is_dir() {
            walk(root, &p, out, odd)?;
        } else if t.is_file() {
            if rel != ENVELOPE {
                let digest = sha256_bytes(&std::fs::read(&p)?);
                out.push(Subject { name: rel, digest: BTreeMap::from([("sha256".to_string(), digest)]) });
            }
        } else {
            odd.push(rel);
        }
    }
    Ok(())
}

/// Build revision and dirty flag, from what build.rs recorded.
pub fn revision() -> (String, bool) {
    let r = option_env!("QUADBENCH_GIT_REVISION").unwrap_or("unknown");
    match r.strip_suffix("-dirty") {
        Some(clean) => (clean.to_string(), true),
        None => (r.to_string(), false),
    }
}

/// Versions of what built and ran the evidence: quadbench, rustc, and each runtime the runs
/// recorded (ONNX Runtime, execution providers, runner).
pub fn toolchain(evidence: &[Evidence]) -> BTreeMap<String, String> {
    let mut t = BTreeMap::from([
        ("quadbench".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("rustc".to_string(), option_env!("QUADBENCH_RUSTC_VERSION").unwrap_or("unknown").to_string()),
    ]);
    let mut set = |k: &str, v: String| {
        let e = t.entry(k.to_string()).or_default();
        if !e.split(", ").any(|x| x == v) {
            if !e.is_empty() {
                e.push_str(", ");
            }
            e.push_str(&v);
        }
    };
    for ev in evidence {
        for r in &ev.results.runs {
            let env = &r.environment.runner;
            if let Some(v) = &env.ort_version {
                set("onnxruntime", v.clone());
            }
            if !env.runner_version.is_empty() {
                set("quadbench-runner", env.runner_version.clone());
            }
            for ep in &env.execution_providers {
                set("execution_providers", ep.clone());
            }
        }
    }
    t
}

/// The profile's reference in the predicate.
pub fn profile_ref(name: &str, text: &[u8]) -> ProfileRef {
    ProfileRef { name: name.into(), path: PROFILE.into(), sha256: sha256_bytes(text) }
}

/// Every required criterion passed.
pub fn qualified(v: &[CriterionVerdict]) -> bool {
    v.iter().all(|c| !c.required || c.verdict == crate::results::Verdict::Pass)
}
