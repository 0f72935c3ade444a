//! The typed contents of a run directory's JSON files: `run.json` ([`RunInfo`]),
//! `metrics.json` ([`MetricsFile`]), `analysis.json` ([`Analysis`]) and
//! `checkpoint/state.json` ([`CheckpointState`]). `mask_stats.json` is
//! [`finesse_sparse::MaskStats`]; events are [`crate::events::EventRecord`]s.
//!
//! Every type reads what it writes; fields added after format version 1 are optional on read
//! (serde defaults), so older version-1 directories still open.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;

/// Rewrites a format-version-1 `RunConfig` (flat `optimizer` name, `adam_beta1`, `adam_beta2`,
/// `adam_eps`, `sgd_momentum`, `weight_decay`) into version 2's nested `optimizer`
/// (`{algorithm: {kind, …}, weight_decay}`), with version 1's defaults for absent fields.
pub(crate) fn nest_v1_optimizer(config: &mut serde_json::Value) {
    let Some(c) = config.as_object_mut() else {
        return;
    };
    let mut take =
        |key: &str, default: f64| c.remove(key).and_then(|v| v.as_f64()).unwrap_or(default);
    let weight_decay = take("weight_decay", 0.01);
    let (beta1, beta2, eps) = (
        take("adam_beta1", 0.9),
        take("adam_beta2", 0.999),
        take("adam_eps", 1e-8),
    );
    let momentum = take("sgd_momentum", 0.0);
    let algorithm = match c.remove("optimizer").as_ref().and_then(|v| v.as_str()) {
        Some("sgd") => serde_json::json!({"kind": "sgd", "momentum": momentum}),
        _ => serde_json::json!({"kind": "adamw", "beta1": beta1, "beta2": beta2, "eps": eps}),
    };
    c.insert(
        "optimizer".into(),
        serde_json::json!({"algorithm": algorithm, "weight_decay": weight_decay}),
    );
}

/// `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Ranks of the data-parallel job that trains the run (1: one process).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub world_size: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// A data file of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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

impl MetricsFile {
    /// The task's main metric among the final ones (`accuracy`, else `matthews`, `pearson`,
    /// `f1`, then any), with its value.
    pub fn main_metric(&self) -> Option<(&str, f64)> {
        main_metric(&self.final_metrics)
    }
}

/// The main metric of a set of task metrics: `accuracy`, else `matthews` (CoLA), `pearson`
/// (STS-B), `f1`, then the first other than `eval_loss`.
pub fn main_metric(metrics: &BTreeMap<String, f64>) -> Option<(&str, f64)> {
    ["accuracy", "matthews", "pearson", "f1"]
        .iter()
        .find_map(|k| metrics.get_key_value(*k))
        .or_else(|| metrics.iter().find(|(k, _)| k.as_str() != "eval_loss"))
        .map(|(k, v)| (k.as_str(), *v))
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
    /// `fish`, `random`, `bitfit` or `freeze`.
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

/// `analysis.json`: how far the run moved the model from its base.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Distances per tensor, per layer × matrix (and group) and overall.
    pub distance: finesse_sparse::distance::DistanceReport,
    /// Final sparsity of each pruned matrix by HF name (`--method prune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_sparsity: Option<BTreeMap<String, f64>>,
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
