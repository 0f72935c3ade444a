//! The training-method seam: which parameters a run updates, and how.
//!
//! The loop asks the method once, before training, for an [`UpdateRule`] per parameter (keyed by
//! HF name through the registry). Dense fine-tuning updates everything. The sparse methods plug
//! in here without touching the loop: FISH and random masks return `Masked` rules (optimizer
//! state for the kept entries only), L0-close fine-tuning returns `Frozen` for the frozen groups,
//! and pruning/supermasks additionally get the `after_step` hook.

use finesse_bert::ParamInfo;
use serde::{Deserialize, Serialize};

/// How one parameter is trained.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRule {
    /// Every entry is updated.
    All,
    /// Not updated at all; no weight gradient is computed for it.
    Frozen,
}

/// The method of a run, as configured (serialised into `run.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MethodConfig {
    /// Ordinary fine-tuning of every parameter.
    Dense,
}

impl MethodConfig {
    /// Short name for logs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense => "dense",
        }
    }

    /// The update rule of a parameter.
    pub fn rule(&self, _param: &ParamInfo) -> UpdateRule {
        match self {
            Self::Dense => UpdateRule::All,
        }
    }
}
