//! `quadbench devices list` and `quadbench loopback-device`.

use super::exit;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum DevicesCmd {
    /// Serial, state, model, SoC, ABI and Android version of every device.
    List {
        /// The adb server, host:port.
        #[arg(long, default_value = crate::device::adb::DEFAULT_SERVER)]
        adb_server: std::net::SocketAddrV4,
    },
}

#[derive(clap::Args)]
pub struct LoopbackArgs {
    /// TCP port on 127.0.0.1 (not 5555-5585, which adb probes for emulators).
    #[arg(long)]
    port: u16,
    /// Directory playing the device's storage (device paths == host paths under it).
    #[arg(long)]
    root: PathBuf,
}

pub fn devices(c: DevicesCmd) -> i32 {
    match c {
        DevicesCmd::List { adb_server } => list(adb_server),
    }
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
    let mut cfg = quadbench_loopback::LoopbackConfig::new(&a.root);
    cfg.bind = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
    eprintln!(
        "loopback device 127.0.0.1:{}, storage {}; attach with `adb connect 127.0.0.1:{}`, use `root: <that directory>` in the device profile",
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
