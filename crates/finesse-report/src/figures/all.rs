//! `figure all`: every figure a run's files allow, into one folder.

use std::path::{Path, PathBuf};

use finesse_train::method::MethodConfig;

use super::layer::{DistanceMetric, FisherStat, GridOptions, distance, fisher, sparsity};
use super::{curves, magnitudes};
use crate::canvas::{Figure, OutputFormat, save};
use crate::error::Result;
use crate::grid::GridStyle;
use crate::runs::Run;

/// What `figure all` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllFigures {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// (file name, why not) of the figures the run's files do not allow.
    pub skipped: Vec<(String, String)>,
}

/// Writes every figure `run` allows into `out` (`RUN/figures/` by default) as `format`, and
/// says which it skipped and why (the error naming the missing file).
///
/// # Errors
/// A figure that could be made fails to draw or be written.
pub fn figure_all(run: &Run, out: &Path, format: OutputFormat) -> Result<AllFigures> {
    let ext = match format {
        OutputFormat::Png => "png",
        OutputFormat::Svg => "svg",
    };
    let mut done = AllFigures::default();
    let heatmap = GridOptions::default();
    let lines = GridOptions {
        style: GridStyle::Lines,
        ..GridOptions::default()
    };
    let mut put = |name: &str, figure: Result<Writer<'_>>| -> Result<()> {
        let path = out.join(format!("{name}.{ext}"));
        match figure {
            Ok(write) => {
                write(&path)?;
                done.written.push(path);
            }
            Err(e) => done.skipped.push((format!("{name}.{ext}"), e.to_string())),
        }
        Ok(())
    };
    put("curves", boxed(curves(std::slice::from_ref(run), 0.6)))?;
    put("sparsity", boxed(sparsity(run, heatmap)))?;
    put("sparsity-lines", boxed(sparsity(run, lines)))?;
    put(
        "distance-mean-abs",
        boxed(distance(run, DistanceMetric::MeanAbs, false, heatmap)),
    )?;
    put(
        "distance-angular",
        boxed(distance(run, DistanceMetric::Angular, true, lines)),
    )?;
    put(
        "distance-l0",
        boxed(distance(run, DistanceMetric::L0, false, heatmap)),
    )?;
    put("fisher-mean", boxed(fisher(run, FisherStat::Mean, heatmap)))?;
    put(
        "fisher-share",
        boxed(fisher(run, FisherStat::Share, heatmap)),
    )?;
    put(
        "fisher-top-mass",
        boxed(fisher(run, FisherStat::TopMass, heatmap)),
    )?;
    if matches!(
        run.method(),
        Some(MethodConfig::Supermask { .. } | MethodConfig::Prune { .. })
    ) {
        put("magnitudes", boxed(magnitudes(run)))?;
    } else {
        done.skipped.push((
            format!("magnitudes.{ext}"),
            format!(
                "magnitudes figure: only for supermask and prune runs ({} run)",
                run.method_name()
            ),
        ));
    }
    Ok(done)
}

type Writer<'a> = Box<dyn FnOnce(&Path) -> Result<()> + 'a>;

fn boxed<'a, F: Figure + 'a>(figure: Result<F>) -> Result<Writer<'a>> {
    figure.map(|f| Box::new(move |path: &Path| save(&f, path, None)) as Writer<'a>)
}
