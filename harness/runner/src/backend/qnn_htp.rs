//! `qnn-htp`: Qualcomm's QNN execution provider as an ONNX Runtime plugin EP, HTP (NPU) backend.
//! The plugin (`libonnxruntime_providers_qnn.so` and its QNN libraries, kept together: they find
//! each other by rpath) comes in the plan's `runtime.ep_libraries` under `QNNExecutionProvider`.
//! On x86_64 Linux the HTP is simulated by the same libraries. HTP needs QDQ graphs.

use super::{Backend, BackendError, ep_options, prepare_plugin, select_plugin_device};
use ort::environment::Environment;
use quadbench_protocol::PlanRuntime;
use std::path::Path;

pub const EP: &str = ID.info().execution_provider;
const ID: quadbench_protocol::Backend = quadbench_protocol::Backend::QnnHtp;

/// QNN EP options a scenario may set (names as the QNN EP documents them).
pub const OPTIONS: &[&str] = &[
    "backend_type",
    "htp_performance_mode",
    "soc_model",
    "htp_arch",
    "device_id",
    "vtcm_mb",
    "htp_graph_finalization_optimization_mode",
    "enable_htp_fp16_precision",
    "offload_graph_io_quantization",
    "profiling_level",
    "qnn_context_priority",
    "rpc_control_latency",
];

fn prepare(env: &Environment, runtime: &PlanRuntime, dir: &Path) -> Result<(), BackendError> {
    prepare_plugin(
        env,
        runtime,
        dir,
        EP,
        "the host adds it when the QNN plugin is installed (quadbench runtime fetch onnxruntime-qnn)",
        "the QNN plugin registered but offers no device",
    )
}

pub const BACKEND: Backend = Backend {
    id: ID,
    prepare,
    configure: |b, env, backend| {
        let mut opts = ep_options(backend, EP, OPTIONS)?;
        if !opts.iter().any(|(k, _)| k.ends_with(".backend_type")) {
            opts.push((format!("{EP}.backend_type"), "htp".into()));
        }
        select_plugin_device(b, env, EP, &opts, "QNN")
    },
};
