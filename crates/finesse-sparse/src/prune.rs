//! Iterative magnitude pruning during fine-tuning (Zhu & Gupta, as in "How fine can fine-tuning
//! be?"): sparsity rises from s_i to s_f on the cubic schedule
//! s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(nΔt))³, pruning every Δt steps by weight magnitude per
//! matrix (or globally over the targets). Pruned weights are set to exactly +0.0 and stay there:
//! the mask is re-applied after every optimizer step, so the forward pass never sees them.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Bool, Device, Tensor, TensorData};
use finesse_bert::{ParamInfo, ParamRegistry, ParamRole, model_tensors};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseError};

/// The cubic sparsity schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CubicSchedule {
    /// Initial sparsity s_i.
    pub initial: f64,
    /// Final sparsity s_f.
    pub final_sparsity: f64,
    /// First pruning step t₀ (steps counted from 1).
    pub start_step: usize,
    /// Steps between pruning events Δt.
    pub interval: usize,
    /// Number of intervals n (pruning happens n + 1 times: t₀, t₀ + Δt, …, t₀ + nΔt).
    pub events: usize,
}

impl CubicSchedule {
    /// Checks the ranges.
    ///
    /// # Errors
    ///
    /// [`SparseError::Config`] for sparsities outside [0, 1), an initial sparsity above the
    /// final one, or a zero start step or interval.
    pub fn validate(&self) -> Result<()> {
        let bad = |problem: String| {
            Err(SparseError::Config {
                field: "prune schedule",
                problem,
            })
        };
        if !(0.0..1.0).contains(&self.initial) || !(0.0..1.0).contains(&self.final_sparsity) {
            return bad(format!(
                "sparsities must be in [0, 1): initial {}, final {}",
                self.initial, self.final_sparsity
            ));
        }
        if self.initial > self.final_sparsity {
            return bad("the initial sparsity exceeds the final one".into());
        }
        if self.interval == 0 || self.start_step == 0 {
            return bad("start step and interval must be at least 1".into());
        }
        Ok(())
    }

    /// Sparsity in force after step `t` (s_i before t₀ is not applied: 0 until t₀).
    pub fn level(&self, t: usize) -> f64 {
        if t < self.start_step {
            return 0.0;
        }
        let span = (self.events * self.interval) as f64;
        let progress = if span == 0.0 {
            1.0
        } else {
            ((t - self.start_step) as f64 / span).min(1.0)
        };
        // The ends are returned as given, not as the rounded value of the formula.
        if progress == 0.0 {
            self.initial
        } else if progress >= 1.0 {
            self.final_sparsity
        } else {
            self.final_sparsity + (self.initial - self.final_sparsity) * (1.0 - progress).powi(3)
        }
    }

    /// The sparsity to prune to after step `t`, when `t` is a pruning step.
    pub fn prune_at(&self, t: usize) -> Option<f64> {
        let k = t.checked_sub(self.start_step)?;
        (k.is_multiple_of(self.interval) && k / self.interval <= self.events).then(|| self.level(t))
    }
}

pub use crate::options::PruneScope;

/// Indices (into `scores`) of the `count` smallest scores, ties broken by lower index.
fn smallest(scores: &[f32], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    if count > 0 && count < order.len() {
        order.select_nth_unstable_by(count - 1, |&a, &b| {
            scores[a].total_cmp(&scores[b]).then(a.cmp(&b))
        });
    }
    order.truncate(count.min(scores.len()));
    order
}

/// The pruning state of a run: which entries of which weight matrices are pruned.
pub struct Pruner {
    schedule: CubicSchedule,
    scope: PruneScope,
    /// Target parameters (the six per-layer weight matrices).
    targets: Vec<ParamInfo>,
    /// Pruned entries per target, PyTorch-layout flags.
    pruned: BTreeMap<String, Vec<bool>>,
    /// The same in Burn layout, on the device, for `mask_fill`.
    device_masks: HashMap<ParamId, Tensor<2, Bool>>,
    device: Device,
}

impl Pruner {
    /// A pruner over the WQ, WK, WV, WD, WI, WO weights of `registry`.
    ///
    /// # Errors
    ///
    /// As [`CubicSchedule::validate`].
    pub fn new(
        schedule: CubicSchedule,
        scope: PruneScope,
        registry: &ParamRegistry,
        device: &Device,
    ) -> Result<Self> {
        schedule.validate()?;
        let targets: Vec<ParamInfo> = registry
            .iter()
            .filter(|p| p.kind.matrix_label().is_some() && p.role == ParamRole::Weight)
            .cloned()
            .collect();
        Ok(Self {
            schedule,
            scope,
            pruned: targets
                .iter()
                .map(|p| (p.name.clone(), vec![false; p.numel]))
                .collect(),
            targets,
            device_masks: HashMap::new(),
            device: device.clone(),
        })
    }

    /// After optimizer step `step` (1-based): prunes further when the schedule says so, then
    /// zeroes every pruned entry. Returns the model and the new sparsity when it pruned.
    pub fn after_step<M: Module>(&mut self, model: M, step: usize) -> (M, Option<f64>) {
        let pruned_now = self.schedule.prune_at(step);
        if let Some(level) = pruned_now {
            self.prune_to(&model, level);
        }
        (self.apply(model), pruned_now)
    }

    /// Restores the pruned set of a resumed run from its weights: every target entry that is
    /// exactly zero while the schedule says the sparsity is above zero.
    pub fn restore<M: Module>(&mut self, model: &M, step: usize) {
        if self.schedule.level(step) == 0.0 {
            return;
        }
        let values: BTreeMap<String, finesse_bert::HostTensor> =
            model_tensors(model).into_iter().collect();
        for p in &self.targets {
            if let Some(t) = values.get(&p.name) {
                self.pruned
                    .insert(p.name.clone(), t.data.iter().map(|&v| v == 0.0).collect());
            }
        }
        self.upload();
    }

    fn prune_to<M: Module>(&mut self, model: &M, level: f64) {
        let values: BTreeMap<String, finesse_bert::HostTensor> =
            model_tensors(model).into_iter().collect();
        // Already-pruned entries score −1, so they stay pruned whatever else happens.
        let score = |name: &str, pruned: &[bool]| -> Vec<f32> {
            values[name]
                .data
                .iter()
                .zip(pruned)
                .map(|(v, &p)| if p { -1.0 } else { v.abs() })
                .collect()
        };
        match self.scope {
            PruneScope::PerMatrix => {
                for p in &self.targets {
                    let flags = self.pruned.get_mut(&p.name).expect("target");
                    let s = score(&p.name, flags);
                    let count = (level * p.numel as f64).floor() as usize;
                    for i in smallest(&s, count) {
                        flags[i] = true;
                    }
                }
            }
            PruneScope::Global => {
                let mut all = Vec::new();
                let mut owner = Vec::new();
                for (t, p) in self.targets.iter().enumerate() {
                    let s = score(&p.name, &self.pruned[&p.name]);
                    owner.extend((0..s.len()).map(|i| (t, i)));
                    all.extend(s);
                }
                let count = (level * all.len() as f64).floor() as usize;
                for j in smallest(&all, count) {
                    let (t, i) = owner[j];
                    self.pruned.get_mut(&self.targets[t].name).expect("target")[i] = true;
                }
            }
        }
        self.upload();
    }

    fn upload(&mut self) {
        self.device_masks.clear();
        for p in &self.targets {
            let flags = &self.pruned[&p.name];
            if !flags.iter().any(|&f| f) {
                continue;
            }
            let (rows, cols) = (p.shape[0], p.shape[1]);
            // PyTorch [out, in] → Burn [in, out] for transposed Linear weights.
            let (data, shape) = if p.transposed {
                (
                    finesse_bert::io::transpose_2d(flags, rows, cols),
                    [cols, rows],
                )
            } else {
                (flags.clone(), [rows, cols])
            };
            self.device_masks.insert(
                p.id,
                Tensor::<2, Bool>::from_data(TensorData::new(data, shape), &self.device),
            );
        }
    }

    fn apply<M: Module>(&self, model: M) -> M {
        if self.device_masks.is_empty() {
            return model;
        }
        struct Zero<'a>(&'a HashMap<ParamId, Tensor<2, Bool>>);
        impl ModuleMapper for Zero<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let Some(mask) = self.0.get(&param.id) else {
                    return param;
                };
                let (id, tensor, mapper) = param.consume();
                let require_grad = tensor.is_require_grad();
                let shape = tensor.shape();
                let mask: Tensor<D, Bool> = mask.clone().reshape(shape);
                let mut out = Tensor::from_inner(tensor.inner().mask_fill(mask, 0.0));
                if require_grad {
                    out = out.require_grad();
                }
                Param::from_mapped_value(id, out, mapper)
            }
        }
        model.map(&mut Zero(&self.device_masks))
    }

    /// Sparsity of each target (pruned fraction) by HF name.
    pub fn sparsity(&self) -> BTreeMap<String, f64> {
        self.pruned
            .iter()
            .map(|(n, f)| {
                let k = f.iter().filter(|&&x| x).count();
                (n.clone(), k as f64 / f.len().max(1) as f64)
            })
            .collect()
    }

    /// The kept (unpruned) entries as a mask over the targets, for files and statistics.
    pub fn kept_mask(&self) -> crate::mask::Mask {
        crate::mask::Mask {
            tensors: self
                .targets
                .iter()
                .map(|p| {
                    let kept = self.pruned[&p.name]
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| !**f)
                        .map(|(i, _)| i as u32)
                        .collect();
                    (
                        p.name.clone(),
                        crate::mask::MaskTensor {
                            shape: p.shape.clone(),
                            kept,
                        },
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finesse_bert::{BertConfig, BertForSequenceClassification, BertModel};

    #[test]
    fn cubic_schedule_hits_its_ends_exactly() {
        let s = CubicSchedule {
            initial: 0.1,
            final_sparsity: 0.5,
            start_step: 10,
            interval: 5,
            events: 4,
        };
        assert_eq!(s.prune_at(9), None);
        assert_eq!(s.prune_at(10), Some(0.1));
        assert_eq!(s.prune_at(12), None);
        assert_eq!(s.prune_at(30), Some(0.5));
        assert_eq!(s.prune_at(35), None, "no pruning after t0 + nΔt");
        assert_eq!(s.level(1000), 0.5);
        // Midway: s_f + (s_i − s_f)·(1/2)³.
        assert!((s.prune_at(20).expect("prunes") - (0.5 - 0.4 / 8.0)).abs() < 1e-12);
        // Monotone.
        let levels: Vec<f64> = (10..=30).map(|t| s.level(t)).collect();
        assert!(levels.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn pruned_weights_are_zero_and_stay_zero() {
        let device = Device::flex();
        let config = BertConfig::tiny(50);
        let mut model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        );
        let registry = ParamRegistry::of(&model);
        let schedule = CubicSchedule {
            initial: 0.2,
            final_sparsity: 0.5,
            start_step: 1,
            interval: 1,
            events: 2,
        };
        let mut pruner =
            Pruner::new(schedule, PruneScope::PerMatrix, &registry, &device).expect("pruner");
        for step in 1..=3 {
            (model, _) = pruner.after_step(model, step);
            // Something else (an optimizer) moves every weight a little.
            struct Nudge;
            impl ModuleMapper for Nudge {
                fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                    p.map(|t| t.add_scalar(0.01))
                }
            }
            model = model.map(&mut Nudge);
        }
        (model, _) = pruner.after_step(model, 4);
        let values: BTreeMap<String, finesse_bert::HostTensor> =
            model_tensors(&model).into_iter().collect();
        for (name, s) in pruner.sparsity() {
            assert_eq!(
                s,
                (0.5 * values[&name].numel() as f64).floor() / values[&name].numel() as f64
            );
            let zeros = values[&name]
                .data
                .iter()
                .filter(|&&v| v.to_bits() == 0)
                .count();
            assert!(
                zeros as f64 >= s * values[&name].numel() as f64,
                "{name}: {zeros} zeros"
            );
        }
        assert!(values["classifier.weight"].data.iter().all(|&v| v != 0.0));
    }
}
