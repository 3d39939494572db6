//! Quality of a tensor output against a golden tensor: max abs error, RMSE, PSNR over the whole
//! tensor with a stated data range (`10 log10(range^2 / MSE)`), cosine similarity. For outputs
//! that are not images (latents, features) and for checking an import against the framework.

use serde::Serialize;

/// Scores of one tensor against its golden.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorScores {
    pub elements: usize,
    pub max_abs_error: f64,
    pub rmse: f64,
    /// `None` when the tensors are identical (no finite PSNR).
    pub psnr_db: Option<f64>,
    /// The data range PSNR was computed with.
    pub data_range: f64,
    /// `None` when either tensor is all zeros.
    pub cosine: Option<f64>,
}

impl TensorScores {
    /// Compare `got` with `golden`; shapes must be equal (leading 1s aside), values finite.
    pub fn compare(
        golden: &[f32],
        golden_shape: &[usize],
        got: &[f32],
        got_shape: &[usize],
        data_range: f64,
    ) -> Result<TensorScores, String> {
        let squeeze = |s: &[usize]| s.iter().copied().skip_while(|&d| d == 1).collect::<Vec<_>>();
        if squeeze(golden_shape) != squeeze(got_shape) || golden.len() != got.len() {
            return Err(format!("shape {got_shape:?} does not match the golden's {golden_shape:?}"));
        }
        if golden.is_empty() {
            return Err("empty tensors".into());
        }
        if !(data_range > 0.0 && data_range.is_finite()) {
            return Err(format!("data range {data_range} must be positive"));
        }
        if golden.iter().chain(got).any(|v| !v.is_finite()) {
            return Err("a tensor holds NaN or infinite values".into());
        }
        let (mut max, mut se, mut dot, mut ng, mut nt) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for (&g, &t) in golden.iter().zip(got) {
            let (g, t) = (g as f64, t as f64);
            max = max.max((g - t).abs());
            se += (g - t) * (g - t);
            dot += g * t;
            ng += g * g;
            nt += t * t;
        }
        let mse = se / golden.len() as f64;
        Ok(TensorScores {
            elements: golden.len(),
            max_abs_error: max,
            rmse: mse.sqrt(),
            psnr_db: (mse > 0.0).then(|| 10.0 * (data_range * data_range / mse).log10()),
            data_range,
            cosine: (ng > 0.0 && nt > 0.0).then(|| dot / (ng.sqrt() * nt.sqrt())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        let s = TensorScores::compare(&[0.0, 1.0, 0.5, 0.5], &[1, 4], &[0.0, 1.0, 0.6, 0.3], &[4], 1.0).unwrap();
        assert_eq!(s.elements, 4);
        assert!((s.max_abs_error - 0.2).abs() < 1e-6);
        // MSE = (0.01 + 0.04) / 4 = 0.0125
        assert!((s.rmse - 0.0125f64.sqrt()).abs() < 1e-6);
        assert!((s.psnr_db.unwrap() - 10.0 * (1.0 / 0.0125f64).log10()).abs() < 1e-4);
        let same = TensorScores::compare(&[1.0, 2.0], &[2], &[1.0, 2.0], &[2], 2.0).unwrap();
        assert_eq!((same.psnr_db, same.max_abs_error), (None, 0.0));
        assert!((same.cosine.unwrap() - 1.0).abs() < 1e-12);
        let opposite = TensorScores::compare(&[1.0, 0.0], &[2], &[-1.0, 0.0], &[2], 1.0).unwrap();
        assert!((opposite.cosine.unwrap() + 1.0).abs() < 1e-12);
        assert!(TensorScores::compare(&[1.0, 2.0], &[2], &[1.0, 2.0, 3.0], &[3], 1.0).is_err());
        assert!(TensorScores::compare(&[f32::NAN], &[1], &[1.0], &[1], 1.0).is_err());
    }
}
