//! `package import` on the exports and adapter files beyond the first fixture (the `--extras` of
//! `tests/fixtures/import/make_fixture.py`): a dynamo export, a Gemm stored with transB = 0, f16
//! and bf16 adapters, an adapter with a wrapper prefix; the opset check; models the importer's
//! ONNX subset cannot carry (an `If` subgraph, a sparse initializer) refused; `target:` in the
//! scenario source. Every task is checked against torch's own forward pass.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// The same tolerance as `tests/import.rs`: measured max-abs differences are ~1e-7.
const TOLERANCE: f32 = 1e-5;

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/import")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `package import --model MODEL --adapter NAME=PATH... [extra...] --out OUT`.
fn import(model: &Path, adapters: &[(&str, PathBuf)], extra: &[&str], out: &Path) -> std::process::Output {
    let mut c = quadbench();
    c.args(["package", "import"]).args(extra).arg("--model").arg(model).arg("--out").arg(out);
    for (name, p) in adapters {
        c.arg("--adapter").arg(format!("{name}={}", p.display()));
    }
    run(&mut c)
}

/// `infer` one task with one strategy on the fixture's request; the output tensor.
fn infer(pkg: &Path, task: &str, strategy: &str, out: &Path) -> Vec<f32> {
    let o = run(quadbench()
        .arg("infer")
        .arg(pkg)
        .args(["--task", task, "--strategy", strategy, "--inputs"])
        .arg(fixture().join("inputs.npz"))
        .arg("--out")
        .arg(out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    quadbench::npy::read(out).unwrap()["out"].data.clone()
}

/// Every (task, golden key) of `pkg`, unified and separate-reload, within TOLERANCE of torch's
/// output in `expected`; the golden differs from the base model far beyond it.
fn assert_equals_torch(pkg: &Path, expected: &Path, tasks: &[(&str, &str)], what: &str) {
    let want = quadbench::npy::read(expected).unwrap();
    let base = quadbench::npy::read(&fixture().join("expected.npz")).unwrap()["base"].data.clone();
    for (task, golden) in tasks {
        let w = &want[*golden].data;
        assert!(max_abs(w, &base) > 0.05, "{golden}: torch's adapter barely changes the output");
        for strategy in ["unified", "separate-reload"] {
            let got = infer(pkg, task, strategy, &pkg.with_extension(format!("{task}-{strategy}.npz")));
            let diff = max_abs(&got, w);
            eprintln!("max |infer - torch| {what} {task} {strategy}: {diff:e}");
            assert!(diff < TOLERANCE, "{what} {task} {strategy}: max abs {diff} vs torch");
        }
    }
}

fn peft(task: &str) -> PathBuf {
    fixture().join("adapters").join(task)
}

/// torch.onnx.export(..., dynamo=True): the Linear weights are transposed `val_N` constants and
/// the module path is only in the nodes' `pkg.torch.onnx.name_scopes` metadata; Conv and Gemm
/// keep `<path>.weight`. Every slot is found and every task equals torch.
#[test]
fn dynamo_export_imports_and_equals_torch() {
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("pkg");
    let tasks = ["sharpen", "warm", "cool"].map(|t| (t, peft(t)));
    let o = import(&fixture().join("model_dynamo.onnx"), &tasks, &[], &pkg);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    for want in [
        "opset: ai.onnx 18",
        "lora slots: 9 (4 Conv, 1 Gemm, 4 MatMul)",
        "down_blocks.0.attentions.0.to_out.0",
        "dropped on re-encoding (metadata only",
    ] {
        assert!(err.contains(want), "missing `{want}` in: {err}");
    }
    let graph = quadbench_onnx::read_model(&fixture().join("model_dynamo.onnx")).unwrap();
    let g = graph.graph.unwrap();
    assert!(
        !g.initializer.iter().any(|t| t.name.ends_with("to_q.weight")),
        "the export changed: to_q has a named weight"
    );
    assert!(g.node.iter().any(|n| n.op_type == "MatMul" && n.name == "node_linear"), "node names carry no module path");
    let tasks = [("sharpen", "sharpen"), ("warm", "warm"), ("cool", "cool")];
    assert_equals_torch(&pkg, &fixture().join("expected.npz"), &tasks, "dynamo");
}

/// `mid_block.proj` as Gemm with transB = 0 (weight stored [in, out]): the slot, the merge and
/// the unified graph follow that layout.
#[test]
fn gemm_with_trans_b_0_equals_torch() {
    let m = quadbench_onnx::read_model(&fixture().join("model_gemm_t0.onnx")).unwrap();
    let g = m.graph.unwrap();
    let gemm = g.node.iter().find(|n| n.op_type == "Gemm").unwrap();
    assert_eq!(gemm.attribute.iter().find(|a| a.name == "transB").map(|a| a.i), Some(0));
    let w = g.initializer.iter().find(|t| t.name == gemm.input[1]).unwrap();
    assert_eq!(w.dims, vec![16, 16], "square: the test leans on the values, not the shape");
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("pkg");
    let o = import(&fixture().join("model_gemm_t0.onnx"), &[("warm", peft("warm"))], &[], &pkg);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("mid_block.proj                                   Gemm"), "{}", stderr(&o));
    assert_equals_torch(&pkg, &fixture().join("expected.npz"), &[("warm", "warm")], "gemm-transB0");
}

/// The `sharpen` adapter saved in f16 and in bf16: read exactly (the rounded values), so the
/// package equals torch's forward pass with the same rounded adapter at the usual tolerance.
/// (Against the f32 adapter torch itself moves by 2.0e-5 for f16 and 1.7e-4 for bf16.)
#[test]
fn f16_and_bf16_adapters_equal_torch() {
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("pkg");
    let half = fixture().join("adapters_half");
    let o = import(
        &fixture().join("model.onnx"),
        &[("f16", half.join("sharpen_f16")), ("bf16", half.join("sharpen_bf16"))],
        &[],
        &pkg,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bytes = std::fs::read(half.join("sharpen_bf16/adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensors().iter().all(|(_, t)| t.dtype() == safetensors::Dtype::BF16));
    let expected = fixture().join("expected_half.npz");
    assert_equals_torch(&pkg, &expected, &[("f16", "sharpen_f16"), ("bf16", "sharpen_bf16")], "half");
    // The rounding is visible: bf16 is not the f32 adapter (so the check above is not vacuous).
    let e = quadbench::npy::read(&expected).unwrap();
    let f32_sharpen = &quadbench::npy::read(&fixture().join("expected.npz")).unwrap()["sharpen"].data;
    assert!(max_abs(&e["sharpen_bf16"].data, f32_sharpen) > 10.0 * TOLERANCE);
}

/// An adapter trained on a wrapper module (`model.<path>` keys): without `--prefix` exit 2 lists
/// every key with the prefix that would match it; with `--prefix model.` it equals torch's `cool`.
#[test]
fn wrapper_prefix_needs_prefix_option() {
    let d = tempfile::tempdir().unwrap();
    let adapter = fixture().join("adapters_prefixed/cool");
    let model = fixture().join("model.onnx");
    let bad = d.path().join("bad");
    let o = import(&model, &[("cool", adapter.clone())], &[], &bad);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!bad.join("package.yaml").exists());
    for want in [
        "2 adapter keys match no",
        "key `base_model.model.model.conv_out`",
        "key `base_model.model.model.down_blocks.0.attentions.0.to_q`",
        "with --prefix model. it matches `down_blocks.0.attentions.0.to_q`",
    ] {
        assert!(err.contains(want), "missing `{want}` in: {err}");
    }
    let pkg = d.path().join("pkg");
    let o = import(&model, &[("cool", adapter)], &["--prefix", "model."], &pkg);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_equals_torch(&pkg, &fixture().join("expected.npz"), &[("cool", "cool")], "prefixed");
}

/// The model's ai.onnx opset against the import's minimum (13) and `--opset N`.
#[test]
fn opset_below_the_minimum_or_the_option_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let cool = [("cool", peft("cool"))];
    let mut old = quadbench_onnx::read_model(&fixture().join("model.onnx")).unwrap();
    assert_eq!(old.opset_import[0].version, 17);
    old.opset_import[0].version = 12;
    let old_path = d.path().join("opset12.onnx");
    std::fs::write(&old_path, quadbench_onnx::encode(&old)).unwrap();
    let cases: [(&Path, &[&str], &[&str]); 2] = [
        (&old_path, &[], &["opset 12", "the import needs at least 13", "opset_version=13"]),
        (
            &fixture().join("model.onnx"),
            &["--opset", "18"],
            &["opset 17", "--opset 18 asks for at least 18", "opset_version=18"],
        ),
    ];
    for (i, (model, extra, wants)) in cases.into_iter().enumerate() {
        let o = import(model, &cool, extra, &d.path().join(format!("bad{i}")));
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        for w in wants {
            assert!(stderr(&o).contains(w), "missing `{w}` in: {}", stderr(&o));
        }
    }
    let o = import(&fixture().join("model.onnx"), &cool, &["--opset", "17"], &d.path().join("ok"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("opset: ai.onnx 17"), "{}", stderr(&o));
}

/// What the importer's ONNX subset cannot carry is refused with exit 2 naming the place, not
/// dropped: the `If` node's two subgraphs, a sparse initializer.
#[test]
fn subgraphs_and_sparse_initializers_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 2] = [
        (
            "model_if.onnx",
            &[
                "(2 places)",
                "graph.node[0] /gate/If (If).attribute[0] else_branch: g (a subgraph) (AttributeProto field 6)",
                "then_branch: g (a subgraph)",
                "If/Loop/Scan",
            ],
        ),
        (
            "model_sparse.onnx",
            &["(1 place)", "graph: sparse_initializer (GraphProto field 15)", "densify sparse initializers"],
        ),
    ];
    for (model, wants) in cases {
        let out = d.path().join(model);
        let o = import(&fixture().join(model), &[("cool", peft("cool"))], &[], &out);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(!out.join("package.yaml").exists());
        for w in wants {
            assert!(stderr(&o).contains(w), "{model}: missing `{w}` in: {}", stderr(&o));
        }
    }
}

/// `package: {import: {..., target: REGEX}}`: only matching layers get slots, and the pattern is
/// part of the cache key (another pattern is another package, the same one is found again); a
/// pattern that is no regular expression is refused at the `import` key.
#[test]
fn scenario_source_target_selects_layers_and_keys_the_cache() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let source = |target: Option<&str>| {
        let mut v = serde_json::json!({
            "model": f.join("model.onnx").display().to_string(),
            "adapters": {"warm": peft("warm").display().to_string()},
        });
        if let Some(t) = target {
            v["target"] = t.into();
        }
        (quadbench::package::source::import::KIND.parse)(v, d.path())
    };
    let cache = d.path().join("cache");
    let resolve = |target: Option<&str>| {
        let dir = source(target).unwrap().resolve(&cache, &mut quadbench::events::Quiet).unwrap();
        let slots = quadbench::package::load(&dir).unwrap().pipeline.lora_slots.len();
        (dir, slots)
    };
    let (all, n_all) = resolve(None);
    let (attn, n_attn) = resolve(Some(r"attentions\.0\.to_"));
    assert_eq!((n_all, n_attn), (5, 2));
    assert_ne!(all, attn, "the target is not in the cache key");
    assert_eq!(resolve(Some(r"attentions\.0\.to_")).0, attn, "the same source was imported again");
    let e = source(Some("(")).unwrap_err();
    assert_eq!(e.key, "import");
    assert!(e.message.contains("`target` is not a regular expression"), "{}", e.message);
}
