//! The trend dashboard (`index.html` from a history) in headless Chromium: it loads with no
//! console or network errors, the verdict, device and trend sections are in the rendered DOM with
//! the regression's row, and a 1400 px screenshot is kept in the test's output directory
//! (`$CARGO_TARGET_TMPDIR/dashboard-html/screenshot.png`; also copied to the path in
//! `QUADBENCH_DASHBOARD_PNG` when that is set, to look at). The history is the synthetic fixture
//! tests/fixtures/history-demo.

mod common;

use common::chromium::{chromium, console_errors, file_url, headless};
use quadbench::report::{self, dashboard, history::RegressionReport};
use std::path::Path;

#[test]
fn dashboard_renders_in_headless_chromium() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/history-demo/regressions.json");
    let history: RegressionReport = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-html");
    let _ = std::fs::remove_dir_all(&out);
    report::write(&dashboard::render_dashboard(&history).unwrap(), &out).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    // Self-contained: the only URLs are the SVG namespace.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(
        urls,
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "a URL other than the SVG namespace"
    );
    assert!(!html.contains("<script") && !html.contains(" src="), "no scripts, no external resources");

    let chrome = chromium();
    let url = file_url(&out.join("index.html"));
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(&chrome, profile.path(), (1400, 2000), &["--dump-dom".into()], &url);
    let errors = console_errors(&log);
    assert!(errors.is_empty(), "page produced console or network errors:\n{}", errors.join("\n"));
    for (what, needle) in [
        ("verdict table", "id=\"table-verdicts\""),
        ("device table", "id=\"table-devices\""),
        ("trend plots", "id=\"trends\""),
        ("the regression's trend", "id=\"trend-sd-turbo-4task_pixel-8_qnn-htp_int8_unified-latency_ms.e2e\""),
        ("the package change", "pkg 7b04d5e1"),
    ] {
        assert!(dom.contains(needle), "{what} missing from the rendered DOM");
    }
    let row = dom.split("<tr class=\"regression\">").nth(1).expect("a regression row").split("</tr>").next().unwrap();
    for cell in ["title=\"sd-turbo-4task/pixel-8/qnn-htp/int8/unified\"", "latency_ms.e2e", "538 ms", "1.3x", "+31.0%"]
    {
        assert!(row.contains(cell), "regression row lacks {cell}: {row}");
    }
    assert_eq!(dom.matches("<svg").count(), history.trends.len(), "one plot per series and metric");

    let profile = tempfile::tempdir().unwrap();
    let shot = out.join("screenshot.png");
    headless(&chrome, profile.path(), (1400, 2000), &[format!("--screenshot={}", shot.display())], &url);
    let img = image::open(&shot).expect("screenshot written");
    assert_eq!((img.width(), img.height()), (1400, 2000));
    let dark = img.to_luma8().pixels().filter(|p| p.0[0] < 200).count();
    assert!(dark > 20_000, "screenshot looks blank ({dark} dark pixels): {}", shot.display());
    if let Some(copy) = std::env::var_os("QUADBENCH_DASHBOARD_PNG") {
        std::fs::copy(&shot, copy).unwrap();
    }
    eprintln!("screenshot: {}", shot.display());
}
