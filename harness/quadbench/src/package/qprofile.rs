//! `package quantize`: QDQ package variants calibrated on the golden inputs.
//!
//! - Separate baselines: each task's merged denoiser calibrated on its own (per-task profile).
//! - Unified: the denoiser with LoRA inputs, quantized with ONE profile shared by all tasks:
//!   `anchor` (QUAD): per adapter a sensitivity score = MSE between the FP32 output image and the
//!   output with that adapter's own encodings; the most sensitive adapter's encodings are shared;
//!   `merge`: the union of all adapters' ranges. Anchor and every score are recorded.
//! - Shared stages (encoder, decoder) are calibrated over all tasks' runs.
//! - Mixed precision: the first `a8_ratio` of MatMul nodes (graph order) get 8-bit activations.
//!
//! Calibration runs the FP32 graphs in process on the CPU EP with every activation exposed as an
//! extra graph output, and records min/max.

use super::PackageError;
use super::manifest::{self, Manifest};
use super::quantize::{self, ActBits, QdqConfig, Ranges};
use crate::yaml::KeyError;
use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};
use quadbench_onnx::proto::{ModelProto, TypeProto, TypeProtoTensor, ValueInfoProto, data_type};
use quadbench_protocol::{PlanPipeline, Source};
use quadbench_runner::pipeline::{BoundAdapter, load_adapter};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How the unified graph's one shared quantization profile is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileMethod {
    /// QUAD's anchor rule: the most sensitive adapter's encodings are shared.
    Anchor,
    /// Every adapter's ranges merged.
    Merge,
}

impl ProfileMethod {
    pub const ALL: [ProfileMethod; 2] = [ProfileMethod::Anchor, ProfileMethod::Merge];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileMethod::Anchor => "anchor",
            ProfileMethod::Merge => "merge",
        }
    }

    pub fn parse(s: &str) -> Option<ProfileMethod> {
        ProfileMethod::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Weight and activation precision of a quantized package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    W8A16,
    W8A8,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::W8A16, Precision::W8A8];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::W8A16 => "w8a16",
            Precision::W8A8 => "w8a8",
        }
    }

    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Activation width.
    pub fn act(self) -> ActBits {
        match self {
            Precision::W8A16 => ActBits::U16,
            Precision::W8A8 => ActBits::U8,
        }
    }
}

/// A quantized variant of a package, as a scenario or the command line asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantize {
    pub precision: Precision,
    pub profile: ProfileMethod,
    /// Fraction of MatMul layers with 8-bit activations, within [0, 1].
    pub a8_ratio: f64,
    pub per_channel: bool,
}

impl Quantize {
    /// Validated from the textual settings (scenario keys or command-line options); the error
    /// names the setting at fault and the accepted values.
    pub fn parse(
        precision: Option<&str>,
        profile: Option<&str>,
        a8_ratio: Option<f64>,
        per_channel: bool,
    ) -> Result<Quantize, KeyError> {
        let precision = match precision {
            None => Precision::W8A16,
            Some(p) => Precision::parse(p).ok_or_else(|| {
                KeyError::new("precision", format!("unknown quantization precision `{p}`"), "use `w8a16` or `w8a8`")
            })?,
        };
        let profile = match profile {
            None => ProfileMethod::Anchor,
            Some(p) => ProfileMethod::parse(p).ok_or_else(|| {
                KeyError::new(
                    "profile",
                    format!("unknown shared profile method `{p}`"),
                    "use `anchor` (QUAD) or `merge`",
                )
            })?,
        };
        let a8_ratio = a8_ratio.unwrap_or(if precision == Precision::W8A8 { 1.0 } else { 0.0 });
        if !(0.0..=1.0).contains(&a8_ratio) {
            return Err(KeyError::new(
                "a8_ratio",
                format!("a8_ratio {a8_ratio} must be within [0, 1]"),
                "0 = all W8A16, 1 = all W8A8",
            ));
        }
        Ok(Quantize { precision, profile, a8_ratio, per_channel })
    }

    /// Cache key suffix of the quantized variant.
    pub fn key(&self) -> String {
        format!(
            "q{}-{}-{}-a8r{:.2}{}",
            quantize::QDQ_REVISION,
            self.precision.as_str(),
            self.profile.as_str(),
            self.a8_ratio,
            if self.per_channel { "-pc" } else { "" }
        )
    }

    /// The quantizer's options, calibrated on `inputs`.
    pub fn options(&self, inputs: Vec<PathBuf>) -> QuantizeOptions {
        QuantizeOptions {
            act: self.precision.act(),
            method: self.profile,
            a8_ratio: self.a8_ratio,
            per_channel: self.per_channel,
            inputs,
        }
    }
}

#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub act: ActBits,
    pub method: ProfileMethod,
    /// Fraction of MatMul layers with 8-bit activations (0 = all `act`, 1 = all A8).
    pub a8_ratio: f64,
    pub per_channel: bool,
    /// Calibration images (golden/inputs/*.png).
    pub inputs: Vec<PathBuf>,
}

/// What was chosen and measured, recorded in the package (`generator.quantization`) and results.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QuantReport {
    pub precision: String,
    pub method: ProfileMethod,
    pub a8_ratio: f64,
    /// Adapter whose encodings became the shared profile (anchor method).
    pub anchor: Option<String>,
    /// Per task: sensitivity score (MSE of the output image, own encodings vs FP32).
    pub scores: BTreeMap<String, f64>,
    pub calibration_inputs: Vec<String>,
}

fn err(m: impl std::fmt::Display) -> PackageError {
    PackageError::Params(format!("quantize: {m}"))
}

/// Expose every activation as a graph output (for min/max recording).
fn augment(m: &ModelProto) -> ModelProto {
    let mut out = m.clone();
    let names = quantize::activation_tensors(m);
    let g = out.graph.as_mut().expect("validated graph");
    let have: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    for n in names.into_iter().filter(|n| !have.contains(n)) {
        g.output.push(ValueInfoProto {
            name: n,
            r#type: Some(TypeProto { tensor_type: Some(TypeProtoTensor { elem_type: data_type::FLOAT, shape: None }) }),
            doc_string: String::new(),
        });
    }
    out
}

/// A pipeline of in-memory graphs on the CPU EP.
struct Runner<'a> {
    pipeline: &'a PlanPipeline,
    sessions: BTreeMap<String, Session>,
}

impl<'a> Runner<'a> {
    fn new(
        env: &Environment,
        pipeline: &'a PlanPipeline,
        graphs: &BTreeMap<String, ModelProto>,
    ) -> Result<Self, PackageError> {
        let mut sessions = BTreeMap::new();
        for (stage, m) in graphs {
            // CPU explicitly: with a plugin EP registered, ORT would otherwise try it too.
            let cpu = env.devices().filter(|d| d.ep().is_ok_and(|e| e == "CPUExecutionProvider"));
            let s = Session::builder(env)
                .map_err(err)?
                .with_devices(cpu, None)
                .map_err(err)?
                .commit_from_memory(&quadbench_onnx::encode(m))
                .map_err(|e| err(format!("stage {stage}: {e}")))?;
            sessions.insert(stage.clone(), s);
        }
        Ok(Runner { pipeline, sessions })
    }

    /// One request; records the ranges of every float output per stage when `rec` is given.
    fn run(
        &mut self,
        adapter: Option<&BoundAdapter>,
        image: &Tensor<f32>,
        mut rec: Option<&mut BTreeMap<String, Ranges>>,
    ) -> Result<Vec<f32>, PackageError> {
        let mut values: HashMap<(String, String), DynValue> = HashMap::new();
        for st in &self.pipeline.stages {
            for step in 0..st.repeat {
                let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::new();
                let mut owned: Vec<(String, Tensor<f32>)> = Vec::new();
                for i in &st.inputs {
                    match &i.source {
                        Source::Image => inputs.push((i.tensor.name.clone(), image.into())),
                        Source::Tensor | Source::Mask | Source::Task | Source::Noise { .. } => {
                            return Err(err(format!(
                                "stage {} input {}: tensor, mask, per-task and noise inputs cannot be calibrated yet; quantize a package whose stages take images, stage outputs and schedules",
                                st.name, i.tensor.name
                            )));
                        }
                        Source::Stage { stage, output } => inputs.push((
                            i.tensor.name.clone(),
                            values
                                .get(&(stage.clone(), output.clone()))
                                .ok_or_else(|| err("missing stage value"))?
                                .into(),
                        )),
                        Source::Carry { stage, init_output, output } => {
                            let key = if step == 0 {
                                (stage.clone(), init_output.clone())
                            } else {
                                (st.name.clone(), output.clone())
                            };
                            inputs.push((
                                i.tensor.name.clone(),
                                values.get(&key).ok_or_else(|| err("missing carried value"))?.into(),
                            ));
                        }
                        Source::Schedule { values: v } => {
                            let n = i.tensor.shape.iter().product::<i64>().max(1) as usize;
                            owned.push((
                                i.tensor.name.clone(),
                                Tensor::from_array((i.tensor.shape.clone(), vec![v[step as usize]; n])).map_err(err)?,
                            ));
                        }
                        Source::Lora { slot, part } => {
                            if let Some(a) = adapter {
                                inputs.push((
                                    i.tensor.name.clone(),
                                    a.tensor(slot, *part)
                                        .ok_or_else(|| err(format!("adapter lacks slot {slot}")))?
                                        .into(),
                                ));
                            }
                        }
                    }
                }
                for (n, t) in &owned {
                    inputs.push((n.clone(), t.into()));
                }
                let s =
                    self.sessions.get_mut(&st.name).ok_or_else(|| err(format!("no graph for stage {}", st.name)))?;
                let mut out = s.run(inputs).map_err(|e| err(format!("stage {}: {e}", st.name)))?;
                if let Some(rec) = rec.as_deref_mut() {
                    let r = rec.entry(st.name.clone()).or_default();
                    for (name, v) in out.iter() {
                        if let Ok((_, d)) = v.try_extract_tensor::<f32>() {
                            let lo = d.iter().copied().fold(f32::INFINITY, f32::min);
                            let hi = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                            let e = r.entry(name.to_string()).or_insert((lo, hi));
                            *e = (e.0.min(lo), e.1.max(hi));
                        }
                    }
                }
                // Graph inputs' ranges (LoRA A/B, schedule, carried values) as fed.
                if let Some(rec) = rec.as_deref_mut() {
                    let r = rec.entry(st.name.clone()).or_default();
                    let mut note = |name: &str, d: &[f32]| {
                        let lo = d.iter().copied().fold(f32::INFINITY, f32::min);
                        let hi = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let e = r.entry(name.to_string()).or_insert((lo, hi));
                        *e = (e.0.min(lo), e.1.max(hi));
                    };
                    for i in &st.inputs {
                        let d: Option<Vec<f32>> = match &i.source {
                            Source::Image => image.try_extract_tensor::<f32>().ok().map(|x| x.1.to_vec()),
                            Source::Stage { stage, output } => values
                                .get(&(stage.clone(), output.clone()))
                                .and_then(|v| v.try_extract_tensor::<f32>().ok())
                                .map(|x| x.1.to_vec()),
                            Source::Carry { stage, init_output, output } => {
                                let key = if step == 0 {
                                    (stage.clone(), init_output.clone())
                                } else {
                                    (st.name.clone(), output.clone())
                                };
                                values.get(&key).and_then(|v| v.try_extract_tensor::<f32>().ok()).map(|x| x.1.to_vec())
                            }
                            Source::Schedule { values: v } => Some(vec![v[step as usize]]),
                            Source::Tensor | Source::Mask | Source::Task | Source::Noise { .. } => None,
                            Source::Lora { slot, part } => adapter
                                .and_then(|a| a.tensor(slot, *part))
                                .and_then(|t| t.try_extract_tensor::<f32>().ok())
                                .map(|x| x.1.to_vec()),
                        };
                        if let Some(d) = d {
                            note(&i.tensor.name, &d);
                        }
                    }
                }
                let mut fresh = Vec::new();
                for o in &st.outputs {
                    let v =
                        out.remove(&o.name).ok_or_else(|| err(format!("stage {} lacks output {}", st.name, o.name)))?;
                    fresh.push(((st.name.clone(), o.name.clone()), v));
                }
                drop(out);
                values.extend(fresh);
            }
        }
        let r = &self.pipeline.image_output;
        let v = values.get(&(r.stage.clone(), r.output.clone())).ok_or_else(|| err("final image missing"))?;
        Ok(v.try_extract_tensor::<f32>().map_err(err)?.1.to_vec())
    }
}

fn merge_into(dst: &mut Ranges, src: &Ranges) {
    for (k, &(lo, hi)) in src {
        let e = dst.entry(k.clone()).or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }
}

fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

fn qdq(m: &ModelProto, ranges: &Ranges, o: &QuantizeOptions) -> Result<ModelProto, PackageError> {
    let mut r = ranges.clone();
    quantize::share_encodings(m, &mut r);
    let matmuls: Vec<String> = m
        .graph
        .as_ref()
        .map_or(vec![], |g| g.node.iter().filter(|n| n.op_type == "MatMul").map(|n| n.name.clone()).collect());
    let k = (o.a8_ratio.clamp(0.0, 1.0) * matmuls.len() as f64).round() as usize;
    let cfg = QdqConfig { act: o.act, a8_nodes: matmuls.into_iter().take(k).collect(), per_channel: o.per_channel };
    quantize::to_qdq(m, &r, &cfg).map_err(err)
}

/// Quantize the package at `src` into a new package at `out`.
pub fn quantize_package(
    env: &Environment,
    src: &Path,
    out: &Path,
    o: &QuantizeOptions,
) -> Result<(Manifest, QuantReport), PackageError> {
    let m = manifest::load(src)?;
    let p = &m.pipeline;
    let size = p.image_height;
    let tmp = tempfile::tempdir().map_err(|e| PackageError::io(out, e))?;
    let mut images = Vec::new();
    for (i, path) in o.inputs.iter().enumerate() {
        let f = tmp.path().join(format!("{i}.f32"));
        super::input::prepare_input(path, size, &f).map_err(err)?;
        images
            .push(quadbench_runner::pipeline::load_input(&f, &[1, 3, size as i64, p.image_width as i64]).map_err(err)?);
    }
    if images.is_empty() {
        return Err(err("no calibration inputs; pass golden/inputs/*.png"));
    }
    // Constant subgraphs (torch's run-time reshape targets, Constant nodes) folded first: the
    // quantizer then sees only float activations, and HTP gets static shapes (`fold`); and
    // reductions keep their dimensions, the form HTP runs.
    let read = |rel: &str| {
        let mut g = quadbench_onnx::read_model(&src.join(rel)).map_err(err)?;
        super::fold::fold(env, &mut g).map_err(|e| err(format!("{rel}: {e}")))?;
        quantize::keep_reduced_dims(&mut g);
        Ok::<_, PackageError>(g)
    };
    let fp: BTreeMap<String, ModelProto> =
        p.stages.iter().map(|s| Ok((s.name.clone(), read(&s.graph)?))).collect::<Result<_, PackageError>>()?;
    let aug: BTreeMap<String, ModelProto> = fp.iter().map(|(k, v)| (k.clone(), augment(v))).collect();
    let lora_stages: HashSet<String> = p.lora_slots.iter().map(|s| s.stage.clone()).collect();
    // 1. FP32 runs per task: ranges per task and stage, reference outputs.
    let mut cal = Runner::new(env, p, &aug)?;
    let mut per_task: Vec<BTreeMap<String, Ranges>> = Vec::new();
    let mut reference: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut adapters = Vec::new();
    for t in &p.tasks {
        let a = load_adapter(&src.join(&t.adapter), &t.name, &p.lora_slots).map_err(err)?;
        let mut rec = BTreeMap::new();
        let outs = images.iter().map(|im| cal.run(Some(&a), im, Some(&mut rec))).collect::<Result<Vec<_>, _>>()?;
        per_task.push(rec);
        reference.push(outs);
        adapters.push(a);
    }
    drop(cal);
    let mut all: BTreeMap<String, Ranges> = BTreeMap::new();
    for r in &per_task {
        for (stage, rr) in r {
            merge_into(all.entry(stage.clone()).or_default(), rr);
        }
    }
    // Shared (non-LoRA) stages: one calibration over all tasks.
    let mut q: BTreeMap<String, ModelProto> = BTreeMap::new();
    for (stage, m0) in &fp {
        if !lora_stages.contains(stage) {
            q.insert(stage.clone(), qdq(m0, &all[stage], o)?);
        }
    }
    // 2. Sensitivity score per adapter: its own encodings vs FP32.
    let mut scores = BTreeMap::new();
    for (i, t) in p.tasks.iter().enumerate() {
        let mut g = q.clone();
        for s in &lora_stages {
            g.insert(s.clone(), qdq(&fp[s], &per_task[i][s], o)?);
        }
        let mut r = Runner::new(env, p, &g)?;
        let mut total = 0.0;
        for (k, im) in images.iter().enumerate() {
            total += mse(&r.run(Some(&adapters[i]), im, None)?, &reference[i][k]);
        }
        scores.insert(t.name.clone(), total / images.len() as f64);
    }
    let anchor = (o.method == ProfileMethod::Anchor)
        .then(|| scores.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k.clone()))
        .flatten();
    let shared: BTreeMap<String, Ranges> = match &anchor {
        Some(a) => per_task[p.tasks.iter().position(|t| &t.name == a).unwrap_or(0)].clone(),
        None => all.clone(),
    };
    let mut raw = m.raw.clone();
    std::fs::create_dir_all(out).map_err(|e| PackageError::io(out, e))?;
    for st in &p.stages {
        let model = if lora_stages.contains(&st.name) {
            qdq(&fp[&st.name], &shared[&st.name], o)?
        } else {
            q[&st.name].clone()
        };
        manifest::write_file(&out.join(&st.graph), &quadbench_onnx::encode(&model))?;
    }
    // 3. Per-task baselines: each merged graph calibrated on its own run.
    for (i, t) in p.tasks.iter().enumerate() {
        let mut graphs = aug.clone();
        for (stage, rel) in &t.baselines {
            graphs.insert(stage.clone(), augment(&read(rel)?));
        }
        let mut r = Runner::new(env, p, &graphs)?;
        let mut rec = BTreeMap::new();
        for im in &images {
            r.run(None, im, Some(&mut rec))?;
        }
        for (stage, rel) in &t.baselines {
            let model = qdq(&read(rel)?, &rec[stage], o)?;
            manifest::write_file(&out.join(rel), &quadbench_onnx::encode(&model))?;
        }
        let bytes = std::fs::read(src.join(&t.adapter)).map_err(|e| PackageError::io(&src.join(&t.adapter), e))?;
        manifest::write_file(&out.join(&t.adapter), &bytes)?;
        let _ = i;
    }
    let precision = match (o.act, o.a8_ratio) {
        (_, r) if r > 0.0 && r < 1.0 => format!("w8a8:w8a16={:.0}:{:.0}", r * 100.0, (1.0 - r) * 100.0),
        (ActBits::U8, _) => "w8a8".to_string(),
        (ActBits::U16, r) if r >= 1.0 => "w8a8".to_string(),
        (ActBits::U16, _) => "w8a16".to_string(),
    };
    let report = QuantReport {
        precision: precision.clone(),
        method: o.method,
        a8_ratio: o.a8_ratio,
        anchor,
        scores,
        calibration_inputs: o
            .inputs
            .iter()
            .map(|p| p.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned()))
            .collect(),
    };
    raw.name = format!("{}-{precision}", raw.name);
    let generator = raw.generator.get_or_insert_with(BTreeMap::new);
    generator.insert("quantization".into(), serde_json::to_string(&report).unwrap_or_default());
    let mf = manifest::finalize_and_write(out, raw)?;
    Ok((mf, report))
}
