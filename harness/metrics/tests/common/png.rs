// Hand-made PNG files for tests of hostile input: a valid signature and chunk structure (CRCs
// included) around whatever header a test needs, so that decoders get as far as the header.
// Shared by the metrics crate's tests (`mod common`) and the host's (`include!`d by
// tests/common/mod.rs): one copy of the chunk writer.

/// CRC-32 (IEEE) as PNG chunks use it.
pub fn png_crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG whose IHDR says `width`x`height`, 8-bit RGB, followed by `idat` (if any) and IEND.
pub fn png_with_header(width: u32, height: u32, idat: Option<&[u8]>) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(png_crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    if let Some(idat) = idat {
        chunk(&mut png, b"IDAT", idat);
    }
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A decompression bomb of a few dozen bytes: the header claims `width`x`height`, the IDAT is
/// the smallest zlib stream.
pub fn bomb_png(width: u32, height: u32) -> Vec<u8> {
    png_with_header(width, height, Some(&[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]))
}
