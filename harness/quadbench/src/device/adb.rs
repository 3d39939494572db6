//! The `adb` transport: an Android device (or `quadbench loopback-device`) reached through an adb
//! server with the `adb_client` crate. Files go to `<root>/<relative path>` on the device
//! (default root `/data/local/tmp/quadbench`), are verified there with `sha256sum` and are not
//! pushed again while the device holds the right bytes; the runner runs over shell protocol v2
//! (separate stderr, exit status) under a deadline of our own.
//!
//! adb_client 3.2 traps handled here (see /work/shared/notes/adb.md):
//! - `shell_command` returns `Ok(None)` when the stream ends before the exit packet: that is a
//!   lost connection, reported as an infrastructure error, never as success. Worse, 3.2.3 also
//!   returns `Ok(None)` after a *received* exit packet (its v2 decoder reads on, and the EOF that
//!   follows the exit packet returns `None`, dropping the code), so our commands end with
//!   `printf '\n<marker> %d\n' $?` and the exit status is read from that line; a missing line
//!   means the stream was cut. Shell protocol v2 is still required (separate stderr);
//! - no read timeouts anywhere: every call runs on a worker thread that we stop waiting for at a
//!   deadline, after killing the remote process and making the server drop the device's
//!   transport (which ends the worker's blocked read);
//! - `$TERM` is copied unquoted into the `shell,v2,TERM=...:` service string: we refuse to run
//!   with a `TERM` that could change the service string;
//! - `ADBServer` spawns `adb start-server` (always the default port) before every request to a
//!   local server: we give it a program path that cannot exist and start servers ourselves with
//!   the configured port.
//!
//! Every argument placed into a shell command is quoted with adb's own rule (single quotes,
//! `'` -> `'\''`) and NUL bytes are refused; remote paths are built only from validated
//! components under the root, and strings the device reports are sanitised before display.

use super::watchdog::{self, End, PID_PREFIX, WrapperLines, exit_marker};
use super::{
    Capabilities, DeviceError, DeviceInfo, ExecLimits, ExecOutcome, SettingsInput, Transport, TransportKind,
    TransportSettings,
};
use crate::yaml::KeyError;
use adb_client::server::{ADBServer, DeviceState};
use adb_client::server_device::ADBServerDevice;
use adb_client::{ADBDeviceExt, HostFeatures, RustADBError};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

pub const DEFAULT_SERVER: &str = "127.0.0.1:5037";
pub const DEFAULT_ROOT: &str = "/data/local/tmp/quadbench";
/// Given to `ADBServer` as the adb program so that its implicit `adb start-server` (which
/// ignores our port) fails to spawn instead of starting a second server; /dev/null is no
/// directory, so this path cannot exist.
const NO_AUTOSTART: &str = "/dev/null/quadbench-starts-adb-servers-itself";
/// Limit of one short shell command or server request.
const SHORT: Duration = Duration::from_secs(30);
/// How long to wait for a device to come online (including `adb connect` of TCP devices).
const ONLINE_WAIT: Duration = Duration::from_secs(15);
/// Kept of the runner's stderr.
const STDERR_TAIL: usize = 16 * 1024;

/// Quote one shell argument with adb's rule (`escape_arg` in adb_utils.cpp): wrap in single
/// quotes, write `'` as `'\''`. NUL cannot travel in a shell command, so it is refused.
pub fn quote(arg: &str) -> Result<String, DeviceError> {
    if arg.contains('\0') {
        return Err(DeviceError::Test(format!("refusing shell argument {arg:?}: it contains a NUL byte")));
    }
    Ok(format!("'{}'", arg.replace('\'', "'\\''")))
}

/// A serial we accept: what adb prints for USB (`R58M123ABC`), TCP (`192.168.1.5:5555`,
/// `[::1]:5555`) and mDNS (`adb-XYZ._adb-tls-connect._tcp.`) devices; nothing a shell, a
/// service string or a file name could trip over.
pub fn valid_serial(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:[]%@".contains(c))
}

/// An absolute device directory made of safe components (never `/` itself).
pub fn valid_root(s: &str) -> bool {
    s.len() <= 512 && s.strip_prefix('/').is_some_and(|r| !r.is_empty() && r.split('/').all(crate::safe_name))
}

/// A `TERM` value that cannot alter adb_client's `shell,v2,TERM=<TERM>,raw:<cmd>` request.
pub fn term_is_safe(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// Device-reported text made safe to print: no control characters, bounded length.
pub fn printable(s: &str) -> String {
    s.chars().take(128).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The Android ABI name of this host (what a host build of the runner is).
pub fn host_abi() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64-v8a",
        "arm" => "armeabi-v7a",
        "x86" => "x86",
        _ => "x86_64",
    }
}

/// `ADSP_LIBRARY_PATH` for `dirs`: where the Hexagon DSP's loader (FastRPC) looks for skeleton
/// libraries such as `libQnnHtpV75Skel.so`. `;`-separated, our directories first, then the
/// system locations the variable would otherwise default to (Qualcomm's QNN docs list them).
pub fn adsp_library_path(dirs: &[String]) -> String {
    let mut v: Vec<&str> = dirs.iter().map(String::as_str).collect();
    v.extend([
        "/vendor/lib/rfsa/adsp",
        "/vendor/dsp/cdsp",
        "/system/lib/rfsa/adsp",
        "/system/vendor/lib/rfsa/adsp",
        "/dsp",
    ]);
    v.join(";")
}

pub const KIND: TransportKind =
    TransportKind { name: "adb", keys: &["serial", "adb_server", "root", "abi"], parse: parse_settings };

/// Where and how to reach an Android device through an adb server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdbSettings {
    pub serial: String,
    pub server: SocketAddrV4,
    /// Absolute device path, validated components only.
    pub root: String,
    /// The ABI the runner and runtime were built for, checked against the device's.
    pub abi: Option<String>,
}

impl TransportSettings for AdbSettings {
    fn capabilities(&self) -> Capabilities {
        Capabilities { is_host: false, shares_host_files: false, abi: self.abi.clone() }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Transport>, DeviceError> {
        Ok(Box::new(Adb::connect(name, self)?))
    }
}

/// Validate the adb keys of a device profile.
fn parse_settings(input: &SettingsInput<'_>) -> Result<Arc<dyn TransportSettings>, KeyError> {
    let key = |k: &str| super::string_key(input, k);
    let Some(serial) = key("serial")? else {
        return Err(KeyError::new(
            "transport",
            "the adb transport needs `serial:`",
            "add `serial: <serial>` as `adb devices` prints it (host:port for a TCP device)",
        ));
    };
    if !valid_serial(&serial) {
        return Err(KeyError::new(
            "serial",
            format!("serial {serial:?} has characters adb serials do not have"),
            "use the serial exactly as `adb devices` prints it",
        ));
    }
    let server_text = key("adb_server")?.unwrap_or_else(|| DEFAULT_SERVER.into());
    let server: SocketAddrV4 = server_text.parse().map_err(|_| {
        KeyError::new(
            "adb_server",
            format!("adb_server `{server_text}` is not an IPv4 host:port"),
            "e.g. `adb_server: 127.0.0.1:5037`",
        )
    })?;
    let root = key("root")?.unwrap_or_else(|| DEFAULT_ROOT.into());
    let root = root.trim_end_matches('/').to_string();
    if !valid_root(&root) {
        return Err(KeyError::new(
            "root",
            format!("root `{root}` must be an absolute device path of safe names"),
            format!("e.g. `root: /data/local/tmp/quadbench` ({})", crate::SAFE_NAME_CHARS),
        ));
    }
    let abi = key("abi")?;
    if let Some(abi) = &abi {
        if !crate::safe_name(abi) {
            return Err(KeyError::new("abi", format!("abi `{abi}` is not an ABI name"), "e.g. `abi: arm64-v8a`"));
        }
        if abi != host_abi() && input.host_builds {
            return Err(KeyError::new(
                "abi",
                format!("`runner`/`ort_library: auto` are this host's {} builds, not {abi}", host_abi()),
                "build the runner with `cargo ndk -t arm64-v8a build --release -p quadbench-runner`, take libonnxruntime.so from the onnxruntime-android AAR and set `runner:` and `ort_library:` (docs/adb.md)",
            ));
        }
    }
    Ok(Arc::new(AdbSettings { serial, server, root, abi }))
}

fn adb_server(addr: SocketAddrV4) -> ADBServer {
    ADBServer::new_from_path(addr, Some(NO_AUTOSTART.into()))
}

/// Run `f` on a worker thread and wait at most `limit`. On timeout the worker is left to end on
/// its own (its connection is dropped by the caller's recovery), and `None` comes back.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("qb-adb-call".into()).spawn(move || {
        let _ = tx.send(f());
    });
    spawned.ok()?;
    rx.recv_timeout(limit).ok()
}

/// Make sure an adb server answers at `addr`; start one (`adb -P PORT start-server`) when the
/// address is local and nothing listens there.
pub fn ensure_server(addr: SocketAddrV4) -> Result<(), String> {
    let up = || TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(2)).is_ok();
    if up() {
        return Ok(());
    }
    if !addr.ip().is_loopback() {
        return Err(format!(
            "no adb server answers at {addr}; start it there, or set `adb_server:` in the device profile"
        ));
    }
    // Output to null: the daemonised server would otherwise hold our pipes open.
    let child = std::process::Command::new("adb")
        .args(["-P", &addr.port().to_string(), "start-server"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = child.map_err(|e| format!("no adb server at {addr} and `adb` could not be run to start one ({e}); install it (`apt-get install adb`) or start a server yourself"))?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    if up() {
        Ok(())
    } else {
        Err(format!("`adb -P {} start-server` did not bring up a server at {addr}", addr.port()))
    }
}

/// The route to one device: its serial through one adb server.
#[derive(Debug, Clone)]
struct Conn {
    /// Profile name, for messages.
    name: String,
    serial: String,
    server: SocketAddrV4,
}

/// Shell text that runs `script` and then prints the marker line with its exit status.
fn with_exit_line(script: &str, marker: &str) -> String {
    format!("{script}\ns=$?; printf '\\n%s %d\\n' {marker} \"$s\"; exit \"$s\"")
}

/// Split the marker line off captured stdout: (output before it, exit status).
pub fn split_exit(stdout: &str, marker: &str) -> Option<(String, i32)> {
    let i = stdout.rfind(&format!("\n{marker} "))?;
    let code = stdout[i + marker.len() + 2..].trim().parse().ok()?;
    Some((stdout[..i].to_string(), code))
}

/// Output of a short shell command.
struct ShellOut {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Conn {
    fn infra(&self, message: String) -> DeviceError {
        DeviceError::Infra { device: self.name.clone(), message }
    }

    fn device(&self) -> ADBServerDevice {
        ADBServerDevice::new(self.serial.clone(), Some(self.server))
    }

    /// One adb_client device call under a deadline; a timeout also drops the device's transport.
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        limit: Duration,
        f: impl FnOnce(&mut ADBServerDevice) -> Result<T, RustADBError> + Send + 'static,
    ) -> Result<T, DeviceError> {
        let mut dev = self.device();
        match bounded(limit, move || f(&mut dev)) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(self.infra(format!("{what}: {e}{}", hint(&e.to_string())))),
            None => {
                self.kick();
                Err(self.infra(format!(
                    "{what}: no answer within {} s; the device or its connection stopped responding",
                    limit.as_secs()
                )))
            }
        }
    }

    /// A short shell command (already quoted), run in a subshell. A lost exit status is an
    /// infrastructure error.
    fn sh(&self, cmd: &str, limit: Duration) -> Result<ShellOut, DeviceError> {
        let marker = exit_marker();
        let (proto, out, err) = self.raw_sh(&with_exit_line(&format!("( {cmd}\n)"), &marker), limit)?;
        let (stdout, code) = match split_exit(&out, &marker) {
            Some(v) => v,
            None => match proto {
                Some(c) => (out, i32::from(c)),
                None => {
                    return Err(self.infra(format!(
                        "shell `{}`: the connection ended before the exit status arrived (device disconnected?)",
                        printable(cmd)
                    )));
                }
            },
        };
        Ok(ShellOut { code, stdout, stderr: err })
    }

    /// One shell command as given: (protocol exit status, stdout, stderr).
    fn raw_sh(&self, cmd: &str, limit: Duration) -> Result<(Option<u8>, String, String), DeviceError> {
        check_term()?;
        let cmd = cmd.to_string();
        let shown = printable(cmd.lines().next().unwrap_or(""));
        let (code, out, err) = self.call(&format!("shell `{shown}`"), limit, move |d| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = d.shell_command(&cmd, Some(&mut out), Some(&mut err))?;
            Ok((code, out, err))
        })?;
        Ok((code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned()))
    }

    /// `getprop`, sent exactly so (the loopback device answers only the exact command). Its exit
    /// status cannot be read (see the module docs), so the parsed properties are the proof that
    /// it ran.
    fn getprop(&self) -> Result<BTreeMap<String, String>, DeviceError> {
        let (_, out, err) = self.raw_sh("getprop", SHORT)?;
        let props = parse_getprop(&out);
        if props.is_empty() {
            return Err(self.infra(format!(
                "`getprop` returned no properties (connection cut, or not an Android device?): {}",
                printable(err.trim())
            )));
        }
        Ok(props)
    }

    /// Make the server drop the device's transport, which ends every stream on it (and so any
    /// worker blocked reading one). TCP devices are disconnected (the next open reconnects);
    /// others get adb's `reconnect`.
    fn kick(&self) {
        let (serial, server) = (self.serial.clone(), self.server);
        let _ = bounded(Duration::from_secs(5), move || match serial.parse::<SocketAddrV4>() {
            Ok(addr) => adb_server(server).disconnect_device(addr).is_ok(),
            Err(_) => ADBServerDevice::new(serial, Some(server)).reconnect().is_ok(),
        });
    }

    fn state(&self) -> Result<Option<DeviceState>, DeviceError> {
        let server = self.server;
        let devices = bounded(SHORT, move || adb_server(server).devices())
            .ok_or_else(|| self.infra(format!("the adb server at {} did not answer", self.server)))?;
        let devices =
            devices.map_err(|e| self.infra(format!("listing devices of the adb server at {}: {e}", self.server)))?;
        Ok(devices.into_iter().find(|d| d.identifier == self.serial).map(|d| d.state))
    }

    /// Wait until the device is online, attaching TCP devices with `adb connect`.
    fn attach(&self) -> Result<(), DeviceError> {
        let tcp = self.serial.parse::<SocketAddrV4>().ok();
        let t0 = Instant::now();
        let mut last_connect: Option<Instant> = None;
        let mut last_state = None;
        let mut connect_error = String::new();
        while t0.elapsed() < ONLINE_WAIT {
            let state = self.state()?;
            match &state {
                Some(DeviceState::Device) => return Ok(()),
                // The adb server shows a device `unauthorized` while the AUTH handshake is still
                // going (after every reconnect, too): wait, without reconnecting over it. Only a
                // device still unauthorized when the wait ends is refused.
                Some(DeviceState::Unauthorized) => {
                    last_state = state;
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                Some(
                    s @ (DeviceState::Bootloader
                    | DeviceState::Recovery
                    | DeviceState::Sideload
                    | DeviceState::Rescue
                    | DeviceState::NoPerm),
                ) => {
                    return Err(self.infra(format!(
                        "device {} is in state `{s}`; boot it into Android and check USB permissions (udev rules)",
                        self.serial
                    )));
                }
                _ => {}
            }
            if let Some(addr) = tcp
                && last_connect.is_none_or(|t| t.elapsed() > Duration::from_secs(2))
            {
                last_connect = Some(Instant::now());
                let server = self.server;
                let offline = state.is_some();
                let r = bounded(SHORT, move || {
                    let mut s = adb_server(server);
                    if offline {
                        // A stale transport (offline after a drop) blocks a fresh connect.
                        let _ = s.disconnect_device(addr);
                    }
                    s.connect_device(addr)
                });
                connect_error = match r {
                    Some(Ok(())) => String::new(),
                    Some(Err(e)) => format!(" (adb connect: {e})"),
                    None => " (adb connect did not answer)".into(),
                };
            }
            last_state = state;
            std::thread::sleep(Duration::from_millis(200));
        }
        if matches!(last_state, Some(DeviceState::Unauthorized)) {
            return Err(self.infra(format!("device {} is unauthorized: accept the \"Allow USB debugging\" prompt on the phone (tick \"always allow\")", self.serial)));
        }
        let state = last_state.map_or("not attached".to_string(), |s| format!("`{s}`"));
        Err(self.infra(format!("device {} is {state} at the adb server {} after {} s{connect_error}; `adb -P {} devices` shows what the server sees", self.serial, self.server, ONLINE_WAIT.as_secs(), self.server.port())))
    }
}

/// A fix for errors whose cause is guessable from the device's message.
fn hint(msg: &str) -> &'static str {
    if msg.contains("No space left") {
        "; the device storage is full: free space or choose another `root:`"
    } else if msg.contains("Read-only file system") || msg.contains("Permission denied") {
        "; the device directory is not writable: choose another `root:` (default /data/local/tmp/quadbench)"
    } else {
        ""
    }
}

fn check_term() -> Result<(), DeviceError> {
    match std::env::var("TERM") {
        Ok(t) if !term_is_safe(&t) => Err(DeviceError::Test(format!(
            "refusing to run adb shell commands with TERM={:?}: adb_client copies TERM unquoted into the shell service request; unset TERM or set a plain name (e.g. TERM=dumb)",
            printable(&t)
        ))),
        _ => Ok(()),
    }
}

/// `[key]: [value]` lines of `getprop`.
pub fn parse_getprop(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once("]: [")?;
            Some((k.strip_prefix('[')?.to_string(), v.strip_suffix(']')?.to_string()))
        })
        .collect()
}

fn info_from_props(name: &str, p: &BTreeMap<String, String>) -> DeviceInfo {
    let get = |k: &str| p.get(k).map(|v| printable(v.trim())).filter(|v| !v.is_empty());
    DeviceInfo {
        name: name.into(),
        transport: "adb".into(),
        model: get("ro.product.model"),
        soc: get("ro.soc.model").or_else(|| get("ro.board.platform")),
        abi: get("ro.product.cpu.abi"),
        os_version: get("ro.build.version.release").map(|r| match get("ro.build.version.sdk") {
            Some(sdk) => format!("Android {r} (SDK {sdk})"),
            None => format!("Android {r}"),
        }),
    }
}

/// An Android device behind an adb server.
pub struct Adb {
    conn: Conn,
    root: String,
    info: DeviceInfo,
}

impl Adb {
    /// Reach the device, read its properties and prepare the root directory.
    pub fn connect(name: &str, s: &AdbSettings) -> Result<Adb, DeviceError> {
        let conn = Conn { name: name.into(), serial: s.serial.clone(), server: s.server };
        check_term()?;
        ensure_server(s.server).map_err(|m| conn.infra(m))?;
        conn.attach()?;
        let features = conn.call("reading device features", SHORT, |d| d.host_features())?;
        if !features.contains(&HostFeatures::ShellV2) {
            return Err(conn.infra(format!(
                "device {} lacks shell protocol v2 (Android 7+), so exit codes cannot be read",
                s.serial
            )));
        }
        let props = conn.getprop()?;
        let info = info_from_props(name, &props);
        if let Some(want) = &s.abi {
            let list =
                props.get("ro.product.cpu.abilist").or(props.get("ro.product.cpu.abi")).cloned().unwrap_or_default();
            if !list.split(',').any(|a| a.trim() == want) {
                return Err(DeviceError::Test(format!(
                    "device {} supports ABIs [{}], not the profile's `abi: {want}`; use a runner built for one of them",
                    s.serial,
                    printable(&list)
                )));
            }
        }
        let root_q = quote(&s.root)?;
        let r = conn.sh(&format!("mkdir -p {root_q} && test -w {root_q}"), SHORT)?;
        if r.code != 0 {
            return Err(conn.infra(format!(
                "cannot create a writable {} on the device: {}{}",
                s.root,
                printable(r.stderr.trim()),
                hint(&r.stderr)
            )));
        }
        Ok(Adb { conn, root: s.root.clone(), info })
    }

    /// Absolute device path of a validated relative one.
    fn abs(&self, rel: &str) -> Result<String, DeviceError> {
        if !crate::safe_relative_path(rel) {
            return Err(DeviceError::Test(format!("refusing unsafe remote path {:?}", printable(rel))));
        }
        Ok(format!("{}/{rel}", self.root))
    }
}

/// Splits stdout into lines as bytes arrive and sends them on; ends the shell call (by failing
/// the write) once nobody listens.
struct LineSink {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
}

/// What the exec worker sends: stdout lines, then the shell call's result and stderr tail.
type Msg = watchdog::Msg<(Result<Option<u8>, RustADBError>, String)>;

impl LineSink {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(bytes);
        self.tx
            .send(Msg::Line(text.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "exec abandoned"))
    }

    fn finish(&mut self) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let _ = self.send(&rest);
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        while let Some(i) = self.buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            self.send(&line)?;
        }
        // A runaway line without newline: pass it on rather than grow without bound.
        if self.buf.len() > 1 << 20 {
            let all = std::mem::take(&mut self.buf);
            self.send(&all)?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes.
struct TailSink(Vec<u8>);

impl Write for TailSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        if self.0.len() > 4 * STDERR_TAIL {
            self.0.drain(..self.0.len() - STDERR_TAIL);
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tail(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[b.len().saturating_sub(4000)..]).into_owned()
}

impl Transport for Adb {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn push(&mut self, local: &Path, sha256: &str, remote: &str) -> Result<bool, DeviceError> {
        let dst = self.abs(remote)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DeviceError::Test(format!("refusing to push {}: `{sha256}` is not a sha256", local.display())));
        }
        let sha = sha256.to_ascii_lowercase();
        let meta =
            std::fs::metadata(local).map_err(|e| self.conn.infra(format!("cannot read {}: {e}", local.display())))?;
        let parent = dst.rsplit_once('/').map_or(self.root.clone(), |(p, _)| p.to_string());
        let r = self.conn.sh(
            &format!("mkdir -p {} && {{ sha256sum {} 2>/dev/null || true; }}", quote(&parent)?, quote(&dst)?),
            SHORT,
        )?;
        if r.code != 0 {
            return Err(self.conn.infra(format!(
                "cannot create {parent} on the device: {}{}",
                printable(r.stderr.trim()),
                hint(&r.stderr)
            )));
        }
        if r.stdout.split_whitespace().next().is_some_and(|h| h.eq_ignore_ascii_case(&sha)) {
            return Ok(false);
        }
        // Upload beside the target and move it in only once verified: a partial or corrupted
        // file never carries the final name (which the skip check above trusts).
        let part = format!("{dst}.qb-part");
        let (src, to) = (local.to_path_buf(), part.clone());
        // Generous for USB 2 (about 30 MB/s): 1 MB/s plus a minute.
        let limit = Duration::from_secs(60 + meta.len() / 1_000_000);
        self.conn.call(&format!("pushing {} to {part}", local.display()), limit, move |d| {
            let f = std::fs::File::open(&src)?;
            d.push(f, &to)
        })?;
        let mode = if meta.permissions().mode() & 0o111 != 0 { "700" } else { "600" };
        let (pq, dq) = (quote(&part)?, quote(&dst)?);
        let script = format!(
            "h=$(sha256sum {pq}) && case \"$h\" in {sha}*) chmod {mode} {pq} && mv -f {pq} {dq} && echo QB-OK;; *) rm -f {pq}; echo \"QB-MISMATCH $h\";; esac"
        );
        let r = self.conn.sh(&script, SHORT)?;
        if r.stdout.trim() == "QB-OK" {
            return Ok(true);
        }
        let got = r.stdout.trim().strip_prefix("QB-MISMATCH ").and_then(|h| h.split_whitespace().next()).map(printable);
        Err(self.conn.infra(match got {
            Some(h) => format!(
                "hash mismatch after push of {} to {dst}: device has {h}, expected {sha} (corrupted in transit)",
                local.display()
            ),
            None => format!("cannot verify {part} after push: {}{}", printable(r.stderr.trim()), hint(&r.stderr)),
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
        check_term()?;
        let exe = self.abs(argv.first().map(String::as_str).unwrap_or(""))?;
        let dirs = lib_dirs.iter().map(|d| self.abs(d)).collect::<Result<Vec<_>, _>>()?;
        let mut ld = dirs.clone();
        ld.push(format!("{}/runtime", self.root));
        let adsp = if dirs.is_empty() {
            String::new()
        } else {
            format!(" && export ADSP_LIBRARY_PATH={}", quote(&adsp_library_path(&dirs))?)
        };
        // The inner shell reports its pid (the runner's, after exec) and its parent's (the
        // outer shell, a process-group leader under the loopback and, usually, adbd), then
        // becomes the runner; the outer shell prints the exit-status line.
        let mut run = format!(
            "cd {} && export LD_LIBRARY_PATH={}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}{adsp} && sh -c 'echo \"{PID_PREFIX}$$ $PPID\"; exec \"$0\" \"$@\"' {}",
            quote(&self.abs(cwd)?)?,
            quote(&ld.join(":"))?,
            quote(&exe)?
        );
        for a in &argv[1..] {
            run.push(' ');
            run.push_str(&quote(a)?);
        }
        let mut lines = WrapperLines::default();
        let cmd = with_exit_line(&run, &lines.marker);
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut dev = self.conn.device();
        let worker = std::thread::Builder::new().name("qb-adb-exec".into()).spawn(move || {
            let mut out = LineSink { tx: tx.clone(), buf: Vec::new() };
            let mut err = TailSink(Vec::new());
            let r = dev.shell_command(&cmd, Some(&mut out), Some(&mut err));
            out.finish();
            let _ = tx.send(Msg::Done((r, tail(&err.0))));
        });
        worker.map_err(|e| self.conn.infra(format!("cannot start the exec thread: {e}")))?;
        let end = watchdog::watch(&rx, limits, &mut |l: &str| lines.take(l, on_line));
        let WrapperLines { pids, exit, .. } = lines;
        let done = match end {
            End::Done(d) => Some(d),
            End::Closed => None,
            End::Expired(why) => return self.stop_hung(pids, &rx, why, None),
            End::Interrupted(sig) => return self.stop_hung(pids, &rx, String::new(), Some(sig)),
        };
        match done {
            Some((Ok(proto), stderr)) if exit.or(proto.map(i32::from)).is_some() => Ok(ExecOutcome { exit_code: exit.or(proto.map(i32::from)), stderr_tail: stderr, timed_out: false }),
            Some((Ok(_), _)) => Err(self.conn.infra(format!("the connection to {} ended before the runner's exit status arrived (device disconnected, adbd restarted or transport EOF)", self.conn.serial))),
            Some((Err(e), _)) => Err(self.conn.infra(format!("running {exe}: {e}"))),
            None => Err(self.conn.infra("the exec thread ended without a result".into())),
        }
    }

    fn pull(&mut self, remote: &str, local: &Path) -> Result<(), DeviceError> {
        let src = self.abs(remote)?;
        if let Some(p) = local.parent() {
            std::fs::create_dir_all(p).map_err(|e| self.conn.infra(format!("cannot create {}: {e}", p.display())))?;
        }
        let part = local.with_file_name(format!(
            "{}.qb-part",
            local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let (from, to) = (src.clone(), part.clone());
        let r = self.conn.call(&format!("pulling {src}"), Duration::from_secs(120), move |d| {
            let mut f = std::fs::File::create(&to)?;
            d.pull(&from, &mut f)?;
            f.sync_all()?;
            Ok(())
        });
        if let Err(e) = r {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::rename(&part, local).map_err(|e| self.conn.infra(format!("cannot write {}: {e}", local.display())))
    }

    fn remove_dir(&mut self, remote: &str) -> Result<(), DeviceError> {
        let p = self.abs(remote)?;
        let r = self.conn.sh(&format!("rm -rf {}", quote(&p)?), SHORT)?;
        if r.code != 0 {
            return Err(self.conn.infra(format!("cannot remove {p} on the device: {}", printable(r.stderr.trim()))));
        }
        Ok(())
    }
}

impl Adb {
    /// The runner passed its deadline or went silent: kill it on the device. If the device
    /// answers and the runner's stream then ends, the runner hung (a test failure, reported as
    /// `timed_out`); if not, the device or its connection is gone (an infrastructure error).
    fn stop_hung(
        &self,
        pids: Option<(u32, u32)>,
        rx: &mpsc::Receiver<Msg>,
        why: String,
        interrupted: Option<i32>,
    ) -> Result<ExecOutcome, DeviceError> {
        let killed = match pids {
            // The outer shell's process group first (children of the runner holding stdout die
            // too), else the runner alone.
            Some((runner, outer)) => self
                .conn
                .sh(&format!("kill -9 -{outer} 2>/dev/null || kill -9 {runner}"), Duration::from_secs(10))
                .map(|r| r.code == 0),
            None => Ok(false),
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Msg::Done((_, stderr))) if matches!(killed, Ok(true)) => {
                    if let Some(sig) = interrupted {
                        return Err(DeviceError::Interrupted(sig));
                    }
                    // Killed: whatever status the shell printed is the kill's, not the runner's.
                    return Ok(ExecOutcome { exit_code: None, stderr_tail: stderr, timed_out: true });
                }
                Ok(Msg::Done(..)) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                _ => {}
            }
        }
        // The stream did not end: make the server drop the transport so the worker's read ends.
        self.conn.kick();
        let kill = match killed {
            Ok(true) => "the runner was killed but its stream never ended".to_string(),
            Ok(false) => "the runner could not be killed (no pid, or it was gone)".to_string(),
            Err(e) => format!("the kill did not reach the device: {e}"),
        };
        if let Some(sig) = interrupted {
            return Err(DeviceError::Interrupted(sig));
        }
        Err(self.conn.infra(format!("runner {why}; {kill}; treating the connection as lost")))
    }
}

/// One line of `quadbench devices list`.
#[derive(Debug, Clone)]
pub struct ListedDevice {
    pub serial: String,
    pub state: String,
    pub info: Option<DeviceInfo>,
    pub error: Option<String>,
}

/// Devices the adb server at `server` sees, with model, SoC, ABI and Android version for those
/// online.
pub fn list_devices(server: SocketAddrV4) -> Result<Vec<ListedDevice>, DeviceError> {
    let infra = |m: String| DeviceError::Infra { device: server.to_string(), message: m };
    check_term()?;
    ensure_server(server).map_err(infra)?;
    let devices = bounded(SHORT, move || adb_server(server).devices())
        .ok_or_else(|| infra("the adb server did not answer".into()))?;
    let devices = devices.map_err(|e| infra(format!("listing devices: {e}")))?;
    Ok(devices
        .into_iter()
        .map(|d| {
            let mut l =
                ListedDevice { serial: printable(&d.identifier), state: d.state.to_string(), info: None, error: None };
            if !valid_serial(&d.identifier) {
                l.error = Some("serial has characters quadbench refuses".into());
            } else if d.state == DeviceState::Device {
                let conn = Conn { name: d.identifier.clone(), serial: d.identifier.clone(), server };
                match conn.getprop() {
                    Ok(p) => l.info = Some(info_from_props(&d.identifier, &p)),
                    Err(e) => l.error = Some(e.to_string()),
                }
            }
            l
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_adbs_rule() {
        assert_eq!(quote("plain").unwrap(), "'plain'");
        assert_eq!(quote("it's").unwrap(), r"'it'\''s'");
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("$(rm -rf /); `id` \"x\" \n y").unwrap(), "'$(rm -rf /); `id` \"x\" \n y'");
        assert!(quote("a\0b").is_err());
    }

    /// The quoted form survives a real `sh -c` unchanged, whatever the argument holds.
    #[test]
    fn quoted_arguments_reach_the_shell_verbatim() {
        let hostile = [
            "it's", "'", "''", "a b", "$HOME", "`id`", "$(id)", "x;y", "a\nb", "\\", "-n", "*", "ü ß", "'\\''", "&&",
            "|", "%s", "\t",
        ];
        for h in hostile {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(h).unwrap()))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), h, "argument {h:?}");
        }
    }

    #[test]
    fn hostile_serials_are_refused() {
        for ok in ["R58M123ABC", "127.0.0.1:5555", "[::1]:5555", "emulator-5554", "adb-R58M-x._adb-tls-connect._tcp."] {
            assert!(valid_serial(ok), "{ok}");
        }
        for bad in
            ["", "a b", "x;reboot", "x'y", "$(id)", "a/b", "..\\x", "x\ny", "x\0y", "s,v2", "`id`", &"a".repeat(300)]
        {
            assert!(!valid_serial(bad), "{bad:?}");
        }
    }

    #[test]
    fn roots_and_terms() {
        assert!(valid_root("/data/local/tmp/quadbench"));
        for bad in ["/", "", "data/local", "/data/../etc", "/data//x", "/a b", "/x;y", "/data/local/tmp/'q'"] {
            assert!(!valid_root(bad), "{bad:?}");
        }
        assert!(term_is_safe("xterm-256color") && term_is_safe("dumb"));
        for bad in ["", "x:y", "xterm,raw", "a b", "x\n", "$(id)"] {
            assert!(!term_is_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn getprop_parsing_and_sanitising() {
        let p = parse_getprop(
            "[ro.product.model]: [Pixel 7]\n[ro.soc.model]: [Tensor G2]\n[ro.build.version.release]: [14]\n[ro.build.version.sdk]: [34]\n[ro.product.cpu.abi]: [arm64-v8a]\ngarbage\n[x]: [evil\x1b[2J]\n",
        );
        let i = info_from_props("phone", &p);
        assert_eq!(
            (i.model.as_deref(), i.soc.as_deref(), i.abi.as_deref()),
            (Some("Pixel 7"), Some("Tensor G2"), Some("arm64-v8a"))
        );
        assert_eq!(i.os_version.as_deref(), Some("Android 14 (SDK 34)"));
        assert_eq!(printable(&p["x"]), "evil?[2J");
        let fallback = info_from_props("p", &parse_getprop("[ro.board.platform]: [kalama]\n"));
        assert_eq!(fallback.soc.as_deref(), Some("kalama"));
    }

    #[test]
    fn exit_line_is_found_and_split_off() {
        let m = exit_marker();
        assert_ne!(m, exit_marker(), "markers differ per command");
        assert_eq!(split_exit(&format!("out\n\n{m} 3\n"), &m), Some(("out\n".to_string(), 3)));
        assert_eq!(split_exit(&format!("no newline\n{m} 0\n"), &m), Some(("no newline".to_string(), 0)));
        // Output imitating a marker (another nonce, or not at a line start) is not trusted.
        assert_eq!(split_exit(&format!("QB-EXIT-0000 0\nx{m} 0\n"), &m), None);
        assert_eq!(split_exit("cut off", &m), None);
        // The wrapper really prints it: run it through sh.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(with_exit_line("( printf 'a b'; exit 5\n)", &m))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(split_exit(&String::from_utf8(out.stdout).unwrap(), &m), Some(("a b".to_string(), 5)));
    }

    #[test]
    fn line_sink_splits_across_writes() {
        let (tx, rx) = mpsc::channel();
        let mut s = LineSink { tx, buf: Vec::new() };
        s.write_all(b"QB-HEART").unwrap();
        s.write_all(b"BEAT {}\r\nsecond\nthi").unwrap();
        s.write_all(b"rd").unwrap();
        s.finish();
        drop(s);
        let lines: Vec<String> = rx.iter().filter_map(|m| if let Msg::Line(l) = m { Some(l) } else { None }).collect();
        assert_eq!(lines, ["QB-HEARTBEAT {}", "second", "third"]);
    }
}
