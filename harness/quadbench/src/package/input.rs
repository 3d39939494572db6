//! Input images as the runner reads them: decoded, centre-cropped to a square, resized to the
//! package's resolution and written as raw little-endian f32 NCHW, with a PNG preview beside it
//! for reports.

use image::imageops::FilterType;
use image::{ImageBuffer, Pixel};
use std::path::Path;

/// An input image that cannot be prepared (bad input: exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {message}")]
pub struct InputError {
    /// `input image` or `mask`.
    pub what: &'static str,
    pub path: String,
    pub message: String,
}

/// Load an image, centre-crop to square, resize to `size` and write raw f32 NCHW to `dst`.
pub fn prepare_input(src: &Path, size: u32, dst: &Path) -> Result<(), InputError> {
    let err = |m: String| InputError { what: "input image", path: src.display().to_string(), message: m };
    let resized = centre_square(&open(src, "input image")?.to_rgb32f(), size, FilterType::CatmullRom);
    let n = (size * size) as usize;
    let mut planar = vec![0f32; 3 * n];
    for (i, p) in resized.pixels().enumerate() {
        for c in 0..3 {
            planar[c * n + i] = p.0[c].clamp(0.0, 1.0);
        }
    }
    let bytes: Vec<u8> = planar.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dst, bytes).map_err(|e| err(format!("cannot write {}: {e}", dst.display())))?;
    // A viewable copy beside it, for reports.
    let png = image::RgbImage::from_fn(size, size, |x, y| {
        let i = (y * size + x) as usize;
        image::Rgb([0, 1, 2].map(|c| (planar[c * n + i] * 255.0 + 0.5) as u8))
    });
    png.save(dst.with_extension("png")).map_err(|e| err(format!("cannot write preview: {e}")))
}

/// Load a mask image, take its luminance, centre-crop to square, resize to `size` with the
/// nearest neighbour (a binary mask stays binary) and write it as a `.npy` f32 `[1, 1, H, W]` in
/// `[0, 1]` to `dst`, with a PNG preview beside it.
pub fn prepare_mask(src: &Path, size: u32, dst: &Path) -> Result<(), InputError> {
    let err = |m: String| InputError { what: "mask", path: src.display().to_string(), message: m };
    let resized = centre_square(&open(src, "mask")?.to_luma32f(), size, FilterType::Nearest);
    let data: Vec<f32> = resized.pixels().map(|p| p.0[0].clamp(0.0, 1.0)).collect();
    let a = quadbench_protocol::npy::NpyArray::from_f32(vec![1, 1, size as usize, size as usize], &data);
    std::fs::write(dst, a.to_bytes()).map_err(|e| err(format!("cannot write {}: {e}", dst.display())))?;
    let png = image::GrayImage::from_fn(size, size, |x, y| {
        image::Luma([(data[(y * size + x) as usize] * 255.0 + 0.5) as u8])
    });
    png.save(dst.with_extension("png")).map_err(|e| err(format!("cannot write preview: {e}")))
}

/// Decode an image file: regular files only, and no larger than compare accepts
/// (QUADBENCH_MAX_IMAGE_PIXELS); an empty image is an error.
fn open(src: &Path, what: &'static str) -> Result<image::DynamicImage, InputError> {
    let err = |m: String| InputError { what, path: src.display().to_string(), message: m };
    let limits = quadbench_metrics::ImageLimits::from_env().map_err(|e| err(e.to_string()))?;
    let img = quadbench_metrics::open_image(src, &limits).map_err(|e| err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("image is empty".into()));
    }
    Ok(img)
}

/// The centred square of `img`, resized to `size` x `size` with `filter`.
fn centre_square<P: Pixel<Subpixel = f32> + 'static>(
    img: &ImageBuffer<P, Vec<f32>>,
    size: u32,
    filter: FilterType,
) -> ImageBuffer<P, Vec<f32>> {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let cropped = image::imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    image::imageops::resize(&cropped, size, size, filter)
}
