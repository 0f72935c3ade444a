//! The fine-tuning loop: AdamW with the BERT schedule, cross-entropy or MSE, evaluation,
//! logging, checkpoints, cancellation and resume.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use finesse_bert::hub::sha256_file;
use finesse_bert::{
    BertForSequenceClassification, BertTokenizer, ModelFolder, ParamRegistry, check_model_limits,
    load_classifier, load_into, model_tensors, save_hf_folder,
};
use finesse_glue::batch::{BatchPlan, epoch_batches, eval_batches, seeded_subset};
use finesse_glue::metrics::{Predictions, compute};
use finesse_glue::{
    BatchLabels, EncodedSplit, HostBatch, SplitKind, encode_split, load_split, make_batch,
};

use finesse_sparse::files::{canonical_name, read_model_tensors};
use finesse_sparse::fisher::input_of;
use finesse_sparse::mask::{random_scores, select, stats};
use finesse_sparse::optim::freeze;
use finesse_sparse::prune::Pruner;
use finesse_sparse::supermask::{MaskDraw, Supermask};
use finesse_sparse::{Algorithm, Mask, OptimizerConfig, SparseDiff, SparseOptimizer};

use crate::config::{OptimizerChoice, RunConfig};
use crate::error::{Result, TrainError};
use crate::events::{Event, EventLog, peak_rss_mib};
use crate::method::{MethodConfig, UpdateRule, rule_of};
use crate::rundir::{
    Analysis, BestValue, CheckpointState, DataFile, MetricsFile, RUN_FORMAT_VERSION, RunDir,
    RunInfo, SparseSummary, SupermaskSummary, main_metric, write_json,
};
use crate::schedule::LinearSchedule;

/// How a run ended without error.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// All steps done; the final metrics.
    Finished(Box<MetricsFile>),
    /// Cancelled after `step`; a resumable checkpoint was written.
    Cancelled {
        /// Last completed step.
        step: usize,
    },
}

struct EvalSet {
    name: String,
    data: EncodedSplit,
    pool: Vec<usize>,
}

/// Runs (or, with `resume`, continues) the run of `config` on `device`, sending every event to
/// `sink` and to `events.jsonl`. `cancel` is polled after every step.
pub fn run(
    config: RunConfig,
    device: Device,
    resume: bool,
    sink: &mut dyn FnMut(&Event),
    cancel: &AtomicBool,
) -> Result<RunOutcome> {
    let dir = RunDir::new(&config.output_dir);
    // The lock is held until this function returns (a crash releases it with the process).
    let _lock = if resume {
        let lock = dir.lock()?;
        dir.clean_leftovers()?;
        if dir.recover_checkpoint()?.is_none() {
            return Err(TrainError::Resume {
                path: dir.root.clone(),
                problem: "no complete checkpoint/ in it (runs checkpoint when cancelled, on \
                          SIGTERM and every --checkpoint-every steps)"
                    .into(),
            });
        }
        lock
    } else {
        dir.create()?;
        dir.lock()?
    };
    let mut log = EventLog::open(&dir.events())?;
    let started = std::cell::Cell::new(false);
    let mut emit = |e: Event, log: &mut EventLog| -> Result<()> {
        started.set(started.get() || matches!(e, Event::Start { .. }));
        sink(&e);
        log.append(&e)
    };
    let mut step_reached = 0;
    // A panic (a bug) becomes an error event and an error, not a silent dead thread.
    let result = guarded(|| {
        train(
            &config,
            &device,
            resume,
            &dir,
            &mut log,
            &mut emit,
            cancel,
            &mut step_reached,
        )
    });
    if let Err(e) = &result {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        let error = Event::Error {
            step: step_reached,
            message,
        };
        if resume && !started.get() {
            // A resume refused or failed before it started (changed data, missing files): the
            // run is as it was, still resumable, so its log does not record a failure.
            sink(&error);
        } else {
            // The error itself is what the caller needs; a failure to log it must not hide it.
            let _ = emit(error, &mut log);
        }
    }
    result
}

/// Runs `f`, turning a panic into [`TrainError::Panic`] with its message.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(TrainError::Panic {
            message: panic_message(panic.as_ref()),
        })
    })
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[allow(clippy::too_many_arguments)]
fn train(
    config: &RunConfig,
    device: &Device,
    resume: bool,
    dir: &RunDir,
    log: &mut EventLog,
    emit: &mut dyn FnMut(Event, &mut EventLog) -> Result<()>,
    cancel: &AtomicBool,
    step_reached: &mut usize,
) -> Result<RunOutcome> {
    config.validate()?;
    let started = Instant::now();
    let task = config.task;
    let model_dir = crate::models::model_folder(&config.model)?;
    let tokenizer =
        BertTokenizer::from_file(&model_dir.join("tokenizer.json"), config.max_seq_len)?;
    // Token ids and positions must fit the embedding tables before any data is read.
    check_model_limits(
        &ModelFolder::open(&model_dir)?.config()?,
        &tokenizer,
        &model_dir,
    )?;

    let train_split = load_split(
        task,
        &config.data_dir,
        SplitKind::Train,
        config.skip_bad_rows,
    )?;
    let mut data_files = vec![data_file(&train_split)?];
    let train_data = encode_split(&train_split, &tokenizer)?;
    let mut evals = Vec::new();
    for i in 0..task.spec().dev_files.len() {
        let split = load_split(
            task,
            &config.data_dir,
            SplitKind::Dev(i),
            config.skip_bad_rows,
        )?;
        data_files.push(data_file(&split)?);
        let data = encode_split(&split, &tokenizer)?;
        let pool = seeded_subset(data.len(), config.max_eval_examples, config.seed);
        evals.push(EvalSet {
            name: split.name.clone(),
            data,
            pool,
        });
    }

    let train_device = device.clone().autodiff();
    let (model, bert_config, _) =
        load_classifier(&model_dir, task.num_outputs(), config.seed, &train_device)?;
    let registry = ParamRegistry::of(&model);
    let model_sha256 = sha256_file(&model_dir.join("model.safetensors"))?;
    if resume {
        check_inputs(dir, &model_sha256, &data_files)?;
    } else {
        let info = RunInfo {
            format_version: RUN_FORMAT_VERSION,
            finesse_version: env!("CARGO_PKG_VERSION").to_string(),
            config: config.clone(),
            model_dir: model_dir.clone(),
            model_sha256,
            data_files,
        };
        write_json(&dir.run_json(), &info)?;
    }
    let mask_started = Instant::now();
    let mask = prepare_mask(
        config,
        &model,
        &registry,
        &train_data,
        dir,
        resume,
        log,
        emit,
    )?;
    let mask_secs = mask_started.elapsed().as_secs_f64();
    let supermask_settings = match &config.method {
        MethodConfig::Supermask {
            initial_sparsity,
            score_lr,
            eval_samples,
        } => Some((*initial_sparsity, *score_lr, *eval_samples)),
        _ => None,
    };
    // Supermasks train the scores (below) and the head; the weights stay fixed.
    let rule = |p: &finesse_bert::ParamInfo| match supermask_settings {
        Some(_) if p.kind == finesse_bert::ParamKind::Classifier => UpdateRule::All,
        Some(_) => UpdateRule::Frozen,
        None => rule_of(mask.as_ref(), p),
    };
    let trainable_params: usize = registry
        .iter()
        .map(|p| match rule(p) {
            UpdateRule::All => p.numel,
            UpdateRule::Masked(k) => k.len(),
            UpdateRule::Frozen => 0,
        })
        .sum();
    let frozen: std::collections::HashSet<_> = registry
        .iter()
        .filter(|p| rule(p) == UpdateRule::Frozen)
        .map(|p| p.id)
        .collect();
    let algorithm = match config.optimizer {
        OptimizerChoice::Adamw => Algorithm::Adamw {
            beta1: config.adam_beta1,
            beta2: config.adam_beta2,
            eps: config.adam_eps,
        },
        OptimizerChoice::Sgd => Algorithm::Sgd {
            momentum: config.sgd_momentum,
        },
    };
    let mut opt = SparseOptimizer::new(
        OptimizerConfig {
            algorithm,
            weight_decay: config.weight_decay,
        },
        &registry,
        rule,
        device,
    );

    let pool = seeded_subset(train_data.len(), config.max_train_examples, config.seed);
    let plan = BatchPlan {
        batch_size: config.batch_size,
        bucketing: config.bucketing,
    };
    let steps_per_epoch = pool.len().div_ceil(config.batch_size);
    let total_steps = config
        .max_steps
        .unwrap_or_else(|| ((config.epochs * steps_per_epoch as f64).ceil() as usize).max(1));
    let schedule = LinearSchedule::new(config.lr, config.warmup_ratio, total_steps);
    let eval_every = config.eval_every.unwrap_or(steps_per_epoch);

    let mut model = model;
    let mut start_step = 0;
    let mut best: BTreeMap<String, BestValue> = BTreeMap::new();
    let mut resumed_state = None;
    if resume {
        let checkpoint = dir.read_checkpoint()?;
        let state = checkpoint.state;
        if supermask_settings.is_some() {
            resumed_state = Some(checkpoint.optimizer.clone());
        }
        model = load_into(model, checkpoint.model, &train_device)?.0;
        opt.load_state(state.step as u64, &checkpoint.optimizer, device)
            .map_err(|problem| TrainError::Resume {
                path: dir.root.clone(),
                problem,
            })?;
        start_step = state.step;
        best = state.best;
    }
    // Parameters with nothing to train compute no weight gradient.
    let mut model = freeze(model, &frozen);
    let mut supermask = match supermask_settings {
        Some((initial, _, _)) => {
            let mut s = Supermask::init(&model, &registry, initial, &train_device)?;
            if let Some(state) = &resumed_state {
                s.load_state(state, start_step as u64, &train_device)?;
            }
            Some(s)
        }
        None => None,
    };
    let mut pruner = match config.method.prune_schedule(total_steps) {
        Some((schedule, scope)) => {
            let mut p = Pruner::new(schedule, scope, &registry, device)?;
            p.restore(&model, start_step);
            Some(p)
        }
        None => None,
    };
    *step_reached = start_step;
    emit(
        Event::Start {
            total_steps,
            steps_per_epoch,
            train_examples: pool.len(),
            eval_examples: evals.first().map_or(0, |e| e.pool.len()),
            start_step,
            trainable_params,
            total_params: registry.total_numel(),
        },
        log,
    )?;

    let mut epoch_plan: Option<(usize, Vec<Vec<usize>>)> = None;
    let (mut window_loss, mut window_steps, mut window_examples, mut window_tokens) =
        (0.0, 0usize, 0usize, 0usize);
    let (mut run_examples, mut run_tokens) = (0usize, 0usize);
    let mut window_start = Instant::now();
    let mut train_secs = 0.0;
    let mut last_metrics: Option<BTreeMap<String, BTreeMap<String, f64>>> = None;
    let mut last_eval_step = None;

    for step in start_step..total_steps {
        let epoch = step / steps_per_epoch;
        if epoch_plan.as_ref().is_none_or(|(e, _)| *e != epoch) {
            epoch_plan = Some((
                epoch,
                epoch_batches(&train_data, &pool, plan, config.seed, epoch),
            ));
        }
        let batches = &epoch_plan
            .as_ref()
            .map(|(_, b)| b)
            .expect("epoch plan set above");
        let batch = make_batch(&train_data, &batches[step % steps_per_epoch]);
        let step_started = Instant::now();
        // Dropout masks depend on (seed, step) only, so a resumed run draws what an
        // uninterrupted one would.
        train_device.seed(
            config
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(step as u64),
        );
        let lr = schedule.lr(step);
        let sampled;
        let forward_model = match &supermask {
            Some(s) => {
                sampled = s.masked(model.clone(), MaskDraw::Sample);
                &sampled
            }
            None => &model,
        };
        let logits = forward_model.forward(input_of(&batch, &train_device));
        let loss = loss_of(logits, &batch.labels, &train_device);
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        if !loss_value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss: loss_value,
                lr,
            });
        }
        let mut raw_grads = loss.backward();
        if let (Some(s), Some((_, score_lr, _))) = (supermask.as_mut(), supermask_settings) {
            // The scores follow the same warm-up/decay shape as the weights' learning rate.
            s.step(&mut raw_grads, score_lr * lr / config.lr);
        }
        let grads = GradientsParams::from_grads(raw_grads, &model);
        let grad_norm = opt.grad_norm(&grads, &registry, device).sqrt();
        let scale = match config.max_grad_norm {
            Some(max) if grad_norm > max => max / (grad_norm + 1e-6),
            _ => 1.0,
        };
        model = opt.step(model, grads, lr, scale);
        if let Some(p) = pruner.as_mut() {
            let (m, pruned) = p.after_step(model, step + 1);
            model = m;
            if let Some(sparsity) = pruned {
                emit(
                    Event::Prune {
                        step: step + 1,
                        sparsity,
                    },
                    log,
                )?;
            }
        }
        train_secs += step_started.elapsed().as_secs_f64();
        *step_reached = step + 1;

        window_loss += loss_value;
        window_steps += 1;
        window_examples += batch.batch;
        window_tokens += batch.real_tokens;
        run_examples += batch.batch;
        run_tokens += batch.real_tokens;
        let done = step + 1;
        if done % config.log_every == 0 || done == total_steps {
            let secs = window_start.elapsed().as_secs_f64().max(1e-9);
            emit(
                Event::Step {
                    step: done,
                    epoch: done as f64 / steps_per_epoch as f64,
                    loss: window_loss / window_steps as f64,
                    lr,
                    examples_per_sec: window_examples as f64 / secs,
                    tokens_per_sec: window_tokens as f64 / secs,
                    grad_norm,
                },
                log,
            )?;
            (window_loss, window_steps, window_examples, window_tokens) = (0.0, 0, 0, 0);
            window_start = Instant::now();
        }
        if done % eval_every == 0 || done == total_steps {
            let metrics = evaluate_all(
                &eval_view(&model, supermask.as_ref()),
                &evals,
                plan,
                config,
                device,
                done,
                &mut best,
                log,
                emit,
            )?;
            if config.save_best && improved_main_metric(&metrics, &evals, &best, done) {
                save_best(
                    &eval_view(&model, supermask.as_ref()),
                    &bert_config,
                    config,
                    &model_dir,
                    dir,
                )?;
            }
            last_metrics = Some(metrics);
            last_eval_step = Some(done);
            window_start = Instant::now();
        }
        let cancelled = cancel.load(Ordering::SeqCst) && done < total_steps;
        let periodic = config.checkpoint_every.is_some_and(|n| done % n == 0);
        if cancelled || (periodic && done < total_steps) {
            let state = CheckpointState {
                format_version: RUN_FORMAT_VERSION,
                step: done,
                best: best.clone(),
            };
            let mut opt_state = opt.state_tensors();
            if let Some(s) = &supermask {
                opt_state.extend(s.state_tensors());
            }
            let path = dir.write_checkpoint(&state, &model_tensors(&model), &opt_state)?;
            emit(Event::Checkpoint { step: done, path }, log)?;
        }
        if cancelled {
            emit(Event::Cancelled { step: done }, log)?;
            return Ok(RunOutcome::Cancelled { step: done });
        }
    }

    // A supermask run ends with the deterministic mask σ(v) > 0.5 applied to the weights.
    let trained = model;
    let model = eval_view(&trained, supermask.as_ref());
    let final_metrics = match (last_metrics, last_eval_step) {
        (Some(m), Some(s)) if s == total_steps => m,
        _ => evaluate_all(
            &model,
            &evals,
            plan,
            config,
            device,
            total_steps,
            &mut best,
            log,
            emit,
        )?,
    };
    if config.save_model {
        save_hf_folder(
            &model,
            &bert_config,
            Some(task.num_outputs()),
            Some(&model_dir),
            &dir.model(),
        )?;
    }
    let base = read_model_tensors(&model_dir.join("model.safetensors"))?;
    let tuned: BTreeMap<String, finesse_bert::HostTensor> = model_tensors(&model)
        .into_iter()
        .map(|(n, t)| (canonical_name(&n), t))
        .collect();
    let supermask_summary = match (&supermask, supermask_settings) {
        (Some(s), Some((_, _, samples))) => Some(supermask_eval(
            s,
            &trained,
            &evals,
            plan,
            config,
            device,
            &train_device,
            samples,
            dir,
        )?),
        _ => None,
    };
    if let Some(p) = &pruner {
        let kept = p.kept_mask();
        let meta = BTreeMap::from([("method".to_string(), "prune".to_string())]);
        kept.write(&dir.mask(), false, &meta)?;
        write_json(&dir.mask_stats(), &stats(&kept))?;
    }
    write_json(
        &dir.analysis(),
        &Analysis {
            distance: finesse_sparse::distance::distances(&base, &tuned)?,
            prune_sparsity: pruner.as_ref().map(Pruner::sparsity),
        },
    )?;
    let sparse = match &mask {
        Some(mask) => Some(write_diff(
            &base,
            &tuned,
            mask,
            config,
            &bert_config,
            dir,
            &opt,
            mask_secs,
        )?),
        None => None,
    };
    // A finished run's checkpoint is stale: its files go (never anything else).
    dir.remove_checkpoint();
    let first = evals.first().map(|e| e.name.clone()).unwrap_or_default();
    let metrics = MetricsFile {
        format_version: RUN_FORMAT_VERSION,
        final_metrics: final_metrics.get(&first).cloned().unwrap_or_default(),
        splits: final_metrics,
        best,
        steps: total_steps,
        duration_secs: started.elapsed().as_secs_f64(),
        train_examples_per_sec: run_examples as f64 / train_secs.max(1e-9),
        train_tokens_per_sec: run_tokens as f64 / train_secs.max(1e-9),
        peak_rss_mib: peak_rss_mib(),
        optimizer_state_entries: opt.state_entries(),
        sparse,
        supermask: supermask_summary,
    };
    write_json(&dir.metrics(), &metrics)?;
    emit(
        Event::End {
            steps: total_steps,
            duration_secs: metrics.duration_secs,
            examples_per_sec: metrics.train_examples_per_sec,
            tokens_per_sec: metrics.train_tokens_per_sec,
            peak_rss_mib: metrics.peak_rss_mib,
        },
        log,
    )?;
    Ok(RunOutcome::Finished(Box::new(metrics)))
}

/// The mask of a sparse method: reloaded from the run directory on resume, else computed
/// (FISH: Fisher information over the training set, or a given mask file; random: seeded
/// scores; BitFit: the biases) and written to `mask.safetensors` with `mask_stats.json`.
#[allow(clippy::too_many_arguments)]
fn prepare_mask(
    config: &RunConfig,
    model: &BertForSequenceClassification,
    registry: &ParamRegistry,
    train_data: &EncodedSplit,
    dir: &RunDir,
    resume: bool,
    log: &mut EventLog,
    emit: &mut dyn FnMut(Event, &mut EventLog) -> Result<()>,
) -> Result<Option<Mask>> {
    if !config.method.is_sparse() {
        return Ok(None);
    }
    let started = Instant::now();
    let mask = if resume {
        Mask::read(&dir.mask())?
    } else {
        match &config.method {
            MethodConfig::Dense | MethodConfig::Prune { .. } | MethodConfig::Supermask { .. } => {
                return Ok(None);
            }
            MethodConfig::Fish {
                selection,
                fisher,
                mask_file,
            } => match mask_file {
                Some(file) => Mask::read(file)?,
                None => {
                    let picked = finesse_sparse::fisher::pick_samples(
                        train_data.len(),
                        fisher.samples,
                        fisher.order,
                        config.seed,
                    );
                    let samples: Vec<HostBatch> = picked
                        .iter()
                        .map(|&i| make_batch(train_data, &[i]))
                        .collect();
                    let mut progress_error = None;
                    let scores = finesse_sparse::fisher::estimate(
                        model,
                        &samples,
                        fisher.kind,
                        config.seed,
                        &mut |done, total| {
                            if (done % 64 == 0 || done == total)
                                && progress_error.is_none()
                                && let Err(e) = emit(Event::Fisher { done, total }, log)
                            {
                                progress_error = Some(e);
                            }
                        },
                    )?;
                    if let Some(e) = progress_error {
                        return Err(e);
                    }
                    let file = finesse_sparse::FisherFile {
                        scores,
                        meta: finesse_sparse::FisherMeta::new(
                            fisher.kind,
                            samples.len(),
                            &config.task.to_string(),
                            fisher.order,
                            config.seed,
                        ),
                    };
                    file.write(&dir.fisher())?;
                    let scores = file.scores;
                    let selection = selection.as_ref().ok_or(TrainError::Config {
                        field: "keep-ratio",
                        problem: "FISH needs a budget (--keep-ratio or --keep-count) or --mask"
                            .into(),
                    })?;
                    select(&scores, selection)?
                }
            },
            MethodConfig::Random { selection } => {
                select(&random_scores(registry, config.seed), selection)?
            }
            MethodConfig::Bitfit => Mask::bitfit(registry),
            MethodConfig::Freeze { groups } => {
                let specs = finesse_sparse::freeze::parse_all(groups)?;
                let layers = registry
                    .iter()
                    .filter_map(|p| p.layer)
                    .max()
                    .map_or(0, |l| l + 1);
                Mask::whole_tensors(registry, |p| !specs.iter().any(|s| s.matches(p, layers)))
            }
        }
    };
    mask.check_against(registry, &dir.mask().display().to_string())?;
    if !resume {
        let meta = BTreeMap::from([("method".to_string(), config.method.name().to_string())]);
        mask.write(&dir.mask(), false, &meta)?;
        write_json(&dir.mask_stats(), &stats(&mask))?;
    }
    emit(
        Event::Mask {
            method: config.method.name().to_string(),
            kept: mask.kept(),
            total: mask.total(),
            frozen_tensors: mask.tensors.values().filter(|t| t.kept.is_empty()).count(),
            duration_secs: started.elapsed().as_secs_f64(),
        },
        log,
    )?;
    Ok(Some(mask))
}

/// Writes `diff.safetensors` (the run's change against the base model) and sums up the sparse
/// run's sizes.
#[allow(clippy::too_many_arguments)]
fn write_diff(
    base: &BTreeMap<String, finesse_bert::HostTensor>,
    tuned: &BTreeMap<String, finesse_bert::HostTensor>,
    mask: &Mask,
    config: &RunConfig,
    bert_config: &finesse_bert::BertConfig,
    dir: &RunDir,
    opt: &SparseOptimizer,
    mask_secs: f64,
) -> Result<SparseSummary> {
    let config_json =
        serde_json::to_string_pretty(&bert_config.to_json(Some(config.task.num_outputs()))).ok();
    let diff = SparseDiff::export(base, tuned, config_json)?;
    diff.write(&dir.diff())?;
    let diff_bytes = std::fs::metadata(dir.diff())
        .map(|m| m.len())
        .unwrap_or_default();
    let dense_model_bytes = tuned.values().map(|t| t.numel() as u64 * 4).sum();
    Ok(SparseSummary {
        method: config.method.name().to_string(),
        kept: mask.kept(),
        total: mask.total(),
        optimizer_index_entries: opt.index_entries(),
        diff_changed_entries: diff.changed_entries(),
        diff_bytes,
        dense_model_bytes,
        mask_secs,
    })
}

/// The model as evaluated: itself, or with a supermask's deterministic mask applied.
fn eval_view(
    model: &BertForSequenceClassification,
    supermask: Option<&Supermask>,
) -> BertForSequenceClassification {
    match supermask {
        Some(s) => s.masked(model.clone(), MaskDraw::Deterministic),
        None => model.clone(),
    }
}

/// Final supermask evaluation: `samples` Bernoulli masks (seeded) on the first dev split, their
/// mean and standard deviation, and the mask files.
#[allow(clippy::too_many_arguments)]
fn supermask_eval(
    s: &Supermask,
    trained: &BertForSequenceClassification,
    evals: &[EvalSet],
    plan: BatchPlan,
    config: &RunConfig,
    device: &Device,
    train_device: &Device,
    samples: usize,
    dir: &RunDir,
) -> Result<SupermaskSummary> {
    let mask = s.final_mask();
    let meta = BTreeMap::from([("method".to_string(), "supermask".to_string())]);
    mask.write(&dir.mask(), true, &meta)?;
    write_json(&dir.mask_stats(), &stats(&mask))?;
    let mut runs = Vec::new();
    if let Some(set) = evals.first() {
        for i in 0..samples {
            // Seeded per sample, so the evaluation is reproducible.
            train_device.seed(config.seed.wrapping_mul(7_919).wrapping_add(i as u64));
            let sampled = s.masked(trained.clone(), MaskDraw::Sample);
            let (_, metrics) = evaluate(
                &sampled.valid(),
                &set.data,
                &set.pool,
                plan,
                config.task,
                device,
            )?;
            runs.push(metrics);
        }
    }
    let mut mean = BTreeMap::new();
    let mut std = BTreeMap::new();
    if let Some(first) = runs.first() {
        for k in first.keys() {
            let v: Vec<f64> = runs.iter().filter_map(|m| m.get(k).copied()).collect();
            let mu = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / v.len() as f64;
            mean.insert(k.clone(), mu);
            std.insert(k.clone(), var.sqrt());
        }
    }
    Ok(SupermaskSummary {
        kept: mask.kept(),
        total: mask.total(),
        sparsity: 1.0 - mask.kept() as f64 / mask.total().max(1) as f64,
        sampled: runs,
        sampled_mean: mean,
        sampled_std: std,
    })
}

/// Refuses to resume when the model or a data file is not the one the run started with.
fn check_inputs(dir: &RunDir, model_sha256: &str, data_files: &[DataFile]) -> Result<()> {
    let info = dir.read_info()?;
    let refuse = |problem: String| TrainError::Resume {
        path: dir.root.clone(),
        problem,
    };
    if info.model_sha256 != model_sha256 {
        return Err(refuse(format!(
            "the model changed: {} has sha256 {model_sha256}, the run started from {} ({})",
            info.config.model,
            info.model_sha256,
            info.model_dir.display()
        )));
    }
    for now in data_files {
        match info.data_files.iter().find(|d| d.split == now.split) {
            Some(then) if then.sha256 == now.sha256 => {}
            Some(then) => {
                return Err(refuse(format!(
                    "the data changed: {} has sha256 {}, the run started from {} with {}",
                    now.path.display(),
                    now.sha256,
                    then.path.display(),
                    then.sha256
                )));
            }
            None => {
                return Err(refuse(format!(
                    "run.json records no `{}` split ({})",
                    now.split,
                    now.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Did the evaluation at `step` set a new best of the main metric of the first dev split?
fn improved_main_metric(
    metrics: &BTreeMap<String, BTreeMap<String, f64>>,
    evals: &[EvalSet],
    best: &BTreeMap<String, BestValue>,
    step: usize,
) -> bool {
    let first = evals.first().and_then(|e| metrics.get(&e.name));
    first
        .and_then(|m| main_metric(m))
        .is_some_and(|(name, _)| best.get(name).is_some_and(|b| b.step == step))
}

/// Writes the model to `best/` through a staged folder, so `best/` is always a whole model.
fn save_best(
    model: &BertForSequenceClassification,
    bert_config: &finesse_bert::BertConfig,
    config: &RunConfig,
    model_dir: &Path,
    dir: &RunDir,
) -> Result<()> {
    let target = dir.best_model();
    let staged = dir.root.join(".best-staged");
    let old = dir.root.join(".best-old");
    for leftover in [&staged, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .map_err(|e| TrainError::io("removing", leftover.as_path(), e))?;
        }
    }
    save_hf_folder(
        model,
        bert_config,
        Some(config.task.num_outputs()),
        Some(model_dir),
        &staged,
    )?;
    if target.exists() {
        std::fs::rename(&target, &old).map_err(|e| TrainError::io("moving aside", &target, e))?;
    }
    std::fs::rename(&staged, &target).map_err(|e| TrainError::io("renaming into", &target, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io("removing", &old, e))?;
    }
    Ok(())
}

fn data_file(split: &finesse_glue::Split) -> Result<DataFile> {
    Ok(DataFile {
        split: split.name.clone(),
        path: split.path.clone(),
        sha256: sha256_file(&split.path)?,
        examples: split.examples.len(),
        skipped_rows: split.skipped.len(),
    })
}

/// Mean cross-entropy of the logits (classification) or mean squared error of the single
/// output (regression), as `BertForSequenceClassification` computes them.
pub fn loss_of(logits: Tensor<2>, labels: &BatchLabels, device: &Device) -> Tensor<1> {
    let [b, _] = logits.dims();
    match labels {
        BatchLabels::Classes(y) => {
            let y = Tensor::<2, Int>::from_data(TensorData::new(y.clone(), [b, 1]), device);
            log_softmax(logits, 1).gather(1, y).mean().neg()
        }
        BatchLabels::Scores(y) => {
            let y = Tensor::<1>::from_data(TensorData::new(y.clone(), [b]), device);
            (logits.reshape([b]) - y).powi_scalar(2).mean()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate_all(
    model: &BertForSequenceClassification,
    evals: &[EvalSet],
    plan: BatchPlan,
    config: &RunConfig,
    device: &Device,
    step: usize,
    best: &mut BTreeMap<String, BestValue>,
    log: &mut EventLog,
    emit: &mut dyn FnMut(Event, &mut EventLog) -> Result<()>,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let eval_model = model.valid();
    let mut all = BTreeMap::new();
    for (i, set) in evals.iter().enumerate() {
        let started = Instant::now();
        let (loss, metrics) =
            evaluate(&eval_model, &set.data, &set.pool, plan, config.task, device)?;
        if i == 0 {
            for (name, &value) in &metrics {
                let improved = best.get(name).is_none_or(|b| value > b.value);
                if improved {
                    best.insert(name.clone(), BestValue { value, step });
                }
            }
        }
        emit(
            Event::Eval {
                step,
                split: set.name.clone(),
                loss,
                metrics: metrics.clone(),
                duration_secs: started.elapsed().as_secs_f64(),
            },
            log,
        )?;
        let mut with_loss = metrics;
        with_loss.insert("eval_loss".into(), loss);
        all.insert(set.name.clone(), with_loss);
    }
    Ok(all)
}

/// Mean loss and task metrics of `model` (in eval mode) on `pool` of `data`.
pub fn evaluate(
    model: &BertForSequenceClassification,
    data: &EncodedSplit,
    pool: &[usize],
    plan: BatchPlan,
    task: finesse_glue::GlueTask,
    device: &Device,
) -> Result<(f64, BTreeMap<String, f64>)> {
    let n = pool.len();
    let mut loss_sum = 0.0;
    let mut class_pred = vec![0usize; data.len()];
    let mut score_pred = vec![0f64; data.len()];
    for idx in eval_batches(data, pool, plan) {
        let batch = make_batch(data, &idx);
        let logits = model.forward(input_of(&batch, device));
        let [b, k] = logits.dims();
        let loss = loss_of(logits.clone(), &batch.labels, device).into_scalar::<f32>() as f64;
        loss_sum += loss * b as f64;
        let values = logits
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_else(|e| panic!("reading logits: {e:?}"));
        for (row, &i) in batch.indices.iter().enumerate() {
            let r = &values[row * k..(row + 1) * k];
            if task.is_regression() {
                score_pred[i] = r[0] as f64;
            } else {
                class_pred[i] = r
                    .iter()
                    .enumerate()
                    .fold(0, |best, (j, v)| if *v > r[best] { j } else { best });
            }
        }
    }
    let preds = if task.is_regression() {
        Predictions::Scores {
            pred: pool.iter().map(|&i| score_pred[i]).collect(),
            gold: pool.iter().map(|&i| score_of(data, i)).collect(),
        }
    } else {
        Predictions::Classes {
            pred: pool.iter().map(|&i| class_pred[i]).collect(),
            gold: pool.iter().map(|&i| class_of(data, i)).collect(),
        }
    };
    let metrics = compute(task.spec().metrics, &preds)?;
    Ok((loss_sum / n.max(1) as f64, metrics))
}

fn class_of(data: &EncodedSplit, i: usize) -> usize {
    match data.examples[i].label {
        finesse_glue::Label::Class(c) => c,
        finesse_glue::Label::Score(_) => unreachable!("classification split"),
    }
}

fn score_of(data: &EncodedSplit, i: usize) -> f64 {
    match data.examples[i].label {
        finesse_glue::Label::Score(s) => s as f64,
        finesse_glue::Label::Class(_) => unreachable!("regression split"),
    }
}

/// What [`evaluate_folder`] evaluates on.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    /// The task.
    pub task: finesse_glue::GlueTask,
    /// Folder in GLUE layout.
    pub data_dir: std::path::PathBuf,
    /// Maximum tokens per example.
    pub max_seq_len: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// At most this many examples per split, taken after a seeded shuffle.
    pub max_eval_examples: Option<usize>,
    /// Seed of the subset (and of a fresh head when the model has none).
    pub seed: u64,
}

/// The evaluation of one dev split.
#[derive(Clone, Debug)]
pub struct SplitEval {
    /// Split name.
    pub split: String,
    /// Mean loss.
    pub loss: f64,
    /// Task metrics by name.
    pub metrics: BTreeMap<String, f64>,
}

/// Evaluates a saved model (an HF folder, or the `model/` of a run directory) on a task's dev
/// splits.
pub fn evaluate_folder(model: &Path, req: &EvalRequest, device: &Device) -> Result<Vec<SplitEval>> {
    let task = req.task;
    let tokenizer = BertTokenizer::from_file(&model.join("tokenizer.json"), req.max_seq_len)?;
    check_model_limits(&ModelFolder::open(model)?.config()?, &tokenizer, model)?;
    let (model, _, report) = load_classifier(model, task.num_outputs(), req.seed, device)?;
    if !report.head_from_checkpoint {
        log::warn!(
            "the model has no classifier head for {task}: evaluating a freshly initialised one"
        );
    }
    let plan = BatchPlan {
        batch_size: req.batch_size,
        bucketing: true,
    };
    let mut out = Vec::new();
    for i in 0..task.spec().dev_files.len() {
        let split = load_split(task, &req.data_dir, SplitKind::Dev(i), false)?;
        let data = encode_split(&split, &tokenizer)?;
        let pool = seeded_subset(data.len(), req.max_eval_examples, req.seed);
        let (loss, metrics) = evaluate(&model, &data, &pool, plan, task, device)?;
        out.push(SplitEval {
            split: split.name,
            loss,
            metrics,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let err = guarded::<()>(|| panic!("index 7 out of range")).expect_err("panicked");
        let text = err.to_string();
        assert!(
            text.contains("index 7 out of range") && text.contains("bug"),
            "{text}"
        );
        assert_eq!(guarded(|| Ok(3)).expect("no panic"), 3);
    }
}
