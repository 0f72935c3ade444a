//! Iterative magnitude pruning of WQ…WO during dense fine-tuning ("How fine can fine-tuning
//! be?", on Zhu & Gupta's cubic schedule): after each scheduled optimizer step the smallest
//! weights are set to exactly +0.0, and stay there.

use finesse_sparse::prune::Pruner;

use super::{FinishCtx, Method, MethodConfig, MethodSummary, Model, StartCtx};
use crate::error::Result;
use crate::events::Event;
use crate::trainer::Emitter;

/// Pruning as a method: dense training plus a [`Pruner`].
pub struct Prune {
    config: MethodConfig,
    pruner: Option<Pruner>,
}

impl Prune {
    /// The method of a `MethodConfig::Prune`.
    pub fn new(config: MethodConfig) -> Self {
        Self {
            config,
            pruner: None,
        }
    }
}

impl Method for Prune {
    fn start(&mut self, ctx: &StartCtx<'_>) -> Result<()> {
        if let Some((schedule, scope)) = self.config.prune_schedule(ctx.total_steps) {
            let mut p = Pruner::new(schedule, scope, ctx.registry, ctx.device)?;
            // On resume the pruned set is read back from the checkpoint's zeros.
            p.restore(ctx.model, ctx.start_step);
            self.pruner = Some(p);
        }
        Ok(())
    }

    fn after_step(
        &mut self,
        model: Model,
        step: usize,
        emitter: &mut Emitter<'_>,
    ) -> Result<Model> {
        let Some(p) = self.pruner.as_mut() else {
            return Ok(model);
        };
        let (model, pruned) = p.after_step(model, step);
        if let Some(sparsity) = pruned {
            emitter.emit(Event::Prune { step, sparsity })?;
        }
        Ok(model)
    }

    /// The kept entries as `mask.safetensors` / `mask_stats.json`, and the final sparsity per
    /// matrix for `analysis.json`.
    fn finish(&mut self, ctx: &FinishCtx<'_>) -> Result<MethodSummary> {
        let Some(p) = &self.pruner else {
            return Ok(MethodSummary::default());
        };
        ctx.dir.write_mask(&p.kept_mask(), false, "prune")?;
        Ok(MethodSummary {
            prune_sparsity: Some(p.sparsity()),
            ..MethodSummary::default()
        })
    }
}
