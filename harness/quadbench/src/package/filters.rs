//! The reference package's tasks as exact linear image edits, and their matrices in token space.
//!
//! A token is one 4x4 pixel patch; the encoder gives every token its 3x3-patch neighbourhood
//! (`NEIGHBOURHOOD` = 9 patches x 48 values) plus a constant 1 (so edits may have an offset),
//! padded to [`TOKEN_DIM`]. A task is a map from that token vector to the 48 output values of
//! its centre patch: `y = v K`. Each edit is a sum of terms `colour (3x3) x spatial kernel`
//! plus a per-channel bias; kernels reach at most 4 pixels, which the neighbourhood always covers.

use quadbench_protocol::rng::SplitMix64;

pub const PATCH: usize = 4;
pub const PATCH_DIM: usize = PATCH * PATCH * 3; // 48
pub const NEIGHBOURHOOD: usize = 9 * PATCH_DIM; // 432
/// Index of the constant-1 feature.
pub const ONE_INDEX: usize = NEIGHBOURHOOD;
/// Token width: neighbourhood + constant + zero padding to a multiple of 16.
pub const TOKEN_DIM: usize = 448;

type Colour = [[f64; 3]; 3];
/// Spatial taps: (dy, dx, weight).
type Kernel = Vec<(i32, i32, f64)>;

const IDENTITY: Colour = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
const LUMA: Colour = [[0.299, 0.587, 0.114], [0.299, 0.587, 0.114], [0.299, 0.587, 0.114]];
const SEPIA: Colour = [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]];

/// One image edit.
pub struct Edit {
    pub name: String,
    pub description: String,
    terms: Vec<(Colour, Kernel)>,
    bias: [f64; 3],
}

fn delta() -> Kernel {
    vec![(0, 0, 1.0)]
}

fn gauss(sigma: f64) -> Kernel {
    let r = 4;
    let mut k = Vec::new();
    for dy in -r..=r {
        for dx in -r..=r {
            k.push((dy, dx, (-((dy * dy + dx * dx) as f64) / (2.0 * sigma * sigma)).exp()));
        }
    }
    let s: f64 = k.iter().map(|t| t.2).sum();
    k.into_iter().map(|(y, x, w)| (y, x, w / s)).collect()
}

/// `a * ka + b * kb`.
fn mix(a: f64, ka: Kernel, b: f64, kb: Kernel) -> Kernel {
    ka.into_iter().map(|(y, x, w)| (y, x, a * w)).chain(kb.into_iter().map(|(y, x, w)| (y, x, b * w))).collect()
}

fn scale(c: Colour, s: [f64; 3]) -> Colour {
    let mut o = c;
    for (row, f) in o.iter_mut().zip(s) {
        for v in row.iter_mut() {
            *v *= f;
        }
    }
    o
}

fn edit(name: &str, description: &str, terms: Vec<(Colour, Kernel)>, bias: [f64; 3]) -> Edit {
    Edit { name: name.into(), description: description.into(), terms, bias }
}

/// The built-in edits, in order. The first ten are the paper's worked example of ten tasks;
/// more tasks get seeded random colour mixes.
pub fn edits(count: usize, seed: u64) -> Vec<Edit> {
    let contrast = 1.3;
    let warm = scale(IDENTITY, [contrast * 1.12, contrast, contrast * 0.82]);
    let warm_bias = [0.5 - 0.5 * contrast * 1.12, 0.5 - 0.5 * contrast, 0.5 - 0.5 * contrast * 0.82];
    let fade: Colour = [[0.62, 0.08, 0.0], [0.04, 0.66, 0.04], [0.0, 0.08, 0.66]];
    let mut all = vec![
        edit("sepia", "sepia colour grade", vec![(SEPIA, delta())], [0.0; 3]),
        edit("grayscale", "full desaturation (Rec.601 luma)", vec![(LUMA, delta())], [0.0; 3]),
        edit("blur", "gaussian blur, sigma 2 px (truncated at 4 px)", vec![(IDENTITY, gauss(2.0))], [0.0; 3]),
        edit(
            "sharpen",
            "unsharp mask, amount 2, sigma 1 px",
            vec![(IDENTITY, mix(3.0, delta(), -2.0, gauss(1.0)))],
            [0.0; 3],
        ),
        edit(
            "edges",
            "edge map: 0.5 + 6 x (luma - blurred luma)",
            vec![(LUMA, mix(6.0, delta(), -6.0, gauss(1.0)))],
            [0.5; 3],
        ),
        edit(
            "emboss",
            "emboss relief on luma, light from the top left",
            vec![(LUMA, vec![(1, 1, 2.5), (-1, -1, -2.5)])],
            [0.5; 3],
        ),
        edit("invert", "colour negative", vec![(scale(IDENTITY, [-1.0; 3]), delta())], [1.0; 3]),
        edit(
            "channel_swap",
            "colour channels rotated (R,G,B) <- (B,R,G)",
            vec![([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], delta())],
            [0.0; 3],
        ),
        edit("warm_contrast", "warm grade with contrast 1.3", vec![(warm, delta())], warm_bias),
        edit(
            "cool_fade",
            "faded teal grade (lifted blacks, lower contrast)",
            vec![(fade, delta())],
            [0.06, 0.14, 0.22],
        ),
    ];
    let mut rng = SplitMix64::derive(seed, "extra-edits");
    for i in all.len()..count {
        let mut c = IDENTITY;
        for row in c.iter_mut() {
            for v in row.iter_mut() {
                *v = *v * 0.6 + rng.uniform() * 0.5;
            }
        }
        all.push(edit(&format!("mix_{i:02}"), "seeded random colour mix", vec![(c, delta())], [0.0; 3]));
    }
    all.truncate(count);
    all
}

/// Index of neighbourhood patch offset (`py`, `px` in -1..=1), within-patch pixel, channel.
fn v_index(py: i32, px: i32, by: usize, bx: usize, c: usize) -> usize {
    let slot = ((py + 1) * 3 + (px + 1)) as usize;
    slot * PATCH_DIM + (by * PATCH + bx) * 3 + c
}

/// Index of an output value of the centre patch.
pub fn y_index(by: usize, bx: usize, c: usize) -> usize {
    (by * PATCH + bx) * 3 + c
}

/// The identity (reconstruction) map: centre patch out.
pub fn identity_matrix() -> Vec<f64> {
    let mut k = vec![0.0; TOKEN_DIM * PATCH_DIM];
    for by in 0..PATCH {
        for bx in 0..PATCH {
            for c in 0..3 {
                k[v_index(0, 0, by, bx, c) * PATCH_DIM + y_index(by, bx, c)] = 1.0;
            }
        }
    }
    k
}

impl Edit {
    /// The edit's token map `K` (row-major `TOKEN_DIM x PATCH_DIM`).
    pub fn matrix(&self) -> Vec<f64> {
        let mut k = vec![0.0; TOKEN_DIM * PATCH_DIM];
        for by in 0..PATCH {
            for bx in 0..PATCH {
                for c in 0..3 {
                    let col = y_index(by, bx, c);
                    for (colour, kernel) in &self.terms {
                        for &(dy, dx, w) in kernel {
                            let (yy, xx) = (by as i32 + dy, bx as i32 + dx);
                            let (py, iy) = (yy.div_euclid(PATCH as i32), yy.rem_euclid(PATCH as i32) as usize);
                            let (px, ix) = (xx.div_euclid(PATCH as i32), xx.rem_euclid(PATCH as i32) as usize);
                            debug_assert!((-1..=1).contains(&py) && (-1..=1).contains(&px));
                            for (c2, cw) in colour[c].iter().enumerate() {
                                k[v_index(py, px, iy, ix, c2) * PATCH_DIM + col] += w * cw;
                            }
                        }
                    }
                    k[ONE_INDEX * PATCH_DIM + col] += self.bias[c];
                }
            }
        }
        k
    }

    /// Apply the edit to an RGB image in `[0,1]` (planar CHW) directly, with the same edge
    /// handling as the graphs (neighbour patches replicated at the border). Used by tests to
    /// check the ONNX pipeline against the definition.
    pub fn apply_reference(&self, chw: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (ph, pw) = (h / PATCH, w / PATCH);
        let k = self.matrix();
        let mut out = vec![0f32; 3 * h * w];
        let mut v = vec![0f64; TOKEN_DIM];
        for ty in 0..ph {
            for tx in 0..pw {
                v.iter_mut().for_each(|x| *x = 0.0);
                for py in -1i32..=1 {
                    for px in -1i32..=1 {
                        let sy = (ty as i32 + py).clamp(0, ph as i32 - 1) as usize;
                        let sx = (tx as i32 + px).clamp(0, pw as i32 - 1) as usize;
                        for by in 0..PATCH {
                            for bx in 0..PATCH {
                                for c in 0..3 {
                                    v[v_index(py, px, by, bx, c)] =
                                        chw[c * h * w + (sy * PATCH + by) * w + sx * PATCH + bx] as f64;
                                }
                            }
                        }
                    }
                }
                v[ONE_INDEX] = 1.0;
                for by in 0..PATCH {
                    for bx in 0..PATCH {
                        for c in 0..3 {
                            let col = y_index(by, bx, c);
                            let y: f64 = (0..TOKEN_DIM).map(|i| v[i] * k[i * PATCH_DIM + col]).sum();
                            out[c * h * w + (ty * PATCH + by) * w + tx * PATCH + bx] = y.clamp(0.0, 1.0) as f32;
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_named_edits() {
        let e = edits(10, 1);
        let names: std::collections::BTreeSet<_> = e.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names.len(), 10);
        assert_eq!(edits(13, 1).len(), 13);
    }

    #[test]
    fn blur_preserves_a_constant_image_and_invert_inverts() {
        let (h, w) = (16, 16);
        let img = vec![0.25f32; 3 * h * w];
        let all = edits(10, 1);
        let blur = all.iter().find(|e| e.name == "blur").unwrap().apply_reference(&img, h, w);
        assert!(blur.iter().all(|v| (v - 0.25).abs() < 1e-6));
        let inv = all.iter().find(|e| e.name == "invert").unwrap().apply_reference(&img, h, w);
        assert!(inv.iter().all(|v| (v - 0.75).abs() < 1e-6));
    }

    #[test]
    fn identity_matrix_reconstructs() {
        let k = identity_matrix();
        let ones: f64 = k.iter().sum();
        assert_eq!(ones, PATCH_DIM as f64);
    }
}
