//! What a scenario runs: one [`RunSpec`] per device x backend x strategy, in a fixed order, each
//! with its run id (file names) and stable key (history, farm), and the runner [`Plan`] message
//! for one of them, with every path relative to the run's directory on the device.

use crate::config::{DeviceProfile, Scenario};
use crate::package::Manifest;
use quadbench_protocol::{Backend, PLAN_SCHEMA, Plan, PlanBackend, PlanInput, PlanRuntime, Storage, Strategy};
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
    /// `<device>-<backend>-<precision>-<strategy>`: names files and remote directories.
    pub id: String,
    /// `<scenario>/<device>/<backend>/<precision>/<strategy>`: the configuration's stable key.
    pub key: String,
}

/// Every run of `sc` on `profiles`, devices outermost, then backends, then strategies.
pub fn runs(sc: &Scenario, profiles: &[DeviceProfile]) -> Vec<RunSpec> {
    let mut out = Vec::new();
    for (device, profile) in profiles.iter().enumerate() {
        for &backend in &sc.backends {
            for &strategy in &sc.strategies {
                out.push(RunSpec {
                    index: out.len() + 1,
                    device,
                    backend,
                    strategy,
                    id: format!("{}-{}-{}-{}", profile.name, backend, sc.precision, strategy),
                    key: format!("{}/{}/{}/{}/{}", sc.name, profile.name, backend, sc.precision, strategy),
                });
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
        for g in task.baselines.values_mut() {
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
