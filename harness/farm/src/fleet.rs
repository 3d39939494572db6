//! Hosts and devices: heartbeats, device registration (which resets health when a device is
//! no longer the one that was checked) and health.

use sqlx::{AssertSqlSafe, Executor};

use crate::conn::{Conn, Ctx};
use crate::rows::{self, DEVICE_SELECT};
use crate::{DeviceReg, DeviceRow, FarmError, Health, HostRow};

/// Upserts `host` with heartbeat `now`, through `ex`.
pub(crate) async fn touch_host<'e, E: Executor<'e, Database = sqlx::Any>>(
    conn: &Conn,
    ex: E,
    host: &str,
    now: i64,
) -> Result<(), FarmError> {
    sqlx::query(
        "INSERT INTO hosts (name, heartbeat_ms) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
    )
    .bind(host)
    .bind(now)
    .execute(ex)
    .await
    .ctx(conn, "record a host heartbeat")?;
    Ok(())
}

pub(crate) async fn heartbeat(conn: &Conn, host: &str) -> Result<(), FarmError> {
    let now = conn.now(&conn.pool).await?;
    touch_host(conn, &conn.pool, host, now).await
}

pub(crate) async fn hosts(conn: &Conn) -> Result<Vec<HostRow>, FarmError> {
    let what = "list hosts";
    let found = sqlx::query("SELECT name, heartbeat_ms FROM hosts ORDER BY name")
        .fetch_all(&conn.pool)
        .await
        .ctx(conn, what)?;
    found.iter().map(rows::host).collect::<Result<_, _>>().ctx(conn, what)
}

pub(crate) async fn register_device(conn: &Conn, d: &DeviceReg) -> Result<DeviceRow, FarmError> {
    let what = "register a device";
    let mut tx = conn.begin(what).await?;
    let now = conn.now(&mut *tx).await?;
    let select = AssertSqlSafe(format!("{DEVICE_SELECT} WHERE d.name = $1"));
    let found = sqlx::query(select).bind(&d.name).fetch_optional(&mut *tx).await.ctx(conn, what)?;
    let found = found.as_ref().map(rows::device).transpose().ctx(conn, what)?;
    match found {
        Some(old) if old.health == Health::Retired => {
            tx.rollback().await.ctx(conn, what)?;
            return Err(FarmError::Retired { name: d.name.clone() });
        }
        // The same device on the same host: its health (good or bad) still holds.
        Some(old) if old.reg == *d => {
            sqlx::query("UPDATE devices SET updated_ms = $1 WHERE name = $2")
                .bind(now)
                .bind(&d.name)
                .execute(&mut *tx)
                .await
                .ctx(conn, what)?;
        }
        // New, or moved/changed: whatever was checked is not this device any more.
        old => {
            let note = if old.is_some() { "re-registered with another host or fingerprint" } else { "" };
            sqlx::query(
                "INSERT INTO devices (name, host, transport, profile_sha256, soc, abi, model, health, \
                 health_note, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, transport = excluded.transport, \
                 profile_sha256 = excluded.profile_sha256, soc = excluded.soc, abi = excluded.abi, \
                 model = excluded.model, health = excluded.health, health_note = excluded.health_note, \
                 updated_ms = excluded.updated_ms",
            )
            .bind(&d.name)
            .bind(&d.host)
            .bind(&d.transport)
            .bind(&d.profile_sha256)
            .bind(d.soc.as_deref())
            .bind(d.abi.as_deref())
            .bind(d.model.as_deref())
            .bind(Health::Unknown.as_str())
            .bind(note)
            .bind(now)
            .execute(&mut *tx)
            .await
            .ctx(conn, what)?;
        }
    }
    let select = AssertSqlSafe(format!("{DEVICE_SELECT} WHERE d.name = $1"));
    let row = sqlx::query(select).bind(&d.name).fetch_one(&mut *tx).await.ctx(conn, what)?;
    let row = rows::device(&row).ctx(conn, what)?;
    tx.commit().await.ctx(conn, what)?;
    Ok(row)
}

pub(crate) async fn device(conn: &Conn, name: &str) -> Result<Option<DeviceRow>, FarmError> {
    let what = "read a device";
    let select = AssertSqlSafe(format!("{DEVICE_SELECT} WHERE d.name = $1"));
    let found = sqlx::query(select).bind(name).fetch_optional(&conn.pool).await.ctx(conn, what)?;
    found.as_ref().map(rows::device).transpose().ctx(conn, what)
}

pub(crate) async fn devices(conn: &Conn) -> Result<Vec<DeviceRow>, FarmError> {
    let what = "list devices";
    let select = AssertSqlSafe(format!("{DEVICE_SELECT} ORDER BY d.name"));
    let found = sqlx::query(select).fetch_all(&conn.pool).await.ctx(conn, what)?;
    found.iter().map(rows::device).collect::<Result<_, _>>().ctx(conn, what)
}

pub(crate) async fn set_health(conn: &Conn, device: &str, health: Health, note: &str) -> Result<(), FarmError> {
    let what = "set a device's health";
    let now = conn.now(&conn.pool).await?;
    let done = sqlx::query("UPDATE devices SET health = $1, health_note = $2, updated_ms = $3 WHERE name = $4")
        .bind(health.as_str())
        .bind(note)
        .bind(now)
        .bind(device)
        .execute(&conn.pool)
        .await
        .ctx(conn, what)?;
    if done.rows_affected() == 0 {
        return Err(FarmError::Query {
            what: what.to_string(),
            message: format!("no device named `{device}` is registered"),
            retryable: false,
        });
    }
    Ok(())
}
