//! The run history: one row per finished run, from the farm (written in the same fenced
//! transaction that finishes its job) or imported from a results directory. Rows are keyed by a
//! fingerprint the host computes from the run itself, so importing the same run twice adds
//! nothing. The farm stores the record and samples as opaque JSON text, like `runs`.

use sqlx::{Any, Row, Transaction};

use crate::FarmError;
use crate::conn::{Conn, Ctx};

/// One run in the history. Text columns the host fills from its run record; the farm only
/// filters and orders by `series_key`, `night` and `started_at`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryEntry {
    /// Identifies the run itself (sha256 over its key, host, start time, id and samples): a
    /// second import of the same run is recognised by it.
    pub fingerprint: String,
    /// `<scenario>/<device>/<backend>/<precision>/<strategy>`.
    pub series_key: String,
    /// The night (a farm submission label, or the label given at import).
    pub night: String,
    pub scenario: String,
    pub device: String,
    pub backend: String,
    pub precision: String,
    pub strategy: String,
    /// 1-based replicate number within the night.
    pub replicate: i64,
    pub host: String,
    /// UTC, RFC 3339 with three fractional digits (sorts as text).
    pub started_at: String,
    /// `ok`, `failed` or `unsupported`.
    pub status: String,
    pub valid: bool,
    pub package_sha256: String,
    pub package_name: String,
    pub git_revision: String,
    pub ort_version: String,
    /// What the device said it is (model, SoC): a change under the same name breaks
    /// comparability.
    pub device_model: String,
    pub device_soc: String,
    /// `farm` or `import`.
    pub source: String,
    /// The host's run record, JSON text.
    pub record_json: String,
    /// The run's raw samples by key, JSON text.
    pub samples_json: String,
}

const COLUMNS: &str = "fingerprint, series_key, night, scenario, device, backend, precision, strategy, replicate, \
     host, started_at, status, valid, package_sha256, package_name, git_revision, ort_version, device_model, \
     device_soc, source, record_json, samples_json";

/// Inserts `e` unless a run with its fingerprint is recorded; returns the night it is recorded
/// under when it was already there (`None`: inserted).
pub(crate) async fn add(
    conn: &Conn,
    tx: &mut Transaction<'static, Any>,
    e: &HistoryEntry,
    now: i64,
) -> Result<Option<String>, FarmError> {
    let what = "record a run in the history";
    let sql = format!(
        "INSERT INTO history ({COLUMNS}, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) ON CONFLICT (fingerprint) DO NOTHING"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&e.fingerprint)
        .bind(&e.series_key)
        .bind(&e.night)
        .bind(&e.scenario)
        .bind(&e.device)
        .bind(&e.backend)
        .bind(&e.precision)
        .bind(&e.strategy)
        .bind(e.replicate)
        .bind(&e.host)
        .bind(&e.started_at)
        .bind(&e.status)
        .bind(i64::from(e.valid))
        .bind(&e.package_sha256)
        .bind(&e.package_name)
        .bind(&e.git_revision)
        .bind(&e.ort_version)
        .bind(&e.device_model)
        .bind(&e.device_soc)
        .bind(&e.source)
        .bind(&e.record_json)
        .bind(&e.samples_json)
        .bind(now)
        .execute(&mut **tx)
        .await
        .ctx(conn, what)?;
    if done.rows_affected() > 0 {
        return Ok(None);
    }
    let night: String = sqlx::query_scalar("SELECT night FROM history WHERE fingerprint = $1")
        .bind(&e.fingerprint)
        .fetch_one(&mut **tx)
        .await
        .ctx(conn, what)?;
    Ok(Some(night))
}

/// Every recorded run, optionally only the nights whose label starts with `label_prefix`,
/// ordered by series, then start time.
pub(crate) async fn entries(conn: &Conn, label_prefix: Option<&str>) -> Result<Vec<HistoryEntry>, FarmError> {
    let what = "read the history";
    let sql = format!("SELECT {COLUMNS} FROM history ORDER BY series_key, started_at, replicate, fingerprint");
    let found = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&conn.pool).await.ctx(conn, what)?;
    let mut out = Vec::with_capacity(found.len());
    for r in &found {
        let e = entry(r).ctx(conn, what)?;
        if label_prefix.is_none_or(|p| e.night.starts_with(p)) {
            out.push(e);
        }
    }
    Ok(out)
}

fn entry(r: &sqlx::any::AnyRow) -> Result<HistoryEntry, sqlx::Error> {
    let valid: i64 = r.try_get("valid")?;
    Ok(HistoryEntry {
        fingerprint: r.try_get("fingerprint")?,
        series_key: r.try_get("series_key")?,
        night: r.try_get("night")?,
        scenario: r.try_get("scenario")?,
        device: r.try_get("device")?,
        backend: r.try_get("backend")?,
        precision: r.try_get("precision")?,
        strategy: r.try_get("strategy")?,
        replicate: r.try_get("replicate")?,
        host: r.try_get("host")?,
        started_at: r.try_get("started_at")?,
        status: r.try_get("status")?,
        valid: valid != 0,
        package_sha256: r.try_get("package_sha256")?,
        package_name: r.try_get("package_name")?,
        git_revision: r.try_get("git_revision")?,
        ort_version: r.try_get("ort_version")?,
        device_model: r.try_get("device_model")?,
        device_soc: r.try_get("device_soc")?,
        source: r.try_get("source")?,
        record_json: r.try_get("record_json")?,
        samples_json: r.try_get("samples_json")?,
    })
}

/// [`add`] in a transaction of its own (imports).
pub(crate) async fn add_one(conn: &Conn, e: &HistoryEntry) -> Result<Option<String>, FarmError> {
    let what = "record a run in the history";
    let mut tx = conn.begin(what).await?;
    let now = conn.now(&mut *tx).await?;
    let found = add(conn, &mut tx, e, now).await?;
    tx.commit().await.ctx(conn, what)?;
    Ok(found)
}
