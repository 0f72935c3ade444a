//! L0-close fine-tuning: everything but the parameter groups named by `--freeze` specs.

use finesse_sparse::Mask;

use super::PrepareCtx;
use super::fixed::MaskSource;
use crate::error::Result;

/// Whole tensors trained or frozen by `--freeze` specs.
pub struct Freeze {
    /// The specs, as given.
    pub groups: Vec<String>,
}

impl MaskSource for Freeze {
    fn compute(&self, ctx: &mut PrepareCtx<'_, '_>) -> Result<Mask> {
        let specs = finesse_sparse::freeze::parse_all(&self.groups)?;
        let layers = ctx
            .registry
            .iter()
            .filter_map(|p| p.layer)
            .max()
            .map_or(0, |l| l + 1);
        Ok(Mask::whole_tensors(ctx.registry, |p| {
            !specs.iter().any(|s| s.matches(p, layers))
        }))
    }
}
