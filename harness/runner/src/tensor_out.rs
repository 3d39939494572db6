//! Tensor outputs (`PlanPipeline::tensor_outputs`): a stage output saved as a `.npy` file of its
//! declared dtype (`quadbench_protocol::npy`), for scoring against golden tensors on the host.

use ort::value::DynValue;
use quadbench_protocol::npy::NpyArray;
use quadbench_protocol::{DType, OutputTensor, Plan, StageOutputRef};
use std::path::Path;

/// The declared dtype of each of the plan's tensor outputs, in order; an output the pipeline
/// does not declare is an error (the host validated the package, a hand-made plan may not be).
pub fn dtypes(plan: &Plan) -> Result<Vec<DType>, String> {
    plan.pipeline
        .tensor_outputs
        .iter()
        .map(|r| {
            plan.pipeline
                .stages
                .iter()
                .find(|s| s.name == r.stage)
                .and_then(|s| s.outputs.iter().find(|o| o.name == r.output))
                .map(|o| o.dtype)
                .ok_or_else(|| format!("tensor output `{}` is not an output of any stage of the plan", r.label()))
        })
        .collect()
}

fn raw<T: ort::value::PrimitiveTensorElementType>(
    v: &DynValue,
    bytes: fn(&T) -> Vec<u8>,
) -> Result<(Vec<usize>, Vec<u8>), String> {
    let (shape, data) = v.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
    let shape = shape.iter().map(|&d| d as usize).collect();
    Ok((shape, data.iter().flat_map(bytes).collect()))
}

/// The value as an array of `dtype` (its elements copied as little-endian bytes).
pub fn to_npy(v: &DynValue, dtype: DType) -> Result<NpyArray, String> {
    let (shape, data) = match dtype {
        DType::F32 => raw::<f32>(v, |x| x.to_le_bytes().to_vec()),
        DType::U8 => raw::<u8>(v, |x| vec![*x]),
        DType::I8 => raw::<i8>(v, |x| x.to_le_bytes().to_vec()),
        DType::U16 => raw::<u16>(v, |x| x.to_le_bytes().to_vec()),
        DType::I16 => raw::<i16>(v, |x| x.to_le_bytes().to_vec()),
        DType::I32 => raw::<i32>(v, |x| x.to_le_bytes().to_vec()),
        DType::I64 => raw::<i64>(v, |x| x.to_le_bytes().to_vec()),
        DType::F16 => raw::<half::f16>(v, |x| x.to_bits().to_le_bytes().to_vec()),
    }
    .map_err(|e| format!("cannot read the output as {}: {e}", dtype.as_str()))?;
    Ok(NpyArray { dtype, shape, data })
}

/// Write the tensor outputs of one request (`kept` as [`crate::pipeline::Executor::run_keep`]
/// returns them; `None` stands for `image`) as `<dir>/<rel_dir>/<task>__<input>__<output>.npy`.
#[allow(clippy::too_many_arguments)] // each is one coordinate of the file written
pub fn write_all(
    plan: &Plan,
    dtypes: &[DType],
    dir: &Path,
    rel_dir: &str,
    task: &str,
    input: &str,
    image: &DynValue,
    kept: &[Option<DynValue>],
) -> Result<Vec<OutputTensor>, String> {
    let mut out = Vec::with_capacity(kept.len());
    for ((r, dtype), v) in plan.pipeline.tensor_outputs.iter().zip(dtypes).zip(kept) {
        let a =
            to_npy(v.as_ref().unwrap_or(image), *dtype).map_err(|e| format!("tensor output `{}`: {e}", r.label()))?;
        let output = r.label();
        let rel = format!("{rel_dir}/{}", OutputTensor::file_name(task, input, &output));
        let path = dir.join(&rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        std::fs::write(&path, a.to_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        out.push(OutputTensor { task: task.into(), input: input.into(), output, path: rel });
    }
    Ok(out)
}

/// The refs to keep of a request: all of the plan's tensor outputs, or none.
pub fn keep(plan: &Plan, capture: bool) -> &[StageOutputRef] {
    if capture { &plan.pipeline.tensor_outputs } else { &[] }
}
