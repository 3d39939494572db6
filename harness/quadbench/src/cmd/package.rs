//! `quadbench package reference|quantize|check` (and `import`, in `cmd/import.rs`).

use super::exit::{self, Classify};
use crate::package::qprofile::{self, Quantize};
use crate::package::reference::ReferenceParams;
use crate::package::{self, MANIFEST_FILE};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PackageCmd {
    /// Generate the deterministic reference package (encoder -> denoiser x steps -> decoder).
    Reference(ReferenceArgs),
    /// Quantize a package to QDQ (W8A16 or W8A8) calibrated on images: per-task profiles for the
    /// merged baselines, one shared profile (QUAD anchor rule, or merged ranges) for the unified graph.
    Quantize(QuantizeArgs),
    /// Import an exported ONNX model and LoRA adapters (PEFT directories, PEFT or kohya
    /// .safetensors): unified graph with LoRA inputs, padded adapters, merged baselines.
    Import(super::import::ImportArgs),
    /// Validate a package against its manifest and its ONNX graphs.
    Check {
        /// Package directory (holding package.yaml).
        dir: PathBuf,
    },
}

#[derive(Args)]
pub struct ReferenceArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Number of tasks (LoRA adapters), each a different image edit.
    #[arg(long, default_value_t = ReferenceParams::default().tasks)]
    tasks: usize,
    /// Width of the denoiser's deep branch (sets the foundation's size).
    #[arg(long, default_value_t = ReferenceParams::default().width)]
    width: usize,
    /// Square image resolution in pixels (multiple of 32).
    #[arg(long, default_value_t = ReferenceParams::default().resolution)]
    resolution: usize,
    /// Denoiser steps.
    #[arg(long, default_value_t = ReferenceParams::default().steps)]
    steps: usize,
    /// Seed of all generated weights.
    #[arg(long, default_value_t = ReferenceParams::default().seed)]
    seed: u64,
    /// Rank of the deep-branch LoRA slots.
    #[arg(long, default_value_t = ReferenceParams::default().rank)]
    rank: usize,
}

#[derive(Args)]
pub struct QuantizeArgs {
    /// Source FP32 package directory.
    src: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// w8a16 or w8a8.
    #[arg(long, default_value = "w8a16")]
    precision: String,
    /// Shared profile: anchor (most sensitive adapter's encodings) or merge (all ranges).
    #[arg(long, default_value = "anchor")]
    profile: String,
    /// Fraction of MatMul layers with 8-bit activations (default: 0 for w8a16, 1 for w8a8).
    #[arg(long)]
    a8_ratio: Option<f64>,
    /// Per-channel weight scales.
    #[arg(long)]
    per_channel: bool,
    /// Calibration images (default: the bundled astronaut and coffee photographs).
    #[arg(long = "input")]
    inputs: Vec<PathBuf>,
}

pub fn package(c: PackageCmd) -> i32 {
    match c {
        PackageCmd::Reference(a) => reference(a),
        PackageCmd::Quantize(a) => quantize(a),
        PackageCmd::Import(a) => super::import::import(a),
        PackageCmd::Check { dir } => match package::check(&dir) {
            Ok(m) => {
                println!(
                    "ok: {} ({} stages, {} lora slots, {} tasks, {} files verified)",
                    m.raw.name,
                    m.pipeline.stages.len(),
                    m.pipeline.lora_slots.len(),
                    m.pipeline.tasks.len(),
                    m.raw.files.len()
                );
                exit::OK
            }
            Err(e) => exit::fail(&e),
        },
    }
}

fn reference(a: ReferenceArgs) -> i32 {
    let p = ReferenceParams {
        tasks: a.tasks,
        width: a.width,
        resolution: a.resolution,
        steps: a.steps,
        seed: a.seed,
        rank: a.rank,
    };
    match package::reference::generate(&a.out, &p) {
        Ok(m) => {
            println!("{}", a.out.join(MANIFEST_FILE).display());
            eprintln!(
                "wrote package `{}` ({} tasks, {} files) to {}",
                m.raw.name,
                m.pipeline.tasks.len(),
                m.raw.files.len(),
                a.out.display()
            );
            exit::OK
        }
        Err(e) => exit::fail(&e),
    }
}

fn quantize(a: QuantizeArgs) -> i32 {
    let q = match Quantize::parse(Some(&a.precision), Some(&a.profile), a.a8_ratio, a.per_channel) {
        Ok(q) => q,
        Err(e) => {
            exit::report(&format!("--{}: {}; {}", e.key.replace('_', "-"), e.message, e.fix));
            return exit::BAD_INPUT;
        }
    };
    let inputs = if a.inputs.is_empty() {
        let dir = quadbench_runtime::cache_dir().join("inputs");
        let bundled: Result<Vec<PathBuf>, _> = ["astronaut", "coffee"]
            .into_iter()
            .map(|n| crate::bundled::input(n, &dir).map(|p| p.expect("bundled input")))
            .collect();
        match bundled {
            Ok(v) => v,
            Err(e) => {
                exit::report(&format!("cannot write the bundled calibration images under {}: {e}", dir.display()));
                return exit::INFRA;
            }
        }
    } else {
        a.inputs
    };
    let env = match package::source::quantized::host_env() {
        Ok(e) => e,
        Err(e) => return exit::fail(&e),
    };
    match qprofile::quantize_package(env, &a.src, &a.out, &q.options(inputs)) {
        Ok((m, rep)) => {
            println!("{}", a.out.join(MANIFEST_FILE).display());
            eprintln!(
                "wrote {} ({}, {:?} profile, anchor {}): sensitivity scores {:?}",
                m.raw.name,
                rep.precision,
                rep.method,
                rep.anchor.as_deref().unwrap_or("-"),
                rep.scores
            );
            exit::OK
        }
        Err(e) => {
            exit::report(&e);
            e.exit_code()
        }
    }
}
