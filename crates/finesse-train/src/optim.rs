//! AdamW driven per parameter by HF name (so masks and frozen groups can key on it), as
//! `torch.optim.AdamW`: decoupled weight decay `p ← p·(1 − lr·wd)`, then
//! `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`. Weight decay is not applied to biases and
//! LayerNorm weights (the BERT recipe). State is kept only for parameters that are trained.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use finesse_bert::{HostTensor, ParamKind, ParamRegistry, ParamRole};

/// AdamW hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
}

/// What the optimizer knows of one parameter.
#[derive(Clone, Debug)]
struct Slot {
    name: String,
    decay: bool,
}

/// AdamW over a model's parameters, keyed by HF name.
pub struct AdamW {
    config: AdamWConfig,
    slots: HashMap<ParamId, Slot>,
    moments: HashMap<String, Moments>,
    step: u64,
}

impl AdamW {
    /// An optimizer for the trainable parameters of `registry` (the others are never touched).
    pub fn new(
        config: AdamWConfig,
        registry: &ParamRegistry,
        trainable: impl Fn(&str) -> bool,
    ) -> Self {
        let slots = registry
            .iter()
            .filter(|p| trainable(&p.name))
            .map(|p| {
                let decay = p.role == ParamRole::Weight && p.kind != ParamKind::LayerNorm;
                (
                    p.id,
                    Slot {
                        name: p.name.clone(),
                        decay,
                    },
                )
            })
            .collect();
        Self {
            config,
            slots,
            moments: HashMap::new(),
            step: 0,
        }
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Entries of optimizer state held (two moments per trained entry).
    pub fn state_entries(&self) -> usize {
        self.moments.values().map(|m| 2 * m.m.dims()[0]).sum()
    }

    /// Global L2 norm of the gradients of the trained parameters (one host sync).
    pub fn grad_norm(
        &self,
        grads: &GradientsParams,
        registry: &ParamRegistry,
        device: &Device,
    ) -> f64 {
        let mut total = Tensor::<1>::zeros([1], device);
        for p in registry.iter().filter(|p| self.slots.contains_key(&p.id)) {
            let sq = match p.shape.len() {
                1 => grads.get::<1>(p.id).map(|g| g.powi_scalar(2).sum()),
                2 => grads.get::<2>(p.id).map(|g| g.powi_scalar(2).sum()),
                _ => None,
            };
            if let Some(sq) = sq {
                total = total + sq;
            }
        }
        total.into_scalar::<f32>() as f64
    }

    /// Applies one step with learning rate `lr`, the gradients scaled by `grad_scale` (clipping).
    pub fn step<M: Module>(
        &mut self,
        model: M,
        grads: GradientsParams,
        lr: f64,
        grad_scale: f64,
    ) -> M {
        self.step += 1;
        let mut mapper = StepMapper {
            opt: self,
            grads,
            lr,
            grad_scale,
        };
        model.map(&mut mapper)
    }

    /// The optimizer state as host tensors: `exp_avg.<name>` and `exp_avg_sq.<name>` (flat).
    pub fn state_tensors(&self) -> Vec<(String, HostTensor)> {
        let mut out = Vec::new();
        let names: BTreeMap<&String, &Moments> = self.moments.iter().collect();
        for (name, mo) in names {
            for (prefix, t) in [("exp_avg", &mo.m), ("exp_avg_sq", &mo.v)] {
                let n = t.dims()[0];
                let data = t
                    .to_data()
                    .try_into_vec_as::<f32>()
                    .unwrap_or_else(|e| panic!("optimizer state of {name}: {e:?}"));
                out.push((format!("{prefix}.{name}"), HostTensor::new(vec![n], data)));
            }
        }
        out
    }

    /// Restores state written by [`AdamW::state_tensors`] after `steps` steps.
    pub fn load_state(
        &mut self,
        steps: u64,
        tensors: &BTreeMap<String, HostTensor>,
        device: &Device,
    ) -> Result<(), String> {
        self.step = steps;
        self.moments.clear();
        for slot in self.slots.values() {
            let m = tensors.get(&format!("exp_avg.{}", slot.name));
            let v = tensors.get(&format!("exp_avg_sq.{}", slot.name));
            match (m, v) {
                (Some(m), Some(v)) if m.shape == v.shape => {
                    let t = |h: &HostTensor| {
                        Tensor::<1>::from_data(
                            TensorData::new(h.data.clone(), h.shape.clone()),
                            device,
                        )
                    };
                    self.moments
                        .insert(slot.name.clone(), Moments { m: t(m), v: t(v) });
                }
                (None, None) if steps == 0 => {}
                _ => {
                    return Err(format!(
                        "optimizer state for `{}` is missing or inconsistent",
                        slot.name
                    ));
                }
            }
        }
        Ok(())
    }
}

struct StepMapper<'a> {
    opt: &'a mut AdamW,
    grads: GradientsParams,
    lr: f64,
    grad_scale: f64,
}

impl ModuleMapper for StepMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(slot) = self.opt.slots.get(&param.id).cloned() else {
            return param;
        };
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let numel = shape.num_elements();
        let value = tensor.inner().reshape([numel]);
        let grad = grad.reshape([numel]);
        let grad = if self.grad_scale == 1.0 {
            grad
        } else {
            grad.mul_scalar(self.grad_scale)
        };
        let c = self.opt.config;
        let t = self.opt.step as i32;
        let (m, v) = match self.opt.moments.remove(&slot.name) {
            Some(Moments { m, v }) => (
                m.mul_scalar(c.beta1) + grad.clone().mul_scalar(1.0 - c.beta1),
                v.mul_scalar(c.beta2) + grad.powi_scalar(2).mul_scalar(1.0 - c.beta2),
            ),
            None => (
                grad.clone().mul_scalar(1.0 - c.beta1),
                grad.powi_scalar(2).mul_scalar(1.0 - c.beta2),
            ),
        };
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let decayed = if slot.decay && c.weight_decay > 0.0 {
            value.mul_scalar(1.0 - self.lr * c.weight_decay)
        } else {
            value
        };
        let denom = v.clone().sqrt().div_scalar(bc2.sqrt()).add_scalar(c.eps);
        let updated = decayed - m.clone().div(denom).mul_scalar(self.lr / bc1);
        self.opt.moments.insert(slot.name, Moments { m, v });
        let mut updated = Tensor::from_inner(updated.reshape(shape));
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finesse_bert::{
        BertConfig, BertForSequenceClassification, BertInput, BertModel, model_tensors,
    };

    /// First AdamW step: m̂/√v̂ = g/|g|, so every entry with a gradient moves by lr·sign(g),
    /// plus decay lr·wd·p on weights but not on biases and LayerNorm weights.
    #[test]
    fn first_step_moves_by_lr_times_sign_and_decays_only_weights() {
        let device = Device::flex().autodiff();
        let config = BertConfig::tiny(50);
        let model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        );
        let registry = ParamRegistry::of(&model);
        let before: BTreeMap<String, HostTensor> = model_tensors(&model).into_iter().collect();
        let input = BertInput::from_host(vec![2, 9, 11, 3], vec![0; 4], vec![1; 4], 1, 4, &device);
        let loss = model.forward(input).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let (lr, wd) = (0.1, 0.5);
        let mut opt = AdamW::new(
            AdamWConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-12,
                weight_decay: wd,
            },
            &registry,
            |_| true,
        );
        let model = opt.step(model, grads, lr, 1.0);
        let after: BTreeMap<String, HostTensor> = model_tensors(&model).into_iter().collect();
        let check = |name: &str, decays: bool| {
            let (b, a) = (&before[name], &after[name]);
            let mut moved = 0;
            for (x0, x1) in b.data.iter().zip(&a.data) {
                let decay = if decays { lr * wd * *x0 as f64 } else { 0.0 };
                let step = x0 - x1 - decay as f32;
                if step.abs() > 1e-6 {
                    moved += 1;
                    assert!((step.abs() - lr as f32).abs() < 1e-4, "{name}: step {step}");
                }
            }
            assert!(moved > 0, "{name}: nothing moved");
        };
        check("classifier.weight", true);
        check("classifier.bias", false);
        check("bert.encoder.layer.1.output.dense.weight", true);
        check(
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            false,
        );
        assert_eq!(opt.state_entries(), 2 * registry.total_numel());
    }

    #[test]
    fn untrainable_parameters_keep_their_bits_and_have_no_state() {
        let device = Device::flex().autodiff();
        let config = BertConfig::tiny(50);
        let model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        );
        let registry = ParamRegistry::of(&model);
        let before: BTreeMap<String, HostTensor> = model_tensors(&model).into_iter().collect();
        let loss = model
            .forward(BertInput::from_host(
                vec![2, 9, 3],
                vec![0; 3],
                vec![1; 3],
                1,
                3,
                &device,
            ))
            .sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let only_head = |n: &str| n.starts_with("classifier.");
        let mut opt = AdamW::new(
            AdamWConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
            &registry,
            only_head,
        );
        let model = opt.step(model, grads, 0.1, 1.0);
        for (name, t) in model_tensors(&model) {
            let same = t
                .data
                .iter()
                .zip(&before[&name].data)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert_eq!(same, !only_head(&name), "{name}");
        }
        assert_eq!(opt.state_entries(), 2 * (2 * 32 + 2));
    }
}
