//! Runs a loopback device for manual experiments: `cargo run -p quadbench-loopback --example
//! serve -- PORT DIR`; events go to stderr.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: serve PORT DIR");
        std::process::exit(2);
    };
    let mut cfg = quadbench_loopback::LoopbackConfig::new(dir);
    cfg.bind = format!("127.0.0.1:{port}").parse().expect("port");
    if let Err(e) = quadbench_loopback::serve_forever_with_log(cfg, |ev| eprintln!("loopback: {ev}")) {
        eprintln!("loopback: {e}");
        std::process::exit(1);
    }
}
