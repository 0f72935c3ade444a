//! [`FinesseApp`]: the eframe application — its state, persistence, polling of the runs folder
//! and navigation between the runs browser and a run's view. The views draw in `ui/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use finesse_report::runs::Run;
use serde::{Deserialize, Serialize};

use crate::analysis::{Heatmap, HeatmapKind};
use crate::live::LiveRun;
use crate::scan::{Scanner, is_run_dir};
use crate::table::{Filter, RunRow, RunsTable, Sort};
use crate::ui;

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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            runs_folder: String::new(),
            filter: Filter::default(),
            sort: Sort::default(),
            smoothing: 0.6,
            heatmap: HeatmapKind::default(),
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
}

/// A message shown at the bottom of the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// An error (shown in the error colour)?
    pub is_error: bool,
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
    /// The run whose deletion awaits confirmation.
    pub confirm_delete: Option<PathBuf>,
    /// The latest notice.
    pub notice: Option<Notice>,
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
            confirm_delete: None,
            notice: None,
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
        let mut changed = self.poll_folder();
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
        self.open = Some(OpenRun {
            live,
            tab: RunTab::default(),
            heatmap: None,
            export_path,
            export_message: None,
        });
    }

    /// Back to the runs browser.
    pub fn close_run(&mut self) {
        self.open = None;
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
        if self.poll_if_due() {
            ctx.request_repaint();
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
}
