//! `package: {import: {model: M.onnx, adapters: {NAME: PATH, ...}, max_rank, prefix, target, opset,
//! name, inputs, task_inputs}}`: a user's
//! exported model and LoRA adapters imported by `crate::package::import` (what `quadbench package
//! import` does), cached by the sha256 of the model and adapter files, so one scenario measures a
//! user's model with no other command. Paths are relative to the scenario's folder.

use super::{PackageSource, SourceKind};
use crate::events::{Event, Reporter};
use crate::package::PackageError;
use crate::package::import::{self, ImportOptions};
use crate::yaml::KeyError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const KIND: SourceKind = SourceKind {
    key: "import",
    example: "`package: {import: {model: unet.onnx, adapters: {sketch: lora/sketch}}}`",
    parse,
};

/// Bump when the importer's output changes for the same inputs (the cache key carries it).
const IMPORT_REVISION: u32 = 2;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    model: String,
    /// Task name -> PEFT directory or `.safetensors` file (tasks in name order).
    adapters: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    max_rank: Option<usize>,
    #[serde(default)]
    prefix: Option<String>,
    /// A regular expression over module paths: only matching layers get slots (`--target`).
    #[serde(default)]
    target: Option<String>,
    /// The lowest ai.onnx opset to accept (`--opset`).
    #[serde(default)]
    opset: Option<i64>,
    /// Package name (default: the model file's stem); goldens are kept under it.
    #[serde(default)]
    name: Option<String>,
    /// Model input -> source (`tensor`, `mask`, `task`, `noise:<seed>[:<std>]`), as `--input`.
    #[serde(default)]
    inputs: std::collections::BTreeMap<String, String>,
    /// Task -> {input -> `.npy` file}: each task's value of every `task` input, as `--task-input`.
    #[serde(default)]
    task_inputs: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

#[derive(Debug)]
struct Import(ImportOptions);

fn parse(value: serde_json::Value, base: &Path) -> Result<Arc<dyn PackageSource>, KeyError> {
    let fix = "e.g. `import: {model: unet.onnx, adapters: {sketch: lora/sketch, ink: ink.safetensors}}` (optional: max_rank, prefix, target, opset, name, inputs: {mask: mask}, task_inputs: {sketch: {prompt: sketch.npy}})";
    let r: RawImport =
        serde_json::from_value(value).map_err(|e| KeyError::new("import", format!("import parameters: {e}"), fix))?;
    let mut adapters = Vec::new();
    for (name, p) in r.adapters {
        let Some(p) = p.as_str().filter(|p| !p.is_empty()) else {
            return Err(KeyError::new("import", format!("adapter `{name}`: the value must be a path, not {p}"), fix));
        };
        adapters.push((name, base.join(p)));
    }
    if adapters.is_empty() {
        return Err(KeyError::new("import", "`adapters` is empty: a package needs at least one task", fix));
    }
    if let Some(Err(e)) = r.target.as_deref().map(regex::Regex::new) {
        return Err(KeyError::new("import", format!("`target` is not a regular expression: {e}"), fix));
    }
    let o = ImportOptions {
        model: base.join(&r.model),
        adapters,
        name: r.name,
        max_rank: r.max_rank,
        prefix: r.prefix,
        opset: r.opset,
        target: r.target,
        input_sources: r.inputs.into_iter().collect(),
        task_inputs: r
            .task_inputs
            .into_iter()
            .flat_map(|(t, m)| m.into_iter().map(move |(i, f)| (t.clone(), i, base.join(f))))
            .collect(),
    };
    Ok(Arc::new(Import(o)))
}

/// The files an adapter path stands for (a PEFT directory's two files, or the file and the
/// config beside it).
fn adapter_files(p: &Path) -> Vec<PathBuf> {
    let files = if p.is_dir() {
        vec![p.join("adapter_model.safetensors"), p.join("adapter_config.json")]
    } else {
        vec![p.to_path_buf(), p.with_file_name("adapter_config.json")]
    };
    files.into_iter().filter(|f| f.is_file()).collect()
}

impl Import {
    /// A cache key from the contents of every input file and the options.
    fn cache_key(&self) -> Result<String, PackageError> {
        let o = &self.0;
        let mut h = Sha256::new();
        let mut hash = |p: &Path| -> Result<(), PackageError> {
            let d = crate::package::manifest::sha256_file(p)
                .map_err(|e| PackageError::Import(format!("{}: {e}", p.display())))?;
            h.update(d.as_bytes());
            Ok(())
        };
        hash(&o.model)?;
        for (_, p) in &o.adapters {
            for f in adapter_files(p) {
                hash(&f)?;
            }
        }
        for (_, _, f) in &o.task_inputs {
            hash(f)?;
        }
        let tasks: Vec<(&String, &String)> = o.task_inputs.iter().map(|(t, i, _)| (t, i)).collect();
        let rest = format!(
            "{IMPORT_REVISION}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{tasks:?}",
            o.adapters.iter().map(|a| &a.0).collect::<Vec<_>>(),
            o.max_rank,
            o.prefix,
            o.name,
            o.target,
            o.opset,
            o.input_sources
        );
        h.update(rest.as_bytes());
        let digest: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        let stem = o.model.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
        let stem: String =
            stem.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(40).collect();
        Ok(format!("import{IMPORT_REVISION}-{stem}-{digest}"))
    }
}

impl PackageSource for Import {
    fn resolve(&self, cache: &Path, rep: &mut dyn Reporter) -> Result<PathBuf, PackageError> {
        let key = self.cache_key()?;
        let mut report = None;
        let dir = crate::package::cache::entry(
            cache,
            &key,
            |dir| {
                rep.event(&Event::Step {
                    message: format!("importing {} (cached in {})", self.0.model.display(), dir.display()),
                })
            },
            |tmp| {
                report = Some(import::import(&self.0, tmp)?.1);
                Ok(())
            },
        )?;
        if let Some(r) = report {
            rep.event(&Event::Step { message: format!("import report:\n{r}") });
        }
        Ok(dir)
    }

    fn describe(&self) -> String {
        format!("{} imported with {} adapter(s)", self.0.model.display(), self.0.adapters.len())
    }
}
