//! `finesse fisher`, `finesse mask` and `finesse diff …`: the FISH building blocks as files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use finesse_bert::checkpoint::model_folder_paths;
use finesse_bert::io::check_outputs_distinct;
use finesse_bert::{
    BertForSequenceClassification, BertTokenizer, HostTensor, ModelFolder, check_model_limits,
    load_bert, load_classifier, write_hf_folder,
};
use finesse_glue::data::split_path;
use finesse_glue::{GlueTask, HostBatch, SplitKind, encode_split, load_split, make_batch};
use finesse_sparse::files::read_model_tensors;
use finesse_sparse::fisher::{estimate, pick_samples};
use finesse_sparse::mask::{magnitude_like, overlap, select, stats};
use finesse_sparse::{
    Budget, FisherFile, FisherKind, FisherMeta, Mask, SampleOrder, Scope, Selection, SparseDiff,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::DeviceChoice;
use crate::forward::read_head;

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
    /// empirical (true label, the FISH default), expected (exact over classes) or sampled.
    #[arg(long, default_value = "empirical")]
    kind: String,
    /// Label draws per sample for --kind sampled.
    #[arg(long, default_value_t = 1)]
    draws: usize,
    /// Take the first N examples of the file, or N after a seeded shuffle.
    #[arg(long, default_value = "shuffled")]
    order: String,
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
    /// Backend.
    #[arg(long, value_enum, default_value_t = DeviceChoice::default_choice())]
    device: DeviceChoice,
    /// Output: one f32 tensor per parameter (HF name, PyTorch layout).
    #[arg(long)]
    out: PathBuf,
}

/// Parses `--kind` (with `--draws` for sampled).
pub fn fisher_kind(kind: &str, draws: usize) -> Result<FisherKind> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "empirical" => FisherKind::Empirical,
        "expected" => FisherKind::Expected,
        "sampled" => FisherKind::Sampled { draws },
        other => bail!("unknown Fisher kind `{other}` (expected empirical, expected or sampled)"),
    })
}

/// Runs `finesse fisher`.
pub fn fisher(args: FisherArgs) -> Result<()> {
    let task: GlueTask = args.task.parse()?;
    let kind = fisher_kind(&args.kind, args.draws)?;
    let order: SampleOrder = args.order.parse().map_err(anyhow::Error::msg)?;
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
    let tokenizer = BertTokenizer::from_file(&dir.join("tokenizer.json"), args.max_seq_len)?;
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
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:30}} {{pos}}/{{len}} {unit}  [{{elapsed_precise}} < {{eta_precise}}]"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// How many entries a mask keeps, shared by `finesse mask` and `finesse finetune`.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Kept fraction of all parameters (FISH: 0.005 = 0.5%).
    #[arg(long, conflicts_with = "keep_count")]
    pub keep_ratio: Option<f64>,
    /// Kept number of entries.
    #[arg(long)]
    pub keep_count: Option<usize>,
    /// global (one top-k over all parameters, FISH) or per-tensor.
    #[arg(long, default_value = "global")]
    pub scope: String,
    /// Keep the classifier in addition to the budget instead of counting it inside.
    #[arg(long)]
    pub head_outside_budget: bool,
    /// Set a parameter group aside (repeatable; the --freeze syntax: pooler, word-embeddings,
    /// wk@0-2, regex:PATTERN, …): it keeps nothing and the budget goes to the rest.
    #[arg(long, value_name = "SPEC")]
    pub exclude: Vec<String>,
}

impl BudgetArgs {
    /// The selection, with `default_ratio` when neither --keep-ratio nor --keep-count is given.
    pub fn selection(&self, default_ratio: Option<f64>) -> Result<Selection> {
        let budget = match (self.keep_ratio, self.keep_count, default_ratio) {
            (Some(r), _, _) => Budget::Ratio(r),
            (None, Some(k), _) => Budget::Count(k),
            (None, None, Some(r)) => Budget::Ratio(r),
            (None, None, None) => bail!("give --keep-ratio R or --keep-count K"),
        };
        Ok(Selection {
            budget,
            scope: self.scope.parse::<Scope>().map_err(anyhow::Error::msg)?,
            head_in_budget: !self.head_outside_budget,
            exclude: self.exclude.clone(),
        })
    }
}

/// Arguments of `finesse mask`: select a mask from Fisher scores, or (subcommands) look at
/// masks.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MaskArgs {
    #[command(subcommand)]
    command: Option<MaskCommand>,
    /// Fisher scores (`finesse fisher --out`).
    #[arg(long, required = true)]
    fisher: Option<PathBuf>,
    /// Budget and scope.
    #[command(flatten)]
    budget: BudgetArgs,
    /// Output mask: one u8 0/1 tensor per parameter (HF name, PyTorch layout).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Write the bit-packed form (8 entries per byte) instead.
    #[arg(long)]
    packed: bool,
    /// Print the statistics (kept per tensor and per layer × matrix) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum MaskCommand {
    /// Kept fraction per tensor, per layer × matrix (WQ…WO) and per kind of any mask file.
    Stats {
        /// A mask (either form), e.g. a run's mask.safetensors.
        mask: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Overlap of the dropped entries of two masks (Figure 7), or of a mask and magnitude
    /// pruning of a model at the same per-tensor sparsity (Table 4's overlap row).
    Overlap {
        /// The first mask.
        first: PathBuf,
        /// The second mask.
        #[arg(required_unless_present = "magnitude_of")]
        second: Option<PathBuf>,
        /// Compare with magnitude pruning of this model's weights instead (folder or name).
        #[arg(long, conflicts_with = "second")]
        magnitude_of: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `finesse mask`.
pub fn mask(args: MaskArgs) -> Result<()> {
    match args.command {
        Some(MaskCommand::Stats { mask, json }) => {
            let s = stats(&Mask::read(&mask)?);
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_stats(&s);
            }
            return Ok(());
        }
        Some(MaskCommand::Overlap {
            first,
            second,
            magnitude_of,
            json,
        }) => {
            let a = Mask::read(&first)?;
            let b = match (second, magnitude_of) {
                (Some(path), _) => Mask::read(&path)?,
                (None, Some(model)) => {
                    let dir = model_folder(&model)?;
                    magnitude_like(&a, &tensors_of(&dir)?)?
                }
                (None, None) => bail!("give a second mask or --magnitude-of MODEL"),
            };
            let r = overlap(&a, &b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "dropped by both: {} of {} (first) and {} (second): {:.2}% of the first's, Jaccard {:.4}",
                    r.overall.both,
                    r.overall.first,
                    r.overall.second,
                    100.0 * r.overall.of_first,
                    r.overall.jaccard
                );
                crate::grid_print::print_grid(
                    "share of the first mask's dropped entries also dropped by the second",
                    &r.grid,
                    8,
                    |o| format!("{:.3}", o.of_first),
                );
            }
            return Ok(());
        }
        None => {}
    }
    let (Some(fisher), Some(out)) = (args.fisher, args.out) else {
        bail!("give --fisher F and --out MASK (or a subcommand: stats, overlap)");
    };
    check_distinct(&[&out], &[&fisher])?;
    let scores = finesse_bert::io::read_float_tensors(&fisher)?.tensors;
    let selection = args.budget.selection(None)?;
    let mask = select(&scores, &selection)?;
    let meta = BTreeMap::from([
        ("fisher".to_string(), fisher.display().to_string()),
        ("selection".to_string(), serde_json::to_string(&selection)?),
    ]);
    mask.write(&out, args.packed, &meta)?;
    let s = stats(&mask);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_stats(&s);
        println!("mask → {}", out.display());
    }
    Ok(())
}

fn print_stats(s: &finesse_sparse::MaskStats) {
    println!(
        "kept {} of {} entries ({:.3}%)",
        s.overall.kept,
        s.overall.total,
        100.0 * s.overall.fraction
    );
    crate::grid_print::print_grid("kept % per layer × matrix (and group)", &s.grid, 8, |c| {
        format!("{:.3}", 100.0 * c.fraction)
    });
    for (kind, c) in &s.per_kind {
        println!(
            "{kind:>22}: {:>9} of {:>9} ({:.3}%)",
            c.kept,
            c.total,
            100.0 * c.fraction
        );
    }
}

/// Arguments of `finesse diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(subcommand)]
    command: DiffCommand,
}

#[derive(Debug, Subcommand)]
enum DiffCommand {
    /// Write the change of a fine-tuned model against its base as a sparse diff.
    Export {
        /// The base model (folder or cached name).
        #[arg(long)]
        base: String,
        /// The fine-tuned model (folder, or a run directory with model/).
        #[arg(long)]
        model: PathBuf,
        /// Output diff file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Apply a diff to its base, writing an HF folder.
    Apply {
        /// The base model (folder or cached name).
        #[arg(long)]
        base: String,
        /// The diff.
        #[arg(long)]
        diff: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Undo a diff on the fine-tuned model, writing the base as an HF folder.
    Revert {
        /// The fine-tuned model (folder, or a run directory with model/).
        #[arg(long)]
        model: PathBuf,
        /// The diff.
        #[arg(long)]
        diff: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compose two diffs (sequential: D2 made on D1's result; parallel: same base, D2 wins).
    Compose {
        /// The first diff.
        first: PathBuf,
        /// The second diff.
        second: PathBuf,
        /// Output diff file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print what a diff holds and its size.
    Info {
        /// The diff.
        diff: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The model folder of a model spec: a known name, an HF folder or a run directory.
fn model_folder(spec: &str) -> Result<PathBuf> {
    Ok(finesse_train::models::model_folder(spec)?)
}

/// Refuses outputs that would overwrite one of the inputs (compared as resolved paths).
fn check_distinct<O: AsRef<Path>, I: AsRef<Path>>(outputs: &[O], inputs: &[I]) -> Result<()> {
    let outputs: Vec<&Path> = outputs.iter().map(AsRef::as_ref).collect();
    let inputs: Vec<&Path> = inputs.iter().map(AsRef::as_ref).collect();
    Ok(check_outputs_distinct(&outputs, &inputs)?)
}

fn tensors_of(folder: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let f = ModelFolder::open(folder)?;
    Ok(read_model_tensors(&f.weights())?)
}

/// Runs `finesse diff …`.
pub fn diff(args: DiffArgs) -> Result<()> {
    match args.command {
        DiffCommand::Export { base, model, out } => {
            let base_dir = model_folder(&base)?;
            let model_dir = model_folder(&model.display().to_string())?;
            let mut inputs = model_folder_paths(&base_dir);
            inputs.extend(model_folder_paths(&model_dir));
            check_distinct(&[&out], &inputs)?;
            let config = std::fs::read_to_string(model_dir.join("config.json")).ok();
            let d = SparseDiff::export(&tensors_of(&base_dir)?, &tensors_of(&model_dir)?, config)?;
            d.write(&out)?;
            report(&d, &out);
        }
        DiffCommand::Apply { base, diff, out } => {
            let base_dir = model_folder(&base)?;
            let mut inputs = model_folder_paths(&base_dir);
            inputs.push(diff.clone());
            check_distinct(&model_folder_paths(&out), &inputs)?;
            let d = SparseDiff::read(&diff)?;
            let tensors = d.apply(&tensors_of(&base_dir)?)?;
            let config = match &d.config {
                Some(c) => c.clone().into_bytes(),
                None => std::fs::read(base_dir.join("config.json"))?,
            };
            let list: Vec<(String, HostTensor)> = tensors.into_iter().collect();
            write_hf_folder(&list, &config, Some(&base_dir), &out)?;
            println!("applied {} → {}", diff.display(), out.display());
        }
        DiffCommand::Revert { model, diff, out } => {
            let model_dir = model_folder(&model.display().to_string())?;
            let mut inputs = model_folder_paths(&model_dir);
            inputs.push(diff.clone());
            check_distinct(&model_folder_paths(&out), &inputs)?;
            let d = SparseDiff::read(&diff)?;
            let tensors = d.revert(&tensors_of(&model_dir)?)?;
            // The base's config: the fine-tuned one without the head's label count.
            let mut config: serde_json::Value =
                serde_json::from_slice(&std::fs::read(model_dir.join("config.json"))?)?;
            if let Some(obj) = config.as_object_mut() {
                for key in ["num_labels", "id2label", "label2id", "problem_type"] {
                    obj.remove(key);
                }
                obj.insert("architectures".into(), serde_json::json!(["BertModel"]));
            }
            let list: Vec<(String, HostTensor)> = tensors.into_iter().collect();
            write_hf_folder(
                &list,
                &serde_json::to_vec_pretty(&config)?,
                Some(&model_dir),
                &out,
            )?;
            println!("reverted {} → {}", diff.display(), out.display());
        }
        DiffCommand::Compose { first, second, out } => {
            check_distinct(&[&out], &[&first, &second])?;
            let c = SparseDiff::read(&first)?.compose(&SparseDiff::read(&second)?)?;
            c.write(&out)?;
            report(&c, &out);
        }
        DiffCommand::Info { diff, json } => {
            let d = SparseDiff::read(&diff)?;
            let bytes = std::fs::metadata(&diff).map(|m| m.len()).ok();
            let info = d.info(bytes);
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("base      {}", info.base_sha256);
                println!(
                    "result    {}",
                    info.result_sha256
                        .as_deref()
                        .unwrap_or("(not recorded: parallel composition)")
                );
                println!(
                    "changed   {} entries in {} tensors; added whole: {}",
                    info.changed_entries,
                    info.sparse_tensors,
                    if info.added_tensors.is_empty() {
                        "none".to_string()
                    } else {
                        info.added_tensors.join(", ")
                    }
                );
                println!(
                    "size      {} bytes on disk; the touched tensors stored densely: {} bytes",
                    info.file_bytes.unwrap_or(0),
                    info.dense_bytes_of_touched_tensors
                );
            }
        }
    }
    Ok(())
}

fn report(d: &SparseDiff, out: &Path) {
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} changed entries, {} bytes → {}",
        d.changed_entries(),
        bytes,
        out.display()
    );
}
