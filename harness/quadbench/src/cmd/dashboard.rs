//! `quadbench dashboard`: the history's trend dashboard, one self-contained `index.html` (no
//! network, no scripts): the latest verdicts worst first in AI Hub-style ratio buckets, the
//! devices' health, and a trend plot per series and metric.

use super::exit;
use super::farm::DbArg;
use super::regressions::report;
use crate::history::{self, HistoryError};
use crate::report::dashboard::render_dashboard;
use crate::report::regress::DetectOptions;
use quadbench_farm::Db;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DashboardArgs {
    /// Directory to write index.html into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Only nights whose label starts with this.
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    db: DbArg,
}

pub fn dashboard(a: DashboardArgs) -> i32 {
    run(a).unwrap_or_else(|e| exit::fail(&e))
}

fn run(a: DashboardArgs) -> Result<i32, HistoryError> {
    let db = Db::open(&a.db.url())?;
    let runs = history::load(&db, a.label.as_deref())?;
    let rep = report(&db, &runs, a.label.as_deref(), &DetectOptions::default())?;
    let artefacts = render_dashboard(&rep)
        .map_err(|e| HistoryError::Output { path: a.out.display().to_string(), message: e.to_string() })?;
    let written = crate::report::write(&artefacts, &a.out)
        .map_err(|e| HistoryError::Output { path: a.out.display().to_string(), message: e.to_string() })?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(exit::OK)
}
