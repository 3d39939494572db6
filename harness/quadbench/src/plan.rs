//! What a scenario runs: one [`RunSpec`] per device x backend x strategy (x replicate), in a
//! fixed order, each with its run id (file names) and stable key (history, farm), and the runner
//! [`Plan`] message for one of them, with every path relative to the run's directory on the
//! device. Replicates (scenario key `replicates`) are interleaved: round k lists every
//! configuration once (A B A B, not A A B B), so drift over time hits every strategy alike.

use crate::config::{DeviceProfile, Scenario};
use crate::package::Manifest;
use quadbench_protocol::{
    Backend, PLAN_SCHEMA, Plan, PlanBackend, PlanInput, PlanRuntime, PlanWorkload, Storage, Strategy, TaskOrder,
};
use std::collections::BTreeMap;

/// One run of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// 1-based position among the scenario's runs.
    pub index: usize,
    /// Index into the scenario's device profiles.
    pub device: usize,
    pub backend: Backend,
    pub strategy: Strategy,
    /// Which run of its configuration, 1-based (1 without replicates).
    pub replicate: usize,
    /// `<device>-<backend>-<precision>-<strategy>`, plus `-r<replicate>` when the scenario has
    /// replicates: names files and remote directories.
    pub id: String,
    /// `<scenario>/<device>/<backend>/<precision>/<strategy>`: the configuration's stable key,
    /// the same for all its replicates.
    pub key: String,
}

/// Every run of `sc` on `profiles`: `sc.replicates` rounds, each listing every configuration
/// with devices outermost, then backends, then strategies (only round `sc.only_replicate` when
/// that is set).
pub fn runs(sc: &Scenario, profiles: &[DeviceProfile]) -> Vec<RunSpec> {
    let mut out = Vec::new();
    for replicate in 1..=sc.replicates.max(1) {
        if sc.only_replicate.is_some_and(|k| k != replicate) {
            continue;
        }
        for (device, profile) in profiles.iter().enumerate() {
            for &backend in &sc.backends {
                for &strategy in &sc.strategies {
                    let id = format!("{}-{}-{}-{}", profile.name, backend, sc.precision, strategy);
                    out.push(RunSpec {
                        index: out.len() + 1,
                        device,
                        backend,
                        strategy,
                        replicate,
                        id: if sc.replicates > 1 { format!("{id}-r{replicate}") } else { id },
                        key: format!("{}/{}/{}/{}/{}", sc.name, profile.name, backend, sc.precision, strategy),
                    });
                }
            }
        }
    }
    out
}

/// Where the plan's files are on the device, relative to the quadbench root.
pub struct RemoteLayout<'a> {
    /// The package directory (`packages/<sha256 prefix>`).
    pub package: &'a str,
    /// ONNX Runtime (`runtime/libonnxruntime.so`).
    pub ort_library: &'a str,
    /// Plugin EPs: registration name -> library path (relative to the root, or absolute when the
    /// device uses the host's files in place).
    pub ep_libraries: BTreeMap<String, String>,
    /// Input tensors (name -> file relative to the run directory).
    pub inputs: Vec<PlanInput>,
}

/// The runner plan for `spec`. The run directory is two levels below the root (`runs/<id>`).
pub fn runner_plan(sc: &Scenario, m: &Manifest, spec: &RunSpec, storage: &Storage, remote: RemoteLayout<'_>) -> Plan {
    let up = "../..";
    let rel = |p: &str| if p.starts_with('/') { p.to_string() } else { format!("{up}/{p}") };
    let mut pipeline = m.pipeline.clone();
    for st in &mut pipeline.stages {
        st.graph = format!("{up}/{}/{}", remote.package, st.graph);
    }
    for task in &mut pipeline.tasks {
        task.adapter = format!("{up}/{}/{}", remote.package, task.adapter);
        for g in task.baselines.values_mut().chain(task.inputs.values_mut()) {
            *g = format!("{up}/{}/{g}", remote.package);
        }
    }
    Plan {
        schema: PLAN_SCHEMA.into(),
        run_id: spec.id.clone(),
        strategy: spec.strategy,
        precision: sc.precision.clone(),
        backend: PlanBackend {
            name: spec.backend.as_str().into(),
            options: sc.backend_options.get(&spec.backend).cloned().unwrap_or_default(),
            require_full_offload: sc.require_full_offload,
            intra_threads: sc.threads,
        },
        runtime: PlanRuntime {
            ort_library: rel(remote.ort_library),
            ep_libraries: remote.ep_libraries.into_iter().map(|(k, v)| (k, rel(&v))).collect(),
        },
        pipeline,
        workload: sc.workload.clone(),
        inputs: remote.inputs,
        output_dir: "outputs".into(),
        heartbeat_ms: 500,
        storage: storage.clone(),
    }
}

/// A plan that runs a package in process on the CPU EP through the runner's `Executor` (no
/// device, no workload limits, default threads): `quadbench infer` and the equivalence tests.
pub fn in_process(m: &Manifest, strategy: Strategy, ort_library: String) -> Plan {
    Plan {
        schema: PLAN_SCHEMA.into(),
        run_id: "infer".into(),
        strategy,
        precision: "as-packaged".into(),
        backend: PlanBackend {
            name: Backend::Cpu.as_str().into(),
            options: BTreeMap::new(),
            require_full_offload: false,
            intra_threads: 0,
        },
        runtime: PlanRuntime { ort_library, ep_libraries: BTreeMap::new() },
        pipeline: m.pipeline.clone(),
        workload: PlanWorkload {
            order: TaskOrder::RoundRobin,
            seed: 0,
            requests_per_visit: 1,
            warmup_visits: 0,
            min_samples: 1,
            min_switches: 0,
            min_duration_ms: 0,
            max_duration_ms: 0,
            capture_timed_outputs: false,
        },
        inputs: Vec::new(),
        output_dir: String::new(),
        heartbeat_ms: 0,
        storage: Storage::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A scenario with two devices and two strategies, `extra` appended.
    fn text(extra: &str) -> String {
        let img = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden/inputs/astronaut.png");
        format!(
            "schema: quadbench.scenario/1\nname: s\npackage: {{reference: {{tasks: 2, width: 32, resolution: 64, steps: 2}}}}\ndevices: [a.yaml, b.yaml]\nbackends: [cpu]\nstrategies: [unified, separate-reload]\ninputs: [{}]\nworkload: {{min_samples: 1, min_switches: 1, min_duration_s: 0, max_duration_s: 1}}\n{extra}",
            img.display()
        )
    }

    fn setup(dir: &Path, extra: &str) -> (Scenario, Vec<DeviceProfile>) {
        let mut profiles = Vec::new();
        for name in ["a", "b"] {
            let p = dir.join(format!("{name}.yaml"));
            std::fs::write(&p, format!("name: {name}\ntransport: local\n")).unwrap();
            profiles.push(DeviceProfile::load(&p).unwrap());
        }
        (Scenario::parse(&dir.join("s.yaml"), &text(extra)).unwrap(), profiles)
    }

    #[test]
    fn replicates_are_interleaved_rounds_sharing_their_key() {
        let d = tempfile::tempdir().unwrap();
        let (sc, profiles) = setup(d.path(), "replicates: 3\n");
        let runs = runs(&sc, &profiles);
        let configs =
            ["a-cpu-fp32-unified", "a-cpu-fp32-separate-reload", "b-cpu-fp32-unified", "b-cpu-fp32-separate-reload"];
        assert_eq!(runs.len(), 3 * configs.len());
        for (i, r) in runs.iter().enumerate() {
            // Round k lists every configuration once, in the usual order: A B A B, not A A B B.
            let (round, config) = (i / configs.len() + 1, configs[i % configs.len()]);
            assert_eq!((r.index, r.replicate, r.id.as_str()), (i + 1, round, format!("{config}-r{round}").as_str()));
            let first = &runs[i % configs.len()];
            assert_eq!(
                (&r.key, r.device, r.backend, r.strategy),
                (&first.key, first.device, first.backend, first.strategy)
            );
        }
        assert_eq!(runs[0].key, "s/a/cpu/fp32/unified");
    }

    #[test]
    fn one_replicate_keeps_the_plain_ids() {
        let d = tempfile::tempdir().unwrap();
        let (sc, profiles) = setup(d.path(), "");
        assert_eq!(sc.replicates, 1);
        let runs = runs(&sc, &profiles);
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a-cpu-fp32-unified", "a-cpu-fp32-separate-reload", "b-cpu-fp32-unified", "b-cpu-fp32-separate-reload"]
        );
        assert!(runs.iter().all(|r| r.replicate == 1));
        for bad in ["replicates: 0\n", "replicates: 101\n"] {
            let e = Scenario::parse(&d.path().join("s.yaml"), &text(bad)).unwrap_err().to_string();
            assert!(e.contains("s.yaml:") && e.contains("replicates") && e.contains("between 1 and 100"), "{e}");
        }
    }
}
