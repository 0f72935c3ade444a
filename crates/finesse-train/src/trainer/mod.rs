//! The fine-tuning loop, in rooms of one concern each:
//!
//! ```text
//! mod.rs     run / run_method: lock, event log, panics → errors; setup → fit → finish
//! setup.rs   model folder, tokenizer, data; run.json written (new run) or checked (resume)
//! fit.rs     Trainer { model, optimizer, schedule, step, best, … }: step() and the loop
//!            (logging, evaluation, checkpoints, cancellation), methods' hooks called here
//! eval.rs    loss, metrics of a split, DevSplits::evaluate (best values), `finesse eval`
//! finish.rs  final evaluation, model/, the method's artefacts, analysis.json, metrics.json
//! meter.rs   Meter: windowed and whole-run throughput
//! emitter.rs Emitter: events to the front-end and events.jsonl
//! ```
//!
//! Dropout is reseeded from `(seed, step)` each step and the data order comes from
//! `(seed, epoch)`, so a resumed run is bit-identical to an uninterrupted one. Burn's random
//! generator is per process: determinism holds for one run per process at a time.

mod emitter;
mod eval;
mod finish;
mod fit;
mod meter;
mod parallel;
mod setup;
mod slices;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::Device;

pub use emitter::Emitter;
pub use eval::{
    DevSplits, EvalRequest, EvalSet, SplitEval, SplitMetrics, evaluate, evaluate_folder, loss_of,
};
pub use fit::{StepPhases, StepPlan, StepReport, Trainer};
pub use meter::{Meter, WindowStats};
pub(crate) use setup::load as load_data;

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::events::{Event, EventLog};
use crate::method::{Method, hooks_for};
use crate::rundir::{MetricsFile, RunDir};

/// How a run ended without error.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// All steps done; the final metrics.
    Finished(Box<MetricsFile>),
    /// Cancelled after `step`; a resumable checkpoint was written.
    Cancelled {
        /// Last completed step.
        step: usize,
    },
}

/// Runs (or, with `resume`, continues) the run of `config` on `device`, sending every event to
/// `sink` and to `events.jsonl`. `cancel` is polled after every step.
///
/// # Errors
/// Anything that stops the run; it is also reported as an `error` event.
pub fn run(
    config: RunConfig,
    device: Device,
    resume: bool,
    sink: &mut dyn FnMut(&Event),
    cancel: &AtomicBool,
) -> Result<RunOutcome> {
    let method = hooks_for(&config.method);
    run_method(config, method, device, resume, sink, cancel)
}

/// [`run`] with the hooks of `method` instead of those the method table gives
/// `config.method` (`config.method` is still what `run.json` records).
///
/// # Errors
/// Anything that stops the run; it is also reported as an `error` event.
pub fn run_method(
    config: RunConfig,
    method: Box<dyn Method>,
    device: Device,
    resume: bool,
    sink: &mut dyn FnMut(&Event),
    cancel: &AtomicBool,
) -> Result<RunOutcome> {
    let comm = crate::dist::world();
    parallel::check_launch(comm, &config)?;
    // Rank 0 alone writes the run directory; the other ranks write into a scratch folder,
    // which on resume starts as a copy of the run directory once rank 0 has recovered it.
    let scratch = parallel::Scratch::new(comm)?;
    let dir = scratch
        .as_ref()
        .map_or_else(|| RunDir::new(&config.output_dir), parallel::Scratch::dir);
    if let Some(scratch) = &scratch {
        comm.barrier();
        if resume {
            scratch.copy_run(&config.output_dir)?;
        }
    }
    // The lock is held until this function returns (a crash releases it with the process).
    let _lock = if resume {
        let lock = dir.lock()?;
        dir.clean_leftovers()?;
        if dir.recover_checkpoint()?.is_none() {
            return Err(TrainError::Resume {
                path: dir.root.clone(),
                problem: "no complete checkpoint/ in it (runs checkpoint when cancelled, on \
                          SIGTERM and every --checkpoint-every steps)"
                    .into(),
            });
        }
        lock
    } else {
        dir.create()?;
        dir.lock()?
    };
    if scratch.is_none() && comm.size() > 1 {
        comm.barrier();
    }
    let mut emitter = Emitter::new(sink, EventLog::open(&dir.events())?);
    // A panic (a bug) becomes an error event and an error, not a silent dead thread.
    let result = guarded(|| train(&config, method, &device, resume, &dir, &mut emitter, cancel));
    if let Err(e) = &result {
        emitter.fail(e, resume);
    }
    result
}

/// Setup, training, and the end of a run.
fn train(
    config: &RunConfig,
    method: Box<dyn Method>,
    device: &Device,
    resume: bool,
    dir: &RunDir,
    emitter: &mut Emitter<'_>,
    cancel: &AtomicBool,
) -> Result<RunOutcome> {
    config.validate()?;
    let started = Instant::now();
    let data = setup::load(config)?;
    let mut trainer = Trainer::new(config, dir, &data, device, method, resume, emitter)?;
    emitter.reached(trainer.step_reached());
    emitter.emit(trainer.start_event())?;
    if let Some(step) = trainer.fit(cancel, emitter)? {
        return Ok(RunOutcome::Cancelled { step });
    }
    let metrics = finish::finish(&mut trainer, started, emitter)?;
    Ok(RunOutcome::Finished(Box::new(metrics)))
}

/// Runs `f`, turning a panic into an error with its message: [`TrainError::DeviceOutOfMemory`]
/// (with advice) when the backend ran out of memory, [`TrainError::Panic`] otherwise.
/// Front-ends run the commands that drive a backend outside a run (`forward`, `fisher`, `eval`)
/// through it too, so running out of device memory there gives the same advice.
///
/// # Errors
/// `f`'s own error, or the panic's.
pub fn guarded<T, E: From<TrainError>>(
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(panic_error(panic_message(panic.as_ref())).into()))
}

/// The error of a panic's message: cubecl reports a failed device allocation as "out of device
/// memory …" or "An out-of-memory error happened …".
fn panic_error(message: String) -> TrainError {
    let lower = message.to_lowercase();
    if ["out of device memory", "out-of-memory", "out of memory"]
        .iter()
        .any(|m| lower.contains(m))
    {
        TrainError::DeviceOutOfMemory {
            message: message
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    } else {
        TrainError::Panic { message }
    }
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let err =
            guarded::<(), TrainError>(|| panic!("index 7 out of range")).expect_err("panicked");
        let text = err.to_string();
        assert!(
            text.contains("index 7 out of range") && text.contains("bug"),
            "{text}"
        );
        assert_eq!(guarded::<_, TrainError>(|| Ok(3)).expect("no panic"), 3);
        let oom = guarded::<(), TrainError>(|| {
            panic!("An out-of-memory error happened during launch\nCaused by:\n  1 GiB\nBacktrace")
        })
        .expect_err("out of memory");
        assert!(
            matches!(oom, TrainError::DeviceOutOfMemory { .. }),
            "{oom:?}"
        );
        let text = oom.to_string();
        assert!(
            text.contains("--batch-size") && !text.contains("Backtrace") && !text.contains("bug"),
            "{text}"
        );
    }
}
