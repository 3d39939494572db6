//! Thermal-throttle detection and cooldown between runs, after androidx.benchmark's
//! ThrottleDetector: time a short fixed calibration workload; when it runs more than
//! `max_slowdown` slower than the fastest calibration seen so far (the first one sets the
//! reference), the device is taken as throttled: cool down (sleep) and measure again, up to
//! `retries` times. A run that still starts throttled is marked so in results.json.
//!
//! The calibration runs on the host, so it only says something about the device when the device
//! is the host (the `local` transport); for other transports the check is skipped and recorded
//! as such. A plain `cooldown_s` between runs applies to every transport.

use crate::config::ThrottleConfig;
use crate::events::{Event, Reporter};
use crate::results::ThrottleInfo;
use quadbench_protocol::rng::XorShift64;
use std::time::{Duration, Instant};

/// The calibration workload: a fixed amount of integer and floating-point work (~tens of ms).
pub fn calibration_workload() -> f64 {
    let t = Instant::now();
    // Seeded so that XorShift64's mixing gives the constant the workload always started from.
    let mut rng = XorShift64::new(0);
    let mut acc = 0f64;
    for _ in 0..4_000_000u32 {
        acc = acc.mul_add(0.999_999, (rng.next_u64() >> 40) as f64 * 1e-9);
    }
    std::hint::black_box(acc);
    t.elapsed().as_secs_f64() * 1e3
}

/// Keeps the reference calibration across the runs of one scenario.
pub struct Governor {
    cfg: ThrottleConfig,
    between_runs_s: f64,
    reference_ms: Option<f64>,
    runs: usize,
    measure: fn() -> f64,
    sleep: fn(Duration),
}

impl Governor {
    pub fn new(cfg: ThrottleConfig, between_runs_s: f64) -> Governor {
        Governor {
            cfg,
            between_runs_s,
            reference_ms: None,
            runs: 0,
            measure: calibration_workload,
            sleep: std::thread::sleep,
        }
    }

    /// With a stand-in workload and sleep (tests).
    #[cfg(test)]
    pub fn with_hooks(cfg: ThrottleConfig, between_runs_s: f64, measure: fn() -> f64, sleep: fn(Duration)) -> Governor {
        Governor { measure, sleep, ..Governor::new(cfg, between_runs_s) }
    }

    /// Best of three timings: one scheduling hiccup does not make a throttle.
    fn calibrate(&self) -> f64 {
        (0..3).map(|_| (self.measure)()).fold(f64::INFINITY, f64::min)
    }

    /// Call before each run: cooldown between runs, then the throttle check.
    pub fn before_run(&mut self, local_device: bool, rep: &mut dyn Reporter) -> ThrottleInfo {
        let mut info = ThrottleInfo { method: "none".into(), ..Default::default() };
        if self.runs > 0 && self.between_runs_s > 0.0 {
            rep.event(&Event::Step { message: format!("cooling down {:.0} s between runs", self.between_runs_s) });
            (self.sleep)(Duration::from_secs_f64(self.between_runs_s));
            info.cooldown_ms += self.between_runs_s * 1e3;
        }
        self.runs += 1;
        if !self.cfg.enabled {
            info.note = "throttle check disabled in the scenario".into();
            return info;
        }
        if !local_device {
            info.note = "throttle check skipped: the calibration runs on the host, the device is remote".into();
            return info;
        }
        info.method = "host-cpu".into();
        loop {
            let t = self.calibrate();
            info.calibration_ms.push(t);
            let reference = *self.reference_ms.get_or_insert(t);
            info.reference_ms = Some(reference);
            let slowdown = t / reference - 1.0;
            info.slowdown = Some(slowdown);
            if slowdown <= self.cfg.max_slowdown {
                self.reference_ms = Some(reference.min(t));
                return info;
            }
            if info.retries >= self.cfg.retries {
                info.throttled = true;
                info.note = format!(
                    "still {:.0}% slower than the reference after {} cool-downs; timings may be throttled",
                    slowdown * 100.0,
                    info.retries
                );
                return info;
            }
            info.retries += 1;
            rep.event(&Event::Step { message: format!("device looks throttled (calibration {:.0}% slower than reference): cooling down {:.0} s, retry {} of {}", slowdown * 100.0, self.cfg.cooldown_s, info.retries, self.cfg.retries) });
            (self.sleep)(Duration::from_secs_f64(self.cfg.cooldown_s));
            info.cooldown_ms += self.cfg.cooldown_s * 1e3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::events::Quiet;

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static SLEEPS: AtomicUsize = AtomicUsize::new(0);

    // Calibrations 1-3: 10 ms (reference); then 20 ms for six calls (two checks), then 10 ms.
    fn fake_measure() -> f64 {
        let n = CALLS.fetch_add(1, Ordering::SeqCst);
        if (3..9).contains(&n) { 20.0 } else { 10.0 }
    }
    fn fake_sleep(_: Duration) {
        SLEEPS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn throttled_device_cools_down_and_retries() {
        let cfg = ThrottleConfig { enabled: true, max_slowdown: 0.1, retries: 2, cooldown_s: 5.0 };
        let mut g = Governor::with_hooks(cfg, 1.0, fake_measure, fake_sleep);
        let first = g.before_run(true, &mut Quiet);
        assert_eq!((first.retries, first.throttled, first.cooldown_ms), (0, false, 0.0));
        assert_eq!(first.reference_ms, Some(10.0));
        let second = g.before_run(true, &mut Quiet);
        // 1 s between runs, then two 5 s cool-downs; the third calibration is back to 10 ms.
        assert_eq!((second.retries, second.throttled, second.cooldown_ms), (2, false, 11_000.0));
        assert_eq!(second.calibration_ms, vec![20.0, 20.0, 10.0]);
        assert_eq!(SLEEPS.load(Ordering::SeqCst), 3);
        let remote = g.before_run(false, &mut Quiet);
        assert_eq!(remote.method, "none");
    }

    #[test]
    fn calibration_workload_takes_measurable_time() {
        let t = calibration_workload();
        assert!(t > 0.1 && t < 5000.0, "{t}");
    }
}
