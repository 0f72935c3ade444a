//! `finesse finetune` and `finesse eval`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use clap::parser::ValueSource;
use finesse_glue::GlueTask;
use finesse_sparse::prune::PruneScope;
use finesse_sparse::{FisherKindName, SampleOrder};
use finesse_train::config::OptimizerChoice;
use finesse_train::method::{DEFAULT_KEEP_RATIO, FisherSettings, MethodName};
use finesse_train::progress::Phase;
use finesse_train::trainer::{EvalRequest, evaluate_folder};
use finesse_train::{
    Event, MethodConfig, ResumeRequest, RunConfig, RunDir, RunOutcome, RunProgress, start_run,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::DeviceChoice;
use crate::sparse_cmd::BudgetArgs;

/// Arguments of `finesse finetune`.
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// Model: a known name (cached, fetched on first use), an HF folder, or a run directory
    /// (its model/). With --resume: the run's model moved elsewhere (same sha256).
    #[arg(long)]
    model: Option<String>,
    /// GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli (any case, dash optional).
    #[arg(long, required_unless_present = "resume")]
    task: Option<String>,
    /// Folder in GLUE layout (<dir>/<TASK>/train.tsv, dev.tsv); default $FINESSE_HOME/data/glue,
    /// where `finesse data fetch` puts the tasks.
    #[arg(long, env = "GLUE_DIR")]
    data_dir: Option<PathBuf>,
    /// Training epochs.
    #[arg(long, default_value_t = 3.0)]
    epochs: f64,
    /// Total optimizer steps (overrides --epochs).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    /// Fraction of steps for linear warm-up.
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    /// AdamW weight decay (not on biases and LayerNorm).
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Clip the global gradient norm (0 disables).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Maximum tokens per example.
    #[arg(long, default_value_t = 128)]
    max_seq_len: usize,
    /// Seed of head init, data order, subsets and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Evaluate every N steps (default: once per epoch, and at the end).
    #[arg(long)]
    eval_every: Option<usize>,
    /// Log a step event every N steps.
    #[arg(long, default_value_t = 10)]
    log_every: usize,
    /// Train on at most N examples (taken after a seeded shuffle).
    #[arg(long)]
    max_train_examples: Option<usize>,
    /// Evaluate on at most N examples (taken after a seeded shuffle).
    #[arg(long)]
    max_eval_examples: Option<usize>,
    /// Skip malformed TSV rows (they are counted and listed in run.json) instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Do not group examples of similar length into batches.
    #[arg(long)]
    no_bucketing: bool,
    /// Take the training rows in file order every epoch, in batches of consecutive rows (and
    /// --max-train-examples N takes the first N): for step-for-step comparisons with another
    /// trainer.
    #[arg(long)]
    no_shuffle: bool,
    /// Turn every dropout off in training (the model's config.json is written unchanged).
    #[arg(long)]
    no_dropout: bool,
    /// Backend: flex, ndarray, wgpu (wgpu:N for adapter N; wgpu:list lists them), cuda (default:
    /// the first compiled in, flex in a default build; with --resume, the run's own).
    #[arg(long, value_parser = crate::device::parse)]
    device: Option<DeviceChoice>,
    /// With --resume: continue on another --device than the run's (results then differ in
    /// rounding from an uninterrupted run).
    #[arg(long, requires = "resume")]
    force_device: bool,
    /// Write a resumable checkpoint every N steps (besides on Ctrl-C and SIGTERM), so a crash
    /// or SIGKILL loses at most N steps: `--resume DIR` continues from it.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Keep the model of the best evaluation (main dev metric) as an HF folder `best/`.
    #[arg(long)]
    save_best: bool,
    /// Under mpirun/srun: ranks take N steps on their own share of each batch, then average
    /// the trained entries (k floats for FISH); default: all-reduce gradients every step.
    #[arg(long, value_name = "N")]
    sync_every: Option<usize>,
    /// The run directory, new or empty (default: runs/<task>-<unix time>).
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Write the fine-tuned model as an HF folder `model/` in the run directory.
    #[arg(long)]
    save_model: bool,
    /// Training method; the flags marked "With --method X" (and the mask budget flags for fish
    /// and random) belong to that method only.
    #[arg(long, value_enum, default_value_t = MethodName::Dense)]
    method: MethodName,
    /// With --method freeze: a group to keep frozen (repeatable): wq|wk|wv|wd|wi|wo[@LAYERS],
    /// deepest:N, layers:LIST, word-embeddings, embeddings, pooler, layer-norms, regex:PATTERN.
    #[arg(long = "freeze", value_name = "SPEC")]
    freeze: Vec<String>,
    /// Mask budget for fish/random (default --keep-ratio 0.005).
    #[command(flatten)]
    budget: BudgetArgs,
    /// FISH: training examples for the Fisher information.
    #[arg(long, default_value_t = 1024)]
    fisher_samples: usize,
    /// FISH: which Fisher information.
    #[arg(long, value_enum, ignore_case = true, default_value_t = FisherKindName::Empirical)]
    fisher_kind: FisherKindName,
    /// FISH: label draws per sample for --fisher-kind sampled.
    #[arg(long, default_value_t = 1)]
    fisher_draws: usize,
    /// FISH: first N examples of the file, or N after a seeded shuffle.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SampleOrder::Shuffled)]
    fisher_order: SampleOrder,
    /// FISH: reuse this mask (`finesse mask --out`) instead of computing the Fisher information.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// With --method prune: final sparsity of WQ…WO (e.g. 0.3).
    #[arg(long, default_value_t = 0.5)]
    final_sparsity: f64,
    /// With --method prune: initial sparsity.
    #[arg(long, default_value_t = 0.0)]
    initial_sparsity: f64,
    /// With --method prune: first pruning step (default 10% into the run).
    #[arg(long)]
    prune_start: Option<usize>,
    /// With --method prune: steps between pruning events (default: spread to 80% of the run).
    #[arg(long)]
    prune_every: Option<usize>,
    /// With --method prune: number of pruning intervals.
    #[arg(long, default_value_t = 10)]
    prune_events: usize,
    /// With --method prune: magnitude threshold per matrix or over all of WQ…WO.
    #[arg(long, value_enum, ignore_case = true, default_value_t = PruneScope::PerMatrix)]
    prune_scope: PruneScope,
    /// With --method supermask: initial sparsity of the soft magnitude mask (scores −5 / +5).
    #[arg(long, default_value_t = 0.05)]
    supermask_init_sparsity: f64,
    /// With --method supermask: peak learning rate of the scores (the head uses --lr).
    #[arg(long, default_value_t = 0.2)]
    score_lr: f64,
    /// With --method supermask: sampled masks evaluated at the end (mean ± std).
    #[arg(long, default_value_t = 10)]
    supermask_samples: usize,
    /// Optimizer.
    #[arg(long, value_enum, ignore_case = true, default_value_t = OptimizerChoice::Adamw)]
    optimizer: OptimizerChoice,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f64,
    /// Continue the cancelled or interrupted run in DIR from its checkpoint. Its run.json gives
    /// every setting; only --device (checked), --force-device, --model / --data-dir (moved
    /// files, sha256-checked) and --checkpoint-every may be given.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["task", "output_dir"])]
    resume: Option<PathBuf>,
}

/// The flags `--resume` accepts; any other flag given with it is refused.
const RESUME_FLAGS: [&str; 6] = [
    "resume",
    "device",
    "force_device",
    "model",
    "data_dir",
    "checkpoint_every",
];

fn config_from(args: &FinetuneArgs, matches: &clap::ArgMatches) -> Result<RunConfig> {
    let task: GlueTask = args.task.as_deref().unwrap_or_default().parse()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(finesse_glue::fetch::default_data_dir);
    if args.output_dir.is_none() && finesse_train::dist::world().size() > 1 {
        // Each rank would name the run from its own clock.
        bail!("a data-parallel job needs --output-dir (the same folder on every rank)");
    }
    let output_dir = args.output_dir.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from("runs").join(format!("{}-{secs}", task.spec().name.to_lowercase()))
    });
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| finesse_bert::hub::DEFAULT_MODEL.to_string());
    let mut c = RunConfig::new(model, task, data_dir, output_dir);
    c.device = finesse_train::device::device_label(
        args.device.unwrap_or_else(DeviceChoice::default_choice),
    );
    c.checkpoint_every = args.checkpoint_every;
    c.save_best = args.save_best;
    c.sync_every = args.sync_every;
    c.seed = args.seed;
    c.epochs = args.epochs;
    c.max_steps = args.max_steps;
    c.batch_size = args.batch_size;
    c.lr = args.lr;
    c.warmup_ratio = args.warmup_ratio;
    c.max_grad_norm = (args.max_grad_norm > 0.0).then_some(args.max_grad_norm);
    c.eval_every = args.eval_every;
    c.log_every = args.log_every;
    c.max_seq_len = args.max_seq_len;
    c.max_train_examples = args.max_train_examples;
    c.max_eval_examples = args.max_eval_examples;
    c.skip_bad_rows = args.skip_bad_rows;
    c.bucketing = !args.no_bucketing;
    c.shuffle = !args.no_shuffle;
    c.dropout = !args.no_dropout;
    c.save_model = args.save_model;
    c.method = method_from(args, matches)?;
    c.optimizer = args.optimizer.config(args.momentum);
    c.optimizer.weight_decay = args.weight_decay;

    c.validate()?;
    Ok(c)
}

/// The method flags as a [`MethodConfig`]: the flags of other methods are refused (the
/// vocabulary of which flag belongs to which method is `MethodName::flags`).
fn method_from(args: &FinetuneArgs, matches: &clap::ArgMatches) -> Result<MethodConfig> {
    let own = args.method.flags();
    let foreign: std::collections::BTreeSet<&str> = MethodName::ALL
        .iter()
        .flat_map(|m| m.flags().iter().copied())
        .filter(|flag| !own.contains(flag))
        .filter(|flag| {
            matches.value_source(&flag.replace('-', "_")) == Some(ValueSource::CommandLine)
        })
        .collect();
    if !foreign.is_empty() {
        let problems: Vec<String> = foreign
            .iter()
            .map(|flag| {
                let owners: Vec<&str> = MethodName::ALL
                    .iter()
                    .filter(|m| m.flags().contains(flag))
                    .map(|m| m.name())
                    .collect();
                format!("--{flag} applies to --method {}", owners.join(" or "))
            })
            .collect();
        bail!("{} (not {})", problems.join("; "), args.method.name());
    }
    Ok(match args.method {
        MethodName::Dense => MethodConfig::Dense,
        MethodName::Supermask => MethodConfig::Supermask {
            initial_sparsity: args.supermask_init_sparsity,
            score_lr: args.score_lr,
            eval_samples: args.supermask_samples,
        },
        MethodName::Prune => MethodConfig::Prune {
            initial: args.initial_sparsity,
            final_sparsity: args.final_sparsity,
            start_step: args.prune_start,
            interval: args.prune_every,
            events: args.prune_events,
            scope: args.prune_scope,
        },
        MethodName::Freeze => MethodConfig::Freeze {
            groups: args.freeze.clone(),
        },
        MethodName::Bitfit => MethodConfig::Bitfit,
        MethodName::Random => MethodConfig::Random {
            selection: args.budget.selection(Some(DEFAULT_KEEP_RATIO))?,
        },
        MethodName::Fish => MethodConfig::Fish {
            selection: match &args.mask {
                None => Some(args.budget.selection(Some(DEFAULT_KEEP_RATIO))?),
                Some(file)
                    if args.budget.keep_ratio.is_some()
                        || args.budget.keep_count.is_some()
                        || !args.budget.exclude.is_empty() =>
                {
                    bail!(
                        "--mask {} fixes the kept entries; drop --keep-ratio/--keep-count/--exclude",
                        file.display()
                    )
                }
                Some(_) => None,
            },
            fisher: FisherSettings {
                samples: args.fisher_samples,
                kind: args.fisher_kind.with_draws(args.fisher_draws),
                order: args.fisher_order,
            },
            mask_file: args.mask.clone(),
        },
    })
}

/// Runs `finesse finetune`; `matches` tells which flags were given on the command line. Under
/// an MPI launcher this process is one rank of a data-parallel job: an error on any rank ends
/// every rank (MPI_Abort) with a message naming it, instead of leaving the others waiting.
pub fn run(args: FinetuneArgs, matches: &clap::ArgMatches) -> Result<()> {
    let _mpi = finesse_train::dist::init_from_launcher()?;
    let world = finesse_train::dist::world();
    if world.size() > 1 {
        // A panic must end the job: unwinding would finalise MPI, which waits for the other
        // ranks, themselves waiting in a collective for this one.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            eprintln!(
                "rank {} of {} panicked: ending the job (MPI_Abort)",
                world.rank(),
                world.size()
            );
            world.abort(101);
        }));
    }
    let result = run_rank(args, matches);
    if let Err(e) = &result
        && world.size() > 1
    {
        eprintln!(
            "error on rank {} of {}: {e:#}\nending the job (MPI_Abort); resume it from its \
             last checkpoint with the same number of ranks",
            world.rank(),
            world.size()
        );
        world.abort(1);
    }
    result
}

fn run_rank(args: FinetuneArgs, matches: &clap::ArgMatches) -> Result<()> {
    let Some(dir) = &args.resume else {
        let config = config_from(&args, matches)?;
        let device = args.device.unwrap_or_else(DeviceChoice::default_choice);
        return drive(&config, device.device()?, device.name(), false);
    };
    let given: Vec<String> = matches
        .ids()
        .filter(|id| {
            matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
                && !RESUME_FLAGS.contains(&id.as_str())
        })
        .map(|id| format!("--{}", id.as_str().replace('_', "-")))
        .collect();
    if !given.is_empty() {
        bail!(
            "{} cannot change a resumed run: its settings come from {}. Drop {}, or start a \
             new run with them",
            given.join(", "),
            RunDir::new(dir).run_json().display(),
            if given.len() == 1 { "it" } else { "them" }
        );
    }
    let request = ResumeRequest {
        device: args.device.map(finesse_train::device::device_label),
        force_device: args.force_device,
        model: args.model.clone(),
        data_dir: matches
            .value_source("data_dir")
            .is_some_and(|s| s == clap::parser::ValueSource::CommandLine)
            .then(|| args.data_dir.clone())
            .flatten(),
        checkpoint_every: args.checkpoint_every,
    };
    let run = RunDir::open(dir).with_context(|| format!("reading the run in {}", dir.display()))?;
    let config = run.resume_config(&request)?;
    // `wgpu:N` (an adapter chosen at the start) selects that adapter again.
    let device = finesse_train::device::parse_device_arg(&config.device)
        .map_err(|e| anyhow::anyhow!("run.json names an unknown device: {e}"))?;
    drive(&config, device.device()?, device.name(), true)
}

/// The one-line state of a run for the progress bar.
fn progress_message(p: &RunProgress) -> String {
    match &p.phase {
        Phase::Preparing => "loading the model and data…".into(),
        Phase::Fisher { done, total } => format!("Fisher information: {done}/{total} samples"),
        Phase::Training | Phase::Ended => {
            let mut parts = vec![format!("epoch {:.2}", p.epoch())];
            if let Some(loss) = p.last_loss() {
                parts.push(format!("loss {loss:.4}"));
            }
            if let Some(lr) = p.losses.last().map(|l| l.lr) {
                parts.push(format!("lr {lr:.2e}"));
            }
            if p.examples_per_sec > 0.0 {
                parts.push(format!("{:.1} ex/s", p.examples_per_sec));
            }
            if let Some(eta) = p.eta_secs() {
                parts.push(format!("ETA {}", format_secs(eta)));
            }
            parts.join("  ")
        }
    }
}

/// `1h02m`, `3m05s`, `42s`.
fn format_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// A line worth printing above the bar for an event, if any.
fn event_line(event: &Event, config: &RunConfig) -> Option<String> {
    Some(match event {
        Event::Start {
            total_steps,
            start_step,
            train_examples,
            trainable_params,
            total_params,
            ..
        } => {
            let from = if *start_step > 0 {
                format!(", resuming at step {start_step}")
            } else {
                String::new()
            };
            format!(
                "{train_examples} training examples, {total_steps} steps{from}, {trainable_params} of {total_params} parameters trained"
            )
        }
        Event::Eval {
            step,
            split,
            loss,
            metrics,
            ..
        } => {
            let m: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            format!("step {step} {split}: loss {loss:.4}  {}", m.join("  "))
        }
        Event::Mask {
            method,
            kept,
            total,
            frozen_tensors,
            duration_secs,
        } => format!(
            "{method} mask: {kept} of {total} entries ({:.3}%), {frozen_tensors} tensors frozen, {duration_secs:.1}s",
            100.0 * *kept as f64 / (*total).max(1) as f64
        ),
        Event::Prune { step, sparsity } => {
            format!("step {step}: pruned to {:.1}% sparsity", 100.0 * sparsity)
        }
        Event::Cancelled { step } => format!(
            "cancelled after step {step}; resume with: finesse finetune --resume {}",
            config.output_dir.display()
        ),
        Event::Error { message, .. } => format!("error: {message}"),
        _ => return None,
    })
}

/// Runs (or resumes) `config` through the public run API with a progress bar fed by a
/// [`RunProgress`], then prints the summary. Shared by `finesse finetune` and `finesse demo`.
pub fn drive(
    config: &RunConfig,
    device: burn::tensor::Device,
    device_name: &str,
    resume: bool,
) -> Result<()> {
    let world = finesse_train::dist::world();
    if world.rank() > 0 {
        // Rank 0 reports for the job; the others train quietly.
        let handle = start_run(config.clone(), device, resume);
        let flag = handle.cancel_flag();
        let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        for _ in handle.events.iter() {}
        handle.join()?;
        return Ok(());
    }
    let ranks = if world.size() > 1 {
        format!(", {} ranks", world.size())
    } else {
        String::new()
    };
    eprintln!(
        "{} {} on {} ({}{ranks}) → {}",
        if resume { "resuming" } else { "fine-tuning" },
        config.model,
        config.task,
        device_name,
        config.output_dir.display()
    );
    let handle = start_run(config.clone(), device, resume);
    let flag = handle.cancel_flag();
    // Ctrl-C and SIGTERM (the ctrlc crate's `termination` feature): finish the current step,
    // write a checkpoint, exit cleanly. A second signal while that happens is ignored (the
    // checkpoint is written atomically either way).
    let _ = ctrlc::set_handler(move || {
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint…");
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });

    let bar = crate::logging::add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let mut progress = RunProgress::default();
    for event in handle.events.iter() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        progress.apply(now, &event);
        if let Some(line) = event_line(&event, config) {
            bar.println(line);
        }
        bar.set_length(progress.total_steps as u64);
        bar.set_position(progress.step as u64);
        bar.set_message(progress_message(&progress));
    }
    bar.finish_and_clear();
    match handle.join()? {
        RunOutcome::Finished(m) => print_summary(config, &m),
        RunOutcome::Cancelled { .. } => {}
    }
    Ok(())
}

fn print_summary(config: &RunConfig, m: &finesse_train::MetricsFile) {
    let summary: Vec<String> = m
        .final_metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    println!("final {}: {}", config.task, summary.join("  "));
    println!(
        "{} steps in {:.0}s, {:.1} examples/s, {:.0} tokens/s, peak memory {} MiB",
        m.steps,
        m.duration_secs,
        m.train_examples_per_sec,
        m.train_tokens_per_sec,
        m.peak_rss_mib.map_or("?".into(), |x| format!("{x:.0}"))
    );
    if let Some(s) = &m.sparse {
        println!(
            "{}: {} entries trained, {} changed; diff {:.2} MB vs dense model {:.1} MB; optimizer state {} entries",
            s.method,
            s.kept,
            s.diff_changed_entries,
            s.diff_bytes as f64 / 1e6,
            s.dense_model_bytes as f64 / 1e6,
            m.optimizer_state_entries
        );
    }
    if let Some(s) = &m.supermask {
        let main = s.sampled_mean.keys().next().cloned().unwrap_or_default();
        println!(
            "supermask: sparsity {:.2}% (σ(v) > 0.5); {} sampled masks: {main} {:.4} ± {:.4}",
            100.0 * s.sparsity,
            s.sampled.len(),
            s.sampled_mean.get(&main).copied().unwrap_or(f64::NAN),
            s.sampled_std.get(&main).copied().unwrap_or(f64::NAN)
        );
    }
    println!("run directory: {}", config.output_dir.display());
}

/// Arguments of `finesse eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model: a known name, an HF folder, or a run directory (its `model/`).
    #[arg(long)]
    model: String,
    /// GLUE task.
    #[arg(long)]
    task: String,
    /// Folder in GLUE layout (default $FINESSE_HOME/data/glue).
    #[arg(long, env = "GLUE_DIR", default_value_os_t = finesse_glue::fetch::default_data_dir())]
    data_dir: PathBuf,
    /// Maximum tokens per example.
    #[arg(long, default_value_t = 128)]
    max_seq_len: usize,
    /// Examples per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Evaluate on at most N examples (taken after a seeded shuffle).
    #[arg(long)]
    max_eval_examples: Option<usize>,
    /// Seed (subset choice; a fresh head when the model has none).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Backend: flex, ndarray, wgpu (wgpu:N for adapter N; wgpu:list lists them), cuda.
    #[arg(long, value_parser = crate::device::parse, default_value_t = DeviceChoice::default_choice())]
    device: DeviceChoice,
}

/// Runs `finesse eval`.
pub fn eval(args: EvalArgs) -> Result<()> {
    let task: GlueTask = args.task.parse()?;
    let folder = finesse_train::models::model_folder(&args.model)?;
    let device = args.device.device()?;
    let req = EvalRequest {
        task,
        data_dir: args.data_dir.clone(),
        max_seq_len: args.max_seq_len,
        batch_size: args.batch_size,
        max_eval_examples: args.max_eval_examples,
        seed: args.seed,
    };
    let results = evaluate_folder(&folder, &req, &device)?;
    if args.json {
        let v: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|r| {
                let mut m = r.metrics.clone();
                m.insert("eval_loss".into(), r.loss);
                (r.split.clone(), serde_json::to_value(m).unwrap_or_default())
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for r in results {
            let m: Vec<String> = r
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            println!("{task} {}: loss {:.4}  {}", r.split, r.loss, m.join("  "));
        }
    }
    Ok(())
}
