//! Plots for the report, each written as SVG and PNG (plotters; text drawn with an embedded
//! DejaVu Sans so PNGs render the same on machines without fonts).

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{EvalError, Result};

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Output {
        path: path.to_path_buf(),
        message: format!("plot: {e}"),
    }
}

/// A plot that can be drawn on any backend.
pub trait Plot {
    /// Draws itself on `area`.
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Renders `plot` to `<dir>/<stem>.svg` and `<dir>/<stem>.png`.
pub fn render(
    plot: &impl Plot,
    dir: &Path,
    stem: &str,
    size: (u32, u32),
) -> Result<(PathBuf, PathBuf)> {
    FONT.call_once(|| {
        // The embedded font is valid; a failure would only mean text falls back to nothing.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
    std::fs::create_dir_all(dir).map_err(|e| plot_err(dir, e))?;
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    {
        let area = SVGBackend::new(&svg, size).into_drawing_area();
        area.fill(&WHITE).map_err(|e| plot_err(&svg, e))?;
        plot.draw(&area).map_err(|e| plot_err(&svg, e))?;
        area.present().map_err(|e| plot_err(&svg, e))?;
    }
    {
        let area = BitMapBackend::new(&png, size).into_drawing_area();
        area.fill(&WHITE).map_err(|e| plot_err(&png, e))?;
        plot.draw(&area).map_err(|e| plot_err(&png, e))?;
        area.present().map_err(|e| plot_err(&png, e))?;
    }
    Ok((svg, png))
}

fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Several named lines over a shared x axis.
pub struct LinePlot {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// x values.
    pub x: Vec<f64>,
    /// `(name, y values)` per line (NaN points are skipped).
    pub series: Vec<(String, Vec<f64>)>,
}

impl Plot for LinePlot {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let (x0, x1) = finite_range(self.x.iter().copied());
        let (y0, y1) = finite_range(self.series.iter().flat_map(|(_, y)| y.iter().copied()));
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        for (i, (name, y)) in self.series.iter().enumerate() {
            let c = color(i);
            let pts: Vec<(f64, f64)> = self
                .x
                .iter()
                .zip(y)
                .filter(|(_, y)| y.is_finite())
                .map(|(&x, &y)| (x, y))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(s)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(s)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        Ok(())
    }
}

/// Grouped bars: categories on x, one bar per series in each category.
pub struct BarPlot {
    /// Title.
    pub title: String,
    /// y-axis label.
    pub y_label: String,
    /// Category names.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`.
    pub series: Vec<(String, Vec<f64>)>,
}

impl Plot for BarPlot {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let n_cat = self.categories.len().max(1);
        let n_ser = self.series.len().max(1);
        let (mut y0, mut y1) =
            finite_range(self.series.iter().flat_map(|(_, v)| v.iter().copied()));
        y0 = y0.min(0.0);
        y1 = y1.max(0.0);
        let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 * 78 / 100);
        let mut chart = ChartBuilder::on(&top)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .y_label_area_size(60)
            .x_label_area_size(10)
            .build_cartesian_2d(0f64..n_cat as f64, y0..y1)
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        let width = 0.8 / n_ser as f64;
        for (si, (name, vals)) in self.series.iter().enumerate() {
            let c = color(si);
            chart
                .draw_series(vals.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
                    |(ci, &v)| {
                        let x = ci as f64 + 0.1 + si as f64 * width;
                        Rectangle::new([(x, 0.0), (x + width * 0.95, v)], c.filled())
                    },
                ))
                .map_err(s)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        // Category labels, rotated so that long names fit.
        let (w, _) = bottom.dim_in_pixel();
        let left = 72i32;
        let step = (w as i32 - left - 12) as f64 / n_cat as f64;
        for (ci, name) in self.categories.iter().enumerate() {
            let x = left + (step * (ci as f64 + 0.5)) as i32;
            let style =
                TextStyle::from(("sans-serif", 13).into_font()).transform(FontTransform::Rotate90);
            bottom
                .draw(&Text::new(name.clone(), (x, 4), style))
                .map_err(s)?;
        }
        Ok(())
    }
}

/// A histogram of standardised values with the N(0,1) density over it.
pub struct HistogramPlot {
    /// Title.
    pub title: String,
    /// Bin edges (`len = counts.len() + 1`).
    pub edges: Vec<f64>,
    /// Probability density in each bin.
    pub density: Vec<f64>,
}

impl Plot for HistogramPlot {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let x0 = self.edges.first().copied().unwrap_or(-4.0);
        let x1 = self.edges.last().copied().unwrap_or(4.0);
        let normal = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let ymax = self.density.iter().copied().fold(0.4f64, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("standardised pre-activation")
            .y_desc("density")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        let c = color(0);
        chart
            .draw_series(self.density.iter().enumerate().map(|(i, &d)| {
                Rectangle::new(
                    [(self.edges[i], 0.0), (self.edges[i + 1], d)],
                    c.mix(0.6).filled(),
                )
            }))
            .map_err(s)?
            .label("neuron")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.mix(0.6).filled())
            });
        let red = color(1);
        let n = 400;
        chart
            .draw_series(LineSeries::new(
                (0..=n).map(|i| {
                    let x = x0 + (x1 - x0) * i as f64 / n as f64;
                    (x, normal(x))
                }),
                red.stroke_width(2),
            ))
            .map_err(s)?
            .label("N(0, 1)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        Ok(())
    }
}
