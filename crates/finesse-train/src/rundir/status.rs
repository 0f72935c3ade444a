//! Where a run stands, derived from its files: whether a process holds its lock (`run.lock`),
//! the last terminal event of `events.jsonl`, and whether a complete checkpoint exists.
//!
//! A training process holds an exclusive lock (`flock`) on `run.lock` for as long as it runs;
//! the OS drops it when the process exits, however it exits (SIGKILL included), so a run
//! without a terminal event whose lock is free was interrupted.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::RunDir;
use crate::error::{Result, TrainError};
use crate::events::{Event, EventRecord};

/// Where a run stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    /// A process is training it now.
    #[default]
    Running,
    /// It ended normally (`end` event, `metrics.json`).
    Finished,
    /// It stopped on an error (`error` event).
    Failed {
        /// The error message.
        message: String,
    },
    /// It was cancelled (Ctrl-C, SIGTERM, the app) and left a checkpoint: `--resume` continues.
    Cancelled,
    /// Its process ended without a word (crash, SIGKILL, power loss).
    Interrupted {
        /// A complete checkpoint exists, so `--resume` continues from it.
        resumable: bool,
    },
    /// Not (yet) a run: no `run.json` and no events.
    Unknown,
}

impl RunStatus {
    /// Short lower-case name: running, finished, failed, cancelled, interrupted, unknown.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted { .. } => "interrupted",
            Self::Unknown => "unknown",
        }
    }

    /// `--resume` can continue it.
    pub fn is_resumable(&self) -> bool {
        matches!(
            self,
            Self::Cancelled | Self::Interrupted { resumable: true }
        )
    }
}

/// The exclusive lock a training process holds on its run directory.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: std::path::PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed before the lock goes with the handle: a reader that opened the file just
        // before finds it free and sees the run's terminal event.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

impl RunDir {
    /// `run.lock`: held (flock) by the process training the run.
    pub fn lock_path(&self) -> std::path::PathBuf {
        self.root.join("run.lock")
    }

    /// Takes the run's lock for this process (its pid is written into the file), or fails
    /// naming the folder when another process holds it.
    ///
    /// # Errors
    /// The lock file cannot be opened, or another process holds it.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TrainError::io("opening", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(TrainError::Config {
                    field: "output-dir",
                    problem: format!(
                        "{} is being trained by another process (pid {}); wait for it or cancel it",
                        self.root.display(),
                        pid.trim()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(TrainError::io("locking", &path, e)),
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| TrainError::io("writing", &path, e))?;
        Ok(RunLock { file, path })
    }

    /// A process holds the run's lock now.
    pub fn is_locked(&self) -> bool {
        let Ok(file) = File::open(self.lock_path()) else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => false,
        }
    }

    /// Where the run stands (see [`RunStatus`]). Unreadable events count as none.
    pub fn status(&self) -> RunStatus {
        self.status_of(&self.read_events().unwrap_or_default())
    }

    /// [`RunDir::status`] from events already read.
    pub(crate) fn status_of(&self, events: &[EventRecord]) -> RunStatus {
        if self.is_locked() {
            return RunStatus::Running;
        }
        let terminal = events.iter().rev().find_map(|r| match &r.event {
            Event::End { .. } => Some(RunStatus::Finished),
            Event::Error { message, .. } => Some(RunStatus::Failed {
                message: message.clone(),
            }),
            Event::Cancelled { .. } => Some(RunStatus::Cancelled),
            // A later start (a resume) supersedes an earlier end of any kind.
            Event::Start { .. } => Some(RunStatus::Unknown),
            _ => None,
        });
        let resumable = self.checkpoint_state().is_some();
        match terminal {
            Some(RunStatus::Finished) if self.metrics().is_file() => RunStatus::Finished,
            Some(RunStatus::Cancelled) if resumable => RunStatus::Cancelled,
            Some(s @ RunStatus::Failed { .. }) => s,
            _ if events.is_empty() && !self.run_json().is_file() => RunStatus::Unknown,
            _ => RunStatus::Interrupted { resumable },
        }
    }
}
