//! Asking a shared library what it is: the ONNX Runtime version of a core library (through the
//! C API entry point `OrtGetApiBase`) and whether a file is an execution-provider plugin.
//!
//! Both load the library with `dlopen`; this is what `ort` does later anyway, so the check costs
//! little and catches a wrong or foreign library before a session is built on it.

use std::ffi::{CStr, c_char};
use std::path::Path;

use crate::RuntimeError;

/// `OrtApiBase` from onnxruntime_c_api.h: stable across all ORT versions by design.
#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "C" fn(version: u32) -> *const std::ffi::c_void,
    get_version_string: unsafe extern "C" fn() -> *const c_char,
}

type GetApiBase = unsafe extern "C" fn() -> *const OrtApiBase;

/// The version string an onnxruntime shared library reports, e.g. "1.31.1".
pub fn library_version(path: &Path) -> Result<String, RuntimeError> {
    let library = open(path)?;
    // SAFETY: the symbol type is the documented C signature of OrtGetApiBase.
    let get_base = unsafe { library.get::<GetApiBase>(b"OrtGetApiBase\0") }
        .map_err(|_| RuntimeError::NotOnnxRuntime { path: path.to_path_buf() })?;
    // SAFETY: OrtGetApiBase takes no arguments and returns a pointer to a static struct.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(RuntimeError::NotOnnxRuntime { path: path.to_path_buf() });
    }
    // SAFETY: `base` is non-null and points to the library's static OrtApiBase; the returned
    // string is static in the library, which stays loaded (see below).
    let version = unsafe {
        let s = ((*base).get_version_string)();
        if s.is_null() {
            return Err(RuntimeError::NotOnnxRuntime { path: path.to_path_buf() });
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    };
    // Keep ORT loaded: it registers thread-local and atexit destructors, so unloading it while
    // the process runs is unsafe, and the caller is about to load the same file through `ort`.
    std::mem::forget(library);
    Ok(version)
}

/// Checks that `path` is an ONNX Runtime execution-provider plugin (exports `CreateEpFactories`,
/// the entry point `register_ep_library` calls).
pub fn check_ep_plugin(path: &Path) -> Result<(), RuntimeError> {
    let library = open(path)?;
    // SAFETY: only the symbol's presence is checked; it is never called here.
    let found = unsafe { library.get::<unsafe extern "C" fn()>(b"CreateEpFactories\0") }.is_ok();
    // Same reason as in library_version: ORT will load this plugin again; keep it mapped.
    std::mem::forget(library);
    if found { Ok(()) } else { Err(RuntimeError::NotEpPlugin { path: path.to_path_buf() }) }
}

/// Compares a found version against the one the lock pins.
pub(crate) fn check_version(found: &str, expected: &str, path: &Path) -> Result<(), RuntimeError> {
    if found == expected {
        Ok(())
    } else {
        Err(RuntimeError::WrongVersion {
            found: found.to_string(),
            expected: expected.to_string(),
            path: path.to_path_buf(),
        })
    }
}

fn open(path: &Path) -> Result<libloading::Library, RuntimeError> {
    if !path.is_file() {
        return Err(RuntimeError::LibraryMissing { path: path.to_path_buf() });
    }
    // SAFETY: loading runs the library's initialisers; the files loaded here are ONNX Runtime
    // libraries from the lock or a library the user named explicitly.
    unsafe { libloading::Library::new(path) }
        .map_err(|e| RuntimeError::LibraryLoad { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C library this test process runs on, found in /proc/self/maps (not a guessed path).
    fn libc_path() -> std::path::PathBuf {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
            .map(Into::into)
            .expect("libc is mapped")
    }

    #[test]
    fn a_non_ort_library_is_rejected_clearly() {
        let libc = libc_path();
        let err = library_version(&libc).unwrap_err();
        assert!(matches!(err, RuntimeError::NotOnnxRuntime { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&libc.display().to_string()) && text.contains("not an onnxruntime library"), "{text}");
        assert!(matches!(check_ep_plugin(&libc), Err(RuntimeError::NotEpPlugin { .. })));
    }

    #[test]
    fn missing_and_unloadable_files_are_reported() {
        let err = library_version(Path::new("/nonexistent/libonnxruntime.so.1.31.1")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/libonnxruntime.so.1.31.1"), "{err}");
        assert!(matches!(err, RuntimeError::LibraryMissing { .. }));
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("libjunk.so");
        std::fs::write(&junk, b"not an ELF file").unwrap();
        let err = library_version(&junk).unwrap_err();
        assert!(matches!(err, RuntimeError::LibraryLoad { .. }), "{err:?}");
    }

    #[test]
    fn wrong_version_message_names_both_versions_and_the_fix() {
        let err = check_version("1.20.0", "1.31.1", Path::new("/opt/ort/libonnxruntime.so")).unwrap_err();
        let text = err.to_string();
        for part in [
            "found onnxruntime 1.20.0",
            "/opt/ort/libonnxruntime.so",
            "needs 1.31.1",
            "quadbench runtime fetch",
            "QUADBENCH_ORT_LIB",
        ] {
            assert!(text.contains(part), "{text:?} lacks {part:?}");
        }
        assert!(check_version("1.31.1", "1.31.1", Path::new("/x")).is_ok());
    }
}
