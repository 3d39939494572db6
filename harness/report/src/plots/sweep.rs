//! A claim's ratio against one sweep axis: per series a line through the grid points with its
//! 95% interval as a shaded band, the claim's threshold as a dashed line, and the crossover
//! (where the interval's lower bound reaches the threshold for good) as a vertical marker with
//! its uncertainty (from the upper bound's crossing) shaded; for a claim that holds only at the
//! low end, the marker is where its lower bound falls below. A log x axis when the values span
//! 8x or more. Drawn from a sweep directory (`crate::sweep`), not from one results directory,
//! so it is not in [`PLOTS`](super::PLOTS).

use super::*;
use crate::sweep_fit::{self, CurvePoint};

/// Size of a sweep plot (px).
pub const SIZE: (u32, u32) = (820, 460);

/// One line of the plot.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Grid points, sorted by x.
    pub points: Vec<CurvePoint>,
    /// The claim's threshold.
    pub threshold: f64,
}

const COLOURS: [RGBColor; 5] = [BLUE, VERMILLION, GREEN, ORANGE, SKY];

/// The plot as SVG and PNG.
pub fn render(name: &str, title: &str, axis: &str, series: &[Series]) -> Result<(String, Vec<u8>), ReportError> {
    let svg = render_svg(name, SIZE, |root| draw(root, title, axis, series))?;
    let png = render_png(name, SIZE, |root| draw(root, title, axis, series))?;
    Ok((svg, png))
}

fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0f64);
    for p in pts {
        (x0, x1) = (x0.min(p.x), x1.max(p.x));
        y1 = y1.max(p.hi).max(p.ratio);
    }
    for s in series {
        y1 = y1.max(s.threshold);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    ((x0, x1), (0.0, if y1 > 0.0 { y1 * 1.12 } else { 1.0 }))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, axis: &str, series: &[Series]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let ((x0, x1), (y0, y1)) = bounds(series);
    let log = x0 > 0.0 && x1 / x0 >= 8.0;
    // Log axes are drawn in log2(x) with labels mapped back (so ticks fall on powers of two),
    // and both cases share one chart type.
    let tx = |x: f64| if log { x.log2() } else { x };
    let pad = (tx(x1) - tx(x0)) * 0.04;
    let mut chart = ChartBuilder::on(root)
        .caption(title, title_style())
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(60)
        .build_cartesian_2d(tx(x0) - pad..tx(x1) + pad, y0..y1)?;
    let fmt = |v: &f64| axis_number(if log { v.exp2() } else { *v });
    let ticks = if log { (tx(x1) - tx(x0)).ceil() as usize + 1 } else { 10 };
    chart
        .configure_mesh()
        .x_desc(if log { format!("{axis} (log scale)") } else { axis.to_string() })
        .y_desc("ratio (baseline / candidate)")
        .x_labels(ticks)
        .x_label_formatter(&fmt)
        .y_label_formatter(&|v| axis_number(*v))
        .label_style(text_style(13))
        .axis_desc_style(text_style(14))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let upper = s.points.iter().map(|p| (tx(p.x), p.hi));
        let band: Vec<(f64, f64)> = upper.chain(s.points.iter().rev().map(|p| (tx(p.x), p.lo))).collect();
        chart.draw_series([Polygon::new(band, c.mix(0.18).filled())])?;
        let line: Vec<(f64, f64)> = s.points.iter().map(|p| (tx(p.x), p.ratio)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        chart.draw_series(line.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
        let xo = sweep_fit::crossover(&s.points, s.threshold);
        if let Some(x) = xo.lower.x() {
            let from = xo.upper.x().unwrap_or(x);
            if from < x {
                let shade = vec![(tx(from), y0), (tx(from), y1), (tx(x), y1), (tx(x), y0)];
                chart.draw_series([Polygon::new(shade, c.mix(0.08).filled())])?;
            }
            let marker = [(tx(x), y0), (tx(x), y1)];
            chart.draw_series(DashedLineSeries::new(marker, 4, 4, c.stroke_width(1)))?;
        } else if let Some(x) = xo.holds_until.and_then(|h| h.0.x()) {
            let marker = [(tx(x), y0), (tx(x), y1)];
            chart.draw_series(DashedLineSeries::new(marker, 4, 4, c.stroke_width(1)))?;
        }
    }
    let mut thresholds: Vec<f64> = series.iter().map(|s| s.threshold).collect();
    thresholds.dedup();
    for t in thresholds {
        let line = [(tx(x0) - pad, t), (tx(x1) + pad, t)];
        chart
            .draw_series(DashedLineSeries::new(line, 8, 5, GREY.stroke_width(2)))?
            .label(format!("threshold {t}x"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREY.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font(text_style(13))
        .draw()?;
    Ok(())
}
