//! Submissions and the job queue: submitting, listing, and the atomic claim with its lease;
//! renewing leases; what is pending for a device.

use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::conn::{Conn, Ctx};
use crate::rows::{self, JOB_SELECT, SUBMISSION_SELECT};
use crate::{Claim, DeviceReg, DeviceRow, FarmError, Health, JobRow, JobState, NewJob, NewSubmission, SubmissionRow};

pub(crate) async fn submit(conn: &Conn, s: &NewSubmission, jobs: &[NewJob]) -> Result<i64, FarmError> {
    let what = "submit";
    let mut tx = conn.begin(what).await?;
    let now = conn.now(&mut *tx).await?;
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO submissions (label, scenario_name, scenario_path, scenario_sha256, scenario_text, \
         priority, max_attempts, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(&s.label)
    .bind(&s.scenario_name)
    .bind(&s.scenario_path)
    .bind(&s.scenario_sha256)
    .bind(&s.scenario_text)
    .bind(s.priority)
    .bind(s.max_attempts)
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        // The only unique column of submissions besides the generated id.
        Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            return Err(FarmError::LabelExists { label: s.label.clone() });
        }
        Err(e) => return Err(conn.error(what, e)),
    };
    for j in jobs {
        sqlx::query(
            "INSERT INTO jobs (submission_id, idx, run_key, req_device, req_soc, req_abi, payload, state, \
             attempts, fencing_token, not_before_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $9)",
        )
        .bind(id)
        .bind(j.index)
        .bind(&j.key)
        .bind(j.requirement.device.as_deref())
        .bind(j.requirement.soc.as_deref())
        .bind(j.requirement.abi.as_deref())
        .bind(&j.payload)
        .bind(JobState::Queued.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .ctx(conn, what)?;
    }
    tx.commit().await.ctx(conn, what)?;
    Ok(id)
}

pub(crate) async fn submission(conn: &Conn, label: &str) -> Result<Option<SubmissionRow>, FarmError> {
    let what = "read a submission";
    let select = AssertSqlSafe(format!("{SUBMISSION_SELECT} WHERE label = $1"));
    let found = sqlx::query(select).bind(label).fetch_optional(&conn.pool).await.ctx(conn, what)?;
    found.as_ref().map(rows::submission).transpose().ctx(conn, what)
}

pub(crate) async fn submissions(conn: &Conn) -> Result<Vec<SubmissionRow>, FarmError> {
    let what = "list submissions";
    let select = AssertSqlSafe(format!("{SUBMISSION_SELECT} ORDER BY id"));
    let found = sqlx::query(select).fetch_all(&conn.pool).await.ctx(conn, what)?;
    found.iter().map(rows::submission).collect::<Result<_, _>>().ctx(conn, what)
}

pub(crate) async fn jobs(conn: &Conn, label: Option<&str>) -> Result<Vec<JobRow>, FarmError> {
    let what = "list jobs";
    let select =
        AssertSqlSafe(format!("{JOB_SELECT} WHERE ($1 IS NULL OR s.label = $1) ORDER BY j.submission_id, j.idx"));
    let found = sqlx::query(select).bind(label).fetch_all(&conn.pool).await.ctx(conn, what)?;
    found.iter().map(rows::job).collect::<Result<_, _>>().ctx(conn, what)
}

pub(crate) async fn pending_for(conn: &Conn, d: &DeviceReg) -> Result<i64, FarmError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') \
         AND (req_device IS NULL OR req_device = $1) AND (req_soc IS NULL OR req_soc = $2) \
         AND (req_abi IS NULL OR req_abi = $3)",
    )
    .bind(&d.name)
    .bind(d.soc.as_deref())
    .bind(d.abi.as_deref())
    .fetch_one(&conn.pool)
    .await
    .ctx(conn, "count pending jobs")
}

/// Jobs `j` (of submission `s`) that device `d` may run: the device is registered, Good, holds
/// no live lease (two agents that both attach a device of this name, a misconfigured farm or a
/// device moved between hosts, still never run two jobs on it at once), and meets every
/// requirement the job has. The health is read here, in the claim's transaction, not taken
/// from the caller's copy. `$1` is now.
const DEVICE_MAY_RUN: &str = "d.health = 'good' \
     AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.state = 'running' AND o.lease_device = d.name \
                     AND o.lease_expires_ms >= $1) \
     AND (j.req_device IS NULL OR j.req_device = d.name) \
     AND (j.req_soc IS NULL OR j.req_soc = d.soc) \
     AND (j.req_abi IS NULL OR j.req_abi = d.abi)";

/// `$1` now, `$2` the device. Running jobs whose lease expired on their last attempt: failed
/// rather than claimed (on PostgreSQL skipping rows another transaction holds, so that two
/// claims never wait on each other).
fn fail_exhausted_sql(conn: &Conn) -> String {
    format!(
        "UPDATE jobs SET state = 'failed', lease_expires_ms = NULL, updated_ms = $1, \
         error = 'lease expired on every attempt (' || attempts || ' attempts)' \
         WHERE id IN (SELECT j.id FROM jobs j JOIN submissions s ON s.id = j.submission_id \
         JOIN devices d ON d.name = $2 WHERE {DEVICE_MAY_RUN} \
         AND j.state = 'running' AND j.lease_expires_ms < $1 AND j.attempts >= s.max_attempts{})",
        conn.engine.skip_locked()
    )
}

/// `$1` now, `$2` the device, `$3` the agent, `$4` the lease length. Claims the first claimable
/// job in (priority, submission, index) order in one statement: a queued job that is due and
/// not avoiding this device, or a running job whose lease expired with attempts left.
fn claim_sql(conn: &Conn) -> String {
    format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, fencing_token = fencing_token + 1, \
         lease_agent = $3, lease_device = $2, lease_expires_ms = $1 + $4, updated_ms = $1 \
         WHERE id = (SELECT j.id FROM jobs j JOIN submissions s ON s.id = j.submission_id \
         JOIN devices d ON d.name = $2 WHERE {DEVICE_MAY_RUN} AND ( \
         (j.state = 'queued' AND j.not_before_ms <= $1 \
          AND (j.avoid_device IS NULL OR j.avoid_device <> $2 OR j.avoid_until_ms <= $1)) \
         OR (j.state = 'running' AND j.lease_expires_ms < $1 AND j.attempts < s.max_attempts)) \
         ORDER BY s.priority DESC, s.id, j.idx LIMIT 1{}) \
         RETURNING id, submission_id, idx, run_key, payload, fencing_token, attempts, lease_expires_ms",
        conn.engine.skip_locked()
    )
}

pub(crate) async fn claim(
    conn: &Conn,
    agent: &str,
    device: &DeviceRow,
    lease_ms: i64,
) -> Result<Option<Claim>, FarmError> {
    let what = "claim a job";
    // The caller's copy may be stale in either direction: it can veto, only the database's
    // health (read in the claim's statements) can allow.
    if device.health != Health::Good {
        return Ok(None);
    }
    let name = &device.reg.name;
    let mut tx = conn.begin(what).await?;
    if conn.engine == crate::Engine::Postgres {
        // Claims for one device queue here, so the device's live-lease check below sees the
        // other claim's committed lease (SQLite's BEGIN IMMEDIATE serialises all claims).
        sqlx::query("SELECT name FROM devices WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .ctx(conn, what)?;
    }
    let now = conn.now(&mut *tx).await?;
    sqlx::query(AssertSqlSafe(fail_exhausted_sql(conn)))
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await
        .ctx(conn, what)?;
    let claimed = sqlx::query(AssertSqlSafe(claim_sql(conn)))
        .bind(now)
        .bind(name)
        .bind(agent)
        .bind(lease_ms)
        .fetch_optional(&mut *tx)
        .await
        .ctx(conn, what)?;
    let claim = match claimed {
        Some(job) => Some(claim_of(conn, &mut tx, &job, agent, name).await?),
        None => None,
    };
    tx.commit().await.ctx(conn, what)?;
    Ok(claim)
}

/// The [`Claim`] for a job row the claim statement returned, with its submission's fields.
async fn claim_of(
    conn: &Conn,
    tx: &mut Transaction<'static, Any>,
    job: &AnyRow,
    agent: &str,
    device: &str,
) -> Result<Claim, FarmError> {
    let what = "claim a job";
    let submission_id: i64 = job.try_get("submission_id").ctx(conn, what)?;
    let s = sqlx::query("SELECT label, scenario_path, scenario_sha256, scenario_text FROM submissions WHERE id = $1")
        .bind(submission_id)
        .fetch_one(&mut **tx)
        .await
        .ctx(conn, what)?;
    let claim = || -> Result<Claim, sqlx::Error> {
        Ok(Claim {
            job_id: job.try_get("id")?,
            submission_id,
            label: s.try_get("label")?,
            index: job.try_get("idx")?,
            key: job.try_get("run_key")?,
            payload: job.try_get("payload")?,
            scenario_path: s.try_get("scenario_path")?,
            scenario_sha256: s.try_get("scenario_sha256")?,
            scenario_text: s.try_get("scenario_text")?,
            agent: agent.to_string(),
            device: device.to_string(),
            fencing_token: job.try_get("fencing_token")?,
            attempt: job.try_get("attempts")?,
            lease_expires_ms: job.try_get("lease_expires_ms")?,
        })
    };
    claim().ctx(conn, what)
}

/// One statement per lease (autocommit): each locks only its own row, so renewals never
/// deadlock with claims or with each other.
pub(crate) async fn renew(
    conn: &Conn,
    agent: &str,
    leases: &[(i64, i64)],
    lease_ms: i64,
) -> Result<Vec<i64>, FarmError> {
    let what = "renew leases";
    let now = conn.now(&conn.pool).await?;
    crate::fleet::touch_host(conn, &conn.pool, agent, now).await?;
    let mut lost = Vec::new();
    for &(job_id, token) in leases {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_ms = $1, updated_ms = $2 \
             WHERE id = $3 AND lease_agent = $4 AND fencing_token = $5 AND state = 'running'",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(job_id)
        .bind(agent)
        .bind(token)
        .execute(&conn.pool)
        .await
        .ctx(conn, what)?;
        if done.rows_affected() == 0 {
            lost.push(job_id);
        }
    }
    Ok(lost)
}

/// A rerun of some jobs of submission `label` as a new submission `new_label` (same scenario,
/// priority and attempts, raised by `priority_boost`), each job pinned to the device that ran
/// it. Returns the new submission's id, or `None` when no job of `label` has one of `keys`.
pub(crate) async fn resubmit(
    conn: &Conn,
    label: &str,
    keys: &[String],
    new_label: &str,
    priority_boost: i64,
) -> Result<Option<i64>, FarmError> {
    let what = "resubmit jobs";
    let found = sqlx::query(
        "SELECT s.scenario_name, s.scenario_path, s.scenario_sha256, s.scenario_text, s.priority, s.max_attempts, \
         j.idx, j.run_key, j.req_device, j.req_soc, j.req_abi, j.lease_device, j.payload \
         FROM jobs j JOIN submissions s ON s.id = j.submission_id WHERE s.label = $1 ORDER BY j.idx",
    )
    .bind(label)
    .fetch_all(&conn.pool)
    .await
    .ctx(conn, what)?;
    let mut sub: Option<crate::NewSubmission> = None;
    let mut jobs = Vec::new();
    for r in &found {
        let key: String = r.try_get("run_key").ctx(conn, what)?;
        if !keys.contains(&key) {
            continue;
        }
        if sub.is_none() {
            sub = Some(crate::NewSubmission {
                label: new_label.to_string(),
                scenario_name: r.try_get("scenario_name").ctx(conn, what)?,
                scenario_path: r.try_get("scenario_path").ctx(conn, what)?,
                scenario_sha256: r.try_get("scenario_sha256").ctx(conn, what)?,
                scenario_text: r.try_get("scenario_text").ctx(conn, what)?,
                priority: r.try_get::<i64, _>("priority").ctx(conn, what)? + priority_boost,
                max_attempts: r.try_get("max_attempts").ctx(conn, what)?,
            });
        }
        let ran_on: Option<String> = r.try_get("lease_device").ctx(conn, what)?;
        let requirement = crate::Requirement {
            device: ran_on.or(r.try_get("req_device").ctx(conn, what)?),
            soc: r.try_get("req_soc").ctx(conn, what)?,
            abi: r.try_get("req_abi").ctx(conn, what)?,
        };
        jobs.push(NewJob {
            index: r.try_get("idx").ctx(conn, what)?,
            key,
            requirement,
            payload: r.try_get("payload").ctx(conn, what)?,
        });
    }
    match sub {
        Some(s) => submit(conn, &s, &jobs).await.map(Some),
        None => Ok(None),
    }
}
