//! Figures across a run's steps or across runs: `curves`, `sweep`, `distance-vs-steps`.

use std::collections::BTreeMap;

use finesse_train::method::MethodConfig;
use finesse_train::rundir::main_metric;

use super::layer::DistanceMetric;
use crate::error::{ReportError, Result};
use crate::plots::{LinesFigure, Panel, Series, Stroke};
use crate::runs::Run;

/// TensorBoard's smoothing: an exponential moving average with weight `weight` in [0, 1),
/// debiased (divided by 1 − weight^n) so the first points are not pulled towards zero.
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let w = weight.clamp(0.0, 0.999_999);
    let (mut last, mut n) = (0.0, 0);
    values
        .iter()
        .map(|&v| {
            // A non-finite value (a diverged step) is left out of the average, as TensorBoard
            // does; the raw curve shows it.
            if !v.is_finite() {
                return f64::NAN;
            }
            n += 1;
            last = last * w + (1.0 - w) * v;
            last / (1.0 - w.powi(n))
        })
        .collect()
}

fn names(runs: &[Run]) -> String {
    let names: Vec<String> = runs.iter().map(Run::name).collect();
    if names.len() <= 4 {
        format!("runs {}", names.join(", "))
    } else {
        format!("{} runs ({}, …)", names.len(), names[..3].join(", "))
    }
}

/// Training loss (raw, faint, and smoothed with [`smooth`]), learning rate and the main dev
/// metric of the first dev split against step, for one run or several (one colour each, legend
/// with task, method and lr). Runs still being written draw what their events hold so far.
///
/// # Errors
/// A run has no `events.jsonl` (a run writes it from its start).
pub fn curves(runs: &[Run], smoothing: f64) -> Result<LinesFigure> {
    let mut loss = panel("step", "training loss", true);
    let mut lr = panel("step", "learning rate (log scale)", false);
    lr.y_log = true;
    let mut metric = panel("step", "dev metric", false);
    let mut metric_names = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if !run.dir.events().is_file() {
            return Err(ReportError::MissingFile {
                figure: "curves",
                run: run.summary.path.clone(),
                file: "events.jsonl",
                why: "a run writes it from its start; this folder never started training",
            });
        }
        let progress = &run.summary.progress;
        let label = if runs.len() == 1 {
            String::new()
        } else {
            run.label()
        };
        let steps: Vec<f64> = progress.losses.iter().map(|p| p.step as f64).collect();
        let raw: Vec<f64> = progress.losses.iter().map(|p| p.loss).collect();
        loss.series.push(Series {
            label: if runs.len() == 1 {
                "raw".into()
            } else {
                String::new()
            },
            points: steps.iter().copied().zip(raw.iter().copied()).collect(),
            color: i,
            stroke: Stroke::Faint,
            ..Series::default()
        });
        loss.series.push(Series {
            label: if runs.len() == 1 {
                format!("smoothed ({smoothing})")
            } else {
                label.clone()
            },
            points: steps.iter().copied().zip(smooth(&raw, smoothing)).collect(),
            color: i,
            stroke: Stroke::Solid,
            ..Series::default()
        });
        lr.series.push(Series {
            points: progress
                .losses
                .iter()
                .map(|p| (p.step as f64, p.lr))
                .collect(),
            color: i,
            stroke: Stroke::Solid,
            ..Series::default()
        });
        let first = progress.evals.first().map(|e| e.split.clone());
        let evals = progress
            .evals
            .iter()
            .filter(|e| Some(&e.split) == first.as_ref());
        let points: Vec<(f64, f64)> = evals
            .filter_map(|e| {
                main_metric(&e.metrics).map(|(name, v)| {
                    if !metric_names.contains(&name.to_string()) {
                        metric_names.push(name.to_string());
                    }
                    (e.step as f64, v)
                })
            })
            .collect();
        metric.series.push(Series {
            points,
            color: i,
            ..Series::default()
        });
    }
    metric.y_label = format!(
        "dev {}",
        if metric_names.is_empty() {
            "metric".into()
        } else {
            metric_names.join(" / ")
        }
    );
    let task = runs.first().map(Run::task).unwrap_or_default();
    let title = if runs.len() == 1 {
        format!("Training curves: {}", runs[0].label())
    } else {
        format!("Training curves on {task}: {} runs", runs.len())
    };
    Ok(LinesFigure {
        kind: "curves",
        title,
        subtitle: format!(
            "{} — loss smoothed by an EMA of weight {smoothing} (debiased)",
            names(runs)
        ),
        panels: vec![loss, lr, metric],
        heights: vec![1.4, 0.8, 1.0],
    })
}

fn panel(x: &str, y: &str, legend: bool) -> Panel {
    Panel {
        x_label: x.into(),
        y_label: y.into(),
        legend,
        ..Panel::default()
    }
}

/// The setting a sweep puts on its x axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SweepAxis {
    /// Kept fraction of a fixed-subset method.
    #[default]
    KeepRatio,
    /// Final sparsity of pruning or supermask runs.
    Sparsity,
    /// Peak learning rate.
    Lr,
    /// Fisher samples of FISH runs.
    FisherSamples,
}

impl SweepAxis {
    /// The axis' name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeepRatio => "keep-ratio",
            Self::Sparsity => "sparsity",
            Self::Lr => "lr",
            Self::FisherSamples => "fisher-samples",
        }
    }

    fn of(self, run: &Run) -> Option<f64> {
        match self {
            Self::KeepRatio => run.keep_ratio(),
            Self::Sparsity => run.sparsity(),
            Self::Lr => run.lr(),
            Self::FisherSamples => match run.method()? {
                MethodConfig::Fish {
                    fisher,
                    mask_file: None,
                    ..
                } => Some(fisher.samples as f64),
                _ => None,
            },
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::KeepRatio => "kept fraction of all entries (log scale)",
            Self::Sparsity => "sparsity of WQ…WO",
            Self::Lr => "peak learning rate (log scale)",
            Self::FisherSamples => "Fisher samples N (log scale)",
        }
    }

    fn log(self) -> bool {
        !matches!(self, Self::Sparsity)
    }
}

/// What a line of a sweep holds fixed: everything of the run's setting but the swept one and
/// the seed (runs that differ only in the seed are averaged), so FISH global and per-tensor,
/// or two learning rates, are separate lines.
fn setting_key(run: &Run, axis: SweepAxis, with_task: bool) -> String {
    let mut parts = Vec::new();
    if with_task {
        parts.push(run.task());
    }
    parts.push(run.method_name().to_string());
    match run.method() {
        Some(MethodConfig::Fish {
            selection,
            fisher,
            mask_file,
        }) => {
            if let Some(sel) = selection {
                if sel.scope != finesse_sparse::Scope::Global {
                    parts.push(format!("{:?}", sel.scope).to_lowercase());
                }
                if !sel.exclude.is_empty() {
                    parts.push(format!("excl. {}", sel.exclude.join("+")));
                }
            }
            if mask_file.is_some() {
                parts.push("mask file".into());
            } else if axis != SweepAxis::FisherSamples {
                parts.push(format!("N={}", fisher.samples));
            }
            parts.push(format!("{:?}", fisher.kind).to_lowercase());
        }
        Some(MethodConfig::Random { selection })
            if selection.scope != finesse_sparse::Scope::Global =>
        {
            parts.push(format!("{:?}", selection.scope).to_lowercase());
        }
        _ => {}
    }
    if !matches!(axis, SweepAxis::KeepRatio | SweepAxis::Sparsity) {
        let budget = run.budget_text();
        if !budget.is_empty() && budget != "all" {
            parts.push(budget);
        }
    }
    if axis != SweepAxis::Lr
        && let Some(lr) = run.lr()
    {
        parts.push(format!("lr {}", crate::runs::format_lr(lr)));
    }
    parts.join(" · ")
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// (x, y) points by series name, then by x (its bits: runs sharing a setting group together).
type ByMethod = BTreeMap<String, BTreeMap<u64, Vec<(f64, f64)>>>;

/// One line per method through each setting's mean (± sample standard deviation over runs
/// that share it, e.g. seeds).
fn lines_by_method(points: &ByMethod) -> Vec<Series> {
    points
        .iter()
        .enumerate()
        .map(|(i, (method, by_x))| {
            let mut pts = Vec::new();
            let mut errors = Vec::new();
            for values in by_x.values() {
                let x = values[0].0;
                let (m, s) = mean_std(&values.iter().map(|v| v.1).collect::<Vec<_>>());
                pts.push((x, m));
                errors.push(s);
            }
            let has_errors = errors.iter().any(|e| *e > 0.0);
            Series {
                label: method.clone(),
                points: pts,
                errors: has_errors.then_some(errors),
                color: i,
                stroke: Stroke::Markers,
            }
        })
        .collect()
}

/// The main dev metric of finished runs against a setting, one line per method (the papers'
/// Figures 3 and 8); runs sharing a setting (seeds) give a mean with ± one standard deviation.
///
/// # Errors
/// No finished run has the setting.
pub fn sweep(runs: &[Run], axis: SweepAxis) -> Result<LinesFigure> {
    let several_tasks = runs
        .iter()
        .map(Run::task)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut points = ByMethod::new();
    let mut metric_name = None;
    let mut skipped = Vec::new();
    for run in runs {
        let final_metric = run
            .summary
            .metrics
            .as_ref()
            .and_then(|m| m.main_metric().map(|(k, v)| (k.to_string(), v)));
        match (axis.of(run), final_metric) {
            (Some(x), Some((name, y))) => {
                let first = metric_name.get_or_insert_with(|| name.clone());
                if *first != name {
                    return Err(ReportError::input(
                        "sweep",
                        format!(
                            "the runs report different main metrics ({first}, and {name} in {}): give runs of one task",
                            run.name()
                        ),
                    ));
                }
                points
                    .entry(setting_key(run, axis, several_tasks))
                    .or_default()
                    .entry(x.to_bits())
                    .or_default()
                    .push((x, y));
            }
            _ => skipped.push(run.name()),
        }
    }
    let Some(metric_name) = metric_name else {
        return Err(ReportError::input(
            "sweep",
            format!(
                "no finished run has a {} (skipped: {})",
                axis.name(),
                skipped.join(", ")
            ),
        ));
    };
    let task = runs.first().map(Run::task).unwrap_or_default();
    let mut subtitle = names(runs);
    if !skipped.is_empty() {
        subtitle.push_str(&format!(
            " — {} without a {} or unfinished",
            skipped.len(),
            axis.name()
        ));
    }
    Ok(LinesFigure {
        kind: "sweep",
        title: format!("{task}: dev {metric_name} against {}", axis.name()),
        subtitle,
        panels: vec![Panel {
            x_label: axis.label().into(),
            y_label: format!("dev {metric_name}"),
            x_log: axis.log(),
            y_log: false,
            y_percent: false,
            series: lines_by_method(&points),
            legend: true,
        }],
        heights: Vec::new(),
    })
}

/// The distance of finished runs' models from their base against the steps they trained, one
/// line per method and learning rate (the paper's Figure 10).
///
/// # Errors
/// No run has both `analysis.json` and `metrics.json`.
pub fn distance_vs_steps(runs: &[Run], metric: DistanceMetric) -> Result<LinesFigure> {
    let mut points = ByMethod::new();
    for run in runs {
        let (Some(a), Some(m)) = (&run.summary.analysis, &run.summary.metrics) else {
            continue;
        };
        let key = match run.lr() {
            Some(lr) => format!(
                "{} · {} lr {}",
                run.task(),
                run.method_name(),
                crate::runs::format_lr(lr)
            ),
            None => format!("{} · {}", run.task(), run.method_name()),
        };
        let x = m.steps as f64;
        points
            .entry(key)
            .or_default()
            .entry(x.to_bits())
            .or_default()
            .push((x, metric.of(&a.distance.overall)));
    }
    if points.is_empty() {
        return Err(ReportError::input(
            "distance-vs-steps",
            "no finished run (analysis.json and metrics.json) among the runs given",
        ));
    }
    Ok(LinesFigure {
        kind: "distance-vs-steps",
        title: format!("{} from the base against steps trained", metric.label()),
        subtitle: names(runs),
        panels: vec![Panel {
            x_label: "steps trained".into(),
            y_label: metric.label().into(),
            x_log: false,
            y_log: false,
            y_percent: metric == DistanceMetric::L0,
            series: lines_by_method(&points),
            legend: true,
        }],
        heights: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_tensorboards_debiased_ema() {
        let s = smooth(&[1.0, 0.0], 0.5);
        // First point: debiased to itself. Second: (0.5·0.5 + 0) / (1 − 0.25) = 1/3.
        assert!((s[0] - 1.0).abs() < 1e-12);
        assert!((s[1] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(smooth(&[2.0, 3.0], 0.0), vec![2.0, 3.0]);
        let s = smooth(&[1.0, f64::NAN, 1.0], 0.5);
        assert!(
            s[1].is_nan() && (s[2] - 1.0).abs() < 1e-12,
            "a NaN does not poison the rest: {s:?}"
        );
    }

    #[test]
    fn the_standard_deviation_is_the_sample_one() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
    }
}
