//! Run events: what a run reports while it goes, sent on a channel to front-ends and appended
//! to `events.jsonl` (one JSON object per line, `"type"` tagged).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// What one rank of a data-parallel job exchanged over a log window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommStats {
    /// Ranks in the job.
    pub world_size: usize,
    /// All-reduces of gradients (every step) or of values (every `--sync-every` steps).
    pub exchanges: usize,
    /// Payload bytes this rank contributed to them: 4 per trained entry per exchange (a ring
    /// all-reduce puts about twice that on each rank's link).
    pub bytes: u64,
    /// Seconds this rank spent in them (waiting for slower ranks included).
    #[serde(default)]
    pub secs: f64,
}

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
        /// What this rank of a data-parallel job exchanged since the last log (absent for one
        /// process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comm: Option<CommStats>,
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
    /// Opens (creating or appending to) the log of a run directory. A torn last line (a crash
    /// mid-write left it without its newline) is cut off first, so the next event starts a
    /// line of its own.
    ///
    /// # Errors
    /// The file cannot be opened, or its torn last line cannot be cut.
    pub fn open(path: &Path) -> Result<Self> {
        cut_torn_tail(path)?;
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

    /// Appends one event (the line and its newline in one write).
    ///
    /// # Errors
    /// The event cannot be serialised or appended.
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

/// Truncates a file to just after its last newline (nothing when it ends with one or is empty).
fn cut_torn_tail(path: &Path) -> Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    log::warn!(
        "{}: cutting a torn last line ({} bytes) left by an interrupted write",
        path.display(),
        bytes.len() - keep
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep as u64))
        .map_err(|e| TrainError::io("repairing", path, e))
}

/// Parses the complete lines of `text` (1-based numbers from `first_line`); blank lines are
/// skipped, a line that is not an event is an error naming the file and the line.
fn parse_lines(path: &Path, text: &str, first_line: usize) -> Result<Vec<EventRecord>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| TrainError::Event {
                path: path.to_path_buf(),
                line: first_line + i,
                source,
            })
        })
        .collect()
}

/// Reads every event of an `events.jsonl`. A last line without its newline that does not parse
/// (a write torn by a crash) is left out; any other bad line is an error naming it.
///
/// # Errors
/// The file cannot be read, or a line other than a torn last one is not an event
/// ([`TrainError::Event`] naming the line).
pub fn read_events(path: &Path) -> Result<Vec<EventRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
    let (complete, last) = match text.rfind('\n') {
        Some(i) => text.split_at(i + 1),
        None => ("", text.as_str()),
    };
    let mut events = parse_lines(path, complete, 1)?;
    if !last.trim().is_empty()
        && let Ok(e) = serde_json::from_str(last)
    {
        events.push(e);
    }
    Ok(events)
}

/// Incremental reader of an `events.jsonl` that another thread or process is appending to:
/// each [`EventTail::poll`] returns the events of the lines completed since the last one. A
/// line still being written (no newline yet) waits for the next poll.
#[derive(Clone, Debug)]
pub struct EventTail {
    path: PathBuf,
    offset: u64,
    line: usize,
}

impl EventTail {
    /// A reader from the start of the file (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::from_offset(path, 0)
    }

    /// A reader from byte `offset`, e.g. a saved [`EventTail::offset`] (line numbers in errors
    /// then count from there).
    pub fn from_offset(path: impl Into<PathBuf>, offset: u64) -> Self {
        Self {
            path: path.into(),
            offset,
            line: 1,
        }
    }

    /// Bytes consumed: the end of the last complete line read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The events of the lines completed since the last poll (none when the file is missing).
    /// A file that shrank below the offset was replaced: reading starts again from its start.
    ///
    /// # Errors
    /// The file cannot be read, or a complete line is not an event.
    pub fn poll(&mut self) -> Result<Vec<EventRecord>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrainError::io("opening", &self.path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| TrainError::io("reading", &self.path, e))?
            .len();
        if len < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| TrainError::io("reading", &self.path, e))?;
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let complete = &bytes[..=end];
        let text = String::from_utf8_lossy(complete);
        let events = parse_lines(&self.path, &text, self.line)?;
        self.offset += complete.len() as u64;
        self.line += complete.iter().filter(|&&b| b == b'\n').count();
        Ok(events)
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize) -> Event {
        Event::Step {
            step,
            epoch: 0.5,
            loss: 0.25,
            lr: 1e-3,
            examples_per_sec: 1.0,
            tokens_per_sec: 2.0,
            grad_norm: 0.5,
            comm: None,
        }
    }

    fn line(event: &Event) -> Vec<u8> {
        let record = EventRecord {
            time: 1.0,
            event: event.clone(),
        };
        serde_json::to_vec(&record).expect("json")
    }

    #[test]
    fn tail_follows_a_file_another_thread_appends_to_including_a_line_torn_mid_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let writer_path = path.clone();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&writer_path)
                .expect("open");
            for i in 1..=50 {
                let mut bytes = line(&step(i));
                bytes.push(b'\n');
                // Every line in two writes, so the reader sees half lines.
                let (a, b) = bytes.split_at(bytes.len() / 2);
                f.write_all(a).expect("write");
                f.flush().expect("flush");
                if i == 25 {
                    // Pause mid-line until the reader has polled the torn half.
                    done.send(()).expect("send");
                    wait.recv().expect("recv");
                }
                f.write_all(b).expect("write");
                f.flush().expect("flush");
            }
        });
        let mut tail = EventTail::new(&path);
        let mut seen = Vec::new();
        finished.recv().expect("writer at the torn line");
        seen.extend(tail.poll().expect("poll"));
        assert_eq!(seen.len(), 24, "the torn 25th line waits");
        let at = tail.offset();
        assert_eq!(tail.poll().expect("poll").len(), 0);
        assert_eq!(tail.offset(), at);
        go.send(()).expect("go");
        writer.join().expect("writer");
        seen.extend(tail.poll().expect("poll"));
        let steps: Vec<usize> = seen
            .iter()
            .map(|r| match r.event {
                Event::Step { step, .. } => step,
                _ => 0,
            })
            .collect();
        assert_eq!(steps, (1..=50).collect::<Vec<_>>());
        // A reader started at a saved offset sees only what came after it.
        assert_eq!(
            EventTail::from_offset(&path, at)
                .poll()
                .expect("poll")
                .len(),
            26
        );
    }

    #[test]
    fn a_torn_last_line_neither_breaks_reading_nor_the_next_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut bytes = line(&step(1));
        bytes.push(b'\n');
        bytes.extend_from_slice(&line(&step(2))[..20]);
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read_events(&path).expect("read").len(), 1);
        // Resuming appends after cutting the torn line off.
        let mut log = EventLog::open(&path).expect("open");
        log.append(&step(3)).expect("append");
        let events: Vec<Event> = read_events(&path)
            .expect("read")
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(events, [step(1), step(3)]);
        // A bad line in the middle is an error naming the file and the line.
        std::fs::write(&path, b"{\"time\":1,\"type\":\"nope\"}\n").expect("write");
        let err = read_events(&path).expect_err("bad").to_string();
        assert!(err.contains("events.jsonl:1"), "{err}");
    }
}
