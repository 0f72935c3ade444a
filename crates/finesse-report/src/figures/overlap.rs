//! `overlap`: how runs' masks share their pruned (dropped) entries (the paper's Figure 7).

use finesse_sparse::Mask;
use finesse_sparse::grid::{MATRICES, grid_cell};
use finesse_sparse::mask::overlap as mask_overlap;

use crate::error::{ReportError, Result};
use crate::plots::MatrixFigure;
use crate::runs::Run;

/// Over which entries the overlap is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlapScope {
    /// Every tensor both masks have.
    #[default]
    Overall,
    /// The weight of one layer × matrix cell (layer from 0, column of WQ…WO).
    Cell(usize, usize),
}

impl OverlapScope {
    fn holds(self, name: &str) -> bool {
        match self {
            Self::Overall => true,
            Self::Cell(l, m) => name.ends_with(".weight") && grid_cell(name) == Some((l, m)),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Overall => "all entries the masks share".into(),
            Self::Cell(l, m) => format!(
                "layer {} {}",
                l + 1,
                finesse_sparse::grid::matrix_labels()
                    .get(m)
                    .cloned()
                    .unwrap_or_default()
            ),
        }
    }
}

/// The share of `mask`'s entries in `scope` it drops, over the tensors `other` also has.
fn dropped_fraction(mask: &Mask, other: &Mask, scope: OverlapScope) -> f64 {
    let (mut dropped, mut all) = (0usize, 0usize);
    for (name, t) in &mask.tensors {
        if other.tensors.contains_key(name) && scope.holds(name) {
            dropped += t.numel() - t.kept.len();
            all += t.numel();
        }
    }
    if all == 0 {
        0.0
    } else {
        dropped as f64 / all as f64
    }
}

/// Row i, column j: the share of run i's pruned entries that run j also prunes, beside what two
/// independent random masks of the same sparsities would give (run j's sparsity).
///
/// # Errors
/// Fewer than two runs, a run without `mask.safetensors`, or masks of different shapes.
pub fn overlap(runs: &[Run], scope: OverlapScope) -> Result<MatrixFigure> {
    if runs.len() < 2 {
        return Err(ReportError::input(
            "overlap",
            "give at least two runs with masks",
        ));
    }
    if let OverlapScope::Cell(_, m) = scope
        && m >= MATRICES.len()
    {
        return Err(ReportError::input(
            "overlap",
            format!("no matrix column {m}"),
        ));
    }
    let masks = runs
        .iter()
        .map(|run| {
            run.dir
                .read_mask()?
                .ok_or_else(|| ReportError::MissingFile {
                    figure: "overlap",
                    run: run.summary.path.clone(),
                    file: "mask.safetensors",
                    why: "written by fish, random, bitfit, freeze, prune and supermask runs",
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = runs.len();
    let mut measured = vec![vec![0.0; n]; n];
    let mut random = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..n {
            let report = mask_overlap(&masks[i], &masks[j])?;
            if let OverlapScope::Cell(l, _) = scope
                && l >= report.grid.num_layers()
            {
                return Err(ReportError::input(
                    "overlap",
                    format!(
                        "--cell layer {} is past the model's {} layers",
                        l + 1,
                        report.grid.num_layers()
                    ),
                ));
            }
            measured[i][j] = match scope {
                OverlapScope::Overall => report.overall.of_first,
                OverlapScope::Cell(l, m) => report.grid.cell(l, m).map_or(0.0, |o| o.of_first),
            };
            random[i][j] = if i == j {
                1.0
            } else {
                dropped_fraction(&masks[j], &masks[i], scope)
            };
        }
    }
    let tasks: Vec<String> = runs.iter().map(Run::task).collect();
    let unique = tasks
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == n;
    let labels = if unique {
        tasks
    } else {
        runs.iter().map(Run::name).collect()
    };
    Ok(MatrixFigure {
        kind: "overlap",
        title: "Shared pruned entries between runs' masks".into(),
        subtitle: format!(
            "{} — over {}; cell (row, column) = share of the row's pruned entries the column also prunes",
            runs.iter()
                .map(|r| format!("{} ({})", r.name(), r.method_name()))
                .collect::<Vec<_>>()
                .join(", "),
            scope.describe()
        ),
        labels,
        panels: vec![
            ("measured".into(), measured),
            ("independent random masks, same sparsities".into(), random),
        ],
        axes: ("pruned by".into(), "also pruned by".into()),
        value_label: "share of pruned entries (%)".into(),
    })
}
