//! A claim to verify, as a scenario states it; its verdict is a [`crate::results::ClaimResult`].

use crate::metric::Metric;
use quadbench_protocol::Strategy;

/// A claim to verify: `metric(baseline) / metric(candidate) >= threshold` (for lower-is-better
/// metrics; see [`Metric::ratio`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// Name in the scenario and the reports.
    pub name: String,
    /// What is compared.
    pub metric: Metric,
    /// The strategy the candidate is compared with (separate-reload, usually).
    pub baseline: Strategy,
    /// The strategy the claim is about (unified, usually).
    pub candidate: Strategy,
    /// Required ratio: how many times better the candidate must be.
    pub threshold: f64,
}
