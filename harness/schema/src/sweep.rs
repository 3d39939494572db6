//! The sweep index, `sweep.json` in a sweep directory (`quadbench sweep`): which points a sweep
//! has, the axis values of each, where each point's ordinary results directory is, and what the
//! memory guard decided before anything ran. The sweep's tables and plots are regenerated from
//! this file and the points' results directories alone.

use quadbench_protocol::Strategy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Schema name of `sweep.json`.
pub const SWEEP_INDEX_SCHEMA: &str = "quadbench.sweep-index/1";
/// File name of the index inside a sweep directory.
pub const SWEEP_INDEX_FILE: &str = "sweep.json";

/// One axis value: a number (package parameters), a name (backend, precision) or a list of
/// names (strategies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AxisValue {
    /// A package parameter.
    Number(u64),
    /// A backend or precision name.
    Name(String),
    /// A strategy list.
    Names(Vec<String>),
}

impl AxisValue {
    /// The number, for a numeric axis.
    pub fn number(&self) -> Option<u64> {
        match self {
            AxisValue::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as people read it (`1024`, `cpu`, `unified+separate-reload`).
    pub fn label(&self) -> String {
        match self {
            AxisValue::Number(n) => n.to_string(),
            AxisValue::Name(s) => s.clone(),
            AxisValue::Names(v) => v.join("+"),
        }
    }
}

/// A file the sweep was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// As given (sweep file) or as resolved (base scenario).
    pub path: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// Where a point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointStatus {
    /// Not run yet (or interrupted).
    Pending,
    /// Its scenario finished (its claims may still fail).
    Done,
    /// Not run: every strategy would exceed the memory limit.
    Skipped,
    /// The scenario could not run (package, runtime, output).
    Failed,
}

/// The memory guard's estimate for one strategy of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// The strategy.
    pub strategy: Strategy,
    /// Denoiser sessions the strategy holds at once.
    pub sessions: u64,
    /// Estimated peak resident memory of its runner process, bytes.
    pub peak_bytes: u64,
    /// Over the limit: left out of the point (`over_limit: skip`).
    pub skipped: bool,
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// `p<NN>-<axis><value>...`: names its directory.
    pub id: String,
    /// Its results directory, relative to the sweep directory.
    pub dir: String,
    /// Axis name -> value at this point.
    pub values: BTreeMap<String, AxisValue>,
    /// Where it stands.
    pub status: PointStatus,
    /// Float32 weight bytes of the unified denoiser (foundation), when the package is the
    /// generated reference package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundation_bytes: Option<u64>,
    /// Float32 bytes of one task's adapter, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_bytes: Option<u64>,
    /// Tasks of the package, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
    /// The memory guard's estimates, one per strategy of the point.
    #[serde(default)]
    pub memory: Vec<MemoryEstimate>,
    /// Wall time of the point's scenario (package generation included), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Why it was skipped or failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepIndex {
    /// [`SWEEP_INDEX_SCHEMA`].
    pub schema: String,
    /// The sweep's name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The sweep file.
    pub sweep: FileRef,
    /// Its base scenario.
    pub scenario: FileRef,
    /// Axis names, in the sweep file's order.
    pub axes: Vec<String>,
    /// The memory limit the guard used, bytes.
    pub memory_limit_bytes: u64,
    /// Where the limit came from (`sweep file`, `MemAvailable of <host>`).
    pub memory_limit_source: String,
    /// Every point, in run order.
    pub points: Vec<SweepPoint>,
    /// Every point done, skipped or failed.
    pub complete: bool,
}
