//! Installing artefacts into the cache: getting the wheel (a local wheel directory, else
//! `pip download` by package name), checking its sha256 against the lock, extracting the locked
//! files and renaming the finished directory into place, all under the per-artefact lock so that
//! concurrent fetches are safe and only one of them downloads.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::cache::{self, Depth, InstallLock, Marker, MarkerFile, State, io_err, sha256_file};
use crate::lock::{Artefact, LibraryKind, Lock, PipSource, Source, UserSource};
use crate::version::{check_ep_plugin, check_version, library_version_with};
use crate::{Installed, RuntimeError, host_target};

/// Receiver of progress messages (the library never prints).
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

/// How `fetch` may get artefacts. `FetchOptions::from_env()` (also `Default`) reads the
/// `QUADBENCH_*` environment variables; tests and the CLI may set fields directly.
pub struct FetchOptions {
    /// Never touch the network (`QUADBENCH_OFFLINE=1`): a missing artefact is an error.
    pub offline: bool,
    /// Python interpreter that runs pip (`QUADBENCH_PYTHON`, default `python3`).
    pub python: String,
    /// Receives progress messages; the library itself never prints.
    pub progress: Option<Progress>,
    /// The cache (`cache_dir()` by default: `QUADBENCH_CACHE_DIR`, XDG, `~/.cache/quadbench`).
    pub cache_dir: PathBuf,
    /// A directory searched for the locked wheel file before pip is run (`QUADBENCH_WHEEL_DIR`);
    /// a wheel found there is still checked against the lock's sha256. Works offline.
    pub wheel_dir: Option<PathBuf>,
    /// A user-supplied onnxruntime library used instead of the cache (`QUADBENCH_ORT_LIB`); only
    /// `ensure_onnxruntime` looks at it, and it is still version-checked.
    pub ort_lib: Option<PathBuf>,
}

impl FetchOptions {
    pub fn from_env() -> FetchOptions {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let offline = var("QUADBENCH_OFFLINE")
            .map(|v| !matches!(v.to_string_lossy().to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off"))
            .unwrap_or(false);
        FetchOptions {
            offline,
            python: var("QUADBENCH_PYTHON")
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_else(|| "python3".into()),
            progress: None,
            cache_dir: cache::cache_dir(),
            wheel_dir: var("QUADBENCH_WHEEL_DIR").map(PathBuf::from),
            ort_lib: var("QUADBENCH_ORT_LIB").map(PathBuf::from),
        }
    }

    /// Same options with a progress callback.
    pub fn with_progress(mut self, progress: impl Fn(&str) + Send + Sync + 'static) -> FetchOptions {
        self.progress = Some(Box::new(progress));
        self
    }

    fn say(&self, message: &str) {
        if let Some(p) = &self.progress {
            p(message);
        }
    }
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions::from_env()
    }
}

/// Makes sure artefact (`name`, `target`) of the lock is installed and verified in the cache and
/// returns where it is. Idempotent: a complete install is only verified (no network, no pip).
/// A broken install (tampered file, corrupt marker) is replaced, or reported when offline.
pub fn fetch(lock: &Lock, name: &str, target: &str, opts: &FetchOptions) -> Result<Installed, RuntimeError> {
    let artefact = lock.find(name, target).ok_or_else(|| RuntimeError::UnknownArtefact {
        name: name.to_string(),
        target: target.to_string(),
        known: lock.artefacts().iter().map(|a| format!("{} ({})", a.name, a.target)).collect::<Vec<_>>().join(", "),
    })?;
    let dir = cache::install_dir(&opts.cache_dir, artefact);
    let label = artefact.label();
    // Fast path without the lock, so a complete install also works from a read-only cache. Safe:
    // a directory only appears under its final name complete (atomic rename).
    if let State::Ok(marker) = cache::verify(&dir, artefact, Depth::Quick) {
        opts.say(&format!("{label}: already installed in {}", dir.display()));
        return Ok(cache::installed(&dir, artefact, &marker));
    }
    let _guard = InstallLock::acquire(&opts.cache_dir, artefact, || {
        opts.say(&format!("{label}: waiting for another process that is installing it"));
    })?;
    match cache::verify(&dir, artefact, Depth::Quick) {
        State::Ok(marker) => {
            opts.say(&format!("{label}: already installed in {}", dir.display()));
            return Ok(cache::installed(&dir, artefact, &marker));
        }
        State::Missing => {}
        State::Broken(why) => {
            if opts.offline && local_wheel(artefact, opts).is_none() {
                return Err(RuntimeError::Broken { artefact: label, problem: why, fix: offline_fix(artefact, opts) });
            }
            opts.say(&format!("{label}: reinstalling, the installed copy is broken: {why}"));
        }
    }
    let marker = install(artefact, &dir, opts)?;
    let installed = cache::installed(&dir, artefact, &marker);
    if let Err(e) = check_library(lock, artefact, &installed.library) {
        // The wheel matched its sha256, so the lock itself is inconsistent; do not leave an
        // install behind that would pass verification next time.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    opts.say(&format!("{label}: installed in {}", dir.display()));
    Ok(installed)
}

/// After an install: the library is what the lock says it is. Only possible for the host target.
fn check_library(lock: &Lock, artefact: &Artefact, library: &Path) -> Result<(), RuntimeError> {
    if artefact.target != host_target() {
        return Ok(());
    }
    match artefact.kind {
        LibraryKind::Ort => check_version(&library_version_with(lock, library)?.0, &artefact.version, library),
        LibraryKind::EpPlugin => check_ep_plugin(library),
    }
}

/// A temporary directory inside the runtime cache (same filesystem, so the final rename is
/// atomic), removed on drop unless it was renamed away.
struct TempDir(PathBuf);

impl TempDir {
    fn new(cache: &Path, artefact: &Artefact) -> Result<TempDir, RuntimeError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            cache::runtime_root(cache).join(format!(".tmp-{}-{}-{nanos}-{n}", artefact.id(), std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| io_err(e, "cannot create", &path))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Installs `artefact` into `dir` (replacing what is there); the caller holds the install lock.
fn install(artefact: &Artefact, dir: &Path, opts: &FetchOptions) -> Result<Marker, RuntimeError> {
    remove_stale_temp_dirs(&opts.cache_dir, artefact);
    let tmp = TempDir::new(&opts.cache_dir, artefact)?;
    let staged = tmp.0.join("install");
    std::fs::create_dir(&staged).map_err(|e| io_err(e, "cannot create", &staged))?;
    let marker = match &artefact.source {
        Source::Pip(pip) => {
            let wheel = get_wheel(artefact, pip, &tmp.0, opts)?;
            opts.say(&format!("{}: extracting {}", artefact.label(), pip.wheel));
            let files = extract(&wheel, pip, &staged)?;
            check_library_sha256(artefact, &staged, &files)?;
            Marker { source_sha256: pip.wheel_sha256.clone(), files }
        }
        Source::User(user) => import_user_file(artefact, user, &staged, opts)?,
    };
    marker.write(&staged)?;
    if dir.exists() {
        // A directory cannot be renamed over a non-empty one: move the broken copy aside first.
        let old = tmp.0.join("old");
        std::fs::rename(dir, &old).map_err(|e| io_err(e, "cannot move aside", dir))?;
    }
    std::fs::rename(&staged, dir).map_err(|e| io_err(e, "cannot rename the install into", dir))?;
    Ok(marker)
}

/// The extracted main library against the lock's `library_sha256`, where it pins one: a
/// mismatch means the lock is inconsistent (the wheel itself matched its sha256).
fn check_library_sha256(artefact: &Artefact, staged: &Path, files: &[MarkerFile]) -> Result<(), RuntimeError> {
    let Some(expected) = &artefact.library_sha256 else {
        return Ok(());
    };
    match files.iter().find(|f| f.path == artefact.library) {
        Some(f) if f.sha256 == *expected => Ok(()),
        Some(f) => Err(RuntimeError::HashMismatch {
            file: staged.join(&f.path),
            expected: expected.clone(),
            actual: f.sha256.clone(),
        }),
        None => Err(RuntimeError::LockInvalid {
            origin: artefact.label(),
            problem: format!("the wheel has no library {}", artefact.library),
        }),
    }
}

/// Leftovers of a process killed mid-install; safe to delete because only the holder of this
/// artefact's install lock creates them.
fn remove_stale_temp_dirs(cache: &Path, artefact: &Artefact) {
    let prefix = format!(".tmp-{}-", artefact.id());
    if let Ok(entries) = std::fs::read_dir(cache::runtime_root(cache)) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The locked wheel in the local wheel directory, if there is one.
fn local_wheel(artefact: &Artefact, opts: &FetchOptions) -> Option<PathBuf> {
    let Source::Pip(pip) = &artefact.source else {
        return None;
    };
    let path = opts.wheel_dir.as_ref()?.join(&pip.wheel);
    path.is_file().then_some(path)
}

/// Gets the wheel file, sha256-checked: from the wheel directory, else with pip into `tmp`.
fn get_wheel(artefact: &Artefact, pip: &PipSource, tmp: &Path, opts: &FetchOptions) -> Result<PathBuf, RuntimeError> {
    let label = artefact.label();
    let (wheel, downloaded) = if let Some(local) = local_wheel(artefact, opts) {
        opts.say(&format!("{label}: installing from {}", local.display()));
        (local, false)
    } else if opts.offline {
        return Err(RuntimeError::Offline {
            artefact: label,
            dir: cache::install_dir(&opts.cache_dir, artefact),
            fix: offline_fix(artefact, opts),
        });
    } else {
        let size = pip.wheel_size_bytes.map(|b| format!(" ({:.1} MB)", b as f64 / 1e6)).unwrap_or_default();
        opts.say(&format!("{label}: installing, downloading {}{size} with pip", pip.wheel));
        (run_pip(artefact, pip, &tmp.join("download"), opts)?, true)
    };
    let actual = sha256_file(&wheel).map_err(|e| io_err(e, "cannot read", &wheel))?;
    if actual != pip.wheel_sha256 {
        if downloaded {
            // Never keep a download that does not match the lock.
            let _ = std::fs::remove_file(&wheel);
        }
        return Err(RuntimeError::HashMismatch { file: wheel, expected: pip.wheel_sha256.clone(), actual });
    }
    Ok(wheel)
}

fn run_pip(artefact: &Artefact, pip: &PipSource, into: &Path, opts: &FetchOptions) -> Result<PathBuf, RuntimeError> {
    let argv = artefact.pip_command(&opts.python, into).expect("pip source");
    let output =
        Command::new(&argv[0]).args(&argv[1..]).stdin(Stdio::null()).output().map_err(|e| RuntimeError::PipFailed {
            artefact: artefact.label(),
            problem: if e.kind() == io::ErrorKind::NotFound {
                format!("python interpreter `{}` not found (set QUADBENCH_PYTHON to one with pip)", opts.python)
            } else {
                format!("cannot run `{}`: {e}", opts.python)
            },
            fix: manual_fix(artefact, opts),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(6)..].join("\n  ");
        return Err(RuntimeError::PipFailed {
            artefact: artefact.label(),
            problem: format!("pip exited with {}:\n  {tail}", output.status),
            fix: manual_fix(artefact, opts),
        });
    }
    let wheel = into.join(&pip.wheel);
    if !wheel.is_file() {
        let got: Vec<String> = std::fs::read_dir(into)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        return Err(RuntimeError::PipFailed {
            artefact: artefact.label(),
            problem: format!("pip produced {got:?}, not the locked wheel {}", pip.wheel),
            fix: manual_fix(artefact, opts),
        });
    }
    Ok(wheel)
}

/// Where the user can put wheels downloaded by hand.
fn manual_wheel_dir(opts: &FetchOptions) -> PathBuf {
    opts.wheel_dir.clone().unwrap_or_else(|| cache::runtime_root(&opts.cache_dir).join("wheels"))
}

/// The fix when pip cannot be used here: the exact command to run by hand (on this machine once
/// it has network, or on another one), and the environment variables that point at the result.
fn manual_fix(artefact: &Artefact, opts: &FetchOptions) -> String {
    let wheels = manual_wheel_dir(opts);
    let mut fix = match artefact.pip_command_line(&opts.python, &wheels) {
        Some(cmd) => format!(
            "download the wheel by hand (where PyPI is reachable):\n    {cmd}\n  then run it again with \
             QUADBENCH_WHEEL_DIR={}",
            lock_quote(&wheels)
        ),
        None => String::new(),
    };
    if artefact.kind == LibraryKind::Ort && artefact.target == host_target() {
        fix.push_str(&format!(
            "\n  or set QUADBENCH_ORT_LIB=/path/to/libonnxruntime.so.{} to use an onnxruntime {} you already have",
            artefact.version, artefact.version
        ));
    }
    fix.push_str(&format!(
        "\n  (runtime cache: {}; set QUADBENCH_CACHE_DIR to move it)",
        cache::runtime_root(&opts.cache_dir).display()
    ));
    fix
}

fn offline_fix(artefact: &Artefact, opts: &FetchOptions) -> String {
    match &artefact.source {
        Source::User(user) => user.instructions.trim().to_string(),
        Source::Pip(_) => format!(
            "run `quadbench runtime fetch` with network (unset QUADBENCH_OFFLINE), or\n  {}",
            manual_fix(artefact, opts)
        ),
    }
}

fn lock_quote(path: &Path) -> String {
    crate::lock::shell_quote(&path.display().to_string())
}

/// Extracts the locked files of `wheel` into `staged`, hashing them as they are written.
fn extract(wheel: &Path, pip: &PipSource, staged: &Path) -> Result<Vec<MarkerFile>, RuntimeError> {
    let bad = |problem: String| RuntimeError::Extract { wheel: wheel.to_path_buf(), problem };
    let file = File::open(wheel).map_err(|e| io_err(e, "cannot open", wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut matched = vec![false; pip.files.len()];
    let mut out = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| bad(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some((rule, to)) = pip.files.iter().enumerate().find_map(|(i, f)| {
            if f.is_dir() {
                name.strip_prefix(f.from.as_str()).map(|rest| (i, format!("{}{rest}", f.to)))
            } else {
                (name == f.from).then(|| (i, f.to.clone()))
            }
        }) else {
            continue;
        };
        // Entry names under a directory rule come from the wheel: refuse any that could escape.
        if !Path::new(&to).components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(format!("entry {name:?} has an unsafe path")));
        }
        matched[rule] = true;
        let dest = staged.join(&to);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(e, "cannot create", parent))?;
        }
        let mut writer = File::create(&dest).map_err(|e| io_err(e, "cannot create", &dest))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size_bytes = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(|e| bad(format!("{name}: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer.write_all(&buf[..n]).map_err(|e| io_err(e, "cannot write", &dest))?;
            size_bytes += n as u64;
        }
        writer.sync_all().map_err(|e| io_err(e, "cannot write", &dest))?;
        set_mode(&dest, entry.unix_mode())?;
        out.push(MarkerFile { path: to, size_bytes, sha256: cache::hex(&hasher.finalize()) });
    }
    if let Some(i) = matched.iter().position(|m| !m) {
        return Err(bad(format!("the wheel has no {:?} (the lock's `files` list is wrong)", pip.files[i].from)));
    }
    Ok(out)
}

/// Keeps the wheel's permission bits (executables stay executable) but always owner-writable
/// and world-readable, so a shared cache can be read and cleaned.
fn set_mode(path: &Path, mode: Option<u32>) -> Result<(), RuntimeError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = (mode.unwrap_or(0o644) & 0o777) | 0o644;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_err(e, "cannot chmod", path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Copies a user-supplied library (path in the entry's environment variable) into the cache.
fn import_user_file(
    artefact: &Artefact,
    user: &UserSource,
    staged: &Path,
    opts: &FetchOptions,
) -> Result<Marker, RuntimeError> {
    let Some(source) = std::env::var_os(&user.env).filter(|v| !v.is_empty()).map(PathBuf::from) else {
        return Err(RuntimeError::UserSupplied {
            artefact: artefact.label(),
            env: user.env.clone(),
            instructions: user.instructions.trim().to_string(),
        });
    };
    if !source.is_file() {
        return Err(RuntimeError::LibraryMissing { path: source });
    }
    opts.say(&format!("{}: installing {} (from {})", artefact.label(), source.display(), user.env));
    let sha256 = sha256_file(&source).map_err(|e| io_err(e, "cannot read", &source))?;
    if let Some(expected) = &user.sha256
        && *expected != sha256
    {
        return Err(RuntimeError::HashMismatch { file: source, expected: expected.clone(), actual: sha256 });
    }
    let dest = staged.join(&artefact.library);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(e, "cannot create", parent))?;
    }
    let size_bytes = std::fs::copy(&source, &dest).map_err(|e| io_err(e, "cannot copy", &source))?;
    Ok(Marker {
        source_sha256: sha256.clone(),
        files: vec![MarkerFile { path: artefact.library.clone(), size_bytes, sha256 }],
    })
}

/// The onnxruntime library to load: `opts.ort_lib` (QUADBENCH_ORT_LIB) when set, else the host
/// target's locked artefact, fetched on first use. Either way its version is checked.
pub fn ensure_onnxruntime_with(lock: &Lock, opts: &FetchOptions) -> Result<Installed, RuntimeError> {
    let target = host_target();
    let artefact = lock.find("onnxruntime", target).ok_or_else(|| RuntimeError::UnknownArtefact {
        name: "onnxruntime".into(),
        target: target.into(),
        known: "none for this host; set QUADBENCH_ORT_LIB".into(),
    })?;
    if let Some(path) = &opts.ort_lib {
        let (version, sha256) =
            library_version_with(lock, path).map_err(|e| RuntimeError::OrtLibOverride { source: Box::new(e) })?;
        check_version(&version, &artefact.version, path)?;
        let sha256 = match sha256 {
            Some(sha) => sha,
            None => sha256_file(path).map_err(|e| io_err(e, "cannot read", path))?,
        };
        return Ok(Installed {
            name: artefact.name.clone(),
            version,
            target: target.to_string(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            library: path.clone(),
            sha256,
        });
    }
    let installed = fetch(lock, "onnxruntime", target, opts)?;
    check_version(&library_version_with(lock, &installed.library)?.0, &artefact.version, &installed.library)?;
    Ok(installed)
}
