//! `package.yaml`: the contract a model package meets (schema `quadbench.package/1`).
//!
//! Raw types mirror the file; [`validate`] turns them into the runner's pipeline description
//! ([`quadbench_protocol::PlanPipeline`]) or an error naming the file, line and key.

use super::PackageError;
use crate::yaml::{self, YamlError};
use quadbench_protocol::{
    DType, LoraPart, PlanLoraSlot, PlanPipeline, PlanStage, PlanTask, Source, StageInput, StageOutputRef, TensorSpec,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub const PACKAGE_SCHEMA: &str = "quadbench.package/1";
pub const MANIFEST_FILE: &str = "package.yaml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The request image the graphs take (`source: image`); absent for a package without one
    /// (e.g. a diffusion UNet: latents, timestep and embeddings in, run by `quadbench infer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<RawImage>,
    pub stages: Vec<RawStage>,
    #[serde(default)]
    pub lora_slots: Vec<RawSlot>,
    pub tasks: Vec<RawTask>,
    /// `stage.output` holding the final image (or, in a package without an image, its main output).
    pub output: String,
    /// `stage.output`s also saved as `.npy` tensors for every task and input, and scored
    /// against golden tensors (absent when empty, so older packages keep their bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensor_outputs: Vec<String>,
    pub files: Vec<RawFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub height: u32,
    pub width: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub name: String,
    pub graph: String,
    #[serde(default = "one")]
    pub repeat: u32,
    pub inputs: Vec<RawTensor>,
    pub outputs: Vec<RawTensor>,
}

fn one() -> u32 {
    1
}

/// A graph input or output. Inputs name where their value comes from: `source` (`image`,
/// `tensor` (given with each request by this name), `mask` (a mask image with each request),
/// `task` (a per-task constant: each task's `inputs` file), `noise:<seed>[:<std>]`,
/// `<stage>.<output>`, `lora:<slot>.a|b`), optionally `carry: <own output>` on a repeated
/// stage, or `schedule: [one value per step]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: DType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlot {
    pub name: String,
    pub stage: String,
    /// PEFT module name: the adapter holds `<module>.lora_A.weight` and `<module>.lora_B.weight`.
    pub module: String,
    pub rank: usize,
    pub alpha: f32,
    pub in_features: usize,
    pub out_features: usize,
    /// `[kh, kw]` of a convolution slot (PEFT LoCon; A and B bound in PEFT's layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<[usize; 2]>,
}

impl RawSlot {
    fn plan(&self, input_a: String, input_b: String) -> PlanLoraSlot {
        PlanLoraSlot {
            name: self.name.clone(),
            stage: self.stage.clone(),
            module: self.module.clone(),
            input_a,
            input_b,
            in_features: self.in_features,
            out_features: self.out_features,
            rank: self.rank,
            alpha: self.alpha,
            kernel: self.kernel,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub adapter: String,
    /// Stage name -> merged baseline graph replacing that stage for this task.
    pub baselines: BTreeMap<String, String>,
    /// Stage input name -> `.npy` file: this task's value of each `source: task` input.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub raw: RawManifest,
    pub pipeline: PlanPipeline,
    /// sha256 of package.yaml (it lists every file's hash, so it identifies the whole package).
    pub sha256: String,
}

/// Streaming sha256 of a file, hex (one implementation for the whole project).
pub use quadbench_runtime::sha256_file;

pub fn sha256_bytes(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Write a file, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| PackageError::io(p, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| PackageError::io(path, e))
}

/// Every file a manifest references (graphs, baselines, adapters), deduplicated, in order.
pub fn referenced_files(raw: &RawManifest) -> Vec<String> {
    let mut out: Vec<String> = raw.stages.iter().map(|s| s.graph.clone()).collect();
    for t in &raw.tasks {
        out.push(t.adapter.clone());
        out.extend(t.baselines.values().cloned());
        out.extend(t.inputs.values().cloned());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// Fill in `files` (size + sha256 of every referenced file) and write package.yaml.
pub fn finalize_and_write(dir: &Path, mut raw: RawManifest) -> Result<Manifest, PackageError> {
    raw.files = referenced_files(&raw)
        .into_iter()
        .map(|rel| {
            let p = dir.join(&rel);
            let bytes = std::fs::metadata(&p).map_err(|e| PackageError::io(&p, e))?.len();
            Ok(RawFile { sha256: sha256_file(&p).map_err(|e| PackageError::io(&p, e))?, path: rel, bytes })
        })
        .collect::<Result<_, PackageError>>()?;
    let text = format!(
        "# quadbench model package, schema {PACKAGE_SCHEMA}. Format: README.md, \"The package format\".\n{}",
        serde_saphyr::to_string(&raw).map_err(|e| PackageError::Params(format!("cannot serialise manifest: {e}")))?
    );
    let path = dir.join(MANIFEST_FILE);
    write_file(&path, text.as_bytes())?;
    validate(&path, &text, raw)
}

/// Parse and validate `DIR/package.yaml` (structure only; [`super::check`] verifies files).
pub fn load(dir: &Path) -> Result<Manifest, PackageError> {
    let path = dir.join(MANIFEST_FILE);
    if !path.exists() {
        return Err(PackageError::Missing { path: path.display().to_string(), fix: "point at a package directory (one holding package.yaml), or create one with `quadbench package reference --out DIR`".into() });
    }
    let (raw, text) = yaml::load::<RawManifest>(&path)?;
    validate(&path, &text, raw)
}

fn parse_source(s: &str) -> Result<Source, String> {
    if s == "image" {
        return Ok(Source::Image);
    }
    if s == "tensor" {
        return Ok(Source::Tensor);
    }
    if s == "mask" {
        return Ok(Source::Mask);
    }
    if s == "task" {
        return Ok(Source::Task);
    }
    if let Some(rest) = s.strip_prefix("noise:") {
        let (seed, std) = rest.split_once(':').unwrap_or((rest, "1"));
        return match (seed.parse::<u64>(), std.parse::<f32>()) {
            (Ok(seed), Ok(std)) if std.is_finite() && std >= 0.0 => Ok(Source::Noise { seed, std }),
            _ => Err(format!("`{s}`: expected `noise:<seed>` or `noise:<seed>:<std>` (an integer seed, std >= 0)")),
        };
    }
    if let Some(rest) = s.strip_prefix("lora:") {
        let (slot, part) =
            rest.rsplit_once('.').ok_or_else(|| format!("`{s}`: expected `lora:<slot>.a` or `lora:<slot>.b`"))?;
        let part = match part {
            "a" => LoraPart::A,
            "b" => LoraPart::B,
            _ => return Err(format!("`{s}`: the part after the last `.` must be `a` or `b`")),
        };
        return Ok(Source::Lora { slot: slot.into(), part });
    }
    let (stage, output) = s.split_once('.').ok_or_else(|| {
        format!(
            "`{s}`: expected `image`, `tensor`, `mask`, `task`, `noise:<seed>`, `<stage>.<output>` or `lora:<slot>.a|b`"
        )
    })?;
    Ok(Source::Stage { stage: stage.into(), output: output.into() })
}

/// What is wrong with an input's dtype or shape for its source, if anything: noise and masks are
/// f32 (a mask `[1, 1, H, W]`), schedules f32, i64 or i32.
fn dtype_problem(source: &Source, i: &RawTensor) -> Option<String> {
    match source {
        Source::Noise { .. } if i.dtype != DType::F32 => {
            Some(format!("noise is f32, the input is {}", i.dtype.as_str()))
        }
        Source::Mask if i.dtype != DType::F32 || i.shape.len() != 4 || i.shape[..2] != [1, 1] => Some(format!(
            "a mask input is f32 [1, 1, H, W] (one channel in [0, 1]); this one is {} {:?}",
            i.dtype.as_str(),
            i.shape
        )),
        Source::Schedule { .. } if !matches!(i.dtype, DType::F32 | DType::I64 | DType::I32) => {
            Some(format!("a schedule feeds f32, i64 or i32 inputs; this one is {}", i.dtype.as_str()))
        }
        _ => None,
    }
}

/// A task's `inputs` against the stages' `source: task` inputs: one `.npy` for each, none else.
fn check_task_inputs(t: &RawTask, stages: &[PlanStage]) -> Result<(), (String, String)> {
    let wanted: Vec<&str> = stages
        .iter()
        .flat_map(|s| &s.inputs)
        .filter(|i| i.source == Source::Task)
        .map(|i| i.tensor.name.as_str())
        .collect();
    if let Some(missing) = wanted.iter().find(|w| !t.inputs.contains_key(**w)) {
        return Err((
            format!("task `{}` gives no value for the per-task input `{missing}` (`source: task`)", t.name),
            format!("add `inputs: {{{missing}: tasks/{}/{missing}.npy}}` to the task", t.name),
        ));
    }
    if let Some(extra) = t.inputs.keys().find(|k| !wanted.contains(&k.as_str())) {
        let fix = yaml::nearest(extra, wanted.iter().copied())
            .map(|n| format!("did you mean `{n}`?"))
            .unwrap_or_else(|| "only stage inputs with `source: task` take per-task values".into());
        return Err((
            format!("task `{}`: `inputs` names `{extra}`, which no stage takes as `source: task`", t.name),
            fix,
        ));
    }
    Ok(())
}

fn spec(t: &RawTensor) -> TensorSpec {
    TensorSpec { name: t.name.clone(), shape: t.shape.clone(), dtype: t.dtype }
}

/// Structural validation: schema, names, sources, slots, tasks.
pub fn validate(path: &Path, text: &str, raw: RawManifest) -> Result<Manifest, PackageError> {
    let err =
        |needle: &str, msg: String, fix: &str| -> PackageError { YamlError::at(path, text, needle, msg, fix).into() };
    if raw.schema != PACKAGE_SCHEMA {
        return Err(err(
            "schema:",
            format!("schema `{}` is not supported", raw.schema),
            &format!("this quadbench reads `{PACKAGE_SCHEMA}`"),
        ));
    }
    if !crate::safe_name(&raw.name) {
        return Err(err(
            "name:",
            format!(
                "package name `{}` is not a safe name (it becomes a directory of goldens and caches)",
                raw.name.escape_debug()
            ),
            &format!("use {}, at most 128 characters", crate::SAFE_NAME_CHARS),
        ));
    }
    if let Some(f) = raw.files.iter().find(|f| !crate::safe_relative_path(&f.path)) {
        return Err(err(
            &f.path,
            format!("file `{}` is not a relative path of safe names inside the package", f.path.escape_debug()),
            &format!(
                "list files by their path inside the package directory ({} per component)",
                crate::SAFE_NAME_CHARS
            ),
        ));
    }
    if raw.stages.is_empty() || raw.tasks.is_empty() {
        return Err(err(
            "stages:",
            "a package needs at least one stage and one task".into(),
            "add `stages:` and `tasks:` entries",
        ));
    }
    let mut outputs_so_far: BTreeMap<String, Vec<TensorSpec>> = BTreeMap::new();
    let slot_names: Vec<&str> = raw.lora_slots.iter().map(|s| s.name.as_str()).collect();
    let mut stages = Vec::new();
    for st in &raw.stages {
        if outputs_so_far.contains_key(&st.name) {
            return Err(err(
                &format!("name: {}", st.name),
                format!("stage `{}` is defined twice", st.name),
                "give every stage a unique name",
            ));
        }
        if st.repeat == 0 {
            return Err(err(
                &format!("name: {}", st.name),
                format!("stage `{}`: repeat must be at least 1", st.name),
                "set `repeat: 1` or more",
            ));
        }
        let mut inputs = Vec::new();
        for i in &st.inputs {
            let here = format!("name: {}", i.name);
            let source = match (&i.source, &i.schedule) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(err(
                        &here,
                        format!("stage `{}` input `{}` needs exactly one of `source` or `schedule`", st.name, i.name),
                        "e.g. `source: encoder.latent` or `schedule: [0.5, 1.0]`",
                    ));
                }
                (None, Some(values)) => {
                    if values.len() != st.repeat as usize {
                        return Err(err(
                            &here,
                            format!(
                                "stage `{}` input `{}`: schedule has {} values but the stage repeats {} times",
                                st.name,
                                i.name,
                                values.len(),
                                st.repeat
                            ),
                            "give one schedule value per step",
                        ));
                    }
                    Source::Schedule { values: values.clone() }
                }
                (Some(s), None) => parse_source(s)
                    .map_err(|m| err(&here, format!("stage `{}` input `{}`: bad source {m}", st.name, i.name), ""))?,
            };
            let source = match source {
                Source::Stage { stage, output } => {
                    let Some(outs) = outputs_so_far.get(&stage) else {
                        let known: Vec<&str> = outputs_so_far.keys().map(|s| s.as_str()).collect();
                        let fix = yaml::nearest(&stage, known.iter().copied())
                            .map(|n| format!("did you mean `{n}`?"))
                            .unwrap_or_else(|| format!("sources may name earlier stages: {}", known.join(", ")));
                        return Err(err(
                            &here,
                            format!(
                                "stage `{}` input `{}`: source stage `{stage}` does not run before it",
                                st.name, i.name
                            ),
                            &fix,
                        ));
                    };
                    let Some(o) = outs.iter().find(|o| o.name == output) else {
                        return Err(err(
                            &here,
                            format!("stage `{}` input `{}`: stage `{stage}` has no output `{output}`", st.name, i.name),
                            &format!(
                                "outputs of `{stage}`: {}",
                                outs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    };
                    if o.shape != i.shape || o.dtype != i.dtype {
                        return Err(err(
                            &here,
                            format!(
                                "stage `{}` input `{}` {:?} {} does not match `{stage}.{output}` {:?} {}",
                                st.name,
                                i.name,
                                i.shape,
                                i.dtype.as_str(),
                                o.shape,
                                o.dtype.as_str()
                            ),
                            "make the shapes and dtypes agree",
                        ));
                    }
                    match &i.carry {
                        Some(c) => {
                            if !st.outputs.iter().any(|o| &o.name == c && o.shape == i.shape) {
                                return Err(err(
                                    &here,
                                    format!(
                                        "stage `{}` input `{}`: carry `{c}` is not an output of this stage with the same shape",
                                        st.name, i.name
                                    ),
                                    "name one of this stage's outputs",
                                ));
                            }
                            Source::Carry { stage, init_output: output, output: c.clone() }
                        }
                        None => Source::Stage { stage, output },
                    }
                }
                Source::Lora { slot, part } => {
                    let Some(sl) = raw.lora_slots.iter().find(|s| s.name == slot) else {
                        let fix = yaml::nearest(&slot, slot_names.iter().copied())
                            .map(|n| format!("did you mean `{n}`?"))
                            .unwrap_or_else(|| format!("declared slots: {}", slot_names.join(", ")));
                        return Err(err(
                            &here,
                            format!("stage `{}` input `{}`: unknown lora slot `{slot}`", st.name, i.name),
                            &fix,
                        ));
                    };
                    let [a, b] = sl.plan(String::new(), String::new()).input_shapes();
                    let want = if part == LoraPart::A { a } else { b };
                    if i.shape != want || sl.stage != st.name {
                        return Err(err(
                            &here,
                            format!(
                                "stage `{}` input `{}`: lora slot `{slot}` needs shape {want:?} on stage `{}`, found {:?}",
                                st.name, i.name, sl.stage, i.shape
                            ),
                            "A is [in_features, rank], B is [rank, out_features]; with `kernel`, A is [rank, in_features, kh, kw] and B [out_features, rank, 1, 1]",
                        ));
                    }
                    Source::Lora { slot, part }
                }
                other => other,
            };
            if source == Source::Image && raw.image.is_none() {
                return Err(err(
                    &here,
                    format!("stage `{}` input `{}` takes the image, and the package declares none", st.name, i.name),
                    "add `image: {height: H, width: W}`",
                ));
            }
            if let Some(fix) = dtype_problem(&source, i) {
                return Err(err(&here, format!("stage `{}` input `{}`: {fix}", st.name, i.name), ""));
            }
            inputs.push(StageInput { tensor: spec(i), source });
        }
        outputs_so_far.insert(st.name.clone(), st.outputs.iter().map(spec).collect());
        stages.push(PlanStage {
            name: st.name.clone(),
            graph: st.graph.clone(),
            repeat: st.repeat,
            inputs,
            outputs: st.outputs.iter().map(spec).collect(),
        });
    }
    let mut lora_slots = Vec::new();
    for sl in &raw.lora_slots {
        let inp = |part: LoraPart| {
            stages.iter().find(|s| s.name == sl.stage).and_then(|s| {
                s.inputs
                    .iter()
                    .find(|i| matches!(&i.source, Source::Lora { slot, part: p } if slot == &sl.name && *p == part))
                    .map(|i| i.tensor.name.clone())
            })
        };
        let (Some(a), Some(b)) = (inp(LoraPart::A), inp(LoraPart::B)) else {
            return Err(err(
                &format!("name: {}", sl.name),
                format!(
                    "lora slot `{}` is not bound to inputs `lora:{0}.a` and `lora:{0}.b` of stage `{}`",
                    sl.name, sl.stage
                ),
                "add both inputs to that stage",
            ));
        };
        if sl.rank == 0 || sl.alpha <= 0.0 {
            return Err(err(
                &format!("name: {}", sl.name),
                format!("lora slot `{}`: rank and alpha must be positive", sl.name),
                "",
            ));
        }
        lora_slots.push(sl.plan(a, b));
    }
    let mut tasks = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in &raw.tasks {
        let here = format!("name: {}", t.name);
        if !seen.insert(t.name.clone()) || !crate::safe_name(&t.name) {
            return Err(err(
                &here,
                format!("task `{}` is duplicated or not a safe name", t.name),
                &format!("task names are unique and use {}", crate::SAFE_NAME_CHARS),
            ));
        }
        for stage in t.baselines.keys() {
            if !stages.iter().any(|s| &s.name == stage) {
                return Err(err(
                    &here,
                    format!("task `{}`: baseline for unknown stage `{stage}`", t.name),
                    "baselines map a stage name to that task's merged graph",
                ));
            }
        }
        check_task_inputs(t, &stages).map_err(|(m, fix)| err(&here, m, &fix))?;
        tasks.push(PlanTask {
            name: t.name.clone(),
            adapter: t.adapter.clone(),
            baselines: t.baselines.clone(),
            ort_adapters: Default::default(),
            inputs: t.inputs.clone(),
        });
    }
    let (os, oo) = raw.output.split_once('.').ok_or_else(|| {
        err("output:", format!("output `{}` must be `<stage>.<output>`", raw.output), "e.g. `output: decoder.image`")
    })?;
    if !outputs_so_far.get(os).is_some_and(|o| o.iter().any(|x| x.name == oo)) {
        return Err(err("output:", format!("output `{}` is not an output of any stage", raw.output), ""));
    }
    let listed: std::collections::HashSet<&str> = raw.files.iter().map(|f| f.path.as_str()).collect();
    for rel in referenced_files(&raw) {
        if !crate::safe_relative_path(&rel) {
            return Err(err(
                &rel,
                format!("path `{rel}` must be relative and stay inside the package"),
                "no absolute paths and no `..`",
            ));
        }
        if !listed.contains(rel.as_str()) {
            return Err(err(
                &rel,
                format!("`{rel}` is referenced but not listed under `files:`"),
                "regenerate the manifest's files list (size and sha256 of every file)",
            ));
        }
    }
    let tensor_outputs = tensor_outputs(&raw, &stages, &err)?;
    let pipeline = PlanPipeline {
        stages,
        lora_slots,
        tasks,
        image_output: StageOutputRef { stage: os.into(), output: oo.into() },
        image_height: raw.image.as_ref().map_or(0, |i| i.height),
        image_width: raw.image.as_ref().map_or(0, |i| i.width),
        tensor_outputs,
    };
    Ok(Manifest { sha256: sha256_bytes(text.as_bytes()), raw, pipeline })
}

/// `tensor_outputs:` checked against the stages: each `stage.output` exists (else the nearest
/// name), is listed once, and its name is safe in a file name
/// (`<task>__<input>__<stage>.<output>.npy`).
fn tensor_outputs(
    raw: &RawManifest,
    stages: &[PlanStage],
    err: &dyn Fn(&str, String, &str) -> PackageError,
) -> Result<Vec<StageOutputRef>, PackageError> {
    let mut out: Vec<StageOutputRef> = Vec::new();
    for t in &raw.tensor_outputs {
        // Located at the key: an entry's text may also appear earlier (`output: decoder.image`).
        let needle = "tensor_outputs:";
        let Some((stage, output)) = t.split_once('.') else {
            return Err(err(
                needle,
                format!("tensor output `{t}` must be `<stage>.<output>`"),
                "e.g. `- decoder.image`",
            ));
        };
        let Some(st) = stages.iter().find(|s| s.name == stage) else {
            let fix = yaml::nearest(stage, stages.iter().map(|s| s.name.as_str()))
                .map(|n| format!("did you mean `{n}.{output}`?"))
                .unwrap_or_else(|| {
                    format!("stages: {}", stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "))
                });
            return Err(err(needle, format!("tensor output `{t}`: no stage `{stage}`"), &fix));
        };
        if !st.outputs.iter().any(|o| o.name == output) {
            let names = st.outputs.iter().map(|o| o.name.as_str());
            let fix = yaml::nearest(output, names.clone())
                .map(|n| format!("did you mean `{stage}.{n}`?"))
                .unwrap_or_else(|| format!("outputs of `{stage}`: {}", names.collect::<Vec<_>>().join(", ")));
            return Err(err(needle, format!("tensor output `{t}`: stage `{stage}` has no output `{output}`"), &fix));
        }
        if !crate::safe_name(t) {
            return Err(err(
                needle,
                format!("tensor output `{t}` cannot name a file (`<task>__<input>__{t}.npy`)"),
                &format!("name the graph output with {}", crate::SAFE_NAME_CHARS),
            ));
        }
        let r = StageOutputRef { stage: stage.into(), output: output.into() };
        if out.contains(&r) {
            return Err(err(needle, format!("tensor output `{t}` is listed twice"), "list each output once"));
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_and_noise_sources_parse_and_bad_ones_say_the_form() {
        assert_eq!(parse_source("tensor"), Ok(Source::Tensor));
        assert_eq!(parse_source("mask"), Ok(Source::Mask));
        assert_eq!(parse_source("task"), Ok(Source::Task));
        assert_eq!(parse_source("noise:7"), Ok(Source::Noise { seed: 7, std: 1.0 }));
        assert_eq!(parse_source("noise:7:0.5"), Ok(Source::Noise { seed: 7, std: 0.5 }));
        for bad in ["noise:x", "noise:1:-2", "noise:1:nan"] {
            assert!(parse_source(bad).unwrap_err().contains("noise:<seed>:<std>"), "{bad}");
        }
    }
}
