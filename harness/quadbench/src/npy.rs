//! Tensors in NumPy's files: `.npy` (one array) and `.npz` (a zip of `.npy` members, stored or
//! deflated), read as f32 (`<f4`, `<f8`, little-endian integers converted) or typed
//! ([`read_typed`]: the package format's element types, `<f8` as f32) and written as `<f4`. The
//! `.npy` format itself is `quadbench_protocol::npy` (the runner reads and writes it too).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// A named f32 array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A file that is not a NumPy array or archive this module reads.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct NpyError {
    pub path: String,
    pub message: String,
}

use quadbench_protocol::npy::{self as proto_npy, MAX_ELEMENTS, NpyArray};

fn err(path: &Path, message: impl Into<String>) -> NpyError {
    NpyError { path: path.display().to_string(), message: message.into() }
}

/// Parse one `.npy` image into f32 (`<f8` and every [`quadbench_protocol::DType`] converted).
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array, NpyError> {
    let typed = parse_typed(bytes, path)?;
    Ok(Array { shape: typed.shape.clone(), data: typed.to_f64().into_iter().map(|v| v as f32).collect() })
}

/// Parse one `.npy` image keeping its element type; `<f8` (NumPy's default float) becomes f32.
pub fn parse_typed(bytes: &[u8], path: &Path) -> Result<NpyArray, NpyError> {
    let h = proto_npy::parse_header(bytes).map_err(|m| err(path, m))?;
    if h.descr == "<f8" {
        let n = proto_npy::element_count(&h.shape).map_err(|m| err(path, m))?;
        let body = &bytes[h.data_offset..];
        if body.len() != n * 8 {
            return Err(err(path, format!("{} data bytes, shape {:?} of `<f8` needs {}", body.len(), h.shape, n * 8)));
        }
        let data: Vec<f32> =
            body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect();
        return Ok(NpyArray::from_f32(h.shape, &data));
    }
    proto_npy::parse(bytes).map_err(|m| err(path, m))
}

/// One `.npy` image of `a` as `<f4`, version 1.0 (header padded to 64 bytes as NumPy does).
pub fn npy_bytes(a: &Array) -> Vec<u8> {
    let data: Vec<u8> = a.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    proto_npy::to_bytes_raw("<f4", &a.shape, &data)
}

/// Read a `.npy` file (one array, named by the file stem) or a `.npz` archive (name -> array).
pub fn read(path: &Path) -> Result<BTreeMap<String, Array>, NpyError> {
    read_with(path, parse_npy)
}

/// [`read`], keeping each array's element type.
pub fn read_typed(path: &Path) -> Result<BTreeMap<String, NpyArray>, NpyError> {
    read_with(path, parse_typed)
}

fn read_with<T>(path: &Path, parse: fn(&[u8], &Path) -> Result<T, NpyError>) -> Result<BTreeMap<String, T>, NpyError> {
    let mut f = std::fs::File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| err(path, format!("cannot read: {e}")))?;
    if bytes.starts_with(b"\x93NUMPY") {
        let name = path.file_stem().map_or("array".into(), |s| s.to_string_lossy().into_owned());
        return Ok(BTreeMap::from([(name, parse(&bytes, path)?)]));
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| err(path, format!("neither .npy nor a .npz (zip) archive: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| err(path, format!("member {i}: {e}")))?;
        let name = member.name().map_err(|e| err(path, format!("member {i}: {e}")))?.to_string();
        let Some(key) = name.strip_suffix(".npy") else { continue };
        if member.size() > (MAX_ELEMENTS * 8) as u64 {
            return Err(err(path, format!("member {name} is too large")));
        }
        let mut b = Vec::with_capacity(member.size() as usize);
        member.read_to_end(&mut b).map_err(|e| err(path, format!("member {name}: {e}")))?;
        out.insert(key.to_string(), parse(&b, &path.join(&name))?);
    }
    Ok(out)
}

/// Read a tensor file by its extension: `.safetensors` (every tensor, by name; `BF16` and `F64`
/// converted to f32) or NumPy's `.npy`/`.npz` ([`read_typed`]).
pub fn read_tensor_file(path: &Path) -> Result<BTreeMap<String, NpyArray>, NpyError> {
    if path.extension().is_none_or(|e| e != "safetensors") {
        return read_typed(path);
    }
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(path, format!("not safetensors: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, t) in st.tensors() {
        use quadbench_protocol::DType;
        use safetensors::Dtype as S;
        let shape = t.shape().to_vec();
        let d = t.data();
        let typed = |dtype| NpyArray { dtype, shape: shape.clone(), data: d.to_vec() };
        let a = match t.dtype() {
            S::F32 => typed(DType::F32),
            S::F16 => typed(DType::F16),
            S::U8 => typed(DType::U8),
            S::I8 => typed(DType::I8),
            S::U16 => typed(DType::U16),
            S::I16 => typed(DType::I16),
            S::I32 => typed(DType::I32),
            S::I64 => typed(DType::I64),
            S::BF16 => NpyArray::from_f32(
                shape.clone(),
                &d.chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                    .collect::<Vec<_>>(),
            ),
            S::F64 => NpyArray::from_f32(
                shape.clone(),
                &d.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect::<Vec<_>>(),
            ),
            other => {
                return Err(err(
                    path,
                    format!("tensor `{name}` is {other:?}, not a tensor type of the package format"),
                ));
            }
        };
        out.insert(name, a);
    }
    Ok(out)
}

/// Write arrays as a `.npz` archive (stored members, as `numpy.savez`), or one array as `.npy`
/// when `path` ends in `.npy`.
pub fn write(path: &Path, arrays: &BTreeMap<String, Array>) -> Result<(), NpyError> {
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(|e| err(p, format!("cannot create: {e}")))?;
    }
    if path.extension().is_some_and(|e| e == "npy") {
        let [(_, a)] = arrays.iter().collect::<Vec<_>>()[..] else {
            return Err(err(path, format!("{} arrays do not fit one .npy file; write a .npz", arrays.len())));
        };
        return std::fs::write(path, npy_bytes(a)).map_err(|e| err(path, format!("cannot write: {e}")));
    }
    let f = std::fs::File::create(path).map_err(|e| err(path, format!("cannot create: {e}")))?;
    let mut zip = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, a) in arrays {
        zip.start_file(format!("{name}.npy"), opts).map_err(|e| err(path, e.to_string()))?;
        zip.write_all(&npy_bytes(a)).map_err(|e| err(path, e.to_string()))?;
    }
    zip.finish().map_err(|e| err(path, e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_round_trips_and_header_is_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array { shape: vec![2, 3], data: vec![1.0, -2.5, 3.0, 0.0, 1e-7, 7.0] };
        let v = Array { shape: vec![4], data: vec![0.5; 4] };
        let bytes = npy_bytes(&a);
        assert_eq!((10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64, 0);
        let p = dir.path().join("x.npz");
        let m = BTreeMap::from([("a".to_string(), a.clone()), ("v".to_string(), v.clone())]);
        write(&p, &m).unwrap();
        assert_eq!(read(&p).unwrap(), m);
        let one = dir.path().join("v.npy");
        write(&one, &BTreeMap::from([("v".to_string(), v.clone())])).unwrap();
        assert_eq!(read(&one).unwrap()["v"], v);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        let mut bytes = npy_bytes(&Array { shape: vec![1], data: vec![0.0, 0.0] });
        let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
        bytes[at..at + 3].copy_from_slice(b"<c8");
        std::fs::write(&p, bytes).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npy") && e.contains("<c8"), "{e}");
        std::fs::write(&p, b"hello").unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("neither .npy nor"));
    }
}
