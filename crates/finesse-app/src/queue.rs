//! The training queue: runs the app starts go through `finesse_train::start_run`, one at a
//! time (Burn's random generator is process-wide, so two runs in one process would draw from
//! the same stream and neither would be reproducible), first in first out. The queue is
//! generic over the [`Job`] that runs, so its order is tested without training.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;

use finesse_train::device::DeviceChoice;
use finesse_train::{RunConfig, RunHandle, RunOutcome, start_run};

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// All steps done.
    Finished,
    /// Cancelled after `step`; resumable from its checkpoint.
    Cancelled {
        /// The last completed step.
        step: usize,
    },
    /// Stopped on an error.
    Failed(String),
}

/// A training in progress, as the queue sees it.
pub trait Job {
    /// Asks it to stop after its current step (it writes a checkpoint first).
    fn cancel(&self);
    /// Takes what it reported since the last call; true once it has ended.
    fn poll(&mut self) -> bool;
    /// Waits for it to end and says how it ended.
    fn finish(self) -> Ended;
}

/// A run waiting in (or started from) the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedRun {
    /// Its number in this session (to remove it).
    pub id: u64,
    /// Its configuration (for a resume: the run's `run.json`, moves applied).
    pub config: RunConfig,
    /// The backend.
    pub device: DeviceChoice,
    /// Continue the run in `config.output_dir` from its checkpoint.
    pub resume: bool,
}

impl QueuedRun {
    /// The run directory.
    pub fn path(&self) -> &Path {
        &self.config.output_dir
    }

    /// The run folder's name.
    pub fn name(&self) -> String {
        self.path().file_name().map_or_else(
            || self.path().display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// One line for the queue list: `sst2-fish · fish on SST-2 · flex` (`resume` marked).
    pub fn describe(&self) -> String {
        format!(
            "{}{} · {} on {} · {}",
            self.name(),
            if self.resume { " (resume)" } else { "" },
            self.config.method.name(),
            self.config.task.spec().name,
            self.device.name()
        )
    }
}

/// The run being trained.
#[derive(Debug)]
pub struct Active<J> {
    /// What was started.
    pub run: QueuedRun,
    /// The training.
    pub job: J,
    /// Cancel was asked for (the run is writing its checkpoint).
    pub cancelling: bool,
}

/// What a [`RunQueue::tick`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueEvent {
    /// The run started.
    Started(QueuedRun),
    /// The run could not start (it is dropped from the queue).
    NotStarted(QueuedRun, String),
    /// The run ended.
    Ended(QueuedRun, Ended),
}

/// Runs waiting, and the one training.
#[derive(Debug)]
pub struct RunQueue<J> {
    waiting: VecDeque<QueuedRun>,
    active: Option<Active<J>>,
    next_id: u64,
}

impl<J> Default for RunQueue<J> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            active: None,
            next_id: 1,
        }
    }
}

impl<J: Job> RunQueue<J> {
    /// Appends a run; returns its id. It starts at the next [`RunQueue::tick`] when nothing
    /// trains.
    pub fn push(&mut self, config: RunConfig, device: DeviceChoice, resume: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back(QueuedRun {
            id,
            config,
            device,
            resume,
        });
        id
    }

    /// Removes a waiting run (a started one is cancelled instead).
    pub fn remove(&mut self, id: u64) -> Option<QueuedRun> {
        let at = self.waiting.iter().position(|r| r.id == id)?;
        self.waiting.remove(at)
    }

    /// Drops every waiting run; returns how many.
    pub fn clear_waiting(&mut self) -> usize {
        let n = self.waiting.len();
        self.waiting.clear();
        n
    }

    /// The waiting runs, next first.
    pub fn waiting(&self) -> impl ExactSizeIterator<Item = &QueuedRun> {
        self.waiting.iter()
    }

    /// The run training now.
    pub fn active(&self) -> Option<&Active<J>> {
        self.active.as_ref()
    }

    /// Something trains or waits.
    pub fn is_busy(&self) -> bool {
        self.active.is_some() || !self.waiting.is_empty()
    }

    /// The run directories of the active and waiting runs.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.active
            .iter()
            .map(|a| &a.run)
            .chain(&self.waiting)
            .map(|r| r.path().to_path_buf())
            .collect()
    }

    /// Whether this queue is training the run in `path` now.
    pub fn is_training(&self, path: &Path) -> bool {
        self.active.as_ref().is_some_and(|a| a.run.path() == path)
    }

    /// Whether the run in `path` waits in the queue.
    pub fn is_waiting(&self, path: &Path) -> bool {
        self.waiting.iter().any(|r| r.path() == path)
    }

    /// Asks the active run to stop (it writes a resumable checkpoint).
    pub fn cancel_active(&mut self) {
        if let Some(active) = &mut self.active {
            active.job.cancel();
            active.cancelling = true;
        }
    }

    /// Ends the active run if it has ended, then starts the next waiting one if nothing
    /// trains (`start` starts a run; one that fails to start is dropped and the next tried).
    pub fn tick(
        &mut self,
        mut start: impl FnMut(&QueuedRun) -> Result<J, String>,
    ) -> Vec<QueueEvent> {
        let mut events = Vec::new();
        if let Some(active) = &mut self.active
            && active.job.poll()
            && let Some(active) = self.active.take()
        {
            events.push(QueueEvent::Ended(active.run, active.job.finish()));
        }
        while self.active.is_none() {
            let Some(run) = self.waiting.pop_front() else {
                break;
            };
            match start(&run) {
                Ok(job) => {
                    events.push(QueueEvent::Started(run.clone()));
                    self.active = Some(Active {
                        run,
                        job,
                        cancelling: false,
                    });
                }
                Err(e) => events.push(QueueEvent::NotStarted(run, e)),
            }
        }
        events
    }

    /// For quitting: drops the waiting runs, cancels the active one and waits until its
    /// checkpoint is written. Returns the active run and how it ended.
    pub fn shutdown(&mut self) -> Option<(QueuedRun, Ended)> {
        self.waiting.clear();
        let active = self.active.take()?;
        active.job.cancel();
        Some((active.run, active.job.finish()))
    }
}

/// A run of `finesse_train::start_run` on its own thread.
pub struct Training {
    handle: RunHandle,
}

impl std::fmt::Debug for Training {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Training")
    }
}

impl Training {
    /// Starts `run` (the device created here, so a missing backend is an error at once).
    ///
    /// # Errors
    /// The device cannot be created.
    pub fn start(run: &QueuedRun) -> Result<Self, String> {
        let device = run.device.device().map_err(|e| e.to_string())?;
        Ok(Self {
            handle: start_run(run.config.clone(), device, run.resume),
        })
    }
}

impl Job for Training {
    fn cancel(&self) {
        self.handle.cancel();
    }

    fn poll(&mut self) -> bool {
        // The run's events are in its events.jsonl, which the run view follows; the channel
        // only tells when the run has ended (it closes).
        loop {
            match self.handle.events.try_recv() {
                Ok(_) => {}
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    }

    fn finish(self) -> Ended {
        match self.handle.join() {
            Ok(RunOutcome::Finished(_)) => Ended::Finished,
            Ok(RunOutcome::Cancelled { step }) => Ended::Cancelled { step },
            Err(e) => Ended::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A job that ends when its `done` flag is set; cancel sets `cancelled`.
    #[derive(Debug)]
    struct Fake {
        done: Rc<Cell<bool>>,
        cancelled: Rc<Cell<bool>>,
    }

    impl Job for Fake {
        fn cancel(&self) {
            self.cancelled.set(true);
            self.done.set(true);
        }
        fn poll(&mut self) -> bool {
            self.done.get()
        }
        fn finish(self) -> Ended {
            if self.cancelled.get() {
                Ended::Cancelled { step: 1 }
            } else {
                Ended::Finished
            }
        }
    }

    fn config(name: &str) -> RunConfig {
        RunConfig::new(
            "m",
            finesse_glue::GlueTask::Sst2,
            "d",
            format!("runs/{name}"),
        )
    }

    /// A started fake's name and its `done` and `cancelled` flags.
    type Flags = (String, Rc<Cell<bool>>, Rc<Cell<bool>>);

    /// Starts fakes, keeping their flags by run name.
    struct Starter {
        flags: Vec<Flags>,
    }

    impl Starter {
        fn start(&mut self, run: &QueuedRun) -> Result<Fake, String> {
            if run.name() == "broken" {
                return Err("no device".into());
            }
            let done = Rc::new(Cell::new(false));
            let cancelled = Rc::new(Cell::new(false));
            self.flags
                .push((run.name(), Rc::clone(&done), Rc::clone(&cancelled)));
            Ok(Fake { done, cancelled })
        }
        fn finish(&self, name: &str) {
            let (_, done, _) = self
                .flags
                .iter()
                .find(|(n, ..)| n == name)
                .expect("started");
            done.set(true);
        }
    }

    fn names(events: &[QueueEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                QueueEvent::Started(r) => format!("started {}", r.name()),
                QueueEvent::NotStarted(r, _) => format!("not started {}", r.name()),
                QueueEvent::Ended(r, end) => format!("ended {} {end:?}", r.name()),
            })
            .collect()
    }

    #[test]
    fn runs_start_one_at_a_time_in_order() {
        let mut q = RunQueue::<Fake>::default();
        let mut s = Starter { flags: Vec::new() };
        for name in ["a", "b", "c"] {
            q.push(config(name), DeviceChoice::Flex, false);
        }
        assert_eq!(names(&q.tick(|r| s.start(r))), ["started a"]);
        assert!(q.is_training(Path::new("runs/a")));
        assert!(q.is_waiting(Path::new("runs/b")));
        assert_eq!(q.waiting().len(), 2);
        // Nothing else starts while a trains.
        assert!(q.tick(|r| s.start(r)).is_empty());
        s.finish("a");
        assert_eq!(
            names(&q.tick(|r| s.start(r))),
            ["ended a Finished", "started b"]
        );
        s.finish("b");
        assert_eq!(
            names(&q.tick(|r| s.start(r))),
            ["ended b Finished", "started c"]
        );
        s.finish("c");
        assert_eq!(names(&q.tick(|r| s.start(r))), ["ended c Finished"]);
        assert!(!q.is_busy());
    }

    #[test]
    fn a_waiting_run_can_be_removed_and_a_failed_start_does_not_block_the_queue() {
        let mut q = RunQueue::<Fake>::default();
        let mut s = Starter { flags: Vec::new() };
        q.push(config("a"), DeviceChoice::Flex, false);
        let b = q.push(config("b"), DeviceChoice::Flex, false);
        q.push(config("broken"), DeviceChoice::Flex, false);
        q.push(config("d"), DeviceChoice::Flex, false);
        q.tick(|r| s.start(r));
        assert_eq!(q.remove(b).map(|r| r.name()), Some("b".into()));
        assert_eq!(q.remove(b), None);
        assert_eq!(
            q.paths(),
            [
                PathBuf::from("runs/a"),
                PathBuf::from("runs/broken"),
                PathBuf::from("runs/d")
            ]
        );
        s.finish("a");
        assert_eq!(
            names(&q.tick(|r| s.start(r))),
            ["ended a Finished", "not started broken", "started d"]
        );
    }

    #[test]
    fn cancel_and_shutdown_stop_the_active_run_and_drop_the_waiting_ones() {
        let mut q = RunQueue::<Fake>::default();
        let mut s = Starter { flags: Vec::new() };
        q.push(config("a"), DeviceChoice::Flex, false);
        q.push(config("b"), DeviceChoice::Flex, true);
        q.tick(|r| s.start(r));
        q.cancel_active();
        assert!(q.active().is_some_and(|a| a.cancelling));
        assert_eq!(
            names(&q.tick(|r| s.start(r))),
            ["ended a Cancelled { step: 1 }", "started b"]
        );
        q.push(config("c"), DeviceChoice::Flex, false);
        let (run, end) = q.shutdown().expect("b was active");
        assert_eq!(
            (run.name().as_str(), end),
            ("b", Ended::Cancelled { step: 1 })
        );
        assert!(!q.is_busy());
        assert!(q.shutdown().is_none());
    }
}
