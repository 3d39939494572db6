//! `farm results LABEL --out DIR`: a results directory rebuilt from the database: every stored
//! run's files (samples, outputs, plan and result JSON) and a results.json with the runs in plan
//! order, the devices that ran them and the submission's claims evaluated over all of them;
//! then every report, made by the same code as `quadbench report`, so the directory is the one a
//! local run would have left. A job that failed for good without a run gets a failed record.

use super::{Db, FarmCmdError, Header, Payload};
use crate::results::{Results, RunIdentity, RunRecord};
use quadbench_farm::{JobState, RunRow};
use std::path::Path;

/// Write the results directory of submission `label` into `out` (which must not hold results).
pub fn write(db: &Db, label: &str, out: &Path) -> Result<Results, FarmCmdError> {
    let sub = db.submission(label)?.ok_or_else(|| FarmCmdError::NoSubmission { label: label.into() })?;
    let rows = db.runs(sub.id)?;
    let jobs = db.jobs(Some(label))?;
    let first = rows.first().ok_or_else(|| FarmCmdError::NoRuns { label: label.into() })?;
    let Header { header, claims } = parse::<Header>(&first.write.header_json, "header")?;
    if out.join("results.json").exists() {
        return Err(FarmCmdError::Input {
            what: format!("{} already holds results (results.json); nothing was overwritten", out.display()),
            fix: "choose a new --out".into(),
        });
    }
    let mut results = Results { devices: Vec::new(), runs: Vec::new(), claims: Vec::new(), complete: false, ..header };
    let mut by_index: Vec<(i64, RunRecord)> = Vec::new();
    for row in &rows {
        let rec = parse::<RunRecord>(&row.write.record_json, "run record")?;
        let h = parse::<Header>(&row.write.header_json, "header")?;
        for d in h.header.devices {
            if !results.devices.iter().any(|x| x.name == d.name) {
                results.devices.push(d);
            }
        }
        write_artefacts(row, out)?;
        by_index.push((row.index, rec));
    }
    for job in jobs.iter().filter(|j| j.state == JobState::Failed && !rows.iter().any(|r| r.job_id == j.id)) {
        by_index.push((job.index, failed_record(job)));
    }
    by_index.sort_by_key(|(i, _)| *i);
    results.runs = by_index.into_iter().map(|(_, r)| r).collect();
    results.claims = crate::claims::evaluate_claims(&claims, &results.runs);
    results.complete = jobs.iter().all(|j| matches!(j.state, JobState::Done | JobState::Failed));
    let path = out.join("results.json");
    crate::results::write_json_atomic(&path, &results)
        .map_err(|e| FarmCmdError::Output { path: path.display().to_string(), message: e.to_string() })?;
    crate::report::generate(out, &[], None)?;
    Ok(results)
}

fn parse<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, FarmCmdError> {
    serde_json::from_str(json).map_err(|e| FarmCmdError::Corrupt { what: what.into(), message: e.to_string() })
}

/// A run's files, each under a safe relative path (the database is not trusted with `..`).
fn write_artefacts(row: &RunRow, out: &Path) -> Result<(), FarmCmdError> {
    for (rel, bytes) in &row.write.artefacts {
        if !crate::safe_relative_path(rel) {
            return Err(FarmCmdError::Corrupt {
                what: format!("artefact of run {}", row.write.run_id),
                message: format!("unsafe path `{}`", rel.escape_debug()),
            });
        }
        let path = out.join(rel);
        let io = |e: std::io::Error| FarmCmdError::Output { path: path.display().to_string(), message: e.to_string() };
        std::fs::create_dir_all(path.parent().unwrap_or(out)).map_err(io)?;
        std::fs::write(&path, bytes).map_err(io)?;
    }
    Ok(())
}

/// The record of a job that failed for good before any run was stored.
fn failed_record(job: &quadbench_farm::JobRow) -> RunRecord {
    // Keys are `<scenario>/<device or requirement>/<backend>/<precision>/<strategy>`.
    let parts: Vec<&str> = job.key.split('/').collect();
    let device = job.device.clone().unwrap_or_else(|| parts.get(1).unwrap_or(&"?").to_string());
    let payload = Payload {
        backend: parts.get(2).unwrap_or(&"?").to_string(),
        strategy: parts
            .get(4)
            .and_then(|s| quadbench_protocol::Strategy::parse(s))
            .unwrap_or(quadbench_protocol::Strategy::ALL[0]),
        precision: parts.get(3).unwrap_or(&"?").to_string(),
        // The job row does not carry its payload: a replicate that failed for good is listed
        // as replicate 1.
        replicate: 1,
    };
    let id = format!("{device}-{}-{}-{}", payload.backend, payload.precision, payload.strategy);
    let run = RunIdentity {
        id: &id,
        device: &device,
        backend: &payload.backend,
        precision: &payload.precision,
        strategy: payload.strategy,
    };
    let error = job.error.clone().unwrap_or_else(|| "failed in the farm".into());
    let mut r = RunRecord::failed(run, Default::default(), error, String::new(), true);
    r.key = job.key.clone();
    r
}
