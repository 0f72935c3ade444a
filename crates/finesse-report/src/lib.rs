//! Figures and tables from finesse run directories.
//!
//! Everything here reads runs through `finesse-train`'s typed run-directory readers
//! ([`finesse_train::RunDir`]) and tensor files through `finesse-sparse` / `finesse-bert`,
//! never the trainer's internals, so the CLI (`finesse figure`, `finesse report`) and the
//! desktop app draw the same pictures.
//!
//! - [`canvas`]: the output (PNG or SVG by extension, size, dpi), fonts embedded in the binary,
//!   the [`Figure`] trait every figure implements.
//! - [`colormap`]: colour-blind-safe maps (viridis, a diverging red–blue) on linear or log
//!   scales, and the line palette (Okabe–Ito).
//! - [`grid`]: the layer × matrix figures (heatmap and the papers' line form).
//! - [`figures`]: building each figure kind from runs (`sparsity`, `distance`, `fisher`,
//!   `overlap`, `curves`, `sweep`, `magnitudes`, `distance-vs-steps`) and `figure all`.
//! - [`report`]: the table of runs (`finesse report`: Markdown, CSV, JSON; mean ± std groups).

pub mod canvas;
pub mod colormap;
pub mod error;
pub mod figures;
pub mod grid;
pub mod plots;
pub mod report;
pub mod runs;

pub use canvas::{Canvas, Figure, OutputFormat};
pub use error::{ReportError, Result};
