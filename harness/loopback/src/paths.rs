//! The device's file system as sync (push, pull, stat, list) sees it: the device root DIR is
//! `/`, so device path `/p` is `DIR/p`, and a relative path is relative to `/` (adbd's cwd).
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` against a handle on DIR:
//! `..` and symlinks, absolute or relative, in any component including the last, resolve as in
//! a chroot at DIR, so `/data/local/tmp/link -> /etc/shadow` means `DIR/etc/shadow` and nothing
//! outside DIR is ever opened. The resolution is atomic: the device's own shell renaming or
//! swapping symlinks while sync runs cannot redirect a request outside the root (a path that is
//! checked first and opened later could be). Files are created relative to the handle of their
//! resolved parent directory, never by host path, for the same reason.
//!
//! The shell sees the host's `/usr` (read-only) plus `/proc` and `/dev` mounted over DIR's
//! `usr`, `proc` and `dev` (see `sandbox.rs`), and `bin`, `lib`, `lib64` are symlinks into
//! `usr`. Sync does not serve those mounts: it refuses to write into them or replace the links
//! ("read-only file system", as a phone's /system) and reads DIR's empty mount points there.

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Top-level names of DIR that belong to the shell's sandbox layout: mounts and the links into
/// them. Sync never writes there.
pub const SYSTEM_NAMES: [&str; 6] = ["usr", "proc", "dev", "bin", "lib", "lib64"];

/// A device path that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path contains a nul byte")]
    Nul,
}

impl From<PathError> for io::Error {
    fn from(e: PathError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// The device path as a path relative to the root (`.` for `/`), for `openat2`.
pub fn relative(device_path: &[u8]) -> Result<CString, PathError> {
    if device_path.is_empty() {
        return Err(PathError::Empty);
    }
    let trimmed: &[u8] = {
        let start = device_path.iter().position(|&b| b != b'/').unwrap_or(device_path.len());
        &device_path[start..]
    };
    let rel = if trimmed.is_empty() { b"." as &[u8] } else { trimmed };
    CString::new(rel).map_err(|_| PathError::Nul)
}

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn cvt_int(r: libc::c_int) -> io::Result<()> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `openat2(dirfd, path, how)` confined to `dirfd` as root. `EAGAIN` (a rename raced with the
/// resolution of `..`) is retried.
fn openat2_in_root(dirfd: &OwnedFd, path: &CString, flags: libc::c_int, mode: u32) -> io::Result<File> {
    // SAFETY: open_how is plain data; zeroed is a valid value (no resolve flags, no mode).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 { u64::from(mode) } else { 0 };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    for _ in 0..16 {
        // SAFETY: valid fd, NUL-terminated path, `how` lives across the call with its size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match cvt(r) {
            // SAFETY: the kernel returned a new fd that we now own.
            Ok(fd) => return Ok(unsafe { File::from_raw_fd(fd as libc::c_int) }),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// A file just created by SEND: the open file and where it is (its parent directory's handle and
/// its name there), so it can be removed again without resolving any path.
pub struct NewFile {
    pub file: File,
    parent: File,
    name: CString,
}

impl NewFile {
    /// Removes the file (a SEND that failed or never finished leaves nothing behind).
    pub fn remove(&self) {
        // SAFETY: valid dir fd and NUL-terminated single-component name.
        unsafe {
            libc::unlinkat(self.parent.as_raw_fd(), self.name.as_ptr(), 0);
        }
    }
}

/// DIR, opened once; every sync operation resolves inside it.
pub struct DeviceFs {
    root: PathBuf,
    dir: OwnedFd,
}

impl DeviceFs {
    /// Opens the (canonical, existing) root and checks that the kernel has `openat2`.
    pub fn open(root: &Path) -> io::Result<DeviceFs> {
        let c = CString::new(root.as_os_str().as_bytes()).map_err(|_| PathError::Nul)?;
        // SAFETY: NUL-terminated path; the returned fd is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor we own.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        let fs = DeviceFs { root: root.to_path_buf(), dir };
        fs.open_path(b"/", libc::O_PATH | libc::O_DIRECTORY).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                io::Error::other("the kernel lacks openat2 (Linux 5.6 or newer is needed to confine sync paths)")
            } else {
                e
            }
        })?;
        Ok(fs)
    }

    /// Canonical host path of the root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens a device path with `flags`; symlinks (the last component too, unless `O_NOFOLLOW`
    /// is in `flags`) resolve inside the root.
    pub fn open_path(&self, device_path: &[u8], flags: libc::c_int) -> io::Result<File> {
        openat2_in_root(&self.dir, &relative(device_path)?, flags, 0)
    }

    /// `lstat` of a device path.
    pub fn lstat(&self, device_path: &[u8]) -> io::Result<Metadata> {
        self.open_path(device_path, libc::O_PATH | libc::O_NOFOLLOW)?.metadata()
    }

    /// `stat` of a device path (a last-component symlink is followed, inside the root).
    pub fn stat(&self, device_path: &[u8]) -> io::Result<Metadata> {
        self.open_path(device_path, libc::O_PATH)?.metadata()
    }

    /// Opens a regular file for reading. Anything else (a FIFO the shell made, a directory) is
    /// refused rather than read, so a pull never blocks on or wanders into special files.
    pub fn open_regular(&self, device_path: &[u8]) -> io::Result<File> {
        let f = self.open_path(device_path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)?;
        let md = f.metadata()?;
        if md.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if !md.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        // Back to blocking reads (O_NONBLOCK only guarded the open of a FIFO).
        // SAFETY: valid fd; F_SETFL with plain flags.
        cvt_int(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, libc::O_RDONLY) })?;
        Ok(f)
    }

    /// Reads a small regular file; None when it does not exist.
    pub fn read_small(&self, device_path: &[u8], max: u64) -> io::Result<Option<Vec<u8>>> {
        let f = match self.open_regular(device_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        f.take(max + 1).read_to_end(&mut out)?;
        if out.len() as u64 > max {
            return Err(io::Error::other(format!("larger than {max} bytes")));
        }
        Ok(Some(out))
    }

    /// The entries of a directory: (name, lstat) for each, `.` and `..` not included.
    pub fn list(&self, device_path: &[u8]) -> io::Result<Vec<(Vec<u8>, io::Result<Metadata>)>> {
        let dir = self.open_path(device_path, libc::O_RDONLY | libc::O_DIRECTORY)?;
        // Reading through our own /proc/self/fd link lists exactly the directory just opened
        // (no path is resolved again); each entry's metadata is an fstatat relative to it.
        let rd = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            out.push((e.file_name().as_bytes().to_vec(), e.metadata()));
        }
        Ok(out)
    }

    /// Host path of an open file (what `/proc/self/fd` says), for the read-only check.
    fn host_path(f: &File) -> io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
    }

    /// True if `parent`/`name` lies in the sandbox's system layout (see [`SYSTEM_NAMES`]).
    fn is_system(&self, parent: &File, name: &[u8]) -> io::Result<bool> {
        let p = DeviceFs::host_path(parent)?;
        let Ok(rel) = p.strip_prefix(&self.root) else {
            // Cannot happen with RESOLVE_IN_ROOT; refuse rather than write somewhere unknown.
            return Ok(true);
        };
        let mut comps = rel.components().map(|c| c.as_os_str().as_bytes().to_vec());
        let top = comps.next().unwrap_or_else(|| name.to_vec());
        Ok(SYSTEM_NAMES.iter().any(|s| s.as_bytes() == top.as_slice()))
    }

    /// Creates `device_path` for SEND (parent directories as needed), replacing an existing
    /// non-directory entry (a read-only file or a symlink is replaced, never written through).
    /// The file is opened read-write, mode 0600 until the caller sets the final mode.
    pub fn create(&self, device_path: &[u8]) -> io::Result<NewFile> {
        let rel = relative(device_path)?;
        let comps: Vec<&[u8]> = rel.as_bytes().split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
        let Some((&name, dirs)) = comps.split_last() else {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        };
        if name == b".." {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let mut prefix: Vec<u8> = b"/".to_vec();
        let mut parent = self.open_path(&prefix, libc::O_PATH | libc::O_DIRECTORY)?;
        for d in dirs {
            let cname = CString::new(*d).map_err(|_| PathError::Nul)?;
            if self.is_system(&parent, d)? {
                return Err(io::Error::from_raw_os_error(libc::EROFS));
            }
            if *d != b".." {
                // SAFETY: valid dir fd and NUL-terminated single-component name.
                let r = unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o777) };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
            }
            prefix.extend_from_slice(d);
            prefix.push(b'/');
            // Re-resolve from the root: the component may be a symlink or `..`.
            let next = self.open_path(&prefix, libc::O_PATH | libc::O_DIRECTORY)?;
            if self.is_system(&next, b"")? {
                return Err(io::Error::from_raw_os_error(libc::EROFS));
            }
            parent = next;
        }
        if self.is_system(&parent, name)? {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        let cname = CString::new(name).map_err(|_| PathError::Nul)?;
        // SAFETY: plain stat buffer, valid dir fd, NUL-terminated name.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let exists =
            unsafe { libc::fstatat(parent.as_raw_fd(), cname.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0;
        if exists {
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            }
            // SAFETY: valid dir fd and name.
            cvt_int(unsafe { libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), 0) })?;
        }
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid dir fd and name; the fd returned is owned below.
        let fd = unsafe { libc::openat(parent.as_raw_fd(), cname.as_ptr(), flags, 0o600 as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: new fd we own.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(NewFile { file, parent, name: cname })
    }
}

/// `OsStr` of device path bytes, for messages.
pub fn shown(device_path: &[u8]) -> String {
    OsStr::from_bytes(device_path).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fs() -> (tempfile::TempDir, PathBuf, DeviceFs) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().canonicalize().unwrap();
        let root = r.join("root");
        std::fs::create_dir(&root).unwrap();
        let fs = DeviceFs::open(&root).unwrap();
        (d, r, fs)
    }

    #[test]
    fn device_paths_are_paths_under_the_root() {
        let (_d, _outer, fs) = fs();
        let root = fs.root().to_path_buf();
        let mut f = fs.create(b"/data/local/tmp/a/b").unwrap();
        std::io::Write::write_all(&mut f.file, b"x").unwrap();
        assert_eq!(std::fs::read(root.join("data/local/tmp/a/b")).unwrap(), b"x");
        assert_eq!(fs.lstat(b"data/local/tmp/a/b").unwrap().len(), 1, "relative paths are relative to /");
        assert_eq!(fs.lstat(b"//data//local/./tmp/a/../a/b").unwrap().len(), 1);
        assert!(fs.stat(b"/").unwrap().is_dir());
        assert_eq!(relative(b"").unwrap_err(), PathError::Empty);
        assert_eq!(relative(b"/a\0b").unwrap_err(), PathError::Nul);
        let names: Vec<Vec<u8>> = fs.list(b"/data/local/tmp/a").unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec![b"b".to_vec()]);
    }

    #[test]
    fn dotdot_and_symlinks_resolve_as_in_a_chroot() {
        let (_d, outer, fs) = fs();
        let root = fs.root().to_path_buf();
        std::fs::write(outer.join("secret"), b"host secret").unwrap();
        // `..` above the root stays at the root.
        let nf = fs.create(b"/../../x").unwrap();
        drop(nf);
        assert!(root.join("x").exists() && !outer.join("x").exists());
        // A last-component symlink to a host file (absolute, or by ..) is not followed out.
        symlink(outer.join("secret"), root.join("abs")).unwrap();
        symlink("../secret", root.join("rel")).unwrap();
        for p in [&b"/abs"[..], b"/rel"] {
            assert_eq!(fs.open_regular(p).unwrap_err().kind(), io::ErrorKind::NotFound);
            assert!(fs.stat(p).is_err());
            assert!(fs.lstat(p).unwrap().file_type().is_symlink());
        }
        // Inside the root the same link resolves to DIR/<target>.
        std::fs::create_dir_all(root.join(outer.strip_prefix("/").unwrap())).unwrap();
        std::fs::write(root.join(outer.strip_prefix("/").unwrap()).join("secret"), b"device file").unwrap();
        let mut s = String::new();
        fs.open_regular(b"/abs").unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "device file");
        // A symlinked directory leading out: writes land inside the root.
        symlink(&outer, root.join("out")).unwrap();
        drop(fs.create(b"/out/new/f").unwrap());
        assert!(!outer.join("new").exists());
        assert!(root.join(outer.strip_prefix("/").unwrap()).join("new/f").exists());
        // Pushing over a symlink replaces the link, never writes through it.
        drop(fs.create(b"/abs").unwrap());
        assert!(root.join("abs").symlink_metadata().unwrap().is_file());
        assert_eq!(std::fs::read(outer.join("secret")).unwrap(), b"host secret");
    }

    #[test]
    fn system_layout_is_read_only_and_fifos_are_not_read() {
        let (_d, _outer, fs) = fs();
        let root = fs.root().to_path_buf();
        std::fs::create_dir(root.join("usr")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        for p in [&b"/usr/x"[..], b"/usr", b"/bin/sh", b"/bin", b"/proc/1/x", b"/data/../usr/y"] {
            let e = fs.create(p).err().unwrap_or_else(|| panic!("{} must be refused", shown(p)));
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{}: {e}", shown(p));
        }
        assert_eq!(fs.create(b"/").err().unwrap().raw_os_error(), Some(libc::EISDIR));
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(fs.open_regular(b"/fifo").is_err(), "a fifo is refused, not blocked on");
    }
}
