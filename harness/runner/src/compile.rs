//! Ahead-of-time compilation into EP-context models (`ep.context_enable`): each graph the
//! strategy uses becomes `X_ctx.onnx` plus the EP's context binary, so "separate binaries" are
//! literally N compiled binaries and "unified" is one. Compile time, artefact bytes and node
//! placement (read from the compiled model) are recorded; the sessions then load the compiled
//! models, and storage is measured on them. `separate-shared-weights` compiles all of them as
//! one weight-sharing group (`ep.share_ep_contexts=1` on each session, `ep.stop_share_ep_contexts=1`
//! on the last): the QNN EP then writes one context binary holding every graph, identical
//! weight tensors stored once, and every `_ctx.onnx` points to it.

use crate::backend::{self, Backend};
use ort::environment::Environment;
use ort::session::Session;
use quadbench_protocol::{CompiledGraph, Placement, Plan, Storage, Strategy};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Graphs the plan's strategy loads: (graph, is a per-task baseline).
fn graphs(plan: &Plan) -> Vec<(String, bool)> {
    let replaced = |stage: &str| {
        plan.strategy.is_separate() && plan.pipeline.tasks.iter().any(|t| t.baselines.contains_key(stage))
    };
    let mut out: Vec<(String, bool)> =
        plan.pipeline.stages.iter().filter(|s| !replaced(&s.name)).map(|s| (s.graph.clone(), false)).collect();
    if plan.strategy.is_separate() {
        out.extend(plan.pipeline.tasks.iter().flat_map(|t| t.baselines.values().map(|g| (g.clone(), true))));
    }
    out
}

/// Where graph's EP-context model goes. A sharing group's models all go in one folder,
/// `shared-weights/` beside the package's files: the QNN EP writes the one context binary next to
/// the last model compiled (named after the first), and every model refers to it by file name
/// alone, relative to itself.
fn context_name(strategy: Strategy, graph: &str) -> String {
    let stem = graph.strip_suffix(".onnx").unwrap_or(graph);
    if strategy != Strategy::SeparateSharedWeights {
        return format!("{stem}_ctx.onnx");
    }
    let in_package = crate::pipeline::package_file(stem);
    let package_dir = &stem[..stem.len() - in_package.len()];
    format!("{package_dir}shared-weights/{}_ctx.onnx", in_package.replace('/', "__"))
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The target a context binary records: QNN writes its prepare options into the binary as text,
/// `...;soc_type=SM8650;arch=75;...` (`UNKNOWN_SDM` and the default arch when the EP did not
/// recognise `soc_model`). (soc, arch) of the first occurrence.
pub fn recorded_target(bin: &[u8]) -> Option<(String, String)> {
    let key = b"soc_type=";
    let i = bin.windows(key.len()).position(|w| w == key)? + key.len();
    let field = |from: usize| -> Option<(String, usize)> {
        let len = bin[from..].iter().take(64).position(|c| *c == b';')?;
        let v = std::str::from_utf8(&bin[from..from + len]).ok()?;
        v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then(|| (v.to_string(), from + len + 1))
    };
    let (soc, next) = field(i)?;
    let arch_key = b"arch=";
    let (arch, _) = if bin[next..].starts_with(arch_key) { field(next + arch_key.len())? } else { return None };
    Some((soc, arch))
}

/// What [`inspect`] reads from a compiled model.
struct Inspected {
    placement: Placement,
    bytes: u64,
    target: Option<(String, String)>,
    sha256: BTreeMap<String, String>,
}

fn sha256_of(p: &Path) -> Option<(String, String)> {
    use sha2::Digest;
    let b = std::fs::read(p).ok()?;
    let name = p.file_name()?.to_string_lossy().into_owned();
    Some((name, sha2::Sha256::digest(&b).iter().map(|x| format!("{x:02x}")).collect()))
}

/// Session config of graph `i` of `n` in a weight-sharing group (empty when not sharing).
pub fn share_config(strategy: Strategy, i: usize, n: usize) -> Vec<(&'static str, &'static str)> {
    if strategy != Strategy::SeparateSharedWeights {
        return Vec::new();
    }
    let mut c = vec![("ep.share_ep_contexts", "1")];
    if i + 1 == n {
        c.push(("ep.stop_share_ep_contexts", "1"));
    }
    c
}

/// Placement and bytes of a compiled model: EPContext nodes are the compiled partitions, their
/// `ep_cache_context` attribute names the context binary (embed mode 0). A binary already in
/// `counted` (shared with an earlier graph) adds no bytes.
fn inspect(
    ctx: &Path,
    source: &Path,
    ep: &str,
    fallback_disabled: bool,
    counted: &mut HashSet<PathBuf>,
) -> Result<Inspected, String> {
    let m = quadbench_onnx::read_model(ctx).map_err(|e| e.to_string())?;
    let src = quadbench_onnx::read_model(source).map_err(|e| e.to_string())?;
    let g = m.graph.as_ref().ok_or("compiled model has no graph")?;
    let mut p = Placement {
        execution_provider: ep.into(),
        source_nodes: src.graph.map_or(0, |g| g.node.len() as u64),
        fallback_disabled,
        ..Default::default()
    };
    let mut bytes = file_len(ctx);
    let mut target = None;
    let mut sha256: BTreeMap<String, String> = sha256_of(ctx).into_iter().collect();
    for n in &g.node {
        if n.op_type == "EPContext" {
            p.partitions += 1;
            if let Some(a) = n.attribute.iter().find(|a| a.name == "ep_cache_context") {
                let bin = ctx.parent().unwrap_or(Path::new(".")).join(String::from_utf8_lossy(&a.s).as_ref());
                if counted.insert(bin.clone()) {
                    bytes += file_len(&bin);
                }
                if target.is_none() {
                    target = std::fs::read(&bin).ok().and_then(|b| recorded_target(&b));
                }
                sha256.extend(sha256_of(&bin));
            }
        } else {
            *p.cpu_nodes.entry(n.op_type.clone()).or_insert(0) += 1;
        }
    }
    Ok(Inspected { placement: p, bytes, target, sha256 })
}

/// Compile every graph of the plan. Returns the records and graph -> compiled graph.
pub fn compile_all(
    plan: &Plan,
    dir: &Path,
    env: &Environment,
    b: &Backend,
) -> Result<(Vec<CompiledGraph>, HashMap<String, String>), String> {
    let mut records = Vec::new();
    let mut map = HashMap::new();
    let mut counted = HashSet::new();
    let mut unique: Vec<(String, bool)> = Vec::new();
    for (g, baseline) in graphs(plan) {
        if !unique.iter().any(|(u, _)| *u == g) {
            unique.push((g, baseline));
        }
    }
    let n = unique.len();
    let mut done = Vec::with_capacity(n);
    for (i, (graph, baseline)) in unique.into_iter().enumerate() {
        let ctx_rel = context_name(plan.strategy, &graph);
        let (src, ctx) = (dir.join(&graph), dir.join(&ctx_rel));
        if let Some(parent) = ctx.parent() {
            if i == 0 && plan.strategy == Strategy::SeparateSharedWeights {
                // A stale shared binary from an earlier run must not be counted or loaded.
                let _ = std::fs::remove_dir_all(parent);
            }
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // A stale artefact would make ORT refuse to write; compile time must be measured fresh.
        let _ = std::fs::remove_file(&ctx);
        let t0 = Instant::now();
        let mut sb = Session::builder(env).map_err(|e| e.to_string())?;
        if plan.backend.require_full_offload {
            sb = sb.with_config_entry("session.disable_cpu_ep_fallback", "1").map_err(|e| e.to_string())?;
        }
        for (k, v) in [("ep.context_enable", "1"), ("ep.context_embed_mode", "0")].into_iter().chain(share_config(
            plan.strategy,
            i,
            n,
        )) {
            sb = sb.with_config_entry(k, v).map_err(|e| e.to_string())?;
        }
        sb = sb.with_config_entry("ep.context_file_path", ctx.to_string_lossy()).map_err(|e| e.to_string())?;
        let mut sb = backend::configure(sb, env, &plan.backend).map_err(|e| e.to_string())?;
        let session = sb
            .commit_from_file(&src)
            .map_err(|e| unsupported_ops_hint(&format!("cannot compile {}: {e}", src.display())))?;
        drop(session);
        let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
        done.push((graph, baseline, ctx_rel, src, ctx, compile_ms));
    }
    // Inspected once all are written: a sharing group's binary appears with its last graph.
    // Baselines first, so that a binary shared by all graphs counts as baseline bytes.
    let mut order: Vec<usize> = (0..done.len()).collect();
    order.sort_by_key(|&i| !done[i].1);
    let mut inspected = HashMap::new();
    for i in order {
        let (_, _, _, src, ctx, _) = &done[i];
        let r = inspect(ctx, src, b.execution_provider(), plan.backend.require_full_offload, &mut counted)?;
        inspected.insert(i, r);
    }
    for (i, (graph, _, ctx_rel, _, _, compile_ms)) in done.into_iter().enumerate() {
        let r = inspected.remove(&i).ok_or("internal: compiled graph not inspected")?;
        let (target_soc, target_arch) = r.target.map_or((None, None), |(s, a)| (Some(s), Some(a)));
        records.push(CompiledGraph {
            graph: graph.clone(),
            context_graph: ctx_rel.clone(),
            compile_ms,
            bytes: r.bytes,
            placement: r.placement,
            target_soc,
            target_arch,
            artefacts_sha256: r.sha256,
        });
        map.insert(graph, ctx_rel);
    }
    Ok((records, map))
}

/// Storage of the strategy measured on the compiled artefacts (adapters as pushed).
pub fn compiled_storage(plan: &Plan, records: &[CompiledGraph]) -> Storage {
    let bytes: BTreeMap<&str, u64> = records.iter().map(|r| (r.graph.as_str(), r.bytes)).collect();
    let mut s = Storage { adapter_bytes: plan.storage.adapter_bytes, ..Default::default() };
    for (g, baseline) in graphs(plan) {
        let b = bytes.get(g.as_str()).copied().unwrap_or(0);
        if baseline { s.baseline_bytes += b } else { s.foundation_bytes += b }
    }
    s.total_bytes = s.foundation_bytes + s.adapter_bytes + s.baseline_bytes;
    s
}

/// ORT's and the EP's messages say what failed, not what to do; add it. With
/// `session.disable_cpu_ep_fallback=1` a node the EP rejects fails here (ORT names it) instead
/// of silently running on the CPU EP; an FP32 graph on HTP fails at graph finalisation.
pub fn unsupported_ops_hint(msg: &str) -> String {
    format!(
        "{msg}\n  hint: the accelerator needs QDQ graphs its EP supports entirely (HTP: uint8/uint16 activations, int8 weights): quantize with `quadbench package quantize`, or set require_full_offload: false to let unsupported operators fall back to the CPU EP"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharing_group_compiles_into_one_folder_and_stops_on_its_last_graph() {
        let g = "../../packages/0123/baselines/blur/denoiser.onnx";
        assert_eq!(context_name(Strategy::SeparateReload, g), "../../packages/0123/baselines/blur/denoiser_ctx.onnx");
        assert_eq!(
            context_name(Strategy::SeparateSharedWeights, g),
            "../../packages/0123/shared-weights/baselines__blur__denoiser_ctx.onnx"
        );
        assert_eq!(
            context_name(Strategy::SeparateSharedWeights, "../../packages/0123/encoder.onnx"),
            "../../packages/0123/shared-weights/encoder_ctx.onnx"
        );
        assert!(share_config(Strategy::SeparateResident, 2, 3).is_empty());
        assert_eq!(share_config(Strategy::SeparateSharedWeights, 0, 3), [("ep.share_ep_contexts", "1")]);
        assert_eq!(
            share_config(Strategy::SeparateSharedWeights, 2, 3),
            [("ep.share_ep_contexts", "1"), ("ep.stop_share_ep_contexts", "1")]
        );
    }

    #[test]
    fn the_recorded_soc_and_arch_are_read_from_the_prepare_options() {
        let bin = b"\x00\x01op=2;arch=99;soc_type=SM8650;arch=75;num_nsps=1;soc_type=X;arch=1;";
        assert_eq!(recorded_target(bin), Some(("SM8650".into(), "75".into())));
        assert_eq!(recorded_target(b"soc_type=UNKNOWN_SDM;arch=68;"), Some(("UNKNOWN_SDM".into(), "68".into())));
        assert_eq!(recorded_target(b"soc_type=SM8650;num=1"), None);
        assert_eq!(recorded_target(b"nothing here"), None);
    }
}
