//! FISH (Sung et al., "Training Neural Networks with Fixed Sparse Masks"): the top-k parameters
//! by diagonal Fisher information over N training samples, or a given mask file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use finesse_bert::HostTensor;

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
        let comm = crate::dist::world();
        if picked.len() < comm.size() {
            return Err(TrainError::Config {
                field: "fisher-samples",
                problem: format!(
                    "{} Fisher samples for {} ranks: every rank needs at least one",
                    picked.len(),
                    comm.size()
                ),
            });
        }
        // Each rank estimates the Fisher of its share of the samples; one all-reduce of the
        // sums gives every rank the same estimate, hence the same top-k.
        let mine = &picked[crate::dist::share(picked.len(), comm.rank(), comm.size())];
        let samples: Vec<HostBatch> = mine
            .iter()
            .map(|&i| make_batch(ctx.train_data, &[i]))
            .collect();
        let mut progress_error = None;
        let emitter = &mut *ctx.emitter;
        let (all, size) = (picked.len(), comm.size());
        let scores = estimate(
            ctx.model,
            &samples,
            self.fisher.kind,
            ctx.config.seed,
            &mut |done, total| {
                // A job's ranks go at the same pace: rank r's share stands for the whole.
                let (done, total) = if size == 1 {
                    (done, total)
                } else {
                    ((done * all / total.max(1)).min(all), all)
                };
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
        let scores = sum_over_ranks(comm, scores, samples.len(), all);
        let file = FisherFile {
            scores,
            meta: FisherMeta::new(
                self.fisher.kind,
                all,
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

/// The mean Fisher over all ranks' samples from each rank's mean over its `mine` of `all`.
fn sum_over_ranks(
    comm: &dyn crate::dist::Comm,
    mut scores: BTreeMap<String, HostTensor>,
    mine: usize,
    all: usize,
) -> BTreeMap<String, HostTensor> {
    if comm.size() == 1 {
        return scores;
    }
    let mut buf: Vec<f32> = scores
        .values()
        .flat_map(|t| t.data.iter().map(|v| v * mine as f32))
        .collect();
    comm.sum_f32(&mut buf);
    let mut offset = 0;
    for t in scores.values_mut() {
        let n = t.data.len();
        for (v, s) in t.data.iter_mut().zip(&buf[offset..offset + n]) {
            *v = s / all as f32;
        }
        offset += n;
    }
    scores
}
