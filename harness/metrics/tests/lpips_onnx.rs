//! ONNX LPIPS path, run against the tiny "LPIPS-shaped" models of `tests/fixtures/`
//! (made by `make_fixtures.py`): `lpips_msd.onnx` = mean((in0 - in1)^2) and
//! `order_probe.onnx` = mean(in0) - 0.5 mean(in1), so the expected values can be computed here.
//!
//! Built only with the `lpips-onnx` feature (`required-features` in Cargo.toml; on in `cargo test
//! --workspace`, where the host crate enables it), and needs ONNX Runtime from runtime provisioning (`QUADBENCH_ORT_LIB`, or fetched on first use).

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn lpips_onnx_models() {
    use quadbench_metrics::lpips::to_nchw_pm1;
    use quadbench_metrics::{CompareOptions, LpipsError, Metric, compare, init_onnx_runtime, load_pair, lpips_onnx};

    // The provisioned runtime (QUADBENCH_ORT_LIB if set, else fetched into the cache once).
    let lib = quadbench_runtime::ensure_onnxruntime()
        .expect("ONNX Runtime for the lpips test (see `quadbench runtime fetch`)")
        .library;
    let images = fixtures().join("images");
    let msd = fixtures().join("lpips_msd.onnx");
    let probe = fixtures().join("order_probe.onnx");

    // Before initialisation the error says what to call.
    let pair = load_pair(&images.join("astronaut_ref.png"), &images.join("astronaut_noise08.png"), false).unwrap();
    let err = lpips_onnx(&msd, &pair.reference, &pair.test).unwrap_err();
    assert!(matches!(err, LpipsError::NotInitialised), "{err:?}");

    init_onnx_runtime(&lib).unwrap();
    for (reference, test) in [("astronaut_ref.png", "astronaut_noise08.png"), ("camera_ref.png", "camera_blur.png")] {
        let pair = load_pair(&images.join(reference), &images.join(test), false).unwrap();
        let (ta, tb) = (to_nchw_pm1(&pair.reference), to_nchw_pm1(&pair.test));
        assert_eq!(ta.len(), 3 * 256 * 200, "gray images are repeated to 3 channels");
        let expected_msd = ta.iter().zip(&tb).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / ta.len() as f64;
        let got = lpips_onnx(&msd, &pair.reference, &pair.test).unwrap();
        eprintln!("{test}: onnx msd {got:.8}, expected {expected_msd:.8}");
        assert!((got - expected_msd).abs() <= 5e-5 * expected_msd, "{got} vs {expected_msd}");

        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let expected_probe = mean(&ta) - 0.5 * mean(&tb);
        let swapped = mean(&tb) - 0.5 * mean(&ta);
        let got = lpips_onnx(&probe, &pair.reference, &pair.test).unwrap();
        assert!(
            (got - expected_probe).abs() < 1e-5,
            "inputs out of order: {got} vs {expected_probe} (swapped {swapped})"
        );
    }

    // Through compare(), and the error for a missing model file.
    let opts = CompareOptions { metrics: vec![Metric::Lpips], lpips_model: Some(msd.clone()), ..Default::default() };
    let same = compare(&images.join("coffee_ref.png"), &images.join("coffee_ref.png"), &opts).unwrap();
    assert_eq!(same.lpips, Some(0.0));
    assert_eq!(same.lpips_model.as_deref(), Some(msd.as_path()));
    let missing = fixtures().join("no_such_model.onnx");
    let err = lpips_onnx(&missing, &pair.reference, &pair.test).unwrap_err();
    assert!(matches!(err, LpipsError::Model { .. }) && err.to_string().contains("no_such_model.onnx"), "{err}");
}
