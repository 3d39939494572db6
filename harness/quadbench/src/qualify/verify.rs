//! `verify`: everything a customer can check from a bundle and a public key alone (no device,
//! runtime or network): the envelope's signature, every subject's hash (and no file missing or
//! extra), the run rules of the profile's variants, and each verdict re-derived from the raw
//! evidence with the same code that made it ([`super::criteria::evaluate`]).

use super::bundle::{self, ENVELOPE, FORMAT_VERSION, PREDICATE_TYPE, Statement, VersionProbe};
use super::criteria;
use super::profile::Profile;
use super::sign::Envelope;
use super::variant::{self, Purpose};
use crate::package::manifest::sha256_bytes;
use ed25519_dalek::VerifyingKey;
use std::collections::BTreeMap;
use std::path::Path;

/// The bundle cannot be checked at all (as opposed to a check that fails).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {why}\n  hint: pass the bundle directory `quadbench qualify --out` wrote")]
    Unreadable { path: String, why: String },
    #[error(
        "{path}: bundle format version {found} is newer than this quadbench reads ({FORMAT_VERSION})\n  hint: verify it with the quadbench version that wrote it, or a newer one"
    )]
    Newer { path: String, found: u32 },
}

/// Check the bundle at `root` against `vk`: one line per failed check (empty: all hold).
pub fn verify(root: &Path, vk: &VerifyingKey) -> Result<Vec<String>, VerifyError> {
    let env_path = root.join(ENVELOPE);
    let unreadable = |why: String| VerifyError::Unreadable { path: env_path.display().to_string(), why };
    let text = std::fs::read_to_string(&env_path).map_err(|e| unreadable(format!("cannot read the envelope: {e}")))?;
    let env: Envelope = serde_json::from_str(&text).map_err(|e| unreadable(format!("not a DSSE envelope: {e}")))?;
    let payload = env.payload_bytes().map_err(unreadable)?;
    let probe: VersionProbe = serde_json::from_slice(&payload)
        .map_err(|e| unreadable(format!("the payload is not a quadbench qualification statement: {e}")))?;
    if probe.predicate.format_version > FORMAT_VERSION {
        return Err(VerifyError::Newer { path: env_path.display().to_string(), found: probe.predicate.format_version });
    }
    let st: Statement = serde_json::from_slice(&payload)
        .map_err(|e| unreadable(format!("the payload is not a quadbench qualification statement: {e}")))?;
    let mut fails = Vec::new();
    if let Err(why) = env.verify(vk) {
        fails.push(format!("signature: {why}"));
    }
    if env.payload_type != super::sign::PAYLOAD_TYPE
        || st.type_ != bundle::STATEMENT_TYPE
        || st.predicate_type != PREDICATE_TYPE
    {
        fails.push(format!(
            "statement: payloadType `{}`, _type `{}`, predicateType `{}` are not an in-toto quadbench qualification",
            env.payload_type, st.type_, st.predicate_type
        ));
    }
    subjects(root, &st, &mut fails);
    rederive(root, &st, &mut fails);
    Ok(fails)
}

/// Every file is a subject with its hash, and every subject is a file.
fn subjects(root: &Path, st: &Statement, fails: &mut Vec<String>) {
    let (files, odd) = match bundle::files(root) {
        Ok(x) => x,
        Err(e) => return fails.push(format!("cannot list the bundle: {e}")),
    };
    for o in odd {
        fails.push(format!("{o}: not a regular file (links and special files are not evidence)"));
    }
    let signed: BTreeMap<&str, Option<&String>> =
        st.subject.iter().map(|s| (s.name.as_str(), s.digest.get("sha256"))).collect();
    let present: BTreeMap<&str, &String> =
        files.iter().filter_map(|f| Some((f.name.as_str(), f.digest.get("sha256")?))).collect();
    for (name, digest) in &signed {
        match present.get(name) {
            None => fails.push(format!("{name}: missing (a signed subject is not in the bundle)")),
            Some(h) if Some(*h) != *digest => {
                fails.push(format!("{name}: edited (sha256 {h}, signed {})", digest.map_or("none", String::as_str)))
            }
            Some(_) => {}
        }
    }
    for name in present.keys().filter(|n| !signed.contains_key(*n)) {
        fails.push(format!("{name}: extra (not a signed subject)"));
    }
}

fn read(root: &Path, rel: &str) -> Result<Vec<u8>, String> {
    std::fs::read(root.join(rel)).map_err(|e| format!("{rel}: cannot read: {e}"))
}

/// Profile, variants, run rules and verdicts, recomputed from the files.
fn rederive(root: &Path, st: &Statement, fails: &mut Vec<String>) {
    let p = &st.predicate;
    let profile_bytes = match read(root, bundle::PROFILE) {
        Ok(b) => b,
        Err(e) => return fails.push(e),
    };
    if sha256_bytes(&profile_bytes) != p.profile.sha256 {
        fails.push(format!("{}: its sha256 is not the signed profile hash", bundle::PROFILE));
    }
    let profile = match Profile::parse(&root.join(bundle::PROFILE), &String::from_utf8_lossy(&profile_bytes)) {
        Ok(x) => x,
        Err(e) => return fails.push(format!("profile: {e}")),
    };
    if profile.require_clean_build && p.dirty_tree {
        fails.push("run rules: the profile requires a clean build and quadbench was built from a dirty tree".into());
    }
    let vs = variant::variants(&profile);
    match read(root, bundle::VARIANTS).map(|b| serde_json::from_slice::<Vec<variant::Variant>>(&b)) {
        Ok(Ok(listed)) if listed == vs => {}
        Ok(Ok(_)) => fails.push(format!("{}: not the variants the profile runs", bundle::VARIANTS)),
        Ok(Err(e)) => fails.push(format!("{}: {e}", bundle::VARIANTS)),
        Err(e) => fails.push(e),
    }
    let evidence = match variant::load(root, &vs) {
        Ok(e) => e,
        Err(e) => return fails.push(format!("evidence: {e}")),
    };
    run_rules(root, &profile, &evidence, fails);
    let derived = criteria::evaluate(&profile, &evidence, root);
    compare_verdicts(&derived, &p.verdicts, fails);
    match read(root, bundle::VERDICTS).map(|b| serde_json::from_slice::<Vec<criteria::CriterionVerdict>>(&b)) {
        Ok(Ok(v)) if v == p.verdicts => {}
        Ok(_) => fails.push(format!("{}: not the signed verdicts", bundle::VERDICTS)),
        Err(e) => fails.push(e),
    }
    if bundle::qualified(&derived) != p.qualified {
        fails.push(format!("qualified: signed {}, re-derived {}", p.qualified, bundle::qualified(&derived)));
    }
}

fn compare_verdicts(
    derived: &[criteria::CriterionVerdict],
    signed: &[criteria::CriterionVerdict],
    fails: &mut Vec<String>,
) {
    for d in derived {
        match signed.iter().find(|s| s.id == d.id) {
            None => fails.push(format!("criterion {}: no signed verdict", d.id)),
            Some(s) if s.verdict != d.verdict => fails.push(format!(
                "criterion {}: signed verdict {}, re-derived from the evidence {}",
                d.id,
                s.verdict.as_str(),
                d.verdict.as_str()
            )),
            // Same verdict, other figures or files: the evidence is not what was signed.
            Some(s) if s != d => fails.push(format!(
                "criterion {}: signed value {:?}, re-derived {:?} (details or evidence differ)",
                d.id, s.value, d.value
            )),
            Some(_) => {}
        }
    }
    for s in signed.iter().filter(|s| !derived.iter().any(|d| d.id == s.id)) {
        fails.push(format!("criterion {}: signed but not in the profile", s.id));
    }
}

/// Each results directory is complete, ran the bundled scenario, and each run's plan obeys its
/// variant's rule.
fn run_rules(root: &Path, profile: &Profile, evidence: &[variant::Evidence], fails: &mut Vec<String>) {
    let scenario_sha = read(root, bundle::SCENARIO).map(|b| sha256_bytes(&b));
    let base = evidence.iter().find(|e| e.variant.purpose == Purpose::Base);
    for ev in evidence {
        let r = &ev.results;
        if !r.complete {
            fails.push(format!("run rules: {} is incomplete", ev.variant.name));
        }
        if scenario_sha.as_ref().is_ok_and(|s| *s != r.scenario.sha256) {
            fails.push(format!("run rules: {} did not run the bundled {}", ev.variant.name, bundle::SCENARIO));
        }
        for run in &r.runs {
            let plan = match variant::plan_of(&ev.dir, &run.id) {
                Ok(p) => p,
                Err(e) => {
                    fails.push(format!("run rules: {e}"));
                    continue;
                }
            };
            let base_plan = base
                .and_then(|b| b.results.runs.iter().find(|x| x.strategy == run.strategy))
                .and_then(|x| variant::plan_of(&base?.dir, &x.id).ok());
            if let Some(why) = variant::check_plan(&ev.variant, profile, &plan, base_plan.as_ref()) {
                fails.push(format!("run rules: {why}"));
            }
        }
    }
}
