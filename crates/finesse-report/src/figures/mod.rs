//! Each figure kind, built from runs: what it reads, what it shows, and the error naming the
//! missing file when a run cannot give it.
//!
//! | kind | reads | figure |
//! |---|---|---|
//! | `sparsity` | `mask_stats.json` | kept fraction (FISH, random, BitFit, freeze) or sparsity (prune, supermask) per layer × matrix |
//! | `distance` | `analysis.json` (or two model folders) | L1 / mean \|Δ\| / angular / L0 / relative L2 per layer × matrix, optionally against two random initialisations |
//! | `fisher` | `fisher.safetensors`, `mask_stats.json` | mean or total Fisher per cell, or each cell's share of the top-k budget |
//! | `overlap` | `mask.safetensors` of each run | share of one run's pruned entries another also prunes, beside random masks' expectation |
//! | `curves` | `events.jsonl` | training loss (raw and smoothed), learning rate, dev metric against step |
//! | `sweep` | `run.json`, `metrics.json` | dev metric against keep ratio, sparsity, lr or Fisher samples, one line per method |
//! | `magnitudes` | `mask.safetensors`, the base model | log10 \|w\| of the entries a supermask prunes vs magnitude pruning at its sparsity |
//! | `distance-vs-steps` | `analysis.json`, `metrics.json` | distance from the base against steps trained, one line per method |

mod all;
mod layer;
mod magnitudes;
mod overlap;
mod training;

pub use all::{AllFigures, figure_all};
pub use layer::{
    DistanceMetric, FisherStat, GridOptions, distance, distance_of_models, fisher, sparsity,
};
pub use magnitudes::magnitudes;
pub use overlap::{OverlapScope, overlap};
pub use training::{SweepAxis, curves, distance_vs_steps, smooth, sweep};

/// The figure kinds (`finesse figure KIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureKind {
    /// Mask sparsity / kept fraction per layer × matrix.
    Sparsity,
    /// Distances from the base per layer × matrix.
    Distance,
    /// Fisher information per layer × matrix.
    Fisher,
    /// Overlap of runs' pruned entries.
    Overlap,
    /// Training curves.
    Curves,
    /// Dev metric across runs against a setting.
    Sweep,
    /// Magnitudes of pruned weights.
    Magnitudes,
    /// Distance against steps across runs.
    DistanceVsSteps,
}

impl FigureKind {
    /// The kind's name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sparsity => "sparsity",
            Self::Distance => "distance",
            Self::Fisher => "fisher",
            Self::Overlap => "overlap",
            Self::Curves => "curves",
            Self::Sweep => "sweep",
            Self::Magnitudes => "magnitudes",
            Self::DistanceVsSteps => "distance-vs-steps",
        }
    }
}
