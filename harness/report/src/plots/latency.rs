//! Latency distributions per strategy: box (IQR, median), whiskers to the last sample inside the
//! Tukey fences, every sample as a jittered point, outliers as crosses, and the median's 95% CI
//! as a black bar beside the box. End-to-end and task-switch side by side.

use super::*;
use crate::stats;
use quadbench_schema::protocol::rng::SplitMix64;
use quadbench_schema::protocol::sample_key;

const TITLE: &str = "Latency distributions per strategy";

pub fn render(r: &Results) -> Result<Option<Rendered>, ReportError> {
    if !r.runs.iter().any(|x| x.samples.get(sample_key::E2E).is_some_and(|v| !v.is_empty())) {
        return Ok(None);
    }
    super::render("latency", TITLE, (1100, 560), |a| draw(a, r), |a| draw(a, r))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let h = root.dim_in_pixel().1;
    let (main, foot) = root.split_vertically(h - 30);
    foot.draw_text("box: quartiles and median; whiskers: last sample inside the Tukey fences; dots: samples; x: outliers (kept); black bar: 95% CI of the median (bootstrap)", &text_style(13), (14, 6))?;
    let main = main.titled(TITLE, title_style())?;
    for (panel, (key, label)) in main
        .split_evenly((1, 2))
        .iter()
        .zip([(sample_key::E2E, "end-to-end latency (steady state)"), (sample_key::SWITCH, "task-switch latency")])
    {
        let runs: Vec<&RunRecord> =
            r.runs.iter().filter(|x| x.samples.get(key).is_some_and(|v| !v.is_empty())).collect();
        let labels: Vec<String> = runs.iter().map(|x| run_label(r, x)).collect();
        let max = runs.iter().flat_map(|x| x.samples[key].iter()).fold(0f64, |a, b| a.max(*b));
        let n = runs.len().max(1);
        let mut chart = ChartBuilder::on(panel)
            .caption(label, text_style(16))
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, y_range(max))?;
        category_mesh(&mut chart, &labels, n, "latency (ms)")?;
        for (i, run) in runs.iter().enumerate() {
            let v = &run.samples[key];
            let c = strategy_colour(run.strategy);
            let mut s = v.clone();
            s.sort_by(|a, b| a.total_cmp(b));
            let (q1, q2, q3) = (stats::percentile(&s, 25.0), stats::percentile(&s, 50.0), stats::percentile(&s, 75.0));
            let fences = stats::tukey(v);
            let (lf, hf) = fences.as_ref().map_or((f64::NEG_INFINITY, f64::INFINITY), |f| (f.low_fence, f.high_fence));
            let lo_w = s.iter().copied().find(|x| *x >= lf).unwrap_or(q1);
            let hi_w = s.iter().rev().copied().find(|x| *x <= hf).unwrap_or(q3);
            let x = i as f64;
            let w = 0.22;
            chart.draw_series([Rectangle::new([(x - w, q1), (x + w, q3)], c.mix(0.18).filled())])?;
            chart.draw_series([Rectangle::new([(x - w, q1), (x + w, q3)], c.stroke_width(2))])?;
            chart.draw_series([
                PathElement::new(vec![(x - w, q2), (x + w, q2)], c.stroke_width(4)),
                PathElement::new(vec![(x, q3), (x, hi_w)], c.stroke_width(2)),
                PathElement::new(vec![(x, q1), (x, lo_w)], c.stroke_width(2)),
                PathElement::new(vec![(x - 0.08, hi_w), (x + 0.08, hi_w)], c.stroke_width(2)),
                PathElement::new(vec![(x - 0.08, lo_w), (x + 0.08, lo_w)], c.stroke_width(2)),
            ])?;
            if let Some([lo, hi]) = run.latency_ms.get(key).and_then(|s| s.p50_ci) {
                let bx = x + w + 0.06;
                chart.draw_series([
                    PathElement::new(vec![(bx, lo), (bx, hi)], BLACK.stroke_width(3)),
                    PathElement::new(vec![(bx - 0.03, lo), (bx + 0.03, lo)], BLACK.stroke_width(2)),
                    PathElement::new(vec![(bx - 0.03, hi), (bx + 0.03, hi)], BLACK.stroke_width(2)),
                ])?;
            }
            let outliers = fences.map(|f| f.indices).unwrap_or_default();
            let mut rng = SplitMix64::from_state(stats::SEED ^ i as u64);
            let pts: Vec<(f64, f64, bool)> =
                v.iter().enumerate().map(|(j, y)| (x + (rng.unit() - 0.5) * 0.3, *y, outliers.contains(&j))).collect();
            chart.draw_series(pts.iter().filter(|p| !p.2).map(|p| Circle::new((p.0, p.1), 3, c.mix(0.75).filled())))?;
            chart.draw_series(pts.iter().filter(|p| p.2).map(|p| Cross::new((p.0, p.1), 5, BLACK.stroke_width(2))))?;
        }
    }
    Ok(())
}
