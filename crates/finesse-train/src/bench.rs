//! `finesse bench`: what one piece of the pipeline costs, measured in this process on the real
//! model and data, in the shape of `../shared/reference/bench_reference.py` so the two can be
//! put side by side:
//!
//! - `dense-step` / `fish-step`: [`Trainer::step`] (forward, backward, clipping, the masked or
//!   dense AdamW update) on the run's own batches of epoch 0 (`--pad-to-max`: every batch
//!   padded to `max_seq_len`, as the reference pads); the FISH mask is computed first from the
//!   configured Fisher samples and is not timed;
//! - `fisher`: the Fisher estimate, one sample at a time, timed per sample;
//! - `eval`: forward passes of the dev split's evaluation batches.
//!
//! Each timed unit ends with a device sync, so lazy backends (`wgpu`) are timed to completion.
//! The median of the timed units after the warm-up is the figure; CPU use is the process's
//! user + system time over the wall time of the timed units.

use std::time::Instant;

use burn::tensor::Device;
use finesse_bert::load_classifier;
use finesse_glue::batch::{BatchPlan, eval_batches, make_batch_to};
use finesse_glue::{EncodedSplit, HostBatch};
use finesse_sparse::fisher::{estimate, pick_samples};
use finesse_sparse::{FisherKind, SampleOrder};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::events::{Event, EventLog, peak_rss_mib};
use crate::method::{MethodConfig, hooks_for};
use crate::rundir::RunDir;
use crate::trainer::{Emitter, StepPhases, Trainer};

/// What `finesse bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// A dense AdamW training step.
    DenseStep,
    /// A training step with a FISH mask (the config's method must be `fish`).
    FishStep,
    /// The empirical Fisher, per sample.
    Fisher,
    /// Evaluation forward passes, per batch.
    Eval,
}

/// How to measure.
#[derive(Clone, Copy, Debug)]
pub struct BenchSettings {
    /// What.
    pub mode: BenchMode,
    /// Timed units (steps, Fisher samples or evaluation batches).
    pub steps: usize,
    /// Untimed units first.
    pub warmup: usize,
    /// Pad every batch (and Fisher sample) to `max_seq_len`.
    pub pad_to_max: bool,
    /// Threads of the CPU backends' pool (recorded; the caller sets the pool up).
    pub threads: usize,
}

impl BenchSettings {
    /// The length batches are padded to at least: `max_seq_len` with `pad_to_max`, else none.
    fn pad_len(&self, max_seq_len: usize) -> usize {
        if self.pad_to_max { max_seq_len } else { 0 }
    }
}

/// The figures of one benchmark (the last line `finesse bench` prints).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchReport {
    /// What was measured.
    pub mode: BenchMode,
    /// The backend.
    pub device: String,
    /// Threads of the CPU pool.
    pub threads: usize,
    /// Model (as given).
    pub model: String,
    /// GLUE task.
    pub task: String,
    /// Examples per batch (1 for `fisher`).
    pub batch_size: usize,
    /// Maximum tokens per example.
    pub max_seq_len: usize,
    /// Whether every batch was padded to `max_seq_len`.
    pub pad_to_max: bool,
    /// Timed units.
    pub steps: usize,
    /// Untimed units before them.
    pub warmup: usize,
    /// Median seconds per step or batch (`dense-step`, `fish-step`, `eval`).
    pub seconds_per_step: Option<f64>,
    /// Median seconds per sample (`fisher`).
    pub seconds_per_sample: Option<f64>,
    /// Mean seconds per timed unit.
    pub mean_seconds: f64,
    /// Seconds of each timed unit.
    pub times: Vec<f64>,
    /// Examples per second over the timed units.
    pub examples_per_sec: f64,
    /// Real (non-padding) tokens per second over the timed units.
    pub tokens_per_sec: f64,
    /// Tokens per second counting padding.
    pub padded_tokens_per_sec: f64,
    /// Peak resident set size of the process (MiB, Linux `VmHWM`).
    pub peak_rss_mb: Option<f64>,
    /// Process CPU time over wall time during the timed units, in percent (200 = two cores).
    pub cpu_percent: Option<f64>,
    /// Parameter entries the optimizer updates (step modes).
    pub trainable_params: Option<usize>,
    /// Bytes of optimizer state: f32 moments plus i64 kept-entry indices (step modes).
    pub optimizer_state_bytes: Option<usize>,
    /// Untimed preparation before the first unit: model and data loading, and for
    /// `fish-step` the Fisher and the mask.
    pub setup_secs: f64,
    /// Training loss of every unit, warm-up included (step modes).
    pub losses: Vec<f64>,
    /// The median over the timed steps of each phase's seconds (step modes; absent from the
    /// reports of earlier versions).
    #[serde(default)]
    pub phase_seconds: Option<StepPhases>,
}

/// Per-unit measurements.
#[derive(Default)]
struct Timings {
    times: Vec<f64>,
    examples: usize,
    real_tokens: usize,
    padded_tokens: usize,
    cpu_secs: Option<f64>,
    losses: Vec<f64>,
    /// The medians of each phase over the timed steps (step modes).
    phases: Option<StepPhases>,
}

impl Timings {
    /// Records a timed unit over `batch`.
    fn unit(&mut self, seconds: f64, batch: &HostBatch) {
        self.times.push(seconds);
        self.examples += batch.batch;
        self.real_tokens += batch.real_tokens;
        self.padded_tokens += batch.batch * batch.seq;
    }
}

/// Runs the benchmark of `settings` with the model, data and hyper-parameters of `config` on
/// `device`; `log` hears a line per unit.
///
/// # Errors
/// The model or data cannot be loaded, the settings do not fit the config (no steps, or
/// `fish-step` without the `fish` method), or a step fails; a panic in the backend (no device,
/// out of memory) becomes an error as it does in a run.
pub fn bench(
    config: &RunConfig,
    settings: &BenchSettings,
    device: &Device,
    log: &mut dyn FnMut(String),
) -> Result<BenchReport> {
    check(config, settings)?;
    crate::trainer::guarded(|| measure(config, settings, device, log))
}

fn measure(
    config: &RunConfig,
    settings: &BenchSettings,
    device: &Device,
    log: &mut dyn FnMut(String),
) -> Result<BenchReport> {
    let started = Instant::now();
    let (timings, setup_secs, trainable_params, optimizer_state_bytes) = match settings.mode {
        BenchMode::DenseStep | BenchMode::FishStep => {
            let work = tempfile::tempdir().map_err(|source| TrainError::Io {
                action: "creating a scratch folder for",
                path: std::env::temp_dir(),
                source,
            })?;
            let mut config = config.clone();
            config.output_dir = work.path().join("run");
            config.max_steps = Some(settings.warmup + settings.steps);
            let (timings, trainable, bytes, setup) =
                bench_steps(&config, settings, device, started, log)?;
            (timings, setup, Some(trainable), Some(bytes))
        }
        BenchMode::Fisher => {
            let (timings, setup) = bench_fisher(config, settings, device, started, log)?;
            (timings, setup, None, None)
        }
        BenchMode::Eval => {
            let (timings, setup) = bench_eval(config, settings, device, started, log)?;
            (timings, setup, None, None)
        }
    };
    let total: f64 = timings.times.iter().sum();
    let median = median(&timings.times);
    let per_unit = |mode| (settings.mode == mode).then_some(median);
    Ok(BenchReport {
        mode: settings.mode,
        device: config.device.clone(),
        threads: settings.threads,
        model: config.model.clone(),
        task: config.task.to_string(),
        batch_size: if settings.mode == BenchMode::Fisher {
            1
        } else {
            config.batch_size
        },
        max_seq_len: config.max_seq_len,
        pad_to_max: settings.pad_to_max,
        steps: settings.steps,
        warmup: settings.warmup,
        seconds_per_step: (settings.mode != BenchMode::Fisher).then_some(median),
        seconds_per_sample: per_unit(BenchMode::Fisher),
        mean_seconds: total / timings.times.len().max(1) as f64,
        examples_per_sec: timings.examples as f64 / total,
        tokens_per_sec: timings.real_tokens as f64 / total,
        padded_tokens_per_sec: timings.padded_tokens as f64 / total,
        peak_rss_mb: peak_rss_mib(),
        cpu_percent: timings.cpu_secs.map(|c| 100.0 * c / total),
        trainable_params,
        optimizer_state_bytes,
        setup_secs,
        losses: timings.losses,
        times: timings.times,
        phase_seconds: timings.phases,
    })
}

/// Each phase's median over `steps` (`None` without steps).
fn median_phases(steps: &[StepPhases]) -> Option<StepPhases> {
    let of = |f: fn(&StepPhases) -> f64| median(&steps.iter().map(f).collect::<Vec<_>>());
    (!steps.is_empty()).then(|| StepPhases {
        forward: of(|p| p.forward),
        backward: of(|p| p.backward),
        gradients: of(|p| p.gradients),
        clip: of(|p| p.clip),
        update: of(|p| p.update),
    })
}

fn check(config: &RunConfig, settings: &BenchSettings) -> Result<()> {
    let bad = |field, problem: &str| {
        Err(TrainError::Config {
            field,
            problem: problem.into(),
        })
    };
    if settings.steps == 0 {
        return bad("steps", "must be at least 1");
    }
    match (settings.mode, &config.method) {
        (BenchMode::FishStep, MethodConfig::Fish { .. }) => Ok(()),
        (BenchMode::FishStep, _) => bad("method", "fish-step needs the fish method"),
        (BenchMode::DenseStep, MethodConfig::Dense) => Ok(()),
        (BenchMode::DenseStep, _) => bad("method", "dense-step needs the dense method"),
        _ => Ok(()),
    }
}

/// Training steps through the trainer itself: (timings, trainable entries, optimizer-state
/// bytes, setup seconds).
fn bench_steps(
    config: &RunConfig,
    settings: &BenchSettings,
    device: &Device,
    started: Instant,
    log: &mut dyn FnMut(String),
) -> Result<(Timings, usize, usize, f64)> {
    config.validate()?;
    let data = crate::trainer::load_data(config)?;
    let dir = RunDir::new(&config.output_dir);
    dir.create()?;
    let mut sink = |e: &Event| {
        if let Event::Fisher { done, total } = e {
            eprintln!("  fisher {done}/{total}");
        }
    };
    let mut emitter = Emitter::new(&mut sink, EventLog::open(&dir.events())?);
    let method = hooks_for(&config.method);
    let mut trainer = Trainer::new(config, &dir, &data, device, method, false, &mut emitter)?;
    let trainable = trainer.trainable_params();
    let plan = BatchPlan {
        batch_size: config.batch_size,
        bucketing: config.bucketing,
    };
    let pool: Vec<usize> = (0..data.train.len()).collect();
    let order = finesse_glue::batch::epoch_batches(&data.train, &pool, plan, config.seed, 0);
    let batches = cycle_batches(&data.train, &order, settings, config.max_seq_len);
    let setup = started.elapsed().as_secs_f64();
    let mut phases = Vec::with_capacity(batches.len());
    let mut t = time_units(&batches, settings, log, |batch| {
        let report = trainer.step(batch, &mut emitter)?;
        sync(device);
        phases.extend(report.phases);
        Ok(Some(report.loss))
    })?;
    t.phases = median_phases(phases.get(settings.warmup..).unwrap_or_default());
    // The moments exist from the first step on.
    let optimizer = trainer.optimizer();
    let state_bytes = optimizer.state_entries() * 4 + optimizer.index_entries() * 8;
    Ok((t, trainable, state_bytes, setup))
}

/// The Fisher, one sample at a time: the first `warmup` samples untimed, then `steps`.
fn bench_fisher(
    config: &RunConfig,
    settings: &BenchSettings,
    device: &Device,
    started: Instant,
    log: &mut dyn FnMut(String),
) -> Result<(Timings, f64)> {
    let data = crate::trainer::load_data(config)?;
    let train_device = device.clone().autodiff();
    let (model, _, _) = load_classifier(
        &data.model_dir,
        config.task.num_outputs(),
        config.seed,
        &train_device,
    )?;
    let n = settings.warmup + settings.steps;
    let picked = pick_samples(data.train.len(), n, SampleOrder::Shuffled, config.seed);
    let pad = settings.pad_len(config.max_seq_len);
    let samples: Vec<HostBatch> = (0..n)
        .map(|i| make_batch_to(&data.train, &[picked[i % picked.len()]], pad))
        .collect();
    let setup = started.elapsed().as_secs_f64();
    // One estimate over all samples, as a run computes it (one read-back at the end); the
    // progress callback after each sample stamps its end.
    let mut ends = Vec::with_capacity(n);
    let mut cpu_at_warmup = cpu_seconds();
    let t0 = Instant::now();
    estimate(
        &model,
        &samples,
        FisherKind::Empirical,
        config.seed,
        &mut |done, _| {
            ends.push(t0.elapsed().as_secs_f64());
            if done == settings.warmup {
                cpu_at_warmup = cpu_seconds();
            }
        },
    )
    .map_err(|e| TrainError::Sparse(Box::new(e)))?;
    let cpu_end = cpu_seconds();
    let mut t = Timings::default();
    let mut previous = 0.0;
    for (i, (sample, end)) in samples.iter().zip(&ends).enumerate() {
        let secs = end - previous;
        previous = *end;
        let timed = i >= settings.warmup;
        if timed {
            t.unit(secs, sample);
        }
        log(unit_line(i, timed, secs, sample, None));
    }
    t.cpu_secs = cpu_end.zip(cpu_at_warmup).map(|(a, b)| a - b);
    Ok((t, setup))
}

/// Evaluation forward passes over the first dev split's batches (cycled).
fn bench_eval(
    config: &RunConfig,
    settings: &BenchSettings,
    device: &Device,
    started: Instant,
    log: &mut dyn FnMut(String),
) -> Result<(Timings, f64)> {
    let data = crate::trainer::load_data(config)?;
    let (model, _, _) = load_classifier(
        &data.model_dir,
        config.task.num_outputs(),
        config.seed,
        device,
    )?;
    let model = model.without_dropout();
    let set = data.dev.sets.first().ok_or_else(|| TrainError::Config {
        field: "task",
        problem: "the task has no dev split".into(),
    })?;
    let order = eval_batches(&set.data, &set.pool, data.dev.plan);
    let batches = cycle_batches(&set.data, &order, settings, config.max_seq_len);
    let setup = started.elapsed().as_secs_f64();
    let t = time_units(&batches, settings, log, |batch| {
        // The read-back waits for the forward pass.
        let logits = model.forward(batch.to_input(device));
        finesse_bert::readback::floats(logits, "logits")?;
        Ok(None)
    })?;
    Ok((t, setup))
}

/// Runs `unit` on each batch in turn, timing it (wall and CPU) from the end of the warm-up on;
/// `unit` returns the batch's training loss, if it has one.
fn time_units(
    batches: &[HostBatch],
    settings: &BenchSettings,
    log: &mut dyn FnMut(String),
    mut unit: impl FnMut(&HostBatch) -> Result<Option<f64>>,
) -> Result<Timings> {
    let mut t = Timings::default();
    let mut cpu_timed = 0.0;
    for (i, batch) in batches.iter().enumerate() {
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let loss = unit(batch)?;
        let secs = t0.elapsed().as_secs_f64();
        let timed = i >= settings.warmup;
        if timed {
            t.unit(secs, batch);
            cpu_timed += cpu_seconds().zip(cpu0).map_or(f64::NAN, |(a, b)| a - b);
        }
        t.losses.extend(loss);
        log(unit_line(i, timed, secs, batch, loss));
    }
    t.cpu_secs = cpu_timed.is_finite().then_some(cpu_timed);
    Ok(t)
}

/// `warmup + steps` batches from `order`, cycled, padded to `max_seq_len` if asked (examples
/// are already truncated to it).
fn cycle_batches(
    split: &EncodedSplit,
    order: &[Vec<usize>],
    settings: &BenchSettings,
    max_seq_len: usize,
) -> Vec<HostBatch> {
    let pad = settings.pad_len(max_seq_len);
    (0..settings.warmup + settings.steps)
        .map(|i| make_batch_to(split, &order[i % order.len()], pad))
        .collect()
}

fn unit_line(i: usize, timed: bool, secs: f64, batch: &HostBatch, loss: Option<f64>) -> String {
    let tag = if timed { "timed " } else { "warmup" };
    let loss = loss.map_or(String::new(), |l| format!("  loss {l:.4}"));
    format!(
        "  {i:4} [{tag}] {secs:8.3} s  {}×{}{loss}",
        batch.batch, batch.seq
    )
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Waits for the device's queued work (lazy backends), so a unit is timed to its end.
fn sync(device: &Device) {
    if let Err(e) = device.sync() {
        log::warn!("device sync failed: {e:?}");
    }
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn cpu_seconds_grow_with_work() {
        let before = cpu_seconds().expect("Linux /proc");
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = cpu_seconds().expect("Linux /proc");
        assert!(after - before >= 0.1, "{before} → {after}");
    }
}
