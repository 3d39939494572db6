//! `report.html`: one self-contained page (inline CSS and SVG, images as data URIs, no script,
//! no network) that a person opens in a browser. Every table fits a 1400 px window and a printed
//! landscape page without sideways scrolling (tests/report_html.rs measures it): columns with
//! the same value on every row are stated once above the table, intervals sit under their point,
//! headers wrap.

use super::tables::{self, Table};
use super::{Artefact, Report, ReportError, xml_escape as esc};
use quadbench_schema::results::RunState;
use std::path::Path;

const CSS: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#111}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em}th,td{padding:.3em .5em;border-bottom:1px solid #e4e4e4;vertical-align:top}
th{text-align:left;border-bottom:2px solid #333;background:#fafafa;vertical-align:bottom}td.num{text-align:right;white-space:nowrap}th.num{text-align:right}
.ci{display:block;color:#555;font-size:.88em}td.flag{color:#777;font-style:italic}p.consts{font-size:.85em;color:#444;margin:.4em 0 0}.notes{font-size:.85em;color:#444}.pass{background:#d8f0e6}.fail{background:#f8d9c6;font-weight:bold}
.inconclusive{background:#fdf3c4}.missing{background:#eee}figure{margin:1em 0}figure svg{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#444}.gallery td{text-align:center;font-size:.8em}.gallery img{width:96px;height:96px;image-rendering:auto}
div.wrap{overflow-x:auto;max-width:100%}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;font-size:.8em}.summary{font-size:1.05em}
@media print{@page{size:landscape;margin:10mm}body{max-width:none;margin:0;padding:0;font-size:9pt}div.wrap{overflow:visible}table{font-size:8pt}pre{white-space:pre-wrap}h2,h3,p.consts{break-after:avoid}tr,figure{break-inside:avoid}}";

/// Standard base64 (RFC 4648) with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for ch in data.chunks(3) {
        let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= ch.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn table(full: &Table) -> String {
    let consts = tables::constant_columns(full);
    let t = &tables::without(full, &consts);
    let mut s = String::new();
    if !consts.is_empty() {
        s.push_str(&format!("<p class=\"consts\">Every row: {}.</p>\n", esc(&tables::constants_text(full, &consts))));
    }
    s.push_str(&format!("<div class=\"wrap\"><table id=\"table-{}\">\n<thead><tr>", t.id));
    for c in &t.columns {
        s.push_str(&format!("<th{}>{}</th>", if c.numeric { " class=\"num\"" } else { "" }, esc(&c.label)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        s.push_str("<tr>");
        for (cell, c) in row.iter().zip(&t.columns) {
            let (p, ci) = cell.parts();
            let class = if c.key == "verdict" {
                format!(" class=\"{}\"", p.split_whitespace().next().unwrap_or(""))
            } else if matches!(cell, tables::Cell::Flagged { .. }) {
                " class=\"num flag\"".into()
            } else if c.numeric {
                " class=\"num\"".into()
            } else {
                String::new()
            };
            let ci = if ci.is_empty() { String::new() } else { format!(" <span class=\"ci\">{}</span>", esc(&ci)) };
            s.push_str(&format!("<td{class}>{}{ci}</td>", esc(&p)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></div>\n");
    if t.rows.is_empty() {
        s = String::new();
    }
    if !t.notes.is_empty() {
        s.push_str(&format!(
            "<div class=\"notes\">{}</div>\n",
            t.notes.iter().map(|n| format!("<p>{}</p>", powers(&esc(n)))).collect::<String>()
        ));
    }
    s
}

/// `10^6` in escaped text as `10<sup>6</sup>`, so that no literal caret is shown.
fn powers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('^') {
        let (head, tail) = (&rest[..i], &rest[i + 1..]);
        let exp = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        out.push_str(head);
        if head.ends_with(|c: char| c.is_ascii_digit()) && exp > 0 {
            out.push_str(&format!("<sup>{}</sup>", &tail[..exp]));
            rest = &tail[exp..];
        } else {
            out.push('^');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// `s` as an HTML id fragment: ASCII letters, digits, `-`, `_`, `.`; anything else becomes `_`.
pub(crate) fn anchor(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// An SVG document as an element to put in a page: without the XML declaration.
pub(crate) fn inline_svg(svg: &str) -> &str {
    let svg = svg.trim_start_matches(|c: char| c != '<');
    let svg = if svg.starts_with("<?xml") { svg.split_once("?>").map_or(svg, |x| x.1) } else { svg };
    svg.trim()
}

/// A 96 px thumbnail as a data URI (deterministic re-encode), `None` when unreadable.
fn thumbnail(path: &Path) -> Option<String> {
    // A results directory may come from anywhere: decode under the metrics crate's limits.
    let limits = quadbench_metrics::ImageLimits::from_env().ok()?;
    let img = quadbench_metrics::open_image(path, &limits).ok()?.thumbnail(96, 96).to_rgb8();
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).ok()?;
    Some(format!("data:image/png;base64,{}", base64(&out)))
}

/// Outputs per task (rows) and run (columns) for the first input, beside the input itself.
fn gallery(rep: &Report) -> String {
    let Some(dir) = &rep.dir else { return String::new() };
    let r = &rep.results;
    let runs: Vec<_> = r.runs.iter().filter(|x| !x.outputs.is_empty()).collect();
    let Some(input) = runs.iter().flat_map(|x| x.outputs.iter().map(|o| o.input.clone())).min() else {
        return String::new();
    };
    let mut s = format!(
        "<h2>Outputs</h2>\n<p class=\"notes\">Input <code>{}</code> through every task, per configuration (96 px thumbnails).</p>\n<table class=\"gallery\"><thead><tr><th>task</th><th>input</th>",
        esc(&input)
    );
    for run in &runs {
        s.push_str(&format!("<th>{}</th>", esc(&super::plots::run_label(r, run))));
    }
    s.push_str("</tr></thead><tbody>\n");
    let input_img = thumbnail(&dir.join("inputs").join(format!("{input}.png")));
    let mut any = false;
    for task in &r.package.tasks {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>",
            esc(task),
            input_img.as_ref().map_or("-".into(), |u| format!("<img alt=\"input\" src=\"{u}\">"))
        ));
        for run in &runs {
            let img = run
                .outputs
                .iter()
                .find(|o| &o.task == task && o.input == input)
                .and_then(|o| thumbnail(&dir.join(&o.path)));
            any |= img.is_some();
            s.push_str(&format!(
                "<td>{}</td>",
                img.map_or("-".into(), |u| format!(
                    "<img alt=\"{} {}\" src=\"{u}\">",
                    esc(task),
                    esc(run.strategy.as_str())
                ))
            ));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    if any { s } else { String::new() }
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    let r = &rep.results;
    let title = format!("quadbench report: {}", r.scenario.name);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    s.push_str(&format!(
        "<p class=\"summary\">Package <code>{}</code> (sha256 <code>{}</code>), scenario <code>{}</code>, {} run(s){}. <strong>{}</strong>.</p>\n",
        esc(&r.package.name),
        esc(&r.package.sha256[..12.min(r.package.sha256.len())]),
        esc(&super::scenario_file(r)),
        r.runs.len(),
        if r.complete { "" } else { ", incomplete" },
        esc(&super::markdown::tally(r))
    ));
    for id in ["claims", "ratios", "kpis", "percentiles", "quality", "tensor-quality", "runs"] {
        let Some(t) = rep.table(id) else { continue };
        s.push_str(&format!("<h2 id=\"{id}\">{}</h2>\n", esc(&t.title)));
        if id == "ratios" && !t.rows.is_empty() {
            // One small table per device / backend, as the console prints it.
            for (k, mut part) in tables::split_by(t, &["device", "backend"]) {
                part.id = format!("ratios-{}", k.iter().map(|v| anchor(v)).collect::<Vec<_>>().join("-"));
                s.push_str(&format!("<h3>{}</h3>\n{}", esc(&k.join(" / ")), table(&part)));
            }
        } else {
            s.push_str(&table(t));
        }
    }
    if !rep.plots.is_empty() {
        s.push_str("<h2 id=\"plots\">Plots</h2>\n");
        for p in &rep.plots {
            let svg = inline_svg(&p.svg);
            s.push_str(&format!("<figure id=\"plot-{}\">\n{svg}\n<figcaption>{} (<code>plots/{}.svg</code>, <code>.png</code>)</figcaption>\n</figure>\n", p.name, esc(&p.title), p.name));
        }
    }
    s.push_str(&gallery(rep));
    let warnings: Vec<String> = r
        .runs
        .iter()
        .flat_map(|run| {
            tables::run_warnings(run)
                .into_iter()
                .map(move |w| format!("<li><code>{}</code>: {}</li>", esc(&run.id), esc(&w)))
        })
        .collect();
    if !warnings.is_empty() {
        s.push_str(&format!("<h2 id=\"warnings\">Warnings</h2>\n<ul>\n{}\n</ul>\n", warnings.join("\n")));
    }
    for run in r.runs.iter().filter(|x| x.status != RunState::Ok) {
        s.push_str(&format!(
            "<h2>{} ({})</h2>\n<pre>{}\n{}</pre>\n",
            esc(&run.id),
            esc(&tables::status(run)),
            esc(run.error.as_deref().unwrap_or("")),
            esc(run.stderr_tail.trim_end())
        ));
    }
    s.push_str(&format!(
        "<h2 id=\"statistics\">Statistics</h2>\n<p class=\"notes\">{}</p>\n",
        esc(&super::markdown::statistics(&r.statistics))
    ));
    s.push_str("<p class=\"notes\">Generated by <code>quadbench report</code> from results.json and the raw samples.</p>\n</body>\n</html>\n");
    Ok(vec![Artefact::text("report.html", s)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn powers_become_superscripts() {
        assert_eq!(super::powers("MB = 10^6 bytes"), "MB = 10<sup>6</sup> bytes");
        assert_eq!(super::powers("a^b, 10^, 2^10"), "a^b, 10^, 2<sup>10</sup>");
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
