//! `farm submit`: a scenario becomes one job per device x backend x strategy (x replicate,
//! interleaved), in plan order.
//! By default each job requires the scenario's device by name; `--on` requirements (`abi=…`,
//! `soc=…`, `device=…`) replace the scenario's devices, each giving one job per backend x
//! strategy for any device that meets it.

use super::{FarmCmdError, Payload, Requirement};
use crate::config::{DeviceProfile, Scenario};
use quadbench_farm::NewJob;

/// Parse `abi=arm64-v8a,soc=SM8650` into a requirement.
pub fn parse_requirement(s: &str) -> Result<Requirement, FarmCmdError> {
    let mut r = Requirement::default();
    let bad = |what: String| FarmCmdError::Input {
        what,
        fix: "write KEY=VALUE pairs separated by commas, keys device, soc or abi (e.g. --on abi=arm64-v8a)".into(),
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| bad(format!("`{part}` in --on has no `=`")))?;
        let slot = match k.trim() {
            "device" => &mut r.device,
            "soc" => &mut r.soc,
            "abi" => &mut r.abi,
            other => return Err(bad(format!("unknown device attribute `{other}` in --on"))),
        };
        *slot = Some(v.trim().to_string());
    }
    if r == Requirement::default() {
        return Err(bad(format!("--on `{s}` requires nothing")));
    }
    Ok(r)
}

/// `device=a,soc=b` as written in keys (the order of the fields, absent ones left out).
pub fn requirement_label(r: &Requirement) -> String {
    [("device", &r.device), ("soc", &r.soc), ("abi", &r.abi)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The jobs of `sc`: on its own devices (loaded to learn their names) when `on` is empty.
pub fn jobs(sc: &Scenario, on: &[Requirement]) -> Result<Vec<NewJob>, FarmCmdError> {
    let targets: Vec<(String, Requirement)> = if on.is_empty() {
        let profiles = sc.devices.iter().map(|p| DeviceProfile::load(p)).collect::<Result<Vec<_>, _>>()?;
        profiles
            .iter()
            .map(|p| (p.name.clone(), Requirement { device: Some(p.name.clone()), ..Default::default() }))
            .collect()
    } else {
        on.iter().map(|r| (requirement_label(r), r.clone())).collect()
    };
    let mut jobs = Vec::new();
    // Replicates interleaved as `plan::runs` does: round k lists every configuration.
    for replicate in 1..=sc.replicates.max(1) {
        for (target, req) in &targets {
            for &backend in &sc.backends {
                for &strategy in &sc.strategies {
                    let payload = Payload {
                        backend: backend.as_str().into(),
                        strategy,
                        precision: sc.precision.clone(),
                        replicate,
                    };
                    jobs.push(NewJob {
                        index: jobs.len() as i64,
                        key: format!("{}/{}/{}/{}/{}", sc.name, target, backend, sc.precision, strategy),
                        requirement: req.clone(),
                        payload: serde_json::to_string(&payload).expect("a payload serialises"),
                    });
                }
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_parse_and_print_back() {
        let r = parse_requirement("abi=x86_64-linux, soc=SM8650").unwrap();
        assert_eq!(r.abi.as_deref(), Some("x86_64-linux"));
        assert_eq!(requirement_label(&r), "soc=SM8650,abi=x86_64-linux");
        for bad in ["", "abi", "cpu=x"] {
            let e = parse_requirement(bad).unwrap_err().to_string();
            assert!(e.contains("hint:"), "{e}");
        }
    }
}
