//! The layer × matrix heatmap, drawn with egui's painter from the same [`GridFigure`] that
//! `finesse figure` exports: layers top to bottom (layer 1 on top), WQ…WO left to right, the
//! groups outside the layers (embeddings, pooler, LayerNorms, classifier) in a side strip, a
//! colour bar with the figure's ticks. Hovering a cell outlines it and shows its exact value,
//! tensors and counts (in a tooltip and in the read-out line below).
//!
//! Why not `egui_plot::Heatmap`: it has no empty cells (a matrix without a value must not look
//! like zero), no side strip for the groups and no per-cell hover text beyond the value; the
//! grid is small and fixed (at most a few dozen rows), so painting it is simpler than bending
//! a plot to it.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2};
use finesse_report::colormap::text_color_on;
use finesse_report::grid::{GridFigure, ZERO_COLOR, ticks};

use crate::analysis::Heatmap;

const ROW_LABEL_W: f32 = 64.0;
const HEADER_H: f32 = 22.0;
const GAP: f32 = 18.0;
const BAR_W: f32 = 16.0;
const BAR_LABELS_W: f32 = 64.0;

/// Where each cell sits, for drawing and hit-testing.
struct Layout {
    cells: Rect,
    cell: Vec2,
    layers: usize,
    matrices: usize,
    groups: Vec<(String, Option<f64>)>,
    groups_x: f32,
    group_w: f32,
    bar: Rect,
}

/// What the pointer is over.
#[derive(Clone, Debug, PartialEq)]
enum Hit {
    Cell(usize, usize),
    Group(usize),
}

impl Layout {
    fn new(figure: &GridFigure, origin: Pos2, width: f32, max_height: f32) -> Option<Self> {
        let panel = figure.panels.first()?;
        let layers = panel.grid.num_layers();
        let matrices = panel.grid.matrices.len();
        if layers == 0 || matrices == 0 {
            return None;
        }
        let groups: Vec<(String, Option<f64>)> = panel
            .grid
            .groups
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let has_groups = groups.iter().any(|(_, v)| v.is_some());
        let groups = if has_groups { groups } else { Vec::new() };
        let side = if groups.is_empty() { 0.0 } else { GAP + 1.5 } + GAP + BAR_W + BAR_LABELS_W;
        let columns = matrices as f32 + if groups.is_empty() { 0.0 } else { 1.5 };
        let cell_w = ((width - ROW_LABEL_W - side) / columns).clamp(36.0, 120.0);
        let cell_h = ((max_height - HEADER_H) / layers as f32).clamp(12.0, 40.0);
        let cells = Rect::from_min_size(
            origin + Vec2::new(ROW_LABEL_W, HEADER_H),
            Vec2::new(cell_w * matrices as f32, cell_h * layers as f32),
        );
        let groups_x = cells.right() + GAP;
        let group_w = if groups.is_empty() { 0.0 } else { cell_w * 1.5 };
        let bar_x = if groups.is_empty() {
            cells.right() + GAP
        } else {
            groups_x + group_w + GAP
        };
        let bar = Rect::from_min_size(
            Pos2::new(bar_x, cells.top()),
            Vec2::new(BAR_W, cells.height()),
        );
        Some(Self {
            cells,
            cell: Vec2::new(cell_w, cell_h),
            layers,
            matrices,
            groups,
            groups_x,
            group_w,
            bar,
        })
    }

    fn size(&self, origin: Pos2) -> Vec2 {
        Vec2::new(
            self.bar.right() + BAR_LABELS_W - origin.x,
            self.cells.bottom() - origin.y + 4.0,
        )
    }

    fn cell_rect(&self, layer: usize, matrix: usize) -> Rect {
        Rect::from_min_size(
            self.cells.min + Vec2::new(matrix as f32 * self.cell.x, layer as f32 * self.cell.y),
            self.cell,
        )
    }

    fn group_rect(&self, i: usize) -> Rect {
        Rect::from_min_size(
            Pos2::new(self.groups_x, self.cells.top() + i as f32 * self.cell.y),
            Vec2::new(self.group_w, self.cell.y),
        )
    }

    fn hit(&self, pos: Pos2) -> Option<Hit> {
        if self.cells.contains(pos) {
            let m = ((pos.x - self.cells.left()) / self.cell.x) as usize;
            let l = ((pos.y - self.cells.top()) / self.cell.y) as usize;
            return Some(Hit::Cell(l.min(self.layers - 1), m.min(self.matrices - 1)));
        }
        (0..self.groups.len())
            .find(|&i| self.group_rect(i).contains(pos))
            .map(Hit::Group)
    }
}

/// Draws `map` and its read-out line; returns the cell (layer, matrix) clicked, if any.
pub fn show(ui: &mut egui::Ui, map: &Heatmap) -> Option<(usize, usize)> {
    let figure = &map.figure;
    ui.label(egui::RichText::new(&figure.title).strong());
    ui.label(egui::RichText::new(&figure.subtitle).weak());
    ui.add_space(4.0);
    let origin = ui.cursor().min;
    let width = ui.available_width().min(1100.0);
    let max_height = (ui.available_height() - 40.0).max(200.0);
    let Some(layout) = Layout::new(figure, origin, width, max_height) else {
        ui.label("The figure has no cells.");
        return None;
    };
    let (rect, response) = ui.allocate_exact_size(layout.size(origin), Sense::click());
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Image, true, "layer × matrix heatmap")
    });
    let painter = ui.painter_at(rect.expand(2.0));
    let visuals = ui.visuals();
    let text_color = visuals.text_color();
    let empty = visuals.faint_bg_color;
    let font = FontId::proportional(12.0);
    let small = FontId::proportional(11.0);
    let show_values = layout.cell.y >= 15.0 && layout.cell.x >= 44.0;
    let hit = response.hover_pos().and_then(|p| layout.hit(p));
    let clicked = match (&hit, response.clicked()) {
        (Some(Hit::Cell(l, m)), true) => Some((*l, *m)),
        _ => None,
    };

    // A zero on a log scale has no colour: it is drawn as the exported figure draws it
    // (`grid::ZERO_COLOR`), not as the scale's darkest end.
    let zero = |v: f64| map.scale.log && v <= 0.0;
    let fill = |value: Option<f64>| match value {
        None => empty,
        Some(v) if zero(v) => rgb!(ZERO_COLOR),
        Some(v) => rgb!(map.scale.color(v)),
    };
    let label_on = |value: Option<f64>| match value {
        None => text_color,
        Some(v) if zero(v) => rgb!(text_color_on(ZERO_COLOR)),
        Some(v) => rgb!(text_color_on(map.scale.color(v))),
    };

    // Column headers and row labels.
    let panel = &figure.panels[0];
    for (m, name) in panel.grid.matrices.iter().enumerate() {
        let r = layout.cell_rect(0, m);
        painter.text(
            Pos2::new(r.center().x, layout.cells.top() - 4.0),
            Align2::CENTER_BOTTOM,
            name,
            font.clone(),
            text_color,
        );
    }
    let label_every = (14.0 / layout.cell.y).ceil().max(1.0) as usize;
    for l in 0..layout.layers {
        if l % label_every != 0 && l + 1 != layout.layers {
            continue;
        }
        let r = layout.cell_rect(l, 0);
        painter.text(
            Pos2::new(layout.cells.left() - 6.0, r.center().y),
            Align2::RIGHT_CENTER,
            format!("layer {}", l + 1),
            small.clone(),
            text_color,
        );
    }
    // Cells.
    for l in 0..layout.layers {
        for m in 0..layout.matrices {
            let r = layout.cell_rect(l, m);
            let value = map.value(l, m);
            painter.rect_filled(r.shrink(0.5), 0.0, fill(value));
            if show_values {
                painter.text(
                    r.center(),
                    Align2::CENTER_CENTER,
                    map.format(value),
                    small.clone(),
                    label_on(value),
                );
            }
        }
    }
    // Groups outside the layers.
    for (i, (name, value)) in layout.groups.iter().enumerate() {
        let r = layout.group_rect(i);
        painter.rect_filled(r.shrink(0.5), 0.0, fill(*value));
        let text = if show_values {
            format!("{name}\n{}", map.format(*value))
        } else {
            name.clone()
        };
        painter.text(
            r.center(),
            Align2::CENTER_CENTER,
            text,
            FontId::proportional(10.0),
            label_on(*value),
        );
    }
    if !layout.groups.is_empty() {
        painter.text(
            Pos2::new(
                layout.groups_x + layout.group_w / 2.0,
                layout.cells.top() - 4.0,
            ),
            Align2::CENTER_BOTTOM,
            "outside layers",
            small.clone(),
            text_color,
        );
    }
    color_bar(&painter, &layout, map, &small, text_color);

    // Hover: outline and say the exact value.
    let hover_text = hit.as_ref().map(|hit| match hit {
        Hit::Cell(l, m) => {
            painter.rect_stroke(
                layout.cell_rect(*l, *m),
                0.0,
                Stroke::new(2.0, visuals.strong_text_color()),
                StrokeKind::Inside,
            );
            map.hover_text(*l, *m)
        }
        Hit::Group(i) => {
            painter.rect_stroke(
                layout.group_rect(*i),
                0.0,
                Stroke::new(2.0, visuals.strong_text_color()),
                StrokeKind::Inside,
            );
            let (name, value) = &layout.groups[*i];
            let exact = value.map_or_else(|| "no value".into(), |v| format!("{v:.6e}"));
            format!(
                "{name}\n{}: {} (value {exact})",
                figure.value_label,
                map.format(*value)
            )
        }
    });
    match hover_text {
        Some(text) => {
            response.on_hover_text_at_pointer(text.clone());
            ui.label(text.replace('\n', " · "));
        }
        None => {
            ui.label(
                egui::RichText::new(
                    "Hover a cell for its exact value, tensors and counts; click it for its \
                     matrices in detail.",
                )
                .weak(),
            );
        }
    }
    clicked
}

fn color_bar(
    painter: &egui::Painter,
    layout: &Layout,
    map: &Heatmap,
    font: &FontId,
    text: Color32,
) {
    let bar = layout.bar;
    let steps = 64;
    let range = map.scale.axis_range();
    for i in 0..steps {
        // Top = max.
        let t0 = i as f32 / steps as f32;
        let t1 = (i + 1) as f32 / steps as f32;
        let x = range.end - (range.end - range.start) * (f64::from(t0) + 0.5 / steps as f64);
        let color = rgb!(map.scale.color(map.scale.value_at(x)));
        let r = Rect::from_min_max(
            Pos2::new(bar.left(), bar.top() + t0 * bar.height()),
            Pos2::new(bar.right(), bar.top() + t1 * bar.height() + 0.5),
        );
        painter.rect_filled(r, 0.0, color);
    }
    painter.rect_stroke(
        bar,
        0.0,
        Stroke::new(1.0, text.gamma_multiply(0.5)),
        StrokeKind::Outside,
    );
    let span = range.end - range.start;
    for tick in ticks(&map.scale) {
        let x = map.scale.axis(tick);
        if span <= 0.0 || !x.is_finite() {
            continue;
        }
        let t = ((range.end - x) / span) as f32;
        if !(0.0..=1.0).contains(&t) {
            continue;
        }
        let y = bar.top() + t * bar.height();
        painter.line_segment(
            [Pos2::new(bar.right(), y), Pos2::new(bar.right() + 4.0, y)],
            Stroke::new(1.0, text),
        );
        painter.text(
            Pos2::new(bar.right() + 6.0, y),
            Align2::LEFT_CENTER,
            map.format(Some(tick)),
            font.clone(),
            text,
        );
    }
    painter.text(
        Pos2::new(bar.center().x, bar.top() - 4.0),
        Align2::CENTER_BOTTOM,
        if map.scale.log { "log scale" } else { "" },
        font.clone(),
        text,
    );
}
