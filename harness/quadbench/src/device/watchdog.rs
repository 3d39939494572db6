//! The one exec watchdog every transport uses: forward the command's stdout lines as they
//! arrive, and stop waiting at the overall deadline, after too long a silence, or when the host
//! is interrupted (SIGINT/SIGTERM, see [`crate::interrupt`]). What to do then (kill the process
//! locally, over adb, over ssh) is the transport's business.

use super::ExecLimits;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// What a transport's reader threads send.
pub enum Msg<T> {
    /// One stdout line (without its newline).
    Line(String),
    /// The command ended (the transport's own outcome).
    Done(T),
}

/// How watching ended.
pub enum End<T> {
    /// The command's reader sent its outcome.
    Done(T),
    /// Every sender is gone without an outcome (for the local transport: stdout closed).
    Closed,
    /// Past the deadline or silent too long: the reason in words.
    Expired(String),
    /// The host got this signal while the command ran.
    Interrupted(i32),
}

/// Watch `rx` under `limits`, passing lines to `on_line`.
pub fn watch<T>(rx: &Receiver<Msg<T>>, limits: ExecLimits, on_line: &mut dyn FnMut(&str)) -> End<T> {
    let start = Instant::now();
    let mut last = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Line(l)) => {
                last = Instant::now();
                on_line(&l);
            }
            Ok(Msg::Done(t)) => return End::Done(t),
            Err(RecvTimeoutError::Disconnected) => return End::Closed,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Some(sig) = crate::interrupt::received() {
            return End::Interrupted(sig);
        }
        if start.elapsed() > limits.deadline {
            return End::Expired(format!("past its deadline of {} s", limits.deadline.as_secs()));
        }
        if last.elapsed() > limits.max_silence {
            return End::Expired(format!("silent for more than {} s", limits.max_silence.as_secs()));
        }
    }
}

/// The line a remote exec wrapper prints before exec'ing the runner: `QB-PID <pid> <group>`,
/// so that a hung runner can be killed on the device.
pub const PID_PREFIX: &str = "QB-PID ";

/// A per-command marker for the exit-status line, so that output cannot fake it by accident.
pub fn exit_marker() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("QB-EXIT-{t:08x}{:04x}{:04x}", std::process::id() & 0xffff, n & 0xffff)
}

/// What a remote exec wrapper (adb, ssh) adds to the runner's stdout: its pid line and the
/// exit-status line under this command's `marker`. Everything else is the runner's.
pub struct WrapperLines {
    pub marker: String,
    /// (pid, process group) of the runner, from the first pid line.
    pub pids: Option<(u32, u32)>,
    /// The runner's exit status, from the marker line.
    pub exit: Option<i32>,
}

impl Default for WrapperLines {
    /// A fresh marker, nothing seen yet.
    fn default() -> WrapperLines {
        WrapperLines { marker: exit_marker(), pids: None, exit: None }
    }
}

impl WrapperLines {
    /// Take one stdout line: the wrapper's own lines are kept, the runner's non-empty ones go
    /// to `on_line`.
    pub fn take(&mut self, l: &str, on_line: &mut dyn FnMut(&str)) {
        if let Some(code) = l.strip_prefix(&self.marker).and_then(|c| c.trim().parse().ok()) {
            self.exit = Some(code);
        } else if let Some(p) = l.strip_prefix(PID_PREFIX).filter(|_| self.pids.is_none()) {
            let mut it = p.split_whitespace().filter_map(|x| x.parse().ok());
            self.pids = it.next().zip(it.next());
        } else if !l.is_empty() {
            on_line(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn limits(deadline_ms: u64, silence_ms: u64) -> ExecLimits {
        ExecLimits { deadline: Duration::from_millis(deadline_ms), max_silence: Duration::from_millis(silence_ms) }
    }

    #[test]
    fn lines_pass_through_until_done() {
        let (tx, rx) = mpsc::channel();
        tx.send(Msg::Line("a".into())).unwrap();
        tx.send(Msg::Done(7)).unwrap();
        let mut seen = Vec::new();
        let end = watch(&rx, limits(10_000, 10_000), &mut |l| seen.push(l.to_string()));
        assert!(matches!(end, End::Done(7)) && seen == ["a"]);
    }

    #[test]
    fn silence_and_deadline_expire() {
        let (tx, rx) = mpsc::channel::<Msg<()>>();
        let End::Expired(why) = watch(&rx, limits(10_000, 200), &mut |_| {}) else { panic!("not expired") };
        assert!(why.contains("silent"), "{why}");
        let keep = std::thread::spawn(move || {
            for _ in 0..20 {
                if tx.send(Msg::Line("tick".into())).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let End::Expired(why) = watch(&rx, limits(300, 10_000), &mut |_| {}) else { panic!("not expired") };
        assert!(why.contains("deadline"), "{why}");
        drop(rx);
        keep.join().unwrap();
    }
}
