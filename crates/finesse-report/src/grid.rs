//! The layer × matrix figures of both papers: layers one way, WQ, WK, WV, WD, WI, WO the
//! other, the groups outside the layers (embeddings, pooler, LayerNorms, classifier) in a side
//! strip. Two forms of one [`GridFigure`]:
//! - **heatmap** ("How fine can fine-tuning be?", Figure 4): one cell per layer × matrix, layer
//!   1 at the top, a labelled colour bar (viridis; log10 when values span decades; diverging for
//!   signed values), value labels on request; several panels share one scale (e.g. a run beside
//!   the random-initialisation reference);
//! - **lines** (its Figure 2): one line per matrix across layers, markers and a legend; a second
//!   panel becomes a grey reference band (its range over the matrices at each layer).

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use finesse_sparse::grid::LayerGrid;

use crate::canvas::{DrawResult, Figure, Style};
use crate::colormap::{ColorScale, ScaleKind, format_value, series_color, text_color_on};
use crate::error::ReportError;
use crate::plots::{draw_legend, legend_line};

/// Which form a layer × matrix figure takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GridStyle {
    /// Cells coloured by value, with a colour bar.
    #[default]
    Heatmap,
    /// One line per matrix across layers.
    Lines,
}

/// One grid of values (`None`: no value for that cell).
#[derive(Clone, Debug, PartialEq)]
pub struct GridPanel {
    /// What this panel shows (printed above it when there are several; the band's legend entry
    /// in the line form).
    pub caption: String,
    /// The values.
    pub grid: LayerGrid<Option<f64>>,
}

/// A layer × matrix figure.
#[derive(Clone, Debug, PartialEq)]
pub struct GridFigure {
    /// The figure kind (`sparsity`, `distance`, `fisher`), for errors.
    pub kind: &'static str,
    /// What is shown.
    pub title: String,
    /// From which run(s).
    pub subtitle: String,
    /// The value's name with its unit, for the colour bar or the value axis.
    pub value_label: String,
    /// The first panel is the figure's; more panels share its scale.
    pub panels: Vec<GridPanel>,
    /// Colour / axis scale.
    pub scale: ScaleKind,
    /// Values are fractions shown as percentages.
    pub percent: bool,
    /// Heatmap or lines.
    pub style: GridStyle,
    /// Print each cell's value in it (heatmap).
    pub show_values: bool,
}

/// The fill of a zero on a log scale.
pub const ZERO_COLOR: RGBColor = RGBColor(255, 255, 255);

impl GridFigure {
    /// Every value of every panel (cells and groups).
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.panels.iter().flat_map(|p| {
            p.grid
                .layers
                .iter()
                .flatten()
                .chain(p.grid.groups.values())
                .filter_map(|v| *v)
        })
    }

    /// Cell by cell `self − other` (first panels; a cell empty in either stays empty), drawn
    /// on the diverging scale: where two runs differ, layer by layer and matrix by matrix.
    /// `names` are the two runs' labels for the subtitle.
    ///
    /// # Errors
    /// [`ReportError::Input`] when the figures are of different kinds or their grids differ
    /// in layers, matrices or groups (models of different shapes).
    pub fn difference(&self, other: &Self, names: (&str, &str)) -> Result<Self, ReportError> {
        let fail = |reason: String| ReportError::Input {
            figure: self.kind,
            reason,
        };
        if self.kind != other.kind || self.value_label != other.value_label {
            return Err(fail(format!(
                "cannot subtract a {} figure ({}) from a {} figure ({})",
                other.kind, other.value_label, self.kind, self.value_label
            )));
        }
        let (Some(a), Some(b)) = (self.panels.first(), other.panels.first()) else {
            return Err(fail("a figure has no panel".into()));
        };
        let (a, b) = (&a.grid, &b.grid);
        if a.num_layers() != b.num_layers()
            || a.matrices != b.matrices
            || !a.groups.keys().eq(b.groups.keys())
        {
            return Err(fail(format!(
                "the runs' models differ ({} layers × {} against {} layers × {})",
                a.num_layers(),
                a.matrices.join(" "),
                b.num_layers(),
                b.matrices.join(" ")
            )));
        }
        let minus = |x: &Option<f64>, y: &Option<f64>| x.zip(*y).map(|(x, y)| x - y);
        let grid = LayerGrid {
            layers: a
                .layers
                .iter()
                .zip(&b.layers)
                .map(|(ra, rb)| ra.iter().zip(rb).map(|(x, y)| minus(x, y)).collect())
                .collect(),
            matrices: a.matrices.clone(),
            groups: a
                .groups
                .iter()
                .map(|(k, x)| (k.clone(), minus(x, &b.groups[k])))
                .collect(),
        };
        Ok(Self {
            kind: self.kind,
            // The title without the first run's own "(method …)" part.
            title: format!(
                "Difference: {}",
                self.title
                    .rsplit_once(" (")
                    .filter(|(_, rest)| rest.ends_with(')'))
                    .map_or(self.title.as_str(), |(head, _)| head)
            ),
            subtitle: format!("{} − {}", names.0, names.1),
            value_label: format!("Δ {}", self.value_label),
            panels: vec![GridPanel {
                caption: format!("{} − {}", names.0, names.1),
                grid,
            }],
            scale: ScaleKind::Diverging,
            percent: self.percent,
            style: self.style,
            show_values: self.show_values,
        })
    }

    fn color_scale(&self) -> ColorScale {
        ColorScale::fit(self.scale, self.values().collect::<Vec<_>>())
    }

    fn has_groups(&self) -> bool {
        self.panels
            .iter()
            .any(|p| p.grid.groups.values().any(Option::is_some))
    }
}

impl Figure for GridFigure {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn default_size(&self) -> (u32, u32) {
        match self.style {
            GridStyle::Heatmap => (380 * self.panels.len() as u32 + 330, 560),
            GridStyle::Lines => (860, 560),
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
    ) -> DrawResult<DB> {
        let body = titled(area, style, &self.title, &self.subtitle)?;
        let scale = self.color_scale();
        match self.style {
            GridStyle::Heatmap => self.draw_heatmap(&body, style, &scale),
            GridStyle::Lines => self.draw_lines(&body, style, &scale),
        }
    }
}

/// Draws the title and subtitle; returns the area below them.
///
/// # Errors
/// plotters' drawing errors.
pub fn titled<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    let area = area.margin(style.px(8.0), 0, 0, 0);
    let body = area.titled(title, style.title())?;
    if subtitle.is_empty() {
        return Ok(body);
    }
    body.titled(subtitle, style.text(14.0).color(&RGBColor(70, 70, 70)))
}

impl GridFigure {
    fn draw_heatmap<DB: DrawingBackend>(
        &self,
        body: &DrawingArea<DB, Shift>,
        style: &Style,
        scale: &ColorScale,
    ) -> DrawResult<DB> {
        let (w, _) = body.dim_in_pixel();
        let bar_w = style.upx(140.0);
        let groups_w = if self.has_groups() {
            style.upx(190.0)
        } else {
            0
        };
        let (main, rest) = body.split_horizontally(w.saturating_sub(bar_w + groups_w));
        let (groups_area, bar_area) = rest.split_horizontally(groups_w);
        let several = self.panels.len() > 1;
        for (panel, panel_area) in self
            .panels
            .iter()
            .zip(main.split_evenly((1, self.panels.len())))
        {
            let caption = if several { panel.caption.as_str() } else { "" };
            self.heatmap_panel(&panel_area, style, scale, &panel.grid, caption)?;
        }
        if groups_w > 0 {
            self.groups_strip(&groups_area, style, scale)?;
        }
        let zeros = scale.log && self.values().any(|v| v <= 0.0);
        color_bar(
            &bar_area,
            style,
            scale,
            &self.value_label,
            self.percent,
            zeros,
        )
    }

    fn heatmap_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
        scale: &ColorScale,
        grid: &LayerGrid<Option<f64>>,
        caption: &str,
    ) -> DrawResult<DB> {
        let layers = grid.num_layers() as u32;
        let columns = grid.matrices.len() as u32;
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(style.px(8.0))
            .x_label_area_size(style.px(44.0))
            .y_label_area_size(style.px(58.0));
        if !caption.is_empty() {
            builder.caption(caption, style.label());
        }
        let mut chart = builder.build_cartesian_2d(segments(columns), segments(layers))?;
        let labels = grid.matrices.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(columns as usize)
            .y_labels(layers as usize)
            .x_label_formatter(&|v| segment_label(v, |i| labels.get(i as usize).cloned()))
            .y_label_formatter(&|v| {
                segment_label(v, |i| (i < layers).then(|| (layers - i).to_string()))
            })
            .x_desc("matrix")
            .y_desc("layer")
            .label_style(style.tick())
            .axis_desc_style(style.label())
            .draw()?;
        let cells = grid.layers.iter().enumerate().flat_map(|(l, row)| {
            row.iter()
                .enumerate()
                .map(move |(m, v)| (m as u32, layers - 1 - l as u32, *v))
        });
        for (m, r, value) in cells {
            self.cell(&mut chart, style, scale, (m, r), 1, value)?;
        }
        Ok(())
    }

    fn cell<DB: DrawingBackend, X, Y>(
        &self,
        chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
        style: &Style,
        scale: &ColorScale,
        (m, r): (u32, u32),
        columns: u32,
        value: Option<f64>,
    ) -> DrawResult<DB>
    where
        X: Ranged<ValueType = SegmentValue<u32>>,
        Y: Ranged<ValueType = SegmentValue<u32>>,
    {
        // On a log scale a zero has no colour: it gets its own (white, "0" printed), never the
        // colour of the smallest value.
        let zero = value.is_some_and(|v| scale.log && v <= 0.0);
        let fill = match value {
            None => RGBColor(225, 225, 225),
            Some(_) if zero => ZERO_COLOR,
            Some(v) => scale.color(v),
        };
        let corners = [
            (SegmentValue::Exact(m), SegmentValue::Exact(r)),
            (SegmentValue::Exact(m + columns), SegmentValue::Exact(r + 1)),
        ];
        // The text's x: a segment's centre, or the boundary in the middle of two segments.
        let x = if columns == 2 {
            SegmentValue::Exact(m + 1)
        } else {
            SegmentValue::CenterOf(m)
        };
        chart.draw_series([Rectangle::new(corners.clone(), fill.filled())])?;
        let edge = if zero { RGBColor(190, 190, 190) } else { WHITE };
        chart.draw_series([Rectangle::new(
            corners,
            edge.stroke_width(style.stroke(1.0)),
        )])?;
        let text = match value {
            Some(_) if zero => "0".into(),
            Some(v) if self.show_values => format_value(v, self.percent),
            None => "n/a".into(),
            Some(_) => return Ok(()),
        };
        let ink = text_color_on(fill);
        let font = style
            .text(12.0)
            .color(&ink)
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart.draw_series([Text::new(text, (x, SegmentValue::CenterOf(r)), font)])?;
        Ok(())
    }

    fn groups_strip<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        style: &Style,
        scale: &ColorScale,
    ) -> DrawResult<DB> {
        let panel = &self.panels[0];
        let groups: Vec<(&String, Option<f64>)> =
            panel.grid.groups.iter().map(|(k, v)| (k, *v)).collect();
        let n = groups.len() as u32;
        // Cells as tall as the heatmap's would be: the strip takes the upper part.
        let mut chart = ChartBuilder::on(area)
            .margin(style.px(8.0))
            .margin_left(style.px(4.0))
            .x_label_area_size(style.px(44.0))
            .y_label_area_size(style.px(98.0))
            .build_cartesian_2d(segments(2), segments(n))?;
        let names: Vec<String> = groups.iter().rev().map(|(k, _)| (*k).clone()).collect();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(1)
            .y_labels(n as usize)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| segment_label(v, |i| names.get(i as usize).cloned()))
            .x_desc("outside the layers")
            .label_style(style.tick())
            .axis_desc_style(style.text(13.0))
            .draw()?;
        for (i, (_, value)) in groups.iter().rev().enumerate() {
            self.cell(&mut chart, style, scale, (0, i as u32), 2, *value)?;
        }
        Ok(())
    }

    fn draw_lines<DB: DrawingBackend>(
        &self,
        body: &DrawingArea<DB, Shift>,
        style: &Style,
        scale: &ColorScale,
    ) -> DrawResult<DB> {
        let panel = &self.panels[0];
        let (_, h) = body.dim_in_pixel();
        let mut note = groups_note(&panel.grid, self.percent);
        let zeros = panel
            .grid
            .layers
            .iter()
            .flatten()
            .flatten()
            .filter(|v| **v <= 0.0)
            .count();
        if scale.log && zeros > 0 {
            let sep = if note.is_empty() { "" } else { " · " };
            note.push_str(&format!("{sep}{zeros} cell(s) at 0 not drawn (log scale)"));
        }
        let (plot, foot) = if note.is_empty() {
            body.split_vertically(h)
        } else {
            body.split_vertically(h.saturating_sub(style.upx(26.0)))
        };
        let layers = panel.grid.num_layers() as u32;
        let axis = scale.axis_range();
        let pad = if scale.log {
            0.1
        } else {
            0.06 * (axis.end - axis.start).abs().max(1e-12)
        };
        let y_range = if scale.log || axis.start != 0.0 {
            (axis.start - pad)..(axis.end + pad)
        } else {
            0.0..(axis.end + pad)
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin(style.px(12.0))
            .margin_right(style.px(24.0))
            .x_label_area_size(style.px(44.0))
            .y_label_area_size(style.px(78.0))
            .build_cartesian_2d((1u32..layers.max(2)).into_segmented(), y_range)?;
        let percent = self.percent;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .x_labels(layers as usize)
            .x_label_formatter(&|v| {
                segment_label(v, |i| (1..=layers).contains(&i).then(|| i.to_string()))
            })
            .y_label_formatter(&|y| format_value(scale.value_at(*y), percent))
            .x_desc("layer")
            .y_desc(self.value_label.as_str())
            .label_style(style.tick())
            .axis_desc_style(style.label())
            .draw()?;
        for reference in &self.panels[1..] {
            reference_band(&mut chart, style, scale, reference)?;
        }
        let at = |l: usize| SegmentValue::CenterOf(l as u32 + 1);
        for (m, name) in panel.grid.matrices.iter().enumerate() {
            let color = series_color(m);
            let points: Vec<_> = panel
                .grid
                .layers
                .iter()
                .enumerate()
                .filter_map(|(l, row)| row.get(m).copied().flatten().map(|v| (l, v)))
                // A log axis has no place for zeros: they are left out (the footnote says so).
                .filter(|(_, v)| !(scale.log && *v <= 0.0))
                .map(|(l, v)| (at(l), scale.axis(v)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    points.clone(),
                    color.stroke_width(style.stroke(2.0)),
                ))?
                .label(name.as_str())
                .legend(legend_line(color));
            draw_markers(&mut chart, &points, m, style.px(4.0), color)?;
        }
        draw_legend(&mut chart, style, SeriesLabelPosition::UpperLeft)?;
        if !note.is_empty() {
            foot.draw_text(
                &note,
                &style.text(13.0).color(&RGBColor(60, 60, 60)),
                (style.px(90.0), 0),
            )?;
        }
        Ok(())
    }
}

/// Draws the markers of series `m`: circles, triangles or squares (told apart without colour).
fn draw_markers<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    points: &[(SegmentValue<u32>, f64)],
    m: usize,
    size: i32,
    color: RGBColor,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = SegmentValue<u32>>,
    Y: Ranged<ValueType = f64>,
{
    let fill = color.filled();
    match m % 3 {
        0 => chart.draw_series(points.iter().map(|p| Circle::new(p.clone(), size, fill)))?,
        1 => chart.draw_series(
            points
                .iter()
                .map(|p| TriangleMarker::new(p.clone(), size + 1, fill)),
        )?,
        _ => chart.draw_series(points.iter().map(|p| {
            EmptyElement::at(p.clone()) + Rectangle::new([(-size, -size), (size, size)], fill)
        }))?,
    };
    Ok(())
}

/// The grey band between the smallest and largest value over the matrices at each layer.
fn reference_band<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    style: &Style,
    scale: &ColorScale,
    panel: &GridPanel,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = SegmentValue<u32>>,
    Y: Ranged<ValueType = f64>,
{
    let range: Vec<(u32, f64, f64)> = panel
        .grid
        .layers
        .iter()
        .enumerate()
        .filter_map(|(l, row)| {
            let values: Vec<f64> = row.iter().filter_map(|v| *v).collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            lo.is_finite()
                .then(|| (l as u32 + 1, scale.axis(lo), scale.axis(hi)))
        })
        .collect();
    let mut outline: Vec<(SegmentValue<u32>, f64)> = range
        .iter()
        .map(|(l, _, hi)| (SegmentValue::CenterOf(*l), *hi))
        .collect();
    outline.extend(
        range
            .iter()
            .rev()
            .map(|(l, lo, _)| (SegmentValue::CenterOf(*l), *lo)),
    );
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series([Polygon::new(outline, grey.mix(0.3).filled())])?
        .label(panel.caption.as_str())
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 20, y + 5)], grey.mix(0.3).filled())
        });
    let mid: Vec<_> = range
        .iter()
        .map(|(l, lo, hi)| (SegmentValue::CenterOf(*l), (lo + hi) / 2.0))
        .collect();
    chart.draw_series(LineSeries::new(mid, grey.stroke_width(style.stroke(1.0))))?;
    Ok(())
}

/// `n` segments 0…n−1 (plotters' integer ranges include their end).
pub(crate) fn segments(
    n: u32,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordu32> {
    (0u32..n.max(1) - 1).into_segmented()
}

/// The label of a segment's centre (`None` and segment ends: no label).
fn segment_label(v: &SegmentValue<u32>, label: impl Fn(u32) -> Option<String>) -> String {
    match v {
        SegmentValue::CenterOf(i) => label(*i).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The groups outside the layers as one line of text (the line form's footnote).
fn groups_note(grid: &LayerGrid<Option<f64>>, percent: bool) -> String {
    let parts: Vec<String> = grid
        .groups
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {}", format_value(v, percent))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("outside the layers: {}", parts.join(" · "))
    }
}

/// Tick values of a colour bar: decades and half decades on a log scale, 1-2-5 steps on a
/// linear one.
pub fn ticks(scale: &ColorScale) -> Vec<f64> {
    let axis = scale.axis_range();
    let (lo, hi) = (axis.start.min(axis.end), axis.start.max(axis.end));
    if scale.log {
        let step = if hi - lo > 4.0 { 1.0 } else { 0.5 };
        let mut t = (lo / step).ceil() * step;
        let mut out = Vec::new();
        while t <= hi + 1e-9 {
            out.push(10f64.powf(t));
            t += step;
        }
        return out;
    }
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * magnitude);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-6 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A vertical colour bar with its ticks, tick labels (left-aligned to its right) and label.
///
/// # Errors
/// plotters' drawing errors.
pub fn color_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    scale: &ColorScale,
    label: &str,
    percent: bool,
    zero_swatch: bool,
) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    let bar = style.px(22.0);
    let (top, bottom, left) = (style.px(16.0), style.px(52.0), style.px(10.0));
    let axis = scale.axis_range();
    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_bottom(bottom)
        .margin_left(left)
        .margin_right((w as i32 - left - bar).max(0))
        .build_cartesian_2d(0f64..1f64, axis.clone())?;
    let steps = 128;
    let span = axis.end - axis.start;
    chart.draw_series((0..steps).map(|i| {
        let (a, b) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        let color = scale.map.at((a + b) / 2.0);
        Rectangle::new(
            [(0.0, axis.start + a * span), (1.0, axis.start + b * span)],
            color.filled(),
        )
    }))?;
    let (bx, by) = area.get_base_pixel();
    let ink = RGBColor(40, 40, 40);
    let font = style.tick().pos(Pos::new(HPos::Left, VPos::Center));
    for t in ticks(scale) {
        let (px, py) = chart.backend_coord(&(1.0, scale.axis(t)));
        let (x, y) = (px - bx, py - by);
        area.draw(&PathElement::new(
            vec![(x, y), (x + style.px(5.0), y)],
            ink.stroke_width(style.stroke(1.0)),
        ))?;
        area.draw(&Text::new(
            format_value(t, percent),
            (x + style.px(8.0), y),
            font.clone(),
        ))?;
    }
    let desc = style
        .label()
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(
        label.to_string(),
        (
            w as i32 - style.px(14.0),
            top + (h as i32 - top - bottom) / 2,
        ),
        desc,
    ))?;
    if zero_swatch {
        let y = h as i32 - bottom + style.px(30.0);
        let swatch = [(left, y - style.px(7.0)), (left + bar, y + style.px(7.0))];
        area.draw(&Rectangle::new(swatch, ZERO_COLOR.filled()))?;
        area.draw(&Rectangle::new(
            swatch,
            RGBColor(150, 150, 150).stroke_width(style.stroke(1.0)),
        ))?;
        area.draw(&Text::new(
            "0",
            (left + bar + style.px(8.0), y),
            font.clone(),
        ))?;
    }
    if scale.log {
        area.draw_text(
            "log scale",
            &style.text(12.0).color(&RGBColor(90, 90, 90)),
            (left, h as i32 - bottom + style.px(12.0)),
        )?;
    }
    Ok(())
}
