//! Tensors in NumPy's files: `.npy` (one array) and `.npz` (a zip of `.npy` members, stored or
//! deflated), read as f32 (`<f4`, `<f8`, little-endian integers converted) and written as `<f4`.
//! What `quadbench infer` and the importer's tests exchange with Python; no other format.

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

/// Largest array accepted (elements), so a corrupt header cannot ask for terabytes.
const MAX_ELEMENTS: usize = 1 << 30;

fn err(path: &Path, message: impl Into<String>) -> NpyError {
    NpyError { path: path.display().to_string(), message: message.into() }
}

/// The value of `'key': value` in a header dict (Python literal syntax).
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}']).unwrap_or(rest.len()) };
    Some(rest[..end].trim())
}

/// Parse one `.npy` image.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(path, "not a .npy array (no \\x93NUMPY magic); write it with numpy.save"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(path, format!(".npy format version {v} is not supported (1, 2 or 3)"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| err(path, "truncated or non-text .npy header"))?;
    let descr = header_field(header, "descr").ok_or_else(|| err(path, "header has no 'descr'"))?.trim_matches('\'');
    if header_field(header, "fortran_order") != Some("False") {
        return Err(err(path, "Fortran-ordered arrays are not supported; save np.ascontiguousarray(x)"));
    }
    let shape_s = header_field(header, "shape").ok_or_else(|| err(path, "header has no 'shape'"))?;
    let shape = shape_s
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(path, format!("bad shape {shape_s}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS);
    let n = n.ok_or_else(|| err(path, format!("array of shape {shape:?} is too large")))?;
    let body = &bytes[start + hlen..];
    let width = match descr {
        "<f4" | "<i4" | "|u1" | "|i1" => descr[2..].parse::<usize>().unwrap_or(1),
        "<f8" | "<i8" => 8,
        other => {
            return Err(err(
                path,
                format!("dtype `{other}` is not supported; save float32 (`<f4`), float64, int32/64 or uint8"),
            ));
        }
    };
    if body.len() != n * width {
        return Err(err(path, format!("{} data bytes, shape {shape:?} of `{descr}` needs {}", body.len(), n * width)));
    }
    let data: Vec<f32> = match descr {
        "<f4" => body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        "<f8" => body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        "<i4" => body.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        "<i8" => body.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        "|u1" => body.iter().map(|&b| b as f32).collect(),
        _ => body.iter().map(|&b| b as i8 as f32).collect(),
    };
    Ok(Array { shape, data })
}

/// One `.npy` image of `a` as `<f4`, version 1.0 (header padded to 64 bytes as NumPy does).
pub fn npy_bytes(a: &Array) -> Vec<u8> {
    let shape = match a.shape.len() {
        1 => format!("({},)", a.shape[0]),
        _ => format!("({})", a.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + a.data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &a.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Read a `.npy` file (one array, named by the file stem) or a `.npz` archive (name -> array).
pub fn read(path: &Path) -> Result<BTreeMap<String, Array>, NpyError> {
    let mut f = std::fs::File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| err(path, format!("cannot read: {e}")))?;
    if bytes.starts_with(b"\x93NUMPY") {
        let name = path.file_stem().map_or("array".into(), |s| s.to_string_lossy().into_owned());
        return Ok(BTreeMap::from([(name, parse_npy(&bytes, path)?)]));
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
        out.insert(key.to_string(), parse_npy(&b, &path.join(&name))?);
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
