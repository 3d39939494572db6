//! The enumerations' TEXT forms and the decoding of result rows into the public row types.
//! Column names here are the ones the queries select (`queue.rs`, `fleet.rs`).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{DeviceReg, DeviceRow, Health, HostRow, JobRow, JobState, Requirement, SubmissionRow};

fn bad_text(kind: &str, text: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {kind} `{text}` in the database").into())
}

impl Health {
    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Good => "good",
            Health::Bad => "bad",
            Health::Retired => "retired",
        }
    }

    fn parse(text: &str) -> Result<Health, sqlx::Error> {
        [Health::Unknown, Health::Good, Health::Bad, Health::Retired]
            .into_iter()
            .find(|h| h.as_str() == text)
            .ok_or_else(|| bad_text("device health", text))
    }
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<JobState, sqlx::Error> {
        [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| bad_text("job state", text))
    }
}

/// Selects a device with its host's heartbeat (0 when the host never sent one); append a
/// `WHERE`/`ORDER BY`.
pub(crate) const DEVICE_SELECT: &str = "SELECT d.name, d.host, d.transport, d.profile_sha256, d.soc, d.abi, \
     d.model, d.health, d.health_note, COALESCE(h.heartbeat_ms, 0) AS heartbeat_ms \
     FROM devices d LEFT JOIN hosts h ON h.name = d.host";

pub(crate) fn device(r: &AnyRow) -> Result<DeviceRow, sqlx::Error> {
    Ok(DeviceRow {
        reg: DeviceReg {
            name: r.try_get("name")?,
            host: r.try_get("host")?,
            transport: r.try_get("transport")?,
            profile_sha256: r.try_get("profile_sha256")?,
            soc: r.try_get("soc")?,
            abi: r.try_get("abi")?,
            model: r.try_get("model")?,
        },
        health: Health::parse(r.try_get("health")?)?,
        health_note: r.try_get("health_note")?,
        host_heartbeat_ms: r.try_get("heartbeat_ms")?,
    })
}

pub(crate) fn host(r: &AnyRow) -> Result<HostRow, sqlx::Error> {
    Ok(HostRow { name: r.try_get("name")?, heartbeat_ms: r.try_get("heartbeat_ms")? })
}

/// Selects a submission; append a `WHERE`/`ORDER BY`.
pub(crate) const SUBMISSION_SELECT: &str =
    "SELECT id, label, scenario_name, scenario_path, scenario_sha256, created_ms FROM submissions";

pub(crate) fn submission(r: &AnyRow) -> Result<SubmissionRow, sqlx::Error> {
    Ok(SubmissionRow {
        id: r.try_get("id")?,
        label: r.try_get("label")?,
        scenario_name: r.try_get("scenario_name")?,
        scenario_path: r.try_get("scenario_path")?,
        scenario_sha256: r.try_get("scenario_sha256")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// Selects jobs with their submission's label and attempt limit; append a `WHERE`/`ORDER BY`.
pub(crate) const JOB_SELECT: &str = "SELECT j.id, j.submission_id, s.label, j.idx, j.run_key, j.req_device, \
     j.req_soc, j.req_abi, j.state, j.attempts, s.max_attempts, j.lease_agent, j.lease_device, \
     j.lease_expires_ms, j.fencing_token, j.error \
     FROM jobs j JOIN submissions s ON s.id = j.submission_id";

pub(crate) fn job(r: &AnyRow) -> Result<JobRow, sqlx::Error> {
    Ok(JobRow {
        id: r.try_get("id")?,
        submission_id: r.try_get("submission_id")?,
        label: r.try_get("label")?,
        index: r.try_get("idx")?,
        key: r.try_get("run_key")?,
        requirement: Requirement {
            device: r.try_get("req_device")?,
            soc: r.try_get("req_soc")?,
            abi: r.try_get("req_abi")?,
        },
        state: JobState::parse(r.try_get("state")?)?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        agent: r.try_get("lease_agent")?,
        device: r.try_get("lease_device")?,
        lease_expires_ms: r.try_get("lease_expires_ms")?,
        fencing_token: r.try_get("fencing_token")?,
        error: r.try_get("error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerations_round_trip_through_text() {
        for h in [Health::Unknown, Health::Good, Health::Bad, Health::Retired] {
            assert_eq!(Health::parse(h.as_str()).unwrap(), h);
            assert_eq!(serde_json::to_value(h).unwrap(), h.as_str());
        }
        for s in [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed] {
            assert_eq!(JobState::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(Health::parse("fine").is_err());
        assert!(JobState::parse("paused").is_err());
    }
}
