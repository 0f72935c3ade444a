//! FISH (Sung et al., "Training Neural Networks with Fixed Sparse Masks"): the top-k parameters
//! by diagonal Fisher information over N training samples, or a given mask file.

use std::path::PathBuf;

use finesse_glue::{HostBatch, make_batch};
use finesse_sparse::fisher::{estimate, pick_samples};
use finesse_sparse::mask::select;
use finesse_sparse::{FisherFile, FisherMeta, Mask, Selection};

use super::fixed::MaskSource;
use super::{FisherSettings, PrepareCtx};
use crate::error::{Result, TrainError};
use crate::events::Event;

/// FISH's mask source.
pub struct Fish {
    /// Budget and scope (`None` with a mask file).
    pub selection: Option<Selection>,
    /// How the Fisher information is estimated.
    pub fisher: FisherSettings,
    /// A mask file to reuse instead.
    pub mask_file: Option<PathBuf>,
}

impl MaskSource for Fish {
    fn compute(&self, ctx: &mut PrepareCtx<'_, '_>) -> Result<Mask> {
        if let Some(file) = &self.mask_file {
            return Ok(Mask::read(file)?);
        }
        let picked = pick_samples(
            ctx.train_data.len(),
            self.fisher.samples,
            self.fisher.order,
            ctx.config.seed,
        );
        let samples: Vec<HostBatch> = picked
            .iter()
            .map(|&i| make_batch(ctx.train_data, &[i]))
            .collect();
        let mut progress_error = None;
        let emitter = &mut *ctx.emitter;
        let scores = estimate(
            ctx.model,
            &samples,
            self.fisher.kind,
            ctx.config.seed,
            &mut |done, total| {
                if (done % 64 == 0 || done == total)
                    && progress_error.is_none()
                    && let Err(e) = emitter.emit(Event::Fisher { done, total })
                {
                    progress_error = Some(e);
                }
            },
        )?;
        if let Some(e) = progress_error {
            return Err(e);
        }
        let file = FisherFile {
            scores,
            meta: FisherMeta::new(
                self.fisher.kind,
                samples.len(),
                &ctx.config.task.to_string(),
                self.fisher.order,
                ctx.config.seed,
            ),
        };
        file.write(&ctx.dir.fisher())?;
        let selection = self.selection.as_ref().ok_or(TrainError::Config {
            field: "keep-ratio",
            problem: "FISH needs a budget (--keep-ratio or --keep-count) or --mask".into(),
        })?;
        Ok(select(&file.scores, selection)?)
    }
}
