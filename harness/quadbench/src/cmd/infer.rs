//! `quadbench infer PACKAGE --task NAME --inputs FILE.npz [--strategy S] [--backend cpu] --out OUT.npz`:
//! one request of one task through the runner's pipeline executor (`quadbench_runner::pipeline`,
//! the code a device runs) on this host's ONNX Runtime. The image and every per-request tensor
//! input (`source: tensor`) are read by graph input name from the `.npz`; every stage output is written by name (`<output>`, or `<stage>.<output>` where two
//! stages share a name). With `--expect FILE.npz --expect-key KEY`, tensor quality metrics of the
//! image output against that array are printed as JSON on stdout.

use super::exit::{self, Classify};
use crate::npy::{self, Array};
use crate::package::{self, PackageError};
use crate::quality::tensor;
use clap::Args;
use quadbench_protocol::npy::NpyArray;
use quadbench_protocol::{Backend, Plan, Source, Strategy};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct InferArgs {
    /// Package directory (holding package.yaml).
    package: PathBuf,
    /// Task (adapter) to run.
    #[arg(long)]
    task: String,
    /// .npz (or .npy) holding the request's input image by its graph input name.
    #[arg(long)]
    inputs: PathBuf,
    /// unified (adapter as graph inputs) or a separate strategy (the task's merged baseline).
    #[arg(long, default_value = "unified")]
    strategy: String,
    /// Backend on this host (cpu).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Output .npz (every stage output by name), `-` for none.
    #[arg(long)]
    out: PathBuf,
    /// Golden tensors (.npz or .npy) to score the image output against.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Array of `--expect` to compare with (default: the task's name, else the only array).
    #[arg(long)]
    expect_key: Option<String>,
    /// Data range for PSNR over the tensor (default: 1, an image in [0, 1]).
    #[arg(long, default_value_t = 1.0)]
    data_range: f64,
}

/// What can go wrong in `infer`.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Npy(#[from] npy::NpyError),
    #[error("{0}")]
    Input(String),
    #[error("the request failed in the runner: {0}")]
    Run(String),
}

impl Classify for InferError {
    fn exit_code(&self) -> i32 {
        match self {
            InferError::Package(e) => e.exit_code(),
            InferError::Npy(_) | InferError::Input(_) => exit::BAD_INPUT,
            InferError::Run(_) => exit::RUNS_FAILED,
        }
    }
}

pub fn infer(a: InferArgs) -> i32 {
    match run(&a) {
        Ok(()) => exit::OK,
        Err(e) => exit::fail(&e),
    }
}

fn run(a: &InferArgs) -> Result<(), InferError> {
    let strategy = Strategy::parse(&a.strategy).ok_or_else(|| {
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        InferError::Input(format!("--strategy `{}` is not a strategy; one of {}", a.strategy, names.join(", ")))
    })?;
    if a.backend != Backend::Cpu.as_str() {
        return Err(InferError::Input(format!(
            "--backend `{}`: infer runs on this host's CPU EP only (`cpu`); accelerators are measured through scenarios (`quadbench run`)",
            a.backend
        )));
    }
    let m = package::check(&a.package)?;
    let task = m.pipeline.tasks.iter().find(|t| t.name == a.task).ok_or_else(|| {
        let names: Vec<&str> = m.pipeline.tasks.iter().map(|t| t.name.as_str()).collect();
        let hint = crate::yaml::nearest(&a.task, names.iter().copied())
            .map_or_else(|| format!("tasks: {}", names.join(", ")), |n| format!("did you mean `{n}`?"));
        InferError::Input(format!("--task `{}` is not a task of {}; {hint}", a.task, m.raw.name))
    })?;
    let typed = npy::read_tensor_file(&a.inputs)?;
    let arrays: BTreeMap<String, Array> = typed
        .iter()
        .map(|(k, t)| {
            (k.clone(), Array { shape: t.shape.clone(), data: t.to_f64().into_iter().map(|v| v as f32).collect() })
        })
        .collect();
    // The request image, when the package takes one (a package without, e.g. a UNet, has none).
    let image = m.pipeline.stages.iter().flat_map(|s| &s.inputs).find(|i| i.source == Source::Image);
    let arr = match image {
        None => Array { shape: vec![1], data: vec![0.0] }, // unused: no stage takes it
        Some(image) => image_array(&arrays, image, a)?,
    };
    // Per-request tensor and mask inputs (`source: tensor`, `source: mask`) by their names.
    let mut request = BTreeMap::new();
    for i in
        m.pipeline.stages.iter().flat_map(|s| &s.inputs).filter(|i| matches!(i.source, Source::Tensor | Source::Mask))
    {
        let want: Vec<usize> = i.tensor.shape.iter().map(|&d| d as usize).collect();
        let t = typed.get(&i.tensor.name).ok_or_else(|| {
            InferError::Input(format!(
                "{}: no array `{}` (a per-request input of the package); arrays: {}",
                a.inputs.display(),
                i.tensor.name,
                arrays.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if t.shape != want || t.dtype != i.tensor.dtype {
            return Err(InferError::Input(format!(
                "{}: `{}` is {} {:?}, the package needs {} {want:?} (numpy: x.astype(np.{}))",
                a.inputs.display(),
                i.tensor.name,
                t.dtype.as_str(),
                t.shape,
                i.tensor.dtype.as_str(),
                i.tensor.dtype.numpy_name()
            )));
        }
        request.insert(i.tensor.name.clone(), t.clone());
    }
    // The host's own ONNX Runtime (a runtime that cannot load is an infrastructure error).
    let env = crate::package::source::quantized::host_env()?;
    let mut p = crate::plan::in_process(&m, strategy, "(the host's ONNX Runtime)".into());
    // `.onnx_adapter` files are derived at staging time; infer derives them into a scratch dir.
    let scratch =
        tempfile::tempdir().map_err(|e| InferError::Run(format!("cannot create a scratch directory: {e}")))?;
    if strategy == Strategy::UnifiedOrtAdapter {
        for f in package::ort_adapter::write_all(&m, &a.package, scratch.path())? {
            let t = p.pipeline.tasks.iter_mut().find(|t| t.name == f.task).expect("written for a package task");
            t.ort_adapters.insert(f.stage, f.path.display().to_string());
        }
    }
    let outputs = execute(&p, &a.package, env, &task.name, &arr, &request).map_err(InferError::Run)?;
    if a.out.as_os_str() != "-" {
        npy::write(&a.out, &outputs)?;
        eprintln!("wrote {} output{} to {}", outputs.len(), if outputs.len() == 1 { "" } else { "s" }, a.out.display());
    }
    if let Some(path) = &a.expect {
        let golden = npy::read(path)?;
        let key = a.expect_key.clone().unwrap_or_else(|| {
            if golden.contains_key(&task.name) || golden.len() != 1 {
                task.name.clone()
            } else {
                golden.keys().next().cloned().unwrap_or_default()
            }
        });
        let g = golden.get(&key).ok_or_else(|| {
            InferError::Input(format!(
                "{}: no array `{key}`; arrays: {}",
                path.display(),
                golden.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let out_name = &m.pipeline.image_output.output;
        let got = outputs.get(out_name).or_else(|| outputs.values().last()).expect("the run produced outputs");
        let s = tensor::compare(&g.data, &g.shape, &got.data, &got.shape, a.data_range)
            .map_err(|e| InferError::Input(format!("--expect {}: {e}", path.display())))?;
        println!("{}", serde_json::to_string(&s).expect("scores serialise"));
    }
    Ok(())
}

/// One request through the runner's executor; every stage output by name.
fn execute(
    p: &Plan,
    dir: &std::path::Path,
    env: &ort::environment::Environment,
    task: &str,
    input: &Array,
    request: &BTreeMap<String, NpyArray>,
) -> Result<BTreeMap<String, Array>, String> {
    let tensor = |a: &Array| {
        let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
        ort::value::Tensor::from_array((shape, a.data.clone())).map_err(|e| e.to_string())
    };
    let mut ex = quadbench_runner::pipeline::Executor::new(p, dir, env)?;
    ex.set_request_tensors(
        request
            .iter()
            .map(|(k, v)| Ok((k.clone(), quadbench_runner::pipeline::npy_value(v).map_err(|e| format!("`{k}`: {e}"))?)))
            .collect::<Result<_, String>>()?,
    );
    ex.init(task)?;
    let switch_ms = ex.switch_to(task)?;
    let image = tensor(input)?;
    let mut timing = quadbench_runner::pipeline::RequestTiming::default();
    let t0 = std::time::Instant::now();
    let values = ex.run_values(task, &image, &mut timing)?;
    eprintln!(
        "{task} ({}): sessions {:.1} ms, switch {switch_ms:.1} ms, request {:.1} ms",
        p.strategy,
        ex.created.iter().map(|c| c.2).sum::<f64>(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, o) in values.keys() {
        *names.entry(o.as_str()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for ((stage, o), v) in &values {
        let (shape, data) = v.try_extract_tensor::<f32>().map_err(|e| format!("output {stage}.{o}: {e}"))?;
        let key = if names[o.as_str()] > 1 { format!("{stage}.{o}") } else { o.clone() };
        out.insert(key, Array { shape: shape.iter().map(|&d| d as usize).collect(), data: data.to_vec() });
    }
    Ok(out)
}

/// The `.npz` array of the package's image input, checked against its shape.
fn image_array(
    arrays: &BTreeMap<String, Array>,
    image: &quadbench_protocol::StageInput,
    a: &InferArgs,
) -> Result<Array, InferError> {
    let want: Vec<usize> = image.tensor.shape.iter().map(|&d| d as usize).collect();
    let arr = arrays.get(&image.tensor.name).or(if arrays.len() == 1 { arrays.values().next() } else { None });
    let arr = arr.ok_or_else(|| {
        InferError::Input(format!(
            "{}: no array `{}` (the package's image input); arrays: {}",
            a.inputs.display(),
            image.tensor.name,
            arrays.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    if arr.shape != want {
        return Err(InferError::Input(format!(
            "{}: `{}` has shape {:?}, the package needs {want:?}",
            a.inputs.display(),
            image.tensor.name,
            arr.shape
        )));
    }
    Ok(arr.clone())
}
