//! NumPy's `.npy` format (one array), typed: the file format of tensors that cross between host and
//! runner (per-request tensor inputs, per-task constants, tensor outputs). Little-endian, C order,
//! format versions 1-3; the dtypes are [`DType`]'s (`<f4 <f2 |u1 |i1 <u2 <i2 <i4 <i8`). `.npz`
//! archives and `<f8` are the host's business (`quadbench::npy`), not the device's.

use crate::DType;

/// One array: its element type, shape, and its elements as little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Largest array accepted (elements), so a corrupt header cannot ask for terabytes.
pub const MAX_ELEMENTS: usize = 1 << 30;

impl DType {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::F16 | DType::U16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    /// NumPy's type string (`descr`) of this element type.
    pub fn npy_descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F16 => "<f2",
            DType::U8 => "|u1",
            DType::I8 => "|i1",
            DType::U16 => "<u2",
            DType::I16 => "<i2",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
        }
    }

    /// NumPy's name of this element type (`x.astype(np.<name>)`).
    pub fn numpy_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
        }
    }

    /// The element type of a NumPy type string (`<` or `|` byte order; `=` taken as little-endian).
    pub fn from_npy_descr(descr: &str) -> Option<DType> {
        let d = descr.replacen('=', "<", 1);
        DType::ALL.into_iter().find(|t| t.npy_descr() == d || (t.size_bytes() == 1 && t.npy_descr()[1..] == d[1..]))
    }
}

/// The value of `'key': value` in a header dict (Python literal syntax).
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}']).unwrap_or(rest.len()) };
    Some(rest[..end].trim())
}

/// A parsed header: type string, shape, and where the data starts.
pub struct NpyHeader {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data_offset: usize,
}

/// Parse the header of a `.npy` image; errors say what is wrong and how to write a good file.
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (no \\x93NUMPY magic); write it with numpy.save".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!(".npy format version {v} is not supported (1, 2 or 3)")),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text .npy header")?;
    let descr = header_field(header, "descr").ok_or("header has no 'descr'")?.trim_matches('\'').to_string();
    if header_field(header, "fortran_order") != Some("False") {
        return Err("Fortran-ordered arrays are not supported; save np.ascontiguousarray(x)".into());
    }
    let shape_s = header_field(header, "shape").ok_or("header has no 'shape'")?;
    let shape = shape_s
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape_s}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader { descr, shape, data_offset: start + hlen })
}

/// Elements of `shape`, or an error when it exceeds [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("array of shape {shape:?} is too large"))
}

/// Parse a `.npy` image whose dtype is one of [`DType`]'s.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, String> {
    let h = parse_header(bytes)?;
    let dtype = DType::from_npy_descr(&h.descr).ok_or_else(|| {
        format!("dtype `{}` is not a tensor type of the package format; save one of f32, f16, u8, i8, u16, i16, i32, i64 (little-endian)", h.descr)
    })?;
    let n = element_count(&h.shape)?;
    let body = &bytes[h.data_offset..];
    if body.len() != n * dtype.size_bytes() {
        return Err(format!(
            "{} data bytes, shape {:?} of `{}` needs {}",
            body.len(),
            h.shape,
            h.descr,
            n * dtype.size_bytes()
        ));
    }
    Ok(NpyArray { dtype, shape: h.shape, data: body.to_vec() })
}

/// The `.npy` image (version 1.0, header padded to 64 bytes as NumPy does) of raw little-endian
/// elements of `descr` in `shape`.
pub fn to_bytes_raw(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

impl NpyArray {
    /// f32 elements as an array.
    pub fn from_f32(shape: Vec<usize>, data: &[f32]) -> NpyArray {
        NpyArray { dtype: DType::F32, shape, data: data.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    /// The `.npy` image of this array.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes_raw(self.dtype.npy_descr(), &self.shape, &self.data)
    }

    /// Elements converted to f64 (f16 decoded exactly), for metrics and checks.
    pub fn to_f64(&self) -> Vec<f64> {
        let w = self.dtype.size_bytes();
        self.data
            .chunks_exact(w)
            .map(|c| match self.dtype {
                DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                DType::F16 => f16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64,
                DType::U8 => c[0] as f64,
                DType::I8 => c[0] as i8 as f64,
                DType::U16 => u16::from_le_bytes([c[0], c[1]]) as f64,
                DType::I16 => i16::from_le_bytes([c[0], c[1]]) as f64,
                DType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                DType::I64 => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
            })
            .collect()
    }
}

/// IEEE 754 half -> single (exact; subnormals, infinities and NaN kept).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value m * 2^-24, normalised into an f32.
            let v = m as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype_and_aligns_the_header() {
        for dt in [DType::F32, DType::F16, DType::U8, DType::I8, DType::U16, DType::I16, DType::I32, DType::I64] {
            let a = NpyArray { dtype: dt, shape: vec![2, 3], data: (0..6 * dt.size_bytes() as u8).collect() };
            let b = a.to_bytes();
            assert_eq!((10 + u16::from_le_bytes([b[8], b[9]]) as usize) % 64, 0);
            assert_eq!(parse(&b).unwrap(), a, "{dt:?}");
        }
        let scalar = NpyArray { dtype: DType::I64, shape: vec![], data: 981i64.to_le_bytes().to_vec() };
        let p = parse(&scalar.to_bytes()).unwrap();
        assert_eq!((p.shape.len(), p.to_f64()), (0, vec![981.0]));
    }

    #[test]
    fn bad_files_say_why() {
        let mut b = NpyArray::from_f32(vec![2], &[1.0, 2.0]).to_bytes();
        assert!(parse(&b[..b.len() - 1]).unwrap_err().contains("needs 8"));
        let at = b.windows(3).position(|w| w == b"<f4").unwrap();
        b[at..at + 3].copy_from_slice(b"<c8");
        assert!(parse(&b).unwrap_err().contains("`<c8`"));
        assert!(parse(b"hello world").unwrap_err().contains("numpy.save"));
    }

    #[test]
    fn half_decodes_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
    }
}
