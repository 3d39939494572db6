//! The scenario of the history tests and of `benches/regression_power.rs` (which includes this
//! file by path): the small reference package at a given width on one local device, unified,
//! CPU, 20 samples a run, no throttle check (128 wide: ~1 ms e2e here; 1024: ~9 ms).

use std::path::{Path, PathBuf};

/// Writes `dir/file`: scenario `hist` on the device profile `dev`, with `img` as its input and
/// `extra` YAML appended (e.g. `replicates: 2`).
pub fn history_scenario(dir: &Path, file: &str, dev: &Path, img: &Path, width: usize, extra: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(
        &p,
        format!(
            "schema: quadbench.scenario/1
name: hist
package:
  reference: {{tasks: 2, width: {width}, resolution: 64, steps: 2, seed: 3}}
devices: [{}]
backends: [cpu]
strategies: [unified]
inputs: [{}]
throttle: {{enabled: false}}
workload:
  order: round-robin
  requests_per_visit: 4
  warmup_visits: 1
  min_samples: 20
  min_switches: 2
  min_duration_s: 0
  max_duration_s: 30
{extra}",
            dev.display(),
            img.display()
        ),
    )
    .unwrap();
    p
}
