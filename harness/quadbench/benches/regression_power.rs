//! Benchmark: how often the regression detector cries wolf on this machine, and the smallest
//! slowdown it catches. Prints its figures; asserts nothing.
//!
//! 1. Records `QB_BENCH_NIGHTS` (default 30) nights of one unchanged configuration: real runs of
//!    the small reference package (width 128, 2 tasks, unified, CPU) on the local device, one
//!    after another.
//! 2. False alarms: replays the nights in order; from the 4th night on (3 back nights, the
//!    least that can alarm) each night is the latest against the nights before it, as
//!    `quadbench regressions` would see it that morning. Counts nights with at least one
//!    regression, and regressions per metric.
//! 3. Sensitivity: each replayed night from the 8th on, with its latencies (samples, medians
//!    and intervals) made slower by a factor, against the real nights before it; the share of
//!    nights where `latency_ms.e2e` is flagged, per factor.
//!
//! Both also "with confirmation", as `regressions --confirm` decides: a flagged night stands
//! only if a rerun in its place is flagged too; the rerun is the next recorded night (another
//! run of the same configuration; slowed by the same factor in part 3).
//!
//! `QB_BENCH_REPLICATES=3`: each night is 3 consecutive recorded runs (replicates), so
//! `QB_BENCH_NIGHTS` x 3 runs are recorded or replayed.
//!
//!     cargo build -p quadbench-runner      # (or --release, with cargo bench --release)
//!     cargo bench -p quadbench --bench regression_power

#[path = "../../../tests/common/history.rs"]
mod history;

use quadbench::report::nights::HistoryRun;
use quadbench::report::regress::{self, DetectOptions};
use quadbench::results::RunRecord;
use quadbench_schema::history::Change;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().find(|d| d.join("golden/inputs").is_dir()).unwrap().to_path_buf()
}

fn scenario(dir: &Path) -> PathBuf {
    let dev = dir.join("local.yaml");
    std::fs::write(&dev, format!("name: local\ntransport: local\nwork_dir: {}\n", dir.join("device").display()))
        .unwrap();
    history::history_scenario(dir, "hist.yaml", &dev, &repo().join("golden/inputs/astronaut.png"), 128, "")
}

fn record_nights(n: usize) -> Vec<HistoryRun> {
    let dir = tempfile::tempdir().unwrap();
    let sc = quadbench::config::Scenario::load(&scenario(dir.path())).unwrap();
    (0..n)
        .map(|i| {
            let opts = quadbench::scheduler::RunOptions {
                out: dir.path().join(format!("night-{i:02}")),
                device_override: None,
                package_cache: quadbench_runtime::cache_dir().join("packages"),
                resume: false,
            };
            let mut r =
                quadbench::scheduler::run_scenario(&sc, &opts, &mut quadbench::events::Quiet).expect("a night's run");
            let record = r.runs.pop().unwrap();
            eprintln!("night {i:02}: e2e median {:.3} ms", record.latency_ms["e2e"].p50);
            HistoryRun { night: format!("night-{i:02}"), started_at: record.started_at.clone(), record }
        })
        .collect()
}

/// The run with every latency (samples, summaries) `factor` times slower.
fn slowed(r: &HistoryRun, factor: f64) -> HistoryRun {
    let mut rec: RunRecord = r.record.clone();
    for v in rec.samples.values_mut() {
        v.iter_mut().for_each(|x| *x *= factor);
    }
    for s in rec.latency_ms.values_mut() {
        for x in [&mut s.mean, &mut s.std, &mut s.min, &mut s.p50, &mut s.p90, &mut s.p99, &mut s.max] {
            *x *= factor;
        }
        if let Some(ci) = s.p50_ci.as_mut() {
            ci.iter_mut().for_each(|x| *x *= factor);
        }
    }
    HistoryRun { record: rec, ..r.clone() }
}

/// A recorded night: label, start, record, samples.
type Saved = (String, String, RunRecord, BTreeMap<String, Vec<f64>>);

/// `QB_BENCH_REPLAY=FILE`: nights recorded once (JSON) and replayed, so that detector
/// settings can be compared on the same nights; recorded into FILE when it does not exist.
fn nights(n: usize) -> Vec<HistoryRun> {
    let Some(file) = std::env::var_os("QB_BENCH_REPLAY").map(PathBuf::from) else { return record_nights(n) };
    if let Ok(text) = std::fs::read_to_string(&file) {
        let saved: Vec<Saved> = serde_json::from_str(&text).unwrap();
        eprintln!("replaying {} nights from {}", saved.len(), file.display());
        return saved
            .into_iter()
            .map(|(night, started_at, mut record, samples)| {
                record.samples = samples;
                HistoryRun { night, started_at, record }
            })
            .collect();
    }
    let runs = record_nights(n);
    let saved: Vec<_> = runs.iter().map(|r| (&r.night, &r.started_at, &r.record, &r.record.samples)).collect();
    std::fs::write(&file, serde_json::to_string(&saved).unwrap()).unwrap();
    runs
}

/// A night: its runs (one, or `QB_BENCH_REPLICATES` consecutive recorded runs).
type Night = Vec<HistoryRun>;

fn flat(nights: &[Night]) -> Vec<HistoryRun> {
    nights.iter().flatten().cloned().collect()
}

/// Every run of `night` slowed by `factor`.
fn slowed_night(night: &Night, factor: f64) -> Night {
    night.iter().map(|r| slowed(r, factor)).collect()
}

/// `rerun`'s runs in `night`'s place (its label and start).
fn in_place_of(night: &Night, rerun: &Night) -> Night {
    rerun
        .iter()
        .map(|r| HistoryRun { night: night[0].night.clone(), started_at: night[0].started_at.clone(), ..r.clone() })
        .collect()
}

/// The regressions of `latest` after `back` (those of `metrics`, when given), decided on a
/// rerun as `regressions --confirm` decides (`regress::confirm`) when `rerun` is given.
fn flagged(
    back: &[Night],
    latest: &Night,
    rerun: Option<&Night>,
    metrics: Option<&[&str]>,
    opts: &DetectOptions,
) -> Vec<String> {
    let mut runs = flat(back);
    runs.extend(latest.iter().cloned());
    let (_, mut f) = regress::analyse(&runs, opts);
    if let Some(rerun) = rerun {
        regress::confirm(&runs, &latest[0].night, &in_place_of(latest, rerun), "rerun", &mut f, opts);
    }
    f.into_iter()
        .filter(|x| x.change == Change::Regression && x.confirmed != Some(false))
        .filter(|x| metrics.is_none_or(|m| m.contains(&x.metric.as_str())))
        .map(|x| x.metric)
        .collect()
}

fn main() {
    let r: usize = std::env::var("QB_BENCH_REPLICATES").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let n: usize = std::env::var("QB_BENCH_NIGHTS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let runs = nights(n * r);
    // Consecutive recorded runs become one night's replicates.
    let nights: Vec<Night> = runs
        .chunks(r)
        .filter(|c| c.len() == r)
        .map(|c| {
            c.iter()
                .map(|x| HistoryRun { night: c[0].night.clone(), started_at: c[0].started_at.clone(), ..x.clone() })
                .collect()
        })
        .collect();
    let n = nights.len();
    let opts = DetectOptions::default();
    println!("{n} nights of {r} run(s) each");

    let first = regress::MIN_BACK_NIGHTS;
    let mut alarmed_nights = 0;
    let mut per_metric: BTreeMap<String, usize> = BTreeMap::new();
    let mut confirmed_nights = 0;
    for k in first..n {
        let reg = flagged(&nights[..k], &nights[k], None, None, &opts);
        if !reg.is_empty() {
            alarmed_nights += 1;
            if !flagged(&nights[..k], &nights[k], Some(&nights[(k + 1) % n]), None, &opts).is_empty() {
                confirmed_nights += 1;
            }
        }
        for m in reg {
            eprintln!("  alarm on {}: {m}", nights[k][0].night);
            *per_metric.entry(m).or_default() += 1;
        }
    }
    let evaluated = n - first;
    let metrics = regress::analyse(&flat(&nights), &opts).1.len();
    println!(
        "false alarms: {alarmed_nights} of {evaluated} unchanged nights raised a regression ({metrics} metrics each)"
    );
    println!("  regressions per metric: {per_metric:?}");
    println!("  with confirmation (the next night as the rerun): {confirmed_nights} of {evaluated} nights");

    println!("sensitivity (latency_ms.e2e flagged as a regression, nights 8..{n} slowed by a factor):");
    let from = 7.min(n - 1);
    let e2e: &[&str] = &["latency_ms.e2e"];
    for pct in [5, 10, 15, 20, 30, 50, 100] {
        let factor = 1.0 + pct as f64 / 100.0;
        let (mut caught, mut confirmed) = (0, 0);
        for k in from..n {
            let latest = slowed_night(&nights[k], factor);
            if flagged(&nights[..k], &latest, None, Some(e2e), &opts).is_empty() {
                continue;
            }
            caught += 1;
            let rerun = slowed_night(&nights[(k + 1) % n], factor);
            if !flagged(&nights[..k], &latest, Some(&rerun), Some(e2e), &opts).is_empty() {
                confirmed += 1;
            }
        }
        let total = n - from;
        let pc = |x: usize| 100.0 * x as f64 / total as f64;
        println!(
            "  +{pct:>3}%: {caught:>2} of {total} ({:.0}%); with confirmation {confirmed:>2} ({:.0}%)",
            pc(caught),
            pc(confirmed)
        );
    }
}
