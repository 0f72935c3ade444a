//! Which encoder weights train on gradient slices ([`finesse_bert::slices`]): every masked
//! Linear weight of the encoder whose kept entries lie in at most [`MAX_SHARE`] of its output
//! units or input features (a FISH mask concentrates; a random one spreads and is not sliced).
//! `FINESSE_NO_SLICES=1` turns it off (to measure against the dense weight gradient).

use burn::tensor::Device;
use finesse_bert::slices::{SlicePlan, WeightSlice};
use finesse_bert::{ParamInfo, ParamRegistry, ParamRole};
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
    if std::env::var("FINESSE_NO_SLICES").is_ok_and(|v| v != "0") {
        return plan;
    }
    for p in registry.iter() {
        // The encoder's Linear weights (the layers `slices::linear` routes), PyTorch [out, in].
        if p.layer.is_none() || p.role != ParamRole::Weight || !p.transposed || p.shape.len() != 2 {
            continue;
        }
        let UpdateRule::Masked(kept) = rule(p) else {
            continue;
        };
        let Some(slice) = WeightSlice::for_kept(&kept, p.shape[0], p.shape[1], MAX_SHARE) else {
            continue;
        };
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
            "weight gradients on slices for {} encoder weights",
            plan.len()
        );
    }
    plan
}

fn describe(slice: &WeightSlice) -> String {
    match slice {
        WeightSlice::Outputs(v) => format!("{} output units", v.len()),
        WeightSlice::Inputs(v) => format!("{} input features", v.len()),
    }
}
