//! The runtime lock file (`runtime.lock.toml` at the repository root): its schema, parsing and
//! validation, and the pip command line each pinned wheel is fetched with.
//!
//! The lock is the single source of truth for what quadbench loads: every artefact is pinned by
//! version and sha256, so a cache entry can be checked against it without the network.

use std::path::{Component, Path};

use serde::Deserialize;

use crate::RuntimeError;

/// The schema version this crate reads; bump it when the meaning of a field changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The lock file of this repository, compiled in so that the binary needs no checkout.
const EMBEDDED_LOCK: &str = include_str!("../../../runtime.lock.toml");

/// A parsed and validated runtime lock.
#[derive(Debug, Clone)]
pub struct Lock {
    artefacts: Vec<Artefact>,
}

#[derive(Deserialize)]
struct LockFile {
    schema: u32,
    #[serde(default, rename = "artefact")]
    artefacts: Vec<Artefact>,
}

/// What kind of library an artefact's `library` is; decides how it is checked after install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibraryKind {
    /// An onnxruntime core library: reports its version through `OrtGetApiBase`.
    Ort,
    /// An execution-provider plugin library: exports `CreateEpFactories`.
    EpPlugin,
}

/// One pinned runtime artefact for one target.
#[derive(Debug, Clone, Deserialize)]
pub struct Artefact {
    pub name: String,
    pub target: String,
    pub version: String,
    pub kind: LibraryKind,
    /// The main library, relative to the install directory.
    pub library: String,
    /// sha256 of the main library file itself (checked after extraction, and against a
    /// `QUADBENCH_ORT_LIB` that carries the library's versioned file name).
    #[serde(default)]
    pub library_sha256: Option<String>,
    /// False for artefacts that are only fetched when asked for by name (large downloads).
    #[serde(default = "default_true")]
    pub fetch_by_default: bool,
    #[serde(flatten)]
    pub source: Source,
}

fn default_true() -> bool {
    true
}

/// Where an artefact comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    Pip(PipSource),
    User(UserSource),
}

/// A PyPI wheel, fetched by package name with `pip download`.
#[derive(Debug, Clone, Deserialize)]
pub struct PipSource {
    pub pip_name: String,
    /// The exact wheel file name pip must produce.
    pub wheel: String,
    pub wheel_sha256: String,
    /// Size PyPI publishes for the wheel, for progress messages only (the sha256 is the check).
    pub wheel_size_bytes: Option<u64>,
    pub python_version: String,
    pub implementation: String,
    pub platforms: Vec<String>,
    pub files: Vec<FileMap>,
}

/// A library the user supplies, because no package index we can reach carries it.
#[derive(Debug, Clone, Deserialize)]
pub struct UserSource {
    /// Environment variable holding the path of the user's file.
    pub env: String,
    /// Where to get the file, shown in errors and in `runtime info`.
    pub instructions: String,
    /// Optional pin of the user's file; without it any file passes (and is recorded).
    pub sha256: Option<String>,
}

/// One extraction rule: wheel path -> install path. A `from` ending in `/` is a directory taken
/// with its whole layout.
#[derive(Debug, Clone, Deserialize)]
pub struct FileMap {
    pub from: String,
    pub to: String,
}

impl FileMap {
    pub fn is_dir(&self) -> bool {
        self.from.ends_with('/')
    }
}

impl Lock {
    /// Reads and validates a lock file.
    pub fn load(path: &Path) -> Result<Lock, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            context: format!("cannot read the runtime lock {}", path.display()),
            source,
        })?;
        Lock::parse(&text, &path.display().to_string())
    }

    /// The lock compiled into this binary (`runtime.lock.toml` of the repository).
    pub fn embedded() -> Lock {
        // The embedded lock is checked by this crate's tests, so a failure here is a build defect.
        Lock::parse(EMBEDDED_LOCK, "embedded runtime.lock.toml")
            .unwrap_or_else(|e| panic!("the embedded runtime.lock.toml is invalid: {e}"))
    }

    /// Parses and validates lock text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Lock, RuntimeError> {
        let file: LockFile = toml::from_str(text)
            .map_err(|e| RuntimeError::LockInvalid { origin: origin.to_string(), problem: e.to_string() })?;
        let invalid = |problem: String| RuntimeError::LockInvalid { origin: origin.to_string(), problem };
        if file.schema != SCHEMA_VERSION {
            return Err(invalid(format!(
                "schema {} is not supported (this quadbench reads schema {SCHEMA_VERSION})",
                file.schema
            )));
        }
        for (i, a) in file.artefacts.iter().enumerate() {
            a.validate().map_err(|p| invalid(format!("artefact {} ({} {}): {p}", i + 1, a.name, a.target)))?;
            if file.artefacts[..i].iter().any(|b| b.name == a.name && b.target == a.target) {
                return Err(invalid(format!("artefact {} {} is listed twice", a.name, a.target)));
            }
        }
        Ok(Lock { artefacts: file.artefacts })
    }

    pub fn artefacts(&self) -> &[Artefact] {
        &self.artefacts
    }

    pub fn find(&self, name: &str, target: &str) -> Option<&Artefact> {
        self.artefacts.iter().find(|a| a.name == name && a.target == target)
    }

    /// The artefacts of `target` whose library file claims an identity by its name: the file name
    /// of the locked library equals `file_name` and carries the artefact's version
    /// (`libonnxruntime.so.1.31.1`). Unversioned names (`libonnxruntime_providers_qnn.so`) match none.
    pub fn claimed_by_file_name(&self, file_name: &str, target: &str) -> Vec<&Artefact> {
        self.artefacts
            .iter()
            .filter(|a| a.target == target)
            .filter(|a| {
                let locked = a.library.rsplit('/').next().unwrap_or(&a.library);
                locked == file_name && locked.contains(&a.version)
            })
            .collect()
    }

    /// The artefacts `quadbench runtime fetch` installs without arguments on `target`.
    pub fn defaults_for(&self, target: &str) -> Vec<&Artefact> {
        self.artefacts
            .iter()
            .filter(|a| a.target == target && a.fetch_by_default && matches!(a.source, Source::Pip(_)))
            .collect()
    }
}

impl Artefact {
    /// `name-version-target`: the install directory and lock file are named after it.
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.target)
    }

    /// Human label for messages: `onnxruntime 1.31.1 (x86_64-unknown-linux-gnu)`.
    pub fn label(&self) -> String {
        format!("{} {} ({})", self.name, self.version, self.target)
    }

    /// The pip command (argv, interpreter first) that downloads this artefact's wheel into `dir`.
    /// None for user-supplied artefacts.
    pub fn pip_command(&self, python: &str, dir: &Path) -> Option<Vec<String>> {
        let Source::Pip(pip) = &self.source else {
            return None;
        };
        let mut argv: Vec<String> = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(["--python-version".into(), pip.python_version.clone()]);
        argv.extend(["--implementation".into(), pip.implementation.clone()]);
        for p in &pip.platforms {
            argv.extend(["--platform".into(), p.clone()]);
        }
        argv.extend(["-d".into(), dir.display().to_string()]);
        argv.push(format!("{}=={}", pip.pip_name, self.version));
        Some(argv)
    }

    /// The pip command as one line to paste into a shell.
    pub fn pip_command_line(&self, python: &str, dir: &Path) -> Option<String> {
        self.pip_command(python, dir).map(|argv| argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "))
    }

    fn validate(&self) -> Result<(), String> {
        for (field, value) in [("name", &self.name), ("target", &self.target), ("version", &self.version)] {
            if value.trim().is_empty() || value.contains(['/', '\\']) || value.contains(char::is_whitespace) {
                return Err(format!("`{field}` must be a non-empty word, got {value:?}"));
            }
        }
        check_relative(&self.library, "library")?;
        if let Some(sha) = &self.library_sha256 {
            check_sha256(sha, "library_sha256")?;
        }
        if self.library.ends_with('/') {
            return Err("`library` must name a file".into());
        }
        match &self.source {
            Source::Pip(pip) => {
                check_sha256(&pip.wheel_sha256, "wheel_sha256")?;
                // pip normalises `-` to `_` in wheel file names.
                let stem = format!("{}-{}-", pip.pip_name.replace('-', "_"), self.version);
                if !pip.wheel.ends_with(".whl") || !pip.wheel.starts_with(&stem) {
                    return Err(format!(
                        "`wheel` {:?} is not a wheel of {}=={}",
                        pip.wheel, pip.pip_name, self.version
                    ));
                }
                if pip.platforms.is_empty() || pip.python_version.is_empty() || pip.implementation.is_empty() {
                    return Err("`platforms`, `python_version` and `implementation` are required for pip".into());
                }
                if pip.files.is_empty() {
                    return Err("`files` is empty: nothing would be extracted".into());
                }
                for f in &pip.files {
                    check_relative(&f.from, "files.from")?;
                    check_relative(&f.to, "files.to")?;
                    if f.from.ends_with('/') != f.to.ends_with('/') {
                        return Err(format!("files entry {} -> {}: both or neither must end with `/`", f.from, f.to));
                    }
                }
                let covered = pip
                    .files
                    .iter()
                    .any(|f| if f.is_dir() { self.library.starts_with(&f.to) } else { self.library == f.to });
                if !covered {
                    return Err(format!("`library` {} is not among the extracted `files`", self.library));
                }
            }
            Source::User(user) => {
                if user.env.is_empty() || user.instructions.trim().is_empty() {
                    return Err("user source needs `env` and `instructions`".into());
                }
                if let Some(sha) = &user.sha256 {
                    check_sha256(sha, "sha256")?;
                }
            }
        }
        Ok(())
    }
}

fn check_sha256(value: &str, field: &str) -> Result<(), String> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!("`{field}` must be 64 lowercase hex digits, got {value:?}"))
    }
}

/// Install paths come from the lock and are joined onto the cache: refuse anything that could
/// escape the install directory.
fn check_relative(value: &str, field: &str) -> Result<(), String> {
    let ok = !value.is_empty() && Path::new(value).components().all(|c| matches!(c, Component::Normal(_)));
    if ok { Ok(()) } else { Err(format!("`{field}` {value:?} must be a relative path without `..`")) }
}

/// Quotes an argument for a POSIX shell only where needed, so commands in errors stay readable.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_lock_is_well_formed() {
        let lock = Lock::embedded();
        // The entries the project issue asks for, each pinned.
        for (name, target, version) in [
            ("onnxruntime", "x86_64-unknown-linux-gnu", "1.31.1"),
            ("onnxruntime-qnn", "x86_64-unknown-linux-gnu", "2.7.0"),
            ("onnxruntime", "aarch64-unknown-linux-gnu", "1.31.1"),
            ("onnxruntime-gpu", "x86_64-unknown-linux-gnu", "1.31.1"),
            ("onnxruntime", "aarch64-linux-android", "1.31.1"),
        ] {
            let a = lock.find(name, target).unwrap_or_else(|| panic!("{name} {target} missing"));
            assert_eq!(a.version, version);
        }
        let gpu = lock.find("onnxruntime-gpu", "x86_64-unknown-linux-gnu").unwrap();
        assert!(!gpu.fetch_by_default, "the 256 MB GPU wheel must be fetched only on request");
        let defaults: Vec<_> = lock.defaults_for("x86_64-unknown-linux-gnu").iter().map(|a| a.name.clone()).collect();
        assert_eq!(defaults, ["onnxruntime", "onnxruntime-qnn"]);
        let qnn = lock.find("onnxruntime-qnn", "x86_64-unknown-linux-gnu").unwrap();
        assert_eq!(qnn.library, "onnxruntime_qnn/libonnxruntime_providers_qnn.so");
        assert_eq!(qnn.kind, LibraryKind::EpPlugin);
        let Source::Pip(p) = &qnn.source else { panic!("qnn must come from pip") };
        assert!(p.files.iter().any(|f| f.from == "onnxruntime_qnn.libs/" && f.is_dir()));
    }

    #[test]
    fn pip_command_matches_the_verified_form() {
        let lock = Lock::embedded();
        let a = lock.find("onnxruntime", "x86_64-unknown-linux-gnu").unwrap();
        let line = a.pip_command_line("python3", Path::new("/tmp/w d")).unwrap();
        assert_eq!(
            line,
            "python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
             --implementation cp --platform manylinux_2_28_x86_64 -d '/tmp/w d' onnxruntime==1.31.1"
        );
        let android = lock.find("onnxruntime", "aarch64-linux-android").unwrap();
        assert!(android.pip_command("python3", Path::new("/x")).is_none());
    }

    #[test]
    fn invalid_locks_are_rejected_with_the_reason() {
        let base = r#"
schema = 1
[[artefact]]
name = "onnxruntime"
target = "x86_64-unknown-linux-gnu"
version = "1.31.1"
kind = "ort"
source = "pip"
pip_name = "onnxruntime"
wheel = "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"
wheel_sha256 = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
python_version = "3.11"
implementation = "cp"
platforms = ["manylinux_2_28_x86_64"]
library = "lib/libonnxruntime.so.1.31.1"
files = [{ from = "onnxruntime/capi/libonnxruntime.so.1.31.1", to = "lib/libonnxruntime.so.1.31.1" }]
"#;
        assert_eq!(Lock::parse(base, "t").unwrap().artefacts().len(), 1);
        let cases = [
            (base.replace("schema = 1", "schema = 2"), "schema 2"),
            (base.replace("5752bd50", "XXXXXXXX"), "wheel_sha256"),
            (base.replace("to = \"lib/", "to = \"../lib/"), "without `..`"),
            (base.replace("library = \"lib/", "library = \"other/"), "not among the extracted"),
            (base.replace("onnxruntime-1.31.1-cp311", "onnxruntime-1.20.0-cp311"), "is not a wheel of"),
            (format!("{base}{}", &base[base.find("[[artefact]]").unwrap()..]), "listed twice"),
            (base.replace("source = \"pip\"", "source = \"ftp\""), "ftp"),
        ];
        for (text, expected) in cases {
            let err = Lock::parse(&text, "t").unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }

    #[test]
    fn lock_file_on_disk_equals_the_embedded_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime.lock.toml");
        let on_disk = Lock::load(&path).unwrap();
        assert_eq!(on_disk.artefacts().len(), Lock::embedded().artefacts().len());
        let err = Lock::load(Path::new("/nonexistent/runtime.lock.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/runtime.lock.toml"), "{err}");
    }
}
