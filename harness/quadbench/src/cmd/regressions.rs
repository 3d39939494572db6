//! `quadbench regressions`: the latest night of each series against its history, per metric
//! (`quadbench_report::regress` says how), with an optional confirmation rerun of what looks
//! regressed. Exit 1 when a regression stands (confirmed, or not put to a rerun), else 0.
//! A summary goes to stderr; `--json`, `--markdown` and `--junit` are for machines (`-` is
//! stdout).

use super::exit;
use super::farm::DbArg;
use super::history::write_out;
use crate::history::{self, CONFIRM_MARK, HistoryError};
use crate::report::nights::HistoryRun;
use crate::report::regress::{self, DetectOptions};
use crate::report::regress_out;
use quadbench_farm::{Db, JobState};
use quadbench_schema::history::{Change, REGRESSIONS_SCHEMA, RegressionReport};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct RegressionsArgs {
    /// Only nights whose label starts with this (e.g. `nightly-`).
    #[arg(long)]
    label: Option<String>,
    /// The whole report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Markdown summary to this file (`-`: stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// JUnit XML to this file (`-`: stdout).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// One-sided significance level of the night-to-night test.
    #[arg(long, default_value_t = regress::DEFAULT_ALPHA)]
    alpha: f64,
    /// PREFIX=FRACTION: the minimum effect for metrics starting with PREFIX (e.g.
    /// `latency_ms.=0.05`); repeat for several.
    #[arg(long)]
    min_effect: Vec<String>,
    /// Rerun what looks regressed on the farm (same devices) and decide on the rerun.
    #[arg(long)]
    confirm: bool,
    /// How long to wait for the confirmation rerun, in seconds.
    #[arg(long, default_value_t = 1800)]
    confirm_timeout_s: u64,
    #[command(flatten)]
    db: DbArg,
}

pub fn regressions(a: RegressionsArgs) -> i32 {
    run(a).unwrap_or_else(|e| exit::fail(&e))
}

fn options(a: &RegressionsArgs) -> Result<DetectOptions, HistoryError> {
    if !(a.alpha > 0.0 && a.alpha < 0.5) {
        return Err(HistoryError::Input {
            what: format!("--alpha {} is out of range", a.alpha),
            fix: "give a significance level between 0 and 0.5, e.g. 0.01".into(),
        });
    }
    let mut min_effect = Vec::new();
    for s in &a.min_effect {
        let parsed = s.split_once('=').and_then(|(p, v)| Some((p.to_string(), v.parse::<f64>().ok()?)));
        match parsed {
            Some((p, v)) if (0.0..10.0).contains(&v) => min_effect.push((p, v)),
            _ => {
                return Err(HistoryError::Input {
                    what: format!("--min-effect `{s}` is not PREFIX=FRACTION"),
                    fix: "e.g. --min-effect latency_ms.=0.05 (5% for every latency)".into(),
                });
            }
        }
    }
    Ok(DetectOptions { alpha: a.alpha, min_effect })
}

/// The report for `runs` (devices from the farm).
pub fn report(
    db: &Db,
    runs: &[HistoryRun],
    label: Option<&str>,
    opts: &DetectOptions,
) -> Result<RegressionReport, HistoryError> {
    let (trends, findings) = regress::analyse(runs, opts);
    Ok(RegressionReport {
        schema: REGRESSIONS_SCHEMA.into(),
        generated_at: crate::time::now_rfc3339(),
        label: label.map(str::to_string),
        findings,
        trends,
        devices: history::devices(db, runs)?,
    })
}

fn run(a: RegressionsArgs) -> Result<i32, HistoryError> {
    let opts = options(&a)?;
    let db = Db::open(&a.db.url())?;
    let runs = history::load(&db, a.label.as_deref())?;
    let mut rep = report(&db, &runs, a.label.as_deref(), &opts)?;
    if a.confirm && rep.regressions().next().is_some() {
        confirm(&db, &runs, &mut rep, &opts, Duration::from_secs(a.confirm_timeout_s))?;
    }
    summary(&rep);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep).unwrap_or_default());
    }
    if let Some(p) = &a.markdown {
        write_out(p, &regress_out::markdown(&rep))?;
    }
    if let Some(p) = &a.junit {
        write_out(p, &regress_out::junit(&rep))?;
    }
    Ok(if rep.regressions().next().is_some() { exit::CLAIMS_FAILED } else { exit::OK })
}

fn summary(rep: &RegressionReport) {
    let counts: Vec<String> =
        regress_out::counts(rep).iter().map(|(c, n)| format!("{n} {}", c.as_str().replace('_', " "))).collect();
    if rep.findings.is_empty() {
        eprintln!("regressions: the history is empty (nothing to compare)");
        return;
    }
    eprintln!("regressions: {} series x metrics: {}", rep.findings.len(), counts.join(", "));
    for f in regress_out::worst_first(rep).into_iter().filter(|f| !matches!(f.change, Change::Unchanged | Change::New))
    {
        let ratio = f.worse_ratio.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into());
        eprintln!("  {:<28} {} {} ({ratio} worse ratio; {})", regress_out::change_text(f), f.key, f.metric, f.test);
    }
}

/// Reruns the regressed series of the latest night on the farm, waits, and marks each
/// regression confirmed or not by the detector's verdict on the rerun in the latest night's
/// place.
fn confirm(
    db: &Db,
    runs: &[HistoryRun],
    rep: &mut RegressionReport,
    opts: &DetectOptions,
    timeout: Duration,
) -> Result<(), HistoryError> {
    let night = rep.regressions().next().map(|f| f.night.clone()).unwrap_or_default();
    let mut keys: Vec<String> = rep.regressions().map(|f| f.key.clone()).collect();
    keys.dedup();
    let mut n = 1;
    while db.submission(&format!("{night}{CONFIRM_MARK}{n}"))?.is_some() {
        n += 1;
    }
    let label = format!("{night}{CONFIRM_MARK}{n}");
    if db.resubmit(&night, &keys, &label, 100)?.is_none() {
        eprintln!("regressions: night `{night}` is not a farm submission; no confirmation rerun (the findings stand)");
        return Ok(());
    }
    eprintln!(
        "regressions: confirmation rerun `{label}` of {} series queued; waiting for the farm's agents",
        keys.len()
    );
    let start = Instant::now();
    loop {
        let jobs = db.jobs(Some(&label))?;
        if jobs.iter().all(|j| matches!(j.state, JobState::Done | JobState::Failed)) {
            break;
        }
        if start.elapsed() > timeout {
            return Err(HistoryError::Input {
                what: format!("the confirmation rerun `{label}` did not finish in {} s", timeout.as_secs()),
                fix: "start agents for its devices (`quadbench agent`), or raise --confirm-timeout-s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let rerun = history::night(db, &label)?;
    regress::confirm(runs, &night, &rerun, &label, &mut rep.findings, opts);
    Ok(())
}
