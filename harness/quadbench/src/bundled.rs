//! The example input photographs (`golden/inputs/`, public domain; see its SOURCES.md) built into
//! the binary, so that a scenario naming `astronaut` runs from any directory with an installed
//! quadbench, without a checkout. They are written once into the cache when first needed.

use std::path::{Path, PathBuf};

/// Name and PNG bytes of every bundled input.
pub const INPUTS: &[(&str, &[u8])] = &[
    ("astronaut", include_bytes!("../../../golden/inputs/astronaut.png")),
    ("camera", include_bytes!("../../../golden/inputs/camera.png")),
    ("chelsea", include_bytes!("../../../golden/inputs/chelsea.png")),
    ("coffee", include_bytes!("../../../golden/inputs/coffee.png")),
    ("rocket", include_bytes!("../../../golden/inputs/rocket.png")),
];

/// Names of the bundled inputs.
pub fn names() -> Vec<&'static str> {
    INPUTS.iter().map(|(n, _)| *n).collect()
}

/// The bundled input `name` as a file under `dir` (written atomically when missing or
/// different); `None` when no input has that name.
pub fn input(name: &str, dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let Some((_, bytes)) = INPUTS.iter().find(|(n, _)| *n == name) else { return Ok(None) };
    let path = dir.join(format!("{name}.png"));
    if std::fs::read(&path).is_ok_and(|b| b == *bytes) {
        return Ok(Some(path));
    }
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_inputs_are_the_checkouts_photographs() {
        let d = tempfile::tempdir().unwrap();
        let p = super::input("coffee", d.path()).unwrap().unwrap();
        let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden/inputs/coffee.png");
        assert_eq!(std::fs::read(p).unwrap(), std::fs::read(checkout).unwrap());
        assert!(super::input("nope", d.path()).unwrap().is_none());
    }
}
