//! The loopback device validated by the real `adb` client (Debian package `adb`; CI installs it
//! in `.ci/run`). No mocks: every check goes through an adb server we start on a private port
//! (so tests do not fight over 5037), with `ADB_EMU=0` and a private HOME/TMPDIR (adb keys and
//! the server log stay in the test's temp dir). Every adb invocation has a deadline, so a hang is
//! a failure, never a stuck test. Each test kills its adb server when it ends.

use quadbench_loopback::{Faults, LoopbackConfig, LoopbackDevice};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "qb-loopback-test-model";
const BIG: usize = 3 * 1024 * 1024;

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut v).unwrap();
    v
}

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
    elapsed: Duration,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A private adb server, killed on drop.
struct Adb {
    port: u16,
    dir: tempfile::TempDir,
    seq: std::cell::Cell<u32>,
}

impl Adb {
    fn new() -> Adb {
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
        adb
    }

    fn command(&self, args: &[&str]) -> Command {
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
    fn spawn(&self, args: &[&str], stdin: Option<&Path>) -> (std::process::Child, PathBuf, PathBuf) {
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

    fn wait(child: &mut std::process::Child, so: &Path, se: &Path, started: Instant, limit: Duration) -> Out {
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

    fn run(&self, args: &[&str], stdin: Option<&Path>, limit: Duration) -> Out {
        let started = Instant::now();
        let (mut child, so, se) = self.spawn(args, stdin);
        Adb::wait(&mut child, &so, &se, started, limit)
    }

    /// `adb -s SERIAL args...` that must exit 0 within 30 s.
    fn ok(&self, serial: &str, args: &[&str]) -> Out {
        let mut full = vec!["-s", serial];
        full.extend_from_slice(args);
        let out = self.run(&full, None, Duration::from_secs(30));
        assert!(!out.timed_out && out.code == Some(0), "adb {full:?} failed: {out:?}");
        out
    }

    fn connect(&self, dev: &LoopbackDevice) -> String {
        let serial = dev.serial();
        let out = self.run(&["connect", &serial], None, Duration::from_secs(20));
        assert!(out.stdout.contains("connected to"), "adb connect {serial}: {out:?}");
        serial
    }

    /// The state `adb devices` shows for `serial`, if listed.
    fn state(&self, serial: &str) -> Option<String> {
        let out = self.run(&["devices"], None, Duration::from_secs(10));
        out.stdout
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(s, _)| *s == serial)
            .map(|(_, st)| st.trim().to_string())
    }

    fn wait_state(&self, serial: &str, pred: impl Fn(Option<&str>) -> bool, limit: Duration) -> Option<String> {
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

fn device(faults: Faults) -> (tempfile::TempDir, LoopbackDevice) {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = LoopbackConfig::new(root.path());
    cfg.props.insert("ro.product.model".into(), MODEL.into());
    cfg.faults = faults;
    let dev = LoopbackDevice::start(cfg).unwrap();
    assert!(dev.addr().port() > 5585, "ephemeral port {} must be outside adb's emulator range", dev.addr());
    assert!(dev.addr().ip().is_loopback());
    (root, dev)
}

#[test]
fn real_adb_shell_push_pull_ls() {
    let adb = Adb::new();
    let (_root, dev) = device(Faults::default());
    let root = dev.root().to_path_buf();
    let s = adb.connect(&dev);
    assert_eq!(adb.state(&s).as_deref(), Some("device"));

    // Shell v2: exit code propagated, stdout and stderr separate.
    let out = adb.run(&["-s", &s, "shell", "exit 7"], None, Duration::from_secs(30));
    assert_eq!(out.code, Some(7), "exit code must propagate: {out:?}");
    assert_eq!(adb.ok(&s, &["shell", "echo", "hi"]).stdout, "hi\n");
    let out = adb.run(&["-s", &s, "shell", "echo out; echo err >&2; exit 3"], None, Duration::from_secs(30));
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (Some(3), "out\n", "err\n"), "{out:?}");
    // Shell v1 (`-x` disables the shell protocol): merged output, no exit code.
    let out = adb.run(&["-s", &s, "shell", "-x", "echo v1; echo e1 >&2; exit 5"], None, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("v1") && out.stdout.contains("e1"), "{out:?}");
    // exec: raw, merged.
    let out = adb.ok(&s, &["exec-out", "printf raw; printf bits >&2"]);
    assert!(out.stdout.contains("raw") && out.stdout.contains("bits"), "{out:?}");
    // The shell runs in the root with QB_LOOPBACK_ROOT set.
    let out = adb.ok(&s, &["shell", "pwd -P; echo $QB_LOOPBACK_ROOT"]);
    assert_eq!(out.stdout, format!("{}\n{}\n", root.display(), root.display()));

    // getprop answers from the configured props.
    assert_eq!(adb.ok(&s, &["shell", "getprop", "ro.product.model"]).stdout, format!("{MODEL}\n"));
    assert!(adb.ok(&s, &["shell", "getprop"]).stdout.contains(&format!("[ro.product.model]: [{MODEL}]")));

    // push / pull a 3 MB random file through /data/local/tmp.
    let data = random_bytes(BIG);
    let want = sha256_hex(&data);
    let local = adb.dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    let t = Instant::now();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/up/big.bin"]);
    let push_time = t.elapsed();
    let on_device = root.join("up/big.bin");
    assert_eq!(sha256_hex(&std::fs::read(&on_device).unwrap()), want);
    let back = adb.dir.path().join("back.bin");
    let t = Instant::now();
    adb.ok(&s, &["pull", "/data/local/tmp/up/big.bin", back.to_str().unwrap()]);
    let pull_time = t.elapsed();
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), want);
    // Device paths == host paths under the root: the shell sees the same file.
    let out = adb.ok(&s, &["shell", &format!("sha256sum {}", on_device.display())]);
    assert_eq!(out.stdout.split_whitespace().next(), Some(want.as_str()), "{out:?}");
    // ... and a push to the host path lands there too.
    let host_path = format!("{}/hostpath/big.bin", root.display());
    adb.ok(&s, &["push", local.to_str().unwrap(), &host_path]);
    assert_eq!(sha256_hex(&std::fs::read(&host_path).unwrap()), want);

    // Listing through sync and through the shell.
    let out = adb.ok(&s, &["ls", "/data/local/tmp/up"]);
    let line = out.stdout.lines().find(|l| l.ends_with(" big.bin")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.contains(&format!("{:08x}", BIG)), "size in ls line {line:?}");
    assert!(adb.ok(&s, &["shell", "ls up"]).stdout.contains("big.bin"));

    // stdin reaches the command (v2 stdin + close-stdin packets).
    let out = adb.run(&["-s", &s, "shell", "cat > in.bin; wc -c < in.bin"], Some(&local), Duration::from_secs(30));
    assert_eq!(out.stdout.trim(), BIG.to_string(), "{out:?}");
    assert_eq!(sha256_hex(&std::fs::read(root.join("in.bin")).unwrap()), want);

    // Escapes are refused, missing files reported.
    let out =
        adb.run(&["-s", &s, "push", local.to_str().unwrap(), "/data/local/tmp/../../x"], None, Duration::from_secs(30));
    assert_ne!(out.code, Some(0), "escaping push must fail: {out:?}");
    assert!(!root.parent().unwrap().join("x").exists());
    let out =
        adb.run(&["-s", &s, "pull", "/data/local/tmp/nope", back.to_str().unwrap()], None, Duration::from_secs(30));
    assert_ne!(out.code, Some(0), "{out:?}");
    // adb 29 prints sync errors on stdout, newer versions on stderr.
    assert!(out.all().contains("No such file"), "{out:?}");

    // Output is streamed live, not at exit.
    let started = Instant::now();
    let (mut child, so, se) = adb.spawn(&["-s", &s, "shell", "echo first; sleep 3; echo second"], None);
    let mut seen_live = false;
    while started.elapsed() < Duration::from_millis(2500) {
        if std::fs::read_to_string(&so).unwrap_or_default().contains("first") {
            seen_live = child.try_wait().unwrap().is_none();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Adb::wait(&mut child, &so, &se, started, Duration::from_secs(30));
    assert!(seen_live, "first line must arrive while the command still runs: {out:?}");
    assert_eq!(out.stdout, "first\nsecond\n");
    eprintln!("push 3 MiB: {push_time:?}, pull 3 MiB: {pull_time:?}");
    dev.stop();
}

#[test]
fn host_closing_a_shell_kills_the_command() {
    let adb = Adb::new();
    let (_root, dev) = device(Faults::default());
    let s = adb.connect(&dev);
    let marker = dev.root().join("killed-marker");
    // The command would create the marker after 2 s unless it is killed with its shell.
    let out = adb.run(
        &["-s", &s, "shell", &format!("sleep 2; touch {}", marker.display())],
        None,
        Duration::from_millis(700),
    );
    assert!(out.timed_out, "{out:?}");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!marker.exists(), "the command survived the host closing its stream");
}

#[test]
fn fault_corrupt_push_changes_the_pulled_hash() {
    let adb = Adb::new();
    let (_root, dev) = device(Faults { corrupt_push: true, ..Faults::default() });
    let s = adb.connect(&dev);
    let data = random_bytes(256 * 1024);
    let local = adb.dir.path().join("f.bin");
    std::fs::write(&local, &data).unwrap();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/f.bin"]);
    let back = adb.dir.path().join("back.bin");
    adb.ok(&s, &["pull", "/data/local/tmp/f.bin", back.to_str().unwrap()]);
    let got = std::fs::read(&back).unwrap();
    assert_eq!(got.len(), data.len());
    assert_ne!(sha256_hex(&got), sha256_hex(&data), "corrupt_push must change the file");
    // Turning the fault off at run time gives a faithful push again.
    dev.set_faults(Faults::default());
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/f.bin"]);
    adb.ok(&s, &["pull", "/data/local/tmp/f.bin", back.to_str().unwrap()]);
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), sha256_hex(&data));
}

#[test]
fn fault_drop_after_bytes_fails_push_and_pull_without_hanging() {
    let adb = Adb::new();
    let (_root, dev) = device(Faults::default());
    let s = adb.connect(&dev);
    let data = random_bytes(BIG);
    let local = adb.dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    adb.ok(&s, &["push", local.to_str().unwrap(), "/data/local/tmp/big.bin"]);

    dev.set_faults(Faults { drop_after_bytes: Some(64 * 1024), ..Faults::default() });
    let back = adb.dir.path().join("back.bin");
    let out =
        adb.run(&["-s", &s, "pull", "/data/local/tmp/big.bin", back.to_str().unwrap()], None, Duration::from_secs(30));
    assert!(!out.timed_out, "pull must fail, not hang: {out:?}");
    assert_ne!(out.code, Some(0), "pull through a dropped connection must fail: {out:?}");
    eprintln!("dropped pull failed after {:?}", out.elapsed);

    // The adb server reconnects (the new connection gets the same budget); push fails as well.
    let st = adb.wait_state(&s, |st| st == Some("device"), Duration::from_secs(15));
    assert_eq!(st.as_deref(), Some("device"), "adb did not reconnect after the drop");
    let out = adb.run(
        &["-s", &s, "push", local.to_str().unwrap(), "/data/local/tmp/again.bin"],
        None,
        Duration::from_secs(30),
    );
    assert!(!out.timed_out, "push must fail, not hang: {out:?}");
    assert_ne!(out.code, Some(0), "push through a dropped connection must fail: {out:?}");
    assert!(out.all().contains("adb: error"), "{out:?}");
}

#[test]
fn fault_stall_blocks_until_cleared() {
    let adb = Adb::new();
    let (_root, dev) = device(Faults::default());
    let s = adb.connect(&dev);
    let data = random_bytes(BIG);
    std::fs::write(dev.root().join("big.bin"), &data).unwrap();
    dev.set_faults(Faults { stall_after_bytes: Some(64 * 1024), ..Faults::default() });
    let back = adb.dir.path().join("back.bin");
    let started = Instant::now();
    let (mut child, so, se) = adb.spawn(&["-s", &s, "pull", "/data/local/tmp/big.bin", back.to_str().unwrap()], None);
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "a stalled pull must not finish");
    dev.set_faults(Faults::default());
    let out = Adb::wait(&mut child, &so, &se, started, Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "pull must complete once the stall is cleared: {out:?}");
    assert_eq!(sha256_hex(&std::fs::read(&back).unwrap()), sha256_hex(&data));
}

#[test]
fn fault_offline_via_control_file() {
    let adb = Adb::new();
    let (_root, dev) = device(Faults::default());
    let s = adb.connect(&dev);
    let control = dev.root().join(".loopback/faults.json");
    std::fs::create_dir_all(control.parent().unwrap()).unwrap();
    std::fs::write(&control, r#"{"offline": true}"#).unwrap();
    let st = adb.wait_state(&s, |st| st != Some("device"), Duration::from_secs(10));
    assert_ne!(st.as_deref(), Some("device"), "an offline device must not be listed as `device`");
    assert!(dev.faults().offline);
    // Still offline a little later: the server's reconnects are refused.
    std::thread::sleep(Duration::from_secs(1));
    assert_ne!(adb.state(&s).as_deref(), Some("device"));
    let out = adb.run(&["-s", &s, "shell", "true"], None, Duration::from_secs(15));
    assert_ne!(out.code, Some(0), "{out:?}");

    // Deleting the control file clears the faults and the device comes back.
    std::fs::remove_file(&control).unwrap();
    let st = adb.wait_state(&s, |st| st == Some("device"), Duration::from_secs(20));
    if st.as_deref() != Some("device") {
        adb.connect(&dev);
    }
    assert_eq!(adb.ok(&s, &["shell", "echo back"]).stdout, "back\n");
}
