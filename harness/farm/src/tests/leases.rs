//! Leases and fencing: expiry and reclaim, attempt limits, infrastructure failures, handing
//! back, renewal, stored runs, and racing claims. Each scenario is a function of a database so
//! that `pg.rs` runs the same ones on PostgreSQL; the `#[test]`s here run them on SQLite.
//!
//! A lease of -1 ms has expired by the time the next statement runs: expiry without sleeping.

use std::collections::HashSet;

use super::{Farm, run_write, sqlite_db};
use crate::{Db, FarmError, InfraOutcome, JobRow, JobState};

const EXPIRED: i64 = -1;
const LONG: i64 = 600_000;

fn job(db: &Db, farm: &Farm, label: &str, index: usize) -> JobRow {
    db.jobs(Some(&farm.name(label))).unwrap().remove(index)
}

fn lost(r: Result<impl std::fmt::Debug, FarmError>, job_id: i64, token: i64, agent: &str) {
    match r {
        Err(FarmError::LeaseLost { job_id: j, token: t, agent: a }) => {
            assert_eq!((j, t, a.as_str()), (job_id, token, agent))
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

pub(super) fn reclaim_after_expiry_fences_the_old_holder(db: &Db) {
    let farm = Farm::new(db, "reclaim");
    let (a, b) = (farm.soc_device("a"), farm.soc_device("b"));
    let sub = farm.submit("s", 0, 3, 1, &farm.any_device());
    let old = db.claim("agent-a", &a, EXPIRED).unwrap().unwrap();
    let new = db.claim("agent-b", &b, LONG).unwrap().unwrap();
    assert_eq!(new.job_id, old.job_id);
    assert!(new.fencing_token > old.fencing_token);
    assert_eq!((old.attempt, new.attempt), (1, 2), "the expired attempt counts");
    let id = old.job_id;
    lost(db.finish(&old, &run_write("old", &[("a.csv", b"old".to_vec())])), id, old.fencing_token, "agent-a");
    lost(db.fail_infra(&old, "late", 0, 0, Some(&run_write("old", &[]))), id, old.fencing_token, "agent-a");
    lost(db.hand_back(&old), id, old.fencing_token, "agent-a");
    assert_eq!(db.renew("agent-a", &[(id, old.fencing_token)], LONG).unwrap(), [id]);
    assert!(db.runs(sub).unwrap().is_empty(), "the old holder's run is not stored");
    let j = job(db, &farm, "s", 0);
    assert_eq!((j.state, j.agent.as_deref(), j.fencing_token), (JobState::Running, Some("agent-b"), new.fencing_token));

    db.finish(&new, &run_write("new", &[("b.csv", b"new".to_vec())])).unwrap();
    let runs = db.runs(sub).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].agent.as_str(), runs[0].device.as_str()), ("agent-b", b.reg.name.as_str()));
    assert_eq!((runs[0].fencing_token, runs[0].write.run_id.as_str()), (new.fencing_token, "new"));
    assert_eq!(job(db, &farm, "s", 0).state, JobState::Done);
    lost(db.finish(&new, &run_write("twice", &[])), id, new.fencing_token, "agent-b");
    assert_eq!(db.claim("agent-a", &a, LONG).unwrap(), None, "done jobs are not claimed");
}

pub(super) fn an_expired_lease_nobody_reclaimed_still_finishes(db: &Db) {
    let farm = Farm::new(db, "late");
    let dev = farm.soc_device("d");
    let sub = farm.submit("s", 0, 1, 1, &farm.any_device());
    let c = db.claim("agent", &dev, EXPIRED).unwrap().unwrap();
    assert_eq!(db.renew("agent", &[(c.job_id, c.fencing_token)], LONG).unwrap(), Vec::<i64>::new());
    db.finish(&c, &run_write("r", &[])).unwrap();
    assert_eq!(db.runs(sub).unwrap().len(), 1);
}

pub(super) fn expired_leases_use_up_the_attempts(db: &Db) {
    let farm = Farm::new(db, "spent");
    let dev = farm.soc_device("d");
    farm.submit("s", 0, 2, 2, &farm.any_device());
    let first = db.claim("agent", &dev, EXPIRED).unwrap().unwrap();
    let second = db.claim("agent", &dev, EXPIRED).unwrap().unwrap();
    assert_eq!((first.index, second.index, second.attempt), (0, 0, 2));
    // Job 0 expired on its last attempt: failed instead of claimed, and the claim moves on.
    let next = db.claim("agent", &dev, LONG).unwrap().unwrap();
    assert_eq!((next.index, next.attempt), (1, 1));
    let j = job(db, &farm, "s", 0);
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.error.as_deref(), Some("lease expired on every attempt (2 attempts)"));
    assert_eq!(db.pending_for(&dev.reg).unwrap(), 1);
    lost(db.finish(&second, &run_write("r", &[])), second.job_id, second.fencing_token, "agent");
}

pub(super) fn infra_failures_requeue_away_from_the_device_then_fail(db: &Db) {
    let farm = Farm::new(db, "infra");
    let (a, b) = (farm.soc_device("a"), farm.soc_device("b"));
    let sub = farm.submit("y", 0, 2, 1, &farm.any_device());
    let on_a = db.claim("agent-a", &a, LONG).unwrap().unwrap();
    assert_eq!(db.fail_infra(&on_a, "adb gone", 0, LONG, None).unwrap(), InfraOutcome::Requeued);
    let j = job(db, &farm, "y", 0);
    assert_eq!((j.state, j.attempts, j.error.as_deref()), (JobState::Queued, 1, Some("adb gone")));
    assert_eq!(db.claim("agent-a", &a, LONG).unwrap(), None, "the failing device avoids it");
    let on_b = db.claim("agent-b", &b, LONG).unwrap().unwrap();
    assert_eq!((on_b.job_id, on_b.attempt), (on_a.job_id, 2));
    let last = run_write("last", &[("log.txt", b"boom".to_vec())]);
    assert_eq!(db.fail_infra(&on_b, "adb gone again", 0, 0, Some(&last)).unwrap(), InfraOutcome::Failed);
    let j = job(db, &farm, "y", 0);
    assert_eq!((j.state, j.attempts, j.error.as_deref()), (JobState::Failed, 2, Some("adb gone again")));
    let runs = db.runs(sub).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((&runs[0].write, runs[0].agent.as_str(), runs[0].job_id), (&last, "agent-b", on_b.job_id));
    lost(db.fail_infra(&on_b, "x", 0, 0, None), on_b.job_id, on_b.fencing_token, "agent-b");

    // Not before the retry delay, on any device; the avoidance ends on its own.
    farm.submit("x", 0, 3, 1, &farm.any_device());
    let c = db.claim("agent-a", &a, LONG).unwrap().unwrap();
    assert_eq!(db.fail_infra(&c, "flaky", LONG, 0, None).unwrap(), InfraOutcome::Requeued);
    assert_eq!(db.claim("agent-b", &b, LONG).unwrap(), None);
    assert_eq!(db.claim("agent-a", &a, LONG).unwrap(), None);
    assert_eq!(db.pending_for(&a.reg).unwrap(), 1);
    farm.submit("z", 0, 3, 1, &farm.any_device());
    let c = db.claim("agent-a", &a, LONG).unwrap().unwrap();
    assert_eq!(db.fail_infra(&c, "flaky", 0, EXPIRED, None).unwrap(), InfraOutcome::Requeued);
    let again = db.claim("agent-a", &a, LONG).unwrap().unwrap();
    assert_eq!(again.job_id, c.job_id, "avoidance over");
    assert_eq!(db.claim("agent-a", &a, LONG).unwrap(), None, "a device holds one live lease at a time");
    db.finish(&again, &run_write("z", &[])).unwrap();
    // Failed for good without a run: none stored.
    let id = farm.submit("w", 0, 1, 1, &farm.any_device());
    let c = db.claim("agent-a", &a, LONG).unwrap().unwrap();
    assert_eq!(db.fail_infra(&c, "dead", 0, 0, None).unwrap(), InfraOutcome::Failed);
    assert!(db.runs(id).unwrap().is_empty());
}

pub(super) fn hand_back_returns_the_job_uncounted(db: &Db) {
    let farm = Farm::new(db, "handback");
    let dev = farm.soc_device("d");
    farm.submit("s", 0, 1, 1, &farm.any_device());
    let c = db.claim("agent", &dev, LONG).unwrap().unwrap();
    db.hand_back(&c).unwrap();
    let j = job(db, &farm, "s", 0);
    assert_eq!((j.state, j.attempts, j.agent, j.device, j.lease_expires_ms), (JobState::Queued, 0, None, None, None));
    let again = db.claim("agent", &dev, LONG).unwrap().unwrap();
    assert_eq!((again.job_id, again.attempt), (c.job_id, 1), "max_attempts 1, still claimable");
    assert!(again.fencing_token > c.fencing_token, "tokens never go back");
    lost(db.hand_back(&c), c.job_id, c.fencing_token, "agent");
}

pub(super) fn renew_extends_held_leases_and_names_lost_ones(db: &Db) {
    let farm = Farm::new(db, "renew");
    let (a, a2, a3, b) = (farm.soc_device("a"), farm.soc_device("a2"), farm.soc_device("a3"), farm.soc_device("b"));
    let agent = farm.name("agent-a");
    farm.submit("s", 0, 3, 3, &farm.any_device());
    let kept = db.claim(&agent, &a, 1_000).unwrap().unwrap();
    let finished = db.claim(&agent, &a2, 1_000).unwrap().unwrap();
    let taken = db.claim(&agent, &a3, EXPIRED).unwrap().unwrap();
    db.finish(&finished, &run_write("f", &[])).unwrap();
    let thief = db.claim("agent-b", &b, LONG).unwrap().unwrap();
    assert_eq!(thief.job_id, taken.job_id);
    let leases = [kept, taken, finished].map(|c| (c.job_id, c.fencing_token));
    let before = db.now_ms().unwrap();
    let lost_ids = db.renew(&agent, &leases, LONG).unwrap();
    assert_eq!(lost_ids, [leases[1].0, leases[2].0]);
    let j = job(db, &farm, "s", 0);
    assert!(j.lease_expires_ms.unwrap() >= before + LONG, "renewed");
    let host = db.hosts().unwrap().into_iter().find(|h| h.name == agent).expect("renew heartbeats the host");
    assert!(host.heartbeat_ms >= before);
    assert_eq!(db.renew(&agent, &[], LONG).unwrap(), Vec::<i64>::new());
}

pub(super) fn runs_come_back_in_index_order_with_their_artefacts(db: &Db) {
    let farm = Farm::new(db, "runs");
    let devs: Vec<_> = (0..3).map(|i| farm.soc_device(&format!("d{i}"))).collect();
    let sub = farm.submit("s", 0, 1, 3, &farm.any_device());
    let claims: Vec<_> = devs.iter().map(|dev| db.claim("agent", dev, LONG).unwrap().unwrap()).collect();
    let all_bytes: Vec<u8> = (0..=255).collect();
    let writes = [
        run_write("r0", &[("samples/r0.csv", b"a,b\n1,2\n".to_vec())]),
        run_write("r1", &[]),
        run_write("r2", &[("z.bin", all_bytes.clone()), ("empty", Vec::new()), ("a/b.png", vec![0, 0, 1])]),
    ];
    for i in [2, 0, 1] {
        db.finish(&claims[i], &writes[i]).unwrap();
    }
    let runs = db.runs(sub).unwrap();
    assert_eq!(runs.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
    for (run, (claim, write)) in runs.iter().zip(claims.iter().zip(&writes)) {
        assert_eq!(&run.write, write, "artefacts in the order the run listed them");
        assert_eq!((run.job_id, run.fencing_token, run.device.as_str()), (claim.job_id, 1, claim.device.as_str()));
    }
    assert!(db.runs(sub + 1_000_000).unwrap().is_empty());
}

/// 8 threads, each with its own clone and device, claim (and finish) 50 jobs at once: each is
/// claimed by exactly one of them.
pub(super) fn racing_claims_take_every_job_exactly_once(db: &Db) {
    let farm = Farm::new(db, "race");
    let devices: Vec<_> = (0..8).map(|i| farm.soc_device(&format!("d{i}"))).collect();
    farm.submit("s", 0, 1, 50, &farm.any_device());
    let threads: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, dev)| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while let Some(c) = db.claim(&format!("agent-{i}"), &dev, LONG).unwrap() {
                    mine.push(c.job_id);
                    db.finish(&c, &run_write("r", &[])).unwrap();
                }
                mine
            })
        })
        .collect();
    let claimed: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    let jobs = db.jobs(Some(&farm.name("s"))).unwrap();
    assert_eq!(claimed.len(), 50, "no job claimed twice");
    assert_eq!(unique, jobs.iter().map(|j| j.id).collect::<HashSet<_>>(), "none missing");
    assert!(jobs.iter().all(|j| j.state == JobState::Done && j.attempts == 1 && j.fencing_token == 1));
}

/// A device holds one live lease at a time, whoever asks for it (two agents attaching a device
/// of the same name): a second claim waits until the first job ends or its lease expires.
pub(super) fn a_device_holds_one_live_lease(db: &Db) {
    let farm = Farm::new(db, "onelease");
    let dev = farm.soc_device("d");
    farm.submit("s", 0, 3, 3, &farm.any_device());
    let first = db.claim("agent-a", &dev, LONG).unwrap().unwrap();
    assert_eq!(db.claim("agent-b", &dev, LONG).unwrap(), None, "the device is busy");
    db.finish(&first, &run_write("1", &[])).unwrap();
    let second = db.claim("agent-b", &dev, EXPIRED).unwrap().unwrap();
    let third = db.claim("agent-a", &dev, LONG).unwrap().unwrap();
    assert_eq!(third.job_id, second.job_id, "an expired lease frees the device (and its job)");
    assert!(third.fencing_token > second.fencing_token);
}

#[test]
fn reclaim_after_expiry_fences_the_old_holder_sqlite() {
    reclaim_after_expiry_fences_the_old_holder(&sqlite_db().1);
}

#[test]
fn an_expired_lease_nobody_reclaimed_still_finishes_sqlite() {
    an_expired_lease_nobody_reclaimed_still_finishes(&sqlite_db().1);
}

#[test]
fn expired_leases_use_up_the_attempts_sqlite() {
    expired_leases_use_up_the_attempts(&sqlite_db().1);
}

#[test]
fn infra_failures_requeue_away_from_the_device_then_fail_sqlite() {
    infra_failures_requeue_away_from_the_device_then_fail(&sqlite_db().1);
}

#[test]
fn hand_back_returns_the_job_uncounted_sqlite() {
    hand_back_returns_the_job_uncounted(&sqlite_db().1);
}

#[test]
fn renew_extends_held_leases_and_names_lost_ones_sqlite() {
    renew_extends_held_leases_and_names_lost_ones(&sqlite_db().1);
}

#[test]
fn runs_come_back_in_index_order_with_their_artefacts_sqlite() {
    runs_come_back_in_index_order_with_their_artefacts(&sqlite_db().1);
}

#[test]
fn racing_claims_take_every_job_exactly_once_sqlite() {
    racing_claims_take_every_job_exactly_once(&sqlite_db().1);
}

#[test]
fn a_device_holds_one_live_lease_sqlite() {
    a_device_holds_one_live_lease(&sqlite_db().1);
}
