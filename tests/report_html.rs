//! report.html in headless Chromium: the page loads with no console messages, the tables and
//! plots are in the rendered DOM, and a screenshot is kept in the test's output directory
//! (`$CARGO_TARGET_TMPDIR/report-html/screenshot.png`). Chromium is required: without it the
//! test fails with the install hint rather than passing silently.

use quadbench::report::{self, Report};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
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

fn run(chrome: &Path, profile: &Path, extra: &[String], url: &str) -> (String, String) {
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
            "--window-size=1280,2000",
        ])
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

#[test]
fn report_html_renders_in_headless_chromium() {
    let chrome = chromium();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    let _ = std::fs::remove_dir_all(&out);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/report-demo");
    let rep = Report::load(&fixture).unwrap();
    report::write(&report::render(&rep, &[]).unwrap(), &out).unwrap();
    let page = std::fs::canonicalize(out.join("report.html")).unwrap();
    let url = format!("file://{}", page.display());

    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = run(&chrome, profile.path(), &["--dump-dom".into()], &url);
    for (what, needle) in [
        ("claims table", "id=\"table-claims\""),
        ("KPI table", "id=\"table-kpis\""),
        ("quality table", "id=\"table-quality\""),
        ("runs table", "id=\"table-runs\""),
        ("latency plot", "id=\"plot-latency\""),
        ("storage plot", "id=\"plot-storage\""),
        ("ratio summary", "id=\"table-ratios-local-cpu\""),
        ("percentiles table", "id=\"table-percentiles\""),
        ("an interval", "<span class=\"ci\">[1.13, 1.33]</span>"),
    ] {
        assert!(dom.contains(needle), "{what} missing from the rendered DOM");
    }
    assert!(dom.matches("<svg").count() >= 5, "expected the inline SVG plots");
    for bad in ["CONSOLE", "Uncaught", "Failed to load resource", "net::ERR_"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(bad)).collect();
        assert!(lines.is_empty(), "page produced console or network errors:\n{}", lines.join("\n"));
    }

    let profile = tempfile::tempdir().unwrap();
    let shot = out.join("screenshot.png");
    run(&chrome, profile.path(), &[format!("--screenshot={}", shot.display())], &url);
    let img = image::open(&shot).expect("screenshot written");
    assert_eq!((img.width(), img.height()), (1280, 2000));
    // Not a blank page: the screenshot has plenty of non-white pixels.
    let dark = img.to_luma8().pixels().filter(|p| p.0[0] < 200).count();
    assert!(dark > 20_000, "screenshot looks blank ({dark} dark pixels): {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}
