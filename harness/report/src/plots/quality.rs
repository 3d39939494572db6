//! Quality per task: PSNR (dB) and SSIM of each configuration's outputs against the goldens,
//! grouped by task. Identical outputs (PSNR = inf) are drawn at the top of the axis and marked.

use super::*;

const TITLE: &str = "Quality per task against the goldens";

pub fn render(r: &Results) -> Result<Option<Rendered>, ReportError> {
    if !r.runs.iter().any(|x| !x.quality.is_empty()) {
        return Ok(None);
    }
    super::render("quality", TITLE, (1200, 620), |a| draw(a, r), |a| draw(a, r))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let root = root.titled(TITLE, title_style())?;
    let mut tasks: Vec<String> = r.runs.iter().flat_map(|x| x.quality.keys().cloned()).collect();
    tasks.sort_by_key(|t| (r.package.tasks.iter().position(|p| p == t).unwrap_or(usize::MAX), t.clone()));
    tasks.dedup();
    let runs: Vec<&RunRecord> = r.runs.iter().filter(|x| !x.quality.is_empty()).collect();
    let w = root.dim_in_pixel().0;
    let (root, legend) = root.split_horizontally(w - 250);
    side_legend(&legend, &runs.iter().map(|x| (run_label(r, x), strategy_colour(x.strategy))).collect::<Vec<_>>())?;
    let panels = root.split_evenly((2, 1));
    let finite_psnr = runs.iter().flat_map(|x| x.quality.values().filter_map(|q| q.mean.psnr_db)).fold(0f64, f64::max);
    let psnr_cap = if finite_psnr > 0.0 { finite_psnr * 1.1 } else { 60.0 };
    // (axis label, axis cap, value and whether it was capped)
    type Axis = (&'static str, f64, fn(&quadbench_schema::results::Scores, f64) -> Option<(f64, bool)>);
    let metrics: [Axis; 2] = [
        ("PSNR (dB), higher is better", psnr_cap, |s, cap| {
            if s.identical && s.psnr_db.is_none() { Some((cap, true)) } else { s.psnr_db.map(|v| (v, false)) }
        }),
        ("SSIM, higher is better", 1.0, |s, _| s.ssim.map(|v| (v, false))),
    ];
    let k = runs.len().max(1) as f64;
    for (panel, (label, top, get)) in panels.iter().zip(metrics) {
        let mut chart = ChartBuilder::on(panel)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..tasks.len() as f64 - 0.5, 0f64..top * 1.02)?;
        let fmt = |x: &f64| category(&tasks, *x);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(tasks.len())
            .x_label_formatter(&fmt)
            .y_desc(label)
            .label_style(text_style(12))
            .axis_desc_style(text_style(13))
            .max_light_lines(1)
            .light_line_style(RGBColor(240, 240, 240))
            .y_label_formatter(&|v| axis_number(*v))
            .draw()?;
        for (j, run) in runs.iter().enumerate() {
            let c = strategy_colour(run.strategy);
            let w = 0.8 / k;
            let bars: Vec<(f64, f64, bool)> = tasks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    run.quality
                        .get(t)
                        .and_then(|q| get(&q.mean, psnr_cap))
                        .map(|(v, inf)| (i as f64 - 0.4 + j as f64 * w, v, inf))
                })
                .collect();
            chart.draw_series(
                bars.iter().map(|(x, v, _)| Rectangle::new([(*x, 0.0), (*x + w * 0.9, *v)], c.filled())),
            )?;
            chart.draw_series(
                bars.iter().filter(|b| b.2).map(|(x, v, _)| Text::new("inf", (*x + w * 0.45, *v), above(11))),
            )?;
        }
    }
    Ok(())
}
