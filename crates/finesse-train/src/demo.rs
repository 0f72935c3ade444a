//! The demo run, shared by `finesse demo` and the desktop app's first launch: a short FISH
//! fine-tuning of the default model on SST-2 (0.5% of the parameters, Fisher from 256
//! examples, 150 steps of batch 32). With no GLUE folder it trains on the SST-2 sample shipped
//! in the binary (`assets/glue-sample`: 4,000 training sentences, the whole dev set).

use std::path::{Path, PathBuf};

use finesse_bert::hub::{DEFAULT_MODEL, finesse_home};
use finesse_glue::GlueTask;

use crate::config::RunConfig;
use crate::method::{DEFAULT_KEEP_RATIO, MethodConfig};

/// Rows of the shipped sample's `train.tsv`, as the demo's note prints them.
pub const SAMPLE_ROWS: &str = "4,000";
/// The shipped SST-2 sample (see `assets/glue-sample/README.md`).
const SAMPLE_TRAIN: &[u8] = include_bytes!("../../../assets/glue-sample/SST-2/train.tsv");
const SAMPLE_DEV: &[u8] = include_bytes!("../../../assets/glue-sample/SST-2/dev.tsv");

/// The demo's settings (the CLI's `finesse demo` flags).
#[derive(Clone, Debug, PartialEq)]
pub struct DemoSettings {
    /// The model: a known name, an HF folder or a run directory.
    pub model: String,
    /// Optimizer steps (batch 32).
    pub steps: usize,
    /// Kept fraction of the parameters.
    pub keep_ratio: f64,
    /// Training examples for the Fisher information.
    pub fisher_samples: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// GLUE folder holding `SST-2/` (`None`: see [`demo_data`]).
    pub data_dir: Option<PathBuf>,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_string(),
            steps: 150,
            keep_ratio: DEFAULT_KEEP_RATIO,
            fisher_samples: 256,
            lr: 1e-3,
            data_dir: None,
        }
    }
}

/// The demo's run configuration (checked by the caller with [`RunConfig::validate`]).
pub fn demo_config(
    settings: &DemoSettings,
    data_dir: PathBuf,
    output_dir: PathBuf,
    device: String,
) -> RunConfig {
    let mut c = RunConfig::new(&settings.model, GlueTask::Sst2, data_dir, output_dir);
    c.device = device;
    c.max_steps = Some(settings.steps);
    c.lr = settings.lr;
    c.warmup_ratio = 0.06;
    c.log_every = 10;
    c.eval_every = Some(settings.steps);
    c.method = MethodConfig::fish_global(settings.keep_ratio, settings.fisher_samples);
    c
}

/// The demo's GLUE folder and whether it is the shipped sample: the one given, else
/// `$FINESSE_HOME/data/glue` when it holds SST-2, else the sample, written to
/// `$FINESSE_HOME/data/sample` (again only when its files differ).
///
/// # Errors
/// Writing the sample's files.
pub fn demo_data(given: Option<PathBuf>) -> finesse_bert::Result<(PathBuf, bool)> {
    if let Some(dir) = given {
        return Ok((dir, false));
    }
    let fetched = finesse_glue::fetch::default_data_dir();
    if fetched.join("SST-2").join("train.tsv").is_file() {
        return Ok((fetched, false));
    }
    let sample = finesse_home().join("data").join("sample");
    write_sample(&sample)?;
    Ok((sample, true))
}

/// Writes the shipped SST-2 sample under `dir/SST-2/` (only the files that differ).
///
/// # Errors
/// Writing a file.
pub fn write_sample(dir: &Path) -> finesse_bert::Result<()> {
    for (name, bytes) in [("train.tsv", SAMPLE_TRAIN), ("dev.tsv", SAMPLE_DEV)] {
        let path = dir.join("SST-2").join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            finesse_bert::io::write_atomic(&path, bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_parses_and_the_demo_config_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sample(dir.path()).expect("sample");
        let rows = std::fs::read_to_string(dir.path().join("SST-2/train.tsv")).expect("read");
        assert_eq!(
            rows.lines().count() - 1,
            4000,
            "{SAMPLE_ROWS} rows and a header"
        );
        let c = demo_config(
            &DemoSettings::default(),
            dir.path().to_path_buf(),
            dir.path().join("demo"),
            "flex".into(),
        );
        c.validate().expect("valid");
        assert_eq!(c.max_steps, Some(150));
        assert_eq!(c.method, MethodConfig::fish_global(DEFAULT_KEEP_RATIO, 256));
    }
}
