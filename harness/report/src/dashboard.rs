//! The trend dashboard (`quadbench dashboard`): one self-contained `index.html` (inline CSS and
//! SVG, no script, no network) drawn from a [`RegressionReport`], for the farm's morning glance:
//! a header with the verdict counts (regressions first, in red), the latest verdicts worst first
//! with their AI Hub-style ratio buckets, the devices' health, and per series one small trend
//! plot per metric ([`crate::plots::trend`]). Deterministic: the same report gives the same bytes.

use crate::export_v3::key_parts;
use crate::html::{anchor, inline_svg};
use crate::plots::trend::{Scale, changes, max_value, trend_svg};
use crate::{Artefact, ReportError, xml_escape as esc};
use quadbench_schema::history::{Change, DeviceHealth, Finding, RegressionReport, Trend, ratio_bucket};

const CSS: &str = "*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2430;font:14px/1.45 system-ui,-apple-system,'Segoe UI','DejaVu Sans',sans-serif}
header.top{background:#1f2633;color:#fff;padding:18px 32px}
.toprow{max-width:1400px;margin:0 auto;display:flex;justify-content:space-between;align-items:center;gap:20px;flex-wrap:wrap}
header h1{margin:0;font-size:21px;font-weight:650;letter-spacing:.2px}.sub{color:#aeb7c4;font-size:13px;margin-top:3px}
.tiles{display:flex;gap:10px;flex-wrap:wrap}
.tile{background:#2b3445;border-radius:8px;padding:7px 14px 8px;min-width:96px;border-top:4px solid #6b7280}
.tile b{display:block;font-size:24px;line-height:1.15;font-variant-numeric:tabular-nums}.tile span{font-size:12px;color:#cfd6e0}
.tile.regression{border-top-color:#e5484d}.tile.regression.hot{background:#5c1f24}.tile.inconclusive{border-top-color:#f5c542}
.tile.missing{border-top-color:#a78bfa}.tile.not_comparable{border-top-color:#9ca3af}.tile.improvement{border-top-color:#30a46c}
.tile.new{border-top-color:#60a5fa}.tile.unchanged{border-top-color:#6b7280}.tile.bad{border-top-color:#e5484d}
main{max-width:1400px;margin:0 auto;padding:4px 32px 36px}
section.card{background:#fff;border:1px solid #e2e5e9;border-radius:10px;padding:14px 18px 10px;margin-top:18px;box-shadow:0 1px 2px rgba(16,24,40,.05)}
h2{font-size:16px;margin:0 0 10px;font-weight:650}h2 small{font-weight:400;color:#6b7280;font-size:13px;margin-left:8px}
h3{font-size:14px;margin:4px 0 10px;font-weight:600;display:flex;align-items:center;gap:8px;flex-wrap:wrap}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:#5b6472;border-bottom:2px solid #d5d9df;padding:6px 8px;white-space:nowrap;font-size:12px;text-transform:uppercase;letter-spacing:.3px}
td{padding:6px 7px;border-bottom:1px solid #edf0f3;vertical-align:top}tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
tr.regression td{background:#fff6f6}tr.regression td:first-child{box-shadow:inset 4px 0 #e5484d}
tr.bad td{background:#fff6f6}tr.bad td:first-child{box-shadow:inset 4px 0 #e5484d}
td.note,td.test{color:#4b5563;font-size:12.5px}td.test{min-width:140px}td.note{min-width:170px}.wrap{overflow-x:auto}.muted{color:#9aa3af}
a{color:inherit;text-decoration:none;border-bottom:1px dotted #9aa3af}a:hover{color:#0b63c5}
code{font-family:'DejaVu Sans Mono',ui-monospace,Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.b-regression{background:#fde0df;color:#a1161b}.b-inconclusive{background:#fff1bf;color:#7a5600}.b-missing{background:#ede7fb;color:#5b3b9a}
.b-not_comparable{background:#e8eaee;color:#374151}.b-improvement{background:#d6f3e3;color:#11693e}.b-new{background:#dde9fd;color:#1d4ab0}
.b-unchanged{background:#f0f2f4;color:#5b6472}
.h-good{background:#d6f3e3;color:#11693e}.h-bad{background:#e5484d;color:#fff}.h-unknown{background:#fff1bf;color:#7a5600}
.h-retired,.h-other{background:#e8eaee;color:#4b5563}
.bucket{display:inline-block;min-width:62px;text-align:center;padding:1px 7px;border-radius:4px;font-size:12px;font-weight:600;white-space:nowrap}
.k3{background:#c9252c;color:#fff}.k2{background:#f07e74;color:#3d0b0d}.k1{background:#fbd0ca;color:#7d1a1a}.k0{background:#f0f2f4;color:#5b6472}
.kb{background:#cdeedb;color:#11693e}.kn{background:transparent;color:#9aa3af}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px;margin-bottom:10px}
figure{margin:0;border:1px solid #e6e8ec;border-radius:8px;padding:8px 10px 4px}
figure svg{width:100%;height:auto;display:block}
figcaption{display:flex;justify-content:space-between;align-items:baseline;gap:8px;font-size:13px;flex-wrap:wrap}
figcaption .m{font-weight:600}figcaption .v{color:#4b5563;font-variant-numeric:tabular-nums}
.series{border-top:1px solid #edf0f3;padding-top:12px;margin-top:6px}.series:first-of-type{border-top:0;margin-top:0;padding-top:0}
.legend{font-size:12px;color:#5b6472;margin:0 0 12px;display:flex;gap:18px;flex-wrap:wrap}
.sw{display:inline-block;width:18px;height:10px;vertical-align:middle;margin-right:5px;border-radius:2px}
.empty{color:#6b7280;font-style:italic}.small{font-size:12px}.nw{white-space:nowrap}footer{color:#9aa3af;font-size:12px;margin-top:18px}
@media print{body{background:#fff}header.top{background:#fff;color:#000;padding:0}.tile{background:#fff;border:1px solid #ccc}.tile span,.sub{color:#444}
section.card{box-shadow:none;break-inside:avoid}figure{break-inside:avoid}}";

/// Worst first: the order of the verdict table, the header tiles and the series.
const ORDER: [Change; 7] = Change::WORST_FIRST;

/// The dashboard's one artefact, `index.html`.
pub fn render_dashboard(r: &RegressionReport) -> Result<Vec<Artefact>, ReportError> {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n",
        esc(&title(r))
    );
    s.push_str(&header(r));
    s.push_str("<main>\n");
    s.push_str(&verdicts(r));
    s.push_str(&devices(&r.devices));
    s.push_str(&trends(r)?);
    s.push_str(&format!(
        "<footer>Generated by <code>quadbench dashboard</code> from the history at {} ({}).</footer>\n</main>\n</body>\n</html>\n",
        esc(&r.generated_at),
        esc(&r.schema)
    ));
    Ok(vec![Artefact::text("index.html", s)])
}

fn title(r: &RegressionReport) -> String {
    match &r.label {
        Some(l) => format!("quadbench nightly: {l}"),
        None => "quadbench nightly".into(),
    }
}

/// The verdict a finding is shown under: a regression its confirmation rerun did not reproduce
/// is inconclusive.
fn shown(f: &Finding) -> Change {
    if f.change == Change::Regression && f.confirmed == Some(false) { Change::Inconclusive } else { f.change }
}

fn rank(c: Change) -> usize {
    c.severity()
}

/// How far from 1 the worse-ratio is (either way), for ordering within a verdict.
fn size(f: &Finding) -> f64 {
    f.worse_ratio.filter(|w| w.is_finite() && *w > 0.0).map_or(0.0, |w| w.ln().abs())
}

fn label(c: Change) -> &'static str {
    match c {
        Change::NotComparable => "not comparable",
        c => c.as_str(),
    }
}

/// The latest night: the night of the latest-starting point of any trend.
fn latest_night(r: &RegressionReport) -> Option<&str> {
    r.trends.iter().flat_map(|t| t.points.last()).max_by(|a, b| a.started_at.cmp(&b.started_at)).map(|p| &*p.night)
}

fn header(r: &RegressionReport) -> String {
    let series: std::collections::BTreeSet<&str> =
        r.trends.iter().map(|t| &*t.key).chain(r.findings.iter().map(|f| &*f.key)).collect();
    let mut sub = vec![format!("generated {}", esc(&short_time(&r.generated_at)))];
    if let Some(n) = latest_night(r) {
        sub.push(format!("latest night <b>{}</b>", esc(n)));
    }
    sub.push(format!("{} series, {} metrics", series.len(), r.findings.len()));
    if let Some(l) = &r.label {
        sub.push(format!("label {}", esc(l)));
    }
    let mut tiles = String::new();
    for c in ORDER {
        let n = r.findings.iter().filter(|f| shown(f) == c).count();
        if n == 0 && c != Change::Regression {
            continue;
        }
        let hot = if c == Change::Regression && n > 0 { " hot" } else { "" };
        let word = match (c, n) {
            (Change::Regression | Change::Improvement, 1) => c.as_str().to_string(),
            (Change::Regression | Change::Improvement, _) => format!("{}s", c.as_str()),
            _ => label(c).to_string(),
        };
        tiles.push_str(&format!("<div class=\"tile {}{hot}\"><b>{n}</b><span>{word}</span></div>", c.as_str()));
    }
    let bad = r.devices.iter().filter(|d| d.health == "bad").count();
    tiles.push_str(&format!(
        "<div class=\"tile{}\"><b>{bad}/{}</b><span>devices bad</span></div>",
        if bad > 0 { " bad" } else { "" },
        r.devices.len()
    ));
    format!(
        "<header class=\"top\"><div class=\"toprow\"><div><h1>{}</h1><div class=\"sub\">{}</div></div><div class=\"tiles\" id=\"counts\">{tiles}</div></div></header>\n",
        esc(&title(r)),
        sub.join(" · ")
    )
}

/// `2025-06-03T07:12:00Z` as `2025-06-03 07:12 UTC`; anything else as it is.
fn short_time(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 16 && b[10] == b'T' && b[13] == b':' {
        let zone = match &s[16..] {
            z if z.ends_with('Z') || z.ends_with("+00:00") => " UTC",
            _ => "",
        };
        format!("{} {}{zone}", &s[..10], &s[11..16])
    } else {
        s.to_string()
    }
}

/// The trend a finding was computed from.
fn trend_of<'a>(r: &'a RegressionReport, f: &Finding) -> Option<&'a Trend> {
    r.trends.iter().find(|t| t.key == f.key && t.metric == f.metric)
}

fn scale_of(t: Option<&Trend>) -> Scale {
    t.map_or(Scale::of("", 0.0), |t| Scale::of(&t.unit, max_value(t)))
}

/// The nights of a series (any of its metrics), oldest first: the shared x axis of its plots.
fn series_nights(r: &RegressionReport, key: &str) -> Vec<String> {
    let mut first: Vec<(&str, &str)> = Vec::new();
    for p in r.trends.iter().filter(|t| t.key == key).flat_map(|t| &t.points) {
        match first.iter_mut().find(|(n, _)| *n == p.night) {
            Some(e) => e.1 = e.1.min(&p.started_at),
            None => first.push((&p.night, &p.started_at)),
        }
    }
    first.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
    first.into_iter().map(|(n, _)| n.to_string()).collect()
}

/// The bucket's text and colour class: `k3` (>= 2x worse) to `k1`, `k0` (< 1.1x), `kb` (better).
fn bucket(f: &Finding) -> (String, &'static str) {
    let b = if f.bucket.is_empty() { f.worse_ratio.map(ratio_bucket).unwrap_or_default() } else { f.bucket.clone() };
    let class = match b.as_str() {
        "" => "kn",
        b if b.starts_with("better") || b == "fixed failure" => "kb",
        ">= 10x" | "5x" | "2x" | "new failure" => "k3",
        "1.5x" | "1.3x" => "k2",
        "1.2x" | "1.1x" => "k1",
        _ => "k0",
    };
    (b, class)
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "<span class=\"muted\">–</span>".into())
}

fn p_value(p: f64) -> String {
    if p < 0.001 { "&lt; 0.001".into() } else { format!("{p:.3}") }
}

fn verdicts(r: &RegressionReport) -> String {
    let mut fs: Vec<&Finding> = r.findings.iter().collect();
    fs.sort_by(|a, b| {
        rank(shown(a))
            .cmp(&rank(shown(b)))
            .then(size(b).total_cmp(&size(a)))
            .then_with(|| (&a.key, &a.metric).cmp(&(&b.key, &b.metric)))
    });
    let mut s = String::from(
        "<section class=\"card\" id=\"verdicts\"><h2>Latest verdicts<small>worst first; latest night against the nights before it</small></h2>\n",
    );
    if fs.is_empty() {
        s.push_str("<p class=\"empty\">No series in the history yet.</p></section>\n");
        return s;
    }
    s.push_str("<div class=\"wrap\"><table id=\"table-verdicts\"><thead><tr><th>verdict</th><th>series</th><th>metric</th><th class=\"num\">latest</th><th class=\"num\">baseline</th><th class=\"num\">change</th><th>worse ratio</th><th>test (statistic)</th><th class=\"num\">p</th><th>confirmed</th><th>note</th></tr></thead>\n<tbody>\n");
    for f in fs {
        s.push_str(&verdict_row(r, f));
    }
    s.push_str("</tbody></table></div></section>\n");
    s
}

fn verdict_row(r: &RegressionReport, f: &Finding) -> String {
    let c = shown(f);
    let scale = scale_of(trend_of(r, f));
    let (b, bclass) = bucket(f);
    let confirmed = match f.confirmed {
        Some(true) => "yes",
        Some(false) => "no: the rerun passed",
        None => "<span class=\"muted\">–</span>",
    };
    let metric = if trend_of(r, f).is_some() {
        format!("<a href=\"#trend-{}\">{}</a>", anchor(&format!("{}-{}", f.key, f.metric)), esc(&f.metric))
    } else {
        esc(&f.metric)
    };
    format!(
        "<tr class=\"{}\"><td><span class=\"badge b-{}\">{}</span></td><td title=\"{}\">{}</td><td>{metric}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><span class=\"bucket {bclass}\">{}</span></td><td class=\"test\">{}{}</td><td class=\"num\">{}</td><td>{confirmed}</td><td class=\"note\">{}</td></tr>\n",
        c.as_str(),
        c.as_str(),
        label(c),
        esc(&f.key),
        series_cell(&f.key),
        opt(f.latest.map(|v| esc(&scale.show(v)))),
        opt(f.baseline.map(|v| esc(&scale.show(v)))),
        opt(f.effect.map(|e| format!("{:+.1}%", e * 100.0))),
        esc(&b),
        esc(&f.test),
        f.statistic.map_or(String::new(), |v| format!(" <span class=\"nw\">({v:.2})</span>")),
        opt(f.p_value.map(p_value)),
        esc(&f.note)
    )
}

/// A series key as a table cell: device and backend, then precision, strategy and scenario.
fn series_cell(key: &str) -> String {
    match key_parts(key) {
        Some([scenario, device, backend, precision, strategy]) => format!(
            "<span class=\"nw\"><b>{}</b> {}</span><br><span class=\"muted small\">{} · {} · {}</span>",
            esc(device),
            esc(backend),
            esc(precision),
            esc(strategy),
            esc(scenario)
        ),
        None => format!("<code>{}</code>", esc(key)),
    }
}

fn health_rank(h: &str) -> usize {
    ["bad", "unknown", "-", "retired", "good"].iter().position(|x| *x == h).unwrap_or(2)
}

fn health_class(h: &str) -> &'static str {
    match h {
        "good" => "h-good",
        "bad" => "h-bad",
        "unknown" => "h-unknown",
        "retired" => "h-retired",
        _ => "h-other",
    }
}

fn devices(ds: &[DeviceHealth]) -> String {
    let mut s = String::from("<section class=\"card\" id=\"devices\"><h2>Devices</h2>\n");
    if ds.is_empty() {
        s.push_str("<p class=\"empty\">No devices in the history.</p></section>\n");
        return s;
    }
    let mut ds: Vec<&DeviceHealth> = ds.iter().collect();
    ds.sort_by(|a, b| health_rank(&a.health).cmp(&health_rank(&b.health)).then_with(|| a.name.cmp(&b.name)));
    s.push_str("<table id=\"table-devices\"><thead><tr><th>device</th><th>health</th><th>host</th><th>last run</th><th class=\"num\">runs</th><th class=\"num\">failed</th><th>note</th></tr></thead>\n<tbody>\n");
    for d in ds {
        let failed = if d.runs > 0 {
            format!("{} ({:.0}%)", d.failed_runs, 100.0 * d.failed_runs as f64 / d.runs as f64)
        } else {
            d.failed_runs.to_string()
        };
        s.push_str(&format!(
            "<tr class=\"{}\"><td><b>{}</b></td><td><span class=\"badge {}\">{}</span></td><td>{}</td><td title=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{failed}</td><td class=\"note\">{}</td></tr>\n",
            if d.health == "bad" { "bad" } else { "" },
            esc(&d.name),
            health_class(&d.health),
            esc(&d.health),
            if d.host.is_empty() { "<span class=\"muted\">–</span>".into() } else { esc(&d.host) },
            esc(&d.last_run_at),
            esc(&short_time(&d.last_run_at)),
            d.runs,
            esc(&d.note)
        ));
    }
    s.push_str("</tbody></table></section>\n");
    s
}

const LEGEND: &str = "<div class=\"legend\"><span><span class=\"sw\" style=\"background:#0072b2;height:3px\"></span>nightly value (median)</span><span><span class=\"sw\" style=\"background:rgba(0,114,178,.18)\"></span>95% interval</span><span><span class=\"sw\" style=\"border-top:2px dashed #8c8c8c;height:0\"></span>baseline</span><span><span class=\"sw\" style=\"background:#e69f00;width:3px;height:14px\"></span>package changed</span><span><span class=\"sw\" style=\"background:#9c9c9c;width:2px;height:14px\"></span>quadbench revision changed</span><span><span class=\"sw\" style=\"border:3px solid #d55e00;border-radius:50%;width:13px;height:13px\"></span>regression</span><span><span class=\"sw\" style=\"border:3px solid #009e73;border-radius:50%;width:13px;height:13px\"></span>improvement</span></div>\n";

/// One block per series (worst verdict first), one plot per metric.
fn trends(r: &RegressionReport) -> Result<String, ReportError> {
    let mut keys: Vec<&str> = Vec::new();
    for t in &r.trends {
        if !keys.contains(&&*t.key) {
            keys.push(&t.key);
        }
    }
    let worst = |k: &str| r.findings.iter().filter(|f| f.key == k).map(|f| rank(shown(f))).min().unwrap_or(ORDER.len());
    keys.sort_by(|a, b| worst(a).cmp(&worst(b)).then_with(|| a.cmp(b)));
    let mut s = String::from(
        "<section class=\"card\" id=\"trends\"><h2>Trends<small>per series and metric, over nights</small></h2>\n",
    );
    if keys.is_empty() {
        s.push_str("<p class=\"empty\">No nights in the history yet.</p></section>\n");
        return Ok(s);
    }
    s.push_str(LEGEND);
    for key in keys {
        let device = key_parts(key).map_or("", |p| p[1]);
        let health = r.devices.iter().find(|d| d.name == device).map(|d| &*d.health).filter(|h| *h != "good");
        let health = health
            .map(|h| format!("<span class=\"badge {}\">device {}</span>", health_class(h), esc(h)))
            .unwrap_or_default();
        s.push_str(&format!(
            "<div class=\"series\" id=\"series-{}\"><h3><code>{}</code>{health}</h3><div class=\"grid\">\n",
            anchor(key),
            esc(key)
        ));
        let nights = series_nights(r, key);
        for t in r.trends.iter().filter(|t| t.key == key) {
            s.push_str(&figure(r, t, &nights)?);
        }
        s.push_str("</div></div>\n");
    }
    s.push_str("</section>\n");
    Ok(s)
}

fn figure(r: &RegressionReport, t: &Trend, nights: &[String]) -> Result<String, ReportError> {
    let f = r.findings.iter().find(|f| f.key == t.key && f.metric == t.metric);
    let svg = trend_svg(t, f, nights)?;
    let scale = scale_of(Some(t));
    let latest = t.points.last().map(|p| format!("{} on {}", scale.show(p.value), p.night)).unwrap_or_default();
    let badge = f.map_or(String::new(), |f| {
        let c = shown(f);
        format!("<span class=\"badge b-{}\">{}</span> ", c.as_str(), label(c))
    });
    let changed: Vec<String> = (1..t.points.len())
        .flat_map(|i| changes(&t.points, i).into_iter().map(move |c| (i, c)))
        .map(|(i, c)| format!("{} at {}", c, t.points[i].night))
        .collect();
    let title = if changed.is_empty() { String::new() } else { format!(" title=\"{}\"", esc(&changed.join("; "))) };
    Ok(format!(
        "<figure id=\"trend-{}\"{title}><figcaption><span>{badge}<span class=\"m\">{}</span> <span class=\"muted\">({}, {})</span></span><span class=\"v\">{}</span></figcaption>\n{}\n</figure>\n",
        anchor(&format!("{}-{}", t.key, t.metric)),
        esc(&t.metric),
        esc(&t.unit),
        if t.lower_is_better { "lower is better" } else { "higher is better" },
        esc(&latest),
        inline_svg(&svg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::history_demo as demo;

    fn page() -> String {
        let a = render_dashboard(&demo()).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].path, "index.html");
        String::from_utf8(a[0].bytes.clone()).unwrap()
    }

    #[test]
    fn matches_the_snapshot() {
        crate::check_snapshot("index.html", page().as_bytes());
    }

    #[test]
    fn verdicts_are_sorted_worst_first() {
        let html = page();
        let table = html.split("id=\"table-verdicts\"").nth(1).unwrap().split("</table>").next().unwrap();
        let order: Vec<&str> = table.split("<tr class=\"").skip(1).map(|r| r.split('"').next().unwrap()).collect();
        assert_eq!(order, ["regression", "inconclusive", "missing", "improvement", "unchanged"]);
        assert!(table.contains("<span class=\"bucket k2\">1.3x</span>"), "regression bucket");
        assert!(table.contains("<span class=\"bucket kb\">better 1.1x</span>"), "improvement bucket");
        assert!(table.contains("538 ms") && table.contains("411 ms") && table.contains("+31.0%"));
    }

    #[test]
    fn header_counts_and_bad_devices() {
        let html = page();
        assert!(html.contains("<div class=\"tile regression hot\"><b>1</b><span>regression</span></div>"));
        assert!(html.contains("<b>1/2</b><span>devices bad</span>"));
        assert!(html.contains("latest night <b>nightly-0603</b>"));
        let devices = html.split("id=\"table-devices\"").nth(1).unwrap();
        assert!(devices.find("rpi5-a").unwrap() < devices.find("pixel-8").unwrap(), "bad devices first");
        assert!(devices.contains("thermal throttling: 82 °C at idle"));
    }

    #[test]
    fn trends_mark_changes_and_the_regression() {
        let r = demo();
        let t = &r.trends[0];
        assert_eq!(changes(&t.points, 1), ["rev 9f8e7d6c"]);
        assert_eq!(changes(&t.points, 2), ["pkg 7b04d5e1"]);
        let svg = trend_svg(t, Some(&r.findings[0]), &[]).unwrap();
        assert!(svg.contains("pkg 7b04d5e1") && svg.contains("rev 9f8e7d6c"));
        assert!(svg.contains("nightly-0601"), "night labels on the x axis");
        // The latest point ringed in vermillion (213, 94, 0).
        assert!(svg.to_uppercase().contains("#D55E00"), "regression marker");
        assert_eq!(svg, trend_svg(t, Some(&r.findings[0]), &[]).unwrap(), "deterministic");
        // On the series' axis a night without a value is a gap, and a missing latest is said.
        let nights = series_nights(&r, &r.trends[3].key);
        assert_eq!(nights, ["nightly-0601", "nightly-0602", "nightly-0603"]);
        let svg = trend_svg(&r.trends[3], Some(&r.findings[3]), &nights).unwrap();
        assert!(svg.contains("nightly-0603") && svg.contains("no value"));
        let html = page();
        assert_eq!(html.matches("<svg").count(), r.trends.len());
        assert!(!html.contains("<?xml"));
        assert!(
            !html.contains("http://")
                || html.matches("http://").count() == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
    }

    #[test]
    fn text_is_escaped_and_empty_reports_render() {
        let mut r = demo();
        r.findings[0].note = "<script>alert(1)</script> & co".into();
        r.devices[0].name = "dev\"<b>".into();
        let html = String::from_utf8(render_dashboard(&r).unwrap()[0].bytes.clone()).unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        assert!(html.contains("dev&quot;&lt;b&gt;"));
        r.findings.clear();
        r.trends.clear();
        r.devices.clear();
        let html = String::from_utf8(render_dashboard(&r).unwrap()[0].bytes.clone()).unwrap();
        assert!(html.contains("No series in the history yet."));
        assert!(html.contains("<b>0</b><span>regressions</span>"));
    }
}
