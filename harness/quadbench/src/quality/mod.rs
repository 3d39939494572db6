//! Scoring a run's output images against goldens: PSNR, SSIM, MS-SSIM and the perceptual proxy
//! per task and input, means per task, scenario thresholds (on image metrics and, through
//! [`ThresholdMetric`], tensor metrics), and an image grid per task (input | golden | output |
//! error heatmap) for reports. Goldens themselves: [`golden`]; tensor outputs against golden
//! tensors: [`tensor`].

pub mod golden;
pub mod tensor;

use crate::results::{RunRecord, Scores, TaskQuality, TensorScores};
use quadbench_metrics::{CompareOptions, Metric};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensor::TensorMetric;

/// An image-quality metric of [`Scores`]: one row each in [`QUALITY_METRICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityMetric {
    PsnrDb,
    Ssim,
    MsSsim,
    LpipsProxy,
    Lpips,
}

/// Key (as in results.json and scenarios) and how to read it from [`Scores`].
pub struct QualityMetricInfo {
    pub metric: QualityMetric,
    pub key: &'static str,
    pub extract: fn(&Scores) -> Option<f64>,
}

/// Every image-quality metric.
pub const QUALITY_METRICS: &[QualityMetricInfo] = &[
    QualityMetricInfo {
        metric: QualityMetric::PsnrDb,
        key: "psnr_db",
        // Identical images have no finite PSNR; they pass any PSNR floor.
        extract: |s| if s.identical { Some(f64::INFINITY) } else { s.psnr_db },
    },
    QualityMetricInfo { metric: QualityMetric::Ssim, key: "ssim", extract: |s| s.ssim },
    QualityMetricInfo { metric: QualityMetric::MsSsim, key: "ms_ssim", extract: |s| s.ms_ssim },
    QualityMetricInfo { metric: QualityMetric::LpipsProxy, key: "lpips_proxy", extract: |s| s.lpips_proxy },
    QualityMetricInfo { metric: QualityMetric::Lpips, key: "lpips", extract: |s| s.lpips },
];

impl QualityMetric {
    pub fn info(self) -> &'static QualityMetricInfo {
        QUALITY_METRICS.iter().find(|m| m.metric == self).expect("every quality metric has a row")
    }

    pub fn parse(key: &str) -> Option<QualityMetric> {
        QUALITY_METRICS.iter().find(|m| m.key == key).map(|m| m.metric)
    }

    pub fn keys() -> Vec<&'static str> {
        QUALITY_METRICS.iter().map(|m| m.key).collect()
    }

    pub fn of(self, s: &Scores) -> Option<f64> {
        (self.info().extract)(s)
    }
}

/// A comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
}

impl Op {
    /// Longest first, so `>=` is not read as `>`.
    const ALL: [(Op, &'static str); 4] = [(Op::Ge, ">="), (Op::Le, "<="), (Op::Gt, ">"), (Op::Lt, "<")];

    pub fn as_str(self) -> &'static str {
        Op::ALL.iter().find(|(o, _)| *o == self).map(|(_, s)| *s).expect("every operator has a spelling")
    }

    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Op::Ge => v >= threshold,
            Op::Gt => v > threshold,
            Op::Le => v <= threshold,
            Op::Lt => v < threshold,
        }
    }
}

/// What a threshold is on: an image metric of [`Scores`], or a tensor metric of each tensor
/// output ([`tensor::TENSOR_METRICS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMetric {
    Image(QualityMetric),
    Tensor(TensorMetric),
}

impl ThresholdMetric {
    pub fn parse(key: &str) -> Option<ThresholdMetric> {
        QualityMetric::parse(key)
            .map(ThresholdMetric::Image)
            .or_else(|| TensorMetric::parse(key).map(ThresholdMetric::Tensor))
    }

    pub fn key(self) -> &'static str {
        match self {
            ThresholdMetric::Image(m) => m.info().key,
            ThresholdMetric::Tensor(m) => m.info().key,
        }
    }

    /// Every key a scenario threshold may name (image metrics, then tensor metrics).
    pub fn keys() -> Vec<&'static str> {
        QualityMetric::keys().into_iter().chain(TensorMetric::keys()).collect()
    }
}

/// A threshold like `psnr_db >= 30` or `tensor_rmse <= 0.01`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: ThresholdMetric,
    pub op: Op,
    pub value: f64,
}

impl Threshold {
    /// Parse `metric` and an expression such as `">= 30"`.
    pub fn parse(metric: &str, expr: &str) -> Result<Threshold, String> {
        let m = ThresholdMetric::parse(metric).ok_or_else(|| {
            format!("unknown quality metric `{metric}`; one of {}", ThresholdMetric::keys().join(", "))
        })?;
        let e = expr.trim();
        let (op, spelled) = Op::ALL
            .into_iter()
            .find(|(_, s)| e.starts_with(s))
            .ok_or_else(|| format!("threshold `{expr}` must start with >=, >, <= or <, e.g. \">= 30\""))?;
        let rest = e[spelled.len()..].trim();
        let value = rest
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("threshold `{expr}`: `{rest}` is not a finite number"))?;
        Ok(Threshold { metric: m, op, value })
    }

    pub fn label(&self) -> String {
        format!("{} {} {}", self.metric.key(), self.op.as_str(), self.value)
    }

    /// Whether `s` passes (`None` when `s` lacks the metric, or this is a tensor threshold).
    pub fn check(&self, s: &Scores) -> Option<bool> {
        let ThresholdMetric::Image(m) = self.metric else { return None };
        Some(self.op.holds(m.of(s)?, self.value))
    }

    /// Whether tensor scores `s` pass (`None` when `s` lacks the metric, or this is an image
    /// threshold).
    pub fn check_tensor(&self, s: &TensorScores) -> Option<bool> {
        let ThresholdMetric::Tensor(m) = self.metric else { return None };
        Some(self.op.holds(m.of(s)?, self.value))
    }
}

/// Where goldens are and what must hold.
#[derive(Debug, Clone)]
pub struct QualityConfig {
    pub golden_root: PathBuf,
    pub package_name: String,
    pub thresholds: Vec<Threshold>,
    /// The `range:` a tensor output declares in package.yaml (`stage.output` -> `[lo, hi]`):
    /// the data range of its PSNR; without one, each golden's max - min.
    pub tensor_ranges: BTreeMap<String, [f32; 2]>,
}

/// Mean of the finite values present (`None` when there are none).
pub fn mean(v: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let xs: Vec<f64> = v.into_iter().flatten().filter(|x| x.is_finite()).collect();
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Score one output against its golden.
pub fn score(golden: &Path, output: &Path) -> Result<Scores, String> {
    let pair = quadbench_metrics::load_pair(golden, output, false).map_err(|e| e.to_string())?;
    let mut metrics = vec![Metric::Psnr, Metric::Ssim, Metric::LpipsProxy];
    if pair.reference.width.min(pair.reference.height) >= quadbench_metrics::MS_SSIM_MIN_SIDE_PX {
        metrics.push(Metric::MsSsim);
    }
    let c = quadbench_metrics::compare_pair(&pair, &CompareOptions { metrics, ..Default::default() })
        .map_err(|e| e.to_string())?;
    Ok(Scores {
        psnr_db: c.psnr_db.filter(|p| p.is_finite()),
        identical: c.identical,
        ssim: c.ssim,
        ms_ssim: c.ms_ssim,
        lpips_proxy: c.lpips_proxy,
        lpips: c.lpips,
    })
}

/// Fill `rec.quality` from its outputs under `out`; write grids under `out/grids/<run>/`.
pub fn score_run(rec: &mut RunRecord, out: &Path, cfg: &QualityConfig) {
    let index = golden::index(&cfg.golden_root, &cfg.package_name);
    let mut per_task: BTreeMap<String, TaskQuality> = BTreeMap::new();
    for o in &rec.outputs {
        let tq = per_task.entry(o.task.clone()).or_default();
        let Some(golden) = index.get(&(o.task.clone(), o.input.clone())) else {
            tq.missing_golden.push(o.input.clone());
            continue;
        };
        match score(golden, &out.join(&o.path)) {
            Ok(s) => {
                tq.inputs.insert(o.input.clone(), s);
            }
            Err(e) => {
                // A broken output is a failed score, recorded as a failing threshold below.
                tq.thresholds.insert(format!("scorable ({}: {e})", o.input), false);
            }
        }
    }
    for (task, tq) in per_task.iter_mut() {
        let all: Vec<&Scores> = tq.inputs.values().collect();
        if !all.is_empty() {
            tq.mean = Scores {
                psnr_db: mean(all.iter().map(|s| s.psnr_db)),
                identical: all.iter().all(|s| s.identical),
                ssim: mean(all.iter().map(|s| s.ssim)),
                ms_ssim: mean(all.iter().map(|s| s.ms_ssim)),
                lpips_proxy: mean(all.iter().map(|s| s.lpips_proxy)),
                lpips: mean(all.iter().map(|s| s.lpips)),
            };
            for t in cfg.thresholds.iter().filter(|t| matches!(t.metric, ThresholdMetric::Image(_))) {
                // Every input must pass, not only the mean.
                let verdicts: Vec<Option<bool>> = tq.inputs.values().map(|s| t.check(s)).collect();
                if verdicts.iter().all(|v| v.is_some()) {
                    tq.thresholds.insert(t.label(), verdicts.iter().all(|v| *v == Some(true)));
                }
            }
        }
        let _ = write_grid(rec, out, task, &index);
    }
    tensor::score_run(rec, out, cfg, &mut per_task);
    for tq in per_task.values_mut() {
        tq.pass = (!tq.thresholds.is_empty()).then(|| tq.thresholds.values().all(|v| *v));
    }
    rec.quality = per_task;
}

/// input | golden | output | heatmap, one row per input of `task`.
fn write_grid(
    rec: &RunRecord,
    out: &Path,
    task: &str,
    goldens: &BTreeMap<(String, String), PathBuf>,
) -> Result<(), String> {
    let limits = quadbench_metrics::ImageLimits::from_env().map_err(|e| e.to_string())?;
    let rows: Vec<_> = rec.outputs.iter().filter(|o| o.task == task).collect();
    let mut tiles: Vec<Vec<image::RgbImage>> = Vec::new();
    for o in rows {
        // Outputs come from the device: decoded under the same limits as every other image.
        let open = |p: &Path| quadbench_metrics::open_image(p, &limits).map_err(|e| e.to_string());
        let output = open(&out.join(&o.path))?.to_rgb8();
        let (w, h) = output.dimensions();
        let blank = || image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
        let input =
            open(&out.join("inputs").join(format!("{}.png", o.input))).map(|i| i.to_rgb8()).unwrap_or_else(|_| blank());
        let golden_path = goldens.get(&(o.task.clone(), o.input.clone())).cloned();
        let golden = golden_path.as_ref().and_then(|p| open(p).ok()).map(|i| i.to_rgb8()).unwrap_or_else(blank);
        let heat = golden_path
            .and_then(|g| quadbench_metrics::load_pair(&g, &out.join(&o.path), false).ok())
            .and_then(|p| quadbench_metrics::diff_heatmap(&p.reference, &p.test).ok())
            .unwrap_or_else(blank);
        tiles.push(vec![input, golden, output, heat]);
    }
    let Some(first) = tiles.first().map(|r| r[0].dimensions()) else { return Ok(()) };
    let (w, h) = first;
    let gap = 4;
    let mut grid =
        image::RgbImage::from_pixel(4 * w + 3 * gap, tiles.len() as u32 * (h + gap) - gap, image::Rgb([255, 255, 255]));
    for (r, row) in tiles.iter().enumerate() {
        for (c, t) in row.iter().enumerate() {
            if t.dimensions() == (w, h) {
                image::imageops::replace(&mut grid, t, (c as u32 * (w + gap)) as i64, (r as u32 * (h + gap)) as i64);
            }
        }
    }
    let p = out.join("grids").join(&rec.id).join(format!("{task}.png"));
    std::fs::create_dir_all(p.parent().unwrap_or(out)).map_err(|e| e.to_string())?;
    grid.save(&p).map_err(|e| e.to_string())
}
