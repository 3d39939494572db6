//! Tests of the database, on SQLite in a temporary folder; the scenarios in `leases.rs` also
//! run on PostgreSQL (`pg.rs`) when `QUADBENCH_TEST_PG_URL` names a server.
//!
//! Every scenario names its devices, hosts and labels after a tag and makes every job it
//! submits require one of its own devices, so scenarios can share one PostgreSQL database
//! (concurrently, and across runs) without claiming each other's jobs.

mod fleet;
mod history;
mod leases;
mod pg;
mod queue;
mod schema;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Db, DeviceReg, DeviceRow, Health, NewJob, NewSubmission, Requirement, RunWrite};

/// A fresh SQLite farm database; the folder lives as long as the returned guard.
pub(crate) fn sqlite_db() -> (tempfile::TempDir, Db, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("farm.db").display());
    let db = Db::init(&url).unwrap();
    (dir, db, url)
}

/// Runs raw SQL on the database (tests only: to age or damage it by hand).
pub(crate) fn exec(db: &Db, sql: &'static str) {
    db.inner.rt().block_on(async { sqlx::raw_sql(sql).execute(&db.inner.conn.pool).await.unwrap() });
}

/// A tag unique in this process and across runs (PostgreSQL databases outlive a test run).
pub(crate) fn unique_tag(name: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// A database and the tag that scopes a scenario's names in it.
pub(crate) struct Farm<'a> {
    pub db: &'a Db,
    pub tag: String,
}

impl<'a> Farm<'a> {
    pub fn new(db: &'a Db, name: &str) -> Farm<'a> {
        Farm { db, tag: unique_tag(name) }
    }

    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.tag)
    }

    pub fn reg(&self, device: &str, soc: Option<&str>, abi: Option<&str>) -> DeviceReg {
        DeviceReg {
            name: self.name(device),
            host: self.name("host"),
            transport: "local".to_string(),
            profile_sha256: "0".repeat(64),
            soc: soc.map(str::to_string),
            abi: abi.map(str::to_string),
            model: Some("model".to_string()),
        }
    }

    /// Registers the device and marks it Good (as an agent does after a passing health check).
    pub fn good(&self, reg: &DeviceReg) -> DeviceRow {
        self.db.register_device(reg).unwrap();
        self.db.set_health(&reg.name, Health::Good, "").unwrap();
        self.db.device(&reg.name).unwrap().unwrap()
    }

    /// A good device with no soc or abi.
    pub fn device(&self, device: &str) -> DeviceRow {
        self.good(&self.reg(device, None, None))
    }

    pub fn submission(&self, label: &str, priority: i64, max_attempts: i64) -> NewSubmission {
        NewSubmission {
            label: self.name(label),
            scenario_name: "scn".to_string(),
            scenario_path: "/scn.yaml".to_string(),
            scenario_sha256: "1".repeat(64),
            scenario_text: format!("name: scn # {label}"),
            priority,
            max_attempts,
        }
    }

    /// Submits `n` jobs, each requiring `requirement`; returns the submission id.
    pub fn submit(&self, label: &str, priority: i64, max_attempts: i64, n: i64, requirement: &Requirement) -> i64 {
        let jobs: Vec<NewJob> = (0..n).map(|i| job(i, requirement.clone())).collect();
        self.db.submit(&self.submission(label, priority, max_attempts), &jobs).unwrap()
    }

    /// A good device with the scenario's soc: it matches [`Farm::any_device`].
    pub fn soc_device(&self, device: &str) -> DeviceRow {
        self.good(&self.reg(device, Some(&self.name("soc")), None))
    }

    /// Requires the scenario's soc: any of its [`Farm::soc_device`]s.
    pub fn any_device(&self) -> Requirement {
        Requirement { soc: Some(self.name("soc")), ..Requirement::default() }
    }

    /// Requires the scenario's device `device`.
    pub fn on(&self, device: &str) -> Requirement {
        Requirement { device: Some(self.name(device)), ..Requirement::default() }
    }
}

pub(crate) fn job(index: i64, requirement: Requirement) -> NewJob {
    NewJob { index, key: format!("scn/dev/cpu/fp32/s{index}"), requirement, payload: format!("{{\"index\":{index}}}") }
}

pub(crate) fn run_write(id: &str, files: &[(&str, Vec<u8>)]) -> RunWrite {
    RunWrite {
        run_id: id.to_string(),
        key: format!("key-{id}"),
        record_json: format!("{{\"id\":\"{id}\"}}"),
        header_json: "{\"scenario\":\"scn\"}".to_string(),
        artefacts: files.iter().map(|(p, b)| (p.to_string(), b.clone())).collect(),
        history: None,
    }
}
