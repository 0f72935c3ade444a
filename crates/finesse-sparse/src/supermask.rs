//! Supermask training ("How fine can fine-tuning be?", §5): the pre-trained weights θ of the
//! chosen matrices stay fixed; a real score v per weight is trained, and the forward pass uses
//! θ ⊙ μ with μ ~ Bernoulli(σ(v)). The gradient reaches v through a straight-through estimator:
//! the forward computes θ ⊙ μ + θ ⊙ (σ(v) − sg(σ(v))), whose value is exactly θ ⊙ μ and whose
//! derivative in v is ∂L/∂W ⊙ θ ⊙ σ'(v).
//!
//! Scores start from a soft magnitude mask: the `initial_sparsity` smallest-magnitude weights of
//! each matrix get v = −5, the others v = +5. The final mask is the deterministic σ(v) > 0.5.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Gradients;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use finesse_bert::readback::floats;
use finesse_bert::{HostTensor, ParamInfo, ParamRegistry, ParamRole, try_model_tensors};

use crate::error::{Result, SparseError};
use crate::mask::{Mask, MaskTensor};

/// The trainable scores, one `[in, out]` (Burn layout) tensor per target matrix.
#[derive(Module, Debug)]
pub struct Scores {
    /// Scores v, in the order of the targets.
    pub v: Vec<Param<Tensor<2>>>,
}

/// Which mask a forward pass uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskDraw {
    /// μ ~ Bernoulli(σ(v)) from the device's random generator, with the straight-through path.
    Sample,
    /// μ = [v > 0] (σ(v) > 0.5).
    Deterministic,
}

/// Supermask state: the targets, their scores and the scores' Adam moments.
pub struct Supermask {
    targets: Vec<ParamInfo>,
    index: HashMap<ParamId, usize>,
    /// The scores (on the training device).
    pub scores: Scores,
    /// Adam moments of each score tensor (inner device), once a step has been taken.
    moments: Vec<Option<(Tensor<2>, Tensor<2>)>>,
    /// Score steps taken.
    steps: u64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Supermask {
    /// Scores for the WQ…WO weights of `model`, initialised from a soft magnitude mask.
    ///
    /// # Errors
    ///
    /// [`SparseError::Config`] for an initial sparsity outside [0, 1), [`SparseError::Bert`] when the
    /// weights cannot be read back from the device.
    pub fn init<M: Module>(
        model: &M,
        registry: &ParamRegistry,
        initial_sparsity: f64,
        device: &Device,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&initial_sparsity) {
            return Err(SparseError::Config {
                field: "supermask initial sparsity",
                problem: format!("{initial_sparsity} is not within [0, 1)"),
            });
        }
        let values: BTreeMap<String, HostTensor> = try_model_tensors(model)?.into_iter().collect();
        let targets: Vec<ParamInfo> = registry
            .iter()
            .filter(|p| p.kind.matrix_label().is_some() && p.role == ParamRole::Weight)
            .cloned()
            .collect();
        let mut v = Vec::new();
        for p in &targets {
            let w = &values[&p.name];
            let drop = (initial_sparsity * p.numel as f64).floor() as usize;
            let mut order: Vec<usize> = (0..p.numel).collect();
            order.sort_by(|&a, &b| w.data[a].abs().total_cmp(&w.data[b].abs()).then(a.cmp(&b)));
            let mut scores = vec![5.0f32; p.numel];
            for &i in &order[..drop] {
                scores[i] = -5.0;
            }
            v.push(Param::from_tensor(
                burn_layout(p, &scores, device).require_grad(),
            ));
        }
        Ok(Self {
            index: targets.iter().enumerate().map(|(i, p)| (p.id, i)).collect(),
            moments: vec![None; targets.len()],
            targets,
            scores: Scores { v },
            steps: 0,
        })
    }

    /// `model` with every target weight θ replaced by θ ⊙ μ (see [`MaskDraw`]). With `Sample`
    /// on an autodiff device the result carries the straight-through path to the scores.
    pub fn masked<M: Module>(&self, model: M, draw: MaskDraw) -> M {
        struct Inject<'a> {
            sm: &'a Supermask,
            draw: MaskDraw,
        }
        impl ModuleMapper for Inject<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let Some(&i) = self.sm.index.get(&param.id) else {
                    return param;
                };
                let (id, theta, mapper) = param.consume();
                let shape = theta.shape();
                let v: Tensor<D> = self.sm.scores.v[i].val().reshape(shape.clone());
                let v = if theta.device().is_autodiff() {
                    v
                } else {
                    // An eval copy of the model lives on the plain device.
                    Tensor::from_inner(v.inner()).detach()
                };
                let weff = match self.draw {
                    // mask_fill writes +0.0 (a product would leave −0.0 for negative θ).
                    MaskDraw::Deterministic => {
                        theta.mask_fill(v.detach().lower_equal_elem(0.0), 0.0)
                    }
                    MaskDraw::Sample => {
                        let sig = sigmoid(v);
                        let p = sig.clone().detach();
                        let mu = p
                            .random_like(Distribution::Uniform(0.0, 1.0))
                            .lower(p)
                            .float();
                        let ste = sig.clone() - sig.detach();
                        theta.clone() * mu + theta * ste
                    }
                };
                Param::from_mapped_value(id, weff, mapper)
            }
        }
        model.map(&mut Inject { sm: self, draw })
    }

    /// Takes the scores' gradients out of `grads` and takes one Adam step of size `lr` on the
    /// scores (the paper trains them with the fine-tuning optimizer at lr 0.2; no weight decay).
    pub fn step(&mut self, grads: &mut Gradients, lr: f64) {
        let g = GradientsParams::from_module(grads, &self.scores);
        self.steps += 1;
        let t = self.steps as i32;
        let v = std::mem::take(&mut self.scores.v);
        self.scores.v = v
            .into_iter()
            .enumerate()
            .map(|(i, param)| {
                let Some(grad) = g.get::<2>(param.id) else {
                    return param;
                };
                let (m, s, delta) =
                    crate::optim::adam(self.moments[i].take(), grad, t, lr, (BETA1, BETA2, EPS));
                self.moments[i] = Some((m, s));
                let (id, value, mapper) = param.consume();
                let updated = Tensor::from_inner(value.inner() - delta).require_grad();
                Param::from_mapped_value(id, updated, mapper)
            })
            .collect();
    }

    /// The deterministic mask σ(v) > 0.5 over the targets (HF names, PyTorch layout).
    ///
    /// # Errors
    ///
    /// [`SparseError::Readback`] when the device fails to read the scores back.
    pub fn try_final_mask(&self) -> Result<Mask> {
        let mut tensors = BTreeMap::new();
        for (p, v) in self.targets.iter().zip(&self.scores.v) {
            let host = host_layout(p, v.val(), "supermask scores")?;
            let kept = host
                .iter()
                .enumerate()
                .filter(|(_, x)| **x > 0.0)
                .map(|(i, _)| i as u32)
                .collect();
            tensors.insert(
                p.name.clone(),
                MaskTensor {
                    shape: p.shape.clone(),
                    kept,
                },
            );
        }
        Ok(Mask { tensors })
    }

    /// [`Supermask::try_final_mask`], treating a failed device read as fatal.
    ///
    /// # Panics
    ///
    /// When the device fails to read the scores back (a backend failure).
    pub fn final_mask(&self) -> Mask {
        self.try_final_mask().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Supermask::try_state_tensors`], treating a failed device read as fatal.
    ///
    /// # Panics
    ///
    /// When the device fails to read the state back (a backend failure).
    pub fn state_tensors(&self) -> Vec<(String, HostTensor)> {
        self.try_state_tensors().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The scores and their Adam moments as host tensors (PyTorch layout), for checkpoints:
    /// `supermask_scores.<name>`, `supermask_exp_avg.<name>`, `supermask_exp_avg_sq.<name>`.
    ///
    /// # Errors
    ///
    /// [`SparseError::Readback`] when the device fails to read the state back.
    pub fn try_state_tensors(&self) -> Result<Vec<(String, HostTensor)>> {
        let mut out = Vec::new();
        for ((p, v), mo) in self.targets.iter().zip(&self.scores.v).zip(&self.moments) {
            out.push((
                format!("supermask_scores.{}", p.name),
                HostTensor::new(
                    p.shape.clone(),
                    host_layout(p, v.val(), "supermask scores")?,
                ),
            ));
            if let Some((m, s)) = mo {
                for (prefix, t) in [("supermask_exp_avg", m), ("supermask_exp_avg_sq", s)] {
                    out.push((
                        format!("{prefix}.{}", p.name),
                        HostTensor::new(
                            p.shape.clone(),
                            host_layout(p, Tensor::from_inner(t.clone()), prefix)?,
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Restores state written by [`Supermask::state_tensors`] after `steps` score steps.
    ///
    /// # Errors
    ///
    /// [`SparseError::MissingTensor`] or [`SparseError::ShapeMismatch`] naming the first state
    /// tensor the checkpoint lacks or holds in another shape.
    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, HostTensor>,
        steps: u64,
        device: &Device,
    ) -> Result<()> {
        self.steps = steps;
        let get = |key: String, p: &ParamInfo| -> Result<&HostTensor> {
            match tensors.get(&key) {
                None => Err(SparseError::MissingTensor {
                    tensor: key,
                    missing_from: "the checkpoint".into(),
                    present_in: "the supermask".into(),
                }),
                Some(t) if t.shape != p.shape => Err(SparseError::ShapeMismatch {
                    tensor: key,
                    expected: p.shape.clone(),
                    found: t.shape.clone(),
                    expected_in: "the supermask",
                    found_in: "the checkpoint".into(),
                }),
                Some(t) => Ok(t),
            }
        };
        for (i, p) in self.targets.iter().enumerate() {
            let v = get(format!("supermask_scores.{}", p.name), p)?;
            self.scores.v[i] = Param::from_tensor(burn_layout(p, &v.data, device).require_grad());
            self.moments[i] = if steps == 0 {
                None
            } else {
                let m = get(format!("supermask_exp_avg.{}", p.name), p)?;
                let s = get(format!("supermask_exp_avg_sq.{}", p.name), p)?;
                Some((
                    burn_layout(p, &m.data, device).inner(),
                    burn_layout(p, &s.data, device).inner(),
                ))
            };
        }
        Ok(())
    }
}

/// A PyTorch-layout host vector as a Burn-layout `[in, out]` (or as-is) tensor.
fn burn_layout(p: &ParamInfo, data: &[f32], device: &Device) -> Tensor<2> {
    let (rows, cols) = (p.shape[0], p.shape[1]);
    let (data, shape) = if p.transposed {
        (
            finesse_bert::io::transpose_2d(data, rows, cols),
            [cols, rows],
        )
    } else {
        (data.to_vec(), [rows, cols])
    };
    Tensor::<2>::from_data(TensorData::new(data, shape), device)
}

/// A Burn-layout tensor of `p` (its `what`: scores, a moment) back to a PyTorch-layout host
/// vector.
fn host_layout(p: &ParamInfo, t: Tensor<2>, what: &str) -> Result<Vec<f32>> {
    let data = floats(t, format!("{what} of `{}`", p.name))?;
    Ok(if p.transposed {
        finesse_bert::io::transpose_2d(&data, p.shape[1], p.shape[0])
    } else {
        data
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use finesse_bert::{
        BertConfig, BertForSequenceClassification, BertInput, BertModel, model_tensors,
    };

    fn tiny() -> (BertForSequenceClassification, Device) {
        let device = Device::flex().autodiff();
        let config = BertConfig::tiny(50);
        let model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        )
        .without_dropout();
        (model, device)
    }

    fn input(device: &Device) -> BertInput {
        BertInput::from_host(vec![2, 9, 11, 3], vec![0; 4], vec![1; 4], 1, 4, device)
    }

    /// The straight-through gradient: ∂L/∂v = ∂L/∂W ⊙ θ ⊙ σ'(v), with ∂L/∂W taken at the
    /// masked weights θ ⊙ μ. Scores at 0 give σ' = 1/4 and a random μ.
    #[test]
    fn score_gradient_is_the_straight_through_estimate() {
        let (model, device) = tiny();
        let registry = ParamRegistry::of(&model);
        let frozen = registry.iter().map(|p| p.id).collect();
        let model = crate::optim::freeze(model, &frozen);
        let mut sm = Supermask::init(&model, &registry, 0.0, &device).expect("init");
        sm.scores.v = sm
            .scores
            .v
            .iter()
            .map(|v| Param::from_tensor(v.val().zeros_like().require_grad()))
            .collect();
        device.seed(11);
        let sampled = sm.masked(model.clone(), MaskDraw::Sample);
        let mut grads = sampled.forward(input(&device)).sum().backward();
        let g = GradientsParams::from_module(&mut grads, &sm.scores);

        // Reference: the same masked weights as leaves of their own graph.
        let masked_values = model_tensors(&sampled);
        let mut reference = model.clone();
        let mut by_name: BTreeMap<String, HostTensor> = masked_values.into_iter().collect();
        struct Leaves<'a>(&'a mut BTreeMap<String, HostTensor>, &'a Supermask, Device);
        impl ModuleMapper for Leaves<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let Some(&i) = self.1.index.get(&param.id) else {
                    return param;
                };
                let p = &self.1.targets[i];
                let t = burn_layout(p, &self.0[&p.name].data, &self.2);
                let (id, old, mapper) = param.consume();
                let t: Tensor<D> = t.reshape(old.shape()).require_grad();
                Param::from_mapped_value(id, t, mapper)
            }
        }
        reference = reference.map(&mut Leaves(&mut by_name, &sm, device.clone()));
        let grads_ref = GradientsParams::from_grads(
            reference.forward(input(&device)).sum().backward(),
            &reference,
        );
        let values: BTreeMap<String, HostTensor> = model_tensors(&model).into_iter().collect();
        let mut checked = 0;
        for (i, p) in sm.targets.iter().enumerate() {
            let gv = host_layout(
                p,
                Tensor::from_inner(g.get::<2>(sm.scores.v[i].id).expect("gv")),
                "gv",
            )
            .expect("gv");
            let gw = host_layout(
                p,
                Tensor::from_inner(grads_ref.get::<2>(p.id).expect("gw")),
                "gw",
            )
            .expect("gw");
            let theta = &values[&p.name].data;
            for j in 0..p.numel {
                let want = gw[j] * theta[j] * 0.25;
                assert!(
                    (gv[j] - want).abs() <= 1e-6 + 1e-4 * want.abs(),
                    "{}[{j}]: {} vs {want}",
                    p.name,
                    gv[j]
                );
                checked += 1;
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn initial_scores_follow_magnitude_and_the_final_mask_reads_them() {
        let (model, device) = tiny();
        let registry = ParamRegistry::of(&model);
        let sm = Supermask::init(&model, &registry, 0.25, &device).expect("init");
        let mask = sm.final_mask();
        let values: BTreeMap<String, HostTensor> = model_tensors(&model).into_iter().collect();
        for (name, t) in &mask.tensors {
            assert_eq!(t.numel() - t.kept.len(), t.numel() / 4, "{name}");
            let w = &values[name].data;
            let max_dropped = (0..t.numel())
                .filter(|i| t.kept.binary_search(&(*i as u32)).is_err())
                .map(|i| w[i].abs())
                .fold(0f32, f32::max);
            assert!(
                t.kept.iter().all(|&i| w[i as usize].abs() >= max_dropped),
                "{name}"
            );
        }
        // Deterministic masking zeroes exactly the dropped entries.
        let masked = sm.masked(model.clone(), MaskDraw::Deterministic);
        let after: BTreeMap<String, HostTensor> = model_tensors(&masked).into_iter().collect();
        for (name, t) in &mask.tensors {
            let zeros = after[name].data.iter().filter(|v| **v == 0.0).count();
            assert_eq!(zeros, t.numel() - t.kept.len(), "{name}");
        }
        let state: BTreeMap<String, HostTensor> = sm.state_tensors().into_iter().collect();
        let mut again = Supermask::init(&model, &registry, 0.0, &device).expect("init");
        again.load_state(&state, 0, &device).expect("load");
        assert_eq!(again.final_mask(), mask);
    }
}
