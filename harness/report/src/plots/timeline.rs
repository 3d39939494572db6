//! Task-switch timeline over the workload: every switch's latency at the time it happened, one
//! series per strategy; warm-up switches (discarded from statistics) hollow.

use super::*;

const TITLE: &str = "Task-switch latency over the workload";

pub fn render(r: &Results) -> Result<Option<Rendered>, ReportError> {
    if !r.runs.iter().any(|x| !x.switches.is_empty()) {
        return Ok(None);
    }
    super::render("timeline", TITLE, (1100, 520), |a| draw(a, r), |a| draw(a, r))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let root = root.titled(TITLE, title_style())?;
    let runs: Vec<&RunRecord> = r.runs.iter().filter(|x| !x.switches.is_empty()).collect();
    let tmax = runs.iter().flat_map(|x| x.switches.iter().map(|s| s.at_ms / 1e3)).fold(0f64, f64::max);
    let ymax = runs.iter().flat_map(|x| x.switches.iter().map(|s| s.latency_ms)).fold(0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..(tmax * 1.03).max(1e-3), y_range(ymax))?;
    chart
        .configure_mesh()
        .x_desc("time since the measured workload started (s)")
        .y_desc("switch latency (ms)")
        .label_style(text_style(13))
        .axis_desc_style(text_style(14))
        .max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .y_label_formatter(&|v| axis_number(*v))
        .draw()?;
    for run in &runs {
        let c = strategy_colour(run.strategy);
        let pts: Vec<(f64, f64)> = run.switches.iter().map(|s| (s.at_ms / 1e3, s.latency_ms)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(run_label(r, run))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        chart.draw_series(run.switches.iter().map(|s| {
            let style = if s.warmup { c.stroke_width(2) } else { c.filled() };
            Circle::new((s.at_ms / 1e3, s.latency_ms), 4, style)
        }))?;
    }
    series_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.draw_text(
        "hollow: warm-up switch (not in statistics)",
        &text_style(13),
        (80, root.dim_in_pixel().1 as i32 - 18),
    )?;
    Ok(())
}
