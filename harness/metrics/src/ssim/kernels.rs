//! The SSIM filter kernels: for one output row, the vertical pass (five weighted sums of 11
//! input rows) and the horizontal pass plus the SSIM/cs formula, added into per-sample sums.
//! Three versions: portable (LLVM may vectorise it), AVX2+FMA and AVX-512F, picked at run time
//! because the workspace builds for generic x86-64. They differ only by fused multiply-adds.
// Kernels index several arrays (weights, rows, accumulators) with the same tap index.
#![allow(clippy::needless_range_loop)]

use super::{C1, C2, RADIUS_PX, RowBuffers, Sample, TAPS};

pub(super) mod simd {
    //! The two filter passes: a portable version (written so LLVM can vectorise it) and the
    //! AVX2+FMA version of [`super::avx2`], chosen at run time because the workspace builds for
    //! generic x86-64.

    use super::{C1, C2, RADIUS_PX, RowBuffers, Sample, TAPS};

    /// Lanes processed together by the portable path.
    const L: usize = 8;

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn filter_row<T: Sample, const CS: bool>(
        rows_a: &[&[T]; TAPS],
        rows_b: &[&[T]; TAPS],
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
        c: usize,
        j0: usize,
        j1: usize,
    ) {
        #[cfg(test)]
        let forced = crate::ssim::tests::FORCED.load(std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(test))]
        let forced = 0u8;
        #[cfg(target_arch = "x86_64")]
        {
            if forced == 0 && std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked above).
                unsafe {
                    super::avx512::vertical(rows_a, rows_b, g, bufs);
                    super::avx512::horizontal::<CS>(g, bufs, c, j0, j1);
                }
                return;
            }
            if forced <= 1 && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports the features the functions were compiled for (checked above).
                unsafe {
                    super::avx2::vertical(rows_a, rows_b, g, bufs);
                    super::avx2::horizontal::<CS>(g, bufs, c, j0, j1);
                }
                return;
            }
        }
        filter_row_generic::<T, false, CS>(rows_a, rows_b, g, bufs, c, j0, j1);
    }

    #[inline(always)]
    fn madd<const FMA: bool>(a: f64, b: f64, acc: f64) -> f64 {
        // mul_add is only fast where FMA is enabled; elsewhere it would call libm.
        if FMA { a.mul_add(b, acc) } else { a * b + acc }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn filter_row_generic<T: Sample, const FMA: bool, const CS: bool>(
        rows_a: &[&[T]; TAPS],
        rows_b: &[&[T]; TAPS],
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
        c: usize,
        j0: usize,
        j1: usize,
    ) {
        let n = bufs.s.len();
        let [va, vb, vaa, vbb, vab] = &mut bufs.v;
        // Vertical pass over the whole row (all samples are needed by the horizontal taps).
        let mut i = 0;
        while i + L <= n {
            let mut sa = [0.0f64; L];
            let mut sb = [0.0f64; L];
            let mut saa = [0.0f64; L];
            let mut sbb = [0.0f64; L];
            let mut sab = [0.0f64; L];
            for k in 0..TAPS {
                let ra = &rows_a[k][i..i + L];
                let rb = &rows_b[k][i..i + L];
                let w = g[k];
                for l in 0..L {
                    let x = ra[l].to_f64();
                    let y = rb[l].to_f64();
                    let wx = w * x;
                    let wy = w * y;
                    sa[l] += wx;
                    sb[l] += wy;
                    saa[l] = madd::<FMA>(wx, x, saa[l]);
                    sbb[l] = madd::<FMA>(wy, y, sbb[l]);
                    sab[l] = madd::<FMA>(wx, y, sab[l]);
                }
            }
            va[i..i + L].copy_from_slice(&sa);
            vb[i..i + L].copy_from_slice(&sb);
            vaa[i..i + L].copy_from_slice(&saa);
            vbb[i..i + L].copy_from_slice(&sbb);
            vab[i..i + L].copy_from_slice(&sab);
            i += L;
        }
        vertical_tail::<T, FMA>(rows_a, rows_b, g, bufs, i);

        // Horizontal pass on the valid samples: tap k of sample j reads j + (k - 5) * c.
        let [va, vb, vaa, vbb, vab] = &bufs.v;
        let s_out = &mut bufs.s;
        let cs_out = &mut bufs.cs;
        let mut j = j0;
        while j + L <= j1 {
            let mut ux = [0.0f64; L];
            let mut uy = [0.0f64; L];
            let mut uxx = [0.0f64; L];
            let mut uyy = [0.0f64; L];
            let mut uxy = [0.0f64; L];
            for k in 0..TAPS {
                let o = j + k * c - RADIUS_PX * c;
                let w = g[k];
                let (ta, tb) = (&va[o..o + L], &vb[o..o + L]);
                let (taa, tbb, tab) = (&vaa[o..o + L], &vbb[o..o + L], &vab[o..o + L]);
                for l in 0..L {
                    ux[l] = madd::<FMA>(w, ta[l], ux[l]);
                    uy[l] = madd::<FMA>(w, tb[l], uy[l]);
                    uxx[l] = madd::<FMA>(w, taa[l], uxx[l]);
                    uyy[l] = madd::<FMA>(w, tbb[l], uyy[l]);
                    uxy[l] = madd::<FMA>(w, tab[l], uxy[l]);
                }
            }
            for l in 0..L {
                let (s, cs) = ssim_px(ux[l], uy[l], uxx[l], uyy[l], uxy[l]);
                s_out[j + l] += s;
                if CS {
                    cs_out[j + l] += cs;
                }
            }
            j += L;
        }
        horizontal_tail::<FMA, CS>(g, bufs, c, j, j1);
    }

    /// Vertical pass, one sample at a time, for samples `from..n`: what is left after a
    /// version's vector blocks (all three share it, so their tails agree to the bit).
    #[inline(always)]
    pub(super) fn vertical_tail<T: Sample, const FMA: bool>(
        rows_a: &[&[T]; TAPS],
        rows_b: &[&[T]; TAPS],
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
        from: usize,
    ) {
        let [va, vb, vaa, vbb, vab] = &mut bufs.v;
        for i in from..va.len() {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for k in 0..TAPS {
                let x = rows_a[k][i].to_f64();
                let y = rows_b[k][i].to_f64();
                let (wx, wy) = (g[k] * x, g[k] * y);
                sa += wx;
                sb += wy;
                saa = madd::<FMA>(wx, x, saa);
                sbb = madd::<FMA>(wy, y, sbb);
                sab = madd::<FMA>(wx, y, sab);
            }
            (va[i], vb[i], vaa[i], vbb[i], vab[i]) = (sa, sb, saa, sbb, sab);
        }
    }

    /// Horizontal pass and SSIM/cs, one sample at a time, for samples `from..j1` (the tail
    /// after a version's vector blocks).
    #[inline(always)]
    pub(super) fn horizontal_tail<const FMA: bool, const CS: bool>(
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
        c: usize,
        from: usize,
        j1: usize,
    ) {
        let v = &bufs.v;
        for j in from..j1 {
            let mut u = [0.0f64; 5];
            for k in 0..TAPS {
                let o = j + k * c - RADIUS_PX * c;
                for q in 0..5 {
                    u[q] = madd::<FMA>(g[k], v[q][o], u[q]);
                }
            }
            let (s, cs) = ssim_px(u[0], u[1], u[2], u[3], u[4]);
            bufs.s[j] += s;
            if CS {
                bufs.cs[j] += cs;
            }
        }
    }

    /// SSIM and contrast-structure of one window, in skimage's operation order:
    /// S = ((2 ux uy + C1)(2 vxy + C2)) / ((ux² + uy² + C1)(vx + vy + C2)).
    #[inline(always)]
    pub(super) fn ssim_px(ux: f64, uy: f64, uxx: f64, uyy: f64, uxy: f64) -> (f64, f64) {
        let vx = uxx - ux * ux;
        let vy = uyy - uy * uy;
        let vxy = uxy - ux * uy;
        let a1 = 2.0 * ux * uy + C1;
        let a2 = 2.0 * vxy + C2;
        let b1 = ux * ux + uy * uy + C1;
        let b2 = vx + vy + C2;
        ((a1 * a2) / (b1 * b2), a2 / b2)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2+FMA versions of the two passes, with the accumulators held in registers
    //! (LLVM's auto-vectoriser spilled them to the stack). Same arithmetic as the portable path
    //! except for fused multiply-adds.

    use std::arch::x86_64::*;

    use super::{C1, C2, RADIUS_PX, RowBuffers, Sample, TAPS};

    /// Vertical pass over a whole row: five weighted sums (x, y, x², y², xy) of the 11 rows.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; every row and buffer has the same length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn vertical<T: Sample>(
        rows_a: &[&[T]; TAPS],
        rows_b: &[&[T]; TAPS],
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
    ) {
        let n = bufs.s.len();
        for k in 0..TAPS {
            assert!(rows_a[k].len() == n && rows_b[k].len() == n);
        }
        let pa: [*const T; TAPS] = std::array::from_fn(|k| rows_a[k].as_ptr());
        let pb: [*const T; TAPS] = std::array::from_fn(|k| rows_b[k].as_ptr());
        let [va, vb, vaa, vbb, vab] = &mut bufs.v;
        let out = [va.as_mut_ptr(), vb.as_mut_ptr(), vaa.as_mut_ptr(), vbb.as_mut_ptr(), vab.as_mut_ptr()];
        let wv: [__m256d; TAPS] = std::array::from_fn(|k| _mm256_set1_pd(g[k]));
        let mut i = 0;
        // SAFETY: i + 8 <= n for every load and store below; all rows and buffers have length n.
        unsafe {
            while i + 8 <= n {
                let z = _mm256_setzero_pd();
                let (mut a0, mut a1, mut b0, mut b1) = (z, z, z, z);
                let (mut aa0, mut aa1, mut bb0, mut bb1, mut ab0, mut ab1) = (z, z, z, z, z, z);
                for k in 0..TAPS {
                    let w = wv[k];
                    let x0 = T::load4(pa[k].add(i));
                    let x1 = T::load4(pa[k].add(i + 4));
                    let y0 = T::load4(pb[k].add(i));
                    let y1 = T::load4(pb[k].add(i + 4));
                    let wx0 = _mm256_mul_pd(w, x0);
                    let wx1 = _mm256_mul_pd(w, x1);
                    let wy0 = _mm256_mul_pd(w, y0);
                    let wy1 = _mm256_mul_pd(w, y1);
                    a0 = _mm256_add_pd(a0, wx0);
                    a1 = _mm256_add_pd(a1, wx1);
                    b0 = _mm256_add_pd(b0, wy0);
                    b1 = _mm256_add_pd(b1, wy1);
                    aa0 = _mm256_fmadd_pd(wx0, x0, aa0);
                    aa1 = _mm256_fmadd_pd(wx1, x1, aa1);
                    bb0 = _mm256_fmadd_pd(wy0, y0, bb0);
                    bb1 = _mm256_fmadd_pd(wy1, y1, bb1);
                    ab0 = _mm256_fmadd_pd(wx0, y0, ab0);
                    ab1 = _mm256_fmadd_pd(wx1, y1, ab1);
                }
                for (o, (v0, v1)) in out.iter().zip([(a0, a1), (b0, b1), (aa0, aa1), (bb0, bb1), (ab0, ab1)]) {
                    _mm256_storeu_pd(o.add(i), v0);
                    _mm256_storeu_pd(o.add(i + 4), v1);
                }
                i += 8;
            }
        }
        super::simd::vertical_tail::<T, true>(rows_a, rows_b, g, bufs, i);
    }

    /// Horizontal pass and SSIM/cs for samples `j0..j1` (taps `c` samples apart).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `j0 >= 5c` and `j1 + 5c <= n`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn horizontal<const CS: bool>(
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
        c: usize,
        j0: usize,
        j1: usize,
    ) {
        let n = bufs.s.len();
        assert!(j0 >= RADIUS_PX * c && j1 + RADIUS_PX * c <= n && j0 <= j1);
        let src: [*const f64; 5] = std::array::from_fn(|q| bufs.v[q].as_ptr());
        let (s_out, cs_out) = (bufs.s.as_mut_ptr(), bufs.cs.as_mut_ptr());
        let wv: [__m256d; TAPS] = std::array::from_fn(|k| _mm256_set1_pd(g[k]));
        let (c1, c2, two) = (_mm256_set1_pd(C1), _mm256_set1_pd(C2), _mm256_set1_pd(2.0));
        let mut j = j0;
        // SAFETY: loads read j - 5c .. j + 8 + 5c <= n (j + 8 <= j1), stores j .. j + 8 < n.
        unsafe {
            while j + 8 <= j1 {
                // The kernel is symmetric: fold tap pairs (k, 10 - k) with one add, leaving
                // 6 multiplies per output instead of 11 (adds and FMAs use different ports).
                let rc = RADIUS_PX * c;
                let mut acc = [[_mm256_setzero_pd(); 2]; 5];
                for q in 0..5 {
                    for h in 0..2 {
                        let p = src[q].add(j + 4 * h);
                        let mut a = _mm256_mul_pd(wv[RADIUS_PX], _mm256_loadu_pd(p));
                        for d in 1..=RADIUS_PX {
                            let pair = _mm256_add_pd(_mm256_loadu_pd(p.sub(d * c)), _mm256_loadu_pd(p.add(d * c)));
                            a = _mm256_fmadd_pd(wv[RADIUS_PX - d], pair, a);
                        }
                        acc[q][h] = a;
                    }
                }
                let _ = rc;
                for h in 0..2 {
                    let [ux, uy, uxx, uyy, uxy] = [acc[0][h], acc[1][h], acc[2][h], acc[3][h], acc[4][h]];
                    let vx = _mm256_sub_pd(uxx, _mm256_mul_pd(ux, ux));
                    let vy = _mm256_sub_pd(uyy, _mm256_mul_pd(uy, uy));
                    let vxy = _mm256_sub_pd(uxy, _mm256_mul_pd(ux, uy));
                    let a1 = _mm256_add_pd(_mm256_mul_pd(_mm256_mul_pd(two, ux), uy), c1);
                    let a2 = _mm256_add_pd(_mm256_mul_pd(two, vxy), c2);
                    let b1 = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(ux, ux), _mm256_mul_pd(uy, uy)), c1);
                    let b2 = _mm256_add_pd(_mm256_add_pd(vx, vy), c2);
                    let s = _mm256_div_pd(_mm256_mul_pd(a1, a2), _mm256_mul_pd(b1, b2));
                    let (ps, pcs) = (s_out.add(j + 4 * h), cs_out.add(j + 4 * h));
                    _mm256_storeu_pd(ps, _mm256_add_pd(_mm256_loadu_pd(ps), s));
                    if CS {
                        _mm256_storeu_pd(pcs, _mm256_add_pd(_mm256_loadu_pd(pcs), _mm256_div_pd(a2, b2)));
                    }
                }
                j += 8;
            }
        }
        super::simd::horizontal_tail::<true, CS>(g, bufs, c, j, j1);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512F versions of the two passes: 8 f64 lanes per register and 32 registers, so the
    //! 16-sample blocks keep all accumulators in registers. Same arithmetic as [`super::avx2`].

    use std::arch::x86_64::*;

    use super::{C1, C2, RADIUS_PX, RowBuffers, Sample, TAPS};

    /// Vertical pass; see [`super::avx2::vertical`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F; every row and buffer has the same length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn vertical<T: Sample>(
        rows_a: &[&[T]; TAPS],
        rows_b: &[&[T]; TAPS],
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
    ) {
        let n = bufs.s.len();
        for k in 0..TAPS {
            assert!(rows_a[k].len() == n && rows_b[k].len() == n);
        }
        let pa: [*const T; TAPS] = std::array::from_fn(|k| rows_a[k].as_ptr());
        let pb: [*const T; TAPS] = std::array::from_fn(|k| rows_b[k].as_ptr());
        let [va, vb, vaa, vbb, vab] = &mut bufs.v;
        let out = [va.as_mut_ptr(), vb.as_mut_ptr(), vaa.as_mut_ptr(), vbb.as_mut_ptr(), vab.as_mut_ptr()];
        let mut i = 0;
        // SAFETY: i + 16 <= n for every load and store below; all rows and buffers have length n.
        unsafe {
            while i + 16 <= n {
                let z = _mm512_setzero_pd();
                let mut acc = [[z; 2]; 5];
                for k in 0..TAPS {
                    let w = _mm512_set1_pd(g[k]);
                    for h in 0..2 {
                        let x = T::load8(pa[k].add(i + 8 * h));
                        let y = T::load8(pb[k].add(i + 8 * h));
                        let wx = _mm512_mul_pd(w, x);
                        let wy = _mm512_mul_pd(w, y);
                        acc[0][h] = _mm512_add_pd(acc[0][h], wx);
                        acc[1][h] = _mm512_add_pd(acc[1][h], wy);
                        acc[2][h] = _mm512_fmadd_pd(wx, x, acc[2][h]);
                        acc[3][h] = _mm512_fmadd_pd(wy, y, acc[3][h]);
                        acc[4][h] = _mm512_fmadd_pd(wx, y, acc[4][h]);
                    }
                }
                for (o, v) in out.iter().zip(acc) {
                    _mm512_storeu_pd(o.add(i), v[0]);
                    _mm512_storeu_pd(o.add(i + 8), v[1]);
                }
                i += 16;
            }
        }
        super::simd::vertical_tail::<T, true>(rows_a, rows_b, g, bufs, i);
    }

    /// Horizontal pass and SSIM/cs, added into the per-sample sums `bufs.s` / `bufs.cs`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `j0 >= 5c` and `j1 + 5c <= n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn horizontal<const CS: bool>(
        g: &[f64; TAPS],
        bufs: &mut RowBuffers,
        c: usize,
        j0: usize,
        j1: usize,
    ) {
        let n = bufs.s.len();
        assert!(j0 >= RADIUS_PX * c && j1 + RADIUS_PX * c <= n && j0 <= j1);
        let src: [*const f64; 5] = std::array::from_fn(|q| bufs.v[q].as_ptr());
        let (s_out, cs_out) = (bufs.s.as_mut_ptr(), bufs.cs.as_mut_ptr());
        let wv: [__m512d; TAPS] = std::array::from_fn(|k| _mm512_set1_pd(g[k]));
        let (c1, c2, two) = (_mm512_set1_pd(C1), _mm512_set1_pd(C2), _mm512_set1_pd(2.0));
        let mut j = j0;
        // SAFETY: loads read j - 5c .. j + 8 + 5c <= n (j + 8 <= j1), stores j .. j + 8 < n.
        unsafe {
            while j + 8 <= j1 {
                let mut u = [_mm512_setzero_pd(); 5];
                for (q, uq) in u.iter_mut().enumerate() {
                    let p = src[q].add(j);
                    // Symmetric kernel: fold tap pairs (k, 10 - k) with one add.
                    let mut a = _mm512_mul_pd(wv[RADIUS_PX], _mm512_loadu_pd(p));
                    for d in 1..=RADIUS_PX {
                        let pair = _mm512_add_pd(_mm512_loadu_pd(p.sub(d * c)), _mm512_loadu_pd(p.add(d * c)));
                        a = _mm512_fmadd_pd(wv[RADIUS_PX - d], pair, a);
                    }
                    *uq = a;
                }
                let [ux, uy, uxx, uyy, uxy] = u;
                let vx = _mm512_sub_pd(uxx, _mm512_mul_pd(ux, ux));
                let vy = _mm512_sub_pd(uyy, _mm512_mul_pd(uy, uy));
                let vxy = _mm512_sub_pd(uxy, _mm512_mul_pd(ux, uy));
                let a1 = _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(two, ux), uy), c1);
                let a2 = _mm512_add_pd(_mm512_mul_pd(two, vxy), c2);
                let b1 = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(ux, ux), _mm512_mul_pd(uy, uy)), c1);
                let b2 = _mm512_add_pd(_mm512_add_pd(vx, vy), c2);
                // Divisions are the slowest instructions here: cs only when MS-SSIM asks for it.
                let s = _mm512_div_pd(_mm512_mul_pd(a1, a2), _mm512_mul_pd(b1, b2));
                _mm512_storeu_pd(s_out.add(j), _mm512_add_pd(_mm512_loadu_pd(s_out.add(j)), s));
                if CS {
                    let cs = _mm512_div_pd(a2, b2);
                    _mm512_storeu_pd(cs_out.add(j), _mm512_add_pd(_mm512_loadu_pd(cs_out.add(j)), cs));
                }
                j += 8;
            }
        }
        super::simd::horizontal_tail::<true, CS>(g, bufs, c, j, j1);
    }
}
