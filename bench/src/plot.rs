//! The decision-latency plot: latency (log scale) by percentile, one line per
//! run of the decision scenario, approvald and the reference together.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Results;
use crate::stats::Latencies;
use crate::BenchResult;

/// Percentiles on a "nines" axis: x = -log10(1 - q), so 0 is p0, 1 is p90,
/// 2 is p99, 3 is p99.9.
const X_MAX: f64 = 3.0;

fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

fn label(x: &f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    match (q * 1000.0).round() as u64 {
        0 => "p0".into(),
        500 => "p50".into(),
        900 => "p90".into(),
        990 => "p99".into(),
        999 => "p99.9".into(),
        _ => format!("p{:.1}", q * 100.0),
    }
}

fn curve(lat: &Latencies) -> Vec<(f64, f64)> {
    (0..=60)
        .map(|i| X_MAX * i as f64 / 60.0)
        .map(|x| {
            let q = (1.0 - 10f64.powf(-x)).clamp(0.0, 0.999);
            (nines(q), lat.ms_at(q).max(0.001))
        })
        .collect()
}

/// A line: its legend, its points, its colour.
type Series = (String, Vec<(f64, f64)>, RGBColor);

pub fn decision_latency(r: &Results, path: &Path) -> BenchResult<()> {
    let mut series: Vec<Series> = Vec::new();
    let ours = [
        RGBColor(0, 90, 180),
        RGBColor(0, 150, 200),
        RGBColor(60, 60, 160),
        RGBColor(0, 130, 90),
    ];
    for (i, d) in r.decision.iter().enumerate() {
        let name = format!(
            "approvald, {} waiters{}",
            d.waiters,
            d.setting().replace('`', "")
        );
        series.push((name, curve(&d.latencies), ours[i % ours.len()]));
    }
    let theirs = [
        RGBColor(200, 60, 0),
        RGBColor(230, 140, 0),
        RGBColor(160, 40, 90),
        RGBColor(200, 100, 140),
    ];
    for (i, d) in r.reference_decision.iter().flatten().enumerate() {
        let name = format!(
            "reference (ApprovalGate), {} waiters, {}",
            d.waiters,
            d.answering.describe()
        );
        series.push((name, curve(&d.latencies), theirs[i % theirs.len()]));
    }
    let top = series
        .iter()
        .flat_map(|(_, c, _)| c.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 2.0;

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Decision latency: Respond sent -> waiter has the answer",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..X_MAX, (0.05f64..top).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("milliseconds (log scale)")
        .x_labels(4)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .draw()?;
    for (name, points, color) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
