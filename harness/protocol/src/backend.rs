//! The one list of execution backends, shared by the host (scenario validation, plugin bundles)
//! and the runner (session configuration). A backend is an axis value: code matches on
//! [`Backend`], never on its name; names appear only in files and plans.

use serde::{Deserialize, Serialize};

/// An execution backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// ONNX Runtime's CPU execution provider (built in).
    Cpu,
    /// Qualcomm's QNN execution provider, HTP (NPU) backend, as an ONNX Runtime plugin EP.
    QnnHtp,
    /// NVIDIA's CUDA execution provider from the `onnxruntime-gpu` build.
    Cuda,
}

/// What everyone needs to know about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendInfo {
    pub backend: Backend,
    /// Name in scenarios, plans and results.
    pub name: &'static str,
    /// Execution provider that runs the graph.
    pub execution_provider: &'static str,
    /// The plugin library to register at run time (`None`: built into ONNX Runtime).
    pub plugin_library: Option<&'static str>,
    /// Whether graphs can be compiled ahead of time into EP-context models.
    pub compiles: bool,
}

/// Every backend, in the order of the enum's variants (a test checks it).
pub const BACKENDS: &[BackendInfo] = &[
    BackendInfo {
        backend: Backend::Cpu,
        name: "cpu",
        execution_provider: "CPUExecutionProvider",
        plugin_library: None,
        compiles: false,
    },
    BackendInfo {
        backend: Backend::QnnHtp,
        name: "qnn-htp",
        execution_provider: "QNNExecutionProvider",
        plugin_library: Some("libonnxruntime_providers_qnn.so"),
        compiles: true,
    },
    BackendInfo {
        backend: Backend::Cuda,
        name: "cuda",
        execution_provider: "CUDAExecutionProvider",
        plugin_library: Some("libonnxruntime_providers_cuda.so"),
        compiles: false,
    },
];

impl Backend {
    /// Its row in [`BACKENDS`].
    pub const fn info(self) -> &'static BackendInfo {
        &BACKENDS[self as usize]
    }

    pub const fn as_str(self) -> &'static str {
        self.info().name
    }

    pub fn parse(name: &str) -> Option<Backend> {
        BACKENDS.iter().find(|b| b.name == name).map(|b| b.backend)
    }

    /// Every backend name, for error messages and nearest-name hints.
    pub fn names() -> Vec<&'static str> {
        BACKENDS.iter().map(|b| b.name).collect()
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serde_agrees() {
        for (i, b) in BACKENDS.iter().enumerate() {
            assert_eq!(b.backend as usize, i, "BACKENDS follows the enum's order");
            assert_eq!(b.backend.info().name, b.name);
            assert_eq!(Backend::parse(b.name), Some(b.backend));
            assert_eq!(serde_json::to_string(&b.backend).unwrap(), format!("\"{}\"", b.name));
        }
        assert_eq!(Backend::parse("nnapi"), None);
    }
}
