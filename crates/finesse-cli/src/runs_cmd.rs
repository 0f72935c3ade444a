//! `finesse runs list|show`: run directories read through `finesse-train`'s typed readers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use finesse_train::rundir::main_metric;
use finesse_train::{RunDir, RunStatus};

/// Arguments of `finesse runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// The runs in a folder (default `runs/`): status, task, method, progress, main metric.
    List {
        /// The folder holding run directories.
        #[arg(default_value = "runs")]
        dir: PathBuf,
        /// Print JSON (one summary per run).
        #[arg(long)]
        json: bool,
    },
    /// One run: status, settings, progress, final and best metrics, mask and distances.
    Show {
        /// The run directory.
        dir: PathBuf,
        /// Print everything the run directory holds as JSON, through the typed readers.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `finesse runs`.
pub fn run(args: RunsArgs) -> Result<()> {
    match args.command {
        RunsCommand::List { dir, json } => list(&dir, json),
        RunsCommand::Show { dir, json } => show(&dir, json),
    }
}

fn list(dir: &Path, json: bool) -> Result<()> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file() || p.join("events.jsonl").is_file())
        .collect();
    runs.sort();
    if json {
        let all = runs
            .iter()
            .map(|p| -> Result<_> { Ok(RunDir::open(p)?.summary()?) })
            .collect::<Result<Vec<_>>>()?;
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "{:<32} {:<23} {:<6} {:<10} {:>13}  main metric",
        "run", "status", "task", "method", "steps"
    );
    for path in runs {
        let run = RunDir::open(&path)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string());
        let info = run.read_info().ok();
        let progress = run.progress()?;
        let metric = match run.read_metrics()? {
            Some(m) => m
                .main_metric()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .unwrap_or_default(),
            None => progress
                .last_metrics()
                .and_then(|e| main_metric(&e.metrics).map(|(k, v)| format!("{k} {v:.4} (last)")))
                .unwrap_or_default(),
        };
        println!(
            "{:<32} {:<23} {:<6} {:<10} {:>13}  {}",
            name,
            status_text(&progress.status),
            info.as_ref()
                .map_or("?".into(), |i| i.config.task.to_string()),
            info.as_ref().map_or("?", |i| i.config.method.name()),
            format!("{}/{}", progress.step, progress.total_steps),
            metric
        );
    }
    Ok(())
}

fn status_text(s: &RunStatus) -> String {
    match s {
        RunStatus::Interrupted { resumable: true } => "interrupted (resumable)".into(),
        RunStatus::Cancelled => "cancelled (resumable)".into(),
        other => other.name().into(),
    }
}

fn show(dir: &Path, json: bool) -> Result<()> {
    let run = RunDir::open(dir)?;
    let summary = run.summary()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("run {}: {}", dir.display(), status_text(&summary.status));
    if let RunStatus::Failed { message } = &summary.status {
        println!("  error: {message}");
    }
    if summary.status.is_resumable()
        && let Some(c) = &summary.checkpoint
    {
        println!(
            "  checkpoint at step {}; resume with: finesse finetune --resume {}",
            c.step,
            dir.display()
        );
    }
    if let Some(info) = &summary.info {
        let c = &info.config;
        println!(
            "  {} on {} ({}), method {}, lr {:e}, batch {}, seed {}, device {}",
            c.model,
            c.task,
            info.model_dir.display(),
            c.method.name(),
            c.lr,
            c.batch_size,
            c.seed,
            c.device
        );
        // A data-parallel run is launched as a job of the same size (resume refuses another).
        let launcher = if info.world_size > 1 {
            format!("mpirun -np {} ", info.world_size)
        } else {
            String::new()
        };
        match finesse_train::command::finetune_line(c) {
            Ok(line) => println!("  command: {launcher}{line}"),
            Err(e) => println!("  command: none ({e})"),
        }
    }
    let p = &summary.progress;
    println!(
        "  step {}/{} (epoch {:.2}), last loss {}",
        p.step,
        p.total_steps,
        p.epoch(),
        p.last_loss().map_or("—".into(), |l| format!("{l:.4}"))
    );
    if let Some((method, kept, total)) = &p.mask {
        println!(
            "  {method} mask: {kept} of {total} entries ({:.3}%)",
            100.0 * *kept as f64 / (*total).max(1) as f64
        );
    }
    if let Some(m) = &summary.metrics {
        let finals: Vec<String> = m
            .final_metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!("  final: {}", finals.join("  "));
        let best: Vec<String> = m
            .best
            .iter()
            .map(|(k, b)| format!("{k} {:.4} @{}", b.value, b.step))
            .collect();
        println!("  best: {}", best.join("  "));
    }
    if let Some(s) = &summary.mask_stats {
        crate::grid_print::print_grid(
            "  kept % per layer × matrix (and group)",
            &s.grid,
            8,
            |c| format!("{:.3}", 100.0 * c.fraction),
        );
    }
    if let Some(a) = &summary.analysis {
        crate::grid_print::print_grid(
            "  mean |Δ| / angular from the base per layer × matrix (and group)",
            &a.distance.grid,
            20,
            |d| format!("{:.2e} / {:.4}", d.mean_abs, d.angular),
        );
    }
    Ok(())
}
