//! SSIM (Wang et al. 2004) with the conventions of
//! `skimage.metrics.structural_similarity(a, b, channel_axis=2, data_range=1.0,
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`:
//! an 11-tap Gaussian (sigma 1.5, truncated at 3.5 sigma, normalised like `scipy.ndimage`),
//! population (co)variances, K1 = 0.01, K2 = 0.03, the SSIM map averaged over the region that
//! excludes a 5-pixel border, then averaged over channels.
//!
//! skimage filters the whole image with `mode='reflect'` and then crops the 5-pixel border; every
//! pixel kept after that crop has its 11x11 window fully inside the image, so the border mode never
//! reaches the result. This module therefore only evaluates windows inside the image, which is
//! exact, not an approximation.
//!
//! The computation streams over output rows: for each row the 11 input rows are filtered
//! vertically into five row buffers (x, y, x², y², xy) in f64, then horizontally, and the SSIM
//! values are summed. Nothing image-sized is allocated, rows are split across threads with rayon,
//! and the inner loops (in `kernels`) exist as portable, AVX2+FMA and AVX-512F versions chosen at
//! run time.
//! Interleaved RGB needs no de-interleaving: a vertical filter is per sample, and a horizontal
//! filter on interleaved data is a 1-D filter whose taps are `channels` samples apart.

use rayon::prelude::*;

use crate::load::{Image, MetricError, check_same_shape};

/// The SSIM convention, to print next to every SSIM or MS-SSIM number.
pub const SSIM_CONVENTION: &str = "gaussian sigma=1.5, population covariance, data_range=1.0, skimage-compatible";

/// Gaussian sigma in pixels.
pub const SIGMA_PX: f64 = 1.5;
/// Filter radius: `int(3.5 * sigma + 0.5)` as in scipy.ndimage / skimage.
pub const RADIUS_PX: usize = 5;
const TAPS: usize = 2 * RADIUS_PX + 1;
/// Smallest side SSIM accepts: the window (11) must fit, as in skimage ("win_size exceeds image extent").
pub const SSIM_MIN_SIDE_PX: u32 = TAPS as u32;

const C1: f64 = 0.01 * 0.01; // (K1 * data_range)^2 with data_range = 1
const C2: f64 = 0.03 * 0.03; // (K2 * data_range)^2

/// Output rows handled per rayon task: large enough to amortise the task, small enough to balance two cores.
const ROWS_PER_TASK: usize = 16;

/// The normalised Gaussian weights, computed like `scipy.ndimage._gaussian_kernel1d`.
pub(crate) fn gaussian_weights() -> [f64; TAPS] {
    let mut w = [0.0; TAPS];
    let s2 = SIGMA_PX * SIGMA_PX;
    for (i, wi) in w.iter_mut().enumerate() {
        let x = i as f64 - RADIUS_PX as f64;
        *wi = (-0.5 / s2 * x * x).exp();
    }
    let sum: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= sum);
    w
}

/// A sample type the SSIM kernels read (f32 for decoded images, f64 for MS-SSIM's downsampled scales).
pub(crate) trait Sample: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    /// Loads 4 samples as f64.
    /// # Safety
    /// `p` must point at 4 readable samples and the CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load4(p: *const Self) -> std::arch::x86_64::__m256d;
    /// Loads 8 samples as f64.
    /// # Safety
    /// `p` must point at 8 readable samples and the CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m512d;
}
impl Sample for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::{_mm_loadu_ps, _mm256_cvtps_pd};
        // SAFETY: forwarded to the caller (4 readable f32, AVX available).
        unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m512d {
        use std::arch::x86_64::{_mm256_loadu_ps, _mm512_cvtps_pd};
        // SAFETY: forwarded to the caller (8 readable f32, AVX-512F available).
        unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) }
    }
}
impl Sample for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load4(p: *const Self) -> std::arch::x86_64::__m256d {
        // SAFETY: forwarded to the caller (4 readable f64, AVX available).
        unsafe { std::arch::x86_64::_mm256_loadu_pd(p) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m512d {
        // SAFETY: forwarded to the caller (8 readable f64, AVX-512F available).
        unsafe { std::arch::x86_64::_mm512_loadu_pd(p) }
    }
}

/// A borrowed interleaved image of any sample type.
#[derive(Clone, Copy)]
pub(crate) struct Plane<'a, T> {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: &'a [T],
}

impl<'a> Plane<'a, f32> {
    pub fn of(im: &'a Image) -> Self {
        Plane { width: im.width as usize, height: im.height as usize, channels: im.channels as usize, data: &im.data }
    }
}

/// Per-channel sums of the SSIM map and of the contrast-structure map over the valid region.
#[derive(Debug, Clone)]
pub(crate) struct SsimSums {
    pub ssim: Vec<f64>,
    pub cs: Vec<f64>,
    /// Pixels per channel in the valid region.
    pub count: usize,
}

impl SsimSums {
    pub fn mean_ssim(&self, c: usize) -> f64 {
        self.ssim[c] / self.count as f64
    }
    pub fn mean_cs(&self, c: usize) -> f64 {
        self.cs[c] / self.count as f64
    }
}

/// Mean SSIM over all channels (skimage conventions, see module docs). Identical images give exactly 1.
pub fn ssim(a: &Image, b: &Image) -> Result<f64, MetricError> {
    check_same_shape(a, b)?;
    check_min_size("ssim", SSIM_MIN_SIDE_PX, a)?;
    let sums = ssim_sums(Plane::of(a), Plane::of(b), false);
    let channels = a.channels as usize;
    // Every channel has the same count, so the mean of channel means is the mean of the sums.
    Ok((0..channels).map(|c| sums.mean_ssim(c)).sum::<f64>() / channels as f64)
}

pub(crate) fn check_min_size(metric: &'static str, min_px: u32, a: &Image) -> Result<(), MetricError> {
    if a.width < min_px || a.height < min_px {
        return Err(MetricError::TooSmall { metric, min_px, width: a.width, height: a.height });
    }
    Ok(())
}

/// Sums of the SSIM map and, with `want_cs`, of the contrast-structure map (else zeros). Callers check the size
/// (both sides >= 11) and that `a` and `b` have the same shape.
pub(crate) fn ssim_sums<T: Sample>(a: Plane<'_, T>, b: Plane<'_, T>, want_cs: bool) -> SsimSums {
    debug_assert!(a.width >= TAPS && a.height >= TAPS);
    debug_assert_eq!(a.data.len(), b.data.len());
    let g = gaussian_weights();
    let c = a.channels;
    let valid_rows = a.height - 2 * RADIUS_PX;
    let tasks = valid_rows.div_ceil(ROWS_PER_TASK);
    let parts: Vec<(Vec<f64>, Vec<f64>)> = (0..tasks)
        .into_par_iter()
        .map_init(
            || RowBuffers::new(a.width * c),
            |bufs, task| {
                let r0 = RADIUS_PX + task * ROWS_PER_TASK;
                let r1 = (r0 + ROWS_PER_TASK).min(a.height - RADIUS_PX);
                bufs.s.fill(0.0);
                bufs.cs.fill(0.0);
                for r in r0..r1 {
                    if want_cs {
                        filter_row::<T, true>(&a, &b, r, &g, bufs);
                    } else {
                        filter_row::<T, false>(&a, &b, r, &g, bufs);
                    }
                }
                // Column sums of the task's rows, reduced per channel once per task; sample j
                // belongs to channel j % c, and the valid range starts at a multiple of c.
                let (j0, j1) = (RADIUS_PX * c, a.width * c - RADIUS_PX * c);
                let mut s = vec![0.0; c];
                let mut cs = vec![0.0; c];
                for (ps, pcs) in bufs.s[j0..j1].chunks_exact(c).zip(bufs.cs[j0..j1].chunks_exact(c)) {
                    for ch in 0..c {
                        s[ch] += ps[ch];
                        cs[ch] += pcs[ch];
                    }
                }
                (s, cs)
            },
        )
        .collect();
    // Combine in task order so the result does not depend on thread scheduling.
    let mut out = SsimSums { ssim: vec![0.0; c], cs: vec![0.0; c], count: valid_rows * (a.width - 2 * RADIUS_PX) };
    for (s, cs) in parts {
        for ch in 0..c {
            out.ssim[ch] += s[ch];
            out.cs[ch] += cs[ch];
        }
    }
    out
}

/// Scratch rows owned by one rayon worker.
pub(crate) struct RowBuffers {
    v: [Vec<f64>; 5],
    s: Vec<f64>,
    cs: Vec<f64>,
}

impl RowBuffers {
    fn new(n: usize) -> Self {
        RowBuffers { v: std::array::from_fn(|_| vec![0.0; n]), s: vec![0.0; n], cs: vec![0.0; n] }
    }
}

/// Adds the SSIM and cs values of output row `r` to the per-sample sums `bufs.s` / `bufs.cs`.
fn filter_row<T: Sample, const CS: bool>(
    a: &Plane<'_, T>,
    b: &Plane<'_, T>,
    r: usize,
    g: &[f64; TAPS],
    bufs: &mut RowBuffers,
) {
    let c = a.channels;
    let n = a.width * c;
    let rows_a: [&[T]; TAPS] = std::array::from_fn(|k| &a.data[(r - RADIUS_PX + k) * n..(r - RADIUS_PX + k + 1) * n]);
    let rows_b: [&[T]; TAPS] = std::array::from_fn(|k| &b.data[(r - RADIUS_PX + k) * n..(r - RADIUS_PX + k + 1) * n]);
    kernels::simd::filter_row::<T, CS>(&rows_a, &rows_b, g, bufs, c, RADIUS_PX * c, n - RADIUS_PX * c);
}

mod kernels;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::*;

    /// 0: best kernel for the CPU, 1: at most AVX2, 2: portable. Only tests set it.
    pub(super) static FORCED: AtomicU8 = AtomicU8::new(0);

    fn pseudo_image(w: u32, h: u32, c: u8, seed: u64) -> Image {
        let mut state = seed;
        let data = (0..w as usize * h as usize * c as usize)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let smooth = ((i % 97) as f32 / 97.0) * 0.6;
                (smooth + (state >> 41) as f32 / (1u64 << 23) as f32 * 0.4).min(1.0)
            })
            .collect();
        Image::new(w, h, c, 8, data).unwrap()
    }

    /// Every kernel (AVX-512, AVX2, portable) must give the same SSIM and cs sums; odd widths
    /// exercise the scalar tails. One test so that the global override is not raced.
    #[test]
    fn all_kernels_agree() {
        for (w, h, c) in [(37, 23, 3), (64, 40, 1), (203, 17, 3)] {
            let (a, b) = (pseudo_image(w, h, c, 1), pseudo_image(w, h, c, 2));
            let mut results = Vec::new();
            for forced in 0..3u8 {
                FORCED.store(forced, Ordering::Relaxed);
                let sums = ssim_sums(Plane::of(&a), Plane::of(&b), true);
                results.push((sums.ssim, sums.cs));
            }
            FORCED.store(0, Ordering::Relaxed);
            for r in &results[1..] {
                for ch in 0..c as usize {
                    let n = results[0].0.len() as f64;
                    assert!((r.0[ch] - results[0].0[ch]).abs() / n < 1e-12, "{w}x{h}x{c}: {results:?}");
                    assert!((r.1[ch] - results[0].1[ch]).abs() / n < 1e-12, "{w}x{h}x{c}: {results:?}");
                }
            }
        }
    }

    #[test]
    fn gaussian_weights_match_scipy() {
        // scipy 1.17.1: scipy.ndimage._filters._gaussian_kernel1d(1.5, 0, 5), printed with repr().
        let scipy = [
            0.00102838008447911,
            0.007598758135239185,
            0.03600077212843083,
            0.10936068950970002,
            0.2130055377112537,
            0.26601172486179436,
        ];
        let w = gaussian_weights();
        for (k, s) in scipy.iter().enumerate() {
            assert!((w[k] - s).abs() < 1e-15 && (w[10 - k] - s).abs() < 1e-15, "{w:?}");
        }
    }
}
