//! `finesse doctor`: what this machine and this binary offer — the backends compiled in, the
//! wgpu adapters, threads, the model cache and the GLUE folder — so a user (or a bug report)
//! sees at once why a run would fail or crawl.

use anyhow::Result;
use clap::Args;
use finesse_bert::hub;
use finesse_glue::GlueTask;
use finesse_train::device::{DeviceChoice, wgpu_adapters};
use serde::Serialize;

/// Arguments of `finesse doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    version: &'static str,
    backends: Vec<&'static str>,
    default_backend: &'static str,
    threads: usize,
    rayon_num_threads: Option<String>,
    wgpu_adapters: Vec<finesse_train::device::WgpuAdapter>,
    finesse_home: std::path::PathBuf,
    offline: bool,
    models: Vec<hub::CachedModel>,
    glue_dir: std::path::PathBuf,
    glue_tasks: Vec<(String, bool)>,
}

fn report() -> Result<Report> {
    let glue_dir = finesse_glue::fetch::default_data_dir();
    let glue_tasks = GlueTask::ALL
        .iter()
        .map(|t| {
            let spec = t.spec();
            (
                spec.name.to_string(),
                glue_dir.join(spec.name).join(spec.train_file).is_file(),
            )
        })
        .collect();
    let compiled = DeviceChoice::compiled();
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        backends: compiled.iter().map(|d| d.name()).collect(),
        default_backend: DeviceChoice::default_choice().name(),
        threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        rayon_num_threads: std::env::var("RAYON_NUM_THREADS").ok(),
        wgpu_adapters: if compiled.contains(&DeviceChoice::Wgpu) {
            wgpu_adapters()
        } else {
            Vec::new()
        },
        finesse_home: hub::finesse_home(),
        offline: hub::is_offline(),
        models: hub::list_cache().unwrap_or_default(),
        glue_dir,
        glue_tasks,
    })
}

/// Runs `finesse doctor`.
pub fn run(args: DoctorArgs) -> Result<()> {
    let r = report()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("finesse {}", r.version);
    println!(
        "backends compiled: {} (default {})",
        r.backends.join(", "),
        r.default_backend
    );
    let rayon = r
        .rayon_num_threads
        .as_deref()
        .map_or_else(String::new, |n| format!(", RAYON_NUM_THREADS={n}"));
    println!("threads: {}{rayon}", r.threads);
    crate::device::print_adapters();
    println!(
        "FINESSE_HOME: {}{}",
        r.finesse_home.display(),
        if r.offline { " (offline)" } else { "" }
    );
    if r.models.is_empty() {
        println!("model cache: empty (`finesse model fetch` gets all-MiniLM-L6-v2)");
    } else {
        for m in &r.models {
            let status = match m.verified {
                Some(true) => "sha256 ok",
                Some(false) => "sha256 MISMATCH",
                None => "not a known model",
            };
            println!("model cache: {} ({status}) {}", m.name, m.dir.display());
        }
    }
    let found: Vec<&str> = r
        .glue_tasks
        .iter()
        .filter(|t| t.1)
        .map(|t| t.0.as_str())
        .collect();
    let missing: Vec<&str> = r
        .glue_tasks
        .iter()
        .filter(|t| !t.1)
        .map(|t| t.0.as_str())
        .collect();
    println!(
        "GLUE folder {}: {} found{}",
        r.glue_dir.display(),
        if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        },
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                "; missing {} (`finesse data fetch TASK`)",
                missing.join(", ")
            )
        }
    );
    Ok(())
}
