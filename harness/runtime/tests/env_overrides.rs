//! The environment variables, exercised through the public entry points that read them. One test
//! function only: it changes the process environment, which must not race with other tests.

mod common;

use std::path::Path;

use common::{ORT, libc_path, options, seed_wheel_dir};
use quadbench_runtime::{Lock, RuntimeError, cache_dir, ensure_onnxruntime, fetch, host_target, info_text, status};

fn set(var: &str, value: impl AsRef<std::ffi::OsStr>) {
    // SAFETY: this test binary runs a single test, so no other thread reads the environment.
    unsafe { std::env::set_var(var, value) }
}

fn unset(var: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(var) }
}

#[test]
fn environment_overrides() {
    // Seed first: it may read QUADBENCH_WHEEL_DIR from the caller's environment.
    let wheels = seed_wheel_dir();
    for var in ["QUADBENCH_ORT_LIB", "QUADBENCH_WHEEL_DIR", "QUADBENCH_OFFLINE", "QUADBENCH_ORT_LIB_ANDROID"] {
        unset(var);
    }
    let cache = tempfile::tempdir().unwrap();

    // Cache location precedence: QUADBENCH_CACHE_DIR, then XDG_CACHE_HOME, then HOME.
    set("QUADBENCH_CACHE_DIR", cache.path());
    set("XDG_CACHE_HOME", "/xdg");
    assert_eq!(cache_dir(), cache.path());
    unset("QUADBENCH_CACHE_DIR");
    assert_eq!(cache_dir(), Path::new("/xdg/quadbench"));
    unset("XDG_CACHE_HOME");
    set("HOME", "/home/someone");
    assert_eq!(cache_dir(), Path::new("/home/someone/.cache/quadbench"));
    set("QUADBENCH_CACHE_DIR", cache.path());

    // Offline with an empty cache: the error says what to run and what to set.
    set("QUADBENCH_OFFLINE", "1");
    let err = ensure_onnxruntime().unwrap_err().to_string();
    for part in [
        "pip download",
        "onnxruntime==1.31.1",
        "QUADBENCH_ORT_LIB",
        "QUADBENCH_WHEEL_DIR",
        &cache.path().display().to_string(),
    ] {
        assert!(err.contains(part), "{err}\n--- lacks: {part}");
    }

    // QUADBENCH_ORT_LIB at something that is not onnxruntime, or nothing at all.
    let libc = libc_path();
    set("QUADBENCH_ORT_LIB", &libc);
    let err = ensure_onnxruntime().unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("QUADBENCH_ORT_LIB: ") && text.contains("is not an onnxruntime library"), "{text}");
    assert!(text.contains(&libc.display().to_string()), "{text}");
    set("QUADBENCH_ORT_LIB", "/nonexistent/libonnxruntime.so.1.31.1");
    let text = ensure_onnxruntime().unwrap_err().to_string();
    assert!(text.contains("/nonexistent/libonnxruntime.so.1.31.1") && text.contains("does not exist"), "{text}");

    // QUADBENCH_WHEEL_DIR works offline; then QUADBENCH_ORT_LIB at a real 1.31.1 is taken as is.
    unset("QUADBENCH_ORT_LIB");
    set("QUADBENCH_WHEEL_DIR", &wheels);
    let fetched = ensure_onnxruntime().expect("install from the wheel dir while offline");
    assert!(fetched.library.starts_with(cache.path()));
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("libonnxruntime.so.1.31.1");
    std::fs::copy(&fetched.library, &copy).unwrap();
    set("QUADBENCH_ORT_LIB", &copy);
    let over = ensure_onnxruntime().unwrap();
    assert_eq!((over.library.as_path(), over.version.as_str()), (copy.as_path(), "1.31.1"));
    assert!(info_text(&Lock::embedded()).contains(&format!("QUADBENCH_ORT_LIB={} (version 1.31.1)", copy.display())));
    unset("QUADBENCH_ORT_LIB");
    unset("QUADBENCH_OFFLINE");

    // A user-supplied artefact: without its variable the error carries the instructions; with
    // it the file is copied into the cache and then reported as installed.
    let lock = Lock::embedded();
    let android = "aarch64-linux-android";
    let err = fetch(&lock, ORT, android, &options(cache.path())).unwrap_err();
    assert!(matches!(err, RuntimeError::UserSupplied { .. }), "{err:?}");
    assert!(
        err.to_string().contains("QUADBENCH_ORT_LIB_ANDROID") && err.to_string().contains("jni/arm64-v8a"),
        "{err}"
    );
    let supplied = elsewhere.path().join("libonnxruntime-android.so");
    std::fs::write(&supplied, b"stand-in for the AAR's arm64 library").unwrap();
    set("QUADBENCH_ORT_LIB_ANDROID", &supplied);
    let installed = fetch(&lock, ORT, android, &options(cache.path())).unwrap();
    assert_eq!(std::fs::read(&installed.library).unwrap(), std::fs::read(&supplied).unwrap());
    assert_eq!(installed.sha256, quadbench_runtime::sha256_file(&supplied).unwrap());
    unset("QUADBENCH_ORT_LIB_ANDROID");
    // Once imported it no longer needs the variable.
    assert_eq!(fetch(&lock, ORT, android, &options(cache.path())).unwrap(), installed);
    let st = status(&lock);
    let row = st.iter().find(|s| s.target == android).unwrap();
    assert_eq!((row.installed, row.sha_ok), (true, Some(true)));
    assert_ne!(host_target(), android);
}
