//! Command-line interface. Exit codes (documented in README.md):
//! 0 success; 1 claims or quality thresholds failed; 2 bad input (scenario, package, arguments);
//! 3 runtime or device infrastructure error; 4 some runs failed.

use clap::{Args, Parser, Subcommand};
use quadbench::package::{self, reference::ReferenceParams};
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_CLAIMS_FAILED: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_INFRA: i32 = 3;
pub const EXIT_RUNS_FAILED: i32 = 4;

#[derive(Parser)]
#[command(name = "quadbench", version, about = "Benchmark and validate on-device generative vision models: unified multi-LoRA vs per-task binaries", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Model packages: generate the reference package, check a package.
    #[command(subcommand)]
    Package(PackageCmd),
}

#[derive(Subcommand)]
enum PackageCmd {
    /// Generate the deterministic reference package (encoder -> denoiser x steps -> decoder).
    Reference(ReferenceArgs),
    /// Validate a package against its manifest and its ONNX graphs.
    Check {
        /// Package directory (holding package.yaml).
        dir: PathBuf,
    },
}

#[derive(Args)]
struct ReferenceArgs {
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
}

fn report(e: &dyn std::fmt::Display) {
    eprintln!("error: {e}");
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Package(PackageCmd::Reference(a)) => {
            let p = ReferenceParams { tasks: a.tasks, width: a.width, resolution: a.resolution, steps: a.steps, seed: a.seed };
            match package::reference::generate(&a.out, &p) {
                Ok(m) => {
                    println!("{}", a.out.join(package::MANIFEST_FILE).display());
                    eprintln!("wrote package `{}` ({} tasks, {} files) to {}", m.raw.name, m.pipeline.tasks.len(), m.raw.files.len(), a.out.display());
                    EXIT_OK
                }
                Err(e) => {
                    report(&e);
                    EXIT_BAD_INPUT
                }
            }
        }
        Command::Package(PackageCmd::Check { dir }) => match package::check(&dir) {
            Ok(m) => {
                println!("ok: {} ({} stages, {} lora slots, {} tasks, {} files verified)", m.raw.name, m.pipeline.stages.len(), m.pipeline.lora_slots.len(), m.pipeline.tasks.len(), m.raw.files.len());
                EXIT_OK
            }
            Err(e) => {
                report(&e);
                EXIT_BAD_INPUT
            }
        },
    }
}
