//! NPU path (QNN HTP, simulated on x86_64): QDQ graphs run fully offloaded.

use quadbench::package::quantize::{self, ActBits, QdqConfig};
use quadbench_onnx::proto::data_type::FLOAT;
use quadbench_onnx::GraphBuilder;
use std::collections::{BTreeMap, HashSet};

fn qnn_env() -> ort::environment::Environment {
    let lib = quadbench_runtime::ensure_onnxruntime().expect("ONNX Runtime: run `quadbench runtime fetch`");
    let qnn = quadbench_runtime::ensure_qnn().expect("QNN plugin: run `quadbench runtime fetch onnxruntime-qnn` (needs glibc >= 2.35)");
    let env = ort::init_from(&lib.library).unwrap().with_name("npu").build().unwrap();
    env.register_ep_library("QNNExecutionProvider", &qnn.library).expect("register the QNN plugin");
    env
}

#[test]
fn spike_lora_matmul_full_offload() {
    let env = qnn_env();
    for d in env.devices() {
        eprintln!("device {} {:?}", d.ep().unwrap(), d.hardware_device().ty());
    }
    let mut g = GraphBuilder::new("t");
    let x = g.input("x", FLOAT, &[1, 16, 32]);
    let a = g.input("a", FLOAT, &[32, 4]);
    let b = g.input("b", FLOAT, &[4, 32]);
    let w: Vec<f32> = (0..32 * 32).map(|i| ((i * 37 % 101) as f32 - 50.0) / 200.0).collect();
    let wi = g.init_f32("w", &[32, 32], &w);
    let base = g.node("MatMul", &[&x, &wi], vec![]);
    let down = g.node("MatMul", &[&x, &a], vec![]);
    let up = g.node("MatMul", &[&down, &b], vec![]);
    let y = g.node_to("Add", &[&base, &up], vec![], "y");
    g.output(&y, FLOAT, &[1, 16, 32]);
    let m = g.finish("t", &[]);
    let mut ranges = BTreeMap::new();
    for t in quantize::activation_tensors(&m) {
        ranges.insert(t, (-8.0, 8.0));
    }
    let q = quantize::to_qdq(&m, &ranges, &QdqConfig { act: ActBits::U16, a8_nodes: HashSet::new(), per_channel: false }).unwrap();
    let p = std::path::Path::new("/tmp/npu-spike/t.onnx");
    std::fs::write(p, quadbench_onnx::encode(&q)).unwrap();
    let dev = env.devices().find(|d| d.ep().unwrap() == "QNNExecutionProvider").unwrap();
    let t0 = std::time::Instant::now();
    let mut s = ort::session::Session::builder(&env).unwrap()
        .with_config_entry("session.disable_cpu_ep_fallback", "1").unwrap()
        .with_devices([dev], Some(&[("QNNExecutionProvider.backend_type".to_string(), "htp".to_string())])).unwrap()
        .commit_from_file(p).unwrap();
    eprintln!("create {:?}", t0.elapsed());
    let xs = ort::value::Tensor::from_array((vec![1i64, 16, 32], vec![0.5f32; 512])).unwrap();
    let av = ort::value::Tensor::from_array((vec![32i64, 4], vec![0.1f32; 128])).unwrap();
    let bv = ort::value::Tensor::from_array((vec![4i64, 32], vec![0.1f32; 128])).unwrap();
    let t0 = std::time::Instant::now();
    let o = s.run(ort::inputs!["x" => xs, "a" => av, "b" => bv]).unwrap();
    eprintln!("run {:?} y0={}", t0.elapsed(), o["y"].try_extract_tensor::<f32>().unwrap().1[0]);
}
