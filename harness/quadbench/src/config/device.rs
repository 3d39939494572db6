//! Device profiles (`devices/*.yaml`): the keys every device has (name, transport, runner and
//! runtime builds, retries, plugin libraries) plus the keys of its transport, which the
//! transport validates itself (`crate::device::TRANSPORTS`). Validated before any device is
//! touched; every error names the file, the line and the fix.

use crate::device::{self, Capabilities, DeviceError, SettingsInput, Transport, TransportKind, TransportSettings};
use crate::yaml::{self, YamlError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The keys every profile may have, whatever its transport.
const COMMON_KEYS: &[&str] =
    &["name", "transport", "runner", "ort_library", "keep_runs", "retries", "backoff_ms", "qnn_libraries", "resource"];

/// `devices/*.yaml` as written: the common keys, and the transport's keys in `transport_keys`.
#[derive(Debug, Clone, Deserialize)]
pub struct RawDeviceProfile {
    pub name: String,
    pub transport: String,
    /// Runner binary for this device's ABI (`auto`: the one built beside `quadbench`).
    #[serde(default)]
    pub runner: Option<String>,
    /// ONNX Runtime library for this device's ABI (`auto`: the fetched runtime for the host).
    #[serde(default)]
    pub ort_library: Option<String>,
    /// Keep run directories on the device after pulling results (default false).
    #[serde(default)]
    pub keep_runs: bool,
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
    /// The physical resource the device's measurements occupy: devices naming the same one never
    /// measure at the same time (default: `host-cpu` for the local transport, none otherwise; a
    /// loopback device, which runs on the host, says `resource: host-cpu`).
    #[serde(default)]
    pub resource: Option<String>,
    /// Every other key: the transport's own (`work_dir` for local; `serial`, `root`... for adb;
    /// `host`, `port`, `known_hosts`... for ssh).
    #[serde(flatten)]
    pub transport_keys: BTreeMap<String, serde_json::Value>,
}

/// A validated device profile.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    pub path: PathBuf,
    pub name: String,
    pub transport: &'static TransportKind,
    /// The transport's validated settings.
    pub settings: Arc<dyn TransportSettings>,
    pub runner: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub keep_runs: bool,
    /// QNN plugin directory (`None`: `auto`, the fetched plugin).
    pub qnn_libraries: Option<PathBuf>,
    pub retry: RetryPolicy,
    /// Declared resource (see [`DeviceProfile::resource`]).
    pub resource: Option<String>,
}

impl std::fmt::Debug for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
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

/// The resource of devices that compute on this host's CPU.
pub const HOST_CPU: &str = "host-cpu";

/// Most retries a profile may ask for, and the longest first backoff.
const MAX_RETRIES: u32 = 20;
const MAX_BACKOFF_MS: u64 = 600_000;

impl DeviceProfile {
    pub fn load(path: &Path) -> Result<DeviceProfile, YamlError> {
        let (raw, text) = yaml::load::<RawDeviceProfile>(path)?;
        let err = |needle: &str, msg: String, fix: &str| YamlError::at(path, &text, needle, msg, fix);
        let names: Vec<&str> = device::TRANSPORTS.iter().map(|t| t.name).collect();
        let Some(kind) = device::kind(&raw.transport) else {
            let fix = yaml::nearest(&raw.transport, names.iter().copied())
                .map(|n| format!("did you mean `{n}`?"))
                .unwrap_or_else(|| format!("transports: {}", names.join(", ")));
            return Err(err("transport:", format!("unknown transport `{}`", raw.transport), &fix));
        };
        if !crate::safe_name(&raw.name) {
            return Err(err(
                "name:",
                format!("device name `{}` must be a safe file name", raw.name),
                &format!("use {}", crate::SAFE_NAME_CHARS),
            ));
        }
        for key in raw.transport_keys.keys() {
            if kind.keys.contains(&key.as_str()) {
                continue;
            }
            let owner = device::TRANSPORTS.iter().find(|t| t.keys.contains(&key.as_str()));
            let (msg, fix) = match owner {
                Some(t) => (
                    format!("`{key}` applies to the {} transport, not {}", t.name, kind.name),
                    format!("remove it, or set `transport: {}`", t.name),
                ),
                None => {
                    let valid: Vec<&str> = COMMON_KEYS.iter().chain(kind.keys).copied().collect();
                    let fix = yaml::nearest(key, valid.iter().copied())
                        .map(|n| format!("did you mean `{n}`? (valid keys: {})", valid.join(", ")))
                        .unwrap_or_else(|| format!("remove it; valid keys: {}", valid.join(", ")));
                    (format!("unknown key `{key}` in a {} device profile", kind.name), fix)
                }
            };
            return Err(err(&format!("{key}:"), msg, &fix));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let auto = |v: &Option<String>| v.as_deref().is_none_or(|v| v == "auto");
        let input = SettingsInput {
            values: &raw.transport_keys,
            base,
            host_builds: auto(&raw.runner) || auto(&raw.ort_library),
        };
        let settings = (kind.parse)(&input).map_err(|e| YamlError::for_key(path, &text, e))?;
        let resolve = |s: &Option<String>| s.as_ref().filter(|v| v.as_str() != "auto").map(|v| base.join(v));
        let qnn_libraries = resolve(&raw.qnn_libraries);
        let qnn_plugin = quadbench_protocol::Backend::QnnHtp.info().plugin_library.unwrap_or_default();
        if let Some(dir) = &qnn_libraries
            && !dir.join(qnn_plugin).is_file()
        {
            return Err(err(
                "qnn_libraries:",
                format!("{} has no {qnn_plugin}", dir.display()),
                "point it at the directory holding the QNN plugin and its QNN libraries (Android: `jni/arm64-v8a` of the onnxruntime-android-qnn AAR, docs/adb.md), or use `auto`",
            ));
        }
        let d = RetryPolicy::default();
        let retry = RetryPolicy {
            retries: raw.retries.unwrap_or(d.retries),
            backoff: raw.backoff_ms.map_or(d.backoff, Duration::from_millis),
        };
        if retry.retries > MAX_RETRIES {
            return Err(err(
                "retries:",
                format!("retries: {} is more than {MAX_RETRIES}", retry.retries),
                "a device that fails 20 times in a row is broken; use at most 20",
            ));
        }
        if let Some(r) = raw.resource.as_deref().filter(|r| !crate::safe_name(r)) {
            return Err(err(
                "resource:",
                format!("resource `{}` must be a safe name", r.escape_debug()),
                &format!("e.g. `resource: {HOST_CPU}` for a device that computes on this host"),
            ));
        }
        if raw.backoff_ms.is_some_and(|b| b > MAX_BACKOFF_MS) {
            return Err(err(
                "backoff_ms:",
                format!("backoff_ms: {} is more than {MAX_BACKOFF_MS} (10 minutes)", raw.backoff_ms.unwrap_or(0)),
                "use a few seconds, e.g. `backoff_ms: 2000`; waits double with each retry",
            ));
        }
        Ok(DeviceProfile {
            path: path.to_path_buf(),
            name: raw.name,
            transport: kind,
            settings,
            runner: resolve(&raw.runner),
            ort_library: resolve(&raw.ort_library),
            keep_runs: raw.keep_runs,
            qnn_libraries,
            retry,
            resource: raw.resource,
        })
    }

    pub fn capabilities(&self) -> Capabilities {
        self.settings.capabilities()
    }

    /// The physical resource this device's measurements occupy: the profile's `resource:`, else
    /// `host-cpu` for a device that is this host.
    pub fn resource(&self) -> Option<String> {
        self.resource.clone().or_else(|| self.capabilities().is_host.then(|| HOST_CPU.to_string()))
    }

    pub fn open(&self) -> Result<Box<dyn Transport>, DeviceError> {
        self.settings.open(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::adb;

    fn load(text: &str) -> Result<DeviceProfile, YamlError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.yaml");
        std::fs::write(&p, text).unwrap();
        DeviceProfile::load(&p)
    }

    #[test]
    fn adb_profiles_are_validated_before_any_device_is_touched() {
        let p = load("name: phone\ntransport: adb\nserial: \"127.0.0.1:7100\"\nretries: 3\nbackoff_ms: 50\n").unwrap();
        assert_eq!(p.transport.name, "adb");
        assert_eq!(p.capabilities(), Capabilities { is_host: false, shares_host_files: false, abi: None });
        assert_eq!(p.retry, RetryPolicy { retries: 3, backoff: Duration::from_millis(50) });
        assert_eq!((p.retry.wait(1), p.retry.wait(3)), (Duration::from_millis(50), Duration::from_millis(200)));
        let s = format!("{:?}", p.settings);
        assert!(s.contains("127.0.0.1:7100") && s.contains(adb::DEFAULT_ROOT), "{s}");
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
            ("name: p\ntransport: local\nwork_dir: /etc\n", "work_dir"),
            ("name: p\ntransport: local\nwrok_dir: /tmp/x\n", "wrok_dir"),
            ("name: ../p\ntransport: local\n", "name"),
            ("name: p\ntransport: lcoal\n", "transport"),
        ] {
            let e = load(text).expect_err(text);
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
        let e = load("name: p\ntransport: local\nwrok_dir: /tmp/x\n").unwrap_err();
        assert!(e.to_string().contains("did you mean `work_dir`"), "{e}");
        // A QNN directory must hold the plugin, and is resolved against the profile's folder.
        let e = load("name: p\ntransport: local\nqnn_libraries: no-such-dir\n").expect_err("missing plugin");
        assert_eq!(e.key.as_deref(), Some("qnn_libraries"), "{e}");
        assert!(e.to_string().contains("libonnxruntime_providers_qnn.so"), "{e}");
        // An ABI other than the host's is fine once the builds for it are named.
        let p = load("name: p\ntransport: adb\nserial: s\nabi: mips-from-mars\nrunner: r\nort_library: l\n").unwrap();
        assert_eq!(p.capabilities().abi.as_deref(), Some("mips-from-mars"));
    }

    #[test]
    fn ssh_profiles_are_validated_before_any_board_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, "").unwrap();
        let base = format!("name: b\ntransport: ssh\nhost: 10.0.0.7\nknown_hosts: \"{}\"\n", kh.display());
        let p = load(&format!("{base}port: 2222\nuser: root\nroot: \"/tmp/it's a board/\"\nretries: 1\n")).unwrap();
        assert_eq!(p.capabilities(), Capabilities { is_host: false, shares_host_files: false, abi: None });
        let s = format!("{:?}", p.settings);
        assert!(s.contains("2222") && s.contains("\"/tmp/it's a board\""), "{s}");
        assert!(format!("{:?}", load(&base).unwrap().settings).contains(crate::device::ssh::DEFAULT_ROOT));
        let e = load("name: b\ntransport: ssh\nhost: h\nknown_hosts: missing\n").unwrap_err();
        assert!(e.to_string().contains("ssh-keyscan -p 22 h >> FILE"), "{e}");
        for (extra, key) in [
            ("", "transport"),
            ("host: \"-oProxyCommand=id\"\n", "host"),
            ("host: h\nport: 0\n", "port"),
            ("host: h\nport: ssh\n", "port"),
            ("host: h\nuser: \"-x\"\n", "user"),
            ("host: h\nidentity_file: no-such-key\n", "identity_file"),
            ("host: h\nroot: relative\n", "root"),
            ("host: h\nroot: /a/../b\n", "root"),
            ("host: h\nroot: \"/a:b\"\n", "root"),
            ("host: h\nabi: mips-from-mars\n", "abi"),
            ("host: h\nserial: s\n", "serial"),
            ("host: h\nwork_dir: /tmp/x\n", "work_dir"),
        ] {
            let text = format!("name: b\ntransport: ssh\n{extra}");
            let e = load(&text).expect_err(&text);
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
        // Another machine is fine once its builds are named; it is not the host's ABI then.
        let p = load("name: b\ntransport: ssh\nhost: h\nabi: mips-from-mars\nrunner: r\nort_library: l\n").unwrap();
        assert_eq!(p.capabilities().abi.as_deref(), Some("mips-from-mars"));
    }
}
