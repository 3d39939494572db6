//! The command line: one file per subcommand, dispatched from [`main`]; every error maps to an
//! exit code in one place ([`exit`]). People's output goes to stderr (progress via
//! [`progress::StderrReporter`]); machine output to stdout or files.

pub mod ablation;
pub mod agent;
pub mod compare;
pub mod dashboard;
pub mod demo;
pub mod devices;
pub mod exit;
pub mod farm;
pub mod farm_status;
pub mod golden;
pub mod history;
pub mod import;
pub mod infer;
pub mod keygen;
pub mod package;
pub mod progress;
pub mod qualify;
pub mod regressions;
pub mod report;
pub mod run;
pub mod runtime;
pub mod sweep;
pub mod verify;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "quadbench", version, about = "Benchmark and validate on-device generative vision models: unified multi-LoRA vs per-task binaries", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch the runtime, build the reference package, run scenarios/demo.yaml on this host and print unified-vs-separate ratios.
    Demo {
        /// Results directory (default: reports/demo-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a scenario.
    Run(run::RunArgs),
    /// Devices: those an adb server sees, or the ones device profiles name (`--device`).
    #[command(subcommand)]
    Devices(devices::DevicesCmd),
    /// Serve a loopback Android device (ADB over TCP on 127.0.0.1) whose file system is DIR (the
    /// device's `/`) and whose shell runs confined to it with bubblewrap; attach it with `adb
    /// connect 127.0.0.1:PORT`.
    LoopbackDevice(devices::LoopbackArgs),
    /// Regenerate tables, plots, JUnit XML and report.html from a results directory (results.json
    /// and samples/ alone); byte-identical for the same inputs.
    Report(report::ReportArgs),
    /// Run a base scenario once per point of a sweep (package parameters, backend, precision,
    /// strategies) and draw each claim against each axis, its crossover point and cost models.
    Sweep(sweep::SweepArgs),
    /// Mixed-precision ablation: run a quantized scenario once per W8A8:W8A16 layer ratio and
    /// tabulate quality (vs FP32 goldens) and latency per ratio.
    Ablation(ablation::AblationArgs),
    /// One request of a package's task through the runner on this host: inputs from a .npz,
    /// every output written by name to a .npz.
    Infer(infer::InferArgs),
    /// Model packages: generate the reference package, import a model, quantize, check a package.
    #[command(subcommand)]
    Package(package::PackageCmd),
    /// ONNX Runtime artefacts pinned in runtime.lock.toml.
    #[command(subcommand)]
    Runtime(runtime::RuntimeCmd),
    /// Image-quality metrics between a reference (golden) image and a test image.
    Compare(compare::CompareArgs),
    /// Golden images: make them from the reference configuration, or verify them.
    #[command(subcommand)]
    Golden(golden::GoldenCmd),
    /// The device farm's database: init, submit, status, results, devices.
    #[command(subcommand)]
    Farm(farm::FarmCmd),
    /// Drain the farm's queue with this host's devices (one agent per host).
    Agent(agent::AgentArgs),
    /// The run history: record a results directory as a night, list series and nights.
    #[command(subcommand)]
    History(history::HistoryCmd),
    /// The latest night of each series against its history: regressions, improvements, verdicts.
    Regressions(regressions::RegressionsArgs),
    /// The history's trend dashboard: a self-contained index.html.
    Dashboard(dashboard::DashboardArgs),
    /// Run a qualification profile and write a signed evidence bundle.
    Qualify(qualify::QualifyArgs),
    /// Check a qualification bundle offline: signature, file hashes, run rules, verdicts.
    Verify(verify::VerifyArgs),
    /// Make an Ed25519 key pair for signing bundles (KEY and KEY.pub).
    Keygen(keygen::KeygenArgs),
}

/// Parse the command line, run the command, return the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { out } => demo::demo(out),
        Command::Run(a) => run::run(a),
        Command::Devices(c) => devices::devices(c),
        Command::LoopbackDevice(a) => devices::loopback(a),
        Command::Report(a) => report::report(a),
        Command::Ablation(a) => ablation::ablation(a),
        Command::Infer(a) => infer::infer(a),
        Command::Sweep(a) => sweep::sweep(a),
        Command::Package(c) => package::package(c),
        Command::Runtime(c) => runtime::runtime(c),
        Command::Compare(a) => compare::compare(a),
        Command::Golden(c) => golden::golden(c),
        Command::Farm(c) => farm::farm(c),
        Command::Agent(a) => agent::agent(a),
        Command::History(c) => history::history(c),
        Command::Regressions(a) => regressions::regressions(a),
        Command::Dashboard(a) => dashboard::dashboard(a),
        Command::Qualify(a) => qualify::qualify(a),
        Command::Verify(a) => verify::verify(a),
        Command::Keygen(a) => keygen::keygen(a),
    }
}
