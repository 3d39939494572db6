//! `quadbench runtime fetch|info`: the ONNX Runtime artefacts pinned in runtime.lock.toml.

use super::exit;

#[derive(clap::Subcommand)]
pub enum RuntimeCmd {
    /// Download (with pip), verify and install runtime artefacts into the cache (idempotent).
    Fetch {
        /// Artefact names (default: every default artefact of the target).
        names: Vec<String>,
        /// Rust target triple of the device the artefact is for (default: this host's), e.g.
        /// `aarch64-unknown-linux-gnu` for an arm64 Linux board (docs/ssh.md).
        #[arg(long)]
        target: Option<String>,
    },
    /// Show which artefacts are installed, where, and whether they verify.
    Info,
}

pub fn runtime(c: RuntimeCmd) -> i32 {
    match c {
        RuntimeCmd::Fetch { names, target } => fetch(names, target.as_deref()),
        RuntimeCmd::Info => {
            print!("{}", quadbench_runtime::info_text(&quadbench_runtime::Lock::embedded()));
            exit::OK
        }
    }
}

fn fetch(names: Vec<String>, target: Option<&str>) -> i32 {
    let lock = quadbench_runtime::Lock::embedded();
    let target = target.unwrap_or(quadbench_runtime::host_target());
    let names: Vec<String> =
        if names.is_empty() { lock.defaults_for(target).iter().map(|a| a.name.clone()).collect() } else { names };
    let opts = quadbench_runtime::FetchOptions::from_env().with_progress(|m| eprintln!("{m}"));
    let mut code = exit::OK;
    for n in names {
        match quadbench_runtime::fetch(&lock, &n, target, &opts) {
            Ok(i) => println!("{} {} {}: {}", i.name, i.version, i.target, i.library.display()),
            Err(e) => code = exit::fail(&e),
        }
    }
    code
}
