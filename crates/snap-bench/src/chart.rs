//! The load chart: load time against stream length, both axes logarithmic, one line per
//! backend and mode (full replay, through a snapshot), drawn as SVG with plotters.

use std::path::Path;

use plotters::prelude::*;

use crate::report::LoadPoint;

/// One colour per backend; the full replay is drawn solid with circles, the snapshot load
/// thinner with triangles.
fn colour(backend: &str) -> RGBColor {
    match backend {
        "sqlite" => RGBColor(31, 119, 180),
        "postgres" => RGBColor(214, 39, 40),
        _ => RGBColor(44, 160, 44),
    }
}

/// Milliseconds, the chart's unit.
fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The label of a tick: only whole powers of ten are named, the others stay blank.
fn decade(v: f64) -> String {
    let exponent = v.log10();
    if (exponent - exponent.round()).abs() > 1e-9 {
        String::new()
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Draws `points` into an SVG file at `path`.
pub(crate) fn draw(points: &[LoadPoint], path: &Path) -> std::io::Result<()> {
    draw_inner(points, path).map_err(|e| std::io::Error::other(e.to_string()))
}

#[allow(
    clippy::cast_precision_loss,
    reason = "event counts are far below 2^52"
)]
fn draw_inner(points: &[LoadPoint], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let x_min = points.iter().map(|p| p.events).min().unwrap_or(1) as f64;
    let x_max = points.iter().map(|p| p.events).max().unwrap_or(10) as f64;
    let times = points.iter().flat_map(|p| [ms(p.full.0), ms(p.snapshot.0)]);
    let (y_min, y_max) = times.fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    // Whole decades around the data, so the log axes read easily.
    let decade_below = |v: f64| 10f64.powf(v.max(1e-6).log10().floor());
    let decade_above = |v: f64| 10f64.powf(v.max(1e-6).log10().ceil());
    let x_range = (x_min / 2.0)..(x_max * 2.0);
    let y_range = decade_below(y_min)..decade_above(y_max * 1.5);

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "snap-es: load time by stream length (median)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("events in the stream")
        .y_desc("load time (ms)")
        .x_label_formatter(&|x| decade(*x))
        .y_label_formatter(&|y| decade(*y))
        .draw()?;

    let mut backends: Vec<&str> = points.iter().map(|p| p.backend).collect();
    backends.dedup();
    for backend in backends {
        let colour = colour(backend);
        let mut line: Vec<&LoadPoint> = points.iter().filter(|p| p.backend == backend).collect();
        line.sort_by_key(|p| p.events);
        let full: Vec<(f64, f64)> = line
            .iter()
            .map(|p| (p.events as f64, ms(p.full.0)))
            .collect();
        let snapshot: Vec<(f64, f64)> = line
            .iter()
            .map(|p| (p.events as f64, ms(p.snapshot.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(full.clone(), colour.stroke_width(3)))?
            .label(format!("{backend}, full replay"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        chart.draw_series(
            full.iter()
                .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
        )?;
        chart
            .draw_series(LineSeries::new(snapshot.clone(), colour.stroke_width(1)))?
            .label(format!("{backend}, snapshot every 100"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
            });
        chart.draw_series(
            snapshot
                .iter()
                .map(|&(x, y)| TriangleMarker::new((x, y), 5, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
