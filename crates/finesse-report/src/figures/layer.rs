//! The layer × matrix figures of one run: `sparsity`, `distance`, `fisher`.

use std::path::Path;

use finesse_sparse::distance::{DistanceReport, Distances, RandomInit, distances, vs_random};
use finesse_sparse::grid::{CellParams, GridSums, LayerGrid};
use finesse_train::method::MethodConfig;

use crate::colormap::{ScaleKind, format_value};
use crate::error::{ReportError, Result};
use crate::grid::{GridFigure, GridPanel, GridStyle};
use crate::runs::Run;

/// How a layer × matrix figure is drawn (the CLI's `--style`, `--values`, `--scale`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GridOptions {
    /// Heatmap or lines.
    pub style: GridStyle,
    /// Print values in the cells.
    pub show_values: bool,
    /// Override the kind's scale (`None`: the kind's own choice).
    pub scale: Option<ScaleKind>,
}

fn figure(
    kind: &'static str,
    title: String,
    subtitle: String,
    value_label: &str,
    panels: Vec<GridPanel>,
    (scale, percent): (ScaleKind, bool),
    options: GridOptions,
) -> GridFigure {
    GridFigure {
        kind,
        title,
        subtitle,
        value_label: value_label.into(),
        panels,
        scale: options.scale.unwrap_or(scale),
        percent,
        style: options.style,
        show_values: options.show_values,
    }
}

fn missing(figure: &'static str, run: &Run, file: &'static str, why: &'static str) -> ReportError {
    ReportError::MissingFile {
        figure,
        run: run.summary.path.clone(),
        file,
        why,
    }
}

fn run_subtitle(run: &Run) -> String {
    format!("{} — run {}", run.label(), run.name())
}

/// Kept fraction per layer × matrix of a fixed-subset mask (log colour scale: a FISH mask spans
/// decades), or the sparsity of a pruning run or supermask (the paper's Figure 4).
///
/// # Errors
/// The run has no `mask_stats.json` (dense runs, or a run still preparing its mask).
pub fn sparsity(run: &Run, options: GridOptions) -> Result<GridFigure> {
    let stats = run.summary.mask_stats.as_ref().ok_or_else(|| {
        missing(
            "sparsity",
            run,
            "mask_stats.json",
            "written by fish, random, bitfit, freeze, prune and supermask runs once their mask exists; a dense run has no mask",
        )
    })?;
    let pruned = matches!(
        run.method(),
        Some(MethodConfig::Prune { .. } | MethodConfig::Supermask { .. })
    );
    let (title, label, grid, scale) = if pruned {
        let mut grid = stats
            .grid
            .map(|c| (c.total > 0).then_some(1.0 - c.fraction));
        grid.groups.clear(); // only WQ…WO are pruned
        (
            "Sparsity per layer × matrix",
            "sparsity (% of entries zero)",
            grid,
            ScaleKind::Linear,
        )
    } else {
        let grid = stats.grid.map(|c| (c.total > 0).then_some(c.fraction));
        (
            "Kept fraction per layer × matrix",
            "kept (% of entries)",
            grid,
            ScaleKind::Auto,
        )
    };
    let overall = if pruned {
        let s = run.sparsity().unwrap_or(1.0 - stats.overall.fraction);
        format!("{} sparse overall", format_value(s, true))
    } else {
        format!(
            "{} of all entries kept",
            format_value(stats.overall.fraction, true)
        )
    };
    Ok(figure(
        "sparsity",
        format!("{title} ({} mask)", run.method_name()),
        format!("{} — {overall}", run_subtitle(run)),
        label,
        vec![GridPanel {
            caption: run.name(),
            grid,
        }],
        (scale, true),
        options,
    ))
}

/// Which distance a figure shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DistanceMetric {
    /// Σ |Δ|.
    L1,
    /// Mean |Δ| per entry.
    #[default]
    MeanAbs,
    /// arccos(cos θ)/π.
    Angular,
    /// Share of entries changed.
    L0,
    /// ‖Δ‖ / ‖base‖.
    RelL2,
}

impl DistanceMetric {
    /// The metric's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::MeanAbs => "mean-abs",
            Self::Angular => "angular",
            Self::L0 => "l0",
            Self::RelL2 => "rel-l2",
        }
    }

    /// The value's description with its unit.
    pub fn label(self) -> &'static str {
        match self {
            Self::L1 => "L1 distance Σ|Δw|",
            Self::MeanAbs => "mean |Δw| per entry",
            Self::Angular => "angular distance arccos(cos θ)/π",
            Self::L0 => "L0: entries changed (%)",
            Self::RelL2 => "relative L2 ‖Δw‖/‖w‖",
        }
    }

    /// The metric's value.
    pub fn of(self, d: &Distances) -> f64 {
        match self {
            Self::L1 => d.l1,
            Self::MeanAbs => d.mean_abs,
            Self::Angular => d.angular,
            Self::L0 => d.l0_fraction,
            Self::RelL2 => d.relative_l2,
        }
    }

    fn scale(self) -> (ScaleKind, bool) {
        match self {
            Self::L0 => (ScaleKind::Linear, true),
            _ => (ScaleKind::Auto, false),
        }
    }
}

fn distance_grid(report: &DistanceReport, metric: DistanceMetric) -> LayerGrid<Option<f64>> {
    report.grid.map(|d| (d.entries > 0).then(|| metric.of(d)))
}

/// The random-initialisation reference of `folder`'s shapes (uniform ±1/√H, seed 0).
fn random_reference(folder: &Path) -> Result<DistanceReport> {
    let config =
        finesse_bert::BertConfig::from_file(&folder.join(finesse_bert::checkpoint::CONFIG_FILE))?;
    let tensors = finesse_train::models::model_tensors(&folder.to_string_lossy())?;
    let shapes = tensors.into_iter().map(|(k, t)| (k, t.shape)).collect();
    Ok(vs_random(
        &shapes,
        config.hidden_size,
        RandomInit::Uniform,
        0,
    ))
}

fn distance_figure(
    report: &DistanceReport,
    metric: DistanceMetric,
    reference: Option<DistanceReport>,
    subtitle: String,
    options: GridOptions,
) -> GridFigure {
    let mut panels = vec![GridPanel {
        caption: "fine-tuned vs base".into(),
        grid: distance_grid(report, metric),
    }];
    if let Some(r) = &reference {
        panels.push(GridPanel {
            caption: "two random initialisations".into(),
            grid: distance_grid(r, metric),
        });
    }
    let overall = format!(
        "overall {}",
        format_value(metric.of(&report.overall), metric == DistanceMetric::L0)
    );
    figure(
        "distance",
        format!("{} from the base model per layer × matrix", metric.label()),
        format!("{subtitle} — {overall}"),
        metric.label(),
        panels,
        metric.scale(),
        options,
    )
}

/// Distances of a run's model from its base per layer × matrix (the paper's Figure 2), from
/// `analysis.json`; `vs_random` adds the distance between two random initialisations of the
/// same shapes as a reference (a second heatmap, or a band in the line form).
///
/// # Errors
/// The run has no `analysis.json` (it is written when a run finishes), or the base model cannot
/// be read for the reference.
pub fn distance(
    run: &Run,
    metric: DistanceMetric,
    vs_random: bool,
    options: GridOptions,
) -> Result<GridFigure> {
    let analysis = run.summary.analysis.as_ref().ok_or_else(|| {
        missing(
            "distance",
            run,
            "analysis.json",
            "written when a run finishes",
        )
    })?;
    let reference = if vs_random {
        Some(random_reference(&run.dir.base_model_folder()?)?)
    } else {
        None
    };
    Ok(distance_figure(
        &analysis.distance,
        metric,
        reference,
        run_subtitle(run),
        options,
    ))
}

/// Distances between two models (folders, cached names or run directories).
///
/// # Errors
/// A model cannot be read, or the two differ in a tensor's shape.
pub fn distance_of_models(
    base: &str,
    other: &str,
    metric: DistanceMetric,
    vs_random: bool,
    options: GridOptions,
) -> Result<GridFigure> {
    let a = finesse_train::models::model_tensors(base)?;
    let b = finesse_train::models::model_tensors(other)?;
    let report = distances(&a, &b)?;
    let reference = if vs_random {
        Some(random_reference(&finesse_train::models::model_folder(
            base,
        )?)?)
    } else {
        None
    };
    Ok(distance_figure(
        &report,
        metric,
        reference,
        format!("{other} vs {base}"),
        options,
    ))
}

/// Which Fisher statistic per cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FisherStat {
    /// Mean Fisher information per entry.
    #[default]
    Mean,
    /// Total Fisher information of the cell.
    Total,
    /// The cell's share of the top-k budget (kept entries / all kept).
    Share,
    /// How concentrated the cell's Fisher is: the share of its total held by its own top
    /// entries, as many as the run's keep ratio would keep of it (0.5% without a mask). A
    /// uniform cell gives the keep ratio itself; 100% means the top-k holds it all.
    TopMass,
}

impl FisherStat {
    /// The statistic's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Total => "total",
            Self::Share => "share",
            Self::TopMass => "top-mass",
        }
    }
}

/// Fisher information per layer × matrix (weights and biases of a matrix together): mean or
/// total (log scale), each cell's share of the mask's kept entries, or how much of each cell's
/// Fisher its own top entries hold ([`FisherStat::TopMass`]).
///
/// # Errors
/// The run has no `fisher.safetensors` (FISH runs estimating their own Fisher write it) or, for
/// the share, no `mask_stats.json`.
pub fn fisher(run: &Run, stat: FisherStat, options: GridOptions) -> Result<GridFigure> {
    let (title, label, grid, scale) = if stat == FisherStat::Share {
        if !run.method().is_some_and(MethodConfig::is_sparse) {
            return Err(ReportError::input(
                "fisher",
                format!(
                    "the share of a top-k budget needs a fixed-subset mask (fish, random, bitfit, freeze); {} is a {} run",
                    run.name(),
                    run.method_name()
                ),
            ));
        }
        let stats = run.summary.mask_stats.as_ref().ok_or_else(|| {
            missing(
                "fisher",
                run,
                "mask_stats.json",
                "written by runs with a mask",
            )
        })?;
        let all = stats.overall.kept.max(1) as f64;
        (
            "Share of the top-k budget per layer × matrix",
            "share of kept entries (%)",
            stats.grid.map(|c| Some(c.kept as f64 / all)),
            (ScaleKind::Auto, true),
        )
    } else {
        let file = run.dir.read_fisher()?.ok_or_else(|| {
            missing(
                "fisher",
                run,
                "fisher.safetensors",
                "written by FISH runs that estimate their Fisher (not with --mask)",
            )
        })?;
        if stat == FisherStat::TopMass {
            let ratio = run
                .summary
                .mask_stats
                .as_ref()
                .map_or(DEFAULT_KEEP_RATIO, |m| {
                    m.overall.kept as f64 / m.overall.total.max(1) as f64
                });
            let mut cells = GridSums::<Vec<f32>>::new(CellParams::WeightAndBias);
            for (name, t) in &file.scores {
                cells.add(name, |v| v.extend_from_slice(&t.data));
            }
            let grid = cells.finish(|values| top_mass(values, ratio));
            return Ok(figure(
                "fisher",
                format!(
                    "Fisher mass held by each cell's top {} of entries",
                    percent(ratio)
                ),
                run_subtitle(run),
                "share of the cell's Σ Fisher (%)",
                vec![GridPanel {
                    caption: run.name(),
                    grid,
                }],
                (ScaleKind::Auto, true),
                options,
            ));
        }
        let mut sums = GridSums::<(f64, usize)>::new(CellParams::WeightAndBias);
        for (name, t) in &file.scores {
            let total: f64 = t.data.iter().map(|&v| v as f64).sum();
            sums.add(name, |s| {
                s.0 += total;
                s.1 += t.data.len();
            });
        }
        let grid = sums.finish(|&(total, n)| match stat {
            _ if n == 0 => None,
            FisherStat::Total => Some(total),
            _ => Some(total / n as f64),
        });
        let (title, label) = if stat == FisherStat::Total {
            (
                "Total Fisher information per layer × matrix",
                "Σ Fisher (log scale)",
            )
        } else {
            (
                "Mean Fisher information per entry, per layer × matrix",
                "mean Fisher per entry (log scale)",
            )
        };
        (title, label, grid, (ScaleKind::Log, false))
    };
    Ok(figure(
        "fisher",
        title.into(),
        run_subtitle(run),
        label,
        vec![GridPanel {
            caption: run.name(),
            grid,
        }],
        scale,
        options,
    ))
}

/// The keep ratio of [`FisherStat::TopMass`] for a run without a mask: FISH's 0.5%.
const DEFAULT_KEEP_RATIO: f64 = 0.005;

/// The share of `values`' sum held by its largest ⌈`ratio` · n⌉ entries; `None` for an empty
/// cell or one with no Fisher at all.
fn top_mass(values: &[f32], ratio: f64) -> Option<f64> {
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
    if values.is_empty() || total <= 0.0 {
        return None;
    }
    let k = ((ratio * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let mut sorted = values.to_vec();
    sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let top: f64 = sorted[..k].iter().map(|&v| f64::from(v)).sum();
    Some(top / total)
}

/// `0.005` → `0.5%`, `0.02` → `2%`.
fn percent(ratio: f64) -> String {
    let text = format!("{:.2}", ratio * 100.0);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_mass_is_the_keep_ratio_when_uniform_and_one_for_a_single_spike() {
        let uniform = vec![2.0f32; 1000];
        assert!((top_mass(&uniform, 0.005).expect("mass") - 0.005).abs() < 1e-12);
        let mut spike = vec![0.0f32; 1000];
        spike[417] = 3.0;
        assert_eq!(top_mass(&spike, 0.005), Some(1.0));
        // ⌈0.005 · 10⌉ = 1 entry of 1 + 2 + … + 10.
        let ramp: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        assert!((top_mass(&ramp, 0.005).expect("mass") - 10.0 / 55.0).abs() < 1e-12);
        assert_eq!(top_mass(&[], 0.005), None);
        assert_eq!(top_mass(&[0.0, 0.0], 0.005), None);
        assert_eq!(percent(0.005), "0.5%");
        assert_eq!(percent(0.02), "2%");
    }
}
