//! The AdamW step of [`crate::optim`] in one pass on `flex`.
//!
//! Written with Burn's tensor operations, one step of a parameter is some fifteen element-wise
//! passes (scale, two moments, square root, bias corrections, ε, quotient, decay, subtraction),
//! each allocating a new tensor: over a dense model's 22.7 M entries that is several gigabytes of
//! memory traffic per step. Here each entry is read and written once, in place where the buffers
//! are not shared, with the same f32 operations in the same order (each scalar rounded to f32
//! as Burn's scalar operations round it, no fused multiply-add), so the results are the tensor
//! form's bit for bit (tested).

use burn::backend::Flex;
use burn::tensor::{Shape, Tensor};
use finesse_bert::flexhost::{floats, owned, plain, tensor, wrap};
use rayon::prelude::*;

use crate::optim::AdamwStep as Step;

/// Entries per parallel task.
const CHUNK: usize = 1 << 16;

/// The tensors of a step: the value and the moments (m, v), when there are any.
type Taken = (Tensor<1>, Option<(Tensor<1>, Tensor<1>)>);

/// (new value, m, v) of flat `value` from `grad` and the previous moments, written over their
/// buffers when no one else holds them (the caller gives them up; a buffer still shared is
/// copied first). `Err` gives `value` and `previous` back when a tensor is not a plain f32
/// tensor on `flex` or the lengths differ (the caller then takes the tensor form).
pub(crate) fn adamw(
    value: Tensor<1>,
    grad: &Tensor<1>,
    previous: Option<(Tensor<1>, Tensor<1>)>,
    s: Step,
) -> Result<(Tensor<1>, Tensor<1>, Tensor<1>), Box<Taken>> {
    let n = value.dims()[0];
    let on_flex = |t: &Tensor<1>| t.dims()[0] == n && plain(t).is_some();
    if !finesse_bert::flexhost::fused("adamw")
        || !on_flex(&value)
        || !on_flex(grad)
        || previous
            .as_ref()
            .is_some_and(|(m, v)| !on_flex(m) || !on_flex(v))
    {
        return Err(Box::new((value, previous)));
    }
    let take = |t: Tensor<1>| owned(t.try_into_primitive::<Flex>().expect("checked above"));
    let first = previous.is_none();
    let (m, v) = match previous {
        Some((m, v)) => (take(m), take(v)),
        None => {
            let zeros = || tensor(vec![0.0; n], Shape::new([n]));
            (zeros(), zeros())
        }
    };
    let (mut p, mut m, mut v) = (take(value), m, v);
    let g = plain(grad).expect("checked above");
    let g = floats(&g);
    kernel(
        &mut p.storage_mut::<f32>()[..n],
        &g,
        &mut m.storage_mut::<f32>()[..n],
        &mut v.storage_mut::<f32>()[..n],
        first,
        s,
    );
    Ok((wrap(p), wrap(m), wrap(v)))
}

/// One AdamW step over slices of equal length (m and v are ignored and overwritten when
/// `first`).
fn kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], first: bool, s: Step) {
    let (bc1, bc2) = (1.0 - s.beta1.powi(s.t), 1.0 - s.beta2.powi(s.t));
    let c = Consts {
        // Multiplying by 1 is exact, so an absent scale or decay is a factor of 1: the same
        // bits as skipping the product, and a loop without branches, which vectorises.
        scale: if s.grad_scale != 1.0 {
            s.grad_scale as f32
        } else {
            1.0
        },
        b1: s.beta1 as f32,
        b2: s.beta2 as f32,
        one_b1: (1.0 - s.beta1) as f32,
        one_b2: (1.0 - s.beta2) as f32,
        sqrt_bc2: bc2.sqrt() as f32,
        eps: s.eps as f32,
        step_size: (s.lr / bc1) as f32,
        decay: if s.weight_decay > 0.0 {
            (1.0 - s.lr * s.weight_decay) as f32
        } else {
            1.0
        },
    };
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        // `move`: the constants by value, so the loop does not reload them through a reference.
        .for_each(move |(((p, g), m), v)| update(p, g, m, v, first, c));
}

/// The step's constants, rounded to f32 as Burn's scalar operations round them.
#[derive(Clone, Copy)]
struct Consts {
    scale: f32,
    b1: f32,
    b2: f32,
    one_b1: f32,
    one_b2: f32,
    sqrt_bc2: f32,
    eps: f32,
    step_size: f32,
    decay: f32,
}

/// [`body`] for `first` or not (the branch outside the loop). It vectorises for the baseline
/// target (four lanes); `sqrt` and `/` are exactly rounded in every lane, so the bits are the
/// scalar form's.
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], first: bool, c: Consts) {
    match first {
        true => body::<true>(p, g, m, v, c),
        false => body::<false>(p, g, m, v, c),
    }
}

/// The update of each entry, in the tensor form's order: `g·scale`, the moments, `√v / √bc2 +
/// ε`, `m / denom · step_size`, `p·decay − step`.
#[inline(always)]
fn body<const FIRST: bool>(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Consts) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let gi = g[i] * c.scale;
        let (m1, v1) = if FIRST {
            (gi * c.one_b1, (gi * gi) * c.one_b2)
        } else {
            (
                m[i] * c.b1 + gi * c.one_b1,
                v[i] * c.b2 + (gi * gi) * c.one_b2,
            )
        };
        m[i] = m1;
        v[i] = v1;
        let denom = v1.sqrt() / c.sqrt_bc2 + c.eps;
        p[i] = p[i] * c.decay - m1 / denom * c.step_size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn bits(t: Tensor<1>) -> Vec<u32> {
        t.into_data()
            .try_to_vec::<f32>()
            .expect("f32")
            .into_iter()
            .map(f32::to_bits)
            .collect()
    }

    #[test]
    fn the_one_pass_step_writes_the_tensor_forms_bits() {
        let device = Device::flex();
        device.seed(3);
        let n = 200_003; // several parallel chunks and a ragged end
        let r = |std: f64| Tensor::<1>::random([n], Distribution::Normal(0.0, std), &device);
        let (value, g1, g2) = (r(0.05), r(1e-3), r(2e-3));
        for (grad_scale, weight_decay) in [(1.0, 0.01), (0.37, 0.0)] {
            let mut fused_state: Option<(Tensor<1>, Tensor<1>)> = None;
            let mut tensor_state: Option<(Tensor<1>, Tensor<1>)> = None;
            let (mut fused, mut reference) = (value.clone(), value.clone());
            for (t, g) in [(1, &g1), (2, &g2), (3, &g1)] {
                let s = Step {
                    grad_scale,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    lr: 3e-4,
                    weight_decay,
                    t,
                };
                let (p, m, v) =
                    adamw(fused, g, fused_state.take(), s).expect("the host form on flex");
                fused = p;
                fused_state = Some((m, v));
                let (p, m, v) = crate::optim::tensor_adamw(
                    reference.clone(),
                    g.clone(),
                    tensor_state.take(),
                    s,
                );
                reference = p;
                tensor_state = Some((m, v));
            }
            assert_eq!(bits(fused.clone()), bits(reference.clone()), "values");
            let (fm, fv) = fused_state.expect("state");
            let (rm, rv) = tensor_state.expect("state");
            assert_eq!(bits(fm), bits(rm), "m");
            assert_eq!(bits(fv), bits(rv), "v");
            assert_ne!(
                bits(fused),
                bits(value.clone()),
                "the step moved the values"
            );
        }
    }

    #[test]
    #[allow(deprecated)] // ndarray: a second backend to fall back on
    fn other_backends_and_autodiff_tensors_take_the_tensor_form() {
        let s = Step {
            grad_scale: 1.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            lr: 1e-3,
            weight_decay: 0.0,
            t: 1,
        };
        let nd = Device::ndarray();
        let x = Tensor::<1>::ones([4], &nd);
        assert!(adamw(x.clone(), &x, None, s).is_err());
        let ad = Device::flex().autodiff();
        let x = Tensor::<1>::ones([4], &ad);
        assert!(adamw(x.clone(), &x, None, s).is_err());
        let flex = Device::flex();
        let (x, short) = (Tensor::<1>::ones([4], &flex), Tensor::<1>::ones([3], &flex));
        assert!(adamw(x, &short, None, s).is_err());
    }
}
