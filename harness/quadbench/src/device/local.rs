//! The `local` transport: the host plays the device. Files are staged by copy in a work
//! directory (never hard-linked: a run must not be able to change the cache or the built runner
//! through its staged copy), verified by sha256 before they are reused, and the runner runs as a
//! subprocess in its own process group that dies with the host (`PR_SET_PDEATHSIG`).

use super::watchdog::{self, End, Msg};
use super::{
    Capabilities, DeviceError, DeviceInfo, ExecLimits, ExecOutcome, SettingsInput, Transport, TransportKind,
    TransportSettings,
};
use crate::yaml::KeyError;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};

pub const KIND: TransportKind = TransportKind { name: "local", keys: &["work_dir"], parse };

/// Directories a work dir must never be or be inside: filling them breaks the machine.
const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/dev", "/proc", "/sys", "/run", "/var/lib",
    "/var/log",
];

#[derive(Debug, Clone)]
struct LocalSettings {
    /// Directory playing the device's storage (default: a directory under the system temp dir).
    work_dir: Option<PathBuf>,
}

fn parse(input: &SettingsInput<'_>) -> Result<Arc<dyn TransportSettings>, KeyError> {
    let work_dir = super::string_key(input, "work_dir")?.map(|w| input.base.join(w));
    if let Some(w) = &work_dir
        && let Some(sys) = system_dir(w)
    {
        return Err(KeyError::new(
            "work_dir",
            format!("work_dir {} is {sys} or inside it, a system directory", w.display()),
            "use a directory of your own, e.g. `work_dir: /tmp/quadbench-device`",
        ));
    }
    Ok(Arc::new(LocalSettings { work_dir }))
}

/// The system directory `p` is or lies in (after resolving what exists of it).
fn system_dir(p: &Path) -> Option<&'static str> {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // Resolve symlinks of the longest existing ancestor (`/tmp/x -> /etc` counts as /etc).
    let resolved = abs
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok().map(|c| c.join(abs.strip_prefix(a).unwrap_or(Path::new("")))))
        .unwrap_or(abs);
    if resolved == Path::new("/") {
        return Some("/");
    }
    SYSTEM_DIRS.iter().copied().find(|d| resolved.starts_with(d))
}

impl TransportSettings for LocalSettings {
    fn capabilities(&self) -> Capabilities {
        Capabilities { is_host: true, shares_host_files: true, abi: None }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Transport>, DeviceError> {
        let root = self.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("quadbench-local-device"));
        std::fs::create_dir_all(&root).map_err(|e| DeviceError::Infra {
            device: name.into(),
            message: format!(
                "cannot create work dir {}: {e}; set `work_dir:` in the device profile to a writable directory",
                root.display()
            ),
        })?;
        Ok(Box::new(Local { name: name.into(), root }))
    }
}

pub struct Local {
    name: String,
    root: PathBuf,
}

impl Local {
    fn infra(&self, message: String) -> DeviceError {
        DeviceError::Infra { device: self.name.clone(), message }
    }

    fn path(&self, remote: &str) -> Result<PathBuf, DeviceError> {
        if !crate::safe_relative_path(remote) {
            return Err(self.infra(format!("refusing unsafe remote path `{remote}`")));
        }
        Ok(self.root.join(remote))
    }
}

/// Keep the last `max` bytes of a growing text.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_string()
}

/// Kill the runner's whole process group (it leads it), then the runner itself.
fn kill_group(child: &mut std::process::Child) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.kill();
}

impl Transport for Local {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: self.name.clone(),
            transport: "local".into(),
            model: std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()),
            soc: None,
            abi: Some(format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)),
            os_version: std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        }
    }

    fn push(&mut self, local: &Path, sha256: &str, remote: &str) -> Result<bool, DeviceError> {
        let dst = self.path(remote)?;
        let local_len =
            std::fs::metadata(local).map_err(|e| self.infra(format!("cannot read {}: {e}", local.display())))?.len();
        // Reused only when its bytes are right: a staged file changed in place is staged again.
        if std::fs::metadata(&dst).is_ok_and(|m| m.is_file() && m.len() == local_len)
            && crate::package::manifest::sha256_file(&dst).is_ok_and(|h| h == sha256)
        {
            return Ok(false);
        }
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| self.infra(format!("cannot create {}: {e}", p.display())))?;
        }
        let tmp = dst.with_extension("part");
        std::fs::copy(local, &tmp).and_then(|_| std::fs::rename(&tmp, &dst)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.infra(format!("cannot stage {} -> {}: {e}", local.display(), dst.display()))
        })?;
        Ok(true)
    }

    fn exec(
        &mut self,
        argv: &[String],
        cwd: &str,
        lib_dirs: &[String],
        limits: ExecLimits,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExecOutcome, DeviceError> {
        let cwd = self.path(cwd)?;
        let exe = self.path(&argv[0])?;
        let mut cmd = Command::new(&exe);
        if !lib_dirs.is_empty() {
            let mut dirs = lib_dirs.iter().map(|d| self.path(d)).collect::<Result<Vec<_>, _>>()?;
            dirs.extend(
                std::env::var_os("LD_LIBRARY_PATH")
                    .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            cmd.env(
                "LD_LIBRARY_PATH",
                std::env::join_paths(dirs).map_err(|e| self.infra(format!("cannot build LD_LIBRARY_PATH: {e}")))?,
            );
        }
        // Its own process group (killed whole on timeout or interrupt), dying with the host even
        // on `kill -9` of the host.
        cmd.args(&argv[1..]).current_dir(&cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child =
            super::child::spawn(&mut cmd).map_err(|e| self.infra(format!("cannot start {}: {e}", exe.display())))?;
        let (tx, rx) = mpsc::channel::<Msg<()>>();
        let stdout = child.stdout.take().expect("piped");
        let out_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(Msg::Line(line)).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                if s.len() > 64 * 1024 {
                    s = tail(&s, 16 * 1024);
                }
            }
            s
        });
        let end = watchdog::watch(&rx, limits, on_line);
        let stopped = !matches!(end, End::Done(()) | End::Closed);
        if stopped {
            kill_group(&mut child);
        }
        let status = child.wait().map_err(|e| self.infra(format!("wait failed: {e}")))?;
        drop(rx);
        let _ = out_thread.join();
        let stderr_all = err_thread.join().unwrap_or_default();
        if let End::Interrupted(sig) = end {
            return Err(DeviceError::Interrupted(sig));
        }
        Ok(ExecOutcome { exit_code: status.code(), stderr_tail: tail(&stderr_all, 4000), timed_out: stopped })
    }

    fn pull(&mut self, remote: &str, local: &Path) -> Result<(), DeviceError> {
        let src = self.path(remote)?;
        if let Some(p) = local.parent() {
            std::fs::create_dir_all(p).map_err(|e| self.infra(format!("cannot create {}: {e}", p.display())))?;
        }
        std::fs::copy(&src, local)
            .map(|_| ())
            .map_err(|e| self.infra(format!("cannot pull {} -> {}: {e}", src.display(), local.display())))
    }

    fn remove_dir(&mut self, remote: &str) -> Result<(), DeviceError> {
        let p = self.path(remote)?;
        match std::fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.infra(format!("cannot remove {}: {e}", p.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_directories_are_refused_as_work_dirs() {
        for p in ["/", "/etc", "/etc/x", "/usr/lib/x", "/proc/self"] {
            assert!(system_dir(Path::new(p)).is_some(), "{p}");
        }
        let d = tempfile::tempdir().unwrap();
        assert_eq!(system_dir(&d.path().join("device")), None);
        // A symlink into /etc is /etc.
        std::os::unix::fs::symlink("/etc", d.path().join("e")).unwrap();
        assert_eq!(system_dir(&d.path().join("e/sub")), Some("/etc"));
    }

    #[test]
    fn a_staged_file_changed_in_place_is_staged_again_and_never_shares_the_source_inode() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src.bin");
        std::fs::write(&src, b"right bytes").unwrap();
        let sha = crate::package::manifest::sha256_file(&src).unwrap();
        let s = LocalSettings { work_dir: Some(d.path().join("dev")) };
        let mut t = s.open("local").unwrap();
        assert!(t.push(&src, &sha, "bin/x").unwrap());
        assert!(!t.push(&src, &sha, "bin/x").unwrap(), "unchanged: skipped");
        let staged = d.path().join("dev/bin/x");
        std::fs::write(&staged, b"wrong bytes").unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), b"right bytes", "writing the staged copy changed the source");
        assert!(t.push(&src, &sha, "bin/x").unwrap(), "changed in place: staged again");
        assert_eq!(std::fs::read(&staged).unwrap(), b"right bytes");
    }
}
