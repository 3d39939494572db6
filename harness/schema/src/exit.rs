//! The documented exit codes of `quadbench` (README, "Exit codes"), for scripts and CI.

/// Success; every claim and quality threshold passed.
pub const OK: i32 = 0;
/// A claim or quality threshold failed: the claim did not reproduce.
pub const CLAIMS_FAILED: i32 = 1;
/// Bad input (scenario, package, device profile, arguments); nothing was run.
pub const BAD_INPUT: i32 = 2;
/// Infrastructure: runtime library, runner binary, device, output directory.
pub const INFRA: i32 = 3;
/// A run failed as a test (the runner crashed or reported failure); the others are recorded.
pub const RUNS_FAILED: i32 = 4;
/// Killed by signal N after recording the interrupted run: `128 + N` (SIGINT 130, SIGTERM 143).
pub const fn signalled(signal: i32) -> i32 {
    128 + signal
}
