//! `finesse distance`: how far a fine-tuned model (or run) is from its base, per layer × matrix,
//! optionally beside two random initialisations (the paper's Table 2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use finesse_bert::hub::resolve_model;
use finesse_bert::{HostTensor, ModelFolder};
use finesse_sparse::SparseDiff;
use finesse_sparse::distance::{DistanceReport, RandomInit, distances, vs_random};
use finesse_sparse::files::read_model_tensors;

/// Arguments of `finesse distance`.
#[derive(Debug, Args)]
pub struct DistanceArgs {
    /// The base model (folder or cached name).
    #[arg(long)]
    base: String,
    /// The other model: a folder, or a run directory (its model/, or its diff applied to the
    /// base).
    #[arg(long)]
    other: PathBuf,
    /// Also measure two independent random initialisations (uniform and normal, ±1/√H).
    #[arg(long)]
    vs_random: bool,
    /// Seed of the random initialisations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the JSON here (atomically).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn tensors(folder: &Path) -> Result<BTreeMap<String, HostTensor>> {
    Ok(read_model_tensors(&ModelFolder::open(folder)?.weights())?)
}

/// The other model's tensors: a folder, a run's `model/`, or a run's diff applied to `base`.
fn other_tensors(
    other: &Path,
    base: &BTreeMap<String, HostTensor>,
) -> Result<BTreeMap<String, HostTensor>> {
    if other.join("run.json").is_file() {
        if other.join("model/config.json").is_file() {
            return tensors(&other.join("model"));
        }
        let diff = other.join("diff.safetensors");
        if diff.is_file() {
            return Ok(SparseDiff::read(&diff)?.apply(base)?);
        }
        bail!(
            "{} is a run directory without model/ or diff.safetensors (dense runs need --save-model)",
            other.display()
        );
    }
    tensors(other)
}

/// Runs `finesse distance`.
pub fn run(args: DistanceArgs) -> Result<()> {
    let base_dir = resolve_model(&args.base, true)?.dir().to_path_buf();
    let base = tensors(&base_dir)?;
    let other = other_tensors(&args.other, &base)?;
    let mut out = serde_json::Map::new();
    let report = distances(&base, &other)?;
    out.insert("distance".into(), serde_json::to_value(&report)?);
    let mut randoms = Vec::new();
    if args.vs_random {
        let hidden = ModelFolder::open(&base_dir)?.config()?.hidden_size;
        let shapes: BTreeMap<String, Vec<usize>> = base
            .iter()
            .filter(|(n, _)| other.contains_key(*n))
            .map(|(n, t)| (n.clone(), t.shape.clone()))
            .collect();
        for (name, init) in [
            ("uniform", RandomInit::Uniform),
            ("normal", RandomInit::Normal),
        ] {
            let r = vs_random(&shapes, hidden, init, args.seed);
            out.insert(format!("random_{name}"), serde_json::to_value(&r)?);
            randoms.push((name, r));
        }
    }
    let json = serde_json::to_string_pretty(&out)?;
    if let Some(path) = &args.out {
        finesse_bert::io::write_atomic(path, json.as_bytes())?;
    }
    if args.json {
        println!("{json}");
        return Ok(());
    }
    print_table("fine-tuned vs base", &report);
    for (name, r) in &randoms {
        print_table(&format!("two random initialisations ({name}, ±1/√H)"), r);
    }
    Ok(())
}

fn print_table(title: &str, r: &DistanceReport) {
    println!("== {title}");
    println!(
        "overall: mean |Δ| {:.3e}, angular {:.4}, changed {:.2}%, relative L2 {:.4}",
        r.overall.mean_abs,
        r.overall.angular,
        100.0 * r.overall.l0_fraction,
        r.overall.relative_l2
    );
    let header: String = r.matrices.iter().map(|m| format!("{m:>20}")).collect();
    println!("layer{header}   (mean |Δ| / angular)");
    for (l, row) in r.layers.iter().enumerate() {
        let cells: String = row
            .iter()
            .map(|d| format!("{:>20}", format!("{:.2e} / {:.4}", d.mean_abs, d.angular)))
            .collect();
        println!("{l:>5}{cells}");
    }
    for (g, d) in &r.groups {
        println!(
            "{g:>12}: mean |Δ| {:.3e}, angular {:.4}",
            d.mean_abs, d.angular
        );
    }
}
