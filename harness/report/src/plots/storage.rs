//! Storage per strategy as stacked bars: foundation, adapters, per-task binaries (MB).

use super::*;

const TITLE: &str = "Storage on the device (ROM) per strategy";

pub fn render(r: &Results) -> Result<Option<Rendered>, ReportError> {
    if r.runs.is_empty() {
        return Ok(None);
    }
    super::render("storage", TITLE, (900, 520), |a| draw(a, r), |a| draw(a, r))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let root = root.titled(TITLE, title_style())?;
    let labels: Vec<String> = r.runs.iter().map(|x| run_label(r, x)).collect();
    let max = r.runs.iter().map(|x| x.storage.total_bytes as f64 / 1e6).fold(0f64, f64::max);
    let n = r.runs.len();
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(34)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, y_range(max * 1.05))?;
    category_mesh(&mut chart, &labels, n, "storage (MB)")?;
    // (label, colour, bytes)
    type Part = (&'static str, RGBColor, fn(&RunRecord) -> u64);
    let parts: [Part; 3] = [
        ("foundation", BLUE, |x| x.storage.foundation_bytes),
        ("adapters (LoRA)", GREEN, |x| x.storage.adapter_bytes),
        ("per-task binaries", VERMILLION, |x| x.storage.baseline_bytes),
    ];
    let mut base = vec![0f64; n];
    for (name, c, get) in parts {
        let bars: Vec<Rectangle<(f64, f64)>> = r
            .runs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let v = get(x) as f64 / 1e6;
                let rect = Rectangle::new([(i as f64 - 0.3, base[i]), (i as f64 + 0.3, base[i] + v)], c.filled());
                base[i] += v;
                rect
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
    }
    chart.draw_series(r.runs.iter().enumerate().map(|(i, x)| {
        Text::new(
            format!("{:.1} MB", x.storage.total_bytes as f64 / 1e6),
            (i as f64, x.storage.total_bytes as f64 / 1e6 + max * 0.01),
            above(14),
        )
    }))?;
    series_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
