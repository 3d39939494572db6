//! `junit.xml`: one test case per claim, per quality threshold and per run, so that any CI
//! server shows them. Failed runs are errors (`type="run-failed"`), infrastructure problems are
//! errors of their own type (`type="infrastructure-error"`), invalid runs and failed claims or
//! thresholds are failures, inconclusive claims and unsupported backends are skipped.

use super::tables;
use super::{Artefact, Report, ReportError, xml_escape as esc};
use quadbench_schema::results::{RunState, Verdict};

enum Outcome {
    Pass,
    Failure { kind: &'static str, message: String },
    Error { kind: &'static str, message: String },
    Skipped { message: String },
}

struct Case {
    class: String,
    name: String,
    time_s: f64,
    outcome: Outcome,
    out: String,
    err: String,
}

fn case(class: String, name: String, outcome: Outcome) -> Case {
    Case { class, name, time_s: 0.0, outcome, out: String::new(), err: String::new() }
}

fn suite(name: &str, cases: &[Case]) -> String {
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let time = cases.iter().fold(0.0, |a, c| a + c.time_s);
    let mut s = format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">\n",
        esc(name),
        cases.len(),
        count(|o| matches!(o, Outcome::Failure { .. })),
        count(|o| matches!(o, Outcome::Error { .. })),
        count(|o| matches!(o, Outcome::Skipped { .. }))
    );
    for c in cases {
        s.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(&c.class),
            esc(&c.name),
            c.time_s
        ));
        let mut body = match &c.outcome {
            Outcome::Pass => String::new(),
            Outcome::Failure { kind, message } => {
                format!("      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n", esc(message), esc(message))
            }
            Outcome::Error { kind, message } => {
                format!("      <error type=\"{kind}\" message=\"{}\">{}</error>\n", esc(message), esc(message))
            }
            Outcome::Skipped { message } => format!("      <skipped message=\"{}\"/>\n", esc(message)),
        };
        if !c.out.is_empty() {
            body.push_str(&format!("      <system-out>{}</system-out>\n", esc(&c.out)));
        }
        if !c.err.is_empty() {
            body.push_str(&format!("      <system-err>{}</system-err>\n", esc(&c.err)));
        }
        if body.is_empty() {
            s.push_str("/>\n");
        } else {
            s.push_str(&format!(">\n{body}    </testcase>\n"));
        }
    }
    s.push_str("  </testsuite>\n");
    s
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    let r = &rep.results;
    let mut claims = Vec::new();
    for c in &r.claims {
        let ratio = match (c.ratio, c.ci_low, c.ci_high) {
            (Some(x), Some(l), Some(h)) => format!("ratio {x:.2} [95% CI {l:.2}, {h:.2}]"),
            (Some(x), _, _) => format!("ratio {x:.2} (no CI: {})", c.note),
            _ => "no ratio".into(),
        };
        let what = format!("{} {} vs {}: {ratio}, threshold {:.1}", c.metric, c.candidate, c.baseline, c.threshold);
        let outcome = match c.verdict {
            Verdict::Pass => Outcome::Pass,
            Verdict::Fail => Outcome::Failure { kind: "claim-failed", message: format!("not reproduced: {what}") },
            Verdict::Inconclusive => {
                Outcome::Skipped { message: format!("inconclusive (CI straddles the threshold): {what}") }
            }
            Verdict::Missing => Outcome::Error { kind: "missing-run", message: format!("{}: {what}", c.note) },
        };
        let mut k =
            case(format!("quadbench.claims.{}.{}.{}", c.device, c.backend, c.precision), c.name.clone(), outcome);
        k.out = what;
        claims.push(k);
    }
    let mut quality = Vec::new();
    let mut runs = Vec::new();
    for run in &r.runs {
        for (task, q) in &run.quality {
            for (threshold, ok) in &q.thresholds {
                let outcome = if *ok {
                    Outcome::Pass
                } else {
                    Outcome::Failure { kind: "quality-threshold", message: format!("{task}: {threshold} not met") }
                };
                quality.push(case(format!("quadbench.quality.{}", run.id), format!("{task}: {threshold}"), outcome));
            }
            for g in &q.missing_golden {
                quality.push(case(
                    format!("quadbench.quality.{}", run.id),
                    format!("{task}: golden for {g}"),
                    Outcome::Skipped { message: format!("no golden for input {g}") },
                ));
            }
        }
        let error = run.error.clone().unwrap_or_default();
        let outcome = match run.status {
            RunState::Ok if run.valid => Outcome::Pass,
            RunState::Ok => Outcome::Failure { kind: "invalid-run", message: run.validity_note.clone() },
            RunState::Failed if run.infrastructure_error => {
                Outcome::Error { kind: "infrastructure-error", message: error }
            }
            RunState::Failed => Outcome::Error { kind: "run-failed", message: error },
            RunState::Unsupported => Outcome::Skipped { message: error },
        };
        let mut k = case("quadbench.runs".into(), run.id.clone(), outcome);
        k.time_s = run.duration_ms / 1e3;
        let warnings = tables::run_warnings(run);
        k.out = if run.status == RunState::Ok {
            std::iter::once(run.validity_note.clone())
                .chain(warnings.into_iter().map(|w| format!("warning: {w}")))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            String::new()
        };
        k.err = run.stderr_tail.clone();
        runs.push(k);
    }
    let all = [("claims", &claims), ("quality", &quality), ("runs", &runs)];
    let n = |f: fn(&Outcome) -> bool| all.iter().flat_map(|(_, c)| c.iter()).filter(|c| f(&c.outcome)).count();
    // No `skipped` on <testsuites>: Jenkins' xunit schema (junit-10.xsd) rejects it there; the
    // per-suite `skipped` counts carry it.
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"quadbench {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        esc(&r.scenario.name),
        all.iter().map(|(_, c)| c.len()).sum::<usize>(),
        n(|o| matches!(o, Outcome::Failure { .. })),
        n(|o| matches!(o, Outcome::Error { .. }))
    );
    for (name, cases) in all {
        s.push_str(&suite(name, cases));
    }
    s.push_str("</testsuites>\n");
    Ok(vec![Artefact::text("junit.xml", s)])
}
