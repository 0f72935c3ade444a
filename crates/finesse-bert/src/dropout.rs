//! Dropout as `burn::nn::Dropout` computes it (inverted: kept values scaled by 1 / (1 − p),
//! only in training on an autodiff device), with the mask drawn faster on the CPU backends.
//!
//! Burn draws a dropout mask element by element from one ChaCha generator on the host, on one
//! thread: on `flex` that was about a tenth of a MiniLM training step (BENCHMARKS.md). Here the
//! CPU backends (`flex`, `ndarray`) draw it in parallel chunks of [`CHUNK`] entries, chunk `c`
//! from its own PCG32 stream `c` of a seed that is itself drawn from Burn's generator. So a run
//! stays a function of its seed (the trainer reseeds Burn's generator every step; the mask does
//! not depend on the number of threads). The mask is a bool tensor (one byte per entry) that
//! zeroes the dropped entries (`mask_fill`), then the kept ones are scaled by 1 / (1 − p): the
//! autodiff graph keeps that byte mask for the backward pass, where a multiply by an f32 mask of
//! 0 and 1 / (1 − p) kept four bytes per entry (the attention dropout alone held 25 MB per layer
//! at batch 32 × 128). The values are the multiply's, bit for bit (a dropped entry is +0.0
//! where the multiply gave ±0.0). GPU backends keep Burn's own dropout, whose random numbers are
//! made on the device.

use crate::readback::on_host;
use burn::nn::Dropout;
use burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};
use rand_core::RngCore;
use rand_pcg::Pcg32;
use rayon::prelude::*;

/// Entries per generator stream.
pub const CHUNK: usize = 1 << 15;

/// The entries of the full forward's tensor that a tensor holds, so that dropout drops the same
/// entries in both (the model's last layer runs for the `[CLS]` position only,
/// [`crate::model::BertModel::pooled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    /// All of them: the tensor is the full one.
    All,
    /// Position 0 only of a `seq`-long axis, the second to last: the tensor is the full one
    /// narrowed to `0..1` on that axis, so its row `r` (of the last axis' length) is the full
    /// tensor's row `r · seq`.
    First {
        /// The axis' length in the full tensor.
        seq: usize,
    },
}

/// `dropout.forward(x)`, with the mask drawn in parallel on the CPU backends.
pub fn apply<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    apply_at(dropout, x, Positions::All)
}

/// [`apply`] to a tensor that holds `positions` of the full one: on the CPU backends the mask is
/// the full tensor's at those entries (GPU backends draw their own).
pub fn apply_at<const D: usize>(
    dropout: &Dropout,
    x: Tensor<D>,
    positions: Positions,
) -> Tensor<D> {
    let device = x.device();
    if active_keep(dropout, &device).is_none() {
        return x;
    }
    if !on_host(&device) {
        return dropout.forward(x);
    }
    let keep = 1.0 - dropout.prob;
    let shape = x.shape();
    let dims = x.dims();
    debug_assert!(
        positions == Positions::All || (dims.len() >= 2 && dims[dims.len() - 2] == 1),
        "a tensor of position 0 has one entry on its second to last axis: {dims:?}"
    );
    let row = dims.last().copied().unwrap_or(1);
    let dropped = draw_dropped_at(&device, keep, shape.num_elements(), row, positions);
    let dropped = Tensor::<D, Bool>::from_data(TensorData::new(dropped, shape), &device);
    x.mask_fill(dropped, 0.0).mul_scalar((1.0 / keep) as f32)
}

/// The keep probability 1 − p when `dropout` acts on `device` (training, an autodiff device,
/// p > 0); `None` when it leaves its input as it is.
pub fn active_keep(dropout: &Dropout, device: &Device) -> Option<f64> {
    (dropout.training.is_enabled() && device.is_autodiff() && dropout.prob != 0.0)
        .then_some(1.0 - dropout.prob)
}

/// The dropped entries of an `n`-entry tensor on a CPU `device`, from the seed Burn's generator
/// gives next (what [`apply`] draws).
pub fn draw_dropped(device: &Device, keep: f64, n: usize) -> Vec<bool> {
    dropped_entries(draw_seed(device), keep, n)
}

/// [`draw_dropped`] for an `n`-entry tensor of rows of `row` entries that holds `positions` of
/// the full tensor: the full tensor's mask at those entries.
pub fn draw_dropped_at(
    device: &Device,
    keep: f64,
    n: usize,
    row: usize,
    positions: Positions,
) -> Vec<bool> {
    dropped_entries_at(draw_seed(device), keep, n, row, positions)
}

/// Which of `n` entries are dropped: each with probability 1 − `keep`.
pub fn dropped_entries(seed: u64, keep: f64, n: usize) -> Vec<bool> {
    let threshold = threshold(keep);
    let mut dropped = vec![false; n];
    dropped
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| fill(seed, threshold, c * CHUNK, chunk));
    dropped
}

/// [`dropped_entries`] of the full tensor at the `n` entries (rows of `row`) that `positions`
/// names. Each stream is advanced to the first entry needed, so only those are drawn.
pub fn dropped_entries_at(
    seed: u64,
    keep: f64,
    n: usize,
    row: usize,
    positions: Positions,
) -> Vec<bool> {
    let seq = match positions {
        Positions::All => return dropped_entries(seed, keep, n),
        Positions::First { seq } => seq,
    };
    debug_assert!(
        row > 0 && n.is_multiple_of(row),
        "{n} entries in rows of {row}"
    );
    let threshold = threshold(keep);
    let mut dropped = vec![false; n];
    dropped
        .par_chunks_mut(row.max(1))
        .enumerate()
        .for_each(|(r, out)| fill(seed, threshold, r * seq * row, out));
    dropped
}

/// P(u32 ≥ threshold) = 1 − `keep`, to 2^-32.
fn threshold(keep: f64) -> u64 {
    (keep * 4_294_967_296.0).round() as u64
}

/// The mask's entries `start..start + out.len()`: entry `i` is the `i % CHUNK`-th draw of
/// stream `i / CHUNK`.
fn fill(seed: u64, threshold: u64, start: usize, out: &mut [bool]) {
    let mut done = 0;
    while done < out.len() {
        let i = start + done;
        let (stream, offset) = (i / CHUNK, i % CHUNK);
        let take = (CHUNK - offset).min(out.len() - done);
        let mut rng = Pcg32::new(seed, stream as u64);
        rng.advance(offset as u64);
        for d in &mut out[done..done + take] {
            *d = u64::from(rng.next_u32()) >= threshold;
        }
        done += take;
    }
}

/// 64 bits from Burn's generator on `device` (reseeded by the trainer every step).
fn draw_seed(device: &Device) -> u64 {
    let words = Tensor::<1>::random([4], Distribution::Uniform(0.0, 65536.0), device)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    words
        .iter()
        .fold(0u64, |seed, &w| (seed << 16) | (w as u64 & 0xffff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::values;
    use burn::nn::DropoutConfig;

    /// The former formulation's mask: one multiplier per entry, 1 / `keep` where kept, else 0.
    fn mask_values(seed: u64, keep: f64, n: usize) -> Vec<f32> {
        let scale = (1.0 / keep) as f32;
        dropped_entries(seed, keep, n)
            .into_iter()
            .map(|d| if d { 0.0 } else { scale })
            .collect()
    }

    #[test]
    fn the_byte_mask_gives_the_multiply_values_and_gradients_bit_for_bit() {
        let device = Device::flex().autodiff();
        let dropout = DropoutConfig::new(0.1).init();
        let shape = [3, 5, 70, 90];
        let n: usize = shape.iter().product();
        device.seed(11);
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
        let w = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        device.seed(5);
        let y = apply(&dropout, x.clone());
        let grad_new = values(
            x.grad(&(y.clone() * w.clone()).sum().backward())
                .expect("grad"),
        );
        device.seed(5);
        let mask = mask_values(draw_seed(&device), 0.9, n);
        let multiplier = Tensor::<4>::from_data(TensorData::new(mask, shape), &device);
        let y_old = x.clone() * multiplier;
        let grad_old = values(x.grad(&(y_old.clone() * w).sum().backward()).expect("grad"));
        let (y, y_old) = (values(y), values(y_old));
        // `==` on f32: a dropped entry is +0.0 here and ±0.0 in the multiply, equal as numbers.
        assert!(
            y.iter().zip(&y_old).all(|(a, b)| a == b),
            "forward values differ"
        );
        assert!(
            grad_new.iter().zip(&grad_old).all(|(a, b)| a == b),
            "gradients differ"
        );
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.1).abs() < 0.01, "{dropped}");
    }

    #[test]
    fn masks_keep_the_asked_share_scaled_and_follow_the_seed_only() {
        let m = mask_values(7, 0.9, 200_000);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.9).abs() < 0.005, "{kept}");
        assert!(m.iter().all(|&v| v == 0.0 || v == (1.0 / 0.9) as f32));
        assert_eq!(m, mask_values(7, 0.9, 200_000));
        assert_ne!(m, mask_values(8, 0.9, 200_000));
        // A longer mask starts with the shorter one: chunks are independent streams.
        assert_eq!(&mask_values(7, 0.9, 300_000)[..200_000], &m[..]);
        // Thread count does not matter.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        assert_eq!(pool.install(|| mask_values(7, 0.9, 200_000)), m);
    }

    #[test]
    fn a_first_position_mask_is_the_full_mask_at_those_entries() {
        // Rows long and short against CHUNK, so rows start mid-stream and cross streams.
        for (outer, seq, row) in [(3, 5, 7), (4, 129, 384), (2, 3, CHUNK + 11), (6, 1, 13)] {
            let full = dropped_entries(19, 0.9, outer * seq * row);
            let first = dropped_entries_at(19, 0.9, outer * row, row, Positions::First { seq });
            let want: Vec<bool> = (0..outer)
                .flat_map(|r| full[r * seq * row..][..row].iter().copied())
                .collect();
            assert_eq!(first, want, "outer {outer}, seq {seq}, row {row}");
        }
        assert_eq!(
            dropped_entries_at(19, 0.9, 1000, 10, Positions::All),
            dropped_entries(19, 0.9, 1000)
        );
    }

    #[test]
    fn flex_training_drops_with_the_burn_generator_seed_and_eval_does_not() {
        let device = Device::flex().autodiff();
        assert!(on_host(&device));
        let dropout = DropoutConfig::new(0.25).init();
        let ones = || Tensor::<2>::ones([64, 512], &device);
        device.seed(3);
        let a = apply(&dropout, ones())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        device.seed(3);
        let b = apply(&dropout, ones())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_eq!(a, b, "the same Burn seed gives the same mask");
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        device.seed(4);
        let c = apply(&dropout, ones())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_ne!(a, c);
        // Evaluation mode, and a device without autodiff, leave the input as it is.
        let eval = Dropout {
            prob: 0.25,
            training: burn::module::Param::from_bool(false),
        };
        let same = apply(&eval, ones())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(same.iter().all(|&v| v == 1.0));
        let plain = Tensor::<2>::ones([4, 4], &Device::flex());
        let out = apply(&dropout, plain)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(out.iter().all(|&v| v == 1.0));
    }
}
