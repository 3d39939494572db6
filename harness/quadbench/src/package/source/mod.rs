//! Where a scenario's package comes from. Each source is one file registered in [`SOURCES`] under
//! the key it owns in a scenario's `package:` section (`path:`, `reference:`, ...); exactly one
//! source key is given, and `quantize:` may be added to any source to run a QDQ variant of it
//! ([`quantized`]). Adding a source (e.g. the importer) is one file, one entry in [`SOURCES`]
//! and one test.

pub mod dir;
pub mod import;
pub mod quantized;
pub mod reference;

use super::qprofile::Quantize;
use super::{Manifest, PackageError};
use crate::events::Reporter;
use crate::yaml::KeyError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A package source, validated from its scenario section.
pub trait PackageSource: std::fmt::Debug + Send + Sync {
    /// The package directory, made (and cached under `cache`) when needed.
    fn resolve(&self, cache: &Path, rep: &mut dyn Reporter) -> Result<PathBuf, PackageError>;
    /// One line for people: what this source is.
    fn describe(&self) -> String;
    /// The generator parameters when this is the generated reference package (what a sweep's
    /// package axes vary); `None` for a package made elsewhere.
    fn reference(&self) -> Option<&super::reference::ReferenceParams> {
        None
    }
}

/// Validates a source's scenario section into the source.
pub type ParseSource = fn(value: serde_json::Value, base: &Path) -> Result<Arc<dyn PackageSource>, KeyError>;

/// One registered source.
pub struct SourceKind {
    /// Its key under `package:`.
    pub key: &'static str,
    /// An example value for error messages.
    pub example: &'static str,
    /// Validate the key's value; relative paths resolve against `base` (the scenario's folder).
    pub parse: ParseSource,
}

/// Every package source.
pub const SOURCES: &[SourceKind] = &[dir::KIND, reference::KIND, import::KIND];

/// The package a scenario runs: a source, optionally quantized.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    pub source: Arc<dyn PackageSource>,
    pub quantize: Option<Quantize>,
}

/// A resolved package: the FP32 one (whose goldens score every output) and the one that runs.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub fp32_dir: PathBuf,
    pub fp32: Manifest,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl PackageSpec {
    /// Make (or find in `cache`) and check the package; a quantized variant is calibrated on
    /// `calibration` (name, image path).
    pub fn resolve(
        &self,
        cache: &Path,
        calibration: &[(String, PathBuf)],
        rep: &mut dyn Reporter,
    ) -> Result<Resolved, PackageError> {
        let fp32_dir = self.source.resolve(cache, rep)?;
        rep.event(&crate::events::Event::Step { message: format!("checking package {}", fp32_dir.display()) });
        let fp32 = super::check(&fp32_dir)?;
        let (dir, manifest) = match &self.quantize {
            None => (fp32_dir.clone(), fp32.clone()),
            Some(q) => {
                let dir = quantized::resolve(&fp32_dir, &fp32, q, calibration, cache, rep)?;
                let m = super::check(&dir)?;
                (dir, m)
            }
        };
        Ok(Resolved { fp32_dir, fp32, dir, manifest })
    }
}

/// Names of every source key, for messages.
pub fn keys() -> Vec<&'static str> {
    SOURCES.iter().map(|s| s.key).collect()
}
