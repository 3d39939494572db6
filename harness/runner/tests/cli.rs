//! The runner binary's command line: usage, version, and a plan it cannot read.

use std::process::Command;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quadbench-runner"))
}

#[test]
fn version_names_the_protocol() {
    let o = runner().arg("--version").output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains(quadbench_protocol::PLAN_SCHEMA));
}

#[test]
fn no_arguments_is_usage_error() {
    let o = runner().output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage"));
}

#[test]
fn unreadable_plan_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.json");
    std::fs::write(&p, "{ not json").unwrap();
    let o = runner().arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("plan.json"));
}
