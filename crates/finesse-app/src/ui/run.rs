//! A run's view: its header (what it is, where it stands, what to do about it) and two tabs —
//! Training (progress, loss with smoothing, learning rate, dev metrics, the event log) and
//! Analysis (layer × matrix heatmaps with export).

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, Points};
use finesse_report::colormap::series_color;
use finesse_report::figures::smooth;
use finesse_train::RunStatus;
use finesse_train::progress::Phase;

use crate::analysis::{Heatmap, HeatmapKind};
use crate::app::{FinesseApp, OpenRun, RunTab};
use crate::details::CellDetails;
use crate::format;
use crate::live::{event_line, status_advice};
use crate::ui::heatmap;
use crate::ui::runs::error_card;

/// Draws the opened run.
pub fn show(app: &mut FinesseApp, ui: &mut egui::Ui) {
    let browsing = app.browsing();
    let mut browse = false;
    let smoothing = &mut app.settings.smoothing;
    let kind = &mut app.settings.heatmap;
    let lines = &mut app.settings.lines;
    let Some(open) = &mut app.open else {
        return;
    };
    let path = open.live.dir.root.clone();
    let queue = QueueState {
        training: app.queue.is_training(&path),
        cancelling: app.queue.active().is_some_and(|a| a.cancelling),
        waiting: app.queue.is_waiting(&path),
    };
    let action = header(open, queue, ui);
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.selectable_value(&mut open.tab, RunTab::Training, "Training");
        ui.selectable_value(&mut open.tab, RunTab::Analysis, "Analysis");
    });
    ui.separator();
    match open.tab {
        RunTab::Training => training(open, smoothing, ui),
        RunTab::Analysis => analysis(open, (kind, lines), (browsing, &mut browse), ui),
    }
    if browse {
        app.browse(crate::dialogs::Target::FigureExport);
    }
    match action {
        Some(RunAction::Cancel) => app.cancel_training(),
        Some(RunAction::Resume) => {
            if let Err(e) = app.resume_run(&path) {
                app.notify(format!("Cannot resume: {e}"), true);
            }
        }
        None => {}
    }
}

/// Where the opened run stands in this app's queue.
#[derive(Clone, Copy)]
struct QueueState {
    /// This app trains it now.
    training: bool,
    /// Its cancel was asked for.
    cancelling: bool,
    /// It waits in the queue.
    waiting: bool,
}

/// A button of the header.
enum RunAction {
    Cancel,
    Resume,
}

fn header(open: &OpenRun, queue: QueueState, ui: &mut egui::Ui) -> Option<RunAction> {
    let live = &open.live;
    let mut action = None;
    ui.horizontal_wrapped(|ui| {
        ui.heading(RichText::new(live.name()).strong());
        if let Some(run) = &live.run {
            ui.label(RichText::new(run.label()).weak());
        }
        let status = &live.progress.status;
        let (text, color) = match status {
            RunStatus::Running => ("running", Color32::from_rgb(60, 140, 240)),
            RunStatus::Finished => ("finished", Color32::from_rgb(60, 170, 90)),
            RunStatus::Failed { .. } => ("failed", ui.visuals().error_fg_color),
            RunStatus::Cancelled => ("cancelled", ui.visuals().warn_fg_color),
            RunStatus::Interrupted { .. } => ("interrupted", ui.visuals().warn_fg_color),
            RunStatus::Unknown => ("not started", ui.visuals().weak_text_color()),
        };
        ui.label(RichText::new(text).strong().color(color));
        let resumable = matches!(
            status,
            RunStatus::Cancelled | RunStatus::Interrupted { resumable: true }
        );
        if queue.training && queue.cancelling {
            ui.add_enabled(false, egui::Button::new("Cancelling…"))
                .on_disabled_hover_text(
                    "Stopping after the current step and writing the checkpoint",
                );
        } else if queue.training {
            let cancel = ui
                .button("Cancel run")
                .on_hover_text("Stop after the current step; the run stays resumable (Ctrl+.)");
            if cancel.clicked()
                || ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::Period))
            {
                action = Some(RunAction::Cancel);
            }
        } else if queue.waiting {
            ui.label(RichText::new("waiting in the queue").weak());
        } else if resumable
            && ui
                .button("Resume")
                .on_hover_text("Continue from its checkpoint with its own settings")
                .clicked()
        {
            action = Some(RunAction::Resume);
        }
    });
    ui.label(
        RichText::new(live.dir.root.display().to_string())
            .weak()
            .small(),
    );
    if let Some(error) = &live.error {
        error_card(ui, "This run's files cannot be read", error);
    }
    if let RunStatus::Failed { message } = &live.progress.status {
        error_card(ui, "The run failed", message);
    }
    if !queue.training
        && !queue.waiting
        && let Some(advice) = status_advice(&live.progress.status, &live.dir.root)
    {
        ui.label(advice);
    }
    action
}

fn training(open: &OpenRun, smoothing: &mut f64, ui: &mut egui::Ui) {
    let p = &open.live.progress;
    progress_line(open, ui);
    ui.add_space(6.0);
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let plot_height = (ui.available_height() * 0.42).clamp(160.0, 340.0);
            let link = egui::Id::unique(("steps", &open.live.dir.root));
            ui.columns(2, |cols| {
                let left = &mut cols[0];
                left.horizontal(|ui| {
                    ui.strong("Training loss");
                    let label = ui.label("Smoothing");
                    ui.add(egui::Slider::new(smoothing, 0.0..=0.999).fixed_decimals(3))
                        .labelled_by(label.id)
                        .on_hover_text(
                            "Exponential moving average weight, debiased as in TensorBoard",
                        );
                });
                let steps: Vec<f64> = p.losses.iter().map(|l| l.step as f64).collect();
                let raw: Vec<f64> = p.losses.iter().map(|l| l.loss).collect();
                let smoothed = smooth(&raw, *smoothing);
                let color = rgb!(series_color(0));
                with_room(Plot::new(("loss", &open.live.dir.root)), &raw)
                    .height(plot_height)
                    .legend(Legend::default())
                    .link_axis(link, [true, false])
                    .link_cursor(link, [true, false])
                    .x_axis_label("step")
                    .show(left, |plot| {
                        plot.line(
                            Line::new("raw", points(&steps, &raw))
                                .color(color.gamma_multiply(0.45))
                                .width(1.0),
                        );
                        plot.line(
                            Line::new("smoothed", points(&steps, &smoothed))
                                .color(color)
                                .width(2.0),
                        );
                    });
                if p.losses.is_empty() {
                    left.label(RichText::new("No training step logged yet.").weak());
                }

                let right = &mut cols[1];
                right.strong("Dev metrics");
                metrics_plot(open, right, plot_height, link);
            });
            ui.add_space(8.0);
            ui.columns(2, |cols| {
                let left = &mut cols[0];
                left.strong("Learning rate");
                let lr: Vec<[f64; 2]> = p.losses.iter().map(|l| [l.step as f64, l.lr]).collect();
                Plot::new(("lr", &open.live.dir.root))
                    .height((plot_height * 0.7).max(120.0))
                    .link_axis(link, [true, false])
                    .link_cursor(link, [true, false])
                    .x_axis_label("step")
                    .include_x(0.0)
                    .include_y(0.0)
                    .show(left, |plot| {
                        plot.line(Line::new("lr", lr).color(rgb!(series_color(2))));
                    });
                let right = &mut cols[1];
                right.strong(format!("Event log (last {})", open.live.log.len()));
                egui::Frame::group(right.style()).show(right, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("event-log")
                        .max_height((plot_height * 0.7).max(120.0))
                        .stick_to_bottom(true)
                        .auto_shrink([false, false])
                        .show(ui, |ui| {
                            for record in &open.live.log {
                                let line = event_line(&record.event);
                                let text = format!("{}  {line}", format::date_utc(record.time));
                                let rich = RichText::new(text).monospace().small();
                                let rich =
                                    if matches!(record.event, finesse_train::Event::Error { .. }) {
                                        rich.color(ui.visuals().error_fg_color)
                                    } else {
                                        rich
                                    };
                                ui.label(rich);
                            }
                        });
                });
            });
        });
}

fn progress_line(open: &OpenRun, ui: &mut egui::Ui) {
    let p = &open.live.progress;
    let phase = match (&p.phase, &p.status) {
        (Phase::Preparing, RunStatus::Running) => "preparing (model, data)".to_string(),
        (Phase::Preparing, _) => "not started".to_string(),
        (Phase::Fisher { done, total }, _) => format!("Fisher information {done}/{total}"),
        (Phase::Training, _) => "training".to_string(),
        (Phase::Ended, status) => status.name().to_string(),
    };
    let fraction = if p.total_steps > 0 {
        p.step as f32 / p.total_steps as f32
    } else if let Phase::Fisher { done, total } = p.phase {
        done as f32 / total.max(1) as f32
    } else {
        0.0
    };
    let mut parts = vec![phase];
    if p.total_steps > 0 {
        parts.push(format!("step {}/{}", p.step, p.total_steps));
        parts.push(format!("epoch {:.2}", p.epoch()));
    }
    if let Some(eta) = p.eta_secs() {
        parts.push(format!("ETA {}", format::duration(eta)));
    }
    if p.examples_per_sec > 0.0 {
        parts.push(format::rate(p.examples_per_sec));
    }
    if let Some(loss) = p.last_loss() {
        parts.push(format!("loss {loss:.4}"));
    }
    if let Some(d) = p.duration_secs {
        parts.push(format!("took {}", format::duration(d)));
    }
    ui.add(
        egui::ProgressBar::new(fraction.clamp(0.0, 1.0))
            .text(parts.join(" · "))
            .animate(p.status == RunStatus::Running),
    );
    let mut facts = Vec::new();
    if p.total_params > 0 {
        facts.push(format!(
            "{} of {} parameters trained ({})",
            p.trainable_params,
            p.total_params,
            finesse_report::colormap::format_value(
                p.trainable_params as f64 / p.total_params as f64,
                true
            )
        ));
    }
    if let Some((method, kept, total)) = &p.mask {
        facts.push(format!("{method} mask: {kept} of {total} entries"));
    }
    for (name, best) in &p.best {
        if name != "eval_loss" {
            facts.push(format!(
                "best {name} {} at step {}",
                format::metric(best.value),
                best.step
            ));
        }
    }
    if !facts.is_empty() {
        ui.label(facts.join(" · "));
    }
}

/// A plot whose bounds can never collapse to a point: a run with one logged step (or one
/// evaluation) would otherwise give egui_plot zero-width bounds, which it rejects. Step axes
/// start at 0; a flat y gets room around its value.
fn with_room<'a>(plot: Plot<'a>, ys: &[f64]) -> Plot<'a> {
    let finite = ys.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    let plot = plot.include_x(0.0);
    if lo.is_finite() && hi - lo <= 1e-9 * lo.abs().max(1.0) {
        let pad = 0.05 * lo.abs().max(1e-3);
        plot.include_y(lo - pad).include_y(hi + pad)
    } else {
        plot
    }
}

fn metrics_plot(open: &OpenRun, ui: &mut egui::Ui, height: f32, link: egui::Id) {
    let p = &open.live.progress;
    // One series per (split, metric), in order of first appearance.
    let mut series: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    for eval in &p.evals {
        for (metric, value) in &eval.metrics {
            let name = if eval.split == "dev" {
                metric.clone()
            } else {
                format!("{metric} ({})", eval.split)
            };
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, points)) => points.push([eval.step as f64, *value]),
                None => series.push((name, vec![[eval.step as f64, *value]])),
            }
        }
    }
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|v| v[1]))
        .collect();
    with_room(Plot::new(("metrics", &open.live.dir.root)), &values)
        .height(height)
        .legend(Legend::default())
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .x_axis_label("step")
        .show(ui, |plot| {
            for (i, (name, pts)) in series.iter().enumerate() {
                let color = rgb!(series_color(i + 1));
                plot.line(Line::new(name.clone(), pts.clone()).color(color));
                plot.points(
                    Points::new(name.clone(), pts.clone())
                        .color(color)
                        .radius(3.0),
                );
            }
        });
    match p.last_metrics() {
        Some(last) => {
            let values: Vec<String> = last
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {}", format::metric(*v)))
                .collect();
            ui.label(format!(
                "Latest ({}, step {}): {} · loss {:.4}",
                last.split,
                last.step,
                values.join(" · "),
                last.loss
            ));
        }
        None => {
            ui.label(RichText::new("No evaluation yet.").weak());
        }
    }
}

fn points(x: &[f64], y: &[f64]) -> Vec<[f64; 2]> {
    x.iter().zip(y).map(|(x, y)| [*x, *y]).collect()
}

fn analysis(
    open: &mut OpenRun,
    (kind, lines): (&mut HeatmapKind, &mut bool),
    (browsing, browse): (bool, &mut bool),
    ui: &mut egui::Ui,
) {
    let Some(run) = &open.live.run else {
        ui.label("The run's files cannot be read (see above).");
        return;
    };
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Figure");
        egui::ComboBox::from_id_salt("figure-kind")
            .selected_text(kind.title())
            .show_ui(ui, |ui| {
                for k in HeatmapKind::ALL {
                    ui.selectable_value(kind, k, k.title());
                }
            })
            .response
            .labelled_by(label.id);
        ui.selectable_value(lines, false, "Heatmap");
        ui.selectable_value(lines, true, "Lines")
            .on_hover_text("The papers' line form: one line per matrix across the layers");
        ui.separator();
        let label = ui.label("Export to");
        ui.add(
            egui::TextEdit::singleline(&mut open.export_path)
                .hint_text("figure.png or figure.svg")
                .desired_width(320.0),
        )
        .labelled_by(label.id);
        if super::browse_button(ui, browsing) {
            *browse = true;
        }
        let ready = matches!(&open.heatmap, Some((_, Ok(_))));
        let shortcut = ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::E));
        if (ui
            .add_enabled(ready, egui::Button::new("Export"))
            .on_hover_text(
                "Save this figure as PNG or SVG (from the extension), as finesse figure does \
                 (Ctrl+E)",
            )
            .clicked()
            || shortcut)
            && let Some((_, Ok(map))) = &open.heatmap
        {
            let path = std::path::PathBuf::from(open.export_path.trim());
            open.export_message = Some(
                map.export(&path, *lines)
                    .map(|()| format!("Saved {}", path.display())),
            );
        }
    });
    super::export_outcome(ui, &open.export_message);
    if open.heatmap.as_ref().is_none_or(|(k, _)| k != kind) {
        open.heatmap = Some((*kind, Heatmap::build(run, *kind)));
        // The export path follows the figure's kind unless the user typed another folder.
        let stem = kind.file_stem();
        let path = std::path::Path::new(open.export_path.trim());
        if let (Some(dir), Some(ext)) = (path.parent(), path.extension()) {
            open.export_path = dir
                .join(format!("{stem}.{}", ext.to_string_lossy()))
                .display()
                .to_string();
        }
    }
    ui.add_space(4.0);
    match &open.heatmap {
        Some((_, Ok(map))) if *lines => super::lines::show(ui, map),
        Some((_, Ok(map))) => {
            if let Some((layer, matrix)) = heatmap::show(ui, map) {
                open.details = Some(CellDetails::read(
                    &open.live.dir.root,
                    format!("layer {} · {}", layer + 1, map.matrix_label(matrix)),
                    map.cell_tensors(layer, matrix),
                ));
            }
        }
        Some((_, Err(e))) => {
            error_card(ui, "This figure cannot be drawn for this run", e);
        }
        None => {}
    }
}
