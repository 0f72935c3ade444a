//! The run directory: the contract between the trainer, reports and the app (format version
//! [`RUN_FORMAT_VERSION`], documented in ARCHITECTURE.md).
//!
//! ```text
//! run.json        full RunConfig + versions, device, model sha256, data files
//! events.jsonl    append-only events (start, steps, evals, checkpoints, end/error/cancelled)
//! metrics.json    final dev metrics (flat, by metric name) + per split + best
//! checkpoint/     resumable state: model.safetensors, optimizer.safetensors, state.json
//! model/          the fine-tuned model as an HF folder (with --save-model)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finesse_bert::HostTensor;
use finesse_bert::io::{FloatTensors, read_float_tensors, write_atomic, write_f32_tensors};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// Version of the run-directory format.
pub const RUN_FORMAT_VERSION: u32 = 1;

/// `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run-directory format version.
    pub format_version: u32,
    /// finesse version that wrote it.
    pub finesse_version: String,
    /// The full configuration.
    pub config: RunConfig,
    /// The model folder that was loaded.
    pub model_dir: PathBuf,
    /// sha256 of its `model.safetensors`.
    pub model_sha256: String,
    /// Data files read, with their sha256 and example counts.
    pub data_files: Vec<DataFile>,
}

/// A data file of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataFile {
    /// Split name.
    pub split: String,
    /// Path.
    pub path: PathBuf,
    /// sha256 of the file.
    pub sha256: String,
    /// Examples read.
    pub examples: usize,
    /// Malformed rows skipped (with `--skip-bad-rows`).
    pub skipped_rows: usize,
}

/// `metrics.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetricsFile {
    /// Run-directory format version.
    pub format_version: u32,
    /// Final metrics of the first dev split, by metric name, plus `eval_loss`.
    #[serde(flatten)]
    pub final_metrics: BTreeMap<String, f64>,
    /// Final metrics per dev split.
    pub splits: BTreeMap<String, BTreeMap<String, f64>>,
    /// Best value of each metric of the first dev split over all evaluations, with its step.
    pub best: BTreeMap<String, BestValue>,
    /// Steps trained.
    pub steps: usize,
    /// Wall time of the run (this process).
    pub duration_secs: f64,
    /// Mean training throughput.
    pub train_examples_per_sec: f64,
    /// Mean training throughput in real (non-padding) tokens.
    pub train_tokens_per_sec: f64,
    /// Peak resident memory of the process.
    pub peak_rss_mib: Option<f64>,
    /// Optimizer state entries held (measured from the state tensors at the end).
    #[serde(default)]
    pub optimizer_state_entries: usize,
    /// Sizes and counts of a sparse method's mask and diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseSummary>,
    /// Supermask runs: final mask size and the sampled evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supermask: Option<SupermaskSummary>,
}

/// The end of a supermask run: the deterministic mask (σ(v) > 0.5, whose metrics are the run's
/// final metrics) and evaluations with masks sampled from Bernoulli(σ(v)).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SupermaskSummary {
    /// Weights the deterministic mask keeps (over WQ…WO).
    pub kept: usize,
    /// Weights under the mask.
    pub total: usize,
    /// 1 − kept/total.
    pub sparsity: f64,
    /// Metrics of each sampled mask on the first dev split (seeded: reproducible).
    pub sampled: Vec<BTreeMap<String, f64>>,
    /// Their mean.
    pub sampled_mean: BTreeMap<String, f64>,
    /// Their (population) standard deviation.
    pub sampled_std: BTreeMap<String, f64>,
}

/// What a sparse run kept, and what it costs to store.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SparseSummary {
    /// `fish`, `random` or `bitfit`.
    pub method: String,
    /// Entries the mask keeps (head included).
    pub kept: usize,
    /// All entries.
    pub total: usize,
    /// Kept-entry indices the optimizer holds.
    pub optimizer_index_entries: usize,
    /// Entries that differ from the base at the end (head included in full).
    pub diff_changed_entries: usize,
    /// Size of `diff.safetensors`.
    pub diff_bytes: u64,
    /// Size of the whole model as f32 safetensors data (what `--save-model` writes).
    pub dense_model_bytes: u64,
    /// Seconds spent estimating the Fisher information and selecting the mask.
    pub mask_secs: f64,
}

/// A best metric value.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct BestValue {
    /// The value.
    pub value: f64,
    /// Step of the evaluation.
    pub step: usize,
}

/// `checkpoint/state.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Run-directory format version.
    pub format_version: u32,
    /// Optimizer steps done.
    pub step: usize,
    /// Best metrics so far.
    pub best: BTreeMap<String, BestValue>,
}

/// The contents of `checkpoint/`.
pub struct Checkpoint {
    /// `state.json`.
    pub state: CheckpointState,
    /// Model weights by HF name.
    pub model: FloatTensors,
    /// Optimizer moments (`exp_avg.<name>`, `exp_avg_sq.<name>`).
    pub optimizer: BTreeMap<String, HostTensor>,
}

/// Paths inside a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The folder.
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `run.json`.
    pub fn run_json(&self) -> PathBuf {
        self.root.join("run.json")
    }
    /// `events.jsonl`.
    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    /// `metrics.json`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    /// `checkpoint/`.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint")
    }
    /// `model/`.
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }
    /// `mask.safetensors` (sparse methods).
    pub fn mask(&self) -> PathBuf {
        self.root.join("mask.safetensors")
    }
    /// `mask_stats.json` (sparse methods).
    pub fn mask_stats(&self) -> PathBuf {
        self.root.join("mask_stats.json")
    }
    /// `fisher.safetensors` (FISH).
    pub fn fisher(&self) -> PathBuf {
        self.root.join("fisher.safetensors")
    }
    /// `analysis.json` (distances from the base model).
    pub fn analysis(&self) -> PathBuf {
        self.root.join("analysis.json")
    }
    /// `diff.safetensors` (sparse methods).
    pub fn diff(&self) -> PathBuf {
        self.root.join("diff.safetensors")
    }

    /// Creates the folder for a new run; refuses one that already holds a run.
    pub fn create(&self) -> Result<()> {
        if self.run_json().exists() {
            return Err(TrainError::Config {
                field: "output-dir",
                problem: format!(
                    "{} already holds a run; use --resume {0} to continue it, or another --output-dir",
                    self.root.display()
                ),
            });
        }
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::io("creating", &self.root, e))
    }

    /// Reads `run.json`.
    pub fn read_info(&self) -> Result<RunInfo> {
        read_json(&self.run_json())
    }

    /// Reads `metrics.json`.
    pub fn read_metrics(&self) -> Result<MetricsFile> {
        read_json(&self.metrics())
    }

    /// Writes a checkpoint atomically: a new folder beside the old one, then a swap.
    pub fn write_checkpoint(
        &self,
        state: &CheckpointState,
        model: &[(String, HostTensor)],
        optimizer: &[(String, HostTensor)],
    ) -> Result<PathBuf> {
        let staged = tempfile::Builder::new()
            .prefix(".checkpoint-")
            .tempdir_in(&self.root)
            .map_err(|e| TrainError::io("creating a checkpoint folder in", &self.root, e))?;
        write_f32_tensors(
            &staged.path().join("model.safetensors"),
            model,
            BTreeMap::new(),
        )?;
        write_f32_tensors(
            &staged.path().join("optimizer.safetensors"),
            optimizer,
            BTreeMap::new(),
        )?;
        write_json(&staged.path().join("state.json"), state)?;
        let target = self.checkpoint();
        let old = self.root.join(".checkpoint-old");
        if target.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&target, &old)
                .map_err(|e| TrainError::io("moving aside", &target, e))?;
        }
        let staged = staged.keep();
        std::fs::rename(&staged, &target)
            .map_err(|e| TrainError::io("renaming into", &target, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(target)
    }

    /// Reads the checkpoint.
    pub fn read_checkpoint(&self) -> Result<Checkpoint> {
        let dir = self.checkpoint();
        Ok(Checkpoint {
            state: read_json(&dir.join("state.json"))?,
            model: read_float_tensors(&dir.join("model.safetensors"))?,
            optimizer: read_float_tensors(&dir.join("optimizer.safetensors"))?.tensors,
        })
    }
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_atomic(path, &bytes)?)
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}
