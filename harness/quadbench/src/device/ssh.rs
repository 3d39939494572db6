//! The `ssh` transport: a Linux board (any machine with a POSIX shell and `sha256sum`) reached
//! with the system's OpenSSH client. Opening it starts one ControlMaster connection, its socket
//! in a private temporary directory and its process owned by a thread of ours (it dies with the
//! host); every later command is a multiplexed `ssh` client running `sh -c '<script>'` on the
//! board, so a command costs a process, not a handshake. This module owns the profile keys
//! (`host`, `port`, `user`, `identity_file`, `known_hosts`, `root`, `abi`), the connection, the
//! board's fingerprint and push / exec / pull over it.
//!
//! - Host keys are always checked strictly (`StrictHostKeyChecking=yes`, `UpdateHostKeys=no`,
//!   `BatchMode=yes`): an unknown or changed key is an infrastructure error that says "host key"
//!   and how to add it; nothing is ever written to a known_hosts file.
//! - Files go through the client's stdin into `<file>.qb-part` (`cat`), are hashed on the board
//!   (`sha256sum`) and only then moved into place; a file already holding the right hash is not
//!   pushed again. Pulls come through stdout. No SFTP server is needed on the board.
//! - The runner runs under a wrapper that reports its pid and process group and is tied to the
//!   session: when the session's input ends (connection lost, host gone) the wrapper kills the
//!   group. At a deadline, a silence or an interrupt the host kills the group with a second
//!   command. The exit status comes in a marker line, so a cut stream is an infrastructure error,
//!   never a runner result.
//! - Every argument placed in a script is single-quoted (`adb::quote`; NUL refused); remote paths
//!   are validated components under `root`, which may itself hold spaces, quotes or `$`.
//!   The board user's login shell must be a POSIX shell (sh, bash, dash, ash, zsh).

use super::adb::{printable, quote};
use super::child::{Kept, drain, spawn, wait_within};
use super::watchdog::{self, End, Msg, PID_PREFIX, WrapperLines};
use super::{
    Capabilities, DeviceError, DeviceInfo, ExecLimits, ExecOutcome, SettingsInput, Transport, TransportKind,
    TransportSettings,
};
use crate::yaml::KeyError;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Where quadbench works on a board unless `root:` says otherwise (disk, not a RAM-backed /tmp).
pub const DEFAULT_ROOT: &str = "/var/tmp/quadbench";
/// Limit of one short command.
const SHORT: Duration = Duration::from_secs(30);
/// How long connecting (TCP, key exchange, authentication) may take.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

pub const KIND: TransportKind = TransportKind {
    name: "ssh",
    keys: &["host", "port", "user", "identity_file", "known_hosts", "root", "abi"],
    parse: parse_settings,
};

/// Where and how to reach a board over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub host: String,
    pub port: u16,
    /// `None`: ssh's default (its config, else the local user name).
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// `None`: ssh's default files (`~/.ssh/known_hosts`, `/etc/ssh/ssh_known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Absolute board directory (may hold spaces and quotes; no control characters, `:` or `;`).
    pub root: String,
    /// The machine (`uname -m`) the runner and runtime were built for, checked at connect.
    pub abi: Option<String>,
}

/// A host name or address as ssh takes it (IPv6 without brackets), never an option.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && !h.starts_with('-')
        && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:%".contains(c))
}

pub fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('-')
        && u.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// An absolute board directory: no control characters, no `:` or `;` (they separate library
/// path entries), no empty, `.` or `..` component, never `/` itself.
pub fn valid_root(r: &str) -> bool {
    r.len() <= 1024
        && !r.chars().any(|c| c.is_control() || c == ':' || c == ';')
        && r.strip_prefix('/')
            .is_some_and(|rest| !rest.is_empty() && rest.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// This host's machine name as `uname -m` prints it (what `runner: auto` is built for).
pub fn host_machine() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "i686",
        "arm" => "armv7l",
        "powerpc64" => "ppc64",
        a => a,
    }
}

impl TransportSettings for SshSettings {
    fn capabilities(&self) -> Capabilities {
        // `None` is "the host's own" for the backends, which is what a matching machine is.
        Capabilities { is_host: false, shares_host_files: false, abi: self.abi.clone().filter(|a| a != host_machine()) }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Transport>, DeviceError> {
        Ok(Box::new(Ssh::connect(name, self)?))
    }
}

/// A file named by a profile key: `~/` is the home directory, relative paths resolve against
/// the profile's folder; characters ssh's option parser would reinterpret are refused.
fn path_key(input: &SettingsInput<'_>, key: &str, fix: &str) -> Result<Option<PathBuf>, KeyError> {
    let Some(text) = super::string_key(input, key)? else { return Ok(None) };
    let path = match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => input.base.join(&text),
    };
    let shown = path.display().to_string();
    if path.to_str().is_none_or(|p| p.chars().any(|c| c.is_control() || c == '"' || c == '\\')) {
        return Err(KeyError::new(key, format!("{key} {shown:?} has characters ssh options cannot carry"), fix));
    }
    if !path.is_file() {
        return Err(KeyError::new(key, format!("{key} {shown} is not a file"), fix));
    }
    Ok(Some(path))
}

/// Validate the ssh keys of a device profile.
fn parse_settings(input: &SettingsInput<'_>) -> Result<Arc<dyn TransportSettings>, KeyError> {
    let key = |k: &str| super::string_key(input, k);
    let Some(host) = key("host")? else {
        return Err(KeyError::new(
            "transport",
            "the ssh transport needs `host:`",
            "add `host: <the board's name or address>`",
        ));
    };
    if !valid_host(&host) {
        return Err(KeyError::new(
            "host",
            format!("host {host:?} is not a host name or address"),
            "e.g. `host: 192.168.1.40` or `host: rpi5.lab` (IPv6 without brackets; the user goes in `user:`)",
        ));
    }
    let port = match key("port")? {
        None => 22,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| KeyError::new("port", format!("port `{p}` is not a TCP port"), "e.g. `port: 22`"))?,
    };
    let user = key("user")?;
    if let Some(u) = user.as_deref().filter(|u| !valid_user(u)) {
        return Err(KeyError::new("user", format!("user {u:?} is not a user name"), "e.g. `user: root`"));
    }
    let identity_file =
        path_key(input, "identity_file", "point it at the private key the board accepts, e.g. `~/.ssh/id_ed25519`")?;
    let scan = format!("ssh-keyscan -p {port} {host} >> FILE");
    let known_hosts = path_key(
        input,
        "known_hosts",
        &format!("name an existing known_hosts file; after checking the board's key fingerprint: `{scan}`"),
    )?;
    let root = key("root")?.unwrap_or_else(|| DEFAULT_ROOT.into());
    let root = root.trim_end_matches('/').to_string();
    if !valid_root(&root) {
        return Err(KeyError::new(
            "root",
            format!("root {root:?} must be an absolute board directory other than /"),
            "e.g. `root: /var/tmp/quadbench` (no `..`, `:`, `;` or control characters)",
        ));
    }
    let abi = key("abi")?;
    if let Some(abi) = &abi {
        if !crate::safe_name(abi) {
            return Err(KeyError::new(
                "abi",
                format!("abi `{abi}` is not a machine name"),
                "e.g. `abi: aarch64` (as `uname -m` prints it)",
            ));
        }
        if abi != host_machine() && input.host_builds {
            return Err(KeyError::new(
                "abi",
                format!("`runner`/`ort_library: auto` are this host's {} builds, not {abi}", host_machine()),
                "cross-build the runner (`cargo build --release --target aarch64-unknown-linux-gnu -p quadbench-runner`), take the aarch64 ONNX Runtime (`quadbench runtime fetch`) and set `runner:` and `ort_library:` (docs/ssh.md)",
            ));
        }
    }
    Ok(Arc::new(SshSettings { host, port, user, identity_file, known_hosts, root, abi }))
}

/// Escape ssh's `%` tokens in a path given as an option value.
fn ssh_path(p: &Path) -> String {
    p.display().to_string().replace('%', "%%")
}

/// What a short command reads and where its stdout goes.
enum Io {
    Capture,
    Upload(std::fs::File),
    Download(std::fs::File),
}

/// A short command's end: exit code (the board's), stdout (captured), stderr.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One open connection: the master, and how to run commands through it.
struct Conn {
    name: String,
    s: SshSettings,
    /// Dropped before `dir` (fields drop in order): the socket goes with its directory.
    master: Option<Kept>,
    dir: tempfile::TempDir,
}

impl Conn {
    fn infra(&self, message: String) -> DeviceError {
        DeviceError::Infra { device: self.name.clone(), message }
    }

    /// `user@host:port`, for messages.
    fn dest(&self) -> String {
        let user = self.s.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        format!("{user}{}:{}", self.s.host, self.s.port)
    }

    /// Connect: start the master and wait until its control socket accepts clients.
    fn open(name: &str, s: &SshSettings) -> Result<Conn, DeviceError> {
        let infra = |message: String| DeviceError::Infra { device: name.into(), message };
        // Unix socket paths are short (108 bytes), and ssh options split at spaces: a long or
        // unusual TMPDIR is not used for the socket.
        let tmp = std::env::temp_dir();
        let plain = tmp
            .to_str()
            .is_some_and(|t| t.len() <= 60 && t.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)));
        let base = if plain { tmp } else { PathBuf::from("/tmp") };
        let dir = tempfile::Builder::new()
            .prefix("qb-ssh-")
            .tempdir_in(&base)
            .map_err(|e| infra(format!("cannot create a private directory in {}: {e}", base.display())))?;
        let mut conn = Conn { name: name.into(), s: s.clone(), master: None, dir };
        let log_path = conn.dir.path().join("master.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| infra(format!("cannot write {}: {e}", log_path.display())))?;
        let mut cmd = conn.ssh();
        cmd.args(["-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "--", s.host.as_str()]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let master = Kept::start(cmd).map_err(|e| {
            infra(format!("cannot run `ssh` ({e}); install the OpenSSH client (`apt-get install openssh-client`)"))
        })?;
        conn.master = Some(master);
        let t0 = Instant::now();
        // The master makes its control socket once it is logged in.
        while !conn.dir.path().join("cm").exists() {
            if conn.master.as_ref().and_then(Kept::gone).is_some() {
                return Err(conn.failure(&format!("connecting to {}", conn.dest()), ""));
            }
            if t0.elapsed() > CONNECT_WAIT {
                let wait = CONNECT_WAIT.as_secs();
                return Err(infra(format!("no ssh session with {} within {wait} s", conn.dest())));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(conn)
    }

    /// `ssh` with every option we insist on, before the destination.
    fn ssh(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-T", "-x", "-a", "-e", "none", "-p"]).arg(self.s.port.to_string());
        for o in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "UpdateHostKeys=no",
            "CheckHostIP=no",
            "ConnectTimeout=10",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=3",
            "LogLevel=ERROR",
        ] {
            c.arg("-o").arg(o);
        }
        c.arg("-o").arg(format!("ControlPath={}", ssh_path(&self.dir.path().join("cm"))));
        if let Some(k) = &self.s.known_hosts {
            c.arg("-o").arg(format!("UserKnownHostsFile=\"{}\"", ssh_path(k)));
            c.args(["-o", "GlobalKnownHostsFile=/dev/null"]);
        }
        if let Some(i) = &self.s.identity_file {
            c.arg("-i").arg(ssh_path(i)).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(u) = &self.s.user {
            c.arg("-l").arg(u);
        }
        c
    }

    /// A multiplexed client running `script` with `sh -c` on the board.
    fn client(&self, script: &str) -> Result<Command, DeviceError> {
        if let Some(why) = self.master.as_ref().map_or(Some("closed".into()), Kept::gone) {
            return Err(self.failure(&format!("the connection to {} is gone ({why})", self.dest()), ""));
        }
        let mut c = self.ssh();
        c.args(["-o", "ControlMaster=no", "--", self.s.host.as_str()]).arg(format!("sh -c {}", quote(script)?));
        c.stdin(Stdio::null()).stderr(Stdio::piped());
        Ok(c)
    }

    /// Run a short script; an ssh failure (status 255) or no end within `limit` is an
    /// infrastructure error, any other status is the script's.
    fn run(&self, what: &str, script: &str, io: Io, limit: Duration) -> Result<Out, DeviceError> {
        let mut cmd = self.client(script)?;
        match io {
            Io::Capture => cmd.stdout(Stdio::piped()),
            Io::Upload(f) => cmd.stdin(f).stdout(Stdio::piped()),
            Io::Download(f) => cmd.stdout(f),
        };
        let mut child = spawn(&mut cmd).map_err(|e| self.infra(format!("{what}: cannot run `ssh`: {e}")))?;
        let out = child.stdout.take().map(|o| drain(o, Some(1 << 20)));
        let err = child.stderr.take().map(|e| drain(e, None));
        let status = wait_within(&mut child, limit);
        let join = |h: Option<std::thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        let (stdout, stderr) = (join(out), join(err));
        match status.and_then(|s| s.code()) {
            None if status.is_none() => Err(self.infra(format!(
                "{what}: no answer from {} within {} s; the board or its connection stopped responding",
                self.dest(),
                limit.as_secs()
            ))),
            None | Some(255) => Err(self.failure(what, &stderr)),
            Some(code) => Ok(Out { code, stdout, stderr }),
        }
    }

    fn master_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("master.log")).unwrap_or_default()
    }

    /// The infrastructure error for a failed ssh client or master, from what it printed.
    fn failure(&self, what: &str, stderr: &str) -> DeviceError {
        // A multiplexed client that lost its master says nothing; the master's log says why.
        let log = self.master_log();
        let stderr = if stderr.trim().is_empty() { log.as_str() } else { stderr };
        let lines: Vec<&str> =
            stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("@@@")).collect();
        let said = printable(&lines[lines.len().saturating_sub(2)..].join(" / "));
        let kh = self.s.known_hosts.as_ref().map_or("~/.ssh/known_hosts".into(), |p| p.display().to_string());
        let (host, port) = (&self.s.host, self.s.port);
        let entry = if port == 22 { host.clone() } else { format!("[{host}]:{port}") };
        let scan = format!("ssh-keyscan -p {port} {host} >> {kh}");
        let message = if stderr.contains("Host key verification failed")
            && stderr.to_lowercase().contains("has changed")
        {
            format!(
                "{what}: the host key of {entry} is not the one recorded in {kh} (REMOTE HOST IDENTIFICATION HAS CHANGED): a reinstalled board, or someone in between; refused. If the board was reinstalled, check its new key's fingerprint, then `ssh-keygen -R '{entry}' -f {kh}` and `{scan}`"
            )
        } else if stderr.contains("Host key verification failed") {
            format!(
                "{what}: the host key of {entry} is not in {kh} (strict host-key checking; never accepted silently). Check the key's fingerprint with the board's owner, then add it: `{scan}`"
            )
        } else if stderr.contains("Permission denied (") {
            format!(
                "{what}: {} refused our key ({said}); add the public key of `identity_file` to the board user's ~/.ssh/authorized_keys",
                self.dest()
            )
        } else if said.is_empty() {
            format!("{what} (ssh said nothing; is sshd running on {}?)", self.dest())
        } else {
            format!("{what}: {said}")
        };
        self.infra(message)
    }
}

/// Prints `QB-FP <key> <value>` lines: hostname, machine, kernel, cpu, cpus, mem_kb, board
/// (device-tree model, else DMI), soc (`/sys/devices/soc0`, else the last device-tree
/// `compatible`), os, sha256sum. Shell builtins, `uname`, `tr` and `cat` only.
const PROBE: &str = r#"f() { printf 'QB-FP %s %s\n' "$1" "$2"; }
f hostname "$(uname -n)"; f machine "$(uname -m)"; f kernel "$(uname -sr)"
n=0; cpu=; hw=; part=
while IFS= read -r l; do case $l in
  processor*) n=$((n+1));;
  "model name"*|"cpu model"*) [ -n "$cpu" ] || cpu=${l#*: };;
  Hardware*|Processor*) [ -n "$hw" ] || hw=${l#*: };;
  "CPU part"*) [ -n "$part" ] || part="CPU part ${l#*: }";;
esac; done < /proc/cpuinfo
if [ -z "$cpu" ] && command -v lscpu >/dev/null 2>&1; then
  cpu=$(LC_ALL=C lscpu | while IFS= read -r l; do case $l in "Model name:"*) echo "${l#*:}"; break;; esac; done)
fi
f cpu "${cpu:-${hw:-$part}}"; f cpus "$n"
while read -r k v u; do [ "$k" = MemTotal: ] && f mem_kb "$v"; done < /proc/meminfo
d=/sys/class/dmi/id; b=
[ -r $d/product_name ] && b="$(cat $d/sys_vendor 2>/dev/null) $(cat $d/product_name)"
case $b in *O.E.M.*|*"Default string"*) b=;; esac
[ -r /proc/device-tree/model ] && b=$(tr -d '\000' < /proc/device-tree/model)
f board "$b"
d=/sys/devices/soc0; s=
for k in family machine; do [ -r $d/$k ] && s="$s $(cat $d/$k)"; done
[ -r $d/soc_id ] && s="$s (soc_id $(cat $d/soc_id))"
[ -z "$s" ] && [ -r /proc/device-tree/compatible ] && for c in $(tr '\000' ' ' < /proc/device-tree/compatible); do s=$c; done
f soc "$s"
[ -r /etc/os-release ] && f os "$(. /etc/os-release; printf %s "$PRETTY_NAME")"
command -v sha256sum >/dev/null 2>&1 && f sha256sum yes
exit 0"#;

/// What the board says about itself ([`PROBE`]'s keys), read once per connection; values are
/// sanitised for display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(pub BTreeMap<String, String>);

impl Fingerprint {
    pub fn parse(text: &str) -> Fingerprint {
        let kv = text.lines().filter_map(|l| l.strip_prefix("QB-FP ")?.split_once(' '));
        Fingerprint(kv.map(|(k, v)| (k.to_string(), printable(v.trim()))).filter(|(_, v)| !v.is_empty()).collect())
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    /// The `DeviceInfo` of a board: model (board, else CPU), SoC, `uname -m`, OS and kernel.
    pub fn info(&self, name: &str) -> DeviceInfo {
        let os = [self.get("os"), self.get("kernel")].into_iter().flatten().collect::<Vec<_>>().join(", ");
        DeviceInfo {
            name: name.into(),
            transport: "ssh".into(),
            model: self.get("board").or(self.get("cpu")),
            soc: self.get("soc"),
            abi: self.get("machine"),
            os_version: Some(os).filter(|o| !o.is_empty()),
        }
    }

    /// What `quadbench devices list --device` shows.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let f = |k: &str| self.get(k).unwrap_or_else(|| "-".into());
        let cpu = match self.get("cpus") {
            Some(n) if n != "0" => format!("{} (x{n})", f("cpu")),
            _ => f("cpu"),
        };
        let mem = self.get("mem_kb").and_then(|k| k.parse::<f64>().ok()).map(|k| format!("{:.1} GiB", k / 1048576.0));
        let mut v = vec![("hostname", f("hostname")), ("arch", f("machine")), ("cpu", cpu), ("kernel", f("kernel"))];
        v.extend([("memory", mem.unwrap_or_else(|| "-".into())), ("soc", f("soc")), ("board", f("board"))]);
        v.push(("os", f("os")));
        v
    }
}

/// A board behind an SSH server.
pub struct Ssh {
    conn: Conn,
    fp: Fingerprint,
}

/// The exec wrapper: enter `cwd` with the library paths set (`env`: already quoted exports),
/// start `cmd` (quoted argv) in the background, report `QB-PID <pid> <pgid>` (the group of this
/// shell or its parent, the session's; else the pid again), kill that group if the session's
/// input ends first (fd 3 keeps it: background jobs get /dev/null), wait, print `<marker> <status>`.
pub fn exec_script(cwd: &str, env: &str, cmd: &str, marker: &str) -> Result<String, DeviceError> {
    Ok(format!(
        r#"exec 3<&0
if cd {cwd} && {env}; then
  {cmd} </dev/null 3<&- &
  r=$!; g=$r
  if read -r st 2>/dev/null < /proc/$$/stat; then set -- ${{st##*")"}}; case $3 in $$|$PPID) g=$3;; esac; fi
  echo "{PID_PREFIX}$r $g"
  {{ while read -r x; do :; done; kill -9 -$g 2>/dev/null || kill -9 $r; }} <&3 >/dev/null 2>&1 &
  w=$!; exec 3<&-
  wait $r; s=$?
  kill $w 2>/dev/null
else s=$?; fi
printf '\n%s %d\n' {marker} "$s"; exit "$s""#,
        cwd = quote(cwd)?
    ))
}

/// The exec client while it runs: its stdin (closing it ends the session's input), readers.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::thread::JoinHandle<()>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    /// Close its input, give it `grace` to end (then kill it), collect stderr: (ended, stderr).
    fn end(mut self, grace: Duration) -> (Option<ExitStatus>, String) {
        drop(self.stdin.take());
        let status = wait_within(&mut self.child, grace);
        let _ = self.stdout.join();
        (status, self.stderr.join().unwrap_or_default())
    }
}

/// Forward `out`'s lines (lossy UTF-8, at most 1 MB each) until it ends.
fn forward_lines(out: impl Read + Send + 'static, tx: mpsc::Sender<Msg<()>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = Vec::new();
        while r.by_ref().take(1 << 20).read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string();
            line.clear();
            // Nobody listens any more: keep draining so ssh never blocks on a full pipe.
            let _ = tx.send(Msg::Line(text));
        }
    })
}

impl Ssh {
    /// Connect, read the board's fingerprint, check its machine against `abi` and prepare the
    /// root directory (nothing is pushed before these checks).
    pub fn connect(name: &str, s: &SshSettings) -> Result<Ssh, DeviceError> {
        let conn = Conn::open(name, s)?;
        let probe = conn.run("reading the board's fingerprint", PROBE, Io::Capture, SHORT)?;
        let fp = Fingerprint::parse(&probe.stdout);
        if probe.code != 0 || fp.get("machine").is_none() {
            return Err(conn.infra(format!(
                "the fingerprint script failed on {} (exit {}): {}; is the login shell a POSIX shell?",
                conn.dest(),
                probe.code,
                printable(probe.stderr.trim())
            )));
        }
        let machine = fp.get("machine").unwrap_or_default();
        if let Some(want) = s.abi.as_ref().filter(|a| **a != machine) {
            return Err(DeviceError::Test(format!(
                "board {} is {machine} (`uname -m`), not the profile's `abi: {want}`; use a runner and ONNX Runtime built for {machine} and set `abi: {machine}` (docs/ssh.md)",
                conn.dest()
            )));
        }
        if fp.get("sha256sum").is_none() {
            return Err(DeviceError::Test(format!(
                "board {} has no `sha256sum`, which verifies every push; install coreutils or busybox there",
                conn.dest()
            )));
        }
        let q = quote(&s.root)?;
        let r =
            conn.run("preparing the root directory", &format!("mkdir -p {q} && test -w {q}"), Io::Capture, SHORT)?;
        if r.code != 0 {
            return Err(conn.infra(format!(
                "cannot create a writable {} on {}: {}; choose another `root:`",
                s.root,
                conn.dest(),
                printable(r.stderr.trim())
            )));
        }
        Ok(Ssh { conn, fp })
    }

    /// Board path of a validated relative one.
    fn abs(&self, rel: &str) -> Result<String, DeviceError> {
        if !crate::safe_relative_path(rel) {
            return Err(DeviceError::Test(format!("refusing unsafe remote path {:?}", printable(rel))));
        }
        Ok(format!("{}/{rel}", self.conn.s.root))
    }

    /// The exports of an exec: loader paths, our directories first.
    fn exports(&self, lib_dirs: &[String]) -> Result<String, DeviceError> {
        let dirs = lib_dirs.iter().map(|d| self.abs(d)).collect::<Result<Vec<_>, _>>()?;
        let mut ld = dirs.clone();
        ld.push(format!("{}/runtime", self.conn.s.root));
        let mut env =
            format!("export LD_LIBRARY_PATH={}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}", quote(&ld.join(":"))?);
        if !dirs.is_empty() {
            // Qualcomm's DSP loader (FastRPC) finds QNN's HTP skeleton libraries here.
            let adsp = quote(&dirs.join(";"))?;
            env.push_str(&format!(" && export ADSP_LIBRARY_PATH={adsp}${{ADSP_LIBRARY_PATH:+;$ADSP_LIBRARY_PATH}}"));
        }
        Ok(env)
    }

    /// After a deadline, a silence or an interrupt: kill the runner's group over a second
    /// command and end the session's input. The stream then ends on a reachable board (a hung
    /// runner: a test failure, `timed_out`); if not, the connection is treated as lost.
    fn stop_hung(
        &mut self,
        run: Running,
        pids: Option<(u32, u32)>,
        why: String,
        interrupted: Option<i32>,
    ) -> Result<ExecOutcome, DeviceError> {
        let kill = pids.map(|(pid, group)| format!("kill -9 -{group} 2>/dev/null || kill -9 {pid}"));
        let killed = match kill {
            Some(k) => {
                self.conn.run("stopping the runner", &k, Io::Capture, Duration::from_secs(10)).map(|o| o.code == 0)
            }
            None => Ok(false),
        };
        let (status, stderr_tail) = run.end(Duration::from_secs(5));
        if let Some(sig) = interrupted {
            return Err(DeviceError::Interrupted(sig));
        }
        if status.is_some() && matches!(killed, Ok(true)) {
            return Ok(ExecOutcome { exit_code: None, stderr_tail, timed_out: true });
        }
        self.conn.master = None;
        let kill = match killed {
            Ok(true) => "the runner was killed but its session never ended".to_string(),
            Ok(false) => "the runner could not be killed (no pid, or it was gone)".to_string(),
            Err(e) => format!("the kill did not reach the board: {e}"),
        };
        Err(self.conn.infra(format!("runner {why}; {kill}; treating the connection as lost")))
    }
}

impl Transport for Ssh {
    fn info(&self) -> DeviceInfo {
        self.fp.info(&self.conn.name)
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        self.fp.details()
    }

    fn push(&mut self, local: &Path, sha256: &str, remote: &str) -> Result<bool, DeviceError> {
        let dst = self.abs(remote)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DeviceError::Test(format!("refusing to push {}: `{sha256}` is not a sha256", local.display())));
        }
        let sha = sha256.to_ascii_lowercase();
        let meta =
            std::fs::metadata(local).map_err(|e| self.conn.infra(format!("cannot read {}: {e}", local.display())))?;
        let parent = dst.rsplit_once('/').map_or(self.conn.s.root.clone(), |(p, _)| p.to_string());
        let (dq, pq) = (quote(&dst)?, quote(&format!("{dst}.qb-part"))?);
        // Hashing stdin prints no file name, so names need no unescaping.
        let check = format!("mkdir -p {} && {{ test -f {dq} && sha256sum < {dq} || true; }}", quote(&parent)?);
        let r = self.conn.run(&format!("checking {dst}"), &check, Io::Capture, SHORT)?;
        if r.code != 0 {
            return Err(self
                .conn
                .infra(format!("cannot create {parent} on the board: {}", printable(r.stderr.trim()))));
        }
        if r.stdout.split_whitespace().next().is_some_and(|h| h.eq_ignore_ascii_case(&sha)) {
            return Ok(false);
        }
        // Into a part file, moved into place only once verified: a cut or corrupted upload never
        // carries the final name (which the check above trusts).
        let mode = if meta.permissions().mode() & 0o111 != 0 { "700" } else { "600" };
        let script = format!(
            "cat > {pq} && h=$(sha256sum < {pq}) && case \"$h\" in {sha}*) chmod {mode} {pq} && mv -f {pq} {dq} && echo QB-OK;; *) rm -f {pq}; echo \"QB-MISMATCH $h\";; esac"
        );
        let file =
            std::fs::File::open(local).map_err(|e| self.conn.infra(format!("cannot read {}: {e}", local.display())))?;
        // Generous for a slow link (1 MB/s) plus a minute.
        let limit = Duration::from_secs(60 + meta.len() / 1_000_000);
        let r = self.conn.run(&format!("pushing {} to {dst}", local.display()), &script, Io::Upload(file), limit)?;
        if r.stdout.trim() == "QB-OK" {
            return Ok(true);
        }
        let got = r.stdout.trim().strip_prefix("QB-MISMATCH ").and_then(|h| h.split_whitespace().next()).map(printable);
        Err(self.conn.infra(match got {
            Some(h) => format!(
                "hash mismatch after push of {} to {dst}: board has {h}, expected {sha} (corrupted in transit)",
                local.display()
            ),
            None => format!("cannot write {dst} on the board: {}", printable(r.stderr.trim())),
        }))
    }

    fn exec(
        &mut self,
        argv: &[String],
        cwd: &str,
        lib_dirs: &[String],
        limits: ExecLimits,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<ExecOutcome, DeviceError> {
        let exe = self.abs(argv.first().map(String::as_str).unwrap_or(""))?;
        let cmd = std::iter::once(&exe).chain(&argv[1..]).map(|a| quote(a)).collect::<Result<Vec<_>, _>>()?.join(" ");
        let mut lines = WrapperLines::default();
        let script = exec_script(&self.abs(cwd)?, &self.exports(lib_dirs)?, &cmd, &lines.marker)?;
        let mut client = self.conn.client(&script)?;
        client.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = spawn(&mut client).map_err(|e| self.conn.infra(format!("cannot run `ssh`: {e}")))?;
        let (tx, rx) = mpsc::channel::<Msg<()>>();
        let run = Running {
            stdin: child.stdin.take(),
            stdout: forward_lines(child.stdout.take().expect("piped"), tx),
            stderr: drain(child.stderr.take().expect("piped"), None),
            child,
        };
        let end = watchdog::watch(&rx, limits, &mut |l: &str| lines.take(l, on_line));
        let WrapperLines { pids, exit, .. } = lines;
        match end {
            End::Done(()) | End::Closed => {
                let (_, stderr_tail) = run.end(Duration::from_secs(10));
                match exit {
                    Some(code) => Ok(ExecOutcome { exit_code: Some(code), stderr_tail, timed_out: false }),
                    // The master's log says why (the runner's stderr is not ssh's).
                    None => Err(self.conn.failure(
                        &format!("the connection to {} ended before the runner's exit status arrived (board rebooted, sshd restarted or network lost)", self.conn.dest()),
                        "",
                    )),
                }
            }
            End::Expired(why) => self.stop_hung(run, pids, why, None),
            End::Interrupted(sig) => self.stop_hung(run, pids, String::new(), Some(sig)),
        }
    }

    fn pull(&mut self, remote: &str, local: &Path) -> Result<(), DeviceError> {
        let src = self.abs(remote)?;
        if let Some(p) = local.parent() {
            std::fs::create_dir_all(p).map_err(|e| self.conn.infra(format!("cannot create {}: {e}", p.display())))?;
        }
        let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let part = local.with_file_name(format!("{name}.qb-part"));
        let file = std::fs::File::create(&part)
            .map_err(|e| self.conn.infra(format!("cannot write {}: {e}", part.display())))?;
        let q = quote(&src)?;
        let r = self.conn.run(
            &format!("pulling {src}"),
            &format!("test -f {q} && exec cat {q}"),
            Io::Download(file),
            Duration::from_secs(120),
        );
        match r {
            Ok(o) if o.code == 0 => std::fs::rename(&part, local)
                .map_err(|e| self.conn.infra(format!("cannot write {}: {e}", local.display()))),
            r => {
                let _ = std::fs::remove_file(&part);
                Err(r.err().unwrap_or_else(|| self.conn.infra(format!("cannot pull {src}: no such file on the board"))))
            }
        }
    }

    fn remove_dir(&mut self, remote: &str) -> Result<(), DeviceError> {
        let p = self.abs(remote)?;
        let r = self.conn.run(&format!("removing {p}"), &format!("rm -rf {}", quote(&p)?), Io::Capture, SHORT)?;
        if r.code != 0 {
            return Err(self.conn.infra(format!("cannot remove {p} on the board: {}", printable(r.stderr.trim()))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::process::CommandExt;

    #[test]
    fn hosts_users_and_roots() {
        for ok in ["rpi5.lab", "192.168.1.40", "fe80::1%eth0", "board-7"] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in ["", "-oProxyCommand=x", "a b", "root@h", "h;id", "[::1]", "$(id)"] {
            assert!(!valid_host(bad), "{bad:?}");
        }
        assert!(valid_user("root") && valid_user("ci.bot-2") && !valid_user("-l") && !valid_user("a b"));
        for ok in ["/var/tmp/quadbench", "/tmp/it's a \"board\" $(touch x) `id`"] {
            assert!(valid_root(ok), "{ok:?}");
        }
        for bad in ["/", "", "rel/dir", "/a/../b", "/a//b", "/a/./b", "/a:b", "/a;b", "/a\nb", "/a\0b"] {
            assert!(!valid_root(bad), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_of_boards() {
        let pi = "QB-FP hostname rpi5\nQB-FP machine aarch64\nQB-FP kernel Linux 6.6.31\nQB-FP cpu Cortex-A76\nQB-FP cpus 4\nQB-FP mem_kb 8245120\nQB-FP board Raspberry Pi 5 Model B Rev 1.0\nQB-FP soc brcm,bcm2712\nQB-FP os Debian GNU/Linux 12 (bookworm)\nQB-FP sha256sum yes\nnoise\nQB-FP evil a\x1b[2Jb\n";
        let fp = Fingerprint::parse(pi);
        let i = fp.info("pi");
        assert_eq!(
            (i.model.as_deref(), i.soc.as_deref()),
            (Some("Raspberry Pi 5 Model B Rev 1.0"), Some("brcm,bcm2712"))
        );
        assert_eq!((i.abi.as_deref(), i.transport.as_str()), (Some("aarch64"), "ssh"));
        assert_eq!(i.os_version.as_deref(), Some("Debian GNU/Linux 12 (bookworm), Linux 6.6.31"));
        assert_eq!(fp.get("evil").as_deref(), Some("a?[2Jb"), "device text is sanitised");
        let d: BTreeMap<_, _> = fp.details().into_iter().collect();
        assert_eq!((d["cpu"].as_str(), d["memory"].as_str()), ("Cortex-A76 (x4)", "7.9 GiB"));
        // Without a board name the CPU is the model.
        let pc = Fingerprint::parse("QB-FP machine x86_64\nQB-FP cpu Intel Xeon\n").info("pc");
        assert_eq!((pc.model.as_deref(), pc.soc, pc.os_version), (Some("Intel Xeon"), None, None));
    }

    /// The probe and the exec wrapper in a real `sh`: arguments and a hostile directory arrive
    /// verbatim, the exit status comes in the marker line, and the runner dies when the
    /// session's input ends.
    #[test]
    fn probe_and_exec_wrapper_in_a_real_shell() {
        let probe = Command::new("sh").arg("-c").arg(PROBE).output().unwrap();
        let fp = Fingerprint::parse(&String::from_utf8_lossy(&probe.stdout));
        assert_eq!((fp.get("machine").as_deref(), fp.get("sha256sum").as_deref()), (Some(host_machine()), Some("yes")));
        let d = tempfile::tempdir().unwrap();
        let cwd = d.path().join("it's a \"dir\" $(touch pwned) `touch pwned2`");
        std::fs::create_dir(&cwd).unwrap();
        let sh = |cmd: &str, marker: &str| {
            let script = exec_script(cwd.to_str().unwrap(), "export QB=1", cmd, marker).unwrap();
            let mut c = Command::new("sh");
            // Its own process group, as a session on a board: the wrapper kills that group.
            c.arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).process_group(0).spawn().unwrap()
        };
        let args = ["it's", "$(id)", "a b", ";exit 0"].map(|a| quote(a).unwrap()).join(" ");
        let mut child = sh(&format!("sh -c 'pwd; printf \"[%s]\\n\" \"$@\"; exit 7' qb {args}"), "QB-EXIT-t");
        let input = child.stdin.take();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        drop(input);
        let _ = child.wait();
        let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty() && !l.starts_with(PID_PREFIX)).collect();
        assert_eq!(lines[0], cwd.to_str().unwrap());
        assert_eq!(&lines[1..], ["[it's]", "[$(id)]", "[a b]", "[;exit 0]", "QB-EXIT-t 7"]);
        assert!(!cwd.join("pwned").exists() && !d.path().join("pwned2").exists(), "nothing executed");
        // Input closed: the wrapper kills the runner at once instead of waiting for it.
        let mut child = sh("sleep 30", "QB-EXIT-t");
        let t0 = Instant::now();
        drop(child.stdin.take());
        assert!(wait_within(&mut child, Duration::from_secs(10)).is_some() && t0.elapsed() < Duration::from_secs(5));
    }
}
