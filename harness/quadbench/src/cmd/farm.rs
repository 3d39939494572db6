//! `quadbench farm ...`: the farm database from the operator's side: create it, submit a
//! scenario, watch the queue, gather a submission's results, and manage devices' health.
//! `--db` defaults to `$QUADBENCH_DB`, else the embedded SQLite database.

use super::exit::{self, Classify};
use crate::config::Scenario;
use crate::farm::{Db, FarmCmdError, FarmError, collect, submit};
use quadbench_farm::{Health, JobState, NewSubmission};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DbArg {
    /// Farm database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB (default: $QUADBENCH_DB,
    /// else sqlite under the XDG data directory).
    #[arg(long, global = true)]
    db: Option<String>,
}

impl DbArg {
    fn url(&self) -> String {
        self.db.clone().unwrap_or_else(Db::default_url)
    }
}

#[derive(clap::Subcommand)]
pub enum FarmCmd {
    /// Create the farm database (or migrate it to this version's schema).
    Init(DbArg),
    /// Queue a scenario: each device x backend x strategy becomes a job; prints the submission id.
    Submit(SubmitArgs),
    /// Jobs per state, device and host; leases; device health.
    Status(StatusArgs),
    /// A submission's results directory: results.json, samples, outputs and every report.
    Results(ResultsArgs),
    /// Devices: list them, reset a bad one, retire one.
    #[command(subcommand)]
    Device(DeviceCmd),
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    scenario: PathBuf,
    /// Names this submission (unique): `farm results LABEL`.
    #[arg(long)]
    label: String,
    /// Run on any device meeting KEY=VALUE[,KEY=VALUE] (keys device, soc, abi) instead of the
    /// scenario's devices; repeat for several targets.
    #[arg(long)]
    on: Vec<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    priority: i64,
    /// Infrastructure failures a job may have before it fails for good.
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Only this submission.
    #[arg(long)]
    label: Option<String>,
    /// Machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Follow the queue with a progress bar (on a terminal) until nothing is queued or running.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Args)]
pub struct ResultsArgs {
    label: String,
    /// Results directory to create.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    db: DbArg,
}

#[derive(clap::Subcommand)]
pub enum DeviceCmd {
    List(DbArg),
    /// Put a bad device back to unknown: its agent health-checks it before its next job.
    Reset {
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Take a device out for good (kept in the database for history).
    Retire {
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
}

pub fn farm(c: FarmCmd) -> i32 {
    let r = match c {
        FarmCmd::Init(db) => init(&db.url()),
        FarmCmd::Submit(a) => submit_cmd(a),
        FarmCmd::Status(a) => super::farm_status::status(a.db.url(), a.label, a.json, a.watch),
        FarmCmd::Results(a) => results(a),
        FarmCmd::Device(d) => device(d),
    };
    r.unwrap_or_else(|e| exit::fail(&e))
}

fn init(url: &str) -> Result<i32, FarmCmdError> {
    Db::init(url)?;
    eprintln!("farm database ready: {} (schema {})", crate::farm::redact(url), quadbench_farm::SCHEMA_VERSION);
    Ok(exit::OK)
}

fn submit_cmd(a: SubmitArgs) -> Result<i32, FarmCmdError> {
    if !crate::safe_name(&a.label) {
        return Err(FarmCmdError::Input {
            what: format!("label `{}` is not a safe name (it becomes a directory name)", a.label.escape_debug()),
            fix: format!("use {}", crate::SAFE_NAME_CHARS),
        });
    }
    if !(1..=100).contains(&a.max_attempts) {
        return Err(FarmCmdError::Input {
            what: format!("--max-attempts {} is out of range", a.max_attempts),
            fix: "give 1 to 100".into(),
        });
    }
    let sc = Scenario::load(&a.scenario)?;
    if sc.replicates > 1 {
        return Err(FarmCmdError::Input {
            what: format!(
                "{}: `replicates: {}` is not supported by the farm yet (a job is one run)",
                a.scenario.display(),
                sc.replicates
            ),
            fix: "set `replicates: 1` to submit it, or run the replicated scenario with `quadbench run`".into(),
        });
    }
    let on = a.on.iter().map(|s| submit::parse_requirement(s)).collect::<Result<Vec<_>, _>>()?;
    let jobs = submit::jobs(&sc, &on)?;
    let text = std::fs::read_to_string(&a.scenario).map_err(|e| FarmCmdError::Input {
        what: format!("cannot read {}: {e}", a.scenario.display()),
        fix: "check the path".into(),
    })?;
    // Agents resolve the scenario's relative paths against where it was submitted from.
    let path = std::path::absolute(&a.scenario).unwrap_or(a.scenario.clone());
    let db = Db::open(&a.db.url())?;
    let id = db.submit(
        &NewSubmission {
            label: a.label.clone(),
            scenario_name: sc.name.clone(),
            scenario_path: path.display().to_string(),
            scenario_sha256: sc.sha256.clone(),
            scenario_text: text,
            priority: a.priority,
            max_attempts: a.max_attempts,
        },
        &jobs,
    )?;
    eprintln!("submission `{}`: {} jobs queued", a.label, jobs.len());
    println!("{id}");
    Ok(exit::OK)
}

fn results(a: ResultsArgs) -> Result<i32, FarmCmdError> {
    let db = Db::open(&a.db.url())?;
    let r = collect::write(&db, &a.label, &a.out)?;
    println!("results: {}", a.out.join("results.json").display());
    if !r.complete {
        eprintln!("note: submission `{}` is not finished; these are the runs stored so far", a.label);
    }
    Ok(super::run::results_exit_code(&r))
}

fn device(d: DeviceCmd) -> Result<i32, FarmCmdError> {
    match d {
        DeviceCmd::List(db) => {
            let db = Db::open(&db.url())?;
            println!("{:<24} {:<16} {:<10} {:<12} {:<20} note", "device", "host", "transport", "health", "abi");
            for d in db.devices()? {
                println!(
                    "{:<24} {:<16} {:<10} {:<12} {:<20} {}",
                    d.reg.name,
                    d.reg.host,
                    d.reg.transport,
                    format!("{:?}", d.health).to_lowercase(),
                    d.reg.abi.as_deref().unwrap_or("-"),
                    d.health_note
                );
            }
            Ok(exit::OK)
        }
        DeviceCmd::Reset { name, db } => set_health(&db, &name, Health::Unknown, "reset by an operator"),
        DeviceCmd::Retire { name, db } => set_health(&db, &name, Health::Retired, "retired by an operator"),
    }
}

fn set_health(db: &DbArg, name: &str, h: Health, note: &str) -> Result<i32, FarmCmdError> {
    let db = Db::open(&db.url())?;
    if db.device(name)?.is_none() {
        return Err(FarmCmdError::Input {
            what: format!("no device named `{name}` in the farm"),
            fix: "`quadbench farm device list` shows them".into(),
        });
    }
    db.set_health(name, h, note)?;
    eprintln!("device {name}: {}", format!("{h:?}").to_lowercase());
    Ok(exit::OK)
}

/// Counts of jobs per state.
pub fn counts(jobs: &[quadbench_farm::JobRow]) -> [usize; 4] {
    let mut c = [0; 4];
    for j in jobs {
        c[match j.state {
            JobState::Queued => 0,
            JobState::Running => 1,
            JobState::Done => 2,
            JobState::Failed => 3,
        }] += 1;
    }
    c
}

impl Classify for FarmError {
    fn exit_code(&self) -> i32 {
        match self {
            FarmError::Connect { .. } | FarmError::Query { .. } | FarmError::LeaseLost { .. } => exit::INFRA,
            _ => exit::BAD_INPUT,
        }
    }
}

impl Classify for FarmCmdError {
    fn exit_code(&self) -> i32 {
        match self {
            FarmCmdError::Db(e) => e.exit_code(),
            FarmCmdError::Yaml(_) | FarmCmdError::NoSubmission { .. } | FarmCmdError::Input { .. } => exit::BAD_INPUT,
            FarmCmdError::NoRuns { .. } | FarmCmdError::Corrupt { .. } | FarmCmdError::Output { .. } => exit::INFRA,
            FarmCmdError::Report(e) => e.exit_code(),
        }
    }
}
