//! Shell commands run confined to the device root with bubblewrap, seeing DIR as `/`:
//!
//! ```text
//! bwrap --bind DIR / --ro-bind /usr /usr --proc /proc --dev /dev --pidns FD
//!       --unshare-ipc --unshare-net --unshare-uts --cap-drop ALL --new-session --die-with-parent
//!       --clearenv --setenv PATH ... --chdir / --info-fd FD  /bin/sh -c CMD
//! ```
//!
//! - DIR's `bin`, `lib`, `lib64` are symlinks into `usr` (created at start, as on a merged-/usr
//!   system), so `/bin/sh` and the dynamic loader come from the host's `/usr`, read-only. The
//!   loader finds the host's libraries without `/etc/ld.so.cache` (Debian's glibc searches the
//!   multiarch directories by default), so nothing of the host's `/etc` is bound.
//! - All commands share one pid namespace, held by a small "holder" sandbox started with the
//!   device, so that one shell can see and `kill` the processes of another, as on a phone (the
//!   host's transport kills a hung runner from a second shell). If the holder dies (e.g.
//!   `kill -9 -1` on the device), the next command starts a new one.
//! - `--cap-drop ALL`: the device shell is uid 0 without capabilities, so it cannot mount,
//!   mknod or ptrace its way out of the namespaces. `--new-session` keeps it off the
//!   controlling terminal of whoever runs the device (TIOCSTI). `--unshare-net`: the device has
//!   only its own loopback interface; sharing the host's network namespace would also share its
//!   abstract unix sockets.
//! - Each command is its own session and process group inside the namespace; bwrap reports the
//!   group leader's pid on the info fd, which is how the device kills a command's whole group
//!   when the host closes its stream.
//!
//! Needs root: an unprivileged bwrap (in a user namespace of its own) cannot join the holder's
//! pid namespace ("Can't send pid"), and per-command pid namespaces would break the cross-shell
//! `kill` that the host's transport relies on.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// Environment of device commands (the sandbox starts from an empty one).
const ENV: [(&str, &str); 4] =
    [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/"), ("TMPDIR", "/data/local/tmp"), ("LANG", "C.UTF-8")];

/// Why the sandbox cannot run commands.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bubblewrap (`bwrap`) was not found in PATH or /usr/bin; the loopback device runs shell commands confined to its root with it: install it with `apt-get install bubblewrap`"
    )]
    Missing,
    #[error("bubblewrap could not create the device's namespaces ({detail}); check that this kernel allows namespaces")]
    Namespaces { detail: String },
    #[error(
        "bubblewrap could not run the device's shell ({detail}); the loopback device must run as root (as CI does), since an unprivileged bwrap cannot join the device's shared pid namespace"
    )]
    NotRoot { detail: String },
    #[error("preparing the device layout {path}: {source}")]
    Layout { path: PathBuf, source: io::Error },
    #[error("starting bubblewrap: {0}")]
    Spawn(io::Error),
}

/// A started device command.
pub(crate) struct Spawned {
    /// The outer bwrap process; its exit status is the command's.
    pub child: Child,
    /// Host pid of the command's process group leader (the shell), when bwrap reported it.
    pub group: Option<i32>,
}

/// Kills process group `group` (if known) and process group `outer` (bwrap, started as a group
/// leader).
pub(crate) fn kill_pid_group(group: Option<i32>, outer: u32) {
    // SAFETY: plain syscalls; negative pids address process groups.
    unsafe {
        if let Some(g) = group.filter(|g| *g > 1) {
            libc::kill(-g, libc::SIGKILL);
        }
        libc::kill(-(outer as i32), libc::SIGKILL);
    }
}

struct Holder {
    child: Child,
    /// Never written: when the device process dies, EOF ends the holder.
    _stdin: ChildStdin,
    /// Host pid of the namespace's init.
    init: i32,
    pidns: File,
}

impl Holder {
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        // Killing the namespace's init kills every process left in it.
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(self.init, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs device commands under bubblewrap.
pub(crate) struct Sandbox {
    root: PathBuf,
    bwrap: PathBuf,
    holder: Mutex<Option<Holder>>,
}

fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("bwrap"))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The links into `/usr` that a merged-/usr system has (only those the host has).
fn usr_links() -> Vec<(&'static str, &'static str)> {
    [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")]
        .into_iter()
        .filter(|(_, target)| Path::new("/").join(target).is_dir())
        .collect()
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_nofollow(parent: &File, name: &CString, flags: libc::c_int) -> io::Result<File> {
    // SAFETY: valid dir fd and NUL-terminated single-component name; the new fd is owned below.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `mkdir` of one component inside `parent` (an existing one is fine), then opens it without
/// following a symlink there: a directory the device's shell replaced by a link is an error,
/// never a way for us to create directories elsewhere on the host.
fn subdir(parent: &File, name: &str) -> io::Result<(File, bool)> {
    let c = cstr(name)?;
    // SAFETY: valid dir fd and NUL-terminated name.
    let created = unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755) } == 0;
    if !created && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
        return Err(io::Error::last_os_error());
    }
    Ok((open_nofollow(parent, &c, libc::O_RDONLY | libc::O_DIRECTORY)?, created))
}

/// Creates DIR's layout: mount points, the links into `usr`, `/data/local/tmp` and `/tmp`.
/// Runs before every command, so a device whose shell removed `/bin` gets it back; entries
/// that exist are left alone (one the shell replaced with something else stays so). DIR's
/// content belongs to the device's shell, so everything here is relative to a handle on DIR
/// and follows no symlink.
pub(crate) fn ensure_layout(root: &Path) -> io::Result<()> {
    let dir = File::open(root)?;
    // What the shell needs to run first, then the device's own directories.
    for d in ["usr", "proc", "dev"] {
        subdir(&dir, d)?;
    }
    for (name, target) in usr_links() {
        let (t, n) = (cstr(target)?, cstr(name)?);
        // SAFETY: NUL-terminated target and name, valid dir fd.
        if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
    }
    let (data, _) = subdir(&dir, "data")?;
    let (local, _) = subdir(&data, "local")?;
    subdir(&local, "tmp")?;
    let (tmp, created) = subdir(&dir, "tmp")?;
    if created {
        tmp.set_permissions(std::fs::Permissions::from_mode(0o1777))?;
    }
    Ok(())
}

/// Reads bwrap's info JSON up to its closing brace (bwrap keeps the fd open until it exits)
/// and returns `child-pid`.
fn read_child_pid(mut r: impl Read) -> Option<i32> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'}') && buf.len() < 64 * 1024 {
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&buf).ok()?;
    v.get("child-pid")?.as_i64().and_then(|p| i32::try_from(p).ok())
}

/// Spawns `cmd` (a bwrap command line without `--info-fd` and the command) with `--info-fd`
/// and `argv`, letting it inherit `keep` as well, and returns it with the reported child pid.
fn spawn_with_info(mut cmd: Command, keep: &[i32], argv: &[&std::ffi::OsStr]) -> io::Result<(Child, Option<i32>)> {
    let (reader, writer) = io::pipe()?;
    let info = writer.as_raw_fd();
    cmd.arg("--info-fd").arg(info.to_string()).args(argv);
    let mut fds = keep.to_vec();
    fds.push(info);
    // SAFETY: the closure only calls fcntl, which is async-signal-safe, on fds that stay open
    // in the parent until after the spawn.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    // Our copies of the pipe's write end and of the caller's stdio go now, or reads never end.
    drop(cmd);
    drop(writer);
    let child = child?;
    Ok((child, read_child_pid(reader)))
}

fn common_args(cmd: &mut Command) {
    cmd.args(["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"])
        .args(["--unshare-ipc", "--unshare-net", "--unshare-uts", "--hostname", "localhost"])
        .args(["--cap-drop", "ALL", "--new-session", "--clearenv"]);
}

impl Sandbox {
    /// Finds bwrap, prepares DIR's layout, starts the holder and runs one trial command, so that
    /// a device that starts can run commands.
    pub fn start(root: &Path) -> Result<Sandbox, SandboxError> {
        let bwrap = find_bwrap().ok_or(SandboxError::Missing)?;
        ensure_layout(root).map_err(|source| SandboxError::Layout { path: root.to_path_buf(), source })?;
        let sb = Sandbox { root: root.to_path_buf(), bwrap, holder: Mutex::new(None) };
        // SAFETY: plain syscall.
        let as_root = unsafe { libc::geteuid() } == 0;
        let namespaces = |detail: String| {
            if as_root { SandboxError::Namespaces { detail } } else { SandboxError::NotRoot { detail } }
        };
        let trial = sb.spawn(b"exit 0", |c| {
            c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        });
        let trial = match trial {
            Ok(t) => t,
            Err(SandboxError::Namespaces { detail }) => return Err(namespaces(detail)),
            Err(e) => return Err(e),
        };
        let out = trial.child.wait_with_output().map_err(SandboxError::Spawn)?;
        if !out.status.success() {
            sb.stop();
            let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let detail = if detail.is_empty() { format!("a trial command ended with {}", out.status) } else { detail };
            return Err(namespaces(detail));
        }
        Ok(sb)
    }

    fn start_holder(&self) -> Result<Holder, SandboxError> {
        let mut cmd = Command::new(&self.bwrap);
        cmd.arg("--unshare-pid");
        common_args(&mut cmd);
        for (name, target) in usr_links() {
            cmd.args(["--symlink", target, &format!("/{name}")]);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let (child, init) = spawn_with_info(cmd, &[], &["/usr/bin/cat".as_ref()]).map_err(|e| self.spawn_error(e))?;
        // A holder that did not come up: kill what runs of it and report bwrap's own words.
        let fail = |mut child: Child, init: Option<i32>, detail: String| {
            if let Some(pid) = init {
                // SAFETY: plain syscall on the pid bwrap reported.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let err = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string());
            let err = err.unwrap_or_default();
            SandboxError::Namespaces { detail: if err.is_empty() { detail } else { err } }
        };
        let Some(init) = init else {
            return Err(fail(child, None, "bwrap reported no pid".into()));
        };
        let ns = |kind: &str| File::open(format!("/proc/{init}/ns/{kind}"));
        let pidns = match ns("pid") {
            Ok(f) => f,
            Err(e) => return Err(fail(child, Some(init), format!("opening the pid namespace of {init}: {e}"))),
        };
        let mut child = child;
        let stdin = child.stdin.take().expect("piped stdin");
        // Nothing reads the holder's stderr once it runs; do not let a full pipe block it.
        drop(child.stderr.take());
        Ok(Holder { child, _stdin: stdin, init, pidns })
    }

    fn spawn_error(&self, e: io::Error) -> SandboxError {
        if e.kind() == io::ErrorKind::NotFound { SandboxError::Missing } else { SandboxError::Spawn(e) }
    }

    /// Runs `/bin/sh -c command` (or `/bin/sh` reading stdin, for an empty command) in the
    /// sandbox; `stdio` sets the Command's stdin/stdout/stderr.
    pub fn spawn(&self, command: &[u8], stdio: impl FnOnce(&mut Command)) -> Result<Spawned, SandboxError> {
        // Best effort: if the layout cannot be restored, bwrap's own error reaches the host.
        let _ = ensure_layout(&self.root);
        let mut holder = self.holder.lock().unwrap_or_else(|p| p.into_inner());
        if !holder.as_mut().is_some_and(Holder::alive) {
            if let Some(mut h) = holder.take() {
                h.stop();
            }
            *holder = Some(self.start_holder()?);
        }
        let h = holder.as_ref().expect("holder started above");
        let mut cmd = Command::new(&self.bwrap);
        cmd.arg("--bind").arg(&self.root).arg("/");
        common_args(&mut cmd);
        // The pid namespace fd is inherited by the shell as well: harmless, since joining a
        // namespace needs CAP_SYS_ADMIN, which the shell does not have.
        let keep = [h.pidns.as_raw_fd()];
        cmd.arg("--pidns").arg(h.pidns.as_raw_fd().to_string());
        cmd.arg("--die-with-parent").args(["--chdir", "/"]);
        for (k, v) in ENV {
            cmd.args(["--setenv", k, v]);
        }
        // bwrap becomes a process-group leader so that it can be killed with its group.
        cmd.process_group(0);
        stdio(&mut cmd);
        let mut argv: Vec<&std::ffi::OsStr> = vec!["/bin/sh".as_ref()];
        if !command.is_empty() {
            argv.push("-c".as_ref());
            argv.push(std::ffi::OsStr::from_bytes(command));
        }
        let (child, group) = spawn_with_info(cmd, &keep, &argv).map_err(|e| self.spawn_error(e))?;
        Ok(Spawned { child, group })
    }

    /// Stops the holder, killing every process still in the device's namespace.
    pub fn stop(&self) {
        if let Some(mut h) = self.holder.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.stop();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_no_symlink_the_shell_planted() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside) = (d.path().join("root"), d.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        ensure_layout(&root).unwrap();
        assert!(root.join("data/local/tmp").is_dir() && root.join("usr").is_dir());
        assert_eq!(root.join("tmp").metadata().unwrap().permissions().mode() & 0o7777, 0o1777);
        assert_eq!(std::fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
        // The device's shell replaced /data by a link to a host directory and removed /bin.
        std::fs::remove_dir_all(root.join("data")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("data")).unwrap();
        std::fs::remove_file(root.join("bin")).unwrap();
        assert!(ensure_layout(&root).is_err());
        assert!(!outside.join("local").exists(), "the layout followed a link out of the root");
        assert!(root.join("bin").symlink_metadata().unwrap().file_type().is_symlink(), "/bin is back");
    }

    #[test]
    fn info_json_gives_the_child_pid() {
        let json = b"{\n    \"child-pid\": 4242,\n    \"pid-namespace\": 4026532179\n}\n".to_vec();
        assert_eq!(read_child_pid(&json[..]), Some(4242));
        assert_eq!(read_child_pid(&b"{"[..]), None);
        assert_eq!(read_child_pid(&b""[..]), None);
    }
}
