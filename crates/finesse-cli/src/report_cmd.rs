//! `finesse report`: the table of runs (Markdown, CSV or JSON), optionally grouped with
//! mean ± std over seeds. The work is `finesse_report::report`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use finesse_report::report::{GroupKey, Report};

/// Arguments of `finesse report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories, or folders of runs (every run directly inside, by name).
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// Output format (default: from --out's extension, .csv or .json, else md).
    #[arg(long, value_enum)]
    format: Option<ReportFormat>,
    /// Write the table to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Group runs that agree on these keys (task, method, kept, lr, seed; comma-separated,
    /// e.g. `method,lr`): one row per group with mean ± sample std (n − 1) over its finished
    /// runs.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "KEYS",
        conflicts_with = "pivot"
    )]
    group_by: Vec<GroupKey>,
    /// Pivot on this key (lr, seed, kept, task or method): one column per value, one row per
    /// combination of the other keys (seeds pooled), each cell the task's main dev metric,
    /// mean ± std over the finished runs in it; the best cell per row in bold (for seeds: the
    /// row's mean ± std in the last column).
    #[arg(long, value_name = "KEY")]
    pivot: Option<GroupKey>,
}

/// The table's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// A Markdown pipe table, numbers formatted for reading (minutes, MB, separators).
    Md,
    /// CSV with raw numbers (seconds, bytes, fractions); grouped columns as NAME_mean, NAME_std.
    Csv,
    /// Every row (and group) as JSON.
    Json,
}

impl ReportFormat {
    fn of(out: Option<&Path>) -> Self {
        match out.and_then(Path::extension).and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Self::Csv,
            Some(e) if e.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Md,
        }
    }
}

/// Runs `finesse report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let report = Report::open(&args.runs)
        .context("reading the runs")?
        .grouped(&args.group_by);
    let report = match args.pivot {
        Some(key) => report.pivoted(key),
        None => report,
    };
    let format = args
        .format
        .unwrap_or_else(|| ReportFormat::of(args.out.as_deref()));
    let text = match format {
        ReportFormat::Md => report.to_markdown(),
        ReportFormat::Csv => report.to_csv()?,
        ReportFormat::Json => report.to_json()? + "\n",
    };
    match &args.out {
        Some(path) => finesse_bert::io::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}
