//! The bundle's human report, `report.md` and `report.html` (self-contained, no script): the
//! verdict, the criteria table with links to the evidence, each criterion's findings, and for
//! a compile matrix the per-SoC table (compile time, binary size, placement, quality).

use super::bundle::Predicate;
use super::criteria::{CriterionVerdict, fallback_nodes};
use super::variant::Evidence;
use crate::results::{RunState, Verdict};
use quadbench_protocol::sample_key;

/// One row of the per-SoC table.
pub struct SocRow {
    pub soc: String,
    pub strategy: String,
    pub status: String,
    pub graphs: usize,
    pub compile_ms: f64,
    pub compiled_bytes: u64,
    pub partitions: u64,
    pub fallback_nodes: u64,
    pub worst_psnr_db: Option<f64>,
    pub worst_ssim: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    /// SoC and arch the binaries record (distinct values, joined).
    pub compiled_for: String,
    /// First 12 hex digits of the sha256 over every artefact's name and sha256: equal digests,
    /// byte-identical binaries.
    pub binaries_digest: String,
}

/// The per-SoC rows: one per run of each base variant compiled for a SoC.
pub fn soc_rows(evidence: &[Evidence]) -> Vec<SocRow> {
    let mut rows = Vec::new();
    for ev in evidence.iter().filter(|e| e.variant.soc.is_some() && e.variant.purpose == super::variant::Purpose::Base)
    {
        for r in &ev.results.runs {
            let worst = |f: fn(&crate::results::Scores) -> Option<f64>| {
                r.quality
                    .values()
                    .flat_map(|q| q.inputs.values())
                    .filter_map(|s| if s.identical { None } else { f(s) })
                    .reduce(f64::min)
            };
            rows.push(SocRow {
                soc: ev.variant.soc.clone().unwrap_or_default(),
                strategy: format!(
                    "{}{}",
                    r.strategy.as_str(),
                    if r.replicate > 1 { format!(" r{}", r.replicate) } else { String::new() }
                ),
                status: match r.status {
                    RunState::Ok => "ok".into(),
                    _ => {
                        format!("{:?}: {}", r.status, r.error.clone().unwrap_or_default().lines().next().unwrap_or(""))
                            .to_lowercase()
                    }
                },
                graphs: r.compiled.len(),
                compile_ms: r.compiled.iter().map(|g| g.compile_ms).sum(),
                compiled_bytes: r.compiled.iter().map(|g| g.bytes).sum(),
                partitions: r.compiled.iter().map(|g| g.placement.partitions).sum(),
                fallback_nodes: r.compiled.iter().map(fallback_nodes).sum(),
                worst_psnr_db: worst(|s| s.psnr_db),
                worst_ssim: worst(|s| s.ssim),
                e2e_p50_ms: r.latency_ms.get(sample_key::E2E).map(|s| s.p50),
                compiled_for: compiled_for(&r.compiled),
                binaries_digest: binaries_digest(&r.compiled),
            });
        }
    }
    rows
}

fn binaries_digest(graphs: &[quadbench_protocol::CompiledGraph]) -> String {
    let lines: String =
        graphs.iter().flat_map(|g| g.artefacts_sha256.iter()).map(|(n, h)| format!("{n}={h}\n")).collect();
    if lines.is_empty() {
        "-".into()
    } else {
        crate::package::manifest::sha256_bytes(lines.as_bytes())[..12].to_string()
    }
}

fn compiled_for(graphs: &[quadbench_protocol::CompiledGraph]) -> String {
    let mut v: Vec<String> = graphs
        .iter()
        .map(|g| format!("{} v{}", g.target_soc.as_deref().unwrap_or("?"), g.target_arch.as_deref().unwrap_or("?")))
        .collect();
    v.sort();
    v.dedup();
    if v.is_empty() { "-".into() } else { v.join(", ") }
}

fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.d$}"))
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Missing => "missing",
    }
}

const SIMULATOR_NOTE: &str = "On x86_64 the Hexagon HTP is a simulator: its latencies say nothing about a phone. Compile time, binary size, node placement and output quality do.";

/// Markdown report.
pub fn markdown(p: &Predicate, profile_description: &str, evidence: &[Evidence]) -> String {
    let mut s = format!(
        "# Qualification: {}\n\n{}\n\n**{}**: {} of {} criteria pass; every required one {}.\n\n- profile: [`{}`]({}) sha256 `{}`\n- quadbench {} (revision `{}`{}), created {}\n- toolchain: {}\n- evidence is signed: `attestation.dsse.json` (in-toto Statement v1 in a DSSE envelope); check it with `quadbench verify BUNDLE --public-key KEY.pub`\n\n## Criteria\n\n| id | kind | required | threshold | value | verdict | evidence |\n|---|---|---|---:|---:|---|---|\n",
        p.profile.name,
        profile_description,
        if p.qualified { "QUALIFIED" } else { "NOT QUALIFIED" },
        p.verdicts.iter().filter(|v| v.verdict == Verdict::Pass).count(),
        p.verdicts.len(),
        if p.qualified { "passes" } else { "does not pass" },
        p.profile.path,
        p.profile.path,
        p.profile.sha256,
        p.toolchain.get("quadbench").map_or("", String::as_str),
        p.quadbench_revision,
        if p.dirty_tree { ", dirty tree" } else { "" },
        p.created_at,
        p.toolchain.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join("; "),
    );
    for v in &p.verdicts {
        s.push_str(&format!(
            "| [{}](#{}) | {} | {} | {} | {} | {} | {} |\n",
            v.id,
            v.id,
            v.kind.name(),
            if v.required { "yes" } else { "no" },
            v.threshold,
            opt(v.value, 4),
            verdict_word(v.verdict),
            evidence_links_md(v)
        ));
    }
    s.push_str("\n## Findings\n");
    for v in &p.verdicts {
        s.push_str(&format!("\n### {}\n\n", v.id));
        for d in &v.detail {
            s.push_str(&format!("- {d}\n"));
        }
    }
    let rows = soc_rows(evidence);
    if !rows.is_empty() {
        s.push_str(&format!("\n## Per SoC\n\n{SIMULATOR_NOTE}\n\n| SoC | compiled for | strategy | status | graphs | compile ms | compiled bytes | partitions | fallback nodes | binaries digest | worst PSNR dB | worst SSIM | e2e p50 ms (simulator) |\n|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n"));
        for r in &rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | `{}` | {} | {} | {} |\n",
                r.soc,
                r.compiled_for,
                r.strategy,
                r.status.replace('|', "/"),
                r.graphs,
                r.compile_ms,
                r.compiled_bytes,
                r.partitions,
                r.fallback_nodes,
                r.binaries_digest,
                opt(r.worst_psnr_db, 2),
                opt(r.worst_ssim, 4),
                opt(r.e2e_p50_ms, 1)
            ));
        }
    }
    s.push_str("\n## Results directories\n\n");
    for ev in evidence {
        s.push_str(&format!("- [`{}`]({}/results.json): {}\n", ev.variant.name, ev.variant.dir, ev.variant.change));
    }
    s
}

fn evidence_links_md(v: &CriterionVerdict) -> String {
    let mut l: Vec<String> = v.evidence.iter().take(3).map(|e| format!("[{}]({e})", short(e))).collect();
    if v.evidence.len() > 3 {
        l.push(format!("+{} more", v.evidence.len() - 3));
    }
    l.join(", ")
}

fn short(e: &str) -> &str {
    e.rsplit('/').next().unwrap_or(e)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// HTML report: the same content, self-contained.
pub fn html(p: &Predicate, profile_description: &str, evidence: &[Evidence]) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Qualification: {name}</title>\n<style>body{{font-family:sans-serif;max-width:78em;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:.25em .5em;text-align:left}}.pass{{color:#070}}.fail{{color:#b00;font-weight:bold}}.other{{color:#a60}}</style></head><body>\n<h1>Qualification: {name}</h1>\n<p>{desc}</p>\n<p><strong class=\"{cls}\">{q}</strong>. Profile <a href=\"{path}\">{path}</a> (sha256 <code>{sha}</code>); quadbench revision <code>{rev}</code>{dirty}; created {at}. Signed: <code>attestation.dsse.json</code>; check with <code>quadbench verify BUNDLE --public-key KEY.pub</code>.</p>\n<h2>Criteria</h2>\n<table><tr><th>id</th><th>kind</th><th>required</th><th>threshold</th><th>value</th><th>verdict</th><th>evidence</th></tr>\n",
        name = esc(&p.profile.name),
        desc = esc(profile_description),
        cls = if p.qualified { "pass" } else { "fail" },
        q = if p.qualified { "QUALIFIED" } else { "NOT QUALIFIED" },
        path = esc(&p.profile.path),
        sha = p.profile.sha256,
        rev = esc(&p.quadbench_revision),
        dirty = if p.dirty_tree { " (dirty tree)" } else { "" },
        at = esc(&p.created_at),
    );
    for v in &p.verdicts {
        let cls = match v.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            _ => "other",
        };
        let links: Vec<String> =
            v.evidence.iter().take(3).map(|e| format!("<a href=\"{}\">{}</a>", esc(e), esc(short(e)))).collect();
        let more = if v.evidence.len() > 3 { format!(" +{} more", v.evidence.len() - 3) } else { String::new() };
        s.push_str(&format!(
            "<tr><td><a href=\"#{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{}</td><td>{}{more}</td></tr>\n",
            v.kind.name(),
            if v.required { "yes" } else { "no" },
            v.threshold,
            opt(v.value, 4),
            verdict_word(v.verdict),
            links.join(", "),
            id = esc(&v.id),
        ));
    }
    s.push_str("</table>\n<h2>Findings</h2>\n");
    for v in &p.verdicts {
        s.push_str(&format!("<h3 id=\"{0}\">{0}</h3><ul>", esc(&v.id)));
        for d in &v.detail {
            s.push_str(&format!("<li>{}</li>", esc(d)));
        }
        s.push_str("</ul>\n");
    }
    s.push_str(&html_soc_table(&soc_rows(evidence)));
    s.push_str("<h2>Results directories</h2><ul>\n");
    for ev in evidence {
        s.push_str(&format!(
            "<li><a href=\"{0}/results.json\">{1}</a>: {2}</li>\n",
            esc(&ev.variant.dir),
            esc(&ev.variant.name),
            esc(&ev.variant.change)
        ));
    }
    s.push_str("</ul></body></html>\n");
    s
}

/// The per-SoC table as HTML (empty without a compile matrix).
fn html_soc_table(rows: &[SocRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    s.push_str(&format!("<h2>Per SoC</h2>\n<p>{SIMULATOR_NOTE}</p>\n<table><tr><th>SoC</th><th>compiled for</th><th>strategy</th><th>status</th><th>graphs</th><th>compile ms</th><th>compiled bytes</th><th>partitions</th><th>fallback nodes</th><th>binaries digest</th><th>worst PSNR dB</th><th>worst SSIM</th><th>e2e p50 ms (simulator)</th></tr>\n"));
    for r in rows {
        s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&r.soc),
                esc(&r.compiled_for),
                esc(&r.strategy),
                esc(&r.status),
                r.graphs,
                r.compile_ms,
                r.compiled_bytes,
                r.partitions,
                r.fallback_nodes,
                r.binaries_digest,
                opt(r.worst_psnr_db, 2),
                opt(r.worst_ssim, 4),
                opt(r.e2e_p50_ms, 1)
            ));
    }
    s.push_str("</table>\n");
    s
}
