//! Every difference between the two engines' SQL, in one place: the server clock, how a
//! write transaction starts, row locking, catalog lookups, and the schema's DDL (see
//! `schema.rs`). Everything else is SQL both engines run as written, with `$N` parameters
//! (sqlx's SQLite driver binds `$N` by number).

use crate::Engine;

impl Engine {
    /// The server clock in ms since the Unix epoch, as a one-row query.
    pub(crate) fn now_sql(self) -> &'static str {
        match self {
            // 'subsec' (SQLite 3.42) keeps the milliseconds.
            Engine::Sqlite => "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER) AS now_ms",
            // clock_timestamp(), not now(): now() is frozen at the transaction's start.
            Engine::Postgres => "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now_ms",
        }
    }

    /// How a transaction that writes starts. SQLite: take the write lock up front, so that a
    /// transaction that reads first cannot fail to upgrade later (SQLITE_BUSY without waiting)
    /// and so that writers queue on the busy timeout. PostgreSQL: rows are locked one by one.
    pub(crate) fn begin_write_sql(self) -> &'static str {
        match self {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        }
    }

    /// Appended to a `SELECT ... FROM jobs j ...` that picks a job to claim: PostgreSQL locks
    /// the row and skips rows other claimers hold; SQLite already holds the database's write
    /// lock (`BEGIN IMMEDIATE`).
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE OF j SKIP LOCKED",
        }
    }

    /// Appended to a `SELECT ... FROM jobs j ...` that reads a job it will then update in the
    /// same transaction.
    pub(crate) fn lock_row(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE OF j",
        }
    }

    /// Counts tables named `$1` in the current database (schema).
    pub(crate) fn table_exists_sql(self) -> &'static str {
        match self {
            Engine::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1",
            Engine::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        }
    }

    /// Statements run first in every schema transaction. PostgreSQL: a transaction-scoped
    /// advisory lock serialises concurrent `init`/`open` (concurrent `CREATE TABLE IF NOT
    /// EXISTS` can otherwise fail on the catalog's unique index); SQLite: `BEGIN IMMEDIATE`
    /// already does.
    pub(crate) fn schema_lock_sql(self) -> Option<&'static str> {
        match self {
            Engine::Sqlite => None,
            // pg_advisory_xact_lock returns void, which the Any driver cannot decode: select a
            // constant from it instead.
            Engine::Postgres => Some("SELECT 1 AS locked FROM pg_advisory_xact_lock(7146982301)"),
        }
    }
}
