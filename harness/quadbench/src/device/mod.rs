//! Devices: profiles (`devices/*.yaml`) and transports. A transport moves files to a device,
//! runs commands there and pulls results back; every transport implements [`Transport`], one
//! file each, registered in [`TRANSPORTS`].

pub mod adb;
pub mod local;

use crate::yaml::{self, YamlError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The QNN execution-provider plugin's file name (the same on Linux and Android).
pub const QNN_PLUGIN_LIBRARY: &str = "libonnxruntime_providers_qnn.so";

/// Registered transports: name -> constructor.
pub const TRANSPORTS: &[(&str, fn(&DeviceProfile) -> Result<Box<dyn Transport>, DeviceError>)] =
    &[("local", local::open), ("adb", adb::open)];

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
    /// adb: the device's serial as `adb devices` shows it (`host:port` for TCP devices, which
    /// are attached with `adb connect` when missing).
    #[serde(default)]
    pub serial: Option<String>,
    /// adb: the adb server, `host:port` (default `127.0.0.1:5037`).
    #[serde(default)]
    pub adb_server: Option<String>,
    /// adb: absolute device directory holding quadbench's files (default
    /// `/data/local/tmp/quadbench`).
    #[serde(default)]
    pub root: Option<String>,
    /// adb: the ABI the runner and runtime were built for (`arm64-v8a`); checked against the
    /// device's `ro.product.cpu.abilist` before anything is pushed.
    #[serde(default)]
    pub abi: Option<String>,
    /// Retries of a run after an infrastructure error (default 2).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first retry in ms, doubled for each further one (default 2000).
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    /// Directory of the QNN execution-provider plugin for this device's ABI: it holds
    /// `libonnxruntime_providers_qnn.so` and the QNN libraries it loads (for Android, the
    /// `jni/arm64-v8a` directory of the `onnxruntime-android-qnn` AAR). Every shared library
    /// under it is pushed with its layout kept. `auto` (default): the fetched `onnxruntime-qnn`
    /// plugin, which suits devices running this host's ABI only.
    #[serde(default)]
    pub qnn_libraries: Option<String>,
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
    /// QNN plugin directory (`None`: `auto`, the fetched plugin).
    pub qnn_libraries: Option<PathBuf>,
    /// Settings of the adb transport (`None` for other transports).
    pub adb: Option<AdbSettings>,
    pub retry: RetryPolicy,
}

/// Where and how to reach an Android device through an adb server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdbSettings {
    pub serial: String,
    pub server: std::net::SocketAddrV4,
    /// Absolute device path, validated components only.
    pub root: String,
    pub abi: Option<String>,
}

/// What to do after an infrastructure error: retry `retries` times, waiting `backoff` before
/// the first retry and doubling the wait each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 2, backoff: Duration::from_millis(2000) }
    }
}

impl RetryPolicy {
    /// Wait before retry number `attempt` (1-based), capped at 5 minutes.
    pub fn wait(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(Duration::from_secs(300))
    }
}

impl DeviceProfile {
    pub fn load(path: &Path) -> Result<DeviceProfile, YamlError> {
        let (raw, text) = yaml::load::<RawDeviceProfile>(path)?;
        let names: Vec<&str> = TRANSPORTS.iter().map(|t| t.0).collect();
        if !names.contains(&raw.transport.as_str()) {
            let fix = yaml::nearest(&raw.transport, names.iter().copied())
                .map(|n| format!("did you mean `{n}`?"))
                .unwrap_or_else(|| format!("transports: {}", names.join(", ")));
            return Err(YamlError::at(
                path,
                &text,
                "transport:",
                format!("unknown transport `{}`", raw.transport),
                &fix,
            ));
        }
        if !crate::safe_name(&raw.name) {
            return Err(YamlError::at(
                path,
                &text,
                "name:",
                format!("device name `{}` must be a safe file name", raw.name),
                &format!("use {}", crate::SAFE_NAME_CHARS),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |s: &Option<String>| s.as_ref().filter(|v| v.as_str() != "auto").map(|v| base.join(v));
        let err = |needle: &str, msg: String, fix: &str| YamlError::at(path, &text, needle, msg, fix);
        let adb = if raw.transport == "adb" {
            Some(adb::settings(&raw, &err)?)
        } else {
            for (set, key) in [
                (raw.serial.is_some(), "serial:"),
                (raw.adb_server.is_some(), "adb_server:"),
                (raw.root.is_some(), "root:"),
                (raw.abi.is_some(), "abi:"),
            ] {
                if set {
                    return Err(err(
                        key,
                        format!("`{}` applies to the adb transport only", key.trim_end_matches(':')),
                        "remove it, or set `transport: adb`",
                    ));
                }
            }
            None
        };
        let qnn_libraries = resolve(&raw.qnn_libraries);
        if let Some(dir) = &qnn_libraries {
            if !dir.join(QNN_PLUGIN_LIBRARY).is_file() {
                return Err(err(
                    "qnn_libraries:",
                    format!("{} has no {QNN_PLUGIN_LIBRARY}", dir.display()),
                    "point it at the directory holding the QNN plugin and its QNN libraries (Android: `jni/arm64-v8a` of the onnxruntime-android-qnn AAR, docs/adb.md), or use `auto`",
                ));
            }
        }
        let d = RetryPolicy::default();
        let retry = RetryPolicy {
            retries: raw.retries.unwrap_or(d.retries),
            backoff: raw.backoff_ms.map_or(d.backoff, Duration::from_millis),
        };
        if retry.retries > 20 {
            return Err(err(
                "retries:",
                format!("retries: {} is more than 20", retry.retries),
                "a device that fails 20 times in a row is broken; use at most 20",
            ));
        }
        Ok(DeviceProfile {
            path: path.to_path_buf(),
            name: raw.name,
            transport: raw.transport,
            work_dir: resolve(&raw.work_dir),
            runner: resolve(&raw.runner),
            ort_library: resolve(&raw.ort_library),
            keep_runs: raw.keep_runs,
            qnn_libraries,
            adb,
            retry,
        })
    }

    pub fn open(&self) -> Result<Box<dyn Transport>, DeviceError> {
        let (_, ctor) = TRANSPORTS.iter().find(|t| t.0 == self.transport).expect("validated transport");
        ctor(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<DeviceProfile, YamlError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.yaml");
        std::fs::write(&p, text).unwrap();
        DeviceProfile::load(&p)
    }

    #[test]
    fn adb_profiles_are_validated_before_any_device_is_touched() {
        let p = load("name: phone\ntransport: adb\nserial: \"127.0.0.1:7100\"\nretries: 3\nbackoff_ms: 50\n").unwrap();
        let a = p.adb.unwrap();
        assert_eq!(
            (a.serial.as_str(), a.server.to_string().as_str(), a.root.as_str()),
            ("127.0.0.1:7100", adb::DEFAULT_SERVER, adb::DEFAULT_ROOT)
        );
        assert_eq!(p.retry, RetryPolicy { retries: 3, backoff: Duration::from_millis(50) });
        assert_eq!((p.retry.wait(1), p.retry.wait(3)), (Duration::from_millis(50), Duration::from_millis(200)));
        for (text, key) in [
            ("name: p\ntransport: adb\n", "transport"),
            ("name: p\ntransport: adb\nserial: \"x;reboot\"\n", "serial"),
            ("name: p\ntransport: adb\nserial: \"a b\"\n", "serial"),
            ("name: p\ntransport: adb\nserial: s\nroot: /data/../etc\n", "root"),
            ("name: p\ntransport: adb\nserial: s\nroot: relative/dir\n", "root"),
            ("name: p\ntransport: adb\nserial: s\nadb_server: localhost\n", "adb_server"),
            ("name: p\ntransport: adb\nserial: s\nwork_dir: /tmp/x\n", "work_dir"),
            ("name: p\ntransport: adb\nserial: s\nabi: mips-from-mars\nrunner: auto\n", "abi"),
            ("name: p\ntransport: local\nserial: s\n", "serial"),
            ("name: p\ntransport: adb\nserial: s\nretries: 99\n", "retries"),
        ] {
            let e = load(text).expect_err(text);
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
        // A QNN directory must hold the plugin, and is resolved against the profile's folder.
        let e = load("name: p\ntransport: local\nqnn_libraries: no-such-dir\n").expect_err("missing plugin");
        assert_eq!(e.key.as_deref(), Some("qnn_libraries"), "{e}");
        assert!(e.to_string().contains(QNN_PLUGIN_LIBRARY), "{e}");
        // An ABI other than the host's is fine once the builds for it are named.
        assert!(load("name: p\ntransport: adb\nserial: s\nabi: mips-from-mars\nrunner: r\nort_library: l\n").is_ok());
    }
}
