//! What a decode through the [`crate::proto`] subset would lose: a walk over the protobuf wire
//! format of a serialized model that lists every field the subset does not model (prost skips
//! them silently), so that a tool which decodes, edits and re-encodes a user's model (`package
//! import`) can refuse what it would drop (control-flow subgraphs, sparse initializers, model
//! functions, `double_data`, ...) instead of writing a different model.
//!
//! Fields that carry no meaning for execution (`doc_string`, `metadata_props`, `denotation`) are
//! reported too, marked [`Unmodelled::metadata`], so callers can say what they drop.

use crate::proto::NodeProto;

/// The messages of the subset, as the walk sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Msg {
    Model,
    OpsetId,
    StringString,
    Graph,
    Node,
    Attribute,
    Tensor,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    Dim,
}

/// The fields [`crate::proto`] models: (tag, the message it holds, if one).
fn modelled(m: Msg) -> &'static [(u32, Option<Msg>)] {
    use Msg::*;
    match m {
        Model => &[
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (5, None),
            (6, None),
            (7, Some(Graph)),
            (8, Some(OpsetId)),
            (14, Some(StringString)),
        ],
        OpsetId | StringString => &[(1, None), (2, None)],
        Graph => &[
            (1, Some(Node)),
            (2, None),
            (5, Some(Tensor)),
            (10, None),
            (11, Some(ValueInfo)),
            (12, Some(ValueInfo)),
            (13, Some(ValueInfo)),
        ],
        Node => &[
            (1, None),
            (2, None),
            (3, None),
            (4, None),
            (5, Some(Attribute)),
            (6, None),
            (7, None),
            (9, Some(StringString)),
        ],
        Attribute => &[(1, None), (2, None), (3, None), (4, None), (5, Some(Tensor)), (7, None), (8, None), (20, None)],
        Tensor => &[
            (1, None),
            (2, None),
            (4, None),
            (5, None),
            (7, None),
            (8, None),
            (9, None),
            (13, Some(StringString)),
            (14, None),
        ],
        ValueInfo => &[(1, None), (2, Some(Type)), (3, None)],
        Type => &[(1, Some(TypeTensor))],
        TypeTensor => &[(1, None), (2, Some(Shape))],
        Shape => &[(1, Some(Dim))],
        Dim => &[(1, None), (2, None)],
    }
}

/// onnx.proto's name for a field the subset skips, and whether it is metadata only.
fn skipped(m: Msg, tag: u32) -> (&'static str, bool) {
    use Msg::*;
    match (m, tag) {
        (Model, 20) => ("training_info", false),
        (Model, 25) => ("functions", false),
        (Model, 26) => ("configuration", false),
        (Graph, 14) => ("quantization_annotation", false),
        (Graph, 15) => ("sparse_initializer", false),
        (Graph, 16) => ("metadata_props", true),
        (Node, 8) => ("overload", false),
        (Node, 10) => ("device_configurations", false),
        (Attribute, 6) => ("g (a subgraph)", false),
        (Attribute, 9) => ("strings", false),
        (Attribute, 10) => ("tensors", false),
        (Attribute, 11) => ("graphs (subgraphs)", false),
        (Attribute, 13) => ("doc_string", true),
        (Attribute, 14) => ("tp (a type)", false),
        (Attribute, 15) => ("type_protos", false),
        (Attribute, 21) => ("ref_attr_name", false),
        (Attribute, 22) => ("sparse_tensor", false),
        (Attribute, 23) => ("sparse_tensors", false),
        (Tensor, 3) => ("segment", false),
        (Tensor, 6) => ("string_data", false),
        (Tensor, 10) => ("double_data", false),
        (Tensor, 11) => ("uint64_data", false),
        (Tensor, 12) => ("doc_string", true),
        (Tensor, 16) => ("metadata_props", true),
        (ValueInfo, 4) => ("metadata_props", true),
        (Type, 4) => ("sequence_type", false),
        (Type, 5) => ("map_type", false),
        (Type, 6) => ("denotation", true),
        (Type, 8) => ("sparse_tensor_type", false),
        (Type, 9) => ("optional_type", false),
        (Dim, 3) => ("denotation", true),
        _ => ("a field onnx.proto added after this reader", false),
    }
}

/// One field the subset would drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmodelled {
    /// Where: `graph.node[3] /gate/If (If).attribute[0] then_branch`.
    pub location: String,
    /// The field's name in onnx.proto and its number.
    pub field: String,
    /// Metadata only (`doc_string`, `metadata_props`, `denotation`): dropping it changes no result.
    pub metadata: bool,
}

/// A malformed wire format (the caller's decode would fail too).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed protobuf at byte {0}")]
pub struct WireError(usize);

fn varint(b: &[u8], at: &mut usize) -> Result<u64, WireError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or(WireError(*at))?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError(*at))
}

/// A sub-message's name for locations: a node's name and op type, an attribute's name.
fn label(m: Msg, bytes: &[u8]) -> String {
    match m {
        Msg::Node => <NodeProto as prost::Message>::decode(bytes)
            .map(|n| format!(" {} ({})", n.name, n.op_type))
            .unwrap_or_default(),
        Msg::Attribute | Msg::Tensor | Msg::ValueInfo => {
            // Field 1 (name; for a tensor field 8) is a string in all three.
            let name_tag = if m == Msg::Tensor { 8 } else { 1 };
            let mut at = 0;
            while at < bytes.len() {
                let Ok(key) = varint(bytes, &mut at) else { break };
                let (tag, wire) = ((key >> 3) as u32, key & 7);
                let len = match wire {
                    0 => varint(bytes, &mut at).map(|_| 0),
                    1 => Ok(8),
                    5 => Ok(4),
                    2 => varint(bytes, &mut at).map(|l| l as usize),
                    _ => break,
                };
                let Ok(len) = len else { break };
                if wire == 2 && tag == name_tag {
                    return bytes
                        .get(at..at + len)
                        .map(|s| format!(" {}", String::from_utf8_lossy(s)))
                        .unwrap_or_default();
                }
                at += len;
            }
            String::new()
        }
        _ => String::new(),
    }
}

fn message_name(m: Msg) -> &'static str {
    match m {
        Msg::Model => "ModelProto",
        Msg::OpsetId => "OperatorSetIdProto",
        Msg::StringString => "StringStringEntryProto",
        Msg::Graph => "GraphProto",
        Msg::Node => "NodeProto",
        Msg::Attribute => "AttributeProto",
        Msg::Tensor => "TensorProto",
        Msg::ValueInfo => "ValueInfoProto",
        Msg::Type => "TypeProto",
        Msg::TypeTensor => "TypeProto.Tensor",
        Msg::Shape => "TensorShapeProto",
        Msg::Dim => "TensorShapeProto.Dimension",
    }
}

fn field_name(m: Msg, tag: u32) -> &'static str {
    use Msg::*;
    match (m, tag) {
        (Model, 7) => "graph",
        (Model, 8) => "opset_import",
        (Model, 14) | (Node, 9) => "metadata_props",
        (Graph, 1) => "node",
        (Graph, 5) => "initializer",
        (Graph, 11) => "input",
        (Graph, 12) => "output",
        (Graph, 13) => "value_info",
        (Node, 5) => "attribute",
        (Attribute, 5) => "t",
        (Tensor, 13) => "external_data",
        (ValueInfo, 2) => "type",
        (Type, 1) => "tensor_type",
        (TypeTensor, 2) => "shape",
        (Shape, 1) => "dim",
        _ => "field",
    }
}

fn repeated(m: Msg, tag: u32) -> bool {
    use Msg::*;
    matches!((m, tag), (Model, 8 | 14) | (Graph, 1 | 5 | 11 | 12 | 13) | (Node, 5 | 9) | (Tensor, 13) | (Shape, 1))
}

fn walk(m: Msg, b: &[u8], base: usize, loc: &str, out: &mut Vec<Unmodelled>) -> Result<(), WireError> {
    let mut at = 0;
    let mut index: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let (tag, wire) = ((key >> 3) as u32, key & 7);
        let start = at;
        let len = match wire {
            0 => {
                varint(b, &mut at)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => varint(b, &mut at)? as usize,
            _ => return Err(WireError(base + start)),
        };
        let body = b.get(at..at.checked_add(len).ok_or(WireError(base + at))?).ok_or(WireError(base + at))?;
        match modelled(m).iter().find(|(t, _)| *t == tag) {
            Some((_, Some(sub))) if wire == 2 => {
                let i = index.entry(tag).or_default();
                let at_index = if repeated(m, tag) { format!("[{i}]") } else { String::new() };
                let here = format!("{loc}.{}{at_index}{}", field_name(m, tag), label(*sub, body));
                *i += 1;
                walk(*sub, body, base + at, here.trim_start_matches('.'), out)?;
            }
            Some(_) => {}
            None => {
                let (name, metadata) = skipped(m, tag);
                let loc = if loc.is_empty() { "model" } else { loc };
                let field = format!("{name} ({} field {tag})", message_name(m));
                out.push(Unmodelled { location: loc.to_string(), field, metadata });
            }
        }
        at += len;
    }
    Ok(())
}

/// Every field of the serialized model `bytes` that a decode through [`crate::proto`] drops.
pub fn unmodelled(bytes: &[u8]) -> Result<Vec<Unmodelled>, WireError> {
    let mut out = Vec::new();
    walk(Msg::Model, bytes, 0, "", &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::*;

    /// A model with every modelled field set reports nothing: the table matches `proto`.
    #[test]
    fn every_modelled_field_is_known() {
        let entry = StringStringEntryProto { key: "k".into(), value: "v".into() };
        let tensor = TensorProto {
            dims: vec![1],
            data_type: data_type::FLOAT,
            float_data: vec![1.0],
            int32_data: vec![1],
            int64_data: vec![1],
            name: "t".into(),
            raw_data: vec![0; 4],
            external_data: vec![entry.clone()],
            data_location: 1,
        };
        let attr = AttributeProto {
            name: "a".into(),
            f: 1.0,
            i: 1,
            s: vec![1],
            t: Some(tensor.clone()),
            floats: vec![1.0],
            ints: vec![1],
            r#type: 1,
        };
        let dims = vec![
            Dimension { value: Some(DimensionValue::DimValue(1)) },
            Dimension { value: Some(DimensionValue::DimParam("n".into())) },
        ];
        let vi = ValueInfoProto {
            name: "x".into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor { elem_type: 1, shape: Some(TensorShapeProto { dim: dims }) }),
            }),
            doc_string: "d".into(),
        };
        let node = NodeProto {
            input: vec!["x".into()],
            output: vec!["y".into()],
            name: "n".into(),
            op_type: "Relu".into(),
            attribute: vec![attr],
            doc_string: "d".into(),
            domain: "d".into(),
            metadata_props: vec![entry.clone()],
        };
        let m = ModelProto {
            ir_version: 8,
            producer_name: "p".into(),
            producer_version: "1".into(),
            domain: "d".into(),
            model_version: 1,
            doc_string: "d".into(),
            graph: Some(GraphProto {
                node: vec![node],
                name: "g".into(),
                initializer: vec![tensor],
                doc_string: "d".into(),
                input: vec![vi.clone()],
                output: vec![vi.clone()],
                value_info: vec![vi],
            }),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            metadata_props: vec![entry],
        };
        assert_eq!(unmodelled(&crate::encode(&m)).unwrap(), vec![]);
    }

    /// A subgraph attribute (field 6 of AttributeProto) and a sparse initializer (field 15 of
    /// GraphProto), appended by hand in wire format, are found and named.
    #[test]
    fn subgraphs_and_sparse_initializers_are_found() {
        let attr = AttributeProto { name: "then_branch".into(), r#type: 5, ..Default::default() };
        let mut attr_bytes = prost::Message::encode_to_vec(&attr);
        attr_bytes.extend([0x32, 0x02, 0x12, 0x00]); // g: GraphProto { name: "" }
        let node = NodeProto { name: "/gate/If".into(), op_type: "If".into(), ..Default::default() };
        let mut node_bytes = prost::Message::encode_to_vec(&node);
        node_bytes.push(0x2a); // attribute (field 5, length-delimited)
        node_bytes.push(attr_bytes.len() as u8);
        node_bytes.extend(&attr_bytes);
        let mut graph = vec![0x0a, node_bytes.len() as u8];
        graph.extend(&node_bytes);
        graph.extend([0x7a, 0x00]); // sparse_initializer (field 15), empty
        let mut model = vec![0x3a, graph.len() as u8];
        model.extend(&graph);
        let found = unmodelled(&model).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].location, "graph.node[0] /gate/If (If).attribute[0] then_branch");
        assert!(found[0].field.starts_with("g (a subgraph)") && !found[0].metadata);
        assert_eq!(found[1].location, "graph");
        assert_eq!(found[1].field, "sparse_initializer (GraphProto field 15)");
        assert!(unmodelled(&[0x3a, 0x05, 0x00]).is_err());
    }
}
