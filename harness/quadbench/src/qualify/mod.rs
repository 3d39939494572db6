//! Vendor qualification over results directories: a profile of criteria
//! ([`profile`]), the scenario variants it runs ([`variant`]), verdicts derived from the
//! evidence alone ([`criteria`], [`compliance`]), the bundle with its signed in-toto statement
//! ([`bundle`], [`sign`]), its human report ([`report`]) and the verifier ([`verify`]). Running
//! the variants is `cmd/qualify.rs` (through the scheduler, like `run`); everything here reads
//! and writes files only.

pub mod bundle;
pub mod compliance;
pub mod criteria;
pub mod profile;
pub mod report;
pub mod sign;
pub mod variant;
pub mod verify;

use bundle::{ENVELOPE, FORMAT_VERSION, PREDICATE_TYPE, Predicate, STATEMENT_TYPE, Statement};
use ed25519_dalek::SigningKey;
use profile::Profile;
use std::path::Path;

/// Writing the bundle's verdicts, report or statement failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write {path}: {source}\n  hint: check the disk and that the bundle folder is writable")]
    Write { path: String, source: std::io::Error },
    #[error(
        "cannot read the evidence back: {0}\n  hint: a run's results directory is incomplete; run qualify again into a new --out"
    )]
    Evidence(String),
}

fn write(root: &Path, rel: &str, bytes: &[u8]) -> Result<(), BundleError> {
    let p = root.join(rel);
    std::fs::write(&p, bytes).map_err(|e| BundleError::Write { path: p.display().to_string(), source: e })
}

/// After every variant ran into `root`: derive the verdicts from the files, write
/// `verdicts.json`, the reports and the signed statement. Returns the predicate.
pub fn finish(root: &Path, p: &Profile, profile_text: &[u8], sk: &SigningKey) -> Result<Predicate, BundleError> {
    let evidence = variant::load(root, &variant::variants(p)).map_err(BundleError::Evidence)?;
    let verdicts = criteria::evaluate(p, &evidence, root);
    write(root, bundle::VERDICTS, pretty(&verdicts).as_bytes())?;
    let (revision, dirty) = bundle::revision();
    let predicate = Predicate {
        format_version: FORMAT_VERSION,
        profile: bundle::profile_ref(&p.name, profile_text),
        qualified: bundle::qualified(&verdicts),
        verdicts,
        toolchain: bundle::toolchain(&evidence),
        quadbench_revision: revision,
        dirty_tree: dirty,
        created_at: crate::time::now_rfc3339(),
    };
    write(root, "report.md", report::markdown(&predicate, &p.description, &evidence).as_bytes())?;
    write(root, "report.html", report::html(&predicate, &p.description, &evidence).as_bytes())?;
    let (subject, _) =
        bundle::files(root).map_err(|e| BundleError::Write { path: root.display().to_string(), source: e })?;
    let st = Statement {
        type_: STATEMENT_TYPE.into(),
        subject,
        predicate_type: PREDICATE_TYPE.into(),
        predicate: predicate.clone(),
    };
    let payload = serde_json::to_vec(&st).expect("a statement serializes");
    let env = sign::envelope(sk, &payload);
    write(root, ENVELOPE, pretty(&env).as_bytes())?;
    Ok(predicate)
}

/// Pretty JSON with a final newline.
fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("plain data serializes") + "\n"
}
