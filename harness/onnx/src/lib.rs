//! Standard ONNX model files for quadbench: a small graph builder that writes valid ONNX
//! (opset 17, IR 8) and a reader that extracts a graph's signature and initializers.
//!
//! The wire format is handled by prost over the message subset in [`proto`]; nothing here
//! evaluates graphs (ONNX Runtime does that).

pub mod proto;
pub mod unmodelled;

use proto::*;
use std::path::Path;

/// Opset the builder targets.
pub const OPSET: i64 = 17;
/// IR version matching [`OPSET`].
pub const IR_VERSION: i64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read onnx model {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "{path} is not a valid onnx model (protobuf decode failed: {source}); re-export it or regenerate the package"
    )]
    Decode { path: String, source: prost::DecodeError },
    #[error("{path} holds no graph; re-export the model")]
    NoGraph { path: String },
}

/// Element type of a graph value.
pub fn elem_type_name(t: i32) -> &'static str {
    match t {
        data_type::FLOAT => "f32",
        data_type::FLOAT16 => "f16",
        data_type::UINT8 => "u8",
        data_type::INT8 => "i8",
        data_type::UINT16 => "u16",
        data_type::INT16 => "i16",
        data_type::INT32 => "i32",
        data_type::INT64 => "i64",
        _ => "other",
    }
}

/// Name, element type and shape of a graph input or output (`None` = symbolic dimension).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSig {
    pub name: String,
    pub elem_type: i32,
    pub dims: Vec<Option<i64>>,
}

/// Inputs (excluding those backed by initializers) and outputs of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub inputs: Vec<ValueSig>,
    pub outputs: Vec<ValueSig>,
}

fn value_sig(v: &ValueInfoProto) -> ValueSig {
    let tensor = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let dims = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimensionValue::DimValue(x)) => Some(*x),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    ValueSig { name: v.name.clone(), elem_type: tensor.map(|t| t.elem_type).unwrap_or(0), dims }
}

/// The graph's runtime inputs and outputs.
pub fn signature(model: &ModelProto) -> Signature {
    let Some(g) = model.graph.as_ref() else { return Signature { inputs: vec![], outputs: vec![] } };
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    Signature {
        inputs: g.input.iter().filter(|v| !inits.contains(v.name.as_str())).map(value_sig).collect(),
        outputs: g.output.iter().map(value_sig).collect(),
    }
}

/// Decode an ONNX file.
pub fn read_model(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io { path: path.display().to_string(), source })?;
    decode(&bytes).map_err(|source| OnnxError::Decode { path: path.display().to_string(), source }).and_then(|m| {
        if m.graph.is_none() { Err(OnnxError::NoGraph { path: path.display().to_string() }) } else { Ok(m) }
    })
}

pub fn decode(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
    <ModelProto as prost::Message>::decode(bytes)
}

pub fn encode(model: &ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}

/// Float data of an initializer (raw little-endian or `float_data`).
pub fn initializer_f32(model: &ModelProto, name: &str) -> Option<Vec<f32>> {
    let t = model.graph.as_ref()?.initializer.iter().find(|t| t.name == name)?;
    if t.data_type != data_type::FLOAT {
        return None;
    }
    if !t.raw_data.is_empty() {
        Some(t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    } else {
        Some(t.float_data.clone())
    }
}

/// Number of bytes held by all initializers (the model's weights).
pub fn weight_bytes(model: &ModelProto) -> u64 {
    model.graph.as_ref().map_or(0, |g| {
        g.initializer
            .iter()
            .map(|t| {
                if t.raw_data.is_empty() {
                    4 * (t.float_data.len() + t.int32_data.len()) as u64 + 8 * t.int64_data.len() as u64
                } else {
                    t.raw_data.len() as u64
                }
            })
            .sum()
    })
}

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i, r#type: attribute_type::INT, ..Default::default() }
}
pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: ints.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}
pub fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f, r#type: attribute_type::FLOAT, ..Default::default() }
}
pub fn attr_str(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: s.as_bytes().to_vec(), r#type: attribute_type::STRING, ..Default::default() }
}

fn value_info(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d)) }).collect(),
                }),
            }),
        }),
        doc_string: String::new(),
    }
}

/// Builds one graph node by node. Value names are explicit or generated (`<op>_<n>`).
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder { graph: GraphProto { name: name.into(), ..Default::default() }, counter: 0 }
    }

    /// Declare a runtime input.
    pub fn input(&mut self, name: &str, elem_type: i32, dims: &[i64]) -> String {
        self.graph.input.push(value_info(name, elem_type, dims));
        name.into()
    }

    /// Declare `value` as a graph output.
    pub fn output(&mut self, value: &str, elem_type: i32, dims: &[i64]) {
        self.graph.output.push(value_info(value, elem_type, dims));
    }

    /// A float initializer stored as raw little-endian data.
    pub fn init_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "initializer {name}");
        let mut raw = Vec::with_capacity(data.len() * 4);
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        self.graph.initializer.push(TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            name: name.into(),
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// An int64 initializer (shapes, axes, pads).
    pub fn init_i64(&mut self, name: &str, data: &[i64]) -> String {
        let mut raw = Vec::with_capacity(data.len() * 8);
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        self.graph.initializer.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: data_type::INT64,
            name: name.into(),
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// Add a node with a generated output name; returns that name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.counter += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.counter);
        self.node_to(op, inputs, attrs, &out)
    }

    /// Add a node writing to `out`; returns `out`.
    pub fn node_to(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, out: &str) -> String {
        self.counter += 1;
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.to_string()],
            name: format!("{}_{}", op, self.counter),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out.into()
    }

    /// Finish into a model with the default opset and producer metadata.
    pub fn finish(self, producer: &str, metadata: &[(&str, &str)]) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            producer_name: producer.into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(self.graph),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: (*k).into(), value: (*v).into() })
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_round_trips_through_protobuf() {
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", data_type::FLOAT, &[1, 4]);
        let w = g.init_f32("w", &[4, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let y = g.node_to("MatMul", &[&x, &w], vec![], "y");
        g.output(&y, data_type::FLOAT, &[1, 2]);
        let m = g.finish("test", &[("k", "v")]);
        let back = decode(&encode(&m)).unwrap();
        assert_eq!(back, m);
        let sig = signature(&back);
        assert_eq!(
            sig.inputs,
            vec![ValueSig { name: "x".into(), elem_type: data_type::FLOAT, dims: vec![Some(1), Some(4)] }]
        );
        assert_eq!(sig.outputs[0].name, "y");
        assert_eq!(initializer_f32(&back, "w").unwrap()[7], 8.0);
        assert_eq!(weight_bytes(&back), 32);
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("qb-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.onnx");
        std::fs::write(&p, b"\xff\xff\xff\xff not protobuf").unwrap();
        let e = read_model(&p).unwrap_err().to_string();
        assert!(e.contains("bad.onnx"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
