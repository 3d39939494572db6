//! Ed25519 keys in quadbench's text format and DSSE envelopes (the signature is over
//! `PAE(payloadType, payload)`, as the DSSE spec defines it).
//!
//! Key files are two lines: a header naming the format, then the 32 key bytes in standard
//! base64 (the secret file holds the Ed25519 seed, RFC 8032):
//!
//! ```text
//! quadbench-ed25519-secret-key-v1
//! <base64 of 32 bytes>
//! ```
//!
//! and `quadbench-ed25519-public-key-v1` for the public key. The key id is `sha256:` and the
//! hex SHA-256 of the 32 public key bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const SECRET_HEADER: &str = "quadbench-ed25519-secret-key-v1";
pub const PUBLIC_HEADER: &str = "quadbench-ed25519-public-key-v1";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key {path}: {source}\n  hint: make one with `quadbench keygen --out KEY`")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a {what}: {why}\n  hint: pass the file `quadbench keygen --out KEY` wrote ({hint})")]
    NotAKey { path: String, what: &'static str, why: String, hint: &'static str },
    #[error("cannot write key {path}: {source}\n  hint: check that the folder exists and is writable")]
    Write { path: String, source: std::io::Error },
    #[error("{path} already exists\n  hint: choose another --out; keygen never overwrites a key")]
    Exists { path: String },
}

fn read_key(path: &Path, header: &str, what: &'static str, hint: &'static str) -> Result<[u8; 32], KeyError> {
    let not = |why: String| KeyError::NotAKey { path: path.display().to_string(), what, why, hint };
    let meta = std::fs::metadata(path).map_err(|e| KeyError::Read { path: path.display().to_string(), source: e })?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(not("not a small regular file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| KeyError::Read { path: path.display().to_string(), source: e })?;
    let text = String::from_utf8(bytes).map_err(|_| not("not text".into()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == header => {}
        Some(h) if h.starts_with("quadbench-ed25519-") => {
            return Err(not(format!("its header is `{}`, expected `{header}`", h.trim())));
        }
        _ => return Err(not(format!("its first line is not `{header}`"))),
    }
    let body = lines.next().unwrap_or("").trim();
    let raw = B64.decode(body).map_err(|e| not(format!("the key line is not base64 ({e})")))?;
    <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| not(format!("the key has {} bytes, expected 32", raw.len())))
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    read_key(path, SECRET_HEADER, "quadbench secret key", "KEY, not KEY.pub").map(|b| SigningKey::from_bytes(&b))
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let b = read_key(path, PUBLIC_HEADER, "quadbench public key", "KEY.pub")?;
    VerifyingKey::from_bytes(&b).map_err(|e| KeyError::NotAKey {
        path: path.display().to_string(),
        what: "quadbench public key",
        why: format!("not a valid Ed25519 point ({e})"),
        hint: "KEY.pub",
    })
}

/// `sha256:<hex>` of the public key bytes.
pub fn key_id(k: &VerifyingKey) -> String {
    format!("sha256:{}", crate::package::manifest::sha256_bytes(k.as_bytes()))
}

/// Write a new key pair: `out` (mode 0600) and `out.pub`. The seed comes from the kernel's
/// CSPRNG (`/dev/urandom`, getrandom's source on Linux).
pub fn keygen(out: &Path) -> Result<(String, std::path::PathBuf), KeyError> {
    let public = std::path::PathBuf::from(format!("{}.pub", out.display()));
    for p in [out, public.as_path()] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.display().to_string() });
        }
    }
    let mut seed = [0u8; 32];
    let wr = |p: &Path, e| KeyError::Write { path: p.display().to_string(), source: e };
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").map_err(|e| wr(out, e))?, &mut seed)
        .map_err(|e| wr(out, e))?;
    let sk = SigningKey::from_bytes(&seed);
    let secret = format!("{SECRET_HEADER}\n{}\n", B64.encode(seed));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out).map_err(|e| wr(out, e))?;
        f.write_all(secret.as_bytes()).map_err(|e| wr(out, e))?;
    }
    let vk = sk.verifying_key();
    std::fs::write(&public, format!("{PUBLIC_HEADER}\n{}\n", B64.encode(vk.as_bytes()))).map_err(|e| wr(&public, e))?;
    Ok((key_id(&vk), public))
}

/// DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    /// Standard base64 of the payload bytes.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    /// Standard base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// Sign `payload` (an in-toto statement) into an envelope.
pub fn envelope(sk: &SigningKey, payload: &[u8]) -> Envelope {
    let sig = sk.sign(&pae(PAYLOAD_TYPE, payload));
    Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: B64.encode(payload),
        signatures: vec![EnvelopeSignature { keyid: key_id(&sk.verifying_key()), sig: B64.encode(sig.to_bytes()) }],
    }
}

impl Envelope {
    /// The payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        B64.decode(&self.payload).map_err(|e| format!("the envelope's payload is not base64: {e}"))
    }

    /// Whether a signature by `vk` over PAE(type, payload) is present; else why not.
    pub fn verify(&self, vk: &VerifyingKey) -> Result<(), String> {
        let payload = self.payload_bytes()?;
        let msg = pae(&self.payload_type, &payload);
        let id = key_id(vk);
        let mut why = format!("no signature by key {id} (signed by: ");
        why.push_str(&self.signatures.iter().map(|s| s.keyid.as_str()).collect::<Vec<_>>().join(", "));
        why.push(')');
        for s in &self.signatures {
            let Ok(raw) = B64.decode(&s.sig) else { continue };
            let Ok(sig) = Signature::from_slice(&raw) else { continue };
            if vk.verify(&msg, &sig).is_ok() {
                return Ok(());
            }
            if s.keyid == id {
                why = format!("the signature by key {id} does not verify: the envelope or its payload was changed");
            }
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world").
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(got, b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec());
    }

    #[test]
    fn keys_round_trip_and_a_changed_payload_fails() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("k");
        let (id, public) = keygen(&k).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        let (sk, vk) = (read_signing_key(&k).unwrap(), read_public_key(&public).unwrap());
        assert_eq!(key_id(&vk), id);
        let mut e = envelope(&sk, b"{\"a\":1}");
        e.verify(&vk).unwrap();
        e.payload = B64.encode(b"{\"a\":2}");
        assert!(e.verify(&vk).unwrap_err().contains("does not verify"));
        assert!(matches!(read_signing_key(&public), Err(KeyError::NotAKey { .. })));
        assert!(keygen(&k).is_err(), "never overwrites");
    }
}
