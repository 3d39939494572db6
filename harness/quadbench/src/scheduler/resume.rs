//! `--resume`: carry the finished runs of an earlier, interrupted invocation into the new
//! results, so that the final results.json holds every run exactly once. Only an invocation of
//! the same setup may resume: the scenario file, the package and every device profile must be
//! byte-identical to what results.json records, otherwise runs measured under another workload
//! would be mixed in. A refusal leaves results.json untouched.

use crate::results::{DeviceRef, Results, RunRecord, RunState};
use std::collections::BTreeMap;
use std::path::Path;

/// Finished runs of an earlier invocation writing to the same results directory.
#[derive(Debug, Default)]
pub struct Resume {
    finished: BTreeMap<String, RunRecord>,
}

/// What this invocation runs, to compare with the earlier one.
pub struct Setup<'a> {
    pub scenario_sha256: &'a str,
    /// [`crate::config::scenario::Scenario::request_files_sha256`].
    pub request_files_sha256: Option<String>,
    pub package_sha256: &'a str,
    pub devices: &'a [DeviceRef],
}

impl Resume {
    /// Load `<dir>/results.json` (with every run's samples); runs that finished (ok or
    /// unsupported, with their samples on disk) are kept, the rest will run again. A missing
    /// file resumes nothing.
    pub fn load(dir: &Path, now: &Setup<'_>) -> Result<Resume, String> {
        let path = dir.join("results.json");
        if !path.exists() {
            return Ok(Resume::default());
        }
        let old = Results::load(dir).map_err(|e| format!("{e}; choose a fresh --out or drop --resume"))?;
        let short = |s: &str| s.get(..12).unwrap_or(s).to_string();
        let mut differs = Vec::new();
        if old.scenario.sha256 != now.scenario_sha256 {
            differs.push(format!(
                "the scenario differs ({} was {}, sha256 {}; now sha256 {})",
                path.display(),
                old.scenario.path,
                short(&old.scenario.sha256),
                short(now.scenario_sha256)
            ));
        }
        if old.scenario.request_files_sha256 != now.request_files_sha256 {
            differs.push("the scenario's tensor input or mask files differ (same names, other contents)".into());
        }
        if old.package.sha256 != now.package_sha256 {
            differs.push(format!(
                "the package differs (was {} sha256 {}, now sha256 {})",
                old.package.name,
                short(&old.package.sha256),
                short(now.package_sha256)
            ));
        }
        if !old.devices.is_empty() || !old.runs.is_empty() {
            for d in now.devices {
                match old.devices.iter().find(|o| o.name == d.name) {
                    Some(o) if o.sha256 == d.sha256 => {}
                    Some(o) => differs.push(format!(
                        "device profile `{}` differs (was {} sha256 {}, now {} sha256 {})",
                        d.name,
                        o.path,
                        short(&o.sha256),
                        d.path,
                        short(&d.sha256)
                    )),
                    None => differs.push(format!("device `{}` was not part of the earlier invocation", d.name)),
                }
            }
        }
        if !differs.is_empty() {
            return Err(format!(
                "{} was written by another setup: {}; resume with the same scenario, package and device profiles, or run into a fresh --out",
                path.display(),
                differs.join("; ")
            ));
        }
        let finished = old
            .runs
            .into_iter()
            .filter(|r| match r.status {
                RunState::Ok => !r.samples_csv.is_empty() && dir.join(&r.samples_csv).is_file(),
                RunState::Unsupported => true,
                RunState::Failed => false,
            })
            .map(|r| (r.id.clone(), r))
            .collect();
        Ok(Resume { finished })
    }

    /// The finished record of run `id`, once.
    pub fn take(&mut self, id: &str) -> Option<RunRecord> {
        self.finished.remove(id)
    }

    /// How many finished runs are carried over.
    pub fn count(&self) -> usize {
        self.finished.len()
    }
}
