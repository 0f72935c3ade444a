//! `finesse figure KIND RUN… --out FILE.(png|svg)`: the papers' figures from run directories,
//! drawn by `finesse-report` (the desktop app exports through the same code).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use finesse_report::colormap::ScaleKind;
use finesse_report::figures::{
    self, DistanceMetric, FisherStat, GridOptions, OverlapScope, SweepAxis,
};
use finesse_report::grid::GridStyle;
use finesse_report::runs::{Run, open_all};
use finesse_report::{Canvas, Figure, OutputFormat, canvas};

/// Arguments of `finesse figure`.
#[derive(Debug, Args)]
pub struct FigureArgs {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// Kept fraction (FISH, random, BitFit, freeze) or sparsity (prune, supermask) of a run's mask
    /// per layer × matrix (Figure 4 of "How fine can fine-tuning be?").
    Sparsity {
        #[command(flatten)]
        run: OneRun,
        #[command(flatten)]
        grid: GridArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Distance of a run's model from its base per layer × matrix (its Figure 2), from the run's
    /// analysis.json, or between `--base` and `--other` models.
    Distance {
        /// The run directory (or use --base and --other).
        run: Option<PathBuf>,
        /// The base model: a known name, an HF folder or a run directory.
        #[arg(long, requires = "other", conflicts_with = "run")]
        base: Option<String>,
        /// The other model.
        #[arg(long, requires = "base")]
        other: Option<String>,
        /// Which distance.
        #[arg(long, value_enum, default_value_t = Metric::MeanAbs)]
        metric: Metric,
        /// Add two random initialisations of the same shapes as a reference (a second heatmap,
        /// or a grey band in the line form).
        #[arg(long)]
        vs_random: bool,
        #[command(flatten)]
        grid: GridArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Fisher information per layer × matrix: mean per entry or total (log scale), each cell's
    /// share of the top-k budget, or the share of each cell's Fisher its top entries hold.
    Fisher {
        #[command(flatten)]
        run: OneRun,
        /// Which statistic.
        #[arg(long, value_enum, default_value_t = Stat::Mean)]
        stat: Stat,
        #[command(flatten)]
        grid: GridArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Run × run matrix of the share of pruned entries two masks share, beside independent
    /// random masks of the same sparsities (Figure 7).
    Overlap {
        #[command(flatten)]
        runs: ManyRuns,
        /// One layer × matrix instead of every entry: `LAYER:MATRIX`, layer from 1, e.g. `6:WV`.
        #[arg(long)]
        cell: Option<String>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Training loss (raw and smoothed), learning rate and dev metric against step, for one run
    /// or several on one plot.
    Curves {
        #[command(flatten)]
        runs: ManyRuns,
        /// Loss smoothing: EMA weight in [0, 1), debiased as TensorBoard's.
        #[arg(long, default_value_t = 0.6)]
        smoothing: f64,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Dev metric of finished runs against a setting, one line per method, mean ± std over runs
    /// sharing it (Figures 3 and 8).
    Sweep {
        #[command(flatten)]
        runs: ManyRuns,
        /// The setting on the x axis.
        #[arg(long = "x", value_enum, default_value_t = Axis::KeepRatio)]
        axis: Axis,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Histogram of log |w| of the weights a supermask (or pruning) run prunes vs magnitude
    /// pruning at the same sparsity (Figure 5).
    Magnitudes {
        #[command(flatten)]
        run: OneRun,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Distance from the base against steps trained, across runs (Figure 10).
    DistanceVsSteps {
        #[command(flatten)]
        runs: ManyRuns,
        /// Which distance.
        #[arg(long, value_enum, default_value_t = Metric::MeanAbs)]
        metric: Metric,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Every figure a run's files allow, into RUN/figures/ (says which it skipped, and why).
    All {
        #[command(flatten)]
        run: OneRun,
        /// The folder (default RUN/figures).
        #[arg(long)]
        out: Option<PathBuf>,
        /// File format.
        #[arg(long, value_enum, default_value_t = Format::Png)]
        format: Format,
    },
}

#[derive(Debug, Args)]
struct OneRun {
    /// The run directory.
    run: PathBuf,
}

#[derive(Debug, Args)]
struct ManyRuns {
    /// Run directories, or folders of runs (every run inside).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct GridArgs {
    /// Heatmap, or the papers' line form (one line per matrix across layers).
    #[arg(long, value_enum, default_value_t = Style::Heatmap)]
    style: Style,
    /// Print each cell's value (heatmap).
    #[arg(long)]
    values: bool,
    /// Colour scale (default: the figure's own; log where values span decades).
    #[arg(long, value_enum)]
    scale: Option<Scale>,
}

#[derive(Debug, Args)]
struct OutArgs {
    /// Output file; the format follows the extension (.png or .svg).
    #[arg(long)]
    out: PathBuf,
    /// Width in CSS pixels (default: the figure's own).
    #[arg(long)]
    width: Option<u32>,
    /// Height in CSS pixels (default: the figure's own).
    #[arg(long)]
    height: Option<u32>,
    /// PNG resolution: the image is width × dpi/96 pixels wide, text and lines scaled alike.
    #[arg(long, default_value_t = 96.0)]
    dpi: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Style {
    Heatmap,
    Lines,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scale {
    Linear,
    Log,
    Diverging,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Metric {
    L1,
    MeanAbs,
    Angular,
    L0,
    RelL2,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Stat {
    Mean,
    Total,
    Share,
    /// The share of each cell's Fisher held by its own top entries (the run's keep ratio, else
    /// 0.5%): how concentrated it is.
    TopMass,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Axis {
    KeepRatio,
    Sparsity,
    Lr,
    FisherSamples,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Png,
    Svg,
}

impl From<Metric> for DistanceMetric {
    fn from(m: Metric) -> Self {
        match m {
            Metric::L1 => Self::L1,
            Metric::MeanAbs => Self::MeanAbs,
            Metric::Angular => Self::Angular,
            Metric::L0 => Self::L0,
            Metric::RelL2 => Self::RelL2,
        }
    }
}

impl GridArgs {
    fn options(&self) -> GridOptions {
        GridOptions {
            style: match self.style {
                Style::Heatmap => GridStyle::Heatmap,
                Style::Lines => GridStyle::Lines,
            },
            show_values: self.values,
            scale: self.scale.map(|s| match s {
                Scale::Linear => ScaleKind::Linear,
                Scale::Log => ScaleKind::Log,
                Scale::Diverging => ScaleKind::Diverging,
            }),
        }
    }
}

/// Runs `finesse figure`.
pub fn run(args: FigureArgs) -> Result<()> {
    match args.kind {
        Kind::Sparsity { run, grid, out } => {
            write(&figures::sparsity(&open(&run.run)?, grid.options())?, &out)
        }
        Kind::Distance {
            run,
            base,
            other,
            metric,
            vs_random,
            grid,
            out,
        } => {
            let figure = match (run, base, other) {
                (Some(run), None, None) => {
                    figures::distance(&open(&run)?, metric.into(), vs_random, grid.options())?
                }
                (None, Some(base), Some(other)) => figures::distance_of_models(
                    &base,
                    &other,
                    metric.into(),
                    vs_random,
                    grid.options(),
                )?,
                _ => bail!("give a run directory, or --base and --other models"),
            };
            write(&figure, &out)
        }
        Kind::Fisher {
            run,
            stat,
            grid,
            out,
        } => {
            let stat = match stat {
                Stat::Mean => FisherStat::Mean,
                Stat::Total => FisherStat::Total,
                Stat::Share => FisherStat::Share,
                Stat::TopMass => FisherStat::TopMass,
            };
            write(
                &figures::fisher(&open(&run.run)?, stat, grid.options())?,
                &out,
            )
        }
        Kind::Overlap { runs, cell, out } => {
            let scope = match cell {
                Some(c) => parse_cell(&c)?,
                None => OverlapScope::Overall,
            };
            write(&figures::overlap(&open_all(&runs.runs)?, scope)?, &out)
        }
        Kind::Curves {
            runs,
            smoothing,
            out,
        } => {
            if !(0.0..1.0).contains(&smoothing) {
                bail!("--smoothing must be in [0, 1), got {smoothing}");
            }
            write(&figures::curves(&open_all(&runs.runs)?, smoothing)?, &out)
        }
        Kind::Sweep { runs, axis, out } => {
            let axis = match axis {
                Axis::KeepRatio => SweepAxis::KeepRatio,
                Axis::Sparsity => SweepAxis::Sparsity,
                Axis::Lr => SweepAxis::Lr,
                Axis::FisherSamples => SweepAxis::FisherSamples,
            };
            write(&figures::sweep(&open_all(&runs.runs)?, axis)?, &out)
        }
        Kind::Magnitudes { run, out } => write(&figures::magnitudes(&open(&run.run)?)?, &out),
        Kind::DistanceVsSteps { runs, metric, out } => write(
            &figures::distance_vs_steps(&open_all(&runs.runs)?, metric.into())?,
            &out,
        ),
        Kind::All { run, out, format } => all(&run.run, out, format),
    }
}

fn open(path: &Path) -> Result<Run> {
    Run::open(path).with_context(|| format!("reading the run {}", path.display()))
}

/// `LAYER:MATRIX` (layer from 1) → the overlap's cell.
fn parse_cell(text: &str) -> Result<OverlapScope> {
    let labels = finesse_sparse::grid::matrix_labels();
    let parsed = text.split_once(':').and_then(|(l, m)| {
        let layer: usize = l.trim().parse().ok()?;
        let column = labels
            .iter()
            .position(|x| x.eq_ignore_ascii_case(m.trim()))?;
        (layer >= 1).then(|| OverlapScope::Cell(layer - 1, column))
    });
    parsed.with_context(|| {
        format!(
            "--cell {text}: expected LAYER:MATRIX with layer from 1 and MATRIX one of {}",
            labels.join(", ")
        )
    })
}

fn write<F: Figure>(figure: &F, out: &OutArgs) -> Result<()> {
    OutputFormat::of_path(&out.out)?;
    if !(out.dpi > 0.0 && out.dpi <= 1200.0) {
        bail!("--dpi must be in (0, 1200], got {}", out.dpi);
    }
    let (w, h) = figure.default_size();
    let canvas = Canvas::new(out.width.unwrap_or(w), out.height.unwrap_or(h)).with_dpi(out.dpi);
    if canvas.width < 200 || canvas.height < 150 || canvas.width > 20_000 || canvas.height > 20_000
    {
        bail!(
            "figure size {}×{} is outside 200×150 … 20000×20000",
            canvas.width,
            canvas.height
        );
    }
    let (pw, ph) = canvas.pixels();
    if u64::from(pw) * u64::from(ph) > 100_000_000 {
        bail!(
            "a {pw}×{ph}-pixel PNG ({}×{} at {} dpi) is over 100 megapixels: lower --dpi or the size",
            canvas.width,
            canvas.height,
            out.dpi
        );
    }
    canvas::save(figure, &out.out, Some(canvas))?;
    println!("{}", out.out.display());
    Ok(())
}

fn all(run: &Path, out: Option<PathBuf>, format: Format) -> Result<()> {
    let run = open(run)?;
    let dir = out.unwrap_or_else(|| run.summary.path.join("figures"));
    let format = match format {
        Format::Png => OutputFormat::Png,
        Format::Svg => OutputFormat::Svg,
    };
    let done = figures::figure_all(&run, &dir, format)?;
    for path in &done.written {
        println!("wrote {}", path.display());
    }
    for (name, why) in &done.skipped {
        println!("skipped {name}: {why}");
    }
    Ok(())
}
