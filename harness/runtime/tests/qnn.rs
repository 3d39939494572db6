//! The QNN plugin through `ensure_qnn`, in the real cache (`cache_dir()`, honouring the
//! QUADBENCH_* environment): the 98 MB wheel is fetched at most once per machine, and later runs
//! only verify it, which is what fetch's idempotence promises.

use quadbench_runtime::{Lock, check_ep_plugin, ensure_qnn, host_target, status};

#[test]
fn qnn_plugin_is_installed_with_its_layout_and_loads() {
    if host_target() != "x86_64-unknown-linux-gnu" {
        return; // the lock has QNN wheels for Linux only; nothing to check elsewhere
    }
    let qnn = ensure_qnn().expect("fetch the QNN plugin");
    assert_eq!(qnn.version, "2.7.0");
    assert!(qnn.library.ends_with("onnxruntime_qnn/libonnxruntime_providers_qnn.so"));
    // The plugin finds the QNN backends beside it and libc++ in the .libs dir by RUNPATH.
    for lib in ["onnxruntime_qnn/libQnnHtp.so", "onnxruntime_qnn/libQnnSystem.so", "onnxruntime_qnn/libHtpPrepare.so"] {
        assert!(qnn.dir.join(lib).is_file(), "{lib} missing in {}", qnn.dir.display());
    }
    let libs: Vec<_> = std::fs::read_dir(qnn.dir.join("onnxruntime_qnn.libs")).unwrap().collect();
    assert!(!libs.is_empty());
    check_ep_plugin(&qnn.library).expect("the plugin loads and exports CreateEpFactories");
    // Idempotent: the second call verifies and returns the same install.
    assert_eq!(ensure_qnn().unwrap(), qnn);
    let st = status(&Lock::embedded());
    let row = st.iter().find(|s| s.name == "onnxruntime-qnn" && s.target == host_target()).unwrap();
    assert_eq!(row.sha_ok, Some(true));
    assert!(row.size_bytes > 200_000_000, "QNN libraries are large: {}", row.size_bytes);
}
