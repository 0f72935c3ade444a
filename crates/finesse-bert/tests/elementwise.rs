//! The element-wise maps of the vendored `burn-flex` (vendor/README.md) run over several
//! threads above 256 Ki elements and on one thread below. Both paths must give the same bits:
//! each op below runs once on a tensor above the threshold and once chunk by chunk (each chunk
//! below it), and the two results are compared bit for bit, forward and backward.

use burn::tensor::activation::{gelu, tanh};
use burn::tensor::{Device, Tensor};

/// Above flex's `PARALLEL_THRESHOLD` (256 Ki elements), not a multiple of its chunk.
const N: usize = 300_007;
/// Below the threshold.
const CHUNK: usize = 10_000;

/// A named element-wise op.
type Op = (&'static str, Box<dyn Fn(Tensor<1>) -> Tensor<1>>);

fn inputs(device: &Device) -> Tensor<1> {
    // Values over [-8, 8], some far enough out for exp's underflow path.
    let data: Vec<f32> = (0..N)
        .map(|i| ((i as f32) * 0.618_034).sin() * 8.0)
        .collect();
    Tensor::from_floats(data.as_slice(), device)
}

fn bits(t: Tensor<1>) -> Vec<u32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("f32 data")
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// `op` of the whole tensor, and `op` chunk by chunk then concatenated.
fn whole_and_chunked(x: &Tensor<1>, op: impl Fn(Tensor<1>) -> Tensor<1>) -> (Vec<u32>, Vec<u32>) {
    let whole = bits(op(x.clone()));
    let chunks: Vec<Tensor<1>> = (0..N)
        .step_by(CHUNK)
        .map(|start| op(x.clone().narrow(0, start, CHUNK.min(N - start))))
        .collect();
    (whole, bits(Tensor::cat(chunks, 0)))
}

#[test]
fn elementwise_ops_are_bit_identical_above_the_parallel_threshold() {
    let device = Device::flex();
    let x = inputs(&device);
    let y = inputs(&device).flip([0]);
    let ops: Vec<Op> = vec![
        ("gelu", Box::new(gelu)),
        ("erf", Box::new(|t| t.erf())),
        ("exp", Box::new(|t| t.exp())),
        ("tanh", Box::new(tanh)),
        ("scalar mul-add", Box::new(|t| t * 0.37 + 1.5)),
        ("powf_scalar", Box::new(|t| t.abs().powf_scalar(1.7))),
    ];
    for (name, op) in &ops {
        let (whole, chunked) = whole_and_chunked(&x, op);
        assert_eq!(whole.len(), N, "{name}");
        assert!(whole == chunked, "{name}: the parallel path changed bits");
    }
    // A binary op with a custom closure (no SIMD kernel): powf.
    let whole = bits(x.clone().abs().powf(y.clone().abs() * 0.25));
    let chunked: Vec<Tensor<1>> = (0..N)
        .step_by(CHUNK)
        .map(|s| {
            let n = CHUNK.min(N - s);
            x.clone()
                .narrow(0, s, n)
                .abs()
                .powf(y.clone().narrow(0, s, n).abs() * 0.25)
        })
        .collect();
    assert!(whole == bits(Tensor::cat(chunked, 0)), "powf changed bits");
}

#[test]
fn gelu_backward_is_bit_identical_above_the_parallel_threshold() {
    let device = Device::flex().autodiff();
    let grad_of = |x: Tensor<1>| -> Vec<u32> {
        let x = x.require_grad();
        let grads = (gelu(x.clone()) * 1.25).sum().backward();
        bits(x.grad(&grads).expect("gradient"))
    };
    let x = inputs(&device);
    let whole = grad_of(x.clone().detach());
    let mut chunked = Vec::with_capacity(N);
    for start in (0..N).step_by(CHUNK) {
        chunked.extend(grad_of(x.clone().detach().narrow(
            0,
            start,
            CHUNK.min(N - start),
        )));
    }
    assert_eq!(whole.len(), N);
    assert!(
        whole == chunked,
        "gelu's backward: the parallel path changed bits"
    );
}
