//! The host side of the shared backend list (`quadbench_protocol::BACKENDS`): which plugin
//! execution-provider libraries a backend needs on a device, found for the device's ABI and
//! hashed for pushing. A plugin-EP backend is one row of [`PLUGIN_EPS`]; backends built into
//! ONNX Runtime (cpu) need nothing here.

use crate::config::DeviceProfile;
use crate::package::manifest::sha256_file;
use quadbench_protocol::Backend;
use std::path::{Path, PathBuf};

/// An execution-provider plugin with the libraries it loads, as a run needs them on its device.
#[derive(Debug, Clone)]
pub struct EpBundle {
    /// Registration name (`QNNExecutionProvider`).
    pub ep: String,
    /// Host directory the libraries come from.
    pub dir: PathBuf,
    /// The plugin library, relative to `dir`.
    pub library: String,
    /// Every shared library under `dir` (relative path, sha256), for transports that push;
    /// empty for the local transport, which uses `dir` in place.
    pub files: Vec<(String, String)>,
    /// Remote directory the files go to: `runtime/<qnn|cuda>-<digest of the file list>`, so that two
    /// different plugin builds never overwrite each other on one device.
    pub remote_dir: String,
}

impl EpBundle {
    /// The remote directories holding libraries (for the loaders' search paths).
    pub fn remote_lib_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .files
            .iter()
            .map(|(rel, _)| {
                rel.rsplit_once('/').map_or(self.remote_dir.clone(), |(d, _)| format!("{}/{d}", self.remote_dir))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A backend whose execution provider is a library registered at run time.
struct PluginEp {
    /// Its row of the shared list gives the registration name and the library's file name.
    backend: Backend,
    /// Short name of the remote directory (`runtime/<short>-<digest>`).
    short: &'static str,
    /// The bundle directory when the profile names none: this host's fetched artefact.
    auto: fn() -> Result<PathBuf, String>,
    /// The device-profile key that names the bundle directory for other ABIs; `None` where
    /// quadbench knows no such build.
    profile_key: Option<ProfileKey>,
}

/// A device-profile key naming a plugin's library directory.
#[derive(Clone, Copy)]
struct ProfileKey {
    key: &'static str,
    /// Its value in a loaded profile.
    dir: fn(&DeviceProfile) -> Option<PathBuf>,
    /// What to point it at (`<abi>` is replaced by the device's ABI).
    what: &'static str,
}

/// Backends with plugin execution providers; the others need no library.
const PLUGIN_EPS: &[PluginEp] = &[
    PluginEp {
        backend: Backend::QnnHtp,
        short: "qnn",
        auto: || {
            let q = quadbench_runtime::ensure_qnn().map_err(|e| format!("the QNN plugin is not available: {e}"))?;
            // The install directory: the plugin's folder and the vendored `.libs` beside it.
            q.library
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .ok_or_else(|| format!("unexpected QNN install layout at {}", q.library.display()))
        },
        profile_key: Some(ProfileKey {
            key: "qnn_libraries",
            dir: |p| p.qnn_libraries.clone(),
            what: "the `jni/<abi>` directory of the onnxruntime-android-qnn AAR (docs/adb.md)",
        }),
    },
    PluginEp {
        backend: Backend::Cuda,
        short: "cuda",
        auto: || {
            // 256 MB: used when fetched, never fetched implicitly.
            let opts = quadbench_runtime::FetchOptions { offline: true, ..quadbench_runtime::FetchOptions::from_env() };
            let g = quadbench_runtime::fetch(&quadbench_runtime::Lock::embedded(), "onnxruntime-gpu", quadbench_runtime::host_target(), &opts)
                .map_err(|_| "the CUDA build of ONNX Runtime is not fetched: run `quadbench runtime fetch onnxruntime-gpu` (256 MB; needs an NVIDIA driver and CUDA 13 libraries)".to_string())?;
            g.library
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| format!("unexpected layout at {}", g.library.display()))
        },
        profile_key: None,
    },
];

/// The plugin a `backend` needs on `profile`'s device, `Ok(None)` when it needs none, or why the
/// backend cannot run there (the run is then recorded `unsupported` with that reason). Library
/// hashes are computed only for devices that copy files.
pub fn ep_bundle(backend: Backend, profile: &DeviceProfile) -> Result<Option<EpBundle>, String> {
    let Some(pe) = PLUGIN_EPS.iter().find(|p| p.backend == backend) else { return Ok(None) };
    let info = backend.info();
    let (ep, library) = (info.execution_provider, info.plugin_library.unwrap_or_default());
    let caps = profile.capabilities();
    let push = !caps.shares_host_files;
    let dir = match pe.profile_key.and_then(|k| (k.dir)(profile)) {
        Some(d) => d,
        None => {
            let host = crate::device::adb::host_abi();
            if let Some(abi) = caps.abi.filter(|a| a != host) {
                let fix = match pe.profile_key {
                    Some(k) => {
                        format!("set `{}:` in {} to {}", k.key, profile.path.display(), k.what.replace("<abi>", &abi))
                    }
                    None => "no build for it is known to quadbench".to_string(),
                };
                return Err(format!(
                    "no {ep} libraries for {abi}: the fetched ones are built for this host ({host}); {fix}"
                ));
            }
            (pe.auto)()?
        }
    };
    let mut libs = Vec::new();
    collect_libraries(&dir, "", 0, &mut libs)?;
    libs.sort();
    let library = libs
        .iter()
        .find(|r| r.rsplit('/').next() == Some(library))
        .cloned()
        .ok_or_else(|| format!("{} holds no {library}", dir.display()))?;
    let mut files = Vec::new();
    let mut digest = String::new();
    if push {
        for rel in &libs {
            let sha =
                sha256_file(&dir.join(rel)).map_err(|e| format!("cannot read {}: {e}", dir.join(rel).display()))?;
            digest.push_str(&format!("{rel}\0{sha}\n"));
            files.push((rel.clone(), sha));
        }
    }
    let remote_dir =
        format!("runtime/{}-{}", pe.short, &crate::package::manifest::sha256_bytes(digest.as_bytes())[..12]);
    Ok(Some(EpBundle { ep: ep.into(), dir, library, files, remote_dir }))
}

/// Shared libraries (`*.so`, `*.so.N...`) under `dir`, as relative paths; every name must be a
/// safe remote path component.
fn collect_libraries(dir: &Path, rel: &str, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
    let here = dir.join(rel);
    let rd = std::fs::read_dir(&here).map_err(|e| format!("cannot list {}: {e}", here.display()))?;
    for entry in rd {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", here.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let meta =
            std::fs::metadata(entry.path()).map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
        if meta.is_dir() && depth < 4 {
            collect_libraries(dir, &child, depth + 1, out)?;
        } else if meta.is_file() && (name.ends_with(".so") || name.contains(".so.")) {
            if !crate::safe_relative_path(&child) {
                return Err(format!(
                    "library {} has a name unsafe on a device (use {})",
                    entry.path().display(),
                    crate::SAFE_NAME_CHARS
                ));
            }
            out.push(child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const QNN: &str = "libonnxruntime_providers_qnn.so";

    fn profile(dir: &Path, text: &str) -> DeviceProfile {
        let p = dir.join("d.yaml");
        std::fs::write(&p, text).unwrap();
        DeviceProfile::load(&p).unwrap()
    }

    #[test]
    fn a_user_plugin_directory_is_pushed_whole_with_its_layout() {
        let d = tempfile::tempdir().unwrap();
        let q = d.path().join("qnn");
        std::fs::create_dir_all(q.join("deps")).unwrap();
        for (rel, body) in [
            (QNN, "plugin"),
            ("libQnnHtp.so", "htp"),
            ("libQnnHtpV75Skel.so", "skel"),
            ("deps/libc++-71bc274c.so.1.0", "cxx"),
            ("README.txt", "not a library"),
        ] {
            std::fs::write(q.join(rel), body).unwrap();
        }
        let p = profile(
            d.path(),
            "name: phone\ntransport: adb\nserial: s\nabi: arm64-v8a\nrunner: r\nort_library: l\nqnn_libraries: qnn\n",
        );
        let b = ep_bundle(Backend::QnnHtp, &p).unwrap().unwrap();
        let rels: Vec<&str> = b.files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rels, ["deps/libc++-71bc274c.so.1.0", "libQnnHtp.so", "libQnnHtpV75Skel.so", QNN]);
        assert_eq!(b.library, QNN);
        assert_eq!(b.files[1].1, crate::package::manifest::sha256_bytes(b"htp"));
        assert!(b.remote_dir.starts_with("runtime/qnn-") && crate::safe_relative_path(&b.remote_dir));
        assert_eq!(b.remote_lib_dirs(), [b.remote_dir.clone(), format!("{}/deps", b.remote_dir)]);
        // Another build lands elsewhere on the device.
        std::fs::write(q.join("libQnnHtp.so"), "htp v2").unwrap();
        assert_ne!(ep_bundle(Backend::QnnHtp, &p).unwrap().unwrap().remote_dir, b.remote_dir);
        // Backends without a plugin need nothing.
        assert!(ep_bundle(Backend::Cpu, &p).unwrap().is_none());
        // A library name a device shell could misread is refused, naming the file.
        std::fs::write(q.join("lib bad.so"), "x").unwrap();
        let e = ep_bundle(Backend::QnnHtp, &p).unwrap_err();
        assert!(e.contains("lib bad.so"), "{e}");
    }

    #[test]
    fn a_foreign_abi_without_qnn_libraries_is_unsupported_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let p = profile(
            d.path(),
            "name: phone\ntransport: adb\nserial: s\nabi: mips-from-mars\nrunner: r\nort_library: l\n",
        );
        let e = ep_bundle(Backend::QnnHtp, &p).unwrap_err();
        assert!(e.contains("qnn_libraries") && e.contains("d.yaml") && e.contains("mips-from-mars"), "{e}");
        assert!(ep_bundle(Backend::Cuda, &p).unwrap_err().contains("mips-from-mars"));
    }
}
