//! quadbench: benchmarks and validates on-device generative vision models, comparing a unified
//! multi-LoRA deployment (adapters as runtime inputs of one graph) with per-task merged binaries.
//!
//! The host crate, along the data flow (each module depends only on those listed before it;
//! docs/ARCHITECTURE.md draws it):
//!
//! - `names`, `yaml`, `time`, `npy`: validation of names, located YAML errors, UTC timestamps,
//!   NumPy `.npy`/`.npz` tensors;
//! - `results`, `metric` (from `quadbench-schema`), `stats`, `claims`, `report` (from
//!   `quadbench-report`): re-exported, so the host and its tests use one path for each;
//! - `package`: manifests, checks, the package cache and the package sources (`package::source`);
//! - `device`: the [`device::Transport`] trait and its registry (one file per transport);
//! - `backend`: the host side of the shared backend list (plugin EP libraries a run needs);
//! - `quality`: scoring outputs against goldens;
//! - `config`: scenarios and device profiles, validated before any device is touched;
//! - `events`: what the run loop reports, including each finished run's record;
//! - `plan`: the device x backend x strategy runs of a scenario and their runner plans;
//! - `sink`: where finished runs go (results.json, samples CSV; one file each);
//! - `scheduler`: the run loop (staging, exec, pull, retries, resume, throttle);
//! - `history`: runs recorded night by night in the farm database, read back for regression
//!   detection and the dashboard;
//! - `farm`: submissions, the agent and results through the farm database (`quadbench-farm`);
//! - `qualify`: qualification profiles, verdicts from results directories, signed bundles and
//!   their verifier;
//! - `cmd`: the command line, one file per subcommand, one error-to-exit-code mapping.

pub(crate) mod backend;
pub(crate) mod bundled;
pub mod cmd;
pub mod config;
pub mod device;
pub mod events;
pub mod farm;
pub mod history;
pub(crate) mod interrupt;
pub(crate) mod names;
pub mod npy;
pub mod package;
pub mod plan;
pub mod qualify;
pub(crate) mod quality;
pub mod scheduler;
pub(crate) mod sink;
pub mod sweep;
pub(crate) mod time;
pub mod yaml;

pub(crate) use names::{SAFE_NAME_CHARS, safe_name, safe_relative_path};

// The schema and report crates under the names the host has always used.
pub use quadbench_report as report;
pub use quadbench_report::{claims, stats};
pub use quadbench_schema::{metric, results};
