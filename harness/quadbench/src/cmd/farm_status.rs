//! `quadbench farm status`: jobs per state, per device and host, leases, device health, and why
//! queued jobs wait (no device meets their requirement, or only bad ones do). `--json` for
//! scripts; `--watch` follows the queue with a progress bar on stderr until it drains.

use super::exit;
use super::farm::counts;
use crate::farm::submit::requirement_label;
use crate::farm::{Db, FarmCmdError};
use quadbench_farm::{DeviceRow, Health, JobRow, JobState};
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn status(url: String, label: Option<String>, json: bool, watch: bool) -> Result<i32, FarmCmdError> {
    let db = Db::open(&url)?;
    if let Some(l) = &label
        && db.submission(l)?.is_none()
    {
        return Err(FarmCmdError::NoSubmission { label: l.clone() });
    }
    if watch {
        follow(&db, label.as_deref())?;
    }
    let jobs = db.jobs(label.as_deref())?;
    let devices = db.devices()?;
    let now = db.now_ms()?;
    if json {
        let v = serde_json::json!({
            "now_ms": now,
            "counts": count_json(&jobs),
            "submissions": db.submissions()?,
            "hosts": db.hosts()?,
            "devices": devices,
            "jobs": jobs,
            "waiting": waiting(&jobs, &devices),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", table(&jobs, &devices, &db.hosts()?, now));
    }
    Ok(exit::OK)
}

fn count_json(jobs: &[JobRow]) -> serde_json::Value {
    let [q, r, d, f] = counts(jobs);
    serde_json::json!({"queued": q, "running": r, "done": d, "failed": f})
}

/// Why each queued job still waits, when no device can take it.
fn waiting(jobs: &[JobRow], devices: &[DeviceRow]) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for j in jobs.iter().filter(|j| j.state == JobState::Queued) {
        let able: Vec<&DeviceRow> = devices.iter().filter(|d| j.requirement.matches(&d.reg)).collect();
        let why = if able.is_empty() {
            format!("no registered device meets {}", requirement_label(&j.requirement))
        } else if able.iter().all(|d| matches!(d.health, Health::Bad | Health::Retired)) {
            format!(
                "every device meeting {} is bad or retired ({})",
                requirement_label(&j.requirement),
                able.iter().map(|d| d.reg.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        } else {
            continue;
        };
        out.insert(j.id, why);
    }
    out
}

fn table(jobs: &[JobRow], devices: &[DeviceRow], hosts: &[quadbench_farm::HostRow], now: i64) -> String {
    let mut s = String::new();
    let [q, r, d, f] = counts(jobs);
    let _ = writeln!(s, "jobs: {q} queued, {r} running, {d} done, {f} failed");
    let mut per_device: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    for j in jobs {
        let key = j.device.clone().unwrap_or_else(|| format!("({})", requirement_label(&j.requirement)));
        let c = per_device.entry(key).or_default();
        let n = counts(std::slice::from_ref(j));
        for i in 0..4 {
            c[i] += n[i];
        }
    }
    let _ =
        writeln!(s, "\n{:<28} {:>7} {:>7} {:>7} {:>7}", "device (last holder)", "queued", "running", "done", "failed");
    for (dev, c) in &per_device {
        let _ = writeln!(s, "{dev:<28} {:>7} {:>7} {:>7} {:>7}", c[0], c[1], c[2], c[3]);
    }
    let _ = writeln!(s, "\n{:<16} {:>16}", "host", "heartbeat");
    for h in hosts {
        let _ = writeln!(s, "{:<16} {:>14.1} s ago", h.name, (now - h.heartbeat_ms) as f64 / 1000.0);
    }
    let _ = writeln!(s, "\n{:<24} {:<16} {:<10} note", "device", "host", "health");
    for d in devices {
        let health = format!("{:?}", d.health).to_lowercase();
        let _ = writeln!(s, "{:<24} {:<16} {:<10} {}", d.reg.name, d.reg.host, health, d.health_note);
    }
    let running: Vec<&JobRow> = jobs.iter().filter(|j| j.state == JobState::Running).collect();
    if !running.is_empty() {
        let _ = writeln!(s, "\nleases:");
        for j in running {
            let left = j.lease_expires_ms.map(|e| (e - now) as f64 / 1000.0).unwrap_or(0.0);
            let state = if left < 0.0 { format!("expired {:.1} s ago", -left) } else { format!("{left:.1} s left") };
            let _ = writeln!(
                s,
                "  job {} {} held by {} on {} (token {}, {state})",
                j.id,
                j.key,
                j.agent.as_deref().unwrap_or("-"),
                j.device.as_deref().unwrap_or("-"),
                j.fencing_token
            );
        }
    }
    for (id, why) in waiting(jobs, devices) {
        let _ = writeln!(s, "waiting: job {id}: {why}");
    }
    for j in jobs.iter().filter(|j| j.state == JobState::Failed) {
        let _ = writeln!(s, "failed: job {} {}: {}", j.id, j.key, j.error.as_deref().unwrap_or("-"));
    }
    s
}

/// A progress bar over finished jobs until none is queued or running.
fn follow(db: &Db, label: Option<&str>) -> Result<(), FarmCmdError> {
    let bar = super::progress::bar(0);
    loop {
        let jobs = db.jobs(label)?;
        let [q, r, d, f] = counts(&jobs);
        bar.set_length(jobs.len() as u64);
        bar.set_position((d + f) as u64);
        bar.set_message(format!("{q} queued, {r} running, {d} done, {f} failed"));
        if q + r == 0 || crate::interrupt::received().is_some() {
            bar.finish_and_clear();
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
