//! Runtime provisioning for quadbench: which ONNX Runtime artefacts the harness loads (the lock,
//! `runtime.lock.toml`), fetching them by package name with pip into a cache outside the
//! repository, verifying them (sha256, library version), and reporting what is installed.
//!
//! Entry points: [`ensure_onnxruntime`] / [`ensure_qnn`] for code that needs a library now
//! (fetched on first use), [`fetch`] for `quadbench runtime fetch`, [`info_text`] / [`status`]
//! for `quadbench runtime info`.
//!
//! Environment: `QUADBENCH_CACHE_DIR` (cache location), `QUADBENCH_OFFLINE=1` (never download),
//! `QUADBENCH_PYTHON` (interpreter for pip), `QUADBENCH_WHEEL_DIR` (look for the locked wheel
//! files here first), `QUADBENCH_ORT_LIB` (use this onnxruntime library instead of the cache),
//! plus per-entry variables of user-supplied artefacts (`QUADBENCH_ORT_LIB_ANDROID`).

use std::path::PathBuf;

mod cache;
mod fetch;
mod lock;
mod version;

pub use cache::{ArtefactStatus, MARKER, cache_dir, info_text_in, install_dir, runtime_root, sha256_file, status_in};
pub use fetch::{FetchOptions, Progress, ensure_onnxruntime_with, fetch};
pub use lock::{Artefact, FileMap, LibraryKind, Lock, PipSource, SCHEMA_VERSION, Source, UserSource};
pub use version::{check_ep_plugin, library_version, validate_library};

/// An artefact ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub target: String,
    /// The install directory (for QUADBENCH_ORT_LIB: the library's directory).
    pub dir: PathBuf,
    /// The main library: `ort::init_from` / `register_ep_library` take this path.
    pub library: PathBuf,
    /// sha256 of the source the files came from (the wheel; for QUADBENCH_ORT_LIB the library).
    pub sha256: String,
}

/// Everything that can go wrong, each message saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    #[error("invalid runtime lock ({origin}): {problem}")]
    LockInvalid { origin: String, problem: String },

    #[error("runtime.lock.toml has no artefact {name} for target {target} (it has: {known})")]
    UnknownArtefact { name: String, target: String, known: String },

    #[error("{artefact} is not installed (expected in {dir}) and QUADBENCH_OFFLINE is set, so nothing is downloaded.\n  fix: {fix}", dir = dir.display())]
    Offline { artefact: String, dir: PathBuf, fix: String },

    #[error("{artefact} is installed but broken ({problem}) and QUADBENCH_OFFLINE is set.\n  fix: {fix}")]
    Broken { artefact: String, problem: String, fix: String },

    #[error("cannot download {artefact} with pip: {problem}\n  fix: {fix}")]
    PipFailed { artefact: String, problem: String, fix: String },

    #[error("sha256 mismatch for {file}: expected {expected}, got {actual}; the file is not used (a pip download is deleted): check where it came from, or the lock", file = file.display())]
    HashMismatch { file: PathBuf, expected: String, actual: String },

    #[error("cannot extract {wheel}: {problem}", wheel = wheel.display())]
    Extract { wheel: PathBuf, problem: String },

    #[error("{artefact} is user-supplied and {env} is not set: {instructions}")]
    UserSupplied { artefact: String, env: String, instructions: String },

    #[error("runtime library {path} does not exist: run `quadbench runtime fetch`, or point QUADBENCH_ORT_LIB at an existing libonnxruntime.so", path = path.display())]
    LibraryMissing { path: PathBuf },

    #[error("runtime library {path} is a directory, not a library file: point QUADBENCH_ORT_LIB at the libonnxruntime.so file inside it (e.g. {path}/libonnxruntime.so.{version}), or unset it to use the fetched one", path = path.display())]
    LibraryIsDirectory { path: PathBuf, version: String },

    #[error(
        "cannot use runtime library: {problem}; run `quadbench runtime fetch` to reinstall the pinned runtime, or point QUADBENCH_ORT_LIB at a complete libonnxruntime.so"
    )]
    LibraryInvalid { path: PathBuf, problem: String },

    #[error("refusing to load {path}: it is named like the library of {artefact} but its sha256 is {actual}, not the pinned {expected} (runtime.lock.toml), so it is truncated or modified; run `quadbench runtime fetch` and use the fetched copy, or give a library you built yourself another file name (e.g. libonnxruntime.so)", path = path.display())]
    LibraryModified { path: PathBuf, artefact: String, actual: String, expected: String },

    #[error("cannot load runtime library {path}: {reason}", path = path.display())]
    LibraryLoad { path: PathBuf, reason: String },

    #[error("{path} is not an onnxruntime library (it has no OrtGetApiBase): point QUADBENCH_ORT_LIB at libonnxruntime.so, or unset it to use the fetched one", path = path.display())]
    NotOnnxRuntime { path: PathBuf },

    #[error("{path} is not an onnxruntime execution-provider plugin (it has no CreateEpFactories)", path = path.display())]
    NotEpPlugin { path: PathBuf },

    #[error("found onnxruntime {found} at {path}, quadbench needs {expected}: run `quadbench runtime fetch` or point QUADBENCH_ORT_LIB at a libonnxruntime.so of version {expected}", path = path.display())]
    WrongVersion { found: String, expected: String, path: PathBuf },

    #[error("QUADBENCH_ORT_LIB: {source}")]
    OrtLibOverride { source: Box<RuntimeError> },
}

/// The Rust target triple of this build, as the lock names targets.
pub fn host_target() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")) {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "linux", target_env = "gnu")) {
        "aarch64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "android")) {
        "aarch64-linux-android"
    } else if cfg!(all(target_arch = "aarch64", target_os = "macos")) {
        "aarch64-apple-darwin"
    } else if cfg!(all(target_arch = "x86_64", target_os = "windows")) {
        "x86_64-pc-windows-msvc"
    } else {
        "unsupported"
    }
}

/// Status of every artefact of the lock in the default cache (each file's sha256 checked).
pub fn status(lock: &Lock) -> Vec<ArtefactStatus> {
    status_in(lock, &cache_dir())
}

/// The table `quadbench runtime info` prints, for the default cache and QUADBENCH_ORT_LIB.
pub fn info_text(lock: &Lock) -> String {
    let opts = FetchOptions::from_env();
    info_text_in(lock, &opts.cache_dir, opts.ort_lib.as_deref())
}

/// The onnxruntime library for this host: `QUADBENCH_ORT_LIB` if set, else the locked artefact
/// from the cache, fetched on first use (environment as in [`FetchOptions::from_env`]).
pub fn ensure_onnxruntime() -> Result<Installed, RuntimeError> {
    ensure_onnxruntime_with(&Lock::embedded(), &FetchOptions::from_env())
}

/// The QNN execution-provider plugin for this host, fetched on first use; `library` is
/// `libonnxruntime_providers_qnn.so` (for `register_ep_library`), `dir` holds the QNN libraries.
pub fn ensure_qnn() -> Result<Installed, RuntimeError> {
    fetch(&Lock::embedded(), "onnxruntime-qnn", host_target(), &FetchOptions::from_env())
}
