//! LPIPS through a user-supplied ONNX model, run by a dynamically loaded ONNX Runtime
//! (cargo feature `lpips-onnx`). The real LPIPS needs pretrained network weights that this crate
//! does not ship; the model file brings them.
//!
//! Model contract: exactly two float inputs in graph order (reference, then test), each NCHW
//! `1 x 3 x height x width` with samples mapped from [0, 1] to [-1, 1] (`2v - 1`); gray images are
//! repeated into three channels. The first output must be a scalar or a 1-element float tensor;
//! lower means more similar.
//!
//! Runtime: ort 2.0.0-rc.15 needs an [`ort::environment::Environment`] handle to build sessions
//! (it does not expose the one `ort::init_from(..).build()` creates), so either call
//! [`init_onnx_runtime`] once and use [`lpips_onnx`], or build your own environment and call
//! [`lpips_onnx_with_env`].

use std::path::{Path, PathBuf};

use crate::load::{Image, MetricError};

/// Errors of the ONNX LPIPS path.
#[derive(Debug, thiserror::Error)]
pub enum LpipsError {
    #[error(
        "lpips needs quadbench-metrics built with the `lpips-onnx` cargo feature; rebuild with --features lpips-onnx or leave lpips out"
    )]
    FeatureDisabled,
    #[error(
        "onnx runtime is not initialised; call quadbench_metrics::init_onnx_runtime(<path to libonnxruntime.so>) before lpips"
    )]
    NotInitialised,
    #[error(
        "cannot load onnx runtime from {}: {message}; point it at a libonnxruntime.so of version 1.24 or newer",
        lib.display()
    )]
    Runtime { lib: PathBuf, message: String },
    #[error(
        "cannot load lpips model {}: {message}; pass an onnx file with two NCHW float inputs",
        path.display()
    )]
    Model { path: PathBuf, message: String },
    #[error(
        "lpips model {} has {inputs} input(s); it needs exactly two (reference, test) NCHW float inputs in [-1, 1]",
        path.display()
    )]
    Inputs { path: PathBuf, inputs: usize },
    #[error(
        "lpips model {} failed on 1x3x{height}x{width} inputs: {message}; check the input shapes the model accepts",
        path.display()
    )]
    Run { path: PathBuf, width: u32, height: u32, message: String },
    #[error(
        "lpips model {} returned {len} values; it must return a scalar or a 1-element float tensor",
        path.display()
    )]
    Output { path: PathBuf, len: usize },
    #[error(transparent)]
    Metric(#[from] MetricError),
}

/// The model input for one image: NCHW `1x3xHxW` (gray repeated), samples mapped to [-1, 1] by `2v - 1`.
pub fn to_nchw_pm1(im: &Image) -> Vec<f32> {
    let (hw, c) = (im.width as usize * im.height as usize, im.channels as usize);
    let mut out = vec![0.0f32; 3 * hw];
    for (plane, dst) in out.chunks_exact_mut(hw).enumerate() {
        let src = if c == 1 { 0 } else { plane };
        for (p, d) in dst.iter_mut().enumerate() {
            *d = 2.0 * im.data[p * c + src] - 1.0;
        }
    }
    out
}

#[cfg(feature = "lpips-onnx")]
mod imp {
    use std::path::Path;
    use std::sync::OnceLock;

    use ort::environment::Environment;
    use ort::session::Session;
    use ort::value::Tensor;

    use super::{LpipsError, to_nchw_pm1};
    use crate::load::{Image, check_same_shape};

    static ENV: OnceLock<Environment> = OnceLock::new();

    /// Loads ONNX Runtime from `lib` (e.g. `libonnxruntime.so.1.31.1`) and keeps one process-wide
    /// environment for [`lpips_onnx`]. Calling it again is a no-op.
    pub fn init_onnx_runtime(lib: &Path) -> Result<(), LpipsError> {
        if ENV.get().is_some() {
            return Ok(());
        }
        let err = |message: String| LpipsError::Runtime { lib: lib.to_path_buf(), message };
        // A truncated library would crash the process with SIGBUS inside dlopen.
        quadbench_native::check_shared_library(lib).map_err(|e| err(e.to_string()))?;
        let builder = ort::init_from(lib).map_err(|e| err(e.to_string()))?;
        let env = builder.with_name("quadbench-metrics").build().map_err(|e| err(e.to_string()))?;
        // A concurrent initialiser may have won; its environment is equivalent.
        let _ = ENV.set(env);
        Ok(())
    }

    /// LPIPS distance from the model at `model` (see module docs), using the environment of
    /// [`init_onnx_runtime`].
    pub fn lpips_onnx(model: &Path, a: &Image, b: &Image) -> Result<f64, LpipsError> {
        let env = ENV.get().ok_or(LpipsError::NotInitialised)?;
        lpips_onnx_with_env(env, model, a, b)
    }

    /// Same as [`lpips_onnx`] with a caller-owned ONNX Runtime environment.
    pub fn lpips_onnx_with_env(env: &Environment, model: &Path, a: &Image, b: &Image) -> Result<f64, LpipsError> {
        check_same_shape(a, b)?;
        let path = model.to_path_buf();
        let model_err = |e: ort::Error| LpipsError::Model { path: path.clone(), message: e.to_string() };
        let mut session = Session::builder(env).map_err(model_err)?.commit_from_file(model).map_err(model_err)?;
        if session.inputs().len() != 2 {
            return Err(LpipsError::Inputs { path, inputs: session.inputs().len() });
        }
        let (w, h) = (a.width, a.height);
        let run_err =
            |e: ort::Error| LpipsError::Run { path: path.clone(), width: w, height: h, message: e.to_string() };
        let shape = [1usize, 3, h as usize, w as usize];
        let ta = Tensor::from_array((shape, to_nchw_pm1(a))).map_err(run_err)?;
        let tb = Tensor::from_array((shape, to_nchw_pm1(b))).map_err(run_err)?;
        let outputs = session.run(ort::inputs![ta, tb]).map_err(run_err)?;
        let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(run_err)?;
        match values {
            [v] => Ok(*v as f64),
            _ => Err(LpipsError::Output { path, len: values.len() }),
        }
    }
}

#[cfg(feature = "lpips-onnx")]
pub use imp::{init_onnx_runtime, lpips_onnx, lpips_onnx_with_env};

/// Without the `lpips-onnx` feature there is no runtime to load.
#[cfg(not(feature = "lpips-onnx"))]
pub fn init_onnx_runtime(_lib: &Path) -> Result<(), LpipsError> {
    Err(LpipsError::FeatureDisabled)
}

/// Used by `compare`: the feature-gated call, or [`LpipsError::FeatureDisabled`].
pub(crate) fn lpips_for_compare(model: &Path, a: &Image, b: &Image) -> Result<f64, LpipsError> {
    #[cfg(feature = "lpips-onnx")]
    {
        imp::lpips_onnx(model, a, b)
    }
    #[cfg(not(feature = "lpips-onnx"))]
    {
        let _ = (model, a, b);
        Err(LpipsError::FeatureDisabled)
    }
}

/// Whether this build can run ONNX LPIPS models.
pub const LPIPS_ONNX_ENABLED: bool = cfg!(feature = "lpips-onnx");
