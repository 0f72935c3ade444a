//! [`FinesseApp`]: the eframe application — its state, persistence, polling of the runs folder
//! and navigation between the runs browser and a run's view. The views draw in `ui/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use finesse_report::runs::Run;
use serde::{Deserialize, Serialize};

use crate::analysis::{Heatmap, HeatmapKind};
use crate::compare::Compare;
use crate::fetch::{FetchState, ModelFetch};
use crate::live::LiveRun;
use crate::newrun::{NewRunForm, Problems};
use crate::queue::{Ended, QueueEvent, RunQueue, Training};
use crate::scan::{Scanner, is_run_dir};
use crate::table::{Filter, RunRow, RunsTable, Sort};
use crate::ui;
use finesse_train::device::DeviceChoice;

/// How often the runs folder and the opened run are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the app remembers between sessions (eframe persistence).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The runs folder.
    pub runs_folder: String,
    /// The table's filter.
    pub filter: Filter,
    /// The table's order.
    pub sort: Sort,
    /// Loss smoothing (TensorBoard's EMA weight, 0–0.999).
    pub smoothing: f64,
    /// The analysis view's figure.
    pub heatmap: HeatmapKind,
    /// Show it in the papers' line form (one line per matrix across layers), not as a heatmap.
    pub lines: bool,
    /// Light, dark, or the system's.
    pub theme: ThemeChoice,
}

/// The app's colours: light, dark, or the system's preference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThemeChoice {
    /// Follow the system (dark where it says nothing).
    #[default]
    System,
    /// Dark text on a light background.
    Light,
    /// Light text on a dark background.
    Dark,
}

impl ThemeChoice {
    /// Every choice, in menu order.
    pub const ALL: [Self; 3] = [Self::System, Self::Light, Self::Dark];

    /// The menu's text.
    pub fn title(self) -> &'static str {
        match self {
            Self::System => "System",
            Self::Light => "Light",
            Self::Dark => "Dark",
        }
    }

    /// egui's preference for it.
    pub fn preference(self) -> egui::ThemePreference {
        match self {
            Self::System => egui::ThemePreference::System,
            Self::Light => egui::ThemePreference::Light,
            Self::Dark => egui::ThemePreference::Dark,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            runs_folder: String::new(),
            filter: Filter::default(),
            sort: Sort::default(),
            smoothing: 0.6,
            heatmap: HeatmapKind::default(),
            lines: false,
            theme: ThemeChoice::System,
        }
    }
}

/// The tabs of a run's view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunTab {
    /// Progress, curves, the event log.
    #[default]
    Training,
    /// Layer × matrix heatmaps.
    Analysis,
}

/// The opened run.
#[derive(Debug)]
pub struct OpenRun {
    /// The run, followed live.
    pub live: LiveRun,
    /// The tab shown.
    pub tab: RunTab,
    /// The analysis figure built for the current kind (rebuilt when the kind or run changes).
    pub heatmap: Option<(HeatmapKind, Result<Heatmap, String>)>,
    /// The export path field.
    pub export_path: String,
    /// What the last export did.
    pub export_message: Option<Result<String, String>>,
    /// The heatmap cell clicked last, in detail (its window is open while `Some`).
    pub details: Option<crate::details::CellDetails>,
}

/// A message shown at the bottom of the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// An error (shown in the error colour)?
    pub is_error: bool,
}

/// Where quitting stands while runs train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quit {
    /// Not quitting.
    #[default]
    No,
    /// The window was asked to close while a run trains: the dialog asks what to do.
    Asking,
    /// The run was cancelled; the window closes once its checkpoint is written.
    Stopping,
    /// Closing (nothing trains any more).
    Closing,
}

/// The new-run form while it is open.
#[derive(Clone, Debug, Default)]
pub struct NewRun {
    /// The fields.
    pub form: NewRunForm,
    /// The models in the cache (offered next to the model field).
    pub cached_models: Vec<String>,
    /// Whether the model named in the form must be fetched first, for the name it was
    /// checked for (checked again when the name changes or a fetch ends, not every frame).
    pub fetch_check: Option<(String, bool)>,
}

impl NewRun {
    /// Whether `model` (the form's) must be fetched before a run can use it, from the last
    /// check when the name has not changed.
    pub fn needs_fetch(&mut self, setup: &crate::fetch::FetchSetup, model: &str) -> bool {
        match &self.fetch_check {
            Some((checked, needs)) if checked == model => *needs,
            _ => {
                let needs = setup.needs_fetch(model);
                self.fetch_check = Some((model.to_string(), needs));
                needs
            }
        }
    }
}

/// The finesse desktop app.
pub struct FinesseApp {
    /// Remembered settings.
    pub settings: Settings,
    /// The path field's text (applied with Open or Enter).
    pub folder_field: String,
    /// The runs folder's rows.
    pub table: RunsTable,
    /// Why the runs folder cannot be listed.
    pub folder_error: Option<String>,
    /// The run shown, if any (else the runs browser).
    pub open: Option<OpenRun>,
    /// Runs ticked in the table for comparison.
    pub selected: std::collections::BTreeSet<PathBuf>,
    /// The runs compared side by side, when that view is shown.
    pub compare: Option<Compare>,
    /// The run whose deletion awaits confirmation.
    pub confirm_delete: Option<PathBuf>,
    /// The latest notice.
    pub notice: Option<Notice>,
    /// The new-run form, when open.
    pub new_run: Option<NewRun>,
    /// Runs this app trains, one at a time.
    pub queue: RunQueue<Training>,
    /// Where quitting stands.
    pub quit: Quit,
    /// The runs table's export file (`runs.md`, `runs.csv`, `runs.json`).
    pub table_export_path: String,
    /// The last table export's outcome.
    pub table_export_message: Option<Result<String, String>>,
    /// Shows a folder in the system's file manager ([`open_folder`]; tests put a recorder
    /// here).
    pub file_manager: FileManager,
    /// Opens file dialogs ([`crate::dialogs::native`]; tests put a scripted one here).
    pub picker: crate::dialogs::Picker,
    /// The dialog open now, and the field it fills.
    pending_pick: Option<(
        crate::dialogs::Target,
        std::sync::mpsc::Receiver<Option<PathBuf>>,
    )>,
    /// A run that started and opens as soon as its `run.json` is written.
    pending_open: Option<PathBuf>,
    /// The model fetch going on (or the last one, until dismissed).
    pub fetch: Option<ModelFetch>,
    /// How model fetches run (tests put a stand-in Python and cache here).
    pub fetch_setup: crate::fetch::FetchSetup,
    /// The welcome view's demo (`finesse demo`'s settings; tests make it small).
    pub demo: finesse_train::demo::DemoSettings,
    /// The welcome view's GLUE folder field (empty: `$FINESSE_HOME/data/glue` or the sample).
    pub demo_data_field: String,
    /// The run (the demo, or one from the New run form) waiting for its model's fetch.
    pending_run: Option<(finesse_train::RunConfig, DeviceChoice)>,
    /// The theme last handed to egui.
    applied_theme: Option<ThemeChoice>,
    scanner: Scanner,
    scanned_folder: Option<PathBuf>,
    last_poll: Option<Instant>,
}

impl FinesseApp {
    /// The app with `settings` and, when given, the runs folder of `--runs` (which wins over
    /// the remembered one).
    pub fn new(mut settings: Settings, runs: Option<PathBuf>) -> Self {
        if let Some(runs) = runs {
            settings.runs_folder = runs.display().to_string();
        }
        Self {
            folder_field: settings.runs_folder.clone(),
            settings,
            table: RunsTable::default(),
            folder_error: None,
            open: None,
            selected: Default::default(),
            compare: None,
            confirm_delete: None,
            notice: None,
            new_run: None,
            queue: RunQueue::default(),
            quit: Quit::No,
            file_manager: Box::new(open_folder),
            picker: Box::new(crate::dialogs::native),
            pending_pick: None,
            table_export_path: String::new(),
            table_export_message: None,
            pending_open: None,
            fetch: None,
            fetch_setup: Default::default(),
            demo: Default::default(),
            demo_data_field: String::new(),
            pending_run: None,
            applied_theme: None,
            scanner: Scanner::default(),
            scanned_folder: None,
            last_poll: None,
        }
    }

    /// The app as eframe creates it: settings from its storage, fonts and style set.
    pub fn from_creation(cc: &eframe::CreationContext<'_>, runs: Option<PathBuf>) -> Self {
        let settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        Self::new(settings, runs)
    }

    /// Opens a file dialog for `target` (one at a time), starting from the field's value.
    pub fn browse(&mut self, target: crate::dialogs::Target) {
        if self.pending_pick.is_some() {
            return;
        }
        let current = self.field_mut(target).cloned().unwrap_or_default();
        let answer = (self.picker)(crate::dialogs::Request { target, current });
        self.pending_pick = Some((target, answer));
    }

    /// A file dialog is open.
    pub fn browsing(&self) -> bool {
        self.pending_pick.is_some()
    }

    /// Puts a dialog's answer, once there is one, into its field (the runs folder is opened).
    pub fn poll_dialog(&mut self) -> bool {
        use std::sync::mpsc::TryRecvError;
        let Some((target, answer)) = &self.pending_pick else {
            return false;
        };
        let target = *target;
        let chosen = match answer.try_recv() {
            Ok(chosen) => chosen,
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => None,
        };
        self.pending_pick = None;
        let Some(path) = chosen else {
            self.notify(
                "No path chosen (closed, or no file dialog on this system: type the path instead)",
                false,
            );
            return true;
        };
        let text = path.display().to_string();
        match self.field_mut(target) {
            Some(field) => *field = text,
            None => return true,
        }
        if target == crate::dialogs::Target::RunsFolder {
            self.apply_folder_field();
        }
        true
    }

    /// The text field a dialog target fills, when it is on screen.
    fn field_mut(&mut self, target: crate::dialogs::Target) -> Option<&mut String> {
        use crate::dialogs::Target;
        match target {
            Target::RunsFolder => Some(&mut self.folder_field),
            Target::ModelFolder => self.new_run.as_mut().map(|n| &mut n.form.model),
            Target::GlueFolder => self.new_run.as_mut().map(|n| &mut n.form.data_dir),
            Target::FigureExport => self.open.as_mut().map(|o| &mut o.export_path),
            Target::TableExport => Some(&mut self.table_export_path),
            Target::DemoGlueFolder => Some(&mut self.demo_data_field),
        }
    }

    /// Shows the run directory `path` in the file manager, or says why it cannot.
    pub fn show_folder(&mut self, path: &Path) {
        match (self.file_manager)(path) {
            Ok(()) => self.notify(
                format!("Opened {} in the file manager", path.display()),
                false,
            ),
            Err(e) => self.notify(format!("Cannot open {}: {e}", path.display()), true),
        }
    }

    /// The runs folder in use (`None`: none chosen yet).
    pub fn runs_folder(&self) -> Option<PathBuf> {
        let text = self.settings.runs_folder.trim();
        (!text.is_empty()).then(|| PathBuf::from(text))
    }

    /// Switches to the runs folder typed in the path field.
    pub fn apply_folder_field(&mut self) {
        self.settings.runs_folder = self.folder_field.trim().to_string();
        self.open = None;
        self.poll_now();
    }

    /// Looks at the runs folder (and the opened run) now, whatever the time since the last
    /// poll; returns whether anything changed.
    pub fn poll_now(&mut self) -> bool {
        self.last_poll = Some(Instant::now());
        let mut changed = self.tick_queue();
        changed |= self.poll_folder();
        if let Some(path) = self.pending_open.clone()
            && is_run_dir(&path)
        {
            self.pending_open = None;
            if self.open.as_ref().is_none_or(|o| o.live.dir.root != path) {
                self.open_run(&path);
            }
            changed = true;
        }
        if let Some(compare) = &mut self.compare {
            changed |= compare.poll();
        }
        if let Some(open) = &mut self.open
            && open.live.poll()
        {
            changed = true;
            if open.live.progress.status != finesse_train::RunStatus::Running {
                // A finished run's analysis files may be new.
                open.heatmap = None;
            }
        }
        changed
    }

    /// Reads every run of the folder (and the opened run's files) again.
    pub fn refresh_all(&mut self) {
        self.scanner.reset();
        if let Some(open) = &mut self.open {
            open.live.reload_run();
            open.heatmap = None;
        }
        self.poll_now();
    }

    /// Polls when [`POLL_INTERVAL`] has passed since the last poll.
    pub fn poll_if_due(&mut self) -> bool {
        let due = self.last_poll.is_none_or(|t| t.elapsed() >= POLL_INTERVAL);
        due && self.poll_now()
    }

    fn poll_folder(&mut self) -> bool {
        let folder = self.runs_folder();
        if folder != self.scanned_folder {
            self.scanner.reset();
            self.table.clear();
            self.scanned_folder.clone_from(&folder);
            self.folder_error = None;
        }
        let Some(folder) = folder else {
            return false;
        };
        let changes = match self.scanner.poll(&folder) {
            Ok(changes) => changes,
            Err(e) => {
                let message = format!("cannot list {}: {e}", folder.display());
                let changed = self.folder_error.as_ref() != Some(&message);
                self.folder_error = Some(message);
                self.table.clear();
                self.scanner.reset();
                return changed;
            }
        };
        self.folder_error = None;
        for path in &changes.removed {
            self.table.remove(path);
            self.selected.remove(path);
        }
        for path in &changes.changed {
            let row = match Run::open(path) {
                Ok(run) => RunRow::of_run(&run),
                Err(e) => RunRow::unreadable(path, e.to_string()),
            };
            self.table.upsert(row);
        }
        !changes.is_empty()
    }

    /// Opens the run at `path` in the run view.
    pub fn open_run(&mut self, path: &Path) {
        let live = LiveRun::open(path);
        let export_path = path
            .join("figures")
            .join(format!("{}.png", self.settings.heatmap.file_stem()))
            .display()
            .to_string();
        self.compare = None;
        self.open = Some(OpenRun {
            live,
            tab: RunTab::default(),
            heatmap: None,
            export_path,
            export_message: None,
            details: None,
        });
    }

    /// Back to the runs browser (from a run or the comparison).
    pub fn close_run(&mut self) {
        self.open = None;
        self.compare = None;
    }

    /// Ticks or unticks `path` for comparison.
    pub fn toggle_selected(&mut self, path: &Path) {
        if !self.selected.remove(path) {
            self.selected.insert(path.to_path_buf());
        }
    }

    /// The ticked runs still in the table, in the table's order as shown.
    pub fn selected_runs(&self) -> Vec<PathBuf> {
        self.table
            .visible(&self.settings.filter, self.settings.sort)
            .into_iter()
            .filter(|r| self.selected.contains(&r.path))
            .map(|r| r.path.clone())
            .collect()
    }

    /// Shows the ticked runs side by side (two or more).
    pub fn open_compare(&mut self) {
        let paths = self.selected_runs();
        if paths.len() >= 2 {
            self.open = None;
            self.compare = Some(Compare::open(&paths));
        }
    }

    /// The run `delta` rows after (negative: before) the open one in the runs table as it is
    /// shown (filters and sort applied); `None` at either end or with no run open.
    pub fn neighbour_run(&self, delta: isize) -> Option<PathBuf> {
        let open = &self.open.as_ref()?.live.dir.root;
        let rows = self
            .table
            .visible(&self.settings.filter, self.settings.sort);
        let at = rows.iter().position(|r| &r.path == open)?;
        let to = at.checked_add_signed(delta)?;
        rows.get(to).map(|r| r.path.clone())
    }

    /// Opens the run `delta` rows away (see [`Self::neighbour_run`]), keeping the tab.
    pub fn open_neighbour(&mut self, delta: isize) {
        let Some(path) = self.neighbour_run(delta) else {
            return;
        };
        let tab = self.open.as_ref().map(|o| o.tab).unwrap_or_default();
        self.open_run(&path);
        if let Some(open) = &mut self.open {
            open.tab = tab;
        }
    }

    /// Deletes the run directory `path` (after the user confirmed): only a run directory
    /// inside the runs folder, and not while a process trains it.
    ///
    /// # Errors
    /// Why it was refused, or why removing failed.
    pub fn delete_run(&mut self, path: &Path) -> Result<(), String> {
        let folder = self
            .runs_folder()
            .ok_or_else(|| "no runs folder is open".to_string())?;
        if path.parent() != Some(folder.as_path()) || !is_run_dir(path) {
            return Err(format!(
                "{} is not a run directory of {}",
                path.display(),
                folder.display()
            ));
        }
        if finesse_train::RunDir::new(path).is_locked() {
            return Err(format!(
                "{} is training now: cancel it first",
                path.display()
            ));
        }
        std::fs::remove_dir_all(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        self.table.remove(path);
        if self.open.as_ref().is_some_and(|o| o.live.dir.root == path) {
            self.open = None;
        }
        self.poll_now();
        Ok(())
    }

    /// Opens the new-run form (the cached models listed again).
    pub fn open_new_run(&mut self) {
        let cached_models = finesse_bert::hub::list_cache()
            .map(|models| models.into_iter().map(|m| m.name).collect())
            .unwrap_or_default();
        let mut form = self.new_run.take().map(|n| n.form).unwrap_or_default();
        form.refresh_name(self.runs_folder().as_deref(), &self.queue.paths());
        self.new_run = Some(NewRun {
            form,
            cached_models,
            fetch_check: None,
        });
    }

    /// Checks the new-run form against the runs folder and the queue.
    ///
    /// # Errors
    /// The form's problems, by field.
    pub fn check_new_run(&self) -> Result<crate::newrun::CheckedRun, Problems> {
        let Some(new_run) = &self.new_run else {
            return Err(Problems::new());
        };
        new_run
            .form
            .check(self.runs_folder().as_deref(), &self.queue.paths())
    }

    /// Queues the run of the new-run form (it starts now when nothing trains) and closes
    /// the form.
    ///
    /// # Errors
    /// The form's problems, by field (the form stays open).
    pub fn start_new_run(&mut self) -> Result<(), Problems> {
        let checked = self.check_new_run()?;
        let name = checked.config.output_dir.clone();
        let model = checked.config.model.clone();
        // A known model not in the cache is fetched first, with progress and Cancel (the
        // fetch phase of the run, shown at the bottom), unless another fetch is going on.
        let fetching = self.fetch.as_ref().is_some_and(ModelFetch::is_running);
        if !fetching && self.pending_run.is_none() && self.fetch_setup.needs_fetch(&model) {
            self.fetch_model(&model);
            self.pending_run = Some((checked.config, checked.device));
            self.new_run = None;
            self.notify(
                format!("{} starts once {model} is fetched", name.display()),
                false,
            );
            return Ok(());
        }
        let waiting_before = self.queue.is_busy();
        self.queue.push(checked.config, checked.device, false);
        self.new_run = None;
        if waiting_before {
            self.notify(
                format!(
                    "Queued {}: it starts when the runs before it end",
                    name.display()
                ),
                false,
            );
        }
        self.poll_now();
        Ok(())
    }

    /// Queues the resume of the cancelled or interrupted run at `path` (its `run.json`
    /// gives every setting).
    ///
    /// # Errors
    /// Why it cannot be resumed (finished, no checkpoint, training elsewhere, unknown device).
    pub fn resume_run(&mut self, path: &Path) -> Result<(), String> {
        if self.queue.paths().iter().any(|p| p == path) {
            return Err(format!("{} is already in the queue", path.display()));
        }
        let dir = finesse_train::RunDir::open(path).map_err(|e| e.to_string())?;
        let config = dir
            .resume_config(&finesse_train::ResumeRequest::default())
            .map_err(|e| e.to_string())?;
        let device = finesse_train::device::DeviceChoice::parse(&config.device)
            .filter(|d| finesse_train::device::DeviceChoice::compiled().contains(d))
            .ok_or_else(|| {
                format!(
                    "this run trained on `{}`, which this app is not built with",
                    config.device
                )
            })?;
        self.queue.push(config, device, true);
        self.poll_now();
        Ok(())
    }

    /// Asks the run this app trains to stop; it writes a resumable checkpoint first.
    pub fn cancel_training(&mut self) {
        self.queue.cancel_active();
    }

    /// Ends and starts queued runs; returns whether anything happened.
    pub fn tick_queue(&mut self) -> bool {
        let events = self.queue.tick(Training::start);
        let changed = !events.is_empty();
        for event in events {
            match event {
                QueueEvent::Started(run) => {
                    self.pending_open = Some(run.path().to_path_buf());
                    self.notify(format!("Training {}", run.describe()), false);
                }
                QueueEvent::NotStarted(run, why) => {
                    self.notify(format!("{} could not start: {why}", run.name()), true);
                }
                QueueEvent::Ended(run, ended) => {
                    let (text, is_error) = match ended {
                        Ended::Finished => (format!("{} finished", run.name()), false),
                        Ended::Cancelled { step } => (
                            format!(
                                "{} cancelled after step {step}: resumable from its checkpoint",
                                run.name()
                            ),
                            false,
                        ),
                        Ended::Failed(e) => (format!("{} failed: {e}", run.name()), true),
                    };
                    self.notify(text, is_error);
                }
            }
        }
        changed
    }

    /// The window was asked to close: returns whether it may (nothing trains or waits,
    /// or the user already chose). Otherwise the quit dialog opens.
    pub fn close_requested(&mut self) -> bool {
        match self.quit {
            Quit::Closing => true,
            Quit::Stopping => false,
            Quit::No | Quit::Asking if self.queue.is_busy() => {
                self.quit = Quit::Asking;
                false
            }
            Quit::No | Quit::Asking => true,
        }
    }

    /// The quit dialog's "cancel and quit": waiting runs dropped, the active run cancelled;
    /// the window closes once its checkpoint is written.
    pub fn cancel_and_quit(&mut self) {
        self.queue.clear_waiting();
        self.queue.cancel_active();
        self.quit = Quit::Stopping;
    }

    /// Starts fetching the known model `model` in the background (progress in the window;
    /// cancellable). Does nothing while another fetch runs.
    pub fn fetch_model(&mut self, model: &str) {
        if self.fetch.as_ref().is_some_and(ModelFetch::is_running) {
            return;
        }
        self.fetch = Some(ModelFetch::start(model, self.fetch_setup.clone()));
    }

    /// The welcome view's one click: the demo run (FISH 0.5% on SST-2 — the shipped sample
    /// unless `$FINESSE_HOME/data/glue` has SST-2 — 150 steps) in the runs folder (default
    /// `$FINESSE_HOME/runs`), queued at once, or after its model's fetch.
    ///
    /// # Errors
    /// The runs folder or the sample cannot be written, or the demo's settings are invalid.
    pub fn start_demo(&mut self) -> Result<(), String> {
        let runs = match self.runs_folder() {
            Some(runs) => runs,
            None => {
                let runs = finesse_bert::hub::finesse_home().join("runs");
                self.settings.runs_folder = runs.display().to_string();
                self.folder_field = self.settings.runs_folder.clone();
                runs
            }
        };
        // The typed folder wins over the settings' for this run only (clearing the field goes
        // back to the default).
        let typed = self.demo_data_field.trim();
        let given = if typed.is_empty() {
            self.demo.data_dir.clone()
        } else {
            let dir = PathBuf::from(typed);
            if !dir.join("SST-2").join("train.tsv").is_file() {
                return Err(format!(
                    "{} holds no SST-2/train.tsv (a GLUE-layout folder; `finesse data fetch \
                     sst2` makes one)",
                    dir.display()
                ));
            }
            Some(dir)
        };
        std::fs::create_dir_all(&runs)
            .map_err(|e| format!("cannot create the runs folder {}: {e}", runs.display()))?;
        let (data, sample) = finesse_train::demo::demo_data(given).map_err(|e| e.to_string())?;
        let taken = self.queue.paths();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let output = (0..)
            .map(|n| match n {
                0 => runs.join(format!("demo-{secs}")),
                n => runs.join(format!("demo-{secs}-{n}")),
            })
            .find(|p| !p.exists() && !taken.contains(p))
            .unwrap_or_else(|| runs.join("demo"));
        let device = DeviceChoice::default_choice();
        let config = finesse_train::demo::demo_config(
            &self.demo,
            data,
            output,
            finesse_train::device::device_label(device),
        );
        config.validate().map_err(|e| e.to_string())?;
        let on = if sample {
            "the SST-2 sample shipped with finesse"
        } else {
            "SST-2"
        };
        if self.fetch_setup.needs_fetch(&self.demo.model) {
            let model = self.demo.model.clone();
            self.fetch_model(&model);
            self.pending_run = Some((config, device));
            self.notify(
                format!("The demo trains on {on} once {model} is fetched"),
                false,
            );
        } else {
            self.queue.push(config, device, false);
            self.notify(format!("Demo: FISH 0.5% on {on}"), false);
        }
        self.poll_now();
        Ok(())
    }

    /// Follows the model fetch: a finished one queues the run waiting for it, a failed or
    /// cancelled one drops it, saying so. Returns whether anything changed.
    pub fn tick_fetch(&mut self) -> bool {
        let Some(fetch) = &self.fetch else {
            return false;
        };
        match fetch.state() {
            FetchState::Running(_) => return true,
            FetchState::Done(_) => {
                // A "must fetch" answer is stale now (checked once more, then cached again).
                if let Some(new_run) = &mut self.new_run
                    && new_run
                        .fetch_check
                        .as_ref()
                        .is_some_and(|(_, needs)| *needs)
                {
                    new_run.fetch_check = None;
                }
                if let Some((config, device)) = self.pending_run.take() {
                    self.queue.push(config, device, false);
                    self.poll_now();
                }
            }
            FetchState::Failed(e) => {
                if let Some((config, _)) = self.pending_run.take() {
                    let name = config.output_dir.display();
                    self.notify(format!("{name} cannot start: {e}"), true);
                }
            }
            FetchState::Cancelled => {
                if let Some((config, _)) = self.pending_run.take() {
                    let name = config.output_dir.display();
                    self.notify(
                        format!("{name} was not started: the model fetch was cancelled"),
                        false,
                    );
                }
            }
        }
        false
    }

    /// Shows `text` at the bottom of the window.
    pub fn notify(&mut self, text: impl Into<String>, is_error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error,
        });
    }
}

impl eframe::App for FinesseApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        if self.applied_theme != Some(self.settings.theme) {
            ctx.set_theme(self.settings.theme.preference());
            self.applied_theme = Some(self.settings.theme);
        }
        if self.queue.active().is_some() && self.tick_queue() {
            self.poll_now();
            ctx.request_repaint();
        }
        if self.tick_fetch() {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        if self.poll_if_due() || self.poll_dialog() {
            ctx.request_repaint();
        }
        if self.browsing() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        if ctx.input(|i| i.viewport().close_requested()) && !self.close_requested() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        if self.quit == Quit::Stopping && self.queue.active().is_none() {
            self.quit = Quit::Closing;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        // Runs change on disk without any input: look again in a second.
        ctx.request_repaint_after(POLL_INTERVAL);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        ui::show(self, ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // However the window went away, a run still training is cancelled and waited for,
        // so its checkpoint is written and it stays resumable.
        if let Some((run, _)) = self.queue.shutdown() {
            log::info!("cancelled {} on exit (resumable)", run.name());
        }
    }
}

impl Drop for FinesseApp {
    /// A run still training is cancelled and joined (its checkpoint written), whatever ends
    /// the app.
    fn drop(&mut self) {
        self.queue.shutdown();
    }
}

/// What shows a folder in the file manager: [`open_folder`], or a test's recorder.
pub type FileManager = Box<dyn Fn(&Path) -> Result<(), String>>;

/// Opens `dir` in the system's file manager (`xdg-open`, `open`, `explorer`, through the
/// opener crate); a missing folder is an error, not a file manager showing nothing.
pub fn open_folder(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err("the folder no longer exists".into());
    }
    opener::open(dir).map_err(|e| e.to_string())
}
