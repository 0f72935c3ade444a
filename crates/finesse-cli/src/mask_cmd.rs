//! `finesse mask`: a top-k mask from Fisher scores, and the statistics and overlaps of mask
//! files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use finesse_sparse::mask::{magnitude_like, overlap, select, stats};
use finesse_sparse::{Budget, Mask, Scope, Selection};

use crate::sparse_cmd::{check_distinct, model_folder, tensors_of};

/// How many entries a mask keeps, shared by `finesse mask` and `finesse finetune`.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Kept fraction of all parameters (FISH: 0.005 = 0.5%).
    #[arg(long, conflicts_with = "keep_count")]
    pub keep_ratio: Option<f64>,
    /// Kept number of entries.
    #[arg(long)]
    pub keep_count: Option<usize>,
    /// Where the top-k is taken: over all parameters at once (FISH), inside every tensor, or
    /// inside every encoder layer (and the embeddings and the pooler) with a quota by size.
    #[arg(long, value_enum, ignore_case = true, default_value_t = Scope::Global)]
    pub scope: Scope,
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
            scope: self.scope,
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
pub fn run(args: MaskArgs) -> Result<()> {
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
