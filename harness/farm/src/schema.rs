//! The schema and its migrations. `farm_schema` holds one row, the version; each migration
//! brings the schema from the version before it to its own, in one transaction that first
//! takes the schema lock and re-reads the version, so that processes initialising or opening
//! the same database at once apply each migration exactly once.

use sqlx::{Any, Executor};

use crate::conn::{Conn, Ctx};
use crate::{Engine, FarmError, SCHEMA_VERSION};

/// One step of the schema, written for each engine.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    fn sql(&self, engine: Engine) -> &'static str {
        match engine {
            Engine::Sqlite => self.sqlite,
            Engine::Postgres => self.postgres,
        }
    }
}

/// In order; the last one's version is [`SCHEMA_VERSION`].
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sqlite: V1_SQLITE, postgres: V1_POSTGRES },
    Migration { version: 2, sqlite: V2_SQLITE, postgres: V2_POSTGRES },
];

/// Version 2: the run history (`history.rs`), one row per finished run, unique by the run's
/// fingerprint (imports are idempotent). `started_at` is fixed-width RFC 3339, so it orders as
/// text; `valid` is 0/1.
const V2_SQLITE: &str = "
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    series_key TEXT NOT NULL,
    night TEXT NOT NULL,
    scenario TEXT NOT NULL,
    device TEXT NOT NULL,
    backend TEXT NOT NULL,
    precision TEXT NOT NULL,
    strategy TEXT NOT NULL,
    replicate INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    status TEXT NOT NULL,
    valid INTEGER NOT NULL,
    package_sha256 TEXT NOT NULL,
    package_name TEXT NOT NULL,
    git_revision TEXT NOT NULL,
    ort_version TEXT NOT NULL,
    device_model TEXT NOT NULL,
    device_soc TEXT NOT NULL,
    source TEXT NOT NULL,
    record_json TEXT NOT NULL,
    samples_json TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_series ON history (series_key, started_at);
CREATE INDEX IF NOT EXISTS history_night ON history (night);
";

/// Version 2 for PostgreSQL (the same translation as version 1).
const V2_POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    series_key TEXT NOT NULL,
    night TEXT NOT NULL,
    scenario TEXT NOT NULL,
    device TEXT NOT NULL,
    backend TEXT NOT NULL,
    precision TEXT NOT NULL,
    strategy TEXT NOT NULL,
    replicate BIGINT NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    status TEXT NOT NULL,
    valid BIGINT NOT NULL,
    package_sha256 TEXT NOT NULL,
    package_name TEXT NOT NULL,
    git_revision TEXT NOT NULL,
    ort_version TEXT NOT NULL,
    device_model TEXT NOT NULL,
    device_soc TEXT NOT NULL,
    source TEXT NOT NULL,
    record_json TEXT NOT NULL,
    samples_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_series ON history (series_key, started_at);
CREATE INDEX IF NOT EXISTS history_night ON history (night);
";

/// Version 1. Enumerations are TEXT (the Any driver has no enum types); times are ms since the
/// epoch (server clock). `jobs.lease_agent`/`lease_device` keep the last holder after the job
/// leaves `running`; `artefacts.seq` keeps the order the run listed its files in.
const V1_SQLITE: &str = "
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY,
    heartbeat_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    transport TEXT NOT NULL,
    profile_sha256 TEXT NOT NULL,
    soc TEXT,
    abi TEXT,
    model TEXT,
    health TEXT NOT NULL,
    health_note TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    scenario_name TEXT NOT NULL,
    scenario_path TEXT NOT NULL,
    scenario_sha256 TEXT NOT NULL,
    scenario_text TEXT NOT NULL,
    priority INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    submission_id INTEGER NOT NULL REFERENCES submissions (id),
    idx INTEGER NOT NULL,
    run_key TEXT NOT NULL,
    req_device TEXT,
    req_soc TEXT,
    req_abi TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    lease_agent TEXT,
    lease_device TEXT,
    lease_expires_ms INTEGER,
    fencing_token INTEGER NOT NULL,
    not_before_ms INTEGER NOT NULL,
    avoid_device TEXT,
    avoid_until_ms INTEGER,
    error TEXT,
    updated_ms INTEGER NOT NULL,
    UNIQUE (submission_id, idx)
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, not_before_ms);
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (state, lease_expires_ms);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES jobs (id),
    submission_id INTEGER NOT NULL REFERENCES submissions (id),
    idx INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    run_key TEXT NOT NULL,
    device TEXT NOT NULL,
    agent TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    record_json TEXT NOT NULL,
    header_json TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_submission ON runs (submission_id, idx);
CREATE TABLE IF NOT EXISTS artefacts (
    run INTEGER NOT NULL REFERENCES runs (id),
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (run, path)
);
";

/// Version 1 for PostgreSQL: [`V1_SQLITE`] with `BIGINT` for `INTEGER`, identity columns for
/// the row ids and `BYTEA` for `BLOB` (a test checks the two say the same otherwise).
const V1_POSTGRES: &str = "
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    transport TEXT NOT NULL,
    profile_sha256 TEXT NOT NULL,
    soc TEXT,
    abi TEXT,
    model TEXT,
    health TEXT NOT NULL,
    health_note TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS submissions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    scenario_name TEXT NOT NULL,
    scenario_path TEXT NOT NULL,
    scenario_sha256 TEXT NOT NULL,
    scenario_text TEXT NOT NULL,
    priority BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    submission_id BIGINT NOT NULL REFERENCES submissions (id),
    idx BIGINT NOT NULL,
    run_key TEXT NOT NULL,
    req_device TEXT,
    req_soc TEXT,
    req_abi TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    lease_agent TEXT,
    lease_device TEXT,
    lease_expires_ms BIGINT,
    fencing_token BIGINT NOT NULL,
    not_before_ms BIGINT NOT NULL,
    avoid_device TEXT,
    avoid_until_ms BIGINT,
    error TEXT,
    updated_ms BIGINT NOT NULL,
    UNIQUE (submission_id, idx)
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, not_before_ms);
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (state, lease_expires_ms);
CREATE TABLE IF NOT EXISTS runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id BIGINT NOT NULL UNIQUE REFERENCES jobs (id),
    submission_id BIGINT NOT NULL REFERENCES submissions (id),
    idx BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    run_key TEXT NOT NULL,
    device TEXT NOT NULL,
    agent TEXT NOT NULL,
    fencing_token BIGINT NOT NULL,
    record_json TEXT NOT NULL,
    header_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_submission ON runs (submission_id, idx);
CREATE TABLE IF NOT EXISTS artefacts (
    run BIGINT NOT NULL REFERENCES runs (id),
    seq BIGINT NOT NULL,
    path TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (run, path)
);
";

/// The version table, the same on both engines; the CHECK keeps it to one row.
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS farm_schema (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
)";

/// `init`: creates the version table (version 0: nothing else yet) unless it exists.
pub(crate) async fn create_version_table(conn: &Conn) -> Result<(), FarmError> {
    let what = "create the schema version table";
    let mut tx = conn.begin(what).await?;
    lock(conn, &mut *tx).await?;
    tx.execute(VERSION_TABLE).await.ctx(conn, what)?;
    tx.execute("INSERT INTO farm_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
        .await
        .ctx(conn, what)?;
    tx.commit().await.ctx(conn, what)
}

/// `open`: [`FarmError::NotInitialised`] unless the version table exists.
pub(crate) async fn require_version_table(conn: &Conn) -> Result<(), FarmError> {
    let n: i64 = sqlx::query_scalar(conn.engine.table_exists_sql())
        .bind("farm_schema")
        .fetch_one(&conn.pool)
        .await
        .ctx(conn, "look for the farm schema")?;
    if n == 0 {
        return Err(FarmError::NotInitialised { url: conn.url.clone() });
    }
    Ok(())
}

/// Applies the migrations the database lacks, each in its own transaction; refuses a schema
/// newer than this build's ([`FarmError::NewerSchema`]) and leaves it untouched.
pub(crate) async fn migrate(conn: &Conn) -> Result<(), FarmError> {
    let found = version(conn, &conn.pool).await?;
    check_not_newer(conn, found)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let what = format!("migrate the farm schema to version {}", m.version);
        let mut tx = conn.begin(&what).await?;
        lock(conn, &mut *tx).await?;
        // Another process may have migrated since the read above.
        let now = version(conn, &mut *tx).await?;
        check_not_newer(conn, now)?;
        if now >= m.version {
            tx.rollback().await.ctx(conn, &what)?;
            continue;
        }
        tx.execute(m.sql(conn.engine)).await.ctx(conn, &what)?;
        sqlx::query("UPDATE farm_schema SET version = $1 WHERE id = 1")
            .bind(m.version)
            .execute(&mut *tx)
            .await
            .ctx(conn, &what)?;
        tx.commit().await.ctx(conn, &what)?;
    }
    Ok(())
}

fn check_not_newer(conn: &Conn, found: i64) -> Result<(), FarmError> {
    if found > SCHEMA_VERSION {
        return Err(FarmError::NewerSchema { url: conn.url.clone(), found, supported: SCHEMA_VERSION });
    }
    Ok(())
}

/// The schema version (0 when the version table has no row yet).
async fn version<'e, E: Executor<'e, Database = Any>>(conn: &Conn, ex: E) -> Result<i64, FarmError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT version FROM farm_schema WHERE id = 1")
        .fetch_optional(ex)
        .await
        .ctx(conn, "read the farm schema version")?;
    Ok(v.unwrap_or(0))
}

/// Serialises schema changes between processes (see [`Engine::schema_lock_sql`]).
async fn lock<'e, E: Executor<'e, Database = Any>>(conn: &Conn, ex: E) -> Result<(), FarmError> {
    if let Some(sql) = conn.engine.schema_lock_sql() {
        ex.execute(sql).await.ctx(conn, "lock the farm schema")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_migration_is_this_builds_version() {
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
        assert!(MIGRATIONS.windows(2).all(|w| w[1].version == w[0].version + 1));
    }

    #[test]
    fn both_engines_get_the_same_schema() {
        for m in MIGRATIONS {
            let pg_as_sqlite = m
                .postgres
                .replace("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "INTEGER PRIMARY KEY")
                .replace("BIGINT", "INTEGER")
                .replace("BYTEA", "BLOB");
            assert_eq!(pg_as_sqlite, m.sqlite, "version {}", m.version);
        }
    }
}
