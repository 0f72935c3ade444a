//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong making a figure or a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A run lacks the file a figure is drawn from.
    #[error("{figure} figure: {run} has no {file} ({why})")]
    MissingFile {
        /// The figure kind.
        figure: &'static str,
        /// The run directory.
        run: PathBuf,
        /// The file name inside it.
        file: &'static str,
        /// What writes that file, or what to do.
        why: &'static str,
    },
    /// The inputs cannot make this figure (a reason naming what is missing or inconsistent).
    #[error("{figure} figure: {reason}")]
    Input {
        /// The figure kind.
        figure: &'static str,
        /// Why.
        reason: String,
    },
    /// A run directory or one of its files could not be read.
    #[error(transparent)]
    Run(Box<finesse_train::TrainError>),
    /// A tensor file could not be read or compared.
    #[error(transparent)]
    Sparse(#[from] finesse_sparse::SparseError),
    /// A model file could not be read.
    #[error(transparent)]
    Bert(#[from] finesse_bert::BertError),
    /// The output's extension names no format.
    #[error("{path}: unknown figure format (use .png or .svg)")]
    UnknownFormat {
        /// The output path.
        path: PathBuf,
    },
    /// Drawing failed (plotters' error, as text: its type is generic over the backend).
    #[error("drawing the {figure} figure: {message}")]
    Draw {
        /// The figure kind.
        figure: &'static str,
        /// plotters' message.
        message: String,
    },
    /// Encoding the PNG failed.
    #[error("encoding PNG: {0}")]
    Png(#[from] png::EncodingError),
    /// Writing a table failed.
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<finesse_train::TrainError> for ReportError {
    fn from(e: finesse_train::TrainError) -> Self {
        Self::Run(Box::new(e))
    }
}

impl ReportError {
    /// A missing-input error of `figure`.
    pub fn input(figure: &'static str, reason: impl Into<String>) -> Self {
        Self::Input {
            figure,
            reason: reason.into(),
        }
    }
}

/// The crate's result.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
