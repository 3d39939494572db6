//! Devices in parallel: one worker thread per device runs that device's runs in plan order and
//! sends what happens to the scheduler's thread, which alone talks to the sinks and reporters
//! (so neither needs to be thread-safe, and results are written in one place). Devices that
//! occupy the same physical resource (`DeviceProfile::resource`: the host's CPU for the local
//! device and loopback devices) take turns run by run, so no measurement overlaps another on
//! the same silicon.

use super::stage::{self, DeviceRun, Shared};
use super::{retry, throttle};
use crate::config::DeviceProfile;
use crate::events::{Event, Reporter};
use crate::plan::RunSpec;
use crate::quality::QualityConfig;
use crate::results::RunRecord;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

/// What a worker sends.
pub enum Msg {
    /// An event for the reporters (progress, retries, heartbeats).
    Event(Event),
    /// A finished run, for the sinks.
    Finished(Box<RunRecord>),
}

/// Forwards a worker's events to the scheduler's thread.
struct Forward(Sender<Msg>);

impl Reporter for Forward {
    fn event(&mut self, e: &Event) {
        let _ = self.0.send(Msg::Event(e.clone()));
    }
}

/// What every worker shares.
pub struct Common<'a> {
    pub shared: &'a Shared<'a>,
    pub quality: &'a QualityConfig,
    pub ort_library: PathBuf,
    pub host: String,
    pub total: usize,
    /// Set when the scenario must stop (a sink failed, the host is out of disk): workers finish
    /// the run in flight and start no other.
    pub stop: &'a AtomicBool,
    /// One lock per physical resource, holding the resource's throttle governor: the cool-down
    /// between runs and the throttle reference belong to the silicon, not to a device profile.
    pub resources: BTreeMap<String, Arc<Mutex<throttle::Governor>>>,
}

/// Run `specs` (one device's, in plan order) on `profile`.
pub fn device_worker(c: &Common<'_>, profile: &DeviceProfile, specs: &[&RunSpec], tx: Sender<Msg>) {
    let mut rep = Forward(tx.clone());
    let runner = profile.runner.clone().unwrap_or_else(super::default_runner);
    let ort_lib = profile.ort_library.clone().unwrap_or_else(|| c.ort_library.clone());
    let dev = DeviceRun { profile, runner: &runner, ort_lib: &ort_lib };
    let mut session = retry::DeviceSession::new(profile);
    // A device on no shared resource keeps its own governor.
    let mut own = throttle::Governor::new(c.shared.sc.throttle.clone(), c.shared.sc.cooldown_s);
    let mut eps = BTreeMap::new();
    let resource = profile.resource().and_then(|r| c.resources.get(&r).cloned());
    for spec in specs {
        if c.stop.load(Ordering::SeqCst) || crate::interrupt::received().is_some() {
            return;
        }
        // Held for the whole run, cool-down and throttle check included.
        let mut turn = resource.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        // The wait for a turn can be long: a stop or an interrupt meanwhile means no new run.
        if c.stop.load(Ordering::SeqCst) || crate::interrupt::received().is_some() {
            return;
        }
        rep.event(&Event::RunStarted { index: spec.index, total: c.total, id: spec.id.clone() });
        // Located (and, for devices that copy files, hashed) once per device and backend.
        let ep = eps.entry(spec.backend).or_insert_with(|| crate::backend::ep_bundle(spec.backend, profile));
        let governor = match turn.as_deref_mut() {
            Some(g) => g,
            None => &mut own,
        };
        let throttle = governor.before_run(profile.capabilities().is_host, &mut rep);
        let started_at = crate::time::now_rfc3339();
        let failed = |msg: String| stage::failed(c.shared, &dev, spec, msg, String::new(), true);
        let mut r = session.run(
            &spec.id,
            &mut rep,
            &mut |t, info, rep| stage::run_one(c.shared, &dev, spec, ep, t, info, rep),
            &failed,
        );
        (r.key, r.replicate, r.host, r.started_at, r.finished_at) =
            (spec.key.clone(), spec.replicate, c.host.clone(), started_at, crate::time::now_rfc3339());
        r.throttle = Some(throttle);
        crate::quality::score_run(&mut r, c.shared.out, c.quality);
        let _ = tx.send(Msg::Finished(Box::new(r)));
    }
}
