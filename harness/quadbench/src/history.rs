//! The run history in the farm database: turning a run record into a history row (its series
//! key, night, context and fingerprint), importing a results directory, reading the history
//! back as [`HistoryRun`]s for the detector and the dashboard, and the devices' health beside
//! it. The farm agent records its runs through [`entry`] in the transaction that finishes the
//! job; `quadbench history add` records a plain `quadbench run`'s.

use crate::package::manifest::sha256_bytes;
use crate::report::nights::HistoryRun;
use crate::results::{LoadError, Results, RunRecord, RunState};
use quadbench_farm::{Db, FarmError, HistoryEntry};
use quadbench_schema::history::DeviceHealth;
use std::collections::BTreeMap;
use std::path::Path;

/// Errors of the history commands.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Db(#[from] FarmError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{what}\n  hint: {fix}")]
    Input { what: String, fix: String },
    #[error("the history holds a run that cannot be read back (fingerprint {fingerprint}): {message}")]
    Corrupt { fingerprint: String, message: String },
    #[error("cannot write {path}: {message}\n  hint: free disk space or choose another --out")]
    Output { path: String, message: String },
}

/// The history row of `rec`, a run of the scenario and package in `header`, on `night`.
pub fn entry(header: &Results, rec: &RunRecord, night: &str, source: &str) -> Result<HistoryEntry, String> {
    let record_json = serde_json::to_string(rec).map_err(|e| e.to_string())?;
    let samples_json = serde_json::to_string(&rec.samples).map_err(|e| e.to_string())?;
    // The run itself, whatever night it is filed under: the same run imported twice (or
    // recorded by the farm and imported from `farm results`) is recognised.
    let fingerprint = sha256_bytes(format!("{record_json}\n{samples_json}").as_bytes());
    let env = &rec.environment;
    let status = match rec.status {
        RunState::Ok => "ok",
        RunState::Failed => "failed",
        RunState::Unsupported => "unsupported",
    };
    let key = if rec.key.is_empty() {
        format!("{}/{}/{}/{}/{}", header.scenario.name, rec.device, rec.backend, rec.precision, rec.strategy)
    } else {
        rec.key.clone()
    };
    Ok(HistoryEntry {
        fingerprint,
        series_key: key,
        night: night.to_string(),
        scenario: header.scenario.name.clone(),
        device: rec.device.clone(),
        backend: rec.backend.clone(),
        precision: rec.precision.clone(),
        strategy: rec.strategy.to_string(),
        replicate: rec.replicate as i64,
        host: rec.host.clone(),
        started_at: rec.started_at.clone(),
        status: status.into(),
        valid: rec.valid,
        package_sha256: if env.package_sha256.is_empty() {
            header.package.sha256.clone()
        } else {
            env.package_sha256.clone()
        },
        package_name: header.package.name.clone(),
        git_revision: env.git_revision.clone(),
        ort_version: env.runner.ort_version.clone().unwrap_or_default(),
        device_model: env.device_model.clone().unwrap_or_default(),
        device_soc: env.device_soc.clone().unwrap_or_default(),
        source: source.into(),
        record_json,
        samples_json,
    })
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub added: usize,
    /// Runs already in the history, with the night they are filed under.
    pub already: Vec<(String, String)>,
}

/// Record every run of the results directory `dir` under `night` (default: the directory's
/// name). Idempotent: runs already recorded are left as they are.
pub fn import(db: &Db, dir: &Path, night: Option<&str>) -> Result<(String, Imported), HistoryError> {
    let results = Results::load(dir)?;
    let night = match night {
        Some(n) => n.to_string(),
        None => {
            dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).ok_or_else(
                || HistoryError::Input {
                    what: format!("{} has no directory name to use as the night's label", dir.display()),
                    fix: "pass --label LABEL".into(),
                },
            )?
        }
    };
    if night.trim().is_empty() {
        return Err(HistoryError::Input {
            what: "the night's label is empty".into(),
            fix: "pass a non-empty --label".into(),
        });
    }
    let mut done = Imported::default();
    for rec in &results.runs {
        let e = entry(&results, rec, &night, "import").map_err(|message| HistoryError::Input {
            what: format!("run {} in {} cannot be recorded: {message}", rec.id, dir.display()),
            fix: "re-run the scenario".into(),
        })?;
        match db.history_add(&e)? {
            None => done.added += 1,
            Some(was) => done.already.push((rec.id.clone(), was)),
        }
    }
    Ok((night, done))
}

/// Nights whose label has this after the confirmed night's label are confirmation reruns
/// (`quadbench regressions --confirm`): used to confirm, never as nights of their own.
pub const CONFIRM_MARK: &str = "~confirm-";

/// A confirmation rerun's night label?
pub fn is_confirmation(night: &str) -> bool {
    night.contains(CONFIRM_MARK)
}

/// The history as runs (records with their samples), optionally only nights whose label
/// starts with `label`; confirmation reruns are left out.
pub fn load(db: &Db, label: Option<&str>) -> Result<Vec<HistoryRun>, HistoryError> {
    db.history(label)?.into_iter().filter(|e| !is_confirmation(&e.night)).map(run_of).collect()
}

/// The runs of one night exactly (a confirmation rerun's).
pub fn night(db: &Db, label: &str) -> Result<Vec<HistoryRun>, HistoryError> {
    db.history(Some(label))?.into_iter().filter(|e| e.night == label).map(run_of).collect()
}

fn run_of(e: HistoryEntry) -> Result<HistoryRun, HistoryError> {
    let corrupt = |message: String| HistoryError::Corrupt { fingerprint: e.fingerprint.clone(), message };
    let mut record: RunRecord = serde_json::from_str(&e.record_json).map_err(|x| corrupt(x.to_string()))?;
    record.samples = serde_json::from_str(&e.samples_json).map_err(|x| corrupt(x.to_string()))?;
    if record.key.is_empty() {
        record.key = e.series_key.clone();
    }
    Ok(HistoryRun { night: e.night, started_at: e.started_at, record })
}

/// Every device in the history, with the farm's health for those the farm knows.
pub fn devices(db: &Db, runs: &[HistoryRun]) -> Result<Vec<DeviceHealth>, HistoryError> {
    let farm: BTreeMap<String, quadbench_farm::DeviceRow> =
        db.devices()?.into_iter().map(|d| (d.reg.name.clone(), d)).collect();
    let mut out: BTreeMap<String, DeviceHealth> = BTreeMap::new();
    for r in runs {
        let d = out.entry(r.record.device.clone()).or_insert_with(|| {
            let known = farm.get(&r.record.device);
            DeviceHealth {
                name: r.record.device.clone(),
                host: known.map(|k| k.reg.host.clone()).unwrap_or_else(|| r.record.host.clone()),
                health: known.map(|k| k.health.as_str().to_string()).unwrap_or_else(|| "-".into()),
                note: known.map(|k| k.health_note.clone()).unwrap_or_default(),
                last_run_at: String::new(),
                runs: 0,
                failed_runs: 0,
            }
        });
        d.runs += 1;
        if r.record.status != RunState::Ok || !r.record.valid {
            d.failed_runs += 1;
        }
        if r.started_at > d.last_run_at {
            d.last_run_at = r.started_at.clone();
        }
    }
    Ok(out.into_values().collect())
}
