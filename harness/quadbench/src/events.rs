//! What the run loop reports. Measuring code never prints: it emits [`Event`]s, and two kinds of
//! consumers subscribe: [`Reporter`]s (people's output, which cannot fail) and result sinks
//! (`crate::sink`, which persist and whose failure stops the run). A finished run's event carries
//! its whole record, so any sink (a file, a database) can store it the moment it exists.

use crate::results::{Results, RunRecord};
use quadbench_schema::claim::Claim;
use std::path::PathBuf;

/// One thing that happened during a scenario run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A preparation step worth telling a person about.
    Step {
        message: String,
    },
    /// The runs are about to start: the results header (scenario, package; no runs yet) and the
    /// claims to evaluate as runs finish.
    ScenarioStarted {
        header: Box<Results>,
        claims: Vec<Claim>,
        resumed_runs: usize,
        /// Run ids in plan order: runs finish in any order (devices work in parallel), results
        /// list them in this one.
        order: Vec<String>,
    },
    RunStarted {
        index: usize,
        total: usize,
        id: String,
    },
    Heartbeat {
        id: String,
        phase: String,
        requests: u64,
        elapsed_ms: u64,
    },
    /// A run finished (measured, failed, skipped, or kept from an earlier invocation with
    /// `resumed`). `note` says why in a few words.
    RunFinished {
        record: Box<RunRecord>,
        note: String,
        resumed: bool,
    },
    /// A run failed with an infrastructure error and is retried after `wait_ms`.
    Retry {
        id: String,
        attempt: u32,
        retries: u32,
        wait_ms: u64,
        error: String,
    },
    /// A device failed every retry; its remaining runs are recorded as failed without running.
    DeviceUnhealthy {
        device: String,
        error: String,
    },
    /// Every run is finished; results are complete in `out`.
    ScenarioFinished {
        out: PathBuf,
    },
}

/// A consumer of events for people (progress on stderr, logs). Cannot fail.
pub trait Reporter {
    fn event(&mut self, e: &Event);
}

/// A reporter that drops everything (tests, library callers that do not care).
pub struct Quiet;

impl Reporter for Quiet {
    fn event(&mut self, _: &Event) {}
}
