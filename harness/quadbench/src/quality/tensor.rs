//! Quality of a tensor output against a golden tensor: max abs error, RMSE, PSNR over the whole
//! tensor with a stated data range (`10 log10(range^2 / MSE)`), cosine similarity. For outputs
//! that are not images (latents, features) and for checking an import against the framework.
//! [`TENSOR_METRICS`] is the one list of their threshold keys (`tensor_rmse <= 0.01`).

pub use crate::results::TensorScores;

use super::{QualityConfig, Threshold, ThresholdMetric, golden};
use crate::package::Manifest;
use crate::package::manifest::RawManifest;
use crate::results::{RunRecord, TaskQuality, TensorMean};
use crate::yaml::YamlError;
use std::collections::BTreeMap;
use std::path::Path;

/// Compare `got` with `golden`; shapes must be equal (leading 1s aside), values finite.
pub fn compare(
    golden: &[f32],
    golden_shape: &[usize],
    got: &[f32],
    got_shape: &[usize],
    data_range: f64,
) -> Result<TensorScores, String> {
    let squeeze = |s: &[usize]| s.iter().copied().skip_while(|&d| d == 1).collect::<Vec<_>>();
    if squeeze(golden_shape) != squeeze(got_shape) || golden.len() != got.len() {
        return Err(format!("shape {got_shape:?} does not match the golden's {golden_shape:?}"));
    }
    if golden.is_empty() {
        return Err("empty tensors".into());
    }
    if golden.iter().chain(got).any(|v| !v.is_finite()) {
        return Err("a tensor holds NaN or infinite values".into());
    }
    if !(data_range > 0.0 && data_range.is_finite()) {
        return Err(format!("data range {data_range} must be positive"));
    }
    let (mut max, mut se, mut dot, mut ng, mut nt) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&g, &t) in golden.iter().zip(got) {
        let (g, t) = (g as f64, t as f64);
        max = max.max((g - t).abs());
        se += (g - t) * (g - t);
        dot += g * t;
        ng += g * g;
        nt += t * t;
    }
    let mse = se / golden.len() as f64;
    Ok(TensorScores {
        elements: golden.len(),
        max_abs_error: max,
        rmse: mse.sqrt(),
        psnr_db: (mse > 0.0).then(|| 10.0 * (data_range * data_range / mse).log10()),
        data_range,
        // Rounding can put equal tensors' cosine a hair above 1.
        cosine: (ng > 0.0 && nt > 0.0).then(|| (dot / (ng.sqrt() * nt.sqrt())).clamp(-1.0, 1.0)),
    })
}

/// A tensor-quality metric a scenario threshold can name: one row each in [`TENSOR_METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorMetric {
    MaxAbs,
    Rmse,
    PsnrDb,
    Cosine,
}

/// Key (in scenarios' `quality: thresholds:`) and how to read it from [`TensorScores`].
pub struct TensorMetricInfo {
    pub metric: TensorMetric,
    pub key: &'static str,
    pub extract: fn(&TensorScores) -> Option<f64>,
}

/// Every tensor-quality metric.
pub const TENSOR_METRICS: &[TensorMetricInfo] = &[
    TensorMetricInfo { metric: TensorMetric::MaxAbs, key: "tensor_max_abs", extract: |s| Some(s.max_abs_error) },
    TensorMetricInfo { metric: TensorMetric::Rmse, key: "tensor_rmse", extract: |s| Some(s.rmse) },
    TensorMetricInfo {
        metric: TensorMetric::PsnrDb,
        key: "tensor_psnr_db",
        // Identical tensors have no finite PSNR; they pass any PSNR floor.
        extract: |s| Some(s.psnr_db.unwrap_or(f64::INFINITY)),
    },
    // All-zero tensors have no cosine: such a threshold cannot be checked (a failed check).
    TensorMetricInfo { metric: TensorMetric::Cosine, key: "tensor_cosine", extract: |s| s.cosine },
];

impl TensorMetric {
    pub fn info(self) -> &'static TensorMetricInfo {
        TENSOR_METRICS.iter().find(|m| m.metric == self).expect("every tensor metric has a row")
    }

    pub fn parse(key: &str) -> Option<TensorMetric> {
        TENSOR_METRICS.iter().find(|m| m.key == key).map(|m| m.metric)
    }

    pub fn keys() -> Vec<&'static str> {
        TENSOR_METRICS.iter().map(|m| m.key).collect()
    }

    pub fn of(self, s: &TensorScores) -> Option<f64> {
        (self.info().extract)(s)
    }
}

/// Read a `.npy` tensor (output or golden) as f32 with its shape.
fn read(path: &Path) -> Result<(Vec<usize>, Vec<f32>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let a = crate::npy::parse_typed(&bytes, path).map_err(|e| e.to_string())?;
    Ok((a.shape.clone(), a.to_f64().into_iter().map(|v| v as f32).collect()))
}

/// Score one tensor output file against its golden file: the PSNR over `range` (hi - lo) when
/// the package declares one, else over the golden's max - min.
pub fn score_files(golden: &Path, output: &Path, range: Option<[f32; 2]>) -> Result<TensorScores, String> {
    let (gs, g) = read(golden)?;
    let (os, o) = read(output)?;
    let data_range = match range {
        Some([lo, hi]) => hi as f64 - lo as f64,
        None => {
            let (lo, hi) = g.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
            // A NaN golden is refused by `compare` below, with its own message.
            if hi <= lo && g.iter().all(|v| v.is_finite()) {
                return Err(format!(
                    "golden tensor {} is constant, so it gives no data range for PSNR; declare `range: [lo, hi]` on the output in package.yaml",
                    golden.display()
                ));
            }
            hi as f64 - lo as f64
        }
    };
    compare(&g, &gs, &o, &os, data_range)
}

/// Mean of a tensor output's scores over inputs.
pub fn mean<'a>(all: impl IntoIterator<Item = &'a TensorScores> + Clone) -> TensorMean {
    let m = |f: fn(&TensorScores) -> Option<f64>| super::mean(all.clone().into_iter().map(f));
    TensorMean {
        max_abs_error: m(|s| Some(s.max_abs_error)),
        rmse: m(|s| Some(s.rmse)),
        psnr_db: m(|s| s.psnr_db),
        cosine: m(|s| s.cosine),
        identical: all.clone().into_iter().next().is_some() && all.into_iter().all(|s| s.max_abs_error == 0.0),
    }
}

/// Fill each task's `tensors` from the run's tensor outputs under `out` (scores per input, the
/// mean, missing goldens), and its verdicts on the scenario's tensor thresholds: every input
/// must pass, each tensor output on its own (`"<stage>.<output>: tensor_rmse <= 0.01"`).
pub fn score_run(rec: &RunRecord, out: &Path, cfg: &QualityConfig, per_task: &mut BTreeMap<String, TaskQuality>) {
    let index = golden::tensor_index(&cfg.golden_root, &cfg.package_name);
    for o in &rec.tensor_outputs {
        let tq = per_task.entry(o.task.clone()).or_default();
        let range = cfg.tensor_ranges.get(&o.output).copied();
        let q = tq.tensors.entry(o.output.clone()).or_default();
        q.data_range_from = if range.is_some() { RANGE_FROM_PACKAGE } else { RANGE_FROM_GOLDEN }.into();
        let Some(g) = index.get(&(o.task.clone(), o.input.clone(), o.output.clone())) else {
            q.missing_golden.push(o.input.clone());
            continue;
        };
        match score_files(g, &out.join(&o.path), range) {
            Ok(s) => {
                q.inputs.insert(o.input.clone(), s);
            }
            // A broken output is a failed score, as a broken image is.
            Err(e) => {
                tq.thresholds.insert(format!("scorable ({} {}: {e})", o.output, o.input), false);
            }
        }
    }
    let tensor_thresholds: Vec<&Threshold> =
        cfg.thresholds.iter().filter(|t| matches!(t.metric, ThresholdMetric::Tensor(_))).collect();
    for tq in per_task.values_mut() {
        for (output, q) in tq.tensors.iter_mut() {
            if q.inputs.is_empty() {
                continue;
            }
            q.mean = mean(q.inputs.values());
            for t in &tensor_thresholds {
                // A metric an input lacks (the cosine of an all-zero tensor) cannot pass.
                let ok = q.inputs.values().all(|s| t.check_tensor(s) == Some(true));
                tq.thresholds.insert(format!("{output}: {}", t.label()), ok);
            }
        }
    }
}

/// The `range:` each of the package's tensor outputs declares (`stage.output` -> `[lo, hi]`).
pub fn declared_ranges(raw: &RawManifest) -> BTreeMap<String, [f32; 2]> {
    raw.tensor_outputs
        .iter()
        .filter_map(|t| {
            let (stage, output) = t.split_once('.')?;
            let st = raw.stages.iter().find(|s| s.name == stage)?;
            Some((t.clone(), st.outputs.iter().find(|o| o.name == output)?.range?))
        })
        .collect()
}

/// A scenario threshold on a tensor metric needs tensor outputs to check: with a package that
/// declares none it would check nothing and pass, so it is refused (at its key in the scenario).
pub fn check_thresholds(sc_path: &Path, thresholds: &[Threshold], m: &Manifest) -> Result<(), YamlError> {
    let Some(t) = thresholds.iter().find(|t| matches!(t.metric, ThresholdMetric::Tensor(_))) else { return Ok(()) };
    if !m.pipeline.tensor_outputs.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(sc_path).unwrap_or_default();
    Err(YamlError::at(
        sc_path,
        &text,
        &format!("{}:", t.metric.key()),
        format!(
            "threshold `{}` has nothing to check: package `{}` declares no `tensor_outputs`",
            t.label(),
            m.raw.name
        ),
        "add `tensor_outputs: [<stage>.<output>]` to its package.yaml, or remove the threshold",
    ))
}

/// `TensorQuality::data_range_from` when the output declares `range:`.
pub const RANGE_FROM_PACKAGE: &str = "package range";
/// `TensorQuality::data_range_from` otherwise.
pub const RANGE_FROM_GOLDEN: &str = "golden max - min";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        let s = compare(&[0.0, 1.0, 0.5, 0.5], &[1, 4], &[0.0, 1.0, 0.6, 0.3], &[4], 1.0).unwrap();
        assert_eq!(s.elements, 4);
        assert!((s.max_abs_error - 0.2).abs() < 1e-6);
        // MSE = (0.01 + 0.04) / 4 = 0.0125
        assert!((s.rmse - 0.0125f64.sqrt()).abs() < 1e-6);
        assert!((s.psnr_db.unwrap() - 10.0 * (1.0 / 0.0125f64).log10()).abs() < 1e-4);
        let same = compare(&[1.0, 2.0], &[2], &[1.0, 2.0], &[2], 2.0).unwrap();
        assert_eq!((same.psnr_db, same.max_abs_error), (None, 0.0));
        assert!((same.cosine.unwrap() - 1.0).abs() < 1e-12);
        let opposite = compare(&[1.0, 0.0], &[2], &[-1.0, 0.0], &[2], 1.0).unwrap();
        assert!((opposite.cosine.unwrap() + 1.0).abs() < 1e-12);
        assert!(compare(&[1.0, 2.0], &[2], &[1.0, 2.0, 3.0], &[3], 1.0).is_err());
        assert!(compare(&[f32::NAN], &[1], &[1.0], &[1], 1.0).is_err());
    }

    #[test]
    fn tensor_thresholds_parse_from_the_table_and_check_every_metric() {
        use crate::quality::{Threshold, ThresholdMetric};
        for m in TENSOR_METRICS {
            let t = Threshold::parse(m.key, "<= 1").unwrap();
            assert_eq!(t.metric, ThresholdMetric::Tensor(m.metric));
        }
        assert!(ThresholdMetric::keys().contains(&"psnr_db") && ThresholdMetric::keys().contains(&"tensor_cosine"));
        assert!(Threshold::parse("tensor_rmsee", "<= 1").unwrap_err().contains("tensor_rmse"));
        let s = compare(&[0.0, 1.0], &[2], &[0.0, 0.5], &[2], 1.0).unwrap();
        let check = |key: &str, expr: &str| Threshold::parse(key, expr).unwrap().check_tensor(&s);
        assert_eq!(check("tensor_max_abs", "<= 0.5"), Some(true));
        assert_eq!(check("tensor_max_abs", "< 0.5"), Some(false));
        assert_eq!(check("tensor_rmse", "<= 0.36"), Some(true)); // sqrt(0.125) = 0.354
        assert_eq!(check("tensor_psnr_db", ">= 9"), Some(true)); // 10 log10(8) = 9.03
        assert_eq!(check("tensor_cosine", ">= 0.99"), Some(true));
        // An image threshold says nothing about tensors, nor a tensor one about images.
        assert_eq!(check("psnr_db", ">= 1"), None);
        assert_eq!(Threshold::parse("tensor_rmse", "<= 1").unwrap().check(&Default::default()), None);
        // Identical tensors pass any PSNR floor; an all-zero tensor has no cosine to pass with.
        let same = compare(&[1.0], &[1], &[1.0], &[1], 1.0).unwrap();
        assert_eq!(Threshold::parse("tensor_psnr_db", ">= 500").unwrap().check_tensor(&same), Some(true));
        let zero = compare(&[0.0], &[1], &[0.0], &[1], 1.0).unwrap();
        assert_eq!(Threshold::parse("tensor_cosine", ">= 0").unwrap().check_tensor(&zero), None);
    }

    #[test]
    fn files_are_scored_over_the_declared_or_the_golden_range() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, v: &[f32]| {
            let p = d.path().join(name);
            std::fs::write(&p, quadbench_protocol::npy::NpyArray::from_f32(vec![1, v.len()], v).to_bytes()).unwrap();
            p
        };
        let (g, o) = (write("g.npy", &[-1.0, 1.0, 0.0, 0.0]), write("o.npy", &[-1.0, 1.0, 0.0, 0.5]));
        let by_golden = score_files(&g, &o, None).unwrap();
        assert_eq!((by_golden.data_range, by_golden.max_abs_error), (2.0, 0.5));
        let declared = score_files(&g, &o, Some([0.0, 4.0])).unwrap();
        assert_eq!(declared.data_range, 4.0);
        // Twice the range: 20 log10(2) = 6.02 dB more.
        assert!((declared.psnr_db.unwrap() - by_golden.psnr_db.unwrap() - 20.0 * 2f64.log10()).abs() < 1e-9);
        let flat = write("flat.npy", &[0.5; 4]);
        assert!(score_files(&flat, &o, None).unwrap_err().contains("declare `range: [lo, hi]`"));
        let short = write("short.npy", &[0.0; 3]);
        assert!(score_files(&g, &short, None).unwrap_err().contains("does not match"));
        let m = mean([&by_golden, &compare(&[1.0], &[1], &[1.0], &[1], 1.0).unwrap()]);
        assert_eq!((m.max_abs_error, m.identical, m.psnr_db), (Some(0.25), false, by_golden.psnr_db));
    }
}
