//! A private OpenSSH server for tests: Debian's `sshd` (`apt-get install openssh-server`, which
//! `tests/run.sh` does) started by the test itself with its own configuration, host key and
//! authorized key (made with `ssh-keygen` in a temporary directory), listening on 127.0.0.1 on a
//! free port, and killed on drop (also when the test panics). No mock: the real server, the real
//! client, key authentication as the current user (root in CI).
//!
//! Needs root (sshd changes to the user it logs in, and its privilege-separation directory
//! `/run/sshd` is created here if missing). A test calls [`Sshd::start`], which returns `None`
//! with a note when that cannot work outside CI; as root or with `CI` set a missing `sshd` fails.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Which key a known_hosts file holds for the server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HostKey {
    /// The server's own key.
    Right,
    /// Another key under the server's name (a reinstalled board, or someone in between).
    Wrong,
    /// No entry for the server.
    Unknown,
}

pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Sshd {
    /// A server with fresh keys on a free port, answering SSH. `None` (with a note) only when not
    /// root and `CI` is unset; otherwise every failure panics with the server log.
    pub fn start() -> Option<Sshd> {
        let root = super::pg::is_root();
        if !root || !Path::new(SSHD).is_file() {
            let why = if root {
                format!("{SSHD} is missing; `apt-get install openssh-server` or run `bash tests/run.sh`")
            } else {
                "sshd logs users in only when it runs as root".to_string()
            };
            if root || std::env::var_os("CI").is_some() {
                panic!("cannot start an OpenSSH server: {why} (required: CI is set or running as root)");
            }
            eprintln!("NOTE: skipping this test: {why}");
            return None;
        }
        std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd (sshd's privilege-separation directory)");
        let dir = tempfile::Builder::new().prefix("qb-sshd-").tempdir().expect("temporary dir for sshd");
        for key in ["host_ed25519", "other_host_ed25519", "id_ed25519"] {
            keygen(&dir.path().join(key));
        }
        std::fs::copy(dir.path().join("id_ed25519.pub"), dir.path().join("authorized_keys")).unwrap();
        let mut s = Sshd { dir, port: 0, child: None };
        for attempt in 1..=5 {
            s.port = free_port();
            match s.launch() {
                Ok(()) => return Some(s),
                Err(log) if attempt < 5 && log.contains("Address already in use") => continue,
                Err(log) => panic!("sshd did not start on port {}:\n{log}", s.port),
            }
        }
        unreachable!()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client's private key (its public half is the server's only authorized key).
    pub fn identity(&self) -> PathBuf {
        self.dir().join("id_ed25519")
    }

    /// Writes a known_hosts file at `path` holding `which` key for `[127.0.0.1]:PORT`.
    pub fn known_hosts(&self, path: &Path, which: HostKey) -> PathBuf {
        let key = |name: &str| std::fs::read_to_string(self.dir().join(name)).unwrap();
        let line = |port: u16, k: String| {
            let mut f = k.split_whitespace();
            format!("[127.0.0.1]:{port} {} {}\n", f.next().unwrap(), f.next().unwrap())
        };
        let text = match which {
            HostKey::Right => line(self.port, key("host_ed25519.pub")),
            HostKey::Wrong => line(self.port, key("other_host_ed25519.pub")),
            // Another server's entry: the file is not empty, ours is just not in it.
            HostKey::Unknown => line(1, key("other_host_ed25519.pub")),
        };
        std::fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    /// A device profile for this server (as the current user, strict host keys) at
    /// `dir/<name>.yaml`, with `extra` lines appended.
    pub fn profile(&self, dir: &Path, name: &str, root: &str, which: HostKey, extra: &str) -> PathBuf {
        let kh = self.known_hosts(&dir.join(format!("{name}.known_hosts")), which);
        let text = format!(
            "name: {name}\ntransport: ssh\nhost: 127.0.0.1\nport: {}\nuser: {}\nidentity_file: \"{}\"\nknown_hosts: \"{}\"\nroot: {}\nrunner: auto\nort_library: auto\n{extra}",
            self.port,
            user(),
            self.identity().display(),
            kh.display(),
            serde_json::to_string(root).unwrap(),
        );
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Kills the server: the listener and every connection's sshd, not the commands they run
    /// (which lose their session, as when a board's sshd crashes).
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let mut pids = descendants(child.id());
        pids.retain(|p| comm(*p).as_deref() == Some("sshd"));
        pids.push(child.id());
        for p in pids {
            // SAFETY: kill(2) of processes of this server (checked by parentage and name).
            unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
        }
        let _ = child.wait();
    }

    /// Starts the killed server again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: sshd is running");
        let t0 = Instant::now();
        while let Err(log) = self.launch() {
            assert!(t0.elapsed() < Duration::from_secs(10), "sshd did not restart on port {}:\n{log}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }

    /// Writes the configuration, starts `sshd -D` and waits for its banner; on failure the log.
    fn launch(&mut self) -> Result<(), String> {
        let d = self.dir().to_path_buf();
        let config = format!(
            "Port {}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nUseDNS no\nPrintMotd no\nPrintLastLog no\n\
             X11Forwarding no\nMaxSessions 64\nMaxStartups 64\nLogLevel VERBOSE\n",
            self.port,
            d.join("host_ed25519").display(),
            d.join("sshd.pid").display(),
            d.join("authorized_keys").display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log_before = self.log().len();
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {SSHD}: {e}"))?;
        let t0 = Instant::now();
        loop {
            if banner(self.port).is_some_and(|b| b.starts_with("SSH-2.0-OpenSSH")) {
                self.child = Some(child);
                return Ok(());
            }
            let exited = child.try_wait().ok().flatten().is_some();
            if exited || t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.log().get(log_before..).unwrap_or_default().to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The current user's name (profiles log in as it).
pub fn user() -> String {
    let o = Command::new("id").arg("-un").output().expect("running `id -un`");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "quadbench-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("running ssh-keygen (apt-get install openssh-client)");
    assert!(st.success(), "ssh-keygen {} failed", path.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("probing a free port").port()
}

/// The first line the server at `port` sends, if it answers.
fn banner(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `(pid, ppid, comm)` of every process.
pub fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect()
}

fn comm(pid: u32) -> Option<String> {
    processes().into_iter().find(|p| p.0 == pid).map(|p| p.2)
}

/// Every process below `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let all = processes();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    found.remove(0);
    found
}

/// Processes whose working directory is `dir` or below it (runners left behind on the "board").
pub fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    processes()
        .into_iter()
        .filter(|p| std::fs::read_link(format!("/proc/{}/cwd", p.0)).is_ok_and(|c| c.starts_with(dir)))
        .map(|p| (p.0, p.2))
        .collect()
}
