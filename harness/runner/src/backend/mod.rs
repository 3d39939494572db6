//! Execution backends, one file each, registered in [`BACKENDS`]: how the environment is
//! prepared (plugin EP libraries registered) and how a session builder is configured for the
//! backend named in the plan. A backend the device cannot serve reports `Unsupported` with the
//! reason (the host records it as skipped, not as a crash). Adding `nnapi`, `xnnpack`, `coreml`
//! or `openvino` means one more file and one more line in [`BACKENDS`].

pub mod cpu;
pub mod cuda;
pub mod qnn_htp;

use ort::environment::Environment;
use ort::session::builder::SessionBuilder;
use quadbench_protocol::{PlanBackend, PlanRuntime};
use std::path::Path;

/// How an error that means "this device cannot serve it" starts: the host records such runs as
/// unsupported (`RunState::Unsupported`), not failed.
pub const UNSUPPORTED_PREFIX: &str = "backend unsupported on this device: ";

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
            BackendError::Unsupported(r) => write!(f, "{UNSUPPORTED_PREFIX}{r}"),
            BackendError::Failed(r) => write!(f, "backend configuration failed: {r}"),
        }
    }
}

/// One pluggable backend: its row of the shared list ([`quadbench_protocol::BACKENDS`]: name,
/// execution provider, whether it compiles) and how the runner sets it up.
pub struct Backend {
    pub id: quadbench_protocol::Backend,
    /// Called once per run after the environment exists: register plugin EP libraries, probe
    /// the hardware. `dir` resolves relative library paths.
    pub prepare: fn(&Environment, &PlanRuntime, &Path) -> Result<(), BackendError>,
    /// Configure one session builder.
    pub configure: fn(SessionBuilder, &Environment, &PlanBackend) -> Result<SessionBuilder, BackendError>,
}

impl Backend {
    pub fn name(&self) -> &'static str {
        self.id.info().name
    }

    /// Execution provider that runs the graph (reported in the result's environment).
    pub fn execution_provider(&self) -> &'static str {
        self.id.info().execution_provider
    }

    /// Whether graphs can be compiled ahead of time (EP context).
    pub fn compiles(&self) -> bool {
        self.id.info().compiles
    }
}

/// The registry: one entry per row of the shared backend list (a test checks it is complete).
pub const BACKENDS: &[&Backend] = &[&cpu::BACKEND, &qnn_htp::BACKEND, &cuda::BACKEND];

/// Runner-level option (not passed to the EP): compile every graph ahead of time into an
/// EP-context model before the run (`"1"`), on backends that can.
pub const OPT_EP_CONTEXT: &str = "ep_context";

/// The backend named in the plan.
pub fn find(name: &str) -> Result<&'static Backend, BackendError> {
    BACKENDS.iter().copied().find(|b| b.name() == name).ok_or_else(|| {
        BackendError::Unsupported(format!(
            "this runner knows no backend `{name}` (known: {})",
            BACKENDS.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Prepare the environment for the plan's backend.
pub fn prepare(
    env: &Environment,
    backend: &PlanBackend,
    runtime: &PlanRuntime,
    dir: &Path,
) -> Result<&'static Backend, BackendError> {
    let b = find(&backend.name)?;
    (b.prepare)(env, runtime, dir)?;
    Ok(b)
}

/// Configure `b` for the plan's backend.
pub fn configure(b: SessionBuilder, env: &Environment, backend: &PlanBackend) -> Result<SessionBuilder, BackendError> {
    (find(&backend.name)?.configure)(b, env, backend)
}

/// Register every EP library of the plan (`name -> path`, relative paths against `dir`).
pub fn register_libraries(env: &Environment, runtime: &PlanRuntime, dir: &Path) -> Result<(), BackendError> {
    for (name, path) in &runtime.ep_libraries {
        // Absolute: ONNX Runtime resolves a relative library path against its own directory,
        // not against the working directory.
        let p = if Path::new(path).is_absolute() {
            path.into()
        } else {
            std::path::absolute(dir.join(path)).unwrap_or_else(|_| dir.join(path))
        };
        if !p.is_file() {
            return Err(BackendError::Unsupported(format!(
                "execution-provider library {} is missing; push it with the runtime (quadbench runtime fetch)",
                p.display()
            )));
        }
        // Before dlopen: a truncated plugin would kill the runner with SIGBUS and no result.
        quadbench_native::check_shared_library(&p).map_err(|e| {
            BackendError::Failed(format!(
                "refusing to register {name}: {e}; push the plugin again (quadbench runtime fetch on the host)"
            ))
        })?;
        env.register_ep_library(name, &p).map_err(|e| BackendError::Unsupported(format!("cannot register {name} from {}: {e} (the QNN plugin needs glibc >= 2.35 and its companion libraries beside it)", p.display())))?;
    }
    Ok(())
}

/// The steps every plugin EP shares: its library must be in the plan, registers, and offers a
/// device. `fetch_hint` tells how to get the library; `no_device` why a device may be missing.
pub fn prepare_plugin(
    env: &Environment,
    runtime: &PlanRuntime,
    dir: &Path,
    ep: &str,
    fetch_hint: &str,
    no_device: &str,
) -> Result<(), BackendError> {
    if !runtime.ep_libraries.contains_key(ep) {
        return Err(BackendError::Unsupported(format!(
            "no `{ep}` library in the plan's runtime.ep_libraries; {fetch_hint}"
        )));
    }
    register_libraries(env, runtime, dir)?;
    if !env.devices().any(|d| d.ep().is_ok_and(|e| e == ep)) {
        return Err(BackendError::Unsupported(no_device.into()));
    }
    Ok(())
}

/// Select the plugin EP's device on a session builder with the given EP options.
pub fn select_plugin_device(
    b: SessionBuilder,
    env: &Environment,
    ep: &str,
    opts: &[(String, String)],
    label: &str,
) -> Result<SessionBuilder, BackendError> {
    let dev = env
        .devices()
        .find(|d| d.ep().is_ok_and(|e| e == ep))
        .ok_or_else(|| BackendError::Unsupported(format!("the {label} execution provider offers no device")))?;
    b.with_devices([dev], Some(opts))
        .map_err(|e| BackendError::Failed(format!("cannot select the {label} device: {e}")))
}

/// Split a backend's options into EP options (prefixed with the EP name) and runner options.
pub fn ep_options(backend: &PlanBackend, ep: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, BackendError> {
    let mut out = Vec::new();
    for (k, v) in &backend.options {
        if k == OPT_EP_CONTEXT {
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            return Err(BackendError::Failed(format!(
                "backend `{}` has no option `{k}` (known: {}, {OPT_EP_CONTEXT}); fix the scenario's backend options",
                backend.name,
                allowed.join(", ")
            )));
        }
        out.push((format!("{ep}.{k}"), v.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shared_backend_has_a_runner_entry() {
        for info in quadbench_protocol::BACKENDS {
            assert!(super::BACKENDS.iter().any(|b| b.id == info.backend), "{} has no runner backend", info.name);
        }
        assert_eq!(super::BACKENDS.len(), quadbench_protocol::BACKENDS.len());
    }
}
