//! The graph side of `package import`: finding the layers LoRA can adapt in an exported ONNX
//! graph (MatMul with a weight initializer, Gemm, Conv), naming them by module path, grafting the
//! LoRA branch onto them with A and B as graph inputs (unified graph), and merging one adapter
//! into the weights (a task's separate baseline).
//!
//! Module paths come from node names for TorchScript exports (`/down_blocks.0/attentions.0/to_q/
//! MatMul` -> `down_blocks.0.attentions.0.to_q`; the weight is then often `onnx::MatMul_N`,
//! stored transposed `[in, out]`), from initializer names (`<path>.weight`, e.g. a dynamo export's
//! Conv and Gemm) and, for dynamo exports whose Linear weights became transposed `val_N`
//! constants, from the node's `pkg.torch.onnx.name_scopes` metadata (the last module scope).

use super::PackageError;
use quadbench_onnx::proto::{
    AttributeProto, Dimension, DimensionValue, ModelProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto, data_type,
};

/// The operator an adapted layer is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerOp {
    /// `x @ W`, W `[in, out]` (torch Linear, transposed on export).
    MatMul,
    /// `alpha * x @ op(W) + beta * C`; W `[out, in]` with transB = 1.
    Gemm { trans_b: bool, alpha: f32 },
    /// 2-D convolution, W `[out, in, kh, kw]`, group 1.
    Conv { kernel: [usize; 2] },
}

impl LayerOp {
    pub fn name(&self) -> &'static str {
        match self {
            LayerOp::MatMul => "MatMul",
            LayerOp::Gemm { .. } => "Gemm",
            LayerOp::Conv { .. } => "Conv",
        }
    }
}

/// A layer of the graph that a LoRA adapter can target.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Module path (`down_blocks.0.attentions.0.to_q`).
    pub module: String,
    /// Index of its node in the graph.
    pub node: usize,
    pub op: LayerOp,
    /// Its weight initializer.
    pub weight: String,
    pub in_features: usize,
    pub out_features: usize,
    /// Why a LoRA branch cannot be grafted here (grouped conv, ...), if so.
    pub unsupported: Option<String>,
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// The module path a node's name carries (`/a.0/b/MatMul` -> `a.0.b`), if any.
fn module_from_node_name(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.trim_start_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    (parts.len() >= 2).then(|| parts[..parts.len() - 1].join("."))
}

/// The module path torch's dynamo exporter records on a node: `pkg.torch.onnx.name_scopes` is
/// `['', 'down_blocks.0', ..., 'down_blocks.0.attentions.0.to_q', 'linear']`, the scopes from the
/// root module down, then the op; the module is the scope before the op.
fn module_from_metadata(n: &NodeProto) -> Option<String> {
    let v = &n.metadata_props.iter().find(|p| p.key == "pkg.torch.onnx.name_scopes")?.value;
    let scopes: Vec<&str> = v
        .trim()
        .strip_prefix('[')?
        .strip_suffix(']')?
        .split(',')
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"'))
        .collect();
    (scopes.len() >= 2).then(|| scopes[scopes.len() - 2].to_string()).filter(|m| !m.is_empty())
}

/// Every MatMul, Gemm and Conv node whose weight is an initializer, named by module path (with
/// `prefix` removed where a path starts with it).
pub fn layers(model: &ModelProto, prefix: Option<&str>) -> Vec<Layer> {
    let Some(g) = model.graph.as_ref() else { return Vec::new() };
    let inits: std::collections::HashMap<&str, &TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut out = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if !matches!(n.op_type.as_str(), "MatMul" | "Gemm" | "Conv") || !n.domain.is_empty() || n.input.len() < 2 {
            continue;
        }
        let Some(w) = inits.get(n.input[1].as_str()).filter(|t| t.data_type == data_type::FLOAT) else { continue };
        let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
        let mut unsupported = None;
        let (op, in_features, out_features) = match (n.op_type.as_str(), dims.len()) {
            ("MatMul", 2) => (LayerOp::MatMul, dims[0], dims[1]),
            ("Gemm", 2) => {
                let trans_b = attr(n, "transB").is_some_and(|a| a.i == 1);
                if attr(n, "transA").is_some_and(|a| a.i == 1) {
                    unsupported = Some("Gemm with transA = 1".to_string());
                }
                let alpha = attr(n, "alpha").map_or(1.0, |a| a.f);
                let (fin, fout) = if trans_b { (dims[1], dims[0]) } else { (dims[0], dims[1]) };
                (LayerOp::Gemm { trans_b, alpha }, fin, fout)
            }
            ("Conv", 4) => {
                if attr(n, "group").is_some_and(|a| a.i != 1) {
                    unsupported = Some("grouped convolution (group != 1)".to_string());
                }
                (LayerOp::Conv { kernel: [dims[2], dims[3]] }, dims[1], dims[0])
            }
            _ => continue,
        };
        let module = w
            .name
            .strip_suffix(".weight")
            .map(str::to_string)
            .or_else(|| module_from_metadata(n))
            .or_else(|| module_from_node_name(&n.name))
            .unwrap_or_else(|| w.name.clone());
        let module = prefix.and_then(|p| module.strip_prefix(p)).map_or(module.clone(), str::to_string);
        out.push(Layer { module, node: i, op, weight: w.name.clone(), in_features, out_features, unsupported });
    }
    out
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d)) }).collect(),
                }),
            }),
        }),
        doc_string: String::new(),
    }
}

fn node(op: &str, name: String, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name,
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

/// A LoRA branch to graft: the layer, the graph inputs' names and the slot's rank.
pub struct Branch<'a> {
    pub layer: &'a Layer,
    pub input_a: String,
    pub input_b: String,
    pub rank: usize,
}

/// Graft `y = layer(x) + B(A(x))` onto every branch's layer, A and B being graph inputs
/// (MatMul: A `[in, r]`, B `[r, out]`; Conv: A `[r, in, kh, kw]` with the layer's stride,
/// padding and dilation, B `[out, r, 1, 1]`). No scale in the graph: the fed B carries it.
pub fn graft(model: &ModelProto, branches: &[Branch<'_>]) -> ModelProto {
    let mut m = model.clone();
    let g = m.graph.as_mut().expect("a decoded model has a graph");
    let mut order: Vec<&Branch<'_>> = branches.iter().collect();
    // From the last node back, so that earlier indices stay valid while nodes are inserted.
    order.sort_by_key(|b| std::cmp::Reverse(b.layer.node));
    for b in order {
        let l = b.layer;
        let n = &mut g.node[l.node];
        let y = n.output[0].clone();
        let base = format!("{y}__lora_base");
        n.output[0] = base.clone();
        let x = n.input[0].clone();
        let (down, up) = (format!("{y}__lora_down"), format!("{y}__lora_up"));
        let path = format!("/lora/{}", l.module);
        let r = b.rank as i64;
        let (fin, fout) = (l.in_features as i64, l.out_features as i64);
        let new = match l.op {
            LayerOp::Conv { kernel } => {
                // A sees what the layer sees: same stride, padding, dilation (and auto_pad).
                let attrs: Vec<AttributeProto> = n.attribute.iter().filter(|a| a.name != "group").cloned().collect();
                g.input.push(value_info(&b.input_a, &[r, fin, kernel[0] as i64, kernel[1] as i64]));
                g.input.push(value_info(&b.input_b, &[fout, r, 1, 1]));
                vec![
                    node("Conv", format!("{path}/down/Conv"), &[&x, &b.input_a], &down, attrs),
                    node("Conv", format!("{path}/up/Conv"), &[&down, &b.input_b], &up, vec![]),
                ]
            }
            LayerOp::MatMul | LayerOp::Gemm { .. } => {
                g.input.push(value_info(&b.input_a, &[fin, r]));
                g.input.push(value_info(&b.input_b, &[r, fout]));
                vec![
                    node("MatMul", format!("{path}/down/MatMul"), &[&x, &b.input_a], &down, vec![]),
                    node("MatMul", format!("{path}/up/MatMul"), &[&down, &b.input_b], &up, vec![]),
                ]
            }
        };
        let add = node("Add", format!("{path}/Add"), &[&base, &up], &y, vec![]);
        let at = l.node + 1;
        g.node.splice(at..at, new.into_iter().chain([add]));
    }
    m
}

/// `W + scale * delta` for one layer of one adapter, in the weight's own layout. `a` and `b` are
/// PEFT's layout (A `[r, in(, kh, kw)]`, B `[out, r(, 1, 1)]`).
pub fn merged_weight(l: &Layer, w: &[f32], a: &[f32], b: &[f32], rank: usize, scale: f32) -> Vec<f32> {
    let (fin, fout) = (l.in_features, l.out_features);
    let mut out = w.to_vec();
    match l.op {
        LayerOp::Conv { kernel } => {
            // W[o, c, kh, kw] += s * sum_r B[o, r] A[r, c, kh, kw]
            let k = fin * kernel[0] * kernel[1];
            for o in 0..fout {
                for r in 0..rank {
                    let f = scale * b[o * rank + r];
                    for (dst, src) in out[o * k..(o + 1) * k].iter_mut().zip(&a[r * k..(r + 1) * k]) {
                        *dst += f * src;
                    }
                }
            }
        }
        LayerOp::MatMul | LayerOp::Gemm { .. } => {
            let (s, out_in) = match l.op {
                // Gemm's alpha multiplies op(W): the merged W carries delta / alpha.
                LayerOp::Gemm { trans_b, alpha } => (scale / alpha, trans_b),
                _ => (scale, false),
            };
            for o in 0..fout {
                for i in 0..fin {
                    let d: f32 = (0..rank).map(|r| b[o * rank + r] * a[r * fin + i]).sum();
                    let at = if out_in { o * fin + i } else { i * fout + o };
                    out[at] += s * d;
                }
            }
        }
    }
    out
}

/// Replace the float data of initializer `name`; when other nodes than `node` use it too, the
/// node gets its own copy (`<name>__merged_<node>`) so that they keep the original weight.
pub fn set_weight(m: &mut ModelProto, node: usize, name: &str, data: &[f32]) -> Result<(), PackageError> {
    let g = m.graph.as_mut().expect("a decoded model has a graph");
    let users = g.node.iter().filter(|n| n.input.iter().any(|i| i == name)).count();
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let pos = g
        .initializer
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| PackageError::Import(format!("initializer `{name}` vanished")))?;
    let target = if users > 1 {
        let mut t = g.initializer[pos].clone();
        t.name = format!("{name}__merged_{node}");
        g.node[node].input[1] = t.name.clone();
        g.initializer.push(t);
        g.initializer.len() - 1
    } else {
        pos
    };
    let t = &mut g.initializer[target];
    t.float_data.clear();
    t.raw_data = raw;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_from_torchscript_node_names() {
        assert_eq!(
            module_from_node_name("/down_blocks.0/attentions.0/to_q/MatMul").as_deref(),
            Some("down_blocks.0.attentions.0.to_q")
        );
        assert_eq!(module_from_node_name("/conv_in/Conv").as_deref(), Some("conv_in"));
        assert_eq!(module_from_node_name("MatMul_3"), None);
    }

    #[test]
    fn module_paths_from_dynamo_metadata() {
        let scopes = "['', 'down_blocks.0', 'down_blocks.0.attentions.0', 'down_blocks.0.attentions.0.to_q', 'linear']";
        let entry = |v: &str| quadbench_onnx::proto::StringStringEntryProto {
            key: "pkg.torch.onnx.name_scopes".into(),
            value: v.into(),
        };
        let n = NodeProto { name: "node_linear".into(), metadata_props: vec![entry(scopes)], ..Default::default() };
        assert_eq!(module_from_metadata(&n).as_deref(), Some("down_blocks.0.attentions.0.to_q"));
        // An op of the root module has no module path.
        let root = NodeProto { metadata_props: vec![entry("['', 'linear']")], ..Default::default() };
        assert_eq!(module_from_metadata(&root), None);
        assert_eq!(module_from_metadata(&NodeProto::default()), None);
    }

    #[test]
    fn merged_linear_and_conv_weights_follow_peft() {
        // MatMul W [in 2, out 3] transposed; A [1, 2] = [1, 2], B [3, 1] = [1, 0, -1], scale 2.
        let l = Layer {
            module: "m".into(),
            node: 0,
            op: LayerOp::MatMul,
            weight: "w".into(),
            in_features: 2,
            out_features: 3,
            unsupported: None,
        };
        let w = merged_weight(&l, &[0.0; 6], &[1.0, 2.0], &[1.0, 0.0, -1.0], 1, 2.0);
        // W'[i, o] = 2 * B[o] A[i]
        assert_eq!(w, vec![2.0, 0.0, -2.0, 4.0, 0.0, -4.0]);
        let g = Layer { op: LayerOp::Gemm { trans_b: true, alpha: 2.0 }, ..l.clone() };
        // [out, in] layout, delta divided by Gemm's alpha.
        assert_eq!(
            merged_weight(&g, &[0.0; 6], &[1.0, 2.0], &[1.0, 0.0, -1.0], 1, 2.0),
            vec![1.0, 2.0, 0.0, 0.0, -1.0, -2.0]
        );
        let c = Layer { op: LayerOp::Conv { kernel: [1, 2] }, in_features: 1, out_features: 2, ..l };
        // A [1, 1, 1, 2] = [3, 4], B [2, 1, 1, 1] = [1, 2], scale 1: W[o] = B[o] * A.
        assert_eq!(merged_weight(&c, &[1.0; 4], &[3.0, 4.0], &[1.0, 2.0], 1, 1.0), vec![4.0, 5.0, 7.0, 9.0]);
    }
}
