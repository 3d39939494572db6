//! The writes an agent makes for a job it claimed (`finish`, `fail_infra`, `hand_back`), each
//! conditional on the claim still holding the job (same agent, same fencing token, still
//! running); and the runs they store, read back.

use std::collections::HashMap;

use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::conn::{Conn, Ctx};
use crate::{Claim, FarmError, InfraOutcome, RunRow, RunWrite};

/// The fence, on a `jobs` row aliased `j`: `$2` job id, `$3` agent, `$4` token.
const HELD: &str = "j.id = $2 AND j.lease_agent = $3 AND j.fencing_token = $4 AND j.state = 'running'";

fn lease_lost(claim: &Claim) -> FarmError {
    FarmError::LeaseLost { job_id: claim.job_id, token: claim.fencing_token, agent: claim.agent.clone() }
}

pub(crate) async fn finish(conn: &Conn, claim: &Claim, run: &RunWrite) -> Result<(), FarmError> {
    let what = "finish a job";
    let mut tx = conn.begin(what).await?;
    let now = conn.now(&mut *tx).await?;
    // Updating first takes the row's lock (PostgreSQL): the fence cannot change before commit.
    let sql = format!("UPDATE jobs AS j SET state = 'done', lease_expires_ms = NULL, updated_ms = $1 WHERE {HELD}");
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(now)
        .bind(claim.job_id)
        .bind(&claim.agent)
        .bind(claim.fencing_token)
        .execute(&mut *tx)
        .await
        .ctx(conn, what)?;
    if done.rows_affected() == 0 {
        tx.rollback().await.ctx(conn, what)?;
        return Err(lease_lost(claim));
    }
    insert_run(conn, &mut tx, claim, run, now).await?;
    tx.commit().await.ctx(conn, what)
}

pub(crate) async fn fail_infra(
    conn: &Conn,
    claim: &Claim,
    error: &str,
    retry_after_ms: i64,
    avoid_ms: i64,
    last_run: Option<&RunWrite>,
) -> Result<InfraOutcome, FarmError> {
    let what = "record an infrastructure failure";
    let mut tx = conn.begin(what).await?;
    let now = conn.now(&mut *tx).await?;
    let sql = format!(
        "SELECT j.attempts, s.max_attempts FROM jobs j JOIN submissions s ON s.id = j.submission_id \
         WHERE j.id = $1 AND j.lease_agent = $2 AND j.fencing_token = $3 AND j.state = 'running'{}",
        conn.engine.lock_row()
    );
    let held = sqlx::query(AssertSqlSafe(sql))
        .bind(claim.job_id)
        .bind(&claim.agent)
        .bind(claim.fencing_token)
        .fetch_optional(&mut *tx)
        .await
        .ctx(conn, what)?;
    let Some(held) = held else {
        tx.rollback().await.ctx(conn, what)?;
        return Err(lease_lost(claim));
    };
    let attempts: i64 = held.try_get("attempts").ctx(conn, what)?;
    let max_attempts: i64 = held.try_get("max_attempts").ctx(conn, what)?;
    let outcome = if attempts < max_attempts {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_expires_ms = NULL, not_before_ms = $1, avoid_device = $2, \
             avoid_until_ms = $3, error = $4, updated_ms = $5 WHERE id = $6",
        )
        .bind(now + retry_after_ms)
        .bind(&claim.device)
        .bind(now + avoid_ms)
        .bind(error)
        .bind(now)
        .bind(claim.job_id)
        .execute(&mut *tx)
        .await
        .ctx(conn, what)?;
        InfraOutcome::Requeued
    } else {
        sqlx::query(
            "UPDATE jobs SET state = 'failed', lease_expires_ms = NULL, error = $1, updated_ms = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(now)
        .bind(claim.job_id)
        .execute(&mut *tx)
        .await
        .ctx(conn, what)?;
        if let Some(run) = last_run {
            insert_run(conn, &mut tx, claim, run, now).await?;
        }
        InfraOutcome::Failed
    };
    tx.commit().await.ctx(conn, what)?;
    Ok(outcome)
}

/// One statement: back to the queue, due now, the lease cleared and the attempt uncounted.
pub(crate) async fn hand_back(conn: &Conn, claim: &Claim) -> Result<(), FarmError> {
    let what = "hand a job back";
    let now = conn.now(&conn.pool).await?;
    let sql = format!(
        "UPDATE jobs AS j SET state = 'queued', attempts = attempts - 1, lease_agent = NULL, lease_device = NULL, \
         lease_expires_ms = NULL, not_before_ms = $1, updated_ms = $1 WHERE {HELD}"
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(now)
        .bind(claim.job_id)
        .bind(&claim.agent)
        .bind(claim.fencing_token)
        .execute(&conn.pool)
        .await
        .ctx(conn, what)?;
    if done.rows_affected() == 0 {
        return Err(lease_lost(claim));
    }
    Ok(())
}

/// Stores `run` as the job's run, with its artefacts in their order and its history row, in
/// the caller's transaction (which has checked the fence).
async fn insert_run(
    conn: &Conn,
    tx: &mut Transaction<'static, Any>,
    claim: &Claim,
    run: &RunWrite,
    now: i64,
) -> Result<(), FarmError> {
    let what = "store a run";
    let run_row: i64 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, submission_id, idx, run_id, run_key, device, agent, fencing_token, \
         record_json, header_json, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(claim.job_id)
    .bind(claim.submission_id)
    .bind(claim.index)
    .bind(&run.run_id)
    .bind(&run.key)
    .bind(&claim.device)
    .bind(&claim.agent)
    .bind(claim.fencing_token)
    .bind(&run.record_json)
    .bind(&run.header_json)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .ctx(conn, what)?;
    for (seq, (path, bytes)) in (0_i64..).zip(&run.artefacts) {
        sqlx::query("INSERT INTO artefacts (run, seq, path, bytes) VALUES ($1, $2, $3, $4)")
            .bind(run_row)
            .bind(seq)
            .bind(path)
            .bind(bytes.as_slice())
            .execute(&mut **tx)
            .await
            .ctx(conn, what)?;
    }
    if let Some(h) = &run.history {
        crate::history::add(conn, tx, h, now).await?;
    }
    Ok(())
}

pub(crate) async fn runs(conn: &Conn, submission_id: i64) -> Result<Vec<RunRow>, FarmError> {
    let what = "read runs";
    // A run and its artefacts are committed together: every run listed here has all of its
    // artefacts in the second read (which may also see newer runs; they are ignored).
    let found = sqlx::query(
        "SELECT id, job_id, idx, run_id, run_key, device, agent, fencing_token, record_json, header_json \
         FROM runs WHERE submission_id = $1 ORDER BY idx",
    )
    .bind(submission_id)
    .fetch_all(&conn.pool)
    .await
    .ctx(conn, what)?;
    let files = sqlx::query(
        "SELECT a.run, a.path, a.bytes FROM artefacts a JOIN runs r ON r.id = a.run \
         WHERE r.submission_id = $1 ORDER BY a.run, a.seq",
    )
    .bind(submission_id)
    .fetch_all(&conn.pool)
    .await
    .ctx(conn, what)?;
    let mut artefacts: HashMap<i64, Vec<(String, Vec<u8>)>> = HashMap::new();
    for f in &files {
        let run: i64 = f.try_get("run").ctx(conn, what)?;
        artefacts
            .entry(run)
            .or_default()
            .push((f.try_get("path").ctx(conn, what)?, f.try_get("bytes").ctx(conn, what)?));
    }
    let run_row = |r: &sqlx::any::AnyRow| -> Result<RunRow, sqlx::Error> {
        let id: i64 = r.try_get("id")?;
        Ok(RunRow {
            job_id: r.try_get("job_id")?,
            index: r.try_get("idx")?,
            device: r.try_get("device")?,
            agent: r.try_get("agent")?,
            fencing_token: r.try_get("fencing_token")?,
            write: RunWrite {
                run_id: r.try_get("run_id")?,
                key: r.try_get("run_key")?,
                record_json: r.try_get("record_json")?,
                header_json: r.try_get("header_json")?,
                artefacts: artefacts.remove(&id).unwrap_or_default(),
                history: None,
            },
        })
    };
    found.iter().map(run_row).collect::<Result<_, _>>().ctx(conn, what)
}
