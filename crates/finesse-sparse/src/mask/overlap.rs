//! How two masks' dropped entries overlap (the paper's Figure 7), and the mask magnitude
//! pruning would give at another mask's per-tensor sparsity (Table 4's overlap row).

use std::collections::BTreeMap;

use finesse_bert::HostTensor;
use serde::{Deserialize, Serialize};

use super::{Mask, MaskTensor};
use crate::error::{Result, SparseError};
use crate::grid::{CellParams, GridSums, LayerGrid};

/// How two masks' dropped (not kept) entries overlap, per layer × matrix and overall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    /// Entries dropped by both.
    pub both: usize,
    /// Entries dropped by the first.
    pub first: usize,
    /// Entries dropped by the second.
    pub second: usize,
    /// `both / first`: the share of the first mask's dropped entries the second also drops.
    pub of_first: f64,
    /// `both / |union|` (Jaccard index of the dropped sets).
    pub jaccard: f64,
}

impl Overlap {
    fn new(both: usize, first: usize, second: usize) -> Self {
        let union = first + second - both;
        Self {
            both,
            first,
            second,
            of_first: if first == 0 {
                0.0
            } else {
                both as f64 / first as f64
            },
            jaccard: if union == 0 {
                0.0
            } else {
                both as f64 / union as f64
            },
        }
    }
}

/// Overlap report: overall, per tensor and per layer × matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapReport {
    /// Over all shared tensors.
    pub overall: Overlap,
    /// Per tensor by HF name.
    pub per_tensor: BTreeMap<String, Overlap>,
    /// Per layer × matrix (weights only) and per group outside the layers.
    #[serde(flatten)]
    pub grid: LayerGrid<Overlap>,
}

/// Overlap of the dropped entries of `a` and `b` over the tensors both masks have (same shapes).
///
/// # Errors
///
/// [`SparseError::ShapeMismatch`] for a tensor the masks give different shapes.
pub fn overlap(a: &Mask, b: &Mask) -> Result<OverlapReport> {
    let mut per_tensor = BTreeMap::new();
    let mut grid = GridSums::<(usize, usize, usize)>::new(CellParams::WeightOnly);
    let (mut both_all, mut first_all, mut second_all) = (0, 0, 0);
    for (name, ta) in &a.tensors {
        let Some(tb) = b.tensors.get(name) else {
            continue;
        };
        if ta.shape != tb.shape {
            return Err(SparseError::ShapeMismatch {
                tensor: name.clone(),
                expected: ta.shape.clone(),
                found: tb.shape.clone(),
                expected_in: "the first mask",
                found_in: "the second mask".into(),
            });
        }
        let n = ta.numel();
        let kept_a = ta.to_bytes();
        let kept_b = tb.to_bytes();
        let both = kept_a
            .iter()
            .zip(&kept_b)
            .filter(|(x, y)| **x == 0 && **y == 0)
            .count();
        let (first, second) = (n - ta.kept.len(), n - tb.kept.len());
        per_tensor.insert(name.clone(), Overlap::new(both, first, second));
        both_all += both;
        first_all += first;
        second_all += second;
        grid.add(name, |e| {
            e.0 += both;
            e.1 += first;
            e.2 += second;
        });
    }
    Ok(OverlapReport {
        overall: Overlap::new(both_all, first_all, second_all),
        per_tensor,
        grid: grid.finish(|&(b, f, s)| Overlap::new(b, f, s)),
    })
}

/// The mask magnitude pruning would give `weights` with, in each tensor of `like` that
/// `weights` also has, as many
/// entries dropped as `like` drops there (smallest |w| first, ties by lower index). Comparing it
/// with `like` through [`overlap`] gives the paper's Table 4 overlap row.
///
/// # Errors
///
/// [`SparseError::ShapeMismatch`] for a tensor whose weights are not the mask's shape.
pub fn magnitude_like(like: &Mask, weights: &BTreeMap<String, HostTensor>) -> Result<Mask> {
    let mut tensors = BTreeMap::new();
    for (name, t) in &like.tensors {
        // Tensors the model lacks (a task head against a base model) are left out.
        let Some(w) = weights.get(name) else {
            continue;
        };
        if w.shape != t.shape {
            return Err(SparseError::ShapeMismatch {
                tensor: name.clone(),
                expected: t.shape.clone(),
                found: w.shape.clone(),
                expected_in: "the mask",
                found_in: "the weights".into(),
            });
        }
        let drop = t.numel() - t.kept.len();
        let mut order: Vec<u32> = (0..t.numel() as u32).collect();
        order.sort_by(|&a, &b| {
            w.data[a as usize]
                .abs()
                .total_cmp(&w.data[b as usize].abs())
                .then(a.cmp(&b))
        });
        let mut kept: Vec<u32> = order.into_iter().skip(drop).collect();
        kept.sort_unstable();
        tensors.insert(
            name.clone(),
            MaskTensor {
                shape: t.shape.clone(),
                kept,
            },
        );
    }
    Ok(Mask { tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kept: &[u32]) -> Mask {
        Mask {
            tensors: BTreeMap::from([(
                "bert.encoder.layer.0.attention.self.query.weight".to_string(),
                MaskTensor {
                    shape: vec![2, 2],
                    kept: kept.to_vec(),
                },
            )]),
        }
    }

    #[test]
    fn overlap_counts_shared_dropped_entries() {
        // Dropped: a {1, 2, 3}, b {2, 3} → both 2, union 3.
        let r = overlap(&m(&[0]), &m(&[0, 1])).expect("overlap");
        assert_eq!(
            (r.overall.both, r.overall.first, r.overall.second),
            (2, 3, 2)
        );
        assert!((r.overall.of_first - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.overall.jaccard - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.grid.layers[0][0], r.overall);
    }

    #[test]
    fn magnitude_like_drops_the_smallest_weights() {
        let w = BTreeMap::from([(
            "bert.encoder.layer.0.attention.self.query.weight".to_string(),
            HostTensor::new(vec![2, 2], vec![0.5, -0.1, 0.3, 0.05]),
        )]);
        // The mask drops two entries → magnitude drops |0.05| (3) and |-0.1| (1).
        let mag = magnitude_like(&m(&[0, 2]), &w).expect("magnitude");
        assert_eq!(
            mag.tensors["bert.encoder.layer.0.attention.self.query.weight"].kept,
            vec![0, 2]
        );
        assert_eq!(
            overlap(&m(&[0, 2]), &mag)
                .expect("overlap")
                .overall
                .of_first,
            1.0
        );
    }
}
