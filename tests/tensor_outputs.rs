//! Tensor outputs end to end on the imported torch fixture (`tests/fixtures/import`): a package
//! declaring `tensor_outputs`, golden tensors blessed from the reference configuration, a
//! scenario run writing typed `.npy` files and scoring them (max abs, RMSE, PSNR with its data
//! range, cosine) against the goldens, a failing tensor threshold failing the quality verdict,
//! `golden verify` catching an edited golden tensor, and bad names refused with the nearest one.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The fixture imported into `dir/pkg` (three PEFT tasks), its package.yaml given
/// `tensor_outputs: [ENTRY]` (package.yaml is not in its own `files:` list: nothing to rehash).
fn package(dir: &Path, entry: &str) -> PathBuf {
    let f = repo().join("tests/fixtures/import");
    let pkg = dir.join("pkg");
    let mut c = quadbench();
    c.args(["package", "import", "--model"]).arg(f.join("model.onnx")).arg("--out").arg(&pkg);
    for name in ["sharpen", "warm", "cool"] {
        c.arg("--adapter").arg(format!("{name}={}", f.join("adapters").join(name).display()));
    }
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let yaml = pkg.join("package.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(!text.contains("tensor_outputs"), "an import without tensor outputs writes no key");
    let text = text.replacen("\nfiles:", &format!("\ntensor_outputs:\n- {entry}\nfiles:"), 1);
    std::fs::write(&yaml, text).unwrap();
    pkg
}

fn scenario(dir: &Path, pkg: &Path, strategies: &str, thresholds: &str) -> PathBuf {
    let sc = dir.join("tensors.yaml");
    let inputs = ["astronaut", "camera"].map(|n| repo().join(format!("golden/inputs/{n}.png")).display().to_string());
    std::fs::write(
        &sc,
        format!(
            "schema: quadbench.scenario/1\nname: tensors\npackage: {{path: {}}}\ndevices: [{}]\nbackends: [cpu]\nstrategies: [{strategies}]\ninputs: [{}]\nworkload: {{order: round-robin, requests_per_visit: 2, warmup_visits: 1, min_samples: 2, min_switches: 2, min_duration_s: 0, max_duration_s: 30, capture_timed_outputs: true}}\nquality: {{golden_dir: golden, thresholds: {{{thresholds}}}}}\n",
            pkg.display(),
            local_device(dir).display(),
            inputs.join(", "),
        ),
    )
    .unwrap();
    sc
}

#[test]
fn tensor_outputs_are_written_blessed_scored_and_verified() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "model.out");
    let check = run(quadbench().args(["package", "check"]).arg(&pkg));
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    // The reference strategy (separate-resident) must equal its goldens exactly; unified computes
    // the LoRA branch beside the base weights instead of merged into them, so it differs by
    // rounding, far below the 1e-5 the import test allows against torch, and above zero.
    let sc = scenario(
        d.path(),
        &pkg,
        "separate-resident, unified",
        "tensor_max_abs: \"<= 1e-5\", tensor_cosine: \">= 0.999999\", tensor_psnr_db: \">= 80\"",
    );
    let bless = run(quadbench().args(["golden", "bless"]).arg(&sc));
    assert_eq!(bless.status.code(), Some(0), "{}", stderr(&bless));
    let golden = d.path().join("golden");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(&golden).unwrap().flatten().next().unwrap().path().join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let tensors = manifest["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 6, "3 tasks x 2 inputs: {manifest}");
    assert!(
        tensors.iter().any(|t| t["path"] == "warm__camera__model.out.npy" && t["sha256"].as_str().unwrap().len() == 64)
    );
    let verify = run(quadbench().args(["golden", "verify"]).arg(&golden));
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("ok: 12 golden files"), "6 PNGs + 6 tensors");

    let out = d.path().join("out");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    for run in r["runs"].as_array().unwrap() {
        let strategy = run["strategy"].as_str().unwrap();
        assert_eq!(run["tensor_outputs"].as_array().unwrap().len(), 6, "{run}");
        for t in run["tensor_outputs"].as_array().unwrap() {
            let a =
                quadbench_protocol::npy::parse(&std::fs::read(out.join(t["path"].as_str().unwrap())).unwrap()).unwrap();
            assert_eq!((a.dtype, a.shape.clone()), (quadbench_protocol::DType::F32, vec![1, 3, 32, 32]), "{t}");
        }
        for (task, q) in run["quality"].as_object().unwrap() {
            let t = &q["tensors"]["model.out"];
            assert_eq!(t["data_range_from"], "golden max - min", "{t}");
            assert_eq!(q["pass"], true, "{task} {strategy}: {q}");
            for (input, s) in t["inputs"].as_object().unwrap() {
                let max = s["max_abs_error"].as_f64().unwrap();
                eprintln!(
                    "{strategy} {task} {input}: max abs {max:e}, rmse {:e}, psnr {} dB over range {}, cosine {}",
                    s["rmse"].as_f64().unwrap(),
                    s["psnr_db"],
                    s["data_range"],
                    s["cosine"]
                );
                assert!(s["data_range"].as_f64().unwrap() > 0.0 && s["elements"] == 3 * 32 * 32, "{s}");
                if strategy == "separate-resident" {
                    assert_eq!((max, s["psnr_db"].is_null()), (0.0, true), "{task} {input}: {s}");
                    assert_eq!(s["cosine"].as_f64().unwrap(), 1.0, "{s}");
                } else {
                    assert!(max > 0.0 && max < 1e-5, "{task} {input}: {s}");
                }
            }
            let labels: Vec<&String> = q["thresholds"].as_object().unwrap().keys().collect();
            assert!(labels.iter().any(|l| *l == "model.out: tensor_max_abs <= 0.00001"), "{labels:?}");
        }
    }
    // Tensor outputs of measured requests (TEST01's capture) equal the accuracy pass's.
    for run in r["runs"].as_array().unwrap() {
        let id = run["id"].as_str().unwrap();
        let res: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("runs/{id}/result.json"))).unwrap())
                .unwrap();
        let timed = res["timed_tensor_outputs"].as_array().unwrap();
        assert!(!timed.is_empty() && timed.len() == res["timed_outputs"].as_array().unwrap().len(), "{res}");
        for t in timed {
            let name = format!(
                "{}__{}__{}.npy",
                t["task"].as_str().unwrap(),
                t["input"].as_str().unwrap(),
                t["output"].as_str().unwrap()
            );
            let timed_bytes = std::fs::read(out.join(format!("outputs/{id}/timed/{name}"))).unwrap();
            assert_eq!(timed_bytes, std::fs::read(out.join(format!("outputs/{id}/{name}"))).unwrap(), "{id} {name}");
        }
    }
    // The report shows the tensor quality table.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Tensor quality per task"), "{md}");
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("<h2 id=\"tensor-quality\">"));
    let csv = std::fs::read_to_string(out.join("tables/tensor-quality.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 2, "a row per task and strategy: {csv}");
    assert!(
        csv.contains("warm,model.out,local,cpu,fp32,separate-resident,0.000e0,0.000e0,inf,1,golden max - min"),
        "{csv}"
    );
    // Regenerated from the results directory alone, byte for byte.
    let again = run(quadbench().arg("report").arg(&out));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);

    // A threshold unified cannot meet (exact equality) fails its quality verdict: exit 1.
    let sc = scenario(d.path(), &pkg, "separate-resident, unified", "tensor_max_abs: \"<= 0\"");
    let out2 = d.path().join("out2");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out2));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for run in results(&out2)["runs"].as_array().unwrap() {
        let exact = run["strategy"] == "separate-resident";
        for (task, q) in run["quality"].as_object().unwrap() {
            assert_eq!(q["pass"], exact, "{task} {}: {q}", run["strategy"]);
            assert_eq!(q["thresholds"]["model.out: tensor_max_abs <= 0"], exact, "{q}");
        }
    }

    // An output that declares `range:` gets its PSNR over that range instead of the golden's.
    let yaml = pkg.join("package.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replacen("    dtype: f32\nlora_slots:", "    dtype: f32\n    range: [0, 2]\nlora_slots:", 1),
    )
    .unwrap();
    let sc = scenario(d.path(), &pkg, "unified", "");
    let out3 = d.path().join("out3");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(&out3));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = &results(&out3)["runs"][0]["quality"]["warm"]["tensors"]["model.out"];
    assert_eq!(t["data_range_from"], "package range", "{t}");
    assert!(t["inputs"].as_object().unwrap().values().all(|s| s["data_range"] == 2.0), "{t}");

    // An edited golden tensor is caught, by name.
    let edited =
        std::fs::read_dir(&golden).unwrap().flatten().next().unwrap().path().join("cool__astronaut__model.out.npy");
    let mut b = std::fs::read(&edited).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&edited, b).unwrap();
    let verify = run(quadbench().args(["golden", "verify"]).arg(&golden));
    assert_eq!(verify.status.code(), Some(2), "{}", stderr(&verify));
    assert!(stderr(&verify).contains("cool__astronaut__model.out.npy: sha256"), "{}", stderr(&verify));
    // Blessing again shows the change with its size and needs --force to overwrite it.
    let bless = run(quadbench().args(["golden", "bless"]).arg(&sc));
    assert_eq!(bless.status.code(), Some(1), "{}", stderr(&bless));
    let listed = String::from_utf8_lossy(&bless.stdout).into_owned();
    assert!(listed.contains("changed   cool__astronaut__model.out.npy (new vs old: max abs "), "{listed}");
    assert!(listed.contains("unchanged warm__camera__model.out.npy"), "{listed}");
    let bless = run(quadbench().args(["golden", "bless", "--force"]).arg(&sc));
    assert_eq!(bless.status.code(), Some(0), "{}", stderr(&bless));
    let verify = run(quadbench().args(["golden", "verify"]).arg(&golden));
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
}

#[test]
fn bad_tensor_output_names_and_threshold_keys_exit_2_with_the_nearest() {
    let d = tempfile::tempdir().unwrap();
    let pkg = package(d.path(), "model.outt");
    let check = run(quadbench().args(["package", "check"]).arg(&pkg));
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    let err = stderr(&check);
    assert!(err.contains("stage `model` has no output `outt`") && err.contains("did you mean `model.out`?"), "{err}");
    let yaml = pkg.join("package.yaml");
    let line = std::fs::read_to_string(&yaml).unwrap().lines().position(|l| l == "tensor_outputs:").unwrap() + 1;
    assert!(err.contains(&format!("package.yaml:{line}:1: tensor output")), "names file and line {line}: {err}");
    std::fs::write(&yaml, std::fs::read_to_string(&yaml).unwrap().replace("- model.outt", "- model.out\n- model.out"))
        .unwrap();
    let err = stderr(&run(quadbench().args(["package", "check"]).arg(&pkg)));
    assert!(err.contains("tensor output `model.out` is listed twice"), "{err}");
    std::fs::write(&yaml, std::fs::read_to_string(&yaml).unwrap().replace("- model.out\n- model.out", "- modl.out"))
        .unwrap();
    let err = stderr(&run(quadbench().args(["package", "check"]).arg(&pkg)));
    assert!(err.contains("no stage `modl`") && err.contains("did you mean `model.out`?"), "{err}");

    std::fs::write(&yaml, std::fs::read_to_string(&yaml).unwrap().replace("- modl.out", "- model.out")).unwrap();
    let sc = scenario(d.path(), &pkg, "unified", "tensor_rmsee: \"<= 0.1\"");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did you mean `tensor_rmse`?"), "{}", stderr(&o));
    // A tensor threshold on a package without tensor outputs would check nothing: refused.
    std::fs::write(&yaml, std::fs::read_to_string(&yaml).unwrap().replace("tensor_outputs:\n- model.out\n", ""))
        .unwrap();
    let sc = scenario(d.path(), &pkg, "unified", "tensor_rmse: \"<= 0.1\"");
    let o = run(quadbench().arg("run").arg(&sc).arg("--out").arg(d.path().join("out2")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("threshold `tensor_rmse <= 0.1` has nothing to check"), "{}", stderr(&o));
}
