//! Which encoder weights train on gradient slices ([`finesse_bert::slices`]): every masked
//! Linear weight of the encoder whose kept entries lie in at most [`MAX_SHARE`] of its output
//! units or input features (a FISH mask concentrates; a random one spreads and is not sliced).
//! `FINESSE_NO_SLICES=1` turns it off (to measure against the dense weight gradient).

use burn::tensor::Device;
use finesse_bert::slices::{SlicePlan, WeightSlice};
use finesse_bert::{ParamInfo, ParamKind, ParamRegistry, ParamRole};
use finesse_sparse::UpdateRule;

/// A slice costing more than this share of the dense weight gradient is not worth its gathers.
pub const MAX_SHARE: f64 = 0.5;

/// The plan for `registry` under `rule` (empty when nothing is worth slicing or when
/// `FINESSE_NO_SLICES` is set to anything but `0`).
pub fn plan(
    registry: &ParamRegistry,
    rule: impl Fn(&ParamInfo) -> UpdateRule,
    device: &Device,
) -> SlicePlan {
    let mut plan = SlicePlan::new();
    let off = std::env::var("FINESSE_NO_SLICES").is_ok_and(|v| v != "0");
    // The encoder's weight-gradient products: all of them dense, and what this plan computes.
    let (mut dense_work, mut work) = (0.0, 0.0);
    let last_layer = registry.iter().filter_map(|p| p.layer).max();
    for p in registry.iter() {
        // The encoder's Linear weights (the layers `slices::linear` routes), PyTorch [out, in].
        if p.layer.is_none() || p.role != ParamRole::Weight || !p.transposed || p.shape.len() != 2 {
            continue;
        }
        let size = p.numel as f64 * rows_share(p, last_layer);
        dense_work += size;
        let kept = match rule(p) {
            UpdateRule::Frozen => continue,
            UpdateRule::Masked(kept) if !off => kept,
            _ => {
                work += size;
                continue;
            }
        };
        let Some(slice) = WeightSlice::for_kept(&kept, p.shape[0], p.shape[1], MAX_SHARE) else {
            work += size;
            continue;
        };
        work += size * slice.share(p.shape[0], p.shape[1]);
        let bias_name = p.name.strip_suffix(".weight").map(|s| format!("{s}.bias"));
        let bias_trained = bias_name
            .and_then(|n| registry.by_name(&n))
            .is_some_and(|b| rule(b) != UpdateRule::Frozen);
        log::debug!(
            "{}: weight gradient on {} of {}",
            p.name,
            describe(&slice),
            p.shape[0] * p.shape[1]
        );
        plan.insert(p.id, slice, bias_trained, device);
    }
    if !plan.is_empty() {
        log::info!(
            "weight gradients on slices for {} encoder weights; the encoder's weight-gradient \
             products: {:.1}% of dense",
            plan.len(),
            100.0 * work / dense_work.max(1.0)
        );
    }
    plan
}

/// The rows a weight's products run on, as a share of a layer's: the last layer runs WQ, WD,
/// WI and WO for the `[CLS]` position only (`BertModel::pooled`), one row per sequence, which
/// the work shares count as none.
fn rows_share(p: &ParamInfo, last_layer: Option<usize>) -> f64 {
    let all_rows = matches!(p.kind, ParamKind::Key | ParamKind::Value);
    if p.layer == last_layer && !all_rows {
        0.0
    } else {
        1.0
    }
}

fn describe(slice: &WeightSlice) -> String {
    match slice {
        WeightSlice::Outputs(v) => format!("{} output units", v.len()),
        WeightSlice::Inputs(v) => format!("{} input features", v.len()),
    }
}
