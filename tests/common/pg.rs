//! A throw-away PostgreSQL server for tests: its own cluster in a temporary directory, its own
//! port, stopped and deleted on drop (also when the test panics).
//!
//! The binaries are Debian's (`apt-get install postgresql`, which `tests/run.sh` does): the newest
//! `/usr/lib/postgresql/*/bin`. initdb refuses to run as root, so as root every server program
//! runs as the `postgres` system user the package creates (`runuser -u postgres --`), otherwise as
//! the current user. Authentication is `trust`; the server listens on 127.0.0.1 and on the extra
//! addresses the test gives (the root-namespace ends of its [`super::netns::Netns`]), and
//! `pg_hba.conf` admits exactly loopback and the subnets of those addresses.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether a missing PostgreSQL is a failure rather than a skip: in CI (`CI` set) and as root,
/// where `tests/run.sh` installs it.
pub fn pg_required() -> bool {
    std::env::var_os("CI").is_some() || is_root()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`, `pg_ctl`, `postgres` and `psql`.
pub fn pg_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "pg_ctl", "postgres", "psql"].iter().all(|p| bin.join(p).is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

pub struct PgServer {
    bin: PathBuf,
    /// `Some` until drop; deleting it removes the cluster.
    dir: Option<tempfile::TempDir>,
    port: u16,
    /// Run the server programs as `postgres` (we are root).
    as_postgres: bool,
    running: bool,
}

impl PgServer {
    /// Creates a cluster and starts it listening on 127.0.0.1 and each address of `listen` (IPv4
    /// literals, e.g. [`super::netns::Netns::host_addr`]) on a free port, and waits until it
    /// answers a query.
    ///
    /// `None` only when the PostgreSQL binaries are not installed and [`pg_required`] is false (a
    /// note saying so is printed; the test should return). When they are required, a missing
    /// installation panics, and so does every other failure (with the server log's tail).
    pub fn start(listen: &[&str]) -> Option<PgServer> {
        let Some(bin) = pg_bin_dir() else {
            let msg = "PostgreSQL binaries not installed (no /usr/lib/postgresql/*/bin/initdb); \
                       `apt-get install postgresql` or run `bash tests/run.sh`, which installs them";
            if pg_required() {
                panic!("{msg} (required: CI is set or running as root)");
            }
            eprintln!("NOTE: skipping this test: {msg}");
            return None;
        };
        let as_postgres = is_root();
        // As root the directory must be reachable by `postgres`, whatever TMPDIR says.
        let parent = if as_postgres { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir =
            tempfile::Builder::new().prefix("quadbench-pg-").tempdir_in(&parent).expect("temporary dir for PostgreSQL");
        if as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the PostgreSQL dir to postgres");
        }
        let mut pg = PgServer { bin, dir: Some(dir), port: 0, as_postgres, running: false };
        let data = pg.data_dir();
        let mut initdb = pg.program("initdb");
        initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]);
        let o = output(&mut initdb);
        assert!(o.status.success(), "initdb failed: {}", describe(&o));

        let mut hba = String::from(
            "\n# quadbench tests\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n",
        );
        for a in listen {
            hba.push_str(&format!("host all all {} trust\n", subnet_of(a)));
        }
        std::fs::write(data.join("pg_hba.conf"), hba).expect("writing pg_hba.conf");

        let addresses = std::iter::once("127.0.0.1").chain(listen.iter().copied()).collect::<Vec<_>>().join(",");
        // A free port can be taken between our probe and the server's bind: try a few.
        for attempt in 1..=5 {
            pg.port = free_port();
            let conf = format!(
                "\n# quadbench tests\nlisten_addresses = '{addresses}'\nport = {}\nunix_socket_directories = '{}'\n\
                 max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
                pg.port,
                pg.dir().display()
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf).expect("writing postgresql.auto.conf");
            match pg.try_start() {
                Ok(()) => return Some(pg),
                Err(log) if attempt < 5 && log.contains("Address already in use") => continue,
                Err(log) => panic!("PostgreSQL did not start (port {}):\n{log}", pg.port),
            }
        }
        unreachable!()
    }

    /// `postgres://postgres@HOST:PORT/postgres` (trust authentication).
    pub fn url(&self, host: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the cluster (`data/`) and the server log (`server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    /// This installation's `psql`, to run against [`url`](Self::url) (also inside a namespace).
    pub fn psql_path(&self) -> PathBuf {
        self.bin.join("psql")
    }

    /// Runs `sql` with `psql` against `url(host)` as the current user; the unaligned, tuples-only
    /// output, or psql's stderr.
    pub fn query(&self, host: &str, sql: &str) -> Result<String, String> {
        psql_output(Command::new(self.psql_path()), &self.url(host), sql)
    }

    /// Stops the server (fast shutdown: sessions are disconnected, transactions rolled back). The
    /// cluster stays; [`start_again`](Self::start_again) brings it back on the same port.
    pub fn stop(&mut self) {
        let o = output(self.pg_ctl().args(["-m", "fast", "-w", "-t", "60", "stop"]));
        assert!(o.status.success(), "pg_ctl stop failed: {}\n{}", describe(&o), self.log_tail());
        self.running = false;
    }

    /// Starts the stopped server again: same cluster, same port and addresses.
    pub fn start_again(&mut self) {
        assert!(!self.running, "start_again: the server is running");
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not start again (port {}):\n{log}", self.port);
        }
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Starts the postmaster with the cluster's settings and checks it: it must have bound every
    /// listen address (PostgreSQL only warns about one it cannot bind, or whose port is taken)
    /// and answer a query over TCP at each of them from this very cluster.
    fn try_start(&mut self) -> Result<(), String> {
        let log = self.log_path();
        let log_before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let o = output(self.pg_ctl().arg("-l").arg(&log).args(["-w", "-t", "60", "start"]));
        let fail = |pg: &mut PgServer, why: String| {
            // pg_ctl may have left a postmaster behind (timed out, or half-bound): make it go.
            let _ = output(pg.pg_ctl().args(["-m", "immediate", "-w", "stop"]));
            pg.running = false;
            Err(format!("{why}\n{}", pg.log_tail()))
        };
        if !o.status.success() {
            return fail(self, format!("pg_ctl start: {}", describe(&o)));
        }
        self.running = true;
        let new_log = std::fs::read(&log).map(|b| String::from_utf8_lossy(&b[log_before.min(b.len())..]).into_owned());
        if let Some(line) = new_log.unwrap_or_default().lines().find(|l| l.contains("could not bind")) {
            return fail(self, format!("not listening on every address: {line}"));
        }
        let want = self.data_dir();
        for host in self.listen_addresses() {
            // pg_ctl -w saw the postmaster ready; prove it with a real query over TCP.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match self.query(&host, "SHOW data_directory") {
                    Ok(dir) if Path::new(&dir) == want => break,
                    Ok(dir) => return fail(self, format!("{host}:{} is another server (data dir {dir})", self.port)),
                    Err(e) if Instant::now() > deadline => {
                        return fail(self, format!("no answer to a query at {host}:{}: {e}", self.port));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Ok(())
    }

    /// The addresses the server listens on (from the settings this module wrote).
    fn listen_addresses(&self) -> Vec<String> {
        let conf = std::fs::read_to_string(self.data_dir().join("postgresql.auto.conf")).unwrap_or_default();
        conf.lines()
            .find_map(|l| l.strip_prefix("listen_addresses = '")?.strip_suffix('\''))
            .map(|a| a.split(',').map(str::to_string).collect())
            .unwrap_or_else(|| vec!["127.0.0.1".into()])
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no server log: {e})"));
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- server log ({}), last lines:\n{}",
            self.log_path().display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    fn pg_ctl(&self) -> Command {
        let mut c = self.program("pg_ctl");
        c.arg("-D").arg(self.data_dir());
        c
    }

    /// A server program of this installation, as `postgres` when we are root, run in the cluster
    /// directory (the test's cwd may not be readable by `postgres`).
    fn program(&self, name: &str) -> Command {
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        };
        c.current_dir(self.dir()).env("LC_ALL", "C").stdin(Stdio::null());
        for v in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS"] {
            c.env_remove(v);
        }
        c
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let o = output(self.pg_ctl().args(["-m", "immediate", "-w", "-t", "30", "stop"]));
            if !o.status.success() {
                eprintln!("PgServer drop: pg_ctl stop failed ({}); killing the postmaster", describe(&o));
                if let Some(pid) = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
                    .ok()
                    .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok())
                {
                    // SAFETY: plain kill(2) of the postmaster pid this cluster recorded.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            eprintln!("PgServer drop: removing the cluster dir: {e}");
        }
    }
}

/// Runs `sql` through `psql` built by `psql` (a [`Command`] of the psql binary, possibly wrapped,
/// e.g. by [`super::netns::Netns::command`]) against `url`; trimmed stdout or the error.
pub fn psql_output(mut psql: Command, url: &str, sql: &str) -> Result<String, String> {
    psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"]).arg(url).args(["-c", sql]);
    for v in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE"] {
        psql.env_remove(v);
    }
    // A connection attempt that hangs fails within seconds instead.
    psql.env("PGCONNECT_TIMEOUT", "5").stdin(Stdio::null());
    let o = output(&mut psql);
    if o.status.success() { Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()) } else { Err(describe(&o)) }
}

fn output(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {c:?}: {e}"))
}

fn describe(o: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("probing a free port").port()
}

/// uid and gid of the `postgres` system user (created by Debian's postgresql package).
fn postgres_ids() -> (u32, u32) {
    let name = c"postgres";
    // SAFETY: getpwnam with a NUL-terminated name; the fields are read at once, before any other
    // getpw* call on this thread could overwrite the static record.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        assert!(
            !pw.is_null(),
            "no `postgres` user: it comes with Debian's postgresql package (apt-get install postgresql)"
        );
        ((*pw).pw_uid, (*pw).pw_gid)
    }
}

/// The pg_hba address for clients reaching us through `addr`: the subnet `ip` has for it on this
/// host (a veth's /30), or just the address itself.
fn subnet_of(addr: &str) -> String {
    let ip: Ipv4Addr = addr.parse().unwrap_or_else(|_| panic!("PgServer listen address {addr:?}: not an IPv4 address"));
    let prefix = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|s| {
            s.split_whitespace()
                .filter_map(|w| w.split_once('/'))
                .find(|(a, _)| *a == addr)
                .and_then(|(_, p)| p.parse().ok())
        })
        .unwrap_or(32u32);
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    format!("{}/{prefix}", Ipv4Addr::from(u32::from(ip) & mask))
}
