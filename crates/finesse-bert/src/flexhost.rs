//! Host buffers of the `flex` backend for the fused operations ([`crate::attention`],
//! [`crate::norm`], finesse-sparse's AdamW): f32 views of its tensors, tensors made from
//! vectors, and tensors taken out of and put back into Burn's `Tensor`.

use std::borrow::Cow;
use std::sync::OnceLock;

use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::{DType, Shape, Tensor, TensorData};

/// The f32 values of a flex tensor, row-major (borrowed when contiguous).
///
/// # Panics
/// When the tensor does not hold f32 (the callers check the dtype first).
pub fn floats(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

/// A flex tensor of `values` with `shape`.
pub fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    debug_assert_eq!(values.len(), shape.num_elements());
    let t = FlexTensor::from_data(TensorData::new(values, shape));
    debug_assert_eq!(t.dtype(), DType::F32);
    t
}

/// `f` applied to `grad`'s values in place when its buffer is contiguous and not shared,
/// else to a copy ([`owned`]); returns the tensor holding the result.
pub fn map_in_place(grad: FlexTensor, f: impl FnOnce(&mut [f32])) -> FlexTensor {
    let n = grad.shape().num_elements();
    let mut grad = owned(grad);
    f(&mut grad.storage_mut::<f32>()[..n]);
    grad
}

/// The flex tensor of a plain (non-autodiff) f32 tensor on `flex`; `None` on any other device,
/// under autodiff, or for another dtype.
pub fn plain<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    t.clone().try_into_primitive::<Flex>().ok()
}

/// `t` as a Burn tensor on `flex`.
pub fn wrap<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

/// `t` with its values contiguous from offset 0 and its buffer not shared (copied when it
/// was), so [`FlexTensor::storage_mut`]'s first `n` values are its values.
pub fn owned(t: FlexTensor) -> FlexTensor {
    let n = t.shape().num_elements();
    let mut t = if t.layout().contiguous_offsets() == Some((0, n)) {
        t
    } else {
        t.to_contiguous()
    };
    let _ = t.storage_mut::<f32>();
    t
}

/// Whether the fused operation `name` (`attention`, `layernorm`, `adamw`, `fisher`) may run:
/// `FINESSE_NO_FUSED` turns them off, all (`1` or `all`) or by a comma-separated list of
/// names, to measure them against Burn's operations (BENCHMARKS.md).
pub fn fused(name: &str) -> bool {
    static OFF: OnceLock<Vec<String>> = OnceLock::new();
    let off = OFF.get_or_init(|| {
        std::env::var("FINESSE_NO_FUSED")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default()
    });
    !off.iter().any(|o| o == name || o == "1" || o == "all")
}
