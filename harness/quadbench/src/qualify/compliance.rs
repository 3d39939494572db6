//! MLPerf-style compliance checks, adapted to a request loop with task switches; each reads the
//! results directory of its own scenario variant ([`super::variant::Purpose`]):
//!
//! - TEST01 (accuracy in performance mode): the output of the first measured request of each
//!   task and input, saved after its timing, equals the unmeasured accuracy pass's output (the
//!   image, and every tensor output).
//! - TEST04 (no result caching): in the base run, distinct inputs give distinct outputs per task
//!   and distinct tasks distinct outputs per input; and repeating one input is not faster than
//!   rotating inputs by more than the threshold (a cache would make repeats collapse).
//! - TEST05 (alternate seeds): random task order with another seed gives medians within the
//!   threshold of the base run's.
//! - Sustained: the last quarter of a long run is at most the threshold slower than its first.

use super::criteria::{Finding, median};
use super::profile::Criterion;
use super::variant::{self, Evidence};
use crate::metric::{CiRule, Metric};
use crate::results::{RunRecord, RunState, Verdict};
use quadbench_protocol::sample_key;
use std::path::Path;

/// Largest difference between two images in 8-bit steps (0: identical pixels).
pub fn max_diff_255(a: &Path, b: &Path) -> Result<u32, String> {
    let pair = quadbench_metrics::load_pair(a, b, false).map_err(|e| e.to_string())?;
    let d = pair.reference.data.iter().zip(&pair.test.data).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    Ok((d * 255.0).round() as u32)
}

fn missing(f: &mut Finding, what: &str) {
    f.push(Verdict::Missing, format!("no {what} results in the bundle"));
}

fn ok_runs(ev: &Evidence) -> Vec<&RunRecord> {
    ev.results.runs.iter().filter(|r| r.status == RunState::Ok).collect()
}

pub fn test01(c: &Criterion, ev: Option<&Evidence>, f: &mut Finding) {
    let Some(ev) = ev else { return missing(f, "test01") };
    f.file(ev, "results.json");
    for r in ok_runs(ev) {
        f.file(ev, &format!("runs/{}/result.json", r.id));
        let (timed, timed_tensors) = match variant::result_of(&ev.dir, &r.id) {
            Ok(res) => (res.timed_outputs, res.timed_tensor_outputs),
            Err(e) => return f.push(Verdict::Fail, e),
        };
        if timed.is_empty() && timed_tensors.is_empty() {
            f.push(Verdict::Missing, format!("{}: no outputs were kept while timed", r.id));
            continue;
        }
        if !timed_tensors.is_empty() {
            test01_tensors(c, ev, r, &timed_tensors, f);
        }
        if timed.is_empty() {
            continue; // a package without an image: its outputs are the tensors
        }
        let mut worst = 0;
        for o in &timed {
            let name = format!("{}__{}.png", o.task, o.input);
            let (t, a) = (format!("outputs/{}/timed/{name}", r.id), format!("outputs/{}/{name}", r.id));
            f.file(ev, &t);
            f.file(ev, &a);
            match max_diff_255(&ev.dir.join(&a), &ev.dir.join(&t)) {
                Ok(d) => worst = worst.max(d),
                Err(e) => return f.push(Verdict::Fail, format!("{}: {name}: {e}", r.id)),
            }
        }
        f.values.push(worst as f64);
        let v = if worst as f64 <= c.threshold { Verdict::Pass } else { Verdict::Fail };
        f.push(
            v,
            format!(
                "{}: {} of {} task/input outputs kept while timed; largest difference from the accuracy pass {worst}/255 (allowed {})",
                r.id,
                timed.len(),
                r.outputs.len(),
                c.threshold
            ),
        );
    }
}

/// TEST01 on tensor outputs: each kept while timed against the accuracy pass's, largest absolute
/// difference; the threshold (8-bit steps for images) is read as `threshold / 255` in the
/// tensor's own units, so 0 asks for equal values.
fn test01_tensors(
    c: &Criterion,
    ev: &Evidence,
    r: &RunRecord,
    timed: &[quadbench_protocol::OutputTensor],
    f: &mut Finding,
) {
    let read = |rel: &str| -> Result<Vec<f64>, String> {
        let b = std::fs::read(ev.dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        quadbench_protocol::npy::parse(&b).map(|a| a.to_f64()).map_err(|e| format!("{rel}: {e}"))
    };
    let mut worst = 0f64;
    for o in timed {
        let file = Path::new(&o.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (t, a) = (format!("outputs/{}/timed/{file}", r.id), format!("outputs/{}/{file}", r.id));
        f.file(ev, &t);
        f.file(ev, &a);
        match (read(&t), read(&a)) {
            (Ok(x), Ok(y)) if x.len() == y.len() => {
                worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(worst, f64::max);
            }
            (Ok(_), Ok(_)) => {
                return f.push(Verdict::Fail, format!("{}: {file}: timed and accuracy tensors differ in size", r.id));
            }
            (Err(e), _) | (_, Err(e)) => return f.push(Verdict::Fail, format!("{}: {e}", r.id)),
        }
    }
    // In the criterion's units (8-bit steps), so the finding's value compares with images'.
    f.values.push(worst * 255.0);
    let allowed = c.threshold / 255.0;
    let v = if worst <= allowed { Verdict::Pass } else { Verdict::Fail };
    f.push(
        v,
        format!(
            "{}: {} tensor outputs kept while timed; largest absolute difference from the accuracy pass {worst:.3e} (allowed {allowed:.3e})",
            r.id,
            timed.len()
        ),
    );
}

/// Pairs of outputs that should differ but are identical (a cached result would be).
fn collisions(ev: &Evidence, r: &RunRecord, f: &mut Finding) -> Result<Vec<String>, String> {
    let mut same = Vec::new();
    for (i, a) in r.outputs.iter().enumerate() {
        for b in &r.outputs[i + 1..] {
            if a.task != b.task && a.input != b.input {
                continue;
            }
            f.file(ev, &a.path);
            f.file(ev, &b.path);
            if max_diff_255(&ev.dir.join(&a.path), &ev.dir.join(&b.path))? == 0 {
                same.push(format!("{}/{} = {}/{}", a.task, a.input, b.task, b.input));
            }
        }
    }
    Ok(same)
}

fn pooled_median(runs: &[&RunRecord], key: &str) -> Option<f64> {
    crate::report::groups::latency(runs, key).0
}

pub fn test04(c: &Criterion, base: Option<&Evidence>, ev: Option<&Evidence>, f: &mut Finding) {
    let (Some(base), Some(ev)) = (base, ev) else { return missing(f, "base and test04") };
    for r in ok_runs(base) {
        match collisions(base, r, f) {
            Ok(same) if same.is_empty() => f.push(
                Verdict::Pass,
                format!("{}: {} outputs, all distinct across inputs and tasks", r.id, r.outputs.len()),
            ),
            Ok(same) => f.push(Verdict::Fail, format!("{}: identical outputs for {}", r.id, same.join(", "))),
            Err(e) => f.push(Verdict::Fail, format!("{}: {e}", r.id)),
        }
    }
    for r in ok_runs(ev) {
        let b: Vec<&RunRecord> = ok_runs(base).into_iter().filter(|x| x.strategy == r.strategy).collect();
        f.runs(ev, &[r]);
        f.runs(base, &b);
        let (Some(same), Some(rot)) = (pooled_median(&[r], sample_key::E2E), pooled_median(&b, sample_key::E2E)) else {
            f.push(Verdict::Missing, format!("{}: no e2e latency to compare", r.id));
            continue;
        };
        let ratio = same / rot;
        f.values.push(ratio);
        let v = if ratio >= 1.0 - c.threshold { Verdict::Pass } else { Verdict::Fail };
        f.push(
            v,
            format!(
                "{}: one input repeated e2e p50 {same:.3} ms vs rotating inputs {rot:.3} ms: {ratio:.3}x (at least {:.3}x)",
                r.strategy.as_str(),
                1.0 - c.threshold
            ),
        );
    }
}

pub fn test05(c: &Criterion, base: Option<&Evidence>, ev: Option<&Evidence>, f: &mut Finding) {
    let (Some(base), Some(ev)) = (base, ev) else { return missing(f, "base and test05") };
    let Some(CiRule::Bootstrap { sample_key }) = c.metric.as_deref().and_then(Metric::parse).map(|m| m.info().ci)
    else {
        return f.push(Verdict::Missing, "criterion lacks a latency metric".into());
    };
    for r in ok_runs(ev) {
        let b: Vec<&RunRecord> = ok_runs(base).into_iter().filter(|x| x.strategy == r.strategy).collect();
        f.runs(ev, &[r]);
        f.runs(base, &b);
        let (Some(alt), Some(m)) = (pooled_median(&[r], sample_key), pooled_median(&b, sample_key)) else {
            f.push(Verdict::Missing, format!("{}: no {sample_key} latency to compare", r.id));
            continue;
        };
        let dev = (alt / m - 1.0).abs();
        f.values.push(dev);
        let v = if dev <= c.threshold { Verdict::Pass } else { Verdict::Fail };
        f.push(
            v,
            format!(
                "{}: {sample_key} p50 {alt:.3} ms with the alternate seed vs {m:.3} ms: {:+.1}% (within {:.1}%)",
                r.strategy.as_str(),
                (alt / m - 1.0) * 100.0,
                c.threshold * 100.0
            ),
        );
    }
}

pub fn sustained(c: &Criterion, ev: Option<&Evidence>, f: &mut Finding) {
    let Some(ev) = ev else { return missing(f, "sustained") };
    for r in ok_runs(ev) {
        f.runs(ev, &[r]);
        let s = r.samples.get(sample_key::E2E).map(Vec::as_slice).unwrap_or(&[]);
        if s.len() < 8 {
            f.push(Verdict::Missing, format!("{}: {} e2e samples, need 8 for quarters", r.id, s.len()));
            continue;
        }
        let q = s.len() / 4;
        let (first, last) = (median(&s[..q]), median(&s[s.len() - q..]));
        let slowdown = last / first - 1.0;
        f.values.push(slowdown);
        let v = if slowdown <= c.threshold { Verdict::Pass } else { Verdict::Fail };
        f.push(
            v,
            format!(
                "{}: {:.0} s measured, {} samples; e2e p50 first quarter {first:.3} ms, last {last:.3} ms: {:+.1}% (at most +{:.1}%)",
                r.id,
                r.duration_ms / 1e3,
                s.len(),
                slowdown * 100.0,
                c.threshold * 100.0
            ),
        );
    }
}
