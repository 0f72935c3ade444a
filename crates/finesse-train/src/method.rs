//! The training-method seam: which parameters a run updates, and how.
//!
//! Before training, the loop turns the method into a [`Mask`] (or none, for dense) and asks it
//! for an [`UpdateRule`] per parameter: `All`, `Masked(kept entries)` (optimizer state for the
//! kept entries only) or `Frozen` (no weight gradient at all). FISH computes its mask from the
//! Fisher information, the random baseline from seeded uniform scores with the same budget,
//! BitFit from the parameter roles. L0-close freezing, pruning and supermasks plug in here too.

use std::path::PathBuf;

use finesse_bert::ParamInfo;
pub use finesse_sparse::UpdateRule;
use finesse_sparse::prune::{CubicSchedule, PruneScope};
use finesse_sparse::{FisherKind, Mask, SampleOrder, Selection};
use serde::{Deserialize, Serialize};

/// How the Fisher information of a FISH run is estimated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FisherSettings {
    /// Training examples used (N).
    pub samples: usize,
    /// Empirical, expected or sampled.
    pub kind: FisherKind,
    /// First N of the file or N after a seeded shuffle.
    pub order: SampleOrder,
}

impl Default for FisherSettings {
    fn default() -> Self {
        Self {
            samples: 1024,
            kind: FisherKind::Empirical,
            order: SampleOrder::Shuffled,
        }
    }
}

/// The method of a run, as configured (serialised into `run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MethodConfig {
    /// Ordinary fine-tuning of every parameter.
    Dense,
    /// FISH: a fixed mask of the top-k parameters by Fisher information.
    Fish {
        /// Budget and scope of the top-k; `None` when the mask comes from `mask_file` (its
        /// budget is whatever that file keeps).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selection: Option<Selection>,
        /// How the Fisher information is estimated.
        fisher: FisherSettings,
        /// Reuse this mask file instead of estimating the Fisher information.
        mask_file: Option<PathBuf>,
    },
    /// A uniformly random mask with the same budget (seeded by the run's seed).
    Random {
        /// Budget and scope of the top-k.
        selection: Selection,
    },
    /// BitFit: every bias (LayerNorm biases included) and the task head.
    Bitfit,
    /// L0-close fine-tuning: everything except the groups named by `--freeze` specs
    /// (see `finesse_sparse::freeze`).
    Freeze {
        /// The specs, as given.
        groups: Vec<String>,
    },
    /// Supermask training of WQ…WO: fixed weights, trained scores v, masks ~ Bernoulli(σ(v)).
    Supermask {
        /// Fraction of the smallest-magnitude weights per matrix whose score starts at −5.
        initial_sparsity: f64,
        /// Peak learning rate of the scores (Adam, no weight decay; the paper uses 0.2).
        score_lr: f64,
        /// Sampled masks evaluated at the end.
        eval_samples: usize,
    },
    /// Iterative magnitude pruning of WQ…WO during dense fine-tuning (cubic schedule).
    Prune {
        /// Initial sparsity s_i.
        initial: f64,
        /// Final sparsity s_f.
        final_sparsity: f64,
        /// First pruning step (default: 10% into the run).
        start_step: Option<usize>,
        /// Steps between pruning events (default: the events spread to 80% of the run).
        interval: Option<usize>,
        /// Number of intervals n.
        events: usize,
        /// Per matrix or global magnitude threshold.
        scope: PruneScope,
    },
}

impl MethodConfig {
    /// Short name for logs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Fish { .. } => "fish",
            Self::Random { .. } => "random",
            Self::Bitfit => "bitfit",
            Self::Freeze { .. } => "freeze",
            Self::Prune { .. } => "prune",
            Self::Supermask { .. } => "supermask",
        }
    }

    /// True for the methods that train a fixed subset (and write a mask and a diff).
    pub fn is_sparse(&self) -> bool {
        matches!(
            self,
            Self::Fish { .. } | Self::Random { .. } | Self::Bitfit | Self::Freeze { .. }
        )
    }
}

/// The update rule of a parameter under `mask` (`None`: dense).
pub fn rule_of(mask: Option<&Mask>, p: &ParamInfo) -> UpdateRule {
    let Some(t) = mask.and_then(|m| m.tensors.get(&p.name)) else {
        return if mask.is_some() {
            UpdateRule::Frozen
        } else {
            UpdateRule::All
        };
    };
    if t.kept.is_empty() {
        UpdateRule::Frozen
    } else if t.is_full() {
        UpdateRule::All
    } else {
        UpdateRule::Masked(t.kept.clone())
    }
}

impl MethodConfig {
    /// The pruning schedule of a `Prune` method over a run of `total_steps`.
    pub fn prune_schedule(&self, total_steps: usize) -> Option<(CubicSchedule, PruneScope)> {
        let Self::Prune {
            initial,
            final_sparsity,
            start_step,
            interval,
            events,
            scope,
        } = self
        else {
            return None;
        };
        let start = start_step.unwrap_or((total_steps / 10).max(1));
        let end = (total_steps * 8 / 10).max(start);
        let interval = interval.unwrap_or(((end - start) / (*events).max(1)).max(1));
        Some((
            CubicSchedule {
                initial: *initial,
                final_sparsity: *final_sparsity,
                start_step: start,
                interval,
                events: *events,
            },
            *scope,
        ))
    }
}
