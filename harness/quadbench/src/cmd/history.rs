//! `quadbench history ...`: record a plain run's results directory as a night (farm runs are
//! recorded by their agent), list the series and their nights, export the history for other
//! dashboards. Writing a machine output to `-` means stdout.

use super::exit::{self, Classify};
use super::farm::DbArg;
use crate::history::{self, HistoryError};
use crate::report::nights::{self, HistoryRun};
use quadbench_farm::Db;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum HistoryCmd {
    /// Record a results directory's runs (from `quadbench run`) as one night. Idempotent.
    Add(AddArgs),
    /// The series and their nights.
    List(ListArgs),
    /// The history as benchmark records other dashboards ingest (PyTorch/ExecuTorch v3 JSON):
    /// one per series, night and metric.
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output file (`-`: stdout).
    #[arg(long, default_value = "-")]
    out: PathBuf,
    /// Only nights whose label starts with this.
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// A results directory (holds results.json and samples/).
    dir: PathBuf,
    /// The night's label (default: the directory's name). Nights are compared in the order
    /// their first run started.
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only nights whose label starts with this.
    #[arg(long)]
    label: Option<String>,
    /// JSON on stdout: per series, its nights with runs and e2e medians.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArg,
}

pub fn history(c: HistoryCmd) -> i32 {
    let r = match c {
        HistoryCmd::Add(a) => add(a),
        HistoryCmd::List(a) => list(a),
        HistoryCmd::Export(a) => export(a),
    };
    r.unwrap_or_else(|e| exit::fail(&e))
}

fn add(a: AddArgs) -> Result<i32, HistoryError> {
    if let Some(l) = &a.label
        && !crate::safe_name(l)
    {
        return Err(HistoryError::Input {
            what: format!("label `{}` is not a safe name", l.escape_debug()),
            fix: format!("use {}", crate::SAFE_NAME_CHARS),
        });
    }
    let db = Db::init(&a.db.url())?;
    let (night, done) = history::import(&db, &a.dir, a.label.as_deref())?;
    eprintln!("history: {} run(s) of {} recorded as night `{night}`", done.added, a.dir.display());
    for (id, was) in &done.already {
        eprintln!("  {id}: already recorded (night `{was}`); left as it was");
    }
    Ok(exit::OK)
}

fn list(a: ListArgs) -> Result<i32, HistoryError> {
    let db = Db::open(&a.db.url())?;
    let runs = history::load(&db, a.label.as_deref())?;
    let series = nights::group(&runs);
    if a.json {
        let v: BTreeMap<&str, Vec<serde_json::Value>> =
            series.iter().map(|(k, ns)| (k.as_str(), ns.iter().map(|(n, rs)| night_json(n, rs)).collect())).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    if series.is_empty() {
        eprintln!(
            "history is empty: `quadbench history add DIR` records a results directory, farm runs are recorded by their agents"
        );
    }
    for (key, ns) in &series {
        println!("{key}");
        for (n, rs) in ns {
            let e2e = e2e_median(rs).map_or("-".to_string(), |v| format!("{v:.2} ms"));
            let failed = rs.iter().filter(|r| r.record.status != crate::results::RunState::Ok).count();
            println!("  {n:<32} {:<24} runs {:<3} failed {failed:<3} e2e {e2e}", rs[0].started_at, rs.len());
        }
    }
    Ok(exit::OK)
}

fn export(a: ExportArgs) -> Result<i32, HistoryError> {
    let db = Db::open(&a.db.url())?;
    let runs = history::load(&db, a.label.as_deref())?;
    let rep = super::regressions::report(&db, &runs, a.label.as_deref(), &Default::default())?;
    let v = crate::report::export_v3::export_v3(&rep);
    write_out(&a.out, &format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()))?;
    Ok(exit::OK)
}

fn e2e_median(rs: &[&HistoryRun]) -> Option<f64> {
    let v: Vec<f64> = rs.iter().filter_map(|r| r.record.latency_ms.get("e2e").map(|s| s.p50)).collect();
    (!v.is_empty()).then(|| nights::median(&v))
}

fn night_json(n: &str, rs: &[&HistoryRun]) -> serde_json::Value {
    serde_json::json!({
        "night": n,
        "started_at": rs[0].started_at,
        "runs": rs.len(),
        "package_sha256": rs[0].record.environment.package_sha256,
        "e2e_median_ms": e2e_median(rs),
    })
}

/// Write `text` to `path`, or to stdout when it is `-`.
pub fn write_out(path: &Path, text: &str) -> Result<(), HistoryError> {
    if path == Path::new("-") {
        use std::io::Write;
        // A reader that stops early (`| head`) is not an error.
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(HistoryError::Output { path: "stdout".into(), message: e.to_string() })
            }
            _ => Ok(()),
        };
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| HistoryError::Output { path: parent.display().to_string(), message: e.to_string() })?;
    }
    std::fs::write(path, text)
        .map_err(|e| HistoryError::Output { path: path.display().to_string(), message: e.to_string() })
}

impl Classify for HistoryError {
    fn exit_code(&self) -> i32 {
        match self {
            HistoryError::Db(e) => e.exit_code(),
            HistoryError::Load(_) | HistoryError::Input { .. } => exit::BAD_INPUT,
            HistoryError::Corrupt { .. } | HistoryError::Output { .. } => exit::INFRA,
        }
    }
}
