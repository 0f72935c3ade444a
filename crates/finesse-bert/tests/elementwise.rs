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
        // A fresh (unique) tensor is filled in place: dropout's backward path.
        (
            "mask_fill in place",
            Box::new(|t| {
                let t = t + 0.5;
                let negative = t.clone().lower_elem(0.0);
                t.mask_fill(negative, -3.0)
            }),
        ),
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

/// The vendored flex runs GELU and its backward on f32 as vectorised loops over contiguous
/// slices (in place when the buffer is not shared, into a new one when it is), and element by
/// element on any other layout. Every path must give the same bits, forward and backward.
#[test]
fn gelu_keeps_its_bits_in_place_shared_and_strided() {
    let device = Device::flex().autodiff();
    let (rows, cols) = (301, 1_003); // above the parallel threshold, odd sizes
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as f32) * 0.618_034).sin() * 8.0)
        .collect();
    let x = Tensor::<1>::from_floats(data.as_slice(), &device).reshape([rows, cols]);
    let flat = |t: Tensor<2>| bits(t.reshape([rows * cols]).inner());
    // Shared: `x` stays alive, so the output goes to a new buffer.
    let shared = flat(gelu(x.clone()));
    // Unique: a fresh product, written in place.
    let unique = flat(gelu(x.clone() * 1.0));
    // Strided: the transposed view has no contiguous slice.
    let strided = flat(gelu(x.clone().transpose()).transpose());
    assert!(shared == unique, "gelu in place changed bits");
    assert!(shared == strided, "gelu on a strided view changed bits");

    // The backward: into the gradient's buffer (the leaf `x` stays alive, so GELU's saved input
    // is shared; the incoming gradient is a fresh product), into the input's buffer (GELU of a
    // product that only autodiff holds), into a new buffer (the gradient a view at an offset:
    // the backward of a concatenation slices it), and element by element (strided views).
    #[derive(Clone, Copy, Debug)]
    enum Form {
        IntoGrad,
        IntoInput,
        IntoNew,
        Strided,
    }
    let weights = Tensor::<1>::from_floats(data.as_slice(), &device)
        .reshape([rows, cols])
        .detach();
    let grad_of = |form: Form| {
        let x = x.clone().detach().require_grad();
        let loss = match form {
            Form::IntoGrad => (gelu(x.clone()) * weights.clone()).sum(),
            Form::IntoInput => (gelu(x.clone() * 1.0) * weights.clone()).sum(),
            Form::IntoNew => {
                let head = Tensor::<2>::ones([1, cols], &device);
                let out = Tensor::cat(vec![head.clone(), gelu(x.clone())], 0);
                (out * Tensor::cat(vec![head, weights.clone()], 0)).sum()
            }
            Form::Strided => (gelu(x.clone().transpose()).transpose() * weights.clone()).sum(),
        };
        let grads = loss.backward();
        bits(x.grad(&grads).expect("gradient").reshape([rows * cols]))
    };
    let strided = grad_of(Form::Strided);
    for form in [Form::IntoGrad, Form::IntoInput, Form::IntoNew] {
        assert!(
            grad_of(form) == strided,
            "gelu's backward ({form:?}) changed bits against the strided path"
        );
    }
}

/// The exact GELU and its derivative in f64 (libm's `erf`, fdlibm: < 1 ulp in f64).
fn gelu_f64(x: f64) -> (f64, f64) {
    let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (x * cdf, cdf + x * pdf)
}

/// The vendored flex evaluates GELU's erf with a branch-free rational approximation (so it
/// vectorises; vendor/README.md). It must stay as exact as the f32 formula allows: forward and
/// backward within a few f32 roundings of the exact f64 values, scaled by max(1, |x|) (the
/// formula's own `1 + erf` rounds to 6e-8 absolute, which `0.5 x` scales).
#[test]
fn gelu_matches_the_exact_formula() {
    let device = Device::flex().autodiff();
    // Every 1e-4 over [-12, 12]: both tails, erf's saturation near |x / √2| = 3.92, and 0.
    let xs: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
    let x = Tensor::<1>::from_floats(xs.as_slice(), &device).require_grad();
    let y = gelu(x.clone());
    let grads = y.clone().sum().backward();
    let dy = x.grad(&grads).expect("gradient");
    let to_vec = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().expect("f32 data");
    let (y, dy) = (to_vec(y.inner()), to_vec(dy));
    let (mut worst_y, mut worst_dy) = ((0.0f64, 0.0f32), (0.0f64, 0.0f32));
    for ((&x, &y), &dy) in xs.iter().zip(&y).zip(&dy) {
        let (ey, edy) = gelu_f64(f64::from(x));
        let scale = f64::from(x.abs()).max(1.0);
        let err_y = (f64::from(y) - ey).abs() / scale;
        let err_dy = (f64::from(dy) - edy).abs() / scale;
        if err_y > worst_y.0 {
            worst_y = (err_y, x);
        }
        if err_dy > worst_dy.0 {
            worst_dy = (err_dy, x);
        }
    }
    eprintln!("gelu: worst scaled error {worst_y:?}, backward {worst_dy:?}");
    assert!(
        worst_y.0 <= 2.5e-7,
        "gelu off the exact formula: {worst_y:?}"
    );
    assert!(
        worst_dy.0 <= 2.5e-7,
        "gelu's backward off the exact formula: {worst_dy:?}"
    );
}

/// The vendored flex answers `exp` below -104 with +0 without calling `expf` (whose underflow
/// path cost 3.7% of a padded step through autodiff's softmax): every result must keep the bits
/// of `f32::exp`, around the threshold, far below it, and at the special values.
#[test]
fn exp_keeps_the_bits_of_f32_exp_through_underflow() {
    let device = Device::flex();
    let mut xs: Vec<f32> = vec![
        -1e9,
        f32::MIN,
        f32::NEG_INFINITY,
        f32::NAN,
        -104.0,
        -103.0,
        -87.5,
        0.0,
        1.0,
        88.7,
        89.0,
    ];
    // Every f32 between -105 and -102 (step 2^-16), where exp goes from 0 to subnormals.
    let mut x = -105.0f32;
    while x < -102.0 {
        xs.push(x);
        x += 1.0 / 65_536.0;
    }
    let n = xs.len();
    let got = bits(Tensor::<1>::from_floats(xs.as_slice(), &device).exp());
    for (i, (&x, &g)) in xs.iter().zip(&got).enumerate() {
        let want = x.exp().to_bits();
        assert!(
            g == want || (x.is_nan() && f32::from_bits(g).is_nan()),
            "exp({x}) = {:e} vs f32::exp {:e} (#{i} of {n})",
            f32::from_bits(g),
            x.exp()
        );
    }
}
