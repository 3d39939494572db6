//! `package: {<source>, quantize: {precision, profile, a8_ratio, per_channel}}`: a QDQ variant
//! of any source's package, calibrated on the scenario's inputs on the host with ONNX Runtime,
//! cached beside the others. Outputs are still scored against the FP32 package's goldens.

use crate::events::{Event, Reporter};
use crate::package::qprofile::{self, Quantize};
use crate::package::{Manifest, PackageError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The host process's ONNX Runtime environment (ort allows one per process). A library that
/// cannot be loaded is an infrastructure error ([`PackageError::Runtime`]).
pub fn host_env() -> Result<&'static ort::environment::Environment, PackageError> {
    static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();
    if let Some(e) = ENV.get() {
        return Ok(e);
    }
    let lib = quadbench_runtime::ensure_onnxruntime()
        .map_err(|e| PackageError::Runtime { library: "libonnxruntime.so".into(), message: e.to_string() })?;
    let runtime_err = |message: String| PackageError::Runtime { library: lib.library.display().to_string(), message };
    let env = ort::init_from(&lib.library)
        .map_err(|e| runtime_err(format!("cannot load it for calibration: {e}")))?
        .with_name("quadbench-host")
        .build()
        .map_err(|e| runtime_err(format!("cannot create an environment: {e}")))?;
    Ok(ENV.get_or_init(|| env))
}

/// The quantized variant `q` of the package at `src` (manifest `src_m`), calibrated on
/// `inputs`, made once into `cache`.
pub fn resolve(
    src: &Path,
    src_m: &Manifest,
    q: &Quantize,
    inputs: &[(String, PathBuf)],
    cache: &Path,
    rep: &mut dyn Reporter,
) -> Result<PathBuf, PackageError> {
    let calib: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let key = format!("{}-{}-cal-{}", src_m.sha256.get(..12).unwrap_or(&src_m.sha256), q.key(), calib.join("+"));
    crate::package::cache::entry(
        cache,
        &key,
        |_| {
            rep.event(&Event::Step {
                message: format!(
                    "quantizing {} as {} ({} profile), calibrated on {}",
                    src_m.raw.name,
                    q.precision.as_str(),
                    q.profile.as_str(),
                    calib.join(", ")
                ),
            })
        },
        |tmp| {
            let opts = q.options(inputs.iter().map(|(_, p)| p.clone()).collect());
            qprofile::quantize_package(host_env()?, src, tmp, &opts).map(|_| ())
        },
    )
}
