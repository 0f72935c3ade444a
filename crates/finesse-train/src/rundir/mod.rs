//! The run directory: the contract between the trainer, reports and the app (format version
//! [`RUN_FORMAT_VERSION`], documented file by file in ARCHITECTURE.md). Every file the trainer
//! writes has a typed reader here, and [`RunDir::status`] / [`RunDir::progress`] tell where a
//! run stands, also while another process writes it.
//!
//! ```text
//! run.json            RunInfo: full RunConfig, versions, model and data sha256
//! run.lock            held (flock) by the training process while it runs
//! events.jsonl        EventRecord per line, append-only (read_events, tail → EventTail)
//! metrics.json        MetricsFile: final dev metrics, best, throughput, sparse/supermask sums
//! analysis.json       Analysis: distances from the base, pruning sparsity
//! mask.safetensors    Mask (sparse methods, prune, supermask); mask_stats.json: MaskStats
//! fisher.safetensors  FisherFile (FISH)
//! diff.safetensors    SparseDiff against the base (fixed-subset methods)
//! checkpoint/         Checkpoint: resumable state (unfinished runs only)
//! model/, best/       HF folders (--save-model, --save-best)
//! ```

mod checkpoint;
mod files;
mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finesse_bert::HostTensor;
use finesse_bert::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use finesse_bert::io::write_atomic;
use finesse_sparse::{FisherFile, Mask, MaskStats, SparseDiff};
use serde::{Deserialize, Serialize};

pub use checkpoint::Checkpoint;
pub use files::{
    Analysis, BestValue, CheckpointState, DataFile, MetricsFile, RunInfo, SparseSummary,
    SupermaskSummary, main_metric,
};
pub use status::{RunLock, RunStatus};

use crate::error::{Result, TrainError};
use crate::events::{EventRecord, EventTail};
use crate::progress::RunProgress;

/// Version of the run-directory format: 2 nests the optimizer settings of `run.json`'s config
/// (`optimizer: {algorithm, weight_decay}`); version 1 directories still open (their flat
/// settings are nested on read).
pub const RUN_FORMAT_VERSION: u32 = 2;

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

    /// `best/` (with `--save-best`): the model of the best evaluation so far.
    pub fn best_model(&self) -> PathBuf {
        self.root.join("best")
    }

    /// Opens an existing run directory: it must hold `run.json` or `events.jsonl`, and a
    /// `run.json` of a format this finesse reads.
    ///
    /// # Errors
    /// [`TrainError::NotARun`], or an unreadable `run.json` or one of a newer format.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let dir = Self::new(root);
        if !dir.run_json().is_file() && !dir.events().is_file() {
            return Err(TrainError::NotARun {
                path: dir.root.clone(),
            });
        }
        if dir.run_json().is_file() {
            dir.read_info()?;
        }
        Ok(dir)
    }

    /// Is `path` a run directory (it holds `run.json`)?
    pub fn is_run(path: &Path) -> bool {
        path.join("run.json").is_file()
    }

    /// Creates the folder for a new run. Refuses one that already holds a run, and a folder
    /// that holds anything else: a run never writes into (or deletes from) a user's folder.
    ///
    /// # Errors
    /// A folder that already holds a run or anything else, or cannot be created.
    pub fn create(&self) -> Result<()> {
        if self.run_json().exists() || self.events().exists() {
            return Err(TrainError::Config {
                field: "output-dir",
                problem: format!(
                    "{} already holds a run; use --resume {0} to continue it, or another --output-dir",
                    self.root.display()
                ),
            });
        }
        if let Ok(mut entries) = std::fs::read_dir(&self.root)
            && let Some(entry) = entries.next()
        {
            let name = entry.map(|e| e.file_name().to_string_lossy().to_string());
            return Err(TrainError::Config {
                field: "output-dir",
                problem: format!(
                    "{} is not empty (it holds {}) and is not a finesse run; give a new or empty folder",
                    self.root.display(),
                    name.unwrap_or_else(|_| "files".into())
                ),
            });
        }
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::io("creating", &self.root, e))
    }

    /// Reads `run.json`; a format newer than this finesse reads is an error naming it.
    ///
    /// # Errors
    /// `run.json` is missing, not valid JSON of a run, or of a newer format.
    pub fn read_info(&self) -> Result<RunInfo> {
        let path = self.run_json();
        let mut value: serde_json::Value = read_json(&path)?;
        if value["format_version"].as_u64() == Some(1) {
            files::nest_v1_optimizer(&mut value["config"]);
        }
        let info: RunInfo =
            serde_json::from_value(value).map_err(|source| TrainError::Json { path, source })?;
        if info.format_version > RUN_FORMAT_VERSION {
            return Err(TrainError::Resume {
                path: self.root.clone(),
                problem: format!(
                    "run.json has format version {}, this finesse {} reads up to {RUN_FORMAT_VERSION}",
                    info.format_version,
                    env!("CARGO_PKG_VERSION")
                ),
            });
        }
        Ok(info)
    }

    /// Writes a method's mask: `mask.safetensors` (readable form, or bit-packed with
    /// `packed`; metadata `method`) and its statistics `mask_stats.json`.
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn write_mask(&self, mask: &Mask, packed: bool, method: &str) -> Result<()> {
        let meta = BTreeMap::from([("method".to_string(), method.to_string())]);
        mask.write(&self.mask(), packed, &meta)?;
        write_json(&self.mask_stats(), &finesse_sparse::mask::stats(mask))
    }

    /// Reads `metrics.json` (`None` until the run has finished).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn read_metrics(&self) -> Result<Option<MetricsFile>> {
        read_optional_json(&self.metrics())
    }

    /// Reads `analysis.json` (`None` until the run has finished).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn read_analysis(&self) -> Result<Option<Analysis>> {
        read_optional_json(&self.analysis())
    }

    /// Reads `mask_stats.json` (`None` for methods without a mask).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn read_mask_stats(&self) -> Result<Option<MaskStats>> {
        read_optional_json(&self.mask_stats())
    }

    /// Reads `mask.safetensors` (`None` for methods without a mask).
    ///
    /// # Errors
    /// The file exists but is not a valid mask file.
    pub fn read_mask(&self) -> Result<Option<Mask>> {
        optional(&self.mask(), |p| Ok(Mask::read(p)?))
    }

    /// Reads `fisher.safetensors` (FISH runs that estimated it).
    ///
    /// # Errors
    /// The file exists but is not a valid Fisher file.
    pub fn read_fisher(&self) -> Result<Option<FisherFile>> {
        optional(&self.fisher(), |p| Ok(FisherFile::read(p)?))
    }

    /// Reads `diff.safetensors` (fixed-subset methods, once finished).
    ///
    /// # Errors
    /// The file exists but is not a valid sparse diff.
    pub fn read_diff(&self) -> Result<Option<SparseDiff>> {
        optional(&self.diff(), |p| Ok(SparseDiff::read(p)?))
    }

    /// Reads every event (a torn last line is left out).
    ///
    /// # Errors
    /// See [`crate::events::read_events`].
    pub fn read_events(&self) -> Result<Vec<EventRecord>> {
        if !self.events().is_file() {
            return Ok(Vec::new());
        }
        crate::events::read_events(&self.events())
    }

    /// An incremental reader of `events.jsonl` from its start.
    pub fn tail(&self) -> EventTail {
        EventTail::new(self.events())
    }

    /// The events folded into what a front-end shows, with the status from [`RunDir::status`].
    ///
    /// # Errors
    /// See [`crate::events::read_events`].
    pub fn progress(&self) -> Result<RunProgress> {
        let events = self.read_events()?;
        let mut p = RunProgress::default();
        for r in &events {
            p.apply(r.time, &r.event);
        }
        p.status = self.status_of(&events);
        Ok(p)
    }

    /// The fine-tuned model as an HF folder: `model/` when the run saved it.
    pub fn model_folder(&self) -> Option<PathBuf> {
        let m = self.model();
        m.join(CONFIG_FILE).is_file().then_some(m)
    }

    /// The base model folder the run started from (as recorded in `run.json`, or its model
    /// name resolved again when the recorded folder is gone).
    ///
    /// # Errors
    /// `run.json` cannot be read, or the model cannot be resolved again.
    pub fn base_model_folder(&self) -> Result<PathBuf> {
        let info = self.read_info()?;
        if info.model_dir.join(WEIGHTS_FILE).is_file() {
            return Ok(info.model_dir);
        }
        crate::models::model_folder(&info.config.model)
    }

    /// The fine-tuned model's tensors (canonical HF names): `model/`, or the run's diff applied
    /// to its base model.
    ///
    /// # Errors
    /// No `model/` and no diff, an unreadable file, or a base the diff does not fit.
    pub fn read_model_tensors(&self) -> Result<BTreeMap<String, HostTensor>> {
        if let Some(folder) = self.model_folder() {
            return Ok(finesse_sparse::files::read_model_tensors(
                &folder.join(WEIGHTS_FILE),
            )?);
        }
        let Some(diff) = self.read_diff()? else {
            return Err(TrainError::Resume {
                path: self.root.clone(),
                problem: "the run has neither model/ nor diff.safetensors: it is unfinished, \
                          or a dense run without --save-model"
                    .into(),
            });
        };
        let base_dir = self.base_model_folder()?;
        let base = finesse_sparse::files::read_model_tensors(&base_dir.join(WEIGHTS_FILE))?;
        Ok(diff.apply(&base)?)
    }

    /// Everything the run directory says, through the typed readers: the `finesse runs show`
    /// JSON dump.
    ///
    /// # Errors
    /// Any file of the run that exists but cannot be read.
    pub fn summary(&self) -> Result<RunSummary> {
        let progress = self.progress()?;
        Ok(RunSummary {
            path: self.root.clone(),
            status: progress.status.clone(),
            info: if self.run_json().is_file() {
                Some(self.read_info()?)
            } else {
                None
            },
            metrics: self.read_metrics()?,
            analysis: self.read_analysis()?,
            mask_stats: self.read_mask_stats()?,
            // The header only: a Fisher file is as large as the model.
            fisher: optional(&self.fisher(), |p| Ok(finesse_sparse::FisherMeta::read(p)?))?,
            checkpoint: self.checkpoint_state(),
            progress,
        })
    }
}

/// A run directory read whole through its typed readers (tensor files by their metadata).
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The folder.
    pub path: PathBuf,
    /// Where the run stands.
    pub status: RunStatus,
    /// `run.json`.
    pub info: Option<RunInfo>,
    /// `metrics.json`.
    pub metrics: Option<MetricsFile>,
    /// `analysis.json`.
    pub analysis: Option<Analysis>,
    /// `mask_stats.json`.
    pub mask_stats: Option<MaskStats>,
    /// How `fisher.safetensors` was estimated.
    pub fisher: Option<finesse_sparse::FisherMeta>,
    /// The resumable checkpoint's state.
    pub checkpoint: Option<CheckpointState>,
    /// The events folded.
    pub progress: RunProgress,
}

fn optional<T>(path: &Path, read: impl FnOnce(&Path) -> Result<T>) -> Result<Option<T>> {
    if path.is_file() {
        read(path).map(Some)
    } else {
        Ok(None)
    }
}

fn read_optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    optional(path, read_json)
}

/// Writes a value as pretty JSON, atomically.
///
/// # Errors
/// The value cannot be serialised, or the file cannot be written.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_atomic(path, &bytes)?)
}

/// Reads a JSON file.
///
/// # Errors
/// The file cannot be read or is not valid JSON of `T` ([`TrainError::Json`]
/// naming it).
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunConfig;
    use crate::events::{Event, EventLog};
    use finesse_sparse::MaskTensor;
    use finesse_sparse::distance::distances;
    use finesse_sparse::mask::stats;

    fn tensors(scale: f32) -> BTreeMap<String, HostTensor> {
        BTreeMap::from([
            (
                "bert.encoder.layer.0.attention.self.query.weight".to_string(),
                HostTensor::new(vec![2, 2], vec![1.0, 2.0 * scale, 3.0, 4.0]),
            ),
            (
                "bert.pooler.dense.bias".to_string(),
                HostTensor::new(vec![2], vec![0.5, -0.5 * scale]),
            ),
        ])
    }

    fn mask() -> Mask {
        Mask {
            tensors: BTreeMap::from([
                (
                    "bert.encoder.layer.0.attention.self.query.weight".to_string(),
                    MaskTensor {
                        shape: vec![2, 2],
                        kept: vec![1],
                    },
                ),
                (
                    "bert.pooler.dense.bias".to_string(),
                    MaskTensor {
                        shape: vec![2],
                        kept: vec![1],
                    },
                ),
            ]),
        }
    }

    /// A new run folder in `tmp` with its `run.json`.
    fn new_run(tmp: &Path) -> (RunDir, RunInfo) {
        let run = RunDir::new(tmp.join("run"));
        run.create().expect("create");
        let info = RunInfo {
            format_version: RUN_FORMAT_VERSION,
            finesse_version: "0.1.0".into(),
            config: RunConfig::new("m", finesse_glue::GlueTask::Mrpc, "d", &run.root),
            model_dir: "m".into(),
            model_sha256: "ab".repeat(32),
            data_files: vec![DataFile {
                split: "train".into(),
                path: "d/MRPC/train.tsv".into(),
                sha256: "cd".repeat(32),
                examples: 10,
                skipped_rows: 1,
            }],
            world_size: 1,
        };
        write_json(&run.run_json(), &info).expect("write");
        (run, info)
    }

    #[test]
    fn every_json_file_round_trips_through_its_reader() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (run, info) = new_run(tmp.path());
        assert_eq!(run.read_info().expect("read"), info);

        let metrics = MetricsFile {
            format_version: RUN_FORMAT_VERSION,
            final_metrics: BTreeMap::from([("accuracy".into(), 0.75), ("f1".into(), 0.8)]),
            splits: BTreeMap::from([("dev".into(), BTreeMap::from([("accuracy".into(), 0.75)]))]),
            best: BTreeMap::from([(
                "accuracy".into(),
                BestValue {
                    value: 0.8,
                    step: 4,
                },
            )]),
            steps: 8,
            duration_secs: 1.5,
            train_examples_per_sec: 3.0,
            train_tokens_per_sec: 30.0,
            peak_rss_mib: Some(100.0),
            optimizer_state_entries: 4,
            sparse: Some(SparseSummary {
                method: "fish".into(),
                kept: 2,
                total: 6,
                ..SparseSummary::default()
            }),
            supermask: Some(SupermaskSummary {
                kept: 1,
                total: 4,
                sparsity: 0.75,
                ..SupermaskSummary::default()
            }),
        };
        write_json(&run.metrics(), &metrics).expect("write");
        assert_eq!(run.read_metrics().expect("read"), Some(metrics.clone()));
        assert_eq!(metrics.main_metric(), Some(("accuracy", 0.75)));

        let analysis = Analysis {
            distance: distances(&tensors(1.0), &tensors(2.0)).expect("distances"),
            prune_sparsity: Some(BTreeMap::from([("w".into(), 0.5)])),
        };
        write_json(&run.analysis(), &analysis).expect("write");
        assert_eq!(run.read_analysis().expect("read"), Some(analysis.clone()));
        assert_eq!(analysis.distance.grid.cell(0, 0).map(|d| d.l0), Some(1));

        let st = stats(&mask());
        write_json(&run.mask_stats(), &st).expect("write");
        assert_eq!(run.read_mask_stats().expect("read"), Some(st.clone()));
        assert_eq!(st.grid.groups["pooler"].kept, 1);
    }

    #[test]
    fn every_tensor_file_and_the_events_round_trip_through_their_readers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (run, info) = new_run(tmp.path());
        mask()
            .write(&run.mask(), true, &BTreeMap::new())
            .expect("write");
        assert_eq!(run.read_mask().expect("read"), Some(mask()));

        let fisher = FisherFile {
            scores: tensors(1.0),
            meta: finesse_sparse::FisherMeta::new(
                finesse_sparse::FisherKind::Empirical,
                4,
                "MRPC",
                finesse_sparse::SampleOrder::Shuffled,
                1,
            ),
        };
        fisher.write(&run.fisher()).expect("write");
        assert_eq!(run.read_fisher().expect("read"), Some(fisher));

        let diff = SparseDiff::export(&tensors(1.0), &tensors(2.0), None).expect("diff");
        diff.write(&run.diff()).expect("write");
        assert_eq!(run.read_diff().expect("read"), Some(diff));
        // The run's model: no model/, so its diff applied to the base it records.
        let base = tmp.path().join("m");
        finesse_bert::io::write_f32_tensors(
            &base.join(WEIGHTS_FILE),
            &tensors(1.0).into_iter().collect::<Vec<_>>(),
            BTreeMap::new(),
        )
        .expect("base");
        let mut info = info;
        info.model_dir = base;
        write_json(&run.run_json(), &info).expect("write");
        assert_eq!(run.read_model_tensors().expect("model"), tensors(2.0));

        let events = [
            Event::Fisher { done: 4, total: 4 },
            Event::Checkpoint {
                step: 2,
                path: run.checkpoint(),
            },
        ];
        let mut log = EventLog::open(&run.events()).expect("log");
        for e in &events {
            log.append(e).expect("append");
        }
        let read: Vec<Event> = run
            .read_events()
            .expect("events")
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(read, events);
    }

    #[test]
    fn status_follows_the_lock_the_events_and_the_checkpoint() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(tmp.path().join("run"));
        assert_eq!(run.status(), RunStatus::Unknown);
        assert!(RunDir::open(&run.root).is_err());
        run.create().expect("create");
        let lock = run.lock().expect("lock");
        assert_eq!(run.status(), RunStatus::Running);
        assert!(
            run.lock()
                .expect_err("held")
                .to_string()
                .contains("another process")
        );
        let mut log = EventLog::open(&run.events()).expect("log");
        log.append(&Event::Start {
            total_steps: 4,
            steps_per_epoch: 2,
            train_examples: 8,
            eval_examples: 2,
            start_step: 0,
            trainable_params: 1,
            total_params: 1,
        })
        .expect("append");
        drop(lock);
        assert!(!run.lock_path().exists());
        assert_eq!(run.status(), RunStatus::Interrupted { resumable: false });
        let state = CheckpointState {
            format_version: RUN_FORMAT_VERSION,
            step: 2,
            best: BTreeMap::new(),
        };
        run.write_checkpoint(&state, &[], &[]).expect("checkpoint");
        assert_eq!(run.status(), RunStatus::Interrupted { resumable: true });
        log.append(&Event::Cancelled { step: 2 }).expect("append");
        assert_eq!(run.status(), RunStatus::Cancelled);
        assert!(run.status().is_resumable());
        log.append(&Event::Error {
            step: 3,
            message: "boom".into(),
        })
        .expect("append");
        assert_eq!(
            run.status(),
            RunStatus::Failed {
                message: "boom".into()
            }
        );
    }

    #[test]
    fn a_folder_holding_anything_else_is_not_used_for_a_run() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let user = tmp.path().join("mine");
        std::fs::create_dir_all(user.join("checkpoint")).expect("mkdir");
        std::fs::write(user.join("checkpoint/precious.bin"), "x").expect("write");
        let err = RunDir::new(&user)
            .create()
            .expect_err("not empty")
            .to_string();
        assert!(
            err.contains("not empty") && err.contains("checkpoint"),
            "{err}"
        );
        assert!(user.join("checkpoint/precious.bin").is_file());
        // An empty folder is fine.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        RunDir::new(&empty).create().expect("empty folder");
    }
}
