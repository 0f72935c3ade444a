//! BitFit: every bias (LayerNorm biases included) and the task head.

use finesse_sparse::Mask;

use super::PrepareCtx;
use super::fixed::MaskSource;
use crate::error::Result;

/// The BitFit mask.
pub struct Bitfit;

impl MaskSource for Bitfit {
    fn compute(&self, ctx: &mut PrepareCtx<'_, '_>) -> Result<Mask> {
        Ok(Mask::bitfit(ctx.registry))
    }
}
