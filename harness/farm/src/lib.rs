//! The farm database. One schema on two engines through `sqlx`'s `Any` driver: SQLite (WAL,
//! embedded, the default) and PostgreSQL (several hosts). It owns the tables and every query;
//! it knows nothing of scenarios or run records (those travel as opaque JSON text and bytes that
//! the host crate writes and reads), so the host depends on it and never the other way.
//!
//! Concurrency model: a job is claimed atomically (PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite
//! `BEGIN IMMEDIATE`), with a lease that expires unless renewed, and a fencing token that grows
//! by one at every claim. Every write an agent makes for a job (`finish`, `fail_infra`,
//! `hand_back`, `renew`) is conditional on (holder, token): an agent that lost its lease and
//! comes back cannot overwrite what the new holder did. Times are the database server's clock
//! (milliseconds since the Unix epoch), never an agent's, so hosts with skewed clocks agree on
//! when a lease expires.
//!
//! The API is blocking: a [`Db`] carries a small current-thread tokio runtime and blocks on
//! each query, because the host's scheduler is thread-based. A `Db` is `Send + Sync`; clone it
//! (cheap, shares the pool) to hand it to threads. Its methods must not be called from inside an
//! async runtime (blocking there panics).

mod conn;
mod dialect;
pub mod error;
mod fenced;
mod fleet;
mod history;
mod queue;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod url;

use std::sync::Arc;

pub use error::FarmError;
pub use history::HistoryEntry;
pub use url::redact;

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://PATH` (or `sqlite:PATH`): embedded, one file, WAL journal.
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
}

/// A device's health, LAVA-style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not checked since it was registered or reset: checked before its first job.
    Unknown,
    Good,
    /// Failed a health check: takes no job until `farm device reset`.
    Bad,
    /// Taken out by an operator (`farm device retire`): takes no job, kept for history.
    Retired,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    /// Leased to an agent (the lease may have expired; the next claim takes it back).
    Running,
    /// Finished with a run record (the run may have failed as a test: that is a result).
    Done,
    /// Gave up: infrastructure failures on every attempt.
    Failed,
}

/// What a device is, as an agent registers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceReg {
    /// The device profile's `name` (unique in a farm).
    pub name: String,
    /// The agent (host) it is attached to.
    pub host: String,
    /// The transport (`local`, `adb`, ...).
    pub transport: String,
    /// sha256 of the device profile file.
    pub profile_sha256: String,
    pub soc: Option<String>,
    pub abi: Option<String>,
    pub model: Option<String>,
}

/// A device as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceRow {
    pub reg: DeviceReg,
    pub health: Health,
    /// Why it is bad (the failed health check's error), or the operator's note.
    pub health_note: String,
    /// Host heartbeat of `reg.host`, ms since the epoch (server clock).
    pub host_heartbeat_ms: i64,
}

/// What a job asks of a device; `None` fields match anything. A device matches when every
/// `Some` field equals the device's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    pub device: Option<String>,
    pub soc: Option<String>,
    pub abi: Option<String>,
}

impl Requirement {
    pub fn matches(&self, d: &DeviceReg) -> bool {
        let eq = |want: &Option<String>, have: Option<&String>| want.as_ref().is_none_or(|w| have == Some(w));
        eq(&self.device, Some(&d.name)) && eq(&self.soc, d.soc.as_ref()) && eq(&self.abi, d.abi.as_ref())
    }
}

/// A new submission: one scenario, many jobs.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    /// Unique in the database (`farm results LABEL`).
    pub label: String,
    pub scenario_name: String,
    pub scenario_path: String,
    pub scenario_sha256: String,
    /// The scenario file's text as submitted.
    pub scenario_text: String,
    /// Higher runs first.
    pub priority: i64,
    /// Infrastructure failures a job may have before it is failed for good (>= 1).
    pub max_attempts: i64,
}

/// A new job of a submission.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// 0-based position in the submission's plan order.
    pub index: i64,
    /// The run's stable key as planned (`<scenario>/<device>/<backend>/<precision>/<strategy>`).
    pub key: String,
    pub requirement: Requirement,
    /// Opaque to the farm: what the agent needs to run it (JSON text).
    pub payload: String,
}

/// A job an agent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job_id: i64,
    pub submission_id: i64,
    pub label: String,
    pub index: i64,
    pub key: String,
    pub payload: String,
    /// The submission's scenario (path, sha256, text).
    pub scenario_path: String,
    pub scenario_sha256: String,
    pub scenario_text: String,
    pub agent: String,
    pub device: String,
    /// Grows by one at every claim of this job; every write for it must carry it.
    pub fencing_token: i64,
    /// This claim is attempt number `attempt` (1-based).
    pub attempt: i64,
    pub lease_expires_ms: i64,
}

/// A finished run, as it travels through the database.
#[derive(Debug, Clone, PartialEq)]
pub struct RunWrite {
    /// The run's id (file names) and key, as the agent ran it.
    pub run_id: String,
    pub key: String,
    /// The run record (JSON text of the host's `RunRecord`).
    pub record_json: String,
    /// The results header the agent's run had (JSON text: scenario, package, its device).
    pub header_json: String,
    /// Files of the run, relative to a results directory (`samples/<id>.csv`,
    /// `outputs/<id>/<task>.png`, ...), with their bytes.
    pub artefacts: Vec<(String, Vec<u8>)>,
    /// The run's history row, recorded in the same transaction (its night is the label).
    pub history: Option<HistoryEntry>,
}

/// A run read back.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub job_id: i64,
    pub index: i64,
    pub device: String,
    pub agent: String,
    pub fencing_token: i64,
    pub write: RunWrite,
}

/// What `fail_infra` did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfraOutcome {
    /// Back in the queue (not before the given time, and not on the failing device first).
    Requeued,
    /// Attempts spent: failed for good (with the given run written, when one was passed).
    Failed,
}

/// A submission as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubmissionRow {
    pub id: i64,
    pub label: String,
    pub scenario_name: String,
    pub scenario_path: String,
    pub scenario_sha256: String,
    pub created_ms: i64,
}

/// One job as `farm status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub submission_id: i64,
    pub label: String,
    pub index: i64,
    pub key: String,
    pub requirement: Requirement,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    /// The holder (agent, device) while running; the last one otherwise.
    pub agent: Option<String>,
    pub device: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub fencing_token: i64,
    /// The last infrastructure error, or why a job failed.
    pub error: Option<String>,
}

/// An agent host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostRow {
    pub name: String,
    pub heartbeat_ms: i64,
}

/// The farm's schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 2;

/// A connection pool to one farm database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// What the clones of a [`Db`] share.
struct Inner {
    conn: conn::Conn,
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
}

impl Inner {
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives as long as the Db")
    }
}

impl Drop for Inner {
    /// Closes the connections while the runtime they were opened on still runs. Inside another
    /// runtime, where blocking panics (and so does dropping a runtime the ordinary way), the
    /// runtime is shut down without waiting and the connections are just dropped.
    fn drop(&mut self) {
        let Some(rt) = self.rt.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            rt.shutdown_background();
        } else {
            rt.block_on(self.conn.pool.close());
        }
    }
}

impl Db {
    /// Parses `url`, connects (creating a missing SQLite file only when `create`), then creates
    /// the version table (`create`) or requires it, and migrates.
    fn connect(url: &str, create: bool) -> Result<Db, FarmError> {
        let target = url::parse(url)?;
        let shown = url::redact(url);
        let rt = conn::runtime(&shown)?;
        let conn = rt.block_on(async {
            let conn = conn::connect(&target, &shown, create).await?;
            let prepared = async {
                if create {
                    schema::create_version_table(&conn).await?;
                } else {
                    schema::require_version_table(&conn).await?;
                }
                schema::migrate(&conn).await
            };
            match prepared.await {
                Ok(()) => Ok(conn),
                Err(e) => {
                    conn.pool.close().await;
                    Err(e)
                }
            }
        })?;
        Ok(Db { inner: Arc::new(Inner { conn, rt: Some(rt) }) })
    }

    /// Runs one operation on the pool, blocking this thread until it is done.
    fn block<'a, T, F: Future<Output = Result<T, FarmError>>>(
        &'a self,
        op: impl FnOnce(&'a conn::Conn) -> F,
    ) -> Result<T, FarmError> {
        self.inner.rt().block_on(op(&self.inner.conn))
    }

    /// `QUADBENCH_DB` if set, else `sqlite://<XDG data dir>/quadbench/farm.db`
    /// (`$XDG_DATA_HOME`, else `~/.local/share`).
    pub fn default_url() -> String {
        url::default_url_from(|name| std::env::var(name).ok())
    }

    /// Create the database if needed (for SQLite the file and its folder) and migrate it to
    /// [`SCHEMA_VERSION`]. Idempotent. Refuses a schema newer than this build's.
    pub fn init(url: &str) -> Result<Db, FarmError> {
        Db::connect(url, true)
    }

    /// Connect to an initialised database; migrates an older schema (each migration in one
    /// transaction), refuses a newer one and an uninitialised one (hint: `farm init`).
    pub fn open(url: &str) -> Result<Db, FarmError> {
        Db::connect(url, false)
    }

    pub fn engine(&self) -> Engine {
        self.inner.conn.engine
    }

    /// The database server's clock, ms since the Unix epoch.
    pub fn now_ms(&self) -> Result<i64, FarmError> {
        self.block(|c| c.now(&c.pool))
    }

    // ---- hosts and devices

    /// Insert or update the host and set its heartbeat to now.
    pub fn heartbeat(&self, host: &str) -> Result<(), FarmError> {
        self.block(|c| fleet::heartbeat(c, host))
    }

    pub fn hosts(&self) -> Result<Vec<HostRow>, FarmError> {
        self.block(fleet::hosts)
    }

    /// Insert or update a device by name. A device whose fingerprint (transport, profile sha,
    /// soc, abi, model) or host changed goes back to `Unknown` health; otherwise its health is
    /// kept (a bad device stays bad across agent restarts). A retired device is refused
    /// ([`FarmError::Retired`]).
    pub fn register_device(&self, d: &DeviceReg) -> Result<DeviceRow, FarmError> {
        self.block(|c| fleet::register_device(c, d))
    }

    pub fn device(&self, name: &str) -> Result<Option<DeviceRow>, FarmError> {
        self.block(|c| fleet::device(c, name))
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>, FarmError> {
        self.block(fleet::devices)
    }

    /// Set health (health checks); `note` says why.
    pub fn set_health(&self, device: &str, health: Health, note: &str) -> Result<(), FarmError> {
        self.block(|c| fleet::set_health(c, device, health, note))
    }

    // ---- submissions and jobs

    /// One transaction: the submission and its jobs (queued). Returns the submission id.
    /// [`FarmError::LabelExists`] when the label is taken.
    pub fn submit(&self, s: &NewSubmission, jobs: &[NewJob]) -> Result<i64, FarmError> {
        self.block(|c| queue::submit(c, s, jobs))
    }

    /// Rerun the jobs of submission `label` whose key is in `keys` as submission `new_label`,
    /// each pinned to the device that ran it, with priority raised by `priority_boost` (a
    /// confirmation rerun). `None` when `label` has no such job.
    pub fn resubmit(
        &self,
        label: &str,
        keys: &[String],
        new_label: &str,
        priority_boost: i64,
    ) -> Result<Option<i64>, FarmError> {
        self.block(|c| queue::resubmit(c, label, keys, new_label, priority_boost))
    }

    pub fn submission(&self, label: &str) -> Result<Option<SubmissionRow>, FarmError> {
        self.block(|c| queue::submission(c, label))
    }

    pub fn submissions(&self) -> Result<Vec<SubmissionRow>, FarmError> {
        self.block(queue::submissions)
    }

    /// Atomically claim the next job `device` may run, for `agent`, with a lease of `lease_ms`:
    /// a queued job whose `not_before` has passed (and whose `avoid_device` is not this device,
    /// unless its avoidance has expired), or a running job whose lease has expired (the
    /// attempt it was on counts; if that was the last, the job is failed with error "lease
    /// expired on every attempt" instead of claimed). Highest submission priority first, then
    /// oldest submission, then plan index. The device must be `Good` (the caller checks health
    /// first). Increments `attempts` and the fencing token.
    pub fn claim(&self, agent: &str, device: &DeviceRow, lease_ms: i64) -> Result<Option<Claim>, FarmError> {
        self.block(|c| queue::claim(c, agent, device, lease_ms))
    }

    /// Extend the leases `agent` holds, each named by (job id, fencing token), to now +
    /// `lease_ms`, and heartbeat the host. Returns the job ids whose lease is no longer this
    /// agent's (reclaimed by another after it expired, or finished): their runs must be
    /// discarded.
    pub fn renew(&self, agent: &str, leases: &[(i64, i64)], lease_ms: i64) -> Result<Vec<i64>, FarmError> {
        self.block(|c| queue::renew(c, agent, leases, lease_ms))
    }

    /// Fenced: store the run (record, header, artefacts) and mark the job done, in one
    /// transaction, only if `claim` still holds the job (same agent, same token, state running).
    /// Otherwise nothing is written and [`FarmError::LeaseLost`] is returned.
    pub fn finish(&self, claim: &Claim, run: &RunWrite) -> Result<(), FarmError> {
        self.block(|c| fenced::finish(c, claim, run))
    }

    /// Fenced: the job failed with an infrastructure error on `claim.device`. If attempts are
    /// left it goes back to the queue, not before now + `retry_after_ms`, avoiding this device
    /// for `avoid_ms`; else it is failed for good and `last_run` (the failed run record), when
    /// given, is stored as its run. [`FarmError::LeaseLost`] when the claim no longer holds.
    pub fn fail_infra(
        &self,
        claim: &Claim,
        error: &str,
        retry_after_ms: i64,
        avoid_ms: i64,
        last_run: Option<&RunWrite>,
    ) -> Result<InfraOutcome, FarmError> {
        self.block(|c| fenced::fail_infra(c, claim, error, retry_after_ms, avoid_ms, last_run))
    }

    /// Fenced: give the job back to the queue as it was before this claim (the attempt is not
    /// counted): the agent is stopping (SIGTERM) and did not finish it.
    pub fn hand_back(&self, claim: &Claim) -> Result<(), FarmError> {
        self.block(|c| fenced::hand_back(c, claim))
    }

    /// Jobs a device could still take or that may come back to it: queued, or running under
    /// any lease (an expired lease returns the job), whose requirement the device matches.
    /// An agent with `--until-idle` stops when this is 0 for all its devices.
    pub fn pending_for(&self, device: &DeviceReg) -> Result<i64, FarmError> {
        self.block(|c| queue::pending_for(c, device))
    }

    /// Every job, optionally of one submission label, in (submission, index) order.
    pub fn jobs(&self, label: Option<&str>) -> Result<Vec<JobRow>, FarmError> {
        self.block(|c| queue::jobs(c, label))
    }

    /// The stored runs of a submission, in plan index order, artefacts included.
    pub fn runs(&self, submission_id: i64) -> Result<Vec<RunRow>, FarmError> {
        self.block(|c| fenced::runs(c, submission_id))
    }

    // ---- history

    /// Record a run in the history unless its fingerprint is there; `Some(night)`: it was,
    /// under that night (nothing written).
    pub fn history_add(&self, e: &HistoryEntry) -> Result<Option<String>, FarmError> {
        self.block(|c| history::add_one(c, e))
    }

    /// The history, optionally only nights whose label starts with `label_prefix`, by series
    /// and start time.
    pub fn history(&self, label_prefix: Option<&str>) -> Result<Vec<HistoryEntry>, FarmError> {
        self.block(|c| history::entries(c, label_prefix))
    }
}
