//! The run figures' drawing: line panels ([`LinesFigure`]: curves, sweeps, distance against
//! steps), histograms ([`HistogramFigure`]: weight magnitudes) and labelled square matrices
//! ([`MatrixFigure`]: mask overlaps between runs).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::canvas::{DrawResult, Figure, Style};
use crate::colormap::{ColorMap, ColorScale, format_value, series_color, text_color_on};
use crate::grid::{color_bar, titled};

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Stroke {
    /// A solid line with markers at its points (few points).
    #[default]
    Markers,
    /// A solid line.
    Solid,
    /// A thin, light line behind the others (raw values under a smoothed curve).
    Faint,
}

/// One line of a panel.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Series {
    /// Legend text (empty: not in the legend).
    pub label: String,
    /// (x, y) points in order of x.
    pub points: Vec<(f64, f64)>,
    /// ± error bars per point (standard deviations), if any.
    pub errors: Option<Vec<f64>>,
    /// Index into the palette.
    pub color: usize,
    /// How it is drawn.
    pub stroke: Stroke,
}

/// One plot of a [`LinesFigure`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Panel {
    /// Axis description of x, with its unit.
    pub x_label: String,
    /// Axis description of y, with its unit.
    pub y_label: String,
    /// log10 x axis.
    pub x_log: bool,
    /// log10 y axis (points ≤ 0 left out).
    pub y_log: bool,
    /// y values are fractions shown as percentages.
    pub y_percent: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Draw the legend in this panel.
    pub legend: bool,
}

/// Panels of lines stacked top to bottom, under one title.
#[derive(Clone, Debug, PartialEq)]
pub struct LinesFigure {
    /// The figure kind, for errors.
    pub kind: &'static str,
    /// What is shown.
    pub title: String,
    /// From which runs.
    pub subtitle: String,
    /// The panels; each takes `heights[i]` of the height (equal when empty).
    pub panels: Vec<Panel>,
    /// Relative panel heights.
    pub heights: Vec<f64>,
}

impl Figure for LinesFigure {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn default_size(&self) -> (u32, u32) {
        (900, 250 + 240 * self.panels.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
    ) -> DrawResult<DB> {
        let mut rest = titled(area, style, &self.title, &self.subtitle)?;
        let total: f64 = if self.heights.len() == self.panels.len() {
            self.heights.iter().sum()
        } else {
            self.panels.len() as f64
        };
        for (i, panel) in self.panels.iter().enumerate() {
            let share = self.heights.get(i).copied().unwrap_or(1.0) / total.max(1e-9);
            let (_, h) = rest.dim_in_pixel();
            let remaining: f64 = if self.heights.len() == self.panels.len() {
                self.heights[i..].iter().sum::<f64>() / total
            } else {
                (self.panels.len() - i) as f64 / total
            };
            let this = ((h as f64) * share / remaining.max(1e-9)).round() as u32;
            let (top, bottom) = rest.split_vertically(this.min(h));
            draw_panel(&top, style, panel)?;
            rest = bottom;
        }
        Ok(())
    }
}

/// The legend of a chart: the figures' one style (light box, grey border, tick-size text).
///
/// # Errors
/// plotters' drawing errors.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    style: &Style,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.88))
        .border_style(RGBColor(180, 180, 180))
        .label_font(style.tick())
        .draw()
}

/// A legend entry's swatch: a short line in the series' colour.
pub(crate) fn legend_line(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    lo.is_finite().then_some((lo, hi))
}

fn padded((lo, hi): (f64, f64), fraction: f64) -> std::ops::Range<f64> {
    let span = if hi > lo { hi - lo } else { lo.abs().max(1e-3) };
    (lo - fraction * span)..(hi + fraction * span)
}

/// Legend entries a panel draws.
fn legend_rows(panel: &Panel) -> usize {
    if panel.legend {
        panel.series.iter().filter(|s| !s.label.is_empty()).count()
    } else {
        0
    }
}

/// The y range with room at the top for a legend of `rows` entries (it sits in the upper right).
fn y_range((lo, hi): (f64, f64), rows: usize) -> std::ops::Range<f64> {
    let span = if hi > lo { hi - lo } else { lo.abs().max(1e-3) };
    let top = if rows == 0 {
        0.08
    } else {
        0.12 + 0.09 * rows as f64
    };
    (lo - 0.08 * span)..(hi + top * span)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    panel: &Panel,
) -> DrawResult<DB> {
    // A log axis has no place for x ≤ 0: such points are left out (NaN).
    let tx = |x: f64| match panel.x_log {
        true if x > 0.0 => x.log10(),
        true => f64::NAN,
        false => x,
    };
    let ty = |y: f64| match panel.y_log {
        true if y > 0.0 => y.log10(),
        true => f64::NAN,
        false => y,
    };
    let xs = bounds(
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| tx(p.0))),
    );
    let ys = bounds(panel.series.iter().flat_map(|s| {
        s.points.iter().enumerate().flat_map(move |(i, p)| {
            let e = s
                .errors
                .as_ref()
                .and_then(|e| e.get(i))
                .copied()
                .unwrap_or(0.0);
            [ty(p.1 - e), ty(p.1 + e)]
        })
    }));
    let (Some(xs), Some(ys)) = (xs, ys) else {
        area.draw_text(
            &format!("{}: no data yet", panel.y_label),
            &style.label(),
            (style.px(90.0), style.px(20.0)),
        )?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .margin(style.px(10.0))
        .margin_right(style.px(24.0))
        .x_label_area_size(style.px(42.0))
        .y_label_area_size(style.px(78.0))
        .build_cartesian_2d(padded(xs, 0.03), y_range(ys, legend_rows(panel)))?;
    let (x_log, y_log, percent) = (panel.x_log, panel.y_log, panel.y_percent);
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|x| {
            if x_log {
                format_value(10f64.powf(*x), false)
            } else {
                format_value(*x, false)
            }
        })
        .y_label_formatter(&|y| format_value(if y_log { 10f64.powf(*y) } else { *y }, percent))
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .label_style(style.tick())
        .axis_desc_style(style.label())
        .draw()?;
    for series in &panel.series {
        draw_series(&mut chart, style, series, (tx, ty))?;
    }
    if panel.legend && panel.series.iter().any(|s| !s.label.is_empty()) {
        draw_legend(&mut chart, style, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

/// An (x, y) pair, or an error bar's (low, high).
type Point = (f64, f64);

fn draw_series<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    style: &Style,
    series: &Series,
    (tx, ty): (impl Fn(f64) -> f64, impl Fn(f64) -> f64),
) -> DrawResult<DB> {
    let color = series_color(series.color);
    // Points and their error bars are kept or dropped together, and a bar is y ± e transformed
    // like y (so a log axis draws it right).
    let kept: Vec<(Point, Option<Point>)> = series
        .points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            let e = series
                .errors
                .as_ref()
                .and_then(|e| e.get(i))
                .copied()
                .unwrap_or(0.0);
            let bar = (e > 0.0).then(|| (ty(y - e), ty(y + e)));
            ((tx(x), ty(y)), bar)
        })
        .filter(|((x, y), _)| x.is_finite() && y.is_finite())
        .collect();
    let points: Vec<(f64, f64)> = kept.iter().map(|(p, _)| *p).collect();
    let line = match series.stroke {
        Stroke::Faint => color.mix(0.3).stroke_width(style.stroke(1.0)),
        _ => color.stroke_width(style.stroke(2.0)),
    };
    let drawn = chart.draw_series(LineSeries::new(points.clone(), line))?;
    if !series.label.is_empty() {
        drawn
            .label(series.label.as_str())
            .legend(legend_line(color));
    }
    if series.stroke == Stroke::Markers {
        let size = style.px(4.0);
        chart.draw_series(points.iter().map(|p| Circle::new(*p, size, color.filled())))?;
    }
    let cap = style.px(5.0) as u32;
    chart.draw_series(kept.iter().filter_map(|&((x, y), bar)| {
        let (lo, hi) = bar.filter(|(lo, hi)| lo.is_finite() && hi.is_finite())?;
        Some(ErrorBar::new_vertical(
            x,
            lo,
            y,
            hi,
            color.stroke_width(style.stroke(1.5)),
            cap,
        ))
    }))?;
    Ok(())
}

/// Overlaid histograms of several value sets (step outlines over light fills).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramFigure {
    /// The figure kind, for errors.
    pub kind: &'static str,
    /// What is shown.
    pub title: String,
    /// From which run.
    pub subtitle: String,
    /// Axis description of the values.
    pub x_label: String,
    /// (legend text, values) per set.
    pub sets: Vec<(String, Vec<f64>)>,
    /// Number of bins over the range of all values.
    pub bins: usize,
}

impl HistogramFigure {
    /// Bin edges and each set's counts.
    pub fn counts(&self) -> Option<(Vec<f64>, Vec<Vec<usize>>)> {
        let (lo, hi) = bounds(self.sets.iter().flat_map(|(_, v)| v.iter().copied()))?;
        let bins = self.bins.max(1);
        let width = if hi > lo {
            (hi - lo) / bins as f64
        } else {
            1.0
        };
        let edges = (0..=bins).map(|i| lo + i as f64 * width).collect();
        let counts = self
            .sets
            .iter()
            .map(|(_, values)| {
                let mut c = vec![0usize; bins];
                for v in values.iter().filter(|v| v.is_finite()) {
                    let i = (((v - lo) / width) as usize).min(bins - 1);
                    c[i] += 1;
                }
                c
            })
            .collect();
        Some((edges, counts))
    }
}

impl Figure for HistogramFigure {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn default_size(&self) -> (u32, u32) {
        (900, 540)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
    ) -> DrawResult<DB> {
        let body = titled(area, style, &self.title, &self.subtitle)?;
        let Some((edges, counts)) = self.counts() else {
            body.draw_text(
                "no values",
                &style.label(),
                (style.px(90.0), style.px(20.0)),
            )?;
            return Ok(());
        };
        let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        let (lo, hi) = (edges[0], edges[edges.len() - 1]);
        let mut chart = ChartBuilder::on(&body)
            .margin(style.px(10.0))
            .margin_right(style.px(24.0))
            .x_label_area_size(style.px(42.0))
            .y_label_area_size(style.px(78.0))
            .build_cartesian_2d(padded((lo, hi), 0.02), 0f64..top * 1.08)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .x_label_formatter(&|x| format_value(*x, false))
            .y_label_formatter(&|y| format_value(*y, false))
            .x_desc(self.x_label.as_str())
            .y_desc("entries")
            .label_style(style.tick())
            .axis_desc_style(style.label())
            .draw()?;
        for (i, ((label, _), c)) in self.sets.iter().zip(&counts).enumerate() {
            let color = series_color(i);
            let mut outline = vec![(edges[0], 0.0)];
            for (b, n) in c.iter().enumerate() {
                outline.push((edges[b], *n as f64));
                outline.push((edges[b + 1], *n as f64));
            }
            outline.push((edges[edges.len() - 1], 0.0));
            chart.draw_series([Polygon::new(outline.clone(), color.mix(0.15).filled())])?;
            let total: usize = c.iter().sum();
            chart
                .draw_series(LineSeries::new(
                    outline,
                    color.stroke_width(style.stroke(2.0)),
                ))?
                .label(format!("{label} ({total} entries)"))
                .legend(legend_line(color));
        }
        draw_legend(&mut chart, style, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

/// Square matrices of values in [0, 1] with row and column labels, side by side, each cell
/// labelled with its value (e.g. the overlap of runs' masks beside what random masks would give).
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixFigure {
    /// The figure kind, for errors.
    pub kind: &'static str,
    /// What is shown.
    pub title: String,
    /// What it is over.
    pub subtitle: String,
    /// Row (= column) labels.
    pub labels: Vec<String>,
    /// (caption, values[row][column]) per panel.
    pub panels: Vec<(String, Vec<Vec<f64>>)>,
    /// Axis descriptions: rows, columns.
    pub axes: (String, String),
    /// The colour bar's label.
    pub value_label: String,
}

impl Figure for MatrixFigure {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn default_size(&self) -> (u32, u32) {
        let n = self.labels.len().max(2) as u32;
        let panel = 260 + 70 * n;
        (
            panel * self.panels.len().max(1) as u32 + 130,
            panel.max(360) + 90,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
    ) -> DrawResult<DB> {
        let body = titled(area, style, &self.title, &self.subtitle)?;
        let scale = ColorScale::linear(ColorMap::Viridis, 0.0, 1.0);
        let (w, _) = body.dim_in_pixel();
        let bar_w = style.upx(140.0);
        let (main, bar) = body.split_horizontally(w.saturating_sub(bar_w));
        for ((caption, values), panel_area) in self
            .panels
            .iter()
            .zip(main.split_evenly((1, self.panels.len().max(1))))
        {
            self.matrix_panel(&panel_area, style, &scale, caption, values)?;
        }
        color_bar(&bar, style, &scale, &self.value_label, true, false)
    }
}

impl MatrixFigure {
    fn matrix_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
        scale: &ColorScale,
        caption: &str,
        values: &[Vec<f64>],
    ) -> DrawResult<DB> {
        let n = self.labels.len() as u32;
        let longest = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(4) as f64;
        let mut chart = ChartBuilder::on(area)
            .margin(style.px(8.0))
            .caption(caption, style.label())
            .x_label_area_size(style.px(44.0))
            .y_label_area_size(style.px(30.0 + 7.5 * longest))
            .build_cartesian_2d(crate::grid::segments(n), crate::grid::segments(n))?;
        let labels = &self.labels;
        let label = |v: &SegmentValue<u32>, flip: bool| match v {
            SegmentValue::CenterOf(i) if *i < n => {
                let i = if flip { n - 1 - i } else { *i };
                labels[i as usize].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n as usize)
            .y_labels(n as usize)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .x_desc(self.axes.1.as_str())
            .y_desc(self.axes.0.as_str())
            .label_style(style.tick())
            .axis_desc_style(style.label())
            .draw()?;
        for (r, row) in values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let (x, y) = (c as u32, n - 1 - r as u32);
                let fill = scale.color(v);
                let corners = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series([Rectangle::new(corners.clone(), fill.filled())])?;
                chart.draw_series([Rectangle::new(
                    corners,
                    WHITE.stroke_width(style.stroke(1.0)),
                )])?;
                let ink = text_color_on(fill);
                let font = style
                    .text(13.0)
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series([Text::new(
                    format_value(v, true),
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    font,
                )])?;
            }
        }
        Ok(())
    }
}
