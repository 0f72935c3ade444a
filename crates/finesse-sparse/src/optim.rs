//! Mask-aware optimizers driven per parameter by HF name: AdamW as `torch.optim.AdamW`
//! (decoupled weight decay `p ← p·(1 − lr·wd)`, then `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`)
//! and SGD as `torch.optim.SGD` (coupled weight decay, optional momentum). Weight decay is not
//! applied to biases and LayerNorm weights (the BERT recipe).
//!
//! Each parameter has an [`UpdateRule`]. `All` keeps dense state; `Masked` keeps state only for
//! the k kept entries (gathered with `select`, written back with `select_assign`), so the other
//! entries stay bit-identical through the whole run, weight decay included; `Frozen` keeps no
//! state and is never touched (the trainer also turns its gradient off).

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use finesse_bert::readback::{floats, on_host};
use finesse_bert::{HostTensor, ParamInfo, ParamKind, ParamRegistry, ParamRole};
use serde::{Deserialize, Serialize};

use crate::error::SparseError;

/// How one parameter is trained.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRule {
    /// Every entry is updated.
    All,
    /// Only these entries (sorted flat indices, PyTorch layout) are updated.
    Masked(Vec<u32>),
    /// Not updated at all; no weight gradient is computed for it.
    Frozen,
}

/// The update algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Algorithm {
    /// AdamW.
    Adamw {
        /// β1.
        beta1: f64,
        /// β2.
        beta2: f64,
        /// ε.
        eps: f64,
    },
    /// SGD with optional momentum (one buffer per trained entry when non-zero).
    Sgd {
        /// Momentum factor.
        momentum: f64,
    },
}

/// Optimizer hyper-parameters (serialised in a run's `run.json`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// AdamW or SGD.
    pub algorithm: Algorithm,
    /// Weight decay (decoupled for AdamW, added to the gradient for SGD).
    pub weight_decay: f64,
}

/// What the optimizer knows of one parameter.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    name: String,
    decay: bool,
    /// Kept entries; `None`: every entry.
    pub(crate) kept: Option<Kept>,
    /// Entries trained (length of each state tensor).
    pub(crate) trained: usize,
    /// Dimensions of the parameter (1 or 2).
    pub(crate) dims: usize,
    /// Entries of the parameter.
    pub(crate) numel: usize,
}

/// Where a masked parameter's kept entries are, in the forms its update reads and writes.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    /// Flat indices in Burn's layout, sorted: `select` gathers them.
    pub(crate) flat: Tensor<1, Int>,
    /// The same indices as `[k, 1]` for `scatter_nd`, on device backends (wgpu, cuda), where
    /// cubecl's `select_assign` of a 1-D tensor walks every index in one GPU thread (a 0.5%
    /// FISH step cost twice a dense one on an H200); `scatter_nd` gives each index its own
    /// thread. `None` on the host backends, whose `select_assign` writes in place.
    nd: Option<Tensor<2, Int>>,
}

impl Kept {
    fn new(indices: Vec<i64>, device: &Device) -> Self {
        let k = indices.len();
        let flat = Tensor::<1, Int>::from_data(TensorData::new(indices, [k]), device);
        let nd = (!on_host(device)).then(|| flat.clone().reshape([k, 1]));
        Self { flat, nd }
    }

    /// `value` (flat) with `delta` added to the kept entries; every other entry keeps its bits.
    pub(crate) fn add(&self, value: Tensor<1>, delta: Tensor<1>) -> Tensor<1> {
        match &self.nd {
            Some(nd) => value.scatter_nd(nd.clone(), delta, IndexingUpdateOp::Add),
            None => value.select_assign(0, self.flat.clone(), delta, IndexingUpdateOp::Add),
        }
    }
}

/// A mask-aware optimizer over a model's parameters, keyed by HF name.
pub struct SparseOptimizer {
    config: OptimizerConfig,
    pub(crate) slots: HashMap<ParamId, Slot>,
    /// The trained parameters in the registry's order: the fixed order of packed buffers
    /// (`exchange.rs`).
    pub(crate) order: Vec<ParamId>,
    /// Per parameter name: AdamW `[m, v]`, SGD with momentum `[buf]`, each of length k.
    state: HashMap<String, Vec<Tensor<1>>>,
    step: u64,
    index_entries: usize,
}

/// Flat PyTorch-layout indices → flat Burn-layout indices (Linear weights are transposed).
fn burn_indices(p: &ParamInfo, kept: &[u32]) -> Vec<i64> {
    let mut out: Vec<i64> = if p.transposed {
        let (rows, cols) = (p.shape[0] as u64, p.shape[1] as u64);
        kept.iter()
            .map(|&i| {
                let (r, c) = (i as u64 / cols, i as u64 % cols);
                (c * rows + r) as i64
            })
            .collect()
    } else {
        kept.iter().map(|&i| i as i64).collect()
    };
    out.sort_unstable();
    out
}

impl SparseOptimizer {
    /// An optimizer for `registry`'s parameters under `rule` (parameters it calls `Frozen`,
    /// and masked ones with nothing kept, are never touched).
    pub fn new(
        config: OptimizerConfig,
        registry: &ParamRegistry,
        rule: impl Fn(&ParamInfo) -> UpdateRule,
        device: &Device,
    ) -> Self {
        let mut slots = HashMap::new();
        let mut order = Vec::new();
        let mut index_entries = 0;
        for p in registry.iter() {
            let kept = match rule(p) {
                UpdateRule::Frozen => continue,
                UpdateRule::All => None,
                UpdateRule::Masked(k) if k.is_empty() => continue,
                UpdateRule::Masked(k) if k.len() == p.numel => None,
                UpdateRule::Masked(k) => {
                    index_entries += k.len();
                    Some(Kept::new(burn_indices(p, &k), device))
                }
            };
            let decay = p.role == ParamRole::Weight && p.kind != ParamKind::LayerNorm;
            let trained = kept.as_ref().map_or(p.numel, |k| k.flat.dims()[0]);
            order.push(p.id);
            slots.insert(
                p.id,
                Slot {
                    name: p.name.clone(),
                    decay,
                    kept,
                    trained,
                    dims: p.shape.len(),
                    numel: p.numel,
                },
            );
        }
        Self {
            config,
            slots,
            order,
            state: HashMap::new(),
            step: 0,
            index_entries,
        }
    }

    /// Entries of optimizer state held, counted from the state tensors themselves.
    pub fn state_entries(&self) -> usize {
        self.state
            .values()
            .flat_map(|v| v.iter().map(|t| t.dims()[0]))
            .sum()
    }

    /// Kept-entry indices held for masked parameters.
    pub fn index_entries(&self) -> usize {
        self.index_entries
    }

    /// Global L2 norm of the gradients of the trained entries (one host sync): for masked
    /// parameters only the kept entries count, as in the FISH trainer, which masks gradients
    /// before clipping.
    pub fn grad_norm(
        &self,
        grads: &GradientsParams,
        registry: &ParamRegistry,
        device: &Device,
    ) -> f64 {
        let mut total = Tensor::<1>::zeros([1], device);
        for p in registry.iter() {
            let Some(slot) = self.slots.get(&p.id) else {
                continue;
            };
            let g = match p.shape.len() {
                1 => grads.get::<1>(p.id),
                2 => grads.get::<2>(p.id).map(|g| g.reshape([p.numel])),
                _ => None,
            };
            let Some(g) = g else { continue };
            let g = match &slot.kept {
                Some(kept) => g.select(0, kept.flat.clone()),
                None => g,
            };
            total = total + g.powi_scalar(2).sum();
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
        self.apply(model, Grads::Full(grads), lr, grad_scale)
    }

    /// One step of every trained parameter from `grads` (whole or already gathered).
    pub(crate) fn apply<M: Module>(
        &mut self,
        model: M,
        grads: Grads,
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

    fn state_names(&self) -> &'static [&'static str] {
        match self.config.algorithm {
            Algorithm::Adamw { .. } => &["exp_avg", "exp_avg_sq"],
            Algorithm::Sgd { momentum } if momentum != 0.0 => &["momentum_buffer"],
            Algorithm::Sgd { .. } => &[],
        }
    }

    /// The optimizer state as host tensors, `<state>.<name>` (flat, kept entries only).
    ///
    /// # Errors
    ///
    /// [`SparseError::Readback`] when the device fails to read a state tensor back.
    pub fn try_state_tensors(&self) -> Result<Vec<(String, HostTensor)>, SparseError> {
        let mut out = Vec::new();
        let names: BTreeMap<&String, &Vec<Tensor<1>>> = self.state.iter().collect();
        for (name, tensors) in names {
            for (prefix, t) in self.state_names().iter().zip(tensors) {
                let n = t.dims()[0];
                let key = format!("{prefix}.{name}");
                let data = floats(t.clone(), format!("optimizer state `{key}`"))?;
                out.push((key, HostTensor::new(vec![n], data)));
            }
        }
        Ok(out)
    }

    /// [`SparseOptimizer::try_state_tensors`], treating a failed device read as fatal.
    ///
    /// # Panics
    ///
    /// When the device fails to read a state tensor back (a backend failure).
    pub fn state_tensors(&self) -> Vec<(String, HostTensor)> {
        self.try_state_tensors().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Restores state written by [`SparseOptimizer::try_state_tensors`] after `steps` steps.
    ///
    /// # Errors
    ///
    /// [`SparseError::MissingTensor`] for a state tensor the checkpoint lacks (after a first
    /// step) and [`SparseError::ShapeMismatch`] for one whose length is not the parameter's
    /// number of trained entries.
    pub fn try_load_state(
        &mut self,
        steps: u64,
        tensors: &BTreeMap<String, HostTensor>,
        device: &Device,
    ) -> Result<(), SparseError> {
        self.step = steps;
        self.state.clear();
        let prefixes = self.state_names();
        if prefixes.is_empty() {
            return Ok(());
        }
        for slot in self.slots.values() {
            let want = slot.trained;
            let found: Vec<Option<&HostTensor>> = prefixes
                .iter()
                .map(|p| tensors.get(&format!("{p}.{}", slot.name)))
                .collect();
            if found.iter().all(Option::is_none) && steps == 0 {
                continue;
            }
            let mut loaded = Vec::new();
            for (prefix, t) in prefixes.iter().zip(found) {
                let key = || format!("{prefix}.{}", slot.name);
                let t = match t {
                    None => {
                        return Err(SparseError::MissingTensor {
                            tensor: key(),
                            missing_from: "the checkpoint".into(),
                            present_in: "the optimizer".into(),
                        });
                    }
                    Some(t) if t.shape != [want] => {
                        return Err(SparseError::ShapeMismatch {
                            tensor: key(),
                            expected: vec![want],
                            found: t.shape.clone(),
                            expected_in: "the optimizer",
                            found_in: "the checkpoint".into(),
                        });
                    }
                    Some(t) => t,
                };
                loaded.push(Tensor::<1>::from_data(
                    TensorData::new(t.data.clone(), t.shape.clone()),
                    device,
                ));
            }
            self.state.insert(slot.name.clone(), loaded);
        }
        Ok(())
    }
}

/// Turns off the gradient of the parameters in `ids`, leaving dropout and everything else as
/// it is (Burn's `freeze` would also switch the modules' training flags off).
pub fn freeze<M: Module>(model: M, ids: &std::collections::HashSet<ParamId>) -> M {
    struct Freezer<'a>(&'a std::collections::HashSet<ParamId>);
    impl ModuleMapper for Freezer<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.0.contains(&param.id) {
                param.set_require_grad(false)
            } else {
                param
            }
        }
    }
    if ids.is_empty() {
        return model;
    }
    model.map(&mut Freezer(ids))
}

/// One Adam (torch) moment update from `previous` (m, v) and the gradient, at step `t` (from 1):
/// returns the new (m, v) and the bias-corrected step lr/bc1 · m / (√v/√bc2 + eps), to be
/// subtracted. Shared by the masked AdamW here and the supermask scores.
pub(crate) fn adam<const D: usize>(
    previous: Option<(Tensor<D>, Tensor<D>)>,
    grad: Tensor<D>,
    t: i32,
    lr: f64,
    (beta1, beta2, eps): (f64, f64, f64),
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (m, v) = match previous {
        Some((m, v)) => (
            m.mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1),
            v.mul_scalar(beta2) + grad.powi_scalar(2).mul_scalar(1.0 - beta2),
        ),
        None => (
            grad.clone().mul_scalar(1.0 - beta1),
            grad.powi_scalar(2).mul_scalar(1.0 - beta2),
        ),
    };
    let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
    let denom = v.clone().sqrt().div_scalar(bc2.sqrt()).add_scalar(eps);
    let step = m.clone().div(denom).mul_scalar(lr / bc1);
    (m, v, step)
}

/// The scalars of one AdamW step (each rounded to f32 where it meets the values, as Burn's
/// scalar operations round it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamwStep {
    /// The gradient's scale (clipping); 1 leaves it as it is.
    pub grad_scale: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// The learning rate.
    pub lr: f64,
    /// Decoupled weight decay (0: none).
    pub weight_decay: f64,
    /// The step number, from 1.
    pub t: i32,
}

/// One AdamW step of flat `value`: (new value, m, v). On `flex` one pass over the entries
/// ([`crate::adamw_host`]); elsewhere [`tensor_adamw`]. The same bits either way.
pub(crate) fn adamw_step(
    value: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<(Tensor<1>, Tensor<1>)>,
    s: AdamwStep,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    #[cfg(feature = "flex")]
    let (value, previous) = match crate::adamw_host::adamw(value, &grad, previous, s) {
        Ok(out) => return out,
        Err(taken) => *taken,
    };
    tensor_adamw(value, grad, previous, s)
}

/// [`adamw_step`] with Burn's tensor operations: weight decay `p·(1 − lr·wd)`, then the step of
/// [`adam`].
pub(crate) fn tensor_adamw(
    value: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<(Tensor<1>, Tensor<1>)>,
    s: AdamwStep,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let grad = scaled(grad, s.grad_scale);
    let (m, v, step) = adam(previous, grad, s.t, s.lr, (s.beta1, s.beta2, s.eps));
    let decayed = if s.weight_decay > 0.0 {
        value.mul_scalar(1.0 - s.lr * s.weight_decay)
    } else {
        value
    };
    (decayed - step, m, v)
}

/// `grad` times `scale` (clipping), untouched when the scale is 1.
fn scaled(grad: Tensor<1>, scale: f64) -> Tensor<1> {
    if scale == 1.0 {
        grad
    } else {
        grad.mul_scalar(scale)
    }
}

/// The gradients a step reads.
pub(crate) enum Grads {
    /// Whole-parameter gradients from a backward pass.
    Full(GradientsParams),
    /// Gradients of the trained entries only, flat (kept entries gathered), by parameter.
    Trained(HashMap<ParamId, Tensor<1>>),
}

struct StepMapper<'a> {
    opt: &'a mut SparseOptimizer,
    grads: Grads,
    lr: f64,
    grad_scale: f64,
}

impl StepMapper<'_> {
    /// New values of the trained entries `value` (flat) from their gradient `grad`.
    fn update(&mut self, slot: &Slot, value: Tensor<1>, grad: Tensor<1>) -> Tensor<1> {
        let wd = if slot.decay {
            self.opt.config.weight_decay
        } else {
            0.0
        };
        let t = self.opt.step as i32;
        let previous = self.opt.state.remove(&slot.name);
        let (updated, state) = match self.opt.config.algorithm {
            Algorithm::Adamw { beta1, beta2, eps } => {
                let previous = match previous {
                    Some(mut s) if s.len() == 2 => {
                        let v = s.pop();
                        s.pop().zip(v)
                    }
                    _ => None,
                };
                let s = AdamwStep {
                    grad_scale: self.grad_scale,
                    beta1,
                    beta2,
                    eps,
                    lr: self.lr,
                    weight_decay: wd,
                    t,
                };
                let (p, m, v) = adamw_step(value, grad, previous, s);
                (p, vec![m, v])
            }
            Algorithm::Sgd { momentum } => {
                let grad = scaled(grad, self.grad_scale);
                let d = if wd > 0.0 {
                    grad + value.clone().mul_scalar(wd)
                } else {
                    grad
                };
                if momentum != 0.0 {
                    let buf = match previous.as_deref() {
                        Some([b]) => b.clone().mul_scalar(momentum) + d,
                        _ => d,
                    };
                    (value - buf.clone().mul_scalar(self.lr), vec![buf])
                } else {
                    (value - d.mul_scalar(self.lr), Vec::new())
                }
            }
        };
        if !state.is_empty() {
            self.opt.state.insert(slot.name.clone(), state);
        }
        updated
    }
}

impl ModuleMapper for StepMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(slot) = self.opt.slots.get(&param.id).cloned() else {
            return param;
        };
        let grad = match &mut self.grads {
            Grads::Full(grads) => grads.remove::<D>(param.id).map(|g| {
                let g = g.reshape([slot.numel]);
                match &slot.kept {
                    Some(indices) => g.select(0, indices.flat.clone()),
                    None => g,
                }
            }),
            Grads::Trained(grads) => grads.remove(&param.id),
        };
        let Some(grad) = grad else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let numel = shape.num_elements();
        let value = tensor.inner().reshape([numel]);
        let updated = match slot.kept.clone() {
            None => self.update(&slot, value, grad),
            Some(indices) => {
                let kept = value.clone().select(0, indices.flat.clone());
                let new = self.update(&slot, kept.clone(), grad);
                // Only the kept entries change; the others keep their bits.
                indices.add(value, new - kept)
            }
        };
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

    fn adamw(eps: f64, weight_decay: f64) -> OptimizerConfig {
        OptimizerConfig {
            algorithm: Algorithm::Adamw {
                beta1: 0.9,
                beta2: 0.999,
                eps,
            },
            weight_decay,
        }
    }

    /// The device form of the write-back (`scatter_nd`, one thread per index on wgpu/cuda)
    /// gives the host form's bits (`select_assign`), run here on flex; the wgpu path itself is
    /// run by `tests/backends.rs`.
    #[test]
    fn scatter_nd_and_select_assign_write_the_same_bits() {
        let device = Device::flex();
        let n = 5000;
        let value = Tensor::<1>::from_data(
            TensorData::new(
                (0..n).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
                [n],
            ),
            &device,
        );
        let indices: Vec<i64> = (0..n as i64).filter(|i| i % 7 == 3).collect();
        let k = indices.len();
        let delta = Tensor::<1>::from_data(
            TensorData::new(
                (0..k).map(|i| 1e-3 * (i as f32).cos()).collect::<Vec<_>>(),
                [k],
            ),
            &device,
        );
        let host = Kept::new(indices.clone(), &device);
        assert!(host.nd.is_none(), "flex writes with select_assign");
        let flat = host.flat.clone();
        let nd = Kept {
            nd: Some(flat.clone().reshape([k, 1])),
            flat,
        };
        let a = host.add(value.clone(), delta.clone()).into_data();
        let b = nd.add(value.clone(), delta).into_data();
        let (a, b) = (
            a.as_slice::<f32>().expect("f32"),
            b.as_slice::<f32>().expect("f32"),
        );
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let before = value.into_data();
        let before = before.as_slice::<f32>().expect("f32");
        let changed = (0..n)
            .filter(|&i| a[i].to_bits() != before[i].to_bits())
            .count();
        assert_eq!(changed, k, "exactly the kept entries change");
    }

    fn tiny() -> (BertForSequenceClassification, Device) {
        let device = Device::flex().autodiff();
        let config = BertConfig::tiny(50);
        let model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        );
        (model, device)
    }

    fn grads_of(model: &BertForSequenceClassification, device: &Device) -> GradientsParams {
        let input = BertInput::from_host(vec![2, 9, 11, 3], vec![0; 4], vec![1; 4], 1, 4, device);
        GradientsParams::from_grads(model.forward(input).sum().backward(), model)
    }

    /// Every third entry of every parameter (PyTorch layout), head whole.
    fn every_third(p: &ParamInfo) -> UpdateRule {
        if p.name.starts_with("classifier.") {
            UpdateRule::All
        } else {
            UpdateRule::Masked((0..p.numel as u32).filter(|i| i % 3 == 0).collect())
        }
    }

    fn bits(model: &BertForSequenceClassification) -> BTreeMap<String, Vec<u32>> {
        model_tensors(model)
            .into_iter()
            .map(|(n, t)| (n, t.data.iter().map(|v| v.to_bits()).collect()))
            .collect()
    }

    #[test]
    fn packed_gradients_step_like_full_ones_and_values_unpack_exactly() {
        let (model, device) = tiny();
        let registry = ParamRegistry::of(&model);
        let config = adamw(1e-8, 0.1);
        let mut full = SparseOptimizer::new(config, &registry, every_third, &device);
        let mut packed = SparseOptimizer::new(config, &registry, every_third, &device);
        let k = packed.packed_len();
        let expected: usize = registry
            .iter()
            .map(|p| match every_third(p) {
                UpdateRule::Masked(kept) => kept.len(),
                _ => p.numel,
            })
            .sum();
        assert_eq!(k, expected);
        let (mut a, mut b) = (model.clone(), model);
        for _ in 0..3 {
            // One backward (dropout draws differ between calls) feeds both optimizers.
            let grads = grads_of(&a, &device);
            let buf = packed.pack_gradients(Some(&grads), &device);
            assert_eq!(buf.dims(), [k]);
            a = full.step(a, grads, 0.05, 0.5);
            b = packed.step_packed(b, buf, 0.05, 0.5);
        }
        assert_eq!(bits(&a), bits(&b), "the packed step writes the same bits");
        // No gradients (a rank without examples): zeros of the same length.
        let zeros = packed.pack_gradients(None, &device).into_data();
        assert!(
            zeros
                .as_slice::<f32>()
                .expect("f32")
                .iter()
                .all(|v| *v == 0.0)
        );
        // Values: every kept entry takes the given value bit for bit, the rest keep theirs.
        let before = bits(&b);
        let values = packed.pack_values(&b, &device).add_scalar(0.25);
        let want = values.clone().into_data();
        let b = packed.unpack_values(b, values);
        let got = packed.pack_values(&b, &device).into_data();
        assert_eq!(
            want.as_slice::<f32>()
                .expect("f32")
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            got.as_slice::<f32>()
                .expect("f32")
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        );
        let after = bits(&b);
        let mut changed = 0;
        for (name, old) in &before {
            changed += old.iter().zip(&after[name]).filter(|(x, y)| x != y).count();
        }
        assert!(changed <= k && changed > k / 2, "{changed} of {k}");
    }

    #[test]
    fn masked_entries_move_the_rest_keep_their_bits_and_state_is_per_kept_entry() {
        for algorithm in [adamw(1e-8, 0.1).algorithm, Algorithm::Sgd { momentum: 0.9 }] {
            let (mut model, device) = tiny();
            let registry = ParamRegistry::of(&model);
            let before: BTreeMap<String, HostTensor> = model_tensors(&model).into_iter().collect();
            let config = OptimizerConfig {
                algorithm,
                weight_decay: 0.1,
            };
            let mut opt = SparseOptimizer::new(config, &registry, every_third, &device);
            for _ in 0..3 {
                let grads = grads_of(&model, &device);
                model = opt.step(model, grads, 0.05, 1.0);
            }
            let mut moved = 0;
            for (name, t) in model_tensors(&model) {
                let head = name.starts_with("classifier.");
                for (i, (a, b)) in t.data.iter().zip(&before[&name].data).enumerate() {
                    if !head && i % 3 != 0 {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "{name}[{i}] changed ({algorithm:?})"
                        );
                    } else if a != b {
                        moved += 1;
                    }
                }
            }
            let kept: usize = registry
                .iter()
                .map(|p| match every_third(p) {
                    UpdateRule::Masked(k) => k.len(),
                    _ => p.numel,
                })
                .sum();
            // Most kept entries move (a few have no gradient: unused embedding rows).
            assert!(moved > kept / 4, "{moved} of {kept} moved");
            let per_entry = match algorithm {
                Algorithm::Adamw { .. } => 2,
                Algorithm::Sgd { .. } => 1,
            };
            assert_eq!(opt.state_entries(), per_entry * kept, "{algorithm:?}");
        }
    }

    #[test]
    fn masked_state_round_trips_and_a_wrong_size_is_refused() {
        let (model, device) = tiny();
        let registry = ParamRegistry::of(&model);
        let mut opt = SparseOptimizer::new(adamw(1e-8, 0.0), &registry, every_third, &device);
        let grads = grads_of(&model, &device);
        let _ = opt.step(model, grads, 0.01, 1.0);
        let state: BTreeMap<String, HostTensor> = opt.state_tensors().into_iter().collect();
        let mut again = SparseOptimizer::new(adamw(1e-8, 0.0), &registry, every_third, &device);
        again.try_load_state(1, &state, &device).expect("load");
        assert_eq!(again.state_entries(), opt.state_entries());
        let mut dense =
            SparseOptimizer::new(adamw(1e-8, 0.0), &registry, |_| UpdateRule::All, &device);
        let err = dense
            .try_load_state(1, &state, &device)
            .expect_err("must fail");
        // The masked state holds k entries where the dense optimizer wants every entry.
        assert!(
            matches!(&err, SparseError::ShapeMismatch { found_in, .. } if found_in == "the checkpoint"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("has shape") && text.contains("in the checkpoint"),
            "{text}"
        );
        // A missing tensor is named.
        let mut partial = state.clone();
        let key = partial.keys().next().expect("a state tensor").clone();
        partial.remove(&key);
        let err = again
            .try_load_state(1, &partial, &device)
            .expect_err("must fail");
        assert!(
            matches!(&err, SparseError::MissingTensor { tensor, .. } if *tensor == key),
            "{err:?}"
        );
    }

    #[test]
    fn frozen_parameters_get_no_gradient_and_dropout_stays_on() {
        let (model, device) = tiny();
        let registry = ParamRegistry::of(&model);
        let frozen: std::collections::HashSet<ParamId> = registry
            .iter()
            .filter(|p| p.kind == ParamKind::WordEmbedding || p.kind == ParamKind::Key)
            .map(|p| p.id)
            .collect();
        assert!(frozen.len() >= 3);
        let model = freeze(model, &frozen);
        let grads = grads_of(&model, &device);
        for p in registry.iter() {
            let has = match p.shape.len() {
                1 => grads.get::<1>(p.id).is_some(),
                _ => grads.get::<2>(p.id).is_some(),
            };
            assert_eq!(has, !frozen.contains(&p.id), "{}", p.name);
        }
        // Dropout still acts in training: two forwards differ.
        let input =
            || BertInput::from_host(vec![2, 9, 11, 3], vec![0; 4], vec![1; 4], 1, 4, &device);
        let a = model.forward(input()).into_data();
        let b = model.forward(input()).into_data();
        assert_ne!(
            a, b,
            "dropout must stay active for frozen parameters' modules"
        );
    }

    #[test]
    fn pytorch_indices_map_to_burn_layout() {
        let p = ParamInfo {
            name: "bert.pooler.dense.weight".into(),
            shape: vec![2, 3],
            numel: 6,
            layer: None,
            kind: ParamKind::Pooler,
            role: ParamRole::Weight,
            transposed: true,
            id: ParamId::new(),
        };
        // PyTorch [2,3] entry (1,0) = 3 → Burn [3,2] entry (0,1) = 1; (0,2) = 2 → (2,0) = 4.
        assert_eq!(burn_indices(&p, &[3, 2]), vec![1, 4]);
    }

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
        let mut opt =
            SparseOptimizer::new(adamw(1e-12, wd), &registry, |_| UpdateRule::All, &device);
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
        let mut opt = SparseOptimizer::new(
            adamw(1e-8, 0.01),
            &registry,
            |p| {
                if only_head(&p.name) {
                    UpdateRule::All
                } else {
                    UpdateRule::Frozen
                }
            },
            &device,
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
