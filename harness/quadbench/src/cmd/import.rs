//! `quadbench package import --model M.onnx --adapter NAME=PATH ... --out DIR`: a user's model
//! and adapters become a package (`package::import`); the import report goes to stderr, the
//! manifest's path to stdout.

use super::exit::{self, Classify};
use crate::package::MANIFEST_FILE;
use crate::package::import::{self, ImportOptions};
use crate::package::storage::strategy_files;
use clap::Args;
use quadbench_protocol::Strategy;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// The exported ONNX model (static shapes, one [1, 3, H, H] image input).
    #[arg(long)]
    model: PathBuf,
    /// A task: NAME=PATH, PATH a PEFT adapter directory or a PEFT/kohya .safetensors file.
    #[arg(long = "adapter", value_name = "NAME=PATH", required = true)]
    adapters: Vec<String>,
    /// Output package directory (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Package name (default: the model file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Refuse when a layer would need a rank above this.
    #[arg(long)]
    max_rank: Option<usize>,
    /// Wrapper prefix removed from the graph's module paths and the adapters' keys (e.g. `model.`).
    #[arg(long)]
    prefix: Option<String>,
    /// Lowest ai.onnx opset to accept (the import's own minimum, 13, holds anyway).
    #[arg(long)]
    opset: Option<i64>,
    /// Regular expression over module paths: only matching layers get LoRA slots (e.g. `attentions`).
    #[arg(long)]
    target: Option<String>,
    /// Where a model input other than the image gets its value: NAME=SOURCE, SOURCE one of
    /// `tensor` (given with each request; the default), `mask` (a mask image with each request),
    /// `task` (a per-task constant, see --task-input) or `noise:<seed>[:<std>]`.
    #[arg(long = "input", value_name = "NAME=SOURCE")]
    inputs: Vec<String>,
    /// A task's value of a `task` input: TASK:NAME=FILE, one array in a .npy, .npz or
    /// .safetensors (e.g. the task's prompt embedding).
    #[arg(long = "task-input", value_name = "TASK:NAME=FILE")]
    task_inputs: Vec<String>,
}

pub fn import(a: ImportArgs) -> i32 {
    let mut adapters = Vec::new();
    for spec in &a.adapters {
        let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            exit::report(&format!("--adapter `{spec}`: expected NAME=PATH, e.g. --adapter sharpen=adapters/sharpen"));
            return exit::BAD_INPUT;
        };
        if adapters.iter().any(|(n, _): &(String, PathBuf)| n == name) {
            exit::report(&format!("--adapter: task `{name}` is given twice; give every adapter its own name"));
            return exit::BAD_INPUT;
        }
        adapters.push((name.to_string(), PathBuf::from(path)));
    }
    let mut input_sources = Vec::new();
    for spec in &a.inputs {
        let Some((name, source)) = spec.split_once('=').filter(|(n, s)| !n.is_empty() && !s.is_empty()) else {
            exit::report(&format!("--input `{spec}`: expected NAME=SOURCE, e.g. --input mask=mask"));
            return exit::BAD_INPUT;
        };
        input_sources.push((name.to_string(), source.to_string()));
    }
    let mut task_inputs = Vec::new();
    for spec in &a.task_inputs {
        let parsed = spec.split_once('=').and_then(|(k, f)| k.split_once(':').map(|(t, n)| (t, n, f)));
        let Some((task, name, file)) = parsed.filter(|(t, n, f)| !t.is_empty() && !n.is_empty() && !f.is_empty())
        else {
            exit::report(&format!(
                "--task-input `{spec}`: expected TASK:NAME=FILE, e.g. --task-input remove:prompt=prompts/remove.npy"
            ));
            return exit::BAD_INPUT;
        };
        task_inputs.push((task.to_string(), name.to_string(), PathBuf::from(file)));
    }
    if a.out.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        exit::report(&format!(
            "--out {}: the directory exists and is not empty; choose a new directory",
            a.out.display()
        ));
        return exit::BAD_INPUT;
    }
    let o = ImportOptions {
        model: a.model,
        adapters,
        name: a.name,
        max_rank: a.max_rank,
        prefix: a.prefix,
        opset: a.opset,
        target: a.target,
        input_sources,
        task_inputs,
    };
    match import::import(&o, &a.out) {
        Ok((m, rep)) => {
            eprint!("{rep}");
            for s in [Strategy::Unified, Strategy::SeparateReload] {
                let (_, st) = strategy_files(&m, s, &[]);
                eprintln!(
                    "storage {}: {} bytes (foundation {}, adapters {}, baselines {})",
                    s.as_str(),
                    st.total_bytes,
                    st.foundation_bytes,
                    st.adapter_bytes,
                    st.baseline_bytes
                );
            }
            eprintln!("wrote package `{}` ({} tasks) to {}", m.raw.name, m.pipeline.tasks.len(), a.out.display());
            println!("{}", a.out.join(MANIFEST_FILE).display());
            exit::OK
        }
        Err(e) => {
            // A half-written package must not look usable.
            let _ = std::fs::remove_file(a.out.join(MANIFEST_FILE));
            exit::report(&e);
            e.exit_code()
        }
    }
}
