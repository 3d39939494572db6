//! Mapping device paths (as the host names them in sync requests) to host paths under the
//! device root, and refusing anything that would leave the root.
//!
//! Rules, applied to the path's components after dropping empty ones and `.`:
//! 1. an absolute path that already lies under the root's host path is used as is (for the
//!    loopback device, device paths == host paths under DIR, which is what the quadbench
//!    loopback profile uses as its device root);
//! 2. `/data/local/tmp/...` maps to `<root>/...` (DIR plays /data/local/tmp);
//! 3. any other absolute path maps under the root: `/sdcard/x` -> `<root>/sdcard/x`;
//! 4. a relative path is relative to the root.
//!
//! `..` is then resolved lexically; popping above the root is an escape. As defence in depth the
//! deepest existing ancestor of the result is canonicalised and must still lie under the
//! canonical root, so a symlink inside the root cannot lead outside it either.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A device path that cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path contains a nul byte")]
    Nul,
    #[error("path {0:?} escapes the device root")]
    Escape(String),
}

const DATA_LOCAL_TMP: [&[u8]; 3] = [b"data", b"local", b"tmp"];

fn host_components(p: &Path) -> Vec<&[u8]> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.as_bytes()),
            _ => None,
        })
        .collect()
}

/// Maps `device_path` to a host path under `root`, which must be absolute and canonical.
pub fn resolve(root: &Path, device_path: &[u8]) -> Result<PathBuf, PathError> {
    resolve_with_alias(root, None, device_path)
}

/// Like [`resolve`]; `alias` is another absolute spelling of the root (the configured path when
/// it differs from the canonical one, e.g. through a symlinked /tmp) that rule 1 also accepts.
pub fn resolve_with_alias(root: &Path, alias: Option<&Path>, device_path: &[u8]) -> Result<PathBuf, PathError> {
    if device_path.is_empty() {
        return Err(PathError::Empty);
    }
    if device_path.contains(&0) {
        return Err(PathError::Nul);
    }
    let shown = || String::from_utf8_lossy(device_path).into_owned();
    let comps: Vec<&[u8]> = device_path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
    let absolute = device_path[0] == b'/';
    let root_comps = host_components(root);
    let alias_comps = alias.map(host_components).unwrap_or_default();
    let rest: &[&[u8]] = if absolute && comps.starts_with(&root_comps) {
        &comps[root_comps.len()..]
    } else if absolute && !alias_comps.is_empty() && comps.starts_with(&alias_comps) {
        &comps[alias_comps.len()..]
    } else if absolute && comps.starts_with(&DATA_LOCAL_TMP) {
        &comps[DATA_LOCAL_TMP.len()..]
    } else {
        &comps[..]
    };
    let mut stack: Vec<&[u8]> = Vec::with_capacity(rest.len());
    for c in rest {
        if *c == b".." {
            if stack.pop().is_none() {
                return Err(PathError::Escape(shown()));
            }
        } else {
            stack.push(c);
        }
    }
    let mut out = root.to_path_buf();
    for c in &stack {
        out.push(OsStr::from_bytes(c));
    }
    // Symlink check: the entry itself may be a symlink (lstat-style requests look at it, SEND
    // replaces it), but every directory on the way must stay inside the root.
    let mut probe = out.parent().filter(|_| !stack.is_empty()).unwrap_or(root).to_path_buf();
    loop {
        match probe.canonicalize() {
            Ok(real) => {
                if !real.starts_with(root) {
                    return Err(PathError::Escape(shown()));
                }
                break;
            }
            Err(_) => {
                if !probe.pop() || !probe.starts_with(root) {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().canonicalize().unwrap();
        (d, r)
    }

    #[test]
    fn maps_the_three_kinds_of_paths() {
        let (_d, r) = root();
        assert_eq!(resolve(&r, b"/data/local/tmp/a/b").unwrap(), r.join("a/b"));
        assert_eq!(resolve(&r, b"/data/local/tmp").unwrap(), r);
        assert_eq!(resolve(&r, b"/sdcard/x").unwrap(), r.join("sdcard/x"));
        let host = format!("{}/run/1/plan.json", r.display());
        assert_eq!(resolve(&r, host.as_bytes()).unwrap(), r.join("run/1/plan.json"));
        assert_eq!(resolve(&r, b"rel/./f").unwrap(), r.join("rel/f"));
        assert_eq!(resolve(&r, b"//data//local/tmp/./x/").unwrap(), r.join("x"));
    }

    #[test]
    fn rejects_dotdot_escapes_but_allows_inner_dotdot() {
        let (_d, r) = root();
        assert!(matches!(resolve(&r, b"/data/local/tmp/../x"), Err(PathError::Escape(_))));
        assert!(matches!(resolve(&r, b"/.."), Err(PathError::Escape(_))));
        assert!(matches!(resolve(&r, b"a/../../etc/passwd"), Err(PathError::Escape(_))));
        let host = format!("{}/../etc", r.display());
        assert!(matches!(resolve(&r, host.as_bytes()), Err(PathError::Escape(_))));
        assert_eq!(resolve(&r, b"/data/local/tmp/a/../b").unwrap(), r.join("b"));
        assert_eq!(resolve(&r, b""), Err(PathError::Empty));
        assert_eq!(resolve(&r, b"/a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn alias_spelling_of_the_root_maps_like_the_root() {
        let (_d, r) = root();
        let (_o, other) = root();
        let alias = other.join("alias");
        std::os::unix::fs::symlink(&r, &alias).unwrap();
        let p = format!("{}/x/y", alias.display());
        assert_eq!(resolve_with_alias(&r, Some(&alias), p.as_bytes()).unwrap(), r.join("x/y"));
        // Without the alias the same path is just "some other absolute path".
        assert_eq!(resolve(&r, p.as_bytes()).unwrap(), r.join(p.trim_start_matches('/')));
    }

    #[test]
    fn rejects_symlinked_directories_leading_outside() {
        let (_d, r) = root();
        let (_o, outside) = root();
        std::os::unix::fs::symlink(&outside, r.join("link")).unwrap();
        assert!(matches!(resolve(&r, b"/data/local/tmp/link/f"), Err(PathError::Escape(_))));
        assert!(matches!(resolve(&r, b"/link/new/deeper/f"), Err(PathError::Escape(_))));
        // The link itself (lstat, replace) is inside the root.
        assert_eq!(resolve(&r, b"/link").unwrap(), r.join("link"));
    }
}
