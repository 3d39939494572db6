//! Plots, one file each, registered in [`PLOTS`]; each is drawn once per backend (SVG and PNG)
//! by the same generic function. Text uses the bundled DejaVu Sans (no system fonts), colours
//! the Okabe-Ito colour-blind-safe palette. [`trend`] draws the dashboard's small multiples from
//! the history (SVG only), not from a results directory, so it is not in [`PLOTS`]; nor is
//! [`sweep`], a claim against a sweep axis, drawn from a sweep directory.

mod latency;
mod memory;
mod quality;
mod storage;
pub mod sweep;
mod timeline;
pub mod trend;

use super::{Artefact, Report, ReportError};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use quadbench_schema::protocol::Strategy;
use quadbench_schema::results::{Results, RunRecord};

/// A rendered plot.
pub struct Rendered {
    /// File stem under `plots/`.
    pub name: &'static str,
    /// Caption.
    pub title: String,
    /// The SVG.
    pub svg: String,
    /// The PNG.
    pub png: Vec<u8>,
}

/// What a plot's drawing code returns.
pub type DrawResult = Result<(), Box<dyn std::error::Error>>;
/// Render a plot, or `None` when the results have nothing for it.
pub type RenderFn = fn(&Results) -> Result<Option<Rendered>, ReportError>;

/// Every plot, in report order.
pub const PLOTS: &[(&str, RenderFn)] = &[
    ("latency", latency::render),
    ("timeline", timeline::render),
    ("storage", storage::render),
    ("memory", memory::render),
    ("quality", quality::render),
];

/// The font family plots use (the bundled DejaVu Sans).
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid font; a failure here would show as missing text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

/// Okabe & Ito (2008) colour-blind-safe palette.
pub const BLUE: RGBColor = RGBColor(0, 114, 178);
/// Okabe-Ito orange.
pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
/// Okabe-Ito bluish green.
pub const GREEN: RGBColor = RGBColor(0, 158, 115);
/// Okabe-Ito vermillion.
pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
/// Okabe-Ito sky blue.
pub const SKY: RGBColor = RGBColor(86, 180, 233);
/// Okabe-Ito reddish purple.
pub const PURPLE: RGBColor = RGBColor(204, 121, 167);
/// Text and axes grey.
pub const GREY: RGBColor = RGBColor(90, 90, 90);

/// The colour of a strategy in every plot.
pub fn strategy_colour(s: Strategy) -> RGBColor {
    match s {
        Strategy::Unified => BLUE,
        Strategy::UnifiedOrtAdapter => SKY,
        Strategy::SeparateResident => ORANGE,
        Strategy::SeparateReload => VERMILLION,
        Strategy::SeparateSharedWeights => PURPLE,
    }
}

/// Category label of a run: the strategy when all runs share device, backend and precision;
/// with replicates, followed by `r<k>`.
pub fn run_label(r: &Results, run: &RunRecord) -> String {
    let one_group =
        r.runs.iter().all(|x| x.device == run.device && x.backend == run.backend && x.precision == run.precision);
    let label = if one_group {
        run.strategy.as_str().to_string()
    } else {
        format!("{}/{}/{} {}", run.device, run.backend, run.precision, run.strategy)
    };
    if r.runs.iter().any(|x| x.replicate > 1) { format!("{label} r{}", run.replicate) } else { label }
}

/// Label formatter for categories at x = 0, 1, 2, ... on an f64 axis.
pub fn category(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

/// Style of plot titles.
pub fn title_style() -> TextStyle<'static> {
    (FONT, 22).into_font().color(&BLACK)
}

/// Style of plot text of `size` px.
pub fn text_style(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Draw a plot on both backends.
pub fn render<S, P>(
    name: &'static str,
    title: &str,
    (w, h): (u32, u32),
    svg: S,
    png: P,
) -> Result<Option<Rendered>, ReportError>
where
    S: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
    P: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
{
    let svg_text = render_svg(name, (w, h), svg)?;
    let png_bytes = render_png(name, (w, h), png)?;
    Ok(Some(Rendered { name, title: title.into(), svg: svg_text, png: png_bytes }))
}

/// Draw a plot as PNG (on a white background).
pub fn render_png<P>(name: &str, (w, h): (u32, u32), draw: P) -> Result<Vec<u8>, ReportError>
where
    P: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
{
    ensure_font();
    let err = |e: Box<dyn std::error::Error>| ReportError::Plot { plot: name.into(), message: e.to_string() };
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.into()))?;
        draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.into()))?;
    }
    let mut png_bytes = Vec::new();
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| err("bitmap size mismatch".into()))?;
    img.write_to(&mut std::io::Cursor::new(&mut png_bytes), image::ImageFormat::Png).map_err(|e| err(e.into()))?;
    Ok(png_bytes)
}

/// Draw a plot as SVG only (on a white background).
pub fn render_svg<S>(name: &str, (w, h): (u32, u32), draw: S) -> Result<String, ReportError>
where
    S: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
{
    ensure_font();
    let err = |e: Box<dyn std::error::Error>| ReportError::Plot { plot: name.into(), message: e.to_string() };
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.into()))?;
        draw(&root).map_err(err)?;
        root.present().map_err(|e| err(e.into()))?;
    }
    Ok(svg_text)
}

/// Every plot of `r`.
pub fn render_all(r: &Results) -> Result<Vec<Rendered>, ReportError> {
    let mut out = Vec::new();
    for (_, f) in PLOTS {
        if let Some(p) = f(r)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The plots as SVG and PNG artefacts.
pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    Ok(rep
        .plots
        .iter()
        .flat_map(|p| {
            [
                Artefact::text(format!("plots/{}.svg", p.name), p.svg.clone()),
                Artefact { path: format!("plots/{}.png", p.name), bytes: p.png.clone() },
            ]
        })
        .collect())
}

/// Axis numbers: integers from 10 up, otherwise up to two decimals.
pub fn axis_number(v: f64) -> String {
    if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Text centred above a point (bar labels).
pub fn above(size: u32) -> TextStyle<'static> {
    text_style(size).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Bottom,
    ))
}

/// A legend drawn in its own area (outside the plots): a colour swatch and a label per entry.
pub fn side_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(String, RGBColor)]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    for (i, (label, c)) in entries.iter().enumerate() {
        let y = 40 + i as i32 * 24;
        area.draw(&Rectangle::new([(8, y), (24, y + 14)], c.filled()))?;
        area.draw_text(label, &text_style(13), (30, y))?;
    }
    Ok(())
}

/// `0..max` padded by 8%, at least `0..1`.
pub fn y_range(max: f64) -> std::ops::Range<f64> {
    0.0..if max.is_finite() && max > 0.0 { max * 1.08 } else { 1.0 }
}

/// A chart with f64 coordinates both ways (per-run categories along x, or time).
pub type CategoryChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The grid of a per-run category chart: run labels under the ticks, no vertical lines, light
/// horizontal ones, `y_desc` up the side.
pub fn category_mesh<DB: DrawingBackend>(
    chart: &mut CategoryChart<'_, DB>,
    labels: &[String],
    n: usize,
    y_desc: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let fmt = |x: &f64| category(labels, *x);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&fmt)
        .y_desc(y_desc)
        .label_style(text_style(13))
        .axis_desc_style(text_style(14))
        .max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .y_label_formatter(&|v| axis_number(*v))
        .draw()?;
    Ok(())
}

/// The series legend every plot uses, at `position`.
pub fn series_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut CategoryChart<'a, DB>,
    position: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font(text_style(14))
        .draw()?;
    Ok(())
}
