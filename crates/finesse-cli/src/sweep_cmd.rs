//! `finesse sweep`: one `finesse finetune` over a grid of learning rates × seeds, each cell its
//! own run directory and its own process (Burn's random generator is per process), then the
//! table of `finesse report --group-by method,lr`: mean ± sample std over the seeds per lr.
//!
//! Running the same command again continues the sweep: finished cells are kept, cancelled or
//! interrupted ones resume from their checkpoint, and failed ones are reported and left alone
//! (remove the folder to run one again). Ctrl-C stops the cell being trained at its next step
//! with a checkpoint, and the sweep stops after it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory};
use finesse_report::report::{GroupKey, Report};
use finesse_train::{RunDir, RunStatus};

/// Arguments of `finesse sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep's folder: one run directory per cell (`lr<LR>-seed<SEED>`) and `report.md`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Learning rates (comma-separated), e.g. `1e-3,3e-3`.
    #[arg(long, value_delimiter = ',', required = true, value_name = "LRS")]
    lrs: Vec<String>,
    /// Seeds (comma-separated); each changes the head, the data order, dropout and (FISH) the
    /// Fisher's examples.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "42,43,44",
        value_name = "SEEDS"
    )]
    seeds: Vec<u64>,
    /// The `finesse finetune` flags every cell shares (after `--`), without --lr, --seed,
    /// --output-dir and --resume, which the sweep sets.
    #[arg(last = true, value_name = "FINETUNE FLAGS")]
    finetune: Vec<String>,
}

/// One cell of the grid.
struct Cell {
    lr: String,
    seed: u64,
    dir: PathBuf,
}

/// What happened to a cell in this invocation.
enum Outcome {
    Done,
    Failed(String),
    Skipped(String),
}

/// Runs `finesse sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    let cells = plan(&args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        // The cell's own process gets the signal too and checkpoints; the sweep waits for it.
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let exe = std::env::current_exe().context("finding the finesse binary")?;
    let mut problems = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        eprintln!(
            "== sweep cell {}/{}: lr {} seed {} → {}",
            i + 1,
            cells.len(),
            cell.lr,
            cell.seed,
            cell.dir.display()
        );
        match run_cell(&exe, cell, &args.finetune)? {
            Outcome::Done => {}
            Outcome::Skipped(why) => eprintln!("   {why}"),
            Outcome::Failed(why) => {
                eprintln!("   failed: {why}");
                problems.push(format!("{}: {why}", cell.dir.display()));
            }
        }
        if stop.load(Ordering::SeqCst) {
            bail!(
                "interrupted after {}; run the same command again to continue the sweep",
                cell.dir.display()
            );
        }
    }
    let table = Report::open(std::slice::from_ref(&args.out))
        .context("reading the sweep's runs")?
        .grouped(&[
            GroupKey::Task,
            GroupKey::Method,
            GroupKey::Kept,
            GroupKey::Lr,
        ])
        .to_markdown();
    let report = args.out.join("report.md");
    finesse_bert::io::write_atomic(&report, table.as_bytes())
        .with_context(|| format!("writing {}", report.display()))?;
    println!("{table}");
    println!(
        "(mean ± sample std over each lr's finished seeds; `finesse report {}` lists every run; \
         written to {})",
        args.out.display(),
        report.display()
    );
    if !problems.is_empty() {
        bail!(
            "{} cell(s) did not finish:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The cells, after checking the shared flags once (so a typo fails before any training).
fn plan(args: &SweepArgs) -> Result<Vec<Cell>> {
    for flag in &args.finetune {
        let name = flag.split('=').next().unwrap_or_default();
        if ["--lr", "--seed", "--output-dir", "--resume"].contains(&name) {
            bail!("{name} is set by the sweep (--lrs, --seeds, --out); leave it out after `--`");
        }
    }
    if args.seeds.is_empty() {
        bail!("--seeds: give at least one seed");
    }
    let mut cells = Vec::new();
    for lr in &args.lrs {
        lr.parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && v.is_finite())
            .with_context(|| format!("--lrs: {lr:?} is not a positive number"))?;
        for &seed in &args.seeds {
            let dir = args.out.join(format!("lr{lr}-seed{seed}"));
            cells.push(Cell {
                lr: lr.clone(),
                seed,
                dir,
            });
        }
    }
    if let Some(first) = cells.first() {
        let argv = finetune_argv(first, &args.finetune);
        crate::Cli::command()
            .try_get_matches_from(std::iter::once("finesse".to_string()).chain(argv))
            .map_err(|e| anyhow::anyhow!("the finetune flags after `--`: {e}"))?;
    }
    Ok(cells)
}

fn finetune_argv(cell: &Cell, shared: &[String]) -> Vec<String> {
    let mut argv = vec!["finetune".to_string()];
    argv.extend(shared.iter().cloned());
    argv.extend([
        "--lr".into(),
        cell.lr.clone(),
        "--seed".into(),
        cell.seed.to_string(),
        "--output-dir".into(),
        cell.dir.display().to_string(),
    ]);
    argv
}

/// Trains, resumes or skips one cell, as its folder's state says.
fn run_cell(exe: &Path, cell: &Cell, shared: &[String]) -> Result<Outcome> {
    let argv = if !cell.dir.exists() {
        finetune_argv(cell, shared)
    } else {
        match RunDir::new(&cell.dir).status() {
            RunStatus::Finished => return Ok(Outcome::Skipped("finished earlier".into())),
            RunStatus::Running => {
                return Ok(Outcome::Skipped(
                    "another process is training it now; left alone".into(),
                ));
            }
            RunStatus::Cancelled | RunStatus::Interrupted { resumable: true } => vec![
                "finetune".into(),
                "--resume".into(),
                cell.dir.display().to_string(),
            ],
            RunStatus::Failed { message } => {
                return Ok(Outcome::Failed(format!(
                    "failed earlier ({message}); remove the folder to run it again"
                )));
            }
            RunStatus::Interrupted { resumable: false } | RunStatus::Unknown => {
                return Ok(Outcome::Failed(
                    "its folder holds no finished or resumable run; remove it to run the cell \
                     again"
                        .into(),
                ));
            }
        }
    };
    // The cells' own output goes to stderr: stdout holds the sweep's table only.
    let status = Command::new(exe)
        .args(&argv)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok(match RunDir::new(&cell.dir).status() {
        RunStatus::Finished if status.success() => Outcome::Done,
        RunStatus::Cancelled => Outcome::Skipped("cancelled; it resumes on the next sweep".into()),
        RunStatus::Failed { message } => Outcome::Failed(message),
        other => Outcome::Failed(format!(
            "finetune exited with {status} (run status {other:?})"
        )),
    })
}
