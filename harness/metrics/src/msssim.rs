//! MS-SSIM (Wang, Simoncelli & Bovik 2003) on top of [`crate::ssim`]'s Gaussian SSIM.
//!
//! Definition used here, per channel, then averaged over channels:
//! `prod_{j=1..4} max(cs_j, 0)^w_j * max(ssim_5, 0)^w_5` with weights
//! [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], where `cs_j` is the mean contrast-structure map and
//! `ssim_5` the mean SSIM map (luminance times contrast-structure) at scale j, each computed with
//! the same window, constants and border crop as [`crate::ssim::ssim`]. Between scales both images
//! are downsampled by 2x2 averaging; an odd last row or column is dropped.
//!
//! Negative terms are clamped to 0 (as pytorch-msssim does) because a negative base with a
//! fractional exponent has no real value; with that, and every term being at most 1, the result
//! lies in [0, 1]. The numpy reference in `tests/fixtures/make_fixtures.py` follows the same steps.

use crate::load::{Image, MetricError, check_same_shape};
use crate::ssim::{Plane, SSIM_MIN_SIDE_PX, Sample, check_min_size, ssim_sums};

/// Scale weights of Wang et al. 2003.
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
/// Smallest side accepted: after four halvings the image must still hold an 11x11 window (11 * 16).
pub const MS_SSIM_MIN_SIDE_PX: u32 = SSIM_MIN_SIDE_PX * 16;

/// MS-SSIM in [0, 1]; identical images give 1.
pub fn ms_ssim(a: &Image, b: &Image) -> Result<f64, MetricError> {
    check_same_shape(a, b)?;
    check_min_size("ms-ssim", MS_SSIM_MIN_SIDE_PX, a)?;
    let c = a.channels as usize;
    let mut per_channel = vec![1.0f64; c];
    let mut accumulate = |scale: usize, sums: &crate::ssim::SsimSums| {
        for (ch, value) in per_channel.iter_mut().enumerate() {
            let term = if scale == 4 { sums.mean_ssim(ch) } else { sums.mean_cs(ch) };
            *value *= term.max(0.0).powf(MS_SSIM_WEIGHTS[scale]);
        }
    };
    accumulate(0, &ssim_sums(Plane::of(a), Plane::of(b), true));
    let (mut da, mut db) = (downsample(Plane::of(a)), downsample(Plane::of(b)));
    for scale in 1..5 {
        let (pa, pb) = (da.plane(), db.plane());
        accumulate(scale, &ssim_sums(pa, pb, true));
        if scale < 4 {
            (da, db) = (downsample(pa), downsample(pb));
        }
    }
    Ok(per_channel.iter().sum::<f64>() / c as f64)
}

/// An owned f64 image (downsampled scales keep full precision).
pub(crate) struct OwnedPlane {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f64>,
}

impl OwnedPlane {
    pub fn plane(&self) -> Plane<'_, f64> {
        Plane { width: self.width, height: self.height, channels: self.channels, data: &self.data }
    }
}

/// 2x2 average, dropping an odd last row/column; same operation order as the numpy reference
/// `(x[0::2,0::2] + x[1::2,0::2] + x[0::2,1::2] + x[1::2,1::2]) / 4`.
pub(crate) fn downsample<T: Sample>(p: Plane<'_, T>) -> OwnedPlane {
    let (w, h, c) = (p.width / 2, p.height / 2, p.channels);
    let n = p.width * c;
    let mut data = Vec::with_capacity(w * h * c);
    for y in 0..h {
        let top = &p.data[2 * y * n..(2 * y + 1) * n];
        let bottom = &p.data[(2 * y + 1) * n..(2 * y + 2) * n];
        for x in 0..w {
            for ch in 0..c {
                let (l, r) = (2 * x * c + ch, (2 * x + 1) * c + ch);
                let v = top[l].to_f64() + bottom[l].to_f64() + top[r].to_f64() + bottom[r].to_f64();
                data.push(v / 4.0);
            }
        }
    }
    OwnedPlane { width: w, height: h, channels: c, data }
}
