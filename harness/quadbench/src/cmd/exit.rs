//! The one mapping from errors to documented exit codes (README, "Exit codes"):
//! 0 success; 1 a claim or quality threshold failed (did not reproduce); 2 bad input (nothing
//! was run); 3 infrastructure (runtime, runner, device, output directory); 4 a run failed as a
//! test (the runner crashed or reported failure); 128 + N killed by signal N (SIGINT 130,
//! SIGTERM 143) after recording the interrupted run.

use crate::package::PackageError;
use crate::report::ReportError;
use crate::scheduler::RunError;

pub use quadbench_schema::exit::{BAD_INPUT, CLAIMS_FAILED, INFRA, OK, RUNS_FAILED};

/// An error's exit code.
pub trait Classify: std::fmt::Display {
    fn exit_code(&self) -> i32;
}

impl Classify for PackageError {
    fn exit_code(&self) -> i32 {
        match self {
            // The host's runtime or the cache's disk: nothing wrong with the input.
            PackageError::Runtime { .. } | PackageError::Io { .. } => INFRA,
            _ => BAD_INPUT,
        }
    }
}

impl Classify for RunError {
    fn exit_code(&self) -> i32 {
        match self {
            RunError::Package(e) => e.exit_code(),
            RunError::Runtime(_)
            | RunError::Output { .. }
            | RunError::OutputLocked { .. }
            | RunError::RunnerMissing { .. }
            | RunError::Sink(_) => INFRA,
            RunError::Yaml(_) | RunError::OutputExists { .. } | RunError::Resume(_) => BAD_INPUT,
            RunError::Interrupted { signal, .. } => crate::interrupt::exit_code(*signal),
        }
    }
}

impl Classify for ReportError {
    fn exit_code(&self) -> i32 {
        if matches!(self, ReportError::Write { .. }) { INFRA } else { BAD_INPUT }
    }
}

impl Classify for crate::yaml::YamlError {
    fn exit_code(&self) -> i32 {
        BAD_INPUT
    }
}

impl Classify for quadbench_runtime::RuntimeError {
    fn exit_code(&self) -> i32 {
        INFRA
    }
}

impl Classify for crate::device::DeviceError {
    fn exit_code(&self) -> i32 {
        match self {
            crate::device::DeviceError::Interrupted(sig) => crate::interrupt::exit_code(*sig),
            _ => INFRA,
        }
    }
}

impl Classify for crate::qualify::sign::KeyError {
    fn exit_code(&self) -> i32 {
        // A key that cannot be written is the disk's fault; a missing or wrong key is input.
        if matches!(self, crate::qualify::sign::KeyError::Write { .. }) { INFRA } else { BAD_INPUT }
    }
}

impl Classify for crate::qualify::verify::VerifyError {
    fn exit_code(&self) -> i32 {
        // An unreadable or newer bundle: nothing could be checked (a failed check is exit 1).
        BAD_INPUT
    }
}

impl Classify for crate::qualify::BundleError {
    fn exit_code(&self) -> i32 {
        INFRA
    }
}

/// A message for people, on stderr.
pub fn report(e: &dyn std::fmt::Display) {
    eprintln!("error: {e}");
}

/// Report `e` and return its exit code.
pub fn fail(e: &dyn Classify) -> i32 {
    report(&e);
    e.exit_code()
}
