//! quadbench: benchmarks and validates on-device generative vision models, comparing a unified
//! multi-LoRA deployment (adapters as runtime inputs of one graph) with per-task merged binaries.
//!
//! Modules own one area each: `package` (model packages), `scenario` (what to run), `device`
//! (transports), `plan` (host side of the runner protocol), `run` (the run loop and its events),
//! `results` (results.json and friends), `stats` (intervals, outliers), `throttle` (cool-down
//! between runs), `report` (tables, plots, JUnit, HTML from a results directory), `yaml`
//! (located YAML errors).

pub mod package;
pub mod yaml;

/// A name usable as a file-name component: letters, digits, `_`, `-`, `.` (not only dots).
pub fn safe_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().all(|c| c == '.') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A relative path whose components are all safe names.
pub fn safe_relative_path(s: &str) -> bool {
    !s.starts_with('/') && s.split('/').all(safe_name)
}
pub mod device;
pub mod golden;
pub mod npu;
pub mod quality;
pub mod report;
pub mod resilience;
pub mod results;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod throttle;
