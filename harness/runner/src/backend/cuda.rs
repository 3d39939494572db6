//! `cuda`: NVIDIA GPUs through ONNX Runtime's CUDA execution provider, registered like the QNN
//! plugin (`register_ep_library`) from the `onnxruntime-gpu` artefact's
//! `libonnxruntime_providers_cuda.so`. The host puts it in the plan's `runtime.ep_libraries`
//! under `CUDAExecutionProvider` once `quadbench runtime fetch onnxruntime-gpu` has fetched it
//! (never implicitly: 256 MB). Needs an NVIDIA driver and the CUDA 13 / cuDNN 9 libraries.
//! UNVERIFIED: no GPU was available to this project's sessions so far; without a driver or
//! without the library the run is `unsupported` with the reason.

use super::{Backend, BackendError, ep_options, prepare_plugin, select_plugin_device};
use ort::environment::Environment;
use quadbench_protocol::PlanRuntime;
use std::path::Path;

pub const EP: &str = ID.info().execution_provider;
const ID: quadbench_protocol::Backend = quadbench_protocol::Backend::Cuda;

pub const OPTIONS: &[&str] = &[
    "device_id",
    "gpu_mem_limit",
    "arena_extend_strategy",
    "cudnn_conv_algo_search",
    "do_copy_in_default_stream",
    "use_tf32",
];

/// The driver library every CUDA program loads; its absence is the usual "no GPU" reason.
fn driver_present() -> Result<(), String> {
    // SAFETY: loading libcuda only runs its initialisers, which have no preconditions.
    unsafe { libloading::Library::new("libcuda.so.1") }
        .map(std::mem::forget)
        .map_err(|e| format!("no NVIDIA driver on this device (libcuda.so.1 not loadable: {e})"))
}

fn prepare(env: &Environment, runtime: &PlanRuntime, dir: &Path) -> Result<(), BackendError> {
    driver_present().map_err(BackendError::Unsupported)?;
    prepare_plugin(
        env,
        runtime,
        dir,
        EP,
        "fetch the CUDA build (quadbench runtime fetch onnxruntime-gpu)",
        "the CUDA execution provider registered but found no GPU",
    )
}

pub const BACKEND: Backend = Backend {
    id: ID,
    prepare,
    configure: |b, env, backend| {
        let opts = ep_options(backend, EP, OPTIONS)?;
        select_plugin_device(b, env, EP, &opts, "CUDA")
    },
};
