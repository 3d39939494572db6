//! The farm database's errors: each names what failed and says how to fix it.

/// What can go wrong with the farm database.
#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    /// The URL is not one of the supported forms.
    #[error("database URL `{url}` is not supported\n  hint: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    BadUrl { url: String },
    /// Cannot connect (server down, wrong host/port/credentials, unreadable file).
    #[error(
        "cannot connect to the farm database {url}: {message}\n  hint: check that the server is running and the URL (host, port, user, database) is right"
    )]
    Connect { url: String, message: String },
    /// The database has no farm schema yet.
    #[error("{url} holds no farm database\n  hint: create it with `quadbench farm init --db {url}`")]
    NotInitialised { url: String },
    /// The schema is newer than this build.
    #[error(
        "{url} has farm schema version {found}, newer than this quadbench's ({supported})\n  hint: upgrade quadbench on this host; the database is left as it is"
    )]
    NewerSchema { url: String, found: i64, supported: i64 },
    /// A query failed (connection lost mid-query, constraint, ...).
    #[error("farm database query failed ({what}): {message}")]
    Query { what: String, message: String, retryable: bool },
    /// The submission label is taken.
    #[error(
        "a submission labelled `{label}` already exists\n  hint: choose another --label (labels name one submission each)"
    )]
    LabelExists { label: String },
    /// The device was retired.
    #[error(
        "device `{name}` is retired\n  hint: give the device profile another name, or remove the retired device from the database"
    )]
    Retired { name: String },
    /// The lease this write needs is no longer the caller's: nothing was written.
    #[error("the lease of job {job_id} (fencing token {token}) is no longer held by {agent}; the write was refused")]
    LeaseLost { job_id: i64, token: i64, agent: String },
}

impl FarmError {
    /// Whether retrying later may succeed (the connection dropped, the server restarted, the
    /// database was busy).
    pub fn retryable(&self) -> bool {
        matches!(self, FarmError::Connect { .. } | FarmError::Query { retryable: true, .. })
    }
}
