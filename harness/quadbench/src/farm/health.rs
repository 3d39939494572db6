//! A device's fingerprint (what the agent registers) and its health check: the transport opens,
//! a small file goes to the device and comes back byte for byte, and the device's quadbench
//! directory is cleaned. A device that fails it is marked bad and takes no job until an
//! operator resets it (`farm device reset`).

use crate::config::DeviceProfile;
use crate::device::{DeviceInfo, Transport};
use quadbench_farm::DeviceReg;

/// The registration of `profile` on host `host`, with what an open transport reports (soc,
/// abi, model) when it can be opened now.
pub fn fingerprint(profile: &DeviceProfile, host: &str) -> DeviceReg {
    let info = profile.open().map(|t| t.info()).ok();
    let profile_sha256 =
        std::fs::read(&profile.path).map(|b| crate::package::manifest::sha256_bytes(&b)).unwrap_or_default();
    let abi = info.as_ref().and_then(|i| i.abi.clone()).or_else(|| profile.capabilities().abi);
    DeviceReg {
        name: profile.name.clone(),
        host: host.into(),
        transport: profile.transport.name.into(),
        profile_sha256,
        soc: info.as_ref().and_then(|i| i.soc.clone()),
        abi,
        model: info.and_then(|i| i.model),
    }
}

/// Open the device, push a probe file, pull it back and compare, remove it.
pub fn check(profile: &DeviceProfile, scratch: &std::path::Path) -> Result<DeviceInfo, String> {
    let mut t = profile.open().map_err(|e| format!("cannot open: {e}"))?;
    let info = t.info();
    probe(t.as_mut(), scratch).inspect_err(|_| {
        let _ = t.remove_dir("health");
    })?;
    t.remove_dir("health").map_err(|e| format!("cannot clean up: {e}"))?;
    Ok(info)
}

fn probe(t: &mut dyn Transport, scratch: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot write {} on this host: {e}", scratch.display()))?;
    let sent = scratch.join("health-probe");
    let back = scratch.join("health-probe.back");
    let bytes = format!("quadbench health check {}\n", crate::time::now_rfc3339()).into_bytes();
    std::fs::write(&sent, &bytes).map_err(|e| format!("cannot write {}: {e}", sent.display()))?;
    let sha = crate::package::manifest::sha256_bytes(&bytes);
    t.push(&sent, &sha, "health/probe").map_err(|e| format!("push failed: {e}"))?;
    t.pull("health/probe", &back).map_err(|e| format!("pull failed: {e}"))?;
    let got = std::fs::read(&back).map_err(|e| format!("cannot read the pulled probe: {e}"))?;
    let _ = (std::fs::remove_file(&sent), std::fs::remove_file(&back));
    if got != bytes {
        return Err(format!("the probe came back changed ({} bytes sent, {} received)", bytes.len(), got.len()));
    }
    Ok(())
}
