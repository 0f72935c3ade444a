//! `magnitudes`: the weights a supermask prunes against those magnitude pruning would prune at
//! the same per-matrix sparsity ("How fine can fine-tuning be?", Figure 5).

use finesse_sparse::mask::magnitude_like;

use crate::error::{ReportError, Result};
use crate::plots::HistogramFigure;
use crate::runs::Run;

/// Histograms of log10 |w| of the base weights a run's mask drops and of those magnitude
/// pruning at the mask's per-tensor sparsity drops (exact zeros left out: log10 0 is −∞).
///
/// # Errors
/// The run has no `mask.safetensors`, or its base model cannot be read.
pub fn magnitudes(run: &Run) -> Result<HistogramFigure> {
    let mask = run
        .dir
        .read_mask()?
        .ok_or_else(|| ReportError::MissingFile {
            figure: "magnitudes",
            run: run.summary.path.clone(),
            file: "mask.safetensors",
            why: "written by supermask and prune runs (and the fixed-subset methods)",
        })?;
    let folder = run.dir.base_model_folder()?;
    let weights = finesse_train::models::model_tensors(&folder.to_string_lossy())?;
    let magnitude = magnitude_like(&mask, &weights)?;
    let dropped_log_abs = |m: &finesse_sparse::Mask| -> Vec<f64> {
        let mut out = Vec::new();
        for (name, t) in &m.tensors {
            let Some(w) = weights.get(name) else { continue };
            let bytes = t.to_bytes();
            out.extend(
                bytes
                    .iter()
                    .zip(&w.data)
                    .filter(|(k, v)| **k == 0 && **v != 0.0)
                    .map(|(_, v)| (v.abs() as f64).log10()),
            );
        }
        out
    };
    let by_run = dropped_log_abs(&mask);
    let by_magnitude = dropped_log_abs(&magnitude);
    if by_run.is_empty() {
        return Err(ReportError::input(
            "magnitudes",
            format!(
                "{}'s mask drops no non-zero weight of its base model",
                run.name()
            ),
        ));
    }
    Ok(HistogramFigure {
        kind: "magnitudes",
        title: format!(
            "Magnitudes of the pruned weights: {} vs magnitude pruning",
            run.method_name()
        ),
        subtitle: format!(
            "{} — run {}; magnitude pruning at the same sparsity per matrix",
            run.label(),
            run.name()
        ),
        x_label: "log10 |w| of the base weight".into(),
        sets: vec![
            (format!("pruned by the {}", run.method_name()), by_run),
            ("pruned by magnitude".into(), by_magnitude),
        ],
        bins: 80,
    })
}
