//! [`Emitter`]: where a run's events go — the front-end's sink and `events.jsonl` — and what
//! the run has reached (whether it started, its last completed step) for the error event.

use crate::error::{Result, TrainError};
use crate::events::{Event, EventLog};

/// Sends each event to the front-end and appends it to the run's log.
pub struct Emitter<'s> {
    sink: &'s mut dyn FnMut(&Event),
    log: EventLog,
    started: bool,
    step: usize,
}

impl<'s> Emitter<'s> {
    /// An emitter to `sink` and `log`.
    pub fn new(sink: &'s mut dyn FnMut(&Event), log: EventLog) -> Self {
        Self {
            sink,
            log,
            started: false,
            step: 0,
        }
    }

    /// Sends and logs one event.
    ///
    /// # Errors
    /// The log cannot be appended to.
    pub fn emit(&mut self, event: Event) -> Result<()> {
        self.started |= matches!(event, Event::Start { .. });
        (self.sink)(&event);
        self.log.append(&event)
    }

    /// Records the last completed step (for the error event).
    pub fn reached(&mut self, step: usize) {
        self.step = step;
    }

    /// Reports a failed run: an `error` event with the error and its causes. A resume that
    /// failed before it started (refused, or its inputs changed) leaves the run as it was, so
    /// its log does not record a failure; the front-end still hears of it.
    pub fn fail(&mut self, error: &TrainError, resume: bool) {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        let event = Event::Error {
            step: self.step,
            message,
        };
        if resume && !self.started {
            (self.sink)(&event);
        } else {
            // The error itself is what the caller needs; a failure to log it must not hide it.
            let _ = self.emit(event);
        }
    }
}
