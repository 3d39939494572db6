//! The on-disk runtime cache: where it is, how an installed artefact is laid out and recorded
//! (the `.complete` marker), how an installation is verified against the lock, the per-artefact
//! inter-process lock, and the status report behind `quadbench runtime info`.
//!
//! Layout: `<cache>/runtime/<name>-<version>-<target>/` holds the extracted files and a
//! `.complete` marker (source sha256 plus size and sha256 of every file); a directory exists under
//! that name only once complete, because installs are renamed into place.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lock::{Artefact, Lock, Source};
use crate::{Installed, RuntimeError};

/// Name of the marker written last into an install directory.
pub const MARKER: &str = ".complete";

/// The quadbench cache: `$QUADBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/quadbench`, else
/// `$HOME/.cache/quadbench` (relative values are ignored, as the XDG spec asks).
pub fn cache_dir() -> PathBuf {
    let abs = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(dir) = abs("QUADBENCH_CACHE_DIR") {
        return dir;
    }
    if let Some(xdg) = abs("XDG_CACHE_HOME") {
        return xdg.join("quadbench");
    }
    match abs("HOME") {
        Some(home) => home.join(".cache").join("quadbench"),
        // No home at all (some containers): a per-user directory under the temp dir still works.
        None => std::env::temp_dir().join("quadbench-cache"),
    }
}

/// `<cache>/runtime`.
pub fn runtime_root(cache: &Path) -> PathBuf {
    cache.join("runtime")
}

/// Where an artefact is installed.
pub fn install_dir(cache: &Path, artefact: &Artefact) -> PathBuf {
    runtime_root(cache).join(artefact.id())
}

/// What `.complete` records: enough to verify an install without the network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    /// sha256 of what the files came from (the wheel, or the user's file).
    pub source_sha256: String,
    #[serde(rename = "file")]
    pub files: Vec<MarkerFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MarkerFile {
    /// Path relative to the install directory.
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
}

impl Marker {
    pub fn write(&self, dir: &Path) -> Result<(), RuntimeError> {
        let text = toml::to_string(self).expect("marker serialises");
        let path = dir.join(MARKER);
        let mut f = File::create(&path).map_err(|e| io_err(e, "cannot write", &path))?;
        f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| io_err(e, "cannot write", &path))
    }

    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }
}

/// How thoroughly to verify an install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Marker, sizes of all files, sha256 of the main library: cheap enough for every start.
    Quick,
    /// sha256 of every file (for `runtime info`).
    Full,
}

/// The state of one artefact's install directory.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Missing,
    Ok(Marker),
    /// Present but not matching the lock or its own marker; the string says what is wrong.
    Broken(String),
}

/// Verifies `dir` as an install of `artefact`.
pub fn verify(dir: &Path, artefact: &Artefact, depth: Depth) -> State {
    if !dir.exists() {
        return State::Missing;
    }
    let marker_path = dir.join(MARKER);
    let marker: Marker = match std::fs::read_to_string(&marker_path) {
        Err(e) => return State::Broken(format!("cannot read {}: {e}", marker_path.display())),
        Ok(text) => match toml::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                return State::Broken(format!("{} is corrupt: {}", marker_path.display(), e.message()));
            }
        },
    };
    let pinned = match &artefact.source {
        Source::Pip(pip) => Some(&pip.wheel_sha256),
        Source::User(user) => user.sha256.as_ref(),
    };
    if let Some(pinned) = pinned
        && *pinned != marker.source_sha256
    {
        return State::Broken(format!(
            "installed from a source with sha256 {}, the lock pins {pinned}",
            marker.source_sha256
        ));
    }
    if !marker.files.iter().any(|f| f.path == artefact.library) {
        return State::Broken(format!("{} does not list the library {}", marker_path.display(), artefact.library));
    }
    for file in &marker.files {
        let path = dir.join(&file.path);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) => return State::Broken(format!("{}: {e}", path.display())),
        };
        if size != file.size_bytes {
            return State::Broken(format!("{} has {size} bytes, {} expected", path.display(), file.size_bytes));
        }
        if depth == Depth::Full || file.path == artefact.library {
            match sha256_file(&path) {
                Ok(sha) if sha == file.sha256 => {}
                Ok(sha) => {
                    return State::Broken(format!("{} has sha256 {sha}, {} expected", path.display(), file.sha256));
                }
                Err(e) => return State::Broken(format!("{}: {e}", path.display())),
            }
        }
    }
    State::Ok(marker)
}

/// The `Installed` record of a verified install.
pub(crate) fn installed(dir: &Path, artefact: &Artefact, marker: &Marker) -> Installed {
    Installed {
        name: artefact.name.clone(),
        version: artefact.version.clone(),
        target: artefact.target.clone(),
        dir: dir.to_path_buf(),
        library: dir.join(&artefact.library),
        sha256: marker.source_sha256.clone(),
    }
}

/// An exclusive lock on `<cache>/runtime/.lock-<id>`, held for a check-and-install so that two
/// processes fetching the same artefact never both download or both rename. Released on drop
/// (closing the file releases the `flock`).
pub struct InstallLock {
    _file: File,
}

impl InstallLock {
    /// Takes the lock, calling `on_wait` once if another process holds it.
    pub fn acquire(cache: &Path, artefact: &Artefact, on_wait: impl FnOnce()) -> Result<InstallLock, RuntimeError> {
        let root = runtime_root(cache);
        std::fs::create_dir_all(&root).map_err(|e| io_err(e, "cannot create the runtime cache", &root))?;
        let path = root.join(format!(".lock-{}", artefact.id()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(e, "cannot open the lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(|e| io_err(e, "cannot lock", &path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e, "cannot lock", &path)),
        }
        Ok(InstallLock { _file: file })
    }
}

/// sha256 of a file as lowercase hex. Only regular files (symlinks followed) are read: a FIFO, a
/// device such as `/dev/zero` or a directory is an `InvalidInput` error naming what it is, so
/// hashing never blocks or runs forever.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = quadbench_native::open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn io_err(source: io::Error, what: &str, path: &Path) -> RuntimeError {
    RuntimeError::Io { context: format!("{what} {}", path.display()), source }
}

/// One artefact's line in `quadbench runtime info`.
#[derive(Debug, Clone)]
pub struct ArtefactStatus {
    pub name: String,
    pub version: String,
    pub target: String,
    /// Where it is (or would be) installed.
    pub dir: PathBuf,
    /// The main library, when installed and verified.
    pub library: Option<PathBuf>,
    pub installed: bool,
    /// Total size of the installed files (0 when missing).
    pub size_bytes: u64,
    /// Some(true) when every file's sha256 matches the marker and the marker matches the lock;
    /// Some(false) when something does not match; None when not installed.
    pub sha_ok: Option<bool>,
    /// What is wrong, or for missing user-supplied artefacts how to supply them.
    pub note: Option<String>,
    pub fetch_by_default: bool,
}

/// Status of every artefact of the lock in `cache`, each fully verified (every sha256).
pub fn status_in(lock: &Lock, cache: &Path) -> Vec<ArtefactStatus> {
    lock.artefacts()
        .iter()
        .map(|a| {
            let dir = install_dir(cache, a);
            let state = verify(&dir, a, Depth::Full);
            let mut st = ArtefactStatus {
                name: a.name.clone(),
                version: a.version.clone(),
                target: a.target.clone(),
                dir: dir.clone(),
                library: None,
                installed: false,
                size_bytes: 0,
                sha_ok: None,
                note: None,
                fetch_by_default: a.fetch_by_default,
            };
            match state {
                State::Ok(marker) => {
                    st.library = Some(dir.join(&a.library));
                    st.installed = true;
                    st.size_bytes = marker.size_bytes();
                    st.sha_ok = Some(true);
                }
                State::Broken(why) => {
                    st.installed = true;
                    st.sha_ok = Some(false);
                    st.note = Some(why);
                }
                State::Missing => {
                    if let Source::User(user) = &a.source {
                        st.note = Some(format!("user-supplied: {}", user.instructions.trim()));
                    }
                }
            }
            st
        })
        .collect()
}

/// The human table of `quadbench runtime info` for `cache`.
pub fn info_text_in(lock: &Lock, cache: &Path, ort_lib: Option<&Path>) -> String {
    let statuses = status_in(lock, cache);
    let rows: Vec<[String; 6]> = statuses
        .iter()
        .map(|s| {
            let state = match (s.installed, s.sha_ok) {
                (true, Some(true)) => "ok".to_string(),
                (true, _) => "BROKEN".to_string(),
                (false, _) if s.fetch_by_default => "missing".to_string(),
                (false, _) => "missing (on request)".to_string(),
            };
            let size = if s.installed { format!("{:.1} MB", s.size_bytes as f64 / 1e6) } else { "-".into() };
            let path = s.library.as_ref().unwrap_or(&s.dir).display().to_string();
            [s.name.clone(), s.version.clone(), s.target.clone(), state, size, path]
        })
        .collect();
    let header = ["artefact", "version", "target", "state", "size", "path"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = format!("runtime cache: {}\n", runtime_root(cache).display());
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for s in statuses.iter().filter(|s| s.note.is_some()) {
        out.push_str(&format!("{} {} ({}): {}\n", s.name, s.version, s.target, s.note.as_deref().unwrap_or("")));
    }
    if let Some(lib) = ort_lib {
        let version = crate::version::library_version(lib)
            .map(|v| format!("version {v}"))
            .unwrap_or_else(|e| format!("unusable: {e}"));
        out.push_str(&format!("QUADBENCH_ORT_LIB={} ({version}) overrides the onnxruntime library\n", lib.display()));
    }
    out
}
