//! `package: {reference: {tasks, width, resolution, steps, seed, rank}}`: the generated reference
//! package (`crate::package::reference`), cached by its parameters.

use super::{PackageSource, SourceKind};
use crate::events::{Event, Reporter};
use crate::package::PackageError;
use crate::package::reference::{self, ReferenceParams};
use crate::yaml::KeyError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const KIND: SourceKind = SourceKind { key: "reference", example: "`package: {reference: {tasks: 10}}`", parse };

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference {
    #[serde(default)]
    tasks: Option<usize>,
    #[serde(default)]
    width: Option<usize>,
    #[serde(default)]
    resolution: Option<usize>,
    #[serde(default)]
    steps: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    rank: Option<usize>,
}

/// The reference package with these parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference(pub ReferenceParams);

fn parse(value: serde_json::Value, _base: &Path) -> Result<Arc<dyn PackageSource>, KeyError> {
    let value = if value.is_null() { serde_json::Value::Object(Default::default()) } else { value };
    let r: RawReference = serde_json::from_value(value).map_err(|e| {
        KeyError::new(
            "reference",
            format!("reference package parameters: {e}"),
            "keys: tasks, width, resolution, steps, seed, rank (all optional), e.g. `reference: {tasks: 10}`",
        )
    })?;
    let d = ReferenceParams::default();
    let p = ReferenceParams {
        tasks: r.tasks.unwrap_or(d.tasks),
        width: r.width.unwrap_or(d.width),
        resolution: r.resolution.unwrap_or(d.resolution),
        steps: r.steps.unwrap_or(d.steps),
        seed: r.seed.unwrap_or(d.seed),
        rank: r.rank.unwrap_or(d.rank),
    };
    p.validate().map_err(|e| KeyError::new("reference", e.to_string(), ""))?;
    Ok(Arc::new(Reference(p)))
}

impl PackageSource for Reference {
    fn resolve(&self, cache: &Path, rep: &mut dyn Reporter) -> Result<PathBuf, PackageError> {
        let key = self.0.cache_key();
        super::super::cache::entry(
            cache,
            &key,
            |dir| {
                rep.event(&Event::Step {
                    message: format!("generating reference package {key} (cached in {})", dir.display()),
                })
            },
            |tmp| reference::generate(tmp, &self.0).map(|_| ()),
        )
    }

    fn describe(&self) -> String {
        format!("reference package {}", self.0.cache_key())
    }

    fn reference(&self) -> Option<&ReferenceParams> {
        Some(&self.0)
    }
}
