//! Native file dialogs: rfd through the XDG desktop portal (D-Bus, so no GTK at build time),
//! each on a thread of its own so the window keeps drawing; the app polls for the answer and
//! puts the chosen path into the field the dialog was opened for. Every field stays typeable:
//! without a portal (headless machines, CI) a dialog answers nothing and says so.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

/// The field a dialog fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The runs folder (top bar).
    RunsFolder,
    /// The New run form's model folder.
    ModelFolder,
    /// The New run form's GLUE folder.
    GlueFolder,
    /// The open run's figure export file.
    FigureExport,
    /// The runs table's export file.
    TableExport,
    /// The welcome view's GLUE folder for the demo.
    DemoGlueFolder,
}

impl Target {
    /// The dialog's title.
    pub fn title(self) -> &'static str {
        match self {
            Self::RunsFolder => "Choose the runs folder",
            Self::ModelFolder => "Choose a model folder (config.json, model.safetensors)",
            Self::GlueFolder => "Choose the GLUE folder (SST-2/train.tsv, …)",
            Self::DemoGlueFolder => "Choose a GLUE folder with SST-2 for the demo",
            Self::FigureExport => "Save the figure as (.png or .svg)",
            Self::TableExport => "Save the runs table as (.md, .csv or .json)",
        }
    }

    /// A save dialog (a file name) rather than a folder picker.
    pub fn saves_a_file(self) -> bool {
        matches!(self, Self::FigureExport | Self::TableExport)
    }
}

/// What a dialog is opened with.
#[derive(Clone, Debug)]
pub struct Request {
    /// The field it fills.
    pub target: Target,
    /// The field's current value: the dialog starts in its folder (and, saving, its name).
    pub current: String,
}

/// Opens a dialog for a request and answers later (`None`: closed without a choice, or no
/// dialog on this system). The app's default is [`native`]; tests put a scripted one here.
pub type Picker = Box<dyn Fn(Request) -> Receiver<Option<PathBuf>>>;

/// The system's dialog (rfd, XDG desktop portal), on its own thread.
pub fn native(request: Request) -> Receiver<Option<PathBuf>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        // zbus (under the portal) needs a tokio runtime to talk to D-Bus.
        let chosen = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|rt| rt.block_on(ask(&request)));
        let _ = tx.send(chosen);
    });
    rx
}

async fn ask(request: &Request) -> Option<PathBuf> {
    let current = Path::new(request.current.trim());
    let mut dialog = rfd::AsyncFileDialog::new().set_title(request.target.title());
    let dir = if request.target.saves_a_file() {
        current.parent()
    } else {
        Some(current)
    };
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        dialog = dialog.set_directory(dir);
    }
    let handle = if request.target.saves_a_file() {
        if let Some(name) = current.file_name().and_then(|n| n.to_str()) {
            dialog = dialog.set_file_name(name);
        }
        dialog.save_file().await
    } else {
        dialog.pick_folder().await
    };
    handle.map(|h| h.path().to_path_buf())
}
