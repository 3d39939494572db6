//! The ADB transport message: the 24-byte header, its checksum and magic, and reading/writing
//! whole messages from a byte stream with a bounded payload.
//!
//! All header fields are little-endian u32. `data_check` is the wrapping byte sum of the payload;
//! we always fill it in (strict clients such as `adb_client` require it) but never check it on
//! input, because modern hosts (version >= 0x01000001) send 0 there.

use std::io::{self, Read, Write};

/// `CNXN`: connection handshake.
pub const A_CNXN: u32 = 0x4e58_4e43;
/// `AUTH`: authentication (token, signature or public key; see `auth.rs`).
pub const A_AUTH: u32 = 0x4854_5541;
/// `OPEN`: open a stream to a service.
pub const A_OPEN: u32 = 0x4e45_504f;
/// `OKAY`: stream ready / write acknowledged.
pub const A_OKAY: u32 = 0x5941_4b4f;
/// `CLSE`: close a stream.
pub const A_CLSE: u32 = 0x4553_4c43;
/// `WRTE`: stream data.
pub const A_WRTE: u32 = 0x4554_5257;
/// `STLS`: start TLS (never sent by us; receiving it closes the connection).
pub const A_STLS: u32 = 0x534c_5453;
/// `SYNC`: obsolete, never sent by current hosts.
pub const A_SYNC: u32 = 0x434e_5953;

/// Oldest protocol version.
pub const A_VERSION_MIN: u32 = 0x0100_0000;
/// Newest protocol version we speak (the "skip checksum" version).
pub const A_VERSION: u32 = 0x0100_0001;
/// Largest payload we ever negotiate (1 MiB, as modern adbd).
pub const MAX_PAYLOAD: u32 = 1024 * 1024;
/// Payload limit of protocol version 1 hosts that do not say otherwise.
pub const MAX_PAYLOAD_V1: u32 = 4096;

/// Size of the fixed message header.
pub const HEADER_LEN: usize = 24;

/// One decoded transport message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub command: u32,
    pub arg0: u32,
    pub arg1: u32,
    pub payload: Vec<u8>,
}

/// A header or payload that cannot be a valid ADB message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("bad magic {magic:#010x} for command {command:#010x}")]
    BadMagic { command: u32, magic: u32 },
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u32, max: u32 },
    #[error("i/o while reading a message: {0}")]
    Io(#[from] io::Error),
}

/// Wrapping byte sum of `data`: the value of the header's `data_check` field.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
}

/// Renders a command as its 4 ASCII letters, for error messages.
pub fn command_name(command: u32) -> String {
    command.to_le_bytes().iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

impl Message {
    pub fn new(command: u32, arg0: u32, arg1: u32, payload: Vec<u8>) -> Message {
        Message { command, arg0, arg1, payload }
    }

    /// The 24-byte header of this message, with checksum and magic filled in.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let len = u32::try_from(self.payload.len()).expect("payload length fits u32");
        let fields = [self.command, self.arg0, self.arg1, len, checksum(&self.payload), self.command ^ 0xffff_ffff];
        for (i, f) in fields.iter().enumerate() {
            h[i * 4..i * 4 + 4].copy_from_slice(&f.to_le_bytes());
        }
        h
    }

    /// Header followed by payload, as sent on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.header());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decoded header fields: (command, arg0, arg1, data_length). Checks the magic.
    pub fn parse_header(h: &[u8; HEADER_LEN]) -> Result<(u32, u32, u32, u32), MessageError> {
        let f = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (command, arg0, arg1, len, magic) = (f(0), f(4), f(8), f(12), f(20));
        if magic != command ^ 0xffff_ffff {
            return Err(MessageError::BadMagic { command, magic });
        }
        Ok((command, arg0, arg1, len))
    }

    /// Reads one whole message; a payload longer than `max_payload` is an error (checked before
    /// allocating, so a hostile length cannot make us allocate).
    pub fn read_from(r: &mut impl Read, max_payload: u32) -> Result<Message, MessageError> {
        let mut h = [0u8; HEADER_LEN];
        r.read_exact(&mut h)?;
        let (command, arg0, arg1, len) = Message::parse_header(&h)?;
        if len > max_payload {
            return Err(MessageError::TooLarge { len, max: max_payload });
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload)?;
        Ok(Message { command, arg0, arg1, payload })
    }

    /// Writes header and payload.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())
    }
}

/// Strips trailing NUL bytes (hosts NUL-terminate service names and banners).
pub fn trim_nuls(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_constants_spell_their_names() {
        for (c, name) in [
            (A_CNXN, "CNXN"),
            (A_AUTH, "AUTH"),
            (A_OPEN, "OPEN"),
            (A_OKAY, "OKAY"),
            (A_CLSE, "CLSE"),
            (A_WRTE, "WRTE"),
            (A_STLS, "STLS"),
            (A_SYNC, "SYNC"),
        ] {
            assert_eq!(command_name(c), name);
            assert_eq!(&c.to_le_bytes(), name.as_bytes());
        }
    }

    #[test]
    fn checksum_is_wrapping_byte_sum() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(b"\x01\x02\xff"), 258);
        let big = vec![0xffu8; 20_000_000];
        assert_eq!(checksum(&big), (20_000_000u64 * 255 % (1u64 << 32)) as u32);
    }

    #[test]
    fn encode_decode_roundtrip() {
        let m = Message::new(A_WRTE, 7, 9, b"hello".to_vec());
        let bytes = m.encode();
        assert_eq!(bytes.len(), 24 + 5);
        assert_eq!(&bytes[0..4], b"WRTE");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 9);
        assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 5);
        assert_eq!(u32::from_le_bytes(bytes[16..20].try_into().unwrap()), checksum(b"hello"));
        assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), A_WRTE ^ 0xffff_ffff);
        let back = Message::read_from(&mut &bytes[..], MAX_PAYLOAD).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn decode_rejects_bad_magic_and_oversize() {
        let mut bytes = Message::new(A_OKAY, 1, 2, vec![]).encode();
        bytes[20] ^= 1;
        assert!(matches!(Message::read_from(&mut &bytes[..], MAX_PAYLOAD), Err(MessageError::BadMagic { .. })));
        let bytes = Message::new(A_WRTE, 1, 2, vec![0; 100]).encode();
        assert!(matches!(Message::read_from(&mut &bytes[..], 99), Err(MessageError::TooLarge { len: 100, max: 99 })));
        // Truncated payload is an i/o error, not a panic.
        assert!(matches!(Message::read_from(&mut &bytes[..50], MAX_PAYLOAD), Err(MessageError::Io(_))));
    }

    #[test]
    fn trim_nuls_strips_only_trailing() {
        assert_eq!(trim_nuls(b"shell:ls\0\0"), b"shell:ls");
        assert_eq!(trim_nuls(b"\0a"), b"\0a");
        assert_eq!(trim_nuls(b"\0"), b"");
    }
}
