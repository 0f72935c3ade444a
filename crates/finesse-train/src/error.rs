//! The one error type of `finesse-train`.

use std::path::PathBuf;

/// Errors of a fine-tuning run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Model loading, saving or tokenisation.
    #[error(transparent)]
    Bert(#[from] finesse_bert::BertError),
    /// GLUE data or metrics.
    #[error(transparent)]
    Glue(#[from] finesse_glue::GlueError),
    /// Fisher estimation, mask selection or a mask/diff file failed (boxed: its structured
    /// variants are large, and every `Result` of this crate carries this type).
    #[error(transparent)]
    Sparse(Box<finesse_sparse::SparseError>),
    /// An invalid run configuration.
    #[error("invalid run configuration: `{field}`: {problem}")]
    Config {
        /// The setting (CLI flag name without dashes).
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A tensor could not be read back from the device.
    #[error(transparent)]
    Readback(#[from] finesse_bert::ReadbackError),
    /// A file or folder of the run directory.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the run directory.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The (de)serialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// A folder that is not a run directory.
    #[error("{path} is not a finesse run directory (no run.json or events.jsonl)")]
    NotARun {
        /// The folder.
        path: PathBuf,
    },
    /// A run directory that holds no fine-tuned model folder.
    #[error("{path} is a run directory without model/: {hint}")]
    NoModel {
        /// The run directory.
        path: PathBuf,
        /// How to get the model.
        hint: String,
    },
    /// A line of `events.jsonl` that is not an event.
    #[error("{path}:{line}: not a finesse event: {source}")]
    Event {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The device ran out of memory (cubecl's allocation failure, a panic inside Burn).
    #[error(
        "the device ran out of memory: {message}\nLower --batch-size or --max-seq-len (memory \
         grows with both), or train on a CPU backend (--device flex)"
    )]
    DeviceOutOfMemory {
        /// The first line of the backend's message.
        message: String,
    },
    /// The training thread panicked (a bug); the message of the panic.
    #[error("the training thread panicked (a bug in finesse, please report it): {message}")]
    Panic {
        /// The panic message.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error(
        "loss is {loss} at step {step} (lr {lr:.3e}); the run stopped. Try a lower --lr, \
         --max-grad-norm 1.0, or check the data"
    )]
    NonFiniteLoss {
        /// Global step (1-based).
        step: usize,
        /// The loss value.
        loss: f64,
        /// Learning rate at that step.
        lr: f64,
    },
    /// Data-parallel training: a bad launch, ranks that disagree, or drift between ranks.
    #[error("distributed run (rank {rank} of {size}): {problem}")]
    Distributed {
        /// This process's rank.
        rank: usize,
        /// Ranks in the job.
        size: usize,
        /// What is wrong.
        problem: String,
    },
    /// A checkpoint that cannot be resumed.
    #[error("cannot resume from {path}: {problem}")]
    Resume {
        /// The run directory.
        path: PathBuf,
        /// Why.
        problem: String,
    },
}

impl From<finesse_sparse::SparseError> for TrainError {
    fn from(e: finesse_sparse::SparseError) -> Self {
        Self::Sparse(Box::new(e))
    }
}

impl TrainError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
