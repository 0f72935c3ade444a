//! GLUE for finesse: the nine tasks ([`task`]), their TSV files ([`data`]), encoding once per
//! run and batching ([`batch`]), the GLUE metrics ([`metrics`]), and downloading the tasks
//! ([`fetch`]).

// Every fallible public function says when it fails (finesse-train will follow).
#![warn(clippy::missing_errors_doc)]

pub mod batch;
pub mod data;
pub mod error;
pub mod fetch;
pub mod metrics;
pub mod task;

pub use batch::{BatchLabels, BatchPlan, EncodedSplit, HostBatch, encode_split, make_batch};
pub use data::{Example, Label, Split, SplitKind, load_split};
pub use error::{GlueError, Result, RowProblem};
pub use metrics::{Metric, Predictions};
pub use task::GlueTask;
