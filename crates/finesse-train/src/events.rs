//! Run events: what a run reports while it goes, sent on a channel to front-ends and appended
//! to `events.jsonl` (one JSON object per line, `"type"` tagged).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One event of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run started (or resumed).
    Start {
        /// Total optimizer steps of the run.
        total_steps: usize,
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// Training examples used.
        train_examples: usize,
        /// Evaluation examples per dev split.
        eval_examples: usize,
        /// Step the run starts from (0, or the checkpoint's step on resume).
        start_step: usize,
        /// Trainable parameters (entries).
        trainable_params: usize,
        /// All parameters (entries).
        total_params: usize,
    },
    /// A logged training step: means over the steps since the previous log.
    Step {
        /// Global step, 1-based.
        step: usize,
        /// Epoch (fractional).
        epoch: f64,
        /// Mean training loss since the last log.
        loss: f64,
        /// Learning rate of this step.
        lr: f64,
        /// Training examples per second since the last log.
        examples_per_sec: f64,
        /// Real (non-padding) tokens per second since the last log.
        tokens_per_sec: f64,
        /// Global gradient norm before clipping, at this step.
        grad_norm: f64,
    },
    /// An evaluation on a dev split.
    Eval {
        /// Global step.
        step: usize,
        /// Split name (`dev`, `dev_matched`, …).
        split: String,
        /// Mean loss on the split.
        loss: f64,
        /// Task metrics by name (`accuracy`, `f1`, `matthews`, `pearson`, `spearman`).
        metrics: BTreeMap<String, f64>,
        /// Seconds the evaluation took.
        duration_secs: f64,
    },
    /// Fisher estimation progress (FISH), every 64 samples and at the end.
    Fisher {
        /// Samples done.
        done: usize,
        /// Samples in all.
        total: usize,
    },
    /// The mask of a sparse method is ready (computed, reused or reloaded on resume).
    Mask {
        /// Method name.
        method: String,
        /// Kept entries (head included).
        kept: usize,
        /// All entries.
        total: usize,
        /// Parameter tensors with nothing kept (frozen: no weight gradient).
        frozen_tensors: usize,
        /// Seconds spent on the Fisher information and the selection.
        duration_secs: f64,
    },
    /// Magnitude pruning raised the sparsity of the pruned matrices.
    Prune {
        /// Step after which it pruned.
        step: usize,
        /// Target sparsity now in force.
        sparsity: f64,
    },
    /// A resumable checkpoint was written.
    Checkpoint {
        /// Global step.
        step: usize,
        /// The checkpoint folder.
        path: PathBuf,
    },
    /// The run was cancelled (SIGINT or `RunHandle::cancel`) after finishing a step.
    Cancelled {
        /// Last completed step.
        step: usize,
    },
    /// The run failed.
    Error {
        /// Step at which it failed (0 before training).
        step: usize,
        /// The error, with its causes.
        message: String,
    },
    /// The run finished.
    End {
        /// Steps done.
        steps: usize,
        /// Wall time of the whole run.
        duration_secs: f64,
        /// Mean training examples per second.
        examples_per_sec: f64,
        /// Mean real tokens per second.
        tokens_per_sec: f64,
        /// Peak resident memory of the process, when the OS tells.
        peak_rss_mib: Option<f64>,
    },
}

/// A line of `events.jsonl`: the event plus a Unix timestamp.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventRecord {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Appends events to `events.jsonl`, one line each, flushed at once so it can be tailed.
pub struct EventLog {
    path: PathBuf,
    file: std::fs::File,
}

impl EventLog {
    /// Opens (creating or appending to) the log of a run directory.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io("opening", path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one event.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let record = EventRecord {
            time,
            event: event.clone(),
        };
        let mut line = serde_json::to_vec(&record).map_err(|source| TrainError::Json {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| TrainError::io("appending to", &self.path, e))?;
        self.file
            .flush()
            .map_err(|e| TrainError::io("flushing", &self.path, e))
    }
}

/// Reads every event of an `events.jsonl`.
pub fn read_events(path: &Path) -> Result<Vec<EventRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|source| TrainError::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
