//! Fetching into private caches: the real pip path, idempotence, concurrency, tamper detection
//! and the offline / failure messages. No mocks: pip, the wheel and the library are real.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::{ORT, installs, logged, options, seed_wheel_dir};
use quadbench_runtime::{
    FetchOptions, Lock, MARKER, RuntimeError, Source, fetch, host_target, info_text_in, library_version, status_in,
};

fn lock() -> Lock {
    Lock::embedded()
}

#[test]
fn real_pip_fetch_installs_1_31_1_and_refetch_needs_no_pip() {
    let cache = tempfile::tempdir().unwrap();
    let lock = lock();
    let (opts, log) = logged(options(cache.path()));
    let started = Instant::now();
    let installed = fetch(&lock, ORT, host_target(), &opts).expect("pip fetch");
    let elapsed_s = started.elapsed().as_secs_f64();
    eprintln!("real pip fetch of onnxruntime (24 MB wheel) took {elapsed_s:.1} s");
    assert!(log.lock().unwrap().iter().any(|m| m.contains("with pip")), "pip was not used: {:?}", log.lock().unwrap());
    assert_eq!(installed.version, "1.31.1");
    assert_eq!(library_version(&installed.library).unwrap(), "1.31.1");
    assert!(installed.library.starts_with(cache.path().join("runtime")));
    assert!(installed.dir.join(MARKER).is_file());
    let Source::Pip(pip) = &lock.find(ORT, host_target()).unwrap().source else { unreachable!() };
    assert_eq!(installed.sha256, pip.wheel_sha256);
    // Nothing but the install and the lock file is left behind (no temp dirs, no wheel).
    let mut left: Vec<String> = std::fs::read_dir(cache.path().join("runtime"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [format!(".lock-onnxruntime-1.31.1-{}", host_target()), format!("onnxruntime-1.31.1-{}", host_target())]
    );

    // Second fetch: an interpreter that does not exist proves pip is not run again.
    let mut again = options(cache.path());
    again.python = "/nonexistent/python3".into();
    let started = Instant::now();
    assert_eq!(fetch(&lock, ORT, host_target(), &again).unwrap(), installed);
    eprintln!("second fetch (verify only) took {:.3} s", started.elapsed().as_secs_f64());
    again.offline = true;
    assert_eq!(fetch(&lock, ORT, host_target(), &again).unwrap(), installed);
}

#[test]
fn concurrent_fetches_into_a_fresh_cache_both_succeed_and_install_once() {
    let cache = tempfile::tempdir().unwrap();
    let wheels = seed_wheel_dir();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (cache, wheels, barrier) = (cache.path().to_path_buf(), wheels.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut opts = options(&cache);
                opts.wheel_dir = Some(wheels);
                let (opts, log) = logged(opts);
                barrier.wait();
                let result = fetch(&Lock::embedded(), ORT, host_target(), &opts);
                (result, installs(&log), log.lock().unwrap().clone())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let total_installs: usize = results.iter().map(|r| r.1).sum();
    assert_eq!(
        total_installs,
        1,
        "exactly one process installs: {:?}",
        results.iter().map(|r| &r.2).collect::<Vec<_>>()
    );
    let a = results[0].0.as_ref().expect("first fetch");
    let b = results[1].0.as_ref().expect("second fetch");
    assert_eq!(a, b);
    assert_eq!(library_version(&a.library).unwrap(), "1.31.1");
}

/// An install from the seed wheel into a fresh private cache.
fn seeded_install(cache: &std::path::Path) -> (FetchOptions, quadbench_runtime::Installed) {
    let mut opts = options(cache);
    opts.wheel_dir = Some(seed_wheel_dir());
    let installed = fetch(&lock(), ORT, host_target(), &opts).unwrap();
    (opts, installed)
}

#[test]
fn tampered_library_is_detected_reported_offline_and_reinstalled_online() {
    let cache = tempfile::tempdir().unwrap();
    let (opts, installed) = seeded_install(cache.path());
    // Flip one byte in the middle: same size, so only the sha256 can tell.
    let mut bytes = std::fs::read(&installed.library).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    // Write a new file and rename it over the library: the original is mapped into this process
    // (the version check loaded it), and rewriting a mapped file in place would crash the test.
    let tampered = installed.dir.join("tampered.tmp");
    std::fs::write(&tampered, &bytes).unwrap();
    std::fs::rename(&tampered, &installed.library).unwrap();

    let st = status_in(&lock(), cache.path());
    let ort = st.iter().find(|s| s.name == ORT && s.target == host_target()).unwrap();
    assert_eq!(ort.sha_ok, Some(false));
    assert!(ort.note.as_deref().unwrap().contains("sha256"), "{:?}", ort.note);
    assert!(info_text_in(&lock(), cache.path(), None).contains("BROKEN"));

    let mut offline = options(cache.path());
    offline.offline = true;
    let err = fetch(&lock(), ORT, host_target(), &offline).unwrap_err();
    assert!(matches!(err, RuntimeError::Broken { .. }), "{err:?}");
    assert!(err.to_string().contains(&installed.library.display().to_string()), "{err}");

    let (opts, log) = logged(opts);
    let repaired = fetch(&lock(), ORT, host_target(), &opts).unwrap();
    assert!(log.lock().unwrap().iter().any(|m| m.contains("reinstalling")), "{:?}", log.lock().unwrap());
    assert_eq!(library_version(&repaired.library).unwrap(), "1.31.1");
    assert_eq!(
        status_in(&lock(), cache.path()).iter().find(|s| s.name == ORT && s.target == host_target()).unwrap().sha_ok,
        Some(true)
    );
}

#[test]
fn corrupt_or_foreign_marker_is_detected_and_repaired() {
    let cache = tempfile::tempdir().unwrap();
    let (opts, installed) = seeded_install(cache.path());
    let marker = installed.dir.join(MARKER);
    let good = std::fs::read_to_string(&marker).unwrap();
    assert!(good.contains(&installed.sha256), "the marker records the wheel sha256");

    for bad in ["garbage \u{0} not toml".to_string(), good.replace(&installed.sha256, &"0".repeat(64))] {
        std::fs::write(&marker, &bad).unwrap();
        let st = status_in(&lock(), cache.path());
        let ort = st.iter().find(|s| s.name == ORT && s.target == host_target()).unwrap();
        assert_eq!(ort.sha_ok, Some(false), "{bad:?} must be detected");
        let (o, log) = logged(clone_opts(&opts));
        fetch(&lock(), ORT, host_target(), &o).unwrap();
        assert_eq!(installs(&log), 1, "a broken marker leads to a reinstall");
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), good);
    }
}

fn clone_opts(o: &FetchOptions) -> FetchOptions {
    FetchOptions {
        offline: o.offline,
        python: o.python.clone(),
        progress: None,
        cache_dir: o.cache_dir.clone(),
        wheel_dir: o.wheel_dir.clone(),
        ort_lib: o.ort_lib.clone(),
    }
}

#[test]
fn offline_with_an_empty_cache_says_exactly_what_to_run() {
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(cache.path());
    opts.offline = true;
    opts.python = "python3".into();
    let err = fetch(&lock(), ORT, host_target(), &opts).unwrap_err();
    assert!(matches!(err, RuntimeError::Offline { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("offline error as users see it:\n{text}");
    let wheels = cache.path().join("runtime").join("wheels");
    let expected_cmd = format!(
        "python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
         --platform manylinux_2_28_x86_64 -d {} onnxruntime==1.31.1",
        wheels.display()
    );
    for part in [
        expected_cmd.as_str(),
        "QUADBENCH_ORT_LIB",
        "QUADBENCH_WHEEL_DIR",
        "quadbench runtime fetch",
        "QUADBENCH_OFFLINE",
    ] {
        assert!(text.contains(part), "{text}\n--- lacks: {part}");
    }
    assert!(!cache.path().join("runtime").join(format!("onnxruntime-1.31.1-{}", host_target())).exists());
}

#[test]
fn pip_that_cannot_run_gives_the_manual_command() {
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(cache.path());
    opts.python = "/nonexistent/python3".into();
    let err = fetch(&lock(), ORT, host_target(), &opts).unwrap_err();
    assert!(matches!(err, RuntimeError::PipFailed { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "`/nonexistent/python3` not found",
        "QUADBENCH_PYTHON",
        "-m pip download",
        "onnxruntime==1.31.1",
        "QUADBENCH_ORT_LIB",
    ] {
        assert!(text.contains(part), "{text}\n--- lacks: {part}");
    }
    // pip itself failing (a version PyPI does not have: pip exits non-zero): its stderr is shown.
    let broken = Lock::parse(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../runtime.lock.toml"))
            .unwrap()
            .replace(
                "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
                "onnxruntime-0.0.1-cp311-cp311-manylinux_2_28_x86_64.whl",
            )
            .replacen("version = \"1.31.1\"", "version = \"0.0.1\"", 1),
        "test",
    )
    .unwrap();
    let err = fetch(&broken, ORT, host_target(), &options(cache.path())).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RuntimeError::PipFailed { .. }), "{err:?}");
    assert!(text.contains("pip exited with") && text.contains("onnxruntime==0.0.1"), "{text}");
}

#[test]
fn a_wheel_with_the_wrong_sha256_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let wheels = tempfile::tempdir().unwrap();
    let Source::Pip(pip) = &lock().find(ORT, host_target()).unwrap().source.clone() else { unreachable!() };
    let fake = wheels.path().join(&pip.wheel);
    std::fs::write(&fake, b"PK not really a wheel").unwrap();
    let mut opts = options(cache.path());
    opts.wheel_dir = Some(wheels.path().to_path_buf());
    let err = fetch(&lock(), ORT, host_target(), &opts).unwrap_err();
    let RuntimeError::HashMismatch { file, expected, actual } = &err else { panic!("{err:?}") };
    assert_eq!(file, &fake);
    assert_eq!(expected, &pip.wheel_sha256);
    assert_eq!(actual, &quadbench_runtime::sha256_file(&fake).unwrap());
    let text = err.to_string();
    assert!(
        text.contains(&pip.wheel_sha256)
            && text.contains(actual.as_str())
            && text.contains(&fake.display().to_string())
    );
    assert!(!status_in(&lock(), cache.path()).iter().any(|s| s.installed), "nothing may be installed");
}

#[test]
fn info_lists_every_artefact_with_state_and_path() {
    let cache = tempfile::tempdir().unwrap();
    let (_, installed) = seeded_install(cache.path());
    let text = info_text_in(&lock(), cache.path(), None);
    let row = text.lines().find(|l| l.starts_with("onnxruntime ") && l.contains(host_target())).unwrap();
    assert!(row.contains(" ok ") && row.contains(&installed.library.display().to_string()), "{text}");
    assert!(text.contains("missing (on request)"), "the GPU entry is on request: {text}");
    assert!(text.contains("QUADBENCH_ORT_LIB_ANDROID"), "user-supplied entries say how: {text}");
    for a in lock().artefacts() {
        let prefix = format!("{} ", a.name);
        assert!(
            text.lines().any(|l| l.starts_with(&prefix) && l.contains(&a.target) && l.contains(&a.version)),
            "{} {} not listed:\n{text}",
            a.name,
            a.target
        );
    }
    let st = status_in(&lock(), cache.path());
    let ort = st.iter().find(|s| s.name == ORT && s.target == host_target()).unwrap();
    let on_disk: u64 = ["libonnxruntime.so.1.31.1", "libonnxruntime_providers_shared.so"]
        .iter()
        .map(|f| std::fs::metadata(installed.dir.join("lib").join(f)).unwrap().len())
        .sum();
    assert_eq!(ort.size_bytes, on_disk);
}
