//! Devices: profiles (`devices/*.yaml`) and transports. A transport moves files to a device,
//! runs commands there and pulls results back; every transport implements [`Transport`], one
//! file each, registered in [`TRANSPORTS`].

pub mod local;

use crate::yaml::{self, YamlError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Registered transports: name -> constructor.
pub const TRANSPORTS: &[(&str, fn(&DeviceProfile) -> Result<Box<dyn Transport>, DeviceError>)] = &[("local", local::open)];

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Infrastructure: device unreachable, transport broken, timeout. Retryable.
    #[error("infrastructure error on device `{device}`: {message}")]
    Infra { device: String, message: String },
    /// The command ran and failed (not retried).
    #[error("{0}")]
    Test(String),
    #[error(transparent)]
    Profile(#[from] YamlError),
}

/// What a transport reports about its device.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeviceInfo {
    pub name: String,
    pub transport: String,
    pub model: Option<String>,
    pub soc: Option<String>,
    pub abi: Option<String>,
    pub os_version: Option<String>,
}

/// Outcome of a command on the device.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    /// `None` when the process was killed (signal) or the transport lost the exit code.
    pub exit_code: Option<i32>,
    /// Last lines of stderr.
    pub stderr_tail: String,
    pub timed_out: bool,
}

/// Limits of one command: overall deadline and the longest silence (no stdout line) tolerated.
#[derive(Debug, Clone, Copy)]
pub struct ExecLimits {
    pub deadline: Duration,
    pub max_silence: Duration,
}

/// Push / exec / pull, the interface every device implements. Remote paths are relative to the
/// device's quadbench root and built from validated components only.
pub trait Transport: Send {
    fn info(&self) -> DeviceInfo;
    /// Copy a local file to `remote` unless a file with the same sha256 is already there.
    /// Returns whether bytes were transferred.
    fn push(&mut self, local: &Path, sha256: &str, remote: &str) -> Result<bool, DeviceError>;
    /// Run `argv` (argv[0] a remote path) in remote directory `cwd`; `on_line` gets stdout lines.
    fn exec(&mut self, argv: &[String], cwd: &str, limits: ExecLimits, on_line: &mut dyn FnMut(&str)) -> Result<ExecOutcome, DeviceError>;
    fn pull(&mut self, remote: &str, local: &Path) -> Result<(), DeviceError>;
    /// Remove a remote directory tree (cleanup policy).
    fn remove_dir(&mut self, remote: &str) -> Result<(), DeviceError>;
}

/// `devices/*.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceProfile {
    pub name: String,
    pub transport: String,
    /// local: directory that plays the device's storage (default: `<out>/device`).
    #[serde(default)]
    pub work_dir: Option<String>,
    /// Runner binary for this device's ABI (`auto`: the one built beside `quadbench`).
    #[serde(default)]
    pub runner: Option<String>,
    /// ONNX Runtime library for this device's ABI (`auto`: the fetched runtime for the host).
    #[serde(default)]
    pub ort_library: Option<String>,
    /// Keep run directories on the device after pulling results (default false).
    #[serde(default)]
    pub keep_runs: bool,
}

/// A validated device profile.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    pub path: PathBuf,
    pub name: String,
    pub transport: String,
    pub work_dir: Option<PathBuf>,
    pub runner: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub keep_runs: bool,
}

impl DeviceProfile {
    pub fn load(path: &Path) -> Result<DeviceProfile, YamlError> {
        let (raw, text) = yaml::load::<RawDeviceProfile>(path)?;
        let names: Vec<&str> = TRANSPORTS.iter().map(|t| t.0).collect();
        if !names.contains(&raw.transport.as_str()) {
            let fix = yaml::nearest(&raw.transport, names.iter().copied()).map(|n| format!("did you mean `{n}`?")).unwrap_or_else(|| format!("transports: {}", names.join(", ")));
            return Err(YamlError::at(path, &text, "transport:", format!("unknown transport `{}`", raw.transport), &fix));
        }
        if !crate::safe_name(&raw.name) {
            return Err(YamlError::at(path, &text, "name:", format!("device name `{}` must be a safe file name", raw.name), "use letters, digits, `_`, `-`, `.`"));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |s: &Option<String>| s.as_ref().filter(|v| v.as_str() != "auto").map(|v| base.join(v));
        Ok(DeviceProfile { path: path.to_path_buf(), name: raw.name, transport: raw.transport, work_dir: resolve(&raw.work_dir), runner: resolve(&raw.runner), ort_library: resolve(&raw.ort_library), keep_runs: raw.keep_runs })
    }

    pub fn open(&self) -> Result<Box<dyn Transport>, DeviceError> {
        let (_, ctor) = TRANSPORTS.iter().find(|t| t.0 == self.transport).expect("validated transport");
        ctor(self)
    }
}
