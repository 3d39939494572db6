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
    /// A module-path prefix the graph's names carry and the adapters' keys do not (`model.`).
    pub prefix: Option<String>,
    /// A regular expression over module paths: only matching layers get slots; the adapters'
    /// other layers are left out of the unified graph and the merged baselines alike.
    pub target: Option<String>,
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
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<String> = self.slots_per_op.iter().map(|(k, v)| format!("{v} {k}")).collect();
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
        Ok(())
    }
}

fn params(m: impl Into<String>) -> PackageError {
    PackageError::Import(m.into())
}

/// Adapter key -> graph layer: exact module path, kohya's underscored path, or a unique suffix
/// match either way (a wrapper prefix on one side only).
fn find<'a>(layers: &'a [Layer], key: &ModuleKey) -> Option<&'a Layer> {
    let norm = |s: &str| match key {
        ModuleKey::Underscored(_) => s.replace('.', "_"),
        ModuleKey::Path(_) => s.to_string(),
    };
    let k = key.as_str();
    let sep = if matches!(key, ModuleKey::Underscored(_)) { "_" } else { "." };
    if let Some(l) = layers.iter().find(|l| norm(&l.module) == k) {
        return Some(l);
    }
    let hits: Vec<&Layer> = layers
        .iter()
        .filter(|l| {
            let m = norm(&l.module);
            m.ends_with(&format!("{sep}{k}")) || k.ends_with(&format!("{sep}{m}"))
        })
        .collect();
    if hits.len() == 1 { Some(hits[0]) } else { None }
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

/// The model's signature, its image input's name and side (`[1, C, H, H]`), or an error asking
/// for what is missing. Inputs other than the image become per-request tensors (`source: tensor`).
fn check_model(path: &Path, model: &ModelProto) -> Result<(quadbench_onnx::Signature, String, i64), PackageError> {
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
    // The image is the first f32 [1, 3, H, H] input; any other input is a per-request tensor.
    let Some(input) = sig.inputs.iter().find(|v| v.elem_type == float && image_like(&dims(v))) else {
        return Err(params(format!(
            "{} has no image input (inputs: {}); the package's image input is f32 [1, 3, H, H] (a square RGB image in [0, 1])",
            path.display(),
            sig.inputs
                .iter()
                .map(|i| format!(
                    "`{}` {} {}",
                    i.name,
                    quadbench_onnx::elem_type_name(i.elem_type),
                    super::dims_str(&i.dims)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if let Some(v) = sig.inputs.iter().find(|v| v.elem_type != float) {
        return Err(params(format!(
            "input `{}` is {}: per-request tensor inputs are f32; cast it inside the model (e.g. a float timestep)",
            v.name,
            quadbench_onnx::elem_type_name(v.elem_type)
        )));
    }
    let dims = dims(input);
    let out = &sig.outputs[0];
    let odims: Vec<i64> = out.dims.iter().map(|d| d.unwrap_or(0)).collect();
    if !(odims.len() == 4 && odims[0] == 1 && (odims[1] == 3 || odims[1] == 1)) {
        return Err(params(format!(
            "the first output `{}` is {}; the package's output is an image [1, 3, H, W] in [0, 1]",
            out.name,
            super::dims_str(&out.dims)
        )));
    }
    Ok((sig.clone(), input.name.clone(), dims[2]))
}

/// A slot: the layer and its rank (the largest of the adapters that adapt it).
struct Slot<'a> {
    layer: &'a Layer,
    rank: usize,
    input_a: String,
    input_b: String,
}

/// Match every adapter's layers to the graph; every key must match a supported layer.
fn match_all<'a>(layers: &'a [Layer], adapters: &[Adapter]) -> Result<Vec<Vec<&'a Layer>>, PackageError> {
    let (mut unmatched, mut bad) = (Vec::new(), Vec::new());
    let mut all = Vec::new();
    for a in adapters {
        let mut found = Vec::new();
        for x in &a.layers {
            match find(layers, &x.module) {
                None => unmatched.push(format!(
                    "adapter `{}` key `{}`: no graph layer; nearest: {}",
                    a.name,
                    x.key,
                    nearest(layers, x.module.as_str())
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
            "{} adapter key{} no MatMul, Gemm or Conv layer of the model:\n  {}\n  hint: keys are module paths (`base_model.model.`, `unet.` and kohya's `lora_unet_` are understood); pass --prefix if the graph's names carry a wrapper prefix",
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
    let model = quadbench_onnx::read_model(&o.model).map_err(|e| params(format!("{e}")))?;
    let (sig, image_name, side) = check_model(&o.model, &model)?;
    let layers = graft::layers(&model, o.prefix.as_deref());
    let mut adapters: Vec<Adapter> = o.adapters.iter().map(|(n, p)| adapters::read(n, p)).collect::<Result<_, _>>()?;
    let mut matched = match_all(&layers, &adapters)?;
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
    let mut report = ImportReport::default();
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
        });
    }
    let dims = |v: &quadbench_onnx::ValueSig| v.dims.iter().map(|d| d.unwrap_or(0)).collect::<Vec<i64>>();
    let mut inputs: Vec<RawTensor> = sig
        .inputs
        .iter()
        .map(|v| match v.name == image_name {
            true => RawTensor { range: Some([0.0, 1.0]), ..tensor(&v.name, &dims(v), Some("image".into())) },
            false => tensor(&v.name, &dims(v), Some("tensor".into())),
        })
        .collect();
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
    let raw = manifest::RawManifest {
        schema: PACKAGE_SCHEMA.into(),
        name,
        description: format!("imported by quadbench package import from {}", o.model.display()),
        image: RawImage { height: side as u32, width: side as u32 },
        stages: vec![RawStage { name: STAGE.into(), graph: graph_rel, repeat: 1, inputs, outputs }],
        lora_slots: raw_slots,
        tasks,
        output: format!("{STAGE}.{}", sig.outputs[0].name),
        tensor_outputs: Vec::new(),
        files: Vec::<RawFile>::new(),
        generator: Some(BTreeMap::from([
            ("tool".to_string(), format!("quadbench {} package import", env!("CARGO_PKG_VERSION"))),
            ("model".to_string(), o.model.display().to_string()),
            ("model_sha256".to_string(), manifest::sha256_file(&o.model).map_err(|e| PackageError::io(&o.model, e))?),
        ])),
    };
    Ok((manifest::finalize_and_write(out, raw)?, report))
}
