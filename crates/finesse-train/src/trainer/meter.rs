//! [`Meter`]: training throughput over the current log window and over the whole run, and the
//! mean loss of the window.

use std::time::Instant;

use finesse_glue::HostBatch;

/// The means of one log window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowStats {
    /// Mean training loss of the window's steps.
    pub loss: f64,
    /// Examples per second of wall time since the window opened.
    pub examples_per_sec: f64,
    /// Real (non-padding) tokens per second.
    pub tokens_per_sec: f64,
}

/// Counts examples, tokens and time of training steps.
pub struct Meter {
    window_loss: f64,
    window_steps: usize,
    window_examples: usize,
    window_tokens: usize,
    window_start: Instant,
    run_examples: usize,
    run_tokens: usize,
    train_secs: f64,
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    /// A meter whose first window opens now.
    pub fn new() -> Self {
        Self {
            window_loss: 0.0,
            window_steps: 0,
            window_examples: 0,
            window_tokens: 0,
            window_start: Instant::now(),
            run_examples: 0,
            run_tokens: 0,
            train_secs: 0.0,
        }
    }

    /// Records one training step of `batch` with its loss and compute time.
    pub fn record(&mut self, batch: &HostBatch, loss: f64, step_secs: f64) {
        self.window_loss += loss;
        self.window_steps += 1;
        self.window_examples += batch.batch;
        self.window_tokens += batch.real_tokens;
        self.run_examples += batch.batch;
        self.run_tokens += batch.real_tokens;
        self.train_secs += step_secs;
    }

    /// The window's means; a new window opens.
    pub fn take_window(&mut self) -> WindowStats {
        let secs = self.window_start.elapsed().as_secs_f64().max(1e-9);
        let stats = WindowStats {
            loss: self.window_loss / self.window_steps as f64,
            examples_per_sec: self.window_examples as f64 / secs,
            tokens_per_sec: self.window_tokens as f64 / secs,
        };
        (
            self.window_loss,
            self.window_steps,
            self.window_examples,
            self.window_tokens,
        ) = (0.0, 0, 0, 0);
        self.window_start = Instant::now();
        stats
    }

    /// Restarts the window's clock (after an evaluation, which is not training time).
    pub fn restart_clock(&mut self) {
        self.window_start = Instant::now();
    }

    /// Whole-run examples and real tokens per second of training compute.
    pub fn run_rates(&self) -> (f64, f64) {
        let secs = self.train_secs.max(1e-9);
        (
            self.run_examples as f64 / secs,
            self.run_tokens as f64 / secs,
        )
    }
}
