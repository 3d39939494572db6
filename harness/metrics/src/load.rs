//! Image loading and pair preparation: owns the [`Image`] type (samples scaled to [0, 1]), the
//! decoding of files in every format the `image` crate was built with (PNG, JPEG, TIFF here),
//! and the checks that make two images comparable (same size, same channel count).
//!
//! Nothing here resizes or converts colour spaces behind the caller's back: an alpha channel is
//! dropped and a gray image is broadcast to RGB only with a [`Warning`] saying so.
//!
//! Every decode is bounded by [`ImageLimits`]: only regular files are opened (a FIFO or a
//! symlink to `/dev/zero` would block or never end), and an image whose header claims more than
//! `max_pixels` pixels is refused before anything of its size is allocated (a 69-byte PNG can
//! claim 100000x100000, a 120 GB buffer).

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use quadbench_native::{FileError, open_regular};
use serde::{Serialize, Serializer};

/// Default largest image the tool decodes: 8192x8192 = 67,108,864 pixels (any shape).
///
/// `quadbench compare` peaks at about [`COMPARE_BYTES_PER_PIXEL`] bytes per pixel, so the default
/// bounds a comparison at about 2.7 GB (measured 2.62 GB on an 8192x8192 pair), within reach of an
/// 8 GB laptop, while covering every output of the generative models benchmarked here (at most
/// 4096x4096) and 8K frames (7680x4320, 33 Mpx). Larger images (100+ MP camera sensors, a
/// 20000x20000 scan: 400 Mpx, ~16 GB) need the limit raised explicitly.
pub const DEFAULT_MAX_PIXELS: u64 = 8192 * 8192;

/// Environment variable overriding [`DEFAULT_MAX_PIXELS`] (a whole number of pixels).
pub const MAX_PIXELS_ENV: &str = "QUADBENCH_MAX_IMAGE_PIXELS";

/// Peak resident memory of `quadbench compare` (default metrics) per pixel of one image of the
/// pair, measured on random 8-bit RGB pairs: 40.8 B/px at 2048x2048, 39.4 at 4096x4096, 39.1 at
/// 8192x8192, i.e. 13x the 3-byte decoded pixel (the two f32 images alone are 24 B/px; 16-bit
/// images cost the same once widened to f32). Used for the estimate in the limit's message.
pub const COMPARE_BYTES_PER_PIXEL: u64 = 40;

/// Bounds on what an image file may make the decoder allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest `width * height` accepted; larger images are refused before they are decoded.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

/// A malformed limit.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{origin}={value:?} is not a positive whole number of pixels; set e.g. {origin}=400000000, or leave it unset for the default {DEFAULT_MAX_PIXELS}"
)]
pub struct LimitError {
    pub origin: String,
    pub value: String,
}

impl ImageLimits {
    /// Limits with `max_pixels` (at least 1).
    pub fn new(max_pixels: u64) -> Self {
        ImageLimits { max_pixels: max_pixels.max(1) }
    }

    /// `QUADBENCH_MAX_IMAGE_PIXELS` when set (digits, `_` allowed as a separator), else the default.
    pub fn from_env() -> Result<Self, LimitError> {
        match std::env::var(MAX_PIXELS_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v, MAX_PIXELS_ENV),
            _ => Ok(Self::default()),
        }
    }

    /// Parses a pixel count given as `origin` (named in the error).
    pub fn parse(value: &str, origin: &str) -> Result<Self, LimitError> {
        let digits: String = value.trim().chars().filter(|&c| c != '_').collect();
        match digits.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Self::new(n)),
            _ => Err(LimitError { origin: origin.to_string(), value: value.to_string() }),
        }
    }

    /// Refuses `width x height` when it has more pixels than allowed.
    pub fn check(&self, path: &Path, width: u32, height: u32) -> Result<(), LoadError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(LoadError::TooLarge { path: path.to_path_buf(), width, height, max_pixels: self.max_pixels });
        }
        Ok(())
    }

    /// The `image` crate's limits for a decoder: no single allocation of the decoder beyond what
    /// the largest accepted image needs as RGBA f32 (16 bytes per pixel).
    fn decoder_limits(&self) -> image::Limits {
        let mut limits = image::Limits::no_limits();
        limits.max_alloc = Some(self.max_pixels.saturating_mul(16));
        limits
    }
}

/// A decoded image: interleaved samples (row-major, `channels` per pixel) scaled to [0, 1].
///
/// 8-bit sources are divided by 255, 16-bit by 65535, float sources are kept as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// 1 (gray) or 3 (RGB); alpha is never kept.
    pub channels: u8,
    /// Bits per sample of the source (8, 16 or 32 for float); informational after scaling.
    pub bit_depth: u8,
    pub data: Vec<f32>,
}

impl Image {
    /// Builds an image from samples already in [0, 1], checking the shape.
    pub fn new(width: u32, height: u32, channels: u8, bit_depth: u8, data: Vec<f32>) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        if channels != 1 && channels != 3 {
            return Err(ImageError::Channels { channels });
        }
        let expected = width as usize * height as usize * channels as usize;
        if data.len() != expected {
            return Err(ImageError::Length { width, height, channels, expected, got: data.len() });
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(ImageError::NotFinite { index });
        }
        Ok(Self { width, height, channels, bit_depth, data })
    }

    /// Number of samples per row (`width * channels`).
    pub fn row_len(&self) -> usize {
        self.width as usize * self.channels as usize
    }

    /// Size in bytes of the decoded source at its own bit depth (e.g. w*h*3 for 8-bit RGB).
    pub fn decoded_bytes(&self) -> usize {
        self.data.len() * (self.bit_depth as usize).div_ceil(8)
    }

    /// A copy with the gray channel repeated three times (no-op for RGB).
    pub fn to_rgb(&self) -> Image {
        if self.channels == 3 {
            return self.clone();
        }
        let data = self.data.iter().flat_map(|&v| [v, v, v]).collect();
        Image { channels: 3, data, ..*self }
    }
}

/// Shape errors of [`Image::new`].
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image is {width}x{height}: an image needs at least one pixel; pass non-empty data")]
    Empty { width: u32, height: u32 },
    #[error("image has {channels} channels: only 1 (gray) or 3 (rgb) are supported; drop alpha or convert first")]
    Channels { channels: u8 },
    #[error(
        "image data has {got} samples but {width}x{height}x{channels} needs {expected}; pass interleaved row-major samples"
    )]
    Length { width: u32, height: u32, channels: u8, expected: usize, got: usize },
    #[error("image sample {index} is NaN or infinite; fix the producer of the image")]
    NotFinite { index: usize },
}

/// Errors of [`load_image`]; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot open image {}: {source}; check the path and its permissions", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("image {source}")]
    NotRegular { source: FileError },
    #[error(
        "image {} is {width}x{height} ({} pixels), over the limit of {max_pixels} pixels: comparing it would need about {:.1} GB of memory; if this machine has it, raise the limit with --max-pixels {} (compare) or {MAX_PIXELS_ENV}={}, else crop or downscale the image",
        path.display(), *width as u64 * *height as u64,
        (*width as u64 * *height as u64 * COMPARE_BYTES_PER_PIXEL) as f64 / 1e9,
        *width as u64 * *height as u64, *width as u64 * *height as u64
    )]
    TooLarge { path: PathBuf, width: u32, height: u32, max_pixels: u64 },
    #[error(
        "decoding image {} needs more memory than the limit of {max_pixels} pixels allows ({source}); raise it with --max-pixels (compare) or {MAX_PIXELS_ENV} if the image is genuine",
        path.display()
    )]
    DecoderLimit { path: PathBuf, max_pixels: u64, source: image::ImageError },
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(
        "cannot decode image {}: {source}; the file is truncated, corrupt or not png/jpeg/tiff, re-export it",
        path.display()
    )]
    Decode { path: PathBuf, source: image::ImageError },
    #[error("image {} is {width}x{height}: it has no pixels; re-export it", path.display())]
    Empty { path: PathBuf, width: u32, height: u32 },
    #[error(
        "image {} contains NaN or infinite values (first at sample {index}); fix the program that wrote it",
        path.display()
    )]
    NotFinite { path: PathBuf, index: usize },
}

/// Something the caller should know about but that does not stop a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// The file had an alpha channel; it was dropped (not composited).
    AlphaDropped { path: PathBuf },
    /// A gray image was repeated into three channels to compare with an RGB one.
    GrayBroadcast { which: &'static str },
    /// The two images have different bit depths; both were scaled to [0, 1] first.
    BitDepthDiffers { reference_bits: u8, test_bits: u8 },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::AlphaDropped { path } => {
                write!(f, "alpha channel of {} dropped (not composited)", path.display())
            }
            Warning::GrayBroadcast { which } => {
                write!(f, "{which} image is gray: broadcast to 3 channels to compare with rgb")
            }
            Warning::BitDepthDiffers { reference_bits, test_bits } => write!(
                f,
                "bit depths differ (reference {reference_bits}-bit, test {test_bits}-bit): both scaled to [0, 1]"
            ),
        }
    }
}

impl Serialize for Warning {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An image and the warnings produced while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: Image,
    pub warnings: Vec<Warning>,
}

/// A decoder for `path` (format from its content, else its extension) whose header has been
/// read and whose size is within `limits`; nothing of the image's size is allocated yet.
fn bounded_decoder(path: &Path, limits: &ImageLimits) -> Result<impl ImageDecoder, LoadError> {
    let file = open_regular(path).map_err(|e| match e {
        FileError::Open { source, .. } => LoadError::Open { path: path.to_path_buf(), source },
        e @ FileError::NotRegular { .. } => LoadError::NotRegular { source: e },
    })?;
    let mut reader = ImageReader::new(BufReader::new(file));
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader =
        reader.with_guessed_format().map_err(|source| LoadError::Open { path: path.to_path_buf(), source })?;
    reader.limits(limits.decoder_limits());
    let decoder = reader.into_decoder().map_err(|e| decode_error(path, limits, e))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(LoadError::Empty { path: path.to_path_buf(), width, height });
    }
    limits.check(path, width, height)?;
    Ok(decoder)
}

fn decode_error(path: &Path, limits: &ImageLimits, source: image::ImageError) -> LoadError {
    match source {
        image::ImageError::Limits(_) => {
            LoadError::DecoderLimit { path: path.to_path_buf(), max_pixels: limits.max_pixels, source }
        }
        source => LoadError::Decode { path: path.to_path_buf(), source },
    }
}

/// Decodes `path` as the `image` crate's [`DynamicImage`], within `limits` and from a regular
/// file only (for callers that resize or crop, e.g. the host's input preparation).
pub fn open_image(path: &Path, limits: &ImageLimits) -> Result<DynamicImage, LoadError> {
    let decoder = bounded_decoder(path, limits)?;
    DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, limits, e))
}

/// [`load_image_with`] under the limits of the environment ([`ImageLimits::from_env`]).
pub fn load_image(path: &Path) -> Result<Loaded, LoadError> {
    load_image_with(path, &ImageLimits::from_env()?)
}

/// Loads a file in any format the `image` crate reads (guessed from content, then extension),
/// refusing special files and images over `limits` before decoding them.
///
/// The decoder writes straight into the memory of the final `Vec<f32>` and the samples are
/// widened in place, so loading needs no second full-size buffer: peak memory is the f32 image.
pub fn load_image_with(path: &Path, limits: &ImageLimits) -> Result<Loaded, LoadError> {
    let decode_err = |source| decode_error(path, limits, source);
    let decoder = bounded_decoder(path, limits)?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let (channels_in, bytes_per_sample) =
        (color.channel_count() as usize, color.bytes_per_pixel() as usize / color.channel_count() as usize);
    let samples_in = width as usize * height as usize * channels_in;
    let mut data = vec![0.0f32; samples_in];
    {
        // SAFETY: an f32 slice is valid as bytes (no padding, any alignment is fine for u8), and
        // samples_in * bytes_per_sample <= samples_in * 4 because bytes_per_sample is 1, 2 or 4.
        let bytes = unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), samples_in * 4) };
        decoder.read_image(&mut bytes[..samples_in * bytes_per_sample]).map_err(decode_err)?;
    }
    match bytes_per_sample {
        1 => widen_in_place::<1>(&mut data, |b| (b[0] as f64 / 255.0) as f32),
        2 => widen_in_place::<2>(&mut data, |b| (u16::from_ne_bytes([b[0], b[1]]) as f64 / 65535.0) as f32),
        _ => {} // 32-bit float samples are already in place
    }
    let has_alpha = color.has_alpha();
    let channels_out = if has_alpha { channels_in - 1 } else { channels_in };
    if has_alpha {
        // Forward compaction never overwrites an unread sample: destination index <= source index.
        for px in 0..width as usize * height as usize {
            for ch in 0..channels_out {
                data[px * channels_out + ch] = data[px * channels_in + ch];
            }
        }
        data.truncate(width as usize * height as usize * channels_out);
        data.shrink_to_fit();
    }
    if let Some(index) = data.iter().position(|v| !v.is_finite()) {
        return Err(LoadError::NotFinite { path: path.to_path_buf(), index });
    }
    let bit_depth = (bytes_per_sample * 8) as u8;
    let mut warnings = Vec::new();
    if has_alpha {
        warnings.push(Warning::AlphaDropped { path: path.to_path_buf() });
    }
    Ok(Loaded { image: Image { width, height, channels: channels_out as u8, bit_depth, data }, warnings })
}

/// Widens the `data.len()` samples of `B` bytes each, stored packed at the start of `data`'s
/// memory, into f32 values in place. Works backwards in blocks: block `[i0, i0 + n)` is copied
/// out before its f32 values (bytes `4 * i0 ..`) are written, and those bytes lie at or after
/// `B * i0`, so no unread sample is overwritten.
fn widen_in_place<const B: usize>(data: &mut [f32], widen: impl Fn(&[u8]) -> f32) {
    const BLOCK: usize = 4096;
    let len = data.len();
    let mut scratch = [0u8; BLOCK * 4];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let n = end - start;
        {
            // SAFETY: reads bytes [B*start, B*end) of data's own allocation (len * 4 bytes long).
            let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), len * 4) };
            scratch[..n * B].copy_from_slice(&bytes[start * B..end * B]);
        }
        for (dst, src) in data[start..end].iter_mut().zip(scratch[..n * B].chunks_exact(B)) {
            *dst = widen(src);
        }
        end = start;
    }
}

/// Converts a decoded image, dropping alpha (with a warning) and scaling to [0, 1].
pub fn from_dynamic(decoded: DynamicImage, path: &Path) -> Result<Loaded, LoadError> {
    let (width, height) = (decoded.width(), decoded.height());
    if width == 0 || height == 0 {
        return Err(LoadError::Empty { path: path.to_path_buf(), width, height });
    }
    let has_alpha = decoded.color().has_alpha();
    // Scaling multiplies by the reciprocal in f64 then rounds once, so k/255 is the f32 nearest
    // to the exact quotient (what numpy's float64 division gives, rounded to f32).
    let u8s = |v: u8| (v as f64 / 255.0) as f32;
    let u16s = |v: u16| (v as f64 / 65535.0) as f32;
    let (channels, bit_depth, data): (u8, u8, Vec<f32>) = match decoded {
        DynamicImage::ImageLuma8(im) => (1, 8, im.into_raw().into_iter().map(u8s).collect()),
        DynamicImage::ImageLumaA8(im) => (1, 8, im.into_raw().chunks_exact(2).map(|p| u8s(p[0])).collect()),
        DynamicImage::ImageRgb8(im) => (3, 8, im.into_raw().into_iter().map(u8s).collect()),
        DynamicImage::ImageRgba8(im) => {
            (3, 8, im.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).map(u8s).collect())
        }
        DynamicImage::ImageLuma16(im) => (1, 16, im.into_raw().into_iter().map(u16s).collect()),
        DynamicImage::ImageLumaA16(im) => (1, 16, im.into_raw().chunks_exact(2).map(|p| u16s(p[0])).collect()),
        DynamicImage::ImageRgb16(im) => (3, 16, im.into_raw().into_iter().map(u16s).collect()),
        DynamicImage::ImageRgba16(im) => {
            (3, 16, im.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).map(u16s).collect())
        }
        DynamicImage::ImageRgb32F(im) => (3, 32, im.into_raw()),
        DynamicImage::ImageRgba32F(im) => {
            (3, 32, im.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect())
        }
        // Variants added to the non-exhaustive enum later: go through the float RGB path.
        other => (3, 32, other.into_rgb32f().into_raw()),
    };
    if let Some(index) = data.iter().position(|v| !v.is_finite()) {
        return Err(LoadError::NotFinite { path: path.to_path_buf(), index });
    }
    let mut warnings = Vec::new();
    if has_alpha {
        warnings.push(Warning::AlphaDropped { path: path.to_path_buf() });
    }
    Ok(Loaded { image: Image { width, height, channels, bit_depth, data }, warnings })
}

/// Errors raised when two images cannot be compared pixel by pixel, or are too small for a metric.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error(
        "image sizes differ: reference is {ref_width}x{ref_height}, test is {test_width}x{test_height}; metrics compare pixel by pixel and never resize, so produce the test image at the reference size"
    )]
    SizeMismatch { ref_width: u32, ref_height: u32, test_width: u32, test_height: u32 },
    #[error(
        "channel counts differ: reference has {ref_channels} ({}), test has {test_channels} ({}); pass allow_gray_rgb (--allow-gray-rgb) to broadcast the gray image to rgb, or convert one image",
        kind(*ref_channels), kind(*test_channels)
    )]
    ChannelMismatch { ref_channels: u8, test_channels: u8 },
    #[error(
        "{metric} needs images of at least {min_px}x{min_px} pixels, got {width}x{height}; compare larger images or leave {metric} out"
    )]
    TooSmall { metric: &'static str, min_px: u32, width: u32, height: u32 },
    #[error(
        "image data does not match its shape ({width}x{height}x{channels} needs {expected} samples, got {got}); build images with Image::new"
    )]
    BadShape { width: u32, height: u32, channels: u8, expected: usize, got: usize },
}

fn kind(channels: u8) -> &'static str {
    if channels == 1 { "gray" } else { "rgb" }
}

fn check_same_size(a: &Image, b: &Image) -> Result<(), MetricError> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(MetricError::SizeMismatch {
            ref_width: a.width,
            ref_height: a.height,
            test_width: b.width,
            test_height: b.height,
        });
    }
    Ok(())
}

/// Checks that two images can be compared sample by sample (used by every metric).
pub fn check_same_shape(a: &Image, b: &Image) -> Result<(), MetricError> {
    for im in [a, b] {
        let expected = im.width as usize * im.height as usize * im.channels as usize;
        if im.data.len() != expected {
            return Err(MetricError::BadShape {
                width: im.width,
                height: im.height,
                channels: im.channels,
                expected,
                got: im.data.len(),
            });
        }
    }
    check_same_size(a, b)?;
    if a.channels != b.channels {
        return Err(MetricError::ChannelMismatch { ref_channels: a.channels, test_channels: b.channels });
    }
    Ok(())
}

/// Makes a reference/test pair comparable: same size (else error), same channel count (gray is
/// broadcast to RGB only when `allow_gray_rgb`), and a warning when the bit depths differ.
pub fn prepare_pair(
    reference: Image,
    test: Image,
    allow_gray_rgb: bool,
) -> Result<(Image, Image, Vec<Warning>), MetricError> {
    let mut warnings = Vec::new();
    // Before any gray-to-RGB conversion: a size mismatch needs no work to report.
    check_same_size(&reference, &test)?;
    let (reference, test) = match (reference.channels, test.channels) {
        (1, 3) | (3, 1) if allow_gray_rgb => {
            let which = if reference.channels == 1 { "reference" } else { "test" };
            warnings.push(Warning::GrayBroadcast { which });
            (reference.to_rgb(), test.to_rgb())
        }
        _ => (reference, test),
    };
    check_same_shape(&reference, &test)?;
    if reference.bit_depth != test.bit_depth {
        warnings.push(Warning::BitDepthDiffers { reference_bits: reference.bit_depth, test_bits: test.bit_depth });
    }
    Ok((reference, test, warnings))
}
