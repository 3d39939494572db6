//! Storage accounting: which package files a strategy needs on the device, and how their bytes
//! count (foundation, adapters, per-task baselines; per-task constants with each strategy's
//! per-task files).

use super::Manifest;
use super::ort_adapter::OrtAdapterFile;
use quadbench_protocol::{Storage, Strategy};

/// The package files `strategy` pushes (relative to the package) and the storage they make up.
/// `unified-ort-adapter` pushes the derived `.onnx_adapter` files `ort` instead of the package's
/// adapters, and its adapter bytes are theirs.
pub fn strategy_files(m: &Manifest, strategy: Strategy, ort: &[OrtAdapterFile]) -> (Vec<String>, Storage) {
    let size = |rel: &str| m.raw.files.iter().find(|f| f.path == rel).map_or(0, |f| f.bytes);
    let replaced = |stage: &str| m.pipeline.tasks.iter().any(|t| t.baselines.contains_key(stage));
    let mut files = Vec::new();
    let mut s = Storage::default();
    for st in &m.pipeline.stages {
        if strategy.is_separate() && replaced(&st.name) {
            continue;
        }
        files.push(st.graph.clone());
        s.foundation_bytes += size(&st.graph);
    }
    for t in &m.pipeline.tasks {
        if strategy.is_separate() {
            for g in t.baselines.values() {
                files.push(g.clone());
                s.baseline_bytes += size(g);
            }
        } else if strategy == Strategy::UnifiedOrtAdapter {
            s.adapter_bytes += ort.iter().filter(|f| f.task == t.name).map(|f| f.bytes).sum::<u64>();
        } else if !m.pipeline.lora_slots.is_empty() {
            files.push(t.adapter.clone());
            s.adapter_bytes += size(&t.adapter);
        }
        // Per-task constants (`source: task`) go with every strategy and count with its
        // per-task files: the adapters of a unified strategy, the baselines of a separate one.
        for f in t.inputs.values() {
            files.push(f.clone());
            *(if strategy.is_separate() { &mut s.baseline_bytes } else { &mut s.adapter_bytes }) += size(f);
        }
    }
    s.total_bytes = s.foundation_bytes + s.adapter_bytes + s.baseline_bytes;
    (files, s)
}
