//! Weight gradients on slices: a training step under a fixed sparse mask needs a `Linear`
//! weight's gradient only at its kept entries, and a FISH mask's kept entries of a matrix lie in
//! few of its output units or input features. For the encoder's Linear layers named by an
//! active [`SlicePlan`], [`linear`] runs the forward with the weight and bias as constants plus a
//! zero-cost probe (the bias, broadcast to the output's shape, as a leaf that requires a
//! gradient), so autodiff computes only the input's gradient; the probe's gradient is the
//! output's gradient ∂y. [`SlicePlan::fill`] then computes, after the backward pass, each weight's
//! gradient on its slice only and puts it in the gradients as the weight's (zeros elsewhere):
//!
//! - output units `C` (Burn's weight is `[in, out]`): `∂W[:, C] = xᵀ · ∂y[:, C]`;
//! - input features `R`: `∂W[R, :] = x[:, R]ᵀ · ∂y`;
//!
//! and the bias gradient `∂b = Σ ∂y` over batch and sequence when the bias is trained. The
//! dense weight gradient `xᵀ · ∂y` (a third of a step's matmul work) is never formed.
//!
//! The plan lives in a thread-local slot while [`ActivePlan`] is held (the forward of one
//! training step on the calling thread); without one, [`linear`] is `Linear::forward`.
//!
//! The word embeddings get the same treatment for the Fisher's batch-1 passes
//! ([`WordProbe`]): a sample reads a few dozen of the table's 30,522 rows, but autodiff's
//! embedding backward builds the whole `[vocab, hidden]` gradient (47 MB zeroed per pass for
//! all-MiniLM-L6-v2) to scatter them in. Under [`WordProbe::activate`], [`embedding`] looks the
//! rows up in the table as a constant and adds a zero probe leaf, whose gradient is ∂e, the
//! gradient of each position's embedding; [`WordProbe::rows`] sums it per distinct token.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::module::ParamId;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};

/// The part of a weight's gradient a step needs, in Burn's `[in, out]` layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightSlice {
    /// These output units (columns of Burn's weight; rows of PyTorch's `[out, in]`).
    Outputs(Vec<usize>),
    /// These input features (rows of Burn's weight; columns of PyTorch's).
    Inputs(Vec<usize>),
}

impl WeightSlice {
    /// The cheaper slice holding every kept entry of a `[out, in]` (PyTorch layout) weight,
    /// given as flat PyTorch-layout indices; `None` when it would cost more than `max_share`
    /// of the dense weight gradient (a random mask touches nearly every row and column).
    pub fn for_kept(
        kept: &[u32],
        out_features: usize,
        in_features: usize,
        max_share: f64,
    ) -> Option<Self> {
        if kept.is_empty() || out_features == 0 || in_features == 0 {
            return None;
        }
        let mut outs = vec![false; out_features];
        let mut ins = vec![false; in_features];
        for &i in kept {
            let i = i as usize;
            outs[i / in_features] = true;
            ins[i % in_features] = true;
        }
        let pick = |used: Vec<bool>| -> Vec<usize> {
            used.iter()
                .enumerate()
                .filter_map(|(i, u)| u.then_some(i))
                .collect()
        };
        let (outs, ins) = (Self::Outputs(pick(outs)), Self::Inputs(pick(ins)));
        let out_share = outs.share(out_features, in_features);
        let in_share = ins.share(out_features, in_features);
        let (share, slice) = if out_share <= in_share {
            (out_share, outs)
        } else {
            (in_share, ins)
        };
        (share <= max_share).then_some(slice)
    }

    /// The share of a `[out, in]` weight's dense gradient product `xᵀ·∂y` that this slice
    /// computes: |C|/out or |R|/in.
    pub fn share(&self, out_features: usize, in_features: usize) -> f64 {
        match self {
            Self::Outputs(v) => v.len() as f64 / out_features as f64,
            Self::Inputs(v) => v.len() as f64 / in_features as f64,
        }
    }
}

/// A weight's slice with its indices on the device.
#[derive(Clone, Debug)]
struct Planned {
    slice: WeightSlice,
    indices: Tensor<1, Int>,
    /// Whether the layer's bias is trained (its gradient is then computed from ∂y).
    bias_trained: bool,
}

/// Which Linear weights get sliced gradients, by the weight's [`ParamId`].
#[derive(Clone, Debug, Default)]
pub struct SlicePlan {
    weights: HashMap<ParamId, Planned>,
}

/// What the forward recorded for one sliced layer.
struct Captured {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    /// The layer's input, without autodiff.
    input: Tensor<3>,
    /// The probe leaf whose gradient is ∂y.
    probe: Tensor<3>,
    planned: Planned,
}

thread_local! {
    static ACTIVE: RefCell<Option<SlicePlan>> = const { RefCell::new(None) };
    static CAPTURED: RefCell<Vec<Captured>> = const { RefCell::new(Vec::new()) };
    /// `Some` while a [`WordProbe`] is active: the probe of the last [`embedding`], if any.
    static WORD_PROBE: RefCell<Option<Option<Tensor<3>>>> = const { RefCell::new(None) };
}

impl SlicePlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Slices `weight`'s gradient to `slice`; `bias_trained`: also compute its layer's bias
    /// gradient (the bias is a constant in the sliced forward).
    pub fn insert(
        &mut self,
        weight: ParamId,
        slice: WeightSlice,
        bias_trained: bool,
        device: &Device,
    ) {
        let idx: Vec<i64> = match &slice {
            WeightSlice::Outputs(v) | WeightSlice::Inputs(v) => {
                v.iter().map(|&i| i as i64).collect()
            }
        };
        let n = idx.len();
        let indices = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), device);
        self.weights.insert(
            weight,
            Planned {
                slice,
                indices,
                bias_trained,
            },
        );
    }

    /// How many weights are sliced.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether no weight is sliced.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Makes the plan active on this thread until the guard drops: [`linear`] then slices the
    /// planned layers and records what [`SlicePlan::fill`] needs.
    pub fn activate(&self) -> ActivePlan {
        ACTIVE.with(|a| *a.borrow_mut() = Some(self.clone()));
        CAPTURED.with(|c| c.borrow_mut().clear());
        ActivePlan
    }

    /// After the backward pass of a forward run under this plan: puts each sliced weight's
    /// gradient (and its trained bias's) into `grads`, and forgets the forward's records.
    /// Returns how many layers it filled.
    pub fn fill(grads: &mut Gradients) -> usize {
        let captured = CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()));
        let n = captured.len();
        for c in captured {
            let Some(dy) = c.probe.grad_remove(grads) else {
                continue; // the layer's output did not reach the loss
            };
            let [batch, seq, d_out] = dy.dims();
            let d_in = c.input.dims()[2];
            let rows = batch * seq;
            let dy = dy.reshape([rows, d_out]);
            let x = c.input.reshape([rows, d_in]);
            let device = dy.device();
            let full = Tensor::<2>::zeros([d_in, d_out], &device);
            let grad = match &c.planned.slice {
                WeightSlice::Outputs(_) => {
                    let part = x
                        .transpose()
                        .matmul(dy.clone().select(1, c.planned.indices.clone()));
                    full.select_assign(
                        1,
                        c.planned.indices.clone(),
                        part,
                        burn::tensor::IndexingUpdateOp::Add,
                    )
                }
                WeightSlice::Inputs(_) => {
                    let part = x
                        .select(1, c.planned.indices.clone())
                        .transpose()
                        .matmul(dy.clone());
                    full.select_assign(
                        0,
                        c.planned.indices.clone(),
                        part,
                        burn::tensor::IndexingUpdateOp::Add,
                    )
                }
            };
            c.weight.grad_replace(grads, grad);
            if let (Some(bias), true) = (&c.bias, c.planned.bias_trained) {
                bias.grad_replace(grads, dy.sum_dim(0).reshape([d_out]));
            }
        }
        n
    }
}

/// Keeps a [`SlicePlan`] active on this thread; dropping it deactivates the plan (the records
/// of the forward stay for [`SlicePlan::fill`]).
#[must_use = "the plan is active only while the guard lives"]
pub struct ActivePlan;

impl Drop for ActivePlan {
    fn drop(&mut self) {
        ACTIVE.with(|a| *a.borrow_mut() = None);
    }
}

/// `x · W (+ b)` on `[batch, seq, in]`; when the weight's gradient is wanted, as one
/// `[batch·seq, in] · [in, out]` product.
///
/// `Linear::forward` keeps a batched product with the weight broadcast over the batch when the
/// row count is a multiple of 32 (Burn's `MatmulTransformPolicy`), and `burn-dispatch` has no
/// `linear` of its own, so autodiff sees a broadcast `matmul` and the weight's gradient comes out
/// as `[batch, in, out]`, one product per sequence, summed over the batch afterwards (75 MB for
/// WI at batch 32). Folded into rows, the weight's gradient is one `xᵀ · ∂y`: a padded dense
/// step 0.90× (BENCHMARKS.md). A weight without a gradient (frozen, or a constant on a slice)
/// keeps Burn's batched form, whose per-sequence products keep both cores a little busier in
/// the forward and the input's gradient. Same values as `Linear::forward` up to float rounding
/// (the tests compare them).
pub fn rows_linear(weight: Tensor<2>, bias: Option<Tensor<1>>, x: Tensor<3>) -> Tensor<3> {
    if !weight.is_require_grad() {
        return burn::tensor::module::linear(x, weight, bias);
    }
    let [batch, seq, d_in] = x.dims();
    let d_out = weight.dims()[1];
    let y = x.reshape([batch * seq, d_in]).matmul(weight);
    let y = match bias {
        Some(b) => y + b.unsqueeze::<2>(),
        None => y,
    };
    y.reshape([batch, seq, d_out])
}

/// [`rows_linear`] with `layer`'s weight and bias, or under an active plan that names `layer`'s
/// weight, the same output with the weight and bias as constants and a probe leaf for ∂y
/// (module doc).
pub fn linear(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let planned = ACTIVE.with(|a| {
        a.borrow()
            .as_ref()
            .and_then(|p| p.weights.get(&layer.weight.id).cloned())
    });
    let Some(planned) = planned else {
        return rows_linear(layer.weight.val(), layer.bias.as_ref().map(|b| b.val()), x);
    };
    let weight = layer.weight.val();
    let bias = layer.bias.as_ref().map(|b| b.val());
    let input = x.clone().inner();
    // `detach` would keep a parameter's require-grad flag (and its weight gradient): the
    // weight enters as a constant, without autodiff.
    let constant = Tensor::<2>::from_inner(weight.clone().inner());
    let y = rows_linear(constant, None, x);
    let shape = y.shape();
    let probe = match &bias {
        Some(b) => Tensor::<3>::from_inner(b.clone().inner().unsqueeze::<3>().expand(shape)),
        None => Tensor::<3>::from_inner(Tensor::<3>::zeros(shape, &input.device())),
    }
    .require_grad();
    let out = y + probe.clone();
    CAPTURED.with(|c| {
        c.borrow_mut().push(Captured {
            weight,
            bias,
            input,
            probe,
            planned,
        });
    });
    out
}

/// The word-embedding gradient by rows (module doc): active while the guard lives.
#[must_use = "the probe is active only while the guard lives"]
pub struct WordProbe;

impl WordProbe {
    /// Makes [`embedding`] probe the word embeddings on this thread until the guard drops.
    pub fn activate() -> Self {
        WORD_PROBE.with(|p| *p.borrow_mut() = Some(None));
        Self
    }

    /// After the backward pass of a forward run under the probe: the word-embedding table's
    /// gradient on the rows `distinct` (sorted, distinct token ids), `[distinct.len(), hidden]`,
    /// summed over the positions holding each token in position order (the order of Burn's
    /// embedding backward, so the same values). `ids` are the forward's token ids, one
    /// sequence. `None` when no embedding ran under the probe or its output did not reach the
    /// loss.
    pub fn rows(&self, grads: &mut Gradients, ids: &[i64], distinct: &[i64]) -> Option<Tensor<2>> {
        let probe = WORD_PROBE.with(|p| p.borrow_mut().as_mut().and_then(Option::take))?;
        let de = probe.grad_remove(grads)?;
        let [batch, seq, hidden] = de.dims();
        debug_assert_eq!(batch * seq, ids.len());
        let device = de.device();
        let slot: Vec<i64> = ids
            .iter()
            .map(|id| {
                distinct
                    .binary_search(id)
                    .expect("every id is among the distinct ones") as i64
            })
            .collect();
        let slot = Tensor::<1, Int>::from_data(TensorData::new(slot, [ids.len()]), &device);
        Some(
            Tensor::<2>::zeros([distinct.len(), hidden], &device).select_assign(
                0,
                slot,
                de.reshape([batch * seq, hidden]),
                burn::tensor::IndexingUpdateOp::Add,
            ),
        )
    }
}

impl Drop for WordProbe {
    fn drop(&mut self) {
        WORD_PROBE.with(|p| *p.borrow_mut() = None);
    }
}

/// `layer`'s embedding of `ids`; under an active [`WordProbe`], the same values with the table
/// as a constant plus a zero probe leaf that carries the gradient (module doc).
pub fn embedding(layer: &Embedding, ids: Tensor<2, Int>) -> Tensor<3> {
    if !WORD_PROBE.with(|p| p.borrow().is_some()) {
        return layer.forward(ids);
    }
    let table = Tensor::<2>::from_inner(layer.weight.val().inner());
    let e = burn::tensor::module::embedding(table, ids);
    let probe = Tensor::<3>::from_inner(e.clone().inner().zeros_like()).require_grad();
    WORD_PROBE.with(|p| *p.borrow_mut() = Some(Some(probe.clone())));
    e + probe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_diff, values};
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    #[test]
    fn rows_linear_matches_linear_forward_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        // 32 rows per sequence: Burn keeps the broadcast batched product; 7 rows: it folds too.
        for (shape, bias) in [([4, 32, 24], true), ([3, 7, 5], true), ([2, 32, 6], false)] {
            let layer = LinearConfig::new(shape[2], 11)
                .with_bias(bias)
                .init(&device);
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<3>::random([shape[0], shape[1], 11], Distribution::Default, &device);
            let run = |folded: bool| {
                let x = x.clone().require_grad();
                let y = if folded {
                    rows_linear(
                        layer.weight.val(),
                        layer.bias.as_ref().map(|b| b.val()),
                        x.clone(),
                    )
                } else {
                    layer.forward(x.clone())
                };
                assert_eq!(y.dims(), [shape[0], shape[1], 11]);
                let grads = (y.clone() * w.clone()).sum().backward();
                let bias_grad = layer
                    .bias
                    .as_ref()
                    .map(|b| values(b.val().grad(&grads).expect("a bias gradient")));
                (
                    values(y),
                    values(x.grad(&grads).expect("an input gradient")),
                    values(layer.weight.val().grad(&grads).expect("a weight gradient")),
                    bias_grad,
                )
            };
            let (y, dx, dw, db) = run(true);
            let (y_ref, dx_ref, dw_ref, db_ref) = run(false);
            let close = |a: &[f32], b: &[f32], what: &str| {
                let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(max_diff(a, b) <= 1e-6 * scale.max(1.0), "{shape:?}: {what}");
            };
            close(&y, &y_ref, "values");
            close(&dx, &dx_ref, "∂x");
            close(&dw, &dw_ref, "∂W");
            assert_eq!(db.is_some(), bias);
            if let (Some(db), Some(db_ref)) = (db, db_ref) {
                close(&db, &db_ref, "∂b");
            }
        }
    }

    /// The probe's rows are the embedding backward's rows, bit for bit, with repeated tokens;
    /// the output is the lookup's, and the table gets no gradient of its own.
    #[test]
    fn word_probe_rows_equal_the_embedding_gradient_rows() {
        use burn::nn::EmbeddingConfig;
        let device = Device::flex().autodiff();
        let layer = EmbeddingConfig::new(40, 8).init(&device);
        let ids_host: Vec<i64> = vec![5, 17, 5, 0, 39, 17, 5];
        let n = ids_host.len();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids_host.clone(), [1, n]), &device);
        let w = Tensor::<3>::random([1, n, 8], Distribution::Normal(0.0, 1.0), &device);
        let distinct: Vec<i64> = vec![0, 5, 17, 39];

        let plain = embedding(&layer, ids.clone());
        let grads = (plain.clone() * w.clone()).sum().backward();
        let full = layer.weight.val().grad(&grads).expect("a table gradient");
        let rows =
            Tensor::<1, Int>::from_data(TensorData::new(distinct.clone(), [4]), &full.device());
        let want = values(full.select(0, rows));

        let probe = WordProbe::activate();
        let probed = embedding(&layer, ids);
        assert_eq!(values(probed.clone()), values(plain), "the forward changed");
        let mut grads = (probed * w).sum().backward();
        assert!(
            layer.weight.val().grad(&grads).is_none(),
            "the table got a gradient"
        );
        let got = probe
            .rows(&mut grads, &ids_host, &distinct)
            .expect("probe rows");
        assert_eq!(got.dims(), [4, 8]);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(values(got)), bits(want));
        drop(probe);
        assert!(
            WORD_PROBE.with(|p| p.borrow().is_none()),
            "the probe stayed active"
        );
    }
}
