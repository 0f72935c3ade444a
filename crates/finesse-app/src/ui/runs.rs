//! The runs browser: filters above a sortable table of the runs folder.

use std::path::PathBuf;

use egui::{Color32, RichText};
use egui_extras::{Column as TableColumn, TableBuilder};

use crate::app::FinesseApp;
use crate::table::{Column, Filter, RunRow};
use finesse_train::RunStatus;

/// What a click in the table asks for (applied after drawing, when the table is no longer
/// borrowed).
enum Action {
    Open(PathBuf),
    Delete(PathBuf),
    CopyPath(PathBuf),
    CopyCommand(PathBuf),
    ShowFolder(PathBuf),
    Sort(Column),
    Select(PathBuf),
}

/// Draws the runs browser.
pub fn show(app: &mut FinesseApp, ui: &mut egui::Ui) {
    let Some(folder) = app.runs_folder() else {
        welcome(app, ui, None);
        return;
    };
    if let Some(error) = &app.folder_error {
        ui.add_space(8.0);
        error_card(ui, "The runs folder cannot be read", error);
        return;
    }
    filters(app, ui);
    export_row(app, ui, &folder);
    compare_row(app, ui);
    ui.add_space(4.0);
    if app.table.rows().is_empty() {
        welcome(app, ui, Some(&folder));
        return;
    }
    let mut action = None;
    table(app, ui, &mut action);
    match action {
        Some(Action::Open(path)) => app.open_run(&path),
        Some(Action::Delete(path)) => app.confirm_delete = Some(path),
        Some(Action::CopyPath(path)) => {
            ui.ctx().copy_text(path.display().to_string());
            app.notify(format!("Copied {}", path.display()), false);
        }
        Some(Action::CopyCommand(path)) => match command_line(&path) {
            Ok(line) => {
                ui.ctx().copy_text(line.clone());
                app.notify(format!("Copied: {line}"), false);
            }
            Err(e) => app.notify(format!("No command line for {}: {e}", path.display()), true),
        },
        Some(Action::ShowFolder(path)) => app.show_folder(&path),
        Some(Action::Sort(column)) => app.settings.sort = app.settings.sort.clicked(column),
        Some(Action::Select(path)) => app.toggle_selected(&path),
        None => {}
    }
}

/// The `finesse finetune` line of the run in `path` (from its `run.json`).
fn command_line(path: &std::path::Path) -> Result<String, String> {
    let run = finesse_train::RunDir::open(path).map_err(|e| e.to_string())?;
    let info = run.read_info().map_err(|e| e.to_string())?;
    finesse_train::command::finetune_line(&info.config)
}

/// The first-launch view (no runs folder, or one with no runs yet): what the app does, and
/// the demo in one click.
fn welcome(app: &mut FinesseApp, ui: &mut egui::Ui, folder: Option<&std::path::Path>) {
    ui.add_space(24.0);
    let mut demo = false;
    let mut browse = false;
    ui.vertical_centered(|ui| {
        ui.heading("Welcome to finesse");
        ui.add_space(8.0);
        ui.label("finesse fine-tunes BERT models with sparse updates. This app does three things:");
    });
    ui.add_space(8.0);
    ui.vertical_centered(|ui| {
        ui.set_max_width(720.0);
        for (title, text) in [
            (
                "1. Start fine-tuning runs",
                "dense, FISH masks, random masks, BitFit, freezing, pruning and supermasks, with \
                 New run (Ctrl+N); they queue and train in the background.",
            ),
            (
                "2. Follow runs live",
                "progress, training loss, learning rate, dev metrics and the event log, also of \
                 runs the finesse CLI writes into the runs folder.",
            ),
            (
                "3. See where fine-tuning changes the model",
                "layer × matrix heatmaps of masks, distances and Fisher information; runs \
                 compared side by side; figures exported as PNG or SVG.",
            ),
        ] {
            ui.label(RichText::new(title).strong());
            ui.label(text);
            ui.add_space(6.0);
        }
        ui.add_space(8.0);
        let busy = app.queue.is_busy() || app.fetch.as_ref().is_some_and(|f| f.is_running());
        demo = ui
            .add_enabled(
                !busy,
                egui::Button::new(RichText::new("Run the demo").heading()),
            )
            .on_disabled_hover_text("A run or a model fetch is going on")
            .clicked();
        let model = &app.demo.model;
        ui.label(format!(
            "FISH on SST-2: 0.5% of {model}'s parameters, chosen by their Fisher information over \
             {} examples, trained for {} steps of batch 32 (as `finesse demo`). It uses \
             $FINESSE_HOME/data/glue/SST-2 when `finesse data fetch sst2` put it there, else \
             the SST-2 sample shipped with finesse; the model is fetched first if it is not in \
             the cache.",
            app.demo.fisher_samples, app.demo.steps
        ));
        ui.horizontal(|ui| {
            let label = ui.label("SST-2 from a GLUE folder (optional)");
            ui.add(
                egui::TextEdit::singleline(&mut app.demo_data_field)
                    .hint_text("empty: as said above")
                    .desired_width(330.0),
            )
            .labelled_by(label.id);
            if super::browse_button(ui, app.browsing()) {
                browse = true;
            }
        });
        ui.add_space(8.0);
        match folder {
            Some(folder) => ui.label(format!(
                "No runs in {} yet. Runs started there (finesse finetune --output-dir {}/NAME) \
                 appear here as soon as they start.",
                folder.display(),
                folder.display()
            )),
            None => ui.label(format!(
                "The demo's run goes to {}. To list other runs, type the folder that holds \
                 them above (the --output-dir parents of finesse finetune) and press Enter.",
                finesse_bert::hub::finesse_home().join("runs").display()
            )),
        };
    });
    if browse {
        app.browse(crate::dialogs::Target::DemoGlueFolder);
    }
    if demo && let Err(e) = app.start_demo() {
        app.notify(format!("The demo cannot start: {e}"), true);
    }
}

/// A framed error: a title and the message, in the error colour.
pub fn error_card(ui: &mut egui::Ui, title: &str, message: &str) {
    let color = ui.visuals().error_fg_color;
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(1.0, color))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(title).strong().color(color));
            ui.label(message);
        });
}

fn filters(app: &mut FinesseApp, ui: &mut egui::Ui) {
    let tasks = app.table.distinct(|r| &r.task);
    let methods = app.table.distinct(|r| &r.method);
    let statuses = app.table.distinct(|r| r.status_key());
    let total = app.table.rows().len();
    let shown = app
        .table
        .visible(&app.settings.filter, app.settings.sort)
        .len();
    let filter = &mut app.settings.filter;
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Filter");
        ui.add(
            egui::TextEdit::singleline(&mut filter.text)
                .hint_text("name, task, method, status…")
                .desired_width(200.0),
        )
        .labelled_by(label.id);
        choice(ui, "Task", &mut filter.task, &tasks);
        choice(ui, "Method", &mut filter.method, &methods);
        choice(ui, "Status", &mut filter.status, &statuses);
        if filter.is_active() && ui.button("Clear filters").clicked() {
            *filter = Filter::default();
        }
        ui.label(format!("{shown} of {total} runs"));
    });
}

/// Export of the shown rows (filters applied, in the table's order) to Markdown, CSV or JSON,
/// through `finesse report`'s table; or to the clipboard as Markdown.
/// "Compare" over the runs ticked in the table.
fn compare_row(app: &mut FinesseApp, ui: &mut egui::Ui) {
    let n = app.selected_runs().len();
    ui.horizontal(|ui| {
        let compare = ui
            .add_enabled(n >= 2, egui::Button::new(format!("Compare {n} runs")))
            .on_hover_text("Loss and dev-metric curves overlaid, metrics side by side")
            .on_disabled_hover_text("Tick two or more runs (the boxes before Actions)");
        if compare.clicked() {
            app.open_compare();
        }
        if n > 0 && ui.button("Clear selection").clicked() {
            app.selected.clear();
        }
    });
}

fn export_row(app: &mut FinesseApp, ui: &mut egui::Ui, folder: &std::path::Path) {
    if app.table_export_path.is_empty() {
        app.table_export_path = folder.join("runs.md").display().to_string();
    }
    let paths: Vec<PathBuf> = app
        .table
        .visible(&app.settings.filter, app.settings.sort)
        .iter()
        .map(|r| r.path.clone())
        .collect();
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Export table to");
        ui.add(
            egui::TextEdit::singleline(&mut app.table_export_path)
                .hint_text("runs.md, runs.csv or runs.json")
                .desired_width(320.0),
        )
        .labelled_by(label.id);
        if super::browse_button(ui, app.browsing()) {
            app.browse(crate::dialogs::Target::TableExport);
        }
        let n = paths.len();
        if ui
            .add_enabled(n > 0, egui::Button::new("Export table"))
            .on_hover_text(format!(
                "The {n} runs shown, as finesse report writes them (format from the extension)"
            ))
            .clicked()
        {
            let out = PathBuf::from(app.table_export_path.trim());
            app.table_export_message = Some(
                crate::table::export_runs(&paths, &out)
                    .map(|_| format!("Saved {n} runs to {}", out.display())),
            );
        }
        if ui
            .add_enabled(n > 0, egui::Button::new("Copy as Markdown"))
            .clicked()
        {
            app.table_export_message = Some(crate::table::runs_markdown(&paths).map(|text| {
                ui.ctx().copy_text(text);
                format!("Copied {n} runs as a Markdown table")
            }));
        }
    });
    super::export_outcome(ui, &app.table_export_message);
}

fn choice(ui: &mut egui::Ui, label: &str, value: &mut Option<String>, options: &[String]) {
    let text = ui.label(label);
    egui::ComboBox::from_id_salt(label)
        .selected_text(value.as_deref().unwrap_or("all"))
        .show_ui(ui, |ui| {
            ui.selectable_value(value, None, "all");
            for option in options {
                ui.selectable_value(value, Some(option.clone()), option.as_str());
            }
        })
        .response
        .labelled_by(text.id);
}

fn status_color(ui: &egui::Ui, row: &RunRow) -> Color32 {
    let dark = ui.visuals().dark_mode;
    if row.error.is_some() {
        return ui.visuals().error_fg_color;
    }
    match row.status {
        RunStatus::Finished => {
            if dark {
                Color32::from_rgb(110, 200, 120)
            } else {
                Color32::from_rgb(20, 120, 40)
            }
        }
        RunStatus::Running => {
            if dark {
                Color32::from_rgb(100, 170, 255)
            } else {
                Color32::from_rgb(0, 90, 200)
            }
        }
        RunStatus::Failed { .. } => ui.visuals().error_fg_color,
        RunStatus::Cancelled | RunStatus::Interrupted { .. } => ui.visuals().warn_fg_color,
        RunStatus::Unknown => ui.visuals().weak_text_color(),
    }
}

/// A small triangle after the sorted column's title: up for ascending, down for descending
/// (painted: the bundled fonts have no arrow glyphs).
fn sort_arrow(ui: &mut egui::Ui, ascending: bool) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    let c = rect.center();
    let (tip, base) = if ascending { (-4.0, 3.0) } else { (4.0, -3.0) };
    let points = vec![
        c + egui::vec2(0.0, tip),
        c + egui::vec2(-4.5, base),
        c + egui::vec2(4.5, base),
    ];
    let color = ui.visuals().strong_text_color();
    ui.painter().add(egui::Shape::convex_polygon(
        points,
        color,
        egui::Stroke::NONE,
    ));
}

fn table(app: &FinesseApp, ui: &mut egui::Ui, action: &mut Option<Action>) {
    let sort = app.settings.sort;
    let rows = app.table.visible(&app.settings.filter, sort);
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 8.0;
    let mut builder = TableBuilder::new(ui)
        .id_salt("runs-table")
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .auto_shrink([false, true]);
    for column in Column::ALL {
        let width = match column {
            Column::Name => TableColumn::initial(170.0).at_least(80.0).clip(true),
            Column::Status => TableColumn::initial(105.0).at_least(70.0).clip(true),
            Column::Metric => TableColumn::initial(125.0).at_least(60.0).clip(true),
            Column::Date => TableColumn::initial(118.0).at_least(60.0).clip(true),
            Column::Best | Column::Budget => TableColumn::initial(95.0).at_least(50.0).clip(true),
            Column::Lr => TableColumn::initial(50.0).at_least(40.0).clip(true),
            _ => TableColumn::initial(70.0).at_least(40.0).clip(true),
        };
        builder = builder.column(width);
    }
    builder = builder.column(TableColumn::exact(22.0));
    builder = builder.column(TableColumn::remainder().at_least(190.0));
    builder
        .header(row_height + 2.0, |mut header| {
            for column in Column::ALL {
                header.col(|ui| {
                    let text = RichText::new(column.title()).strong();
                    let response = ui
                        .add(egui::Button::new(text).frame(false))
                        .on_hover_text(format!("Sort by {}", column.title().to_lowercase()));
                    if sort.column == column {
                        sort_arrow(ui, sort.ascending);
                    }
                    if response.clicked() {
                        *action = Some(Action::Sort(column));
                    }
                });
            }
            header.col(|_| {});
            header.col(|ui| {
                ui.strong("Actions");
            });
        })
        .body(|body| {
            body.rows(row_height, rows.len(), |mut table_row| {
                let row = rows[table_row.index()];
                for column in Column::ALL {
                    table_row.col(|ui| {
                        let text = row.cell(column);
                        match column {
                            Column::Name => {
                                let response = ui
                                    .add(
                                        egui::Button::new(RichText::new(&text).strong())
                                            .frame(false),
                                    )
                                    .on_hover_text(format!("Open {}", row.path.display()));
                                if response.clicked() {
                                    *action = Some(Action::Open(row.path.clone()));
                                }
                            }
                            Column::Status => {
                                let label =
                                    ui.label(RichText::new(text).color(status_color(ui, row)));
                                let detail = match (&row.error, &row.status) {
                                    (Some(e), _) => Some(e.clone()),
                                    (None, RunStatus::Failed { message }) => Some(message.clone()),
                                    _ => None,
                                };
                                if let Some(detail) = detail {
                                    label.on_hover_text(detail);
                                }
                            }
                            _ => {
                                ui.label(text);
                            }
                        }
                    });
                }
                table_row.col(|ui| {
                    let mut ticked = app.selected.contains(&row.path);
                    let label = format!("Compare {}", row.name);
                    let tick = ui.add(egui::Checkbox::without_text(&mut ticked));
                    tick.widget_info(|| {
                        egui::WidgetInfo::selected(egui::Role::CheckBox, true, ticked, &label)
                    });
                    if tick
                        .on_hover_text("Tick runs to compare them (Compare N runs, above)")
                        .changed()
                    {
                        *action = Some(Action::Select(row.path.clone()));
                    }
                });
                table_row.col(|ui| {
                    if ui.small_button("Open").clicked() {
                        *action = Some(Action::Open(row.path.clone()));
                    }
                    ui.menu_button("More", |ui| {
                        if ui
                            .button("Copy path")
                            .on_hover_text(row.path.display().to_string())
                            .clicked()
                        {
                            *action = Some(Action::CopyPath(row.path.clone()));
                            ui.close();
                        }
                        if ui
                            .button("Copy command line")
                            .on_hover_text("The finesse finetune command line that makes this run")
                            .clicked()
                        {
                            *action = Some(Action::CopyCommand(row.path.clone()));
                            ui.close();
                        }
                        if ui
                            .button("Show in file manager")
                            .on_hover_text(row.path.display().to_string())
                            .clicked()
                        {
                            *action = Some(Action::ShowFolder(row.path.clone()));
                            ui.close();
                        }
                    });
                    let running = row.status == RunStatus::Running && row.error.is_none();
                    let delete = ui
                        .add_enabled(!running, egui::Button::new("Delete…").small())
                        .on_disabled_hover_text("A process is training this run");
                    if delete.clicked() {
                        *action = Some(Action::Delete(row.path.clone()));
                    }
                });
            });
        });
}
