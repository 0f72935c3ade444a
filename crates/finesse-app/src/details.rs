//! One layer × matrix cell in detail (a click on a heatmap cell): for each of its tensors, the
//! entries kept per output row and per input column (from the run's `mask.safetensors`, else
//! the entries its `diff.safetensors` changed) and a histogram of the changes
//! (fine-tuned − base, from the diff). Read from the run directory when the cell is clicked.

use std::path::Path;

use finesse_sparse::Mask;
use finesse_sparse::diff::SparseDiff;

/// One tensor of the cell.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDetails {
    /// HF name.
    pub name: String,
    /// Shape in PyTorch layout (`[out, in]` for a Linear weight, `[n]` for a bias).
    pub shape: Vec<usize>,
    /// What `per_row` and `per_col` count: kept by the mask, or changed in the diff.
    pub counted: &'static str,
    /// Counted entries per row (output unit), length `shape[0]`.
    pub per_row: Vec<u32>,
    /// Counted entries per column (input feature), length `shape[1]` (empty for 1-D).
    pub per_col: Vec<u32>,
    /// Fine-tuned − base of every entry the diff changed (empty without a diff).
    pub changes: Vec<f32>,
}

impl TensorDetails {
    /// Entries counted in all.
    pub fn counted_total(&self) -> u64 {
        self.per_row.iter().map(|&n| u64::from(n)).sum()
    }

    /// Rows (and, for matrices, columns) with at least one counted entry.
    pub fn rows_and_cols_touched(&self) -> (usize, usize) {
        let touched = |v: &[u32]| v.iter().filter(|&&n| n > 0).count();
        (touched(&self.per_row), touched(&self.per_col))
    }
}

/// A clicked cell's tensors in detail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellDetails {
    /// `layer 3 · WV`.
    pub title: String,
    /// Each tensor of the cell that the mask or the diff covers.
    pub tensors: Vec<TensorDetails>,
    /// What could not be read, or why a tensor is missing.
    pub notes: Vec<String>,
}

/// Counts `indices` (flat, row-major in `shape`) per row and per column.
fn per_row_col(shape: &[usize], indices: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let (rows, cols) = match shape {
        [rows, cols] => (*rows, *cols),
        [n] => (*n, 1),
        _ => (1, shape.iter().product()),
    };
    let mut per_row = vec![0u32; rows];
    let mut per_col = vec![0u32; if shape.len() == 2 { cols } else { 0 }];
    for &i in indices {
        let i = i as usize;
        if let Some(r) = per_row.get_mut(i / cols.max(1)) {
            *r += 1;
        }
        if let Some(c) = per_col.get_mut(i % cols.max(1)) {
            *c += 1;
        }
    }
    (per_row, per_col)
}

impl CellDetails {
    /// Reads the cell `title`'s tensors `names` from the run directory `run`.
    pub fn read(run: &Path, title: String, names: &[String]) -> Self {
        let mut notes = Vec::new();
        let mask = match run.join("mask.safetensors") {
            p if p.is_file() => Mask::read(&p)
                .map_err(|e| notes.push(format!("mask.safetensors: {e}")))
                .ok(),
            _ => None,
        };
        let diff = match run.join("diff.safetensors") {
            p if p.is_file() => SparseDiff::read(&p)
                .map_err(|e| notes.push(format!("diff.safetensors: {e}")))
                .ok(),
            _ => {
                notes.push(
                    "no diff.safetensors (dense and pruned runs save the whole model): no \
                     histogram of the changes"
                        .into(),
                );
                None
            }
        };
        let mut tensors = Vec::new();
        for name in names {
            let masked = mask.as_ref().and_then(|m| m.tensors.get(name));
            let change = diff.as_ref().and_then(|d| d.changes.get(name));
            let (shape, counted, indices) = match (masked, change) {
                (Some(m), _) => (m.shape.clone(), "kept by the mask", m.kept.as_slice()),
                (None, Some(c)) => (c.shape.clone(), "changed in the diff", c.indices.as_slice()),
                (None, None) => {
                    notes.push(format!(
                        "{name}: neither in the mask nor changed in the diff"
                    ));
                    continue;
                }
            };
            let (per_row, per_col) = per_row_col(&shape, indices);
            let changes = change.map_or_else(Vec::new, |c| {
                c.values
                    .iter()
                    .zip(&c.base_values)
                    .map(|(v, b)| v - b)
                    .collect()
            });
            tensors.push(TensorDetails {
                name: name.clone(),
                shape,
                counted,
                per_row,
                per_col,
                changes,
            });
        }
        // Weights before biases.
        tensors.sort_by_key(|t| (t.shape.len() != 2, t.name.clone()));
        Self {
            title,
            tensors,
            notes,
        }
    }
}

/// `bins` equal-width bins over `values`' range: (bin centre, width, count). Empty for no
/// finite value; one bin when all values are equal.
pub fn histogram(values: &[f32], bins: usize) -> Vec<(f64, f64, usize)> {
    let finite: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .collect();
    let (Some(min), Some(max)) = (
        finite.iter().copied().reduce(f64::min),
        finite.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    if max <= min || bins == 0 {
        return vec![(min, 1e-12_f64.max(min.abs() * 1e-3), finite.len())];
    }
    let width = (max - min) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in finite {
        let i = (((v - min) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| (min + (i as f64 + 0.5) * width, width, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_counted_per_row_and_column() {
        // A 3 × 4 matrix: entries (0,1), (0,3), (2,1).
        let (rows, cols) = per_row_col(&[3, 4], &[1, 3, 9]);
        assert_eq!(rows, vec![2, 0, 1]);
        assert_eq!(cols, vec![0, 2, 0, 1]);
        let (rows, cols) = per_row_col(&[5], &[0, 4]);
        assert_eq!((rows, cols), (vec![1, 0, 0, 0, 1], vec![]));
    }

    #[test]
    fn a_histogram_covers_every_value_once() {
        let values = [-1.0f32, -0.5, 0.0, 0.25, 1.0, f32::NAN];
        let h = histogram(&values, 4);
        assert_eq!(h.len(), 4);
        assert_eq!(h.iter().map(|b| b.2).sum::<usize>(), 5);
        // Bins of 0.5 from -1: [-1, -0.5) [-0.5, 0) [0, 0.5) [0.5, 1], the last one closed.
        let counts: Vec<usize> = h.iter().map(|b| b.2).collect();
        assert_eq!(counts, vec![1, 1, 2, 1]);
        assert!((h[0].0 + 0.75).abs() < 1e-12 && (h[0].1 - 0.5).abs() < 1e-12);
        assert!(histogram(&[], 4).is_empty());
        assert_eq!(histogram(&[2.0, 2.0], 4).len(), 1);
    }
}
