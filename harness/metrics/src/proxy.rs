//! `lpips_proxy`: a built-in perceptual-distance proxy that needs no learned weights.
//! It is **not** LPIPS and is never reported under that name.
//!
//! Definition (multi-scale gradient-magnitude similarity, after GMSM in Xue et al. 2014,
//! "Gradient Magnitude Similarity Deviation"):
//!
//! 1. Scales s = 0, 1, 2: full resolution, then 2x2 averaging (odd last row/column dropped) —
//!    the same downsampling as MS-SSIM. A scale is used only if both sides are >= 3 pixels;
//!    scale 0 always is (smaller images are an error).
//! 2. At each scale, per channel, Prewitt gradients on interior pixels (no border padding):
//!    `gx = (sum of the right column of the 3x3 neighbourhood - sum of the left column) / 3`,
//!    `gy` likewise with bottom and top rows, `m = sqrt(gx² + gy²)`.
//! 3. Gradient magnitude similarity `GMS = (2 m_a m_b + T) / (m_a² + m_b² + T)` with
//!    `T = 170 / 255²` (GMSD's constant for [0, 1] data); `d_s = 1 - mean(GMS)` over interior
//!    pixels and channels.
//! 4. `lpips_proxy = mean of d_s over the scales used`.
//!
//! Range [0, 1]: 0 for identical images (GMS is exactly 1), larger for more visible structural
//! differences (noise, blur, ringing and blocking all change gradient magnitudes). Flat shifts of
//! brightness barely move it, which is by design of a structure-only proxy; use PSNR for those.

use rayon::prelude::*;

use crate::load::{Image, MetricError, check_same_shape};
use crate::msssim::downsample;
use crate::ssim::{Plane, Sample, check_min_size};

/// Number of scales tried (full, 1/2, 1/4).
pub const LPIPS_PROXY_SCALES: usize = 3;
/// Smallest side accepted: one interior pixel needs a 3x3 neighbourhood.
pub const LPIPS_PROXY_MIN_SIDE_PX: u32 = 3;
/// GMSD's stabilising constant (170 on the 0..255 scale), for data in [0, 1].
const T: f64 = 170.0 / (255.0 * 255.0);

/// The proxy distance defined in the module docs; lower is more similar, 0 for identical images.
pub fn lpips_proxy(a: &Image, b: &Image) -> Result<f64, MetricError> {
    check_same_shape(a, b)?;
    check_min_size("lpips-proxy", LPIPS_PROXY_MIN_SIDE_PX, a)?;
    let mut distances = vec![1.0 - gms_mean(Plane::of(a), Plane::of(b))];
    let (mut da, mut db) = (downsample(Plane::of(a)), downsample(Plane::of(b)));
    for _ in 1..LPIPS_PROXY_SCALES {
        if da.width < 3 || da.height < 3 {
            break;
        }
        distances.push(1.0 - gms_mean(da.plane(), db.plane()));
        (da, db) = (downsample(da.plane()), downsample(db.plane()));
    }
    Ok(distances.iter().sum::<f64>() / distances.len() as f64)
}

#[inline(always)]
fn gradient_magnitude<T: Sample>(rows: [&[T]; 3], j: usize, c: usize) -> f64 {
    let v = |r: usize, o: usize| rows[r][o].to_f64();
    let (l, r) = (j - c, j + c);
    let gx = ((v(0, r) + v(1, r) + v(2, r)) - (v(0, l) + v(1, l) + v(2, l))) / 3.0;
    let gy = ((v(2, l) + v(2, j) + v(2, r)) - (v(0, l) + v(0, j) + v(0, r))) / 3.0;
    (gx * gx + gy * gy).sqrt()
}

/// Mean GMS over interior pixels and channels.
fn gms_mean<T: Sample>(a: Plane<'_, T>, b: Plane<'_, T>) -> f64 {
    let (c, n) = (a.channels, a.width * a.channels);
    fn rows<T>(data: &[T], y: usize, n: usize) -> [&[T]; 3] {
        std::array::from_fn(|k| &data[(y - 1 + k) * n..(y + k) * n])
    }
    let sums: Vec<f64> = (1..a.height - 1)
        .into_par_iter()
        .map(|y| {
            let (ra, rb) = (rows(a.data, y, n), rows(b.data, y, n));
            (c..n - c)
                .map(|j| {
                    let ma = gradient_magnitude(ra, j, c);
                    let mb = gradient_magnitude(rb, j, c);
                    (2.0 * ma * mb + T) / (ma * ma + mb * mb + T)
                })
                .sum::<f64>()
        })
        .collect();
    let count = (a.height - 2) * (n - 2 * c);
    sums.iter().sum::<f64>() / count as f64
}
