//! A loopback Android device: the device side of the ADB protocol over TCP on 127.0.0.1, good
//! enough for the real `adb` client (`adb connect/push/pull/shell/ls`), so the quadbench ADB path
//! can be exercised without a phone.
//!
//! What it speaks: AUTH as adbd does it (see [`auth`]; [`Auth::Insecure`] skips it), CNXN
//! (banner features `shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir`), streams with one WRTE in
//! flight, `sync:` (STAT, STA2, LST2, LIST, LIS2, SEND v1, RECV, QUIT), `shell:` (v1: merged
//! output, no exit code), `shell,v2,...:` (separate stdout/stderr, stdin, exit code) and `exec:`.
//!
//! ## Paths: one file system, DIR is `/`
//!
//! The device root DIR is the device's `/`, for sync and shell alike, so push, pull and shell
//! agree on every path: `adb push f /data/local/tmp/f` writes `DIR/data/local/tmp/f`, and
//! `adb shell sha256sum /data/local/tmp/f` reads that file. `DIR/data/local/tmp` and `DIR/tmp`
//! are created at start; device profiles use real device paths (`root:
//! /data/local/tmp/quadbench`).
//!
//! - Sync resolves every path inside DIR as in a chroot ([`paths`]): `..` and symlinks, in any
//!   component including the last, never lead outside DIR.
//! - Shell commands run under bubblewrap (`sandbox.rs`): DIR bound as `/`, the host's `/usr`
//!   read-only (with `bin`, `lib`, `lib64` linking into it, so host programs and the runner
//!   work), private `/proc` (one pid namespace for the device) and `/dev`, no capabilities, no
//!   network but the device's own loopback, cwd `/`, a clean environment (`PATH`, `HOME=/`,
//!   `TMPDIR=/data/local/tmp`). Nothing of the host outside DIR and `/usr` is visible, and
//!   nothing outside DIR is writable. Sync refuses to write into those system mounts.
//! - bubblewrap is required (Debian: `apt-get install bubblewrap`); the device refuses to start
//!   without it. There is deliberately no unconfined mode: it would split the path space again.
//!
//! `getprop` and `getprop NAME` (exactly; surrounding whitespace ignored) are answered from
//! [`LoopbackConfig::props`] instead of the shell.
//!
//! ## Faults
//!
//! See [`faults`] for the fault semantics and the control file `DIR/.loopback/faults.json`.
//!
//! Library code never prints; pass a log callback to [`LoopbackDevice::start_with_log`] to see
//! [`Event`]s.

pub mod auth;
mod conn;
pub mod faults;
pub mod message;
pub mod paths;
mod sandbox;
mod shell;
mod stream;
mod sync;

pub use auth::{AdbKeys, Auth};
pub use faults::Faults;
pub use sandbox::SandboxError;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Features advertised in the CNXN banner. Deliberately without `delayed_ack` and
/// `sendrecv_v2*` (see the protocol notes): the host would then expect behaviour we lack.
pub const FEATURES: &str = "shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir";

/// Ports the adb server probes for emulators; a device there would be found twice.
pub const EMULATOR_PORTS: std::ops::RangeInclusive<u16> = 5555..=5585;

/// How to run a loopback device.
#[derive(Debug, Clone)]
pub struct LoopbackConfig {
    /// Listen address; must be a loopback address. Port 0 picks an ephemeral port.
    pub bind: SocketAddr,
    /// The directory that is the device's `/`; created if missing.
    pub root: PathBuf,
    /// Who may connect: keys checked with ADB's AUTH, or nobody checked.
    pub auth: Auth,
    /// Product name/device in the banner (`adb devices -l` shows it).
    pub serial_model: String,
    /// Answers to `getprop`; `ro.product.model` also goes into the banner.
    pub props: BTreeMap<String, String>,
    /// Faults active from the start.
    pub faults: Faults,
}

impl LoopbackConfig {
    /// Ephemeral port on 127.0.0.1, model `quadbench-loopback`, [`default_props`], no faults.
    pub fn new(root: impl Into<PathBuf>, auth: Auth) -> LoopbackConfig {
        LoopbackConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            root: root.into(),
            auth,
            serial_model: "quadbench-loopback".to_string(),
            props: default_props(),
            faults: Faults::default(),
        }
    }
}

/// Plausible `getprop` answers for a loopback device.
pub fn default_props() -> BTreeMap<String, String> {
    let abi = match std::env::consts::ARCH {
        "aarch64" => "arm64-v8a",
        "arm" => "armeabi-v7a",
        "x86" => "x86",
        _ => "x86_64",
    };
    [
        ("ro.product.model", "quadbench-loopback"),
        ("ro.soc.model", "loopback"),
        ("ro.board.platform", "loopback"),
        ("ro.product.cpu.abi", abi),
        ("ro.build.version.release", "14"),
        ("ro.build.version.sdk", "34"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Errors starting a device.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("refusing to bind {0}: the loopback device serves a root shell, so it only listens on loopback addresses")]
    NotLoopback(SocketAddr),
    #[error("refusing port {0}: adb probes 5555-5585 for emulators")]
    EmulatorPort(u16),
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("preparing device root {path}: {source}")]
    Root { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Keys(#[from] auth::KeysError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("spawning the accept thread: {0}")]
    Thread(std::io::Error),
}

/// Where a fault change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSource {
    Config,
    Api,
    ControlFile,
}

/// Things the device reports through the log callback.
#[derive(Debug, Clone)]
pub enum Event {
    Listening {
        addr: SocketAddr,
    },
    Connected {
        peer: SocketAddr,
    },
    /// A connection was closed at once because the device is offline.
    Refused {
        peer: SocketAddr,
    },
    Disconnected {
        peer: SocketAddr,
        reason: String,
    },
    StreamOpened {
        peer: SocketAddr,
        service: String,
    },
    StreamRejected {
        peer: SocketAddr,
        service: String,
    },
    StreamError {
        peer: SocketAddr,
        service: String,
        error: String,
    },
    FaultsChanged {
        faults: Faults,
        source: FaultSource,
    },
    ControlFileError {
        error: String,
    },
    /// A line of the adb keys file was skipped (read at start).
    KeyIgnored {
        path: PathBuf,
        line: usize,
        error: String,
    },
    /// The host proved it holds a key from the adb keys file.
    Authorized {
        peer: SocketAddr,
        key: String,
    },
    /// A signature matched no key; the host gets a new token (and will try its next key).
    AuthFailed {
        peer: SocketAddr,
    },
    /// The host ran out of keys and offered its public key. A phone would ask its user; the
    /// loopback device never accepts one (the host sees it `unauthorized`).
    AuthRefused {
        peer: SocketAddr,
        key: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Listening { addr } => write!(f, "listening on {addr}"),
            Event::Connected { peer } => write!(f, "host {peer} connected"),
            Event::Refused { peer } => write!(f, "refused {peer}: device is offline"),
            Event::Disconnected { peer, reason } => write!(f, "host {peer} disconnected: {reason}"),
            Event::StreamOpened { peer, service } => write!(f, "{peer} opened {service:?}"),
            Event::StreamRejected { peer, service } => {
                write!(f, "{peer} asked for unknown service {service:?}")
            }
            Event::StreamError { peer, service, error } => {
                write!(f, "{peer} stream {service:?} failed: {error}")
            }
            Event::FaultsChanged { faults, source } => {
                write!(f, "faults now {faults:?} (from {source:?})")
            }
            Event::ControlFileError { error } => write!(f, "{error}"),
            Event::KeyIgnored { path, line, error } => {
                write!(f, "ignoring line {line} of the adb keys file {}: {error}", path.display())
            }
            Event::Authorized { peer, key } => write!(f, "{peer} authenticated with the key of {key:?}"),
            Event::AuthFailed { peer } => write!(f, "{peer} signed with a key that is not in the adb keys file"),
            Event::AuthRefused { peer, key } => write!(
                f,
                "refused {peer}: its key ({key:?}) is not in the adb keys file; add the line of its adbkey.pub there to let it in"
            ),
        }
    }
}

/// Receives [`Event`]s; called from device threads, so keep it quick.
pub type LogFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// State shared by all device threads.
pub(crate) struct Shared {
    /// The device's file system (DIR as `/`) for sync.
    pub fs: paths::DeviceFs,
    /// Runs shell commands confined to DIR.
    pub sandbox: sandbox::Sandbox,
    /// The keys allowed in; None for [`Auth::Insecure`].
    pub keys: Option<AdbKeys>,
    pub banner: Vec<u8>,
    pub props: BTreeMap<String, String>,
    pub faults: faults::FaultCell,
    pub stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_conn: AtomicU64,
    log: Option<LogFn>,
}

impl Shared {
    pub fn log(&self, ev: Event) {
        if let Some(l) = &self.log {
            l(&ev);
        }
    }

    fn apply_faults(&self, f: Faults, source: FaultSource) {
        self.faults.set(f.clone());
        let offline = f.offline;
        self.log(Event::FaultsChanged { faults: f, source });
        if offline {
            self.close_all();
        }
    }

    fn close_all(&self) {
        for s in self.conns.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn banner_value(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_graphic() && !";:=,".contains(c) { c } else { '_' }).collect()
}

fn banner(cfg: &LoopbackConfig) -> Vec<u8> {
    let name = banner_value(&cfg.serial_model);
    let model = banner_value(cfg.props.get("ro.product.model").unwrap_or(&cfg.serial_model));
    format!("device::ro.product.name={name};ro.product.model={model};ro.product.device={name};features={FEATURES}")
        .into_bytes()
}

/// A running loopback device; stopped by [`LoopbackDevice::stop`] or on drop.
pub struct LoopbackDevice {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl LoopbackDevice {
    /// Binds, spawns the accept thread and returns at once.
    pub fn start(cfg: LoopbackConfig) -> Result<LoopbackDevice, LoopbackError> {
        LoopbackDevice::start_inner(cfg, None)
    }

    /// Like [`LoopbackDevice::start`], reporting [`Event`]s to `log`.
    pub fn start_with_log(
        cfg: LoopbackConfig,
        log: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<LoopbackDevice, LoopbackError> {
        LoopbackDevice::start_inner(cfg, Some(Arc::new(log)))
    }

    fn start_inner(cfg: LoopbackConfig, log: Option<LogFn>) -> Result<LoopbackDevice, LoopbackError> {
        if !cfg.bind.ip().is_loopback() {
            return Err(LoopbackError::NotLoopback(cfg.bind));
        }
        if EMULATOR_PORTS.contains(&cfg.bind.port()) {
            return Err(LoopbackError::EmulatorPort(cfg.bind.port()));
        }
        let keys = match &cfg.auth {
            Auth::Keys(path) => Some(AdbKeys::load(path)?),
            Auth::Insecure => None,
        };
        let root_err = |source| LoopbackError::Root { path: cfg.root.clone(), source };
        std::fs::create_dir_all(&cfg.root).map_err(root_err)?;
        let root = cfg.root.canonicalize().map_err(root_err)?;
        let fs = paths::DeviceFs::open(&root).map_err(root_err)?;
        let sandbox = sandbox::Sandbox::start(&root)?;
        let listener = TcpListener::bind(cfg.bind).map_err(|source| LoopbackError::Bind { addr: cfg.bind, source })?;
        let addr = listener.local_addr().map_err(|source| LoopbackError::Bind { addr: cfg.bind, source })?;
        let shared = Arc::new(Shared {
            banner: banner(&cfg),
            props: cfg.props.clone(),
            faults: faults::FaultCell::new(cfg.faults.clone()),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(1),
            log,
            fs,
            sandbox,
            keys,
        });
        if let Some(k) = &shared.keys {
            for (line, e) in &k.skipped {
                shared.log(Event::KeyIgnored { path: k.path.clone(), line: *line, error: e.to_string() });
            }
        }
        shared.log(Event::FaultsChanged { faults: cfg.faults, source: FaultSource::Config });
        // A control file present at start wins over the configured faults (it is the newer word).
        let control = faults::control_file(shared.fs.root());
        let mut last = faults::read_control_bytes(&shared.fs).unwrap_or(None);
        if let Some(bytes) = &last {
            match faults::parse_control(&control, bytes) {
                Ok(f) => shared.apply_faults(f, FaultSource::ControlFile),
                Err(e) => shared.log(Event::ControlFileError { error: e.to_string() }),
            }
        }
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("qb-loopback-accept".into())
            .spawn(move || accept_loop(sh, listener))
            .map_err(LoopbackError::Thread)?;
        let sh = shared.clone();
        let watcher = std::thread::Builder::new().name("qb-loopback-faults".into()).spawn(move || {
            while !sh.stopping.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                watch_control_file(&sh, &control, &mut last);
            }
        });
        let watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                let dev = LoopbackDevice { shared, addr, accept: Some(accept), watcher: None };
                dev.stop();
                return Err(LoopbackError::Thread(e));
            }
        };
        shared.log(Event::Listening { addr });
        Ok(LoopbackDevice { shared, addr, accept: Some(accept), watcher: Some(watcher) })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The serial the adb server will show after `adb connect`.
    pub fn serial(&self) -> String {
        self.addr.to_string()
    }

    /// Canonical host path of the device root (the device's `/`).
    pub fn root(&self) -> &std::path::Path {
        self.shared.fs.root()
    }

    /// Host path of a device path, for tests and tools that look at the device's storage from
    /// the host: `/data/local/tmp/x` -> `DIR/data/local/tmp/x`. Purely lexical (`..` is dropped
    /// at the root), symlinks are not resolved.
    pub fn host_path(&self, device_path: &str) -> PathBuf {
        let mut out = self.root().to_path_buf();
        for c in device_path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if c == ".." {
                if out != self.root() {
                    out.pop();
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Replaces the active faults (see [`faults`] for how this interacts with the control file).
    pub fn set_faults(&self, f: Faults) {
        self.shared.apply_faults(f, FaultSource::Api);
    }

    /// The faults now in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults.snapshot().0
    }

    /// Closes every connection (killing running shell commands), stops listening and joins the
    /// device threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // Wake the blocking accept() with a throwaway connection.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        if let Some(h) = self.watcher.take() {
            let _ = h.join();
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in threads {
            let _ = h.join();
        }
        // Whatever the device's commands left running (background jobs) goes with the device.
        self.shared.sandbox.stop();
    }
}

impl Drop for LoopbackDevice {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown();
        }
    }
}

/// Runs a device until the process ends (for the CLI).
pub fn serve_forever(cfg: LoopbackConfig) -> Result<(), LoopbackError> {
    serve_forever_inner(LoopbackDevice::start(cfg)?)
}

/// Like [`serve_forever`], reporting [`Event`]s to `log`.
pub fn serve_forever_with_log(
    cfg: LoopbackConfig,
    log: impl Fn(&Event) + Send + Sync + 'static,
) -> Result<(), LoopbackError> {
    serve_forever_inner(LoopbackDevice::start_with_log(cfg, log)?)
}

fn serve_forever_inner(mut dev: LoopbackDevice) -> Result<(), LoopbackError> {
    if let Some(h) = dev.accept.take() {
        let _ = h.join();
    }
    dev.shutdown();
    Ok(())
}

fn watch_control_file(sh: &Shared, path: &std::path::Path, last: &mut Option<Vec<u8>>) {
    let now = match faults::read_control_bytes(&sh.fs) {
        Ok(b) => b,
        Err(e) => {
            sh.log(Event::ControlFileError { error: e.to_string() });
            return;
        }
    };
    if now == *last {
        return;
    }
    match &now {
        None => sh.apply_faults(Faults::default(), FaultSource::ControlFile),
        Some(bytes) => match faults::parse_control(path, bytes) {
            Ok(f) => sh.apply_faults(f, FaultSource::ControlFile),
            Err(e) => sh.log(Event::ControlFileError { error: e.to_string() }),
        },
    }
    *last = now;
}

fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    for incoming in listener.incoming() {
        if sh.stopping.load(Ordering::SeqCst) {
            break;
        }
        let sock = match incoming {
            Ok(s) => s,
            Err(_) => {
                // Typically EMFILE; back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = match sock.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        if sh.faults.snapshot().0.offline {
            let _ = sock.shutdown(Shutdown::Both);
            sh.log(Event::Refused { peer });
            continue;
        }
        let id = sh.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = sock.try_clone() {
            sh.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, clone);
        }
        sh.log(Event::Connected { peer });
        let sh2 = sh.clone();
        let spawned = std::thread::Builder::new().name(format!("qb-loopback-conn-{id}")).spawn(move || {
            let reason = match conn::serve(sh2.clone(), sock) {
                Ok(()) => "closed".to_string(),
                Err(e) => e.to_string(),
            };
            sh2.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            sh2.log(Event::Disconnected { peer, reason });
        });
        let mut threads = sh.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => threads.push(h),
            Err(_) => {
                if let Some(s) = sh.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}
