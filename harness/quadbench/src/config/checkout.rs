//! Where things come from when a scenario names them by name: the quadbench checkout the
//! scenario lies in (a directory holding `golden/inputs`), if any, and otherwise the bundled
//! example inputs, so that an installed quadbench runs a user's scenario from any directory.

use std::path::{Path, PathBuf};

/// The nearest ancestor of `start` holding `golden/inputs` (a quadbench checkout).
pub fn root_above(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start.ancestors().find(|d| d.join("golden/inputs").is_dir()).map(Path::to_path_buf)
}

/// The checkout of the current directory or of the running executable (demo, bless).
pub fn current() -> Option<PathBuf> {
    let from_cwd = std::env::current_dir().ok().and_then(|d| root_above(&d));
    let from_exe = std::env::current_exe().ok().and_then(|e| e.parent().and_then(root_above));
    from_cwd.or(from_exe)
}

/// Input `name`: the checkout's `golden/inputs/<name>.png` when `scenario_dir` lies in a
/// checkout that has it, else the bundled example of that name (written into the cache).
pub fn input(scenario_dir: &Path, name: &str) -> std::io::Result<Option<PathBuf>> {
    if let Some(p) = root_above(scenario_dir).map(|r| r.join("golden/inputs").join(format!("{name}.png")))
        && p.is_file()
    {
        return Ok(Some(p));
    }
    crate::bundled::input(name, &quadbench_runtime::cache_dir().join("inputs"))
}

/// Every input name [`input`] knows for `scenario_dir`.
pub fn input_names(scenario_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = crate::bundled::names().into_iter().map(String::from).collect();
    if let Some(dir) = root_above(scenario_dir).map(|r| r.join("golden/inputs")) {
        names.extend(
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned())),
        );
    }
    names.sort();
    names.dedup();
    names
}
