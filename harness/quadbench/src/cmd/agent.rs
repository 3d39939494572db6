//! `quadbench agent --db URL --device FILE...`: drain the farm's queue with this host's devices.

use super::exit;
use crate::config::DeviceProfile;
use crate::farm::agent::{self, AgentConfig};
use crate::farm::{Db, FarmCmdError};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Farm database URL (sqlite://PATH or postgres://...; default: $QUADBENCH_DB, else the
    /// embedded SQLite database under the XDG data directory).
    #[arg(long)]
    db: Option<String>,
    /// Device profile of a device attached to this host (repeat for several).
    #[arg(long = "device", required = true)]
    devices: Vec<PathBuf>,
    /// This host's name in the farm (default: the machine's host name).
    #[arg(long)]
    name: Option<String>,
    /// Exit once no job its devices could take is queued or running anywhere.
    #[arg(long)]
    until_idle: bool,
    /// Lease length in seconds; leases are renewed every third of it.
    #[arg(long, default_value_t = 30.0)]
    lease_s: f64,
    /// Seconds between claims when there is nothing to do.
    #[arg(long, default_value_t = 1.0)]
    poll_s: f64,
    /// Seconds a database outage is ridden out before the agent gives up.
    #[arg(long, default_value_t = 300.0)]
    db_wait_s: f64,
    /// Where per-job results directories go (default: the cache's agent/<name>).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Keep per-job results directories after their runs are stored.
    #[arg(long)]
    keep_work: bool,
}

pub fn agent(a: AgentArgs) -> i32 {
    // A bad profile is refused before anything is registered.
    let devices = match a.devices.iter().map(|p| DeviceProfile::load(p)).collect::<Result<Vec<_>, _>>() {
        Ok(d) => d,
        Err(e) => return exit::fail(&e),
    };
    let mut names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return exit::fail(&FarmCmdError::Input {
            what: format!("two device profiles are named `{}`", w[0]),
            fix: "device names are unique in a farm: rename one profile".into(),
        });
    }
    for (what, v) in [("--lease-s", a.lease_s), ("--poll-s", a.poll_s), ("--db-wait-s", a.db_wait_s)] {
        if !(v.is_finite() && (0.05..=86_400.0).contains(&v)) {
            return exit::fail(&FarmCmdError::Input {
                what: format!("{what} {v} is out of range"),
                fix: "give seconds between 0.05 and 86400".into(),
            });
        }
    }
    let name = a.name.unwrap_or_else(crate::scheduler::host_name);
    if !crate::safe_name(&name) {
        return exit::fail(&FarmCmdError::Input {
            what: format!("agent name `{}` is not a safe name", name.escape_debug()),
            fix: format!("use {}", crate::SAFE_NAME_CHARS),
        });
    }
    let url = a.db.unwrap_or_else(Db::default_url);
    let db = match Db::open(&url) {
        Ok(db) => db,
        Err(e) => return exit::fail(&e),
    };
    if let Err(e) = crate::interrupt::install() {
        exit::report(&format!("cannot handle SIGINT/SIGTERM ({e}); an interrupt will end the agent abruptly"));
    }
    let cfg = AgentConfig {
        db,
        work: a.work.unwrap_or_else(|| quadbench_runtime::cache_dir().join("agent").join(&name)),
        name,
        devices,
        until_idle: a.until_idle,
        lease: Duration::from_secs_f64(a.lease_s),
        poll: Duration::from_secs_f64(a.poll_s),
        package_cache: super::run::package_cache(),
        db_wait: Duration::from_secs_f64(a.db_wait_s),
        keep_work: a.keep_work,
    };
    let log = |line: &str| eprintln!("agent {}: {line}", cfg.name);
    log(&format!("serving {} device(s) from {}", cfg.devices.len(), crate::farm::redact(&url)));
    match agent::run(&cfg, &log) {
        Ok(s) => {
            log(&format!(
                "done: {} stored, {} discarded (lease lost), {} requeued, {} failed, {} handed back",
                s.stored, s.discarded, s.requeued, s.failed, s.handed_back
            ));
            match crate::interrupt::received() {
                Some(sig) => crate::interrupt::exit_code(sig),
                None => exit::OK,
            }
        }
        Err(e) => exit::fail(&e),
    }
}
