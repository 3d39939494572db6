//! `quadbench agent`: one host's worker. It registers the host and its devices, checks a
//! device's health before its first job and after an infrastructure failure, and per device
//! claims jobs the device meets, runs each through the usual scheduler (a one-run scenario on
//! that device), and writes the finished run to the database at once, fenced by its lease. A
//! thread renews the leases and the host heartbeat; devices sharing a physical resource take
//! turns as in a local run. SIGINT/SIGTERM: the run in flight is stopped and its job handed
//! back. The agent reports through a log callback; it never prints.

use super::{Db, FarmError, Header, Payload, health};
use crate::config::{DeviceProfile, Scenario};
use crate::events::Quiet;
use crate::results::RunRecord;
use crate::scheduler::{self, RunError, RunOptions};
use quadbench_farm::{Claim, Health, InfraOutcome, RunWrite};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an agent works.
pub struct AgentConfig {
    pub db: Db,
    /// The host's name in the farm (default: the machine's host name).
    pub name: String,
    pub devices: Vec<DeviceProfile>,
    /// Stop when no job that its devices could take is queued or running anywhere.
    pub until_idle: bool,
    pub lease: Duration,
    /// Wait between claims when there is nothing to do.
    pub poll: Duration,
    /// Per-job results directories (`<work>/<label>/job<id>-t<token>`), removed once stored.
    pub work: PathBuf,
    pub package_cache: PathBuf,
    /// How long database outages are ridden out (reconnecting) before the agent gives up.
    pub db_wait: Duration,
    pub keep_work: bool,
}

/// What an agent did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AgentSummary {
    pub stored: usize,
    pub discarded: usize,
    pub requeued: usize,
    pub failed: usize,
    pub handed_back: usize,
}

/// A log line for people (the command prints them on stderr).
pub type Log<'a> = &'a (dyn Fn(&str) + Sync);

struct Agent<'a> {
    cfg: &'a AgentConfig,
    log: Log<'a>,
    /// Leases held now: job id -> fencing token.
    leases: Mutex<BTreeMap<i64, i64>>,
    summary: Mutex<AgentSummary>,
    resources: BTreeMap<String, Arc<Mutex<()>>>,
}

/// Register and drain the queue until idle (`until_idle`), interrupted, or the database stays
/// unreachable longer than `db_wait`.
pub fn run(cfg: &AgentConfig, log: Log<'_>) -> Result<AgentSummary, FarmError> {
    let resources = cfg.devices.iter().filter_map(|p| p.resource()).map(|r| (r, Arc::new(Mutex::new(())))).collect();
    let agent = Agent { cfg, log, leases: Default::default(), summary: Default::default(), resources };
    agent.retrying("heartbeat", || cfg.db.heartbeat(&cfg.name))?;
    let mut rows = Vec::new();
    for p in &cfg.devices {
        let reg = health::fingerprint(p, &cfg.name);
        let row = agent.retrying("register device", || cfg.db.register_device(&reg))?;
        log(&format!("device {}: registered ({:?}, abi {})", p.name, row.health, reg.abi.as_deref().unwrap_or("-")));
        rows.push(row);
    }
    let done = AtomicBool::new(false);
    let errors: Mutex<Vec<FarmError>> = Default::default();
    std::thread::scope(|s| {
        s.spawn(|| agent.renew_loop(&done));
        let workers: Vec<_> = cfg
            .devices
            .iter()
            .map(|p| {
                let (agent, errors) = (&agent, &errors);
                s.spawn(move || {
                    if let Err(e) = agent.device_loop(p) {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        done.store(true, Ordering::SeqCst);
    });
    if let Some(e) = errors.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
        return Err(e);
    }
    Ok(agent.summary.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn stopping() -> bool {
    crate::interrupt::received().is_some()
}

/// Sleep `d` in short steps, returning early when the agent is interrupted.
fn nap(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stopping() {
        std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
    }
}

impl Agent<'_> {
    /// Run `f`, riding out connection-level errors (server restarting, pool timeouts) for up to
    /// `db_wait`; sqlx reconnects on the next query.
    fn retrying<T>(&self, what: &str, f: impl Fn() -> Result<T, FarmError>) -> Result<T, FarmError> {
        let start = Instant::now();
        let mut wait = Duration::from_millis(200);
        let mut told = false;
        loop {
            match f() {
                Err(e) if e.retryable() && start.elapsed() < self.cfg.db_wait => {
                    if !told {
                        (self.log)(&format!(
                            "database unavailable ({what}): {e}; retrying for up to {:?}",
                            self.cfg.db_wait
                        ));
                        told = true;
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Ok(v) => {
                    if told {
                        (self.log)(&format!("database back ({what}) after {:.1} s", start.elapsed().as_secs_f64()));
                    }
                    return Ok(v);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn lease_ms(&self) -> i64 {
        self.cfg.lease.as_millis() as i64
    }

    /// Renew every held lease (and the heartbeat) a few times per lease period.
    fn renew_loop(&self, done: &AtomicBool) {
        let period = self.cfg.lease / 3;
        let mut last = Instant::now();
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() < period {
                continue;
            }
            last = Instant::now();
            let held: Vec<(i64, i64)> =
                self.leases.lock().unwrap_or_else(|p| p.into_inner()).clone().into_iter().collect();
            // A lease the renewal reports lost may belong to a job that just ended: only the
            // fenced store says for certain that a run was lost (and logs it). Outages are
            // logged; the next renewal tries again.
            if let Err(e) = self.cfg.db.renew(&self.cfg.name, &held, self.lease_ms()) {
                (self.log)(&format!("lease renewal failed: {e}"));
            }
        }
    }

    fn device_loop(&self, p: &DeviceProfile) -> Result<(), FarmError> {
        let db = &self.cfg.db;
        let log = self.log;
        // An idle device polls less and less often (up to 16 x --poll-s), so that a thousand
        // idle devices do not run a thousand empty claims a second; a claimed job resets it.
        let mut idle = self.cfg.poll;
        while !stopping() {
            let Some(row) = self.retrying("device", || db.device(&p.name))? else {
                log(&format!("device {}: no longer in the database; stopping it", p.name));
                return Ok(());
            };
            match row.health {
                Health::Unknown => {
                    self.check_health(p)?;
                    continue;
                }
                Health::Bad | Health::Retired => {
                    if self.cfg.until_idle {
                        log(&format!("device {}: {:?} ({}); it takes no job", p.name, row.health, row.health_note));
                        return Ok(());
                    }
                    nap(self.cfg.poll);
                    continue;
                }
                Health::Good => {}
            }
            // Devices on one physical resource take turns, as in a local run.
            let turn = p.resource().and_then(|r| self.resources.get(&r).cloned());
            let _turn = turn.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
            match self.retrying("claim", || db.claim(&self.cfg.name, &row, self.lease_ms()))? {
                Some(c) => {
                    idle = self.cfg.poll;
                    self.run_job(p, c)?
                }
                None => {
                    drop(_turn);
                    if self.cfg.until_idle && self.retrying("pending", || db.pending_for(&row.reg))? == 0 {
                        return Ok(());
                    }
                    nap(idle);
                    idle = (idle * 2).min(self.cfg.poll * 16);
                }
            }
        }
        Ok(())
    }

    fn check_health(&self, p: &DeviceProfile) -> Result<bool, FarmError> {
        let scratch = self.cfg.work.join("health").join(&p.name);
        let (health, note) = match health::check(p, &scratch) {
            Ok(_) => (Health::Good, String::new()),
            Err(e) => (Health::Bad, format!("health check failed: {e}")),
        };
        self.retrying("health", || self.cfg.db.set_health(&p.name, health, &note))?;
        (self.log)(&format!(
            "device {}: health check {}",
            p.name,
            if health == Health::Good {
                "passed".into()
            } else {
                format!("FAILED: {note}; reset it with `quadbench farm device reset {}` once fixed", p.name)
            }
        ));
        Ok(health == Health::Good)
    }

    fn run_job(&self, p: &DeviceProfile, c: Claim) -> Result<(), FarmError> {
        let log = self.log;
        log(&format!(
            "device {}: job {} ({}) claimed, attempt {}, fencing token {}",
            p.name, c.job_id, c.key, c.attempt, c.fencing_token
        ));
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).insert(c.job_id, c.fencing_token);
        let out = self.cfg.work.join(&c.label).join(format!("job{}-t{}", c.job_id, c.fencing_token));
        let outcome = self.execute(p, &c, &out);
        let r = self.record(p, &c, outcome, &out);
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.job_id);
        if !self.cfg.keep_work {
            let _ = std::fs::remove_dir_all(&out);
        }
        r
    }

    /// Run the claimed job as a one-run scenario on `p`.
    fn execute(&self, p: &DeviceProfile, c: &Claim, out: &Path) -> Result<(RunRecord, Header), Outcome> {
        let payload: Payload = serde_json::from_str(&c.payload).map_err(|e| {
            Outcome::Infra(format!("job payload unreadable ({e}); was it submitted by a newer quadbench?"))
        })?;
        let backend =
            payload.backend().ok_or_else(|| Outcome::Infra(format!("unknown backend `{}`", payload.backend)))?;
        let mut sc = Scenario::parse(Path::new(&c.scenario_path), &c.scenario_text)
            .map_err(|e| Outcome::Infra(format!("the submitted scenario does not load on this host: {e}")))?;
        let claims = std::mem::take(&mut sc.claims);
        // A job is one run: of a replicated scenario, its one replicate (id `...-r<k>`).
        (sc.backends, sc.strategies) = (vec![backend], vec![payload.strategy]);
        sc.only_replicate = Some(payload.replicate.clamp(1, sc.replicates.max(1)));
        let _ = std::fs::remove_dir_all(out);
        let opts = RunOptions {
            out: out.to_path_buf(),
            device_override: Some(p.path.clone()),
            package_cache: self.cfg.package_cache.clone(),
            resume: false,
        };
        match scheduler::run_scenario(&sc, &opts, &mut Quiet) {
            Ok(mut results) => {
                let rec = results.runs.pop().ok_or_else(|| Outcome::Infra("the run produced no record".into()))?;
                results.claims.clear();
                results.complete = false;
                Ok((rec, Header { header: results, claims }))
            }
            Err(RunError::Interrupted { .. }) => Err(Outcome::Interrupted),
            Err(e) => Err(Outcome::Infra(e.to_string())),
        }
    }

    /// Store what `execute` gave, fenced by the claim.
    fn record(
        &self,
        p: &DeviceProfile,
        c: &Claim,
        outcome: Result<(RunRecord, Header), Outcome>,
        out: &Path,
    ) -> Result<(), FarmError> {
        let db = &self.cfg.db;
        let log = self.log;
        let count = |f: fn(&mut AgentSummary)| f(&mut self.summary.lock().unwrap_or_else(|p| p.into_inner()));
        let (error, write) = match outcome {
            Err(Outcome::Interrupted) => {
                self.retrying("hand back", || db.hand_back(c)).or_else(lease_lost_is_ok)?;
                log(&format!("job {}: handed back (the agent is stopping)", c.job_id));
                count(|s| s.handed_back += 1);
                return Ok(());
            }
            Err(Outcome::Infra(e)) => (e, None),
            Ok((rec, header)) => match run_write(&rec, &header, &c.label, out) {
                Err(e) => (format!("cannot collect the run's files on this host: {e}"), None),
                Ok(write) if !rec.infrastructure_error => return self.store(c, &rec, &write),
                Ok(write) => (rec.error.clone().unwrap_or_else(|| "infrastructure error".into()), Some(write)),
            },
        };
        // Infrastructure: back to the queue (another device first), and is this device healthy?
        let lease = self.lease_ms();
        match self.retrying("fail", || db.fail_infra(c, &error, 1000, 2 * lease, write.as_ref())) {
            Ok(InfraOutcome::Requeued) => {
                log(&format!("job {}: infrastructure failure on {}: {error}; requeued", c.job_id, p.name));
                count(|s| s.requeued += 1);
            }
            Ok(InfraOutcome::Failed) => {
                log(&format!(
                    "job {}: infrastructure failure on {}: {error}; attempts spent, failed",
                    c.job_id, p.name
                ));
                count(|s| s.failed += 1);
            }
            Err(FarmError::LeaseLost { .. }) => {
                log(&format!("job {}: lease lost; failure not recorded (another agent runs the job)", c.job_id));
                count(|s| s.discarded += 1);
            }
            Err(e) => return Err(e),
        }
        self.check_health(p).map(|_| ())
    }

    /// The run finished (measured, or failed as a test): store it if the lease still holds.
    fn store(&self, c: &Claim, rec: &RunRecord, write: &RunWrite) -> Result<(), FarmError> {
        let stored = self.retrying("finish", || self.cfg.db.finish(c, write));
        let mut summary = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        match stored {
            Ok(()) => {
                (self.log)(&format!("job {}: run {} stored ({:?})", c.job_id, rec.id, rec.status));
                summary.stored += 1;
                Ok(())
            }
            Err(FarmError::LeaseLost { .. }) => {
                (self.log)(&format!(
                    "job {}: lease lost before the run was stored; run {} discarded (another agent runs the job)",
                    c.job_id, rec.id
                ));
                summary.discarded += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

enum Outcome {
    Infra(String),
    Interrupted,
}

fn lease_lost_is_ok(e: FarmError) -> Result<(), FarmError> {
    if matches!(e, FarmError::LeaseLost { .. }) { Ok(()) } else { Err(e) }
}

/// The run's record, header and files (samples, outputs, plan and result JSON) for the database,
/// and its history row (the submission's label is its night).
fn run_write(rec: &RunRecord, header: &Header, label: &str, out: &Path) -> Result<RunWrite, String> {
    let mut artefacts = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    if !rec.samples_csv.is_empty() && out.join(&rec.samples_csv).is_file() {
        files.push(PathBuf::from(&rec.samples_csv));
    }
    for dir in ["outputs", "runs"] {
        walk(out, &Path::new(dir).join(&rec.id), &mut files)?;
    }
    for rel in files {
        let bytes = std::fs::read(out.join(&rel)).map_err(|e| format!("cannot read {}: {e}", rel.display()))?;
        artefacts.push((rel.to_string_lossy().into_owned(), bytes));
    }
    Ok(RunWrite {
        run_id: rec.id.clone(),
        key: rec.key.clone(),
        record_json: serde_json::to_string(rec).map_err(|e| e.to_string())?,
        header_json: serde_json::to_string(header).map_err(|e| e.to_string())?,
        artefacts,
        history: Some(crate::history::entry(&header.header, rec, label, "farm")?),
    })
}

/// Every regular file under `out/rel`, as paths relative to `out`, sorted.
fn walk(out: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(out.join(rel)) else { return Ok(()) };
    let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let meta = std::fs::symlink_metadata(out.join(&r)).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            walk(out, &r, files)?;
        } else if meta.is_file() {
            files.push(r);
        }
    }
    Ok(())
}
