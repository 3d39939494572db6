//! `quadbench qualify PROFILE [--device FILE] --signing-key KEY --out BUNDLE`: run every scenario
//! variant of a qualification profile into a new bundle directory (results written as they
//! are produced), derive the verdicts from the files, write the reports and sign the in-toto
//! statement. Exit 0 when every required criterion passes, 1 when one does not (the bundle is
//! complete and signed either way), 2 for bad input, 3/4/130/143 as `run` when a run cannot
//! finish (the bundle is then left unsigned).

use super::exit::{self, BAD_INPUT, CLAIMS_FAILED, Classify, INFRA, OK};
use super::run::{package_cache, run_reported};
use crate::config::Scenario;
use crate::qualify::{self, bundle, profile::Profile, sign, variant};
use crate::scheduler::RunOptions;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct QualifyArgs {
    /// Qualification profile (e.g. scenarios/qualification/local-cpu.yaml).
    profile: PathBuf,
    /// Device profile replacing the scenario's devices.
    #[arg(long)]
    device: Option<PathBuf>,
    /// Secret key from `quadbench keygen`.
    #[arg(long)]
    signing_key: PathBuf,
    /// Bundle directory to create; an existing one is never overwritten.
    #[arg(long)]
    out: PathBuf,
}

fn copy(from: &Path, root: &Path, rel: &str) -> Result<(), String> {
    let to = root.join(rel);
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
    }
    std::fs::copy(from, &to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

pub fn qualify(a: QualifyArgs) -> i32 {
    let (profile, text) = match Profile::load(&a.profile) {
        Ok(p) => p,
        Err(e) => return exit::fail(&e),
    };
    let sk = match sign::read_signing_key(&a.signing_key) {
        Ok(k) => k,
        Err(e) => return exit::fail(&e),
    };
    let scenario_path = a.profile.parent().unwrap_or(Path::new(".")).join(&profile.scenario);
    let base = match Scenario::load(&scenario_path) {
        Ok(s) => s,
        Err(e) => return exit::fail(&e),
    };
    let vs = variant::variants(&profile);
    let scenarios = match vs.iter().map(|v| variant::scenario(&base, &profile, v)).collect::<Result<Vec<_>, _>>() {
        Ok(s) => s,
        Err(e) => {
            exit::report(&format!("{}: {e}", a.profile.display()));
            return BAD_INPUT;
        }
    };
    let root = &a.out;
    if root.exists() {
        exit::report(&format!(
            "bundle {} already exists\n  hint: choose a new --out; a bundle is never overwritten",
            root.display()
        ));
        return BAD_INPUT;
    }
    let started = std::time::Instant::now();
    if let Err(e) = start_bundle(root, &a.profile, &scenario_path, &vs) {
        exit::report(&e);
        return INFRA;
    }
    for (v, sc) in vs.iter().zip(&scenarios) {
        eprintln!("qualify {}: variant {} ({})", profile.name, v.name, v.change);
        let opts = RunOptions {
            out: root.join(&v.dir),
            device_override: a.device.clone(),
            package_cache: package_cache(),
            resume: false,
        };
        let results = match run_reported(sc, &opts) {
            Ok(r) => r,
            Err(e) => return e.exit_code(),
        };
        if v.purpose == variant::Purpose::Base
            && let Err(e) = copy_goldens(sc, &results, root)
        {
            exit::report(&e);
            return INFRA;
        }
    }
    let predicate = match qualify::finish(root, &profile, text.as_bytes(), &sk) {
        Ok(p) => p,
        Err(e) => return exit::fail(&e),
    };
    print_verdicts(&predicate.verdicts);
    println!(
        "{}: {} in {:.0} s",
        root.display(),
        if predicate.qualified { "QUALIFIED" } else { "NOT QUALIFIED" },
        started.elapsed().as_secs_f64()
    );
    println!("report: {}", root.join("report.html").display());
    if predicate.qualified { OK } else { CLAIMS_FAILED }
}

/// The bundle directory with what is known before anything runs: the profile, its scenario
/// and the variants.
fn start_bundle(root: &Path, profile: &Path, scenario: &Path, vs: &[variant::Variant]) -> Result<(), String> {
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    copy(profile, root, bundle::PROFILE)?;
    copy(scenario, root, bundle::SCENARIO)?;
    let text = serde_json::to_string_pretty(vs).expect("variants serialize") + "\n";
    std::fs::write(root.join(bundle::VARIANTS), text).map_err(|e| format!("cannot write {}: {e}", bundle::VARIANTS))
}

/// One line per criterion on stdout.
fn print_verdicts(verdicts: &[qualify::criteria::CriterionVerdict]) {
    for v in verdicts {
        let value = v.value.map_or(String::new(), |x| format!(" (value {x:.4}, threshold {})", v.threshold));
        println!(
            "{:<24} {:<18} {:<13}{}{}",
            v.id,
            v.kind.name(),
            v.verdict.as_str(),
            if v.required { "" } else { " (not required)" },
            value
        );
    }
}

/// The goldens the base runs were scored against, beside them in the bundle, so that quality
/// verdicts can be re-derived from the bundle alone.
fn copy_goldens(sc: &Scenario, r: &crate::results::Results, root: &Path) -> Result<(), String> {
    let pkg = r.package.golden_package.clone().unwrap_or_else(|| r.package.name.clone());
    let index = crate::quality::golden::index(&sc.golden_root, &pkg);
    for run in &r.runs {
        for o in &run.outputs {
            let rel = format!("{}/{pkg}/{}__{}.png", qualify::criteria::GOLDENS, o.task, o.input);
            if let Some(src) = index.get(&(o.task.clone(), o.input.clone()))
                && !root.join(&rel).exists()
            {
                copy(src, root, &rel)?;
            }
        }
    }
    // Golden tensors too (packages with `tensor_outputs`): the tensor scores in results.json can
    // then be re-derived from the bundle as well.
    let tensors = crate::quality::golden::tensor_index(&sc.golden_root, &pkg);
    for o in r.runs.iter().flat_map(|run| &run.tensor_outputs) {
        let name = crate::quality::golden::tensor_file_name(&o.task, &o.input, &o.output);
        let rel = format!("{}/{pkg}/{name}", qualify::criteria::GOLDENS);
        if let Some(src) = tensors.get(&(o.task.clone(), o.input.clone(), o.output.clone()))
            && !root.join(&rel).exists()
        {
            copy(src, root, &rel)?;
        }
    }
    // The goldens' own manifest (sha256, package, backend, runtime), for comparing the bundled
    // goldens with a checkout's.
    let manifest = crate::quality::golden::package_dir(&sc.golden_root, &pkg).join("manifest.json");
    let rel = format!("{}/{pkg}/manifest.json", qualify::criteria::GOLDENS);
    if manifest.is_file() && !root.join(&rel).exists() {
        copy(&manifest, root, &rel)?;
    }
    Ok(())
}
