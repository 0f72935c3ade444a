//! Watching a runs folder cheaply: each poll lists the folder and takes a [`Stamp`] of every
//! run directory (sizes and modification times of the files that change as a run goes, and
//! whether a process holds its lock); only runs whose stamp changed are read again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use finesse_train::RunDir;

/// The files whose changes mean a run must be read again.
const WATCHED: [&str; 6] = [
    "run.json",
    "events.jsonl",
    "metrics.json",
    "mask_stats.json",
    "analysis.json",
    "run.lock",
];

/// What a poll saw of one run directory: size and modification time of each watched file
/// (`None`: absent), and whether a training process holds the run's lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    files: [Option<(u64, SystemTime)>; WATCHED.len()],
    locked: bool,
}

impl Stamp {
    /// The stamp of `dir` now.
    pub fn of(dir: &Path) -> Self {
        let files = WATCHED.map(|name| {
            let meta = std::fs::metadata(dir.join(name)).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        });
        // The lock is only looked at when its file exists (a run that crashed leaves it
        // unlocked: the status changes from running to interrupted without any file changing).
        let locked = files[WATCHED.len() - 1].is_some() && RunDir::new(dir).is_locked();
        Self { files, locked }
    }
}

/// Is `path` a run directory the browser lists: a folder holding `run.json` or `events.jsonl`
/// (a run being created has its events before its `run.json` is complete)?
pub fn is_run_dir(path: &Path) -> bool {
    path.join("run.json").is_file() || path.join("events.jsonl").is_file()
}

/// What changed in a runs folder since the previous poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New run directories and those whose files changed: read them (again).
    pub changed: Vec<PathBuf>,
    /// Run directories that are gone (or no longer runs).
    pub removed: Vec<PathBuf>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The stamps of the previous poll of one folder.
#[derive(Clone, Debug, Default)]
pub struct Scanner {
    stamps: BTreeMap<PathBuf, Stamp>,
}

impl Scanner {
    /// Lists `folder` and compares every run directory's stamp with the previous poll's.
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn poll(&mut self, folder: &Path) -> std::io::Result<Changes> {
        let mut now = BTreeMap::new();
        for entry in std::fs::read_dir(folder)?.flatten() {
            let path = entry.path();
            if path.is_dir() && is_run_dir(&path) {
                let stamp = Stamp::of(&path);
                now.insert(path, stamp);
            }
        }
        let changed = now
            .iter()
            .filter(|(path, stamp)| self.stamps.get(*path) != Some(stamp))
            .map(|(path, _)| path.clone())
            .collect();
        let removed = self
            .stamps
            .keys()
            .filter(|path| !now.contains_key(*path))
            .cloned()
            .collect();
        self.stamps = now;
        Ok(Changes { changed, removed })
    }

    /// Forgets every stamp: the next poll reports every run as changed.
    pub fn reset(&mut self) {
        self.stamps.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    fn touch(path: &Path, text: &str) {
        fs::write(path, text).expect("write");
    }

    #[test]
    fn only_new_changed_and_removed_runs_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for run in [&a, &b] {
            fs::create_dir(run).expect("mkdir");
            touch(&run.join("run.json"), "{}");
        }
        // Not runs: a plain file and a folder without run files.
        touch(&dir.path().join("notes.txt"), "x");
        fs::create_dir(dir.path().join("figures")).expect("mkdir");

        let mut scanner = Scanner::default();
        let first = scanner.poll(dir.path()).expect("poll");
        assert_eq!(first.changed, [a.clone(), b.clone()]);
        assert!(scanner.poll(dir.path()).expect("poll").is_empty());

        // An appended event line changes the size even within one mtime tick.
        touch(&a.join("events.jsonl"), "{\"time\":1}\n");
        let second = scanner.poll(dir.path()).expect("poll");
        assert_eq!(second.changed, std::slice::from_ref(&a));
        assert!(second.removed.is_empty());

        // Same size, later modification time.
        let events = a.join("events.jsonl");
        let file = fs::File::options().write(true).open(&events).expect("open");
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .expect("set mtime");
        assert_eq!(
            scanner.poll(dir.path()).expect("poll").changed,
            std::slice::from_ref(&a)
        );

        fs::remove_dir_all(&b).expect("rm");
        let third = scanner.poll(dir.path()).expect("poll");
        assert_eq!(third.removed, [b]);
        assert!(third.changed.is_empty());

        scanner.reset();
        assert_eq!(scanner.poll(dir.path()).expect("poll").changed, [a]);
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Scanner::default().poll(&dir.path().join("nope")).is_err());
    }
}
