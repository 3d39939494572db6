//! `quadbench package reference`: a deterministic reference package generated in Rust.
//!
//! Shape (like the paper's image-to-image pipeline): `encoder` -> `denoiser` x steps -> `decoder`.
//! - encoder: image -> tokens (one per 4x4 patch, carrying its 3x3-patch neighbourhood, see
//!   [`super::filters`]) = `cond`, and the initial latent `latent = cond @ E`.
//! - denoiser (repeated): `target = cond @ W_p (+ LoRA)  +  deep(x)`, `x_next = x + alpha (target - x)`
//!   with the schedule `alpha_t = 1 / (steps - t)`, so the last step lands on `target`.
//!   `deep` is a U-Net-like bottleneck (tokens merged 8x8, width `width`, four MatMul layers with
//!   ReLU) that holds almost all weights and FLOPs; its output projection is scaled small (like a
//!   zero-initialised ControlNet branch) so that the image edit stays analytically defined.
//! - decoder: latent -> patch pixels -> image, clipped to [0, 1].
//! LoRA slots sit on MatMul projections (`cond_proj`, `deep.down`, `deep.up`), the form that runs
//! fully on NPUs (runtime.md). Task k's adapter is built so that the decoded image equals the
//! task's edit (filters.rs) up to the tiny deep-branch residual; the foundation alone is a
//! reconstruction. The separate baselines are the same denoiser with each adapter merged in
//! (`W + alpha/r * A B`), so unified and merged agree to float rounding.

use super::filters::{self, Edit, PATCH, PATCH_DIM, TOKEN_DIM};
use super::manifest::{self, Manifest, RawFile, RawImage, RawSlot, RawStage, RawTask, RawTensor, PACKAGE_SCHEMA};
use super::rng::SplitMix64;
use super::PackageError;
use quadbench_onnx::{attr_int, attr_ints, attr_str, proto::data_type::FLOAT, GraphBuilder};
use quadbench_protocol::DType;
use std::collections::BTreeMap;
use std::path::Path;

/// Latent width per token.
pub const LATENT_DIM: usize = 64;
/// Token merge factor of the deep branch.
const DEEP_BLOCK: usize = 8;
/// Rank of the edit slot (covers any 48-output patch map).
const COND_RANK: usize = PATCH_DIM;
/// Rank of the deep-branch slots.
const DEEP_RANK: usize = 8;
/// Scale of the deep branch's output projection (see module docs).
const DEEP_OUT_SCALE: f64 = 0.003;

/// Parameters of the reference package (all of them key the package cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ReferenceParams {
    pub tasks: usize,
    pub width: usize,
    pub resolution: usize,
    pub steps: usize,
    pub seed: u64,
}

impl Default for ReferenceParams {
    fn default() -> Self {
        ReferenceParams { tasks: 10, width: 1024, resolution: 256, steps: 4, seed: 7 }
    }
}

impl ReferenceParams {
    pub fn validate(&self) -> Result<(), PackageError> {
        let bad = |m: String| Err(PackageError::Params(m));
        if self.resolution == 0 || self.resolution % (PATCH * DEEP_BLOCK) != 0 {
            return bad(format!("resolution {} must be a positive multiple of {} (patch 4 x deep merge 8); try 256", self.resolution, PATCH * DEEP_BLOCK));
        }
        if self.tasks == 0 || self.tasks > 64 {
            return bad(format!("tasks {} must be between 1 and 64", self.tasks));
        }
        if self.steps == 0 || self.steps > 64 {
            return bad(format!("steps {} must be between 1 and 64", self.steps));
        }
        if self.width < 16 || self.width > 8192 {
            return bad(format!("width {} must be between 16 and 8192", self.width));
        }
        Ok(())
    }

    /// Stable short key for caching.
    pub fn cache_key(&self) -> String {
        format!("ref-t{}-w{}-r{}-s{}-seed{}", self.tasks, self.width, self.resolution, self.steps, self.seed)
    }
}

/// Row-major dense matrix.
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Mat {
    fn zeros(rows: usize, cols: usize) -> Mat {
        Mat { rows, cols, data: vec![0.0; rows * cols] }
    }
    fn from(rows: usize, cols: usize, data: Vec<f64>) -> Mat {
        assert_eq!(data.len(), rows * cols);
        Mat { rows, cols, data }
    }
    fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }
    fn mul(&self, o: &Mat) -> Mat {
        assert_eq!(self.cols, o.rows);
        let mut out = Mat::zeros(self.rows, o.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.at(i, k);
                if a == 0.0 {
                    continue;
                }
                let row = &o.data[k * o.cols..(k + 1) * o.cols];
                for (dst, b) in out.data[i * o.cols..(i + 1) * o.cols].iter_mut().zip(row) {
                    *dst += a * b;
                }
            }
        }
        out
    }
    fn t(&self) -> Mat {
        let mut out = Mat::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                out.data[j * self.rows + i] = self.at(i, j);
            }
        }
        out
    }
    fn add(&self, o: &Mat) -> Mat {
        Mat::from(self.rows, self.cols, self.data.iter().zip(&o.data).map(|(a, b)| a + b).collect())
    }
    fn f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
    fn random(rows: usize, cols: usize, std: f64, rng: &mut SplitMix64) -> Mat {
        Mat::from(rows, cols, (0..rows * cols).map(|_| rng.normal() * std).collect())
    }
    /// `rows x cols` (rows <= cols) with orthonormal rows, by Gram-Schmidt on Gaussian rows.
    fn orthonormal_rows(rows: usize, cols: usize, rng: &mut SplitMix64) -> Mat {
        let mut m = Mat::random(rows, cols, 1.0, rng);
        for i in 0..rows {
            for j in 0..i {
                let d: f64 = (0..cols).map(|c| m.at(i, c) * m.at(j, c)).sum();
                for c in 0..cols {
                    m.data[i * cols + c] -= d * m.data[j * cols + c];
                }
            }
            let n: f64 = (0..cols).map(|c| m.at(i, c).powi(2)).sum::<f64>().sqrt();
            for c in 0..cols {
                m.data[i * cols + c] /= n;
            }
        }
        m
    }
}

/// A LoRA update for one slot, in graph layout: `a` is `[in, r]`, `b` is `[r, out]`, and the
/// update is `(alpha / r) * a @ b` (alpha = r here, so scale 1).
struct Lora {
    a: Mat,
    b: Mat,
}

struct Foundation {
    e0: Mat,
    w_p: Mat,
    deep: Vec<(Mat, Vec<f64>)>,
    d_dec: Mat,
    basis: Mat,
}

fn foundation(p: &ReferenceParams) -> Foundation {
    let k0 = Mat::from(TOKEN_DIM, PATCH_DIM, filters::identity_matrix());
    let basis = Mat::orthonormal_rows(PATCH_DIM, LATENT_DIM, &mut SplitMix64::derive(p.seed, "latent-basis"));
    // Directions of the latent that the decoder ignores: I - L^T L.
    let mut perp = basis.t().mul(&basis);
    for (i, v) in perp.data.iter_mut().enumerate() {
        *v = if i / LATENT_DIM == i % LATENT_DIM { 1.0 - *v } else { -*v };
    }
    let e0 = k0.mul(&basis);
    let noise = Mat::random(TOKEN_DIM, LATENT_DIM, 0.05, &mut SplitMix64::derive(p.seed, "w_p"));
    let w_p = e0.add(&noise.mul(&perp));
    let deep_in = LATENT_DIM * DEEP_BLOCK * DEEP_BLOCK;
    let dims = [(deep_in, p.width), (p.width, p.width), (p.width, p.width), (p.width, deep_in)];
    let deep = dims
        .iter()
        .enumerate()
        .map(|(i, &(fan_in, fan_out))| {
            let mut rng = SplitMix64::derive(p.seed, &format!("deep{i}"));
            let std = if i == 3 { DEEP_OUT_SCALE / (fan_in as f64).sqrt() } else { (2.0 / fan_in as f64).sqrt() };
            let w = Mat::random(fan_in, fan_out, std, &mut rng);
            let b = (0..fan_out).map(|_| rng.normal() * if i == 3 { 1e-4 } else { 0.01 }).collect();
            (w, b)
        })
        .collect();
    Foundation { e0, w_p, deep, d_dec: basis.t(), basis }
}

/// The adapter of task `edit`: slot name -> update.
fn adapter(p: &ReferenceParams, f: &Foundation, edit: &Edit, index: usize) -> BTreeMap<&'static str, Lora> {
    let k0 = Mat::from(TOKEN_DIM, PATCH_DIM, filters::identity_matrix());
    let k = Mat::from(TOKEN_DIM, PATCH_DIM, edit.matrix());
    let delta = Mat::from(TOKEN_DIM, PATCH_DIM, k.data.iter().zip(&k0.data).map(|(a, b)| a - b).collect());
    let mut rng = SplitMix64::derive(p.seed, &format!("adapter-{index}-{}", edit.name));
    // b = M L with M orthogonal, so b L^T = M and a = delta M^T gives a b L^T = delta.
    let m = Mat::orthonormal_rows(COND_RANK, COND_RANK, &mut rng);
    let cond = Lora { a: delta.mul(&m.t()), b: m.mul(&f.basis) };
    let deep_in = LATENT_DIM * DEEP_BLOCK * DEEP_BLOCK;
    let down = Lora {
        a: Mat::random(deep_in, DEEP_RANK, 1.0 / (deep_in as f64).sqrt(), &mut rng),
        b: Mat::random(DEEP_RANK, p.width, 0.05, &mut rng),
    };
    let up = Lora {
        a: Mat::random(p.width, DEEP_RANK, 1.0 / (p.width as f64).sqrt(), &mut rng),
        b: Mat::random(DEEP_RANK, deep_in, DEEP_OUT_SCALE * 0.3 / (DEEP_RANK as f64).sqrt(), &mut rng),
    };
    BTreeMap::from([("cond_proj", cond), ("deep.down", down), ("deep.up", up)])
}

/// Slot name -> (module, input A name, input B name, in, out, rank).
fn slots(p: &ReferenceParams) -> Vec<(&'static str, &'static str, &'static str, &'static str, usize, usize, usize)> {
    let deep_in = LATENT_DIM * DEEP_BLOCK * DEEP_BLOCK;
    vec![
        ("cond_proj", "denoiser.cond_proj", "lora_cond_proj_a", "lora_cond_proj_b", TOKEN_DIM, LATENT_DIM, COND_RANK),
        ("deep.down", "denoiser.deep.down", "lora_deep_down_a", "lora_deep_down_b", deep_in, p.width, DEEP_RANK),
        ("deep.up", "denoiser.deep.up", "lora_deep_up_a", "lora_deep_up_b", p.width, deep_in, DEEP_RANK),
    ]
}

struct Geometry {
    h: i64,
    w: i64,
    n: i64,
    dh: i64,
    dw: i64,
    t: i64,
}

fn geometry(p: &ReferenceParams) -> Geometry {
    let (h, w) = ((p.resolution / PATCH) as i64, (p.resolution / PATCH) as i64);
    let (dh, dw) = (h / DEEP_BLOCK as i64, w / DEEP_BLOCK as i64);
    Geometry { h, w, n: h * w, dh, dw, t: dh * dw }
}

fn encoder(p: &ReferenceParams, f: &Foundation) -> quadbench_onnx::proto::ModelProto {
    let g = geometry(p);
    let r = p.resolution as i64;
    let mut b = GraphBuilder::new("encoder");
    let image = b.input("image", FLOAT, &[1, 3, r, r]);
    let s2d = b.node("SpaceToDepth", &[&image], vec![attr_int("blocksize", PATCH as i64)]);
    let pads = b.init_i64("pads", &[0, 0, 1, 1, 0, 0, 1, 1]);
    let padded = b.node("Pad", &[&s2d, &pads], vec![attr_str("mode", "edge")]);
    let axes = b.init_i64("axes_hw", &[2, 3]);
    let mut parts = Vec::new();
    for dy in 0..3 {
        for dx in 0..3 {
            let st = b.init_i64(&format!("start_{dy}{dx}"), &[dy, dx]);
            let en = b.init_i64(&format!("end_{dy}{dx}"), &[dy + g.h, dx + g.w]);
            parts.push(b.node("Slice", &[&padded, &st, &en, &axes], vec![]));
        }
    }
    let extra = (TOKEN_DIM - filters::NEIGHBOURHOOD) as i64;
    let mut ones = vec![0f32; (extra * g.n) as usize];
    ones[..g.n as usize].iter_mut().for_each(|v| *v = 1.0);
    parts.push(b.init_f32("constant_one", &[1, extra, g.h, g.w], &ones));
    let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
    let cat = b.node("Concat", &refs, vec![attr_int("axis", 1)]);
    let shape = b.init_i64("tokens_shape", &[1, TOKEN_DIM as i64, g.n]);
    let flat = b.node("Reshape", &[&cat, &shape], vec![]);
    let cond = b.node_to("Transpose", &[&flat], vec![attr_ints("perm", &[0, 2, 1])], "cond");
    let e0 = b.init_f32("encoder.proj.weight", &[TOKEN_DIM as i64, LATENT_DIM as i64], &f.e0.f32());
    let latent = b.node_to("MatMul", &[&cond, &e0], vec![], "latent");
    b.output(&cond, FLOAT, &[1, g.n, TOKEN_DIM as i64]);
    b.output(&latent, FLOAT, &[1, g.n, LATENT_DIM as i64]);
    b.finish("quadbench reference", &[("quadbench.stage", "encoder")])
}

/// How the denoiser's LoRA slots appear in the graph.
enum LoraMode<'a> {
    /// A and B are graph inputs (unified).
    Inputs,
    /// Merged into the weights (separate baseline of one task).
    Merged(&'a BTreeMap<&'static str, Lora>),
}

fn denoiser(p: &ReferenceParams, f: &Foundation, mode: LoraMode<'_>, task: &str) -> quadbench_onnx::proto::ModelProto {
    let g = geometry(p);
    let deep_in = (LATENT_DIM * DEEP_BLOCK * DEEP_BLOCK) as i64;
    let mut b = GraphBuilder::new("denoiser");
    let x = b.input("x", FLOAT, &[1, g.n, LATENT_DIM as i64]);
    let cond = b.input("cond", FLOAT, &[1, g.n, TOKEN_DIM as i64]);
    let alpha = b.input("alpha", FLOAT, &[1]);
    let slot_info = slots(p);
    // y = x @ W (+ (x @ A) @ B when unified; W + A B when merged).
    let projection = |b: &mut GraphBuilder, input: &str, slot: &str, weight_name: &str, w: &Mat| -> String {
        let &(_, _, ia, ib, fin, fout, rank) = slot_info.iter().find(|s| s.0 == slot).expect("known slot");
        match &mode {
            LoraMode::Inputs => {
                let wi = b.init_f32(weight_name, &[w.rows as i64, w.cols as i64], &w.f32());
                let a = b.input(ia, FLOAT, &[fin as i64, rank as i64]);
                let bb = b.input(ib, FLOAT, &[rank as i64, fout as i64]);
                let base = b.node("MatMul", &[input, &wi], vec![]);
                let down = b.node("MatMul", &[input, &a], vec![]);
                let up = b.node("MatMul", &[&down, &bb], vec![]);
                b.node("Add", &[&base, &up], vec![])
            }
            LoraMode::Merged(lora) => {
                let l = &lora[slot];
                let merged = w.add(&l.a.mul(&l.b));
                let wi = b.init_f32(weight_name, &[w.rows as i64, w.cols as i64], &merged.f32());
                b.node("MatMul", &[input, &wi], vec![])
            }
        }
    };
    let proj = projection(&mut b, &cond, "cond_proj", "denoiser.cond_proj.weight", &f.w_p);
    // Deep branch: tokens -> grid -> merge 8x8 -> MLP -> split -> tokens.
    let xt = b.node("Transpose", &[&x], vec![attr_ints("perm", &[0, 2, 1])]);
    let grid_shape = b.init_i64("grid_shape", &[1, LATENT_DIM as i64, g.h, g.w]);
    let grid = b.node("Reshape", &[&xt, &grid_shape], vec![]);
    let merged = b.node("SpaceToDepth", &[&grid], vec![attr_int("blocksize", DEEP_BLOCK as i64)]);
    let deep_shape = b.init_i64("deep_tokens_shape", &[1, deep_in, g.t]);
    let dflat = b.node("Reshape", &[&merged, &deep_shape], vec![]);
    let mut h = b.node("Transpose", &[&dflat], vec![attr_ints("perm", &[0, 2, 1])]);
    let names = ["down", "mid1", "mid2", "up"];
    for (i, (w, bias)) in f.deep.iter().enumerate() {
        let wname = format!("denoiser.deep.{}.weight", names[i]);
        let y = match names[i] {
            "down" => projection(&mut b, &h, "deep.down", &wname, w),
            "up" => projection(&mut b, &h, "deep.up", &wname, w),
            _ => {
                let wi = b.init_f32(&wname, &[w.rows as i64, w.cols as i64], &w.f32());
                b.node("MatMul", &[&h, &wi], vec![])
            }
        };
        let bi = b.init_f32(&format!("denoiser.deep.{}.bias", names[i]), &[bias.len() as i64], &bias.iter().map(|&v| v as f32).collect::<Vec<_>>());
        let y = b.node("Add", &[&y, &bi], vec![]);
        h = if i < 3 { b.node("Relu", &[&y], vec![]) } else { y };
    }
    let ht = b.node("Transpose", &[&h], vec![attr_ints("perm", &[0, 2, 1])]);
    let dgrid_shape = b.init_i64("deep_grid_shape", &[1, deep_in, g.dh, g.dw]);
    let dgrid = b.node("Reshape", &[&ht, &dgrid_shape], vec![]);
    let split = b.node("DepthToSpace", &[&dgrid], vec![attr_int("blocksize", DEEP_BLOCK as i64), attr_str("mode", "DCR")]);
    let lat_shape = b.init_i64("latent_flat_shape", &[1, LATENT_DIM as i64, g.n]);
    let sflat = b.node("Reshape", &[&split, &lat_shape], vec![]);
    let deep_out = b.node("Transpose", &[&sflat], vec![attr_ints("perm", &[0, 2, 1])]);
    let target = b.node("Add", &[&proj, &deep_out], vec![]);
    let diff = b.node("Sub", &[&target, &x], vec![]);
    let step = b.node("Mul", &[&diff, &alpha], vec![]);
    let x_next = b.node_to("Add", &[&x, &step], vec![], "x_next");
    b.output(&x_next, FLOAT, &[1, g.n, LATENT_DIM as i64]);
    b.finish("quadbench reference", &[("quadbench.stage", "denoiser"), ("quadbench.task", task)])
}

fn decoder(p: &ReferenceParams, f: &Foundation) -> quadbench_onnx::proto::ModelProto {
    let g = geometry(p);
    let r = p.resolution as i64;
    let mut b = GraphBuilder::new("decoder");
    let z = b.input("latent", FLOAT, &[1, g.n, LATENT_DIM as i64]);
    let w = b.init_f32("decoder.proj.weight", &[LATENT_DIM as i64, PATCH_DIM as i64], &f.d_dec.f32());
    let patches = b.node("MatMul", &[&z, &w], vec![]);
    let pt = b.node("Transpose", &[&patches], vec![attr_ints("perm", &[0, 2, 1])]);
    let shape = b.init_i64("patch_grid_shape", &[1, PATCH_DIM as i64, g.h, g.w]);
    let grid = b.node("Reshape", &[&pt, &shape], vec![]);
    let img = b.node("DepthToSpace", &[&grid], vec![attr_int("blocksize", PATCH as i64), attr_str("mode", "DCR")]);
    let lo = b.init_f32("clip_min", &[], &[0.0]);
    let hi = b.init_f32("clip_max", &[], &[1.0]);
    let out = b.node_to("Clip", &[&img, &lo, &hi], vec![], "image");
    b.output(&out, FLOAT, &[1, 3, r, r]);
    b.finish("quadbench reference", &[("quadbench.stage", "decoder")])
}

fn write_adapter(path: &Path, lora: &BTreeMap<&'static str, Lora>, p: &ReferenceParams, task: &str) -> Result<(), PackageError> {
    // PEFT layout: lora_A.weight [r, in] = a^T, lora_B.weight [out, r] = b^T.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (slot, module, ..) in slots(p) {
        let l = &lora[slot];
        for (suffix, m) in [("lora_A.weight", l.a.t()), ("lora_B.weight", l.b.t())] {
            let bytes: Vec<u8> = m.f32().iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("base_model.model.{module}.{suffix}"), vec![m.rows, m.cols], bytes));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()
        .map_err(|e| PackageError::Adapter { path: path.display().to_string(), message: e.to_string() })?;
    let meta = std::collections::HashMap::from([("task".to_string(), task.to_string()), ("format".to_string(), "peft-lora".to_string())]);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| PackageError::Adapter { path: path.display().to_string(), message: e.to_string() })?;
    manifest::write_file(path, &bytes)
}

/// Generate the reference package into `out` (created; must be empty or absent).
pub fn generate(out: &Path, p: &ReferenceParams) -> Result<Manifest, PackageError> {
    p.validate()?;
    std::fs::create_dir_all(out).map_err(|e| PackageError::io(out, e))?;
    let f = foundation(p);
    let g = geometry(p);
    let edits = filters::edits(p.tasks, p.seed);
    let enc_model = encoder(p, &f);
    let den_model = denoiser(p, &f, LoraMode::Inputs, "");
    let dec_model = decoder(p, &f);
    manifest::write_file(&out.join("encoder.onnx"), &quadbench_onnx::encode(&enc_model))?;
    manifest::write_file(&out.join("denoiser.onnx"), &quadbench_onnx::encode(&den_model))?;
    manifest::write_file(&out.join("decoder.onnx"), &quadbench_onnx::encode(&dec_model))?;
    let mut tasks = Vec::new();
    for (i, e) in edits.iter().enumerate() {
        let lora = adapter(p, &f, e, i);
        let adapter_rel = format!("adapters/{}.safetensors", e.name);
        write_adapter(&out.join(&adapter_rel), &lora, p, &e.name)?;
        let base_rel = format!("baselines/{}/denoiser.onnx", e.name);
        let model = denoiser(p, &f, LoraMode::Merged(&lora), &e.name);
        manifest::write_file(&out.join(&base_rel), &quadbench_onnx::encode(&model))?;
        tasks.push(RawTask { name: e.name.clone(), description: e.description.clone(), adapter: adapter_rel, baselines: BTreeMap::from([("denoiser".to_string(), base_rel)]) });
    }
    let r = p.resolution as i64;
    let t = |name: &str, shape: Vec<i64>| RawTensor { name: name.into(), shape, dtype: DType::F32, range: None, source: None, carry: None, schedule: None };
    let src = |mut x: RawTensor, s: &str| {
        x.source = Some(s.into());
        x
    };
    let mut den_inputs = vec![
        RawTensor { carry: Some("x_next".into()), ..src(t("x", vec![1, g.n, LATENT_DIM as i64]), "encoder.latent") },
        src(t("cond", vec![1, g.n, TOKEN_DIM as i64]), "encoder.cond"),
        RawTensor { schedule: Some((0..p.steps).map(|s| 1.0 / (p.steps - s) as f32).collect()), ..t("alpha", vec![1]) },
    ];
    for (slot, _, ia, ib, fin, fout, rank) in slots(p) {
        den_inputs.push(src(t(ia, vec![fin as i64, rank as i64]), &format!("lora:{slot}.a")));
        den_inputs.push(src(t(ib, vec![rank as i64, fout as i64]), &format!("lora:{slot}.b")));
    }
    let raw = manifest::RawManifest {
        schema: PACKAGE_SCHEMA.into(),
        name: format!("quadbench-reference-{}", p.cache_key()),
        description: "quadbench reference image-to-image package: encoder -> denoiser x steps -> decoder, one LoRA adapter per image edit".into(),
        image: RawImage { height: r as u32, width: r as u32 },
        stages: vec![
            RawStage {
                name: "encoder".into(),
                graph: "encoder.onnx".into(),
                repeat: 1,
                inputs: vec![RawTensor { range: Some([0.0, 1.0]), ..src(t("image", vec![1, 3, r, r]), "image") }],
                outputs: vec![t("cond", vec![1, g.n, TOKEN_DIM as i64]), t("latent", vec![1, g.n, LATENT_DIM as i64])],
            },
            RawStage { name: "denoiser".into(), graph: "denoiser.onnx".into(), repeat: p.steps as u32, inputs: den_inputs, outputs: vec![t("x_next", vec![1, g.n, LATENT_DIM as i64])] },
            RawStage {
                name: "decoder".into(),
                graph: "decoder.onnx".into(),
                repeat: 1,
                inputs: vec![src(t("latent", vec![1, g.n, LATENT_DIM as i64]), "denoiser.x_next")],
                outputs: vec![RawTensor { range: Some([0.0, 1.0]), ..t("image", vec![1, 3, r, r]) }],
            },
        ],
        lora_slots: slots(p)
            .into_iter()
            .map(|(name, module, _, _, fin, fout, rank)| RawSlot { name: name.into(), stage: "denoiser".into(), module: module.into(), rank, alpha: rank as f32, in_features: fin, out_features: fout })
            .collect(),
        tasks,
        output: "decoder.image".into(),
        files: Vec::<RawFile>::new(),
        generator: Some(BTreeMap::from([
            ("tool".to_string(), format!("quadbench {}", env!("CARGO_PKG_VERSION"))),
            ("params".to_string(), serde_json::to_string(p).unwrap_or_default()),
        ])),
    };
    manifest::finalize_and_write(out, raw)
}
