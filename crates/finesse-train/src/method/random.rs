//! The random-mask baseline: the top-k of seeded uniform scores, the same budget as FISH.

use finesse_sparse::mask::{random_scores, select};
use finesse_sparse::{Mask, Selection};

use super::PrepareCtx;
use super::fixed::MaskSource;
use crate::error::Result;

/// A uniformly random mask (seeded by the run's seed).
pub struct Random {
    /// Budget and scope.
    pub selection: Selection,
}

impl MaskSource for Random {
    fn compute(&self, ctx: &mut PrepareCtx<'_, '_>) -> Result<Mask> {
        Ok(select(
            &random_scores(ctx.registry, ctx.config.seed),
            &self.selection,
        )?)
    }
}
