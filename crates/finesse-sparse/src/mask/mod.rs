//! Sparse masks: which entries of which parameters a run updates.
//!
//! A [`Mask`] holds, for every parameter (HF name, PyTorch layout), the sorted flat indices of
//! its kept entries. Masks come from a top-k over scores ([`select()`]: Fisher scores for FISH,
//! seeded uniform scores for the random baseline) or from a rule (BitFit: every bias).
//!
//! - `select.rs`: the top-k ([`select()`], [`select_excluding`]), [`random_scores`], BitFit and
//!   whole-tensor masks.
//! - `file.rs`: mask files ([`Mask::write`], [`Mask::read`]): a readable form (one u8 0/1 tensor
//!   per parameter, PyTorch shape) and a bit-packed form (one u8 tensor of ⌈numel/8⌉ bytes per
//!   parameter, bits least-significant first, as `numpy.packbits(bitorder="little")`), both
//!   with HF names.
//! - `stats.rs`: [`stats()`]: kept entries per tensor, per layer × matrix and per kind.
//! - `overlap.rs`: [`overlap()`] of two masks' dropped entries and [`magnitude_like`].

mod file;
mod overlap;
mod select;
mod stats;

use std::collections::BTreeMap;

use finesse_bert::ParamRegistry;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseError};

pub use crate::options::Scope;
pub use file::MASK_FORMAT_VERSION;
pub use overlap::{Overlap, OverlapReport, magnitude_like, overlap};
pub use select::{random_scores, select, select_excluding};
pub use stats::{KeptCount, MaskStats, stats};

/// The kept entries of one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskTensor {
    /// Shape in PyTorch layout.
    pub shape: Vec<usize>,
    /// Sorted, distinct flat (row-major, PyTorch layout) indices of the kept entries.
    pub kept: Vec<u32>,
}

impl MaskTensor {
    /// Number of entries.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when every entry is kept.
    pub fn is_full(&self) -> bool {
        self.kept.len() == self.numel()
    }

    /// The mask as 0/1 bytes, row-major.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.numel()];
        for &i in &self.kept {
            out[i as usize] = 1;
        }
        out
    }

    /// The mask packed 8 entries per byte, least-significant bit first.
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.numel().div_ceil(8)];
        for &i in &self.kept {
            out[i as usize / 8] |= 1 << (i % 8);
        }
        out
    }
}

/// How many entries to keep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    /// A fraction of all parameters (e.g. 0.005 for FISH's 0.5%).
    Ratio(f64),
    /// A number of entries.
    Count(usize),
}

/// A top-k selection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// How many entries to keep.
    pub budget: Budget,
    /// Global or per tensor.
    pub scope: Scope,
    /// Count the always-kept classifier inside the budget (the FISH convention, default).
    pub head_in_budget: bool,
    /// Parameter groups set aside (`--exclude`, the `--freeze` spec syntax of
    /// [`crate::freeze`]): they keep nothing and the budget goes to the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// True for the task head, which every mask keeps whole.
pub fn is_head(name: &str) -> bool {
    name.starts_with("classifier.")
}

/// A mask over a model's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Mask {
    /// Every parameter by HF name (parameters with nothing kept have an empty `kept`).
    pub tensors: BTreeMap<String, MaskTensor>,
}

impl Mask {
    /// Kept entries over all parameters.
    pub fn kept(&self) -> usize {
        self.tensors.values().map(|t| t.kept.len()).sum()
    }

    /// All entries.
    pub fn total(&self) -> usize {
        self.tensors.values().map(MaskTensor::numel).sum()
    }

    /// Checks that the mask covers exactly the parameters of `registry` with their shapes;
    /// `source` names the mask in errors (e.g. its file).
    ///
    /// # Errors
    ///
    /// [`SparseError::MissingTensor`] for a parameter only one of them has,
    /// [`SparseError::ShapeMismatch`] for a mask whose shape is not the parameter's.
    pub fn check_against(&self, registry: &ParamRegistry, source: &str) -> Result<()> {
        let mask = || format!("the mask {source}");
        for p in registry.iter() {
            match self.tensors.get(&p.name) {
                None => {
                    return Err(SparseError::MissingTensor {
                        tensor: p.name.clone(),
                        missing_from: mask(),
                        present_in: "the model".into(),
                    });
                }
                Some(t) if t.shape != p.shape => {
                    return Err(SparseError::ShapeMismatch {
                        tensor: p.name.clone(),
                        expected: p.shape.clone(),
                        found: t.shape.clone(),
                        expected_in: "the model",
                        found_in: mask(),
                    });
                }
                _ => {}
            }
        }
        if let Some(extra) = self.tensors.keys().find(|n| registry.by_name(n).is_none()) {
            return Err(SparseError::MissingTensor {
                tensor: extra.clone(),
                missing_from: "the model".into(),
                present_in: mask(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finesse_bert::{BertConfig, BertModel};

    fn registry() -> ParamRegistry {
        let model = BertModel::init(&BertConfig::tiny(50), &burn::tensor::Device::flex());
        ParamRegistry::of(&model)
    }

    #[test]
    fn check_against_names_the_tensor_and_both_shapes() {
        let registry = registry();
        let mut mask = Mask::bitfit(&registry);
        mask.check_against(&registry, "m.safetensors")
            .expect("matches");

        let name = "embeddings.word_embeddings.weight";
        let t = mask.tensors.get_mut(name).expect("tensor");
        t.shape = vec![51, 32];
        let err = mask
            .check_against(&registry, "m.safetensors")
            .expect_err("shape");
        assert!(
            matches!(&err, SparseError::ShapeMismatch { tensor, expected, found, .. }
                if tensor == name && expected == &vec![50, 32] && found == &vec![51, 32]),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "`embeddings.word_embeddings.weight` has shape [51, 32] in the mask m.safetensors \
             but [50, 32] in the model"
        );

        mask.tensors.remove(name);
        let err = mask
            .check_against(&registry, "m.safetensors")
            .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "the mask m.safetensors has no `embeddings.word_embeddings.weight`, which the model has"
        );

        let mut mask = Mask::bitfit(&registry);
        mask.tensors.insert(
            "extra".into(),
            MaskTensor {
                shape: vec![1],
                kept: vec![],
            },
        );
        let err = mask
            .check_against(&registry, "m.safetensors")
            .expect_err("extra");
        assert!(
            matches!(&err, SparseError::MissingTensor { tensor, .. } if tensor == "extra"),
            "{err:?}"
        );
    }
}
