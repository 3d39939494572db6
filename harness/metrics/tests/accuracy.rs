//! Accuracy against scikit-image. The fixtures in `tests/fixtures/` were made by
//! `tests/fixtures/make_fixtures.py` (Python 3.11.7, numpy 2.4.6, scipy 1.17.1,
//! scikit-image 0.26.0, Pillow 13.0.0; the versions are also recorded in
//! `reference_values.json`): crops of real photographs with Gaussian noise (sigma 0.02 and 0.08),
//! Gaussian blur (sigma 1.5), JPEG quality 30 and, for the gray photo, 16-bit noise. PSNR and SSIM
//! come from `skimage.metrics` (SSIM with gaussian_weights=True, sigma=1.5,
//! use_sample_covariance=False, data_range=1.0); MS-SSIM from the numpy reference in the script.
//!
//! Run with `--nocapture` to see the largest deltas.

use std::path::{Path, PathBuf};

use quadbench_metrics::{CompareOptions, Metric, Warning, compare, load_pair, ms_ssim, psnr_db, ssim};

const SSIM_TOL: f64 = 1e-5;
const MS_SSIM_TOL: f64 = 1e-5;
const PSNR_TOL_DB: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    reference: String,
    test: String,
    psnr_db: f64,
    ssim: f64,
    ms_ssim: f64,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("reference_values.json")).expect("reference_values.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    v["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .map(|c| Case {
            reference: c["reference"].as_str().unwrap().to_string(),
            test: c["test"].as_str().unwrap().to_string(),
            psnr_db: c["psnr_db"].as_f64().unwrap(),
            ssim: c["ssim"].as_f64().unwrap(),
            ms_ssim: c["ms_ssim"].as_f64().unwrap(),
        })
        .collect()
}

#[test]
fn matches_scikit_image_on_distorted_photographs() {
    let cases = cases();
    assert!(cases.len() >= 12, "expected at least 12 fixture cases, got {}", cases.len());
    let photos: std::collections::BTreeSet<_> = cases.iter().map(|c| c.reference.clone()).collect();
    assert!(photos.len() >= 3 && photos.iter().any(|p| p.starts_with("camera")), "3 photos incl. the gray one");
    let (mut worst_psnr, mut worst_ssim, mut worst_ms) =
        ((0.0f64, String::new()), (0.0f64, String::new()), (0.0f64, String::new()));
    let mut failures = Vec::new();
    for case in &cases {
        let images = fixtures().join("images");
        let pair = load_pair(&images.join(&case.reference), &images.join(&case.test), false)
            .unwrap_or_else(|e| panic!("{}: {e}", case.test));
        let (a, b) = (&pair.reference, &pair.test);
        let p = psnr_db(a, b).unwrap();
        let s = ssim(a, b).unwrap();
        let m = ms_ssim(a, b).unwrap();
        let (dp, ds, dm) = ((p - case.psnr_db).abs(), (s - case.ssim).abs(), (m - case.ms_ssim).abs());
        eprintln!(
            "{:<24} psnr {p:9.5} dB (d {dp:.1e})  ssim {s:.7} (d {ds:.1e})  ms-ssim {m:.7} (d {dm:.1e})",
            case.test
        );
        for (d, worst) in [(dp, &mut worst_psnr), (ds, &mut worst_ssim), (dm, &mut worst_ms)] {
            if d > worst.0 {
                *worst = (d, case.test.clone());
            }
        }
        if dp > PSNR_TOL_DB || ds > SSIM_TOL || dm > MS_SSIM_TOL {
            failures.push(format!("{}: psnr d={dp:e} ssim d={ds:e} ms-ssim d={dm:e}", case.test));
        }
    }
    eprintln!(
        "largest deltas vs reference: psnr {:.2e} dB ({}), ssim {:.2e} ({}), ms-ssim {:.2e} ({})",
        worst_psnr.0, worst_psnr.1, worst_ssim.0, worst_ssim.1, worst_ms.0, worst_ms.1
    );
    assert!(failures.is_empty(), "out of tolerance:\n{}", failures.join("\n"));
}

#[test]
fn sixteen_bit_case_reports_bit_depth_warning_and_matches() {
    let images = fixtures().join("images");
    let case = cases().into_iter().find(|c| c.test.ends_with("noise16.png")).expect("16-bit fixture");
    let pair = load_pair(&images.join(&case.reference), &images.join(&case.test), false).unwrap();
    assert_eq!((pair.reference.bit_depth, pair.test.bit_depth), (8, 16));
    assert!(
        pair.warnings.contains(&Warning::BitDepthDiffers { reference_bits: 8, test_bits: 16 }),
        "{:?}",
        pair.warnings
    );
    assert!((ssim(&pair.reference, &pair.test).unwrap() - case.ssim).abs() <= SSIM_TOL);
}

#[test]
fn compare_reports_the_same_numbers_as_the_metric_functions() {
    let images = fixtures().join("images");
    let case = cases().into_iter().find(|c| c.test == "coffee_blur.png").expect("coffee blur fixture");
    let opts = CompareOptions { metrics: Metric::DEFAULT.to_vec(), ..Default::default() };
    let cmp = compare(&images.join(&case.reference), &images.join(&case.test), &opts).unwrap();
    assert!((cmp.psnr_db.unwrap() - case.psnr_db).abs() <= PSNR_TOL_DB);
    assert!((cmp.ssim.unwrap() - case.ssim).abs() <= SSIM_TOL);
    assert!((cmp.ms_ssim.unwrap() - case.ms_ssim).abs() <= MS_SSIM_TOL);
    let proxy = cmp.lpips_proxy.unwrap();
    assert!(proxy > 0.0 && proxy < 1.0, "lpips_proxy {proxy}");
    assert!(!cmp.identical);
    assert_eq!((cmp.width, cmp.height, cmp.channels), (256, 200, 3));
    let json = serde_json::to_value(&cmp).unwrap();
    for key in ["psnr_db", "ssim", "ms_ssim", "lpips_proxy", "identical", "warnings", "ssim_convention"] {
        assert!(json.get(key).is_some(), "missing key {key} in {json}");
    }
    assert!(json.get("lpips").is_none(), "lpips was not requested: {json}");
    let text = json.to_string().to_lowercase();
    assert!(!text.contains("\"lpips\""), "proxy must never be reported as lpips: {text}");
}

/// The `image` crate's JPEG decoder is not libjpeg-turbo: its pixels may differ by a few levels,
/// which is why the metric fixtures use Pillow's decode stored as PNG. This checks that our
/// decode of each quality-30 JPEG stays close to Pillow's, and how much that moves SSIM.
#[test]
fn jpeg_decode_is_close_to_libjpeg_turbo() {
    let images = fixtures().join("images");
    for name in ["astronaut", "coffee", "camera"] {
        let pair = load_pair(
            &images.join(format!("{name}_jpeg30_decoded.png")),
            &images.join(format!("{name}_jpeg30.jpg")),
            false,
        )
        .unwrap();
        let (a, b) = (&pair.reference, &pair.test);
        let max_levels = a.data.iter().zip(&b.data).map(|(x, y)| ((x - y).abs() * 255.0).round() as u32).max().unwrap();
        let differing = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
        let reference =
            load_pair(&images.join(format!("{name}_ref.png")), &images.join(format!("{name}_jpeg30.jpg")), false)
                .unwrap();
        let ssim_ours = ssim(&reference.reference, &reference.test).unwrap();
        let case = cases().into_iter().find(|c| c.test == format!("{name}_jpeg30_decoded.png")).unwrap();
        eprintln!(
            "{name}: jpeg decode vs pillow: max {max_levels} levels, {differing}/{} samples differ; ssim(ref, our decode) - ssim(ref, pillow decode) = {:.1e}",
            a.data.len(),
            ssim_ours - case.ssim
        );
        assert!(max_levels <= 3, "{name}: decoders differ by {max_levels} levels");
        assert!(
            (ssim_ours - case.ssim).abs() < 2e-4,
            "{name}: decoder difference moved ssim by {}",
            ssim_ours - case.ssim
        );
    }
}
