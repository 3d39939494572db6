//! `quadbench package import`: a user's exported ONNX model plus LoRA adapters (PEFT, kohya;
//! read by [`super::adapters`]) become a package: the unified graph with every adapted layer's
//! LoRA branch fed from graph inputs ([`super::graft`]), one adapter file per task in the
//! package's format (PEFT names, padded to one rank per slot, the task's scale folded into B,
//! zeros where the task does not adapt the layer), each task's merged baseline graph, and
//! package.yaml with every file hashed.

use super::PackageError;
use super::adapters::{self, Adapter, LayerLora, ModuleKey};
use super::graft::{self, Branch, Layer, LayerOp};
use super::manifest::{self, Manifest, PACKAGE_SCHEMA, RawFile, RawImage, RawSlot, RawStage, RawTask, RawTensor};
use quadbench_onnx::proto::ModelProto;
use quadbench_protocol::DType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The one stage of an imported package.
pub const STAGE: &str = "model";

/// The lowest default-domain (`ai.onnx`) opset the import accepts. The graft itself needs only
/// broadcasting `Add` (opset 7), but below 13 `Squeeze`, `Unsqueeze`, `Split` and `ReduceSum` take
/// their axes as attributes, and the quantizer raises imported graphs to opset 21 (uint16 QDQ)
/// rewriting only the Reduce family's axes (`quantize.rs`): such a graph would break there.
pub const MIN_OPSET: i64 = 13;

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub model: PathBuf,
    /// (task name, adapter path), in task order.
    pub adapters: Vec<(String, PathBuf)>,
    /// Package name (default: the model file's stem).
    pub name: Option<String>,
    /// Refuse slots whose rank would exceed this (static shapes on NPUs grow with it).
    pub max_rank: Option<usize>,
    /// A wrapper prefix (`model.`) removed from the graph's module paths and the adapters' keys
    /// alike, where they start with it.
    pub prefix: Option<String>,
    /// The lowest default-domain opset the user accepts (`--opset`); the import's own minimum
    /// ([`MIN_OPSET`]) holds anyway.
    pub opset: Option<i64>,
    /// A regular expression over module paths: only matching layers get slots; the adapters'
    /// other layers are left out of the unified graph and the merged baselines alike.
    pub target: Option<String>,
    /// Where inputs other than the image get their values: (input, `tensor` (the default, given
    /// with each request), `mask`, `task` or `noise:<seed>[:<std>]`).
    pub input_sources: Vec<(String, String)>,
    /// (task, input, `.npy` file): each task's value of every `task` input.
    pub task_inputs: Vec<(String, String, PathBuf)>,
}

/// Layers matched, per op type and per adapter, for people.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// op type -> number of slots.
    pub slots_per_op: BTreeMap<&'static str, usize>,
    /// (task, format, layers, ranks as `min-max`, scales as `min-max`).
    pub adapters: Vec<(String, &'static str, usize, String, String)>,
    /// (slot, op, rank).
    pub slots: Vec<(String, &'static str, usize)>,
    /// The model has no image input: the package runs through `quadbench infer` only.
    pub image_less: bool,
    /// The model's default-domain opset.
    pub opset: i64,
    /// Metadata-only fields the re-encoding drops: (field, count).
    pub dropped_metadata: BTreeMap<String, usize>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<String> = self.slots_per_op.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(f, "opset: ai.onnx {}", self.opset)?;
        if !self.dropped_metadata.is_empty() {
            let d: Vec<String> = self.dropped_metadata.iter().map(|(k, n)| format!("{n} x {k}")).collect();
            writeln!(f, "dropped on re-encoding (metadata only, no effect on results): {}", d.join(", "))?;
        }
        writeln!(f, "lora slots: {} ({})", self.slots.len(), ops.join(", "))?;
        for (s, op, r) in &self.slots {
            writeln!(f, "  {s:<48} {op:<6} rank {r}")?;
        }
        for (t, fmt, n, ranks, scales) in &self.adapters {
            writeln!(f, "task {t}: {fmt}, {n} layers, rank {ranks}, scale {scales}")?;
        }
        if let Some(n) = self.slots_per_op.get("Conv") {
            writeln!(
                f,
                "note: {n} Conv slot(s) feed convolution weights as graph inputs, which the QNN HTP backend does not run (session creation fails; shared/notes/runtime.md): unified runs of this package need the CPU EP, or LoRA on MatMul layers only"
            )?;
        }
        if self.image_less {
            writeln!(
                f,
                "note: the model has no image input [1, 3, H, H]: its requests are tensors alone (`infer --inputs`, or a scenario without `inputs` whose `tensor_inputs` files are the requests) and its output is saved and scored as a tensor"
            )?;
        }
        Ok(())
    }
}

fn params(m: impl Into<String>) -> PackageError {
    PackageError::Import(m.into())
}

/// `key` with a wrapper prefix removed (`--prefix model.`; for kohya's underscored keys the
/// prefix's dots are underscores too).
fn strip_key<'k>(key: &'k ModuleKey, prefix: Option<&str>) -> &'k str {
    let k = key.as_str();
    let Some(p) = prefix else { return k };
    let p = match key {
        ModuleKey::Underscored(_) => p.replace('.', "_"),
        ModuleKey::Path(_) => p.to_string(),
    };
    k.strip_prefix(p.as_str()).unwrap_or(k)
}

/// Adapter key -> graph layer: exact module path, kohya's underscored path, or the one graph
/// path that ends with the key at a module boundary (a wrapper the graph's names carry, as in
/// `/unet/down_blocks.0/...`). A key longer than every graph path (a wrapper the adapter carries)
/// needs `--prefix`: a guess there could bind another model's layer of the same name.
fn find<'a>(layers: &'a [Layer], key: &ModuleKey, prefix: Option<&str>) -> Option<&'a Layer> {
    let norm = |s: &str| match key {
        ModuleKey::Underscored(_) => s.replace('.', "_"),
        ModuleKey::Path(_) => s.to_string(),
    };
    let k = strip_key(key, prefix);
    let sep = if matches!(key, ModuleKey::Underscored(_)) { "_" } else { "." };
    if let Some(l) = layers.iter().find(|l| norm(&l.module) == k) {
        return Some(l);
    }
    let hits: Vec<&Layer> = layers.iter().filter(|l| norm(&l.module).ends_with(&format!("{sep}{k}"))).collect();
    if hits.len() == 1 { Some(hits[0]) } else { None }
}

/// The `--prefix` that would make `key` match: its leading module names, when the rest matches.
fn prefix_hint(layers: &[Layer], key: &ModuleKey) -> Option<String> {
    let k = key.as_str();
    let sep = if matches!(key, ModuleKey::Underscored(_)) { '_' } else { '.' };
    k.match_indices(sep).find_map(|(i, _)| {
        let p = if sep == '_' { k[..=i].replace('_', ".") } else { k[..=i].to_string() };
        find(layers, key, Some(&p)).map(|l| format!("with --prefix {p} it matches `{}`", l.module))
    })
}

fn nearest(layers: &[Layer], key: &str) -> String {
    let mut scored: Vec<(f64, &str)> = layers
        .iter()
        .map(|l| {
            (strsim::normalized_levenshtein(&l.module.replace('.', "_"), &key.replace('.', "_")), l.module.as_str())
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.iter().take(3).map(|(_, m)| format!("`{m}`")).collect::<Vec<_>>().join(", ")
}

/// Check that a layer's tensors fit the graph layer (same base model), returning the problem.
fn shape_problem(l: &Layer, x: &LayerLora) -> Option<String> {
    let r = x.rank();
    let (want_a, want_b) = match l.op {
        LayerOp::Conv { kernel } => (vec![r, l.in_features, kernel[0], kernel[1]], vec![l.out_features, r, 1, 1]),
        _ => (vec![r, l.in_features], vec![l.out_features, r]),
    };
    (x.a_shape != want_a || x.b_shape != want_b).then(|| {
        format!(
            "`{}`: lora A {:?} / B {:?} do not fit {} layer `{}` (in {}, out {}: needs A {want_a:?}, B {want_b:?}); is the adapter for another base model?",
            x.key,
            x.a_shape,
            x.b_shape,
            l.op.name(),
            l.module,
            l.in_features,
            l.out_features
        )
    })
}

/// The model's signature and its image input's name and side (`[1, C, H, H]`; `None` for a model
/// without one), or an error asking for what is missing. Inputs other than the image become
/// per-request tensors (`source: tensor`) unless `--input` says otherwise.
type ModelCheck = (quadbench_onnx::Signature, Option<(String, i64)>);

fn check_model(path: &Path, model: &ModelProto) -> Result<ModelCheck, PackageError> {
    let g = model.graph.as_ref().expect("read_model checks the graph");
    if let Some(t) = g.initializer.iter().find(|t| t.data_location == 1 || !t.external_data.is_empty()) {
        return Err(params(format!(
            "{} keeps weights in external data files (initializer `{}`; a 2 GB+ export): importing reads single-file models only; export a smaller model or merge the data into the file with onnx.load(..., load_external_data=True) where it fits",
            path.display(),
            t.name
        )));
    }
    let sig = quadbench_onnx::signature(model);
    for v in sig.inputs.iter().chain(&sig.outputs) {
        if v.dims.is_empty() || v.dims.iter().any(|d| d.is_none()) {
            return Err(params(format!(
                "{} has a dynamic shape on `{}` ({}): packages run static shapes (NPUs need them); re-export with a fixed input shape, e.g. torch.onnx.export(model, (torch.rand(1, 3, 512, 512),), path, dynamo=False) without dynamic_axes, and say which shape you want to benchmark",
                path.display(),
                v.name,
                super::dims_str(&v.dims)
            )));
        }
    }
    let dims = |v: &quadbench_onnx::ValueSig| v.dims.iter().map(|d| d.unwrap_or(0)).collect::<Vec<i64>>();
    let image_like = |d: &[i64]| d.len() == 4 && d[0] == 1 && (d[1] == 3 || d[1] == 1) && d[2] == d[3];
    let float = quadbench_onnx::proto::data_type::FLOAT;
    // The image is the first f32 [1, 3, H, H] input; any other input is a per-request tensor. A
    // model without one (a diffusion UNet) makes a package without an image.
    let input = sig.inputs.iter().find(|v| v.elem_type == float && image_like(&dims(v)));
    if let Some(v) = sig.inputs.iter().find(|v| DType::parse(quadbench_onnx::elem_type_name(v.elem_type)).is_none()) {
        return Err(params(format!(
            "input `{}` has ONNX element type {}, which packages do not feed (f32, f16, u8, i8, u16, i16, i32, i64); cast it inside the model",
            v.name, v.elem_type
        )));
    }
    let Some(input) = input else { return Ok((sig.clone(), None)) };
    let out = &sig.outputs[0];
    let odims: Vec<i64> = out.dims.iter().map(|d| d.unwrap_or(0)).collect();
    if !(odims.len() == 4 && odims[0] == 1 && (odims[1] == 3 || odims[1] == 1)) {
        return Err(params(format!(
            "the first output `{}` is {}; the package's output is an image [1, 3, H, W] in [0, 1]",
            out.name,
            super::dims_str(&out.dims)
        )));
    }
    Ok((sig.clone(), Some((input.name.clone(), dims(input)[2]))))
}

/// Refuse a model whose decode through the project's ONNX subset would drop anything that
/// matters (control-flow subgraphs, sparse initializers, functions, ...), naming each place and
/// the fix; return the metadata-only fields it drops, counted, for the report.
fn check_lossless(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, usize>, PackageError> {
    let found = quadbench_onnx::unmodelled::unmodelled(bytes)
        .map_err(|e| params(format!("{} is not a valid onnx model ({e}); re-export it", path.display())))?;
    let (meta, lost): (Vec<_>, Vec<_>) = found.into_iter().partition(|u| u.metadata);
    if !lost.is_empty() {
        let list: Vec<String> = lost.iter().take(8).map(|u| format!("{}: {}", u.location, u.field)).collect();
        return Err(params(format!(
            "{} uses ONNX features the importer cannot carry into the package ({} place{}):
  {}{}
  the importer rewrites the graph through a subset of onnx.proto without control-flow subgraphs (If/Loop/Scan), sparse initializers or model functions, and refuses rather than drop them; export a graph without them (e.g. torch.onnx.export of a traced model with static control flow, constant-fold with onnxsim, densify sparse initializers with onnx.numpy_helper)",
            path.display(),
            lost.len(),
            if lost.len() == 1 { "" } else { "s" },
            list.join("\n  "),
            if lost.len() > 8 { format!("\n  ... and {} more", lost.len() - 8) } else { String::new() }
        )));
    }
    let mut counts = BTreeMap::new();
    for u in meta {
        *counts.entry(u.field).or_default() += 1;
    }
    Ok(counts)
}

/// The model's default-domain opset, refused below [`MIN_OPSET`] or the user's `--opset`.
fn check_opset(path: &Path, model: &ModelProto, want: Option<i64>) -> Result<i64, PackageError> {
    let have = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map(|o| o.version);
    let Some(have) = have else {
        return Err(params(format!(
            "{} imports no default-domain (ai.onnx) opset; re-export it with torch.onnx.export(..., opset_version={MIN_OPSET}) or later",
            path.display()
        )));
    };
    let min = want.unwrap_or(MIN_OPSET).max(MIN_OPSET);
    if have < min {
        let why = match want {
            Some(w) if w >= MIN_OPSET => format!("--opset {w} asks for at least {w}"),
            _ => format!(
                "the import needs at least {MIN_OPSET} (below it Squeeze/Unsqueeze/Split/ReduceSum take axes as attributes, which the quantizer's move to opset 21 does not rewrite)"
            ),
        };
        return Err(params(format!(
            "{} uses ai.onnx opset {have}; {why}; re-export with torch.onnx.export(..., opset_version={min})",
            path.display()
        )));
    }
    Ok(have)
}

/// A slot: the layer and its rank (the largest of the adapters that adapt it).
struct Slot<'a> {
    layer: &'a Layer,
    rank: usize,
    input_a: String,
    input_b: String,
}

/// Match every adapter's layers to the graph; every key must match a supported layer.
fn match_all<'a>(
    layers: &'a [Layer],
    adapters: &[Adapter],
    prefix: Option<&str>,
) -> Result<Vec<Vec<&'a Layer>>, PackageError> {
    let (mut unmatched, mut bad) = (Vec::new(), Vec::new());
    let mut all = Vec::new();
    for a in adapters {
        let mut found = Vec::new();
        for x in &a.layers {
            match find(layers, &x.module, prefix) {
                None => unmatched.push(format!(
                    "adapter `{}` key `{}`: no graph layer; {}",
                    a.name,
                    x.key,
                    prefix_hint(layers, &x.module)
                        .unwrap_or_else(|| format!("nearest: {}", nearest(layers, strip_key(&x.module, prefix))))
                )),
                Some(l) => {
                    if let Some(why) = &l.unsupported {
                        bad.push(format!("adapter `{}` `{}`: layer `{}` is a {why}", a.name, x.key, l.module));
                    } else if let Some(p) = shape_problem(l, x) {
                        bad.push(format!("adapter `{}` {p}", a.name));
                    }
                    found.push(l);
                }
            }
        }
        all.push(found);
    }
    if !unmatched.is_empty() {
        return Err(params(format!(
            "{} adapter key{} no MatMul, Gemm or Conv layer of the model:\n  {}\n  hint: keys are module paths (`base_model.model.`, `unet.` and kohya's `lora_unet_` are understood); pass --prefix if the graph's names or the adapter's keys carry a wrapper prefix (`model.`)",
            unmatched.len(),
            if unmatched.len() == 1 { " matches" } else { "s match" },
            unmatched.join("\n  ")
        )));
    }
    if !bad.is_empty() {
        return Err(params(format!("adapters do not fit the model:\n  {}", bad.join("\n  "))));
    }
    Ok(all)
}

fn write_adapter(path: &Path, slots: &[Slot<'_>], adapter: &Adapter, matched: &[&Layer]) -> Result<(), PackageError> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for s in slots {
        let l = s.layer;
        let hit = matched.iter().position(|m| m.node == l.node).map(|i| &adapter.layers[i]);
        let k = match l.op {
            LayerOp::Conv { kernel } => kernel[0] * kernel[1],
            _ => 1,
        };
        let (fin, fout, r) = (l.in_features * k, l.out_features, s.rank);
        let mut a = vec![0f32; r * fin];
        let mut b = vec![0f32; fout * r];
        if let Some(x) = hit {
            // Rows of A beyond the task's rank and columns of B stay zero: the update is unchanged.
            let xr = x.rank();
            a[..xr * fin].copy_from_slice(&x.a);
            for o in 0..fout {
                for j in 0..xr {
                    b[o * r + j] = x.b[o * xr + j] * x.scale;
                }
            }
        }
        let shapes = match l.op {
            LayerOp::Conv { kernel } => [vec![r, l.in_features, kernel[0], kernel[1]], vec![fout, r, 1, 1]],
            _ => [vec![r, l.in_features], vec![fout, r]],
        };
        for ((suffix, data), shape) in [("lora_A.weight", a), ("lora_B.weight", b)].into_iter().zip(shapes) {
            tensors.push((
                format!("base_model.model.{}.{suffix}", l.module),
                shape,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
    }
    let err = |e: safetensors::SafeTensorError| PackageError::Adapter {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()
        .map_err(err)?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    manifest::write_file(path, &safetensors::serialize(views, Some(meta)).map_err(err)?)
}

fn merged(model: &ModelProto, adapter: &Adapter, matched: &[&Layer]) -> Result<ModelProto, PackageError> {
    let mut m = model.clone();
    for (x, l) in adapter.layers.iter().zip(matched) {
        let w = quadbench_onnx::initializer_f32(model, &l.weight)
            .ok_or_else(|| params(format!("weight `{}` of `{}` is not f32 data", l.weight, l.module)))?;
        let data = graft::merged_weight(l, &w, &x.a, &x.b, x.rank(), x.scale);
        graft::set_weight(&mut m, l.node, &l.weight, &data)?;
    }
    Ok(m)
}

/// The graph's own inputs as the stage declares them: the image, then every other input with
/// its source (`--input NAME=SOURCE`, `tensor` by default) and its element type.
fn input_tensors(
    o: &ImportOptions,
    sig: &quadbench_onnx::Signature,
    image: Option<&str>,
) -> Result<Vec<RawTensor>, PackageError> {
    let names: Vec<&str> = sig.inputs.iter().map(|v| v.name.as_str()).filter(|n| Some(*n) != image).collect();
    for (name, source) in &o.input_sources {
        if !names.contains(&name.as_str()) {
            let hint = crate::yaml::nearest(name, names.iter().copied()).map_or_else(
                || format!("inputs besides the image: {}", names.join(", ")),
                |n| format!("did you mean `{n}`?"),
            );
            return Err(params(format!("--input `{name}`: the model has no such input besides the image; {hint}")));
        }
        let ok = matches!(source.as_str(), "tensor" | "mask" | "task") || source.starts_with("noise:");
        if !ok {
            return Err(params(format!(
                "--input {name}={source}: the source is one of `tensor` (with each request), `mask` (a mask image with each request), `task` (a per-task constant, --task-input) or `noise:<seed>[:<std>]`"
            )));
        }
    }
    let dims = |v: &quadbench_onnx::ValueSig| v.dims.iter().map(|d| d.unwrap_or(0)).collect::<Vec<i64>>();
    Ok(sig
        .inputs
        .iter()
        .map(|v| {
            let dtype =
                DType::parse(quadbench_onnx::elem_type_name(v.elem_type)).expect("check_model checked the types");
            if Some(v.name.as_str()) == image {
                return RawTensor { range: Some([0.0, 1.0]), ..tensor(&v.name, &dims(v), Some("image".into())) };
            }
            let source = o.input_sources.iter().find(|(n, _)| n == &v.name).map_or("tensor", |(_, s)| s.as_str());
            RawTensor { dtype, ..tensor(&v.name, &dims(v), Some(source.to_string())) }
        })
        .collect())
}

/// Copy each task's `--task-input` files into the package (`tasks/<task>/<input>.npy`), checked
/// against the input's shape and dtype; every task needs one for every `source: task` input.
fn copy_task_inputs(
    o: &ImportOptions,
    inputs: &[RawTensor],
    tasks: &mut [RawTask],
    out: &Path,
) -> Result<(), PackageError> {
    let wanted: Vec<&RawTensor> = inputs.iter().filter(|i| i.source.as_deref() == Some("task")).collect();
    for (task, input, _) in &o.task_inputs {
        if !tasks.iter().any(|t| &t.name == task) || !wanted.iter().any(|w| &w.name == input) {
            return Err(params(format!(
                "--task-input {task}:{input}=...: `{task}` must be a task (--adapter) and `{input}` an input given `--input {input}=task`"
            )));
        }
    }
    for t in tasks.iter_mut() {
        for w in &wanted {
            let Some((_, _, path)) = o.task_inputs.iter().find(|(tk, i, _)| tk == &t.name && i == &w.name) else {
                return Err(params(format!(
                    "task `{}` has no value for the per-task input `{}`; pass --task-input {}:{}=FILE.npy",
                    t.name, w.name, t.name, w.name
                )));
            };
            let arrays = crate::npy::read_tensor_file(path).map_err(|e| params(e.to_string()))?;
            let want: Vec<usize> = w.shape.iter().map(|&d| d as usize).collect();
            let a = match arrays.values().collect::<Vec<_>>()[..] {
                [a] if a.shape == want && a.dtype == w.dtype => a,
                _ => {
                    return Err(params(format!(
                        "--task-input {}:{}={}: expected one {} array of shape {want:?} (numpy: np.save(path, x.astype(np.{})))",
                        t.name,
                        w.name,
                        path.display(),
                        w.dtype.as_str(),
                        w.dtype.numpy_name()
                    )));
                }
            };
            let rel = format!("tasks/{}/{}.npy", t.name, w.name);
            manifest::write_file(&out.join(&rel), &a.to_bytes())?;
            t.inputs.insert(w.name.clone(), rel);
        }
    }
    Ok(())
}

fn tensor(name: &str, dims: &[i64], source: Option<String>) -> RawTensor {
    RawTensor {
        name: name.into(),
        shape: dims.to_vec(),
        dtype: DType::F32,
        range: None,
        source,
        carry: None,
        schedule: None,
    }
}

/// Only the layers whose module path matches `pattern` stay in each adapter (`--target`); a task
/// left with none is refused, naming the layers it adapts.
fn keep_targets(pattern: &str, adapters: &mut [Adapter], matched: &mut [Vec<&Layer>]) -> Result<(), PackageError> {
    let re = regex::Regex::new(pattern)
        .map_err(|e| params(format!("--target `{pattern}` is not a regular expression: {e}")))?;
    for (a, ls) in adapters.iter_mut().zip(matched.iter_mut()) {
        let keep: Vec<bool> = ls.iter().map(|l| re.is_match(&l.module)).collect();
        if !keep.contains(&true) {
            let all: Vec<&str> = ls.iter().map(|l| l.module.as_str()).collect();
            return Err(params(format!(
                "task `{}`: no layer it adapts matches --target `{pattern}`; its layers: {}",
                a.name,
                all.join(", ")
            )));
        }
        let mut it = keep.iter();
        a.layers.retain(|_| *it.next().expect("one flag per layer"));
        let mut it = keep.iter();
        ls.retain(|_| *it.next().expect("one flag per layer"));
    }
    Ok(())
}

/// Import `o` into `out`. Returns the manifest and what was matched.
pub fn import(o: &ImportOptions, out: &Path) -> Result<(Manifest, ImportReport), PackageError> {
    let name = match &o.name {
        Some(n) => n.clone(),
        None => o.model.file_stem().map_or("imported".into(), |s| s.to_string_lossy().into_owned()),
    };
    if !crate::safe_name(&name) {
        return Err(params(format!(
            "package name `{name}` is not a safe name; pass --name with {}",
            crate::SAFE_NAME_CHARS
        )));
    }
    if o.adapters.is_empty() {
        return Err(params("no adapters; pass --adapter NAME=PATH once per task"));
    }
    let bytes = std::fs::read(&o.model).map_err(|e| PackageError::io(&o.model, e))?;
    let dropped_metadata = check_lossless(&o.model, &bytes)?;
    let model = quadbench_onnx::read_model(&o.model).map_err(|e| params(format!("{e}")))?;
    let opset = check_opset(&o.model, &model, o.opset)?;
    let (sig, image) = check_model(&o.model, &model)?;
    let layers = graft::layers(&model, o.prefix.as_deref());
    let mut adapters: Vec<Adapter> = o.adapters.iter().map(|(n, p)| adapters::read(n, p)).collect::<Result<_, _>>()?;
    let mut matched = match_all(&layers, &adapters, o.prefix.as_deref())?;
    if let Some(t) = &o.target {
        keep_targets(t, &mut adapters, &mut matched)?;
    }
    // One slot per adapted layer, in graph order, with the largest rank any task gives it.
    let mut slot_rank: BTreeMap<usize, usize> = BTreeMap::new();
    for (a, ls) in adapters.iter().zip(&matched) {
        for (x, l) in a.layers.iter().zip(ls) {
            let r = slot_rank.entry(l.node).or_default();
            *r = (*r).max(x.rank());
        }
    }
    let slots: Vec<Slot<'_>> = slot_rank
        .iter()
        .map(|(&node, &rank)| {
            let layer = layers.iter().find(|l| l.node == node).expect("matched layer");
            let id = layer.module.replace(['.', '/'], "_");
            Slot { layer, rank, input_a: format!("lora_{id}_a"), input_b: format!("lora_{id}_b") }
        })
        .collect();
    if let (Some(max), Some(s)) = (o.max_rank, slots.iter().find(|s| Some(s.rank) > o.max_rank)) {
        return Err(params(format!(
            "layer `{}` needs rank {} (the largest adapter rank on it), above --max-rank {max}",
            s.layer.module, s.rank
        )));
    }
    let branches: Vec<Branch<'_>> = slots
        .iter()
        .map(|s| Branch { layer: s.layer, input_a: s.input_a.clone(), input_b: s.input_b.clone(), rank: s.rank })
        .collect();
    let graph_rel = format!("{STAGE}.onnx");
    manifest::write_file(&out.join(&graph_rel), &quadbench_onnx::encode(&graft::graft(&model, &branches)))?;
    let mut tasks = Vec::new();
    let mut report = ImportReport { opset, dropped_metadata, ..Default::default() };
    for (a, ls) in adapters.iter().zip(&matched) {
        if !crate::safe_name(&a.name) {
            return Err(params(format!("task name `{}` is not a safe name ({})", a.name, crate::SAFE_NAME_CHARS)));
        }
        let adapter_rel = format!("adapters/{}.safetensors", a.name);
        write_adapter(&out.join(&adapter_rel), &slots, a, ls)?;
        let base_rel = format!("baselines/{}/{graph_rel}", a.name);
        manifest::write_file(&out.join(&base_rel), &quadbench_onnx::encode(&merged(&model, a, ls)?))?;
        let range = |f: &dyn Fn(&LayerLora) -> f64| {
            let v: Vec<f64> = a.layers.iter().map(f).collect();
            let (lo, hi) = (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(f64::MIN, f64::max));
            if lo == hi { format!("{lo:.4}") } else { format!("{lo:.4}-{hi:.4}") }
        };
        report.adapters.push((
            a.name.clone(),
            a.format,
            a.layers.len(),
            range(&|x| x.rank() as f64).replace(".0000", ""),
            range(&|x| x.scale as f64),
        ));
        tasks.push(RawTask {
            name: a.name.clone(),
            description: format!("imported from {} ({})", a.path.display(), a.format),
            adapter: adapter_rel,
            baselines: BTreeMap::from([(STAGE.to_string(), base_rel)]),
            inputs: Default::default(),
        });
    }
    let dims = |v: &quadbench_onnx::ValueSig| v.dims.iter().map(|d| d.unwrap_or(0)).collect::<Vec<i64>>();
    let mut inputs = input_tensors(o, &sig, image.as_ref().map(|i| i.0.as_str()))?;
    report.image_less = image.is_none();
    copy_task_inputs(o, &inputs, &mut tasks, out)?;
    let mut raw_slots = Vec::new();
    for s in &slots {
        let l = s.layer;
        let slot = RawSlot {
            name: l.module.clone(),
            stage: STAGE.into(),
            module: l.module.clone(),
            rank: s.rank,
            // The task's scale is folded into B: alpha = rank makes the runner's alpha / rank 1.
            alpha: s.rank as f32,
            in_features: l.in_features,
            out_features: l.out_features,
            kernel: match l.op {
                LayerOp::Conv { kernel } => Some(kernel),
                _ => None,
            },
        };
        let (r, fin, fout) = (s.rank as i64, l.in_features as i64, l.out_features as i64);
        let (da, db) = match slot.kernel {
            Some([kh, kw]) => (vec![r, fin, kh as i64, kw as i64], vec![fout, r, 1, 1]),
            None => (vec![fin, r], vec![r, fout]),
        };
        inputs.push(tensor(&s.input_a, &da, Some(format!("lora:{}.a", slot.name))));
        inputs.push(tensor(&s.input_b, &db, Some(format!("lora:{}.b", slot.name))));
        *report.slots_per_op.entry(l.op.name()).or_default() += 1;
        report.slots.push((slot.name.clone(), l.op.name(), s.rank));
        raw_slots.push(slot);
    }
    let outputs: Vec<RawTensor> = sig.outputs.iter().map(|v| tensor(&v.name, &dims(v), None)).collect();
    let main_output = format!("{STAGE}.{}", sig.outputs[0].name);
    // Without an image there is no PNG: the main output is saved and scored as a tensor.
    let tensor_outputs = if image.is_none() { vec![main_output.clone()] } else { Vec::new() };
    let raw = manifest::RawManifest {
        schema: PACKAGE_SCHEMA.into(),
        name,
        description: format!("imported by quadbench package import from {}", o.model.display()),
        image: image.map(|(_, side)| RawImage { height: side as u32, width: side as u32 }),
        stages: vec![RawStage { name: STAGE.into(), graph: graph_rel, repeat: 1, inputs, outputs }],
        lora_slots: raw_slots,
        tasks,
        output: main_output,
        tensor_outputs,
        files: Vec::<RawFile>::new(),
        generator: Some(BTreeMap::from([
            ("tool".to_string(), format!("quadbench {} package import", env!("CARGO_PKG_VERSION"))),
            ("model".to_string(), o.model.display().to_string()),
            ("model_sha256".to_string(), manifest::sha256_file(&o.model).map_err(|e| PackageError::io(&o.model, e))?),
        ])),
    };
    Ok((manifest::finalize_and_write(out, raw)?, report))
}
