//! Property tests of the metrics on random images.

use proptest::prelude::*;
use quadbench_metrics::{Image, lpips_proxy, ms_ssim, psnr_db, ssim};

fn image_strategy(min_side: u32, max_side: u32) -> impl Strategy<Value = (Image, Image)> {
    (min_side..=max_side, min_side..=max_side, prop_oneof![Just(1u8), Just(3u8)]).prop_flat_map(|(w, h, c)| {
        let n = (w * h * c as u32) as usize;
        (prop::collection::vec(0.0f32..=1.0, n), prop::collection::vec(0.0f32..=1.0, n))
            .prop_map(move |(a, b)| (Image::new(w, h, c, 8, a).unwrap(), Image::new(w, h, c, 8, b).unwrap()))
    })
}

/// A smooth image plus independent noise, so SSIM values span a useful range.
fn blend(a: &Image, b: &Image, t: f32) -> Image {
    let data = a.data.iter().zip(&b.data).map(|(x, y)| x * (1.0 - t) + y * t).collect();
    Image::new(a.width, a.height, a.channels, 8, data).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ssim_of_an_image_with_itself_is_one((a, _b) in image_strategy(11, 48)) {
        prop_assert_eq!(ssim(&a, &a).unwrap(), 1.0);
    }

    #[test]
    fn ssim_is_symmetric((a, b) in image_strategy(11, 48), t in 0.0f32..1.0) {
        let b = blend(&a, &b, t);
        let (ab, ba) = (ssim(&a, &b).unwrap(), ssim(&b, &a).unwrap());
        prop_assert!((ab - ba).abs() <= 1e-12, "{} vs {}", ab, ba);
        prop_assert!((-1.0 - 1e-12..=1.0 + 1e-12).contains(&ab), "{}", ab);
    }

    #[test]
    fn psnr_decreases_as_noise_grows(
        (a, n) in image_strategy(4, 32),
        s1 in 0.001f32..0.1,
        factor in 1.05f32..3.0,
    ) {
        // Base in [0.3, 0.7] and noise of at most +-0.3 never clip, so MSE scales with sigma^2.
        let base: Vec<f32> = a.data.iter().map(|v| 0.3 + 0.4 * v).collect();
        let noisy = |s: f32| {
            let d = base.iter().zip(&n.data).map(|(x, u)| x + s * (2.0 * u - 1.0)).collect();
            Image::new(a.width, a.height, a.channels, 8, d).unwrap()
        };
        let clean = Image::new(a.width, a.height, a.channels, 8, base.clone()).unwrap();
        prop_assume!(n.data.iter().any(|u| (2.0 * u - 1.0).abs() > 1e-3));
        let (p1, p2) = (psnr_db(&clean, &noisy(s1)).unwrap(), psnr_db(&clean, &noisy(s1 * factor)).unwrap());
        prop_assert!(p2 < p1, "sigma {} -> {} dB, sigma {} -> {} dB", s1, p1, s1 * factor, p2);
    }

    #[test]
    fn lpips_proxy_of_an_image_with_itself_is_zero((a, b) in image_strategy(3, 48)) {
        prop_assert_eq!(lpips_proxy(&a, &a).unwrap(), 0.0);
        let d = lpips_proxy(&a, &b).unwrap();
        prop_assert!((0.0..=1.0).contains(&d), "{}", d);
    }
}

proptest! {
    // MS-SSIM needs 176x176 images; fewer cases keep the suite fast.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn ms_ssim_is_within_zero_and_one((a, b) in image_strategy(176, 200), t in 0.0f32..=1.0) {
        let b = blend(&a, &b, t);
        let m = ms_ssim(&a, &b).unwrap();
        prop_assert!((0.0..=1.0).contains(&m), "{}", m);
        prop_assert_eq!(ms_ssim(&a, &a).unwrap(), 1.0);
    }
}
