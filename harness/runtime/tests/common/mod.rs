//! Shared test helpers: a directory holding the x86_64 onnxruntime wheel, so that tests which
//! need an installed runtime in a fresh cache do not each download 24 MB. The real pip path is
//! exercised on its own in `fetch.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use quadbench_runtime::{FetchOptions, Lock, Source, host_target};

pub const ORT: &str = "onnxruntime";

/// A directory with the locked onnxruntime wheel for the host: `QUADBENCH_WHEEL_DIR` when it
/// has the file, else downloaded once per test binary with the lock's own pip command.
pub fn seed_wheel_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let lock = Lock::embedded();
        let artefact = lock.find(ORT, host_target()).expect("host onnxruntime in the lock");
        let Source::Pip(pip) = &artefact.source else { panic!("host onnxruntime must come from pip") };
        if let Some(dir) = std::env::var_os("QUADBENCH_WHEEL_DIR").map(PathBuf::from)
            && dir.join(&pip.wheel).is_file()
        {
            return dir;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("quadbench-runtime-wheels");
        if !dir.join(&pip.wheel).is_file() {
            let python = std::env::var("QUADBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
            let argv = artefact.pip_command(&python, &dir).unwrap();
            let status = Command::new(&argv[0]).args(&argv[1..]).status().expect("run pip");
            assert!(status.success(), "pip download for the test seed failed: {argv:?}");
        }
        dir
    })
    .clone()
}

/// Options for a private cache: online, python3, no wheel dir, no override.
pub fn options(cache: &Path) -> FetchOptions {
    FetchOptions {
        offline: false,
        python: std::env::var("QUADBENCH_PYTHON").unwrap_or_else(|_| "python3".into()),
        progress: None,
        cache_dir: cache.to_path_buf(),
        wheel_dir: None,
        ort_lib: None,
    }
}

/// Options whose progress messages are collected into the returned log.
pub fn logged(mut opts: FetchOptions) -> (FetchOptions, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    opts.progress = Some(Box::new(move |m: &str| sink.lock().unwrap().push(m.to_string())));
    (opts, log)
}

/// How many real installs a log records (the "installing ..." message is said once per install).
pub fn installs(log: &Mutex<Vec<String>>) -> usize {
    log.lock().unwrap().iter().filter(|m| m.contains(": installing")).count()
}

/// The C library this process runs on, found in /proc/self/maps (not a guessed path).
pub fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(Into::into)
        .expect("libc is mapped")
}
