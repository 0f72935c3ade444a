//! [`RunProgress`]: a run's events folded into the state a front-end shows — phase, step,
//! epoch, ETA, the loss curve, evaluations, best values, status. The CLI's progress display
//! and the desktop app feed it events as they come (from [`crate::RunHandle::events`] or an
//! [`crate::events::EventTail`]); [`crate::RunDir::progress`] folds a whole `events.jsonl`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::events::Event;
use crate::rundir::{BestValue, RunStatus};

/// What the run is doing.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Loading the model and data, or waiting for the first event.
    #[default]
    Preparing,
    /// Estimating the Fisher information (FISH).
    Fisher {
        /// Samples done.
        done: usize,
        /// Samples in all.
        total: usize,
    },
    /// Training steps.
    Training,
    /// The run ended (see the status).
    Ended,
}

/// One logged training step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LossPoint {
    /// Global step.
    pub step: usize,
    /// Mean training loss since the previous log.
    pub loss: f64,
    /// Learning rate at the step.
    pub lr: f64,
}

/// One evaluation of one dev split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalPoint {
    /// Global step.
    pub step: usize,
    /// Split name.
    pub split: String,
    /// Mean loss.
    pub loss: f64,
    /// Task metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// A run's state as the events tell it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunProgress {
    /// Running until a terminal event (end, error, cancelled); [`crate::RunDir::progress`]
    /// replaces it with the directory's status (which also knows interrupted runs).
    pub status: RunStatus,
    /// What the run is doing.
    pub phase: Phase,
    /// Steps done.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Step the latest (re)start began from.
    pub start_step: usize,
    /// Training examples.
    pub train_examples: usize,
    /// Trained parameter entries / all entries.
    pub trainable_params: usize,
    /// All parameter entries.
    pub total_params: usize,
    /// Logged training steps, in order (a resume drops the steps past its checkpoint).
    pub losses: Vec<LossPoint>,
    /// Examples per second over the latest log window.
    pub examples_per_sec: f64,
    /// Gradient norm at the latest logged step.
    pub grad_norm: f64,
    /// Every evaluation, in order.
    pub evals: Vec<EvalPoint>,
    /// Best value of each metric of the first dev split.
    pub best: BTreeMap<String, BestValue>,
    /// The mask of a sparse method: (method, kept, total).
    pub mask: Option<(String, usize, usize)>,
    /// Target sparsity of magnitude pruning now in force.
    pub prune_sparsity: Option<f64>,
    /// Step of the latest checkpoint.
    pub checkpoint_step: Option<usize>,
    /// Time (Unix seconds) of the latest (re)start and of the latest event.
    pub started_at: Option<f64>,
    /// Time of the latest event.
    pub updated_at: Option<f64>,
    /// Wall time of the whole run, from its end event.
    pub duration_secs: Option<f64>,
    /// Smoothed training speed (steps per second, evaluations included) for the ETA.
    pub steps_per_sec: Option<f64>,
    #[serde(skip)]
    last_step_at: Option<(f64, usize)>,
}

impl RunProgress {
    /// Epochs done (fractional).
    pub fn epoch(&self) -> f64 {
        self.step as f64 / self.steps_per_epoch.max(1) as f64
    }

    /// Seconds left at the current speed, while training.
    pub fn eta_secs(&self) -> Option<f64> {
        let rate = self.steps_per_sec.filter(|r| *r > 0.0)?;
        (self.status == RunStatus::Running && self.total_steps > 0)
            .then(|| self.total_steps.saturating_sub(self.step) as f64 / rate)
    }

    /// The latest loss logged.
    pub fn last_loss(&self) -> Option<f64> {
        self.losses.last().map(|p| p.loss)
    }

    /// The metrics of the latest evaluation of the first dev split.
    pub fn last_metrics(&self) -> Option<&EvalPoint> {
        let first = self.evals.first()?.split.clone();
        self.evals.iter().rev().find(|e| e.split == first)
    }

    /// Folds one event that happened at `time` (Unix seconds).
    pub fn apply(&mut self, time: f64, event: &Event) {
        self.updated_at = Some(time);
        match event {
            Event::Start { .. } => self.on_start(time, event),
            Event::Fisher { done, total } => {
                self.phase = Phase::Fisher {
                    done: *done,
                    total: *total,
                };
            }
            Event::Mask {
                method,
                kept,
                total,
                ..
            } => self.mask = Some((method.clone(), *kept, *total)),
            Event::Step { .. } => self.on_step(time, event),
            Event::Eval {
                step,
                split,
                loss,
                metrics,
                ..
            } => {
                self.evals.push(EvalPoint {
                    step: *step,
                    split: split.clone(),
                    loss: *loss,
                    metrics: metrics.clone(),
                });
                self.best = best_of(&self.evals);
            }
            Event::Prune { sparsity, .. } => self.prune_sparsity = Some(*sparsity),
            Event::Checkpoint { step, .. } => self.checkpoint_step = Some(*step),
            Event::Cancelled { step } => {
                self.step = *step;
                self.end(RunStatus::Cancelled);
            }
            Event::Error { message, .. } => self.end(RunStatus::Failed {
                message: message.clone(),
            }),
            Event::End {
                steps,
                duration_secs,
                ..
            } => {
                self.step = *steps;
                self.duration_secs = Some(*duration_secs);
                self.end(RunStatus::Finished);
            }
        }
    }

    fn end(&mut self, status: RunStatus) {
        self.phase = Phase::Ended;
        self.status = status;
    }

    /// A (re)start: a resume replays the steps after its checkpoint, so what they replace
    /// goes.
    fn on_start(&mut self, time: f64, event: &Event) {
        let Event::Start {
            total_steps,
            steps_per_epoch,
            train_examples,
            start_step,
            trainable_params,
            total_params,
            ..
        } = event
        else {
            return;
        };
        self.status = RunStatus::Running;
        self.phase = Phase::Training;
        self.total_steps = *total_steps;
        self.steps_per_epoch = *steps_per_epoch;
        self.train_examples = *train_examples;
        self.trainable_params = *trainable_params;
        self.total_params = *total_params;
        self.start_step = *start_step;
        self.step = *start_step;
        self.losses.retain(|p| p.step <= *start_step);
        self.evals.retain(|e| e.step <= *start_step);
        self.best = best_of(&self.evals);
        self.started_at = Some(time);
        self.last_step_at = Some((time, *start_step));
        self.steps_per_sec = None;
        self.duration_secs = None;
    }

    /// A logged step: the loss curve, and the speed behind the ETA (smoothed over windows).
    fn on_step(&mut self, time: f64, event: &Event) {
        let Event::Step {
            step,
            loss,
            lr,
            examples_per_sec,
            grad_norm,
            ..
        } = event
        else {
            return;
        };
        self.phase = Phase::Training;
        self.step = *step;
        self.losses.push(LossPoint {
            step: *step,
            loss: *loss,
            lr: *lr,
        });
        self.examples_per_sec = *examples_per_sec;
        self.grad_norm = *grad_norm;
        if let Some((t0, s0)) = self.last_step_at
            && time > t0
            && *step > s0
        {
            let rate = (*step - s0) as f64 / (time - t0);
            self.steps_per_sec = Some(match self.steps_per_sec {
                Some(r) => 0.7 * r + 0.3 * rate,
                None => rate,
            });
        }
        self.last_step_at = Some((time, *step));
    }
}

/// The best value of each metric of the first split evaluated (higher is better, the earlier
/// evaluation wins ties), as the trainer keeps it.
fn best_of(evals: &[EvalPoint]) -> BTreeMap<String, BestValue> {
    let mut best: BTreeMap<String, BestValue> = BTreeMap::new();
    let Some(first) = evals.first().map(|e| &e.split) else {
        return best;
    };
    for e in evals.iter().filter(|e| &e.split == first) {
        for (name, &value) in &e.metrics {
            if best.get(name).is_none_or(|b| value > b.value) {
                best.insert(
                    name.clone(),
                    BestValue {
                        value,
                        step: e.step,
                    },
                );
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize, loss: f64) -> Event {
        Event::Step {
            step,
            epoch: 0.0,
            loss,
            lr: 1e-3,
            examples_per_sec: 10.0,
            tokens_per_sec: 100.0,
            grad_norm: 1.0,
            comm: None,
        }
    }

    fn start(start_step: usize) -> Event {
        Event::Start {
            total_steps: 10,
            steps_per_epoch: 5,
            train_examples: 40,
            eval_examples: 8,
            start_step,
            trainable_params: 3,
            total_params: 9,
        }
    }

    fn eval(step: usize, acc: f64) -> Event {
        Event::Eval {
            step,
            split: "dev".into(),
            loss: 0.5,
            metrics: BTreeMap::from([("accuracy".to_string(), acc)]),
            duration_secs: 1.0,
        }
    }

    #[test]
    fn a_resume_replaces_the_steps_after_its_checkpoint_and_eta_follows_the_speed() {
        let mut p = RunProgress::default();
        p.apply(0.0, &start(0));
        for (i, s) in [2, 4, 6].into_iter().enumerate() {
            p.apply(1.0 + i as f64, &step(s, 1.0 / s as f64));
        }
        p.apply(3.5, &eval(5, 0.7));
        // Killed after step 6, resumed from the checkpoint of step 4.
        p.apply(10.0, &start(4));
        assert_eq!(p.step, 4);
        assert_eq!(p.losses.iter().map(|l| l.step).collect::<Vec<_>>(), [2, 4]);
        assert!(p.evals.is_empty() && p.best.is_empty());
        p.apply(12.0, &step(6, 0.2));
        // 2 steps in 2 s → 1 step/s; 4 steps left.
        assert_eq!(p.eta_secs(), Some(4.0));
        assert!((p.epoch() - 1.2).abs() < 1e-12);
        p.apply(13.0, &eval(6, 0.8));
        p.apply(14.0, &eval(8, 0.75));
        assert_eq!(
            p.best["accuracy"],
            BestValue {
                value: 0.8,
                step: 6
            }
        );
        assert_eq!(p.last_metrics().map(|e| e.step), Some(8));
        p.apply(
            20.0,
            &Event::End {
                steps: 10,
                duration_secs: 20.0,
                examples_per_sec: 1.0,
                tokens_per_sec: 1.0,
                peak_rss_mib: None,
            },
        );
        assert_eq!(
            (p.status.clone(), p.phase.clone()),
            (RunStatus::Finished, Phase::Ended)
        );
        assert_eq!(p.eta_secs(), None);
    }
}
