//! The one error type of `finesse-glue`.

use std::path::PathBuf;

/// Errors reading GLUE data or computing metrics.
#[derive(Debug, thiserror::Error)]
pub enum GlueError {
    /// A task name that is not one of the nine.
    #[error("unknown GLUE task `{name}` (known: {known})")]
    UnknownTask {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// A data file is missing.
    #[error(
        "{path} not found: expected GLUE layout <data-dir>/{task}/{file} (as written by \
         download_glue_data.py); pass --data-dir or set $GLUE_DIR"
    )]
    MissingFile {
        /// The path tried.
        path: PathBuf,
        /// Task folder name.
        task: String,
        /// File name.
        file: String,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed row (wrong column count, unknown label, unparsable score, bad header).
    #[error("{path}:{line}: {problem}")]
    BadRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The data has no example at all.
    #[error("{path}: no examples")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Tokenisation failed.
    #[error(transparent)]
    Tokenizer(#[from] finesse_bert::BertError),
    /// Predictions and labels of different lengths, or an empty set.
    #[error("metric {metric}: {problem}")]
    Metric {
        /// The metric.
        metric: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = GlueError> = std::result::Result<T, E>;
