//! Surviving what devices do, for the run loop: a [`DeviceSession`] retries a run after an
//! infrastructure error (device offline or unauthorized, transport EOF, timeout, hash mismatch
//! after a push) with the profile's backoff, reopening the transport each time, and after the
//! last retry marks the device unhealthy so its remaining runs are recorded as failed at once
//! while other devices carry on. Test failures (runner exit != 0, thresholds) are recorded and
//! never retried: running the same thing again would only repeat them.
//!
//! [`Resume`] carries finished runs of an earlier, interrupted invocation (`--resume`) into the
//! new results so that the final results.json holds every run exactly once.

use crate::device::{DeviceError, DeviceInfo, DeviceProfile, Transport};
use crate::results::{Results, RunRecord, RunState};
use crate::run::{Event, Reporter};
use std::collections::BTreeMap;
use std::path::Path;

/// One device during a scenario run: its open transport and its health.
pub struct DeviceSession<'a> {
    profile: &'a DeviceProfile,
    transport: Option<Box<dyn Transport>>,
    info: DeviceInfo,
    unhealthy: Option<String>,
}

impl<'a> DeviceSession<'a> {
    /// The transport is opened lazily by the first run, under the retry policy.
    pub fn new(profile: &'a DeviceProfile) -> Self {
        DeviceSession {
            profile,
            transport: None,
            info: DeviceInfo { name: profile.name.clone(), transport: profile.transport.clone(), ..Default::default() },
            unhealthy: None,
        }
    }

    /// Why the device was given up, if it was.
    pub fn unhealthy(&self) -> Option<&str> {
        self.unhealthy.as_deref()
    }

    /// Run `attempt` until it succeeds, fails as a test, or the retries are spent. `failed`
    /// builds the record of a run that could not even start (its message is the error).
    pub fn run(
        &mut self,
        id: &str,
        rep: &mut dyn Reporter,
        attempt: &mut dyn FnMut(&mut dyn Transport, &DeviceInfo, &mut dyn Reporter) -> RunRecord,
        failed: &dyn Fn(String) -> RunRecord,
    ) -> RunRecord {
        if let Some(why) = &self.unhealthy {
            return failed(format!("not run: device `{}` was marked unhealthy earlier: {why}", self.profile.name));
        }
        let policy = self.profile.retry;
        let mut last: Option<RunRecord> = None;
        let mut error = String::new();
        for n in 0..=policy.retries {
            if n > 0 {
                let wait = policy.wait(n);
                rep.event(&Event::Retry {
                    id: id.into(),
                    attempt: n,
                    retries: policy.retries,
                    wait_ms: wait.as_millis() as u64,
                    error: error.clone(),
                });
                std::thread::sleep(wait);
            }
            if self.transport.is_none() {
                match self.profile.open() {
                    Ok(t) => {
                        self.info = t.info();
                        self.transport = Some(t);
                    }
                    Err(e @ DeviceError::Infra { .. }) => {
                        error = e.to_string();
                        last = None;
                        continue;
                    }
                    // Not a passing condition (profile or ABI mismatch): retrying cannot help.
                    Err(e) => return self.give_up(rep, failed(e.to_string()), e.to_string(), 1),
                }
            }
            let t = self.transport.as_mut().expect("opened above");
            let rec = attempt(t.as_mut(), &self.info, rep);
            if rec.status == RunState::Failed && rec.infrastructure_error {
                error = rec.error.clone().unwrap_or_default();
                // Reopen next time: reattach the device and re-check its state.
                self.transport = None;
                last = Some(rec);
                continue;
            }
            return rec;
        }
        let rec = last.unwrap_or_else(|| failed(error.clone()));
        self.give_up(rep, rec, error, policy.retries + 1)
    }

    fn give_up(&mut self, rep: &mut dyn Reporter, mut rec: RunRecord, error: String, attempts: u32) -> RunRecord {
        rep.event(&Event::DeviceUnhealthy { device: self.profile.name.clone(), error: error.clone() });
        self.unhealthy = Some(error);
        self.transport = None;
        rec.infrastructure_error = true;
        rec.error = Some(format!(
            "{} (gave up after {attempts} attempt{}; device marked unhealthy)",
            rec.error.as_deref().unwrap_or("infrastructure error"),
            if attempts == 1 { "" } else { "s" }
        ));
        rec
    }
}

/// Finished runs of an earlier invocation writing to the same results directory.
#[derive(Debug, Default)]
pub struct Resume {
    finished: BTreeMap<String, RunRecord>,
}

impl Resume {
    /// Load `results.json` at `path`; runs that finished (ok or unsupported, with their samples
    /// on disk) are kept, the rest will run again. A missing file resumes nothing.
    pub fn load(path: &Path, package_sha256: &str) -> Result<Resume, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resume::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let old: Results = serde_json::from_str(&text).map_err(|e| {
            format!("{} is not a quadbench results file ({e}); choose a fresh --out or drop --resume", path.display())
        })?;
        if old.package.sha256 != package_sha256 {
            return Err(format!(
                "{} holds results for package {} (sha256 {}), not this scenario's package; resume into a fresh --out instead",
                path.display(),
                old.package.name,
                &old.package.sha256[..12.min(old.package.sha256.len())]
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let finished = old
            .runs
            .into_iter()
            .filter(|r| match r.status {
                RunState::Ok => !r.samples_csv.is_empty() && dir.join(&r.samples_csv).is_file(),
                RunState::Unsupported => true,
                RunState::Failed => false,
            })
            .map(|r| (r.id.clone(), r))
            .collect();
        Ok(Resume { finished })
    }

    /// The finished record of run `id`, once.
    pub fn take(&mut self, id: &str) -> Option<RunRecord> {
        self.finished.remove(id)
    }

    pub fn len(&self) -> usize {
        self.finished.len()
    }

    pub fn is_empty(&self) -> bool {
        self.finished.is_empty()
    }
}
