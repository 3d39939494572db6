//! The farm, host side: what a submission's jobs carry ([`Payload`]), turning a scenario into
//! jobs (`submit`), the agent that drains the queue on one host (`agent`), the health check and
//! fingerprint of a device (`health`), and a results directory rebuilt from the database
//! (`collect`). The database itself (tables, leases, fencing) is the `quadbench-farm` crate;
//! this module is the only one that talks to it.

pub mod agent;
pub mod collect;
pub mod health;
pub mod submit;

pub use quadbench_farm::{Db, FarmError, Requirement, redact};
use quadbench_protocol::{Backend, Strategy};
use quadbench_schema::claim::Claim;
use serde::{Deserialize, Serialize};

/// What a job carries for the agent that runs it (stored as opaque JSON by the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub backend: String,
    pub strategy: Strategy,
    pub precision: String,
    /// Which replicate of its configuration the job is (1-based; absent: 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replicate: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Payload {
    pub fn backend(&self) -> Option<Backend> {
        Backend::parse(&self.backend)
    }
}

/// What an agent stores as a run's header: the results header of its one-run scenario and the
/// submission's claims (evaluated by `farm results` over every run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub header: crate::results::Results,
    pub claims: Vec<Claim>,
}

/// Errors of the farm commands besides the database's own.
#[derive(Debug, thiserror::Error)]
pub enum FarmCmdError {
    #[error(transparent)]
    Db(#[from] FarmError),
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    #[error("no submission is labelled `{label}`\n  hint: `quadbench farm status` lists the submissions")]
    NoSubmission { label: String },
    #[error(
        "submission `{label}` has no finished run yet\n  hint: start an agent (`quadbench agent --db URL --device FILE`) and wait; `quadbench farm status --label {label}` shows progress"
    )]
    NoRuns { label: String },
    #[error("{what}\n  hint: {fix}")]
    Input { what: String, fix: String },
    #[error("the database holds a run that cannot be read back ({what}): {message}")]
    Corrupt { what: String, message: String },
    #[error("cannot write {path}: {message}\n  hint: free disk space or choose another --out")]
    Output { path: String, message: String },
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}
