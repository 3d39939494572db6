//! SIGINT and SIGTERM while a scenario runs: the handler only records the signal; the exec
//! watchdog sees it, the transport kills the runner, the scheduler records the run as
//! interrupted and writes results, and the command exits 130 (SIGINT) or 143 (SIGTERM), so that
//! an interrupted invocation loses nothing it finished and leaves no runner behind.

use std::sync::atomic::{AtomicUsize, Ordering};

static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Install the handlers (idempotent). Until then, the default actions apply.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        for sig in [SIGINT, SIGTERM] {
            // SAFETY: the action only stores into an atomic, which is async-signal-safe.
            let r =
                unsafe { signal_hook::low_level::register(sig, move || SIGNAL.store(sig as usize, Ordering::SeqCst)) };
            if let Err(e) = r {
                result = Err(e);
            }
        }
    });
    result
}

/// The signal received since [`install`], if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// The conventional exit code for dying of `sig` (128 + signal number).
pub fn exit_code(sig: i32) -> i32 {
    quadbench_schema::exit::signalled(sig)
}

/// Signal name for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
