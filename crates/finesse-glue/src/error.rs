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
         download_glue_data.py); run `finesse data fetch {task}`, or pass --data-dir or set $GLUE_DIR"
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
        /// 1-based line number (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        problem: RowProblem,
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

/// What is wrong with a row (or the header) of a task file.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RowProblem {
    /// The file is not UTF-8.
    #[error("not UTF-8 (byte {valid_up_to})")]
    NotUtf8 {
        /// Bytes before the first invalid one.
        valid_up_to: usize,
    },
    /// A task with a header line has an empty file.
    #[error("empty file, expected a header")]
    NoHeader,
    /// The header lacks a column the task reads.
    #[error("header has no `{column}` column (found: {})", .found.join(", "))]
    MissingColumn {
        /// The column the task needs.
        column: &'static str,
        /// The header's columns.
        found: Vec<String>,
    },
    /// A row with another number of tab-separated columns than the file's.
    #[error("expected {expected} tab-separated columns, found {found}")]
    ColumnCount {
        /// Columns every row must have.
        expected: usize,
        /// Columns of this row.
        found: usize,
    },
    /// A label that is not one of the task's.
    #[error("unknown label `{label}` (expected one of: {})", .expected.join(", "))]
    UnknownLabel {
        /// The label found (trimmed).
        label: String,
        /// The task's labels, in class order.
        expected: &'static [&'static str],
    },
    /// A regression score that is not a number.
    #[error("score `{score}` is not a number")]
    ScoreNotANumber {
        /// The text found (trimmed).
        score: String,
    },
    /// A regression score that is NaN or infinite.
    #[error("score `{score}` is not finite")]
    ScoreNotFinite {
        /// The text found (trimmed).
        score: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = GlueError> = std::result::Result<T, E>;
