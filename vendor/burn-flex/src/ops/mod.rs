//! Backend operations implementations.

use alloc::borrow::Cow;
use burn_backend::DType;
use burn_std::{bf16, f16};

use crate::FlexTensor;

/// The `DType` that matches `isize` on the current platform.
#[cfg(target_pointer_width = "64")]
pub(crate) const INDEX_DTYPE: DType = DType::I64;
/// The `DType` that matches `isize` on the current platform.
#[cfg(target_pointer_width = "32")]
pub(crate) const INDEX_DTYPE: DType = DType::I32;

/// Minimum total element count for rayon fan-out on per-row or per-chunk loops.
/// Below this, task-dispatch overhead dominates the per-unit work.
#[cfg(feature = "rayon")]
pub(crate) const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// Wrapper for raw mutable pointers that can be sent across rayon threads.
///
/// # Safety
///
/// The caller must ensure:
/// - The pointer remains valid for the lifetime of all uses
/// - No two threads write to the same offset
/// - No references to the underlying data exist during writes
#[cfg(feature = "rayon")]
pub(crate) struct SendMutPtr<T>(*mut T);

#[cfg(feature = "rayon")]
unsafe impl<T> Send for SendMutPtr<T> {}
#[cfg(feature = "rayon")]
unsafe impl<T> Sync for SendMutPtr<T> {}

#[cfg(feature = "rayon")]
impl<T> SendMutPtr<T> {
    pub(crate) fn new(ptr: *mut T) -> Self {
        Self(ptr)
    }

    /// Write `val` at the given element offset.
    ///
    /// # Safety
    /// Offset must be in bounds and no other thread may write to the same offset.
    pub(crate) unsafe fn write(&self, offset: usize, val: T) {
        unsafe { self.0.add(offset).write(val) }
    }

    /// Returns the raw pointer offset by `offset` elements.
    ///
    /// # Safety
    /// Offset must be in bounds.
    pub(crate) unsafe fn ptr_add(&self, offset: usize) -> *mut T {
        unsafe { self.0.add(offset) }
    }
}

/// Read a float tensor's storage as f32 values, regardless of source dtype.
/// Returns a borrowed slice for F32 (zero-copy) and an owned Vec for other
/// float dtypes (F64, F16, BF16).
///
/// Returns elements in underlying buffer order. Callers needing logical
/// iteration order must call `to_contiguous()` first.
///
/// # Panics
/// Panics if the tensor's dtype is not one of F32, F64, F16, or BF16.
pub(crate) fn float_storage_as_f32(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.dtype() {
        DType::F32 => Cow::Borrowed(tensor.storage::<f32>()),
        DType::F64 => Cow::Owned(tensor.storage::<f64>().iter().map(|&x| x as f32).collect()),
        DType::F16 => Cow::Owned(
            tensor
                .storage::<f16>()
                .iter()
                .map(|x| f32::from(*x))
                .collect(),
        ),
        DType::BF16 => Cow::Owned(
            tensor
                .storage::<bf16>()
                .iter()
                .map(|x| f32::from(*x))
                .collect(),
        ),
        other => panic!("float_storage_as_f32: unsupported dtype {:?}", other),
    }
}

pub mod activation;
pub mod attention;
pub mod binary;
mod bool;
pub mod cat;
pub mod comparison;
#[macro_use]
mod conv_common;
pub mod conv;
pub mod conv_transpose;
pub mod cumulative;
pub mod deform_conv;
pub mod expand;
#[cfg(feature = "fft")]
pub mod fft;
pub mod flip;
mod float;
pub mod gather_scatter;
mod gelu;
pub mod grid_sample;
mod int;
pub mod interpolate;
pub mod mask;
pub mod matmul;
mod module;
pub mod pool;
mod qtensor;
pub mod reduce;
pub mod repeat_dim;
pub mod slice;
pub mod sort;
mod transaction;
pub mod unary;
pub mod unfold;

/// finesse patch: element-wise maps over contiguous slices, split over rayon's threads above
/// [`PARALLEL_THRESHOLD`] elements (upstream runs these loops on one thread). Each element is
/// computed by the same function as before, so results are bit-identical.
pub(crate) mod par {
    #[cfg(feature = "rayon")]
    use rayon::prelude::*;

    /// Elements per rayon task.
    #[cfg(feature = "rayon")]
    const CHUNK: usize = 64 * 1024;

    /// `a[i] = op(a[i])`.
    #[inline]
    pub(crate) fn map_inplace<E: Copy + Send + Sync>(a: &mut [E], op: impl Fn(E) -> E + Sync) {
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            a.par_chunks_mut(CHUNK)
                .for_each(|c| c.iter_mut().for_each(|x| *x = op(*x)));
            return;
        }
        a.iter_mut().for_each(|x| *x = op(*x));
    }

    /// `a[i] = op(a[i], b[i])`.
    #[inline]
    pub(crate) fn zip_inplace<E: Copy + Send + Sync>(
        a: &mut [E],
        b: &[E],
        op: impl Fn(E, E) -> E + Sync,
    ) {
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            a.par_chunks_mut(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .for_each(|(c, d)| c.iter_mut().zip(d).for_each(|(x, &y)| *x = op(*x, y)));
            return;
        }
        a.iter_mut().zip(b).for_each(|(x, &y)| *x = op(*x, y));
    }

    /// `a[i] = value` where `mask[i] != 0` (a select, so the loop vectorises).
    #[inline]
    pub(crate) fn mask_fill_inplace<E: Copy + Send + Sync>(a: &mut [E], mask: &[u8], value: E) {
        let fill = |c: &mut [E], m: &[u8]| {
            c.iter_mut()
                .zip(m)
                .for_each(|(x, &m)| *x = if m != 0 { value } else { *x })
        };
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            a.par_chunks_mut(CHUNK)
                .zip(mask.par_chunks(CHUNK))
                .for_each(|(c, m)| fill(c, m));
            return;
        }
        fill(a, mask);
    }

    /// `kernel(chunk)` over chunks of `a` (a kernel is a loop over a slice, which the compiler
    /// can vectorise; the maps above call a closure per element).
    #[inline]
    pub(crate) fn chunks_inplace<E: Send>(a: &mut [E], kernel: impl Fn(&mut [E]) + Sync) {
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            a.par_chunks_mut(CHUNK).for_each(|c| kernel(c));
            return;
        }
        kernel(a)
    }

    /// `kernel(chunk of a, chunk of out)`; `out` is as long as `a`.
    #[inline]
    pub(crate) fn chunks_into<E: Copy + Send + Sync + Default>(
        a: &[E],
        kernel: impl Fn(&[E], &mut [E]) + Sync,
    ) -> alloc::vec::Vec<E> {
        let mut out = alloc::vec![E::default(); a.len()];
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK))
                .for_each(|(o, s)| kernel(s, o));
            return out;
        }
        kernel(a, &mut out);
        out
    }

    /// `kernel(chunk of a, chunk of b)`, writing into `a`; `b` is as long as `a`.
    #[inline]
    pub(crate) fn chunks_zip_inplace<E: Send + Sync>(
        a: &mut [E],
        b: &[E],
        kernel: impl Fn(&mut [E], &[E]) + Sync,
    ) {
        debug_assert_eq!(a.len(), b.len());
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            a.par_chunks_mut(CHUNK)
                .zip(b.par_chunks(CHUNK))
                .for_each(|(c, d)| kernel(c, d));
            return;
        }
        kernel(a, b)
    }

    /// `kernel(chunk of a, chunk of b, chunk of out)`; all three are as long.
    #[inline]
    pub(crate) fn chunks_zip_into<E: Send + Sync>(
        a: &[E],
        b: &[E],
        out: &mut [E],
        kernel: impl Fn(&[E], &[E], &mut [E]) + Sync,
    ) {
        debug_assert!(a.len() == b.len() && a.len() == out.len());
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                .for_each(|(o, (s, t))| kernel(s, t, o));
            return;
        }
        kernel(a, b, out)
    }

    /// `op` of every element of `a`, into a new vector.
    #[inline]
    pub(crate) fn map<E: Copy + Send + Sync, R: Copy + Send + Sync + Default>(
        a: &[E],
        op: impl Fn(E) -> R + Sync,
    ) -> alloc::vec::Vec<R> {
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            let mut out = alloc::vec![R::default(); a.len()];
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK))
                .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &x)| *o = op(x)));
            return out;
        }
        a.iter().map(|&x| op(x)).collect()
    }

    /// `op(a[i], b[i])`, into a new vector.
    #[inline]
    pub(crate) fn zip<E: Copy + Send + Sync + Default>(
        a: &[E],
        b: &[E],
        op: impl Fn(E, E) -> E + Sync,
    ) -> alloc::vec::Vec<E> {
        #[cfg(feature = "rayon")]
        if a.len() >= super::PARALLEL_THRESHOLD {
            let mut out = alloc::vec![E::default(); a.len()];
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                .for_each(|(o, (s, t))| {
                    o.iter_mut()
                        .zip(s.iter().zip(t))
                        .for_each(|(o, (&x, &y))| *o = op(x, y))
                });
            return out;
        }
        a.iter().zip(b).map(|(&x, &y)| op(x, y)).collect()
    }
}
