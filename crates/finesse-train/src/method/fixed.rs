//! The fixed-subset methods (FISH, random, BitFit, freeze) share everything but how they
//! choose their mask: it is written to `mask.safetensors` with `mask_stats.json` before
//! training (and read back on resume), the optimizer keeps state for its entries only, and the
//! run ends with a sparse diff against the base model.

use std::time::Instant;

use finesse_sparse::{Mask, SparseDiff};

use super::{FinishCtx, Method, MethodSummary, PrepareCtx};
use crate::error::Result;
use crate::events::Event;
use crate::rundir::SparseSummary;

/// How a fixed-subset method chooses its mask.
pub trait MaskSource {
    /// The mask of a new run.
    ///
    /// # Errors
    /// A mask that cannot be computed (bad budget, unreadable mask file, Fisher failure).
    fn compute(&self, ctx: &mut PrepareCtx<'_, '_>) -> Result<Mask>;
}

/// A [`Method`] training the fixed mask of a [`MaskSource`].
pub struct FixedSubset<S> {
    source: S,
}

impl<S: MaskSource> FixedSubset<S> {
    /// The method of `source`.
    pub fn new(source: S) -> Self {
        Self { source }
    }
}

impl<S: MaskSource> Method for FixedSubset<S> {
    fn prepare(&mut self, ctx: &mut PrepareCtx<'_, '_>) -> Result<Option<Mask>> {
        let started = Instant::now();
        let mask = if ctx.resume {
            Mask::read(&ctx.dir.mask())?
        } else {
            self.source.compute(ctx)?
        };
        mask.check_against(ctx.registry, &ctx.dir.mask().display().to_string())?;
        if !ctx.resume {
            ctx.dir.write_mask(&mask, false, ctx.config.method.name())?;
        }
        ctx.emitter.emit(Event::Mask {
            method: ctx.config.method.name().to_string(),
            kept: mask.kept(),
            total: mask.total(),
            frozen_tensors: mask.tensors.values().filter(|t| t.kept.is_empty()).count(),
            duration_secs: started.elapsed().as_secs_f64(),
        })?;
        Ok(Some(mask))
    }

    /// Writes `diff.safetensors` (the run's change against the base model) and sums up the
    /// sizes.
    fn finish(&mut self, ctx: &FinishCtx<'_>) -> Result<MethodSummary> {
        let Some(mask) = ctx.mask else {
            return Ok(MethodSummary::default());
        };
        let config_json = serde_json::to_string_pretty(
            &ctx.bert_config.to_json(Some(ctx.config.task.num_outputs())),
        )
        .ok();
        let diff = SparseDiff::export(ctx.base, ctx.tuned, config_json)?;
        diff.write(&ctx.dir.diff())?;
        let diff_bytes = std::fs::metadata(ctx.dir.diff())
            .map(|m| m.len())
            .unwrap_or_default();
        Ok(MethodSummary {
            sparse: Some(SparseSummary {
                method: ctx.config.method.name().to_string(),
                kept: mask.kept(),
                total: mask.total(),
                optimizer_index_entries: ctx.optimizer.index_entries(),
                diff_changed_entries: diff.changed_entries(),
                diff_bytes,
                dense_model_bytes: ctx.tuned.values().map(|t| t.numel() as u64 * 4).sum(),
                mask_secs: ctx.mask_secs,
            }),
            ..MethodSummary::default()
        })
    }
}
