//! Mask statistics: kept entries per tensor, per layer × matrix and per parameter kind.

use std::collections::BTreeMap;

use finesse_bert::ParamKind;
use serde::{Deserialize, Serialize};

use super::Mask;
use crate::grid::{CellParams, GridSums, LayerGrid};

/// Kept entries of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptCount {
    /// Kept entries.
    pub kept: usize,
    /// All entries.
    pub total: usize,
    /// `kept / total`.
    pub fraction: f64,
}

impl KeptCount {
    fn new(kept: usize, total: usize) -> Self {
        Self {
            kept,
            total,
            fraction: if total == 0 {
                0.0
            } else {
                kept as f64 / total as f64
            },
        }
    }
}

/// Mask statistics: per tensor, per layer × matrix (WQ … WO, weight and bias together) and
/// per parameter kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskStats {
    /// The whole model.
    pub overall: KeptCount,
    /// Per parameter, by HF name.
    pub per_tensor: BTreeMap<String, KeptCount>,
    /// Per layer × matrix (weight and bias together) and per group outside the layers.
    #[serde(flatten)]
    pub grid: LayerGrid<KeptCount>,
    /// Per parameter kind (word-embedding, layer-norm, classifier, …).
    pub per_kind: BTreeMap<String, KeptCount>,
}

/// Statistics of a mask; the layer × matrix grid is built from the parameter names.
pub fn stats(mask: &Mask) -> MaskStats {
    let mut per_tensor = BTreeMap::new();
    let mut grid = GridSums::<(usize, usize)>::new(CellParams::WeightAndBias);
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (name, t) in &mask.tensors {
        per_tensor.insert(name.clone(), KeptCount::new(t.kept.len(), t.numel()));
        let kind = ParamKind::of_hf_name(name);
        let kind_name = kind.map_or_else(
            || "other".to_string(),
            |k| {
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{k:?}"))
            },
        );
        let e = kinds.entry(kind_name).or_default();
        e.0 += t.kept.len();
        e.1 += t.numel();
        grid.add(name, |e| {
            e.0 += t.kept.len();
            e.1 += t.numel();
        });
    }
    MaskStats {
        overall: KeptCount::new(mask.kept(), mask.total()),
        per_tensor,
        grid: grid.finish(|&(k, n)| KeptCount::new(k, n)),
        per_kind: kinds
            .into_iter()
            .map(|(k, (kept, total))| (k, KeptCount::new(kept, total)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskTensor;

    #[test]
    fn stats_group_by_layer_and_matrix() {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "bert.encoder.layer.1.attention.self.key.weight".to_string(),
            MaskTensor {
                shape: vec![2, 2],
                kept: vec![0],
            },
        );
        tensors.insert(
            "bert.encoder.layer.1.attention.self.key.bias".to_string(),
            MaskTensor {
                shape: vec![2],
                kept: vec![0, 1],
            },
        );
        let s = stats(&Mask { tensors });
        assert_eq!(s.grid.num_layers(), 2);
        assert_eq!(s.grid.matrices[1], "WK");
        assert_eq!(s.grid.layers[1][1].kept, 3);
        assert_eq!(s.grid.layers[1][1].total, 6);
        assert_eq!(s.grid.layers[0][1].total, 0);
        assert_eq!(s.overall.kept, 3);
    }
}
