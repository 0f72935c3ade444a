//! `finesse demo`: the main job in one command. Fetches the default model if needed and runs a
//! short FISH fine-tuning on SST-2 (0.5% of the parameters, Fisher from 256 examples), then
//! prints the dev metrics, the diff size and the run directory. With no data folder it trains
//! on the SST-2 sample shipped in the binary (`assets/glue-sample`), and says so.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use finesse_bert::hub::{DEFAULT_MODEL, ModelSource, resolve_model};
use finesse_glue::GlueTask;
use finesse_train::{MethodConfig, RunConfig};

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
    let (data_dir, sample) = data_folder(args.data_dir.clone())?;
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
    let mut c = RunConfig::new(DEFAULT_MODEL, GlueTask::Sst2, data_dir, output_dir);
    c.device = finesse_train::device::device_label(args.device);
    c.max_steps = Some(args.steps);
    c.lr = args.lr;
    c.warmup_ratio = 0.06;
    c.log_every = 10;
    c.eval_every = Some(args.steps);
    c.method = MethodConfig::fish_global(args.keep_ratio, args.fisher_samples);
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

/// Rows of the shipped sample's `train.tsv`.
const SAMPLE_ROWS: &str = "4,000";
/// The shipped SST-2 sample (see `assets/glue-sample/README.md`).
const SAMPLE_TRAIN: &[u8] = include_bytes!("../../../assets/glue-sample/SST-2/train.tsv");
const SAMPLE_DEV: &[u8] = include_bytes!("../../../assets/glue-sample/SST-2/dev.tsv");

/// The GLUE folder of the demo and whether it is the shipped sample: the one given, else
/// `$FINESSE_HOME/data/glue` when it holds SST-2, else the sample, written to
/// `$FINESSE_HOME/data/sample` (again only when its files differ).
fn data_folder(given: Option<PathBuf>) -> Result<(PathBuf, bool)> {
    if let Some(dir) = given {
        return Ok((dir, false));
    }
    let fetched = finesse_glue::fetch::default_data_dir();
    if fetched.join("SST-2").join("train.tsv").is_file() {
        return Ok((fetched, false));
    }
    let sample = finesse_bert::hub::finesse_home()
        .join("data")
        .join("sample");
    for (name, bytes) in [("train.tsv", SAMPLE_TRAIN), ("dev.tsv", SAMPLE_DEV)] {
        let path = sample.join("SST-2").join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            finesse_bert::io::write_atomic(&path, bytes)?;
        }
    }
    eprintln!(
        "demo: no GLUE folder given: using the SST-2 sample shipped with finesse \
         ({SAMPLE_ROWS} training sentences, the whole dev set) in {}",
        sample.display()
    );
    Ok((sample, true))
}
