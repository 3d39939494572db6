//! The history table: rows written in the fenced finish (and only there), idempotent adds,
//! filtering by label, and confirmation reruns pinned to the device that ran the job. Each
//! scenario is a function of a database; `pg.rs` runs them on PostgreSQL too.

use super::{Farm, run_write, sqlite_db};
use crate::{Db, FarmError, HistoryEntry};

fn entry(farm: &Farm, night: &str, n: usize) -> HistoryEntry {
    HistoryEntry {
        fingerprint: farm.name(&format!("fp-{night}-{n}")),
        series_key: farm.name("scn/dev/cpu/fp32/unified"),
        night: farm.name(night),
        started_at: format!("2026-11-30T00:00:0{n}.000Z"),
        status: "ok".into(),
        valid: true,
        record_json: format!("{{\"n\":{n}}}"),
        samples_json: "{}".into(),
        ..HistoryEntry::default()
    }
}

pub(super) fn history_rows_come_only_with_a_held_lease(db: &Db) {
    let farm = Farm::new(db, "hist-fence");
    let (a, b) = (farm.soc_device("a"), farm.soc_device("b"));
    farm.submit("s", 0, 3, 1, &farm.any_device());
    let old = db.claim("agent-a", &a, -1).unwrap().unwrap();
    let new = db.claim("agent-b", &b, 600_000).unwrap().unwrap();
    let with = |night: &str, n| {
        let mut w = run_write(night, &[]);
        w.history = Some(entry(&farm, night, n));
        w
    };
    assert!(matches!(db.finish(&old, &with("old", 1)), Err(FarmError::LeaseLost { .. })));
    db.finish(&new, &with("new", 2)).unwrap();
    let mine: Vec<HistoryEntry> = db.history(Some(&farm.tag)).unwrap();
    assert_eq!(mine.len(), 1, "the fenced-out holder's run is not in the history");
    assert_eq!(mine[0].night, farm.name("new"));
    assert_eq!((mine[0].valid, mine[0].record_json.as_str()), (true, "{\"n\":2}"));
}

pub(super) fn history_adds_are_idempotent_and_filtered_by_label(db: &Db) {
    let farm = Farm::new(db, "hist-add");
    assert_eq!(db.history_add(&entry(&farm, "n1", 2)).unwrap(), None);
    assert_eq!(db.history_add(&entry(&farm, "n1", 1)).unwrap(), None);
    let mut again = entry(&farm, "n1", 2);
    again.night = farm.name("other");
    assert_eq!(db.history_add(&again).unwrap(), Some(farm.name("n1")), "same run: kept under its first night");
    let mine = db.history(Some(&farm.tag)).unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine[0].started_at < mine[1].started_at, "ordered by start within a series");
    assert!(db.history(Some(&farm.name("nothing"))).unwrap().is_empty());
}

pub(super) fn resubmit_pins_each_job_to_the_device_that_ran_it(db: &Db) {
    let farm = Farm::new(db, "hist-confirm");
    let a = farm.soc_device("a");
    farm.submit("night", 5, 2, 2, &farm.any_device());
    for _ in 0..2 {
        let c = db.claim("agent-a", &a, 600_000).unwrap().unwrap();
        db.finish(&c, &run_write("r", &[])).unwrap();
    }
    let keys = vec!["scn/dev/cpu/fp32/s1".to_string()];
    let again = farm.name("night~confirm-1");
    assert!(db.resubmit(&farm.name("night"), &keys, &again, 100).unwrap().is_some());
    let jobs = db.jobs(Some(&again)).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].key.as_str(), jobs[0].requirement.device.as_deref()),
        (keys[0].as_str(), Some(a.reg.name.as_str()))
    );
    // Raised priority: the rerun goes before a queued night of priority 5.
    farm.submit("next", 5, 2, 1, &farm.any_device());
    assert_eq!(db.claim("agent-a", &a, 600_000).unwrap().unwrap().label, again);
    assert_eq!(db.resubmit(&farm.name("night"), &["none".to_string()], &farm.name("x"), 0).unwrap(), None);
}

#[test]
fn history_rows_come_only_with_a_held_lease_sqlite() {
    history_rows_come_only_with_a_held_lease(&sqlite_db().1);
}

#[test]
fn history_adds_are_idempotent_and_filtered_by_label_sqlite() {
    history_adds_are_idempotent_and_filtered_by_label(&sqlite_db().1);
}

#[test]
fn resubmit_pins_each_job_to_the_device_that_ran_it_sqlite() {
    resubmit_pins_each_job_to_the_device_that_ran_it(&sqlite_db().1);
}
