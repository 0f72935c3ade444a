//! The analysis view's data: a run's layer × matrix figure as `finesse figure` builds it
//! ([`finesse_report::figures`]), its colour scale, and what hovering a cell says. The heatmap
//! the app draws and the PNG/SVG it exports are the same [`GridFigure`].

use std::path::Path;

use finesse_report::colormap::{ColorScale, format_value};
use finesse_report::figures::{self, DistanceMetric, FisherStat, GridOptions};
use finesse_report::grid::GridFigure;
use finesse_report::grid::GridStyle;
use finesse_report::runs::Run;
use finesse_sparse::grid::{LayerGrid, grid_cell};
use serde::{Deserialize, Serialize};

/// Which layer × matrix figure the analysis view shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeatmapKind {
    /// The mask's kept fraction (fixed subsets) or sparsity (prune, supermask).
    #[default]
    Sparsity,
    /// L1 distance from the base model.
    L1,
    /// Mean |Δw| per entry.
    MeanAbs,
    /// Angular distance.
    Angular,
    /// Share of entries changed.
    L0,
    /// Mean Fisher information per entry.
    FisherMean,
    /// Total Fisher information per cell.
    FisherTotal,
    /// Each cell's share of the kept entries.
    FisherShare,
    /// The share of each cell's Fisher its own top entries hold.
    FisherTopMass,
}

impl HeatmapKind {
    /// Every kind, in menu order.
    pub const ALL: [Self; 9] = [
        Self::Sparsity,
        Self::L1,
        Self::MeanAbs,
        Self::Angular,
        Self::L0,
        Self::FisherMean,
        Self::FisherTotal,
        Self::FisherShare,
        Self::FisherTopMass,
    ];

    /// The menu's text.
    pub fn title(self) -> &'static str {
        match self {
            Self::Sparsity => "Mask: kept / sparsity",
            Self::L1 => "Distance: L1",
            Self::MeanAbs => "Distance: mean |Δw|",
            Self::Angular => "Distance: angular",
            Self::L0 => "Distance: L0 (changed)",
            Self::FisherMean => "Fisher: mean",
            Self::FisherTotal => "Fisher: total",
            Self::FisherShare => "Fisher: share of kept",
            Self::FisherTopMass => "Fisher: mass in the top entries",
        }
    }

    /// A file name stem for exports: `sparsity`, `distance-l1`, `fisher-mean`, ….
    pub fn file_stem(self) -> String {
        match self.distance() {
            Some(metric) => format!("distance-{}", metric.name()),
            None => match self.fisher() {
                Some(stat) => format!("fisher-{}", stat.name()),
                None => "sparsity".into(),
            },
        }
    }

    fn distance(self) -> Option<DistanceMetric> {
        Some(match self {
            Self::L1 => DistanceMetric::L1,
            Self::MeanAbs => DistanceMetric::MeanAbs,
            Self::Angular => DistanceMetric::Angular,
            Self::L0 => DistanceMetric::L0,
            _ => return None,
        })
    }

    fn fisher(self) -> Option<FisherStat> {
        Some(match self {
            Self::FisherMean => FisherStat::Mean,
            Self::FisherTotal => FisherStat::Total,
            Self::FisherShare => FisherStat::Share,
            Self::FisherTopMass => FisherStat::TopMass,
            _ => return None,
        })
    }
}

/// A built layer × matrix figure and the colour scale its cells are drawn with.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// The figure, as `finesse figure` draws and exports it.
    pub figure: GridFigure,
    /// The colour scale (the same fit the exported figure uses).
    pub scale: ColorScale,
    /// Per cell (`[layer][matrix]`) the HF tensor names it sums, when the run says.
    pub tensors: Vec<Vec<Vec<String>>>,
    /// Per cell the kept and total entries of the mask, when the run has one.
    pub counts: Vec<Vec<Option<(usize, usize)>>>,
    /// For a difference, the two runs' names and grids (hovering shows both values).
    pub operands: Vec<(String, LayerGrid<Option<f64>>)>,
}

impl Heatmap {
    /// Builds `kind`'s figure for `run`.
    ///
    /// # Errors
    /// The run lacks the file the figure needs (the message says which and why).
    pub fn build(run: &Run, kind: HeatmapKind) -> Result<Self, String> {
        let options = GridOptions::default();
        let figure = if let Some(metric) = kind.distance() {
            figures::distance(run, metric, false, options)
        } else if let Some(stat) = kind.fisher() {
            figures::fisher(run, stat, options)
        } else {
            figures::sparsity(run, options)
        }
        .map_err(|e| e.to_string())?;
        let scale = ColorScale::fit(figure.scale, figure.values().collect::<Vec<_>>());
        let layers = figure.panels.first().map_or(0, |p| p.grid.num_layers());
        let matrices = figure.panels.first().map_or(0, |p| p.grid.matrices.len());
        let mut tensors = vec![vec![Vec::new(); matrices]; layers];
        let names = run
            .summary
            .mask_stats
            .as_ref()
            .map(|s| s.per_tensor.keys().cloned().collect::<Vec<_>>())
            .or_else(|| {
                let a = run.summary.analysis.as_ref()?;
                Some(a.distance.per_tensor.keys().cloned().collect())
            })
            .unwrap_or_default();
        for name in names {
            if let Some((l, m)) = grid_cell(&name)
                && let Some(cell) = tensors.get_mut(l).and_then(|row| row.get_mut(m))
            {
                cell.push(name);
            }
        }
        let counts = (0..layers)
            .map(|l| {
                (0..matrices)
                    .map(|m| {
                        let stats = run.summary.mask_stats.as_ref()?;
                        let c = stats.grid.cell(l, m)?;
                        Some((c.kept, c.total))
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            figure,
            scale,
            tensors,
            counts,
            operands: Vec::new(),
        })
    }

    /// `a − b`, cell by cell, on the diverging scale (`names`: the two runs'), for the
    /// comparison of two runs.
    ///
    /// # Errors
    /// The figures are of different kinds or their models differ in shape.
    pub fn difference(a: &Self, b: &Self, names: (&str, &str)) -> Result<Self, String> {
        let figure = a
            .figure
            .difference(&b.figure, names)
            .map_err(|e| e.to_string())?;
        let scale = ColorScale::fit(figure.scale, figure.values().collect::<Vec<_>>());
        let grid = |h: &Self| h.figure.panels.first().map(|p| p.grid.clone());
        let operands = [(names.0, grid(a)), (names.1, grid(b))]
            .into_iter()
            .filter_map(|(name, g)| Some((name.to_string(), g?)))
            .collect();
        Ok(Self {
            figure,
            scale,
            tensors: a.tensors.clone(),
            counts: Vec::new(),
            operands,
        })
    }

    /// The value of cell (`layer`, `matrix`) of the first panel.
    pub fn value(&self, layer: usize, matrix: usize) -> Option<f64> {
        *self.figure.panels.first()?.grid.cell(layer, matrix)?
    }

    /// The value as the figure prints it (`0.52%`, `3.1e-4`), `—` for an empty cell.
    pub fn format(&self, value: Option<f64>) -> String {
        value.map_or_else(|| "—".into(), |v| format_value(v, self.figure.percent))
    }

    /// The label of matrix column `matrix` (`WQ`, …; empty when out of range).
    pub fn matrix_label(&self, matrix: usize) -> String {
        self.figure
            .panels
            .first()
            .and_then(|p| p.grid.matrices.get(matrix))
            .cloned()
            .unwrap_or_default()
    }

    /// The HF names of the tensors cell (`layer`, `matrix`) sums.
    pub fn cell_tensors(&self, layer: usize, matrix: usize) -> &[String] {
        self.tensors
            .get(layer)
            .and_then(|r| r.get(matrix))
            .map_or(&[], Vec::as_slice)
    }

    /// What hovering cell (`layer`, `matrix`) shows: where it is, the exact value, the tensors
    /// and the mask's counts.
    pub fn hover_text(&self, layer: usize, matrix: usize) -> String {
        let label = self.matrix_label(matrix);
        let value = self.value(layer, matrix);
        let exact = value.map_or_else(
            || "no value".into(),
            |v| {
                if self.figure.percent {
                    format!("fraction {v:.6e}")
                } else {
                    format!("exact {v:.6e}")
                }
            },
        );
        let mut text = format!(
            "layer {} · {label}\n{}: {} ({exact})",
            layer + 1,
            self.figure.value_label,
            self.format(value),
        );
        for (name, grid) in &self.operands {
            let value = grid.cell(layer, matrix).copied().flatten();
            text.push_str(&format!("\n{name}: {}", self.format(value)));
        }
        if let Some(Some((kept, total))) = self.counts.get(layer).and_then(|r| r.get(matrix)) {
            text.push_str(&format!("\nmask: {kept} of {total} entries kept"));
        }
        if let Some(names) = self.tensors.get(layer).and_then(|r| r.get(matrix)) {
            for name in names {
                text.push_str(&format!("\n{name}"));
            }
        }
        text
    }

    /// Saves the figure as PNG or SVG (from `path`'s extension) through `finesse-report`, as a
    /// heatmap or, with `lines`, in the line form (what the view shows).
    ///
    /// # Errors
    /// An unknown extension, or the file cannot be written.
    pub fn export(&self, path: &Path, lines: bool) -> Result<(), String> {
        let mut figure = self.figure.clone();
        figure.style = if lines {
            GridStyle::Lines
        } else {
            GridStyle::Heatmap
        };
        finesse_report::canvas::save(&figure, path, None).map_err(|e| e.to_string())
    }
}
