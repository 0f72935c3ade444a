//! Attention probabilities in one pass on `flex`: `dropout(softmax(scores / √d + mask_bias))`.
//!
//! Burn's autodiff decomposes softmax into max, subtract, exp, sum and divide, and the scale, the
//! mask bias and dropout add four more element-wise passes: about ten passes forward and as many
//! backward over the largest activation of a BERT layer (`[batch, heads, seq, seq]`, 6.3 M
//! entries at batch 32 × 128). Here one custom autodiff operation does the forward in a single
//! pass per row and keeps `y = softmax(z)` and the dropout byte mask for its backward, which is
//! one pass per row too. With `k` = 1 / (1 − p) on kept entries and 0 on dropped ones, the
//! output is `p = k · y` and, for the row's output gradient `∂p`,
//!
//! `g = k · ∂p`, `∂scores = y · (g − Σⱼ gⱼ yⱼ) / √d`,
//!
//! the softmax Jacobian-vector product. The dropout mask is the one [`crate::dropout::apply`]
//! would draw at the same point of the run (same generator, same streams), and exp is the
//! same `expf` (entries more than 104 below the row's maximum, the padded keys, are 0, as
//! `expf` rounds them). Only the order of the row sums differs from the decomposed form, so
//! values agree to float rounding (a test checks values and gradients against it).
//!
//! Other backends (ndarray, wgpu, cuda) and other mask shapes keep the decomposed form.

use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::dropout::Positions;

/// `dropout(softmax(scores / sqrt_d + mask_bias, 3))`; `positions`: the queries `scores` holds
/// ([`Positions::First`]: the first query only, whose dropout entries are then the full
/// tensor's).
///
/// # Shapes
/// `scores`: `[batch, heads, seq_q, seq_k]`, `mask_bias`: `[batch, 1, 1, seq_k]`.
pub fn probs(
    scores: Tensor<4>,
    sqrt_d: f64,
    mask_bias: Tensor<4>,
    dropout: &Dropout,
    positions: Positions,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(p) = flex::probs(&scores, sqrt_d as f32, &mask_bias, dropout, positions) {
        return p;
    }
    decomposed(scores, sqrt_d, mask_bias, dropout, positions)
}

/// The same with Burn's own operations (the reference of the fused form).
pub fn decomposed(
    scores: Tensor<4>,
    sqrt_d: f64,
    mask_bias: Tensor<4>,
    dropout: &Dropout,
    positions: Positions,
) -> Tensor<4> {
    crate::dropout::apply_at(dropout, softmax(scores / sqrt_d + mask_bias, 3), positions)
}

#[cfg(feature = "flex")]
mod flex {
    use std::sync::Arc;

    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex, TensorMetadata};
    use burn::nn::Dropout;
    use burn::tensor::{DType, Tensor};

    use super::Positions;
    use crate::flexhost::{floats, map_in_place, tensor};
    use rayon::prelude::*;

    /// Rows per parallel task.
    const ROWS: usize = 64;

    /// The fused form when `scores` live on `flex` (with or without autodiff) and `mask_bias`
    /// has the `[batch, 1, 1, seq_k]` shape; `None` otherwise.
    pub(super) fn probs(
        scores: &Tensor<4>,
        sqrt_d: f32,
        mask_bias: &Tensor<4>,
        dropout: &Dropout,
        positions: Positions,
    ) -> Option<Tensor<4>> {
        let device = scores.device();
        let keep = crate::dropout::active_keep(dropout, &device);
        let row = scores.dims()[3];
        probs_with(scores, sqrt_d, mask_bias, keep, |keep, n| {
            crate::dropout::draw_dropped_at(&device, keep, n, row, positions)
        })
    }

    /// [`probs`] with dropout's keep probability given (`None`: no dropout) and its mask drawn
    /// by `draw(keep, n)`, called only once the fused form is sure to run.
    pub(super) fn probs_with(
        scores: &Tensor<4>,
        sqrt_d: f32,
        mask_bias: &Tensor<4>,
        keep: Option<f64>,
        draw: impl FnOnce(f64, usize) -> Vec<bool>,
    ) -> Option<Tensor<4>> {
        if !crate::flexhost::fused("attention") {
            return None;
        }
        let device = scores.device();
        let [batch, heads, seq_q, seq_k] = scores.dims();
        if mask_bias.dims() != [batch, 1, 1, seq_k]
            || seq_k == 0
            || scores.dtype() != DType::F32
            || mask_bias.dtype() != DType::F32
        {
            return None;
        }
        let rows = Rows {
            per_batch: heads * seq_q,
            len: seq_k,
            sqrt_d,
        };
        if !device.is_autodiff() {
            let s = scores.clone().try_into_primitive::<Flex>().ok()?;
            let bias = mask_bias.clone().try_into_primitive::<Flex>().ok()?;
            let y = rows.forward(&floats(&s), &floats(&bias));
            return Some(Tensor::from_primitive::<Flex>(tensor(y, s.shape())));
        }
        type Ad = Autodiff<Flex, NoCheckpointing>;
        let s = scores.clone().try_into_primitive::<Ad>().ok()?;
        let bias = mask_bias.clone().try_into_primitive::<Ad>().ok()?;
        let shape = s.primitive().shape();
        let dropped = keep.map(|k| Arc::new(draw(k, shape.num_elements())));
        let inv_keep = keep.map_or(1.0, |k| (1.0 / k) as f32);
        let y = rows.forward(&floats(s.primitive()), &floats(bias.primitive()));
        let p = dropped.as_ref().map(|d| rows.dropout(&y, d, inv_keep));
        let y = tensor(y, shape.clone());
        let out = p.map_or_else(|| y.clone(), |p| tensor(p, shape));
        let state = State {
            y,
            dropped,
            inv_keep,
            rows,
        };
        let out = match AttentionProbs
            .prepare::<NoCheckpointing>([s.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Some(Tensor::from_primitive::<Ad>(out))
    }

    /// The row geometry: rows `[b · per_batch, (b + 1) · per_batch)` take the mask bias of
    /// batch entry `b`.
    #[derive(Clone, Copy, Debug)]
    struct Rows {
        per_batch: usize,
        len: usize,
        sqrt_d: f32,
    }

    impl Rows {
        /// `softmax(s / √d + bias)` row by row.
        fn forward(&self, s: &[f32], bias: &[f32]) -> Vec<f32> {
            let n = self.len;
            let mut y = vec![0.0f32; s.len()];
            y.par_chunks_mut(ROWS * n)
                .zip(s.par_chunks(ROWS * n))
                .enumerate()
                .for_each(|(c, (y, s))| {
                    for (r, (y, s)) in y.chunks_mut(n).zip(s.chunks(n)).enumerate() {
                        let b = (c * ROWS + r) / self.per_batch;
                        softmax_row(s, &bias[b * n..(b + 1) * n], self.sqrt_d, y);
                    }
                });
            y
        }

        /// `y` with the dropped entries zeroed and the rest scaled by `inv_keep`.
        fn dropout(&self, y: &[f32], dropped: &[bool], inv_keep: f32) -> Vec<f32> {
            let mut p = vec![0.0f32; y.len()];
            p.par_chunks_mut(ROWS * self.len)
                .zip(y.par_chunks(ROWS * self.len))
                .zip(dropped.par_chunks(ROWS * self.len))
                .for_each(move |((p, y), d)| {
                    // `move`: `inv_keep` by value, so the loop does not reload it through a
                    // reference at every element (which kept it from vectorising).
                    for ((p, &y), &d) in p.iter_mut().zip(y).zip(d) {
                        *p = keep_or_zero(y * inv_keep, d);
                    }
                });
            p
        }

        /// `∂scores` from the output gradient `dp` (written over `dp`).
        fn backward(&self, dp: &mut [f32], y: &[f32], dropped: Option<&[bool]>, inv_keep: f32) {
            let n = self.len;
            let sqrt_d = self.sqrt_d;
            match dropped {
                Some(dropped) => dp
                    .par_chunks_mut(ROWS * n)
                    .zip(y.par_chunks(ROWS * n))
                    .zip(dropped.par_chunks(ROWS * n))
                    .for_each(move |((dp, y), d)| {
                        for ((dp, y), d) in dp.chunks_mut(n).zip(y.chunks(n)).zip(d.chunks(n)) {
                            for (g, &d) in dp.iter_mut().zip(d) {
                                *g = keep_or_zero(*g * inv_keep, d);
                            }
                            softmax_backward_row(dp, y, sqrt_d);
                        }
                    }),
                None => dp
                    .par_chunks_mut(ROWS * n)
                    .zip(y.par_chunks(ROWS * n))
                    .for_each(|(dp, y)| {
                        for (dp, y) in dp.chunks_mut(n).zip(y.chunks(n)) {
                            softmax_backward_row(dp, y, sqrt_d);
                        }
                    }),
            }
        }
    }

    /// `v`, or +0.0 when `dropped`: the `if dropped { 0.0 } else { v }` of the loops above,
    /// bit for bit, as a mask of the bits instead of a branch, so the loops vectorise.
    #[inline(always)]
    pub(super) fn keep_or_zero(v: f32, dropped: bool) -> f32 {
        f32::from_bits(v.to_bits() & u32::from(dropped).wrapping_sub(1))
    }

    /// `y = softmax(s / √d + bias)` over one row.
    fn softmax_row(s: &[f32], bias: &[f32], sqrt_d: f32, y: &mut [f32]) {
        // The row's maximum over LANES running maxima, so the loop vectorises (one running
        // maximum made a chain of dependent `maxss`); a maximum is exact, so any grouping
        // gives the same value.
        const LANES: usize = 8;
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut ys = y.chunks_exact_mut(LANES);
        let (mut ss, mut bs) = (s.chunks_exact(LANES), bias.chunks_exact(LANES));
        for ((y, s), b) in (&mut ys).zip(&mut ss).zip(&mut bs) {
            for l in 0..LANES {
                let z = s[l] / sqrt_d + b[l];
                y[l] = z;
                lanes[l] = lanes[l].max(z);
            }
        }
        let mut max = lanes.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let tail = ys.into_remainder().iter_mut();
        for ((y, &s), &b) in tail.zip(ss.remainder()).zip(bs.remainder()) {
            let z = s / sqrt_d + b;
            *y = z;
            max = max.max(z);
        }
        let mut sum = 0.0f32;
        for y in y.iter_mut() {
            let d = *y - max;
            // e^d rounds to +0 in f32 below −104; `expf` would take its slow underflow path.
            let e = if d < -104.0 { 0.0 } else { d.exp() };
            *y = e;
            sum += e;
        }
        for y in y.iter_mut() {
            *y /= sum;
        }
    }

    /// `g ← y · (g − Σ g·y) / √d` over one row.
    fn softmax_backward_row(g: &mut [f32], y: &[f32], sqrt_d: f32) {
        let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
        for (g, &y) in g.iter_mut().zip(y) {
            *g = y * (*g - dot) / sqrt_d;
        }
    }

    /// What the backward needs.
    #[derive(Clone, Debug)]
    struct State {
        /// softmax(z), before dropout.
        y: FlexTensor,
        dropped: Option<Arc<Vec<bool>>>,
        inv_keep: f32,
        rows: Rows,
    }

    #[derive(Debug)]
    struct AttentionProbs;

    impl Backward<Flex, 1> for AttentionProbs {
        type State = State;

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let state = ops.state;
            unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
                let y = floats(&state.y);
                let dropped = state.dropped.as_deref().map(Vec::as_slice);
                map_in_place(grad, |dp| {
                    state.rows.backward(dp, &y, dropped, state.inv_keep)
                })
            });
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testutil::{max_diff, values};
    use burn::nn::DropoutConfig;
    use burn::tensor::{Bool, Device, Distribution, TensorData};

    /// Scores `[batch, heads, q, k]` and a mask bias that pads the last `pad` keys of every
    /// second batch entry, as the model builds it.
    fn inputs(device: &Device, shape: [usize; 4], pad: usize) -> (Tensor<4>, Tensor<4>) {
        let [batch, _, _, k] = shape;
        device.seed(21);
        let scores = Tensor::<4>::random(shape, Distribution::Normal(0.0, 3.0), device);
        let bias: Vec<f32> = (0..batch * k)
            .map(|i| {
                if (i / k) % 2 == 1 && i % k >= k - pad {
                    -1.0e9
                } else {
                    0.0
                }
            })
            .collect();
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [batch, 1, 1, k]), device);
        (scores, bias)
    }

    /// Values and score gradients of the fused form and of Burn's operations with the same
    /// dropout mask (drawn from a fixed seed, not from Burn's process-wide generator, which
    /// other tests draw from in parallel).
    fn both(shape: [usize; 4], pad: usize, keep: Option<f64>) -> [(Vec<f32>, Vec<f32>); 2] {
        let device = Device::flex().autodiff();
        let (scores, bias) = inputs(&device, shape, pad);
        let w = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let n = shape.iter().product();
        let mask = |keep| crate::dropout::dropped_entries(77, keep, n);
        let run = |fused: bool| {
            let s = scores.clone().require_grad();
            let out = if fused {
                flex::probs_with(&s, 8.0, &bias, keep, |k, _| mask(k))
                    .expect("the fused form on flex")
            } else {
                let y = softmax(s.clone() / 8.0 + bias.clone(), 3);
                match keep {
                    Some(k) => {
                        let dropped = TensorData::new(mask(k), shape);
                        y.mask_fill(Tensor::<4, Bool>::from_data(dropped, &device), 0.0)
                            .mul_scalar((1.0 / k) as f32)
                    }
                    None => y,
                }
            };
            let grads = (out.clone() * w.clone()).sum().backward();
            (
                values(out),
                values(s.grad(&grads).expect("a score gradient")),
            )
        };
        [run(true), run(false)]
    }

    #[test]
    fn the_fused_probabilities_match_the_decomposed_ones_with_dropout_and_padding() {
        for (shape, pad, keep) in [
            ([2, 3, 17, 19], 5, Some(0.9)),
            ([4, 12, 128, 128], 40, Some(0.9)),
            ([2, 3, 17, 19], 5, None),
            ([3, 2, 7, 130], 0, None),
        ] {
            let [(v, g), (v_ref, g_ref)] = both(shape, pad, keep);
            let dv = max_diff(&v, &v_ref);
            let dg = max_diff(&g, &g_ref);
            let g_scale = g_ref.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(dv <= 1e-6, "{shape:?}: values differ by {dv}");
            assert!(
                dg <= 1e-5 * g_scale,
                "{shape:?}: gradients differ by {dg} (max {g_scale})"
            );
            // The same entries are dropped (exact zeros of the output where the reference has them).
            let zeros = |v: &[f32]| v.iter().filter(|&&x| x == 0.0).count();
            assert_eq!(zeros(&v), zeros(&v_ref), "{shape:?}");
            if keep.is_some() {
                let share = zeros(&v) as f64 / v.len() as f64;
                assert!(share >= 0.08, "{shape:?}: dropout dropped {share}");
            }
        }
    }

    #[test]
    fn keep_or_zero_is_the_branch_bit_for_bit() {
        let values = [
            1.5f32,
            -2.25,
            0.0,
            -0.0,
            f32::MIN_POSITIVE / 8.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        for v in values {
            for dropped in [false, true] {
                let branch = if dropped { 0.0 } else { v };
                assert_eq!(
                    flex::keep_or_zero(v, dropped).to_bits(),
                    branch.to_bits(),
                    "{v} dropped {dropped}"
                );
            }
        }
    }

    #[test]
    fn padded_keys_get_zero_probability_and_rows_sum_to_one_without_autodiff() {
        let device = Device::flex();
        let (scores, bias) = inputs(&device, [2, 2, 3, 6], 2);
        let dropout = DropoutConfig::new(0.1).init();
        let p = values(
            flex::probs(&scores, 8.0, &bias, &dropout, Positions::All).expect("fused on flex"),
        );
        let reference = values(decomposed(scores, 8.0, bias, &dropout, Positions::All));
        assert!(max_diff(&p, &reference) <= 1e-6);
        for (r, row) in p.chunks(6).enumerate() {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "row {r} sums to {sum}");
            if r >= 6 {
                assert_eq!(&row[4..], &[0.0, 0.0], "row {r}: padded keys");
            }
        }
    }

    #[test]
    #[allow(deprecated)] // ndarray: a second backend to fall back on
    fn other_mask_shapes_and_backends_take_the_decomposed_form() {
        let device = Device::flex();
        let dropout = DropoutConfig::new(0.1).init();
        let scores = Tensor::<4>::zeros([2, 2, 3, 6], &device);
        let full_bias = Tensor::<4>::zeros([2, 2, 3, 6], &device);
        assert!(flex::probs(&scores, 8.0, &full_bias, &dropout, Positions::All).is_none());
        let nd = Device::ndarray();
        let (s, b) = inputs(&nd, [2, 2, 3, 6], 2);
        assert!(flex::probs(&s, 8.0, &b, &dropout, Positions::All).is_none());
        assert_eq!(
            probs(s, 8.0, b, &dropout, Positions::All).dims(),
            [2, 2, 3, 6]
        );
    }
}
