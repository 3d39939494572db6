//! Report exporters against golden files: every artefact regenerated from the stored results
//! fixture must be byte-identical to tests/snapshots/report/ (PNGs by sha256). Set
//! `UPDATE_SNAPSHOTS=1` to rewrite the golden files after an intended change, then review the
//! diff. A second check renders a run with other timings and compares with numbers redacted, so
//! the structure is pinned independently of the figures.

use quadbench::report::{self, Artefact, Report};
use quadbench::results::Results;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/report-demo")
}

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/snapshots/report")
}

fn update() -> bool {
    std::env::var_os("UPDATE_SNAPSHOTS").is_some()
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(b))
}

/// Compare (or with UPDATE_SNAPSHOTS write) one artefact; PNGs go through a hash list.
fn check(a: &Artefact, pngs: &mut Vec<String>, failures: &mut Vec<String>) {
    if a.path.ends_with(".png") {
        pngs.push(format!("{}  {}", sha256(&a.bytes), a.path));
        return;
    }
    let golden = snapshots().join(&a.path);
    if update() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &a.bytes).unwrap();
        return;
    }
    match std::fs::read(&golden) {
        Ok(g) if g == a.bytes => {}
        Ok(g) => {
            let (gs, ns) = (String::from_utf8_lossy(&g), String::from_utf8_lossy(&a.bytes));
            let line = gs.lines().zip(ns.lines()).position(|(x, y)| x != y).map_or("(length)".to_string(), |i| {
                format!(
                    "line {}:\n  golden: {}\n  new:    {}",
                    i + 1,
                    gs.lines().nth(i).unwrap_or(""),
                    ns.lines().nth(i).unwrap_or("")
                )
            });
            failures.push(format!("{} differs from its golden file at {line}", a.path));
        }
        Err(_) => failures.push(format!("{}: no golden file {}", a.path, golden.display())),
    }
}

#[test]
fn every_exporter_matches_its_snapshot_byte_for_byte() {
    let rep = Report::load(&fixture()).expect("fixture loads");
    let mut pngs = Vec::new();
    let mut failures = Vec::new();
    let mut all = Vec::new();
    for (name, _) in report::EXPORTERS {
        let arts = report::render(&rep, &[name.to_string()]).unwrap();
        assert!(!arts.is_empty(), "exporter {name} made nothing");
        for a in &arts {
            check(a, &mut pngs, &mut failures);
        }
        all.extend(arts);
    }
    pngs.sort();
    let list = pngs.join("\n") + "\n";
    let list_path = snapshots().join("png.sha256");
    if update() {
        std::fs::write(&list_path, &list).unwrap();
    } else if std::fs::read_to_string(&list_path).ok().as_deref() != Some(list.as_str()) {
        failures.push(format!("PNG hashes differ from {}:\n{list}", list_path.display()));
    }
    assert!(failures.is_empty(), "{}\n(set UPDATE_SNAPSHOTS=1 to accept intended changes)", failures.join("\n"));

    // Regenerating gives byte-identical output, and the artefacts are the expected set.
    let again = report::render(&Report::load(&fixture()).unwrap(), &[]).unwrap();
    let mut all_sorted = all.clone();
    all_sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(again == all_sorted, "a second rendering differs");
    let paths: Vec<&str> = again.iter().map(|a| a.path.as_str()).collect();
    for want in [
        "report.md",
        "report.html",
        "report.json",
        "junit.xml",
        "tables/kpis.tex",
        "tables/claims.tex",
        "tables/quality.tex",
        "tables/kpis.csv",
        "tables/claims.csv",
        "plots/latency.svg",
        "plots/latency.png",
        "plots/timeline.svg",
        "plots/storage.svg",
        "plots/memory.png",
        "plots/quality.svg",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    // No absolute paths leak into artefacts.
    for a in &again {
        let t = String::from_utf8_lossy(&a.bytes);
        assert!(
            !t.contains("/work/") && !t.contains("/tmp/") && !t.contains("/root/"),
            "{} contains an absolute path",
            a.path
        );
    }
}

#[test]
fn claims_table_has_ratios_with_intervals_and_verdicts() {
    let rep = Report::load(&fixture()).unwrap();
    let md = String::from_utf8(report::render(&rep, &["md".into()]).unwrap()[0].bytes.clone()).unwrap();
    assert!(md.contains("| ratio baseline/candidate [95% CI] |"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| switch-latency-4x | latency_ms.switch | local | cpu |"))
        .expect("switch claim row");
    assert!(row.contains("1.22 [1.13, 1.33]") && row.contains("| fail |"), "{row}");
    let storage = md.lines().find(|l| l.starts_with("| storage-6x | storage.total_bytes | local | cpu |")).unwrap();
    assert!(storage.contains("| 9.01 |") && storage.contains("| pass |") && storage.contains("exact"), "{storage}");
    // The failed xnnpack run leaves its claims without a verdict.
    assert!(md.contains("| storage-6x | storage.total_bytes | local | xnnpack | fp32 | separate-reload | unified | - | 6.0 | missing run |"), "{md}");
    let r = &rep.results;
    let c = r.claims.iter().find(|c| c.name == "switch-latency-4x" && c.backend == "cpu").unwrap();
    assert_eq!(
        (c.bootstrap_resamples, c.bootstrap_seed),
        (Some(quadbench::stats::RESAMPLES), Some(quadbench::stats::SEED))
    );
}

#[test]
fn junit_distinguishes_failures_errors_and_infrastructure() {
    let rep = Report::load(&fixture()).unwrap();
    let x = String::from_utf8(report::render(&rep, &["junit".into()]).unwrap()[0].bytes.clone()).unwrap();
    assert!(
        x.contains("<testsuite name=\"claims\"")
            && x.contains("<testsuite name=\"quality\"")
            && x.contains("<testsuite name=\"runs\"")
    );
    assert!(x.contains("type=\"claim-failed\""));
    assert!(x.contains("type=\"infrastructure-error\""));
    assert!(x.contains("type=\"missing-run\""));
    assert!(x.contains("name=\"sepia: psnr_db &gt;= 30\""));
    assert!(x.contains("<skipped message=\"no golden for input coffee\"/>"));
}

/// Replace every run of digits with `#`, so that output from other timings compares equal in
/// structure.
fn redact(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !o.ends_with('#') {
                o.push('#');
            }
        } else {
            o.push(c);
        }
    }
    o
}

#[test]
fn other_timings_give_the_same_report_with_numbers_redacted() {
    // Another run: every latency 1.7x slower (ratios, CIs of ratios and verdicts unchanged).
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(fixture().join("results.json")).unwrap();
    text = text.replace("\"duration_ms\": 1", "\"duration_ms\": 2");
    std::fs::write(dir.path().join("results.json"), text).unwrap();
    std::fs::create_dir_all(dir.path().join("samples")).unwrap();
    for e in std::fs::read_dir(fixture().join("samples")).unwrap() {
        let p = e.unwrap().path();
        let mut out = String::new();
        for (i, line) in std::fs::read_to_string(&p).unwrap().lines().enumerate() {
            if i == 0 {
                out.push_str(line);
            } else {
                let (head, v) = line.rsplit_once(',').unwrap();
                out.push_str(&format!("{head},{:.6}", v.parse::<f64>().unwrap() * 1.7));
            }
            out.push('\n');
        }
        std::fs::write(dir.path().join("samples").join(p.file_name().unwrap()), out).unwrap();
    }
    let base = Report::load(&fixture()).unwrap();
    let other = Report::load(dir.path()).unwrap();
    for f in ["md", "junit", "csv", "tex"] {
        let a = report::render(&base, &[f.into()]).unwrap();
        let b = report::render(&other, &[f.into()]).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                redact(&String::from_utf8_lossy(&x.bytes)),
                redact(&String::from_utf8_lossy(&y.bytes)),
                "{} differs beyond its numbers",
                x.path
            );
        }
    }
    let c = other.results.claims.iter().find(|c| c.name == "switch-latency-4x" && c.backend == "cpu").unwrap();
    // LoadGen medians (sorted[n / 2]) of the raw switch samples: 315.623202 / 257.759716.
    assert!((c.ratio.unwrap() - 1.2245).abs() < 1e-3);
}

#[test]
fn report_of_an_older_results_file_recomputes_statistics() {
    // The fixture's results.json predates intervals; loading recomputes them from samples.
    let raw: Results = serde_json::from_str(&std::fs::read_to_string(fixture().join("results.json")).unwrap()).unwrap();
    assert!(raw.runs[0].latency_ms["e2e"].p50_ci.is_none());
    let rep = Report::load(&fixture()).unwrap();
    let s = &rep.results.runs[0].latency_ms["e2e"];
    let [lo, hi] = s.p50_ci.unwrap();
    assert!(lo <= s.p50 && s.p50 <= hi);
    assert!(s.outliers.as_ref().is_some_and(|o| o.indices.len() == 1));
}

#[test]
fn missing_results_directory_says_how_to_fix_it() {
    let e = Report::load(Path::new("/nonexistent/results")).err().unwrap().to_string();
    assert!(e.contains("results.json") && e.contains("hint:"), "{e}");
    let rep = Report::load(&fixture()).unwrap();
    let e = report::render(&rep, &["pdf".into()]).err().unwrap().to_string();
    assert!(e.contains("unknown report format `pdf`") && e.contains("md, tex, csv"), "{e}");
}

/// An external program a test needs: its path, or a failure naming the Debian package (never a
/// silent skip, so that a CI image without it goes red instead of green).
fn need(tool: &str, package: &str) -> PathBuf {
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{tool}` not found: this test needs it.\n  fix: `apt-get install -y {package}` (Debian/Ubuntu)");
}

fn render_one(rep: &Report, format: &str, path: &str) -> String {
    let arts = report::render(rep, &[format.to_string()]).unwrap();
    let a = arts.iter().find(|a| a.path == path).unwrap_or_else(|| panic!("no {path}"));
    String::from_utf8(a.bytes.clone()).unwrap()
}

#[test]
fn junit_xml_validates_against_jenkins_xunit_junit10_xsd() {
    // The schema Jenkins' xunit plugin validates JUnit reports with (tests/fixtures/junit/README.md).
    let xmllint = need("xmllint", "libxml2-utils");
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/junit/junit-10.xsd");
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    std::fs::write(&xml, render_one(&Report::load(&fixture()).unwrap(), "junit", "junit.xml")).unwrap();
    let out = std::process::Command::new(xmllint).arg("--noout").arg("--schema").arg(&xsd).arg(&xml).output().unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && msg.contains("validates"), "junit.xml rejected by junit-10.xsd:\n{msg}");
}

#[test]
fn no_cv_warning_for_a_metric_that_times_a_no_op() {
    let rep = Report::load(&fixture()).unwrap();
    // Separate-resident switch_load times a lookup of an already-loaded session: 0.15-0.4 us.
    let run = rep.results.runs.iter().find(|r| r.id == "local-cpu-fp32-separate-resident").unwrap();
    let mut s = run.samples["switch_load"].clone();
    s.sort_by(|a, b| a.total_cmp(b));
    assert!(s[s.len() - 1] < 0.001, "fixture changed: {s:?}");
    assert!(run.latency_ms["switch_load"].warnings.is_empty(), "{:?}", run.latency_ms["switch_load"].warnings);
    let md = render_one(&rep, "md", "report.md");
    assert!(!md.contains("`local-cpu-fp32-separate-resident`: switch_load: high variability"), "{md}");
    // A real spread on a real duration still warns (unified switch_load: ~0.5 ms, CV 16%).
    assert!(md.contains("`local-cpu-fp32-unified`: switch_load: high variability"), "{md}");
}

#[test]
fn percentiles_follow_loadgen_and_thin_tails_are_flagged() {
    let rep = Report::load(&fixture()).unwrap();
    let run = &rep.results.runs[0];
    for key in ["e2e", "switch", "denoiser"] {
        let mut s = run.samples[key].clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        // LoadGen (loadgen/results.cc): sample_latencies[sample_count * percentile], truncated.
        let loadgen = |p: f64| s[((n as f64 * p) as usize).min(n - 1)];
        let sum = &run.latency_ms[key];
        assert_eq!((sum.p50, sum.p90, sum.p99), (loadgen(0.5), loadgen(0.9), loadgen(0.99)), "{key}");
        // The raw value stays in the JSON, with the flag beside it.
        let j = serde_json::to_value(sum).unwrap();
        assert_eq!(j["p99"].as_f64(), Some(loadgen(0.99)), "{key}");
        let flagged: Vec<&str> =
            j["too_few_samples"].as_array().map_or(vec![], |a| a.iter().filter_map(|x| x.as_str()).collect());
        let want: Vec<&str> = [("p90", 10), ("p99", 100)].iter().filter(|(_, m)| n < *m).map(|x| x.0).collect();
        assert_eq!(flagged, want, "{key}: n = {n}");
    }
    // Tables: the p99 of 20 samples is not shown as a number.
    let md = render_one(&rep, "md", "report.md");
    let e2e = &run.latency_ms["e2e"];
    let want =
        format!("| local-cpu-fp32-unified | e2e | 20 | {:.2} | {:.2} | n < 100 | {:.2} |", e2e.p50, e2e.p90, e2e.max);
    assert!(md.lines().any(|l| l == want), "no row {want} in\n{md}");
    assert!(md.contains("MLPerf LoadGen's rule"), "method not stated");
}

/// separate / unified for one metric, from results.json's own numbers (as the console does).
fn expected_ratio(rep: &Report, separate: &str, f: &dyn Fn(&quadbench::results::RunRecord) -> f64) -> String {
    let run = |id: &str| rep.results.runs.iter().find(|r| r.id == id).unwrap();
    format!("{:.2}", f(run(separate)) / f(run("local-cpu-fp32-unified")))
}

#[test]
fn ratio_summary_of_unified_vs_separate_is_in_report_md() {
    let rep = Report::load(&fixture()).unwrap();
    let md = render_one(&rep, "md", "report.md");
    let section = md.split("\n## Unified vs separate strategies\n").nth(1).expect("ratio section");
    let section = section.split("\n## ").next().unwrap();
    assert!(section.contains("### local / cpu"), "{section}");
    // LoadGen median (sorted[n / 2]) of the raw switch samples.
    let median = |r: &quadbench::results::RunRecord| {
        let mut s = r.samples["switch"].clone();
        s.sort_by(|a, b| a.total_cmp(b));
        s[s.len() / 2]
    };
    for sep in ["separate-resident", "separate-reload"] {
        let id = format!("local-cpu-fp32-{sep}");
        let storage = expected_ratio(&rep, &id, &|r| r.storage.total_bytes as f64);
        let rss = expected_ratio(&rep, &id, &|r| r.memory.peak_rss_bytes.unwrap() as f64);
        let switch = expected_ratio(&rep, &id, &median);
        let row = section.lines().find(|l| l.starts_with(&format!("| fp32 | {sep} |"))).expect("ratio row");
        assert!(row.starts_with(&format!("| fp32 | {sep} | {storage} | {rss} | {switch} [")), "{row}");
    }
    // No unified run succeeded on xnnpack: no ratios to show there.
    assert!(!section.contains("### local / xnnpack"), "{section}");
}

/// A second results set: the fixture as another scenario on another device.
fn other_results_set(dir: &Path) -> PathBuf {
    let out = dir.join("npu-results");
    std::fs::create_dir_all(out.join("samples")).unwrap();
    let text = std::fs::read_to_string(fixture().join("results.json")).unwrap();
    let text = text.replace("\"name\": \"demo\"", "\"name\": \"npu\"").replace("3992440b64f0", "5aa1f00dd00d");
    std::fs::write(out.join("results.json"), text).unwrap();
    for e in std::fs::read_dir(fixture().join("samples")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, out.join("samples").join(p.file_name().unwrap())).unwrap();
    }
    out
}

#[test]
fn latex_tables_of_two_results_sets_compile_in_one_paper() {
    let pdflatex = need("pdflatex", "texlive-latex-recommended");
    let pdftotext = need("pdftotext", "poppler-utils");
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = String::new();
    for (name, src) in [("demo", fixture()), ("npu", other_results_set(dir.path()))] {
        let arts = report::render(&Report::load(&src).unwrap(), &["tex".into()]).unwrap();
        report::write(&arts, &dir.path().join(name)).unwrap();
        for a in &arts {
            let tex = String::from_utf8_lossy(&a.bytes);
            // Readable means set at a readable size, not shrunk to fit.
            for bad in ["\\resizebox", "\\scalebox", "\\scriptsize", "\\tiny"] {
                assert!(!tex.contains(bad), "{name}/{}: {bad}", a.path);
            }
            inputs.push_str(&format!("\\input{{{name}/{}}}\n", a.path));
        }
    }
    // A two-column paper (10 pt): table* spans \textwidth = 469 pt.
    let paper = format!(
        "\\documentclass[twocolumn]{{article}}\n\\usepackage{{booktabs}}\n\\usepackage{{graphicx}}\n\\begin{{document}}\n{inputs}\\end{{document}}\n"
    );
    std::fs::write(dir.path().join("paper.tex"), paper).unwrap();
    // Twice: duplicate labels are reported when the second run reads the first run's .aux.
    for _ in 0..2 {
        let out = std::process::Command::new(&pdflatex)
            .current_dir(dir.path())
            .args(["-interaction=nonstopmode", "-halt-on-error", "paper.tex"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pdflatex failed:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    let log = std::fs::read_to_string(dir.path().join("paper.log")).unwrap();
    assert!(!log.contains("multiply defined"), "duplicate labels:\n{log}");
    assert!(!log.contains("Overfull \\hbox"), "a table is wider than the text:\n{log}");
    // What the PDF says: no literal caret (\textasciicircum comes out as U+02C6), and every word
    // at least 8 pt (pdftotext's box height is ~0.885 x the size for Computer Modern: 8 pt ->
    // 7.08; \resizebox left 3.8).
    let text =
        std::process::Command::new(&pdftotext).arg("paper.pdf").arg("-").current_dir(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("On-device KPIs"), "{text}");
    let carets: Vec<&str> = text.lines().filter(|l| l.contains('^') || l.contains('\u{2c6}')).collect();
    assert!(carets.is_empty(), "literal carets in the PDF:\n{}", carets.join("\n"));
    let bbox = std::process::Command::new(&pdftotext)
        .args(["-bbox", "paper.pdf", "-"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let bbox = String::from_utf8_lossy(&bbox.stdout);
    let attr = |l: &str, k: &str| -> f64 {
        let v = l.split(&format!("{k}=\"")).nth(1).unwrap();
        v[..v.find('"').unwrap()].parse().unwrap()
    };
    let mut small = Vec::new();
    let mut prev_right = f64::NAN;
    for l in bbox.lines().filter(|l| l.trim_start().starts_with("<word ")) {
        let h = attr(l, "yMax") - attr(l, "yMin");
        let word = l.rsplit_once("\">").map_or("", |x| x.1).trim_end_matches("</word>");
        // An exponent (the 6 of 10^6) is a word of digits touching the one before: a superscript
        // is smaller by design, and that is not a table set too small.
        let exponent = word.chars().all(|c| c.is_ascii_digit()) && (attr(l, "xMin") - prev_right).abs() < 0.5;
        if h < 7.0 && !exponent {
            small.push(format!("{h:.2} {}", l.trim()));
        }
        prev_right = attr(l, "xMax");
    }
    assert!(small.is_empty(), "words set below 8 pt:\n{}", small.join("\n"));
}
