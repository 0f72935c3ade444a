//! The trained entries of a [`SparseOptimizer`] as one flat buffer, for data-parallel training:
//! what ranks exchange is the gradient (or the value) of exactly the entries the optimizer
//! updates, packed in a fixed order.
//!
//! The order is the registry's order of the trained parameters; within a masked parameter its
//! kept entries in ascending Burn-layout index (the optimizer's own `select` order), within an
//! `All` parameter every entry in Burn's layout. Every rank builds the same optimizer from the
//! same registry and mask, so the same entry sits at the same offset on every rank. A FISH 0.5%
//! mask packs k floats; dense training packs every parameter.
//!
//! ```text
//! pack_gradients   backward's gradients → [k]      (before the all-reduce)
//! step_packed      [k] summed gradients → the optimizer step of every trained entry
//! pack_values      the model → [k] trained values  (`--sync-every`, checksums)
//! unpack_values    [k] values → the model; every other entry keeps its bits
//! ```

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use crate::optim::{Grads, SparseOptimizer};

impl SparseOptimizer {
    /// Entries in a packed buffer: the sum of every trained parameter's trained entries.
    pub fn packed_len(&self) -> usize {
        self.order.iter().map(|id| self.slots[id].trained).sum()
    }

    /// The gradients of the trained entries, concatenated in the fixed order. A parameter
    /// without a gradient in `grads` (or no `grads` at all: a rank with no examples in this
    /// batch) contributes zeros.
    pub fn pack_gradients(&self, grads: Option<&GradientsParams>, device: &Device) -> Tensor<1> {
        let parts: Vec<Tensor<1>> = self
            .order
            .iter()
            .map(|id| {
                let slot = &self.slots[id];
                let g = grads.and_then(|g| match slot.dims {
                    1 => g.get::<1>(*id),
                    2 => g.get::<2>(*id).map(|g| g.reshape([slot.numel])),
                    _ => None,
                });
                match (g, &slot.kept) {
                    (Some(g), Some(kept)) => g.select(0, kept.flat.clone()),
                    (Some(g), None) => g,
                    (None, _) => Tensor::zeros([slot.trained], device),
                }
            })
            .collect();
        cat_or_empty(parts, device)
    }

    /// One optimizer step from packed gradients of the trained entries (as
    /// [`SparseOptimizer::pack_gradients`] lays them out), scaled by `grad_scale`.
    ///
    /// # Panics
    /// If `packed` is not [`SparseOptimizer::packed_len`] long (a caller bug).
    pub fn step_packed<M: Module>(
        &mut self,
        model: M,
        packed: Tensor<1>,
        lr: f64,
        grad_scale: f64,
    ) -> M {
        let grads = Grads::Trained(self.split(packed));
        self.apply(model, grads, lr, grad_scale)
    }

    /// The values of the trained entries of `model`, concatenated in the fixed order.
    pub fn pack_values<M: Module>(&self, model: &M, device: &Device) -> Tensor<1> {
        let mut visitor = Gather {
            opt: self,
            values: HashMap::new(),
        };
        model.visit(&mut visitor);
        let mut values = visitor.values;
        let parts = self
            .order
            .iter()
            .map(|id| {
                values
                    .remove(id)
                    .unwrap_or_else(|| Tensor::zeros([self.slots[id].trained], device))
            })
            .collect();
        cat_or_empty(parts, device)
    }

    /// `model` with its trained entries set to `packed` (laid out as
    /// [`SparseOptimizer::pack_values`] does); every other entry keeps its bits. Every rank
    /// that unpacks the same buffer ends with the same bits, whatever its values were.
    ///
    /// # Panics
    /// If `packed` is not [`SparseOptimizer::packed_len`] long (a caller bug).
    pub fn unpack_values<M: Module>(&self, model: M, packed: Tensor<1>) -> M {
        let values = self.split(packed);
        let mut mapper = Scatter { opt: self, values };
        model.map(&mut mapper)
    }

    /// `packed` cut into each trained parameter's part.
    fn split(&self, packed: Tensor<1>) -> HashMap<ParamId, Tensor<1>> {
        let total = self.packed_len();
        assert_eq!(
            packed.dims()[0],
            total,
            "a packed buffer holds every trained entry"
        );
        let mut offset = 0;
        self.order
            .iter()
            .map(|id| {
                let n = self.slots[id].trained;
                let part = packed.clone().narrow(0, offset, n);
                offset += n;
                (*id, part)
            })
            .collect()
    }
}

fn cat_or_empty(parts: Vec<Tensor<1>>, device: &Device) -> Tensor<1> {
    if parts.is_empty() {
        Tensor::zeros([0], device)
    } else {
        Tensor::cat(parts, 0)
    }
}

struct Gather<'a> {
    opt: &'a SparseOptimizer,
    values: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(slot) = self.opt.slots.get(&param.id) else {
            return;
        };
        let flat = param.val().inner().reshape([slot.numel]);
        let trained = match &slot.kept {
            Some(kept) => flat.select(0, kept.flat.clone()),
            None => flat,
        };
        self.values.insert(param.id, trained);
    }
}

struct Scatter<'a> {
    opt: &'a SparseOptimizer,
    values: HashMap<ParamId, Tensor<1>>,
}

impl ModuleMapper for Scatter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (Some(slot), Some(new)) =
            (self.opt.slots.get(&param.id), self.values.remove(&param.id))
        else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let value = tensor.inner().reshape([slot.numel]);
        let updated = match &slot.kept {
            None => new,
            Some(kept) => {
                // x + (−x) is exactly +0 and 0 + v is exactly v: the kept entries become `new`
                // bit for bit, whatever they held.
                let old = value.clone().select(0, kept.flat.clone());
                let zeroed = kept.add(value, old.neg());
                kept.add(zeroed, new)
            }
        };
        let mut updated = Tensor::from_inner(updated.reshape(shape));
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
