//! Golden images: `golden/<package name>/<task>__<input>.png`, golden tensors (the package's
//! `tensor_outputs`): `golden/<package name>/<task>__<input>__<stage>.<output>.npy`, plus
//! `manifest.json` with each file's sha256 and the configuration that produced it. `bless` makes them from the reference
//! configuration (FP32, CPU EP, separate per-task baseline) and never overwrites silently;
//! `verify` checks the files against the manifest.

use crate::package::manifest::sha256_file;
use quadbench_metrics::{CompareOptions, Metric};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const GOLDEN_SCHEMA: &str = "quadbench.golden/1";
pub const MANIFEST: &str = "manifest.json";

/// The configuration goldens are made with.
pub const REFERENCE_BACKEND: quadbench_protocol::Backend = quadbench_protocol::Backend::Cpu;
pub const REFERENCE_PRECISION: &str = "fp32";
pub const REFERENCE_STRATEGY: quadbench_protocol::Strategy = quadbench_protocol::Strategy::SeparateResident;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoldenFile {
    pub task: String,
    pub input: String,
    pub path: String,
    pub sha256: String,
}

/// A golden tensor: one tensor output (`stage.output`) of a task on an input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoldenTensor {
    pub task: String,
    pub input: String,
    pub output: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoldenManifest {
    pub schema: String,
    pub package: String,
    pub package_sha256: String,
    pub backend: String,
    pub precision: String,
    pub strategy: String,
    pub ort_version: String,
    pub files: Vec<GoldenFile>,
    /// Golden tensors (absent when the package declares no tensor outputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensors: Vec<GoldenTensor>,
}

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}")]
    Verify(String),
}

fn io(p: &Path, e: impl std::fmt::Display) -> GoldenError {
    GoldenError::Io { path: p.display().to_string(), message: e.to_string() }
}

/// Directory of one package's goldens.
pub fn package_dir(golden_root: &Path, package_name: &str) -> PathBuf {
    golden_root.join(package_name)
}

pub fn file_name(task: &str, input: &str) -> String {
    format!("{task}__{input}.png")
}

pub fn load_manifest(dir: &Path) -> Result<Option<GoldenManifest>, GoldenError> {
    let p = dir.join(MANIFEST);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| io(&p, format!("not a golden manifest ({e}); restore it from git or re-bless with --force")))
}

/// One difference between a new output and the existing golden.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub task: String,
    pub input: String,
    /// `new`, `changed` or `unchanged`.
    pub kind: &'static str,
    pub psnr_db: Option<f64>,
    pub ssim: Option<f64>,
}

/// Compare freshly produced outputs (`task, input, png path`) with the goldens in `dir`.
pub fn diff(dir: &Path, produced: &[(String, String, PathBuf)]) -> Result<Vec<Change>, GoldenError> {
    let old = load_manifest(dir)?;
    let mut out = Vec::new();
    for (task, input, path) in produced {
        let name = file_name(task, input);
        let existing = dir.join(&name);
        let new_sha = sha256_file(path).map_err(|e| io(path, e))?;
        let listed = old.as_ref().is_some_and(|m| m.files.iter().any(|f| f.path == name));
        // Compare with the file as it is on disk (the manifest may be stale or the file edited).
        let on_disk = existing.exists().then(|| sha256_file(&existing)).transpose().map_err(|e| io(&existing, e))?;
        let change = match on_disk {
            Some(h) if h == new_sha && listed => {
                Change { task: task.clone(), input: input.clone(), kind: "unchanged", psnr_db: None, ssim: None }
            }
            Some(_) => {
                let opts = CompareOptions { metrics: vec![Metric::Psnr, Metric::Ssim], ..Default::default() };
                let c = quadbench_metrics::compare(&existing, path, &opts).map_err(|e| io(path, e))?;
                Change { task: task.clone(), input: input.clone(), kind: "changed", psnr_db: c.psnr_db, ssim: c.ssim }
            }
            None => Change { task: task.clone(), input: input.clone(), kind: "new", psnr_db: None, ssim: None },
        };
        out.push(change);
    }
    Ok(out)
}

/// A tensor output to bless: task, input, output (`stage.output`) and the file the run wrote.
#[derive(Debug, Clone)]
pub struct ProducedTensor {
    pub task: String,
    pub input: String,
    pub output: String,
    pub path: PathBuf,
}

/// The file name of a golden tensor.
pub fn tensor_file_name(task: &str, input: &str, output: &str) -> String {
    quadbench_protocol::OutputTensor::file_name(task, input, output)
}

/// One difference between a new tensor output and the existing golden tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorChange {
    pub file: String,
    /// `new`, `changed` or `unchanged`.
    pub kind: &'static str,
    /// New against old, when it changed and both are readable tensors of one shape.
    pub max_abs_error: Option<f64>,
    pub rmse: Option<f64>,
}

/// Compare freshly produced tensor outputs with the golden tensors in `dir`.
pub fn diff_tensors(dir: &Path, produced: &[ProducedTensor]) -> Result<Vec<TensorChange>, GoldenError> {
    let old = load_manifest(dir)?;
    let mut out = Vec::new();
    for p in produced {
        let file = tensor_file_name(&p.task, &p.input, &p.output);
        let existing = dir.join(&file);
        let new_sha = sha256_file(&p.path).map_err(|e| io(&p.path, e))?;
        let listed = old.as_ref().is_some_and(|m| m.tensors.iter().any(|f| f.path == file));
        let on_disk = existing.exists().then(|| sha256_file(&existing)).transpose().map_err(|e| io(&existing, e))?;
        let (kind, scores) = match on_disk {
            Some(h) if h == new_sha && listed => ("unchanged", None),
            // The data range does not matter for these two; 1 keeps `compare` from refusing.
            Some(_) => ("changed", super::tensor::score_files(&existing, &p.path, Some([0.0, 1.0])).ok()),
            None => ("new", None),
        };
        out.push(TensorChange {
            file,
            kind,
            max_abs_error: scores.as_ref().map(|s| s.max_abs_error),
            rmse: scores.map(|s| s.rmse),
        });
    }
    Ok(out)
}

/// Write goldens (images and tensors) and their manifest (the caller has already decided it may).
pub fn write(
    dir: &Path,
    manifest_base: GoldenManifest,
    produced: &[(String, String, PathBuf)],
    tensors: &[ProducedTensor],
) -> Result<GoldenManifest, GoldenError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut m = manifest_base;
    m.files.clear();
    m.tensors.clear();
    for p in tensors {
        let name = tensor_file_name(&p.task, &p.input, &p.output);
        let dst = dir.join(&name);
        std::fs::copy(&p.path, &dst).map_err(|e| io(&dst, e))?;
        m.tensors.push(GoldenTensor {
            task: p.task.clone(),
            input: p.input.clone(),
            output: p.output.clone(),
            sha256: sha256_file(&dst).map_err(|e| io(&dst, e))?,
            path: name,
        });
    }
    m.tensors.sort_by(|a, b| a.path.cmp(&b.path));
    for (task, input, path) in produced {
        let name = file_name(task, input);
        let dst = dir.join(&name);
        std::fs::copy(path, &dst).map_err(|e| io(&dst, e))?;
        m.files.push(GoldenFile {
            task: task.clone(),
            input: input.clone(),
            sha256: sha256_file(&dst).map_err(|e| io(&dst, e))?,
            path: name,
        });
    }
    m.files.sort_by(|a, b| a.path.cmp(&b.path));
    let text = serde_json::to_string_pretty(&m).map_err(|e| io(dir, e))? + "\n";
    std::fs::write(dir.join(MANIFEST), text).map_err(|e| io(&dir.join(MANIFEST), e))?;
    Ok(m)
}

/// Check every package directory under `golden_root` against its manifest. Returns the number of
/// files verified, or an error listing every problem.
pub fn verify(golden_root: &Path) -> Result<usize, GoldenError> {
    let mut problems = Vec::new();
    let mut ok = 0;
    let rd = std::fs::read_dir(golden_root).map_err(|e| io(golden_root, e))?;
    let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.join(MANIFEST).exists()).collect();
    dirs.sort();
    for d in dirs {
        let Some(m) = load_manifest(&d)? else { continue };
        let mut listed = std::collections::HashSet::new();
        let files = m.files.iter().map(|f| (&f.path, &f.sha256));
        for (path, sha256) in files.chain(m.tensors.iter().map(|t| (&t.path, &t.sha256))) {
            listed.insert(path.clone());
            let p = d.join(path);
            match sha256_file(&p) {
                Err(_) => problems.push(format!("{}: listed in {MANIFEST} but missing", p.display())),
                Ok(h) if &h != sha256 => problems.push(format!("{}: sha256 {h} does not match {MANIFEST} ({sha256}); restore it from git, or re-bless with `quadbench golden bless --force`", p.display())),
                Ok(_) => ok += 1,
            }
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if (n.ends_with(".png") || n.ends_with(".npy")) && !listed.contains(&n) {
                    problems.push(format!("{}: not listed in {MANIFEST}", e.path().display()));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(ok)
    } else {
        Err(GoldenError::Verify(format!(
            "golden verification failed ({} problems):\n{}",
            problems.len(),
            problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
        )))
    }
}

/// Index of goldens for one package: (task, input) -> path.
pub fn index(golden_root: &Path, package_name: &str) -> BTreeMap<(String, String), PathBuf> {
    let dir = package_dir(golden_root, package_name);
    load_manifest(&dir)
        .ok()
        .flatten()
        .map(|m| m.files.into_iter().map(|f| ((f.task, f.input), dir.join(f.path))).collect())
        .unwrap_or_default()
}

/// Index of golden tensors for one package: (task, input, output) -> path.
pub fn tensor_index(golden_root: &Path, package_name: &str) -> BTreeMap<(String, String, String), PathBuf> {
    let dir = package_dir(golden_root, package_name);
    load_manifest(&dir)
        .ok()
        .flatten()
        .map(|m| m.tensors.into_iter().map(|t| ((t.task, t.input, t.output), dir.join(t.path))).collect())
        .unwrap_or_default()
}
