//! The window of a clicked heatmap cell: per tensor, the entries kept (or changed) per output
//! row and per input column, and the histogram of the changes.

use egui::RichText;
use egui_plot::{Bar, BarChart, Plot};

use crate::app::FinesseApp;
use crate::details::{TensorDetails, histogram};
use crate::format;

/// Draws the details window while the open run has one.
pub fn window(app: &mut FinesseApp, ctx: &egui::Context) {
    let Some(open) = &mut app.open else {
        return;
    };
    let Some(details) = &open.details else {
        return;
    };
    let mut keep_open = true;
    egui::Window::new(format!("Cell details: {}", details.title))
        .id(egui::Id::unique("finesse-cell-details"))
        .open(&mut keep_open)
        .default_width(760.0)
        .default_height(700.0)
        .default_pos(ctx.content_rect().right_top() + egui::vec2(-790.0, 60.0))
        .resizable(true)
        .show(ctx, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                for note in &details.notes {
                    ui.label(RichText::new(note).weak());
                }
                if details.tensors.is_empty() {
                    ui.label("No tensor of this cell is in the run's mask or diff.");
                }
                for (i, t) in details.tensors.iter().enumerate() {
                    tensor(ui, i, t);
                    ui.separator();
                }
            });
        });
    if !keep_open {
        open.details = None;
    }
}

fn bars(values: &[u32]) -> Vec<Bar> {
    values
        .iter()
        .enumerate()
        .map(|(i, &n)| Bar::new(i as f64, f64::from(n)).width(1.0))
        .collect()
}

fn tensor(ui: &mut egui::Ui, i: usize, t: &TensorDetails) {
    ui.label(RichText::new(&t.name).strong());
    let (rows, cols) = t.rows_and_cols_touched();
    let shape = t
        .shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" × ");
    let spread = if t.per_col.is_empty() {
        format!("in {rows} of {} entries", t.per_row.len())
    } else {
        format!(
            "in {rows} of {} rows (output units) and {cols} of {} columns (input features)",
            t.per_row.len(),
            t.per_col.len()
        )
    };
    ui.label(format!(
        "shape {shape}: {} entries {}, {spread}",
        format::count(t.counted_total() as usize),
        t.counted
    ));
    let height = 120.0;
    ui.columns(if t.per_col.is_empty() { 1 } else { 2 }, |cols_ui| {
        cols_ui[0].label(format!("entries {} per row", t.counted));
        Plot::new(("per-row", i))
            .height(height)
            .x_axis_label("row (output unit)")
            .allow_scroll(false)
            .show(&mut cols_ui[0], |plot| {
                plot.bar_chart(BarChart::new("per row", bars(&t.per_row)));
            });
        if let Some(ui) = cols_ui.get_mut(1) {
            ui.label(format!("entries {} per column", t.counted));
            Plot::new(("per-col", i))
                .height(height)
                .x_axis_label("column (input feature)")
                .allow_scroll(false)
                .show(ui, |plot| {
                    plot.bar_chart(BarChart::new("per column", bars(&t.per_col)));
                });
        }
    });
    if t.changes.is_empty() {
        return;
    }
    let abs_max = t.changes.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    ui.label(format!(
        "changes of the {} changed entries (fine-tuned − base), largest |Δ| {abs_max:.3e}",
        format::count(t.changes.len())
    ));
    let hist: Vec<Bar> = histogram(&t.changes, 40)
        .into_iter()
        .map(|(x, w, n)| Bar::new(x, n as f64).width(w))
        .collect();
    Plot::new(("changes", i))
        .height(height + 20.0)
        .x_axis_label("fine-tuned − base")
        .y_axis_label("entries")
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("changes", hist));
        });
}
