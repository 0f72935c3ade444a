//! `finesse diff …`: sparse diffs of a fine-tuned model against its base (export, apply,
//! revert, compose, info).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use finesse_bert::checkpoint::{CONFIG_FILE, model_folder_paths};
use finesse_bert::{HostTensor, ModelFolder, write_hf_folder};
use finesse_sparse::SparseDiff;

use crate::sparse_cmd::{check_distinct, model_folder, tensors_of};

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

/// Runs `finesse diff …`.
pub fn run(args: DiffArgs) -> Result<()> {
    match args.command {
        DiffCommand::Export { base, model, out } => {
            let base_dir = model_folder(&base)?;
            let model_dir = model_folder(&model.display().to_string())?;
            let mut inputs = model_folder_paths(&base_dir);
            inputs.extend(model_folder_paths(&model_dir));
            check_distinct(&[&out], &inputs)?;
            let config = std::fs::read_to_string(model_dir.join(CONFIG_FILE)).ok();
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
                None => {
                    let path = base_dir.join(CONFIG_FILE);
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
                }
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
            // The base's config: the fine-tuned one without the head.
            let config = ModelFolder::open(&model_dir)?.config()?.base_model_json();
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
