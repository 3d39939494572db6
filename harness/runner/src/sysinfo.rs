//! What the runner reads about the device it runs on: memory counters of its own process, CPU
//! model, kernel, thermal zones and CPU frequencies. Anything unreadable is `None`, never 0.

use quadbench_protocol::{Conditions, ThermalReading};
use std::fs;

fn status_kib(field: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|k| k * 1024)
}

/// Peak resident set size (VmHWM).
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Current resident set size (VmRSS).
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:")
}

/// Proportional set size from smaps_rollup (shared pages divided among their users).
pub fn pss_bytes() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    s.lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|k| k * 1024)
}

/// Reset the RSS high-water mark (`echo 5 > /proc/self/clear_refs`, Linux >= 4.0).
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn cpu_model() -> Option<String> {
    let s = fs::read_to_string("/proc/cpuinfo").ok()?;
    s.lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Hardware") || l.starts_with("Processor"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

pub fn kernel() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string())
}

pub fn cpu_count() -> Option<usize> {
    std::thread::available_parallelism().ok().map(|n| n.get())
}

/// Thermal zones and per-CPU current frequency, where readable.
pub fn conditions() -> Conditions {
    let mut thermal = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/class/thermal") {
        let mut zones: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("thermal_zone")))
            .collect();
        zones.sort();
        for z in zones {
            let temp = fs::read_to_string(z.join("temp")).ok().and_then(|t| t.trim().parse::<f64>().ok());
            if let Some(t) = temp {
                thermal.push(ThermalReading {
                    zone: z.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    kind: fs::read_to_string(z.join("type")).map(|s| s.trim().to_string()).unwrap_or_default(),
                    temp_c: t / 1000.0,
                });
            }
        }
    }
    let cpus = cpu_count().unwrap_or(0);
    let cpu_freq_khz = (0..cpus)
        .map(|i| {
            fs::read_to_string(format!("/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        })
        .collect();
    Conditions { thermal, cpu_freq_khz }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_counters_are_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = super::rss_bytes().unwrap();
            let hwm = super::peak_rss_bytes().unwrap();
            assert!(rss > 0 && hwm >= rss / 2, "rss {rss} hwm {hwm}");
        }
    }
}
