//! Drawing: the top bar (new run, runs folder, navigation), the notice line, the queue, the
//! delete confirmation, the new-run window, the quit dialog (`newrun.rs`), and the view
//! shown — the runs browser (`runs.rs`), a run (`run.rs`, `heatmap.rs`) or runs side by side
//! (`compare.rs`).

/// A `finesse-report` (plotters) colour as an egui one.
macro_rules! rgb {
    ($color:expr) => {{
        let color = $color;
        egui::Color32::from_rgb(color.0, color.1, color.2)
    }};
}

pub mod compare;
pub mod details;
pub mod heatmap;
pub mod lines;
pub mod newrun;
pub mod run;
pub mod runs;

use egui::RichText;

use crate::app::{FinesseApp, ThemeChoice};
use crate::fetch::FetchState;

/// Draws the whole window.
pub fn show(app: &mut FinesseApp, ui: &mut egui::Ui) {
    egui::Panel::top("top-bar").show(ui, |ui| top_bar(app, ui));
    if let Some(notice) = &app.notice {
        let color = if notice.is_error {
            ui.visuals().error_fg_color
        } else {
            ui.visuals().weak_text_color()
        };
        let text = notice.text.clone();
        egui::Panel::bottom("notice").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(RichText::new(text).color(color));
                if ui.small_button("Dismiss").clicked() {
                    app.notice = None;
                }
            });
        });
    }
    fetch_panel(app, ui);
    newrun::queue_panel(app, ui);
    egui::CentralPanel::default().show(ui, |ui| {
        if app.compare.is_some() {
            compare::show(app, ui);
        } else if app.open.is_some() {
            run::show(app, ui);
        } else {
            runs::show(app, ui);
        }
    });
    confirm_delete(app, ui.ctx());
    newrun::window(app, ui.ctx());
    newrun::quit_dialog(app, ui.ctx());
    details::window(app, ui.ctx());
}

/// The model fetch, when one runs or just ended: a progress bar and Cancel, or its outcome.
fn fetch_panel(app: &mut FinesseApp, ui: &mut egui::Ui) {
    let Some(fetch) = &app.fetch else {
        return;
    };
    let state = fetch.state();
    let text = fetch.describe();
    let (mut cancel, mut dismiss) = (false, false);
    let error = ui.visuals().error_fg_color;
    egui::Panel::bottom("fetch").show(ui, |ui| {
        ui.horizontal(|ui| match &state {
            FetchState::Running(phase) => {
                let fraction = phase.and_then(|p| p.fraction());
                let bar = egui::ProgressBar::new(fraction.unwrap_or(0.0))
                    .desired_width(220.0)
                    .show_percentage()
                    .animate(fraction.is_none());
                ui.add(bar);
                // Before the text, whose width changes as the megabytes grow: the button
                // stays where the pointer is.
                cancel = ui.button("Cancel fetch").clicked();
                ui.label(text);
            }
            FetchState::Failed(_) => {
                ui.label(RichText::new(text).color(error));
                dismiss = ui.small_button("Dismiss").clicked();
            }
            FetchState::Done(_) | FetchState::Cancelled => {
                ui.label(text);
                dismiss = ui.small_button("Dismiss").clicked();
            }
        });
    });
    if cancel && let Some(fetch) = &app.fetch {
        fetch.cancel();
    }
    if dismiss {
        app.fetch = None;
    }
}

fn top_bar(app: &mut FinesseApp, ui: &mut egui::Ui) {
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.heading(RichText::new("finesse").strong());
        ui.separator();
        if app.compare.is_some() || app.open.is_some() {
            if ui
                .button("All runs")
                .on_hover_text("Back to the runs table (Esc)")
                .clicked()
                || ui.input(|i| i.key_pressed(egui::Key::Escape))
            {
                app.close_run();
            }
            if app.compare.is_some() {
                ui.separator();
            }
        }
        if app.open.is_some() {
            for (label, delta, key) in [
                ("Previous", -1, egui::Key::ArrowUp),
                ("Next", 1, egui::Key::ArrowDown),
            ] {
                let there = app.neighbour_run(delta).is_some();
                let button = ui
                    .add_enabled(there, egui::Button::new(label))
                    .on_hover_text(format!(
                        "The {} run of the table (Alt+{key:?})",
                        label.to_lowercase()
                    ));
                if button.clicked()
                    || (there && ui.input(|i| i.modifiers.alt && i.key_pressed(key)))
                {
                    app.open_neighbour(delta);
                }
            }
            ui.separator();
        }
        if ui
            .button("New run")
            .on_hover_text("Fine-tune a model on a GLUE task (Ctrl+N)")
            .clicked()
            || ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::N))
        {
            app.open_new_run();
        }
        ui.separator();
        let label = ui.label("Runs folder");
        let open_width = 420.0;
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut app.folder_field)
                    .hint_text("a folder of run directories")
                    .desired_width((ui.available_width() - open_width).max(120.0)),
            )
            .labelled_by(label.id);
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Open folder").clicked() || entered {
            app.apply_folder_field();
        }
        if browse_button(ui, app.browsing()) {
            app.browse(crate::dialogs::Target::RunsFolder);
        }
        if ui
            .button("Refresh")
            .on_hover_text("Read every run again")
            .clicked()
        {
            app.refresh_all();
        }
        let theme = &mut app.settings.theme;
        let label = ui.label("Theme");
        egui::ComboBox::from_id_salt("theme")
            .selected_text(theme.title())
            .width(70.0)
            .show_ui(ui, |ui| {
                for choice in ThemeChoice::ALL {
                    ui.selectable_value(theme, choice, choice.title());
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text("Colours: light, dark or the system's");
    });
    ui.add_space(2.0);
}

fn confirm_delete(app: &mut FinesseApp, ctx: &egui::Context) {
    let Some(path) = app.confirm_delete.clone() else {
        return;
    };
    let mut decision = None;
    let modal = egui::Modal::new(egui::Id::unique("confirm-delete")).show(ctx, |ui| {
        ui.set_max_width(460.0);
        ui.heading("Delete this run?");
        ui.add_space(4.0);
        ui.label(format!(
            "This removes the folder {} and everything in it (model, mask, checkpoint, \
             figures). It cannot be undone.",
            path.display()
        ));
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let delete =
                egui::Button::new(RichText::new("Delete run").color(ui.visuals().error_fg_color));
            if ui.add(delete).clicked() {
                decision = Some(true);
            }
            if ui.button("Cancel").clicked() {
                decision = Some(false);
            }
        });
    });
    if modal.should_close() && decision.is_none() {
        decision = Some(false);
    }
    match decision {
        Some(true) => {
            app.confirm_delete = None;
            match app.delete_run(&path) {
                Ok(()) => app.notify(format!("Deleted {}", path.display()), false),
                Err(e) => app.notify(e, true),
            }
        }
        Some(false) => app.confirm_delete = None,
        None => {}
    }
}

/// A "Browse…" button (disabled while a dialog is open); true when clicked.
pub fn browse_button(ui: &mut egui::Ui, browsing: bool) -> bool {
    ui.add_enabled(!browsing, egui::Button::new("Browse…"))
        .on_hover_text("Choose with the system's file dialog (or type the path)")
        .clicked()
}

/// The line under an export: what was saved (weak) or why it failed (error colour).
pub fn export_outcome(ui: &mut egui::Ui, outcome: &Option<Result<String, String>>) {
    match outcome {
        Some(Ok(text)) => {
            ui.label(RichText::new(text).color(ui.visuals().weak_text_color()));
        }
        Some(Err(e)) => {
            ui.label(
                RichText::new(format!("Export failed: {e}")).color(ui.visuals().error_fg_color),
            );
        }
        None => {}
    }
}
