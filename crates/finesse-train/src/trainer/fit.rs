//! [`Trainer`]: the model, optimizer, schedule and position of a run, with one training
//! [`Trainer::step`] and the loop around it (logging, evaluation, checkpoints, cancellation),
//! in the manner of burn-train's `Learner` and its single-device epoch strategy. Methods shape
//! the loop through their hooks ([`crate::method::Method`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Gradients};
use finesse_bert::slices::SlicePlan;
use finesse_bert::{BertConfig, ParamRegistry, load_classifier, load_into, try_model_tensors};
use finesse_glue::batch::epoch_batches;
use finesse_glue::{HostBatch, make_batch};
use finesse_sparse::optim::freeze;
use finesse_sparse::{Mask, SparseOptimizer, UpdateRule};
use serde::{Deserialize, Serialize};

use super::Emitter;
use super::eval::{SplitMetrics, loss_of};
use super::meter::Meter;
use super::setup::RunData;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::events::Event;
use crate::method::{Method, Model, PrepareCtx, StartCtx};
use crate::rundir::{BestValue, CheckpointState, RUN_FORMAT_VERSION, RunDir};
use crate::schedule::LinearSchedule;

/// How many steps, and when to log, evaluate and checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct StepPlan {
    /// Steps per epoch over the training pool.
    pub steps_per_epoch: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: usize,
}

/// What one training step measured.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Training loss of the batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Where the step's time went (one process; `None` for a step of a data-parallel job).
    pub phases: Option<StepPhases>,
}

/// Seconds of wall time in each phase of a step, as the host sees them: on the CPU backends the
/// work of each phase; on a GPU backend work queued in one phase may finish in a later one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepPhases {
    /// The forward pass and the loss, until the loss is read back.
    pub forward: f64,
    /// Autodiff's backward pass.
    pub backward: f64,
    /// The weight gradients on slices, the method's gradient hook, and collecting the gradients
    /// by parameter.
    pub gradients: f64,
    /// The gradient norm over the trained entries (for clipping).
    pub clip: f64,
    /// The optimizer's update and the method's after-step hook.
    pub update: f64,
}

/// A run in training.
pub struct Trainer<'r> {
    pub(super) config: &'r RunConfig,
    pub(super) dir: &'r RunDir,
    pub(super) data: &'r RunData,
    pub(super) device: Device,
    pub(super) train_device: Device,
    /// Taken out for the duration of an optimizer step (so its tensors are uniquely owned and
    /// can be updated in place); always present between steps.
    pub(super) model: Option<Model>,
    pub(super) bert_config: BertConfig,
    pub(super) registry: ParamRegistry,
    pub(super) optimizer: SparseOptimizer,
    pub(super) schedule: LinearSchedule,
    pub(super) plan: StepPlan,
    pub(super) pool: Vec<usize>,
    pub(super) method: Box<dyn Method>,
    pub(super) mask: Option<Mask>,
    pub(super) mask_secs: f64,
    pub(super) step: usize,
    pub(super) best: BTreeMap<String, BestValue>,
    pub(super) meter: Meter,
    pub(super) last_eval: Option<(usize, SplitMetrics)>,
    /// Encoder weights whose gradient a step computes on a slice only (trainer/slices.rs).
    pub(super) slices: SlicePlan,
    epoch: Option<(usize, Vec<Vec<usize>>)>,
    /// The job's ranks ([`crate::dist::Solo`] for one process).
    pub(super) comm: &'static dyn crate::dist::Comm,
    /// What this rank exchanged since the last `step` event.
    pub(super) exchanged: super::parallel::Exchanged,
    /// `--sync-every`: the step at which the trained values were last averaged.
    pub(super) synced_at: usize,
}

/// The training examples a run draws its batches from: a seeded subset, or the first rows
/// without shuffling.
fn training_pool(config: &RunConfig, data: &RunData) -> Vec<usize> {
    if config.shuffle {
        finesse_glue::batch::seeded_subset(data.train.len(), config.max_train_examples, config.seed)
    } else {
        (0..config
            .max_train_examples
            .map_or(data.train.len(), |n| n.min(data.train.len())))
            .collect()
    }
}

impl<'r> Trainer<'r> {
    /// Loads the model, lets the method prepare its mask, builds the optimizer and, on
    /// resume, restores the checkpoint; then starts the method.
    ///
    /// # Errors
    /// Loading, the method's preparation or the checkpoint fails.
    pub fn new(
        config: &'r RunConfig,
        dir: &'r RunDir,
        data: &'r RunData,
        device: &Device,
        mut method: Box<dyn Method>,
        resume: bool,
        emitter: &mut Emitter<'_>,
    ) -> Result<Self> {
        let train_device = device.clone().autodiff();
        let (model, bert_config, _) = load_classifier(
            &data.model_dir,
            config.task.num_outputs(),
            config.seed,
            &train_device,
        )?;
        let model = if config.dropout {
            model
        } else {
            model.without_dropout()
        };
        let registry = ParamRegistry::of(&model);
        super::setup::record_or_check(config, dir, data, resume)?;
        let mask_started = Instant::now();
        let mask = method.prepare(&mut PrepareCtx {
            config,
            model: &model,
            registry: &registry,
            train_data: &data.train,
            dir,
            resume,
            emitter,
        })?;
        let mask_secs = mask_started.elapsed().as_secs_f64();
        let comm = crate::dist::world();
        super::parallel::check_mask(comm, mask.as_ref())?;
        let optimizer = SparseOptimizer::new(
            config.optimizer,
            &registry,
            |p| method.rule(mask.as_ref(), p),
            device,
        );
        let pool = training_pool(config, data);
        let steps_per_epoch = pool.len().div_ceil(config.batch_size);
        let total_steps = config
            .max_steps
            .unwrap_or_else(|| ((config.epochs * steps_per_epoch as f64).ceil() as usize).max(1));
        let mut trainer = Self {
            config,
            dir,
            data,
            device: device.clone(),
            train_device,
            model: Some(model),
            bert_config,
            registry,
            optimizer,
            schedule: LinearSchedule::new(config.lr, config.warmup_ratio, total_steps),
            plan: StepPlan {
                steps_per_epoch,
                total_steps,
                eval_every: config.eval_every.unwrap_or(steps_per_epoch),
            },
            pool,
            method,
            mask,
            mask_secs,
            step: 0,
            best: BTreeMap::new(),
            meter: Meter::new(),
            last_eval: None,
            slices: SlicePlan::new(),
            epoch: None,
            comm,
            exchanged: super::parallel::Exchanged::default(),
            synced_at: 0,
        };
        trainer.restore_and_start(resume)?;
        Ok(trainer)
    }

    /// On resume loads the checkpoint's model, optimizer state and best values; freezes the
    /// parameters with nothing to train; starts the method.
    fn restore_and_start(&mut self, resume: bool) -> Result<()> {
        let mut resumed = None;
        if resume {
            let checkpoint = self.dir.read_checkpoint()?;
            let model = self.take_model();
            self.model = Some(load_into(model, checkpoint.model, &self.train_device)?.0);
            self.optimizer
                .try_load_state(
                    checkpoint.state.step as u64,
                    &checkpoint.optimizer,
                    &self.device,
                )
                .map_err(|e| TrainError::Resume {
                    path: self.dir.root.clone(),
                    problem: e.to_string(),
                })?;
            self.step = checkpoint.state.step;
            self.synced_at = self.step;
            self.best = checkpoint.state.best;
            resumed = Some(checkpoint.optimizer);
        }
        // Parameters with nothing to train compute no weight gradient.
        let frozen: HashSet<_> = self
            .registry
            .iter()
            .filter(|p| self.method.rule(self.mask.as_ref(), p) == UpdateRule::Frozen)
            .map(|p| p.id)
            .collect();
        let model = self.take_model();
        self.model = Some(freeze(model, &frozen));
        self.slices = super::slices::plan(
            &self.registry,
            |p| self.method.rule(self.mask.as_ref(), p),
            &self.device,
        );
        let model = self.model.as_ref().expect("the model was just set");
        self.method.start(&StartCtx {
            config: self.config,
            model,
            registry: &self.registry,
            device: &self.device,
            train_device: &self.train_device,
            total_steps: self.plan.total_steps,
            start_step: self.step,
            resumed: resumed.as_ref(),
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        self.model
            .as_ref()
            .expect("the model is only taken out within an optimizer step")
    }

    pub(super) fn take_model(&mut self) -> Model {
        self.model
            .take()
            .expect("the model is only taken out within an optimizer step")
    }

    /// The optimizer (its state sizes).
    pub fn optimizer(&self) -> &SparseOptimizer {
        &self.optimizer
    }

    /// Optimizer steps done.
    pub fn step_reached(&self) -> usize {
        self.step
    }

    /// Parameter entries the optimizer updates.
    pub fn trainable_params(&self) -> usize {
        self.registry
            .iter()
            .map(|p| match self.method.rule(self.mask.as_ref(), p) {
                UpdateRule::All => p.numel,
                UpdateRule::Masked(k) => k.len(),
                UpdateRule::Frozen => 0,
            })
            .sum()
    }

    /// The `start` event of this (re)start.
    pub fn start_event(&self) -> Event {
        Event::Start {
            total_steps: self.plan.total_steps,
            steps_per_epoch: self.plan.steps_per_epoch,
            train_examples: self.pool.len(),
            eval_examples: self.data.dev.sets.first().map_or(0, |e| e.pool.len()),
            start_step: self.step,
            trainable_params: self.trainable_params(),
            total_params: self.registry.total_numel(),
        }
    }

    /// The example indices of the current step's batch: the epoch's seeded order, a function
    /// of (seed, epoch), or consecutive rows of the pool without shuffling.
    fn next_indices(&mut self) -> Vec<usize> {
        let epoch = self.step / self.plan.steps_per_epoch;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let plan = self.data.dev.plan;
            let batches = if self.config.shuffle {
                epoch_batches(&self.data.train, &self.pool, plan, self.config.seed, epoch)
            } else {
                self.pool
                    .chunks(plan.batch_size.max(1))
                    .map(<[usize]>::to_vec)
                    .collect()
            };
            self.epoch = Some((epoch, batches));
        }
        let batches = self.epoch.as_ref().map_or(&[][..], |(_, b)| b.as_slice());
        batches[self.step % self.plan.steps_per_epoch].clone()
    }

    /// Dropout masks depend on (seed, step) only — and the rank in a job — so a resumed run
    /// draws what an uninterrupted one would.
    pub(super) fn seed_dropout(&self) {
        let rank = self.comm.rank() as u64;
        self.train_device.seed(
            self.config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(self.step as u64)
                .wrapping_add(rank.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        );
    }

    /// The loss of `batch` through the method's view of the model, dropout seeded for this
    /// step and the planned weights on gradient slices.
    pub(super) fn forward_loss(&mut self, batch: &HostBatch) -> burn::tensor::Tensor<1> {
        self.seed_dropout();
        let view = self.method.forward_view(self.model());
        let sliced = (!self.slices.is_empty()).then(|| self.slices.activate());
        let logits = view
            .as_ref()
            .unwrap_or(self.model())
            .forward(batch.to_input(&self.train_device));
        drop((view, sliced));
        loss_of(logits, &batch.labels, &self.train_device)
    }

    /// Backward of `loss`: the sliced weight gradients filled in, the method's gradient hook,
    /// the parameters' gradients.
    pub(super) fn gradients(&mut self, loss: burn::tensor::Tensor<1>, lr: f64) -> GradientsParams {
        let raw_grads = loss.backward();
        self.collect_gradients(raw_grads, lr)
    }

    /// The parameters' gradients from a backward pass's: the sliced weight gradients filled in,
    /// the method's gradient hook.
    fn collect_gradients(&mut self, mut raw_grads: Gradients, lr: f64) -> GradientsParams {
        if !self.slices.is_empty() {
            SlicePlan::fill(&mut raw_grads);
        }
        self.method.after_backward(&mut raw_grads, lr);
        GradientsParams::from_grads(raw_grads, self.model())
    }

    /// One optimizer step on `batch`: forward (through the method's view), loss, backward,
    /// the method's gradient hook, clipping over the trained entries, the masked update and
    /// the method's after-step hook.
    ///
    /// # Errors
    /// A non-finite loss, or a hook that fails.
    pub fn step(&mut self, batch: &HostBatch, emitter: &mut Emitter<'_>) -> Result<StepReport> {
        let step = self.step;
        let lr = self.schedule.lr(step);
        let mut clock = PhaseClock::start();
        let loss = self.forward_loss(batch);
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        let forward = clock.lap();
        if !loss_value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss: loss_value,
                lr,
            });
        }
        let raw_grads = loss.backward();
        let backward = clock.lap();
        let grads = self.collect_gradients(raw_grads, lr);
        let gradients = clock.lap();
        let grad_norm = self
            .optimizer
            .grad_norm(&grads, &self.registry, &self.device)
            .sqrt();
        let clip = clock.lap();
        let scale = match self.config.max_grad_norm {
            Some(max) if grad_norm > max => max / (grad_norm + 1e-6),
            _ => 1.0,
        };
        let model = self.take_model();
        let model = self.optimizer.step(model, grads, lr, scale);
        self.model = Some(self.method.after_step(model, step + 1, emitter)?);
        let update = clock.lap();
        self.step = step + 1;
        Ok(StepReport {
            loss: loss_value,
            lr,
            grad_norm,
            phases: Some(StepPhases {
                forward,
                backward,
                gradients,
                clip,
                update,
            }),
        })
    }

    /// Trains to the end or until `cancel` is set (on any rank of a job); returns the step it
    /// stopped at when cancelled.
    ///
    /// # Errors
    /// A step, an evaluation, a checkpoint or an event that fails.
    pub fn fit(&mut self, cancel: &AtomicBool, emitter: &mut Emitter<'_>) -> Result<Option<usize>> {
        let total = self.plan.total_steps;
        while self.step < total {
            let indices = self.next_indices();
            let batch = make_batch(&self.data.train, &indices);
            let started = Instant::now();
            let report = if self.comm.size() == 1 {
                self.step(&batch, emitter)?
            } else {
                self.step_parallel(&indices, emitter)?
            };
            // The whole job's examples: every rank counts the global batch.
            self.meter
                .record(&batch, report.loss, started.elapsed().as_secs_f64());
            emitter.reached(self.step);
            let done = self.step;
            if self
                .config
                .sync_every
                .is_some_and(|h| done.is_multiple_of(h))
            {
                self.settle()?;
            }
            if done.is_multiple_of(self.config.log_every) || done == total {
                self.log_step(&report, emitter)?;
            }
            if done.is_multiple_of(self.plan.eval_every) || done == total {
                self.settle()?;
                self.check_agreement()?;
                self.evaluate(emitter)?;
                self.meter.restart_clock();
            } else if self.config.sync_every.is_none()
                && done.is_multiple_of(super::parallel::CHECK_EVERY)
            {
                self.check_agreement()?;
            }
            let cancelled = self.any_rank(cancel.load(Ordering::SeqCst)) && done < total;
            let periodic = self
                .config
                .checkpoint_every
                .is_some_and(|n| done.is_multiple_of(n));
            if cancelled || (periodic && done < total) {
                self.settle()?;
                // Rank 0 writes the run directory; the others hold the same state.
                if self.comm.rank() == 0 {
                    let path = self.checkpoint()?;
                    emitter.emit(Event::Checkpoint { step: done, path })?;
                }
            }
            if cancelled {
                emitter.emit(Event::Cancelled { step: done })?;
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    /// The `step` event of the log window that ends now.
    fn log_step(&mut self, report: &StepReport, emitter: &mut Emitter<'_>) -> Result<()> {
        let w = self.meter.take_window();
        let comm = self.take_exchanged();
        emitter.emit(Event::Step {
            step: self.step,
            epoch: self.step as f64 / self.plan.steps_per_epoch as f64,
            loss: w.loss,
            lr: report.lr,
            examples_per_sec: w.examples_per_sec,
            tokens_per_sec: w.tokens_per_sec,
            grad_norm: report.grad_norm,
            comm,
        })
    }

    /// Evaluates the model (as the method shows it) on the dev splits; keeps the best model
    /// in `best/` with `--save-best`.
    fn evaluate(&mut self, emitter: &mut Emitter<'_>) -> Result<()> {
        let view = self.method.eval_view(self.model());
        let metrics =
            self.data
                .dev
                .evaluate(&view, &self.device, self.step, &mut self.best, emitter)?;
        if self.config.save_best
            && self.comm.rank() == 0
            && self
                .data
                .dev
                .improved_main_metric(&metrics, &self.best, self.step)
        {
            super::finish::save_best(self, &view)?;
        }
        self.last_eval = Some((self.step, metrics));
        Ok(())
    }

    /// Writes a resumable checkpoint of the current step.
    fn checkpoint(&self) -> Result<std::path::PathBuf> {
        let state = CheckpointState {
            format_version: RUN_FORMAT_VERSION,
            step: self.step,
            best: self.best.clone(),
        };
        let mut optimizer = self.optimizer.try_state_tensors()?;
        optimizer.extend(self.method.state_tensors()?);
        self.dir
            .write_checkpoint(&state, &try_model_tensors(self.model())?, &optimizer)
    }
}

/// Seconds between successive laps.
struct PhaseClock(Instant);

impl PhaseClock {
    fn start() -> Self {
        Self(Instant::now())
    }

    /// Seconds since the start or the last lap.
    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let secs = (now - self.0).as_secs_f64();
        self.0 = now;
        secs
    }
}
