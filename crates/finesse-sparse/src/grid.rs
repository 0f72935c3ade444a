//! The layer × matrix grid of the papers' figures: layers 0…L−1 one way, WQ, WK, WV, WD, WI,
//! WO the other, plus the groups outside the layers (`embeddings`, `pooler`, `layer-norms`,
//! `classifier`). One type, [`LayerGrid`], carries mask statistics, mask overlaps and distances,
//! so a printer, a figure or the app handles all of them the same way.
//!
//! In JSON a grid is three keys beside the report's others (it is `#[serde(flatten)]`ed):
//! `layers` (`layers[l][m]`), `matrices` (the column labels) and `groups` (by name).

use std::collections::BTreeMap;

use finesse_bert::ParamKind;
use serde::{Deserialize, Serialize};

/// The six per-layer matrices in the papers' order (WQ, WK, WV, WD, WI, WO).
pub const MATRICES: [ParamKind; 6] = [
    ParamKind::Query,
    ParamKind::Key,
    ParamKind::Value,
    ParamKind::AttentionOutput,
    ParamKind::Intermediate,
    ParamKind::Output,
];

/// The cell (layer, column of [`MATRICES`]) of a parameter, weight or bias.
pub fn grid_cell(name: &str) -> Option<(usize, usize)> {
    let kind = ParamKind::of_hf_name(name)?;
    Some((
        finesse_bert::registry::layer_index(name)?,
        MATRICES.iter().position(|&k| k == kind)?,
    ))
}

/// The grid's column labels: WQ, WK, WV, WD, WI, WO.
pub fn matrix_labels() -> Vec<String> {
    MATRICES
        .iter()
        .filter_map(|k| k.matrix_label().map(str::to_string))
        .collect()
}

/// The group of a parameter outside the layer × matrix cells: `embeddings`, `pooler`,
/// `layer-norms` or `classifier`; `None` for the cells' own parameters and unknown names.
pub fn group_of(name: &str) -> Option<&'static str> {
    match ParamKind::of_hf_name(name)? {
        ParamKind::WordEmbedding | ParamKind::PositionEmbedding | ParamKind::TokenTypeEmbedding => {
            Some("embeddings")
        }
        ParamKind::Pooler => Some("pooler"),
        ParamKind::LayerNorm => Some("layer-norms"),
        ParamKind::Classifier => Some("classifier"),
        _ => None,
    }
}

/// Values per layer × matrix cell and per group outside the layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerGrid<T> {
    /// `layers[l][m]`: layer `l`, matrix `matrices[m]`.
    pub layers: Vec<Vec<T>>,
    /// Column labels of `layers`: WQ, WK, WV, WD, WI, WO.
    pub matrices: Vec<String>,
    /// Groups outside the layers (`embeddings`, `pooler`, `layer-norms`, `classifier`); absent
    /// from files written before version 1 grew it, so it reads as empty there.
    #[serde(default = "BTreeMap::new")]
    pub groups: BTreeMap<String, T>,
}

impl<T> LayerGrid<T> {
    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The value of layer `layer`, matrix column `matrix`.
    pub fn cell(&self, layer: usize, matrix: usize) -> Option<&T> {
        self.layers.get(layer)?.get(matrix)
    }

    /// The same grid with every value mapped (cells and groups).
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> LayerGrid<U> {
        LayerGrid {
            layers: self
                .layers
                .iter()
                .map(|row| row.iter().map(&f).collect())
                .collect(),
            matrices: self.matrices.clone(),
            groups: self.groups.iter().map(|(k, v)| (k.clone(), f(v))).collect(),
        }
    }
}

/// Which parameters of a matrix land in its cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellParams {
    /// Weight and bias together (mask statistics: every kept entry counts).
    WeightAndBias,
    /// The weight only (distances and overlaps: the papers' matrices); biases go nowhere.
    WeightOnly,
}

/// Accumulates per-parameter sums `S` into cells and groups, then turns them into a
/// [`LayerGrid`].
#[derive(Clone, Debug)]
pub struct GridSums<S> {
    params: CellParams,
    cells: BTreeMap<(usize, usize), S>,
    groups: BTreeMap<String, S>,
}

impl<S: Default> GridSums<S> {
    /// An empty accumulator.
    pub fn new(params: CellParams) -> Self {
        Self {
            params,
            cells: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    /// Adds parameter `name` to its cell or group through `add` (nothing for names in neither).
    pub fn add(&mut self, name: &str, add: impl FnOnce(&mut S)) {
        if let Some(cell) = grid_cell(name) {
            if self.params == CellParams::WeightAndBias || name.ends_with(".weight") {
                add(self.cells.entry(cell).or_default());
            }
        } else if let Some(group) = group_of(name) {
            add(self.groups.entry(group.to_string()).or_default());
        }
    }

    /// The grid: every layer up to the deepest seen, empty cells from `S::default()`.
    pub fn finish<T>(mut self, f: impl Fn(&S) -> T) -> LayerGrid<T> {
        let num_layers = self.cells.keys().map(|(l, _)| l + 1).max().unwrap_or(0);
        let layers = (0..num_layers)
            .map(|l| {
                (0..MATRICES.len())
                    .map(|m| f(&self.cells.remove(&(l, m)).unwrap_or_default()))
                    .collect()
            })
            .collect();
        LayerGrid {
            layers,
            matrices: matrix_labels(),
            groups: self.groups.iter().map(|(k, s)| (k.clone(), f(s))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_land_in_their_cell_or_group() {
        assert_eq!(
            grid_cell("bert.encoder.layer.3.attention.output.dense.weight"),
            Some((3, 3))
        );
        assert_eq!(grid_cell("encoder.layer.0.output.dense.bias"), Some((0, 5)));
        assert_eq!(
            grid_cell("bert.encoder.layer.0.output.LayerNorm.weight"),
            None
        );
        assert_eq!(
            group_of("bert.encoder.layer.0.output.LayerNorm.weight"),
            Some("layer-norms")
        );
        assert_eq!(
            group_of("bert.embeddings.word_embeddings.weight"),
            Some("embeddings")
        );
        assert_eq!(group_of("classifier.bias"), Some("classifier"));
        assert_eq!(
            group_of("bert.encoder.layer.0.attention.self.query.weight"),
            None
        );
    }

    #[test]
    fn sums_fill_every_layer_and_skip_biases_when_asked() {
        for (params, wq1) in [(CellParams::WeightAndBias, 5), (CellParams::WeightOnly, 4)] {
            let mut g = GridSums::<usize>::new(params);
            g.add("bert.encoder.layer.1.attention.self.query.weight", |s| {
                *s += 4
            });
            g.add("bert.encoder.layer.1.attention.self.query.bias", |s| {
                *s += 1
            });
            g.add("bert.pooler.dense.weight", |s| *s += 7);
            g.add("unknown.tensor", |s| *s += 100);
            let grid = g.finish(|s| *s);
            assert_eq!(grid.num_layers(), 2);
            assert_eq!(grid.cell(1, 0), Some(&wq1));
            assert_eq!(grid.cell(0, 0), Some(&0));
            assert_eq!(grid.groups["pooler"], 7);
            assert_eq!(grid.matrices, ["WQ", "WK", "WV", "WD", "WI", "WO"]);
            assert_eq!(grid.map(|v| v * 2).cell(1, 0), Some(&(2 * wq1)));
        }
    }

    #[test]
    fn a_grid_without_groups_reads_as_empty_groups() {
        let g: LayerGrid<f64> =
            serde_json::from_str(r#"{"layers": [[1.0]], "matrices": ["WQ"]}"#).expect("json");
        assert!(g.groups.is_empty());
        assert_eq!(g.cell(0, 0), Some(&1.0));
    }
}
