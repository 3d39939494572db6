//! Model packages: the manifest format (`manifest`), checking a package against its files and
//! graphs (`check`), where packages come from (`source`: a directory, the generated reference
//! package, quantized variants; one file each), the package cache (`cache`), the reference
//! generator (`reference`, `filters`), the importer of users' models and LoRA adapters
//! (`import`, with `adapters` and `graft`), the QDQ quantizer (`quantize`, `qprofile`), input
//! images (`input`), storage accounting (`storage`) and the ONNX Runtime adapter files derived
//! at staging time (`ort_adapter`).

pub mod adapters;
pub mod cache;
pub mod filters;
pub mod fold;
pub mod graft;
pub mod import;
pub mod input;
pub mod manifest;
pub mod ort_adapter;
pub mod qprofile;
pub mod quantize;
pub mod reference;
pub mod source;
pub mod storage;

pub use manifest::{MANIFEST_FILE, Manifest, load};

use crate::yaml::YamlError;
use quadbench_onnx::{ValueSig, elem_type_name};
use quadbench_protocol::{LoraPart, PlanLoraSlot, Source, TensorSpec};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} does not exist\n  hint: {fix}")]
    Missing { path: String, fix: String },
    #[error("invalid package parameters: {0}")]
    Params(String),
    /// `package import`: the model or adapters cannot be imported as given (bad input).
    #[error("cannot import: {0}")]
    Import(String),
    #[error("adapter {path}: {message}")]
    Adapter { path: String, message: String },
    /// ONNX Runtime could not be loaded on the host (calibration): an infrastructure error.
    #[error(
        "cannot use ONNX Runtime {library} on this host: {message}\n  hint: run `quadbench runtime fetch`, or point QUADBENCH_ORT_LIB at a working libonnxruntime.so"
    )]
    Runtime { library: String, message: String },
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error("package {dir} failed its check ({} problem{}):\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Check { dir: String, problems: Vec<String> },
}

impl PackageError {
    pub fn io(path: &Path, source: std::io::Error) -> PackageError {
        PackageError::Io { path: path.display().to_string(), source }
    }
}

fn dims_str(d: &[Option<i64>]) -> String {
    format!("[{}]", d.iter().map(|x| x.map_or("?".to_string(), |v| v.to_string())).collect::<Vec<_>>().join(", "))
}

/// Compare declared tensors with a graph's values; push problems.
fn compare_values(file: &str, kind: &str, declared: &[TensorSpec], actual: &[ValueSig], problems: &mut Vec<String>) {
    for d in declared {
        match actual.iter().find(|a| a.name == d.name) {
            None => problems.push(format!(
                "{file}: {kind} `{}` is declared in package.yaml but the graph has no such {kind} (graph {kind}s: {})",
                d.name,
                actual.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
            Some(a) => {
                let want: Vec<Option<i64>> = d.shape.iter().map(|&v| Some(v)).collect();
                if a.dims != want || elem_type_name(a.elem_type) != d.dtype.as_str() {
                    problems.push(format!(
                        "{file}: {kind} `{}` is {} {} in the graph but package.yaml declares {} {}",
                        d.name,
                        elem_type_name(a.elem_type),
                        dims_str(&a.dims),
                        d.dtype.as_str(),
                        dims_str(&want)
                    ));
                }
            }
        }
    }
    for a in actual {
        if !declared.iter().any(|d| d.name == a.name) {
            problems.push(format!(
                "{file}: graph {kind} `{}` {} is not declared in package.yaml",
                a.name,
                dims_str(&a.dims)
            ));
        }
    }
}

/// Names an adapter may use for a slot's tensor (`base_model.model.` prefix optional).
pub fn adapter_tensor_names(slot: &PlanLoraSlot, part: LoraPart) -> [String; 2] {
    let suffix = match part {
        LoraPart::A => "lora_A.weight",
        LoraPart::B => "lora_B.weight",
    };
    [format!("base_model.model.{}.{suffix}", slot.module), format!("{}.{suffix}", slot.module)]
}

/// Check one adapter file against the slots; push problems.
pub fn check_adapter(path: &Path, rel: &str, slots: &[PlanLoraSlot], problems: &mut Vec<String>) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return problems.push(format!("{rel}: cannot read: {e}")),
    };
    let st = match safetensors::SafeTensors::deserialize(&bytes) {
        Ok(s) => s,
        Err(e) => return problems.push(format!("{rel}: not a valid safetensors file ({e})")),
    };
    for slot in slots {
        let [shape_a, shape_b] = slot.adapter_shapes();
        for (part, want) in [(LoraPart::A, shape_a), (LoraPart::B, shape_b)] {
            let names = adapter_tensor_names(slot, part);
            match names.iter().find_map(|n| st.tensor(n).ok().map(|t| (n, t))) {
                None => problems.push(format!("{rel}: missing tensor `{}` for lora slot `{}`", names[0], slot.name)),
                Some((n, t)) => {
                    if t.shape() != want || t.dtype() != safetensors::Dtype::F32 {
                        problems.push(format!("{rel}: tensor `{n}` is {:?} {:?}, slot `{}` needs F32 {want:?} (PEFT layout: lora_A [rank, in], lora_B [out, rank]; conv: [rank, in, kh, kw], [out, rank, 1, 1])", t.dtype(), t.shape(), slot.name));
                    }
                }
            }
        }
    }
}

/// Check a task's per-task constants (`.npy` files) against their `source: task` inputs; push
/// problems.
fn check_task_inputs(dir: &Path, m: &Manifest, t: &quadbench_protocol::PlanTask, problems: &mut Vec<String>) {
    for (name, rel) in &t.inputs {
        let Some(spec) = m.pipeline.stages.iter().flat_map(|s| &s.inputs).find(|i| &i.tensor.name == name) else {
            continue; // the manifest's validation names it
        };
        let want: Vec<usize> = spec.tensor.shape.iter().map(|&d| d as usize).collect();
        match std::fs::read(dir.join(rel)).map_err(|e| e.to_string()).and_then(|b| quadbench_protocol::npy::parse(&b)) {
            Err(e) => problems.push(format!("{rel}: {e}")),
            Ok(a) if a.shape != want || a.dtype != spec.tensor.dtype => problems.push(format!(
                "{rel}: task `{}` input `{name}` is {} {:?}, the stage input takes {} {want:?}",
                t.name,
                a.dtype.as_str(),
                a.shape,
                spec.tensor.dtype.as_str()
            )),
            Ok(_) => {}
        }
    }
}

/// Validate a package against its manifest and its ONNX graphs. Returns the manifest.
pub fn check(dir: &Path) -> Result<Manifest, PackageError> {
    let m = load(dir)?;
    let mut problems = Vec::new();
    for f in &m.raw.files {
        let p = dir.join(&f.path);
        match std::fs::metadata(&p) {
            Err(_) => problems.push(format!("{}: listed in package.yaml but missing", f.path)),
            Ok(md) if md.len() != f.bytes => problems.push(format!("{}: size {} bytes, package.yaml says {} (file changed or truncated; regenerate the package or fix files:)", f.path, md.len(), f.bytes)),
            Ok(_) => match manifest::sha256_file(&p) {
                Ok(h) if h != f.sha256 => problems.push(format!("{}: sha256 {h} does not match package.yaml ({})", f.path, f.sha256)),
                Ok(_) => {}
                Err(e) => problems.push(format!("{}: cannot read: {e}", f.path)),
            },
        }
    }
    if problems.is_empty() {
        for st in &m.pipeline.stages {
            let declared: Vec<TensorSpec> = st.inputs.iter().map(|i| i.tensor.clone()).collect();
            let non_lora: Vec<TensorSpec> = st
                .inputs
                .iter()
                .filter(|i| !matches!(i.source, Source::Lora { .. }))
                .map(|i| i.tensor.clone())
                .collect();
            let mut graphs = vec![(st.graph.clone(), declared)];
            for t in &m.pipeline.tasks {
                if let Some(g) = t.baselines.get(&st.name) {
                    graphs.push((g.clone(), non_lora.clone()));
                }
            }
            for (g, inputs) in graphs {
                match quadbench_onnx::read_model(&dir.join(&g)) {
                    Err(e) => problems.push(format!("{g}: {e}")),
                    Ok(model) => {
                        let sig = quadbench_onnx::signature(&model);
                        compare_values(&g, "input", &inputs, &sig.inputs, &mut problems);
                        compare_values(&g, "output", &st.outputs, &sig.outputs, &mut problems);
                    }
                }
            }
        }
        for t in &m.pipeline.tasks {
            check_adapter(&dir.join(&t.adapter), &t.adapter, &m.pipeline.lora_slots, &mut problems);
            check_task_inputs(dir, &m, t, &mut problems);
        }
    }
    if problems.is_empty() { Ok(m) } else { Err(PackageError::Check { dir: dir.display().to_string(), problems }) }
}
