//! Headless Chromium for the HTML tests (report.html, the dashboard): finding the browser, one
//! headless run (`--dump-dom`, `--screenshot`, ...), and the console and network errors in its
//! log. Chromium is required: without it the tests fail with the install hint rather than
//! passing silently.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binary: `QUADBENCH_CHROMIUM`, or the first of the usual names on `PATH`.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("QUADBENCH_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "headless Chromium not found: this test needs it.\n  fix: `apt-get install -y chromium` (Debian/Ubuntu), or set QUADBENCH_CHROMIUM to a Chrome/Chromium binary"
    );
}

/// Load `url` in a headless window of `size` with the `profile` directory and `extra` flags
/// (`--dump-dom`, `--screenshot=...`); returns (stdout, stderr), failing the test if Chromium
/// fails.
pub fn headless(chrome: &Path, profile: &Path, size: (u32, u32), extra: &[String], url: &str) -> (String, String) {
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("start chromium");
    let (so, se) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "chromium failed ({}):\n{se}", out.status);
    (so, se)
}

/// The lines of a Chromium log that report console messages, script errors or failed loads.
pub fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| ["CONSOLE", "Uncaught", "Failed to load resource", "net::ERR_"].iter().any(|bad| l.contains(bad)))
        .collect()
}

/// A `file://` URL of an existing file.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", std::fs::canonicalize(path).expect("page exists").display())
}
