//! A scenario's mask images (`masks: [FILE.png, ...]`): the values of the package's
//! `source: mask` stage inputs (inpainting and object removal take an image and a mask). One
//! file for every input image, or one per image in the order of `inputs`. Paths are checked at
//! scenario load; the package's mask inputs once it is resolved, before any device is touched;
//! each mask is staged as a `.npy` f32 `[1, 1, H, W]` in `[0, 1]` (luminance, centre-cropped and
//! resized to the input's size with the nearest neighbour) beside the images, and goes with each
//! request as a tensor of the plan input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quadbench_protocol::Source;

use crate::package::{Manifest, PackageError, input};
use crate::yaml::YamlError;

/// One mask file of `masks`.
#[derive(Debug, Clone)]
pub struct MaskFile {
    /// As written in the scenario (locates errors).
    pub written: String,
    pub path: PathBuf,
    /// sha256 of the file (resume compares it).
    pub sha256: String,
}

/// Read `masks` (paths relative to the scenario): none, one, or one per input image.
pub fn load(path: &Path, text: &str, raw: &[String], base: &Path, images: usize) -> Result<Vec<MaskFile>, YamlError> {
    if !raw.is_empty() && raw.len() != 1 && raw.len() != images {
        return Err(YamlError::at(
            path,
            text,
            "masks:",
            format!("{} masks listed for {images} input images", raw.len()),
            "list one mask (used with every image) or one per entry of `inputs`, in the same order",
        ));
    }
    raw.iter()
        .map(|w| {
            let p = base.join(w);
            let sha256 = p.is_file().then(|| crate::package::manifest::sha256_file(&p).ok()).flatten();
            let Some(sha256) = sha256 else {
                return Err(YamlError::at(
                    path,
                    text,
                    w,
                    format!("mask `{w}` is not a readable file ({})", p.display()),
                    "give an image path (PNG, JPEG) relative to the scenario file",
                ));
            };
            Ok(MaskFile { written: w.clone(), path: p, sha256 })
        })
        .collect()
}

/// The package's `source: mask` inputs: (name, side), each name once.
fn mask_inputs(m: &Manifest) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for i in m.pipeline.stages.iter().flat_map(|s| &s.inputs).filter(|i| i.source == Source::Mask) {
        if !out.iter().any(|(n, _)| n == &i.tensor.name) {
            out.push((i.tensor.name.clone(), i.tensor.shape[2].min(i.tensor.shape[3]) as u32));
        }
    }
    out
}

/// Masks against the package: a package with mask inputs needs masks, and masks need such an input.
pub fn check(sc_path: &Path, files: &[MaskFile], m: &Manifest) -> Result<(), YamlError> {
    let text = std::fs::read_to_string(sc_path).unwrap_or_default();
    let wanted = mask_inputs(m);
    match (wanted.first(), files.is_empty()) {
        (Some((name, _)), true) => Err(YamlError::at(
            sc_path,
            &text,
            "inputs:",
            format!("the package's stage input `{name}` is a mask (`source: mask`) and the scenario gives none"),
            "add `masks: [MASK.png]` (one for every image, or one per input image)",
        )),
        (None, false) => Err(YamlError::at(
            sc_path,
            &text,
            "masks:",
            "the package has no mask input (`source: mask`) to feed".into(),
            "remove `masks`",
        )),
        _ => Ok(()),
    }
}

/// Stage each image's mask (`images` in scenario order) as `<dir>/<image>.mask.npy` and add it to
/// that image's request tensors under every mask input's name.
pub fn stage(
    files: &[MaskFile],
    m: &Manifest,
    images: &[(String, PathBuf)],
    dir: &Path,
    sets: &mut [BTreeMap<String, PathBuf>],
) -> Result<(), PackageError> {
    let wanted = mask_inputs(m);
    if files.is_empty() || wanted.is_empty() {
        return Ok(());
    }
    for (k, ((image, _), set)) in images.iter().zip(sets.iter_mut()).enumerate() {
        let f = &files[k % files.len()];
        for (j, (name, side)) in wanted.iter().enumerate() {
            let dst = dir.join(format!("{image}.m{j}.npy"));
            input::prepare_mask(&f.path, *side, &dst)?;
            set.insert(name.clone(), dst);
        }
    }
    Ok(())
}
