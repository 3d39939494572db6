//! Package format: generation is deterministic, `package check` accepts what `package reference`
//! writes and rejects tampered packages with errors naming the file and key.

mod common;
use common::*;
use quadbench::package::{self, reference::ReferenceParams};

fn small(dir: &std::path::Path, seed: u64) -> package::Manifest {
    package::reference::generate(
        dir,
        &ReferenceParams { tasks: 3, width: 64, resolution: 64, steps: 2, seed, ..Default::default() },
    )
    .unwrap()
}

#[test]
fn round_trip_and_determinism() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ma = small(a.path(), 1);
    let mb = small(b.path(), 1);
    let mc = small(c.path(), 2);
    assert_eq!(ma.sha256, mb.sha256, "same seed, same bytes");
    assert_ne!(ma.sha256, mc.sha256, "other seed, other weights");
    let checked = package::check(a.path()).unwrap();
    assert_eq!(checked.pipeline, ma.pipeline);
    assert_eq!(checked.pipeline.tasks.len(), 3);
    assert_eq!(checked.pipeline.lora_slots.len(), 3);
    assert_eq!(
        checked.pipeline.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["encoder", "denoiser", "decoder"]
    );
}

#[test]
fn defaults_meet_the_size_targets() {
    // Foundation >= 32 MB FP32, each adapter <= 5% of it (issue 2's defaults).
    let d = tempfile::tempdir().unwrap();
    let m = package::reference::generate(d.path(), &ReferenceParams::default()).unwrap();
    assert_eq!(m.pipeline.tasks.len(), 10);
    let size = |rel: &str| m.raw.files.iter().find(|f| f.path == rel).unwrap().bytes;
    let foundation: u64 = m.pipeline.stages.iter().map(|s| size(&s.graph)).sum();
    assert!(foundation >= 32 * 1024 * 1024, "foundation {foundation} bytes");
    for t in &m.pipeline.tasks {
        let a = size(&t.adapter);
        assert!(a * 20 <= foundation, "adapter {} is {a} bytes, over 5% of {foundation}", t.name);
    }
    let weights = quadbench_onnx::weight_bytes(&quadbench_onnx::read_model(&d.path().join("denoiser.onnx")).unwrap());
    assert!(weights >= 32 * 1024 * 1024, "denoiser weights {weights}");
}

#[test]
fn tampered_files_are_named() {
    let d = tempfile::tempdir().unwrap();
    let m = small(d.path(), 1);
    let adapter = d.path().join(&m.pipeline.tasks[1].adapter);
    let mut bytes = std::fs::read(&adapter).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    std::fs::write(&adapter, &bytes).unwrap();
    std::fs::remove_file(d.path().join(&m.pipeline.tasks[2].baselines["denoiser"])).unwrap();
    let e = package::check(d.path()).unwrap_err().to_string();
    assert!(e.contains(&m.pipeline.tasks[1].adapter) && e.contains("sha256"), "{e}");
    assert!(e.contains(&m.pipeline.tasks[2].baselines["denoiser"]) && e.contains("missing"), "{e}");
}

/// Re-list files after editing so only the semantic check can fail.
fn relist(dir: &std::path::Path) {
    let text = std::fs::read_to_string(dir.join("package.yaml")).unwrap();
    let raw: package::manifest::RawManifest = quadbench::yaml::parse(&dir.join("package.yaml"), &text).unwrap();
    package::manifest::finalize_and_write(dir, raw).ok();
}

#[test]
fn graph_inputs_must_match_the_manifest() {
    let d = tempfile::tempdir().unwrap();
    small(d.path(), 1);
    let p = d.path().join("package.yaml");
    // Declare the encoder's image input under another name.
    let text = std::fs::read_to_string(&p).unwrap().replacen("- name: image\n", "- name: picture\n", 1);
    std::fs::write(&p, text).unwrap();
    relist(d.path());
    let e = package::check(d.path()).unwrap_err().to_string();
    assert!(e.contains("encoder.onnx") && e.contains("`picture`") && e.contains("`image`"), "{e}");
}

#[test]
fn adapter_with_wrong_shapes_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let m = small(d.path(), 1);
    let other = tempfile::tempdir().unwrap();
    // An adapter made for another package width has wrong deep-slot shapes.
    let m2 = package::reference::generate(
        other.path(),
        &ReferenceParams { tasks: 3, width: 32, resolution: 64, steps: 2, seed: 1, ..Default::default() },
    )
    .unwrap();
    std::fs::copy(other.path().join(&m2.pipeline.tasks[0].adapter), d.path().join(&m.pipeline.tasks[0].adapter))
        .unwrap();
    relist(d.path());
    let e = package::check(d.path()).unwrap_err().to_string();
    assert!(e.contains(&m.pipeline.tasks[0].adapter) && e.contains("lora_A.weight") && e.contains("PEFT"), "{e}");
}

#[test]
fn unknown_manifest_key_names_line_and_suggests() {
    let d = tempfile::tempdir().unwrap();
    small(d.path(), 1);
    let p = d.path().join("package.yaml");
    let text = std::fs::read_to_string(&p).unwrap().replacen("  repeat: 2\n", "  repaet: 2\n", 1);
    std::fs::write(&p, &text).unwrap();
    let line = text.lines().position(|l| l.contains("repaet")).unwrap() + 1;
    let e = package::check(d.path()).unwrap_err().to_string();
    assert!(e.contains(&format!("package.yaml:{line}:")) && e.contains("did you mean `repeat`"), "{e}");
}

#[test]
fn cli_check_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let o = run(quadbench()
        .args(["package", "reference", "--tasks", "2", "--width", "32", "--resolution", "64", "--steps", "1", "--out"])
        .arg(d.path()));
    assert!(o.status.success());
    assert!(run(quadbench().args(["package", "check"]).arg(d.path())).status.success());
    std::fs::write(d.path().join("decoder.onnx"), b"truncated").unwrap();
    let o = run(quadbench().args(["package", "check"]).arg(d.path()));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("decoder.onnx: size"));
    let o = run(quadbench().args(["package", "reference", "--resolution", "50", "--out"]).arg(d.path().join("x")));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("multiple of 32"));
}

#[test]
fn generator_output_is_pinned() {
    // If this fails because you changed the generator on purpose: bump
    // `reference::GENERATOR_REVISION` (so caches regenerate) and update both values here.
    let d = tempfile::tempdir().unwrap();
    let m = small(d.path(), 1);
    let files: String = m.raw.files.iter().map(|f| format!("{} {}\n", f.sha256, f.path)).collect();
    let digest = quadbench::package::manifest::sha256_bytes(files.as_bytes());
    assert_eq!(
        (package::reference::GENERATOR_REVISION, digest.as_str()),
        (2, "95fb2612089a0f8da89d30b92e749534c0985dc26080f12a81705918d304b67d"),
        "files:\n{files}"
    );
}

/// A listed file that is a symlink to /dev/zero or a FIFO, with `bytes: 0` in package.yaml, used
/// to make `package check` hash forever; now it is a problem naming the file (exit 2).
#[test]
fn cli_check_refuses_special_files_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let m = small(d.path(), 1);
    let manifest = d.path().join("package.yaml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let victim = m.pipeline.tasks[0].adapter.clone();
    // `bytes: 0` for the victim, so the size check passes and the hash is attempted.
    let lines: Vec<&str> = original.lines().collect();
    let at = lines.iter().position(|l| l.trim_start().trim_start_matches("- ") == format!("path: {victim}")).unwrap();
    let bytes_line = (at..at + 3).find(|&i| lines[i].trim_start().starts_with("bytes:")).unwrap();
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edited[bytes_line] = format!("{}bytes: 0", &lines[bytes_line][..lines[bytes_line].find("bytes:").unwrap()]);
    std::fs::write(&manifest, edited.join("\n") + "\n").unwrap();
    let path = d.path().join(&victim);
    for (make, words) in [
        (
            (|p: &std::path::Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap()) as fn(&std::path::Path),
            "is a character device (a symlink to /dev/zero), not a regular file",
        ),
        (|p: &std::path::Path| mkfifo(p), "is a fifo (named pipe), not a regular file"),
    ] {
        std::fs::remove_file(&path).unwrap();
        make(&path);
        let o = run_within(quadbench().args(["package", "check"]).arg(d.path()), 60);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("{victim}: ")) && err.contains(words), "{err}\n--- lacks: {words}");
    }
}
