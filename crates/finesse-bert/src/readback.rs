//! Reading tensors back from the device: the one place that turns Burn's
//! [`TensorReadError`] into an error naming what was read.
//!
//! Burn's own `into_data()` panics when the backend fails; these return the error, with the
//! tensor's name, so a device failure reaches the user as a message rather than a panic.

use burn::tensor::{Device, Int, Tensor, TensorReadError};

/// Whether `device` computes on the host (flex, ndarray): there a host-made tensor costs no
/// transfer and a serial loop is no slower than a kernel; elsewhere (wgpu, cuda) work should
/// be one parallel kernel.
pub fn on_host(device: &Device) -> bool {
    let name = format!("{device:?}");
    name.contains("Flex") || name.contains("NdArray")
}

/// A tensor could not be read back from the device.
#[derive(Debug, thiserror::Error)]
#[error("reading {what} back from the device: {source}")]
pub struct ReadbackError {
    /// What was read (an HF parameter name, `logits`, …).
    pub what: String,
    /// Burn's error.
    #[source]
    pub source: TensorReadError,
}

/// The values of a float tensor as f32, row-major.
///
/// # Errors
///
/// [`ReadbackError`] naming `what` when the backend fails to read the tensor or its data
/// cannot be converted to f32.
pub fn floats<const D: usize>(
    tensor: Tensor<D>,
    what: impl Into<String>,
) -> Result<Vec<f32>, ReadbackError> {
    tensor
        .try_into_vec_as::<f32>()
        .map_err(|source| ReadbackError {
            what: what.into(),
            source,
        })
}

/// The values of an int tensor as i64, row-major.
///
/// # Errors
///
/// [`ReadbackError`] naming `what` when the backend fails to read the tensor or its data
/// cannot be converted to i64.
pub fn ints<const D: usize>(
    tensor: Tensor<D, Int>,
    what: impl Into<String>,
) -> Result<Vec<i64>, ReadbackError> {
    tensor
        .try_into_vec_as::<i64>()
        .map_err(|source| ReadbackError {
            what: what.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn floats_and_ints_read_back_row_major() {
        let device = Device::flex();
        let t = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
            &device,
        );
        assert_eq!(
            floats(t.transpose(), "t").expect("floats"),
            vec![1.0, 3.0, 2.0, 4.0]
        );
        let i = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, -1], [2]), &device);
        assert_eq!(ints(i, "i").expect("ints"), vec![3, -1]);
    }
}
