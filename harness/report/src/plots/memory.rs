//! Peak RAM per strategy: peak RSS and peak PSS bars (MB). One measurement per run: no error
//! bars.

use super::*;

const TITLE: &str = "Peak RAM per strategy";

pub fn render(r: &Results) -> Result<Option<Rendered>, ReportError> {
    if !r.runs.iter().any(|x| x.memory.peak_rss_bytes.is_some()) {
        return Ok(None);
    }
    super::render("memory", TITLE, (900, 520), |a| draw(a, r), |a| draw(a, r))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let root = root.titled(TITLE, title_style())?;
    let labels: Vec<String> = r.runs.iter().map(|x| run_label(r, x)).collect();
    let mb = |b: Option<u64>| b.map(|v| v as f64 / 1e6);
    let max = r
        .runs
        .iter()
        .flat_map(|x| [mb(x.memory.peak_rss_bytes), mb(x.memory.peak_pss_bytes)])
        .flatten()
        .fold(0f64, f64::max);
    let n = r.runs.len();
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(34)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, y_range(max * 1.05))?;
    category_mesh(&mut chart, &labels, n, "peak memory (MB)")?;
    // (label, colour, bar offset, value)
    type Series = (&'static str, RGBColor, f64, fn(&RunRecord) -> Option<u64>);
    let series: [Series; 2] =
        [("peak RSS", BLUE, -0.32, |x| x.memory.peak_rss_bytes), ("peak PSS", SKY, 0.02, |x| x.memory.peak_pss_bytes)];
    for (name, c, off, get) in series {
        let bars: Vec<(usize, f64)> =
            r.runs.iter().enumerate().filter_map(|(i, x)| mb(get(x)).map(|v| (i, v))).collect();
        chart
            .draw_series(
                bars.iter()
                    .map(|(i, v)| Rectangle::new([(*i as f64 + off, 0.0), (*i as f64 + off + 0.3, *v)], c.filled())),
            )?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        chart.draw_series(
            bars.iter().map(|(i, v)| Text::new(format!("{v:.0}"), (*i as f64 + off + 0.15, v + max * 0.01), above(13))),
        )?;
    }
    series_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.draw_text(
        "one measurement per run: no confidence intervals",
        &text_style(13),
        (90, root.dim_in_pixel().1 as i32 - 18),
    )?;
    Ok(())
}
