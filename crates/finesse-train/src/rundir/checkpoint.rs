//! `checkpoint/`: the resumable state of an unfinished run, and the swap that replaces it so
//! that a crash at any moment leaves a valid checkpoint to resume from.
//!
//! A new checkpoint is written into a staged folder `.checkpoint-XXXXXX` beside the old one:
//! `model.safetensors` and `optimizer.safetensors` (each fsynced), then `state.json` last, so a
//! folder with a readable `state.json` is complete. Then `checkpoint/` → `.checkpoint-old`,
//! staged → `checkpoint/`, the run folder is fsynced and `.checkpoint-old` removed. A crash
//! between the renames leaves no `checkpoint/` but two complete candidates;
//! [`RunDir::recover_checkpoint`] (run before every resume) moves the newest complete one into
//! place and deletes the other leftovers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finesse_bert::HostTensor;
use finesse_bert::checkpoint::WEIGHTS_FILE;
use finesse_bert::io::{FloatTensors, read_float_tensors, write_f32_tensors};

use super::files::CheckpointState;
use super::{RunDir, read_json, write_json};
use crate::error::{Result, TrainError};

/// Files a checkpoint folder holds; nothing else is ever deleted from one.
const CHECKPOINT_FILES: [&str; 3] = [WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE];
/// The optimizer state of a checkpoint.
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The step and best values of a checkpoint (written last).
const STATE_FILE: &str = "state.json";
/// Prefix of staged and set-aside checkpoint folders.
const STAGED_PREFIX: &str = ".checkpoint-";
/// Name of the previous checkpoint while the new one is moved into place.
const OLD: &str = ".checkpoint-old";

/// The contents of `checkpoint/`.
pub struct Checkpoint {
    /// `state.json`.
    pub state: CheckpointState,
    /// Model weights by HF name.
    pub model: FloatTensors,
    /// Optimizer moments (`exp_avg.<name>`, `exp_avg_sq.<name>`) and, for supermasks,
    /// `supermask_scores.<name>` with their moments.
    pub optimizer: BTreeMap<String, HostTensor>,
}

/// The state of a checkpoint folder if it is complete (its `state.json`, written last, reads).
fn complete(dir: &Path) -> Option<CheckpointState> {
    if !CHECKPOINT_FILES.iter().all(|f| dir.join(f).is_file()) {
        return None;
    }
    read_json(&dir.join(STATE_FILE)).ok()
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io("syncing", dir, e))
}

/// Deletes a checkpoint folder of ours: its known files and leftover temporary files, then the
/// folder if that left it empty. A folder holding anything else is left in place.
fn remove_own(dir: &Path) {
    for f in CHECKPOINT_FILES {
        let _ = std::fs::remove_file(dir.join(f));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".finesse-tmp-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl RunDir {
    /// Staged and set-aside checkpoint folders left by an interrupted swap.
    fn checkpoint_leftovers(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(STAGED_PREFIX))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        out.sort();
        out
    }

    /// The state of the checkpoint a resume would use (the newest complete one, also among
    /// the leftovers of an interrupted swap), without changing anything.
    pub fn checkpoint_state(&self) -> Option<CheckpointState> {
        std::iter::once(self.checkpoint())
            .chain(self.checkpoint_leftovers())
            .filter_map(|d| complete(&d))
            .max_by_key(|s| s.step)
    }

    /// Makes `checkpoint/` the newest complete checkpoint (after a crash mid-swap) and deletes
    /// incomplete staged folders and older copies. Returns its state, or `None` when there is
    /// no complete checkpoint.
    ///
    /// # Errors
    /// A folder that cannot be renamed into place.
    pub fn recover_checkpoint(&self) -> Result<Option<CheckpointState>> {
        let target = self.checkpoint();
        let mut best: Option<(PathBuf, CheckpointState)> =
            complete(&target).map(|s| (target.clone(), s));
        let leftovers = self.checkpoint_leftovers();
        for dir in &leftovers {
            if let Some(s) = complete(dir)
                && best.as_ref().is_none_or(|(_, b)| s.step > b.step)
            {
                best = Some((dir.clone(), s));
            }
        }
        let Some((dir, state)) = best else {
            for dir in &leftovers {
                remove_own(dir);
            }
            return Ok(None);
        };
        if dir != target {
            log::warn!(
                "recovering the checkpoint of step {} from {} (a checkpoint swap was interrupted)",
                state.step,
                dir.display()
            );
            if target.exists() {
                remove_own(&target);
            }
            std::fs::rename(&dir, &target)
                .map_err(|e| TrainError::io("renaming into", &target, e))?;
            sync_dir(&self.root)?;
        }
        for dir in leftovers.iter().filter(|d| **d != dir) {
            remove_own(dir);
        }
        Ok(Some(state))
    }

    /// Writes a checkpoint: staged beside the old one, then swapped in (see the module doc).
    ///
    /// # Errors
    /// A file or folder that cannot be written, synced or renamed.
    pub fn write_checkpoint(
        &self,
        state: &CheckpointState,
        model: &[(String, HostTensor)],
        optimizer: &[(String, HostTensor)],
    ) -> Result<PathBuf> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(STAGED_PREFIX);
        // A plain folder's permissions (0o777 less the umask), not a temporary one's 0o700.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o777));
        }
        let staged = builder
            .tempdir_in(&self.root)
            .map_err(|e| TrainError::io("creating a checkpoint folder in", &self.root, e))?;
        write_f32_tensors(&staged.path().join(WEIGHTS_FILE), model, BTreeMap::new())?;
        write_f32_tensors(
            &staged.path().join(OPTIMIZER_FILE),
            optimizer,
            BTreeMap::new(),
        )?;
        write_json(&staged.path().join(STATE_FILE), state)?;
        sync_dir(staged.path())?;
        let target = self.checkpoint();
        let old = self.root.join(OLD);
        if target.exists() {
            if old.exists() {
                remove_own(&old);
            }
            std::fs::rename(&target, &old)
                .map_err(|e| TrainError::io("moving aside", &target, e))?;
        }
        let staged = staged.keep();
        std::fs::rename(&staged, &target)
            .map_err(|e| TrainError::io("renaming into", &target, e))?;
        sync_dir(&self.root)?;
        if old.exists() {
            remove_own(&old);
        }
        Ok(target)
    }

    /// Reads `checkpoint/`.
    ///
    /// # Errors
    /// A missing or unreadable file of `checkpoint/`.
    pub fn read_checkpoint(&self) -> Result<Checkpoint> {
        let dir = self.checkpoint();
        Ok(Checkpoint {
            state: read_json(&dir.join(STATE_FILE))?,
            model: read_float_tensors(&dir.join(WEIGHTS_FILE))?,
            optimizer: read_float_tensors(&dir.join(OPTIMIZER_FILE))?.tensors,
        })
    }

    /// Cleans what a crash can leave in the run folder besides checkpoints (run before a
    /// resume): temporary files of interrupted atomic writes, and a `best/` swap cut in half
    /// (`.best-old` goes back into place when `best/` is missing).
    ///
    /// # Errors
    /// A leftover that cannot be renamed or removed.
    pub fn clean_leftovers(&self) -> Result<()> {
        let best = self.best_model();
        let (staged, old) = (self.root.join(".best-staged"), self.root.join(".best-old"));
        if old.is_dir() && !best.exists() {
            std::fs::rename(&old, &best).map_err(|e| TrainError::io("renaming into", &best, e))?;
        }
        for dir in [staged, old] {
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io("removing", &dir, e))?;
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".finesse-tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Deletes the run's checkpoint once the run has finished: only the files a checkpoint
    /// holds, and the folder if nothing else is in it.
    pub(crate) fn remove_checkpoint(&self) {
        remove_own(&self.checkpoint());
        for dir in self.checkpoint_leftovers() {
            remove_own(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::RUN_FORMAT_VERSION;

    fn state(step: usize) -> CheckpointState {
        CheckpointState {
            format_version: RUN_FORMAT_VERSION,
            step,
            best: BTreeMap::new(),
        }
    }

    fn tensors(v: f32) -> Vec<(String, HostTensor)> {
        vec![("w".to_string(), HostTensor::new(vec![2], vec![v, -v]))]
    }

    #[test]
    fn checkpoint_round_trips_and_replaces_the_previous_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        run.write_checkpoint(&state(3), &tensors(1.0), &tensors(2.0))
            .expect("write");
        run.write_checkpoint(&state(6), &tensors(3.0), &tensors(4.0))
            .expect("write");
        let c = run.read_checkpoint().expect("read");
        assert_eq!(c.state, state(6));
        assert_eq!(c.model.tensors["w"].data, vec![3.0, -3.0]);
        assert_eq!(c.optimizer["w"].data, vec![4.0, -4.0]);
        // Nothing but checkpoint/ is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["checkpoint"]);
    }

    #[test]
    fn a_swap_interrupted_between_the_renames_is_recovered_with_the_newest_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        run.write_checkpoint(&state(3), &tensors(1.0), &tensors(2.0))
            .expect("write");
        run.write_checkpoint(&state(6), &tensors(3.0), &tensors(4.0))
            .expect("write");
        // Crash after `checkpoint/` → `.checkpoint-old`, before the staged folder's rename: the
        // staged step-6 folder and the old step-3 folder, no checkpoint/.
        std::fs::rename(run.checkpoint(), dir.path().join(".checkpoint-AbC123")).expect("mv");
        let old = dir.path().join(OLD);
        std::fs::create_dir(&old).expect("mkdir");
        write_f32_tensors(&old.join(WEIGHTS_FILE), &tensors(1.0), BTreeMap::new()).expect("w");
        write_f32_tensors(&old.join(OPTIMIZER_FILE), &tensors(2.0), BTreeMap::new()).expect("w");
        write_json(&old.join(STATE_FILE), &state(3)).expect("w");
        // And an incomplete staged folder (crash while writing a third checkpoint).
        let partial = dir.path().join(".checkpoint-zzz999");
        std::fs::create_dir(&partial).expect("mkdir");
        std::fs::write(partial.join(WEIGHTS_FILE), b"half").expect("w");

        assert_eq!(run.checkpoint_state().map(|s| s.step), Some(6));
        assert_eq!(
            run.recover_checkpoint().expect("recover").map(|s| s.step),
            Some(6)
        );
        assert_eq!(run.read_checkpoint().expect("read").state.step, 6);
        assert!(!old.exists() && !partial.exists());
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned_and_a_half_swapped_best_model_restored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        std::fs::create_dir(dir.path().join(".best-old")).expect("mkdir");
        std::fs::write(dir.path().join(".best-old/config.json"), "{}").expect("w");
        std::fs::create_dir(dir.path().join(".best-staged")).expect("mkdir");
        std::fs::write(dir.path().join(".finesse-tmp-abc"), "half").expect("w");
        std::fs::write(dir.path().join("metrics.json"), "{}").expect("w");
        run.clean_leftovers().expect("clean");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["best", "metrics.json"]);
        assert!(
            run.best_model()
                .join(finesse_bert::checkpoint::CONFIG_FILE)
                .is_file()
        );
    }

    #[test]
    fn removing_a_checkpoint_keeps_files_that_are_not_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        run.write_checkpoint(&state(1), &tensors(1.0), &tensors(2.0))
            .expect("write");
        std::fs::write(run.checkpoint().join("notes.txt"), "mine").expect("w");
        run.remove_checkpoint();
        assert!(run.checkpoint().join("notes.txt").is_file());
        assert!(!run.checkpoint().join(STATE_FILE).exists());
    }
}
