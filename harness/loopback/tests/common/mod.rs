//! Shared by the tests that drive the loopback device with the real `adb` client (Debian
//! package `adb`; CI installs it in `.ci/run`): a private adb server on its own port, with
//! `ADB_EMU=0` and a private HOME/TMPDIR (so its key, `HOME/.android/adbkey.pub`, and its log
//! stay in the test's temp dir), and devices that let exactly that server in. Every adb
//! invocation has a deadline, so a hang is a failure, never a stuck test.

#![allow(dead_code)]

use quadbench_loopback::{Auth, Faults, LoopbackConfig, LoopbackDevice};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const MODEL: &str = "qb-loopback-test-model";

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut v).unwrap();
    v
}

#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A private adb server, killed on drop.
pub struct Adb {
    pub port: u16,
    pub dir: tempfile::TempDir,
    seq: std::cell::Cell<u32>,
}

impl Adb {
    pub fn new() -> Adb {
        match Command::new("adb").arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(_) => {}
            Err(e) => panic!(
                "the real adb client is required for these tests but `adb` could not be run ({e}); \
                 install it with `apt-get install -y adb` (CI does this in .ci/run)"
            ),
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let adb = Adb { port, dir: tempfile::tempdir().unwrap(), seq: std::cell::Cell::new(0) };
        let out = adb.run(&["start-server"], None, Duration::from_secs(20));
        assert_eq!(out.code, Some(0), "adb start-server failed: {out:?}");
        assert!(adb.key().is_file(), "adb start-server did not create {}", adb.key().display());
        adb
    }

    /// This server's public key (what `adb start-server` created under the private HOME).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join(".android/adbkey.pub")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("adb");
        c.arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .env("ADB_EMU", "0")
            .env("HOME", self.dir.path())
            .env("TMPDIR", self.dir.path())
            .env_remove("ADB_SERVER_SOCKET")
            .env_remove("ANDROID_SERIAL")
            .env_remove("ADB_VENDOR_KEYS");
        c
    }

    /// Runs adb with a deadline. Output goes to files, not pipes: a daemonised server could
    /// otherwise hold a pipe open and turn "read to EOF" into a hang.
    pub fn spawn(&self, args: &[&str], stdin: Option<&Path>) -> (std::process::Child, PathBuf, PathBuf) {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let so = self.dir.path().join(format!("out{n}"));
        let se = self.dir.path().join(format!("err{n}"));
        let mut c = self.command(args);
        c.stdout(std::fs::File::create(&so).unwrap()).stderr(std::fs::File::create(&se).unwrap());
        c.stdin(match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        });
        (c.spawn().expect("spawning adb"), so, se)
    }

    pub fn wait(child: &mut std::process::Child, so: &Path, se: &Path, started: Instant, limit: Duration) -> Out {
        let mut timed_out = false;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out {
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(so).unwrap_or_default(),
            stderr: std::fs::read_to_string(se).unwrap_or_default(),
            timed_out,
            elapsed: started.elapsed(),
        }
    }

    pub fn run(&self, args: &[&str], stdin: Option<&Path>, limit: Duration) -> Out {
        let started = Instant::now();
        let (mut child, so, se) = self.spawn(args, stdin);
        Adb::wait(&mut child, &so, &se, started, limit)
    }

    /// `adb -s SERIAL args...` that must exit 0 within 30 s.
    pub fn ok(&self, serial: &str, args: &[&str]) -> Out {
        let mut full = vec!["-s", serial];
        full.extend_from_slice(args);
        let out = self.run(&full, None, Duration::from_secs(30));
        assert!(!out.timed_out && out.code == Some(0), "adb {full:?} failed: {out:?}");
        out
    }

    pub fn connect(&self, dev: &LoopbackDevice) -> String {
        let serial = dev.serial();
        let out = self.run(&["connect", &serial], None, Duration::from_secs(20));
        assert!(out.stdout.contains("connected to"), "adb connect {serial}: {out:?}");
        serial
    }

    /// The state `adb devices` shows for `serial`, if listed.
    pub fn state(&self, serial: &str) -> Option<String> {
        let out = self.run(&["devices"], None, Duration::from_secs(10));
        out.stdout
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(s, _)| *s == serial)
            .map(|(_, st)| st.trim().to_string())
    }

    pub fn wait_state(&self, serial: &str, pred: impl Fn(Option<&str>) -> bool, limit: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            let st = self.state(serial);
            if pred(st.as_deref()) || start.elapsed() > limit {
                return st;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Adb {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"], None, Duration::from_secs(10));
    }
}

/// A device that lets `adb` in (its key is the device's adb_keys), with the test model name.
pub fn device(adb: &Adb, faults: Faults) -> (tempfile::TempDir, LoopbackDevice) {
    device_with(Auth::Keys(adb.key()), faults)
}

pub fn device_with(auth: Auth, faults: Faults) -> (tempfile::TempDir, LoopbackDevice) {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = LoopbackConfig::new(root.path(), auth);
    cfg.props.insert("ro.product.model".into(), MODEL.into());
    cfg.faults = faults;
    // Display, not Debug: a missing bwrap or namespaces that cannot be made say how to fix it.
    let dev = LoopbackDevice::start(cfg).unwrap_or_else(|e| panic!("starting the loopback device: {e}"));
    assert!(dev.addr().port() > 5585, "ephemeral port {} must be outside adb's emulator range", dev.addr());
    assert!(dev.addr().ip().is_loopback());
    (root, dev)
}
