//! Inputs beyond the image, on the committed torch inpainting fixture (`tests/fixtures/inpaint`,
//! made by its `make_fixture.py`): a mask image per request (`source: mask`, scenario `masks`), a
//! per-task prompt embedding (`source: task`, package files loaded at each task switch) and an
//! int64 timestep per request (`source: tensor`, typed `.npz`). Import with `--input` and
//! `--task-input`, `infer` equal to torch's PEFT forward pass, a scenario end to end (the mask
//! lands where the fixture's hole is), and bad input exiting 2 with the fix.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// As in tests/import.rs: measured max-abs differences against torch are ~4e-7.
const TOLERANCE: f32 = 1e-5;

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/inpaint")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn import(out: &Path, extra: &[String]) -> std::process::Output {
    import_model("model.onnx", &["remove", "recolor"], out, extra)
}

/// `package import` of a fixture model with some of the fixture's adapters.
fn import_model(model: &str, tasks: &[&str], out: &Path, extra: &[String]) -> std::process::Output {
    let f = fixture();
    let mut c = quadbench();
    c.args(["package", "import", "--model"]).arg(f.join(model)).arg("--out").arg(out);
    for t in tasks {
        c.arg("--adapter").arg(format!("{t}={}", f.join("adapters").join(t).display()));
    }
    c.args(extra);
    run(&mut c)
}

fn good_options() -> Vec<String> {
    let f = fixture();
    let mut v: Vec<String> = ["--input", "mask=mask", "--input", "prompt=task"].map(String::from).to_vec();
    for t in ["remove", "recolor"] {
        v.push("--task-input".into());
        v.push(format!("{t}:prompt={}", f.join("prompts").join(format!("{t}.npy")).display()));
    }
    v
}

#[test]
fn imported_inpainting_model_equals_torch_with_mask_prompt_and_int64_timestep() {
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("pkg");
    let o = import(&pkg, &good_options());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("lora slots: 5 (3 Conv, 2 Gemm)"), "{}", stderr(&o));
    let yaml = std::fs::read_to_string(pkg.join("package.yaml")).unwrap();
    for want in ["source: mask", "source: task", "dtype: i64", "prompt: tasks/remove/prompt.npy"] {
        assert!(yaml.contains(want), "package.yaml lacks `{want}`:\n{yaml}");
    }
    let check = run(quadbench().args(["package", "check"]).arg(&pkg));
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let expected = quadbench::npy::read(&fixture().join("expected.npz")).unwrap();
    for task in ["remove", "recolor"] {
        for strategy in ["unified", "separate-reload"] {
            let out = d.path().join(format!("{task}-{strategy}.npz"));
            let o = run(quadbench()
                .arg("infer")
                .arg(&pkg)
                .args(["--task", task, "--strategy", strategy, "--inputs"])
                .arg(fixture().join("request.npz"))
                .arg("--out")
                .arg(&out));
            assert_eq!(o.status.code(), Some(0), "{task} {strategy}: {}", stderr(&o));
            let got = quadbench::npy::read(&out).unwrap();
            let (g, w) = (&got["out"].data, &expected[task].data);
            let diff = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < TOLERANCE, "{task} {strategy}: max |ours - torch| = {diff}");
            // The task's prompt matters: without the right one the output would be another task's.
            let base = &expected["base"].data;
            let effect = w.iter().zip(base).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(effect > 0.1, "{task}: the adapter and prompt change the output by {effect}");
        }
    }
    // A per-request input of the wrong dtype is refused with the numpy fix.
    let bad = d.path().join("bad.npz");
    let req = quadbench::npy::read(&fixture().join("request.npz")).unwrap();
    quadbench::npy::write(&bad, &req).unwrap(); // written back as f32: the timestep is no longer i64
    let o = run(quadbench()
        .arg("infer")
        .arg(&pkg)
        .args(["--task", "remove", "--inputs"])
        .arg(&bad)
        .arg("--out")
        .arg(d.path().join("x.npz")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`timestep` is f32 [1], the package needs i64") && stderr(&o).contains("astype(np.int64)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn f16_request_tensor_and_unified_ort_adapter_equal_torch() {
    // The same network taking its prompt as float16 per request (the default source `tensor`).
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let pkg = d.path().join("pkg16");
    let o = import_model("model_f16prompt.onnx", &["remove"], &pkg, &["--input".into(), "mask=mask".into()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let yaml = std::fs::read_to_string(pkg.join("package.yaml")).unwrap();
    assert!(yaml.contains("dtype: f16\n    source: tensor"), "{yaml}");
    let expected = quadbench::npy::read(&f.join("expected_f16prompt.npz")).unwrap();
    for strategy in ["unified", "unified-ort-adapter", "separate-reload"] {
        let out = d.path().join(format!("{strategy}.npz"));
        let o = run(quadbench()
            .arg("infer")
            .arg(&pkg)
            .args(["--task", "remove", "--strategy", strategy, "--inputs"])
            .arg(f.join("request_f16prompt.npz"))
            .arg("--out")
            .arg(&out));
        assert_eq!(o.status.code(), Some(0), "{strategy}: {}", stderr(&o));
        let got = quadbench::npy::read(&out).unwrap();
        let diff =
            got["out"].data.iter().zip(&expected["remove"].data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < TOLERANCE, "{strategy}: max |ours - torch| = {diff}");
    }
}

#[test]
fn task_input_from_safetensors_and_a_noise_source_import_and_run() {
    // The `remove` prompt as a safetensors file (as diffusers saves embeddings), the `recolor`
    // one as .npy: the package stores both as .npy, bit for bit the same values.
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let prompt = quadbench::npy::read_typed(&f.join("prompts/remove.npy")).unwrap().remove("remove").unwrap();
    let st = d.path().join("remove_prompt.safetensors");
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, prompt.shape.clone(), &prompt.data).unwrap();
    std::fs::write(&st, safetensors::serialize([("prompt_embeds", view)], None).unwrap()).unwrap();
    let pkg = d.path().join("pkg");
    let o = import(
        &pkg,
        &[
            "--input".into(),
            "mask=mask".into(),
            "--input".into(),
            "prompt=task".into(),
            "--input".into(),
            "timestep=tensor".into(),
            "--task-input".into(),
            format!("remove:prompt={}", st.display()),
            "--task-input".into(),
            format!("recolor:prompt={}", f.join("prompts/recolor.npy").display()),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stored = quadbench::npy::read_typed(&pkg.join("tasks/remove/prompt.npy")).unwrap().remove("prompt").unwrap();
    assert_eq!(stored, prompt);
    // A noise source: the prompt replaced by seeded Gaussian noise, the same on every request.
    let noisy = d.path().join("noisy");
    let o = import(&noisy, &["--input".into(), "mask=mask".into(), "--input".into(), "prompt=noise:3:0.5".into()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(noisy.join("package.yaml")).unwrap().contains("source: noise:3:0.5"));
    let mut outs = Vec::new();
    for k in 0..2 {
        let out = d.path().join(format!("n{k}.npz"));
        let o = run(quadbench()
            .arg("infer")
            .arg(&noisy)
            .args(["--task", "remove", "--inputs"])
            .arg(f.join("request.npz"))
            .arg("--out")
            .arg(&out));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        outs.push(quadbench::npy::read(&out).unwrap().remove("out").unwrap());
    }
    assert_eq!(outs[0], outs[1], "seeded noise gives the same output on every request");
    let expected = quadbench::npy::read(&f.join("expected.npz")).unwrap();
    let diff = outs[0].data.iter().zip(&expected["remove"].data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff > 1e-3, "a noise prompt is not the task's prompt: {diff}");
}

#[test]
fn import_refuses_bad_input_options_naming_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--input".into(), "promt=task".into()], "did you mean `prompt`?"),
        (vec!["--input".into(), "mask=image".into()], "the source is one of"),
        (vec!["--input".into(), "prompt=task".into()], "pass --task-input remove:prompt=FILE.npy"),
        (
            vec![
                "--input".into(),
                "prompt=task".into(),
                "--task-input".into(),
                format!("remove:prompt={}", f.join("request.npz").display()),
            ],
            "expected one f32 array of shape [1, 16]",
        ),
        (vec!["--task-input".into(), "remove-prompt".into()], "expected TASK:NAME=FILE"),
    ];
    for (k, (args, want)) in cases.into_iter().enumerate() {
        let o = import(&d.path().join(format!("p{k}")), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: wanted `{want}` in {}", stderr(&o));
    }
}

/// A copy of the shipped scenario with this test's device, output and a short workload.
fn scenario(dir: &Path, masks: &str, tensor_inputs: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(repo().join("scenarios/inpaint-fixture.yaml")).unwrap();
    let f = fixture();
    let text = shipped
        .replace("../tests/fixtures/inpaint", &f.display().to_string())
        .replace("../devices/local.yaml", &local_device(dir).display().to_string())
        .replace(
            "inputs: [astronaut, coffee]",
            &format!("inputs: [{}]", repo().join("golden/inputs/astronaut.png").display()),
        )
        .replace(&format!("masks: [{}/mask.png]", f.display()), masks)
        .replace(&format!("tensor_inputs: [{}/timestep.npz]", f.display()), tensor_inputs)
        .replace("min_samples: 40", "min_samples: 4")
        .replace("min_switches: 20", "min_switches: 3")
        .replace("min_duration_s: 2", "min_duration_s: 0");
    let p = dir.join("inpaint.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn scenario_feeds_mask_prompt_and_timestep_and_the_hole_is_where_the_mask_is() {
    ensure_runner();
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let sc = scenario(
        d.path(),
        &format!("masks: [{}]", f.join("mask.png").display()),
        &format!("tensor_inputs: [{}]", f.join("timestep.npz").display()),
    );
    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", stderr(&o));
    let r = results(&out);
    for run in r["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "ok", "{run}");
        assert_eq!(run["valid"], true, "{}", run["validity_note"]);
        // The prompts travel with every strategy and count with its per-task files.
        let s = &run["storage"];
        let per_task = s["adapter_bytes"].as_u64().unwrap() + s["baseline_bytes"].as_u64().unwrap();
        assert!(per_task > 2 * 128, "{run}");
    }
    // The model keeps the image outside the mask and fills the hole: the output equals the input
    // preview outside the fixture's square (rows 8..20, columns 10..26 of 32) and differs inside.
    let input = image::open(out.join("inputs/astronaut.png")).unwrap().to_rgb8();
    for t in ["remove", "recolor"] {
        let p = out.join("outputs").join("local-cpu-fp32-unified").join(format!("{t}__astronaut.png"));
        let p = if p.exists() { p } else { find_output(&out, t) };
        let img = image::open(&p).unwrap().to_rgb8();
        let (mut outside, mut inside) = (0u32, 0u32);
        for (x, y, px) in img.enumerate_pixels() {
            let d = px.0.iter().zip(input.get_pixel(x, y).0).map(|(a, b)| a.abs_diff(b)).max().unwrap();
            if (8..20).contains(&y) && (10..26).contains(&x) {
                inside = inside.max(d as u32);
            } else {
                outside = outside.max(d as u32);
            }
        }
        assert!(outside <= 1, "{t}: pixels outside the mask changed by {outside}/255 ({})", p.display());
        assert!(inside > 20, "{t}: the hole was not filled (max change {inside}/255)");
    }
}

fn find_output(out: &Path, task: &str) -> PathBuf {
    let name = format!("{task}__astronaut.png");
    walk(&out.join("outputs"))
        .into_iter()
        .find(|p| p.ends_with(&name))
        .unwrap_or_else(|| panic!("no {name} under outputs/"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { v.extend(walk(&p)) } else { v.push(p) }
    }
    v
}

#[test]
fn scenario_refuses_missing_masks_and_mistyped_tensors_and_resume_sees_changed_files() {
    ensure_runner();
    let d = tempfile::tempdir().unwrap();
    let f = fixture();
    let tensors = format!("tensor_inputs: [{}]", f.join("timestep.npz").display());
    let no_mask = scenario(d.path(), "", &tensors);
    let o = run(quadbench().arg("run").arg(&no_mask).arg("--out").arg(d.path().join("o1")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("`mask` is a mask") && stderr(&o).contains("masks: [MASK.png]"), "{}", stderr(&o));

    let float_t = d.path().join("t_f32.npz");
    let t = quadbench::npy::read(&f.join("timestep.npz")).unwrap();
    quadbench::npy::write(&float_t, &t).unwrap();
    let masks = format!("masks: [{}]", f.join("mask.png").display());
    // A package that takes an image, run without `inputs`: exit 2 asking for them.
    let no_images = scenario(d.path(), &masks, &tensors);
    let text = std::fs::read_to_string(&no_images).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("inputs:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&no_images, text).unwrap();
    let o = run(quadbench().arg("run").arg(&no_images).arg("--out").arg(d.path().join("o0")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("takes an image and the scenario lists no `inputs`"), "{}", stderr(&o));
    let mistyped = scenario(d.path(), &masks, &format!("tensor_inputs: [{}]", float_t.display()));
    let o = run(quadbench().arg("run").arg(&mistyped).arg("--out").arg(d.path().join("o2")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("`timestep` is f32 [1], the package needs i64 [1]") && e.contains("astype(np.int64)"), "{e}");
    assert!(e.contains("inpaint.yaml:"), "the error names the scenario and line: {e}");

    // Same scenario text, other timestep contents: --resume must not mix the runs. (A `.npy`
    // tensor input holds one array named by its file stem.)
    let mine = d.path().join("timestep.npy");
    let mut t = quadbench::npy::read_typed(&f.join("timestep.npz")).unwrap().remove("timestep").unwrap();
    std::fs::write(&mine, t.to_bytes()).unwrap();
    let sc = scenario(d.path(), &masks, &format!("tensor_inputs: [{}]", mine.display()));
    let out = d.path().join("o3");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", stderr(&o));
    t.data = 10i64.to_le_bytes().to_vec();
    std::fs::write(&mine, t.to_bytes()).unwrap();
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out).arg("--resume"));
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("tensor input or mask files differ"), "{}", stderr(&o));
}
