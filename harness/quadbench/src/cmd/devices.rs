//! `quadbench devices list` and `quadbench loopback-device`.

use super::exit;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum DevicesCmd {
    /// Serial, state, model, SoC, ABI and Android version of every device an adb server sees; with
    /// `--device`, what each profile's device reports instead (an ssh board: hostname,
    /// architecture, CPU, kernel, memory, SoC, board, OS).
    List {
        /// The adb server, host:port.
        #[arg(long, default_value = crate::device::adb::DEFAULT_SERVER)]
        adb_server: std::net::SocketAddrV4,
        /// A device profile (any transport) to connect to and describe; repeat for several.
        #[arg(long, value_name = "FILE", conflicts_with = "adb_server")]
        device: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct LoopbackArgs {
    /// TCP port on 127.0.0.1 (not 5555-5585, which adb probes for emulators).
    #[arg(long)]
    port: u16,
    /// Directory that is the device's `/` (device path /data/local/tmp/x is DIR/data/local/tmp/x).
    #[arg(long)]
    root: PathBuf,
    /// Hosts allowed in (adb's RSA AUTH), in Android's adb_keys format. Default:
    /// $HOME/.android/adbkey.pub, the key of this user's adb server (`adb start-server`
    /// creates it), so the local adb needs no flag.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    adb_keys: Option<PathBuf>,
    /// No authentication: any local process that reaches the port gets the device's shell.
    #[arg(long)]
    insecure: bool,
}

pub fn devices(c: DevicesCmd) -> i32 {
    match c {
        DevicesCmd::List { device, .. } if !device.is_empty() => list_profiles(&device),
        DevicesCmd::List { adb_server, .. } => list(adb_server),
    }
}

/// Connect to each profile's device and print what it reports. Exit 2 for a bad profile (nothing
/// is contacted), 3 when a device cannot be reached; the others are still listed.
fn list_profiles(paths: &[PathBuf]) -> i32 {
    let mut profiles = Vec::new();
    for p in paths {
        match crate::config::DeviceProfile::load(p) {
            Ok(profile) => profiles.push(profile),
            Err(e) => return exit::fail(&e),
        }
    }
    let mut code = exit::OK;
    for p in profiles {
        let details = match p.open() {
            Ok(t) => t.details(),
            Err(e) => {
                code = code.max(exit::fail(&e));
                continue;
            }
        };
        println!("{} ({}, {})", p.name, p.transport.name, p.path.display());
        for (label, value) in details {
            println!("  {label:<10} {value}");
        }
    }
    code
}

fn list(server: std::net::SocketAddrV4) -> i32 {
    let devices = match crate::device::adb::list_devices(server) {
        Ok(d) => d,
        Err(e) => return exit::fail(&e),
    };
    if devices.is_empty() {
        eprintln!(
            "no devices at the adb server {server} (USB: enable USB debugging; TCP: `adb -P {} connect HOST:PORT`)",
            server.port()
        );
        return exit::OK;
    }
    println!("{:<24} {:<13} {:<24} {:<16} {:<12} android", "serial", "state", "model", "soc", "abi");
    for d in devices {
        let i = d.info.unwrap_or_default();
        let f = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<13} {:<24} {:<16} {:<12} {}{}",
            d.serial,
            d.state,
            f(i.model),
            f(i.soc),
            f(i.abi),
            f(i.os_version),
            d.error.map(|e| format!("  ({e})")).unwrap_or_default()
        );
    }
    exit::OK
}

pub fn loopback(a: LoopbackArgs) -> i32 {
    use quadbench_loopback::Auth;
    let auth = if a.insecure {
        Auth::Insecure
    } else {
        let Some(keys) = a.adb_keys.or_else(quadbench_loopback::auth::default_keys_file) else {
            exit::report(&"HOME is not set, so there is no default adb key; pass --adb-keys FILE (or --insecure)");
            return exit::BAD_INPUT;
        };
        if !keys.is_file() {
            exit::report(&format!(
                "the adb keys file {} does not exist; run `adb start-server` once (it creates ~/.android/adbkey.pub, the key of your adb server), or pass --adb-keys FILE with the adbkey.pub lines of the hosts to let in",
                keys.display()
            ));
            return exit::BAD_INPUT;
        }
        Auth::Keys(keys)
    };
    let auth_note = match &auth {
        Auth::Keys(k) => format!("hosts with a key in {}", k.display()),
        Auth::Insecure => "any host (--insecure)".to_string(),
    };
    let mut cfg = quadbench_loopback::LoopbackConfig::new(&a.root, auth);
    cfg.bind = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
    eprintln!(
        "loopback device 127.0.0.1:{}, file system {} (the device's /), letting in {auth_note}; attach with `adb connect 127.0.0.1:{}`",
        a.port,
        a.root.display(),
        a.port
    );
    match quadbench_loopback::serve_forever_with_log(cfg, |e| eprintln!("loopback: {e}")) {
        Ok(()) => exit::OK,
        Err(e) => {
            exit::report(&e);
            exit::BAD_INPUT
        }
    }
}
