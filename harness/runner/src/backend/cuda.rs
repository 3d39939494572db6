//! `cuda`: NVIDIA GPUs through ONNX Runtime's CUDA execution provider, registered like the QNN
//! plugin (`register_ep_library`) from the `onnxruntime-gpu` artefact's
//! `libonnxruntime_providers_cuda.so` (fetched on request), given in the plan's
//! `runtime.ep_libraries` under `CUDAExecutionProvider`. Needs an NVIDIA driver.
//! UNVERIFIED: no GPU was available when this was written; without a driver or without the
//! library it reports `unsupported` with the reason.

use super::{ep_options, register_libraries, Backend, BackendError};
use ort::environment::Environment;
use quadbench_protocol::PlanRuntime;
use std::path::Path;

pub const EP: &str = "CUDAExecutionProvider";

pub const OPTIONS: &[&str] = &["device_id", "gpu_mem_limit", "arena_extend_strategy", "cudnn_conv_algo_search", "do_copy_in_default_stream", "use_tf32"];

/// The driver library every CUDA program loads; its absence is the usual "no GPU" reason.
fn driver_present() -> Result<(), String> {
    // SAFETY: loading libcuda only runs its initialisers, which have no preconditions.
    unsafe { libloading::Library::new("libcuda.so.1") }.map(std::mem::forget).map_err(|e| format!("no NVIDIA driver on this device (libcuda.so.1 not loadable: {e})"))
}

fn prepare(env: &Environment, runtime: &PlanRuntime, dir: &Path) -> Result<(), BackendError> {
    driver_present().map_err(BackendError::Unsupported)?;
    if !runtime.ep_libraries.contains_key(EP) {
        return Err(BackendError::Unsupported(format!("no `{EP}` library in the plan's runtime.ep_libraries; fetch the CUDA build (quadbench runtime fetch onnxruntime-gpu)")));
    }
    register_libraries(env, runtime, dir)?;
    if !env.devices().any(|d| d.ep().is_ok_and(|e| e == EP)) {
        return Err(BackendError::Unsupported("the CUDA execution provider registered but found no GPU".into()));
    }
    Ok(())
}

pub const BACKEND: Backend = Backend {
    name: "cuda",
    execution_provider: EP,
    compiles: false,
    prepare,
    configure: |b, env, backend| {
        let opts = ep_options(backend, EP, OPTIONS)?;
        let dev = env.devices().find(|d| d.ep().is_ok_and(|e| e == EP)).ok_or_else(|| BackendError::Unsupported("no CUDA device".into()))?;
        b.with_devices([dev], Some(&opts)).map_err(|e| BackendError::Failed(format!("cannot select the CUDA device: {e}")))
    },
};
