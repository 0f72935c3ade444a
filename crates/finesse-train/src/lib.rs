//! Fine-tuning runs: [`RunConfig`], the training methods and their hooks ([`method`]), the
//! training loop ([`trainer`]), the BERT schedule (optimizers and masks come from
//! `finesse-sparse`), the run directory ([`rundir`]), events ([`events`]) and progress
//! ([`progress`]), and the public handle ([`start_run`] → [`RunHandle`]) every front-end uses.
//!
//! No function here is longer than 80 lines: `clippy::too_many_lines` is on for this crate
//! (threshold in the workspace's `clippy.toml`).

#![warn(clippy::too_many_lines, clippy::missing_errors_doc)]

pub mod bench;
pub mod command;
pub mod config;
pub mod demo;
pub mod device;
pub mod dist;
pub mod error;
pub mod events;
pub mod handle;
pub mod method;
pub mod models;
pub mod progress;
pub mod resume;
pub mod rundir;
pub mod schedule;
pub mod trainer;

pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use events::Event;
pub use handle::{RunHandle, start_run};
pub use method::{MethodConfig, MethodName, UpdateRule};
pub use progress::RunProgress;
pub use resume::ResumeRequest;
pub use rundir::{MetricsFile, RunDir, RunStatus};
pub use trainer::RunOutcome;
