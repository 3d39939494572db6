//! Every serialized type of quadbench, in one stable crate that the host, the report generator
//! and any other consumer (a farm, a dashboard, a verifier) share: `results.json` and its run
//! records ([`results`]), the scalar-metric table ([`metric`]), claims ([`claim`]), the
//! statistics method recorded with results ([`method`]), history and regression verdicts
//! ([`history`]), the sweep index ([`sweep`]) and the exit codes ([`exit`]). The
//! plan and run-result messages between host and runner are [`protocol`].
#![warn(missing_docs)]

pub mod claim;
pub mod exit;
pub mod history;
pub mod method;
pub mod metric;
pub mod results;
pub mod sweep;

pub use quadbench_protocol as protocol;
