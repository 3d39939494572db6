//! Where finished runs go. A sink subscribes to the run loop's events and persists what it
//! needs the moment it is known, so that a crash, a kill or a pulled cable never loses a finished
//! run. One file per sink, registered in [`SINKS`]; a database sink is one more entry. A sink
//! that cannot write stops the scenario (exit 3) rather than measure what cannot be kept.

pub mod results_json;
pub mod samples_csv;

use crate::events::Event;
use std::path::{Path, PathBuf};

/// A sink cannot persist: an output error (disk full, permissions), exit 3.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write {path}: {message}\n  hint: free disk space or choose another --out; finished runs already written are kept"
)]
pub struct SinkError {
    pub path: PathBuf,
    pub message: String,
}

impl SinkError {
    pub fn io(path: &Path, e: impl std::fmt::Display) -> SinkError {
        SinkError { path: path.to_path_buf(), message: e.to_string() }
    }
}

/// A consumer of run events that persists results.
pub trait ResultSink: Send {
    fn event(&mut self, e: &Event) -> Result<(), SinkError>;
}

/// Opens a sink for a results directory.
pub type OpenSink = fn(&Path) -> Box<dyn ResultSink>;

/// Every sink a run writes into its results directory, in the order they receive events (the
/// samples before the results.json that points at them).
pub const SINKS: &[(&str, OpenSink)] = &[("samples-csv", samples_csv::open), ("results-json", results_json::open)];

/// The sinks for results directory `out`.
pub fn for_dir(out: &Path) -> Vec<Box<dyn ResultSink>> {
    SINKS.iter().map(|(_, open)| open(out)).collect()
}
