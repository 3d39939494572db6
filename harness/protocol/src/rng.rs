//! The one pseudo-random generator module of quadbench: SplitMix64 (Steele, Lea, Flood 2014) for
//! everything seeded (reference weights, bootstrap resamples) and xorshift64 (Marsaglia 2003)
//! for the workload's task order. Both are fixed forever: the same seed gives the same stream on
//! every machine and every library version, which is what makes packages, intervals and request
//! orders reproducible. Not for cryptography.

/// SplitMix64. [`SplitMix64::from_state`] starts from the raw state (the bootstrap's
/// convention); [`SplitMix64::new`] mixes the seed first (the package generator's convention).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    /// Start from the raw state `state`.
    pub fn from_state(state: u64) -> SplitMix64 {
        SplitMix64(state)
    }

    /// Start from `seed` mixed with the golden ratio (so seed 0 is no special case).
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed ^ GOLDEN)
    }

    /// An independent stream for a named purpose: `seed` combined with the FNV-1a hash of `label`.
    pub fn derive(seed: u64, label: &str) -> SplitMix64 {
        let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        SplitMix64::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform index below `n` (> 0), by Lemire's multiply-shift (bias < n / 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in the open interval (0, 1): never 0, so `ln` is always finite.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal by Box-Muller (one value per call; the second is discarded so that the
    /// stream position depends only on the number of calls).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` normal samples with standard deviation `std`, as f32.
    pub fn normal_vec(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * std) as f32).collect()
    }
}

/// xorshift64 with shifts 13, 7, 17.
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// `seed` is mixed with a constant so that seed 0 (a fixed point of xorshift) still works.
    pub fn new(seed: u64) -> XorShift64 {
        XorShift64(seed ^ 0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_implementation() {
        // Vigna's splitmix64.c with x = 0: 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
        let mut r = SplitMix64::from_state(0);
        assert_eq!((r.next_u64(), r.next_u64()), (0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f4));
    }

    #[test]
    fn xorshift_is_never_stuck_at_zero() {
        let mut r = XorShift64::new(0x2545_f491_4f6c_dd1d);
        assert_eq!(r.next_u64(), 0, "the documented fixed point");
        let mut r = XorShift64::new(0);
        assert_ne!(r.next_u64(), 0);
    }

    #[test]
    fn derived_streams_are_deterministic_and_label_separated() {
        let take = |label: &str| {
            let mut r = SplitMix64::derive(7, label);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(take("w"), take("w"));
        assert_ne!(take("w"), take("v"));
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = SplitMix64::new(1);
        let v: Vec<f64> = (0..20000).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }
}
