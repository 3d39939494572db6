//! `quadbench regressions` for people and CI: a Markdown summary (worst first) and JUnit XML
//! (one test case per series and metric; a standing regression is a failure, an inconclusive
//! or unconfirmed one is reported as skipped with its reason).

use crate::xml_escape;
use quadbench_schema::history::{Change, Finding, RegressionReport};
use std::fmt::Write;

/// The findings, worst first, then by key and metric.
pub fn worst_first(r: &RegressionReport) -> Vec<&Finding> {
    let mut v: Vec<&Finding> = r.findings.iter().collect();
    v.sort_by(|a, b| (a.change.severity(), &a.key, &a.metric).cmp(&(b.change.severity(), &b.key, &b.metric)));
    v
}

/// How a finding's change reads, with its confirmation.
pub fn change_text(f: &Finding) -> String {
    match (f.change, f.confirmed) {
        (Change::Regression, Some(true)) => "regression (confirmed)".into(),
        (Change::Regression, Some(false)) => "regression not confirmed by rerun".into(),
        (c, _) => c.as_str().replace('_', " "),
    }
}

/// Counts per change, in severity order, for headers.
pub fn counts(r: &RegressionReport) -> Vec<(Change, usize)> {
    Change::WORST_FIRST
        .iter()
        .map(|c| (*c, r.findings.iter().filter(|f| f.change == *c).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 1e5 => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

/// The Markdown summary: counts, then every finding that is not `unchanged`, worst first.
pub fn markdown(r: &RegressionReport) -> String {
    let mut s = String::from("# Regressions\n\n");
    let counts: Vec<String> = counts(r).iter().map(|(c, n)| format!("{n} {}", c.as_str().replace('_', " "))).collect();
    let _ = writeln!(s, "{} findings: {}.\n", r.findings.len(), counts.join(", "));
    let shown: Vec<&Finding> = worst_first(r).into_iter().filter(|f| f.change != Change::Unchanged).collect();
    if shown.is_empty() {
        s.push_str("Nothing changed beyond the minimum effects.\n");
        return s;
    }
    s.push_str("| series | metric | change | latest | baseline | worse ratio | bucket | test | p | note |\n");
    s.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for f in shown {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.key,
            f.metric,
            change_text(f),
            num(f.latest),
            num(f.baseline),
            f.worse_ratio.map(|x| format!("{x:.3}x")).unwrap_or_else(|| "-".into()),
            f.bucket,
            f.test,
            f.p_value.map(|p| format!("{p:.2e}")).unwrap_or_else(|| "-".into()),
            f.note.replace('|', "/"),
        );
    }
    s
}

/// JUnit XML: suite `regressions`, a test case per series (class) and metric (name).
pub fn junit(r: &RegressionReport) -> String {
    let failures = r.regressions().count();
    let skipped =
        r.findings.iter().filter(|f| matches!(f.change, Change::Inconclusive | Change::NotComparable)).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"quadbench regressions\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        r.findings.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"regressions\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        r.findings.len()
    );
    for f in &r.findings {
        let _ = write!(s, "    <testcase classname=\"{}\" name=\"{}\"", xml_escape(&f.key), xml_escape(&f.metric));
        let detail = format!(
            "{}: latest {} vs baseline {} ({}); {}{}",
            change_text(f),
            num(f.latest),
            num(f.baseline),
            f.test,
            f.bucket,
            if f.note.is_empty() { String::new() } else { format!("; {}", f.note) }
        );
        let standing = f.change == Change::Regression && f.confirmed != Some(false);
        if standing {
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\" type=\"regression\"/>\n    </testcase>",
                xml_escape(&detail)
            );
        } else if matches!(f.change, Change::Inconclusive | Change::NotComparable) {
            let _ = writeln!(s, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml_escape(&detail));
        } else {
            s.push_str("/>\n");
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}
