//! The runs a figure or report is made from: run directories given one by one or as folders of
//! runs, each read whole through the typed readers ([`RunDir::summary`]), with the labels
//! figures and tables print for them.

use std::path::{Path, PathBuf};

use finesse_sparse::mask::{Budget, Scope, Selection};
use finesse_train::RunDir;
use finesse_train::method::MethodConfig;
use finesse_train::rundir::RunSummary;

use crate::error::{ReportError, Result};

/// One run: its directory and everything its files say.
#[derive(Clone, Debug)]
pub struct Run {
    /// The directory.
    pub dir: RunDir,
    /// Its files read through the typed readers.
    pub summary: RunSummary,
}

impl Run {
    /// Opens and reads one run directory.
    ///
    /// # Errors
    /// Not a run directory, or one of its files cannot be read.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = RunDir::open(path)?;
        let summary = dir.summary()?;
        Ok(Self { dir, summary })
    }

    /// The folder's name.
    pub fn name(&self) -> String {
        let root = &self.summary.path;
        root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The method's configuration (`None` without a `run.json`).
    pub fn method(&self) -> Option<&MethodConfig> {
        self.summary.info.as_ref().map(|i| &i.config.method)
    }

    /// The stem of the mask file a FISH run trained (`--mask FILE`; `None` when the run made
    /// its own mask).
    pub fn mask_file(&self) -> Option<String> {
        match self.method()? {
            MethodConfig::Fish {
                mask_file: Some(path),
                ..
            } => path.file_stem().map(|s| s.to_string_lossy().into_owned()),
            _ => None,
        }
    }

    /// The method's short name (`fish`, `dense`, …; `?` without a `run.json`).
    pub fn method_name(&self) -> &'static str {
        self.method().map_or("?", MethodConfig::name)
    }

    /// The task's name (`SST-2`, …; `?` without a `run.json`).
    pub fn task(&self) -> String {
        self.summary
            .info
            .as_ref()
            .map_or_else(|| "?".into(), |i| i.config.task.spec().name.to_string())
    }

    /// The peak learning rate.
    pub fn lr(&self) -> Option<f64> {
        self.summary.info.as_ref().map(|i| i.config.lr)
    }

    /// The seed.
    pub fn seed(&self) -> Option<u64> {
        self.summary.info.as_ref().map(|i| i.config.seed)
    }

    /// The kept fraction of a fixed-subset method: its mask's, or the budget it asked for.
    pub fn keep_ratio(&self) -> Option<f64> {
        if let Some(stats) = &self.summary.mask_stats
            && self.method().is_some_and(MethodConfig::is_sparse)
        {
            return Some(stats.overall.fraction);
        }
        match self.selection()?.budget {
            Budget::Ratio(r) => Some(r),
            Budget::Count(_) => None,
        }
    }

    /// How a FISH or random run chose its mask (`None` for other methods and reused mask files).
    fn selection(&self) -> Option<&Selection> {
        match self.method()? {
            MethodConfig::Fish { selection, .. } => selection.as_ref(),
            MethodConfig::Random { selection } => Some(selection),
            _ => None,
        }
    }

    /// The sparsity of WQ…WO a pruning or supermask run ended with (or aims at, unfinished).
    pub fn sparsity(&self) -> Option<f64> {
        match self.method()? {
            MethodConfig::Supermask { .. } => self
                .summary
                .metrics
                .as_ref()
                .and_then(|m| m.supermask.as_ref())
                .map(|s| s.sparsity),
            MethodConfig::Prune { final_sparsity, .. } => Some(*final_sparsity),
            _ => None,
        }
    }

    /// What the method kept or pruned, as a table cell: `0.50%` kept, `30.0% sparse`, `all`;
    /// a mask chosen other than by one global top-k says how (`0.50% per-tensor`,
    /// `0.50% without pooler`).
    pub fn budget_text(&self) -> String {
        if let Some(s) = self.sparsity() {
            return format!("{} sparse", crate::colormap::format_value(s, true));
        }
        match (self.method(), self.keep_ratio()) {
            (Some(MethodConfig::Bitfit), _) => "biases + head".into(),
            (Some(MethodConfig::Freeze { groups }), _) => format!("frozen: {}", groups.join(", ")),
            (_, Some(r)) => {
                let mut text = crate::colormap::format_value(r, true);
                if let Some(selection) = self.selection() {
                    if selection.scope != Scope::Global {
                        text = format!("{text} {}", selection.scope.name());
                    }
                    if !selection.exclude.is_empty() {
                        text = format!("{text} without {}", selection.exclude.join(", "));
                    }
                }
                text
            }
            (Some(MethodConfig::Dense), _) => "all".into(),
            _ => String::new(),
        }
    }

    /// The run in a few words, for titles and legends: `SST-2 · fish 0.50% · lr 1e-3`.
    pub fn label(&self) -> String {
        let mut parts = vec![self.task(), self.method_name().to_string()];
        let budget = self.budget_text();
        if !budget.is_empty() && budget != "all" {
            parts[1] = format!("{} {budget}", parts[1]);
        }
        if let Some(lr) = self.lr() {
            parts.push(format!("lr {}", format_lr(lr)));
        }
        parts.join(" · ")
    }
}

/// A learning rate as people write it: `1e-3`, `3e-5`, `0.02`.
pub fn format_lr(lr: f64) -> String {
    if lr == 0.0 {
        return "0".into();
    }
    let mut exp = lr.abs().log10().floor() as i32;
    let mut m = (lr / 10f64.powi(exp) * 100.0).round() / 100.0;
    if m.abs() >= 10.0 {
        // 9.999e-4 rounds to 10e-4: write it 1e-3.
        m /= 10.0;
        exp += 1;
    }
    if (m - m.round()).abs() < 1e-9 {
        format!("{}e{exp}", m.round() as i64)
    } else {
        format!("{m}e{exp}")
    }
}

/// The run directories named by `paths`: each is a run, or a folder whose immediate
/// sub-folders holding a `run.json` or `events.jsonl` are runs (sorted by name).
///
/// # Errors
/// A path that is neither, or an empty folder of runs.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut runs = Vec::new();
    for path in paths {
        if is_run(path) {
            runs.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| ReportError::Io {
            action: "listing runs in",
            path: path.clone(),
            source,
        })?;
        let mut inside: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_run(p))
            .collect();
        if inside.is_empty() {
            return Err(finesse_train::TrainError::NotARun { path: path.clone() }.into());
        }
        inside.sort();
        runs.extend(inside);
    }
    Ok(runs)
}

fn is_run(path: &Path) -> bool {
    path.join("run.json").is_file() || path.join("events.jsonl").is_file()
}

/// Opens every run `paths` names ([`expand`]).
///
/// # Errors
/// As [`expand`] and [`Run::open`].
pub fn open_all(paths: &[PathBuf]) -> Result<Vec<Run>> {
    expand(paths)?.iter().map(|p| Run::open(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rates_print_as_people_write_them() {
        assert_eq!(format_lr(1e-3), "1e-3");
        assert_eq!(format_lr(3e-5), "3e-5");
        assert_eq!(format_lr(2.5e-4), "2.5e-4");
        assert_eq!(format_lr(0.2), "2e-1");
        assert_eq!(format_lr(9.999e-4), "1e-3");
    }
}
