//! The new-run window: model and data, the method with exactly its options, the main
//! hyper-parameters, the run folder and the device; each problem in red under its field,
//! Start disabled until there is none. Also the queue panel and the quit dialog.

use crate::dialogs::Target;
use egui::RichText;
use finesse_glue::GlueTask;
use finesse_sparse::FisherKindName;
use finesse_train::device::DeviceChoice;
use finesse_train::method::MethodName;

use crate::app::{FinesseApp, Quit};
use crate::newrun::{Field, NewRunForm, Problems};

/// Width of the value column.
const FIELD_WIDTH: f32 = 300.0;

/// Draws the new-run window when it is open.
pub fn window(app: &mut FinesseApp, ctx: &egui::Context) {
    if app.new_run.is_none() {
        return;
    }
    let runs_folder = app.runs_folder();
    let taken = app.queue.paths();
    if let Some(new_run) = &mut app.new_run {
        new_run.form.refresh_name(runs_folder.as_deref(), &taken);
    }
    let problems = match app.check_new_run() {
        Ok(_) => Problems::new(),
        Err(problems) => problems,
    };
    let busy = app.queue.is_busy();
    let app_fetching = app.fetch.as_ref().is_some_and(|f| f.is_running());
    let browsing = app.browsing();
    let mut browse = None;
    let mut open = true;
    let mut start = false;
    let mut close = false;
    let Some(new_run) = &mut app.new_run else {
        return;
    };
    let cached = new_run.cached_models.clone();
    let model = new_run.form.model.trim().to_string();
    let needs_fetch = new_run.needs_fetch(&app.fetch_setup, &model);
    let mut fetch_now = false;
    egui::Window::new("New run")
        .open(&mut open)
        .collapsible(false)
        .resizable(true)
        .default_width(620.0)
        .default_pos(ctx.content_rect().center() - egui::vec2(310.0, 300.0))
        .show(ctx, |ui| {
            egui::ScrollArea::vertical()
                .max_height(ctx.content_rect().height() - 160.0)
                .show(ui, |ui| {
                    form(
                        &mut new_run.form,
                        &cached,
                        &problems,
                        runs_folder.as_deref(),
                        (browsing, &mut browse),
                        ui,
                    );
                });
            if needs_fetch {
                ui.separator();
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!(
                        "{model} is not in the cache: the run fetches it when it starts, or fetch \
                         it now (progress at the bottom of the window)."
                    ));
                    fetch_now = ui
                        .add_enabled(!app_fetching, egui::Button::new("Fetch now"))
                        .on_disabled_hover_text("A fetch is going on")
                        .clicked();
                });
            }
            ui.separator();
            ui.horizontal(|ui| {
                let label = if busy { "Add to queue" } else { "Start" };
                let button = ui.add_enabled(problems.is_empty(), egui::Button::new(label));
                let button = if busy {
                    button.on_hover_text("Starts when the runs before it end (one at a time)")
                } else {
                    button
                };
                if button
                    .on_disabled_hover_text("Fix the fields marked in red first")
                    .clicked()
                {
                    start = true;
                }
                if ui.button("Close").clicked() {
                    close = true;
                }
                if !problems.is_empty() {
                    let n = problems.len();
                    ui.label(
                        RichText::new(format!("{n} field{} to fix", if n == 1 { "" } else { "s" }))
                            .color(ui.visuals().error_fg_color),
                    );
                }
            });
        });
    if let Some(target) = browse {
        app.browse(target);
    }
    if fetch_now {
        app.fetch_model(&model);
    }
    if start && let Err(problems) = app.start_new_run() {
        app.notify(
            format!("The run cannot start: {} field(s) to fix", problems.len()),
            true,
        );
    }
    if !open || close {
        app.new_run = None;
    }
}

fn form(
    f: &mut NewRunForm,
    cached: &[String],
    problems: &Problems,
    runs_folder: Option<&std::path::Path>,
    (browsing, browse): (bool, &mut Option<Target>),
    ui: &mut egui::Ui,
) {
    if let Some(reason) = problems.get(&Field::RunsFolder) {
        reason_label(ui, reason);
    }
    section(ui, "Model and data");
    grid(ui, "model-data", |ui| {
        row(ui, "Model", problems.get(&Field::Model), |ui, label| {
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut f.model)
                        .hint_text("a known name, a cached model, an HF folder or org/name")
                        .desired_width(FIELD_WIDTH - 160.0),
                )
                .labelled_by(label);
                if super::browse_button(ui, browsing) {
                    *browse = Some(Target::ModelFolder);
                }
                ui.menu_button("Cached models…", |ui| {
                    if cached.is_empty() {
                        ui.label("No model in the cache yet (fetched on first use).");
                    }
                    for name in cached {
                        if ui.button(name).clicked() {
                            f.model.clone_from(name);
                            ui.close();
                        }
                    }
                });
            });
        });
        row(ui, "Task", None, |ui, label| {
            egui::ComboBox::from_id_salt("task")
                .selected_text(f.task.spec().name)
                .show_ui(ui, |ui| {
                    for task in GlueTask::ALL {
                        ui.selectable_value(&mut f.task, task, task.spec().name);
                    }
                })
                .response
                .labelled_by(label);
        });
        row(
            ui,
            "GLUE folder",
            problems.get(&Field::DataDir),
            |ui, label| {
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut f.data_dir)
                            .hint_text("the folder holding SST-2/train.tsv, …")
                            .desired_width(FIELD_WIDTH - 80.0),
                    )
                    .labelled_by(label);
                    if super::browse_button(ui, browsing) {
                        *browse = Some(Target::GlueFolder);
                    }
                });
            },
        );
    });

    section(ui, "Method");
    grid(ui, "method", |ui| {
        row(ui, "Method", None, |ui, label| {
            ui.horizontal(|ui| {
                egui::ComboBox::from_id_salt("method")
                    .selected_text(f.method.name())
                    .show_ui(ui, |ui| {
                        for method in MethodName::ALL {
                            ui.selectable_value(&mut f.method, method, method.name());
                        }
                    })
                    .response
                    .labelled_by(label);
                ui.label(RichText::new(method_help(f.method)).weak());
            });
        });
        method_options(f, problems, ui);
    });

    section(ui, "Training");
    grid(ui, "training", |ui| {
        let p = |field| problems.get(&field);
        text_row(ui, "Learning rate", &mut f.lr, "2e-5", p(Field::Lr));
        text_row(
            ui,
            "Batch size",
            &mut f.batch_size,
            "32",
            p(Field::BatchSize),
        );
        text_row(ui, "Epochs", &mut f.epochs, "3", p(Field::Epochs));
        text_row(
            ui,
            "Max steps",
            &mut f.max_steps,
            "empty: from the epochs",
            p(Field::MaxSteps),
        );
        text_row(
            ui,
            "Max sequence length",
            &mut f.max_seq_len,
            "128",
            p(Field::MaxSeqLen),
        );
        text_row(ui, "Seed", &mut f.seed, "42", p(Field::Seed));
        text_row(
            ui,
            "Evaluate every",
            &mut f.eval_every,
            "empty: once per epoch",
            p(Field::EvalEvery),
        );
    });

    section(ui, "Output");
    grid(ui, "output", |ui| {
        row(
            ui,
            "Run folder",
            problems.get(&Field::OutputName),
            |ui, label| {
                ui.horizontal(|ui| {
                    if let Some(folder) = runs_folder {
                        ui.label(RichText::new(format!("{}/", folder.display())).weak());
                    }
                    let before = f.output_name.clone();
                    ui.add(egui::TextEdit::singleline(&mut f.output_name).desired_width(160.0))
                        .labelled_by(label);
                    if f.output_name != before {
                        f.name_edited = true;
                    }
                });
            },
        );
        row(ui, "Device", problems.get(&Field::Device), |ui, label| {
            egui::ComboBox::from_id_salt("device")
                .selected_text(f.device.name())
                .show_ui(ui, |ui| {
                    for device in DeviceChoice::compiled() {
                        ui.selectable_value(&mut f.device, device, device.name());
                    }
                })
                .response
                .labelled_by(label);
        });
    });
}

/// The chosen method's own options (nothing for dense and BitFit).
fn method_options(f: &mut NewRunForm, problems: &Problems, ui: &mut egui::Ui) {
    let p = |field| problems.get(&field);
    match f.method {
        MethodName::Dense | MethodName::Bitfit => {}
        MethodName::Random => {
            text_row(
                ui,
                "Keep ratio",
                &mut f.keep_ratio,
                "fraction kept: 0.005 is 0.5%",
                p(Field::KeepRatio),
            );
        }
        MethodName::Fish => {
            text_row(
                ui,
                "Keep ratio",
                &mut f.keep_ratio,
                "fraction kept: 0.005 is 0.5%",
                p(Field::KeepRatio),
            );
            text_row(
                ui,
                "Fisher samples",
                &mut f.fisher_samples,
                "1024",
                p(Field::FisherSamples),
            );
            row(ui, "Fisher kind", None, |ui, label| {
                egui::ComboBox::from_id_salt("fisher-kind")
                    .selected_text(f.fisher_kind.name())
                    .show_ui(ui, |ui| {
                        for kind in [
                            FisherKindName::Empirical,
                            FisherKindName::Expected,
                            FisherKindName::Sampled,
                        ] {
                            ui.selectable_value(&mut f.fisher_kind, kind, kind.name());
                        }
                    })
                    .response
                    .labelled_by(label);
            });
            if f.fisher_kind == FisherKindName::Sampled {
                text_row(
                    ui,
                    "Label draws",
                    &mut f.fisher_draws,
                    "1",
                    p(Field::FisherDraws),
                );
            }
        }
        MethodName::Freeze => text_row(
            ui,
            "Frozen groups",
            &mut f.freeze,
            "e.g. embeddings, wq@1-3, deepest:2, pooler",
            p(Field::Freeze),
        ),
        MethodName::Prune => text_row(
            ui,
            "Final sparsity",
            &mut f.final_sparsity,
            "0.5",
            p(Field::FinalSparsity),
        ),
        MethodName::Supermask => {
            text_row(
                ui,
                "Initial sparsity",
                &mut f.initial_sparsity,
                "0.05",
                p(Field::InitialSparsity),
            );
            text_row(ui, "Score lr", &mut f.score_lr, "0.2", p(Field::ScoreLr));
        }
    }
}

/// What a method does, in a few words.
fn method_help(method: MethodName) -> &'static str {
    match method {
        MethodName::Dense => "every parameter trains",
        MethodName::Fish => "top-k parameters by Fisher information",
        MethodName::Random => "a random mask of FISH's budget",
        MethodName::Bitfit => "biases and the task head only",
        MethodName::Freeze => "all but the frozen groups train",
        MethodName::Prune => "magnitude pruning of WQ…WO",
        MethodName::Supermask => "trained masks over fixed WQ…WO",
    }
}

fn section(ui: &mut egui::Ui, title: &str) {
    ui.add_space(6.0);
    ui.label(RichText::new(title).strong());
}

fn grid(ui: &mut egui::Ui, id: &str, add: impl FnOnce(&mut egui::Ui)) {
    egui::Grid::new(id)
        .num_columns(2)
        .min_col_width(150.0)
        .spacing([12.0, 6.0])
        .show(ui, add);
}

/// A grid row: the label, then the value (given the label's id to be labelled by) with the
/// field's problem in red below it.
fn row(
    ui: &mut egui::Ui,
    label: &str,
    problem: Option<&String>,
    value: impl FnOnce(&mut egui::Ui, egui::Id),
) {
    let label = ui.label(label);
    ui.vertical(|ui| {
        value(ui, label.id);
        if let Some(reason) = problem {
            reason_label(ui, reason);
        }
    });
    ui.end_row();
}

fn text_row(
    ui: &mut egui::Ui,
    label: &str,
    text: &mut String,
    hint: &str,
    problem: Option<&String>,
) {
    row(ui, label, problem, |ui, label| {
        ui.add(
            egui::TextEdit::singleline(text)
                .hint_text(hint)
                .desired_width(FIELD_WIDTH),
        )
        .labelled_by(label);
    });
}

fn reason_label(ui: &mut egui::Ui, reason: &str) {
    ui.set_max_width(FIELD_WIDTH + 80.0);
    ui.label(RichText::new(reason).color(ui.visuals().error_fg_color));
}

/// The queue at the bottom of the window while this app trains or runs wait.
pub fn queue_panel(app: &mut FinesseApp, ui: &mut egui::Ui) {
    if !app.queue.is_busy() {
        return;
    }
    let mut remove = None;
    let mut open = None;
    let mut cancel = false;
    egui::Panel::bottom("queue").show(ui, |ui| {
        ui.add_space(2.0);
        if let Some(active) = app.queue.active() {
            ui.horizontal(|ui| {
                ui.label(RichText::new("Training").strong());
                ui.label(active.run.describe());
                if ui.small_button("Open").clicked() {
                    open = Some(active.run.path().to_path_buf());
                }
                if active.cancelling {
                    ui.label(RichText::new("cancelling: writing the checkpoint…").weak());
                } else if ui
                    .small_button("Cancel")
                    .on_hover_text("Stop after the current step; the run stays resumable")
                    .clicked()
                {
                    cancel = true;
                }
            });
        }
        for (i, run) in app.queue.waiting().enumerate() {
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Waiting {}", i + 1)).weak());
                ui.label(run.describe());
                if ui
                    .small_button(format!("Remove {}", run.name()))
                    .on_hover_text("Take it out of the queue (nothing was written yet)")
                    .clicked()
                {
                    remove = Some(run.id);
                }
            });
        }
        ui.add_space(2.0);
    });
    if let Some(id) = remove
        && let Some(run) = app.queue.remove(id)
    {
        app.notify(format!("Removed {} from the queue", run.name()), false);
    }
    if let Some(path) = open {
        app.open_run(&path);
    }
    if cancel {
        app.cancel_training();
    }
}

/// The dialog shown when the window is closed while runs train or wait.
pub fn quit_dialog(app: &mut FinesseApp, ctx: &egui::Context) {
    match app.quit {
        Quit::Asking => {}
        Quit::Stopping => {
            egui::Modal::new(egui::Id::unique("quitting")).show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Cancelling the run: writing its checkpoint, then quitting…");
                });
            });
            return;
        }
        Quit::No | Quit::Closing => return,
    }
    let active = app.queue.active().map(|a| a.run.name());
    let waiting = app.queue.waiting().len();
    let mut choice = None;
    let modal = egui::Modal::new(egui::Id::unique("confirm-quit")).show(ctx, |ui| {
        ui.set_max_width(480.0);
        ui.heading(if active.is_some() {
            "A run is training"
        } else {
            "Runs are waiting"
        });
        ui.add_space(4.0);
        if let Some(name) = &active {
            ui.label(format!(
                "{name} trains in this app, and training cannot go on once it quits. \
                 Cancelling writes a checkpoint: resume it later from its run view or with \
                 finesse finetune --resume."
            ));
        }
        if waiting > 0 {
            ui.label(format!(
                "{waiting} queued run{} will not start (nothing of {} was written yet).",
                if waiting == 1 { "" } else { "s" },
                if waiting == 1 { "it" } else { "them" }
            ));
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button("Cancel the run (resumable) and quit").clicked() {
                choice = Some(true);
            }
            if ui.button("Keep running").clicked() {
                choice = Some(false);
            }
        });
    });
    if modal.should_close() && choice.is_none() {
        choice = Some(false);
    }
    match choice {
        Some(true) => app.cancel_and_quit(),
        Some(false) => app.quit = Quit::No,
        None => {}
    }
}
