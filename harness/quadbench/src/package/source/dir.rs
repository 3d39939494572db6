//! `package: {path: DIR}`: a package directory on disk (relative to the scenario's folder).

use super::{PackageSource, SourceKind};
use crate::events::Reporter;
use crate::package::PackageError;
use crate::yaml::KeyError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const KIND: SourceKind = SourceKind { key: "path", example: "`package: {path: ../my-package}`", parse };

#[derive(Debug)]
struct Dir(PathBuf);

fn parse(value: serde_json::Value, base: &Path) -> Result<Arc<dyn PackageSource>, KeyError> {
    match value {
        serde_json::Value::String(p) if !p.is_empty() => Ok(Arc::new(Dir(base.join(p)))),
        other => Err(KeyError::new(
            "path",
            format!("`path` must be a directory name, not {other}"),
            "e.g. `package: {path: ../my-package}` (relative to the scenario file)",
        )),
    }
}

impl PackageSource for Dir {
    fn resolve(&self, _cache: &Path, _rep: &mut dyn Reporter) -> Result<PathBuf, PackageError> {
        Ok(self.0.clone())
    }

    fn describe(&self) -> String {
        format!("package directory {}", self.0.display())
    }
}
