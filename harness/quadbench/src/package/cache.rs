//! The package cache: generated and derived packages (the reference package, quantized
//! variants, later imports) live under one directory, one entry per key. An entry is made once:
//! a per-key file lock serialises makers (others wait and reuse the result), the maker writes
//! into a temporary directory and renames it into place, so a crash or a kill never leaves a
//! half-written entry under the final name.

use super::{MANIFEST_FILE, PackageError};
use std::path::{Path, PathBuf};

/// The entry `key` of `cache`, made by `make(tmp_dir)` when absent. `on_make` is called before
/// making (for progress messages).
pub fn entry(
    cache: &Path,
    key: &str,
    on_make: impl FnOnce(&Path),
    make: impl FnOnce(&Path) -> Result<(), PackageError>,
) -> Result<PathBuf, PackageError> {
    let dir = cache.join(key);
    std::fs::create_dir_all(cache).map_err(|e| PackageError::io(cache, e))?;
    // One maker at a time per entry; the lock is released when the file is dropped.
    let lock = std::fs::File::create(cache.join(format!(".{key}.lock"))).map_err(|e| PackageError::io(cache, e))?;
    lock.lock().map_err(|e| PackageError::io(cache, e))?;
    if !dir.join(MANIFEST_FILE).exists() {
        on_make(&dir);
        let tmp = cache.join(format!(".{key}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        if let Err(e) = make(&tmp) {
            // Nothing half-made stays behind.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &dir).map_err(|e| PackageError::io(&dir, e))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_make_leaves_no_temporary_directory_and_a_later_make_succeeds() {
        let d = tempfile::tempdir().unwrap();
        let e = entry(
            d.path(),
            "k",
            |_| {},
            |tmp| {
                std::fs::create_dir_all(tmp).unwrap();
                Err(PackageError::Params("boom".into()))
            },
        );
        assert!(e.is_err());
        assert!(!d.path().join(".k.tmp").exists() && !d.path().join("k").exists());
        let dir = entry(
            d.path(),
            "k",
            |_| {},
            |tmp| {
                std::fs::create_dir_all(tmp).unwrap();
                std::fs::write(tmp.join(MANIFEST_FILE), "x").map_err(|e| PackageError::io(tmp, e))
            },
        )
        .unwrap();
        assert!(dir.join(MANIFEST_FILE).is_file());
        // Present: not made again.
        entry(d.path(), "k", |_| panic!("made twice"), |_| panic!("made twice")).unwrap();
    }
}
