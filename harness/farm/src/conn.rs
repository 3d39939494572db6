//! The connection pool and the runtime it runs on, the per-connection SQLite settings, and the
//! mapping of sqlx errors to [`FarmError`] (which of them a retry may cure).

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

use crate::url::Target;
use crate::{Engine, FarmError};

/// How long a query waits for a pooled connection (or a new one) before failing retryably: short
/// enough that an agent notices a database server that went away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Enough for the host's worker threads; SQLite writers queue on the write lock anyway.
const MAX_CONNECTIONS: u32 = 8;

/// SQLite: how long a statement waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// A pool to one farm database, with what the queries need to know about it.
pub(crate) struct Conn {
    pub(crate) pool: AnyPool,
    pub(crate) engine: Engine,
    /// The URL as the user gave it, password redacted: for messages.
    pub(crate) url: String,
}

/// The runtime every blocking method of [`crate::Db`] runs its query on.
pub(crate) fn runtime(url: &str) -> Result<tokio::runtime::Runtime, FarmError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FarmError::Connect { url: url.to_string(), message: format!("cannot start a runtime: {e}") })
}

/// Connects to `target`. `create`: create a missing SQLite file and its folder (`init`);
/// otherwise a missing file is [`FarmError::NotInitialised`] and is not created.
pub(crate) async fn connect(target: &Target, url: &str, create: bool) -> Result<Conn, FarmError> {
    let connect_err = |message: String| FarmError::Connect { url: url.to_string(), message };
    if let Target::Sqlite(path) = target {
        if create {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| connect_err(format!("cannot create {}: {e}", dir.display())))?;
            }
        } else if !path.exists() {
            return Err(FarmError::NotInitialised { url: url.to_string() });
        }
    }
    sqlx::any::install_default_drivers();
    let options = AnyConnectOptions::from_str(&target.sqlx_url(create)).map_err(|e| connect_err(e.to_string()))?;
    let engine = target.engine();
    probe(&options, engine).await.map_err(connect_err)?;
    let pool = AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if engine == Engine::Sqlite {
                    sqlite_settings(conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    Ok(Conn { pool, engine, url: url.to_string() })
}

/// One connection attempt, set up as the pool sets up each of its connections, closed at once.
/// The pool retries a failing connection (refused, or a file that is not an SQLite database)
/// until its acquire timeout and then reports only that it timed out; this says why, at once.
async fn probe(options: &AnyConnectOptions, engine: Engine) -> Result<(), String> {
    let attempt = async {
        let mut conn = AnyConnection::connect_with(options).await?;
        if engine == Engine::Sqlite {
            sqlite_settings(&mut conn).await?;
        }
        conn.close().await
    };
    match tokio::time::timeout(ACQUIRE_TIMEOUT, attempt).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs())),
    }
}

/// WAL (readers do not block the writer), a busy timeout (writers queue instead of failing),
/// and foreign keys (off by default in SQLite), on every new connection.
async fn sqlite_settings(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let busy = format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}");
    conn.execute(sqlx::AssertSqlSafe(busy)).await?;
    // Switching a database to WAL needs an exclusive lock that the busy timeout does not wait
    // for: when two processes create the database at once, one of them retries. Once the file
    // is in WAL mode (it stays so), this is a no-op.
    let mut tries = 0;
    loop {
        match conn.execute("PRAGMA journal_mode = WAL").await {
            Ok(_) => break,
            Err(e) if tries < 100 && is_retryable(Engine::Sqlite, &e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

impl Conn {
    /// Starts a transaction that will write (see [`Engine::begin_write_sql`]).
    pub(crate) async fn begin(&self, what: &str) -> Result<Transaction<'static, Any>, FarmError> {
        self.pool.begin_with(self.engine.begin_write_sql()).await.ctx(self, what)
    }

    /// The server clock, read through `ex` (the pool, or a transaction's connection).
    pub(crate) async fn now<'e, E: Executor<'e, Database = Any>>(&self, ex: E) -> Result<i64, FarmError> {
        sqlx::query_scalar::<_, i64>(self.engine.now_sql()).fetch_one(ex).await.ctx(self, "read the clock")
    }

    /// Maps a sqlx error of an operation described by `what`.
    pub(crate) fn error(&self, what: &str, e: sqlx::Error) -> FarmError {
        FarmError::Query { what: what.to_string(), message: e.to_string(), retryable: is_retryable(self.engine, &e) }
    }
}

/// `.ctx(conn, "what")`: a sqlx result as a [`FarmError`] result.
pub(crate) trait Ctx<T> {
    fn ctx(self, conn: &Conn, what: &str) -> Result<T, FarmError>;
}

impl<T> Ctx<T> for Result<T, sqlx::Error> {
    fn ctx(self, conn: &Conn, what: &str) -> Result<T, FarmError> {
        self.map_err(|e| conn.error(what, e))
    }
}

/// Whether the error is the connection's or the database's momentary state (a retry may
/// succeed) rather than the query's.
pub(crate) fn is_retryable(engine: Engine, e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match engine {
                // Extended result codes: the primary code is the low byte (5 BUSY, 6 LOCKED).
                Engine::Sqlite => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
                // 08: connection exception; 57P01-03: shutdown, crash, not yet accepting;
                // 40001/40P01: serialization failure, deadlock (the transaction was rolled back).
                Engine::Postgres => {
                    code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
                }
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A database error with a given code, as a driver would report it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "code {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn db_error(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Coded(code)))
    }

    #[test]
    fn connection_level_errors_are_retryable_and_query_errors_are_not() {
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::Error::other("reset"))] {
            assert!(is_retryable(Engine::Postgres, &e) && is_retryable(Engine::Sqlite, &e), "{e}");
        }
        assert!(!is_retryable(Engine::Sqlite, &sqlx::Error::RowNotFound));
        // PostgreSQL SQLSTATEs: admin shutdown, connection failure, deadlock; unique violation, syntax.
        for (code, retry) in
            [("57P01", true), ("08006", true), ("08001", true), ("40P01", true), ("23505", false), ("42601", false)]
        {
            assert_eq!(is_retryable(Engine::Postgres, &db_error(code)), retry, "{code}");
        }
        // SQLite extended result codes: BUSY, BUSY_SNAPSHOT, LOCKED; CONSTRAINT_UNIQUE, ERROR.
        for (code, retry) in [("5", true), ("517", true), ("6", true), ("2067", false), ("1", false)] {
            assert_eq!(is_retryable(Engine::Sqlite, &db_error(code)), retry, "{code}");
        }
    }
}
