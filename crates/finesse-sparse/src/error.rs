//! The one error type of `finesse-sparse`.

use std::path::PathBuf;

/// Everything that can go wrong estimating Fisher scores, selecting masks, or reading and
/// applying masks and sparse diffs.
#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    /// Reading a model or writing a tensor file failed.
    #[error(transparent)]
    Bert(#[from] finesse_bert::BertError),
    /// A file is not what it claims to be (format, version, metadata).
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// One tensor of a file is wrong (shape, dtype, values).
    #[error("{path}: tensor `{name}`: {problem}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// HF name of the tensor.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A setting is out of range.
    #[error("{field}: {problem}")]
    Config {
        /// The option or field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Two things that must belong together do not (a diff and a base, a mask and a model).
    #[error("{0}")]
    Mismatch(String),
    /// A Fisher score is NaN or infinite.
    #[error("Fisher score of `{name}` is not finite after {samples} samples")]
    NonFinite {
        /// HF name of the parameter.
        name: String,
        /// Samples accumulated.
        samples: usize,
    },
}

/// `Result` with [`SparseError`].
pub type Result<T> = std::result::Result<T, SparseError>;
