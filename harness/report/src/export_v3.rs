//! The history as PyTorch OSS benchmark "v3" records, the JSON that the PyTorch HUD and the
//! ExecuTorch dashboards ingest (the `benchmark.oss_ci_benchmark_v3` table), so a farm can feed
//! an existing dashboard: one record per series, night and metric.
//!
//! The format, as found in public sources:
//! - pytorch/pytorch wiki, "PyTorch OSS benchmark infra", "Benchmark results format": a list of
//!   records `{benchmark: {name (required), mode, dtype, extra_info}, model: {name (required),
//!   type, backend, ...}, metric: {name (required), benchmark_values (required, floats),
//!   target_value, extra_info}, runners: [{name, type, ...}]}`, every other field optional;
//! - pytorch/executorch `.github/scripts/extract_benchmark_results.py` (`transform`): the
//!   on-device records, `benchmark {name: "ExecuTorch", mode: "inference", extra_info}` with
//!   string values, `model {name, type, backend}`, `metric {name, benchmark_values: [value],
//!   target_value: 0, extra_info}`, `runners [{name, type, avail_mem_in_gb, total_mem_in_gb}]`;
//! - pytorch/test-infra `.github/scripts/benchmark-results-dir-for-testing/v3/*.json`: the
//!   uploader's test records of that shape.
//!
//! Mapping: `benchmark.name` is `quadbench`, `mode` `inference`, `dtype` the precision;
//! `model.name` the scenario and `model.backend` the backend, both from the series key
//! (`<scenario>/<device>/<backend>/<precision>/<strategy>`); `metric.name` quadbench's metric key
//! with the night's value as the one benchmark value and `target_value` 0 (none, as ExecuTorch
//! writes it); `runners` the device. Everything else (strategy, night, package, revision, the
//! interval) is in the `extra_info` maps, as strings, the type those maps have in ExecuTorch's
//! records. The repository, commit and workflow fields are added by the uploader, not here.

use quadbench_schema::history::{NightPoint, RegressionReport, Trend};
use serde_json::{Map, Value, json};

/// `benchmark.name` of every record.
pub const BENCHMARK_NAME: &str = "quadbench";

/// The five parts of a series key: scenario, device, backend, precision, strategy.
pub fn key_parts(key: &str) -> Option<[&str; 5]> {
    let parts: Vec<&str> = key.split('/').collect();
    <[&str; 5]>::try_from(parts).ok()
}

/// Every night's value of every trend as a v3 record, in the report's trend order, oldest night
/// first; points without a finite value are left out.
pub fn export_v3(r: &RegressionReport) -> Value {
    let records = r.trends.iter().flat_map(|t| t.points.iter().filter(|p| p.value.is_finite()).map(move |p| (t, p)));
    Value::Array(records.map(|(t, p)| record(r, t, p)).collect())
}

fn strings(pairs: &[(&str, String)]) -> Value {
    Value::Object(pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), json!(v))).collect())
}

fn record(r: &RegressionReport, t: &Trend, p: &NightPoint) -> Value {
    let [scenario, device, backend, precision, strategy] = key_parts(&t.key).unwrap_or([&t.key, "", "", "", ""]);
    let host = r.devices.iter().find(|d| d.name == device).map(|d| d.host.clone()).unwrap_or_default();
    let benchmark_info = strings(&[
        ("key", t.key.clone()),
        ("scenario", scenario.into()),
        ("device", device.into()),
        ("backend", backend.into()),
        ("precision", precision.into()),
        ("strategy", strategy.into()),
        ("night", p.night.clone()),
        ("started_at", p.started_at.clone()),
        ("package_sha256", p.package_sha256.clone()),
        ("git_revision", p.git_revision.clone()),
        ("ort_version", p.ort_version.clone()),
    ]);
    let (lo, hi) = p.ci.map_or((String::new(), String::new()), |[l, h]| (l.to_string(), h.to_string()));
    let metric_info = strings(&[
        ("unit", t.unit.clone()),
        ("lower_is_better", t.lower_is_better.to_string()),
        ("runs", p.runs.to_string()),
        ("ci_low", lo),
        ("ci_high", hi),
    ]);
    let mut runner = Map::new();
    runner.insert("name".into(), json!(device));
    if !host.is_empty() {
        runner.insert("extra_info".into(), json!({ "host": host }));
    }
    json!({
        "benchmark": {
            "name": BENCHMARK_NAME,
            "mode": "inference",
            "dtype": precision,
            "extra_info": benchmark_info,
        },
        "model": {
            "name": scenario,
            "type": "quadbench scenario",
            "backend": backend,
        },
        "metric": {
            "name": t.metric,
            "benchmark_values": [p.value],
            "target_value": 0,
            "extra_info": metric_info,
        },
        "runners": [Value::Object(runner)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_series_night_and_metric() {
        let r = crate::history_demo();
        let v = export_v3(&r);
        let recs = v.as_array().unwrap();
        assert_eq!(recs.len(), r.trends.iter().map(|t| t.points.len()).sum::<usize>());
        for rec in recs {
            for (part, field) in [("benchmark", "name"), ("model", "name"), ("metric", "name")] {
                assert!(rec[part][field].is_string(), "{part}.{field} is required");
            }
            assert_eq!(rec["metric"]["benchmark_values"].as_array().unwrap().len(), 1);
            for part in ["benchmark", "metric"] {
                assert!(rec[part]["extra_info"].as_object().unwrap().values().all(Value::is_string));
            }
        }
        let expected = json!({
            "benchmark": {
                "name": "quadbench",
                "mode": "inference",
                "dtype": "int8",
                "extra_info": {
                    "key": "sd-turbo-4task/pixel-8/qnn-htp/int8/unified",
                    "scenario": "sd-turbo-4task",
                    "device": "pixel-8",
                    "backend": "qnn-htp",
                    "precision": "int8",
                    "strategy": "unified",
                    "night": "nightly-0603",
                    "started_at": "2025-06-03T02:00:14Z",
                    "package_sha256": "7b04d5e1c2a3948576f1e2d3c4b5a6978877665544332211ffeeddccbbaa9988",
                    "git_revision": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
                    "ort_version": "1.22.0"
                }
            },
            "model": {"name": "sd-turbo-4task", "type": "quadbench scenario", "backend": "qnn-htp"},
            "metric": {
                "name": "latency_ms.e2e",
                "benchmark_values": [538.2],
                "target_value": 0,
                "extra_info": {"unit": "ms", "lower_is_better": "true", "runs": "3", "ci_low": "521", "ci_high": "556.3"}
            },
            "runners": [{"name": "pixel-8", "extra_info": {"host": "farm-host-a"}}]
        });
        assert_eq!(recs[2], expected);
        // A point without an interval has no ci_* entries.
        assert!(recs[9]["metric"]["extra_info"].get("ci_low").is_none());
    }

    #[test]
    fn matches_the_snapshot() {
        let text = serde_json::to_string_pretty(&export_v3(&crate::history_demo())).unwrap() + "\n";
        crate::check_snapshot("export_v3.json", text.as_bytes());
    }

    #[test]
    fn keys_split_into_five_parts() {
        assert_eq!(key_parts("s/d/cpu/fp32/unified"), Some(["s", "d", "cpu", "fp32", "unified"]));
        assert_eq!(key_parts("s/d/cpu"), None);
    }
}
