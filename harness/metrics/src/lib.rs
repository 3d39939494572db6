//! quadbench-metrics: image-quality metrics for comparing device outputs with golden images.
//!
//! Owns image loading ([`load`]), the metrics ([`psnr`], [`ssim`], [`msssim`], [`proxy`],
//! [`lpips`]), difference heatmaps ([`heatmap`]) and the [`compare`] entry point behind
//! `quadbench compare`. All metrics work on samples scaled to [0, 1] with data_range 1.0.
//! The library never prints: warnings are returned in the results.

pub mod heatmap;
pub mod load;
pub mod lpips;
pub mod msssim;
pub mod proxy;
pub mod psnr;
pub mod ssim;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Serialize, Serializer};

pub use heatmap::{HeatmapScale, diff_heatmap, diff_heatmap_scaled};
pub use load::{
    COMPARE_BYTES_PER_PIXEL, DEFAULT_MAX_PIXELS, Image, ImageError, ImageLimits, LimitError, LoadError, Loaded,
    MAX_PIXELS_ENV, MetricError, Warning, load_image, load_image_with, open_image, prepare_pair,
};
pub use lpips::{LPIPS_ONNX_ENABLED, LpipsError, init_onnx_runtime};
#[cfg(feature = "lpips-onnx")]
pub use lpips::{lpips_onnx, lpips_onnx_with_env};
pub use msssim::{MS_SSIM_MIN_SIDE_PX, ms_ssim};
pub use proxy::lpips_proxy;
pub use psnr::{mse, psnr_db};
pub use ssim::{SSIM_CONVENTION, SSIM_MIN_SIDE_PX, ssim};

/// One-line definition of `lpips_proxy`, reported next to its value.
pub const LPIPS_PROXY_DEFINITION: &str =
    "1 - mean gradient-magnitude similarity (prewitt, T=170/255^2), averaged over 3 scales; not lpips";

/// A metric `compare` can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Psnr,
    Ssim,
    MsSsim,
    LpipsProxy,
    Lpips,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 5] = [Metric::Psnr, Metric::Ssim, Metric::MsSsim, Metric::LpipsProxy, Metric::Lpips];
    /// The default set: all but `lpips`, which needs a model file.
    pub const DEFAULT: [Metric; 4] = [Metric::Psnr, Metric::Ssim, Metric::MsSsim, Metric::LpipsProxy];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Psnr => "psnr",
            Metric::Ssim => "ssim",
            Metric::MsSsim => "ms-ssim",
            Metric::LpipsProxy => "lpips-proxy",
            Metric::Lpips => "lpips",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown metric name.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown metric '{0}'; use one of psnr, ssim, ms-ssim, lpips-proxy, lpips")]
pub struct MetricParseError(pub String);

impl FromStr for Metric {
    type Err = MetricParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == key || (key == "msssim" && *m == Metric::MsSsim))
            .ok_or_else(|| MetricParseError(s.to_string()))
    }
}

/// What [`compare`] computes and how strict it is.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub metrics: Vec<Metric>,
    /// Broadcast a gray image to RGB when the other is RGB (else an error).
    pub allow_gray_rgb: bool,
    /// ONNX model for `lpips` (needs the `lpips-onnx` feature and [`init_onnx_runtime`]).
    pub lpips_model: Option<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { metrics: Metric::DEFAULT.to_vec(), allow_gray_rgb: false, lpips_model: None }
    }
}

/// Errors of [`compare`].
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Metric(#[from] MetricError),
    #[error(transparent)]
    Lpips(#[from] LpipsError),
    #[error(
        "lpips was requested without a model; pass an lpips onnx model (--lpips-model FILE.onnx) or leave lpips out"
    )]
    LpipsModelMissing,
    #[error("no metrics requested; ask for at least one of psnr, ssim, ms-ssim, lpips-proxy, lpips")]
    NoMetrics,
}

/// Where an image came from and what it was before preparation.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub bit_depth: u8,
}

impl ImageInfo {
    fn of(path: &Path, im: &Image) -> Self {
        ImageInfo {
            path: path.to_path_buf(),
            width: im.width,
            height: im.height,
            channels: im.channels,
            bit_depth: im.bit_depth,
        }
    }
}

/// Two loaded images, made comparable by [`prepare_pair`].
#[derive(Debug, Clone)]
pub struct Pair {
    pub reference: Image,
    pub test: Image,
    pub reference_info: ImageInfo,
    pub test_info: ImageInfo,
    pub warnings: Vec<Warning>,
}

/// [`load_pair_with`] under the limits of the environment ([`ImageLimits::from_env`]).
pub fn load_pair(ref_path: &Path, test_path: &Path, allow_gray_rgb: bool) -> Result<Pair, CompareError> {
    let limits = ImageLimits::from_env().map_err(LoadError::from)?;
    load_pair_with(ref_path, test_path, allow_gray_rgb, &limits)
}

/// Loads both files (in parallel, each within `limits`) and prepares them for comparison.
pub fn load_pair_with(
    ref_path: &Path,
    test_path: &Path,
    allow_gray_rgb: bool,
    limits: &ImageLimits,
) -> Result<Pair, CompareError> {
    let (r, t) = rayon::join(|| load_image_with(ref_path, limits), || load_image_with(test_path, limits));
    let (r, t) = (r?, t?);
    let reference_info = ImageInfo::of(ref_path, &r.image);
    let test_info = ImageInfo::of(test_path, &t.image);
    let mut warnings = r.warnings;
    warnings.extend(t.warnings);
    let (reference, test, pair_warnings) = prepare_pair(r.image, t.image, allow_gray_rgb)?;
    warnings.extend(pair_warnings);
    Ok(Pair { reference, test, reference_info, test_info, warnings })
}

/// The result of a comparison; serialises to the JSON of `quadbench compare --json`.
/// Metrics that were not requested are absent.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub reference: ImageInfo,
    pub test: ImageInfo,
    /// Size and channel count actually compared (after a gray-to-rgb broadcast, if allowed).
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data_range: f64,
    /// PSNR in dB; `f64::INFINITY` for identical images, serialised as `null` (see `identical`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "finite_or_null")]
    pub psnr_db: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssim: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms_ssim: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lpips_proxy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lpips: Option<f64>,
    /// Every compared sample is equal.
    pub identical: bool,
    pub ssim_convention: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lpips_proxy_definition: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lpips_model: Option<PathBuf>,
    pub warnings: Vec<Warning>,
}

fn finite_or_null<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.is_finite() => s.serialize_f64(*x),
        _ => s.serialize_none(),
    }
}

/// Loads `ref_path` and `test_path`, checks them and computes the requested metrics.
pub fn compare(ref_path: &Path, test_path: &Path, opts: &CompareOptions) -> Result<Comparison, CompareError> {
    check_options(opts)?;
    let pair = load_pair(ref_path, test_path, opts.allow_gray_rgb)?;
    compare_pair(&pair, opts)
}

fn check_options(opts: &CompareOptions) -> Result<(), CompareError> {
    if opts.metrics.is_empty() {
        return Err(CompareError::NoMetrics);
    }
    if opts.metrics.contains(&Metric::Lpips) && opts.lpips_model.is_none() {
        return Err(CompareError::LpipsModelMissing);
    }
    Ok(())
}

/// Computes the requested metrics on an already loaded pair.
pub fn compare_pair(pair: &Pair, opts: &CompareOptions) -> Result<Comparison, CompareError> {
    check_options(opts)?;
    let (a, b) = (&pair.reference, &pair.test);
    let wants = |m: Metric| opts.metrics.contains(&m);
    let psnr_db = if wants(Metric::Psnr) { Some(psnr_db(a, b)?) } else { None };
    let ssim = if wants(Metric::Ssim) { Some(ssim(a, b)?) } else { None };
    let ms_ssim = if wants(Metric::MsSsim) { Some(ms_ssim(a, b)?) } else { None };
    let lpips_proxy = if wants(Metric::LpipsProxy) { Some(lpips_proxy(a, b)?) } else { None };
    let lpips = match (&opts.lpips_model, wants(Metric::Lpips)) {
        (Some(model), true) => Some(lpips::lpips_for_compare(model, a, b)?),
        _ => None,
    };
    Ok(Comparison {
        reference: pair.reference_info.clone(),
        test: pair.test_info.clone(),
        width: a.width,
        height: a.height,
        channels: a.channels,
        data_range: 1.0,
        psnr_db,
        ssim,
        ms_ssim,
        lpips_proxy,
        lpips,
        // PSNR already compared every sample: MSE is exactly 0 only for identical data.
        identical: match psnr_db {
            Some(p) => p == f64::INFINITY,
            None => a.data == b.data,
        },
        ssim_convention: SSIM_CONVENTION,
        lpips_proxy_definition: lpips_proxy.map(|_| LPIPS_PROXY_DEFINITION),
        lpips_model: lpips.and(opts.lpips_model.clone()),
        warnings: pair.warnings.clone(),
    })
}
