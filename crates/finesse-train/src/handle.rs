//! The public way to run training from any front-end (CLI, desktop app): start a run on its
//! own thread, receive its events on a channel, cancel it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;

use burn::tensor::Device;

use crate::config::RunConfig;
use crate::error::Result;
use crate::events::Event;
use crate::trainer::{RunOutcome, run};

/// A run in progress.
pub struct RunHandle {
    /// Events, in order; the channel closes when the run ends.
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<Result<RunOutcome>>,
}

impl RunHandle {
    /// Asks the run to stop after its current step; it writes a resumable checkpoint first.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The flag [`RunHandle::cancel`] sets, e.g. for a signal handler.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Waits for the run to end.
    ///
    /// # Panics
    /// If the training thread panicked (a bug), the panic is resumed here.
    ///
    /// # Errors
    /// The run's error (also sent as an `error` event).
    pub fn join(self) -> Result<RunOutcome> {
        match self.thread.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Starts a new run (or continues one with `resume`) on its own thread.
pub fn start_run(config: RunConfig, device: Device, resume: bool) -> RunHandle {
    let (tx, events) = channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let thread = std::thread::Builder::new()
        .name("finesse-train".into())
        .spawn(move || {
            let mut sink = |e: &Event| {
                // A front-end that stopped listening must not stop the run.
                let _ = tx.send(e.clone());
            };
            run(config, device, resume, &mut sink, &flag)
        })
        .unwrap_or_else(|e| panic!("cannot spawn the training thread: {e}"));
    RunHandle {
        events,
        cancel,
        thread,
    }
}
