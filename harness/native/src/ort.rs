//! The one place that asks a shared library what it is by loading it: the ONNX Runtime version
//! of a core library (through the C API entry point `OrtGetApiBase`), and whether a library
//! exports a symbol (an execution-provider plugin exports `CreateEpFactories`).
//!
//! Both run [`check_shared_library`] before `dlopen`, so a truncated or foreign file is an error
//! instead of a SIGBUS. A library loaded here stays loaded: ONNX Runtime registers thread-local
//! and atexit destructors, so unloading it while the process runs is unsafe, and callers load the
//! same file through `ort` next (dlopen then returns the same handle).

use std::ffi::{CStr, c_char, c_void};
use std::path::{Path, PathBuf};

use crate::elf::{ElfError, check_shared_library};

/// Why a library could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("cannot load {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("{} is not an onnxruntime library (it has no OrtGetApiBase)", path.display())]
    NotOnnxRuntime { path: PathBuf },
}

/// `OrtApiBase` from onnxruntime_c_api.h: stable across all ORT versions by design.
#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "C" fn(version: u32) -> *const c_void,
    get_version_string: unsafe extern "C" fn() -> *const c_char,
}

type GetApiBase = unsafe extern "C" fn() -> *const OrtApiBase;

/// Loads `path` (after the ELF check) and keeps it loaded.
fn load(path: &Path) -> Result<&'static libloading::Library, ProbeError> {
    check_shared_library(path)?;
    // SAFETY: loading runs the library's initialisers; callers pass ONNX Runtime libraries from
    // the lock, a plan, or a path the user named explicitly, and the file passed the ELF check.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| ProbeError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok(Box::leak(Box::new(library)))
}

/// The version string an onnxruntime shared library reports (`OrtGetApiBase()->
/// GetVersionString()`), e.g. "1.31.1".
pub fn version(path: &Path) -> Result<String, ProbeError> {
    let library = load(path)?;
    let not_ort = || ProbeError::NotOnnxRuntime { path: path.to_path_buf() };
    // SAFETY: the symbol type is the documented C signature of OrtGetApiBase.
    let get_base = unsafe { library.get::<GetApiBase>(b"OrtGetApiBase\0") }.map_err(|_| not_ort())?;
    // SAFETY: OrtGetApiBase takes no arguments and returns a pointer to a static struct.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(not_ort());
    }
    // SAFETY: `base` is non-null and points to the library's static OrtApiBase; the returned
    // string is static in the library, which stays loaded.
    unsafe {
        let s = ((*base).get_version_string)();
        if s.is_null() {
            return Err(not_ort());
        }
        Ok(CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

/// Whether the library at `path` (after the ELF check) exports `symbol`; it is never called.
pub fn exports(path: &Path, symbol: &str) -> Result<bool, ProbeError> {
    let library = load(path)?;
    // SAFETY: only the symbol's presence is checked; it is never called here.
    Ok(unsafe { library.get::<unsafe extern "C" fn()>(symbol.as_bytes()) }.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_ort_library_and_a_cut_one_are_errors() {
        let libc = crate::elf::tests::libc_path();
        let e = version(&libc).unwrap_err();
        assert!(matches!(e, ProbeError::NotOnnxRuntime { .. }), "{e:?}");
        assert!(exports(&libc, "malloc").unwrap());
        assert!(!exports(&libc, "CreateEpFactories").unwrap());
        let d = tempfile::tempdir().unwrap();
        let cut = d.path().join("libcut.so");
        let bytes = std::fs::read(&libc).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(version(&cut), Err(ProbeError::Elf(ElfError::Truncated { .. }))));
    }
}
