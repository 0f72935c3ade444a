//! Training methods: what a run updates, and the hooks through which each method changes the
//! training loop.
//!
//! [`MethodConfig`] is a method as configured (serialised in `run.json`); [`hooks_for`] — the
//! method table — turns it into a [`Method`], the small hook interface the loop calls:
//!
//! ```text
//! prepare        before training: the mask of trained entries (or none), e.g. FISH's top-k
//! rule           the update rule of each parameter: All, Masked(kept entries) or Frozen
//! start          once the model and optimizer exist (resume: restore the method's state)
//! forward_view   the model the forward pass runs (supermask: a sampled mask applied)
//! after_backward before the weights' gradients are read (supermask: the scores' step)
//! after_step     after the optimizer step (pruning)
//! eval_view      the model as evaluated and saved (supermask: the deterministic mask)
//! state_tensors  extra tensors of a checkpoint (supermask scores and moments)
//! finish         the method's final artefacts (mask files, diff, summaries)
//! ```
//!
//! Every method lives in its own file; the fixed-subset methods (FISH, random, BitFit, freeze)
//! share [`fixed::FixedSubset`], which only asks them for their mask. Adding a method means
//! its file, a [`MethodConfig`] variant and one arm of [`hooks_for`].

mod bitfit;
mod dense;
mod fish;
pub mod fixed;
mod freeze;
mod prune;
mod random;
mod supermask;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, Gradients};
use finesse_bert::{
    BertConfig, BertForSequenceClassification, HostTensor, ParamInfo, ParamRegistry,
};
use finesse_glue::EncodedSplit;
pub use finesse_sparse::UpdateRule;
use finesse_sparse::prune::{CubicSchedule, PruneScope};
use finesse_sparse::{Budget, FisherKind, Mask, SampleOrder, Selection, SparseOptimizer};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::rundir::{RunDir, SparseSummary, SupermaskSummary};
use crate::trainer::{DevSplits, Emitter};

/// The model a run trains.
pub type Model = BertForSequenceClassification;

/// FISH's and the random mask's default budget: 0.5% of the parameters (the FISH paper's).
pub const DEFAULT_KEEP_RATIO: f64 = 0.005;

/// The methods by name: the vocabulary every front-end offers (`--method`, the app's list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum MethodName {
    /// Ordinary fine-tuning of every parameter.
    Dense,
    /// Top-k parameters by Fisher information, fixed (FISH).
    Fish,
    /// A seeded random mask of the same budget as FISH.
    Random,
    /// Biases and the task head only (BitFit).
    Bitfit,
    /// Everything but the `--freeze` groups (L0-close fine-tuning).
    Freeze,
    /// Iterative magnitude pruning of WQ…WO on the cubic schedule.
    Prune,
    /// Supermasks of WQ…WO: fixed weights, trained scores.
    Supermask,
}

impl MethodName {
    /// Every method, in the order front-ends list them.
    pub const ALL: [MethodName; 7] = [
        Self::Dense,
        Self::Fish,
        Self::Random,
        Self::Bitfit,
        Self::Freeze,
        Self::Prune,
        Self::Supermask,
    ];

    /// The name on the command line and in `run.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Fish => "fish",
            Self::Random => "random",
            Self::Bitfit => "bitfit",
            Self::Freeze => "freeze",
            Self::Prune => "prune",
            Self::Supermask => "supermask",
        }
    }

    /// The `finesse finetune` flags that belong to this method (besides the common ones).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Self::Dense | Self::Bitfit => &[],
            Self::Fish => &[
                "keep-ratio",
                "keep-count",
                "scope",
                "head-outside-budget",
                "exclude",
                "fisher-samples",
                "fisher-kind",
                "fisher-draws",
                "fisher-order",
                "mask",
            ],
            Self::Random => &[
                "keep-ratio",
                "keep-count",
                "scope",
                "head-outside-budget",
                "exclude",
            ],
            Self::Freeze => &["freeze"],
            Self::Prune => &[
                "final-sparsity",
                "initial-sparsity",
                "prune-start",
                "prune-every",
                "prune-events",
                "prune-scope",
            ],
            Self::Supermask => &["supermask-init-sparsity", "score-lr", "supermask-samples"],
        }
    }
}

/// What [`Method::prepare`] sees.
pub struct PrepareCtx<'a, 's> {
    /// The run's configuration.
    pub config: &'a RunConfig,
    /// The model as loaded (head initialised), on the autodiff device.
    pub model: &'a Model,
    /// Its parameters.
    pub registry: &'a ParamRegistry,
    /// The encoded training split.
    pub train_data: &'a EncodedSplit,
    /// The run directory.
    pub dir: &'a RunDir,
    /// Resuming: read back what the first process prepared instead of computing it.
    pub resume: bool,
    /// Events and logs.
    pub emitter: &'a mut Emitter<'s>,
}

/// What [`Method::start`] sees.
pub struct StartCtx<'a> {
    /// The run's configuration.
    pub config: &'a RunConfig,
    /// The model (checkpoint loaded on resume, frozen parameters set).
    pub model: &'a Model,
    /// Its parameters.
    pub registry: &'a ParamRegistry,
    /// The backend device, and its autodiff version the model lives on.
    pub device: &'a Device,
    /// The autodiff device.
    pub train_device: &'a Device,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Step training starts from (0, or the checkpoint's).
    pub start_step: usize,
    /// On resume: the checkpoint's optimizer tensors (the method's own state among them).
    pub resumed: Option<&'a BTreeMap<String, HostTensor>>,
}

/// What [`Method::finish`] sees.
pub struct FinishCtx<'a> {
    /// The run's configuration.
    pub config: &'a RunConfig,
    /// The run directory.
    pub dir: &'a RunDir,
    /// The trained model (before [`Method::eval_view`]).
    pub trained: &'a Model,
    /// The model's `config.json`.
    pub bert_config: &'a BertConfig,
    /// The base model's tensors (canonical HF names).
    pub base: &'a BTreeMap<String, HostTensor>,
    /// The final model's tensors (the evaluated view, canonical HF names).
    pub tuned: &'a BTreeMap<String, HostTensor>,
    /// The mask [`Method::prepare`] returned.
    pub mask: Option<&'a Mask>,
    /// Seconds [`Method::prepare`] took.
    pub mask_secs: f64,
    /// The optimizer.
    pub optimizer: &'a SparseOptimizer,
    /// The dev splits.
    pub dev: &'a DevSplits,
    /// The backend device and its autodiff version.
    pub device: &'a Device,
    /// The autodiff device.
    pub train_device: &'a Device,
}

/// What a method adds to `metrics.json` and `analysis.json`.
#[derive(Clone, Debug, Default)]
pub struct MethodSummary {
    /// Fixed-subset methods: mask and diff sizes.
    pub sparse: Option<SparseSummary>,
    /// Supermasks: final mask and sampled evaluations.
    pub supermask: Option<SupermaskSummary>,
    /// Pruning: final sparsity per matrix.
    pub prune_sparsity: Option<BTreeMap<String, f64>>,
}

/// The hooks through which a method shapes a run (see the module doc for when each runs).
/// Every hook has a default that leaves dense training unchanged.
pub trait Method {
    /// Before training: the mask of trained entries, or `None` for all.
    ///
    /// # Errors
    /// A mask that cannot be computed or read back.
    fn prepare(&mut self, _ctx: &mut PrepareCtx<'_, '_>) -> Result<Option<Mask>> {
        Ok(None)
    }

    /// The update rule of parameter `p` under the prepared mask.
    fn rule(&self, mask: Option<&Mask>, p: &ParamInfo) -> UpdateRule {
        rule_of(mask, p)
    }

    /// Once the model and the optimizer exist.
    ///
    /// # Errors
    /// Method state that cannot be set up or restored.
    fn start(&mut self, _ctx: &StartCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// The model the forward pass runs, when it is not the model itself.
    fn forward_view(&self, _model: &Model) -> Option<Model> {
        None
    }

    /// After the backward pass, before the weights' gradients are read; `lr` is the
    /// schedule's learning rate of this step.
    fn after_backward(&mut self, _grads: &mut Gradients, _lr: f64) {}

    /// After optimizer step `step` (1-based); may change the model and emit events.
    ///
    /// # Errors
    /// An event that cannot be logged.
    fn after_step(
        &mut self,
        model: Model,
        _step: usize,
        _emitter: &mut Emitter<'_>,
    ) -> Result<Model> {
        Ok(model)
    }

    /// The model as evaluated and saved.
    fn eval_view(&self, model: &Model) -> Model {
        model.clone()
    }

    /// Extra tensors a checkpoint holds for this method.
    ///
    /// # Errors
    /// State that cannot be read back from the device.
    fn state_tensors(&self) -> Result<Vec<(String, HostTensor)>> {
        Ok(Vec::new())
    }

    /// The method's final artefacts in the run directory, and what it adds to the reports.
    ///
    /// # Errors
    /// A file that cannot be written or an evaluation that fails.
    fn finish(&mut self, _ctx: &FinishCtx<'_>) -> Result<MethodSummary> {
        Ok(MethodSummary::default())
    }
}

/// The method table: the hooks of a configured method.
pub fn hooks_for(config: &MethodConfig) -> Box<dyn Method> {
    match config {
        MethodConfig::Dense => Box::new(dense::Dense),
        MethodConfig::Fish {
            selection,
            fisher,
            mask_file,
        } => Box::new(fixed::FixedSubset::new(fish::Fish {
            selection: selection.clone(),
            fisher: fisher.clone(),
            mask_file: mask_file.clone(),
        })),
        MethodConfig::Random { selection } => Box::new(fixed::FixedSubset::new(random::Random {
            selection: selection.clone(),
        })),
        MethodConfig::Bitfit => Box::new(fixed::FixedSubset::new(bitfit::Bitfit)),
        MethodConfig::Freeze { groups } => Box::new(fixed::FixedSubset::new(freeze::Freeze {
            groups: groups.clone(),
        })),
        MethodConfig::Prune { .. } => Box::new(prune::Prune::new(config.clone())),
        MethodConfig::Supermask {
            initial_sparsity,
            score_lr,
            eval_samples,
        } => Box::new(supermask::SupermaskMethod::new(
            supermask::SupermaskSettings {
                initial_sparsity: *initial_sparsity,
                score_lr: *score_lr,
                eval_samples: *eval_samples,
            },
        )),
    }
}

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
    /// FISH as the paper runs it: a global top `keep_ratio` of all parameters (head inside the
    /// budget) by the empirical Fisher over `samples` shuffled training examples.
    pub fn fish_global(keep_ratio: f64, samples: usize) -> Self {
        Self::Fish {
            selection: Some(Selection {
                budget: Budget::Ratio(keep_ratio),
                scope: finesse_sparse::Scope::Global,
                head_in_budget: true,
                exclude: Vec::new(),
            }),
            fisher: FisherSettings {
                samples,
                kind: FisherKind::Empirical,
                order: SampleOrder::Shuffled,
            },
            mask_file: None,
        }
    }

    /// The method's name.
    pub fn method_name(&self) -> MethodName {
        match self {
            Self::Dense => MethodName::Dense,
            Self::Fish { .. } => MethodName::Fish,
            Self::Random { .. } => MethodName::Random,
            Self::Bitfit => MethodName::Bitfit,
            Self::Freeze { .. } => MethodName::Freeze,
            Self::Prune { .. } => MethodName::Prune,
            Self::Supermask { .. } => MethodName::Supermask,
        }
    }

    /// Short name for logs and tables.
    pub fn name(&self) -> &'static str {
        self.method_name().name()
    }

    /// True for the methods that train a fixed subset (and write a mask and a diff).
    pub fn is_sparse(&self) -> bool {
        matches!(
            self,
            Self::Fish { .. } | Self::Random { .. } | Self::Bitfit | Self::Freeze { .. }
        )
    }
}

/// A top-k budget: a ratio in (0, 1] or a positive count; `--exclude` specs that parse.
fn validate_selection(selection: &Selection) -> Result<()> {
    let bad = |field, problem: String| Err(TrainError::Config { field, problem });
    match selection.budget {
        Budget::Ratio(r) if !(r > 0.0 && r <= 1.0) => {
            return bad("keep-ratio", format!("{r} must be in (0, 1]"));
        }
        Budget::Count(0) => return bad("keep-count", "must be at least 1".into()),
        _ => {}
    }
    match finesse_sparse::freeze::parse_all(&selection.exclude) {
        Ok(_) => Ok(()),
        Err(e) => bad("exclude", e.to_string()),
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
    /// Checks the method's settings before any work starts (a bad `--keep-ratio` fails at
    /// once, not after the Fisher pass); errors name the flag.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the flag and what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, problem: String| Err(TrainError::Config { field, problem });
        match self {
            Self::Fish {
                selection,
                fisher,
                mask_file,
            } => {
                if selection.is_some() == mask_file.is_some() {
                    return bad(
                        "mask",
                        "FISH takes either a budget (--keep-ratio/--keep-count) or a --mask file"
                            .into(),
                    );
                }
                if fisher.samples == 0 {
                    return bad("fisher-samples", "must be at least 1".into());
                }
                if let FisherKind::Sampled { draws: 0 } = fisher.kind {
                    return bad("fisher-draws", "must be at least 1".into());
                }
                selection.as_ref().map_or(Ok(()), validate_selection)
            }
            Self::Random { selection } => validate_selection(selection),
            Self::Freeze { groups } => match finesse_sparse::freeze::parse_all(groups) {
                Ok(_) if groups.is_empty() => bad("freeze", "name at least one group".into()),
                Ok(_) => Ok(()),
                Err(e) => bad("freeze", e.to_string()),
            },
            Self::Supermask {
                initial_sparsity,
                score_lr,
                ..
            } => {
                if !(0.0..1.0).contains(initial_sparsity) {
                    return bad(
                        "supermask-init-sparsity",
                        format!("{initial_sparsity} must be in [0, 1)"),
                    );
                }
                if !(*score_lr > 0.0 && score_lr.is_finite()) {
                    return bad("score-lr", format!("{score_lr} must be positive"));
                }
                Ok(())
            }
            Self::Prune { events, .. } => {
                if *events == 0 {
                    return bad("prune-events", "must be at least 1".into());
                }
                // The schedule's own checks (sparsities, start, interval) on a long run.
                match self.prune_schedule(1_000_000).map(|(s, _)| s.validate()) {
                    Some(Err(e)) => bad("final-sparsity", e.to_string()),
                    _ => Ok(()),
                }
            }
            Self::Dense | Self::Bitfit => Ok(()),
        }
    }

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
