//! The opened run, followed live: `events.jsonl` read incrementally ([`EventTail`]) and folded
//! into a [`RunProgress`], the last events kept for the log. No window needed.

use std::collections::VecDeque;
use std::path::Path;

use finesse_report::runs::{Run, format_lr};
use finesse_train::events::{EventRecord, EventTail};
use finesse_train::{Event, RunDir, RunProgress, RunStatus};

use crate::format;

/// Events the log keeps.
pub const LOG_LEN: usize = 200;

/// A run being watched.
#[derive(Debug)]
pub struct LiveRun {
    /// The run directory.
    pub dir: RunDir,
    /// Everything its files said when it was opened or last changed (`None`: unreadable).
    pub run: Option<Run>,
    /// The events folded so far.
    pub progress: RunProgress,
    /// The last [`LOG_LEN`] events, oldest first.
    pub log: VecDeque<EventRecord>,
    /// Why the run (or its latest events) could not be read.
    pub error: Option<String>,
    tail: EventTail,
    locked: bool,
}

impl LiveRun {
    /// Opens `path` and reads the events written so far.
    pub fn open(path: &Path) -> Self {
        let dir = RunDir::new(path);
        let mut live = Self {
            tail: dir.tail(),
            run: None,
            progress: RunProgress::default(),
            log: VecDeque::new(),
            error: None,
            locked: dir.is_locked(),
            dir,
        };
        live.reload_run();
        live.poll();
        live
    }

    /// Reads new events; returns whether anything changed (new events, or the status).
    pub fn poll(&mut self) -> bool {
        let records = match self.tail.poll() {
            Ok(records) => records,
            Err(e) => {
                let message = format!("reading the events: {e}");
                let changed = self.error.as_deref() != Some(message.as_str());
                self.error = Some(message);
                return changed;
            }
        };
        let locked = self.dir.is_locked();
        if records.is_empty() && locked == self.locked && self.progress.updated_at.is_some() {
            return false;
        }
        self.locked = locked;
        for record in records {
            self.progress.apply(record.time, &record.event);
            if self.log.len() == LOG_LEN {
                self.log.pop_front();
            }
            self.log.push_back(record);
        }
        if self.run.is_none() && !self.log.is_empty() {
            // Opened before its files were written (a run just started): read them now.
            self.reload_run();
        }
        let status = self.dir.status();
        let ended = self.progress.status == RunStatus::Running && status != RunStatus::Running;
        self.progress.status = status;
        if ended {
            // The run just ended: its final files (metrics, analysis) are there now.
            self.reload_run();
        }
        true
    }

    /// Reads the run's files again (after it finished, or when they changed on disk).
    pub fn reload_run(&mut self) {
        match Run::open(&self.dir.root) {
            Ok(run) => {
                self.run = Some(run);
                if self
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("opening"))
                {
                    self.error = None;
                }
            }
            Err(e) => self.error = Some(format!("opening the run: {e}")),
        }
    }

    /// The folder's name.
    pub fn name(&self) -> String {
        self.run.as_ref().map_or_else(
            || self.dir.root.display().to_string(),
            finesse_report::runs::Run::name,
        )
    }
}

/// One line of the event log: `step 120 · loss 0.4123 · lr 8.0e-4 · 512 ex/s`.
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Start {
            total_steps,
            start_step,
            train_examples,
            trainable_params,
            total_params,
            ..
        } => {
            let from = if *start_step > 0 {
                format!("resumed at step {start_step}")
            } else {
                "started".into()
            };
            format!(
                "{from}: {total_steps} steps, {train_examples} training examples, \
                 {trainable_params} of {total_params} parameters trainable"
            )
        }
        Event::Step {
            step,
            loss,
            lr,
            examples_per_sec,
            grad_norm,
            ..
        } => format!(
            "step {step} · loss {loss:.4} · lr {} · grad norm {grad_norm:.3} · {}",
            format_lr(*lr),
            format::rate(*examples_per_sec)
        ),
        Event::Eval {
            step,
            split,
            loss,
            metrics,
            ..
        } => {
            let metrics: Vec<String> = metrics
                .iter()
                .map(|(k, v)| format!("{k} {}", format::metric(*v)))
                .collect();
            format!(
                "eval {split} at step {step} · loss {loss:.4} · {}",
                metrics.join(" · ")
            )
        }
        Event::Fisher { done, total } => format!("Fisher information: {done}/{total} samples"),
        Event::Mask {
            method,
            kept,
            total,
            frozen_tensors,
            duration_secs,
        } => format!(
            "{method} mask ready: {kept} of {total} entries kept ({}), {frozen_tensors} tensors frozen, {}",
            finesse_report::colormap::format_value(*kept as f64 / (*total).max(1) as f64, true),
            format::duration(*duration_secs)
        ),
        Event::Prune { step, sparsity } => format!(
            "pruned after step {step}: {} sparse",
            finesse_report::colormap::format_value(*sparsity, true)
        ),
        Event::Checkpoint { step, .. } => format!("checkpoint at step {step}"),
        Event::Cancelled { step } => {
            format!("cancelled after step {step} (resumable: finesse finetune --resume)")
        }
        Event::Error { step, message } => format!("error at step {step}: {message}"),
        Event::End {
            steps,
            duration_secs,
            examples_per_sec,
            ..
        } => format!(
            "finished: {steps} steps in {}, {}",
            format::duration(*duration_secs),
            format::rate(*examples_per_sec)
        ),
    }
}

/// The plain advice for a status a user can act on (`None` when there is nothing to do).
pub fn status_advice(status: &RunStatus, path: &Path) -> Option<String> {
    let resume = format!("finesse finetune --resume {}", path.display());
    match status {
        RunStatus::Cancelled | RunStatus::Interrupted { resumable: true } => {
            Some(format!("Resumable from its checkpoint: {resume}"))
        }
        RunStatus::Interrupted { resumable: false } => Some(
            "Its process ended before the first checkpoint: start it again (nothing to resume)."
                .into(),
        ),
        RunStatus::Failed { .. } => Some(
            "The run failed: the message above is the training error. Fix the cause and start \
             it again, or resume it if it left a checkpoint."
                .into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Write;

    fn append(path: &Path, time: f64, event: &Event) {
        let record = serde_json::to_string(&EventRecord {
            time,
            event: event.clone(),
        })
        .expect("serialise event");
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)
            .expect("open events");
        writeln!(file, "{record}").expect("write event");
    }

    #[test]
    fn new_events_are_folded_in_as_they_are_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = dir.path().join("events.jsonl");
        append(
            &events,
            1.0,
            &Event::Start {
                total_steps: 10,
                steps_per_epoch: 5,
                train_examples: 40,
                eval_examples: 8,
                start_step: 0,
                trainable_params: 3,
                total_params: 9,
            },
        );
        let mut live = LiveRun::open(dir.path());
        assert_eq!(live.progress.total_steps, 10);
        assert_eq!(live.log.len(), 1);
        assert!(!live.poll(), "nothing new");
        let step = Event::Step {
            step: 2,
            epoch: 0.4,
            loss: 0.7,
            lr: 1e-3,
            examples_per_sec: 50.0,
            tokens_per_sec: 500.0,
            grad_norm: 1.0,
            comm: None,
        };
        append(&events, 2.0, &step);
        append(
            &events,
            3.0,
            &Event::Eval {
                step: 2,
                split: "dev".into(),
                loss: 0.6,
                metrics: BTreeMap::from([("accuracy".to_string(), 0.75)]),
                duration_secs: 0.5,
            },
        );
        assert!(live.poll());
        assert_eq!(live.progress.step, 2);
        assert_eq!(live.progress.losses.len(), 1);
        assert_eq!(live.progress.evals.len(), 1);
        assert_eq!(live.log.len(), 3);
        assert_eq!(
            event_line(&step),
            "step 2 · loss 0.7000 · lr 1e-3 · grad norm 1.000 · 50.0 ex/s"
        );
    }
}
