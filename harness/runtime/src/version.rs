//! Checking a runtime library before anything loads it, and asking it what it is: the ONNX
//! Runtime version of a core library and whether a file is an execution-provider plugin.
//!
//! [`validate_library`] is the one check every `dlopen` of a runtime library goes through on the
//! host (the version probe and the plugin check call it first; `ort::init_from` and
//! `register_ep_library` only ever get paths that passed it): a directory, a missing file, a
//! special file, a truncated or foreign ELF file, or a file named like a pinned library whose
//! sha256 differs, is an error naming the path and the fix, never a SIGBUS. The probes
//! themselves live in `quadbench_native::ort`, shared with the device-side runner.

use std::path::Path;

use quadbench_native::{ProbeError, check_shared_library};

use crate::lock::Lock;
use crate::{RuntimeError, cache, host_target};

/// Checks `path` before it is loaded: an existing regular file (not a directory), a complete
/// shared library for this process (ELF header, class and machine, program headers, sections and
/// section-header table inside the file), and, when its file name is the versioned name of a
/// library pinned in the embedded `runtime.lock.toml` (`libonnxruntime.so.1.31.1`), one of the
/// pinned sha256s. Reads the headers only, plus the whole file when a pin applies.
pub fn validate_library(path: &Path) -> Result<(), RuntimeError> {
    validate_with(&Lock::embedded(), path).map(|_| ())
}

/// [`validate_library`] against `lock`; returns the file's sha256 when it was computed.
pub(crate) fn validate_with(lock: &Lock, path: &Path) -> Result<Option<String>, RuntimeError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RuntimeError::LibraryMissing { path: path.to_path_buf() });
        }
        Ok(m) if m.is_dir() => {
            let version = lock.find("onnxruntime", host_target()).map_or("<version>".into(), |a| a.version.clone());
            return Err(RuntimeError::LibraryIsDirectory { path: path.to_path_buf(), version });
        }
        // Anything else (special files, unreadable paths) is reported by the ELF check.
        _ => {}
    }
    check_shared_library(path)
        .map_err(|e| RuntimeError::LibraryInvalid { path: path.to_path_buf(), problem: e.to_string() })?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let claimed = lock.claimed_by_file_name(&file_name, host_target());
    // Only when every artefact carrying this name is pinned can a mismatch be told from a
    // different build of the same name.
    let pins: Option<Vec<&str>> = claimed.iter().map(|a| a.library_sha256.as_deref()).collect();
    let Some(pins) = pins.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let actual = cache::sha256_file(path).map_err(|e| cache::io_err(e, "cannot read", path))?;
    if pins.contains(&actual.as_str()) {
        return Ok(Some(actual));
    }
    Err(RuntimeError::LibraryModified {
        path: path.to_path_buf(),
        artefact: claimed.iter().map(|a| a.label()).collect::<Vec<_>>().join(" or "),
        actual,
        expected: pins.join(" or "),
    })
}

fn probe_error(path: &Path, e: ProbeError) -> RuntimeError {
    match e {
        ProbeError::Elf(e) => RuntimeError::LibraryInvalid { path: path.to_path_buf(), problem: e.to_string() },
        ProbeError::Load { reason, .. } => RuntimeError::LibraryLoad { path: path.to_path_buf(), reason },
        ProbeError::NotOnnxRuntime { .. } => RuntimeError::NotOnnxRuntime { path: path.to_path_buf() },
    }
}

/// The version string an onnxruntime shared library reports, e.g. "1.31.1" (validated first).
pub fn library_version(path: &Path) -> Result<String, RuntimeError> {
    library_version_with(&Lock::embedded(), path).map(|(v, _)| v)
}

/// [`library_version`] against `lock`, with the sha256 if validation computed it.
pub(crate) fn library_version_with(lock: &Lock, path: &Path) -> Result<(String, Option<String>), RuntimeError> {
    let sha = validate_with(lock, path)?;
    let version = quadbench_native::ort::version(path).map_err(|e| probe_error(path, e))?;
    Ok((version, sha))
}

/// Checks that `path` is an ONNX Runtime execution-provider plugin (exports `CreateEpFactories`,
/// the entry point `register_ep_library` calls), validated first.
pub fn check_ep_plugin(path: &Path) -> Result<(), RuntimeError> {
    validate_library(path)?;
    let found = quadbench_native::ort::exports(path, "CreateEpFactories").map_err(|e| probe_error(path, e))?;
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
        assert!(matches!(err, RuntimeError::LibraryInvalid { .. }), "{err:?}");
        assert!(err.to_string().contains("is not an elf shared library"), "{err}");
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
