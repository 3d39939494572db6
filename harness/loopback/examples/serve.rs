//! Runs a loopback device for manual experiments: `cargo run -p quadbench-loopback --example
//! serve -- PORT DIR [ADB_KEYS | --insecure]` (keys default to `$HOME/.android/adbkey.pub`);
//! events go to stderr.

use quadbench_loopback::{Auth, LoopbackConfig, auth};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: serve PORT DIR [ADB_KEYS | --insecure]");
        std::process::exit(2);
    };
    let auth = match args.get(3).map(String::as_str) {
        Some("--insecure") => Auth::Insecure,
        Some(keys) => Auth::Keys(keys.into()),
        None => Auth::Keys(auth::default_keys_file().expect("HOME is set")),
    };
    let mut cfg = LoopbackConfig::new(dir, auth);
    cfg.bind = format!("127.0.0.1:{port}").parse().expect("port");
    if let Err(e) = quadbench_loopback::serve_forever_with_log(cfg, |ev| eprintln!("loopback: {ev}")) {
        eprintln!("loopback: {e}");
        std::process::exit(1);
    }
}
