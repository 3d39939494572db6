//! The adb parts of the end-to-end tests, with no mocks: a private adb server (the real `adb`,
//! Debian 1.0.41; CI installs it) on its own port with `ADB_EMU=0` and a private HOME, killed on
//! drop, and loopback devices (`quadbench-loopback`, confined with bubblewrap, letting in exactly
//! that server's key) attached to it with `adb connect`:
//!
//! - [`AdbServer::attach_loopback`]: a device served by this process, its fault switch
//!   (`LoopbackDevice::set_faults`) at hand;
//! - [`AdbServer::spawn_loopback`]: a `quadbench loopback-device` process, killed on drop; with a
//!   server started inside a network namespace ([`AdbServer::start_in`]) the device runs there
//!   too, on the namespace's own `lo`, reachable only by that namespace's server.
//!
//! [`AdbServer::profile`] writes the device profile of an attached device (`transport: adb`, its
//! serial and server, `root:` [`DEVICE_ROOT`], the host builds of the runner and runtime).

use super::netns::{self, Netns};
use quadbench_loopback::{Auth, LoopbackConfig, LoopbackDevice};
use std::ffi::OsStr;
use std::net::{SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where quadbench works on the device (the profiles' `root:`), as on a phone.
pub const DEVICE_ROOT: &str = "/data/local/tmp/quadbench";

/// A TCP port free on this host's 127.0.0.1 now (also usable inside a fresh namespace, whose
/// ports are all free).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `cmd` with a deadline; output goes to a file in `dir` (a daemonised adb server would
/// otherwise hold a pipe open and turn "read to EOF" into a hang). `None`: killed at the deadline.
pub fn run_with_deadline(mut cmd: Command, dir: &Path, limit: Duration) -> (Option<i32>, String) {
    let out = tempfile::Builder::new().prefix("cmd-").suffix(".out").tempfile_in(dir).unwrap();
    let f = out.reopen().unwrap();
    let mut child =
        cmd.stdin(Stdio::null()).stdout(f.try_clone().unwrap()).stderr(f).spawn().expect("spawning a command");
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(out.path()).unwrap_or_default())
}

/// A private adb server on this host or inside a network namespace, killed on drop.
pub struct AdbServer {
    port: u16,
    home: tempfile::TempDir,
    /// The namespace it runs in; `None`: this host's.
    ns: Option<String>,
}

impl AdbServer {
    /// A server on this host's 127.0.0.1.
    pub fn start() -> AdbServer {
        AdbServer::start_where(None)
    }

    /// A server inside `ns`, on the namespace's 127.0.0.1. Drop it before `ns`.
    pub fn start_in(ns: &Netns) -> AdbServer {
        AdbServer::start_where(Some(ns.name().to_string()))
    }

    fn start_where(ns: Option<String>) -> AdbServer {
        let s = AdbServer { port: free_port(), home: tempfile::tempdir().unwrap(), ns };
        let (code, out) = run_with_deadline(s.adb(&["start-server"]), s.home.path(), Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "`adb start-server` failed ({out}); the real adb client is required: `apt-get install -y adb`"
        );
        s
    }

    /// `program` run where this server runs: on this host, or inside its namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.ns {
            Some(ns) => netns::exec_in(ns, program),
            None => Command::new(program),
        }
    }

    /// The `adb` client talking to this server only.
    pub fn adb(&self, args: &[&str]) -> Command {
        let mut c = self.command("adb");
        c.arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .env("ADB_EMU", "0")
            .env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            .env_remove("ADB_SERVER_SOCKET")
            .env_remove("ANDROID_SERIAL");
        c
    }

    /// `adb ARGS` with a 30 s deadline: exit code and output.
    pub fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        run_with_deadline(self.adb(args), self.home.path(), Duration::from_secs(30))
    }

    /// Its address, as seen from where it runs (`adb_server:` of a device profile).
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new([127, 0, 0, 1].into(), self.port)
    }

    /// The private HOME (`adb` keeps its key under `.android`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// This server's public key, created by `adb start-server` under the private HOME.
    pub fn key(&self) -> PathBuf {
        self.home.path().join(".android/adbkey.pub")
    }

    /// `adb connect SERIAL`; panics unless the server says it is connected.
    pub fn connect(&self, serial: &str) {
        let (code, out) = self.run(&["connect", serial]);
        assert!(code == Some(0) && out.contains("connected"), "adb connect {serial}: {out}");
    }

    /// A loopback device served by this process, letting in this server's key, attached.
    pub fn attach_loopback(&self) -> Loopback {
        assert!(self.ns.is_none(), "a device in this process cannot be in another namespace: use spawn_loopback");
        let storage = tempfile::tempdir().unwrap();
        let cfg = LoopbackConfig::new(storage.path(), Auth::Keys(self.key()));
        // Display: a missing bwrap or namespaces that cannot be made say how to fix it.
        let dev = LoopbackDevice::start(cfg).unwrap_or_else(|e| panic!("starting the loopback device: {e}"));
        self.connect(&dev.serial());
        Loopback { dev: Arc::new(dev), storage }
    }

    /// A `quadbench loopback-device` process where this server runs (in its namespace, if it
    /// has one), letting in this server's key, attached once it listens.
    pub fn spawn_loopback(&self) -> LoopbackProcess {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("loopback.log")).unwrap();
        let child = self
            .command(env!("CARGO_BIN_EXE_quadbench"))
            .args(["loopback-device", "--port", &port.to_string(), "--root"])
            .arg(dir.path().join("root"))
            .arg("--adb-keys")
            .arg(self.key())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning quadbench loopback-device");
        let mut dev = LoopbackProcess { child, serial: format!("127.0.0.1:{port}"), dir };
        // It may listen only after a while: `adb connect` is refused until then.
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = dev.child.try_wait().unwrap() {
                panic!("quadbench loopback-device exited ({st}):\n{}", dev.log());
            }
            let (code, out) = self.run(&["connect", &dev.serial]);
            if code == Some(0) && out.contains("connected") {
                return dev;
            }
            assert!(Instant::now() < end, "the loopback device never took `adb connect` ({out}):\n{}", dev.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A device profile `dir/NAME.yaml` for the device `serial` attached to this server.
    pub fn profile(&self, dir: &Path, name: &str, serial: &str, retries: u32, backoff_ms: u64) -> PathBuf {
        let p = dir.join(format!("{name}.yaml"));
        let text = format!(
            "name: {name}\ntransport: adb\nserial: \"{serial}\"\nadb_server: \"{}\"\nroot: \"{DEVICE_ROOT}\"\nrunner: auto\nort_library: auto\nretries: {retries}\nbackoff_ms: {backoff_ms}\n",
            self.addr()
        );
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = run_with_deadline(self.adb(&["kill-server"]), self.home.path(), Duration::from_secs(10));
    }
}

/// A loopback device served by this process; stopped, then its storage deleted, on drop.
pub struct Loopback {
    pub dev: Arc<LoopbackDevice>,
    /// The device's `/`.
    pub storage: tempfile::TempDir,
}

/// A `quadbench loopback-device` process, killed on drop (its sandbox ends with it).
pub struct LoopbackProcess {
    child: Child,
    serial: String,
    /// `root/` is the device's `/`; `loopback.log` its stderr.
    dir: tempfile::TempDir,
}

impl LoopbackProcess {
    /// `127.0.0.1:PORT`, as its adb server shows it.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Host path of a device path (`/data/local/tmp/x` -> `ROOT/data/local/tmp/x`).
    pub fn host_path(&self, device_path: &str) -> PathBuf {
        self.dir.path().join("root").join(device_path.trim_start_matches('/'))
    }

    /// What the device logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("loopback.log")).unwrap_or_default()
    }
}

impl Drop for LoopbackProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
