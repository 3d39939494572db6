//! Surviving what devices do, for the run loop: a [`DeviceSession`] retries a run after an
//! infrastructure error (device offline or unauthorized, transport EOF, timeout, hash mismatch
//! after a push) with the profile's backoff, reopening the transport each time, and after the
//! last retry marks the device unhealthy so its remaining runs are recorded as failed at once
//! while other devices carry on. Test failures (runner exit != 0, thresholds) are recorded and
//! never retried: running the same thing again would only repeat them.

use crate::config::DeviceProfile;
use crate::device::{DeviceError, DeviceInfo, Transport};
use crate::events::{Event, Reporter};
use crate::results::{RunRecord, RunState};

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
            info: DeviceInfo {
                name: profile.name.clone(),
                transport: profile.transport.name.into(),
                ..Default::default()
            },
            unhealthy: None,
        }
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
