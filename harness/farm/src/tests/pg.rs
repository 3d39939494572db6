//! The lease scenarios on a real PostgreSQL server: the one `QUADBENCH_TEST_PG_URL` names, else
//! a throw-away server each test starts for itself with the workspace's test helper
//! (`tests/common/pg.rs`: Debian's postgresql, which `tests/run.sh` installs; as root or in CI a
//! missing install fails the test, elsewhere it is skipped with a note). Scenarios scope their
//! names by a tag, so they may share a database.

use super::{history, leases, queue, unique_tag};
use crate::{Db, Engine, FarmError, SCHEMA_VERSION};

#[path = "../../../../tests/common/pg.rs"]
#[allow(dead_code)]
mod server;

/// A database on PostgreSQL, and the server when this test started it (stopped on drop).
struct Pg {
    db: Db,
    url: String,
    _server: Option<server::PgServer>,
}

impl std::ops::Deref for Pg {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

fn pg() -> Option<Pg> {
    if let Ok(url) = std::env::var("QUADBENCH_TEST_PG_URL")
        && !url.is_empty()
    {
        let db = Db::init(&url).expect("QUADBENCH_TEST_PG_URL names a usable server");
        return Some(Pg { db, url, _server: None });
    }
    let server = server::PgServer::start(&[])?;
    let url = server.url("127.0.0.1");
    let db = Db::init(&url).expect("the test's own PostgreSQL server");
    Some(Pg { db, url, _server: Some(server) })
}

macro_rules! on_postgres {
    ($($scenario:ident),* $(,)?) => {$(
        #[test]
        fn $scenario() {
            if let Some(db) = pg() {
                leases::$scenario(&db);
            }
        }
    )*};
}

on_postgres!(
    reclaim_after_expiry_fences_the_old_holder,
    an_expired_lease_nobody_reclaimed_still_finishes,
    expired_leases_use_up_the_attempts,
    infra_failures_requeue_away_from_the_device_then_fail,
    hand_back_returns_the_job_uncounted,
    renew_extends_held_leases_and_names_lost_ones,
    runs_come_back_in_index_order_with_their_artefacts,
    racing_claims_take_every_job_exactly_once,
    a_device_holds_one_live_lease,
);

#[test]
fn history_on_postgres() {
    if let Some(db) = pg() {
        history::history_rows_come_only_with_a_held_lease(&db);
        history::history_adds_are_idempotent_and_filtered_by_label(&db);
        history::resubmit_pins_each_job_to_the_device_that_ran_it(&db);
    }
}

#[test]
fn labels_listings_and_registration() {
    if let Some(db) = pg() {
        queue::labels_listings_and_registration(&db);
    }
}

#[test]
fn open_of_a_database_without_the_farm_schema_is_not_initialised() {
    let Some(db) = pg() else { return };
    let name = unique_tag("empty").replace('-', "_");
    let run = |sql: String| {
        db.inner
            .rt()
            .block_on(async { sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&db.inner.conn.pool).await.unwrap() });
    };
    run(format!("CREATE DATABASE {name}"));
    let url = db.url.clone();
    let (base, query) = url.split_once('?').map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
    let other =
        format!("{}/{name}{}", &base[..base.rfind('/').unwrap()], query.map(|q| format!("?{q}")).unwrap_or_default());
    let opened = Db::open(&other);
    assert!(matches!(opened, Err(FarmError::NotInitialised { .. })), "{:?}", opened.err());
    assert_eq!(Db::init(&other).unwrap().engine(), Engine::Postgres);
    assert!(Db::open(&other).is_ok());
    run(format!("DROP DATABASE {name} WITH (FORCE)"));
}

#[test]
fn concurrent_init_and_open_on_postgres() {
    let Some(server) = pg() else { return };
    let url = server.url.clone();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(
                move || if i % 2 == 0 { Db::init(&url) } else { Db::open(&url).or_else(|_| Db::init(&url)) },
            )
        })
        .collect();
    for t in threads {
        let db = t.join().unwrap().unwrap();
        assert_eq!(db.engine(), Engine::Postgres);
        let version: i64 = db.inner.rt().block_on(async {
            sqlx::query_scalar("SELECT version FROM farm_schema").fetch_one(&db.inner.conn.pool).await.unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
        assert!(
            (db.now_ms().unwrap()
                - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
                .abs()
                < 5_000
        );
    }
}
