//! Data-parallel training ([`crate::dist`]) in the loop: launch checks, the scratch folder of
//! ranks other than 0, the parallel step (a rank's share of the batch, one all-reduce of the
//! trained entries' gradients, the same step on every rank), `--sync-every` (local steps, then
//! the trained values averaged), and the checksum that turns drift between ranks into an error.
//!
//! One parallel step, for a global batch of B examples and rank r's share of n_r:
//!
//! ```text
//! backward of loss_r · n_r / B        so the sum over ranks is the global batch's mean loss
//! pack_gradients                      k floats (FISH) or every parameter (dense)
//! sum_f32 over ranks                  one all-reduce, in 16 MiB buckets
//! sum_f64 [loss_r · n_r]              the global loss (NaN on any rank stops every rank)
//! norm, clipping, step_packed         identical on every rank: no parameters travel
//! ```

use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use finesse_bert::readback::floats;
use finesse_glue::{HostBatch, make_batch};
use finesse_sparse::Mask;

use super::fit::{StepReport, Trainer};
use crate::config::RunConfig;
use crate::dist::{Comm, check_same, fnv1a, json_difference, share};
use crate::error::{Result, TrainError};
use crate::method::MethodConfig;
use crate::rundir::RunDir;

/// In gradient all-reduce mode, ranks compare a checksum of the trained entries this often
/// (and at every evaluation and the end).
pub(super) const CHECK_EVERY: usize = 100;

/// What a rank exchanged since the last `step` event.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Exchanged {
    /// All-reduces of gradients or values.
    pub exchanges: usize,
    /// Payload bytes this rank contributed to them.
    pub bytes: u64,
    /// Seconds spent in them.
    pub secs: f64,
}

impl Exchanged {
    /// Sums `buf` over the ranks of `comm`, counting it.
    fn sum(&mut self, comm: &dyn Comm, buf: &mut [f32]) {
        let started = std::time::Instant::now();
        comm.sum_f32(buf);
        self.secs += started.elapsed().as_secs_f64();
        self.exchanges += 1;
        self.bytes += 4 * buf.len() as u64;
    }
}

fn distributed(comm: &dyn Comm, problem: String) -> TrainError {
    TrainError::Distributed {
        rank: comm.rank(),
        size: comm.size(),
        problem,
    }
}

/// Refuses what a job cannot run, and ranks started with different settings.
///
/// # Errors
/// `--sync-every` without a job, a supermask run in a job (its scores take their own Adam step
/// inside the backward), or settings that differ from rank 0's.
pub(super) fn check_launch(comm: &dyn Comm, config: &RunConfig) -> Result<()> {
    if comm.size() == 1 {
        if config.sync_every.is_some() {
            return Err(TrainError::Config {
                field: "sync-every",
                problem: "needs a data-parallel job: launch with `mpirun -np N finesse \
                          finetune …` (a finesse built with the `mpi` feature)"
                    .into(),
            });
        }
        return Ok(());
    }
    if matches!(config.method, MethodConfig::Supermask { .. }) {
        return Err(distributed(
            comm,
            "supermask runs train in one process only: their scores take an optimizer step \
             inside the backward pass, which data parallelism does not exchange yet"
                .into(),
        ));
    }
    if config.sync_every.is_some() && matches!(config.method, MethodConfig::Prune { .. }) {
        return Err(distributed(
            comm,
            "pruning with --sync-every: each rank would prune its own weights between syncs \
             and the averaged model would miss the target sparsity; prune with gradient \
             all-reduce (no --sync-every)"
                .into(),
        ));
    }
    let bytes = serde_json::to_vec(config).map_err(|e| distributed(comm, e.to_string()))?;
    check_same(comm, "the run's settings", &bytes, json_difference)
}

/// The private run folder of a rank other than 0 (removed when dropped).
pub(super) struct Scratch {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    /// `None` on rank 0, which writes the real run directory.
    ///
    /// # Errors
    /// The temporary folder cannot be made.
    pub(super) fn new(comm: &dyn Comm) -> Result<Option<Self>> {
        if comm.rank() == 0 {
            return Ok(None);
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("finesse-rank{}-", comm.rank()))
            .tempdir()
            .map_err(|e| TrainError::io("creating a scratch folder in", std::env::temp_dir(), e))?;
        let root = tmp.path().join("run");
        Ok(Some(Self { _tmp: tmp, root }))
    }

    /// The scratch run directory.
    pub(super) fn dir(&self) -> RunDir {
        RunDir::new(&self.root)
    }

    /// Copies the run directory `from` (as rank 0 recovered it) into the scratch folder, but
    /// for the models it holds and its lock.
    ///
    /// # Errors
    /// A file that cannot be read or written.
    pub(super) fn copy_run(&self, from: &Path) -> Result<()> {
        copy_tree(from, &self.root, &["model", "best", "run.lock"])
    }
}

fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| TrainError::io("creating", to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| TrainError::io("reading", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io("reading", from, e))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst, &[])?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| TrainError::io("copying", &src, e))?;
        }
    }
    Ok(())
}

/// Fails on a rank whose mask is not rank 0's.
///
/// # Errors
/// [`TrainError::Distributed`] naming the rank.
pub(super) fn check_mask(comm: &dyn Comm, mask: Option<&Mask>) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let digest = mask.map_or(0, |m| {
        fnv1a(m.tensors.iter().flat_map(|(name, t)| {
            name.bytes()
                .chain(t.kept.iter().flat_map(|i| i.to_le_bytes()))
                .collect::<Vec<u8>>()
        }))
    });
    check_same(comm, "the mask", &digest.to_le_bytes(), |a, b| {
        format!("digest {a:02x?} on rank 0, {b:02x?} here")
    })
}

impl Trainer<'_> {
    /// One data-parallel step on this rank's share of the global batch `indices`: in gradient
    /// mode the gradients of the trained entries are summed over ranks before the identical
    /// step; with `--sync-every` the step is local.
    ///
    /// # Errors
    /// A non-finite loss (on any rank: every rank stops), or a hook that fails.
    pub(super) fn step_parallel(
        &mut self,
        indices: &[usize],
        emitter: &mut super::Emitter<'_>,
    ) -> Result<StepReport> {
        let (rank, size) = (self.comm.rank(), self.comm.size());
        let mine = &indices[share(indices.len(), rank, size)];
        let local = (!mine.is_empty()).then(|| make_batch(&self.data.train, mine));
        if self.config.sync_every.is_some() {
            return self.step_local(local.as_ref(), indices.len(), emitter);
        }
        let step = self.step;
        let lr = self.schedule.lr(step);
        let (grads, local_loss) = match &local {
            Some(batch) => {
                let weight = batch.batch as f64 / indices.len() as f64;
                let (grads, loss) = self.local_gradients(batch, lr, weight);
                (Some(grads), loss * batch.batch as f64)
            }
            None => (None, 0.0),
        };
        let packed = self.optimizer.pack_gradients(grads.as_ref(), &self.device);
        drop(grads);
        let mut buf = floats(packed, "the packed gradients")?;
        self.exchanged.sum(self.comm, &mut buf);
        let loss = self.global_mean(local_loss, indices.len());
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss,
                lr,
            });
        }
        let grad_norm = buf
            .iter()
            .map(|&g| f64::from(g).powi(2))
            .sum::<f64>()
            .sqrt();
        let scale = match self.config.max_grad_norm {
            Some(max) if grad_norm > max => max / (grad_norm + 1e-6),
            _ => 1.0,
        };
        let n = buf.len();
        let summed = Tensor::<1>::from_data(TensorData::new(buf, [n]), &self.device);
        let model = self.take_model();
        let model = self.optimizer.step_packed(model, summed, lr, scale);
        self.model = Some(self.method.after_step(model, step + 1, emitter)?);
        self.step = step + 1;
        Ok(StepReport {
            loss,
            lr,
            grad_norm,
            phases: None,
        })
    }

    /// Forward and backward of this rank's batch with its loss weighted by `weight`; the
    /// gradients and the unweighted loss.
    fn local_gradients(
        &mut self,
        batch: &HostBatch,
        lr: f64,
        weight: f64,
    ) -> (GradientsParams, f64) {
        let loss = self.forward_loss(batch);
        let value = loss.clone().into_scalar::<f32>() as f64;
        (self.gradients(loss.mul_scalar(weight), lr), value)
    }

    /// `--sync-every`: a local step on this rank's share (none when it has no examples);
    /// the loss logged is the global batch's.
    fn step_local(
        &mut self,
        local: Option<&HostBatch>,
        global: usize,
        emitter: &mut super::Emitter<'_>,
    ) -> Result<StepReport> {
        let lr = self.schedule.lr(self.step);
        let report = match local {
            Some(batch) => self.step(batch, emitter)?,
            None => {
                // No examples here this step: no update, but the method's schedule (pruning)
                // advances as on every other rank.
                let model = self.take_model();
                self.model = Some(self.method.after_step(model, self.step + 1, emitter)?);
                self.step += 1;
                StepReport {
                    loss: 0.0,
                    lr,
                    grad_norm: 0.0,
                    phases: None,
                }
            }
        };
        let n = local.map_or(0, |b| b.batch) as f64;
        Ok(StepReport {
            loss: self.global_mean(report.loss * n, global),
            ..report
        })
    }

    /// Σ over ranks of `sum`, over `count`.
    fn global_mean(&self, sum: f64, count: usize) -> f64 {
        let mut buf = [sum];
        self.comm.sum_f64(&mut buf);
        buf[0] / count as f64
    }

    /// Is `flag` set on any rank?
    pub(super) fn any_rank(&self, flag: bool) -> bool {
        if self.comm.size() == 1 {
            return flag;
        }
        let mut buf = [f64::from(u8::from(flag))];
        self.comm.sum_f64(&mut buf);
        buf[0] > 0.0
    }

    /// `--sync-every`: averages the trained entries over ranks unless they were averaged at
    /// this step already (a no-op in gradient mode and for one process).
    ///
    /// # Errors
    /// The device fails to read the values back.
    pub(super) fn settle(&mut self) -> Result<()> {
        if self.comm.size() == 1 || self.config.sync_every.is_none() || self.synced_at == self.step
        {
            return Ok(());
        }
        let values = self.optimizer.pack_values(self.model(), &self.device);
        let mut buf = floats(values, "the trained values")?;
        self.exchanged.sum(self.comm, &mut buf);
        let inv = 1.0 / self.comm.size() as f32;
        buf.iter_mut().for_each(|v| *v *= inv);
        let n = buf.len();
        let mean = Tensor::<1>::from_data(TensorData::new(buf, [n]), &self.device);
        let model = self.take_model();
        self.model = Some(self.optimizer.unpack_values(model, mean));
        self.synced_at = self.step;
        Ok(())
    }

    /// Compares a checksum of the trained entries with rank 0's: ranks that drifted apart
    /// (a bug, or hardware) stop the job instead of training on silently.
    ///
    /// # Errors
    /// [`TrainError::Distributed`] naming the step and both checksums.
    pub(super) fn check_agreement(&self) -> Result<()> {
        if self.comm.size() == 1 {
            return Ok(());
        }
        let values = self.optimizer.pack_values(self.model(), &self.device);
        let digest = fnv1a(
            floats(values, "the trained values")?
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes()),
        );
        let step = self.step;
        check_same(
            self.comm,
            "the trained parameters",
            &digest.to_le_bytes(),
            |a, b| {
                format!(
                    "after step {step} their checksum is {a:02x?} on rank 0 and {b:02x?} here: the \
                 ranks drifted apart"
                )
            },
        )
    }

    /// What this rank exchanged since the last call, for the `step` event.
    pub(super) fn take_exchanged(&mut self) -> Option<crate::events::CommStats> {
        if self.comm.size() == 1 {
            return None;
        }
        let e = std::mem::take(&mut self.exchanged);
        Some(crate::events::CommStats {
            world_size: self.comm.size(),
            exchanges: e.exchanges,
            bytes: e.bytes,
            secs: e.secs,
        })
    }
}
