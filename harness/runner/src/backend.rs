//! Execution backends, one entry each in [`BACKENDS`]: how a session builder is configured for
//! a backend named in the plan. A backend the device cannot serve reports `Unsupported` with the
//! reason (the host records it as skipped, not as a crash).

use ort::session::builder::SessionBuilder;
use quadbench_protocol::PlanBackend;

#[derive(Debug)]
pub enum BackendError {
    /// Not available on this device (reason given); the run is skipped.
    Unsupported(String),
    /// Available but failed to configure.
    Failed(String),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Unsupported(r) => write!(f, "backend unsupported on this device: {r}"),
            BackendError::Failed(r) => write!(f, "backend configuration failed: {r}"),
        }
    }
}

type Configure = fn(SessionBuilder, &PlanBackend) -> Result<SessionBuilder, BackendError>;

/// The registry: name -> configure function.
pub const BACKENDS: &[(&str, Configure)] = &[("cpu", cpu)];

fn cpu(b: SessionBuilder, backend: &PlanBackend) -> Result<SessionBuilder, BackendError> {
    if let Some((k, _)) = backend.options.iter().next() {
        return Err(BackendError::Failed(format!("the cpu backend takes no options, got `{k}`")));
    }
    Ok(b)
}

/// Configure `b` for the plan's backend.
pub fn configure(b: SessionBuilder, backend: &PlanBackend) -> Result<SessionBuilder, BackendError> {
    match BACKENDS.iter().find(|(n, _)| *n == backend.name) {
        Some((_, f)) => f(b, backend),
        None => Err(BackendError::Unsupported(format!(
            "this runner knows no backend `{}` (known: {})",
            backend.name,
            BACKENDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))),
    }
}
