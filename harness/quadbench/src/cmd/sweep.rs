//! `quadbench sweep SWEEP.yaml [--out DIR] [--resume]`: run a base scenario once per point of a
//! sweep (`crate::sweep`), each point an ordinary results directory under `DIR/points/`, tied
//! together by `DIR/sweep.json`; then draw the claims against each axis, the crossover points
//! and the cost models (`quadbench_report::sweep`). The memory guard runs first: a point whose
//! estimated peak exceeds the limit refuses the whole sweep (exit 2) unless the sweep file says
//! `over_limit: skip`. Claim verdicts do not set the exit code: where a claim fails is what a
//! sweep is for.

use super::exit::{self, BAD_INPUT, Classify, INFRA, OK};
use super::run::{package_cache, results_exit_code, run_reported};
use crate::scheduler::{RunError, RunOptions};
use crate::sweep::{self, OverLimit, Sweep};
use quadbench_schema::sweep::{FileRef, PointStatus, SWEEP_INDEX_FILE, SWEEP_INDEX_SCHEMA, SweepIndex, SweepPoint};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Sweep file (schema quadbench.sweep/1, e.g. scenarios/sweeps/foundation-size-cpu.yaml).
    sweep: PathBuf,
    /// Sweep directory (default: reports/<sweep name>-<UTC time> in the sweep's checkout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted sweep in --out: finished points are kept, the rest run (each
    /// resuming its own results directory).
    #[arg(long, requires = "out")]
    resume: bool,
    /// Device profile replacing the base scenario's devices at every point.
    #[arg(long)]
    device: Option<PathBuf>,
}

pub fn sweep(a: SweepArgs) -> i32 {
    let sw = match Sweep::load(&a.sweep) {
        Ok(s) => s,
        Err(e) => return exit::fail(&e),
    };
    let out = a.out.unwrap_or_else(|| super::run::default_out(&a.sweep, &sw.name));
    let mut index = match plan(&sw, &a.sweep) {
        Ok(i) => i,
        Err(msg) => {
            exit::report(&msg);
            return BAD_INPUT;
        }
    };
    let index_path = out.join(SWEEP_INDEX_FILE);
    if index_path.exists() {
        if !a.resume {
            exit::report(&format!(
                "{} already holds a sweep; nothing was overwritten\n  hint: add --resume to finish its points, or choose a new --out",
                out.display()
            ));
            return BAD_INPUT;
        }
        if let Err(msg) = carry_over(&index_path, &mut index) {
            exit::report(&msg);
            return BAD_INPUT;
        }
    }
    if let Err(e) = std::fs::create_dir_all(out.join("points")).and_then(|_| write_index(&out, &index)) {
        exit::report(&format!("cannot write the sweep index in {}: {e}\n  hint: choose another --out", out.display()));
        return INFRA;
    }
    let mut code = OK;
    for i in 0..index.points.len() {
        if matches!(index.points[i].status, PointStatus::Done | PointStatus::Skipped) {
            continue;
        }
        let p = &index.points[i];
        eprintln!("sweep {} point {}/{}: {}", sw.name, i + 1, index.points.len(), p.id);
        let mut sc = sw.scenario_at(&sw.points[i]);
        let skipped: Vec<_> = p.memory.iter().filter(|m| m.skipped).map(|m| m.strategy).collect();
        sc.strategies.retain(|s| !skipped.contains(s));
        let opts = RunOptions {
            out: out.join(&p.dir),
            device_override: a.device.clone(),
            package_cache: package_cache(),
            resume: true,
        };
        let started = std::time::Instant::now();
        let result = run_reported(&sc, &opts);
        let point = &mut index.points[i];
        point.seconds = Some(started.elapsed().as_secs_f64());
        match result {
            Ok(results) => {
                point.status = PointStatus::Done;
                if let Err(e) = crate::report::generate(&opts.out, &[], None) {
                    exit::report(&e);
                }
                let c = results_exit_code(&results);
                if c != exit::CLAIMS_FAILED && c != OK {
                    code = code.max(c);
                }
            }
            Err(e @ RunError::Interrupted { .. }) => {
                let _ = write_index(&out, &index);
                return e.exit_code();
            }
            Err(e) => {
                (point.status, point.note) = (PointStatus::Failed, e.to_string());
                code = code.max(e.exit_code());
            }
        }
        if let Err(e) = write_index(&out, &index) {
            exit::report(&format!("cannot write {}: {e}", out.join(SWEEP_INDEX_FILE).display()));
            return INFRA;
        }
    }
    index.complete = true;
    if let Err(e) = write_index(&out, &index) {
        exit::report(&format!("cannot write {}: {e}", out.join(SWEEP_INDEX_FILE).display()));
        return INFRA;
    }
    match crate::report::sweep::render(&out).and_then(|a| crate::report::write(&a, &out)) {
        Ok(_) => {}
        Err(e) => return exit::fail(&e),
    }
    match std::fs::read_to_string(out.join("sweep.md")) {
        // The headline on stdout: the crossovers (the rest is in sweep.md and tables/).
        Ok(md) => print!("{}", md.split("\n## Claims at each point").next().unwrap_or(&md)),
        Err(e) => exit::report(&format!("cannot read back sweep.md: {e}")),
    }
    println!("\nsweep:  {}", out.join(SWEEP_INDEX_FILE).display());
    println!("report: {}", out.join("sweep.md").display());
    code
}

/// The index of a fresh sweep: every point pending, with the memory guard's estimates; an
/// error (exit 2) when a point exceeds the limit and the sweep does not skip such points.
fn plan(sw: &Sweep, file: &Path) -> Result<SweepIndex, String> {
    let (limit, source) = match sw.limit_mb {
        Some(mb) => (mb * 1_000_000, "sweep file (memory.limit_mb)".to_string()),
        None => match sweep::mem_available() {
            Some(b) => (b, format!("MemAvailable of {} when the sweep started", crate::scheduler::host_name())),
            None => (u64::MAX, "none (/proc/meminfo unreadable): not guarded".to_string()),
        },
    };
    let mut points = Vec::new();
    let mut over = Vec::new();
    for (i, p) in sw.points.iter().enumerate() {
        let sc = sw.scenario_at(p);
        let params = sweep::package_params(&sc, &[]);
        let mut memory = sweep::estimate(&sc).unwrap_or_default();
        let mb = |b: u64| b as f64 / 1e6;
        let id = sweep::point_id(i, p);
        let mut note = String::new();
        if let Some(g) = sweep::generator_bytes(&sc).filter(|&g| g > limit) {
            over.push(format!("{id}: generating its package needs ~{:.0} MB", mb(g)));
            memory.iter_mut().for_each(|m| m.skipped = true);
            note = format!("generating the package would need ~{:.0} MB (limit {:.0} MB)", mb(g), mb(limit));
        }
        for m in memory.iter_mut().filter(|m| m.peak_bytes > limit && !m.skipped) {
            m.skipped = true;
            over.push(format!(
                "{id}: {} ~{:.0} MB ({} denoiser session(s))",
                m.strategy.as_str(),
                mb(m.peak_bytes),
                m.sessions
            ));
        }
        let all_skipped = !memory.is_empty() && memory.iter().all(|m| m.skipped);
        if all_skipped && note.is_empty() {
            note = format!("every strategy's estimated peak exceeds the limit of {:.0} MB", mb(limit));
        } else if memory.iter().any(|m| m.skipped) && note.is_empty() {
            let names: Vec<&str> = memory.iter().filter(|m| m.skipped).map(|m| m.strategy.as_str()).collect();
            note = format!("left out over the memory limit of {:.0} MB: {}", mb(limit), names.join(", "));
        }
        points.push(SweepPoint {
            dir: format!("points/{id}"),
            id,
            values: p.iter().map(|(a, v)| (a.name().to_string(), v.clone())).collect(),
            status: if all_skipped { PointStatus::Skipped } else { PointStatus::Pending },
            foundation_bytes: params.as_ref().map(|p| p.denoiser_weight_bytes()),
            adapter_bytes: params.as_ref().map(|p| p.adapter_weight_bytes()),
            tasks: params.as_ref().map(|p| p.tasks as u64),
            memory,
            seconds: None,
            note,
        });
    }
    if !over.is_empty() && sw.over_limit == OverLimit::Refuse {
        return Err(format!(
            "{}: {} point(s) would exceed the memory limit of {:.0} MB ({}); nothing was run:\n{}\n  hint: sweep smaller values, set `memory: {{over_limit: skip}}` to leave such points out (they are listed as skipped), or set `memory: {{limit_mb: N}}`",
            file.display(),
            over.len(),
            limit as f64 / 1e6,
            source,
            over.iter().map(|o| format!("  - {o}")).collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(SweepIndex {
        schema: SWEEP_INDEX_SCHEMA.into(),
        name: sw.name.clone(),
        description: sw.description.clone(),
        sweep: FileRef { path: file.display().to_string(), sha256: sw.sha256.clone() },
        scenario: FileRef { path: sw.base.path.display().to_string(), sha256: sw.base.sha256.clone() },
        axes: sw.axes.iter().map(|a| a.name().to_string()).collect(),
        memory_limit_bytes: limit,
        memory_limit_source: source,
        points,
        complete: false,
    })
}

/// Keep the finished points of the sweep in `path` (same sweep file and base scenario only).
fn carry_over(path: &Path, index: &mut SweepIndex) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let old: SweepIndex = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a sweep index ({e}); choose a fresh --out", path.display()))?;
    if old.sweep.sha256 != index.sweep.sha256 || old.scenario.sha256 != index.scenario.sha256 {
        return Err(format!(
            "cannot resume: {} was written by another sweep file or base scenario (sweep sha256 {} now {}, scenario sha256 {} now {})\n  hint: resume with the same files, or run into a fresh --out",
            path.display(),
            short(&old.sweep.sha256),
            short(&index.sweep.sha256),
            short(&old.scenario.sha256),
            short(&index.scenario.sha256)
        ));
    }
    for p in &mut index.points {
        if let Some(o) = old.points.iter().find(|o| o.id == p.id && o.status == PointStatus::Done) {
            (p.status, p.seconds) = (PointStatus::Done, o.seconds);
        }
    }
    Ok(())
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Write `sweep.json` atomically.
fn write_index(out: &Path, index: &SweepIndex) -> std::io::Result<()> {
    let path: PathBuf = out.join(SWEEP_INDEX_FILE);
    let tmp = out.join(format!("{SWEEP_INDEX_FILE}.tmp"));
    let json = serde_json::to_string_pretty(index).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json + "\n")?;
    std::fs::rename(&tmp, &path)
}
