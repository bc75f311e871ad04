//! Pictures of a comparison, drawn with plotters as SVG (for reports) and PNG: training
//! reward curves per variant, and each metric's means with their 95% intervals.
//!
//! Text is set in DejaVu Sans, embedded (`data/fonts/`), so plots look the same on every
//! machine and need no system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::compare::Comparison;

const FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSans.ttf");

/// Colours of successive series.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One training run's per-step rewards.
pub struct RewardCurve {
    /// The variant and, when a spec trains more than once, the stage.
    pub label: String,
    pub steps: Vec<f64>,
    pub mean: Vec<f64>,
    pub group_min: Vec<f64>,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; registering it cannot meet a missing file.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing `{what}`: {message}")]
    Draw { what: &'static str, message: String },
    #[error("writing `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn draw_error<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> PlotError {
    move |e| PlotError::Draw {
        what,
        message: format!("{e:?}"),
    }
}

/// Reward mean (solid) and group minimum (dashed) against step, one colour per run.
fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[RewardCurve],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let failed = draw_error::<DrawingAreaErrorKind<DB::ErrorType>>("reward curves");
    root.fill(&WHITE).map_err(&failed)?;
    let last = curves
        .iter()
        .flat_map(|c| c.steps.iter().copied())
        .fold(1.0f64, f64::max);
    let values = curves
        .iter()
        .flat_map(|c| c.mean.iter().chain(&c.group_min).copied());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (low, high) = if low.is_finite() {
        (low, high.max(low + 1e-6))
    } else {
        (0.0, 1.0)
    };
    let pad = (high - low) * 0.05;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Training reward: mean (solid) and group minimum (dashed)",
            ("sans-serif", 20),
        )
        .margin(14)
        .x_label_area_size(38)
        .y_label_area_size(52)
        .build_cartesian_2d(1f64..last.max(2.0), (low - pad)..(high + pad))
        .map_err(&failed)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("reward")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(&failed)?;
    for (i, curve) in curves.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mean: Vec<(f64, f64)> = curve
            .steps
            .iter()
            .copied()
            .zip(curve.mean.iter().copied())
            .collect();
        let minimum: Vec<(f64, f64)> = curve
            .steps
            .iter()
            .copied()
            .zip(curve.group_min.iter().copied())
            .collect();
        chart
            .draw_series(LineSeries::new(mean, colour.stroke_width(2)))
            .map_err(&failed)?
            .label(curve.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(DashedLineSeries::new(minimum, 6, 4, colour.stroke_width(1)))
            .map_err(&failed)?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(&failed)?;
    root.present().map_err(&failed)
}

/// One panel per metric: a bar per (variant, model) with its 95% interval.
fn draw_metrics<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    comparison: &Comparison,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let failed = draw_error::<DrawingAreaErrorKind<DB::ErrorType>>("metric bars");
    root.fill(&WHITE).map_err(&failed)?;
    let mut metrics: Vec<&str> = Vec::new();
    for m in &comparison.metrics {
        if !metrics.contains(&m.metric.as_str()) {
            metrics.push(&m.metric);
        }
    }
    let columns = metrics.len().clamp(1, 3);
    let rows = metrics.len().div_ceil(columns).max(1);
    let panels = root.split_evenly((rows, columns));
    for (metric, panel) in metrics.iter().zip(&panels) {
        let bars: Vec<_> = comparison
            .metrics
            .iter()
            .filter(|m| m.metric == *metric && m.summary.mean.is_finite())
            .collect();
        let labels: Vec<String> = bars
            .iter()
            .map(|m| {
                if comparison.settings.is_empty() {
                    m.model.clone()
                } else {
                    format!("{} {}", m.settings.join(","), m.model)
                }
            })
            .collect();
        let high = bars
            .iter()
            .map(|m| {
                m.summary
                    .ci
                    .map_or(m.summary.mean, |c| c.high)
                    .max(m.summary.mean)
            })
            .fold(0.0f64, f64::max);
        let low = bars
            .iter()
            .map(|m| {
                m.summary
                    .ci
                    .map_or(m.summary.mean, |c| c.low)
                    .min(m.summary.mean)
            })
            .fold(0.0f64, f64::min);
        let top = if high > low { high * 1.1 } else { low + 1.0 };
        let mut chart = ChartBuilder::on(panel)
            .caption(*metric, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(46)
            .build_cartesian_2d(-0.5f64..(bars.len() as f64 - 0.5).max(0.5), low..top)
            .map_err(&failed)?;
        let names = labels.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(&failed)?;
        for (i, m) in bars.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let x = i as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.3, 0.0f64.max(low)), (x + 0.3, m.summary.mean)],
                    colour.mix(0.75).filled(),
                )))
                .map_err(&failed)?;
            if let Some(ci) = m.summary.ci {
                let whisker = BLACK.stroke_width(2);
                chart
                    .draw_series([
                        PathElement::new(vec![(x, ci.low), (x, ci.high)], whisker),
                        PathElement::new(vec![(x - 0.1, ci.low), (x + 0.1, ci.low)], whisker),
                        PathElement::new(vec![(x - 0.1, ci.high), (x + 0.1, ci.high)], whisker),
                    ])
                    .map_err(&failed)?;
            }
        }
    }
    root.present().map_err(&failed)
}

/// The panel grid's size for `comparison`'s metrics.
fn metrics_size(comparison: &Comparison) -> (u32, u32) {
    let mut metrics: Vec<&str> = comparison
        .metrics
        .iter()
        .map(|m| m.metric.as_str())
        .collect();
    metrics.dedup();
    let count = metrics.len().max(1);
    let columns = count.clamp(1, 3) as u32;
    let rows = count.div_ceil(columns as usize) as u32;
    (360 * columns, 280 * rows)
}

const CURVES_SIZE: (u32, u32) = (900, 480);

/// An SVG document of `size` drawn by `draw`.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    register_font();
    let mut text = String::new();
    draw(&SVGBackend::with_string(&mut text, size).into_drawing_area())?;
    Ok(text)
}

/// The reward curves as an SVG document.
pub fn curves_svg(curves: &[RewardCurve]) -> Result<String, PlotError> {
    svg(CURVES_SIZE, |root| draw_curves(root, curves))
}

/// The metric bars as an SVG document.
pub fn metrics_svg(comparison: &Comparison) -> Result<String, PlotError> {
    svg(metrics_size(comparison), |root| {
        draw_metrics(root, comparison)
    })
}

/// Writes `reward_curves.{svg,png}` (when there are curves) and `metrics.{svg,png}` into
/// `dir`; returns the files written.
pub fn write_plots(
    dir: &Path,
    comparison: &Comparison,
    curves: &[RewardCurve],
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let write = |name: &str, text: &str| -> Result<PathBuf, PlotError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| PlotError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    if !curves.is_empty() {
        written.push(write("reward_curves.svg", &curves_svg(curves)?)?);
        let path = dir.join("reward_curves.png");
        {
            let root = BitMapBackend::new(&path, CURVES_SIZE).into_drawing_area();
            draw_curves(&root, curves)?;
        }
        written.push(path);
    }
    written.push(write("metrics.svg", &metrics_svg(comparison)?)?);
    let path = dir.join("metrics.png");
    {
        let root = BitMapBackend::new(&path, metrics_size(comparison)).into_drawing_area();
        draw_metrics(&root, comparison)?;
    }
    written.push(path);
    Ok(written)
}
