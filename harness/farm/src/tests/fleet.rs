//! Hosts and devices: heartbeats, registration and health.

use super::{Farm, sqlite_db};
use crate::{DeviceReg, FarmError, Health};

#[test]
fn heartbeats_upsert_hosts_and_show_on_their_devices() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "hb");
    let reg = farm.reg("d", None, None);
    assert_eq!(db.register_device(&reg).unwrap().host_heartbeat_ms, 0, "no heartbeat yet");
    db.heartbeat(&reg.host).unwrap();
    let first = db.hosts().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].name, reg.host);
    std::thread::sleep(std::time::Duration::from_millis(5));
    db.heartbeat(&reg.host).unwrap();
    let second = db.hosts().unwrap();
    assert_eq!(second.len(), 1);
    assert!(second[0].heartbeat_ms > first[0].heartbeat_ms);
    assert_eq!(db.device(&reg.name).unwrap().unwrap().host_heartbeat_ms, second[0].heartbeat_ms);
}

#[test]
fn registration_keeps_health_unless_the_device_changed() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "reg");
    let reg = farm.reg("d", Some("sm8650"), Some("arm64-v8a"));
    let row = db.register_device(&reg).unwrap();
    assert_eq!((row.health, row.reg.clone()), (Health::Unknown, reg.clone()));
    db.set_health(&reg.name, Health::Bad, "health check failed: no adb").unwrap();
    // The agent restarts: same device, still bad.
    let row = db.register_device(&reg).unwrap();
    assert_eq!((row.health, row.health_note.as_str()), (Health::Bad, "health check failed: no adb"));
    db.set_health(&reg.name, Health::Good, "").unwrap();
    assert_eq!(db.register_device(&reg).unwrap().health, Health::Good);
    // Each of these makes it another device: back to unknown.
    let changes: [fn(&mut DeviceReg); 6] = [
        |r| r.host = "other-host".into(),
        |r| r.transport = "adb".into(),
        |r| r.profile_sha256 = "f".repeat(64),
        |r| r.soc = None,
        |r| r.abi = Some("x86_64".into()),
        |r| r.model = Some("other".into()),
    ];
    for change in changes {
        db.set_health(&reg.name, Health::Good, "").unwrap();
        let mut changed = reg.clone();
        change(&mut changed);
        let row = db.register_device(&changed).unwrap();
        assert_eq!((row.health, row.reg), (Health::Unknown, changed));
    }
    assert_eq!(db.devices().unwrap().len(), 1);
}

#[test]
fn retired_devices_are_refused() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "ret");
    let reg = farm.reg("d", None, None);
    db.register_device(&reg).unwrap();
    db.set_health(&reg.name, Health::Retired, "broken screen").unwrap();
    match db.register_device(&reg) {
        Err(FarmError::Retired { name }) => assert_eq!(name, reg.name),
        other => panic!("expected Retired, got {other:?}"),
    }
    let mut moved = reg.clone();
    moved.host = "elsewhere".into();
    assert!(matches!(db.register_device(&moved), Err(FarmError::Retired { .. })));
    let row = db.device(&reg.name).unwrap().unwrap();
    assert_eq!((row.health, row.health_note.as_str(), row.reg), (Health::Retired, "broken screen", reg));
}

#[test]
fn listing_and_unknown_devices() {
    let (_dir, db, _url) = sqlite_db();
    let farm = Farm::new(&db, "list");
    for name in ["b", "a", "c"] {
        db.register_device(&farm.reg(name, None, None)).unwrap();
    }
    let names: Vec<String> = db.devices().unwrap().into_iter().map(|d| d.reg.name).collect();
    assert_eq!(names, [farm.name("a"), farm.name("b"), farm.name("c")]);
    assert_eq!(db.device("nope").unwrap(), None);
    let err = db.set_health("nope", Health::Good, "").unwrap_err();
    assert!(matches!(err, FarmError::Query { retryable: false, .. }), "{err}");
}
