//! `cpu`: ONNX Runtime's default CPU execution provider, no options.

use super::{Backend, BackendError};

pub const BACKEND: Backend = Backend {
    id: quadbench_protocol::Backend::Cpu,
    prepare: |_, _, _| Ok(()),
    configure: |b, _, backend| {
        if let Some((k, _)) = backend.options.iter().next() {
            return Err(BackendError::Failed(format!(
                "the cpu backend takes no options, got `{k}`; remove it from the scenario"
            )));
        }
        Ok(b)
    },
};
