//! The end of a run: the final evaluation, the saved model, the method's artefacts,
//! `analysis.json`, `metrics.json` and the `end` event; and the `best/` model kept during it.

use std::collections::BTreeMap;
use std::time::Instant;

use finesse_bert::checkpoint::WEIGHTS_FILE;
use finesse_bert::{HostTensor, save_hf_folder, try_model_tensors};
use finesse_sparse::files::{canonical_name, read_model_tensors};

use super::Emitter;
use super::eval::SplitMetrics;
use super::fit::Trainer;
use crate::error::{Result, TrainError};
use crate::events::{Event, peak_rss_mib};
use crate::method::{FinishCtx, MethodSummary, Model};
use crate::rundir::{Analysis, MetricsFile, RUN_FORMAT_VERSION, write_json};

/// Finishes a run whose steps are all done; returns its `metrics.json`.
///
/// # Errors
/// An evaluation, a file or an event that fails.
pub(super) fn finish(
    t: &mut Trainer<'_>,
    started: Instant,
    emitter: &mut Emitter<'_>,
) -> Result<MetricsFile> {
    let total = t.plan.total_steps;
    // A supermask run ends with its deterministic mask applied to the weights.
    let model = t.method.eval_view(t.model());
    let final_metrics = match t.last_eval.take() {
        Some((step, metrics)) if step == total => metrics,
        _ => t
            .data
            .dev
            .evaluate(&model, &t.device, total, &mut t.best, emitter)?,
    };
    // In a data-parallel job only rank 0's run directory is kept: the others skip the model.
    if t.config.save_model && t.comm.rank() == 0 {
        save_hf_folder(
            &model,
            &t.bert_config,
            Some(t.config.task.num_outputs()),
            Some(&t.data.model_dir),
            &t.dir.model(),
        )?;
    }
    let base = read_model_tensors(&t.data.model_dir.join(WEIGHTS_FILE))?;
    let tuned: BTreeMap<String, HostTensor> = try_model_tensors(&model)?
        .into_iter()
        .map(|(n, t)| (canonical_name(&n), t))
        .collect();
    let trained = t
        .model
        .as_ref()
        .expect("the model is only taken out within an optimizer step");
    let summary = t.method.finish(&FinishCtx {
        config: t.config,
        dir: t.dir,
        trained,
        bert_config: &t.bert_config,
        base: &base,
        tuned: &tuned,
        mask: t.mask.as_ref(),
        mask_secs: t.mask_secs,
        optimizer: &t.optimizer,
        dev: &t.data.dev,
        device: &t.device,
        train_device: &t.train_device,
    })?;
    write_json(
        &t.dir.analysis(),
        &Analysis {
            distance: finesse_sparse::distance::distances(&base, &tuned)?,
            prune_sparsity: summary.prune_sparsity.clone(),
        },
    )?;
    // A finished run's checkpoint is stale: its files go (never anything else).
    t.dir.remove_checkpoint();
    let metrics = metrics_file(t, final_metrics, summary, started);
    write_json(&t.dir.metrics(), &metrics)?;
    emitter.emit(Event::End {
        steps: total,
        duration_secs: metrics.duration_secs,
        examples_per_sec: metrics.train_examples_per_sec,
        tokens_per_sec: metrics.train_tokens_per_sec,
        peak_rss_mib: metrics.peak_rss_mib,
    })?;
    Ok(metrics)
}

/// `metrics.json` of a finished run: the first dev split's final metrics flat, every split's,
/// the best values, throughput and memory, and what the method adds.
fn metrics_file(
    t: &Trainer<'_>,
    final_metrics: SplitMetrics,
    summary: MethodSummary,
    started: Instant,
) -> MetricsFile {
    let first = t.data.dev.sets.first().map(|e| e.name.clone());
    let (examples_per_sec, tokens_per_sec) = t.meter.run_rates();
    MetricsFile {
        format_version: RUN_FORMAT_VERSION,
        final_metrics: first
            .and_then(|f| final_metrics.get(&f).cloned())
            .unwrap_or_default(),
        splits: final_metrics,
        best: t.best.clone(),
        steps: t.plan.total_steps,
        duration_secs: started.elapsed().as_secs_f64(),
        train_examples_per_sec: examples_per_sec,
        train_tokens_per_sec: tokens_per_sec,
        peak_rss_mib: peak_rss_mib(),
        optimizer_state_entries: t.optimizer.state_entries(),
        sparse: summary.sparse,
        supermask: summary.supermask,
    }
}

/// Writes `model` to `best/` through a staged folder, so `best/` is always a whole model.
///
/// # Errors
/// A folder that cannot be written or renamed.
pub(super) fn save_best(t: &Trainer<'_>, model: &Model) -> Result<()> {
    let target = t.dir.best_model();
    let staged = t.dir.root.join(".best-staged");
    let old = t.dir.root.join(".best-old");
    for leftover in [&staged, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .map_err(|e| TrainError::io("removing", leftover.as_path(), e))?;
        }
    }
    save_hf_folder(
        model,
        &t.bert_config,
        Some(t.config.task.num_outputs()),
        Some(&t.data.model_dir),
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
