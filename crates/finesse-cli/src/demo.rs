//! `finesse demo`: the main job in one command. Fetches the default model if needed and runs a
//! short FISH fine-tuning on SST-2 (0.5% of the parameters, Fisher from 256 examples), then
//! prints the dev metrics, the diff size and the run directory. With no data folder it trains
//! on the SST-2 sample shipped in the binary (`assets/glue-sample`), and says so.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use finesse_bert::hub::{DEFAULT_MODEL, ModelSource, resolve_model};
use finesse_train::demo::{DemoSettings, SAMPLE_ROWS, demo_config, demo_data};

use crate::device::DeviceChoice;
use crate::finetune::drive;
use finesse_train::method::DEFAULT_KEEP_RATIO;

/// Arguments of `finesse demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder in GLUE layout holding SST-2/ (default: $FINESSE_HOME/data/glue when `finesse data
    /// fetch sst2` put SST-2 there, else the SST-2 sample shipped with finesse).
    #[arg(long, env = "GLUE_DIR")]
    data_dir: Option<PathBuf>,
    /// Optimizer steps (batch 32).
    #[arg(long, default_value_t = 150)]
    steps: usize,
    /// Kept fraction of the parameters.
    #[arg(long, default_value_t = DEFAULT_KEEP_RATIO)]
    keep_ratio: f64,
    /// Training examples for the Fisher information.
    #[arg(long, default_value_t = 256)]
    fisher_samples: usize,
    /// Peak learning rate (sparse updates take a higher one than dense fine-tuning).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// The run directory (default: runs/demo-<unix time>).
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Backend: flex, ndarray, wgpu (wgpu:N for adapter N; wgpu:list lists them), cuda.
    #[arg(long, value_parser = crate::device::parse, default_value_t = DeviceChoice::default_choice())]
    device: DeviceChoice,
}

/// Runs `finesse demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    let (data_dir, sample) = demo_data(args.data_dir.clone())?;
    if sample {
        eprintln!(
            "demo: no GLUE folder given: using the SST-2 sample shipped with finesse \
             ({SAMPLE_ROWS} training sentences, the whole dev set) in {}",
            data_dir.display()
        );
    }
    let source = resolve_model(DEFAULT_MODEL, true)?;
    if let ModelSource::Fetched(dir) = &source {
        eprintln!("fetched {DEFAULT_MODEL} into {}", dir.display());
    }
    let output_dir = args.output_dir.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from("runs").join(format!("demo-{secs}"))
    });
    let settings = DemoSettings {
        steps: args.steps,
        keep_ratio: args.keep_ratio,
        fisher_samples: args.fisher_samples,
        lr: args.lr,
        data_dir: args.data_dir.clone(),
        ..DemoSettings::default()
    };
    let device = finesse_train::device::device_label(args.device);
    let c = demo_config(&settings, data_dir, output_dir, device);
    c.validate()?;
    eprintln!(
        "demo: FISH on SST-2, {:.2}% of the parameters chosen by Fisher information over {} \
         examples, {} steps of batch 32",
        100.0 * args.keep_ratio,
        args.fisher_samples,
        args.steps
    );
    drive(&c, args.device.device()?, args.device.name(), false)?;
    if sample {
        println!(
            "note: trained on the SST-2 sample shipped with finesse ({SAMPLE_ROWS} of 67,349 \
             training sentences; the dev set is whole). For the full data: `finesse data fetch \
             sst2`, then `finesse demo` again, or `--data-dir DIR` with any GLUE-layout folder."
        );
    }
    Ok(())
}
