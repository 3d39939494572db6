//! One series' metric over nights, the dashboard's small multiple: the nightly value as a line
//! (x: night index, labelled with the night), its 95% interval as a shaded band, the baseline
//! the latest night was compared with as a dashed grey line, a vertical marker where the package
//! (orange, `pkg` + 8 hex digits) or quadbench's revision (grey, `rev` + 8) changed from the night
//! before, and the latest point ringed in red for a regression or green for an improvement.
//! SVG only, fixed size, nothing from the clock: the same trend gives the same bytes.

use super::*;
use quadbench_schema::history::{Change, Finding, NightPoint, Trend};

/// Size of every trend plot (px); the page scales them to its grid.
pub const SIZE: (u32, u32) = (640, 260);

/// How values of a unit are shown: divided by `factor`, labelled `unit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// Divisor applied to raw values.
    pub factor: f64,
    /// Unit shown after scaling.
    pub unit: String,
}

impl Scale {
    /// Bytes in MiB or GiB (by the largest value), anything else as it is.
    pub fn of(unit: &str, max: f64) -> Scale {
        const MIB: f64 = 1024.0 * 1024.0;
        match unit {
            "bytes" if max >= 1024.0 * MIB => Scale { factor: 1024.0 * MIB, unit: "GiB".into() },
            "bytes" => Scale { factor: MIB, unit: "MiB".into() },
            u => Scale { factor: 1.0, unit: u.into() },
        }
    }

    /// A value in this scale with about three significant digits and the unit.
    pub fn show(&self, v: f64) -> String {
        let x = v / self.factor;
        let digits = if x.abs() >= 100.0 {
            0
        } else if x.abs() >= 10.0 {
            1
        } else {
            2
        };
        if self.unit.is_empty() { format!("{x:.digits$}") } else { format!("{x:.digits$} {}", self.unit) }
    }
}

/// The first 8 characters of a sha or revision.
pub fn short(s: &str) -> &str {
    s.get(..8).unwrap_or(s)
}

/// What changed between night `i - 1` and night `i`, in words (`pkg 7b04d5e1`, `rev 9f8e7d6c`).
pub fn changes(points: &[NightPoint], i: usize) -> Vec<String> {
    let (Some(a), Some(b)) = (i.checked_sub(1).and_then(|j| points.get(j)), points.get(i)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if a.package_sha256 != b.package_sha256 {
        out.push(format!("pkg {}", short(&b.package_sha256)));
    }
    if a.git_revision != b.git_revision {
        out.push(format!("rev {}", short(&b.git_revision)));
    }
    out
}

/// The trend as an inline SVG on the x axis `nights` (the series' nights, oldest first, so that
/// its metrics line up and a night without a value shows as a gap; empty: the trend's own).
/// `finding` (the latest night's verdict) marks the latest point and draws the baseline.
pub fn trend_svg(t: &Trend, finding: Option<&Finding>, nights: &[String]) -> Result<String, ReportError> {
    let own: Vec<String>;
    let nights = if nights.is_empty() {
        own = t.points.iter().map(|p| p.night.clone()).collect();
        &own
    } else {
        nights
    };
    let xs: Vec<Option<usize>> = t.points.iter().map(|p| nights.iter().position(|n| *n == p.night)).collect();
    render_svg("trend", SIZE, |root| draw(root, &Axis { t, xs: &xs, nights }, finding))
}

/// A trend placed on its x axis: `xs[i]` is the night index of point `i` (`None`: not on it).
struct Axis<'a> {
    t: &'a Trend,
    xs: &'a [Option<usize>],
    nights: &'a [String],
}

impl Axis<'_> {
    /// The points on the axis, as (point index, x).
    fn placed(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.xs.iter().enumerate().filter_map(|(i, x)| x.map(|x| (i, x as f64)))
    }

    /// Runs of points on consecutive nights that pass `keep`, as (x, point index).
    fn runs(&self, keep: impl Fn(&NightPoint) -> bool) -> Vec<Vec<(f64, usize)>> {
        let mut runs: Vec<Vec<(f64, usize)>> = Vec::new();
        let mut last: Option<f64> = None;
        for (i, x) in self.placed() {
            if !keep(&self.t.points[i]) {
                last = None;
                continue;
            }
            match runs.last_mut() {
                Some(r) if last == Some(x - 1.0) => r.push((x, i)),
                _ => runs.push(vec![(x, i)]),
            }
            last = Some(x);
        }
        runs
    }
}

/// Low and high end of the y axis (scaled), padded, never empty.
fn y_bounds(t: &Trend, baseline: Option<f64>, scale: &Scale) -> (f64, f64) {
    let vals = t.points.iter().flat_map(|p| {
        let ci = p.ci.map(|c| c.to_vec()).unwrap_or_default();
        std::iter::once(p.value).chain(ci)
    });
    let (lo, hi) = vals
        .chain(baseline)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| (a.0.min(v / scale.factor), a.1.max(v / scale.factor)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.12).max(hi.abs().max(lo.abs()) * 0.02).max(1e-9);
    let lo = if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
    (lo, hi + pad * 1.8)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, a: &Axis<'_>, finding: Option<&Finding>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let t = a.t;
    let n = a.nights.len().max(1);
    let scale = Scale::of(&t.unit, max_value(t));
    let baseline = finding.and_then(|f| f.baseline).filter(|b| b.is_finite());
    let (lo, hi) = y_bounds(t, baseline, &scale);
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .margin_right(18)
        .x_label_area_size(30)
        .y_label_area_size(62)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, lo..hi)?;
    let fmt = |x: &f64| category(a.nights, *x);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(8))
        .x_label_formatter(&fmt)
        .y_labels(5)
        .y_desc(scale.unit.as_str())
        .label_style(text_style(13))
        .axis_desc_style(text_style(13))
        .max_light_lines(1)
        .bold_line_style(RGBColor(226, 228, 232))
        .light_line_style(RGBColor(240, 241, 243))
        .axis_style(RGBColor(150, 150, 150))
        .y_label_formatter(&|v| axis_number(*v))
        .draw()?;
    let f = scale.factor;
    for run in a.runs(|p| p.ci.is_some_and(|[l, h]| l.is_finite() && h.is_finite())) {
        let ci = |i: usize| t.points[i].ci.unwrap_or_default();
        if let [(x, i)] = run[..] {
            let [l, h] = ci(i);
            chart.draw_series([PathElement::new(vec![(x, l / f), (x, h / f)], BLUE.mix(0.35).stroke_width(6))])?;
        } else {
            let upper = run.iter().map(|&(x, i)| (x, ci(i)[1] / f));
            let band: Vec<(f64, f64)> = upper.chain(run.iter().rev().map(|&(x, i)| (x, ci(i)[0] / f))).collect();
            chart.draw_series([Polygon::new(band, BLUE.mix(0.16).filled())])?;
        }
    }
    if let Some(b) = baseline {
        let line = [(-0.5, b / f), (n as f64 - 0.5, b / f)];
        chart.draw_series(DashedLineSeries::new(line, 6, 4, GREY.mix(0.8).stroke_width(2)))?;
    }
    change_markers(&mut chart, a, hi)?;
    for run in a.runs(|p| p.value.is_finite()) {
        let pts: Vec<(f64, f64)> = run.iter().map(|&(x, i)| (x, t.points[i].value / f)).collect();
        chart.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))?;
    }
    latest_mark(&mut chart, a, finding, (lo + hi) / 2.0)
}

/// The latest night: its point ringed (red: regression, green: improvement), or `no value`
/// where the finding says it is missing.
fn latest_mark<DB: DrawingBackend>(
    chart: &mut CategoryChart<'_, DB>,
    a: &Axis<'_>,
    finding: Option<&Finding>,
    mid: f64,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let Some(f) = finding else { return Ok(()) };
    let last_x = a.nights.len().saturating_sub(1) as f64;
    let colour = match f.change {
        Change::Regression if f.confirmed != Some(false) => VERMILLION,
        Change::Improvement => GREEN,
        Change::Missing => {
            let style = text_style(13).color(&GREY).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
            chart.draw_series([Cross::new((last_x, mid), 6, GREY.stroke_width(2))])?;
            chart.draw_series([EmptyElement::at((last_x, mid)) + Text::new("no value", (0, 18), style)])?;
            return Ok(());
        }
        _ => return Ok(()),
    };
    let latest = a.placed().last().filter(|&(i, x)| i + 1 == a.t.points.len() && x == last_x);
    if let Some((i, x)) = latest.filter(|&(i, _)| a.t.points[i].value.is_finite()) {
        let y = a.t.points[i].value / Scale::of(&a.t.unit, max_value(a.t)).factor;
        chart.draw_series([Circle::new((x, y), 8, colour.stroke_width(3))])?;
        chart.draw_series([Circle::new((x, y), 4, colour.filled())])?;
    }
    Ok(())
}

/// The largest finite value of a trend (0 when none), which picks its [`Scale`].
pub fn max_value(t: &Trend) -> f64 {
    t.points.iter().map(|p| p.value).filter(|v| v.is_finite()).fold(0f64, f64::max)
}

/// A vertical line before each point whose package or revision differs from the point before
/// it, labelled at the top.
fn change_markers<DB: DrawingBackend>(chart: &mut CategoryChart<'_, DB>, a: &Axis<'_>, top: f64) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let y0 = chart.y_range().start;
    let placed: Vec<(usize, f64)> = a.placed().collect();
    for &(i, x) in placed.iter().skip(1) {
        let what = changes(&a.t.points, i);
        if what.is_empty() {
            continue;
        }
        let pkg = what.iter().any(|w| w.starts_with("pkg"));
        let line = if pkg { ORANGE.stroke_width(2) } else { GREY.mix(0.6).stroke_width(1) };
        let x = x - 0.5;
        chart.draw_series([PathElement::new(vec![(x, y0), (x, top)], line)])?;
        for (k, w) in what.iter().enumerate() {
            let colour = if w.starts_with("pkg") { RGBColor(176, 112, 0) } else { GREY };
            let style = text_style(12).color(&colour);
            chart.draw_series([EmptyElement::at((x, top)) + Text::new(w.clone(), (4, 3 + 14 * k as i32), style)])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_scale_to_mib_or_gib() {
        assert_eq!(Scale::of("bytes", 2.0 * 1024.0 * 1024.0 * 1024.0).unit, "GiB");
        assert_eq!(Scale::of("bytes", 5e8).show(1512046592.0), "1442 MiB");
        assert_eq!(Scale::of("ms", 10.0).show(538.24), "538 ms");
        assert_eq!(Scale::of("dB", 10.0).show(30.1), "30.1 dB");
        assert_eq!(short("7b04d5e1c2a39485"), "7b04d5e1");
        assert_eq!(short("abc"), "abc");
    }
}
