//! Two or more runs side by side: each followed live as the run view follows one, their
//! training-loss and dev-metric curves overlaid, their table rows and final metrics side by
//! side. No window needed.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use finesse_report::figures::smooth;
use finesse_sparse::Mask;
use finesse_train::rundir::main_metric;

use crate::analysis::{Heatmap, HeatmapKind};
use crate::live::LiveRun;
use crate::table::RunRow;

/// The runs compared, in the order they were given.
#[derive(Debug)]
pub struct Compare {
    /// Each run, followed live.
    pub runs: Vec<LiveRun>,
    /// How the masks of each pair of runs with a mask overlap (read once, when opened).
    pub overlaps: Vec<MaskOverlap>,
    /// Masks that could not be read: (run index, why).
    pub mask_errors: Vec<(usize, String)>,
    /// The figure whose difference (first run − second run) is shown.
    pub difference_kind: HeatmapKind,
    /// That difference, built for `difference_kind` (rebuilt when the runs change).
    difference: Option<(HeatmapKind, Result<Heatmap, String>)>,
    /// The difference's export file.
    pub export_path: String,
    /// The last export's outcome.
    pub export_message: Option<Result<String, String>>,
}

/// The overlap of two compared runs' masks.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskOverlap {
    /// The runs (indices into [`Compare::runs`]).
    pub runs: (usize, usize),
    /// Entries each mask keeps.
    pub kept: (usize, usize),
    /// Entries both keep.
    pub shared: usize,
    /// Jaccard index of the dropped entries (the papers' Figure 7 measure).
    pub dropped_jaccard: f64,
}

impl MaskOverlap {
    /// `shared` over the smaller mask's kept entries (1 when one mask contains the other).
    pub fn share_of_smaller(&self) -> f64 {
        let smaller = self.kept.0.min(self.kept.1);
        if smaller == 0 {
            0.0
        } else {
            self.shared as f64 / smaller as f64
        }
    }
}

/// Entries both masks keep, over the tensors both have.
fn shared_kept(a: &Mask, b: &Mask) -> usize {
    a.tensors
        .iter()
        .filter_map(|(name, ta)| Some((ta, b.tensors.get(name)?)))
        .map(|(ta, tb)| {
            // Both sorted: a merge.
            let (mut i, mut j, mut n) = (0, 0, 0);
            while i < ta.kept.len() && j < tb.kept.len() {
                match ta.kept[i].cmp(&tb.kept[j]) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        n += 1;
                        i += 1;
                        j += 1;
                    }
                }
            }
            n
        })
        .sum()
}

/// The overlaps of every pair of masks, and the masks that could not be read.
fn mask_overlaps(runs: &[LiveRun]) -> (Vec<MaskOverlap>, Vec<(usize, String)>) {
    let mut masks = Vec::new();
    let mut errors = Vec::new();
    for (i, live) in runs.iter().enumerate() {
        match live.dir.read_mask() {
            Ok(Some(mask)) => masks.push((i, mask)),
            Ok(None) => {}
            Err(e) => errors.push((i, e.to_string())),
        }
    }
    let mut overlaps = Vec::new();
    for (x, (i, a)) in masks.iter().enumerate() {
        for (j, b) in &masks[x + 1..] {
            match finesse_sparse::mask::overlap(a, b) {
                Ok(report) => overlaps.push(MaskOverlap {
                    runs: (*i, *j),
                    kept: (a.kept(), b.kept()),
                    shared: shared_kept(a, b),
                    dropped_jaccard: report.overall.jaccard,
                }),
                Err(e) => errors.push((*j, format!("against run {}: {e}", i + 1))),
            }
        }
    }
    (overlaps, errors)
}

impl Compare {
    /// Opens every run of `paths` (at least two are useful; any number works) and compares
    /// their masks.
    pub fn open(paths: &[PathBuf]) -> Self {
        let runs: Vec<LiveRun> = paths.iter().map(|p| LiveRun::open(p)).collect();
        let (overlaps, mask_errors) = mask_overlaps(&runs);
        Self {
            runs,
            overlaps,
            mask_errors,
            difference_kind: HeatmapKind::default(),
            difference: None,
            export_path: "difference.png".into(),
            export_message: None,
        }
    }

    /// Reads the runs' new events; returns whether anything changed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        for live in &mut self.runs {
            changed |= live.poll();
        }
        if changed {
            self.difference = None;
        }
        changed
    }

    /// The first run's `difference_kind` heatmap minus the second's (`None` with fewer than
    /// two runs); built on first use and again after the runs change.
    pub fn difference(&mut self) -> Option<&Result<Heatmap, String>> {
        let [a, b, ..] = self.runs.as_slice() else {
            return None;
        };
        let kind = self.difference_kind;
        if self.difference.as_ref().is_none_or(|(k, _)| *k != kind) {
            let build = |live: &LiveRun| match &live.run {
                Some(run) => Heatmap::build(run, kind).map_err(|e| format!("{}: {e}", live.name())),
                None => Err(format!("{}: its files cannot be read", live.name())),
            };
            let map = build(a).and_then(|ha| {
                let hb = build(b)?;
                Heatmap::difference(&ha, &hb, (&a.name(), &b.name()))
            });
            self.difference = Some((kind, map));
        }
        self.difference.as_ref().map(|(_, map)| map)
    }

    /// The run directories compared.
    pub fn paths(&self) -> Vec<&Path> {
        self.runs.iter().map(|r| r.dir.root.as_path()).collect()
    }

    /// The name of the dev metric the curves show: the main metric of the first run that has
    /// been evaluated (runs of one task share it).
    pub fn main_metric(&self) -> Option<String> {
        self.runs
            .iter()
            .find_map(|r| main_metric_name(r).map(str::to_string))
    }

    /// The final metric names of all runs (first dev split; each run's main metric first,
    /// `eval_loss` last), and each run's value of each (`None` where a run has none yet).
    pub fn final_metrics(&self) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
        let per_run: Vec<BTreeMap<String, f64>> = self.runs.iter().map(final_metrics).collect();
        let mut names: Vec<String> = Vec::new();
        for metrics in &per_run {
            if let Some((main, _)) = main_metric(metrics)
                && !names.iter().any(|n| n == main)
            {
                names.push(main.to_string());
            }
        }
        for name in per_run.iter().flat_map(BTreeMap::keys) {
            if name != "eval_loss" && !names.contains(name) {
                names.push(name.clone());
            }
        }
        if per_run.iter().any(|m| m.contains_key("eval_loss")) {
            names.push("eval_loss".to_string());
        }
        let values = per_run
            .iter()
            .map(|metrics| names.iter().map(|n| metrics.get(n).copied()).collect())
            .collect();
        (names, values)
    }
}

/// The runs table's row of a compared run (an unreadable run gives an error row).
pub fn row(live: &LiveRun) -> RunRow {
    match &live.run {
        Some(run) => RunRow::of_run(run),
        None => RunRow::unreadable(
            &live.dir.root,
            live.error
                .clone()
                .unwrap_or_else(|| "its files cannot be read".to_string()),
        ),
    }
}

/// The training loss, smoothed with TensorBoard's debiased EMA of weight `smoothing`, as
/// (step, loss) points.
pub fn loss_curve(live: &LiveRun, smoothing: f64) -> Vec<[f64; 2]> {
    let losses = &live.progress.losses;
    let raw: Vec<f64> = losses.iter().map(|l| l.loss).collect();
    losses
        .iter()
        .zip(smooth(&raw, smoothing))
        .map(|(l, y)| [l.step as f64, y])
        .collect()
}

/// The evaluations of `metric` on the first dev split, as (step, value) points.
pub fn metric_curve(live: &LiveRun, metric: &str) -> Vec<[f64; 2]> {
    let evals = &live.progress.evals;
    let Some(first) = evals.first().map(|e| e.split.clone()) else {
        return Vec::new();
    };
    evals
        .iter()
        .filter(|e| e.split == first)
        .filter_map(|e| Some([e.step as f64, *e.metrics.get(metric)?]))
        .collect()
}

fn main_metric_name(live: &LiveRun) -> Option<&str> {
    main_metric(&live.progress.evals.first()?.metrics).map(|(m, _)| m)
}

/// A run's final metrics: `metrics.json`'s first dev split when the run finished, else its
/// latest evaluation so far.
fn final_metrics(live: &LiveRun) -> BTreeMap<String, f64> {
    let from_file = live
        .run
        .as_ref()
        .and_then(|r| r.summary.metrics.as_ref())
        .map(|m| m.final_metrics.clone());
    from_file.unwrap_or_else(|| {
        live.progress
            .last_metrics()
            .map(|e| {
                let mut metrics = e.metrics.clone();
                metrics.insert("eval_loss".to_string(), e.loss);
                metrics
            })
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use finesse_sparse::{Mask, MaskTensor};

    use super::shared_kept;

    fn mask(tensors: &[(&str, Vec<u32>)]) -> Mask {
        Mask {
            tensors: tensors
                .iter()
                .map(|(name, kept)| {
                    (
                        name.to_string(),
                        MaskTensor {
                            shape: vec![10],
                            kept: kept.clone(),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn shared_kept_entries_are_counted_per_tensor() {
        let a = mask(&[("w", vec![0, 2, 5, 9]), ("b", vec![1]), ("only-a", vec![3])]);
        let b = mask(&[("w", vec![2, 3, 9]), ("b", vec![0, 1])]);
        assert_eq!(shared_kept(&a, &b), 3);
        assert_eq!(shared_kept(&b, &a), 3);
        assert_eq!(shared_kept(&a, &a), a.kept());
    }
}
