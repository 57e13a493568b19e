//! `--plot`: the latency distribution as an SVG percentile spectrum (the usual
//! HdrHistogram chart: the percentile axis stretches the tail, 90% to 99.999%).

use std::error::Error;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Draws `hist` (nanoseconds) to `path`.
pub(crate) fn latency_svg(
    path: &Path,
    hist: &Histogram<u64>,
    title: &str,
) -> Result<(), Box<dyn Error>> {
    // x = 1 / (1 - quantile) on a log axis: 10 is p90, 1000 is p99.9.
    let mut points: Vec<(f64, f64)> = hist
        .iter_quantiles(4)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|&(q, _)| q < 1.0)
        .map(|(q, ns)| (1.0 / (1.0 - q), ns as f64 / 1e3))
        .collect();
    // Start at the minimum (the iteration's first step reports its bucket's floor).
    let min = hist.min() as f64 / 1e3;
    points.retain(|p| p.1 >= min && p.0 > 1.0);
    points.insert(0, (1.0, min));
    points.dedup_by(|a, b| a.0 <= b.0);
    let tail = (hist.len() as f64).max(10.0);
    let x_max = points
        .iter()
        .map(|p| p.0)
        .fold(10.0_f64, f64::max)
        .min(tail)
        .max(10.0);
    points.retain(|p| p.0 <= x_max);
    points.push((x_max, hist.max() as f64 / 1e3));
    let y_max = (hist.max() as f64 / 1e3 * 1.05).max(1.0);

    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("wsengine load: latency by percentile ({title})"),
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)?;
    let percentile = |x: &f64| {
        let p = 100.0 * (1.0 - 1.0 / x);
        // 90%, 99%, 99.9%, 99.99%: one more digit per decade past 100.
        let (mut digits, mut decade) = (0, 150.0);
        while *x > decade {
            digits += 1;
            decade *= 10.0;
        }
        format!("{p:.digits$}%")
    };
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&percentile)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?
        .label("echo round trip")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}
