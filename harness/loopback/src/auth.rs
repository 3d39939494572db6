//! ADB authentication, device side, as adbd does it: the host's CNXN is answered with
//! `AUTH(TOKEN)` carrying 20 random bytes; the host signs them with its private key and answers
//! `AUTH(SIGNATURE)`; the device checks the signature against every key of its `adb_keys` file
//! and sends CNXN on a match, else a fresh token. When the host has run out of keys it sends
//! `AUTH(RSAPUBLICKEY)`; a phone would then ask its user, the loopback device never accepts (the
//! host shows it `unauthorized`): add the key to the adb_keys file instead.
//!
//! ## Key format
//!
//! One key per line, as `adbkey.pub` and Android's `/data/misc/adb/adb_keys` hold them: base64
//! of the `RSAPublicKey` struct of AOSP's `android_pubkey.c`, then a space and `user@host`.
//! The struct is little-endian u32s: `len` (modulus size in words, 64 for the 2048-bit keys adb
//! makes), `n0inv`, `n[64]` (least significant word first), `rr[64]`, `exponent`. Only the
//! modulus and exponent are used (as adbd does); `n0inv` and `rr` are Montgomery helpers.
//!
//! ## Signature
//!
//! adb signs with `RSA_sign(NID_sha1, token, 20, ...)`: PKCS#1 v1.5 over
//! `DigestInfo(SHA-1) || token`, the token standing in for a SHA-1 digest.

use base64::Engine;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha1::Sha1;
use std::path::{Path, PathBuf};

/// Bytes in an auth token (`TOKEN_SIZE` in adb).
pub const TOKEN_LEN: usize = 20;
/// `AUTH` arg0: the device sends a token to sign.
pub const AUTH_TOKEN: u32 = 1;
/// `AUTH` arg0: the host sends a signature of the token.
pub const AUTH_SIGNATURE: u32 = 2;
/// `AUTH` arg0: the host offers its public key for the user to accept.
pub const AUTH_RSAPUBLICKEY: u32 = 3;

/// Modulus words of the keys adb makes and adbd accepts (2048 bits).
const MODULUS_WORDS: usize = 64;
/// Size of the binary `RSAPublicKey` struct.
pub const PUBKEY_STRUCT_LEN: usize = 4 + 4 + 4 * MODULUS_WORDS * 2 + 4;

/// How a device decides who may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Require AUTH against the keys in this file (Android's adb_keys format; a host's
    /// `~/.android/adbkey.pub` is such a file with one key).
    Keys(PathBuf),
    /// No authentication: CNXN is answered at once (what adbd does when `ro.adb.secure=0`).
    /// Anyone who can reach the port gets the device's shell.
    Insecure,
}

/// A key file that cannot serve as adb_keys.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("reading the adb keys file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the adb keys file {path} holds no usable key ({problems}); it must hold lines like those of ~/.android/adbkey.pub, which `adb start-server` creates"
    )]
    NoKeys { path: PathBuf, problems: String },
}

/// A line of a key file that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not base64: {0}")]
    Base64(String),
    #[error("key blob is {0} bytes, expected {PUBKEY_STRUCT_LEN}")]
    Length(usize),
    #[error("modulus of {0} words, expected {MODULUS_WORDS} (adb uses 2048-bit keys)")]
    ModulusSize(u32),
    #[error("not a valid rsa public key: {0}")]
    Rsa(String),
}

/// One accepted key: the public key and its comment (`user@host`, for logs).
#[derive(Debug, Clone)]
pub struct AdbKey {
    pub key: RsaPublicKey,
    pub comment: String,
}

/// The keys of an adb_keys file, plus the lines that were skipped (with why).
#[derive(Debug, Clone)]
pub struct AdbKeys {
    pub path: PathBuf,
    pub keys: Vec<AdbKey>,
    /// (1-based line number, problem) for every non-empty line that is not a key.
    pub skipped: Vec<(usize, KeyError)>,
}

impl AdbKeys {
    /// Reads `path`; an unreadable file or one without a single usable key is an error.
    pub fn load(path: &Path) -> Result<AdbKeys, KeysError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| KeysError::Read { path: path.to_path_buf(), source })?;
        let keys = AdbKeys::parse(path, &text);
        if keys.keys.is_empty() {
            let problems = if keys.skipped.is_empty() {
                "the file is empty".to_string()
            } else {
                keys.skipped.iter().map(|(n, e)| format!("line {n}: {e}")).collect::<Vec<_>>().join("; ")
            };
            return Err(KeysError::NoKeys { path: path.to_path_buf(), problems });
        }
        Ok(keys)
    }

    /// Parses the text of an adb_keys file; blank lines and `#` comments are ignored.
    pub fn parse(path: &Path, text: &str) -> AdbKeys {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (blob, comment) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            match decode_pubkey(blob) {
                Ok(key) => keys.push(AdbKey { key, comment: comment.trim().to_string() }),
                Err(e) => skipped.push((i + 1, e)),
            }
        }
        AdbKeys { path: path.to_path_buf(), keys, skipped }
    }

    /// The key that signed `token`, if any.
    pub fn verify(&self, token: &[u8], signature: &[u8]) -> Option<&AdbKey> {
        self.keys.iter().find(|k| k.key.verify(Pkcs1v15Sign::new::<Sha1>(), token, signature).is_ok())
    }
}

/// Decodes the base64 `RSAPublicKey` struct of an adbkey.pub line.
pub fn decode_pubkey(b64: &str) -> Result<RsaPublicKey, KeyError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim_end_matches('\0'))
        .map_err(|e| KeyError::Base64(e.to_string()))?;
    if raw.len() != PUBKEY_STRUCT_LEN {
        return Err(KeyError::Length(raw.len()));
    }
    let word = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    if word(0) as usize != MODULUS_WORDS {
        return Err(KeyError::ModulusSize(word(0)));
    }
    let n = BigUint::from_bytes_le(&raw[8..8 + 4 * MODULUS_WORDS]);
    let e = BigUint::from(word(2 + 2 * MODULUS_WORDS));
    RsaPublicKey::new(n, e).map_err(|e| KeyError::Rsa(e.to_string()))
}

/// Encodes `key` (a 2048-bit key) as an adbkey.pub line body (base64, without the comment).
pub fn encode_pubkey(key: &RsaPublicKey) -> Result<String, KeyError> {
    let n = key.n();
    let mut n_le = n.to_bytes_le();
    if n_le.len() > 4 * MODULUS_WORDS {
        return Err(KeyError::ModulusSize(n_le.len().div_ceil(4) as u32));
    }
    n_le.resize(4 * MODULUS_WORDS, 0);
    // n0inv = -1/n mod 2^32 (Newton's iteration doubles the correct low bits each round).
    let n0 = u32::from_le_bytes(n_le[..4].try_into().expect("4 bytes"));
    let mut inv: u32 = 1;
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
    }
    let rr = (BigUint::from(1u32) << (2 * 32 * MODULUS_WORDS)) % n;
    let mut rr_le = rr.to_bytes_le();
    rr_le.resize(4 * MODULUS_WORDS, 0);
    let mut e_le = key.e().to_bytes_le();
    if e_le.len() > 4 {
        return Err(KeyError::Rsa("exponent does not fit 32 bits".into()));
    }
    e_le.resize(4, 0);
    let e = u32::from_le_bytes(e_le.try_into().expect("4 bytes"));
    let mut raw = Vec::with_capacity(PUBKEY_STRUCT_LEN);
    raw.extend_from_slice(&(MODULUS_WORDS as u32).to_le_bytes());
    raw.extend_from_slice(&inv.wrapping_neg().to_le_bytes());
    raw.extend_from_slice(&n_le);
    raw.extend_from_slice(&rr_le);
    raw.extend_from_slice(&e.to_le_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// A fresh random token.
pub fn new_token() -> std::io::Result<[u8; TOKEN_LEN]> {
    let mut t = [0u8; TOKEN_LEN];
    getrandom::getrandom(&mut t).map_err(std::io::Error::other)?;
    Ok(t)
}

/// The default key file: the public key of the local adb server (`$HOME/.android/adbkey.pub`),
/// which `adb start-server` creates on first use. None when HOME is unset.
pub fn default_keys_file() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".android/adbkey.pub"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPrivateKey;

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap()
    }

    #[test]
    fn encode_decode_roundtrip_and_signature_checks() {
        let k1 = key();
        let k2 = key();
        let line = format!("{} alice@host\n\n# comment\nnot-base64!!\n", encode_pubkey(&k1.to_public_key()).unwrap());
        let keys = AdbKeys::parse(Path::new("adb_keys"), &line);
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(keys.keys[0].comment, "alice@host");
        assert_eq!(keys.keys[0].key, k1.to_public_key());
        assert!(matches!(keys.skipped.as_slice(), [(4, KeyError::Base64(_))]));
        let token = new_token().unwrap();
        let good = k1.sign(Pkcs1v15Sign::new::<Sha1>(), &token).unwrap();
        let other = k2.sign(Pkcs1v15Sign::new::<Sha1>(), &token).unwrap();
        assert!(keys.verify(&token, &good).is_some());
        assert!(keys.verify(&token, &other).is_none(), "a key not in the file is refused");
        assert!(keys.verify(&new_token().unwrap(), &good).is_none(), "a signature of another token is refused");
        assert!(keys.verify(&token, &good[..100]).is_none());
    }

    #[test]
    fn encoding_matches_adbs_layout() {
        let k = key();
        let raw = base64::engine::general_purpose::STANDARD.decode(encode_pubkey(&k.to_public_key()).unwrap()).unwrap();
        assert_eq!(raw.len(), PUBKEY_STRUCT_LEN);
        let w = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(w(0), 64);
        // n0inv * n0 == -1 mod 2^32
        assert_eq!(w(1).wrapping_mul(w(2)), u32::MAX);
        assert_eq!(w(2 + 128), 65537);
    }

    #[test]
    fn bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        assert!(matches!(AdbKeys::load(&p), Err(KeysError::Read { .. })));
        std::fs::write(&p, "QUJD x@y\n").unwrap();
        let e = AdbKeys::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: key blob is 3 bytes"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(AdbKeys::load(&p).unwrap_err().to_string().contains("empty"));
    }
}
