//! `finesse fisher`: the diagonal Fisher of every parameter on a task's training set, as a
//! Fisher file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use finesse_bert::checkpoint::{TOKENIZER_FILE, model_folder_paths};
use finesse_bert::{
    BertForSequenceClassification, BertTokenizer, check_model_limits, load_bert, load_classifier,
};
use finesse_glue::data::split_path;
use finesse_glue::{GlueTask, HostBatch, SplitKind, encode_split, load_split, make_batch};
use finesse_sparse::fisher::{estimate, pick_samples};
use finesse_sparse::{FisherFile, FisherKindName, FisherMeta, SampleOrder};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::DeviceChoice;
use crate::forward::read_head;
use crate::sparse_cmd::{check_distinct, model_folder};

/// Arguments of `finesse fisher`.
#[derive(Debug, Args)]
pub struct FisherArgs {
    /// Model: a known name, an HF folder, or a run directory (its model/).
    #[arg(long, default_value = finesse_bert::hub::DEFAULT_MODEL)]
    model: String,
    /// GLUE task whose training set supplies the samples.
    #[arg(long)]
    task: String,
    /// Folder in GLUE layout.
    #[arg(long, env = "GLUE_DIR")]
    data_dir: PathBuf,
    /// Number of training examples (N).
    #[arg(long, default_value_t = 1024)]
    samples: usize,
    /// Which Fisher: the true label's squared gradient (the FISH default), the exact
    /// expectation over classes, or labels drawn from the model.
    #[arg(long, value_enum, ignore_case = true, default_value_t = FisherKindName::Empirical)]
    kind: FisherKindName,
    /// Label draws per sample for --kind sampled.
    #[arg(long, default_value_t = 1)]
    draws: usize,
    /// Take the first N examples of the file, or N after a seeded shuffle.
    #[arg(long, value_enum, ignore_case = true, default_value_t = SampleOrder::Shuffled)]
    order: SampleOrder,
    /// Maximum tokens per example.
    #[arg(long, default_value_t = 128)]
    max_seq_len: usize,
    /// Classifier head (`classifier.weight`, `classifier.bias`); default: the model's own head,
    /// else a fresh one from --seed.
    #[arg(long)]
    head: Option<PathBuf>,
    /// Seed of the shuffle, the fresh head and the label draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Backend: flex, ndarray, wgpu (wgpu:N for adapter N; wgpu:list lists them), cuda.
    #[arg(long, value_parser = crate::device::parse, default_value_t = DeviceChoice::default_choice())]
    device: DeviceChoice,
    /// Output: one f32 tensor per parameter (HF name, PyTorch layout).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `finesse fisher`.
pub fn run(args: FisherArgs) -> Result<()> {
    let task: GlueTask = args.task.parse()?;
    let kind = args.kind.with_draws(args.draws);
    let order = args.order;
    let device = args.device.device()?.autodiff();
    let dir = model_folder(&args.model)?;
    let (_, train_file, _) = split_path(task, &args.data_dir, SplitKind::Train);
    let mut inputs = model_folder_paths(&dir);
    inputs.extend(args.head.iter().cloned());
    inputs.extend([args.data_dir.clone(), train_file]);
    check_distinct(&[&args.out], &inputs)?;
    let (model, config) = match &args.head {
        Some(head) => {
            let (bert, config, _) = load_bert(&dir, &device)?;
            let (w, b) = read_head(head, &config)?;
            if w.shape[0] != task.num_outputs() {
                bail!(
                    "{}: the head has {} outputs, {task} needs {}",
                    head.display(),
                    w.shape[0],
                    task.num_outputs()
                );
            }
            let model = BertForSequenceClassification::with_head(bert, &config, w, b, &device)
                .context("the head does not fit the model")?;
            (model, config)
        }
        None => {
            let (model, config, report) =
                load_classifier(&dir, task.num_outputs(), args.seed, &device)?;
            if !report.head_from_checkpoint {
                eprintln!(
                    "note: the model has no {task} head; using a fresh one (seed {})",
                    args.seed
                );
            }
            (model, config)
        }
    };
    let tokenizer = BertTokenizer::from_file(&dir.join(TOKENIZER_FILE), args.max_seq_len)?;
    check_model_limits(&config, &tokenizer, &dir)?;
    let split = load_split(task, &args.data_dir, SplitKind::Train, false)?;
    let data = encode_split(&split, &tokenizer)?;
    let picked = pick_samples(data.len(), args.samples, order, args.seed);
    let samples: Vec<HostBatch> = picked.iter().map(|&i| make_batch(&data, &[i])).collect();
    let bar = bar(samples.len() as u64, "samples");
    let started = Instant::now();
    let scores = estimate(&model, &samples, kind, args.seed, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    FisherFile {
        scores,
        meta: FisherMeta::new(kind, samples.len(), &task.to_string(), order, args.seed),
    }
    .write(&args.out)?;
    eprintln!(
        "{} Fisher over {} samples in {:.1}s → {}",
        kind.name(),
        samples.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = crate::logging::add(ProgressBar::new(len));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:30}} {{pos}}/{{len}} {unit}  [{{elapsed_precise}} < {{eta_precise}}]"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
