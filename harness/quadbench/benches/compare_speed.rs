//! End-to-end speed and memory of `quadbench compare` against scikit-image.
//!
//! Generates a 2048x2048 RGB pair (a fixture photograph upscaled bilinearly, plus deterministic
//! noise on the test image), writes both as PNG to a temporary directory, then
//! 1. times the whole process `quadbench compare A B --metrics psnr,ssim --json` (best of
//!    several runs) and reads its peak RSS from `wait4` (ru_maxrss of that child);
//! 2. times scikit-image's `structural_similarity` call alone (float64, gaussian_weights=True,
//!    sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2) on the same pair;
//! 3. prints both times, their ratio, the SSIM values of both (they must agree to 1e-5), and the
//!    peak RSS relative to the decoded size of one 8-bit image (2048*2048*3 bytes).
//!
//! Targets: quadbench >= 20x faster than the skimage call; peak RSS <= 10x the decoded size.
//!
//! Environment: `QUADBENCH_BIN` (default `target/release/quadbench`), `QUADBENCH_PYTHON`
//! (default `python3`, needs numpy, Pillow and scikit-image).
//!
//!     cargo build --release -p quadbench && cargo bench -p quadbench --bench compare_speed

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use image::{RgbImage, imageops};

const SIDE_PX: u32 = 2048;
const QUADBENCH_RUNS: usize = 5;
const SKIMAGE_RUNS: usize = 2;
const TARGET_SPEEDUP: f64 = 20.0;
const TARGET_RSS_FACTOR: f64 = 10.0;

/// x86-64 / aarch64 Linux `struct rusage` (glibc), declared here to avoid a libc dependency.
#[repr(C)]
#[derive(Default)]
struct Rusage {
    ru_utime: [i64; 2],
    ru_stime: [i64; 2],
    ru_maxrss: i64,
    rest: [i64; 13],
}

unsafe extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}

/// Runs a command to completion; returns (wall seconds, stdout, exit status, peak RSS in bytes).
fn run_measured(cmd: &mut Command) -> Result<(f64, String, i32, u64), String> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        out.read_to_string(&mut stdout).map_err(|e| format!("reading stdout: {e}"))?;
    }
    let mut status = 0i32;
    let mut usage = Rusage::default();
    // SAFETY: the pid is our own unwaited child; status and usage point at live locals.
    let rc = unsafe { wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if rc < 0 {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    // ru_maxrss is in KiB on Linux. The child was reaped by wait4, so `child` is not waited again.
    std::mem::forget(child);
    let exit = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
    Ok((wall, stdout, exit, usage.ru_maxrss as u64 * 1024))
}

/// Deterministic noise: xorshift64, uniform in +-amp levels.
fn add_noise(img: &mut RgbImage, amp: f32, seed: u64) {
    let mut s = seed;
    for v in img.iter_mut() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let u = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        *v = (*v as f32 + amp * u).round().clamp(0.0, 255.0) as u8;
    }
}

fn make_pair(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let photo_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metrics/tests/fixtures/images/astronaut_ref.png");
    let photo = image::open(&photo_path).map_err(|e| format!("cannot read {}: {e}", photo_path.display()))?.to_rgb8();
    let mut reference = imageops::resize(&photo, SIDE_PX, SIDE_PX, imageops::FilterType::Triangle);
    add_noise(&mut reference, 2.0, 7); // sensor-like grain so the upscale is not unnaturally smooth
    let mut test = reference.clone();
    add_noise(&mut test, 12.0, 11);
    let (a, b) = (dir.join("reference.png"), dir.join("test.png"));
    reference.save(&a).map_err(|e| format!("cannot write {}: {e}", a.display()))?;
    test.save(&b).map_err(|e| format!("cannot write {}: {e}", b.display()))?;
    Ok((a, b))
}

const SKIMAGE_SCRIPT: &str = r#"
import sys, time, json
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity
a = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.float64) / 255.0
b = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=np.float64) / 255.0
runs = int(sys.argv[3])
best, value = float("inf"), None
for _ in range(runs):
    t = time.perf_counter()
    value = structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False)
    best = min(best, time.perf_counter() - t)
print(json.dumps({"seconds": best, "ssim": float(value)}))
"#;

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare_speed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<(), String> {
    let bin = std::env::var_os("QUADBENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/quadbench"));
    if !bin.exists() {
        return Err(format!(
            "{} not found; build it with `cargo build --release -p quadbench` or set QUADBENCH_BIN",
            bin.display()
        ));
    }
    let python = std::env::var("QUADBENCH_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let probe = Command::new(&python).args(["-c", "import numpy, PIL, skimage"]).output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        return Err(format!(
            "scikit-image is not importable with `{python}`; install it with `{python} -m pip install scikit-image pillow numpy` or point QUADBENCH_PYTHON at a python that has it"
        ));
    }

    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let (a, b) = make_pair(dir.path())?;
    let decoded_bytes = SIDE_PX as u64 * SIDE_PX as u64 * 3;

    let mut best_wall = f64::INFINITY;
    let mut peak_rss = 0u64;
    let mut quadbench_ssim = f64::NAN;
    for _ in 0..QUADBENCH_RUNS {
        let (wall, stdout, exit, rss) =
            run_measured(Command::new(&bin).arg("compare").arg(&a).arg(&b).args(["--metrics", "psnr,ssim", "--json"]))?;
        if exit != 0 {
            return Err(format!("{} compare exited with {exit}", bin.display()));
        }
        let json: serde_json::Value =
            serde_json::from_str(&stdout).map_err(|e| format!("quadbench printed invalid json: {e}: {stdout}"))?;
        quadbench_ssim = json["ssim"].as_f64().ok_or("no ssim in quadbench output")?;
        best_wall = best_wall.min(wall);
        peak_rss = peak_rss.max(rss);
    }

    let (_, stdout, exit, _) =
        run_measured(Command::new(&python).args(["-c", SKIMAGE_SCRIPT]).arg(&a).arg(&b).arg(SKIMAGE_RUNS.to_string()))?;
    if exit != 0 {
        return Err(format!("the scikit-image timing script exited with {exit}"));
    }
    let sk: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| format!("bad python output: {e}"))?;
    let sk_seconds = sk["seconds"].as_f64().ok_or("no seconds from python")?;
    let sk_ssim = sk["ssim"].as_f64().ok_or("no ssim from python")?;

    let speedup = sk_seconds / best_wall;
    let rss_factor = peak_rss as f64 / decoded_bytes as f64;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("pair: {SIDE_PX}x{SIDE_PX} rgb 8-bit png; decoded size of one image: {decoded_bytes} bytes (w*h*3)");
    println!(
        "quadbench compare --metrics psnr,ssim --json (whole process, best of {QUADBENCH_RUNS}): {:.1} ms",
        best_wall * 1e3
    );
    println!("skimage structural_similarity call alone (float64, best of {SKIMAGE_RUNS}): {:.1} ms", sk_seconds * 1e3);
    println!("speedup: {speedup:.1}x (target >= {TARGET_SPEEDUP}x: {})", verdict(speedup >= TARGET_SPEEDUP));
    println!(
        "peak rss of quadbench: {:.1} MiB = {rss_factor:.1}x the decoded size (target <= {TARGET_RSS_FACTOR}x: {})",
        peak_rss as f64 / (1024.0 * 1024.0),
        verdict(rss_factor <= TARGET_RSS_FACTOR)
    );
    println!(
        "ssim: quadbench {quadbench_ssim:.8}, skimage {sk_ssim:.8}, |delta| {:.1e}",
        (quadbench_ssim - sk_ssim).abs()
    );
    if (quadbench_ssim - sk_ssim).abs() > 1e-5 {
        return Err("quadbench and scikit-image disagree on ssim by more than 1e-5".into());
    }
    Ok(())
}
