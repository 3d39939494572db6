//! A runtime library is checked before anything `dlopen`s it: a truncated copy of the real
//! onnxruntime (which `dlopen` turns into a SIGBUS that kills the process without a message), a
//! modified file carrying the pinned versioned name, and a directory are errors naming the path
//! and the fix. Uses the real ONNX Runtime 1.31.1 from the locked wheel.

mod common;

use std::path::{Path, PathBuf};

use common::{ORT, options, seed_wheel_dir};
use quadbench_runtime::{
    Lock, RuntimeError, ensure_onnxruntime_with, fetch, host_target, library_version, validate_library,
};

/// The real library, installed from the seeded wheel into a private cache.
fn real_library(cache: &Path) -> PathBuf {
    let mut opts = options(cache);
    opts.offline = true;
    opts.wheel_dir = Some(seed_wheel_dir());
    fetch(&Lock::embedded(), ORT, host_target(), &opts).expect("install onnxruntime from the wheel").library
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{text}\n--- lacks: {part}");
    }
}

#[test]
fn truncated_libraries_are_refused_before_dlopen() {
    let cache = tempfile::tempdir().unwrap();
    let real = real_library(cache.path());
    let bytes = std::fs::read(&real).unwrap();
    assert_eq!(library_version(&real).unwrap(), "1.31.1");
    let d = tempfile::tempdir().unwrap();
    // Under the pinned name and under a name without a pin: the ELF check alone refuses it.
    for name in ["libonnxruntime.so.1.31.1", "libonnxruntime.so"] {
        let cut = d.path().join(name);
        for len in [bytes.len() / 2, bytes.len() - 4096] {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            let err = library_version(&cut).unwrap_err();
            assert!(matches!(err, RuntimeError::LibraryInvalid { .. }), "{err:?}");
            assert_mentions(
                &err.to_string(),
                &[&cut.display().to_string(), "truncated", &format!("only {len} bytes"), "quadbench runtime fetch"],
            );
        }
    }
    // Through QUADBENCH_ORT_LIB (ensure_onnxruntime): the variable is named too.
    let cut = d.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut opts = options(cache.path());
    opts.ort_lib = Some(cut.clone());
    let text = ensure_onnxruntime_with(&Lock::embedded(), &opts).unwrap_err().to_string();
    assert!(text.starts_with("QUADBENCH_ORT_LIB: "), "{text}");
    assert_mentions(&text, &[&cut.display().to_string(), "truncated"]);
}

#[test]
fn a_modified_library_under_the_pinned_name_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let real = real_library(cache.path());
    let mut bytes = std::fs::read(&real).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let d = tempfile::tempdir().unwrap();
    let pinned_name = d.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&pinned_name, &bytes).unwrap();
    let err = validate_library(&pinned_name).unwrap_err();
    assert!(matches!(err, RuntimeError::LibraryModified { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &[
            &pinned_name.display().to_string(),
            "onnxruntime 1.31.1 (x86_64-unknown-linux-gnu)",
            "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
            "quadbench runtime fetch",
        ],
    );
    // The same bytes under a name that claims no pinned identity pass the structural check.
    let own_build = d.path().join("libonnxruntime.so");
    std::fs::write(&own_build, &bytes).unwrap();
    validate_library(&own_build).unwrap();
    // An intact copy under the pinned name passes.
    let copy = d.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(&real, copy.join("libonnxruntime.so.1.31.1")).unwrap();
    validate_library(&copy.join("libonnxruntime.so.1.31.1")).unwrap();
}

#[test]
fn a_directory_is_reported_as_a_directory() {
    let d = tempfile::tempdir().unwrap();
    let err = library_version(d.path()).unwrap_err();
    assert!(matches!(err, RuntimeError::LibraryIsDirectory { .. }), "{err:?}");
    let text = err.to_string();
    assert_mentions(&text, &[&d.path().display().to_string(), "is a directory", "libonnxruntime.so.1.31.1"]);
    assert!(!text.contains("does not exist"), "{text}");
    let mut opts = options(d.path());
    opts.ort_lib = Some(d.path().to_path_buf());
    let text = ensure_onnxruntime_with(&Lock::embedded(), &opts).unwrap_err().to_string();
    assert_mentions(&text, &["QUADBENCH_ORT_LIB: ", "is a directory"]);
}
