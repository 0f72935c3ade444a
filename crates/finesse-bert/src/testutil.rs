//! Helpers of this crate's unit tests.

use std::sync::{Mutex, MutexGuard};

use burn::tensor::Tensor;

/// Burn's random generator is one per process and the tests run on parallel threads: a test
/// that seeds it and then relies on what it draws holds this lock, so no other test draws in
/// between.
pub fn seeded() -> MutexGuard<'static, ()> {
    static RNG: Mutex<()> = Mutex::new(());
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The values of a float tensor as f32.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

/// The largest absolute difference between equal-length slices.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}
