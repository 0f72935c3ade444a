//! The table of runs (`finesse report`): one [`ReportRow`] per run directory — task, method,
//! what it kept, lr, seed, steps, dev metrics (the task's main metric first), the best main
//! metric and its step, trained entries, optimizer state, wall time, throughput, peak memory and
//! diff size — written as Markdown (numbers formatted for reading), CSV or JSON (raw numbers:
//! seconds, bytes, fractions).
//!
//! With [`GroupKey`]s ([`Report::grouped`], `--group-by method,lr`) the runs that agree on
//! those keys make one row whose numbers are the **mean ± sample standard deviation** (n − 1
//! in the denominator; none for a single run) over the group's finished runs (over all its runs
//! when none has finished); the `status` cell counts the runs by status.
//!
//! [`Report::pivoted`] (`--pivot lr`) turns the runs into a [`Pivot`]: one column per value of
//! a key, each cell the main dev metric averaged over seeds (the lr sweep and seed tables).
//!
//! Unfinished runs (no `metrics.json`) still get a row: their status, the steps done, the
//! latest evaluation of the first dev split and the best so far, from the events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

use finesse_train::RunStatus;
use finesse_train::rundir::main_metric;
use serde::Serialize;

use crate::error::{ReportError, Result};
use crate::runs::{Run, format_lr, open_all};

mod pivot;
pub use pivot::{Pivot, PivotCell, PivotRow};

/// One run's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportRow {
    /// The run directory's name.
    pub run: String,
    /// The run directory.
    pub path: PathBuf,
    /// `finished`, `running`, `interrupted`, `cancelled`, `failed` or `unknown`.
    pub status: String,
    /// The task (`SST-2`, …; `?` without a `run.json`).
    pub task: String,
    /// The method's short name (`dense`, `fish`, …).
    pub method: String,
    /// What the method kept or pruned, as text (`0.50%`, `30.0% sparse`, `biases + head`, `all`).
    pub kept: String,
    /// The stem of the mask file a FISH run trained (`--mask FILE`), if any.
    pub mask: Option<String>,
    /// Kept fraction of a fixed-subset method (its mask's, or the budget it asked for).
    pub keep_ratio: Option<f64>,
    /// Final sparsity of WQ…WO of a pruning or supermask run.
    pub sparsity: Option<f64>,
    /// Peak learning rate.
    pub lr: Option<f64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Steps trained (done so far, unfinished).
    pub steps: usize,
    /// The task's main metric among `metrics`.
    pub main_metric: Option<String>,
    /// Final dev metrics of the first dev split (the latest evaluation, unfinished), without
    /// the loss.
    pub metrics: BTreeMap<String, f64>,
    /// Best value of the main metric over the evaluations, with its step.
    pub best: Option<BestMetric>,
    /// Trained parameter entries.
    pub trainable_entries: Option<usize>,
    /// Optimizer state entries held at the end.
    pub optimizer_state_entries: Option<usize>,
    /// Wall time of the run.
    pub duration_secs: Option<f64>,
    /// Mean training examples per second.
    pub examples_per_sec: Option<f64>,
    /// Peak resident memory.
    pub peak_rss_mib: Option<f64>,
    /// Size of the run's sparse diff (`diff.safetensors`).
    pub diff_bytes: Option<u64>,
}

/// The best value of a metric and the step of its evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BestMetric {
    /// The metric's name.
    pub metric: String,
    /// Its best value.
    pub value: f64,
    /// The step of that evaluation.
    pub step: usize,
}

impl ReportRow {
    /// The row of one run.
    pub fn of(run: &Run) -> Self {
        let s = &run.summary;
        let finished = s.metrics.as_ref();
        let mut metrics = match finished {
            Some(m) => m.final_metrics.clone(),
            None => s
                .progress
                .last_metrics()
                .map(|e| e.metrics.clone())
                .unwrap_or_default(),
        };
        metrics.remove("eval_loss");
        let main = main_metric(&metrics).map(|(k, _)| k.to_string());
        let bests = finished.map_or(&s.progress.best, |m| &m.best);
        let best = main.as_ref().and_then(|k| {
            bests.get(k).map(|b| BestMetric {
                metric: k.clone(),
                value: b.value,
                step: b.step,
            })
        });
        let sparse = finished.and_then(|m| m.sparse.as_ref());
        // A supermask trains a score per masked weight besides the head, with Adam's two
        // moments each; the trainer counts the head's parameters and optimizer state only.
        let scores = finished
            .and_then(|m| m.supermask.as_ref())
            .map_or(0, |sm| sm.total);
        let trainable = Some(s.progress.trainable_params)
            .filter(|n| *n > 0)
            .or_else(|| sparse.map(|sp| sp.kept))
            .or_else(|| s.progress.mask.as_ref().map(|(_, kept, _)| *kept))
            .map(|n| n + scores);
        Self {
            run: run.name(),
            path: s.path.clone(),
            status: s.status.name().to_string(),
            task: run.task(),
            method: run.method_name().to_string(),
            kept: run.budget_text(),
            mask: run.mask_file(),
            keep_ratio: run.keep_ratio(),
            sparsity: run.sparsity(),
            lr: run.lr(),
            seed: run.seed(),
            steps: finished.map_or(s.progress.step, |m| m.steps),
            main_metric: main,
            metrics,
            best,
            trainable_entries: trainable,
            optimizer_state_entries: finished
                .map(|m| m.optimizer_state_entries + 2 * scores)
                .filter(|n| *n > 0),
            duration_secs: finished.map(|m| m.duration_secs),
            examples_per_sec: finished.map(|m| m.train_examples_per_sec),
            peak_rss_mib: finished.and_then(|m| m.peak_rss_mib),
            diff_bytes: sparse.map(|sp| sp.diff_bytes),
        }
    }

    /// Whether the run finished (its `metrics.json` is written).
    pub fn is_finished(&self) -> bool {
        self.status == RunStatus::Finished.name()
    }
}

/// What runs are grouped by (`--group-by`, comma-separated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKey {
    /// The task.
    Task,
    /// The method's name.
    Method,
    /// What the method kept (the `kept` column's text).
    Kept,
    /// The mask file a FISH run trained (its stem; empty when the run made its own mask).
    Mask,
    /// The learning rate.
    Lr,
    /// The seed.
    Seed,
}

impl GroupKey {
    /// Every key, in the order the table shows them.
    pub const ALL: [Self; 6] = [
        Self::Task,
        Self::Method,
        Self::Kept,
        Self::Mask,
        Self::Lr,
        Self::Seed,
    ];

    /// The key's name (`task`, `method`, `kept`, `lr`, `seed`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Method => "method",
            Self::Kept => "kept",
            Self::Mask => "mask",
            Self::Lr => "lr",
            Self::Seed => "seed",
        }
    }

    /// A row's value of the key, as the table prints it.
    pub fn value(self, row: &ReportRow) -> String {
        match self {
            Self::Task => row.task.clone(),
            Self::Method => row.method.clone(),
            Self::Kept => row.kept.clone(),
            Self::Mask => row.mask.clone().unwrap_or_default(),
            Self::Lr => row.lr.map(format_lr).unwrap_or_default(),
            Self::Seed => row.seed.map(|s| s.to_string()).unwrap_or_default(),
        }
    }

    /// Parses a comma-separated list (`method,lr`).
    ///
    /// # Errors
    /// A name that is not a key.
    pub fn parse_list(text: &str) -> std::result::Result<Vec<Self>, UnknownGroupKey> {
        text.split(',').map(|k| k.trim().parse()).collect()
    }
}

/// A `--group-by` name that is not a [`GroupKey`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown group key `{0}` (use task, method, kept, mask, lr or seed, comma-separated)")]
pub struct UnknownGroupKey(pub String);

impl FromStr for GroupKey {
    type Err = UnknownGroupKey;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .or(match lower.as_str() {
                "keep" | "budget" | "keep-ratio" | "keep_ratio" => Some(Self::Kept),
                "mask-file" | "mask_file" => Some(Self::Mask),
                _ => None,
            })
            .ok_or_else(|| UnknownGroupKey(s.to_string()))
    }
}

/// Mean and sample standard deviation (n − 1 in the denominator) of a column over a group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation; `None` for a single value.
    pub std: Option<f64>,
    /// How many values.
    pub n: usize,
}

impl MeanStd {
    /// Of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        Some(Self { mean, std, n })
    }
}

/// The runs that agree on the group keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupRow {
    /// The keys' values, by key name.
    pub key: BTreeMap<&'static str, String>,
    /// The runs' names, in table order.
    pub runs: Vec<String>,
    /// Their seeds.
    pub seeds: Vec<u64>,
    /// How many runs of each status (`finished`, `running`, …).
    pub status: BTreeMap<String, usize>,
    /// Mean ± std of every numeric column, by its CSV name (`dev_accuracy`, `best_value`,
    /// `duration_secs`, …), over the finished runs (all runs when none finished).
    pub stats: BTreeMap<String, MeanStd>,
}

impl GroupRow {
    /// The status cell: `3 finished`, `2 finished, 1 running`.
    pub fn status_text(&self) -> String {
        let mut counts: Vec<(&String, &usize)> = self.status.iter().collect();
        counts.sort_by_key(|(name, _)| name.as_str() != "finished");
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        parts.join(", ")
    }
}

/// The table of runs: the rows, and the groups when grouped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// One row per run, in the order given.
    pub rows: Vec<ReportRow>,
    /// The group keys (empty: not grouped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<GroupKey>,
    /// The groups, in order of their first run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRow>,
    /// The pivot, when pivoted ([`Report::pivoted`]); the tables show it instead of the rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pivot: Option<Pivot>,
}

impl Report {
    /// The report of `runs`, one row each.
    pub fn new(runs: &[Run]) -> Self {
        Self {
            rows: runs.iter().map(ReportRow::of).collect(),
            group_by: Vec::new(),
            groups: Vec::new(),
            pivot: None,
        }
    }

    /// Opens the runs `paths` name (run directories or folders of runs,
    /// [`crate::runs::expand`]) and reports them.
    ///
    /// # Errors
    /// As [`open_all`].
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        Ok(Self::new(&open_all(paths)?))
    }

    /// Groups the rows by `keys` (no keys: ungrouped).
    pub fn grouped(mut self, keys: &[GroupKey]) -> Self {
        self.group_by = keys.to_vec();
        self.groups = group(&self.rows, keys);
        self
    }

    /// Pivots the rows on `key` ([`Pivot`]: one column per value of `key`, cells the main dev
    /// metric averaged over seeds); the tables then show the pivot.
    pub fn pivoted(mut self, key: GroupKey) -> Self {
        self.pivot = Some(Pivot::of(&self.rows, key));
        self
    }

    /// The table as Markdown (a pipe table, numbers formatted for reading).
    pub fn to_markdown(&self) -> String {
        self.table().to_markdown()
    }

    /// The table as CSV (raw numbers; a grouped column is two: `NAME_mean`, `NAME_std`).
    ///
    /// # Errors
    /// The CSV writer fails (it writes to memory: only on a bug).
    pub fn to_csv(&self) -> Result<String> {
        self.table().to_csv()
    }

    /// The rows (and groups) as pretty JSON.
    ///
    /// # Errors
    /// Serialisation fails (only on a bug).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    fn table(&self) -> Table {
        if let Some(pivot) = &self.pivot {
            return pivot.table();
        }
        let columns = columns(&self.rows);
        if self.group_by.is_empty() {
            Table::of_rows(&columns, &self.rows)
        } else {
            Table::of_groups(&columns, &self.group_by, &self.groups)
        }
    }
}

fn group(rows: &[ReportRow], keys: &[GroupKey]) -> Vec<GroupRow> {
    if keys.is_empty() {
        return Vec::new();
    }
    let columns = columns(rows);
    by_keys(rows, keys)
        .into_iter()
        .map(|(key, runs)| group_row(keys, key, &runs, &columns))
        .collect()
}

/// The rows that agree on `keys`' values, one entry per combination in order of its first row.
fn by_keys<'a>(rows: &'a [ReportRow], keys: &[GroupKey]) -> Vec<(Vec<String>, Vec<&'a ReportRow>)> {
    let mut groups: Vec<(Vec<String>, Vec<&ReportRow>)> = Vec::new();
    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for row in rows {
        let key: Vec<String> = keys.iter().map(|k| k.value(row)).collect();
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(row);
    }
    groups
}

fn group_row(
    keys: &[GroupKey],
    key: Vec<String>,
    runs: &[&ReportRow],
    columns: &[Column],
) -> GroupRow {
    let mut status = BTreeMap::new();
    for r in runs {
        *status.entry(r.status.clone()).or_insert(0) += 1;
    }
    let finished: Vec<&ReportRow> = runs.iter().copied().filter(|r| r.is_finished()).collect();
    let averaged = if finished.is_empty() { runs } else { &finished };
    let stats = columns
        .iter()
        .filter(|c| c.stat_md.is_some())
        .filter_map(|c| {
            let values: Vec<f64> = averaged.iter().filter_map(|r| c.get(r).number()).collect();
            Some((c.csv.clone()?, MeanStd::of(&values)?))
        })
        .collect();
    GroupRow {
        key: keys.iter().map(|k| k.name()).zip(key).collect(),
        runs: runs.iter().map(|r| r.run.clone()).collect(),
        seeds: runs.iter().filter_map(|r| r.seed).collect(),
        status,
        stats,
    }
}

/// How a column's numbers are shown in Markdown (CSV and JSON keep them raw).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Text as it is.
    Text,
    /// An integer without separators (a seed).
    Plain,
    /// A count with thousands separators.
    Count,
    /// A metric: 4 decimals.
    Metric,
    /// A learning rate: `1e-3`.
    Lr,
    /// A fraction as a percentage.
    Fraction,
    /// Seconds shown in minutes: `5.1 min`.
    Minutes,
    /// A rate: 1 decimal.
    Rate,
    /// MiB: `1657 MiB`.
    Mib,
    /// Bytes shown in MB (10⁶): `1.39 MB`.
    Megabytes,
}

impl Kind {
    /// The number without its unit.
    fn number(self, v: f64) -> String {
        match self {
            Self::Text | Self::Plain => format!("{v}"),
            Self::Count => thousands(v),
            Self::Metric => format!("{v:.4}"),
            Self::Lr => format_lr(v),
            Self::Fraction => crate::colormap::format_value(v, true),
            Self::Minutes => format!("{:.1}", v / 60.0),
            Self::Rate => format!("{v:.1}"),
            Self::Mib => format!("{v:.0}"),
            Self::Megabytes => format!("{:.2}", v / 1e6),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Minutes => " min",
            Self::Mib => " MiB",
            Self::Megabytes => " MB",
            _ => "",
        }
    }
}

/// A count rounded to an integer, with thousands separators: `22,713,986`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// One table cell.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Empty,
    Text(String),
    Num(f64),
    Stat(MeanStd),
}

impl Cell {
    fn number(&self) -> Option<f64> {
        match self {
            Self::Num(v) => Some(*v),
            _ => None,
        }
    }

    fn opt<T: Into<f64>>(v: Option<T>) -> Self {
        v.map_or(Self::Empty, |v| Self::Num(v.into()))
    }

    fn count(v: Option<usize>) -> Self {
        v.map_or(Self::Empty, |v| Self::Num(v as f64))
    }

    fn text(s: &str) -> Self {
        if s.is_empty() {
            Self::Empty
        } else {
            Self::Text(s.to_string())
        }
    }

    fn markdown(&self, kind: Kind) -> String {
        let text = match self {
            Self::Empty => String::new(),
            Self::Text(s) => s.clone(),
            Self::Num(v) => format!("{}{}", kind.number(*v), kind.unit()),
            Self::Stat(s) => match s.std {
                Some(std) => format!(
                    "{} ± {}{}",
                    kind.number(s.mean),
                    kind.number(std),
                    kind.unit()
                ),
                None => format!("{}{}", kind.number(s.mean), kind.unit()),
            },
        };
        text.replace('|', "\\|")
    }
}

type Getter = Box<dyn Fn(&ReportRow) -> Cell>;

/// A column of the run table: its Markdown and CSV headers (`None`: not in that format),
/// how it is shown, its Markdown header in a grouped table (`None`: not averaged).
struct Column {
    md: Option<String>,
    csv: Option<String>,
    kind: Kind,
    stat_md: Option<String>,
    get: Getter,
}

impl Column {
    fn new(md: &str, csv: &str, kind: Kind, get: Getter) -> Self {
        Self {
            md: (!md.is_empty()).then(|| md.to_string()),
            csv: (!csv.is_empty()).then(|| csv.to_string()),
            kind,
            stat_md: None,
            get,
        }
    }

    /// Averaged in a grouped table, under `md` there.
    fn stat(mut self, md: &str) -> Self {
        self.stat_md = Some(md.to_string());
        self
    }

    fn get(&self, row: &ReportRow) -> Cell {
        (self.get)(row)
    }
}

/// The metric names of `rows`: main metrics first, then accuracy, F1, Matthews, Pearson,
/// Spearman, then any other by name.
fn metric_names(rows: &[ReportRow]) -> Vec<String> {
    const ORDER: [&str; 5] = ["accuracy", "f1", "matthews", "pearson", "spearman"];
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.metrics.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    let is_main = |n: &String| rows.iter().any(|r| r.main_metric.as_ref() == Some(n));
    names.sort_by_key(|n| {
        let rank = ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len());
        (!is_main(n), rank)
    });
    names
}

/// How a metric is named in a Markdown header: `dev accuracy`, `dev F1`, `dev Pearson`.
fn metric_header(name: &str) -> String {
    let shown = match name {
        "f1" => "F1",
        "matthews" => "Matthews",
        "pearson" => "Pearson",
        "spearman" => "Spearman",
        other => other,
    };
    format!("dev {shown}")
}

fn columns(rows: &[ReportRow]) -> Vec<Column> {
    use Kind::*;
    let mut cols = vec![
        Column::new("run", "run", Text, Box::new(|r| Cell::text(&r.run))),
        Column::new(
            "status",
            "status",
            Text,
            Box::new(|r| Cell::text(&r.status)),
        ),
        Column::new("task", "task", Text, Box::new(|r| Cell::text(&r.task))),
        Column::new(
            "method",
            "method",
            Text,
            Box::new(|r| Cell::text(&r.method)),
        ),
        Column::new("kept", "kept", Text, Box::new(|r| Cell::text(&r.kept))),
        Column::new(
            "mask",
            "mask",
            Text,
            Box::new(|r| Cell::text(r.mask.as_deref().unwrap_or(""))),
        ),
        Column::new(
            "",
            "keep_ratio",
            Fraction,
            Box::new(|r| Cell::opt(r.keep_ratio)),
        ),
        Column::new(
            "",
            "sparsity",
            Fraction,
            Box::new(|r| Cell::opt(r.sparsity)),
        ),
        Column::new("lr", "lr", Lr, Box::new(|r| Cell::opt(r.lr))),
        Column::new(
            "seed",
            "seed",
            Plain,
            Box::new(|r| Cell::opt(r.seed.map(|s| s as f64))),
        ),
        Column::new(
            "steps",
            "steps",
            Count,
            Box::new(|r| Cell::count(Some(r.steps))),
        )
        .stat("steps"),
    ];
    for name in metric_names(rows) {
        let (header, csv) = (metric_header(&name), format!("dev_{name}"));
        let get: Getter = Box::new(move |r| Cell::opt(r.metrics.get(&name).copied()));
        cols.push(Column::new(&header, &csv, Metric, get).stat(&header));
    }
    cols.extend([
        Column::new("best (step)", "", Text, Box::new(best_text)),
        Column::new(
            "",
            "best_metric",
            Text,
            Box::new(|r| {
                r.best
                    .as_ref()
                    .map_or(Cell::Empty, |b| Cell::text(&b.metric))
            }),
        ),
        Column::new(
            "",
            "best_value",
            Metric,
            Box::new(|r| Cell::opt(r.best.as_ref().map(|b| b.value))),
        )
        .stat("best"),
        Column::new(
            "",
            "best_step",
            Count,
            Box::new(|r| Cell::count(r.best.as_ref().map(|b| b.step))),
        ),
        Column::new(
            "entries trained",
            "trainable_entries",
            Count,
            Box::new(|r| Cell::count(r.trainable_entries)),
        )
        .stat("entries trained"),
        Column::new(
            "optimizer state entries",
            "optimizer_state_entries",
            Count,
            Box::new(|r| Cell::count(r.optimizer_state_entries)),
        )
        .stat("optimizer state entries"),
        Column::new(
            "wall time",
            "duration_secs",
            Minutes,
            Box::new(|r| Cell::opt(r.duration_secs)),
        )
        .stat("wall time"),
        Column::new(
            "examples/s",
            "examples_per_sec",
            Rate,
            Box::new(|r| Cell::opt(r.examples_per_sec)),
        )
        .stat("examples/s"),
        Column::new(
            "peak RSS",
            "peak_rss_mib",
            Mib,
            Box::new(|r| Cell::opt(r.peak_rss_mib)),
        )
        .stat("peak RSS"),
        Column::new(
            "diff",
            "diff_bytes",
            Megabytes,
            Box::new(|r| Cell::opt(r.diff_bytes.map(|b| b as f64))),
        )
        .stat("diff"),
    ]);
    cols
}

fn best_text(r: &ReportRow) -> Cell {
    r.best.as_ref().map_or(Cell::Empty, |b| {
        Cell::Text(format!("{} ({})", Kind::Metric.number(b.value), b.step))
    })
}

/// A column of a finished table.
struct Head {
    md: Option<String>,
    csv: Option<String>,
    kind: Kind,
}

/// Headers and cells, before they are written in one format.
struct Table {
    heads: Vec<Head>,
    rows: Vec<Vec<Cell>>,
    /// Cells (row, column) shown in bold in Markdown (a pivot's best cell per row).
    bold: Vec<(usize, usize)>,
}

impl Table {
    fn of_rows(columns: &[Column], rows: &[ReportRow]) -> Self {
        let heads = columns
            .iter()
            .map(|c| Head {
                md: c.md.clone(),
                csv: c.csv.clone(),
                kind: c.kind,
            })
            .collect();
        let cells = rows
            .iter()
            .map(|r| columns.iter().map(|c| c.get(r)).collect())
            .collect();
        Self {
            heads,
            rows: cells,
            bold: Vec::new(),
        }
        .without_empty_columns()
    }

    fn of_groups(columns: &[Column], keys: &[GroupKey], groups: &[GroupRow]) -> Self {
        let text = |name: &str| Head {
            md: Some(name.to_string()),
            csv: Some(name.to_string()),
            kind: Kind::Text,
        };
        let mut heads: Vec<Head> = keys.iter().map(|k| text(k.name())).collect();
        heads.push(Head {
            kind: Kind::Count,
            ..text("runs")
        });
        heads.extend([text("seeds"), text("status")]);
        let stats: Vec<&Column> = columns.iter().filter(|c| c.stat_md.is_some()).collect();
        heads.extend(stats.iter().map(|c| Head {
            md: c.stat_md.clone(),
            csv: c.csv.clone(),
            kind: c.kind,
        }));
        let rows = groups
            .iter()
            .map(|g| {
                let mut cells: Vec<Cell> = keys
                    .iter()
                    .map(|k| Cell::text(g.key.get(k.name()).map_or("", String::as_str)))
                    .collect();
                let seeds: Vec<String> = g.seeds.iter().map(u64::to_string).collect();
                cells.push(Cell::Num(g.runs.len() as f64));
                cells.push(Cell::text(&seeds.join(", ")));
                cells.push(Cell::Text(g.status_text()));
                cells.extend(stats.iter().map(|c| {
                    c.csv
                        .as_ref()
                        .and_then(|name| g.stats.get(name))
                        .map_or(Cell::Empty, |s| Cell::Stat(*s))
                }));
                cells
            })
            .collect();
        Self {
            heads,
            rows,
            bold: Vec::new(),
        }
        .without_empty_columns()
    }

    /// Drops the columns no row has a value in (only before any cell is bold).
    fn without_empty_columns(self) -> Self {
        let keep: Vec<bool> = (0..self.heads.len())
            .map(|i| self.rows.iter().any(|r| r[i] != Cell::Empty))
            .collect();
        fn pick<T>(v: Vec<T>, keep: &[bool]) -> Vec<T> {
            v.into_iter()
                .zip(keep)
                .filter_map(|(x, k)| k.then_some(x))
                .collect()
        }
        let rows = self.rows.into_iter().map(|r| pick(r, &keep)).collect();
        Self {
            heads: pick(self.heads, &keep),
            rows,
            bold: self.bold,
        }
    }

    fn to_markdown(&self) -> String {
        let shown: Vec<usize> = (0..self.heads.len())
            .filter(|i| self.heads[*i].md.is_some())
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: Vec<String>| {
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        };
        line(
            &mut out,
            shown
                .iter()
                .map(|i| self.heads[*i].md.clone().unwrap_or_default())
                .collect(),
        );
        let _ = writeln!(out, "{}|", "|---".repeat(shown.len()));
        for (r, row) in self.rows.iter().enumerate() {
            line(
                &mut out,
                shown
                    .iter()
                    .map(|&i| {
                        let text = row[i].markdown(self.heads[i].kind);
                        if self.bold.contains(&(r, i)) && !text.is_empty() {
                            format!("**{text}**")
                        } else {
                            text
                        }
                    })
                    .collect(),
            );
        }
        out
    }

    fn to_csv(&self) -> Result<String> {
        let shown: Vec<usize> = (0..self.heads.len())
            .filter(|i| self.heads[*i].csv.is_some())
            .collect();
        let grouped = |i: usize| self.rows.iter().any(|r| matches!(r[i], Cell::Stat(_)));
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header = Vec::new();
        for &i in &shown {
            let name = self.heads[i].csv.clone().unwrap_or_default();
            if grouped(i) {
                header.extend([format!("{name}_mean"), format!("{name}_std")]);
            } else {
                header.push(name);
            }
        }
        writer.write_record(&header)?;
        for row in &self.rows {
            let mut record = Vec::new();
            for &i in &shown {
                match &row[i] {
                    Cell::Empty if grouped(i) => record.extend([String::new(), String::new()]),
                    Cell::Empty => record.push(String::new()),
                    Cell::Text(s) => record.push(s.clone()),
                    Cell::Num(v) => record.push(format!("{v}")),
                    Cell::Stat(s) => record.extend([
                        format!("{}", s.mean),
                        s.std.map(|v| format!("{v}")).unwrap_or_default(),
                    ]),
                }
            }
            writer.write_record(&record)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| ReportError::Csv(e.into_error().into()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use finesse_train::events::EventLog;
    use finesse_train::rundir::{BestValue, MetricsFile, RunInfo, SparseSummary, write_json};
    use finesse_train::{Event, RunDir};
    use serde_json::json;

    use super::*;

    /// A real run directory (a FISH run of the tiny model, format version 1).
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../finesse-train/tests/fixtures/run-v1-fish")
    }

    /// The fixture's `run.json` with another task, method, lr and seed.
    pub(super) fn info(
        task: &str,
        method: Option<serde_json::Value>,
        lr: f64,
        seed: u64,
    ) -> RunInfo {
        let mut info = RunDir::open(fixture())
            .expect("fixture")
            .read_info()
            .expect("run.json");
        info.config.task = serde_json::from_value(json!(task)).expect("task");
        if let Some(m) = method {
            info.config.method = serde_json::from_value(m).expect("method");
        }
        info.config.lr = lr;
        info.config.seed = seed;
        info
    }

    /// A finished run's `metrics.json`: `metrics` final, the first one's best at `best`.
    pub(super) fn finished(metrics: &[(&str, f64)], best: (f64, usize), secs: f64) -> MetricsFile {
        MetricsFile {
            format_version: 2,
            final_metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            best: BTreeMap::from([(
                metrics[0].0.to_string(),
                BestValue {
                    value: best.0,
                    step: best.1,
                },
            )]),
            steps: 250,
            duration_secs: secs,
            train_examples_per_sec: 14.5,
            train_tokens_per_sec: 200.0,
            peak_rss_mib: Some(1127.0),
            optimizer_state_entries: 45_427_972,
            ..MetricsFile::default()
        }
    }

    pub(super) fn start(trainable_params: usize) -> Event {
        Event::Start {
            total_steps: 250,
            steps_per_epoch: 2105,
            train_examples: 67349,
            eval_examples: 872,
            start_step: 0,
            trainable_params,
            total_params: 22_713_986,
        }
    }

    pub(super) fn step(step: usize) -> Event {
        Event::Step {
            step,
            epoch: 0.1,
            loss: 0.5,
            lr: 1e-3,
            examples_per_sec: 20.0,
            tokens_per_sec: 300.0,
            grad_norm: 1.0,
            comm: None,
        }
    }

    pub(super) fn eval(step: usize, metrics: &[(&str, f64)]) -> Event {
        Event::Eval {
            step,
            split: "dev".into(),
            loss: 0.4,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            duration_secs: 1.0,
        }
    }

    pub(super) fn end(secs: f64) -> Event {
        Event::End {
            steps: 250,
            duration_secs: secs,
            examples_per_sec: 14.5,
            tokens_per_sec: 200.0,
            peak_rss_mib: Some(1127.0),
        }
    }

    /// Writes a run directory `root/name`: `run.json`, the events, and `metrics.json` when
    /// given (a finished run).
    pub(super) fn write_run(
        root: &Path,
        name: &str,
        info: &RunInfo,
        metrics: Option<&MetricsFile>,
        events: &[Event],
    ) -> PathBuf {
        let dir = RunDir::new(root.join(name));
        dir.create().expect("create");
        write_json(&dir.run_json(), info).expect("run.json");
        let mut log = EventLog::open(&dir.events()).expect("events");
        for e in events {
            log.append(e).expect("append");
        }
        if let Some(m) = metrics {
            write_json(&dir.metrics(), m).expect("metrics.json");
        }
        dir.root
    }

    /// A Markdown table's rows of cells (header first, separator left out), `\|` unescaped.
    pub(super) fn parse_markdown(md: &str) -> Vec<Vec<String>> {
        md.lines()
            .filter(|l| !l.starts_with("|---"))
            .map(|line| {
                let inner = line
                    .strip_prefix('|')
                    .and_then(|l| l.strip_suffix('|'))
                    .expect("a table line");
                let mut cells = vec![String::new()];
                let mut chars = inner.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if chars.peek() == Some(&'|') => {
                            cells.last_mut().expect("a cell").push('|');
                            chars.next();
                        }
                        '|' => cells.push(String::new()),
                        c => cells.last_mut().expect("a cell").push(c),
                    }
                }
                cells.iter().map(|c| c.trim().to_string()).collect()
            })
            .collect()
    }

    /// CSV records as maps from header to field.
    pub(super) fn parse_csv(text: &str) -> Vec<BTreeMap<String, String>> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().expect("headers").clone();
        reader
            .records()
            .map(|r| {
                let r = r.expect("record");
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_finished_run_reads_into_its_row() {
        let run = Run::open(&fixture()).expect("fixture");
        let row = ReportRow::of(&run);
        assert_eq!(row.run, "run-v1-fish");
        assert_eq!(row.status, "finished");
        assert_eq!((row.task.as_str(), row.method.as_str()), ("SST-2", "fish"));
        // The mask kept 1326 of 26530 entries.
        assert_eq!(row.kept, "5.00%");
        assert_eq!(row.keep_ratio, Some(1326.0 / 26530.0));
        assert_eq!((row.lr, row.seed, row.steps), (Some(0.001), Some(42), 12));
        assert_eq!(row.metrics, BTreeMap::from([("accuracy".to_string(), 0.5)]));
        assert_eq!(row.main_metric.as_deref(), Some("accuracy"));
        assert_eq!(
            row.best,
            Some(BestMetric {
                metric: "accuracy".into(),
                value: 0.5,
                step: 6
            })
        );
        assert_eq!(row.trainable_entries, Some(1326));
        assert_eq!(row.optimizer_state_entries, Some(2652));
        assert_eq!(row.duration_secs, Some(0.075879317));
        assert_eq!(row.examples_per_sec, Some(2985.3499548496916));
        assert_eq!(row.peak_rss_mib, Some(27.984375));
        assert_eq!(row.diff_bytes, Some(28152));
        assert_eq!(
            Report::new(&[run]).to_markdown(),
            "| run | status | task | method | kept | lr | seed | steps | dev accuracy | best (step) \
             | entries trained | optimizer state entries | wall time | examples/s | peak RSS | diff |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | run-v1-fish | finished | SST-2 | fish | 5.00% | 1e-3 | 42 | 12 | 0.5000 | 0.5000 (6) \
             | 1,326 | 2,652 | 0.0 min | 2985.3 | 28 MiB | 0.03 MB |\n"
        );
    }

    #[test]
    fn the_kept_cell_says_how_a_mask_was_cut_when_not_by_one_global_top_k() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let kept_of = |name: &str, selection: serde_json::Value| {
            let method = json!({"kind": "random", "selection": selection});
            let dir = write_run(
                tmp.path(),
                name,
                &info("sst2", Some(method), 1e-2, 42),
                None,
                &[start(113_569)],
            );
            ReportRow::of(&Run::open(&dir).expect("run")).kept
        };
        let budget = json!({"ratio": 0.005});
        let global = json!({"budget": budget, "scope": "global", "head_in_budget": true});
        assert_eq!(kept_of("global", global), "0.50%");
        let per_tensor = json!({"budget": budget, "scope": "per-tensor", "head_in_budget": true});
        assert_eq!(kept_of("per-tensor", per_tensor), "0.50% per-tensor");
        let excluding = json!({"budget": budget, "scope": "per-layer", "head_in_budget": true,
            "exclude": ["pooler", "word-embeddings"]});
        assert_eq!(
            kept_of("per-layer", excluding),
            "0.50% per-layer without pooler, word-embeddings"
        );
    }

    /// Three runs: dense SST-2 (finished), a random mask (interrupted after 200 steps), and
    /// an STS-B run with a pipe in its freeze spec.
    fn three_runs(root: &Path) -> Vec<Run> {
        let dense = info("sst2", Some(json!({"kind": "dense"})), 1e-4, 42);
        let m = finished(&[("accuracy", 0.8521)], (0.8521, 250), 570.0);
        write_run(
            root,
            "dense",
            &dense,
            Some(&m),
            &[start(22_713_986), step(250), end(570.0)],
        );
        let random = json!({"kind": "random", "selection":
            {"budget": {"ratio": 0.005}, "scope": "global", "head_in_budget": true}});
        let random = info("sst2", Some(random), 1e-2, 43);
        let events = [
            start(113_569),
            step(100),
            eval(100, &[("accuracy", 0.8)]),
            step(200),
            eval(200, &[("accuracy", 0.75)]),
        ];
        write_run(root, "random", &random, None, &events);
        let freeze = info(
            "stsb",
            Some(json!({"kind": "freeze", "groups": ["regex:a|b"]})),
            1e-4,
            7,
        );
        let mut m = finished(&[("pearson", 0.85), ("spearman", 0.84)], (0.86, 200), 90.0);
        m.sparse = Some(SparseSummary {
            method: "freeze".into(),
            kept: 1_000_000,
            total: 22_713_986,
            diff_bytes: 1_390_000,
            ..SparseSummary::default()
        });
        write_run(
            root,
            "stsb-freeze",
            &freeze,
            Some(&m),
            &[start(0), end(90.0)],
        );
        open_all(&[root.to_path_buf()]).expect("open")
    }

    #[test]
    fn markdown_and_csv_parse_back_to_the_runs_values() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let report = Report::new(&three_runs(tmp.path()));
        let md = parse_markdown(&report.to_markdown());
        let want = [
            vec![
                "run",
                "status",
                "task",
                "method",
                "kept",
                "lr",
                "seed",
                "steps",
                "dev accuracy",
                "dev Pearson",
                "dev Spearman",
                "best (step)",
                "entries trained",
                "optimizer state entries",
                "wall time",
                "examples/s",
                "peak RSS",
                "diff",
            ],
            vec![
                "dense",
                "finished",
                "SST-2",
                "dense",
                "all",
                "1e-4",
                "42",
                "250",
                "0.8521",
                "",
                "",
                "0.8521 (250)",
                "22,713,986",
                "45,427,972",
                "9.5 min",
                "14.5",
                "1127 MiB",
                "",
            ],
            vec![
                "random",
                "interrupted",
                "SST-2",
                "random",
                "0.50%",
                "1e-2",
                "43",
                "200",
                "0.7500",
                "",
                "",
                "0.8000 (100)",
                "113,569",
                "",
                "",
                "",
                "",
                "",
            ],
            vec![
                "stsb-freeze",
                "finished",
                "STS-B",
                "freeze",
                "frozen: regex:a|b",
                "1e-4",
                "7",
                "250",
                "",
                "0.8500",
                "0.8400",
                "0.8600 (200)",
                "1,000,000",
                "45,427,972",
                "1.5 min",
                "14.5",
                "1127 MiB",
                "1.39 MB",
            ],
        ];
        let want: Vec<Vec<String>> = want
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        assert_eq!(md, want);

        let csv = parse_csv(&report.to_csv().expect("csv"));
        assert_eq!(csv.len(), 3);
        let field = |row: usize, name: &str| csv[row].get(name).cloned().unwrap_or_default();
        assert_eq!(field(0, "keep_ratio"), "");
        assert_eq!(field(1, "keep_ratio").parse::<f64>().ok(), Some(0.005));
        assert_eq!(field(0, "dev_accuracy").parse::<f64>().ok(), Some(0.8521));
        assert_eq!(field(2, "dev_pearson").parse::<f64>().ok(), Some(0.85));
        assert_eq!(field(0, "duration_secs").parse::<f64>().ok(), Some(570.0));
        assert_eq!(field(2, "diff_bytes"), "1390000");
        assert_eq!(field(0, "optimizer_state_entries"), "45427972");
        assert_eq!(field(0, "lr").parse::<f64>().ok(), Some(1e-4));
        assert_eq!(
            (
                field(1, "best_metric").as_str(),
                field(1, "best_step").as_str()
            ),
            ("accuracy", "100")
        );
        assert_eq!(field(2, "kept"), "frozen: regex:a|b");
        assert_eq!(field(1, "status"), "interrupted");
        assert!(
            !csv[0].contains_key("sparsity"),
            "a column no run has is left out"
        );

        let json: serde_json::Value =
            serde_json::from_str(&report.to_json().expect("json")).expect("parse");
        assert_eq!(json["rows"][1]["metrics"]["accuracy"], 0.75);
        assert_eq!(json["rows"][2]["diff_bytes"], 1_390_000);
        assert!(json.get("groups").is_none());
    }

    #[test]
    fn grouping_by_method_gives_mean_and_sample_std_over_finished_seeds() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for (seed, acc, secs) in [
            (42, 0.8165, 300.0),
            (43, 0.7924, 306.0),
            (44, 0.7878, 312.0),
        ] {
            let m = finished(&[("accuracy", acc)], (acc, 250), secs);
            let events = [start(113_569), end(secs)];
            write_run(
                root,
                &format!("fish-{seed}"),
                &info("sst2", None, 1e-3, seed),
                Some(&m),
                &events,
            );
        }
        // Unfinished: counted, not averaged.
        let events = [start(113_569), eval(100, &[("accuracy", 0.5)])];
        write_run(
            root,
            "fish-45",
            &info("sst2", None, 1e-3, 45),
            None,
            &events,
        );
        let dense = info("sst2", Some(json!({"kind": "dense"})), 1e-4, 42);
        let m = finished(&[("accuracy", 0.8521)], (0.8521, 250), 570.0);
        write_run(
            root,
            "z-dense",
            &dense,
            Some(&m),
            &[start(22_713_986), end(570.0)],
        );

        let runs = open_all(&[root.to_path_buf()]).expect("open");
        let report = Report::new(&runs).grouped(&[GroupKey::Method]);
        let fish = &report.groups[0];
        assert_eq!(fish.runs, ["fish-42", "fish-43", "fish-44", "fish-45"]);
        assert_eq!(fish.status_text(), "3 finished, 1 interrupted");
        let acc = fish.stats["dev_accuracy"];
        let mean = (0.8165 + 0.7924 + 0.7878) / 3.0;
        let ss = [0.8165, 0.7924, 0.7878]
            .iter()
            .map(|v: &f64| (v - mean).powi(2))
            .sum::<f64>();
        assert_eq!(acc.n, 3);
        assert!((acc.mean - mean).abs() < 1e-12);
        assert!((acc.std.expect("3 values") - (ss / 2.0).sqrt()).abs() < 1e-12);

        let md = parse_markdown(&report.to_markdown());
        let col = |name: &str| md[0].iter().position(|h| h == name).expect(name);
        assert_eq!(md[0][..4], ["method", "runs", "seeds", "status"]);
        assert_eq!(md[1][col("method")], "fish");
        assert_eq!(md[1][col("seeds")], "42, 43, 44, 45");
        // Sample std (n − 1): 0.0154; the population std would be 0.0126.
        assert_eq!(md[1][col("dev accuracy")], "0.7989 ± 0.0154");
        assert_eq!(md[1][col("wall time")], "5.1 ± 0.1 min");
        assert_eq!(md[1][col("entries trained")], "113,569 ± 0");
        assert_eq!(md[2][col("method")], "dense");
        assert_eq!(md[2][col("dev accuracy")], "0.8521", "one run: no std");

        let csv = parse_csv(&report.to_csv().expect("csv"));
        assert_eq!(csv[0]["runs"], "4");
        assert_eq!(
            csv[0]["dev_accuracy_mean"].parse::<f64>().ok(),
            Some(acc.mean)
        );
        assert_eq!(csv[0]["dev_accuracy_std"].parse::<f64>().ok(), acc.std);
        assert_eq!(
            csv[0]["duration_secs_mean"].parse::<f64>().ok(),
            Some(306.0)
        );
        assert_eq!(csv[1]["dev_accuracy_std"], "");

        let by_method_lr =
            Report::new(&runs).grouped(&GroupKey::parse_list("method,lr").expect("keys"));
        let md = parse_markdown(&by_method_lr.to_markdown());
        assert_eq!(md[0][..3], ["method", "lr", "runs"]);
        assert_eq!(md[1][..3], ["fish", "1e-3", "4"]);
    }

    #[test]
    fn group_keys_parse_by_name() {
        assert_eq!(
            GroupKey::parse_list("method, LR,task,kept,seed"),
            Ok(vec![
                GroupKey::Method,
                GroupKey::Lr,
                GroupKey::Task,
                GroupKey::Kept,
                GroupKey::Seed
            ])
        );
        let err = GroupKey::parse_list("method,colour").expect_err("unknown");
        assert!(err.to_string().contains("`colour`"), "{err}");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(22_713_986.0), "22,713,986");
        assert_eq!(thousands(-1234.4), "-1,234");
    }
}
