//! Sparse fine-tuning (FISH masks and baselines):
//!
//! - [`fisher`]: diagonal Fisher estimators (empirical, expected, sampled; classification and
//!   regression) from per-sample gradients.
//! - [`fisher_file`]: the Fisher file (scores + how they were estimated), one writer and reader.
//! - [`freeze`]: L0-close fine-tuning: `--freeze` specs (matrix × layers, deepest N, embeddings,
//!   regex).
//! - [`mask`]: top-k selection (global or per tensor, head always kept, deterministic ties),
//!   random and BitFit masks, statistics per tensor and per layer × matrix, mask files.
//! - [`optim`]: AdamW and SGD that keep state only for the kept entries.
//! - [`prune`]: iterative magnitude pruning on the cubic schedule.
//! - [`supermask`]: supermask training (Bernoulli(σ(v)) masks, straight-through scores).
//! - [`diff`]: sparse diffs of a fine-tuned model against its base: export, apply, revert,
//!   compose.
//! - [`distance`]: L1, mean absolute, angular, L0 and relative L2 distances per tensor and per
//!   layer × matrix, and the same between two random initialisations.
//! - [`files`]: raw safetensors I/O, canonical names, content digests.
//! - [`grid`]: the layer × WQ…WO grid ([`LayerGrid`]) shared by mask statistics, overlaps and
//!   distances.
//! - [`options`]: the vocabulary of the sparse options (mask scope, Fisher sample order and
//!   kind, prune scope) as enums; with the `clap` feature they derive `clap::ValueEnum`.

// Every fallible public function says when it fails (finesse-train will follow).
#![warn(clippy::missing_errors_doc)]

#[cfg(feature = "flex")]
mod adamw_host;
pub mod diff;
pub mod distance;
pub mod error;
mod exchange;
pub mod files;
pub mod fisher;
pub mod fisher_file;
pub mod freeze;
pub mod grid;
pub mod mask;
pub mod optim;
pub mod options;
pub mod prune;
pub mod supermask;

pub use diff::{DiffInfo, SparseDiff, TensorMap};
pub use error::{Result, SparseError, UnknownName};
pub use fisher::{FisherKind, FisherKindName, SampleOrder};
pub use fisher_file::{FisherFile, FisherMeta};
pub use grid::LayerGrid;
pub use mask::{Budget, Mask, MaskStats, MaskTensor, Scope, Selection};
pub use optim::{Algorithm, OptimizerConfig, SparseOptimizer, UpdateRule};
pub use options::PruneScope;
