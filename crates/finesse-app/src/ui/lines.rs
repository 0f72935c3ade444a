//! The papers' line form of a layer × matrix figure: one line per matrix (WQ…WO) across the
//! layers, drawn with `egui_plot` from the same [`Heatmap`] (so the same values, and the
//! export of this form is `finesse figure … --style lines`). A figure on a log scale (as the
//! heatmap's fitted colour scale says) is plotted as log10 of its values (egui_plot has no log
//! axis); zero and empty cells leave gaps. The groups
//! outside the layers are listed under the plot.

use egui_plot::{HoverPosition, Legend, Line, Plot, PlotPoints, Points};
use finesse_report::colormap::{format_value, series_color};

use crate::analysis::Heatmap;

/// Draws `map` as lines.
pub fn show(ui: &mut egui::Ui, map: &Heatmap) {
    let Some(panel) = map.figure.panels.first() else {
        return;
    };
    // The heatmap's fitted scale decides, so both forms agree on log or linear.
    let log = map.scale.log;
    let percent = map.figure.percent;
    let y_of = |v: f64| -> Option<f64> {
        match (log, percent) {
            (true, true) if v > 0.0 => Some((v * 100.0).log10()),
            (true, false) if v > 0.0 => Some(v.log10()),
            (true, _) => None,
            (false, true) => Some(v * 100.0),
            (false, false) => Some(v),
        }
    };
    let label = if log {
        format!("log10 {}", map.figure.value_label)
    } else {
        map.figure.value_label.clone()
    };
    let height = (ui.available_height() - 60.0).clamp(220.0, 520.0);
    Plot::new("layer-lines")
        .legend(Legend::default().follow_insertion_order(true))
        .height(height)
        .x_axis_label("layer")
        .y_axis_label(label)
        .allow_scroll(false)
        .label_formatter(move |hover| {
            let HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } = hover
            else {
                return None;
            };
            let value = if log && percent {
                10f64.powf(position.y) / 100.0
            } else if log {
                10f64.powf(position.y)
            } else if percent {
                position.y / 100.0
            } else {
                position.y
            };
            Some(format!(
                "{plot_name}\nlayer {:.0}: {}",
                position.x,
                format_value(value, percent)
            ))
        })
        .show(ui, |plot| {
            for (m, matrix) in panel.grid.matrices.iter().enumerate() {
                let points: Vec<[f64; 2]> = panel
                    .grid
                    .layers
                    .iter()
                    .enumerate()
                    .filter_map(|(l, row)| {
                        let y = y_of((*row.get(m)?)?)?;
                        Some([(l + 1) as f64, y])
                    })
                    .collect();
                // finesse figure's palette, on the line and its points alike.
                let c = series_color(m);
                let color = egui::Color32::from_rgb(c.0, c.1, c.2);
                plot.line(Line::new(matrix.clone(), PlotPoints::from(points.clone())).color(color));
                plot.points(
                    Points::new(matrix.clone(), PlotPoints::from(points))
                        .radius(3.0)
                        .color(color),
                );
            }
        });
    let groups: Vec<String> = panel
        .grid
        .groups
        .iter()
        .map(|(name, v)| format!("{name} {}", map.format(*v)))
        .collect();
    if !groups.is_empty() {
        ui.label(format!("Outside the layers: {}", groups.join(" · ")));
    }
}
