//! report.html in headless Chromium: the page loads with no console messages, the tables and
//! plots are in the rendered DOM, every table fits a 1400 px window and a printed landscape page
//! without horizontal scrolling, and a 1400 px screenshot is kept in the test's output directory
//! (`$CARGO_TARGET_TMPDIR/report-html/screenshot.png`). Chromium is required
//! (tests/common/chromium.rs): without it the tests fail with the install hint.

mod common;

use common::chromium::{chromium, console_errors, file_url, headless};
use quadbench::report::{self, Report};
use std::path::{Path, PathBuf};

/// Every artefact of the fixture's report under `$CARGO_TARGET_TMPDIR/<name>`.
fn render_report(name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&out);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/report-demo");
    let rep = Report::load(&fixture).unwrap();
    report::write(&report::render(&rep, &[]).unwrap(), &out).unwrap();
    out
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let chrome = chromium();
    let out = render_report("report-html");
    let url = file_url(&out.join("report.html"));

    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(&chrome, profile.path(), (1400, 2000), &["--dump-dom".into()], &url);
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
    let errors = console_errors(&log);
    assert!(errors.is_empty(), "page produced console or network errors:\n{}", errors.join("\n"));

    let profile = tempfile::tempdir().unwrap();
    let shot = out.join("screenshot.png");
    headless(&chrome, profile.path(), (1400, 2000), &[format!("--screenshot={}", shot.display())], &url);
    let img = image::open(&shot).expect("screenshot written");
    assert_eq!((img.width(), img.height()), (1400, 2000));
    // Not a blank page: the screenshot has plenty of non-white pixels.
    let dark = img.to_luma8().pixels().filter(|p| p.0[0] < 200).count();
    assert!(dark > 20_000, "screenshot looks blank ({dark} dark pixels): {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

/// Runs at the end of the page (after every table is parsed, layout forced by the reads) and
/// writes what it measured into the DOM, where `--dump-dom` returns it: the page's scroll width
/// against the viewport, and per table its right edge and its scroll container's widths.
const MEASURE: &str = r#"<script>
(function () {
  var de = document.documentElement, rows = [];
  rows.push(['page', de.scrollWidth, de.clientWidth].join(' '));
  document.querySelectorAll('table').forEach(function (t) {
    var w = t.parentElement;
    rows.push([t.id || 'table', Math.ceil(t.getBoundingClientRect().right), de.clientWidth,
               w.scrollWidth, w.clientWidth].join(' '));
  });
  var pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = rows.join('\n');
  document.body.appendChild(pre);
})();
</script>"#;

/// Load `html` (a copy of the report plus [`MEASURE`]) at `width` px and return the tables that
/// do not fit: wider than the viewport, or wider than their scroll container (hidden columns).
fn overflowing(chrome: &Path, dir: &Path, html: &str, width: u32) -> (Vec<String>, usize) {
    let page = dir.join(format!("measure-{width}.html"));
    std::fs::write(&page, html.replace("</body>", &format!("{MEASURE}\n</body>"))).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = file_url(&page);
    let (dom, _) = headless(chrome, profile.path(), (width, 1200), &["--dump-dom".into()], &url);
    let measured = dom.split("<pre id=\"measured\">").nth(1).and_then(|s| s.split("</pre>").next());
    let measured = measured.expect("the measuring script ran");
    let mut bad = Vec::new();
    let mut tables = 0;
    for line in measured.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| f[i].parse::<i64>().unwrap();
        if f[0] == "page" {
            assert_eq!(n(2), width as i64, "viewport is not the window width");
            if n(1) > n(2) {
                bad.push(format!("page scrolls sideways at {width} px: {} > {}", n(1), n(2)));
            }
        } else {
            tables += 1;
            if n(1) > n(2) || n(3) > n(4) {
                bad.push(format!(
                    "{} at {width} px: right edge {} (viewport {}), content {} in a box of {}",
                    f[0],
                    n(1),
                    n(2),
                    n(3),
                    n(4)
                ));
            }
        }
    }
    (bad, tables)
}

#[test]
fn every_table_fits_1400_px_and_a_printed_page() {
    let chrome = chromium();
    let out = render_report("report-html-fit");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let (bad, tables) = overflowing(&chrome, &out, &html, 1400);
    // Print: the page's print rules applied on screen at the width of a landscape US Letter page
    // less 10 mm margins (259.4 mm = 980 CSS px; A4 landscape is wider).
    let mut all = bad;
    if html.contains("@media print") {
        all.extend(overflowing(&chrome, &out, &html.replace("@media print", "@media all"), 980).0);
    } else {
        all.push("no print rules (@media print)".into());
    }
    assert!(all.is_empty(), "tables do not fit:\n{}", all.join("\n"));
    assert!(tables >= 6, "expected the report's six tables, measured {tables}");
}
