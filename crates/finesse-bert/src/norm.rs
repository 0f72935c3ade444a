//! LayerNorm in one pass on `flex` under autodiff.
//!
//! Burn's autodiff takes LayerNorm apart (mean, subtract, square, mean, add ε, square root,
//! divide, scale, shift): some nine element-wise passes forward and more backward, 13 times per
//! MiniLM step. Here one custom autodiff operation normalises each row in one pass and keeps
//! `x̂ = (x − μ) / σ` (σ = √(var + ε)) and σ per row; its backward, for the output gradient `g`:
//!
//! - `∂β = Σ_rows g`, `∂γ = Σ_rows g · x̂`;
//! - `∂x = (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) / σ` with `ĝ = g · γ`, per row.
//!
//! Values agree with the decomposed form to float rounding (the order of the row sums differs);
//! a test checks values and all three gradients against it. Without autodiff `flex` runs its
//! own fused LayerNorm already; other backends keep Burn's.

use burn::nn::LayerNorm;
use burn::tensor::Tensor;

/// `ln.forward(x)`, with `eps` the LayerNorm's ε (which `LayerNorm` keeps private).
pub fn layer_norm<const D: usize>(ln: &LayerNorm, eps: f64, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(y) = flex::layer_norm(ln, eps as f32, &x) {
        return y;
    }
    let _ = eps;
    ln.forward(x)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex, TensorMetadata};
    use burn::nn::LayerNorm;
    use burn::tensor::{DType, Shape, Tensor};
    use rayon::prelude::*;

    use crate::flexhost::{floats, map_in_place, tensor};

    /// Rows per parallel task.
    const ROWS: usize = 32;

    type Ad = Autodiff<Flex, NoCheckpointing>;

    /// The fused form on a `flex` autodiff device for f32 with a β; `None` otherwise.
    pub(super) fn layer_norm<const D: usize>(
        ln: &LayerNorm,
        eps: f32,
        x: &Tensor<D>,
    ) -> Option<Tensor<D>> {
        if !crate::flexhost::fused("layernorm") {
            return None;
        }
        let beta = ln.beta.as_ref()?.val();
        let gamma = ln.gamma.val();
        if !x.device().is_autodiff()
            || x.dtype() != DType::F32
            || gamma.dtype() != DType::F32
            || beta.dtype() != DType::F32
        {
            return None;
        }
        let width = gamma.dims()[0];
        if width == 0 || x.dims()[D - 1] != width {
            return None;
        }
        let x = x.clone().try_into_primitive::<Ad>().ok()?;
        let gamma = gamma.try_into_primitive::<Ad>().ok()?;
        let beta = beta.try_into_primitive::<Ad>().ok()?;
        let shape = x.primitive().shape();
        let g = floats(gamma.primitive()).into_owned();
        let (y, x_hat, sigma) = forward(&floats(x.primitive()), &g, &floats(beta.primitive()), eps);
        let out = tensor(y, shape.clone());
        let op = LayerNormOp.prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()]);
        let out = match op.compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(
                State {
                    x_hat: tensor(x_hat, shape),
                    sigma: std::sync::Arc::new(sigma),
                    gamma: std::sync::Arc::new(g),
                },
                out,
            ),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Some(Tensor::from_primitive::<Ad>(out))
    }

    /// (y, x̂, σ per row) of rows of `gamma.len()` values.
    fn forward(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let d = gamma.len();
        let mut y = vec![0.0f32; x.len()];
        let mut x_hat = vec![0.0f32; x.len()];
        let mut sigma = vec![0.0f32; x.len() / d];
        y.par_chunks_mut(ROWS * d)
            .zip(x_hat.par_chunks_mut(ROWS * d))
            .zip(sigma.par_chunks_mut(ROWS))
            .zip(x.par_chunks(ROWS * d))
            .for_each(|(((y, x_hat), sigma), x)| {
                for (((y, x_hat), sigma), x) in y
                    .chunks_mut(d)
                    .zip(x_hat.chunks_mut(d))
                    .zip(sigma.iter_mut())
                    .zip(x.chunks(d))
                {
                    let mean = x.iter().sum::<f32>() / d as f32;
                    let mut var = 0.0f32;
                    for (h, &x) in x_hat.iter_mut().zip(x) {
                        let c = x - mean;
                        *h = c;
                        var += c * c;
                    }
                    let s = (var / d as f32 + eps).sqrt();
                    *sigma = s;
                    for (((y, h), &g), &b) in
                        y.iter_mut().zip(x_hat.iter_mut()).zip(gamma).zip(beta)
                    {
                        *h /= s;
                        *y = *h * g + b;
                    }
                }
            });
        (y, x_hat, sigma)
    }

    /// (Σ_rows g · x̂, Σ_rows g): partial sums over fixed blocks of rows, added in order, so
    /// the result does not depend on the number of threads.
    fn column_sums(g: &[f32], x_hat: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
        let partial: Vec<(Vec<f32>, Vec<f32>)> = g
            .par_chunks(ROWS * d)
            .zip(x_hat.par_chunks(ROWS * d))
            .map(|(g, x_hat)| {
                let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
                for (g, x_hat) in g.chunks(d).zip(x_hat.chunks(d)) {
                    for (((dg, db), &g), &h) in dg.iter_mut().zip(db.iter_mut()).zip(g).zip(x_hat) {
                        *dg += g * h;
                        *db += g;
                    }
                }
                (dg, db)
            })
            .collect();
        let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
        for (pg, pb) in partial {
            for (a, b) in dg.iter_mut().zip(pg) {
                *a += b;
            }
            for (a, b) in db.iter_mut().zip(pb) {
                *a += b;
            }
        }
        (dg, db)
    }

    /// `g ← ∂x` row by row (see the module doc).
    fn input_gradient(g: &mut [f32], x_hat: &[f32], sigma: &[f32], gamma: &[f32]) {
        let d = gamma.len();
        g.par_chunks_mut(ROWS * d)
            .zip(x_hat.par_chunks(ROWS * d))
            .zip(sigma.par_chunks(ROWS))
            .for_each(|((g, x_hat), sigma)| {
                for ((g, x_hat), &s) in g.chunks_mut(d).zip(x_hat.chunks(d)).zip(sigma) {
                    let (mut a, mut b) = (0.0f32, 0.0f32);
                    for ((g, &h), &w) in g.iter_mut().zip(x_hat).zip(gamma) {
                        *g *= w;
                        a += *g;
                        b += *g * h;
                    }
                    let (a, b) = (a / d as f32, b / d as f32);
                    for (g, &h) in g.iter_mut().zip(x_hat) {
                        *g = (*g - a - h * b) / s;
                    }
                }
            });
    }

    /// What the backward needs.
    #[derive(Clone, Debug)]
    struct State {
        x_hat: FlexTensor,
        sigma: std::sync::Arc<Vec<f32>>,
        gamma: std::sync::Arc<Vec<f32>>,
    }

    #[derive(Debug)]
    struct LayerNormOp;

    impl Backward<Flex, 3> for LayerNormOp {
        type State = State;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [px, pg, pb] = ops.parents;
            let state = ops.state;
            let g = grads.consume::<Flex>(&ops.node);
            let x_hat = floats(&state.x_hat);
            let d = state.gamma.len();
            if pg.is_some() || pb.is_some() {
                let (dg, db) = column_sums(&floats(&g), &x_hat, d);
                if let Some(p) = pg {
                    grads.register::<Flex>(p.id, tensor(dg, Shape::new([d])));
                }
                if let Some(p) = pb {
                    grads.register::<Flex>(p.id, tensor(db, Shape::new([d])));
                }
            }
            if let Some(p) = px {
                let dx = map_in_place(g, |g| input_gradient(g, &x_hat, &state.sigma, &state.gamma));
                grads.register::<Flex>(p.id, dx);
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testutil::{max_diff, values};
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn the_fused_layer_norm_matches_burns_values_and_gradients() {
        let device = Device::flex().autodiff();
        for (shape, eps) in [
            ([3, 5, 8], 1e-12),
            ([32, 128, 384], 1e-12),
            ([2, 70, 33], 1e-5),
        ] {
            device.seed(4);
            let mut ln = LayerNormConfig::new(shape[2])
                .with_epsilon(eps)
                .init(&device);
            // Non-trivial γ and β, as after training.
            let jitter = |t: Tensor<1>| {
                let noise = Tensor::random(t.shape(), Distribution::Normal(0.0, 0.3), &t.device());
                (t + noise).detach().require_grad()
            };
            ln.gamma = ln.gamma.map(jitter);
            ln.beta = ln.beta.map(|b| b.map(jitter));
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.5, 2.0), &device);
            let w = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let run = |fused: bool| {
                let x = x.clone().require_grad();
                let y = if fused {
                    flex::layer_norm(&ln, eps as f32, &x).expect("the fused form on flex")
                } else {
                    ln.forward(x.clone())
                };
                let grads = (y.clone() * w.clone()).sum().backward();
                let g = |t: Tensor<1>| values(t.grad(&grads).expect("a gradient"));
                let beta = ln.beta.as_ref().expect("beta").val();
                (
                    values(y),
                    values(x.grad(&grads).expect("an input gradient")),
                    g(ln.gamma.val()),
                    g(beta),
                )
            };
            let (y, dx, dg, db) = run(true);
            let (y_ref, dx_ref, dg_ref, db_ref) = run(false);
            let scale = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(
                max_diff(&y, &y_ref) <= 2e-6 * scale(&y_ref),
                "{shape:?}: values"
            );
            assert!(
                max_diff(&dx, &dx_ref) <= 1e-5 * scale(&dx_ref),
                "{shape:?}: ∂x"
            );
            assert!(
                max_diff(&dg, &dg_ref) <= 1e-5 * scale(&dg_ref),
                "{shape:?}: ∂γ"
            );
            assert!(
                max_diff(&db, &db_ref) <= 1e-5 * scale(&db_ref),
                "{shape:?}: ∂β"
            );
        }
    }

    #[test]
    fn without_autodiff_or_beta_layer_norm_is_burns() {
        let device = Device::flex();
        let ln = LayerNormConfig::new(8).init(&device);
        let x = Tensor::<2>::random([4, 8], Distribution::Normal(0.0, 1.0), &device);
        assert!(flex::layer_norm(&ln, 1e-5, &x).is_none());
        assert_eq!(
            values(layer_norm(&ln, 1e-5, x.clone())),
            values(ln.forward(x))
        );
        let ad = Device::flex().autodiff();
        let no_beta = LayerNormConfig::new(8).with_bias(false).init(&ad);
        let x = Tensor::<2>::random([4, 8], Distribution::Normal(0.0, 1.0), &ad);
        assert!(flex::layer_norm(&no_beta, 1e-5, &x).is_none());
    }
}
