//! [`RunConfig`]: everything that defines a fine-tuning run. It is written in full to
//! `run.json`, and `--resume` reads it back.

use std::path::PathBuf;

use finesse_glue::GlueTask;
use serde::{Deserialize, Serialize};

use finesse_sparse::{Algorithm, OptimizerConfig};

use crate::error::{Result, TrainError};
use crate::method::MethodConfig;

/// A fine-tuning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Model folder or cached model name.
    pub model: String,
    /// GLUE task.
    pub task: GlueTask,
    /// Folder in GLUE layout (`<dir>/<TASK>/train.tsv`).
    pub data_dir: PathBuf,
    /// Name of the backend the run uses (recorded; the device itself is passed to the run).
    pub device: String,
    /// Seed of the head initialisation, data order, subsets and dropout.
    pub seed: u64,
    /// Training epochs (ignored when `max_steps` is set).
    pub epochs: f64,
    /// Total optimizer steps, overriding `epochs`.
    pub max_steps: Option<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Fraction of the steps spent warming up linearly from 0 to `lr`.
    pub warmup_ratio: f64,
    /// Clip the global gradient L2 norm to this value; `None` disables clipping.
    pub max_grad_norm: Option<f64>,
    /// Evaluate every this many steps (and always at the end); `None`: once per epoch.
    pub eval_every: Option<usize>,
    /// Log a step event every this many steps.
    pub log_every: usize,
    /// Maximum tokens per example, special tokens included.
    pub max_seq_len: usize,
    /// Train on at most this many examples, taken after a seeded shuffle.
    pub max_train_examples: Option<usize>,
    /// Evaluate on at most this many examples, taken after a seeded shuffle.
    pub max_eval_examples: Option<usize>,
    /// Skip (and report) malformed TSV rows instead of failing.
    pub skip_bad_rows: bool,
    /// Group examples of similar length into batches to cut padding.
    pub bucketing: bool,
    /// Draw the training order from `(seed, epoch)`. Off (`--no-shuffle`): every epoch takes
    /// the training rows in file order, in batches of consecutive rows (and
    /// `max_train_examples` takes the first rows), as a step-for-step comparison with another
    /// trainer needs.
    #[serde(default = "on")]
    pub shuffle: bool,
    /// Dropout as the model's `config.json` sets it. Off (`--no-dropout`): every dropout
    /// probability is 0 in training (the written model keeps its `config.json`).
    #[serde(default = "on")]
    pub dropout: bool,
    /// The run directory.
    pub output_dir: PathBuf,
    /// Write the fine-tuned model as an HF folder `model/` in the run directory.
    pub save_model: bool,
    /// How parameters are updated (dense, FISH, random mask, BitFit).
    pub method: MethodConfig,
    /// The optimizer: AdamW (β1, β2, ε) or SGD (momentum), and the weight decay (decoupled for
    /// AdamW; never on biases and LayerNorm weights). Format version 1 kept these flat
    /// (`optimizer`, `adam_beta1`, …, `weight_decay`); the run-directory reader nests them.
    pub optimizer: OptimizerConfig,
    /// Write a resumable checkpoint every this many steps (besides on cancel and SIGTERM), so a
    /// crash loses at most that many steps.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Keep the model of the best evaluation (main metric of the first dev split) in `best/`.
    #[serde(default)]
    pub save_best: bool,
    /// Data-parallel runs only: ranks take this many steps on their own share of each batch,
    /// then average the trained entries' values (the FISH paper's "long delays"); `None`:
    /// every step all-reduces the gradients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_every: Option<usize>,
}

/// `true`: the default of switches that older `run.json` files lack.
fn on() -> bool {
    true
}

/// The optimizer a user picks (`--optimizer`); its settings are [`OptimizerConfig`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerChoice {
    /// AdamW (torch's), β = (0.9, 0.999), ε = 1e-8 unless set.
    #[default]
    Adamw,
    /// SGD, with momentum when set.
    Sgd,
}

impl OptimizerChoice {
    /// The optimizer with the BERT recipe's settings: AdamW β = (0.9, 0.999), ε = 1e-8, or
    /// SGD with `momentum`; weight decay 0.01.
    pub fn config(self, momentum: f64) -> OptimizerConfig {
        OptimizerConfig {
            algorithm: match self {
                Self::Adamw => Algorithm::Adamw {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                },
                Self::Sgd => Algorithm::Sgd { momentum },
            },
            weight_decay: 0.01,
        }
    }
}

impl RunConfig {
    /// A configuration with the BERT fine-tuning recipe's defaults (3 epochs, batch 32,
    /// lr 2e-5, 10% warm-up, weight decay 0.01, β = (0.9, 0.999), ε = 1e-8, clip 1.0, length 128).
    pub fn new(
        model: impl Into<String>,
        task: GlueTask,
        data_dir: impl Into<PathBuf>,
        output_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            model: model.into(),
            task,
            data_dir: data_dir.into(),
            device: "flex".into(),
            seed: 42,
            epochs: 3.0,
            max_steps: None,
            batch_size: 32,
            lr: 2e-5,
            warmup_ratio: 0.1,
            max_grad_norm: Some(1.0),
            eval_every: None,
            log_every: 10,
            max_seq_len: 128,
            max_train_examples: None,
            max_eval_examples: None,
            skip_bad_rows: false,
            bucketing: true,
            shuffle: true,
            dropout: true,
            output_dir: output_dir.into(),
            save_model: false,
            method: MethodConfig::Dense,
            optimizer: OptimizerChoice::Adamw.config(0.0),
            checkpoint_every: None,
            save_best: false,
            sync_every: None,
        }
    }

    /// Checks the settings that the loop relies on.
    ///
    /// # Errors
    /// [`TrainError::Config`] naming the first bad setting's flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, problem: String| Err(TrainError::Config { field, problem });
        if self.batch_size == 0 {
            return bad("batch-size", "must be at least 1".into());
        }
        if self.max_steps == Some(0)
            || (self.max_steps.is_none() && !(self.epochs > 0.0 && self.epochs.is_finite()))
        {
            return bad(
                "epochs",
                format!(
                    "need a positive --epochs or --max-steps (epochs {})",
                    self.epochs
                ),
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("{} must be positive", self.lr));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup-ratio",
                format!("{} must be in [0, 1]", self.warmup_ratio),
            );
        }
        validate_optimizer(&self.optimizer)?;
        if let Some(n) = self.max_grad_norm
            && !(n > 0.0 && n.is_finite())
        {
            return bad("max-grad-norm", format!("{n} must be positive"));
        }
        if self.max_seq_len < 3 {
            return bad(
                "max-seq-len",
                format!("{} leaves no room for [CLS] and [SEP]", self.max_seq_len),
            );
        }
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint-every", "must be at least 1".into());
        }
        if self.sync_every == Some(0) {
            return bad("sync-every", "must be at least 1".into());
        }
        if self.eval_every == Some(0) || self.log_every == 0 {
            return bad("eval-every", "intervals must be at least 1".into());
        }
        if self.max_train_examples == Some(0) || self.max_eval_examples == Some(0) {
            return bad(
                "max-train-examples",
                "subsets must hold at least one example".into(),
            );
        }
        self.method.validate()
    }
}

/// Weight decay ≥ 0; AdamW β in [0, 1) and ε > 0; SGD momentum in [0, 1).
fn validate_optimizer(o: &OptimizerConfig) -> Result<()> {
    let bad = |field, problem: String| Err(TrainError::Config { field, problem });
    if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
        return bad("weight-decay", format!("{} must be ≥ 0", o.weight_decay));
    }
    match o.algorithm {
        Algorithm::Adamw { beta1, beta2, eps } => {
            for (field, b) in [("adam-beta1", beta1), ("adam-beta2", beta2)] {
                if !(0.0..1.0).contains(&b) {
                    return bad(field, format!("{b} must be in [0, 1)"));
                }
            }
            if !(eps > 0.0 && eps.is_finite()) {
                return bad("adam-eps", format!("{eps} must be positive"));
            }
        }
        Algorithm::Sgd { momentum } => {
            if !(0.0..1.0).contains(&momentum) {
                return bad("momentum", format!("{momentum} must be in [0, 1)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_flag() {
        let c = RunConfig::new("m", GlueTask::Sst2, "d", "o");
        c.validate().expect("defaults valid");
        let mut b = c.clone();
        b.lr = -1.0;
        assert!(b.validate().expect_err("lr").to_string().contains("`lr`"));
        let mut b = c.clone();
        b.batch_size = 0;
        assert!(
            b.validate()
                .expect_err("bs")
                .to_string()
                .contains("batch-size")
        );
        let mut b = c;
        b.warmup_ratio = 1.5;
        assert!(
            b.validate()
                .expect_err("warmup")
                .to_string()
                .contains("warmup-ratio")
        );
    }

    #[test]
    fn every_method_setting_is_checked_before_any_work_naming_its_flag() {
        use finesse_sparse::mask::{Budget, Scope, Selection};
        let mut c = RunConfig::new("m", GlueTask::Sst2, "d", "o");
        let selection = |budget| Selection {
            budget,
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        };
        let cases = [
            (
                MethodConfig::Random {
                    selection: selection(Budget::Ratio(1.5)),
                },
                "keep-ratio",
            ),
            (
                MethodConfig::Fish {
                    selection: Some(selection(Budget::Count(0))),
                    fisher: crate::method::FisherSettings::default(),
                    mask_file: None,
                },
                "keep-count",
            ),
            (
                MethodConfig::Prune {
                    initial: 0.0,
                    final_sparsity: 1.5,
                    start_step: None,
                    interval: None,
                    events: 10,
                    scope: finesse_sparse::prune::PruneScope::PerMatrix,
                },
                "final-sparsity",
            ),
            (
                MethodConfig::Supermask {
                    initial_sparsity: 0.05,
                    score_lr: -1.0,
                    eval_samples: 10,
                },
                "score-lr",
            ),
            (MethodConfig::Freeze { groups: vec![] }, "freeze"),
        ];
        for (method, flag) in cases {
            c.method = method;
            let err = c.validate().expect_err(flag).to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = RunConfig::new("m", GlueTask::Stsb, "d", "o");
        let back: RunConfig =
            serde_json::from_str(&serde_json::to_string(&c).expect("ser")).expect("de");
        assert_eq!(back, c);
    }

    #[test]
    fn fish_takes_a_budget_or_a_mask_file_and_records_which() {
        use crate::method::FisherSettings;
        use finesse_sparse::mask::{Budget, Scope, Selection};
        let mut c = RunConfig::new("m", GlueTask::Sst2, "d", "o");
        let fish = |selection: Option<Selection>, mask_file: Option<PathBuf>| MethodConfig::Fish {
            selection,
            fisher: FisherSettings::default(),
            mask_file,
        };
        let budget = Selection {
            budget: Budget::Ratio(0.01),
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        };
        for (selection, file, ok) in [
            (Some(budget.clone()), None, true),
            (None, Some(PathBuf::from("m.safetensors")), true),
            (
                Some(budget.clone()),
                Some(PathBuf::from("m.safetensors")),
                false,
            ),
            (None, None, false),
        ] {
            c.method = fish(selection, file);
            match c.validate() {
                Ok(()) => assert!(ok, "{:?} must be refused", c.method),
                Err(e) => assert!(!ok && e.to_string().contains("mask"), "{e}"),
            }
        }
        // A bad --exclude spec is refused before any work, naming the spec.
        c.method = MethodConfig::Random {
            selection: Selection {
                exclude: vec!["pooler".into(), "wz@1".into()],
                ..budget.clone()
            },
        };
        let err = c.validate().expect_err("bad spec").to_string();
        assert!(err.contains("exclude") && err.contains("wz@1"), "{err}");
        // A mask-file run records no budget of its own, and reads back the same.
        c.method = fish(None, Some(PathBuf::from("m.safetensors")));
        let json = serde_json::to_string(&c).expect("ser");
        assert!(!json.contains("selection"), "{json}");
        let back: RunConfig = serde_json::from_str(&json).expect("de");
        assert_eq!(back, c);
    }
}
