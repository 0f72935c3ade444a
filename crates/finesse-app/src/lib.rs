//! `finesse-app`: the desktop app to browse fine-tuning runs, follow running ones live and see
//! their layer × matrix heatmaps (egui/eframe with the glow renderer).
//!
//! The state logic is plain Rust, testable without a window: [`table`] (rows, sorting,
//! filtering), [`scan`] (change detection in a runs folder), [`live`] (an opened run's events
//! folded as they arrive), [`analysis`] (heatmap data and export), [`newrun`] (the new-run
//! form and its validation), [`queue`] (runs trained one at a time), [`format`]. [`app`] holds
//! the eframe application; `ui/` draws it. Runs are read only through `finesse-train`'s run
//! directory readers and `finesse-report`'s figures, as the CLI reads them.

pub mod analysis;
pub mod app;
pub mod compare;
pub mod details;
pub mod dialogs;
pub mod fetch;
pub mod format;
pub mod live;
pub mod newrun;
pub mod queue;
pub mod scan;
pub mod table;
pub mod ui;

pub use app::{FinesseApp, Settings};

/// The app's id: the window's name and the folder of its persisted settings
/// (`~/.local/share/finesse-app/app.ron` on Linux).
pub const APP_ID: &str = "finesse-app";
