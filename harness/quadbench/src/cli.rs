//! Command-line interface. Exit codes (documented in README.md):
//! 0 success; 1 a claim failed (did not reproduce); 2 bad input (scenario, package, profile,
//! arguments); 3 runtime or device infrastructure error; 4 some runs failed.

use crate::progress::StderrReporter;
use clap::{Args, Parser, Subcommand};
use quadbench::package::{self, reference::ReferenceParams};
use quadbench::results::{Results, RunState, Verdict};
use quadbench::run::{self, RunError, RunOptions};
use quadbench::scenario::Scenario;
use quadbench_protocol::Strategy;
use std::path::{Path, PathBuf};

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
    /// Fetch the runtime, build the reference package, run scenarios/demo.yaml on this host and print unified-vs-separate ratios.
    Demo {
        /// Results directory (default: reports/demo-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a scenario.
    Run {
        /// Scenario YAML.
        scenario: PathBuf,
        /// Device profile replacing the scenario's devices.
        #[arg(long)]
        device: Option<PathBuf>,
        /// Results directory (default: reports/<scenario name>-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted run in --out: keep its finished runs, run the rest.
        #[arg(long, requires = "out")]
        resume: bool,
    },
    /// Android devices seen by an adb server.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// Serve a loopback Android device (ADB over TCP on 127.0.0.1) whose storage is DIR and whose
    /// shell runs on this host; attach it with `adb connect 127.0.0.1:PORT`.
    LoopbackDevice {
        /// TCP port on 127.0.0.1 (not 5555-5585, which adb probes for emulators).
        #[arg(long)]
        port: u16,
        /// Directory playing the device's storage (device paths == host paths under it).
        #[arg(long)]
        root: PathBuf,
    },
    /// Regenerate tables, plots, JUnit XML and report.html from a results directory (results.json
    /// and samples/ alone); byte-identical for the same inputs.
    Report {
        /// Results directory (holding results.json and samples/).
        dir: PathBuf,
        /// Comma-separated formats: md, tex, csv, json, junit, html, plots (default: all).
        #[arg(long, value_delimiter = ',')]
        format: Vec<String>,
        /// Output directory (default: the results directory); `-` prints text artefacts to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Mixed-precision ablation: run a quantized scenario once per W8A8:W8A16 layer ratio and
    /// tabulate quality (vs FP32 goldens) and latency per ratio.
    Ablation {
        /// Scenario with `package.quantize` (e.g. scenarios/precision-ablation.yaml).
        scenario: PathBuf,
        /// Fractions of MatMul layers with 8-bit activations.
        #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
        a8_ratios: Vec<f64>,
        /// Output directory (default: reports/<scenario name>-ablation).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Model packages: generate the reference package, check a package.
    #[command(subcommand)]
    Package(PackageCmd),
    /// ONNX Runtime artefacts pinned in runtime.lock.toml.
    #[command(subcommand)]
    Runtime(RuntimeCmd),
    /// Image-quality metrics between a reference (golden) image and a test image.
    Compare(crate::compare::CompareArgs),
    /// Golden images: make them from the reference configuration, or verify them.
    #[command(subcommand)]
    Golden(GoldenCmd),
}

#[derive(Subcommand)]
enum GoldenCmd {
    /// Produce goldens with the reference configuration (FP32, CPU EP, separate baselines) for
    /// the scenario's package, tasks and inputs. Lists what would change; needs --force to overwrite.
    Bless {
        /// Scenario whose package and inputs to bless (default: scenarios/demo.yaml).
        scenario: Option<PathBuf>,
        /// Overwrite goldens that changed.
        #[arg(long)]
        force: bool,
    },
    /// Check golden files against their manifests (sha256).
    Verify {
        /// Golden directory (default: the repository's golden/).
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PackageCmd {
    /// Generate the deterministic reference package (encoder -> denoiser x steps -> decoder).
    Reference(ReferenceArgs),
    /// Quantize a package to QDQ (W8A16 or W8A8) calibrated on images: per-task profiles for the
    /// merged baselines, one shared profile (QUAD anchor rule, or merged ranges) for the unified graph.
    Quantize {
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
        /// Fraction of MatMul layers with 8-bit activations (mixed-precision ablation).
        #[arg(long, default_value_t = 0.0)]
        a8_ratio: f64,
        /// Per-channel weight scales.
        #[arg(long)]
        per_channel: bool,
        /// Calibration images (default: golden/inputs/astronaut.png and coffee.png).
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
    },
    /// Validate a package against its manifest and its ONNX graphs.
    Check {
        /// Package directory (holding package.yaml).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DevicesCmd {
    /// Serial, state, model, SoC, ABI and Android version of every device.
    List {
        /// The adb server, host:port.
        #[arg(long, default_value = quadbench::device::adb::DEFAULT_SERVER)]
        adb_server: std::net::SocketAddrV4,
    },
}

#[derive(Subcommand)]
enum RuntimeCmd {
    /// Download (with pip), verify and install runtime artefacts into the cache (idempotent).
    Fetch {
        /// Artefact names (default: every default artefact of this host's target).
        names: Vec<String>,
    },
    /// Show which artefacts are installed, where, and whether they verify.
    Info,
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

pub fn report(e: &dyn std::fmt::Display) {
    eprintln!("error: {e}");
}

/// Exit code for a run error.
fn exit_for(e: &RunError) -> i32 {
    match e {
        RunError::Runtime(_) | RunError::Device(_) | RunError::RunnerMissing { .. } | RunError::Output { .. } => {
            EXIT_INFRA
        }
        _ => EXIT_BAD_INPUT,
    }
}

/// Nearest ancestor of `start` holding `golden/inputs` (the repository checkout).
pub fn repo_root(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start.ancestors().find(|d| d.join("golden/inputs").is_dir()).map(Path::to_path_buf)
}

fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Run a scenario with progress on stderr; an error is reported there too (callers choose the
/// exit code).
pub fn run_reported(sc: &Scenario, opts: &RunOptions) -> Result<quadbench::results::Results, RunError> {
    let mut rep = StderrReporter::new();
    let r = run::run_scenario(sc, opts, &mut rep);
    rep.finish();
    if let Err(e) = &r {
        report(e);
    }
    r
}

/// The checkout a scenario belongs to: above the scenario, else above the current directory.
pub fn scenario_repo_root(scenario: &Path) -> Option<PathBuf> {
    repo_root(scenario.parent().unwrap_or(Path::new("."))).or_else(|| repo_root(Path::new(".")))
}

fn run_and_summarise(scenario: &Path, device: Option<PathBuf>, out: Option<PathBuf>, resume: bool) -> i32 {
    let Some(root) = scenario_repo_root(scenario) else {
        report(&format!(
            "cannot find the quadbench checkout (a directory with golden/inputs) above {}; run from the repository",
            scenario.display()
        ));
        return EXIT_BAD_INPUT;
    };
    let sc = match Scenario::load(scenario, &root) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return EXIT_BAD_INPUT;
        }
    };
    let out = out.unwrap_or_else(|| root.join("reports").join(format!("{}-{}", sc.name, utc_stamp())));
    let opts = RunOptions {
        out: out.clone(),
        device_override: device,
        package_cache: quadbench_runtime::cache_dir().join("packages"),
        resume,
    };
    let results = match run_reported(&sc, &opts) {
        Ok(r) => r,
        Err(e) => return exit_for(&e),
    };
    print!("{}", summary_table(&results));
    println!("results: {}", out.join("results.json").display());
    if let Err(e) = quadbench::report::generate(&out, &[], None) {
        report(&e);
        return EXIT_INFRA;
    }
    for f in ["report.md", "report.html", "junit.xml", "tables/", "plots/"] {
        println!("report:  {}", out.join(f).display());
    }
    if results.runs.iter().any(|r| r.status == RunState::Failed) {
        EXIT_RUNS_FAILED
    } else if results.claims.iter().any(|c| c.verdict == Verdict::Fail)
        || results.runs.iter().any(|r| r.quality.values().any(|q| q.pass == Some(false)))
    {
        EXIT_CLAIMS_FAILED
    } else {
        EXIT_OK
    }
}

/// The demo's short table: storage, peak RAM, switch latency per strategy, then ratios.
pub fn summary_table(r: &Results) -> String {
    let mut s = String::new();
    let mut groups: Vec<(String, String)> = r.runs.iter().map(|x| (x.device.clone(), x.backend.clone())).collect();
    groups.dedup();
    for (device, backend) in groups {
        let runs: Vec<_> = r.runs.iter().filter(|x| x.device == device && x.backend == backend).collect();
        s.push_str(&format!("\n{device} / {backend} ({} tasks)\n", r.package.tasks.len()));
        s.push_str(&format!("{:<22}", "strategy"));
        for h in ["storage MB", "peak RSS MB", "switch p50 ms", "e2e p50 ms", "status"] {
            s.push_str(&format!("{h:>15}"));
        }
        s.push('\n');
        for x in &runs {
            let p50 = |k: &str| x.latency_ms.get(k).map_or("-".to_string(), |v| format!("{:.1}", v.p50));
            s.push_str(&format!(
                "{:<22}{:>15.1}{:>15}{:>15}{:>15}{:>15}\n",
                x.strategy.as_str(),
                x.storage.total_bytes as f64 / 1e6,
                x.memory.peak_rss_bytes.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6)),
                p50("switch"),
                p50("e2e"),
                match x.status {
                    RunState::Ok =>
                        if x.valid {
                            "ok"
                        } else {
                            "ok (invalid)"
                        },
                    RunState::Failed => "FAILED",
                    RunState::Unsupported => "unsupported",
                }
            ));
        }
        let get = |st: Strategy| runs.iter().find(|x| x.strategy == st && x.status == RunState::Ok);
        if let Some(u) = get(Strategy::Unified) {
            for (label, other) in
                [("separate-resident", Strategy::SeparateResident), ("separate-reload", Strategy::SeparateReload)]
            {
                if let Some(o) = get(other) {
                    let ratio = |m: &str| match (o.metric(m), u.metric(m)) {
                        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                        _ => "-".into(),
                    };
                    s.push_str(&format!(
                        "unified vs {label:<18} storage {}  peak RSS {}  switch latency {}\n",
                        ratio("storage.total_bytes"),
                        ratio("memory.peak_rss_bytes"),
                        ratio("latency_ms.switch")
                    ));
                }
            }
        }
        for x in runs.iter().filter(|x| !x.quality.is_empty()) {
            // Only scored tasks count: a task whose goldens are all missing has no mean.
            let worst = |f: &dyn Fn(&quadbench::results::Scores) -> Option<f64>| {
                x.quality
                    .values()
                    .filter(|q| !q.inputs.is_empty())
                    .filter_map(|q| if q.mean.identical { Some(f64::INFINITY) } else { f(&q.mean) })
                    .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.min(v))))
            };
            let scored = x.quality.values().filter(|q| !q.inputs.is_empty()).count();
            let missing = x.quality.values().filter(|q| !q.missing_golden.is_empty()).count();
            let failed = x.quality.values().filter(|q| q.pass == Some(false)).count();
            let fmt = |v: Option<f64>, unit: &str| match v {
                None => "-".to_string(),
                Some(v) if v.is_infinite() => "identical".to_string(),
                Some(v) => format!("{v:.2}{unit}"),
            };
            s.push_str(&format!(
                "quality {:<18} vs goldens: worst-task PSNR {}, SSIM {}; {scored} tasks scored, {missing} missing goldens, {failed} failing thresholds\n",
                x.strategy.as_str(),
                fmt(worst(&|m| m.psnr_db), " dB"),
                fmt(worst(&|m| m.ssim), "")
            ));
        }
        for c in r.claims.iter().filter(|c| c.device == device && c.backend == backend) {
            let verdict = match c.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL (not reproduced)",
                Verdict::Inconclusive => "inconclusive (CI straddles the threshold)",
                Verdict::Missing => "missing run",
            };
            let ci = match (c.ci_low, c.ci_high) {
                (Some(lo), Some(hi)) => format!(" [95% CI {lo:.2}, {hi:.2}]"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "claim {:<20} {} {} vs {}: {}{ci} (needs >= {:.1}x): {verdict}\n",
                c.name,
                c.metric,
                c.candidate,
                c.baseline,
                c.ratio.map_or("-".into(), |v| format!("{v:.2}x")),
                c.threshold
            ));
        }
    }
    s
}

fn report_command(dir: &Path, formats: &[String], out: Option<&Path>) -> i32 {
    use quadbench::report::{self, ReportError};
    let code = |e: &ReportError| if matches!(e, ReportError::Write { .. }) { EXIT_INFRA } else { EXIT_BAD_INPUT };
    let to_stdout = out == Some(Path::new("-"));
    let result = report::Report::load(dir).and_then(|r| report::render(&r, formats));
    let artefacts = match result {
        Ok(a) => a,
        Err(e) => {
            report(&e);
            return code(&e);
        }
    };
    if to_stdout {
        for a in artefacts.iter().filter(|a| !a.path.ends_with(".png")) {
            print!("{}", String::from_utf8_lossy(&a.bytes));
        }
        return EXIT_OK;
    }
    match report::write(&artefacts, out.unwrap_or(dir)) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            EXIT_OK
        }
        Err(e) => {
            report(&e);
            code(&e)
        }
    }
}

pub fn find_demo_scenario() -> Option<PathBuf> {
    let from_cwd = std::env::current_dir().ok().and_then(|d| repo_root(&d));
    let from_exe = std::env::current_exe().ok().and_then(|e| e.parent().and_then(repo_root));
    from_cwd.or(from_exe).map(|r| r.join("scenarios/demo.yaml")).filter(|p| p.exists())
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { out } => {
            let Some(sc) = find_demo_scenario() else {
                report(&"scenarios/demo.yaml not found; run `quadbench demo` from the quadbench repository checkout");
                return EXIT_BAD_INPUT;
            };
            let out = out.unwrap_or_else(|| {
                sc.parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."))
                    .join("reports")
                    .join(format!("demo-{}", utc_stamp()))
            });
            let code = run_and_summarise(&sc, None, Some(out.clone()), false);
            // The NPU comparison, where the QNN plugin loads (x86_64 Linux, glibc >= 2.35).
            let npu = sc.with_file_name("npu.yaml");
            println!(
                "\nNPU comparison (QNN HTP backend; on x86_64 Linux the HTP runs as a simulator, so its latencies say nothing about a phone):"
            );
            match quadbench_runtime::ensure_qnn() {
                Ok(_) if npu.exists() => code.max(run_and_summarise(&npu, None, Some(out.join("npu")), false)),
                Ok(_) => {
                    println!("skipped: {} is missing", npu.display());
                    code
                }
                Err(e) => {
                    println!("skipped: the QNN plugin is not available here: {e}");
                    code
                }
            }
        }
        Command::Ablation { scenario, a8_ratios, out } => crate::ablation::ablation(&scenario, &a8_ratios, out),
        Command::Run { scenario, device, out, resume } => run_and_summarise(&scenario, device, out, resume),
        Command::Devices(DevicesCmd::List { adb_server }) => devices_list(adb_server),
        Command::LoopbackDevice { port, root } => loopback_device(port, root),
        Command::Report { dir, format, out } => report_command(&dir, &format, out.as_deref()),
        Command::Package(PackageCmd::Reference(a)) => {
            let p = ReferenceParams {
                tasks: a.tasks,
                width: a.width,
                resolution: a.resolution,
                steps: a.steps,
                seed: a.seed,
            };
            match package::reference::generate(&a.out, &p) {
                Ok(m) => {
                    println!("{}", a.out.join(package::MANIFEST_FILE).display());
                    eprintln!(
                        "wrote package `{}` ({} tasks, {} files) to {}",
                        m.raw.name,
                        m.pipeline.tasks.len(),
                        m.raw.files.len(),
                        a.out.display()
                    );
                    EXIT_OK
                }
                Err(e) => {
                    report(&e);
                    EXIT_BAD_INPUT
                }
            }
        }
        Command::Package(PackageCmd::Quantize { src, out, precision, profile, a8_ratio, per_channel, inputs }) => {
            let inputs = if inputs.is_empty() {
                let Some(root) = std::env::current_dir().ok().and_then(|d| repo_root(&d)) else {
                    report(&"no --input given and no golden/inputs found above the current directory");
                    return EXIT_BAD_INPUT;
                };
                vec![root.join("golden/inputs/astronaut.png"), root.join("golden/inputs/coffee.png")]
            } else {
                inputs
            };
            if !["w8a16", "w8a8"].contains(&precision.as_str())
                || !["anchor", "merge"].contains(&profile.as_str())
                || !(0.0..=1.0).contains(&a8_ratio)
            {
                report(&"--precision is w8a16 or w8a8, --profile anchor or merge, --a8-ratio within [0, 1]");
                return EXIT_BAD_INPUT;
            }
            let opts = quadbench::package::qprofile::QuantizeOptions {
                act: if precision == "w8a8" {
                    quadbench::package::quantize::ActBits::U8
                } else {
                    quadbench::package::quantize::ActBits::U16
                },
                method: if profile == "merge" {
                    quadbench::package::qprofile::ProfileMethod::Merge
                } else {
                    quadbench::package::qprofile::ProfileMethod::Anchor
                },
                a8_ratio,
                per_channel,
                inputs,
            };
            let env = match quadbench::npu::host_env() {
                Ok(e) => e,
                Err(e) => {
                    report(&e);
                    return EXIT_INFRA;
                }
            };
            match quadbench::package::qprofile::quantize_package(env, &src, &out, &opts) {
                Ok((m, rep)) => {
                    println!("{}", out.join(package::MANIFEST_FILE).display());
                    eprintln!(
                        "wrote {} ({}, {:?} profile, anchor {}): sensitivity scores {:?}",
                        m.raw.name,
                        rep.precision,
                        rep.method,
                        rep.anchor.as_deref().unwrap_or("-"),
                        rep.scores
                    );
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
                println!(
                    "ok: {} ({} stages, {} lora slots, {} tasks, {} files verified)",
                    m.raw.name,
                    m.pipeline.stages.len(),
                    m.pipeline.lora_slots.len(),
                    m.pipeline.tasks.len(),
                    m.raw.files.len()
                );
                EXIT_OK
            }
            Err(e) => {
                report(&e);
                EXIT_BAD_INPUT
            }
        },
        Command::Runtime(RuntimeCmd::Fetch { names }) => {
            let lock = quadbench_runtime::Lock::embedded();
            let target = quadbench_runtime::host_target();
            let names: Vec<String> = if names.is_empty() {
                lock.defaults_for(target).iter().map(|a| a.name.clone()).collect()
            } else {
                names
            };
            let opts = quadbench_runtime::FetchOptions::from_env().with_progress(|m| eprintln!("{m}"));
            let mut code = EXIT_OK;
            for n in names {
                match quadbench_runtime::fetch(&lock, &n, target, &opts) {
                    Ok(i) => println!("{} {} {}: {}", i.name, i.version, i.target, i.library.display()),
                    Err(e) => {
                        report(&e);
                        code = EXIT_INFRA;
                    }
                }
            }
            code
        }
        Command::Compare(a) => match crate::compare::run(&a) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                // The chain, without causes that a message already quotes.
                let mut msg = String::new();
                for cause in e.chain().map(|c| c.to_string()) {
                    if !msg.contains(&cause) {
                        msg = if msg.is_empty() { cause } else { format!("{msg}: {cause}") };
                    }
                }
                report(&msg);
                // An unusable ONNX Runtime (for --lpips-model) is infrastructure, not bad input.
                if e.downcast_ref::<quadbench_runtime::RuntimeError>().is_some() { EXIT_INFRA } else { EXIT_BAD_INPUT }
            }
        },
        Command::Golden(GoldenCmd::Verify { dir }) => {
            let Some(dir) =
                dir.or_else(|| std::env::current_dir().ok().and_then(|d| repo_root(&d)).map(|r| r.join("golden")))
            else {
                report(&"no golden directory given and none found above the current directory");
                return EXIT_BAD_INPUT;
            };
            match quadbench::golden::verify(&dir) {
                Ok(n) => {
                    println!("ok: {n} golden files match their manifests under {}", dir.display());
                    EXIT_OK
                }
                Err(e) => {
                    report(&e);
                    EXIT_BAD_INPUT
                }
            }
        }
        Command::Golden(GoldenCmd::Bless { scenario, force }) => {
            let Some(sc) = scenario.or_else(find_demo_scenario) else {
                report(&"scenarios/demo.yaml not found; pass a scenario");
                return EXIT_BAD_INPUT;
            };
            crate::bless::bless(&sc, force)
        }
        Command::Runtime(RuntimeCmd::Info) => {
            print!("{}", quadbench_runtime::info_text(&quadbench_runtime::Lock::embedded()));
            EXIT_OK
        }
    }
}

fn devices_list(server: std::net::SocketAddrV4) -> i32 {
    let devices = match quadbench::device::adb::list_devices(server) {
        Ok(d) => d,
        Err(e) => {
            report(&e);
            return EXIT_INFRA;
        }
    };
    if devices.is_empty() {
        eprintln!(
            "no devices at the adb server {server} (USB: enable USB debugging; TCP: `adb -P {} connect HOST:PORT`)",
            server.port()
        );
        return EXIT_OK;
    }
    println!("{:<24} {:<13} {:<24} {:<16} {:<12} android", "serial", "state", "model", "soc", "abi");
    for d in devices {
        let i = d.info.unwrap_or_default();
        let f = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<13} {:<24} {:<16} {:<12} {}{}",
            d.serial,
            d.state,
            f(i.model),
            f(i.soc),
            f(i.abi),
            f(i.os_version),
            d.error.map(|e| format!("  ({e})")).unwrap_or_default()
        );
    }
    EXIT_OK
}

fn loopback_device(port: u16, root: PathBuf) -> i32 {
    let mut cfg = quadbench_loopback::LoopbackConfig::new(&root);
    cfg.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eprintln!(
        "loopback device 127.0.0.1:{port}, storage {}; attach with `adb connect 127.0.0.1:{port}`, use `root: <that directory>` in the device profile",
        root.display()
    );
    match quadbench_loopback::serve_forever_with_log(cfg, |e| eprintln!("loopback: {e}")) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            report(&e);
            EXIT_BAD_INPUT
        }
    }
}
