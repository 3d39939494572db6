//! Opening a file only when it is a regular file (after following symlinks).
//!
//! A symlink to `/dev/zero` never ends and a FIFO blocks `open(2)` until a writer appears, so a
//! path that is not a regular file makes a reader hash or decode forever. [`open_regular`] opens
//! with `O_NONBLOCK` (opening a FIFO returns at once instead of waiting for a writer) and checks
//! the type of what it opened with `fstat`, so there is no window between the check and the use.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// What a path turned out to be, when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Other,
}

impl FileKind {
    fn of(ft: std::fs::FileType) -> Option<FileKind> {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_file() {
            None
        } else if ft.is_dir() {
            Some(FileKind::Directory)
        } else if ft.is_fifo() {
            Some(FileKind::Fifo)
        } else if ft.is_char_device() {
            Some(FileKind::CharDevice)
        } else if ft.is_block_device() {
            Some(FileKind::BlockDevice)
        } else if ft.is_socket() {
            Some(FileKind::Socket)
        } else {
            Some(FileKind::Other)
        }
    }

    /// Lowercase words for messages: "a fifo (named pipe)", "a character device", ...
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a fifo (named pipe)",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
            FileKind::Other => "not a file",
        }
    }
}

/// Why [`open_regular`] refused a path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "{} is {}{}, not a regular file: only regular files are read, point at the real file",
        path.display(),
        kind.describe(),
        link.as_ref().map(|l| format!(" (a symlink to {})", l.display())).unwrap_or_default()
    )]
    NotRegular { path: PathBuf, kind: FileKind, link: Option<PathBuf> },
}

impl FileError {
    /// The refused file's kind, when the refusal is about the kind of file.
    pub fn kind(&self) -> Option<FileKind> {
        match self {
            FileError::NotRegular { kind, .. } => Some(*kind),
            FileError::Open { .. } => None,
        }
    }
}

impl From<FileError> for io::Error {
    fn from(e: FileError) -> io::Error {
        match e {
            // Keep the original error kind (NotFound, PermissionDenied) for callers that match on it.
            FileError::Open { ref source, .. } => io::Error::new(source.kind(), e),
            FileError::NotRegular { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
        }
    }
}

/// The kind of `path` (following symlinks) when it exists and is not a regular file; `None` for
/// a regular file or a path that cannot be examined (opening it will report why).
pub fn non_regular_kind(path: &Path) -> Option<FileKind> {
    std::fs::metadata(path).ok().and_then(|m| FileKind::of(m.file_type()))
}

/// Opens `path` for reading if it is a regular file (symlinks followed); never blocks on a FIFO.
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| FileError::Open { path: path.to_path_buf(), source })?;
    let meta = file.metadata().map_err(|source| FileError::Open { path: path.to_path_buf(), source })?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        let link = std::fs::read_link(path).ok();
        return Err(FileError::NotRegular { path: path.to_path_buf(), kind, link });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
    }

    #[test]
    fn regular_files_open_and_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        std::fs::write(&p, b"hello").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        for path in [&p, &link] {
            let mut s = String::new();
            open_regular(path).unwrap().read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello");
            assert_eq!(non_regular_kind(path), None);
        }
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        mkfifo(&fifo);
        let zero = d.path().join("zero.bin");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let cases = [
            (fifo.clone(), FileKind::Fifo, "a fifo (named pipe), not a regular file"),
            (zero.clone(), FileKind::CharDevice, "a character device (a symlink to /dev/zero), not a regular file"),
            (d.path().to_path_buf(), FileKind::Directory, "a directory, not a regular file"),
        ];
        for (path, kind, words) in cases {
            let e = open_regular(&path).unwrap_err();
            assert_eq!(e.kind(), Some(kind));
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()) && text.contains(words), "{text}");
            assert_eq!(non_regular_kind(&path), Some(kind));
        }
        let missing = open_regular(&d.path().join("nope")).unwrap_err();
        assert!(matches!(missing, FileError::Open { .. }));
        assert_eq!(io::Error::from(missing).kind(), io::ErrorKind::NotFound);
    }
}
