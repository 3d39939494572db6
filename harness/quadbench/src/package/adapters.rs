//! Users' LoRA adapters as the ecosystem saves them, read into one form for the importer:
//! PEFT directories (`adapter_config.json` + `adapter_model.safetensors`), PEFT or diffusers
//! `.safetensors` files (`base_model.model.` / `unet.` prefixes, `lora_A`/`lora_B`), and kohya
//! files (`lora_unet_<underscored path>.lora_down.weight` / `.lora_up.weight` / `.alpha`).
//!
//! Each layer keeps PEFT's layout (A `[r, in]` or `[r, in, kh, kw]`, B `[out, r]` or
//! `[out, r, 1, 1]`) and its own scale (`lora_alpha / r`, `/ sqrt(r)` with rsLoRA, kohya's
//! per-module `alpha / r`). Variants whose update is not `scale * B A` (DoRA, LoHa, LoKr, ...)
//! are refused by name, and a config that disagrees with its tensors is an error.

use super::PackageError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a layer's module path is written in the adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleKey {
    /// A dotted module path (`down_blocks.0.attentions.0.to_q`), wrapper prefixes removed.
    Path(String),
    /// kohya's underscored path after `lora_unet_` (`down_blocks_0_attentions_0_to_q`): matched
    /// against the graph's module paths with dots turned into underscores.
    Underscored(String),
}

impl ModuleKey {
    pub fn as_str(&self) -> &str {
        match self {
            ModuleKey::Path(s) | ModuleKey::Underscored(s) => s,
        }
    }
}

/// One adapted layer.
#[derive(Debug, Clone)]
pub struct LayerLora {
    /// The key as the file writes it (for messages).
    pub key: String,
    pub module: ModuleKey,
    pub a: Vec<f32>,
    pub a_shape: Vec<usize>,
    pub b: Vec<f32>,
    pub b_shape: Vec<usize>,
    /// Multiplies `B A` (never baked into the graph: folded into the tensors the package feeds).
    pub scale: f32,
}

impl LayerLora {
    pub fn rank(&self) -> usize {
        self.a_shape[0]
    }
}

/// A task's adapter, read.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub name: String,
    pub path: PathBuf,
    /// `peft`, `safetensors` (PEFT naming, no config: scale 1) or `kohya`.
    pub format: &'static str,
    pub layers: Vec<LayerLora>,
}

fn adapter_err(path: &Path, message: impl Into<String>) -> PackageError {
    PackageError::Adapter { path: path.display().to_string(), message: message.into() }
}

/// The parts of `adapter_config.json` that set each layer's scale.
#[derive(Debug, Clone, Default)]
struct PeftConfig {
    r: usize,
    alpha: f64,
    rslora: bool,
    rank_pattern: BTreeMap<String, usize>,
    alpha_pattern: BTreeMap<String, f64>,
}

/// PEFT's pattern rule: a key matches `pattern` when it ends with it at a module boundary.
fn pattern_value<T: Copy>(patterns: &BTreeMap<String, T>, module: &str) -> Option<T> {
    patterns
        .iter()
        .filter(|(p, _)| module == p.as_str() || module.ends_with(&format!(".{p}")))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, v)| *v)
}

fn read_config(path: &Path) -> Result<PeftConfig, PackageError> {
    let text = std::fs::read_to_string(path).map_err(|e| PackageError::io(path, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| adapter_err(path, format!("not valid JSON: {e}")))?;
    let peft_type = v.get("peft_type").and_then(|t| t.as_str()).unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(adapter_err(
            path,
            format!(
                "peft_type {peft_type} ({}) is not supported: only plain LoRA (peft_type LORA), whose update is scale * B A, can be fed as graph inputs",
                variant_name(peft_type)
            ),
        ));
    }
    if v.get("use_dora").and_then(|d| d.as_bool()) == Some(true) {
        return Err(adapter_err(
            path,
            "DoRA (use_dora: true) is not supported: its weight-decomposed update is not scale * B A; merge it with PEFT (merge_and_unload) and export the merged model, or train plain LoRA",
        ));
    }
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let r = num("r").ok_or_else(|| adapter_err(path, "has no numeric `r`"))?;
    let patterns = |k: &str| -> BTreeMap<String, f64> {
        v.get(k)
            .and_then(|p| p.as_object())
            .map(|o| o.iter().filter_map(|(k, x)| Some((k.clone(), x.as_f64()?))).collect())
            .unwrap_or_default()
    };
    Ok(PeftConfig {
        r: r as usize,
        alpha: num("lora_alpha").unwrap_or(r),
        rslora: v.get("use_rslora").and_then(|x| x.as_bool()).unwrap_or(false),
        rank_pattern: patterns("rank_pattern").into_iter().map(|(k, x)| (k, x as usize)).collect(),
        alpha_pattern: patterns("alpha_pattern"),
    })
}

fn variant_name(peft_type: &str) -> &'static str {
    match peft_type {
        "LOHA" => "LoHa",
        "LOKR" => "LoKr",
        "IA3" => "IA3",
        "OFT" | "BOFT" => "OFT",
        "ADALORA" => "AdaLoRA",
        _ => "not LoRA",
    }
}

/// A tensor name that marks a variant the importer cannot feed as LoRA inputs.
fn refused_variant(key: &str) -> Option<&'static str> {
    [
        ("lora_magnitude_vector", "DoRA (lora_magnitude_vector)"),
        ("dora_scale", "DoRA (dora_scale)"),
        ("hada_w1", "LoHa (hada_w1_a/hada_w1_b)"),
        ("lokr_w1", "LoKr (lokr_w1)"),
        ("ia3_l", "IA3"),
        ("lora_mid", "LoCon with a CP-decomposed mid weight (lora_mid)"),
    ]
    .into_iter()
    .find(|(needle, _)| key.contains(needle))
    .map(|(_, name)| name)
}

/// Remove wrapper prefixes: `base_model.model.`, `unet.`, diffusers' `lora_unet.`.
fn strip_prefixes(mut s: &str) -> &str {
    for p in ["base_model.model.", "unet.", "transformer."] {
        s = s.strip_prefix(p).unwrap_or(s);
    }
    s
}

fn f32_data(path: &Path, name: &str, t: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, PackageError> {
    match t.dtype() {
        safetensors::Dtype::F32 => {
            Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        safetensors::Dtype::F16 => {
            Ok(t.data().chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
        }
        safetensors::Dtype::BF16 => {
            Ok(t.data().chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
        }
        d => Err(adapter_err(path, format!("tensor `{name}` is {d:?}; LoRA tensors must be F32, F16 or BF16"))),
    }
}

/// Read the adapter at `path` (a PEFT directory or a `.safetensors` file) for task `name`.
pub fn read(name: &str, path: &Path) -> Result<Adapter, PackageError> {
    if !path.exists() {
        return Err(adapter_err(path, "does not exist; pass a PEFT adapter directory or a .safetensors file"));
    }
    let (file, config) = if path.is_dir() {
        let file = path.join("adapter_model.safetensors");
        if !file.exists() {
            let fix = if path.join("adapter_model.bin").exists() {
                "it holds adapter_model.bin (pickle): load it with PEFT and save_pretrained(..., safe_serialization=True)"
            } else {
                "a PEFT adapter directory holds adapter_model.safetensors and adapter_config.json"
            };
            return Err(adapter_err(path, format!("no adapter_model.safetensors; {fix}")));
        }
        let cfg = path.join("adapter_config.json");
        let config = if cfg.exists() { Some(read_config(&cfg)?) } else { None };
        (file, config)
    } else {
        let beside = path.with_file_name("adapter_config.json");
        let config = if beside.exists() { Some(read_config(&beside)?) } else { None };
        (path.to_path_buf(), config)
    };
    let bytes = std::fs::read(&file).map_err(|e| PackageError::io(&file, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| adapter_err(&file, format!("not a valid safetensors file ({e})")))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    if let Some((key, variant)) = names.iter().find_map(|k| refused_variant(k).map(|v| (k, v))) {
        return Err(adapter_err(
            &file,
            format!(
                "{variant} is not supported (tensor `{key}`): only plain LoRA, whose update is scale * B A, can be fed as graph inputs; merge the adapter into the model with its own tool instead"
            ),
        ));
    }
    let kohya = names.iter().any(|k| k.contains(".lora_down.weight"));
    let mut layers = Vec::new();
    let (a_suffix, b_suffix) =
        if kohya { (".lora_down.weight", ".lora_up.weight") } else { (".lora_A.weight", ".lora_B.weight") };
    for key_a in names.iter().filter(|k| k.ends_with(a_suffix)) {
        let stem = &key_a[..key_a.len() - a_suffix.len()];
        let key_b = format!("{stem}{b_suffix}");
        let (ta, tb) = match (st.tensor(key_a), st.tensor(&key_b)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(adapter_err(&file, format!("`{key_a}` has no matching `{key_b}`"))),
        };
        let (a_shape, b_shape) = (ta.shape().to_vec(), tb.shape().to_vec());
        let linear = a_shape.len() == 2 && b_shape.len() == 2;
        let conv = a_shape.len() == 4 && b_shape.len() == 4 && b_shape[2..] == [1, 1];
        if !(linear || conv) || a_shape[0] != b_shape[1] || a_shape[0] == 0 {
            return Err(adapter_err(
                &file,
                format!(
                    "`{stem}`: lora A {a_shape:?} and B {b_shape:?} are not a LoRA pair (A [r, in] or [r, in, kh, kw], B [out, r] or [out, r, 1, 1])"
                ),
            ));
        }
        let rank = a_shape[0];
        let (module, scale) = if kohya {
            let module = stem.strip_prefix("lora_unet_").unwrap_or(stem);
            let alpha = match st.tensor(&format!("{stem}.alpha")) {
                Ok(t) => *f32_data(&file, stem, &t)?.first().unwrap_or(&(rank as f32)),
                Err(_) => rank as f32,
            };
            (ModuleKey::Underscored(module.to_string()), alpha / rank as f32)
        } else {
            let module = strip_prefixes(stem).to_string();
            let scale = match &config {
                Some(c) => {
                    let want = pattern_value(&c.rank_pattern, &module).unwrap_or(c.r);
                    if want != rank {
                        return Err(adapter_err(
                            path,
                            format!(
                                "adapter_config.json disagrees with the tensors: it gives `{module}` rank {want} (r / rank_pattern) but `{key_a}` has rank {rank}; fix the config or re-save the adapter with PEFT"
                            ),
                        ));
                    }
                    let alpha = pattern_value(&c.alpha_pattern, &module).unwrap_or(c.alpha);
                    (if c.rslora { alpha / (rank as f64).sqrt() } else { alpha / rank as f64 }) as f32
                }
                None => 1.0,
            };
            (ModuleKey::Path(module), scale)
        };
        layers.push(LayerLora {
            key: stem.to_string(),
            module,
            a: f32_data(&file, key_a, &ta)?,
            a_shape,
            b: f32_data(&file, &key_b, &tb)?,
            b_shape,
            scale,
        });
    }
    let orphans: Vec<&String> = names
        .iter()
        .filter(|k| !(k.ends_with(a_suffix) || k.ends_with(b_suffix) || (kohya && k.ends_with(".alpha"))))
        .collect();
    if !orphans.is_empty() {
        return Err(adapter_err(
            &file,
            format!(
                "tensors that are not LoRA A/B pairs: {}; only plain LoRA (lora_A/lora_B or lora_down/lora_up/alpha) is supported",
                orphans.iter().take(8).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if layers.is_empty() {
        return Err(adapter_err(&file, "holds no LoRA tensors (lora_A/lora_B or lora_down/lora_up)"));
    }
    let format = if kohya {
        "kohya"
    } else if config.is_some() {
        "peft"
    } else {
        "safetensors"
    };
    Ok(Adapter { name: name.to_string(), path: path.to_path_buf(), format, layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_at_module_boundaries_longest_first() {
        let p = BTreeMap::from([("conv_out".to_string(), 3usize), ("blocks.0.conv_out".to_string(), 5)]);
        assert_eq!(pattern_value(&p, "conv_out"), Some(3));
        assert_eq!(pattern_value(&p, "up.blocks.0.conv_out"), Some(5));
        assert_eq!(pattern_value(&p, "x.conv_out2"), None);
        assert_eq!(pattern_value(&p, "xconv_out"), None);
    }

    #[test]
    fn variants_are_named() {
        assert_eq!(refused_variant("m.to_q.lora_magnitude_vector"), Some("DoRA (lora_magnitude_vector)"));
        assert_eq!(refused_variant("m.to_q.hada_w1_a"), Some("LoHa (hada_w1_a/hada_w1_b)"));
        assert_eq!(refused_variant("m.to_q.lora_A.weight"), None);
        assert_eq!(strip_prefixes("base_model.model.unet.down.to_q"), "down.to_q");
    }
}
