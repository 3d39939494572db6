//! Opening and initialising: URLs, missing and foreign databases, schema versions, races.

use super::{Farm, exec, sqlite_db};
use crate::{Db, Engine, FarmError, SCHEMA_VERSION};

fn version(db: &Db) -> i64 {
    db.inner.rt().block_on(async {
        sqlx::query_scalar::<_, i64>("SELECT version FROM farm_schema").fetch_one(&db.inner.conn.pool).await.unwrap()
    })
}

#[test]
fn init_is_idempotent_and_open_sees_the_same_data() {
    let (_dir, db, url) = sqlite_db();
    assert_eq!(db.engine(), Engine::Sqlite);
    assert_eq!(version(&db), SCHEMA_VERSION);
    let farm = Farm::new(&db, "idem");
    farm.submit("s", 0, 1, 2, &farm.on("d"));
    let again = Db::init(&url).unwrap();
    assert_eq!(version(&again), SCHEMA_VERSION);
    let opened = Db::open(&url).unwrap();
    assert_eq!(opened.jobs(None).unwrap().len(), 2);
    assert_eq!(opened.submissions().unwrap().len(), 1);
    // Only one version row, however often init ran.
    let rows = opened.inner.rt().block_on(async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM farm_schema").fetch_one(&opened.inner.conn.pool).await
    });
    assert_eq!(rows.unwrap(), 1);
}

#[test]
fn init_creates_the_folder_and_both_url_forms_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b c/farm.db");
    Db::init(&format!("sqlite:{}", path.display())).unwrap();
    assert!(path.exists());
    Db::open(&format!("sqlite://{}", path.display())).unwrap();
}

#[test]
fn open_of_a_missing_file_is_not_initialised_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope/farm.db");
    let url = format!("sqlite://{}", path.display());
    match Db::open(&url) {
        Err(FarmError::NotInitialised { url: shown }) => assert_eq!(shown, url),
        other => panic!("expected NotInitialised, got {:?}", other.err()),
    }
    assert!(!path.exists() && !path.parent().unwrap().exists());
}

/// A file that is not an SQLite database is named as such, not reported after the pool's
/// acquire timeout as "pool timed out".
#[test]
fn open_of_a_file_that_is_not_a_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = Db::open(&format!("sqlite://{}", path.display())).err().unwrap();
    assert!(matches!(err, FarmError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("not a database"), "{err}");
}

#[test]
fn open_of_a_database_without_the_farm_schema_is_not_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let err = Db::open(&format!("sqlite://{}", path.display())).err().unwrap();
    assert!(matches!(err, FarmError::NotInitialised { .. }), "{err}");
    assert!(err.to_string().contains("quadbench farm init"));
}

#[test]
fn a_newer_schema_is_refused_by_open_and_init() {
    let (_dir, db, url) = sqlite_db();
    let newer = SCHEMA_VERSION + 1;
    exec(&db, String::leak(format!("UPDATE farm_schema SET version = {newer}")));
    for result in [Db::open(&url), Db::init(&url)] {
        match result {
            Err(FarmError::NewerSchema { found, supported: SCHEMA_VERSION, .. }) if found == newer => {}
            other => panic!("expected NewerSchema, got {:?}", other.err()),
        }
    }
    assert_eq!(version(&db), newer, "left as it is");
}

#[test]
fn a_version_1_database_gains_the_history_and_keeps_its_jobs() {
    let (_dir, db, url) = sqlite_db();
    let farm = Farm::new(&db, "v1");
    farm.submit("s", 0, 1, 1, &farm.on("d"));
    exec(&db, "DROP TABLE history; UPDATE farm_schema SET version = 1");
    drop(db);
    let db = Db::open(&url).unwrap();
    assert_eq!(version(&db), SCHEMA_VERSION);
    assert_eq!(db.jobs(None).unwrap().len(), 1, "version 1 rows survive the migration");
    assert!(db.history(None).unwrap().is_empty());
}

#[test]
fn open_migrates_an_older_schema() {
    let (_dir, db, url) = sqlite_db();
    exec(
        &db,
        "DROP TABLE history; DROP TABLE artefacts; DROP TABLE runs; DROP TABLE jobs; DROP TABLE submissions; DROP TABLE devices; \
         DROP TABLE hosts; UPDATE farm_schema SET version = 0",
    );
    drop(db);
    let db = Db::open(&url).unwrap();
    assert_eq!(version(&db), SCHEMA_VERSION);
    let farm = Farm::new(&db, "migrated");
    farm.submit("s", 0, 1, 1, &farm.on("d"));
    assert_eq!(db.jobs(None).unwrap().len(), 1);
}

#[test]
fn bad_urls_are_refused() {
    for url in ["mysql://u@h/d", "farm.db", "http://x", "sqlite://", "sqlite:///tmp/x.db?mode=ro"] {
        assert!(matches!(Db::open(url), Err(FarmError::BadUrl { .. })), "{url}");
        assert!(matches!(Db::init(url), Err(FarmError::BadUrl { .. })), "{url}");
    }
}

#[test]
fn a_refused_connection_is_retryable_and_hides_the_password() {
    // Port 1 on the loopback: nothing listens, the connection is refused at once.
    let err = Db::open("postgres://farm:s3cret@127.0.0.1:1/farm").err().unwrap();
    assert!(matches!(err, FarmError::Connect { .. }), "{err}");
    assert!(err.retryable());
    let text = err.to_string();
    assert!(!text.contains("s3cret") && text.contains("farm:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("timed out"), "says why, at once: {text}");
}

#[test]
fn concurrent_inits_of_a_new_database_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new/farm.db").display());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Db::init(&url).map(|db| version(&db)))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), SCHEMA_VERSION);
    }
}

#[test]
fn the_server_clock_is_in_milliseconds() {
    let (_dir, db, _url) = sqlite_db();
    let local = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let server = db.now_ms().unwrap();
    assert!((server - local).abs() < 5_000, "{server} vs {local}");
}

#[test]
fn every_sqlite_connection_has_wal_a_busy_timeout_and_foreign_keys() {
    let (_dir, db, _url) = sqlite_db();
    db.inner.rt().block_on(async {
        // Several connections at once, so that not all of them are the first one.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(db.inner.conn.pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut **conn).await.unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut **conn).await.unwrap();
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut **conn).await.unwrap();
            assert_eq!((mode.as_str(), busy, fk), ("wal", 10_000, 1));
        }
    });
}

#[test]
fn db_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Db>();
}

#[test]
fn a_db_dropped_inside_another_runtime_does_not_panic() {
    let (_dir, db, _url) = sqlite_db();
    let other = tokio::runtime::Builder::new_current_thread().build().unwrap();
    other.block_on(async move { drop(db) });
}
