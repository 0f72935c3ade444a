//! Before training: the model folder, tokenizer and data of a run, checked against each other,
//! and `run.json` written (a new run) or compared (a resume: same model, same data).

use std::path::PathBuf;

use finesse_bert::checkpoint::{TOKENIZER_FILE, WEIGHTS_FILE};
use finesse_bert::hub::sha256_file;
use finesse_bert::{BertTokenizer, ModelFolder, check_model_limits};
use finesse_glue::batch::{BatchPlan, seeded_subset};
use finesse_glue::{EncodedSplit, SplitKind, encode_split, load_split};

use super::eval::{DevSplits, EvalSet};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::rundir::{DataFile, RUN_FORMAT_VERSION, RunDir, RunInfo, write_json};

/// What a run reads before it trains.
pub struct RunData {
    /// The model folder.
    pub model_dir: PathBuf,
    /// The training split, encoded once.
    pub train: EncodedSplit,
    /// The dev splits.
    pub dev: DevSplits,
    /// The data files read, with their sha256.
    pub files: Vec<DataFile>,
}

/// Resolves the model, checks its tokenizer against it and reads and encodes the task's
/// splits.
///
/// # Errors
/// A model that cannot be resolved, a tokenizer that does not fit it, or bad data.
pub fn load(config: &RunConfig) -> Result<RunData> {
    let task = config.task;
    let model_dir = crate::models::model_folder(&config.model)?;
    let tokenizer = BertTokenizer::from_file(&model_dir.join(TOKENIZER_FILE), config.max_seq_len)?;
    // Token ids and positions must fit the embedding tables before any data is read.
    check_model_limits(
        &ModelFolder::open(&model_dir)?.config()?,
        &tokenizer,
        &model_dir,
    )?;
    let split = |kind| load_split(task, &config.data_dir, kind, config.skip_bad_rows);
    let train_split = split(SplitKind::Train)?;
    let mut files = vec![data_file(&train_split)?];
    let train = encode_split(&train_split, &tokenizer)?;
    let mut sets = Vec::new();
    for i in 0..task.spec().dev_files.len() {
        let dev = split(SplitKind::Dev(i))?;
        files.push(data_file(&dev)?);
        let data = encode_split(&dev, &tokenizer)?;
        let pool = seeded_subset(data.len(), config.max_eval_examples, config.seed);
        sets.push(EvalSet {
            name: dev.name.clone(),
            data,
            pool,
        });
    }
    Ok(RunData {
        model_dir,
        train,
        dev: DevSplits {
            sets,
            plan: BatchPlan {
                batch_size: config.batch_size,
                bucketing: config.bucketing,
            },
            task,
        },
        files,
    })
}

/// A new run: writes `run.json`. A resume: refuses when the model or a data file is not the
/// one the run started with.
///
/// # Errors
/// `run.json` cannot be written or read, or the inputs changed.
pub fn record_or_check(
    config: &RunConfig,
    dir: &RunDir,
    data: &RunData,
    resume: bool,
) -> Result<()> {
    let model_sha256 = sha256_file(&data.model_dir.join(WEIGHTS_FILE))?;
    let world = crate::dist::world();
    let world_size = world.size();
    // Every rank must read the same bytes: paths alone (the settings) do not say so.
    let inputs: Vec<&str> = std::iter::once(model_sha256.as_str())
        .chain(data.files.iter().map(|f| f.sha256.as_str()))
        .collect();
    crate::dist::check_same(
        world,
        "the model and data",
        inputs.join(",").as_bytes(),
        |a, b| {
            format!(
                "sha256 of the model, then each data file: rank 0 read {}, this rank {}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            )
        },
    )?;
    if resume {
        return check_inputs(dir, &model_sha256, &data.files, world_size);
    }
    let info = RunInfo {
        format_version: RUN_FORMAT_VERSION,
        finesse_version: env!("CARGO_PKG_VERSION").to_string(),
        config: config.clone(),
        model_dir: data.model_dir.clone(),
        model_sha256,
        data_files: data.files.clone(),
        world_size,
    };
    write_json(&dir.run_json(), &info)
}

fn check_inputs(
    dir: &RunDir,
    model_sha256: &str,
    data_files: &[DataFile],
    world_size: usize,
) -> Result<()> {
    let info = dir.read_info()?;
    let refuse = |problem: String| TrainError::Resume {
        path: dir.root.clone(),
        problem,
    };
    if info.world_size != world_size {
        // Each rank's share of every batch, and the order of the sums, depend on the world
        // size: another one would not continue the same run.
        return Err(refuse(format!(
            "the run was trained by {} rank(s) and this job has {world_size}: resume it with \
             the same number of ranks (`mpirun -np {}`)",
            info.world_size, info.world_size
        )));
    }
    if info.model_sha256 != model_sha256 {
        return Err(refuse(format!(
            "the model changed: {} has sha256 {model_sha256}, the run started from {} ({})",
            info.config.model,
            info.model_sha256,
            info.model_dir.display()
        )));
    }
    for now in data_files {
        match info.data_files.iter().find(|d| d.split == now.split) {
            Some(then) if then.sha256 == now.sha256 => {}
            Some(then) => {
                return Err(refuse(format!(
                    "the data changed: {} has sha256 {}, the run started from {} with {}",
                    now.path.display(),
                    now.sha256,
                    then.path.display(),
                    then.sha256
                )));
            }
            None => {
                return Err(refuse(format!(
                    "run.json records no `{}` split ({})",
                    now.split,
                    now.path.display()
                )));
            }
        }
    }
    Ok(())
}

fn data_file(split: &finesse_glue::Split) -> Result<DataFile> {
    Ok(DataFile {
        split: split.name.clone(),
        path: split.path.clone(),
        sha256: sha256_file(&split.path)?,
        examples: split.examples.len(),
        skipped_rows: split.skipped.len(),
    })
}
