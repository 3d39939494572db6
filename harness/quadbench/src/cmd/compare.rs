//! `quadbench compare REF TEST`: image-quality metrics between a golden image and a device
//! output. This module owns only the command line and the output formats; loading, checks and
//! metrics live in `quadbench_metrics`.
//!
//! Output: one metric per line with its unit and convention on stdout (warnings on stderr), or a
//! single JSON object with `--json` (warnings inside it). PSNR of identical images prints `inf`
//! in text and `null` with `"identical": true` in JSON.
//!
//! ONNX Runtime for `--lpips-model` comes from runtime provisioning (`quadbench runtime fetch`,
//! or `QUADBENCH_ORT_LIB`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use quadbench_metrics::{
    CompareOptions, Comparison, ImageInfo, ImageLimits, LPIPS_PROXY_DEFINITION, Metric, SSIM_CONVENTION, compare_pair,
    diff_heatmap, init_onnx_runtime, load_pair_with,
};

/// Arguments of `quadbench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Reference (golden) image: PNG, JPEG or TIFF, 8 or 16 bit, gray, RGB or RGBA.
    #[arg(value_name = "REF")]
    pub ref_path: PathBuf,
    /// Test image (device output), same size as the reference; never resized.
    #[arg(value_name = "TEST")]
    pub test_path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Metrics to compute, comma-separated: psnr, ssim, ms-ssim, lpips-proxy, lpips.
    #[arg(long, value_delimiter = ',', default_value = "psnr,ssim,ms-ssim,lpips-proxy")]
    pub metrics: Vec<Metric>,
    /// LPIPS as an ONNX model (two NCHW inputs in [-1, 1], scalar output); adds `lpips` to the
    /// metrics. Needs ONNX Runtime from QUADBENCH_ORT_LIB.
    #[arg(long, value_name = "FILE.onnx")]
    pub lpips_model: Option<PathBuf>,
    /// Write a heatmap of the per-pixel error (viridis, scaled to the largest error) to this PNG.
    #[arg(long, value_name = "OUT.png")]
    pub diff: Option<PathBuf>,
    /// Compare a gray image with an RGB one by repeating the gray channel (else an error).
    #[arg(long)]
    pub allow_gray_rgb: bool,
    /// Refuse images with more pixels than this before decoding them (default: the
    /// QUADBENCH_MAX_IMAGE_PIXELS environment variable, else 67108864 = 8192x8192; comparing
    /// needs about 40 bytes of memory per pixel).
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: Option<u64>,
}

/// Runs `quadbench compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    let mut metrics = args.metrics.clone();
    if args.lpips_model.is_some() && !metrics.contains(&Metric::Lpips) {
        metrics.push(Metric::Lpips);
    }
    metrics.dedup();
    if metrics.contains(&Metric::Lpips) {
        if args.lpips_model.is_none() {
            bail!("lpips needs a model: pass --lpips-model FILE.onnx, or use --metrics without lpips");
        }
        // The provisioned runtime (honours QUADBENCH_ORT_LIB, fetches on first use).
        let lib = quadbench_runtime::ensure_onnxruntime()?;
        init_onnx_runtime(&lib.library)?;
    }
    let opts = CompareOptions { metrics, allow_gray_rgb: args.allow_gray_rgb, lpips_model: args.lpips_model.clone() };
    let limits = match args.max_pixels {
        Some(n) => ImageLimits::new(n),
        None => ImageLimits::from_env()?,
    };
    let pair = load_pair_with(&args.ref_path, &args.test_path, args.allow_gray_rgb, &limits)?;
    let cmp = compare_pair(&pair, &opts)?;
    if let Some(out) = &args.diff {
        let heatmap = diff_heatmap(&pair.reference, &pair.test)?;
        heatmap
            .save(out)
            .with_context(|| format!("cannot write diff heatmap {}; check the directory exists", out.display()))?;
    }
    if args.json {
        let mut value = serde_json::to_value(&cmp).context("serialising the comparison")?;
        if let (Some(out), Some(obj)) = (&args.diff, value.as_object_mut()) {
            obj.insert("diff_heatmap".into(), serde_json::Value::String(out.display().to_string()));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render_text(&cmp, args.diff.as_ref()));
        for w in &cmp.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(())
}

fn describe(info: &ImageInfo) -> String {
    let kind = if info.channels == 1 { "gray" } else { "rgb" };
    format!("{}  {}x{} {kind} {}-bit", info.path.display(), info.width, info.height, info.bit_depth)
}

/// The text report: one metric per line, with its unit and convention.
pub fn render_text(cmp: &Comparison, diff: Option<&PathBuf>) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: String, note: &str| {
        out.push_str(&format!("{name:<12} {value:<14} {note}\n"));
    };
    line("reference", String::new(), &describe(&cmp.reference));
    line("test", String::new(), &describe(&cmp.test));
    if let Some(p) = cmp.psnr_db {
        let v = if p.is_finite() { format!("{p:.4} dB") } else { "inf dB".to_string() };
        line("psnr", v, "(data_range=1.0, mse over all pixels and channels)");
    }
    if let Some(s) = cmp.ssim {
        line("ssim", format!("{s:.6}"), &format!("({SSIM_CONVENTION})"));
    }
    if let Some(m) = cmp.ms_ssim {
        line("ms-ssim", format!("{m:.6}"), "(wang 2003, 5 scales, 2x2 average downsampling, same ssim convention)");
    }
    if let Some(d) = cmp.lpips_proxy {
        line("lpips-proxy", format!("{d:.6}"), &format!("(lower is better; {LPIPS_PROXY_DEFINITION})"));
    }
    if let (Some(d), Some(model)) = (cmp.lpips, &cmp.lpips_model) {
        line("lpips", format!("{d:.6}"), &format!("(lower is better; onnx model {})", model.display()));
    }
    line("identical", if cmp.identical { "yes" } else { "no" }.to_string(), "");
    if let Some(p) = diff {
        line("diff", String::new(), &format!("{} (viridis, top = largest error)", p.display()));
    }
    out
}

/// `quadbench compare`: the exit code (2 for any bad image or argument).
pub fn compare(a: CompareArgs) -> i32 {
    match run(&a) {
        Ok(()) => super::exit::OK,
        Err(e) => {
            // The chain, without causes that a message already quotes.
            let mut msg = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if !msg.contains(&cause) {
                    msg = if msg.is_empty() { cause } else { format!("{msg}: {cause}") };
                }
            }
            super::exit::report(&msg);
            // An unusable ONNX Runtime (for --lpips-model) is infrastructure, not bad input.
            if e.downcast_ref::<quadbench_runtime::RuntimeError>().is_some() {
                super::exit::INFRA
            } else {
                super::exit::BAD_INPUT
            }
        }
    }
}
