//! Host side of the NPU path: quantized package variants (cached like the reference package)
//! and the execution-provider plugin libraries a backend needs in its plan.

use crate::package::{self, qprofile, quantize::ActBits, Manifest};
use crate::run::{Event, Reporter, RunError};
use crate::scenario::Quantize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The host process's ONNX Runtime environment (ort allows one per process).
pub fn host_env() -> Result<&'static ort::environment::Environment, RunError> {
    static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();
    if let Some(e) = ENV.get() {
        return Ok(e);
    }
    let lib = quadbench_runtime::ensure_onnxruntime()?;
    let env = ort::init_from(&lib.library)
        .map_err(|e| RunError::Input { path: lib.library.display().to_string(), message: format!("cannot load ONNX Runtime for calibration: {e}") })?
        .with_name("quadbench-host")
        .build()
        .map_err(|e| RunError::Input { path: lib.library.display().to_string(), message: format!("cannot create an ONNX Runtime environment: {e}") })?;
    Ok(ENV.get_or_init(|| env))
}

/// Quantize `src` as `q` (calibrated on the scenario's inputs), cached beside it.
pub fn quantized_package(src: &Path, q: &Quantize, inputs: &[(String, PathBuf)], cache: &Path, rep: &mut dyn Reporter) -> Result<(PathBuf, Manifest), RunError> {
    let src_m = package::load(src)?;
    let calib: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let key = format!("{}-{}-cal-{}", src_m.sha256.get(..12).unwrap_or(&src_m.sha256), q.key(), calib.join("+"));
    let dir = cache.join(&key);
    std::fs::create_dir_all(cache).map_err(|e| package::PackageError::io(cache, e))?;
    let lock = std::fs::File::create(cache.join(format!(".{key}.lock"))).map_err(|e| package::PackageError::io(cache, e))?;
    lock.lock().map_err(|e| package::PackageError::io(cache, e))?;
    if !dir.join(package::MANIFEST_FILE).exists() {
        rep.event(&Event::Step { message: format!("quantizing {} as {} ({} profile), calibrated on {}", src_m.raw.name, q.precision, q.profile, calib.join(", ")) });
        let opts = qprofile::QuantizeOptions {
            act: if q.precision == "w8a8" { ActBits::U8 } else { ActBits::U16 },
            method: if q.profile == "merge" { qprofile::ProfileMethod::Merge } else { qprofile::ProfileMethod::Anchor },
            a8_ratio: q.a8_ratio,
            per_channel: q.per_channel,
            inputs: inputs.iter().map(|(_, p)| p.clone()).collect(),
        };
        let tmp = cache.join(format!(".{key}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        qprofile::quantize_package(host_env()?, src, &tmp, &opts)?;
        std::fs::rename(&tmp, &dir).map_err(|e| package::PackageError::io(&dir, e))?;
    }
    let m = package::check(&dir)?;
    Ok((dir, m))
}

/// Plugin EP libraries for `backend` (registration name -> library path). For the local
/// transport the installed plugin is used in place; its files find each other by rpath.
pub fn ep_libraries(backend: &str, transport: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if backend == "qnn-htp" && transport == "local" {
        if let Ok(q) = quadbench_runtime::ensure_qnn() {
            out.insert("QNNExecutionProvider".to_string(), q.library.display().to_string());
        }
    }
    out
}
