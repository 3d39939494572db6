//! Qualification bundles end to end: `keygen`, `qualify` of the shipped local-cpu profile, and
//! `verify` accepting it and rejecting, by name, every kind of tampering (an edited, missing or
//! extra file, another key, an edit re-signed with the right key, a newer format), plus bad
//! profiles and keys (exit 2); and the NPU compile matrix over three SoCs on the QNN HTP
//! simulator.

mod common;
use common::*;
use quadbench::qualify::{bundle, sign};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The local-cpu bundle and its key, made once for every test of this file.
fn local_bundle() -> &'static (PathBuf, PathBuf) {
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    B.get_or_init(|| {
        let d = tempfile::tempdir().unwrap().keep();
        let key = d.join("key");
        assert!(run(quadbench().args(["keygen", "--out"]).arg(&key)).status.success());
        let out = d.join("bundle");
        let o = run(quadbench()
            .arg("qualify")
            .arg(repo().join("scenarios/qualification/local-cpu.yaml"))
            .arg("--signing-key")
            .arg(&key)
            .arg("--out")
            .arg(&out));
        // 0 qualified, 1 not: both write a complete, signed bundle.
        assert!(matches!(o.status.code(), Some(0 | 1)), "qualify failed");
        (out, key)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

/// A copy of the bundle to tamper with.
fn tampered(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join(name);
    copy_dir(&local_bundle().0, &b);
    (d, b)
}

fn verify(bundle: &Path, public: &Path) -> (Option<i32>, String) {
    let o = run(quadbench().arg("verify").arg(bundle).arg("--public-key").arg(public));
    (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn public() -> PathBuf {
    PathBuf::from(format!("{}.pub", local_bundle().1.display()))
}

#[test]
fn the_local_cpu_bundle_verifies_and_holds_every_criterion_with_its_evidence() {
    let (b, _) = local_bundle();
    let (code, out) = verify(b, &public());
    assert_eq!(code, Some(0), "{out}");
    let verdicts: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(b.join("verdicts.json")).unwrap()).unwrap();
    let ids: Vec<&str> = verdicts.iter().map(|v| v["id"].as_str().unwrap()).collect();
    for id in [
        "storage-ratio",
        "quality-psnr",
        "valid-runs",
        "test01-timed-outputs",
        "test04-no-caching",
        "test05-alternate-seed",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    for v in &verdicts {
        for e in v["evidence"].as_array().unwrap() {
            assert!(b.join(e.as_str().unwrap()).is_file(), "{} cites missing {e}", v["id"]);
        }
    }
    // TEST01 compared outputs kept while timed with the accuracy pass's, pixel for pixel.
    let t01 = verdicts.iter().find(|v| v["id"] == "test01-timed-outputs").unwrap();
    assert_eq!(t01["verdict"], "pass", "{t01}");
    assert!(t01["evidence"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("/timed/")), "{t01}");
    let report = std::fs::read_to_string(b.join("report.md")).unwrap();
    assert!(report.contains("| [test04-no-caching](#test04-no-caching) | compliance-test04 |"), "{report}");
    assert!(std::fs::read_to_string(b.join("report.html")).unwrap().contains("<h2>Criteria</h2>"));
}

#[test]
fn a_flipped_byte_in_evidence_is_rejected_naming_the_file() {
    let (_d, b) = tampered("flip");
    let rel = "results/base/results.json";
    let mut bytes = std::fs::read(b.join(rel)).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(b.join(rel), bytes).unwrap();
    let (code, out) = verify(&b, &public());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("FAIL {rel}: edited")), "{out}");
}

#[test]
fn missing_and_extra_files_are_named() {
    let (_d, b) = tampered("missing");
    let gone = "results/test04/samples/local-cpu-fp32-unified.csv";
    std::fs::remove_file(b.join(gone)).unwrap();
    std::fs::write(b.join("results/extra.txt"), "not evidence").unwrap();
    let (code, out) = verify(&b, &public());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("FAIL {gone}: missing")), "{out}");
    assert!(out.contains("FAIL results/extra.txt: extra"), "{out}");
}

#[test]
fn another_public_key_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let other = d.path().join("other");
    assert!(run(quadbench().args(["keygen", "--out"]).arg(&other)).status.success());
    let (code, out) = verify(&local_bundle().0, &d.path().join("other.pub"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL signature: no signature by key sha256:"), "{out}");
}

/// Rewrite the statement (subjects rehashed) and sign it with the bundle's own key.
fn resign(b: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let env: sign::Envelope =
        serde_json::from_str(&std::fs::read_to_string(b.join(bundle::ENVELOPE)).unwrap()).unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    let (files, _) = bundle::files(b).unwrap();
    st["subject"] = serde_json::to_value(files).unwrap();
    edit(&mut st);
    let sk = sign::read_signing_key(&local_bundle().1).unwrap();
    let env = sign::envelope(&sk, &serde_json::to_vec(&st).unwrap());
    std::fs::write(b.join(bundle::ENVELOPE), serde_json::to_string(&env).unwrap()).unwrap();
}

#[test]
fn an_edit_resigned_with_the_right_key_is_caught_by_rederiving_the_verdict() {
    let (_d, b) = tampered("resigned");
    // A "timed" output that differs from the accuracy pass: TEST01 must now fail.
    let run_dir = b.join("results/test01/outputs/local-cpu-fp32-unified");
    let timed = std::fs::read_dir(run_dir.join("timed")).unwrap().next().unwrap().unwrap().path();
    let other = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file() && p.file_name() != timed.file_name())
        .unwrap();
    std::fs::copy(other, &timed).unwrap();
    resign(&b, |_| {});
    let (code, out) = verify(&b, &public());
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("FAIL signature"), "{out}");
    assert!(
        out.contains("FAIL criterion test01-timed-outputs: signed verdict pass, re-derived from the evidence fail"),
        "{out}"
    );
}

#[test]
fn a_newer_bundle_format_is_refused_by_name() {
    let (_d, b) = tampered("newer");
    resign(&b, |st| st["predicate"]["format_version"] = serde_json::json!(bundle::FORMAT_VERSION + 1));
    let (code, out) = verify(&b, &public());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "bundle format version {} is newer than this quadbench reads",
            bundle::FORMAT_VERSION + 1
        )),
        "{out}"
    );
}

#[test]
fn bad_profiles_keys_and_existing_bundles_are_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k");
    assert!(run(quadbench().args(["keygen", "--out"]).arg(&key)).status.success());
    let profile = d.path().join("p.yaml");
    std::fs::write(
        &profile,
        "schema: quadbench.qualification/1\nname: p\nscenario: s.yaml\ncriteria:\n  - {id: valid, kind: run-validity}\n  - {id: cv, kind: replicate-cv, metric: latency_ms.e2ee, threshold: 0.1}\n",
    )
    .unwrap();
    let qualify = |profile: &Path, key: &Path, out: &Path| {
        run(quadbench().arg("qualify").arg(profile).arg("--signing-key").arg(key).arg("--out").arg(out))
    };
    let o = qualify(&profile, &key, &d.path().join("b1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("p.yaml:6:") && err.contains("did you mean `latency_ms.e2e`?"), "{err}");
    assert!(!d.path().join("b1").exists(), "nothing is written for a bad profile");
    let shipped = repo().join("scenarios/qualification/local-cpu.yaml");
    // The public key, or any other file, is not a signing key.
    for not_a_key in [d.path().join("k.pub"), profile.clone()] {
        let o = qualify(&shipped, &not_a_key, &d.path().join("b2"));
        assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("is not a quadbench secret key"));
    }
    std::fs::create_dir(d.path().join("b3")).unwrap();
    let o = qualify(&shipped, &key, &d.path().join("b3"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}

/// The NPU compile matrix on the QNN HTP simulator: the shipped NPU scenario's unified graph
/// compiled for three SoCs (this test's profile leaves out the separate strategy and the
/// compliance variants to stay short; `scenarios/qualification/qnn-htp.yaml` has them).
#[test]
fn npu_matrix_compiles_for_three_socs_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let root = repo();
    let scenario = std::fs::read_to_string(root.join("scenarios/qualification/qnn-htp.scenario.yaml"))
        .unwrap()
        .replace("[../../devices/local.yaml]", &format!("[{}]", root.join("devices/local.yaml").display()))
        .replace("strategies: [unified, separate-reload]", "strategies: [unified]")
        .replace("quality:\n", &format!("quality:\n  golden_dir: {}\n", root.join("golden").display()));
    std::fs::write(d.path().join("npu.scenario.yaml"), scenario).unwrap();
    let profile = std::fs::read_to_string(root.join("scenarios/qualification/qnn-htp.yaml")).unwrap();
    let keep = ["full-offload", "soc-target", "quality-psnr", "valid-runs"];
    let mut text = profile.split("criteria:\n").next().unwrap().replace("qnn-htp.scenario.yaml", "npu.scenario.yaml");
    text.push_str("criteria:\n");
    for id in keep {
        let line = profile.lines().find(|l| l.contains(&format!("{{id: {id},"))).unwrap();
        text.push_str(line.split(", description").next().unwrap().trim_end_matches(','));
        text.push_str(if line.ends_with('}') { "\n" } else { "}\n" });
    }
    std::fs::write(d.path().join("npu.yaml"), &text).unwrap();
    let key = d.path().join("k");
    assert!(run(quadbench().args(["keygen", "--out"]).arg(&key)).status.success());
    let b = d.path().join("bundle");
    let o = run(quadbench()
        .arg("qualify")
        .arg(d.path().join("npu.yaml"))
        .arg("--signing-key")
        .arg(&key)
        .arg("--out")
        .arg(&b));
    assert_eq!(o.status.code(), Some(0), "{text}");
    let (code, out) = verify(&b, &d.path().join("k.pub"));
    assert_eq!(code, Some(0), "{out}");
    let report = std::fs::read_to_string(b.join("report.md")).unwrap();
    for soc in ["SM8550", "SM8650", "SM8750"] {
        let lower = soc.to_lowercase();
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {lower} | {soc} v")))
            .unwrap_or_else(|| panic!("{report}"));
        assert!(row.contains("| unified | ok |"), "{row}");
    }
    assert!(report.contains("simulator: its latencies say nothing about a phone"), "{report}");
}
