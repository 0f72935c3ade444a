//! `finesse bench`: the time of a training step, a Fisher sample or an evaluation batch, as
//! one JSON object on the last stdout line (progress on stderr). `scripts/bench-vs-pytorch.sh`
//! puts it beside the PyTorch reference; `BENCHMARKS.md` records the figures.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use finesse_glue::GlueTask;
use finesse_train::bench::{BenchMode, BenchReport, BenchSettings, bench};
use finesse_train::{MethodConfig, RunConfig};

use crate::device::DeviceChoice;

/// Arguments of `finesse bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to time: a dense training step, a FISH-masked step, the Fisher per sample, or an
    /// evaluation batch.
    #[arg(long, value_enum)]
    mode: BenchMode,
    /// Model: a known name (cached, fetched on first use), an HF folder, or a run directory.
    #[arg(long, default_value = finesse_bert::hub::DEFAULT_MODEL)]
    model: String,
    /// GLUE task.
    #[arg(long, default_value = "sst2")]
    task: String,
    /// Folder in GLUE layout; default $FINESSE_HOME/data/glue.
    #[arg(long, env = "GLUE_DIR")]
    data_dir: Option<PathBuf>,
    /// Examples per step (and per evaluation batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Maximum tokens per example.
    #[arg(long, default_value_t = 128)]
    max_seq_len: usize,
    /// Pad every batch to --max-seq-len (as the reference does) instead of to its longest row.
    #[arg(long)]
    pad_to_max: bool,
    /// Batches as a run makes them, without length bucketing (bucketing is a run's default).
    #[arg(long)]
    no_bucketing: bool,
    /// fish-step: fraction of all parameters kept.
    #[arg(long, default_value_t = finesse_train::method::DEFAULT_KEEP_RATIO)]
    keep_ratio: f64,
    /// fish-step: training examples of the Fisher behind the mask (not timed).
    #[arg(long, default_value_t = 256)]
    fisher_samples: usize,
    /// Timed units: steps, Fisher samples or evaluation batches.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed units before them.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Threads of the CPU backends (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Learning rate of the steps (constant: no warm-up).
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    /// Seed of the head, the data order and the Fisher samples.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Backend: flex, ndarray, wgpu (wgpu:N for adapter N), cuda.
    #[arg(long, value_parser = crate::device::parse, default_value_t = DeviceChoice::default_choice())]
    device: DeviceChoice,
    /// Also write the JSON object to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// Runs `finesse bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    // The CPU backends (flex, ndarray) and their matmuls run on rayon's global pool.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("setting up the thread pool")?;
    let config = config_of(&args)?;
    let settings = BenchSettings {
        mode: args.mode,
        steps: args.steps,
        warmup: args.warmup,
        pad_to_max: args.pad_to_max,
        threads,
    };
    let device = args.device.device()?;
    eprintln!(
        "== bench {:?} on {} ({} threads), batch {} × length ≤ {}{}",
        args.mode,
        args.device,
        threads,
        args.batch_size,
        args.max_seq_len,
        if args.pad_to_max { " (padded)" } else { "" }
    );
    let report = bench(&config, &settings, &device, &mut |line| eprintln!("{line}"))?;
    eprintln!("{}", summary(&report));
    let json = serde_json::to_string(&report)?;
    if let Some(path) = &args.json_out {
        finesse_bert::io::write_atomic(path, format!("{json}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    Ok(())
}

fn config_of(args: &BenchArgs) -> Result<RunConfig> {
    let task: GlueTask = args.task.parse()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(finesse_glue::fetch::default_data_dir);
    let mut config = RunConfig::new(args.model.clone(), task, data_dir, PathBuf::new());
    config.device = finesse_train::device::device_label(args.device);
    config.seed = args.seed;
    config.batch_size = args.batch_size;
    config.max_seq_len = args.max_seq_len;
    config.lr = args.lr;
    config.warmup_ratio = 0.0;
    config.bucketing = !args.no_bucketing;
    if args.mode == BenchMode::FishStep {
        config.method = MethodConfig::fish_global(args.keep_ratio, args.fisher_samples);
    }
    Ok(config)
}

/// One human line for stderr.
fn summary(r: &BenchReport) -> String {
    let per = match (r.seconds_per_step, r.seconds_per_sample) {
        (_, Some(s)) => format!("{s:.4} s/sample"),
        (Some(s), _) => format!("{s:.3} s/step"),
        _ => "?".into(),
    };
    format!(
        "median {per}, {:.1} examples/s, {:.0} tokens/s ({:.0} padded), CPU {}%, peak RSS {} MiB{}",
        r.examples_per_sec,
        r.tokens_per_sec,
        r.padded_tokens_per_sec,
        r.cpu_percent.map_or("?".into(), |c| format!("{c:.0}")),
        r.peak_rss_mb.map_or("?".into(), |m| format!("{m:.0}")),
        r.optimizer_state_bytes.map_or(String::new(), |b| format!(
            ", optimizer state {:.1} MiB for {} trained entries",
            b as f64 / 1048576.0,
            r.trainable_params.unwrap_or(0)
        )),
    ) + &r.phase_seconds.map_or(String::new(), |p| {
        format!(
            "\nphases (medians): forward {:.3} s, backward {:.3} s, gradients {:.3} s, clip {:.3} s, \
             update {:.3} s",
            p.forward, p.backward, p.gradients, p.clip, p.update
        )
    })
}
