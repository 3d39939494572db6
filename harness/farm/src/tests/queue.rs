//! Submitting, listing, and what a claim picks: order, requirements, device health.

use super::{Farm, job, sqlite_db};
use crate::{DeviceRow, FarmError, Health, JobState, Requirement};

#[test]
fn submit_stores_queued_jobs_and_labels_are_unique() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "sub");
    let req = Requirement { device: Some("d".into()), soc: Some("sm8650".into()), abi: None };
    let id = farm.submit("one", 3, 2, 3, &req);
    let s = db.submission(&farm.name("one")).unwrap().unwrap();
    assert_eq!((s.id, s.label.as_str(), s.scenario_name.as_str()), (id, farm.name("one").as_str(), "scn"));
    assert!(s.created_ms > 0);
    let jobs = db.jobs(Some(&farm.name("one"))).unwrap();
    assert_eq!(jobs.iter().map(|j| j.index).collect::<Vec<_>>(), [0, 1, 2]);
    let j = &jobs[1];
    assert_eq!((j.submission_id, j.label.as_str(), j.key.as_str()), (id, s.label.as_str(), "scn/dev/cpu/fp32/s1"));
    assert_eq!((j.state, j.attempts, j.max_attempts, j.fencing_token), (JobState::Queued, 0, 2, 0));
    assert_eq!((&j.requirement, &j.agent, &j.device, j.lease_expires_ms, &j.error), (&req, &None, &None, None, &None));

    // A second submission with the label: refused, and none of its jobs stored.
    let again = db.submit(&farm.submission("one", 0, 1), &[job(0, Requirement::default())]);
    match again {
        Err(FarmError::LabelExists { label }) => assert_eq!(label, farm.name("one")),
        other => panic!("expected LabelExists, got {other:?}"),
    }
    assert_eq!(db.jobs(None).unwrap().len(), 3);
    farm.submit("two", 0, 1, 1, &req);
    assert_eq!(db.submissions().unwrap().len(), 2);
    assert_eq!(db.jobs(Some(&farm.name("two"))).unwrap().len(), 1);
    assert_eq!(db.submission("nope").unwrap(), None);
}

#[test]
fn claims_go_by_priority_then_submission_then_index() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "order");
    let dev = farm.device("d");
    let any = Requirement::default();
    let low = farm.submit("low", 0, 1, 2, &any);
    let high_old = farm.submit("high-old", 5, 1, 2, &any);
    let high_new = farm.submit("high-new", 5, 1, 1, &any);
    let mut order = Vec::new();
    while let Some(c) = db.claim("agent", &dev, 60_000).unwrap() {
        order.push((c.submission_id, c.index));
        db.finish(&c, &super::run_write("r", &[])).unwrap();
    }
    assert_eq!(order, [(high_old, 0), (high_old, 1), (high_new, 0), (low, 0), (low, 1)]);
}

#[test]
fn a_claim_carries_the_job_and_its_scenario() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "carry");
    let dev = farm.device("d");
    let id = farm.submit("s", 0, 3, 1, &farm.on("d"));
    let before = db.now_ms().unwrap();
    let c = db.claim("agent-1", &dev, 30_000).unwrap().unwrap();
    assert_eq!((c.submission_id, c.label.as_str(), c.index), (id, farm.name("s").as_str(), 0));
    assert_eq!((c.key.as_str(), c.payload.as_str()), ("scn/dev/cpu/fp32/s0", "{\"index\":0}"));
    assert_eq!((c.scenario_path.as_str(), c.scenario_text.as_str()), ("/scn.yaml", "name: scn # s"));
    assert_eq!(c.scenario_sha256, "1".repeat(64));
    assert_eq!(
        (c.agent.as_str(), c.device.as_str(), c.fencing_token, c.attempt),
        ("agent-1", dev.reg.name.as_str(), 1, 1)
    );
    assert!(c.lease_expires_ms >= before + 30_000 && c.lease_expires_ms < before + 40_000);
    let j = &db.jobs(None).unwrap()[0];
    assert_eq!((j.state, j.attempts, j.fencing_token), (JobState::Running, 1, 1));
    assert_eq!((j.agent.as_deref(), j.device.as_deref()), (Some("agent-1"), Some(dev.reg.name.as_str())));
    assert_eq!(j.lease_expires_ms, Some(c.lease_expires_ms));
}

#[test]
fn claims_match_requirements() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "req");
    let phone = farm.good(&farm.reg("phone", Some("sm8650"), Some("arm64-v8a")));
    let board = farm.good(&farm.reg("board", Some("rk3588"), Some("arm64-v8a")));
    let pc = farm.good(&farm.reg("pc", None, Some("x86_64")));
    let req = |device: Option<String>, soc: Option<&str>, abi: Option<&str>| Requirement {
        device,
        soc: soc.map(str::to_string),
        abi: abi.map(str::to_string),
    };
    let cases = [
        ("by-name", req(Some(farm.name("board")), None, None), vec![&board]),
        ("by-soc", req(None, Some("sm8650"), None), vec![&phone]),
        ("by-abi", req(None, None, Some("arm64-v8a")), vec![&phone, &board]),
        ("by-soc-and-abi", req(None, Some("rk3588"), Some("x86_64")), vec![]),
        ("by-all", req(Some(farm.name("phone")), Some("sm8650"), Some("arm64-v8a")), vec![&phone]),
        ("none", req(None, None, None), vec![&phone, &board, &pc]),
    ];
    for (label, requirement, takers) in cases {
        farm.submit(label, 0, 1, 1, &requirement);
        for dev in [&phone, &board, &pc] {
            let may = takers.iter().any(|t| t.reg.name == dev.reg.name);
            assert_eq!(requirement.matches(&dev.reg), may, "{label} {}", dev.reg.name);
            assert_eq!(db.pending_for(&dev.reg).unwrap(), i64::from(may), "{label} {}", dev.reg.name);
        }
        for dev in [&phone, &board, &pc] {
            if let Some(c) = db.claim("a", dev, 60_000).unwrap() {
                assert!(takers.iter().any(|t| t.reg.name == dev.reg.name), "{label} went to {}", dev.reg.name);
                db.finish(&c, &super::run_write(label, &[])).unwrap();
            }
        }
        let j = db.jobs(Some(&farm.name(label))).unwrap().remove(0);
        let expect = if takers.is_empty() { JobState::Queued } else { JobState::Done };
        assert_eq!(j.state, expect, "{label}");
        if !takers.is_empty() {
            assert_eq!(j.device, Some(takers[0].reg.name.clone()), "{label}: the first matching device took it");
        }
    }
}

#[test]
fn only_good_devices_claim_and_health_is_read_from_the_database() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "health");
    let reg = farm.reg("d", None, None);
    farm.submit("s", 0, 1, 1, &Requirement::default());
    let unknown = db.register_device(&reg).unwrap();
    assert_eq!(unknown.health, Health::Unknown);
    assert_eq!(db.claim("a", &unknown, 60_000).unwrap(), None);
    let good = farm.good(&reg);
    for health in [Health::Bad, Health::Retired, Health::Unknown] {
        db.set_health(&reg.name, health, "").unwrap();
        // The caller's copy still says Good: the database's word counts.
        assert_eq!(db.claim("a", &good, 60_000).unwrap(), None, "{health:?}");
    }
    let ghost = DeviceRow { reg: farm.reg("never-registered", None, None), health: Health::Good, ..good.clone() };
    assert_eq!(db.claim("a", &ghost, 60_000).unwrap(), None);
    db.set_health(&reg.name, Health::Good, "").unwrap();
    assert!(db.claim("a", &good, 60_000).unwrap().is_some());
}

#[test]
fn pending_counts_queued_and_running_jobs_the_device_matches() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "pending");
    let dev = farm.device("d");
    let other = farm.device("other");
    farm.submit("mine", 0, 1, 3, &farm.on("d"));
    farm.submit("theirs", 0, 1, 2, &farm.on("other"));
    assert_eq!(db.pending_for(&dev.reg).unwrap(), 3);
    let c = db.claim("a", &dev, 60_000).unwrap().unwrap();
    assert_eq!(db.pending_for(&dev.reg).unwrap(), 3, "a running job may come back");
    db.finish(&c, &super::run_write("r", &[])).unwrap();
    assert_eq!(db.pending_for(&dev.reg).unwrap(), 2);
    assert_eq!(db.pending_for(&other.reg).unwrap(), 2);
}

/// Labels, listings and registration through one engine's SQL; `pg.rs` runs it on PostgreSQL.
pub(super) fn labels_listings_and_registration(db: &crate::Db) {
    let farm = Farm::new(db, "listings");
    let id = farm.submit("s", 2, 1, 2, &farm.any_device());
    let row = db.submission(&farm.name("s")).unwrap().unwrap();
    assert_eq!((row.id, row.scenario_path.as_str()), (id, "/scn.yaml"));
    assert!(db.submissions().unwrap().iter().any(|s| s.id == id));
    assert!(matches!(db.submit(&farm.submission("s", 0, 1), &[]), Err(FarmError::LabelExists { .. })));
    assert!(db.jobs(None).unwrap().iter().filter(|j| j.submission_id == id).count() == 2);
    let reg = farm.reg("d", Some(&farm.name("soc")), Some("arm64-v8a"));
    assert_eq!(db.register_device(&reg).unwrap().health, Health::Unknown);
    db.set_health(&reg.name, Health::Bad, "no adb").unwrap();
    assert_eq!(db.register_device(&reg).unwrap().health, Health::Bad);
    let mut moved = reg.clone();
    moved.host = farm.name("other-host");
    assert_eq!(db.register_device(&moved).unwrap().health, Health::Unknown);
    db.set_health(&reg.name, Health::Good, "").unwrap();
    assert!(db.devices().unwrap().iter().any(|d| d.reg == moved && d.health == Health::Good));
    assert_eq!(db.pending_for(&moved).unwrap(), 2);
    db.set_health(&reg.name, Health::Retired, "gone").unwrap();
    assert!(matches!(db.register_device(&moved), Err(FarmError::Retired { .. })));
}

#[test]
fn labels_listings_and_registration_sqlite() {
    labels_listings_and_registration(&sqlite_db().1);
}
