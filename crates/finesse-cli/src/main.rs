//! `finesse`: sparse fine-tuning of BERT models on Burn. This binary is a thin clap front-end
//! over the library crates.

mod bench_cmd;
mod data_cmd;
mod demo;
mod device;
mod diff_cmd;
mod distance_cmd;
mod doctor_cmd;
mod figure_cmd;
mod finetune;
mod fisher_cmd;
mod forward;
mod grid_print;
mod logging;
mod mask_cmd;
mod model_cmd;
mod report_cmd;
mod runs_cmd;
mod sparse_cmd;
mod sweep_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
// A backend panic (out of device memory above all) becomes an error with advice.
use finesse_train::trainer::guarded;

/// Sparse fine-tuning of BERT-family models (FISH masks and friends) on Burn.
#[derive(Debug, Parser)]
#[command(name = "finesse", version, about, long_about = None)]
struct Cli {
    /// Never touch the network (also FINESSE_OFFLINE=1): known models must already be cached.
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job in one command: fetch the default model, FISH-fine-tune it briefly on SST-2,
    /// print the metrics and the run directory.
    Demo(demo::DemoArgs),
    /// Download the GLUE tasks ($FINESSE_HOME/data/glue): `finesse data fetch sst2 mrpc` or `all`.
    Data(data_cmd::DataArgs),
    /// Manage the local model cache ($FINESSE_HOME/models).
    Model(model_cmd::ModelArgs),
    /// Run the encoder (and optionally a classifier head) on inputs: the parity tool.
    Forward(forward::ForwardArgs),
    /// Fine-tune a model on a GLUE task; writes a run directory.
    Finetune(Box<finetune::FinetuneArgs>),
    /// Evaluate a model (folder, cached name or run directory) on a GLUE task's dev set.
    Eval(finetune::EvalArgs),
    /// Estimate the diagonal Fisher information of every parameter on a task's training set.
    Fisher(Box<fisher_cmd::FisherArgs>),
    /// Select a top-k mask from Fisher scores.
    Mask(mask_cmd::MaskArgs),
    /// Sparse diffs: export, apply, revert, compose, info.
    Diff(diff_cmd::DiffArgs),
    /// Run directories: list a folder of runs, show one (status, progress, metrics; --json).
    Runs(runs_cmd::RunsArgs),
    /// The table of runs (Markdown, CSV, JSON): metrics, budget, cost; --group-by method
    /// gives mean ± std over seeds.
    Report(report_cmd::ReportArgs),
    /// Distances between a base and a fine-tuned model per layer × matrix (L1, angular, L0).
    Distance(distance_cmd::DistanceArgs),
    /// What this machine offers: compiled backends, wgpu adapters, threads, model cache, GLUE.
    Doctor(doctor_cmd::DoctorArgs),
    /// The papers' figures from run directories, as PNG or SVG: sparsity, distance, fisher,
    /// overlap, curves, sweep, magnitudes, distance-vs-steps, or `all` of a run.
    Figure(figure_cmd::FigureArgs),
    /// Time a dense or FISH training step, the Fisher per sample, or an evaluation batch; the
    /// last stdout line is one JSON object (see BENCHMARKS.md).
    Bench(bench_cmd::BenchArgs),
    /// Fine-tune over learning rates × seeds, one run directory (and process) per cell, then
    /// the mean ± std per lr: `finesse sweep --out DIR --lrs 1e-3,3e-3 -- --task mrpc …`.
    Sweep(sweep_cmd::SweepArgs),
}

fn main() -> ExitCode {
    // Before any thread: tensor buffers stay in the process between steps (finesse-alloc).
    finesse_alloc::tune();
    // `finesse … | head` ends quietly instead of panicking on a closed stdout.
    finesse_alloc::default_sigpipe();
    logging::init();
    if device::list_if_asked() {
        return ExitCode::SUCCESS;
    }
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.offline {
        finesse_bert::hub::set_offline(true);
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Model(args) => model_cmd::run(args),
        Command::Forward(args) => guarded(|| forward::run(args)),
        Command::Finetune(args) => match matches.subcommand_matches("finetune") {
            Some(m) => finetune::run(*args, m),
            None => unreachable!("clap matched the finetune subcommand"),
        },
        Command::Eval(args) => guarded(|| finetune::eval(args)),
        Command::Fisher(args) => guarded(|| fisher_cmd::run(*args)),
        Command::Mask(args) => mask_cmd::run(args),
        Command::Diff(args) => diff_cmd::run(args),
        Command::Distance(args) => distance_cmd::run(args),
        Command::Figure(args) => figure_cmd::run(args),
        Command::Doctor(args) => doctor_cmd::run(args),
        Command::Runs(args) => runs_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Sweep(args) => sweep_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
