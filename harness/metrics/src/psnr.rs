//! PSNR in dB with data_range 1.0: 10 log10(1 / MSE), MSE over all pixels and channels.
//! The peak is the fixed data range, not the maximum of either image (AI Hub's variant).

use rayon::prelude::*;

use crate::load::{Image, MetricError, check_same_shape};

/// Samples per rayon task when summing squared errors.
const CHUNK: usize = 1 << 16;

/// Mean squared error over all samples, accumulated in f64.
pub fn mse(a: &Image, b: &Image) -> Result<f64, MetricError> {
    check_same_shape(a, b)?;
    let partial: Vec<f64> = a
        .data
        .par_chunks(CHUNK)
        .zip(b.data.par_chunks(CHUNK))
        .map(|(ca, cb)| {
            ca.iter()
                .zip(cb)
                .map(|(&x, &y)| {
                    let d = x as f64 - y as f64;
                    d * d
                })
                .sum::<f64>()
        })
        .collect();
    // Summed in chunk order so the value does not depend on scheduling.
    Ok(partial.iter().sum::<f64>() / a.data.len() as f64)
}

/// PSNR in dB for data_range 1.0. Identical images give `f64::INFINITY`.
pub fn psnr_db(a: &Image, b: &Image) -> Result<f64, MetricError> {
    let mse = mse(a, b)?;
    if mse == 0.0 {
        return Ok(f64::INFINITY);
    }
    Ok(10.0 * (1.0 / mse).log10())
}
