//! Runs side by side: the training loss (smoothed) and the main dev metric of every compared run
//! on one plot each, one colour per run, and a table of what each run is and where it ended.

use egui::RichText;
use egui_extras::{Column as TableColumn, TableBuilder};
use egui_plot::{Legend, Line, Plot, Points};
use finesse_report::colormap::series_color;

use crate::analysis::HeatmapKind;
use crate::app::FinesseApp;
use crate::compare::{Compare, loss_curve, metric_curve, row};
use crate::format;
use crate::table::Column;

/// Draws the comparison (the app has one).
pub fn show(app: &mut FinesseApp, ui: &mut egui::Ui) {
    let Some(compare) = &mut app.compare else {
        return;
    };
    let mut open = None;
    ui.horizontal(|ui| {
        ui.heading(format!("{} runs side by side", compare.runs.len()));
        ui.separator();
        let label = ui.label("Loss smoothing");
        ui.add(egui::Slider::new(&mut app.settings.smoothing, 0.0..=0.999).fixed_decimals(3))
            .labelled_by(label.id)
            .on_hover_text("Exponential moving average weight, debiased as in TensorBoard");
    });
    ui.add_space(4.0);
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            summary_table(compare, ui, &mut open);
            ui.add_space(8.0);
            curves(compare, app.settings.smoothing, ui);
            masks(compare, ui);
            difference(compare, ui);
        });
    if let Some(path) = open {
        app.open_run(&path);
    }
}

fn color(i: usize) -> egui::Color32 {
    rgb!(series_color(i))
}

/// One row per run: the runs table's columns and every final dev metric.
fn summary_table(compare: &Compare, ui: &mut egui::Ui, open: &mut Option<std::path::PathBuf>) {
    let (metrics, values) = compare.final_metrics();
    let columns = [
        Column::Name,
        Column::Task,
        Column::Method,
        Column::Budget,
        Column::Lr,
        Column::Status,
        Column::Best,
        Column::Duration,
    ];
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 8.0;
    let mut builder = TableBuilder::new(ui)
        .id_salt("compare-table")
        .striped(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .auto_shrink([false, true]);
    for column in columns {
        let width = match column {
            Column::Name => 170.0,
            Column::Status | Column::Best => 120.0,
            _ => 80.0,
        };
        builder = builder.column(TableColumn::initial(width).at_least(40.0).clip(true));
    }
    for _ in &metrics {
        builder = builder.column(TableColumn::initial(90.0).at_least(50.0));
    }
    builder
        .header(row_height + 2.0, |mut header| {
            for column in columns {
                header.col(|ui| {
                    ui.strong(column.title());
                });
            }
            for metric in &metrics {
                header.col(|ui| {
                    ui.strong(metric);
                });
            }
        })
        .body(|mut body| {
            for (i, live) in compare.runs.iter().enumerate() {
                let r = row(live);
                body.row(row_height, |mut table_row| {
                    for column in columns {
                        table_row.col(|ui| {
                            let text = r.cell(column);
                            if column == Column::Name {
                                let name = RichText::new(text).strong().color(color(i));
                                if ui
                                    .add(egui::Button::new(name).frame(false))
                                    .on_hover_text(format!("Open {}", r.path.display()))
                                    .clicked()
                                {
                                    *open = Some(r.path.clone());
                                }
                            } else {
                                ui.label(text);
                            }
                        });
                    }
                    for value in &values[i] {
                        table_row.col(|ui| {
                            ui.label(value.map_or_else(|| "—".to_string(), format::metric));
                        });
                    }
                });
            }
        });
}

/// A plot against the step, its x axis and cursor linked to the other plots of the view.
fn step_plot(id: &str, height: f32, link: egui::Id, legend: Legend) -> Plot<'_> {
    Plot::new(id)
        .height(height)
        .legend(legend)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .include_x(0.0)
        .x_axis_label("step")
}

/// The smoothed training loss and the main dev metric of every run, one colour per run.
fn curves(compare: &Compare, smoothing: f64, ui: &mut egui::Ui) {
    let metric = compare.main_metric();
    let link = egui::Id::unique("compare-steps");
    let height = (ui.available_height() * 0.85).clamp(180.0, 520.0);
    ui.columns(2, |cols| {
        let left = &mut cols[0];
        left.strong("Training loss (smoothed)");
        step_plot("compare-loss", height, link, Legend::default()).show(left, |plot| {
            for (i, live) in compare.runs.iter().enumerate() {
                let name = row(live).name;
                plot.line(Line::new(name, loss_curve(live, smoothing)).color(color(i)));
            }
        });
        let right = &mut cols[1];
        let Some(metric) = metric else {
            right.strong("Dev metric");
            right.label(RichText::new("No run has been evaluated yet.").weak());
            return;
        };
        right.strong(format!("Dev {metric}"));
        // Metrics rise: the lower right corner is the free one.
        let legend = Legend::default().position(egui_plot::Corner::RightBottom);
        let curves: Vec<_> = compare
            .runs
            .iter()
            .map(|live| metric_curve(live, &metric))
            .collect();
        // A flat metric (one evaluation, or equal values) gets a band of ±0.05 around it
        // instead of egui_plot's wide default range for a zero-height plot.
        let ys = curves.iter().flatten().map(|p| p[1]);
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        let mut plot = step_plot("compare-metric", height, link, legend);
        if lo.is_finite() && hi - lo < 1e-9 {
            plot = plot.include_y(lo - 0.05).include_y(hi + 0.05);
        }
        plot.show(right, |plot| {
            for (i, (live, pts)) in compare.runs.iter().zip(curves).enumerate() {
                let name = row(live).name;
                plot.line(Line::new(name.clone(), pts.clone()).color(color(i)));
                plot.points(Points::new(name, pts).color(color(i)).radius(3.0));
            }
        });
    });
}

/// How the masks of each pair of runs overlap (runs without a mask, dense ones, are left out).
fn masks(compare: &Compare, ui: &mut egui::Ui) {
    if compare.overlaps.is_empty() && compare.mask_errors.is_empty() {
        return;
    }
    ui.add_space(8.0);
    ui.strong("Masks");
    let name = |i: usize| row(&compare.runs[i]).name;
    egui::Grid::new("compare-masks")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for title in [
                "runs",
                "kept entries",
                "kept by both",
                "of the smaller mask",
                "dropped entries, Jaccard",
            ] {
                ui.strong(title);
            }
            ui.end_row();
            for o in &compare.overlaps {
                let (a, b) = o.runs;
                ui.horizontal(|ui| {
                    ui.label(RichText::new(name(a)).color(color(a)));
                    ui.label("·");
                    ui.label(RichText::new(name(b)).color(color(b)));
                });
                ui.label(format!(
                    "{} · {}",
                    format::count(o.kept.0),
                    format::count(o.kept.1)
                ));
                ui.label(format::count(o.shared));
                ui.label(format!("{:.1}%", 100.0 * o.share_of_smaller()));
                ui.label(format!("{:.4}", o.dropped_jaccard));
                ui.end_row();
            }
        });
    for (i, error) in &compare.mask_errors {
        ui.label(
            RichText::new(format!("{}'s mask cannot be read: {error}", name(*i)))
                .color(ui.visuals().error_fg_color),
        );
    }
}

/// The first run's heatmap minus the second's, on the diverging scale, with the figure's
/// choice and an export.
fn difference(compare: &mut Compare, ui: &mut egui::Ui) {
    if compare.runs.len() < 2 {
        return;
    }
    let (a, b) = (compare.runs[0].name(), compare.runs[1].name());
    ui.add_space(12.0);
    ui.label(RichText::new(format!("Difference of the heatmaps: {a} − {b}")).strong());
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Figure");
        egui::ComboBox::from_id_salt("difference-kind")
            .selected_text(compare.difference_kind.title())
            .show_ui(ui, |ui| {
                for k in HeatmapKind::ALL {
                    ui.selectable_value(&mut compare.difference_kind, k, k.title());
                }
            })
            .response
            .labelled_by(label.id);
        ui.separator();
        let label = ui.label("Export to");
        ui.add(egui::TextEdit::singleline(&mut compare.export_path).desired_width(240.0))
            .labelled_by(label.id);
        if ui.button("Export difference").clicked() {
            let path = std::path::PathBuf::from(compare.export_path.trim());
            let outcome = match compare.difference() {
                Some(Ok(map)) => map
                    .export(&path, false)
                    .map(|()| format!("Saved {}", path.display())),
                Some(Err(e)) => Err(e.clone()),
                None => Err("two runs are needed".into()),
            };
            compare.export_message = Some(outcome);
        }
    });
    super::export_outcome(ui, &compare.export_message);
    if compare.runs.len() > 2 {
        ui.label(
            RichText::new("Of the runs compared, the first two are subtracted.")
                .color(ui.visuals().weak_text_color()),
        );
    }
    match compare.difference() {
        Some(Ok(map)) => {
            super::heatmap::show(ui, map);
        }
        Some(Err(e)) => super::runs::error_card(ui, "No difference can be drawn", e),
        None => {}
    }
}
