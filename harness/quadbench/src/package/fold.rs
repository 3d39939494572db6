//! Constant folding of a graph with static input shapes, before quantization.
//!
//! Exporters such as torch.onnx compute reshape targets at run time (`Shape` -> `Slice` ->
//! `Concat` -> `Reshape`) and write constants as `Constant` nodes. With static input shapes every
//! such value is a constant: folding them leaves a graph whose only run-time tensors are the
//! float activations the QDQ rewrite encodes, whose Reshape targets and Resize scales are
//! initializers (what QNN HTP reads as static parameters), and without int64 shape arithmetic,
//! which HTP does not run.
//!
//! `Constant` nodes become initializers here; the other constant subgraphs (every node whose
//! inputs are all constants, and `Shape` of any tensor) are evaluated by ONNX Runtime on the CPU
//! EP once, on zero inputs (their values cannot depend on the inputs' data), and replaced by
//! their values.

use quadbench_onnx::proto::{DimensionValue, ModelProto, TensorProto, ValueInfoProto, data_type};
use std::collections::HashSet;

/// Ops never folded: their outputs differ per run or they are already the QDQ form.
const NOT_FOLDED: &[&str] = &[
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "QuantizeLinear",
    "DequantizeLinear",
];

#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(
        "graph input `{0}` has no static shape: constant folding needs static input shapes (export with fixed sizes)"
    )]
    Dynamic(String),
    #[error("graph input `{0}` has element type {1}, which folding cannot feed (f32 and int64 only)")]
    InputType(String, i32),
    #[error("folded value `{0}` has an element type folding does not write (f32, int64, int32 only)")]
    ValueType(String),
    #[error("onnx runtime while folding constants: {0}")]
    Runtime(String),
}

fn static_shape(v: &ValueInfoProto) -> Option<Vec<i64>> {
    let t = v.r#type.as_ref()?.tensor_type.as_ref()?;
    t.shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(DimensionValue::DimValue(n)) if n >= 0 => Some(n),
            _ => None,
        })
        .collect()
}

fn elem_type(v: &ValueInfoProto) -> i32 {
    v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).map_or(0, |t| t.elem_type)
}

/// `Constant` nodes with a `value` tensor become initializers of the same name.
pub fn constants_to_initializers(model: &mut ModelProto) {
    let Some(g) = model.graph.as_mut() else { return };
    let mut kept = Vec::with_capacity(g.node.len());
    for n in std::mem::take(&mut g.node) {
        let value = (n.op_type == "Constant" && n.domain.is_empty() && n.output.len() == 1)
            .then(|| n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.clone()))
            .flatten();
        match value {
            Some(mut t) => {
                t.name = n.output[0].clone();
                g.initializer.push(t);
            }
            None => kept.push(n),
        }
    }
    g.node = kept;
}

/// Outputs of nodes whose value is known before run time (graph nodes are in topological order).
pub fn constant_tensors(model: &ModelProto) -> HashSet<String> {
    let Some(g) = model.graph.as_ref() else { return HashSet::new() };
    let mut known: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let mut folded = HashSet::new();
    for n in &g.node {
        let foldable = n.domain.is_empty()
            && !NOT_FOLDED.contains(&n.op_type.as_str())
            && !n.attribute.iter().any(|a| a.r#type == 5 || a.r#type == 10) // graph attributes (If, Loop)
            && (n.op_type == "Shape" || n.input.iter().all(|i| i.is_empty() || known.contains(i)));
        if foldable {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                known.insert(o.clone());
                folded.insert(o.clone());
            }
        }
    }
    folded
}

/// Fold every constant subgraph of `model` (inputs must have static shapes); returns how many
/// nodes were removed.
pub fn fold(env: &ort::environment::Environment, model: &mut ModelProto) -> Result<usize, FoldError> {
    let before = model.graph.as_ref().map_or(0, |g| g.node.len());
    constants_to_initializers(model);
    let folded = constant_tensors(model);
    let Some(g) = model.graph.as_ref() else { return Ok(0) };
    // Folded values read by a node that stays, or graph outputs: these become initializers.
    let graph_outputs: Vec<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let mut needed: Vec<String> = Vec::new();
    for n in g.node.iter().filter(|n| !n.output.iter().any(|o| folded.contains(o))) {
        for i in &n.input {
            if folded.contains(i) && !needed.contains(i) {
                needed.push(i.clone());
            }
        }
    }
    for o in &g.output {
        if folded.contains(&o.name) && !needed.contains(&o.name) {
            needed.push(o.name.clone());
        }
    }
    let mut values = Vec::new();
    if !needed.is_empty() {
        values = evaluate(env, model, &needed)?;
    }
    let g = model.graph.as_mut().expect("checked above");
    g.node.retain(|n| !n.output.iter().any(|o| folded.contains(o)));
    g.initializer.extend(values);
    // Initializers nothing reads any more (a folded subgraph's inputs).
    let used: HashSet<String> = g.node.iter().flat_map(|n| n.input.iter().cloned()).chain(graph_outputs).collect();
    g.initializer.retain(|t| used.contains(&t.name));
    Ok(before - g.node.len())
}

/// The values of `names` in one CPU run on zero inputs.
fn evaluate(
    env: &ort::environment::Environment,
    model: &ModelProto,
    names: &[String],
) -> Result<Vec<TensorProto>, FoldError> {
    use ort::session::{Session, SessionInputValue};
    use ort::value::{DynValue, Tensor};
    fn rt(e: impl std::fmt::Display) -> FoldError {
        FoldError::Runtime(e.to_string())
    }
    let mut probe = model.clone();
    let g = probe.graph.as_mut().expect("caller checked");
    let inits: HashSet<&str> =
        model.graph.as_ref().map_or(HashSet::new(), |g| g.initializer.iter().map(|t| t.name.as_str()).collect());
    g.output = names.iter().map(|n| ValueInfoProto { name: n.clone(), ..Default::default() }).collect();
    let mut feeds: Vec<(String, DynValue)> = Vec::new();
    for i in g.input.iter().filter(|i| !inits.contains(i.name.as_str())) {
        let shape = static_shape(i).ok_or_else(|| FoldError::Dynamic(i.name.clone()))?;
        let n = shape.iter().product::<i64>().max(0) as usize;
        let v: DynValue = match elem_type(i) {
            data_type::FLOAT => Tensor::from_array((shape, vec![0f32; n])).map_err(rt)?.into_dyn(),
            data_type::INT64 => Tensor::from_array((shape, vec![0i64; n])).map_err(rt)?.into_dyn(),
            t => return Err(FoldError::InputType(i.name.clone(), t)),
        };
        feeds.push((i.name.clone(), v));
    }
    let cpu = env.devices().filter(|d| d.ep().is_ok_and(|e| e == "CPUExecutionProvider"));
    let mut s = Session::builder(env)
        .map_err(rt)?
        .with_devices(cpu, None)
        .map_err(rt)?
        .commit_from_memory(&quadbench_onnx::encode(&probe))
        .map_err(rt)?;
    let inputs: Vec<(String, SessionInputValue<'_>)> = feeds.iter().map(|(n, v)| (n.clone(), v.into())).collect();
    let out = s.run(inputs).map_err(rt)?;
    let mut tensors = Vec::new();
    for name in names {
        let v = out.get(name.as_str()).ok_or_else(|| FoldError::ValueType(name.clone()))?;
        let (dims, data_type, raw_data) = if let Ok((s, d)) = v.try_extract_tensor::<i64>() {
            (s.to_vec(), data_type::INT64, d.iter().flat_map(|x| x.to_le_bytes()).collect())
        } else if let Ok((s, d)) = v.try_extract_tensor::<f32>() {
            (s.to_vec(), data_type::FLOAT, d.iter().flat_map(|x| x.to_le_bytes()).collect())
        } else if let Ok((s, d)) = v.try_extract_tensor::<i32>() {
            (s.to_vec(), data_type::INT32, d.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
        } else {
            return Err(FoldError::ValueType(name.clone()));
        };
        tensors.push(TensorProto { name: name.clone(), dims, data_type, raw_data, ..Default::default() });
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quadbench_onnx::{GraphBuilder, attr_int, proto::AttributeProto};

    /// torch's reshape pattern: Shape -> Slice -> Concat(Constant) -> Reshape. The int64 chain
    /// and the Constant are constants; the Reshape and the float ops are not.
    #[test]
    fn shape_chain_and_constants_are_constant() {
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", data_type::FLOAT, &[1, 4, 2, 2]);
        let r = g.node("Relu", &[&x], vec![]);
        let s = g.node("Shape", &[&r], vec![]);
        let (st, en) = (g.init_i64("st", &[0]), g.init_i64("en", &[2]));
        let sl = g.node("Slice", &[&s, &st, &en], vec![]);
        let c = g.node(
            "Constant",
            &[],
            vec![AttributeProto {
                name: "value".into(),
                r#type: 4,
                t: Some(TensorProto {
                    dims: vec![1],
                    data_type: data_type::INT64,
                    int64_data: vec![-1],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        );
        let cat = g.node("Concat", &[&sl, &c], vec![attr_int("axis", 0)]);
        let y = g.node_to("Reshape", &[&r, &cat], vec![], "y");
        g.output(&y, data_type::FLOAT, &[1, 4, 4]);
        let mut m = g.finish("t", &[]);
        constants_to_initializers(&mut m);
        let k = constant_tensors(&m);
        assert!(k.contains(&s) && k.contains(&sl) && k.contains(&cat), "{k:?}");
        assert!(!k.contains(&r) && !k.contains(&y), "{k:?}");
        let g = m.graph.as_ref().unwrap();
        assert!(g.node.iter().all(|n| n.op_type != "Constant"));
        assert!(g.initializer.iter().any(|t| t.name == c && t.int64_data == [-1]));
    }
}
