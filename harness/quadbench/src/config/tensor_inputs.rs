//! A scenario's per-request tensor inputs (`tensor_inputs: [FILE, ...]`): the values of the
//! package's `source: tensor` stage inputs, one `.npz`, `.npy` or `.safetensors` per request
//! input, arrays named by graph input. Files are read and counted at scenario load; checked
//! against the package's inputs (every `source: tensor` input present with its shape and dtype)
//! once the package is resolved, before any device is touched; staged as the typed `.npy` files
//! the runner reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quadbench_protocol::Source;

use crate::npy;
use crate::package::Manifest;
use crate::yaml::YamlError;
use quadbench_protocol::npy::NpyArray;

/// One `.npz` of `tensor_inputs`, read.
#[derive(Debug, Clone)]
pub struct TensorInputFile {
    /// As written in the scenario (locates errors).
    pub written: String,
    pub path: PathBuf,
    pub arrays: BTreeMap<String, NpyArray>,
    /// sha256 of the file (resume compares it).
    pub sha256: String,
}

/// Read `tensor_inputs` (paths relative to the scenario). There is either one file (fed with
/// every input image) or one per image, in the order of `inputs` (the k-th file goes with the
/// k-th image, so each request input, and each output scored, is one image with its tensors).
pub fn load(
    path: &Path,
    text: &str,
    raw: &[String],
    base: &Path,
    images: usize,
) -> Result<Vec<TensorInputFile>, YamlError> {
    if images > 0 && !raw.is_empty() && raw.len() != 1 && raw.len() != images {
        return Err(YamlError::at(
            path,
            text,
            "tensor_inputs:",
            format!("{} tensor input files listed for {images} input images", raw.len()),
            "list one .npz (fed with every image) or one per entry of `inputs`, in the same order",
        ));
    }
    raw.iter()
        .map(|w| {
            let p = base.join(w);
            if !p.is_file() {
                return Err(YamlError::at(
                    path,
                    text,
                    w,
                    format!("tensor input file `{w}` not found ({})", p.display()),
                    "give a .npz path relative to the scenario file",
                ));
            }
            let arrays = npy::read_tensor_file(&p).map_err(|e| {
                YamlError::at(
                    path,
                    text,
                    w,
                    format!("cannot read tensor input file: {e}"),
                    "write it with numpy.savez, numpy.save or safetensors.numpy.save_file",
                )
            })?;
            let sha256 = crate::package::manifest::sha256_file(&p).map_err(|e| {
                YamlError::at(
                    path,
                    text,
                    w,
                    format!("cannot read tensor input file: {e}"),
                    "check the file's permissions",
                )
            })?;
            Ok(TensorInputFile { written: w.clone(), path: p, arrays, sha256 })
        })
        .collect()
}

/// Request input names of a scenario without images: each file's stem (`t500.npz` -> `t500`),
/// unique and safe in file names.
pub fn request_names(path: &Path, text: &str, files: &[TensorInputFile]) -> Result<Vec<(String, PathBuf)>, YamlError> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for f in files {
        let stem = f.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if !crate::safe_name(&stem) || out.iter().any(|(n, _)| n == &stem) {
            return Err(YamlError::at(
                path,
                text,
                &f.written,
                format!(
                    "tensor input file `{}` cannot name a request input (`{stem}` is repeated or not a safe name)",
                    f.written
                ),
                &format!(
                    "without `inputs`, each file's stem names a request; rename the files with {}",
                    crate::SAFE_NAME_CHARS
                ),
            ));
        }
        out.push((stem, f.path.clone()));
    }
    Ok(out)
}

/// Each file against the package's `source: tensor` inputs: every one present (by graph input
/// name) with the package's shape and finite values. A package with such inputs and a scenario without files is
/// refused here too, naming the input (the runner would fail every run on it).
pub fn check(sc_path: &Path, files: &[TensorInputFile], m: &Manifest) -> Result<(), YamlError> {
    let text = std::fs::read_to_string(sc_path).unwrap_or_default();
    let wanted = tensor_inputs(m);
    if files.is_empty() {
        if let Some((name, ..)) = wanted.first() {
            return Err(YamlError::at(
                sc_path,
                &text,
                "inputs:",
                format!(
                    "the package's stage input `{name}` is a per-request tensor (`source: tensor`) and the scenario feeds none"
                ),
                &format!("add `tensor_inputs: [FILE.npz]` with an array named `{name}`"),
            ));
        }
        return Ok(());
    }
    if wanted.is_empty() {
        return Err(YamlError::at(
            sc_path,
            &text,
            "tensor_inputs:",
            "the package has no per-request tensor input (`source: tensor`) to feed".into(),
            "remove `tensor_inputs`",
        ));
    }
    for f in files {
        for (name, shape, dtype) in &wanted {
            let a = f.arrays.get(name).ok_or_else(|| {
                let known: Vec<&str> = f.arrays.keys().map(String::as_str).collect();
                YamlError::at(
                    sc_path,
                    &text,
                    &f.written,
                    format!("{}: no array `{name}` (a per-request tensor input of the package)", f.path.display()),
                    &crate::yaml::nearest(name, known.iter().copied())
                        .map(|n| format!("rename array `{n}` to `{name}`?"))
                        .unwrap_or_else(|| format!("add an array `{name}`; arrays: {}", known.join(", "))),
                )
            })?;
            if &a.shape != shape || a.dtype != *dtype {
                return Err(YamlError::at(
                    sc_path,
                    &text,
                    &f.written,
                    format!(
                        "{}: `{name}` is {} {:?}, the package needs {} {shape:?}",
                        f.path.display(),
                        a.dtype.as_str(),
                        a.shape,
                        dtype.as_str()
                    ),
                    &format!("save `{name}` as x.reshape({shape:?}).astype(np.{})", dtype.numpy_name()),
                ));
            }
            if a.to_f64().iter().any(|v| !v.is_finite()) {
                return Err(YamlError::at(
                    sc_path,
                    &text,
                    &f.written,
                    format!("{}: `{name}` holds NaN or infinite values", f.path.display()),
                    "feed finite values (the runner refuses them too)",
                ));
            }
        }
    }
    Ok(())
}

/// The package's `source: tensor` inputs: (graph input name, shape, dtype), each name once.
fn tensor_inputs(m: &Manifest) -> Vec<(String, Vec<usize>, quadbench_protocol::DType)> {
    let mut out: Vec<(String, Vec<usize>, quadbench_protocol::DType)> = Vec::new();
    for i in m.pipeline.stages.iter().flat_map(|s| &s.inputs).filter(|i| i.source == Source::Tensor) {
        if !out.iter().any(|(n, ..)| n == &i.tensor.name) {
            out.push((i.tensor.name.clone(), i.tensor.shape.iter().map(|&d| d as usize).collect(), i.tensor.dtype));
        }
    }
    out
}

/// Write, per input image (`images` in scenario order), its tensors as `.npy` files
/// `<dir>/<image>.t<j>.npy`: graph input name -> file. Empty maps when the scenario has none.
pub fn stage(
    files: &[TensorInputFile],
    m: &Manifest,
    images: &[(String, PathBuf)],
    dir: &Path,
) -> std::io::Result<Vec<BTreeMap<String, PathBuf>>> {
    let wanted = tensor_inputs(m);
    let mut out = Vec::new();
    for (k, (image, _)) in images.iter().enumerate() {
        let mut set = BTreeMap::new();
        if let Some(f) = (!files.is_empty()).then(|| &files[k % files.len()]) {
            for (j, (name, ..)) in wanted.iter().enumerate() {
                let dst = dir.join(format!("{image}.t{j}.npy"));
                std::fs::write(&dst, f.arrays[name].to_bytes())?;
                set.insert(name.clone(), dst);
            }
        }
        out.push(set);
    }
    Ok(out)
}
