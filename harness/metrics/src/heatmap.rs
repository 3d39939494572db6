//! Difference heatmaps: per-pixel error (mean absolute difference over channels, in [0, 1] units)
//! mapped through the viridis colour map (dark purple = no error, yellow = the top of the scale).
//!
//! Scale: [`HeatmapScale::Auto`] maps 0 to the bottom and the largest error of the pair to the top
//! (identical images give a uniform dark image); [`HeatmapScale::Fixed`] maps errors in
//! `[0, max_error]` linearly and clamps above, so heatmaps of different pairs share one scale.

use image::RgbImage;

use crate::load::{Image, MetricError, check_same_shape};

/// How errors are mapped onto the colour map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeatmapScale {
    /// Top of the colour map = largest per-pixel error of this pair.
    Auto,
    /// Top of the colour map = this error (in [0, 1] sample units); larger errors are clamped.
    Fixed { max_error: f32 },
}

/// Heatmap with [`HeatmapScale::Auto`].
pub fn diff_heatmap(a: &Image, b: &Image) -> Result<RgbImage, MetricError> {
    diff_heatmap_scaled(a, b, HeatmapScale::Auto)
}

/// Heatmap of the mean absolute error over channels, with the given scale.
pub fn diff_heatmap_scaled(a: &Image, b: &Image, scale: HeatmapScale) -> Result<RgbImage, MetricError> {
    check_same_shape(a, b)?;
    let c = a.channels as usize;
    let errors: Vec<f32> = a
        .data
        .chunks_exact(c)
        .zip(b.data.chunks_exact(c))
        .map(|(pa, pb)| pa.iter().zip(pb).map(|(x, y)| (x - y).abs()).sum::<f32>() / c as f32)
        .collect();
    let top = match scale {
        HeatmapScale::Auto => errors.iter().copied().fold(0.0f32, f32::max),
        HeatmapScale::Fixed { max_error } => max_error,
    };
    let mut out = RgbImage::new(a.width, a.height);
    for (px, e) in out.pixels_mut().zip(errors) {
        let t = if top > 0.0 { (e / top).clamp(0.0, 1.0) } else { 0.0 };
        px.0 = viridis(t);
    }
    Ok(out)
}

/// Viridis at `t` in [0, 1], from the 6th-order polynomial fit of matplotlib's viridis
/// published by Matt Zucker (shadertoy "WlfXRN", CC0); within about 0.01 of the table.
pub fn viridis(t: f32) -> [u8; 3] {
    const C: [[f64; 3]; 7] = [
        [0.277_727_327_223_417_7, 0.005_407_344_544_966_578, 0.334_099_805_335_306_1],
        [0.105_093_043_108_577_4, 1.404_613_529_898_575, 1.384_590_162_594_685],
        [-0.330_861_828_725_556_3, 0.214_847_559_468_213, 0.095_095_163_028_236_59],
        [-4.634_230_498_983_486, -5.799_100_973_351_585, -19.332_440_956_279_87],
        [6.228_269_936_347_081, 14.179_933_366_805_09, 56.690_552_600_681_05],
        [4.776_384_997_670_288, -13.745_145_377_746_01, -65.353_032_633_372_34],
        [-5.435_455_855_934_631, 4.645_852_612_178_535, 26.312_435_249_583_2],
    ];
    let t = t.clamp(0.0, 1.0) as f64;
    std::array::from_fn(|ch| {
        let v = C.iter().rev().fold(0.0, |acc, c| acc * t + c[ch]);
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anchor values of matplotlib's viridis table (`_viridis_data` at t = 0, 0.2, 0.5, 0.8, 1;
    /// the inner ones are the nearest of the 256 entries, so a tolerance of 4/255 covers both).
    #[test]
    fn viridis_matches_matplotlib_anchors() {
        let anchors = [
            (0.0, [0.267004, 0.004874, 0.329415]),
            (0.2, [0.253935, 0.265254, 0.529983]),
            (0.5, [0.127568, 0.566949, 0.550556]),
            (0.8, [0.477504, 0.821444, 0.318195]),
            (1.0, [0.993248, 0.906157, 0.143936]),
        ];
        for (t, rgb) in anchors {
            let got = viridis(t as f32);
            for ch in 0..3 {
                let want = rgb[ch] * 255.0;
                assert!((got[ch] as f64 - want).abs() <= 4.0, "t={t} ch={ch}: {got:?} vs {rgb:?}");
            }
        }
    }
}
