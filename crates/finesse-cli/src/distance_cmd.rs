//! `finesse distance`: how far a fine-tuned model (or run) is from its base, per layer × matrix,
//! optionally beside two random initialisations (the paper's Table 2).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use finesse_bert::ModelFolder;
use finesse_sparse::distance::{DistanceReport, RandomInit, distances, vs_random};
use finesse_train::models::model_tensors;

/// Arguments of `finesse distance`.
#[derive(Debug, Args)]
pub struct DistanceArgs {
    /// The base model: a known name, an HF folder, or a run directory (its model).
    #[arg(long)]
    base: String,
    /// The other model: a known name, an HF folder, or a run directory (its model/, or its diff
    /// applied to the base it was trained from).
    #[arg(long)]
    other: String,
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

/// Runs `finesse distance`.
pub fn run(args: DistanceArgs) -> Result<()> {
    let base = model_tensors(&args.base)?;
    let other = model_tensors(&args.other)?;
    let mut out = serde_json::Map::new();
    let report = distances(&base, &other)?;
    out.insert("distance".into(), serde_json::to_value(&report)?);
    let mut randoms = Vec::new();
    if args.vs_random {
        let base_dir = finesse_train::models::model_folder(&args.base)?;
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
    crate::grid_print::print_grid(
        "mean |Δ| / angular per layer × matrix (and group)",
        &r.grid,
        20,
        |d| format!("{:.2e} / {:.4}", d.mean_abs, d.angular),
    );
}
