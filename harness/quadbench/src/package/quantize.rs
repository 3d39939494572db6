//! QDQ rewriting of our ONNX graphs for NPUs (QNN HTP needs QuantizeLinear/DequantizeLinear
//! graphs: uint8/uint16 activations, int8 weights).
//!
//! - MatMul, Conv and Gemm weights (float initializers on input 1) become int8 symmetric
//!   initializers followed by a DequantizeLinear (per tensor, or per output channel).
//! - Every other float tensor a node reads or writes (graph inputs such as the LoRA A/B inputs,
//!   intermediate values, outputs, float constants) gets a QuantizeLinear -> DequantizeLinear
//!   pair with uint16 (A16) or uint8 (A8) encodings from calibrated ranges ([`Ranges`]).
//! - The second input of a MatMul whose two inputs are both computed or fed at run time (the
//!   LoRA products `x @ A` and `(x @ A) @ B`, where A and B are graph inputs) is quantized to
//!   8 bits whatever the activation width: QNN HTP has no 16 x 16 MatMul, and given two uint16
//!   inputs the QNN EP (2.7.0) silently converts the second to uint8 over the same range. Saying
//!   so in the graph makes the CPU EP compute what the NPU computes, so calibration, the shared
//!   profile's sensitivity scores and CPU-side checks all see the real precision. (Found with the
//!   QNN graph dump: `Convert a_quantized (u16) -> a_quantized_convert (UFIXED_8)`.)
//! - Data-movement ops (Transpose, Reshape, ...) share their input's encoding with their output,
//!   as NPUs expect: a requantization there would be pure overhead.
//!
//! The graph keeps its float interface, so the runner feeds float tensors on every backend; the
//! boundary Q/DQ nodes are the only float work left.

use quadbench_onnx::proto::{ModelProto, NodeProto, TensorProto, data_type};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Revision of the QDQ rewrite: part of cached quantized packages' keys, so that a change of
/// the rewrite never reuses graphs made by an older one.
pub const QDQ_REVISION: u32 = 4;

/// Calibrated value range per tensor name: (min, max) over all calibration runs.
pub type Ranges = BTreeMap<String, (f32, f32)>;

/// Activation width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActBits {
    U8,
    U16,
}

impl ActBits {
    fn qmax(self) -> f32 {
        match self {
            ActBits::U8 => 255.0,
            ActBits::U16 => 65535.0,
        }
    }
    fn dtype(self) -> i32 {
        match self {
            ActBits::U8 => data_type::UINT8,
            ActBits::U16 => data_type::UINT16,
        }
    }
}

/// How to quantize one graph.
#[derive(Debug, Clone)]
pub struct QdqConfig {
    /// Default activation width (A16 for W8A16, A8 for W8A8).
    pub act: ActBits,
    /// MatMul nodes (by name) whose activations use 8 bits regardless of `act` (mixed precision).
    pub a8_nodes: HashSet<String>,
    /// Per-output-channel weight scales instead of one per tensor.
    pub per_channel: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error(
        "no calibrated range for tensor `{0}`: calibrate on inputs that exercise the whole graph (golden/inputs) or pass a range for it"
    )]
    NoRange(String),
    #[error("graph has no `graph` field; regenerate the package")]
    NoGraph,
}

/// Ops whose output is a rearrangement of the input values: they share the input's encoding.
pub const SHARED_ENCODING_OPS: &[&str] =
    &["Transpose", "Reshape", "SpaceToDepth", "DepthToSpace", "Slice", "Pad", "Flatten", "Squeeze", "Unsqueeze"];

/// Inputs that must stay plain float constants (QNN reads them as attributes): `op` -> input indices.
fn float_param(op: &str, idx: usize) -> bool {
    matches!((op, idx), ("Clip", 1) | ("Clip", 2) | ("Resize", 1) | ("Resize", 2))
}

/// Float weight initializers that become int8, with their output-channel axis: a MatMul's
/// `[in, out]` input 1 (axis 1), a Conv's `[out, in, kh, kw]` input 1 (axis 0), a Gemm's input 1
/// (`[out, in]` with transB = 1: axis 0; `[in, out]`: axis 1).
fn weight_axes(nodes: &[NodeProto], inits: &HashMap<String, TensorProto>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for n in nodes.iter().filter(|n| n.domain.is_empty() && n.input.len() > 1) {
        let Some(t) = inits.get(&n.input[1]).filter(|t| t.data_type == data_type::FLOAT) else { continue };
        let trans_b = n.attribute.iter().any(|a| a.name == "transB" && a.i == 1);
        let axis = match (n.op_type.as_str(), t.dims.len()) {
            ("MatMul", 2) => 1,
            ("Conv", 4) => 0,
            ("Gemm", 2) if trans_b => 0,
            ("Gemm", 2) => 1,
            _ => continue,
        };
        out.insert(n.input[1].clone(), axis);
    }
    out
}

/// uint encoding covering `[min, max]` (widened to include 0, as ONNX asymmetric quantization requires).
pub fn encoding(min: f32, max: f32, bits: ActBits) -> (f32, i64) {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    let scale = ((hi - lo) / bits.qmax()).max(1e-9);
    let zp = (-lo / scale).round().clamp(0.0, bits.qmax()) as i64;
    (scale, zp)
}

fn scalar_f32(name: &str, v: f32) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: data_type::FLOAT,
        raw_data: v.to_le_bytes().to_vec(),
        ..Default::default()
    }
}

fn scalar_zp(name: &str, zp: i64, bits: ActBits) -> TensorProto {
    let raw = match bits {
        ActBits::U8 => vec![zp as u8],
        ActBits::U16 => (zp as u16).to_le_bytes().to_vec(),
    };
    TensorProto { name: name.into(), data_type: bits.dtype(), raw_data: raw, ..Default::default() }
}

fn node(
    op: &str,
    name: String,
    inputs: Vec<String>,
    output: String,
    attrs: Vec<quadbench_onnx::proto::AttributeProto>,
) -> NodeProto {
    NodeProto { input: inputs, output: vec![output], name, op_type: op.into(), attribute: attrs, ..Default::default() }
}

fn f32_data(t: &TensorProto) -> Vec<f32> {
    if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}

/// Propagate encodings through data-movement ops so that their input and output agree: the
/// union of both ranges is written to every tensor of a chain.
pub fn share_encodings(model: &ModelProto, ranges: &mut Ranges) {
    let Some(g) = model.graph.as_ref() else { return };
    // Union-find over tensor names linked by shared-encoding ops.
    let mut parent: HashMap<String, String> = HashMap::new();
    fn find(p: &mut HashMap<String, String>, x: &str) -> String {
        let mut cur = x.to_string();
        while let Some(n) = p.get(&cur).filter(|n| **n != cur).cloned() {
            cur = n;
        }
        cur
    }
    for n in g.node.iter().filter(|n| SHARED_ENCODING_OPS.contains(&n.op_type.as_str())) {
        let (a, b) = (find(&mut parent, &n.input[0]), find(&mut parent, &n.output[0]));
        if a != b {
            parent.insert(b, a);
        }
    }
    let names: Vec<String> = parent.keys().cloned().collect();
    let mut union: HashMap<String, (f32, f32)> = HashMap::new();
    let all: Vec<String> = names.iter().cloned().chain(parent.values().cloned()).collect();
    for n in &all {
        if let Some(&(lo, hi)) = ranges.get(n) {
            let e = union.entry(find(&mut parent, n)).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        }
    }
    for n in &all {
        if let Some(r) = union.get(&find(&mut parent, n)) {
            ranges.insert(n.clone(), *r);
        }
    }
}

/// ONNX `TensorProto.DataType.BOOL`.
const ONNX_BOOL: i32 = 9;

/// Element type of every tensor of the graph: declared types (inputs, outputs, value_info,
/// initializers, `Constant` values), then per node from its inputs in graph order (`Shape` and
/// friends give int64, `Cast` its `to`, comparisons bool, others their first typed input).
pub fn elem_types(model: &ModelProto) -> HashMap<String, i32> {
    let Some(g) = model.graph.as_ref() else { return HashMap::new() };
    let mut ty: HashMap<String, i32> = HashMap::new();
    for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
        if let Some(t) = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).filter(|t| t.elem_type != 0) {
            ty.insert(v.name.clone(), t.elem_type);
        }
    }
    for t in &g.initializer {
        ty.insert(t.name.clone(), t.data_type);
    }
    for n in &g.node {
        let first = || n.input.iter().find_map(|i| ty.get(i).copied());
        let attr = |k: &str| n.attribute.iter().find(|a| a.name == k);
        let out = match n.op_type.as_str() {
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => Some(data_type::INT64),
            "Cast" => attr("to").map(|a| a.i as i32),
            "CastLike" => n.input.get(1).and_then(|i| ty.get(i).copied()),
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" | "Xor"
            | "IsNaN" | "IsInf" => Some(ONNX_BOOL),
            "Constant" => attr("value").and_then(|a| a.t.as_ref()).map(|t| t.data_type),
            "Where" => n.input.get(1).and_then(|i| ty.get(i).copied()),
            "QuantizeLinear" => n.input.get(2).and_then(|i| ty.get(i).copied()).or(Some(data_type::UINT8)),
            "DequantizeLinear" => Some(data_type::FLOAT),
            _ => first(),
        };
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if let Some(t) = ty.get(o).copied().or(out) {
                ty.insert(o.clone(), t);
            }
        }
    }
    ty
}

/// Float tensors whose encodings the rewrite needs (what calibration must record): float graph
/// inputs and float node outputs. Int64 shape arithmetic, indices and masks are left alone.
pub fn activation_tensors(model: &ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_ref() else { return Vec::new() };
    let ty = elem_types(model);
    let is_float = |t: &str| ty.get(t) == Some(&data_type::FLOAT);
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let graph_inputs: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for n in &g.node {
        if n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear" {
            continue;
        }
        for t in n.input.iter().chain(&n.output) {
            if !t.is_empty()
                && !inits.contains(t.as_str())
                && is_float(t)
                && (graph_inputs.contains(t.as_str()) || n.output.contains(t))
                && seen.insert(t.clone())
            {
                out.push(t.clone());
            }
        }
    }
    out
}

/// Reductions whose `axes` moved from an attribute to an input in opset 18 (ReduceSum did so in
/// 13): a graph raised from an older opset to 21 gets its axes as an int64 initializer.
const AXES_INPUT_SINCE_18: &[&str] = &[
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
];

fn reduce_axes_to_inputs(g: &mut quadbench_onnx::proto::GraphProto) {
    let mut new_inits = Vec::new();
    for n in g.node.iter_mut().filter(|n| n.domain.is_empty() && AXES_INPUT_SINCE_18.contains(&n.op_type.as_str())) {
        let Some(pos) = n.attribute.iter().position(|a| a.name == "axes") else { continue };
        let axes = n.attribute.remove(pos).ints;
        let name = format!("{}_axes", n.output[0]);
        new_inits.push(TensorProto {
            name: name.clone(),
            dims: vec![axes.len() as i64],
            data_type: data_type::INT64,
            raw_data: axes.iter().flat_map(|a| a.to_le_bytes()).collect(),
            ..Default::default()
        });
        n.input.truncate(1);
        n.input.push(name);
    }
    g.initializer.extend(new_inits);
}

/// Reductions with `keepdims=0` become `keepdims=1` followed by a Squeeze of the reduced axes:
/// QNN HTP (QAIRT 2.51) refuses a ReduceMean that drops dimensions (op validation error 3110 on
/// torch's `x.mean(dim=(2, 3))`) but runs the kept-dims form, and Squeeze shares its input's
/// encoding, so the graph computes the same values. Returns how many nodes were rewritten.
pub fn keep_reduced_dims(model: &mut ModelProto) -> usize {
    let Some(g) = model.graph.as_mut() else { return 0 };
    let reductions: Vec<&str> = AXES_INPUT_SINCE_18.iter().copied().chain(["ReduceSum"]).collect();
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut count = 0;
    for mut n in std::mem::take(&mut g.node) {
        let keep = n.attribute.iter().position(|a| a.name == "keepdims");
        let axes = n.attribute.iter().find(|a| a.name == "axes").map(|a| a.ints.clone());
        let dropping = keep.is_some_and(|k| n.attribute[k].i == 0);
        let (Some(k), Some(axes), true, true) =
            (keep, axes, dropping, n.domain.is_empty() && reductions.contains(&n.op_type.as_str()))
        else {
            nodes.push(n);
            continue;
        };
        n.attribute[k].i = 1;
        let out = n.output[0].clone();
        let kept = format!("{out}_keepdims");
        let axes_name = format!("{out}_squeeze_axes");
        g.initializer.push(TensorProto {
            name: axes_name.clone(),
            dims: vec![axes.len() as i64],
            data_type: data_type::INT64,
            raw_data: axes.iter().flat_map(|a| a.to_le_bytes()).collect(),
            ..Default::default()
        });
        n.output[0] = kept.clone();
        let squeeze = node("Squeeze", format!("{}/squeeze", n.name), vec![kept, axes_name], out, vec![]);
        nodes.push(n);
        nodes.push(squeeze);
        count += 1;
    }
    g.node = nodes;
    count
}

/// Rewrite `model` into a QDQ graph using `ranges` for activations.
pub fn to_qdq(model: &ModelProto, ranges: &Ranges, cfg: &QdqConfig) -> Result<ModelProto, QuantError> {
    let mut out = model.clone();
    let g = out.graph.as_mut().ok_or(QuantError::NoGraph)?;
    let inits: HashMap<String, TensorProto> = g.initializer.iter().map(|t| (t.name.clone(), t.clone())).collect();
    let old_nodes = std::mem::take(&mut g.node);
    let graph_outputs: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let ty = elem_types(model);
    let is_float = |t: &str| ty.get(t) == Some(&data_type::FLOAT);
    // Bits per tensor: A8 wins when any consumer or producer MatMul asks for it.
    let mut bits_of: HashMap<String, ActBits> = HashMap::new();
    for n in &old_nodes {
        if cfg.a8_nodes.contains(&n.name) {
            for t in n.input.iter().chain(&n.output) {
                bits_of.insert(t.clone(), ActBits::U8);
            }
        }
    }
    // Dynamic x dynamic MatMul: its second input is 8-bit on the NPU (module docs).
    let is_init: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    for n in old_nodes.iter().filter(|n| n.op_type == "MatMul" && n.input.len() == 2) {
        if !is_init.contains(n.input[0].as_str()) && !is_init.contains(n.input[1].as_str()) {
            bits_of.insert(n.input[1].clone(), ActBits::U8);
        }
    }
    let bits = |t: &str| bits_of.get(t).copied().unwrap_or(cfg.act);
    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut nodes: Vec<NodeProto> = Vec::new();
    // Original tensor name -> name of its dequantized version.
    let mut dq: HashMap<String, String> = HashMap::new();
    let mut counter = 0usize;
    let mut qdq = |t: &str,
                   src: &str,
                   dst: &str,
                   b: ActBits,
                   nodes: &mut Vec<NodeProto>,
                   new_inits: &mut Vec<TensorProto>|
     -> Result<(), QuantError> {
        let &(lo, hi) = ranges.get(t).ok_or_else(|| QuantError::NoRange(t.to_string()))?;
        let (scale, zp) = encoding(lo, hi, b);
        counter += 1;
        let (sn, zn) = (format!("{t}_qscale"), format!("{t}_qzp"));
        new_inits.push(scalar_f32(&sn, scale));
        new_inits.push(scalar_zp(&zn, zp, b));
        let q = format!("{t}_quantized");
        nodes.push(node(
            "QuantizeLinear",
            format!("qdq_q_{counter}"),
            vec![src.into(), sn.clone(), zn.clone()],
            q.clone(),
            vec![],
        ));
        nodes.push(node("DequantizeLinear", format!("qdq_dq_{counter}"), vec![q, sn, zn], dst.into(), vec![]));
        Ok(())
    };
    // Weights: int8 symmetric + DQ. Other float constants: activation-style encodings of their data.
    let weight_of = weight_axes(&old_nodes, &inits);
    let mut kept_inits: Vec<TensorProto> = Vec::new();
    let mut float_params: HashSet<String> = HashSet::new();
    for n in &old_nodes {
        for (i, t) in n.input.iter().enumerate() {
            if float_param(&n.op_type, i) {
                float_params.insert(t.clone());
            }
        }
    }
    for t in g.initializer.drain(..) {
        if t.data_type != data_type::FLOAT || float_params.contains(&t.name) {
            kept_inits.push(t);
            continue;
        }
        let data = f32_data(&t);
        if let Some(&axis) = weight_of.get(&t.name) {
            // Per channel along `axis` (a MatMul's output column, a Conv's or Gemm's output row).
            let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            let n = dims[axis];
            let inner: usize = dims[axis + 1..].iter().product();
            let channel = |i: usize| if cfg.per_channel { (i / inner) % n } else { 0 };
            let channels = if cfg.per_channel { n } else { 1 };
            let mut scales = vec![0f32; channels];
            for (i, v) in data.iter().enumerate() {
                scales[channel(i)] = scales[channel(i)].max(v.abs());
            }
            scales.iter_mut().for_each(|s| *s = (*s / 127.0).max(1e-12));
            let q: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, v)| (v / scales[channel(i)]).round().clamp(-127.0, 127.0) as i8 as u8)
                .collect();
            let qn = format!("{}_quantized", t.name);
            kept_inits.push(TensorProto {
                name: qn.clone(),
                dims: t.dims.clone(),
                data_type: data_type::INT8,
                raw_data: q,
                ..Default::default()
            });
            let (sn, zn) = (format!("{}_scale", t.name), format!("{}_zero_point", t.name));
            let dims = if cfg.per_channel { vec![n as i64] } else { vec![] };
            kept_inits.push(TensorProto {
                name: sn.clone(),
                dims: dims.clone(),
                data_type: data_type::FLOAT,
                raw_data: scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                ..Default::default()
            });
            kept_inits.push(TensorProto {
                name: zn.clone(),
                dims,
                data_type: data_type::INT8,
                raw_data: vec![0u8; channels],
                ..Default::default()
            });
            let attrs = if cfg.per_channel { vec![quadbench_onnx::attr_int("axis", axis as i64)] } else { vec![] };
            nodes.push(node(
                "DequantizeLinear",
                format!("{}_dq", t.name),
                vec![qn, sn, zn],
                format!("{}_dequantized", t.name),
                attrs,
            ));
            dq.insert(t.name.clone(), format!("{}_dequantized", t.name));
        } else {
            // Small float constants (biases, constant planes): stored quantized, range from data.
            let b = bits(&t.name);
            let lo = data.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let (scale, zp) = encoding(lo, hi, b);
            let q: Vec<u8> = data
                .iter()
                .flat_map(|v| {
                    let x = ((v / scale).round() + zp as f32).clamp(0.0, b.qmax()) as u16;
                    if b == ActBits::U8 { vec![x as u8] } else { x.to_le_bytes().to_vec() }
                })
                .collect();
            let qn = format!("{}_quantized", t.name);
            kept_inits.push(TensorProto {
                name: qn.clone(),
                dims: t.dims.clone(),
                data_type: b.dtype(),
                raw_data: q,
                ..Default::default()
            });
            let (sn, zn) = (format!("{}_qscale", t.name), format!("{}_qzp", t.name));
            kept_inits.push(scalar_f32(&sn, scale));
            kept_inits.push(scalar_zp(&zn, zp, b));
            nodes.push(node(
                "DequantizeLinear",
                format!("{}_dq", t.name),
                vec![qn, sn, zn],
                format!("{}_dequantized", t.name),
                vec![],
            ));
            dq.insert(t.name.clone(), format!("{}_dequantized", t.name));
        }
    }
    g.initializer = kept_inits;
    // Float graph inputs: Q/DQ at the boundary.
    for i in g.input.clone() {
        let is_float =
            i.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).is_some_and(|t| t.elem_type == data_type::FLOAT);
        if is_float && !dq.contains_key(&i.name) {
            let d = format!("{}_dequantized", i.name);
            qdq(&i.name, &i.name, &d, bits(&i.name), &mut nodes, &mut new_inits)?;
            dq.insert(i.name.clone(), d);
        }
    }
    for mut n in old_nodes {
        for t in n.input.iter_mut() {
            if let Some(d) = dq.get(t.as_str()) {
                *t = d.clone();
            }
        }
        // Only float outputs are encoded: int64 shapes, indices and masks pass through as they are.
        let outs: Vec<String> = n.output.iter().filter(|o| is_float(o)).cloned().collect();
        let is_graph_out: Vec<bool> = outs.iter().map(|o| graph_outputs.contains(o)).collect();
        for o in n.output.iter_mut().filter(|o| is_float(o) && graph_outputs.contains(o.as_str())) {
            *o = format!("{o}_float");
        }
        nodes.push(n);
        for (o, go) in outs.iter().zip(is_graph_out) {
            // Graph outputs keep their name: the chain ends in it, in-graph consumers read it too.
            let (src, dst) =
                if go { (format!("{o}_float"), o.clone()) } else { (o.clone(), format!("{o}_dequantized")) };
            qdq(o, &src, &dst, bits(o), &mut nodes, &mut new_inits)?;
            dq.insert(o.clone(), dst);
        }
    }
    g.node = nodes;
    g.initializer.extend(new_inits);
    // Opset 21 admits uint16 Quantize/DequantizeLinear.
    let from = out.opset_import.iter().find(|o| o.domain.is_empty()).map_or(21, |o| o.version);
    if from < 18 {
        reduce_axes_to_inputs(g);
    }
    for o in out.opset_import.iter_mut().filter(|o| o.domain.is_empty()) {
        o.version = o.version.max(21);
    }
    out.ir_version = out.ir_version.max(10);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_covers_range_and_zero() {
        let (s, zp) = encoding(-1.0, 3.0, ActBits::U8);
        assert!((s - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(zp, 64);
        let (s, zp) = encoding(0.5, 2.0, ActBits::U16);
        assert!((s - 2.0 / 65535.0).abs() < 1e-9);
        assert_eq!(zp, 0);
    }

    /// The adapter matrices (second inputs of run-time x run-time MatMuls) are 8-bit in W8A16;
    /// the activation and the weighted MatMul's input stay 16-bit.
    #[test]
    fn second_input_of_a_dynamic_matmul_is_8_bit() {
        use quadbench_onnx::{GraphBuilder, proto::data_type::FLOAT};
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", FLOAT, &[1, 4, 8]);
        let a = g.input("a", FLOAT, &[8, 2]);
        let b = g.input("b", FLOAT, &[2, 8]);
        let w = g.init_f32("w", &[8, 8], &[0.1; 64]);
        let base = g.node("MatMul", &[&x, &w], vec![]);
        let down = g.node("MatMul", &[&x, &a], vec![]);
        let up = g.node("MatMul", &[&down, &b], vec![]);
        let y = g.node_to("Add", &[&base, &up], vec![], "y");
        g.output(&y, FLOAT, &[1, 4, 8]);
        let m = g.finish("t", &[]);
        let ranges: Ranges = activation_tensors(&m).into_iter().map(|t| (t, (-1.0, 1.0))).collect();
        let q = to_qdq(&m, &ranges, &QdqConfig { act: ActBits::U16, a8_nodes: HashSet::new(), per_channel: false })
            .unwrap();
        let zp_type = |t: &str| {
            q.graph
                .as_ref()
                .unwrap()
                .initializer
                .iter()
                .find(|i| i.name == format!("{t}_qzp"))
                .unwrap_or_else(|| panic!("no zero point for {t}"))
                .data_type
        };
        assert_eq!((zp_type("a"), zp_type("b")), (data_type::UINT8, data_type::UINT8));
        assert_eq!(
            (zp_type("x"), zp_type(&down), zp_type("y")),
            (data_type::UINT16, data_type::UINT16, data_type::UINT16)
        );
    }

    /// torch's run-time reshape target (Shape -> Reshape) is int64: it is neither calibrated nor
    /// wrapped in Q/DQ, and the Reshape still reads it unchanged.
    #[test]
    fn int64_shape_values_are_left_alone() {
        use quadbench_onnx::{GraphBuilder, proto::data_type::FLOAT};
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", FLOAT, &[1, 4, 2, 2]);
        let r = g.node("Relu", &[&x], vec![]);
        let s = g.node("Shape", &[&r], vec![]);
        let cast = g.node("Cast", &[&s], vec![quadbench_onnx::attr_int("to", data_type::FLOAT as i64)]);
        let y = g.node_to("Reshape", &[&r, &s], vec![], "y");
        g.output(&y, FLOAT, &[1, 4, 2, 2]);
        g.output(&cast, FLOAT, &[4]);
        let m = g.finish("t", &[]);
        let acts = activation_tensors(&m);
        assert_eq!(acts, vec![x.clone(), r.clone(), cast.clone(), y.clone()]);
        let ranges: Ranges = acts.into_iter().map(|t| (t, (-1.0, 1.0))).collect();
        let q = to_qdq(&m, &ranges, &QdqConfig { act: ActBits::U16, a8_nodes: HashSet::new(), per_channel: false })
            .unwrap();
        let nodes = &q.graph.as_ref().unwrap().node;
        assert!(nodes.iter().filter(|n| n.op_type == "QuantizeLinear").all(|n| n.input[0] != s));
        let reshape = nodes.iter().find(|n| n.op_type == "Reshape").unwrap();
        assert_eq!(reshape.input, vec![format!("{r}_dequantized"), s.clone()]);
        assert_eq!(elem_types(&q)[&s], data_type::INT64);
    }

    /// Conv and Gemm weights are int8 like MatMul's, per output channel along the right axis: a
    /// Conv's `[out, in, kh, kw]` and a transB = 1 Gemm's `[out, in]` on axis 0, a transB = 0
    /// Gemm's `[in, out]` on axis 1; each channel's largest magnitude maps to 127.
    #[test]
    fn conv_and_gemm_weights_are_int8_per_output_channel() {
        use quadbench_onnx::{GraphBuilder, attr_int, proto::data_type::FLOAT};
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", FLOAT, &[1, 2, 1, 1]);
        let wc = g.init_f32("wc", &[2, 2, 1, 1], &[1.0, -0.5, 0.25, 0.125]);
        let c = g.node("Conv", &[&x, &wc], vec![]);
        let f = g.node("Flatten", &[&c], vec![]);
        let w1 = g.init_f32("w1", &[2, 2], &[2.0, 1.0, -4.0, 1.0]);
        let y1 = g.node("Gemm", &[&f, &w1], vec![attr_int("transB", 1)]);
        let w0 = g.init_f32("w0", &[2, 2], &[2.0, 1.0, -4.0, 1.0]);
        let y = g.node_to("Gemm", &[&y1, &w0], vec![attr_int("transB", 0)], "y");
        g.output(&y, FLOAT, &[1, 2]);
        let m = g.finish("t", &[]);
        let ranges: Ranges = activation_tensors(&m).into_iter().map(|t| (t, (-4.0, 4.0))).collect();
        let q =
            to_qdq(&m, &ranges, &QdqConfig { act: ActBits::U16, a8_nodes: HashSet::new(), per_channel: true }).unwrap();
        let gr = q.graph.as_ref().unwrap();
        let init = |n: &str| gr.initializer.iter().find(|t| t.name == n).unwrap();
        let scales = |n: &str| -> Vec<f32> {
            init(&format!("{n}_scale")).raw_data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        };
        for (w, axis, want) in [
            ("wc", 0, [1.0 / 127.0, 0.25 / 127.0]),
            ("w1", 0, [2.0 / 127.0, 4.0 / 127.0]),
            ("w0", 1, [4.0 / 127.0, 1.0 / 127.0]),
        ] {
            assert_eq!(init(&format!("{w}_quantized")).data_type, data_type::INT8, "{w}");
            assert_eq!(scales(w), want, "{w}");
            let dq = gr.node.iter().find(|n| n.name == format!("{w}_dq")).unwrap();
            assert_eq!(dq.attribute.iter().find(|a| a.name == "axis").map(|a| a.i), Some(axis), "{w}");
        }
        let q8 = |w: &str| init(&format!("{w}_quantized")).raw_data.iter().map(|&b| b as i8).collect::<Vec<i8>>();
        assert_eq!(q8("wc"), vec![127, -64, 127, 64]);
        assert_eq!(q8("w0"), vec![64, 127, -127, 127]);
    }

    /// A reduction that drops dimensions becomes keepdims=1 + Squeeze of the same axes; and at
    /// opset 21 its axes are an input.
    #[test]
    fn reductions_keep_their_dims_and_take_axes_as_input() {
        use quadbench_onnx::{GraphBuilder, attr_int, attr_ints, proto::data_type::FLOAT};
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", FLOAT, &[1, 4, 2, 2]);
        let y = g.node_to("ReduceMean", &[&x], vec![attr_ints("axes", &[2, 3]), attr_int("keepdims", 0)], "y");
        g.output(&y, FLOAT, &[1, 4]);
        let mut m = g.finish("t", &[]);
        m.opset_import.iter_mut().for_each(|o| o.version = 17);
        assert_eq!(keep_reduced_dims(&mut m), 1);
        let gr = m.graph.as_ref().unwrap();
        let ops: Vec<&str> = gr.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["ReduceMean", "Squeeze"]);
        assert_eq!(gr.node[1].output, vec!["y".to_string()]);
        let axes = gr.initializer.iter().find(|t| t.name == gr.node[1].input[1]).unwrap();
        assert_eq!(axes.raw_data, [2i64, 3].iter().flat_map(|a| a.to_le_bytes()).collect::<Vec<u8>>());
        let ranges: Ranges = activation_tensors(&m).into_iter().map(|t| (t, (-1.0, 1.0))).collect();
        let q = to_qdq(&m, &ranges, &QdqConfig { act: ActBits::U16, a8_nodes: HashSet::new(), per_channel: false })
            .unwrap();
        let rm = q.graph.as_ref().unwrap().node.iter().find(|n| n.op_type == "ReduceMean").unwrap();
        assert!(rm.attribute.iter().all(|a| a.name != "axes") && rm.input.len() == 2, "{rm:?}");
    }
}
