//! The reference package's graphs are standard ONNX: the official `onnx.checker` (full check,
//! with shape inference) accepts every graph. The checker runs from a private virtual environment
//! in the quadbench cache (`pip install onnx==1.23.2`, once), the same way the runtime is fetched.
//! The same holds for the graphs `package import` writes from the torch fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

const ONNX_VERSION: &str = "1.23.2";

/// A Python with `onnx` installed, created on first use.
fn checker_python() -> PathBuf {
    let venv = quadbench_runtime::cache_dir().join(format!("pycheck-onnx-{ONNX_VERSION}"));
    let py = venv.join("bin/python");
    let ok = |p: &Path| Command::new(p).args(["-c", "import onnx"]).output().is_ok_and(|o| o.status.success());
    if !ok(&py) {
        let python = std::env::var("QUADBENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let st =
            Command::new(&python).args(["-m", "venv"]).arg(&venv).status().expect("python3 (set QUADBENCH_PYTHON)");
        assert!(st.success(), "cannot create a venv at {} with {python}", venv.display());
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", &format!("onnx=={ONNX_VERSION}")])
            .status()
            .unwrap();
        assert!(st.success(), "pip install onnx=={ONNX_VERSION} failed (network to PyPI needed once)");
    }
    assert!(ok(&py), "onnx not importable from {}", py.display());
    py
}

#[test]
fn onnx_checker_accepts_every_reference_graph() {
    let d = tempfile::tempdir().unwrap();
    let m = quadbench::package::reference::generate(
        d.path(),
        &quadbench::package::reference::ReferenceParams {
            tasks: 3,
            width: 64,
            resolution: 64,
            steps: 2,
            seed: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let graphs: Vec<String> = m
        .raw
        .files
        .iter()
        .filter(|f| f.path.ends_with(".onnx"))
        .map(|f| d.path().join(&f.path).display().to_string())
        .collect();
    assert_eq!(graphs.len(), 3 + 3);
    let script = "import sys, onnx\nfor p in sys.argv[1:]:\n    m = onnx.load(p)\n    onnx.checker.check_model(m, full_check=True)\n    print('ok', p, 'opset', m.opset_import[0].version)\n";
    let out = Command::new(checker_python()).arg("-c").arg(script).args(&graphs).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "onnx.checker rejected a graph:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ") && l.ends_with("opset 17")).count(),
        graphs.len(),
        "{stdout}"
    );
}

/// `package import`'s unified graph (LoRA branches on MatMul, Gemm and Conv with A and B as
/// inputs) and merged baselines of the torch fixture are standard ONNX too.
#[test]
fn onnx_checker_accepts_every_imported_graph() {
    let d = tempfile::tempdir().unwrap();
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/import");
    let o = quadbench::package::import::ImportOptions {
        model: f.join("model.onnx"),
        adapters: ["sharpen", "warm", "cool"].map(|t| (t.to_string(), f.join("adapters").join(t))).to_vec(),
        name: None,
        max_rank: None,
        prefix: None,
        opset: None,
        target: None,
        input_sources: Vec::new(),
        task_inputs: Vec::new(),
    };
    let (m, _) = quadbench::package::import::import(&o, d.path()).unwrap();
    let graphs: Vec<String> = m
        .raw
        .files
        .iter()
        .filter(|f| f.path.ends_with(".onnx"))
        .map(|f| d.path().join(&f.path).display().to_string())
        .collect();
    assert_eq!(graphs.len(), 1 + 3);
    let script = "import sys, onnx\nfor p in sys.argv[1:]:\n    m = onnx.load(p)\n    onnx.checker.check_model(m, full_check=True)\n    print('ok', p, len(m.graph.input))\n";
    let out = Command::new(checker_python()).arg("-c").arg(script).args(&graphs).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "onnx.checker rejected a graph:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The unified graph takes the image and A, B of 9 slots; each baseline the image alone.
    assert_eq!(stdout.lines().filter(|l| l.ends_with(" 19")).count(), 1, "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.ends_with(" 1")).count(), 3, "{stdout}");
}

/// The importer rewrites users' models through the `quadbench-onnx` subset of onnx.proto: a
/// decode and re-encode of every fixture model it accepts is the same model for the official
/// `onnx` package, checked in full, once metadata is set aside (the dynamo export's
/// `metadata_props` on graph and values, which the import report lists as dropped) and explicit
/// default values are read as absent (proto2 keeps `i: 0` on an attribute, prost writes nothing;
/// ONNX reads both as 0). The `If` model, which the importer refuses, shows the comparison can
/// fail: its subgraphs do not survive.
#[test]
fn re_encoding_keeps_every_accepted_fixture_model() {
    let d = tempfile::tempdir().unwrap();
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/import");
    let mut args = Vec::new();
    for name in ["model.onnx", "model_cond.onnx", "model_dynamo.onnx", "model_gemm_t0.onnx", "model_if.onnx"] {
        let orig = f.join(name);
        let again = d.path().join(name);
        std::fs::write(&again, quadbench_onnx::encode(&quadbench_onnx::read_model(&orig).unwrap())).unwrap();
        args.extend([orig.display().to_string(), again.display().to_string()]);
    }
    let script = r#"
import sys, onnx
def norm(msg):
    # A scalar set to its default means what an absent one does.
    for fd, val in msg.ListFields():
        if fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED:
            for v in (val if fd.message_type else []):
                norm(v)
        elif fd.message_type:
            norm(val)
        elif val == fd.default_value:
            msg.ClearField(fd.name)
def strip(m):
    # Metadata only: what quadbench_onnx::unmodelled marks `metadata` and the import report lists.
    g = m.graph
    g.ClearField("metadata_props")
    for v in list(g.input) + list(g.output) + list(g.value_info):
        v.ClearField("metadata_props")
    for t in g.initializer:
        t.ClearField("doc_string")
        t.ClearField("metadata_props")
    norm(m)
    return m.SerializeToString(deterministic=True)
a = sys.argv[1:]
for orig, again in zip(a[0::2], a[1::2]):
    m = onnx.load(again)
    same = strip(onnx.load(orig)) == strip(m)
    if same:
        onnx.checker.check_model(m, full_check=True)
    print("same" if same else "differs", orig.rsplit("/", 1)[-1])
"#;
    let out = Command::new(checker_python()).arg("-c").arg(script).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in ["model.onnx", "model_cond.onnx", "model_dynamo.onnx", "model_gemm_t0.onnx"] {
        assert!(stdout.lines().any(|l| l == format!("same {name}")), "{name} changed on re-encoding:\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l == "differs model_if.onnx"), "{stdout}");
}
