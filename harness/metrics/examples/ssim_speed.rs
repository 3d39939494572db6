//! Times the metrics on a 2048x2048 RGB pair (a fixture photo upscaled bilinearly plus
//! deterministic noise), in memory, without file I/O.
//!
//!     cargo run -p quadbench-metrics --release --example ssim_speed [-- SIDE_PX RUNS [ssim]]

use std::path::Path;
use std::time::Instant;

use quadbench_metrics::{Image, load_image, lpips_proxy, ms_ssim, psnr_db, ssim};

/// Bilinear upscale of an RGB [0, 1] image to `side x side`, plus uniform noise in +-`amp`
/// from a fixed xorshift sequence (reproducible without an RNG crate).
fn upscale_with_noise(src: &Image, side: usize, amp: f32, seed: u64) -> Image {
    let (sw, sh, c) = (src.width as usize, src.height as usize, src.channels as usize);
    let mut state = seed;
    let mut data = Vec::with_capacity(side * side * c);
    for y in 0..side {
        let fy = (y as f32 + 0.5) * sh as f32 / side as f32 - 0.5;
        let y0 = fy.floor().clamp(0.0, (sh - 1) as f32) as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let ty = (fy - y0 as f32).clamp(0.0, 1.0);
        for x in 0..side {
            let fx = (x as f32 + 0.5) * sw as f32 / side as f32 - 0.5;
            let x0 = fx.floor().clamp(0.0, (sw - 1) as f32) as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let tx = (fx - x0 as f32).clamp(0.0, 1.0);
            for ch in 0..c {
                let p = |yy: usize, xx: usize| src.data[(yy * sw + xx) * c + ch];
                let top = p(y0, x0) * (1.0 - tx) + p(y0, x1) * tx;
                let bottom = p(y1, x0) * (1.0 - tx) + p(y1, x1) * tx;
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                let v = top * (1.0 - ty) + bottom * ty + amp * u;
                // Quantise to 8 bits like a decoded PNG would be.
                data.push((v.clamp(0.0, 1.0) * 255.0).round() / 255.0);
            }
        }
    }
    Image::new(side as u32, side as u32, c as u8, 8, data).expect("valid generated image")
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("runs >= 1"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let side: usize = args.next().map(|s| s.parse().expect("SIDE_PX")).unwrap_or(2048);
    let runs: usize = args.next().map(|s| s.parse().expect("RUNS")).unwrap_or(5);
    let only_ssim = args.next().as_deref() == Some("ssim");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/astronaut_ref.png");
    let photo = load_image(&fixture).expect("fixture photo").image;
    let a = upscale_with_noise(&photo, side, 0.0, 1);
    let b = upscale_with_noise(&photo, side, 0.1, 2);
    println!("pair: {side}x{side} rgb, threads: {}, best of {runs}", rayon::current_num_threads());
    let (t, v) = best_of(runs, || ssim(&a, &b).unwrap());
    println!("ssim        {:8.1} ms  value {v:.6}", t * 1e3);
    if only_ssim {
        return;
    }
    let (t, v) = best_of(runs, || psnr_db(&a, &b).unwrap());
    println!("psnr        {:8.1} ms  value {v:.4} dB", t * 1e3);
    let (t, v) = best_of(runs, || ms_ssim(&a, &b).unwrap());
    println!("ms-ssim     {:8.1} ms  value {v:.6}", t * 1e3);
    let (t, v) = best_of(runs, || lpips_proxy(&a, &b).unwrap());
    println!("lpips-proxy {:8.1} ms  value {v:.6}", t * 1e3);
}
