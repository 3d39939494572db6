//! ONNX Runtime adapter files (`.onnx_adapter`) for strategy `unified-ort-adapter`: the
//! FlatBuffers encoder of ONNX Runtime's schema (`onnxruntime/lora/adapter_format/
//! adapter_schema.fbs`: table `Adapter { format_version, adapter_version, model_version,
//! parameters: [Parameter] }`, `Parameter { name, dims: [int64], data_type, raw_data: [uint8] }`,
//! file identifier `TORT`), and the derivation of one file per task and stage from the package's
//! hash-checked PEFT adapter, laid out exactly as the unified strategy binds it.
//!
//! The files are derived at staging time, not stored in the package: every package with LoRA
//! slots (reference, directory, quantized) gets them, the package and its hashes stay as they
//! are, and the bytes are a pure function of the checked adapter (no timestamps), so the same
//! package always gives the same files.

use super::{Manifest, PackageError};
use quadbench_protocol::Source;
use std::path::{Path, PathBuf};

/// The adapter format version ONNX Runtime reads (`kAdapterFormatVersion`, 1 since ORT 1.20).
pub const FORMAT_VERSION: i32 = 1;
/// ONNX `TensorProto.DataType` FLOAT (the schema's `TensorDataType` uses the same numbers).
pub const DATA_TYPE_FLOAT: i32 = 1;
/// Alignment of every parameter's raw data in the file: ONNX Runtime makes tensors over the
/// bytes in place (the schema asks for 8; 64 is a cache line and what its CPU allocator uses).
const DATA_ALIGN: usize = 64;

/// One named tensor of an adapter file.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub dims: Vec<i64>,
    /// ONNX element type number (1 = float).
    pub data_type: i32,
    /// Little-endian element bytes, row-major.
    pub raw_data: Vec<u8>,
}

impl Parameter {
    /// A float tensor.
    pub fn f32(name: &str, dims: &[usize], data: &[f32]) -> Parameter {
        Parameter {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DATA_TYPE_FLOAT,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// A FlatBuffer written front to back: every offset points forward (FlatBuffers' `uoffset_t`
/// is unsigned), each vtable sits just before its table.
struct Buf(Vec<u8>);

impl Buf {
    fn pad_until(&mut self, ok: impl Fn(usize) -> bool) {
        while !ok(self.0.len()) {
            self.0.push(0);
        }
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Point the `uoffset_t` at `at` to the current end (where the next object starts).
    fn patch_here(&mut self, at: usize) {
        let off = (self.0.len() - at) as u32;
        self.0[at..at + 4].copy_from_slice(&off.to_le_bytes());
    }
    /// A vtable for a table of `fields` 4-byte fields, then the table's start (its `soffset_t`
    /// to the vtable). Returns the table position; field `i` is at `table + 4 + 4 i`.
    fn table(&mut self, fields: u16) -> usize {
        // The vtable is 2-aligned and ends where the 4-aligned table starts.
        self.pad_until(|n| (n + 4 + 2 * fields as usize).is_multiple_of(4));
        let vt = self.0.len();
        self.u16(4 + 2 * fields);
        self.u16(4 + 4 * fields);
        for i in 0..fields {
            self.u16(4 + 4 * i);
        }
        debug_assert_eq!(self.0.len() % 4, 0);
        let t = self.0.len();
        self.0.extend_from_slice(&((t - vt) as i32).to_le_bytes());
        self.0.resize(t + 4 + 4 * fields as usize, 0);
        t
    }
    /// A vector whose elements start at a multiple of `align`, with the field at `field`
    /// pointing to it.
    fn vector(&mut self, field: usize, len: usize, align: usize, bytes: &[u8]) {
        self.pad_until(|n| (n + 4).is_multiple_of(align));
        self.patch_here(field);
        self.u32(len as u32);
        self.0.extend_from_slice(bytes);
    }
    fn set_i32(&mut self, at: usize, v: i32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

/// Encode an adapter file: `parameters` in the given order.
pub fn encode(parameters: &[Parameter], adapter_version: i32, model_version: i32) -> Vec<u8> {
    let mut b = Buf(Vec::new());
    b.u32(0); // root offset
    b.0.extend_from_slice(b"TORT");
    let root = b.table(4);
    b.set_i32(0, root as i32);
    b.set_i32(root + 4, FORMAT_VERSION);
    b.set_i32(root + 8, adapter_version);
    b.set_i32(root + 12, model_version);
    // The parameters vector: offsets to the Parameter tables that follow it.
    b.vector(root + 16, parameters.len(), 4, &vec![0; 4 * parameters.len()]);
    let elems = b.0.len() - 4 * parameters.len();
    for (i, p) in parameters.iter().enumerate() {
        let t = b.table(4);
        let at = elems + 4 * i;
        let off = (t - at) as u32;
        b.0[at..at + 4].copy_from_slice(&off.to_le_bytes());
        b.set_i32(t + 12, p.data_type);
        let mut name = p.name.as_bytes().to_vec();
        name.push(0); // strings end with a 0 byte (the verifier checks it)
        b.vector(t + 4, p.name.len(), 4, &name);
        let dims: Vec<u8> = p.dims.iter().flat_map(|d| d.to_le_bytes()).collect();
        b.vector(t + 8, p.dims.len(), 8, &dims);
        b.vector(t + 16, p.raw_data.len(), DATA_ALIGN, &p.raw_data);
    }
    b.0
}

/// A derived adapter file of one task and stage, as written on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct OrtAdapterFile {
    pub task: String,
    pub stage: String,
    /// Relative to the directory the files were written to (`<task>/<stage>.onnx_adapter`).
    pub rel: String,
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// Every task's `.onnx_adapter` files, written under `dir`: per task, one file per stage with
/// LoRA inputs, holding that stage's slots in graph layout (A `[in, rank]`, B `[rank, out]`
/// scaled by `alpha / rank`) under the graph input names, converted by the same code the runner
/// binds plain inputs with. Empty when the package has no LoRA slots.
pub fn write_all(m: &Manifest, pkg_dir: &Path, dir: &Path) -> Result<Vec<OrtAdapterFile>, PackageError> {
    let mut out = Vec::new();
    for t in &m.pipeline.tasks {
        let src = pkg_dir.join(&t.adapter);
        let arrays = quadbench_runner::pipeline::adapter_arrays(&src, &m.pipeline.lora_slots)
            .map_err(|message| PackageError::Adapter { path: t.adapter.clone(), message })?;
        for st in &m.pipeline.stages {
            let params: Vec<Parameter> = st
                .inputs
                .iter()
                .filter_map(|i| match &i.source {
                    Source::Lora { slot, part } => arrays.iter().find(|a| &a.slot == slot && a.part == *part),
                    _ => None,
                })
                .map(|a| Parameter::f32(&a.input, &a.shape, &a.data))
                .collect();
            if params.is_empty() {
                continue;
            }
            let rel = format!("{}/{}.onnx_adapter", t.name, st.name);
            let path = dir.join(&rel);
            let bytes = encode(&params, 1, 1);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(|e| PackageError::io(p, e))?;
            }
            std::fs::write(&path, &bytes).map_err(|e| PackageError::io(&path, e))?;
            out.push(OrtAdapterFile {
                task: t.name.clone(),
                stage: st.name.clone(),
                rel,
                path,
                sha256: super::manifest::sha256_bytes(&bytes),
                bytes: bytes.len() as u64,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> usize {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
    }

    /// A minimal reader of what `encode` writes, following offsets the way FlatBuffers does.
    fn decode(b: &[u8]) -> (i32, Vec<Parameter>) {
        assert_eq!(&b[4..8], b"TORT");
        let root = u32_at(b, 0);
        let field = |t: usize, i: usize| {
            let vt = t - i32::from_le_bytes(b[t..t + 4].try_into().unwrap()) as usize;
            let off = u16::from_le_bytes(b[vt + 4 + 2 * i..vt + 6 + 2 * i].try_into().unwrap()) as usize;
            t + off
        };
        let version = u32_at(b, field(root, 0)) as i32;
        let f = field(root, 3);
        let vec = f + u32_at(b, f);
        let mut params = Vec::new();
        for i in 0..u32_at(b, vec) {
            let e = vec + 4 + 4 * i;
            let t = e + u32_at(b, e);
            let target = |k: usize| {
                let f = field(t, k);
                let v = f + u32_at(b, f);
                (v + 4, u32_at(b, v))
            };
            let (n, nl) = target(0);
            let (d, dl) = target(1);
            let (r, rl) = target(3);
            assert_eq!(b[n + nl], 0, "string terminator");
            assert_eq!(d % 8, 0, "dims aligned");
            assert_eq!(r % DATA_ALIGN, 0, "raw data aligned");
            params.push(Parameter {
                name: String::from_utf8(b[n..n + nl].to_vec()).unwrap(),
                dims: (0..dl).map(|j| i64::from_le_bytes(b[d + 8 * j..d + 8 * j + 8].try_into().unwrap())).collect(),
                data_type: u32_at(b, field(t, 2)) as i32,
                raw_data: b[r..r + rl].to_vec(),
            });
        }
        (version, params)
    }

    #[test]
    fn encoded_parameters_decode_back_with_aligned_data() {
        let ps = vec![
            Parameter::f32("lora_a", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            Parameter::f32("b", &[2, 1], &[-0.5, 7.25]),
            Parameter::f32("odd_name_len", &[1], &[9.0]),
        ];
        let b = encode(&ps, 3, 4);
        assert_eq!(decode(&b), (FORMAT_VERSION, ps.clone()));
        // Deterministic: the same parameters give the same bytes.
        assert_eq!(b, encode(&ps, 3, 4));
        assert_ne!(b, encode(&ps[..2], 3, 4));
    }
}
