//! Devices: the [`Transport`] trait (push, exec, pull, cleanup) and the registry of transports,
//! one file each, in [`TRANSPORTS`]. Each transport validates its own keys of a device profile
//! into settings ([`TransportSettings`]) that say what it can do ([`Capabilities`]) and open
//! connections. Profiles themselves (the common keys) are `crate::config::device`. Every
//! transport runs commands under the one watchdog in [`watchdog`].

pub mod adb;
pub mod child;
pub mod local;
pub mod ssh;
pub mod watchdog;

use crate::yaml::KeyError;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Infrastructure: device unreachable, transport broken, timeout. Retryable.
    #[error("infrastructure error on device `{device}`: {message}")]
    Infra { device: String, message: String },
    /// The command ran and failed (not retried).
    #[error("{0}")]
    Test(String),
    /// Writing on this host failed (disk full, permissions): not the device's fault, never
    /// retried; the scenario stops (exit 3).
    #[error("cannot write {path} on this host: {message}")]
    HostOutput { path: String, message: String },
    /// The host was interrupted (SIGINT/SIGTERM) while the command ran; the command was stopped.
    #[error("interrupted by {} while the runner was working; the runner was stopped", crate::interrupt::name(*.0))]
    Interrupted(i32),
}

/// What a transport reports about its device (also its fingerprint in results).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeviceInfo {
    pub name: String,
    pub transport: String,
    pub model: Option<String>,
    pub soc: Option<String>,
    pub abi: Option<String>,
    pub os_version: Option<String>,
}

/// What a transport's device is, as the scheduler and the backends need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The device is this host: it shares the host's CPU (measurements on it must not overlap
    /// with other work, and the host-side throttle check says something about it).
    pub is_host: bool,
    /// The device sees the host's files under their host paths, so large read-only libraries
    /// (plugin EPs) are used in place instead of being copied.
    pub shares_host_files: bool,
    /// The ABI the profile declares for the device (`None`: the host's own).
    pub abi: Option<String>,
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
    /// `lib_dirs` (remote directories) are searched for shared libraries first: the dynamic
    /// loader's path, and on Android also the DSP loader's (`ADSP_LIBRARY_PATH`, where QNN's
    /// HTP skeleton libraries are found).
    fn exec(
        &mut self,
        argv: &[String],
        cwd: &str,
        lib_dirs: &[String],
        limits: ExecLimits,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExecOutcome, DeviceError>;
    fn pull(&mut self, remote: &str, local: &Path) -> Result<(), DeviceError>;
    /// Remove a remote directory tree (cleanup policy).
    fn remove_dir(&mut self, remote: &str) -> Result<(), DeviceError>;
    /// What `quadbench devices list --device` shows about the device, label and value (by
    /// default the fingerprint of [`Transport::info`]; a transport may know more).
    fn details(&self) -> Vec<(&'static str, String)> {
        let i = self.info();
        let f = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        vec![("model", f(i.model)), ("soc", f(i.soc)), ("abi", f(i.abi)), ("os", f(i.os_version))]
    }
}

/// A transport's validated profile keys: what it can do, and how to reach the device.
pub trait TransportSettings: std::fmt::Debug + Send + Sync {
    fn capabilities(&self) -> Capabilities;
    /// Connect; `name` is the device profile's name (for messages).
    fn open(&self, name: &str) -> Result<Box<dyn Transport>, DeviceError>;
}

/// A transport's profile keys as written, with what the validation needs besides them.
pub struct SettingsInput<'a> {
    /// The keys this transport owns (only those present), as parsed from YAML.
    pub values: &'a BTreeMap<String, serde_json::Value>,
    /// The profile's folder (relative paths resolve against it).
    pub base: &'a Path,
    /// Whether `runner` and `ort_library` are `auto` (this host's builds).
    pub host_builds: bool,
}

/// One registered transport.
pub struct TransportKind {
    /// `transport:` value in a profile.
    pub name: &'static str,
    /// The profile keys this transport owns besides the common ones.
    pub keys: &'static [&'static str],
    pub parse: fn(&SettingsInput<'_>) -> Result<Arc<dyn TransportSettings>, KeyError>,
}

/// Every transport.
pub const TRANSPORTS: &[TransportKind] = &[local::KIND, adb::KIND, ssh::KIND];

/// The registered transport named `name`.
pub fn kind(name: &str) -> Option<&'static TransportKind> {
    TRANSPORTS.iter().find(|t| t.name == name)
}

/// A string-valued key of a transport's section (`None` when absent).
pub fn string_key(input: &SettingsInput<'_>, key: &str) -> Result<Option<String>, KeyError> {
    match input.values.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(KeyError::new(key, format!("`{key}` must be a string, not {other}"), "quote the value")),
    }
}
