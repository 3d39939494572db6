//! Ahead-of-time compilation into EP-context models (`ep.context_enable`): each graph the
//! strategy uses becomes `X_ctx.onnx` plus the EP's context binary, so "separate binaries" are
//! literally N compiled binaries and "unified" is one. Compile time, artefact bytes and node
//! placement (read from the compiled model) are recorded; the sessions then load the compiled
//! models, and storage is measured on them.

use crate::backend::{self, Backend};
use ort::environment::Environment;
use ort::session::Session;
use quadbench_protocol::{CompiledGraph, Placement, Plan, Storage};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
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

fn context_name(graph: &str) -> String {
    format!("{}_ctx.onnx", graph.strip_suffix(".onnx").unwrap_or(graph))
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

/// Placement and bytes of a compiled model: EPContext nodes are the compiled partitions, their
/// `ep_cache_context` attribute names the context binary (embed mode 0).
fn inspect(ctx: &Path, source: &Path, ep: &str, fallback_disabled: bool) -> Result<Inspected, String> {
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
                bytes += file_len(&bin);
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
    for (graph, _) in graphs(plan) {
        if map.contains_key(&graph) {
            continue;
        }
        let ctx_rel = context_name(&graph);
        let (src, ctx) = (dir.join(&graph), dir.join(&ctx_rel));
        // A stale artefact would make ORT refuse to write; compile time must be measured fresh.
        let _ = std::fs::remove_file(&ctx);
        let t0 = Instant::now();
        let mut sb = Session::builder(env).map_err(|e| e.to_string())?;
        if plan.backend.require_full_offload {
            sb = sb.with_config_entry("session.disable_cpu_ep_fallback", "1").map_err(|e| e.to_string())?;
        }
        for (k, v) in [("ep.context_enable", "1"), ("ep.context_embed_mode", "0")] {
            sb = sb.with_config_entry(k, v).map_err(|e| e.to_string())?;
        }
        sb = sb.with_config_entry("ep.context_file_path", ctx.to_string_lossy()).map_err(|e| e.to_string())?;
        let mut sb = backend::configure(sb, env, &plan.backend).map_err(|e| e.to_string())?;
        let session = sb
            .commit_from_file(&src)
            .map_err(|e| unsupported_ops_hint(&format!("cannot compile {}: {e}", src.display())))?;
        drop(session);
        let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
        let i = inspect(&ctx, &src, b.execution_provider(), plan.backend.require_full_offload)?;
        let (target_soc, target_arch) = i.target.map_or((None, None), |(s, a)| (Some(s), Some(a)));
        records.push(CompiledGraph {
            graph: graph.clone(),
            context_graph: ctx_rel.clone(),
            compile_ms,
            bytes: i.bytes,
            placement: i.placement,
            target_soc,
            target_arch,
            artefacts_sha256: i.sha256,
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
    #[test]
    fn the_recorded_soc_and_arch_are_read_from_the_prepare_options() {
        let bin = b"\x00\x01op=2;arch=99;soc_type=SM8650;arch=75;num_nsps=1;soc_type=X;arch=1;";
        assert_eq!(super::recorded_target(bin), Some(("SM8650".into(), "75".into())));
        assert_eq!(super::recorded_target(b"soc_type=UNKNOWN_SDM;arch=68;"), Some(("UNKNOWN_SDM".into(), "68".into())));
        assert_eq!(super::recorded_target(b"soc_type=SM8650;num=1"), None);
        assert_eq!(super::recorded_target(b"nothing here"), None);
    }
}
