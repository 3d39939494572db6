//! Processes a transport runs on this host (the local runner; the `ssh` client and its
//! ControlMaster):
//! spawned in their own process group (a Ctrl-C at the terminal is the host's to handle, not
//! theirs) and dying with the host (`PR_SET_PDEATHSIG`), waited under a deadline, their output
//! drained on threads so that they never block on a full pipe.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Kept of a stream read for its tail.
pub const TAIL: usize = 16 * 1024;

/// Spawn `cmd` in its own process group (a Ctrl-C at the terminal is the host's to handle) and
/// so that it dies with the thread that spawned it (`PR_SET_PDEATHSIG`).
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: between fork and exec only async-signal-safe calls are made (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The host may have died between fork and prctl: then nobody will wait for us.
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.process_group(0).spawn()
}

/// Wait for `child` at most `limit` (polling, from 1 ms up to 20 ms); killed and `None` after.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    let mut nap = Duration::from_millis(1);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Read `r` to its end on a thread; keep the first `head` bytes, or the last [`TAIL`] bytes.
pub fn drain(mut r: impl Read + Send + 'static, head: Option<usize>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut kept, mut buf) = (Vec::new(), [0u8; 8192]);
        while let Ok(n @ 1..) = r.read(&mut buf) {
            kept.extend_from_slice(&buf[..n]);
            match head {
                Some(max) => kept.truncate(max),
                None if kept.len() > 4 * TAIL => drop(kept.drain(..kept.len() - TAIL)),
                None => {}
            }
        }
        let start = if head.is_some() { 0 } else { kept.len().saturating_sub(TAIL) };
        String::from_utf8_lossy(&kept[start..]).into_owned()
    })
}

/// A long-lived helper process (the ssh ControlMaster), spawned and waited by a keeper thread
/// that lives exactly as long as it does (so `PR_SET_PDEATHSIG` ties it to the host process, not
/// to whichever thread opened it); stopped on drop (SIGTERM, then SIGKILL after 2 s).
pub struct Kept {
    stop: Arc<AtomicBool>,
    /// Set once the master exited: how.
    gone: Arc<OnceLock<String>>,
    keeper: Option<std::thread::JoinHandle<()>>,
}

impl Kept {
    pub fn start(mut cmd: Command) -> std::io::Result<Kept> {
        let (stop, gone) = (Arc::new(AtomicBool::new(false)), Arc::new(OnceLock::new()));
        let (s, g) = (stop.clone(), gone.clone());
        let (tx, rx) = mpsc::channel();
        let keeper = std::thread::Builder::new().name("qb-kept-child".into()).spawn(move || {
            let mut child = match spawn(&mut cmd) {
                Ok(c) => c,
                Err(e) => return drop(tx.send(Err(e))),
            };
            let _ = tx.send(Ok(()));
            let why = loop {
                match child.try_wait() {
                    Ok(Some(st)) => break format!("exited ({st})"),
                    Err(e) => break format!("cannot be waited for: {e}"),
                    Ok(None) if s.load(Ordering::Relaxed) => {
                        // SAFETY: kill(2) of our own unreaped child; SIGTERM lets it say goodbye.
                        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                        let _ = wait_within(&mut child, Duration::from_secs(2));
                        break "closed".into();
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            let _ = g.set(why);
        })?;
        rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("the keeper thread ended")))?;
        Ok(Kept { stop, gone, keeper: Some(keeper) })
    }

    /// How it ended, once it has.
    pub fn gone(&self) -> Option<String> {
        self.gone.get().cloned()
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_child_is_killed_and_a_kept_one_stopped_on_drop() {
        let mut c = spawn(Command::new("sleep").arg("30")).unwrap();
        let t0 = Instant::now();
        assert!(wait_within(&mut c, Duration::from_millis(100)).is_none() && t0.elapsed() < Duration::from_secs(5));
        assert!(c.try_wait().unwrap().is_some(), "killed and reaped");
        let out = drain(
            spawn(Command::new("seq").arg("100000").stdout(std::process::Stdio::piped()))
                .unwrap()
                .stdout
                .take()
                .unwrap(),
            None,
        );
        assert!(out.join().unwrap().ends_with("99999\n100000\n"), "the tail is kept");
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let kept = Kept::start(cmd).unwrap();
        assert_eq!(kept.gone(), None);
        let gone = kept.gone.clone();
        drop(kept);
        assert_eq!(gone.get().map(String::as_str), Some("closed"));
        let mut cmd = Command::new("true");
        cmd.arg("x");
        let kept = Kept::start(cmd).unwrap();
        let t0 = Instant::now();
        while kept.gone().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(kept.gone().is_some_and(|g| g.starts_with("exited")), "{:?}", kept.gone());
    }
}
