//! The runs table as data: one [`RunRow`] per run directory, the columns, sorting and filtering.
//! No window needed; the runs browser (`ui/runs.rs`) only draws what [`RunsTable::visible`]
//! returns.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use finesse_report::runs::{Run, format_lr};
use finesse_train::RunStatus;
use finesse_train::rundir::main_metric;
use serde::{Deserialize, Serialize};

use crate::format;

/// One run directory as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    /// The run directory.
    pub path: PathBuf,
    /// The folder's name.
    pub name: String,
    /// Task name (`SST-2`), `?` without a `run.json`.
    pub task: String,
    /// Method name (`fish`, `dense`, …), `?` without a `run.json`.
    pub method: String,
    /// What the method kept or pruned, as the report prints it (`0.50%`, `95.0% sparse`, `all`).
    pub budget: String,
    /// The kept fraction (fixed-subset methods) or 1 − sparsity (pruning, supermask): the key
    /// the budget column sorts by.
    pub keep_ratio: Option<f64>,
    /// Peak learning rate.
    pub lr: Option<f64>,
    /// Where the run stands.
    pub status: RunStatus,
    /// Steps done and in all, for runs that are not finished.
    pub steps: Option<(usize, usize)>,
    /// The main dev metric: final (`metrics.json`), else the latest evaluation.
    pub metric: Option<(String, f64)>,
    /// The best value of the main metric over the evaluations, with its step.
    pub best: Option<(f64, usize)>,
    /// Wall time: the finished run's, or the time since its start.
    pub duration_secs: Option<f64>,
    /// Start (Unix seconds).
    pub started_at: Option<f64>,
    /// The run's files could not be read: the error, shown instead of the values.
    pub error: Option<String>,
}

impl RunRow {
    /// The row of a run read through the typed readers.
    pub fn of_run(run: &Run) -> Self {
        let summary = &run.summary;
        let progress = &summary.progress;
        let metric = summary
            .metrics
            .as_ref()
            .and_then(|m| m.main_metric().map(|(k, v)| (k.to_string(), v)))
            .or_else(|| {
                progress
                    .last_metrics()
                    .and_then(|e| main_metric(&e.metrics).map(|(k, v)| (k.to_string(), v)))
            });
        let best = metric.as_ref().and_then(|(name, _)| {
            summary
                .metrics
                .as_ref()
                .and_then(|m| m.best.get(name))
                .or_else(|| progress.best.get(name))
                .map(|b| (b.value, b.step))
        });
        let finished = summary.status == RunStatus::Finished;
        Self {
            path: summary.path.clone(),
            name: run.name(),
            task: run.task(),
            method: run.method_name().to_string(),
            budget: run.budget_text(),
            keep_ratio: run.keep_ratio().or_else(|| run.sparsity().map(|s| 1.0 - s)),
            lr: run.lr(),
            status: summary.status.clone(),
            steps: (!finished && progress.total_steps > 0)
                .then_some((progress.step, progress.total_steps)),
            metric,
            best,
            duration_secs: summary
                .metrics
                .as_ref()
                .map(|m| m.duration_secs)
                .or(progress.duration_secs)
                .or_else(|| Some(progress.updated_at? - progress.started_at?)),
            started_at: progress.started_at,
            error: None,
        }
    }

    /// The row of a folder that looks like a run but cannot be read: an error card in the table.
    pub fn unreadable(path: &Path, error: String) -> Self {
        Self {
            path: path.to_path_buf(),
            name: folder_name(path),
            task: "?".into(),
            method: "?".into(),
            budget: String::new(),
            keep_ratio: None,
            lr: None,
            status: RunStatus::Unknown,
            steps: None,
            metric: None,
            best: None,
            duration_secs: None,
            started_at: None,
            error: Some(error),
        }
    }

    /// The status cell: `finished`, `running 120/500`, `interrupted (resumable)`, `unreadable`.
    pub fn status_text(&self) -> String {
        if self.error.is_some() {
            return "unreadable".into();
        }
        let steps = self.steps.map(|(s, t)| format!(" {s}/{t}"));
        match &self.status {
            RunStatus::Running => format!("running{}", steps.unwrap_or_default()),
            RunStatus::Interrupted { resumable: true } => "interrupted (resumable)".into(),
            RunStatus::Cancelled => "cancelled (resumable)".into(),
            other => other.name().into(),
        }
    }

    /// The status filter's key: [`RunStatus::name`], or `unreadable`.
    pub fn status_key(&self) -> &'static str {
        if self.error.is_some() {
            "unreadable"
        } else {
            self.status.name()
        }
    }

    /// The text of `column`'s cell.
    pub fn cell(&self, column: Column) -> String {
        match column {
            Column::Name => self.name.clone(),
            Column::Task => self.task.clone(),
            Column::Method => self.method.clone(),
            Column::Budget => self.budget.clone(),
            Column::Lr => self.lr.map(format_lr).unwrap_or_default(),
            Column::Status => self.status_text(),
            Column::Metric => self
                .metric
                .as_ref()
                .map(|(k, v)| format!("{} {k}", format::metric(*v)))
                .unwrap_or_default(),
            Column::Best => self
                .best
                .map(|(v, step)| format!("{} @{step}", format::metric(v)))
                .unwrap_or_default(),
            Column::Duration => self.duration_secs.map(format::duration).unwrap_or_default(),
            Column::Date => self.started_at.map(format::date_utc).unwrap_or_default(),
        }
    }

    fn matches_text(&self, needle: &str) -> bool {
        [
            &self.name,
            &self.task,
            &self.method,
            &self.budget,
            &self.status_text(),
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(needle))
    }
}

fn folder_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A column of the runs table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Column {
    /// The folder's name.
    Name,
    /// GLUE task.
    Task,
    /// Method.
    Method,
    /// Kept fraction or sparsity.
    Budget,
    /// Learning rate.
    Lr,
    /// Status.
    Status,
    /// Main dev metric.
    Metric,
    /// Best main metric.
    Best,
    /// Wall time.
    Duration,
    /// Start date.
    Date,
}

impl Column {
    /// Every column, in table order.
    pub const ALL: [Self; 10] = [
        Self::Name,
        Self::Task,
        Self::Method,
        Self::Budget,
        Self::Lr,
        Self::Status,
        Self::Metric,
        Self::Best,
        Self::Duration,
        Self::Date,
    ];

    /// The header's text.
    pub fn title(self) -> &'static str {
        match self {
            Self::Name => "Run",
            Self::Task => "Task",
            Self::Method => "Method",
            Self::Budget => "Kept",
            Self::Lr => "LR",
            Self::Status => "Status",
            Self::Metric => "Dev metric",
            Self::Best => "Best",
            Self::Duration => "Duration",
            Self::Date => "Started (UTC)",
        }
    }

    /// Orders two rows by this column (the column's missing values last either way is the
    /// caller's business: see [`RunsTable::visible`]).
    fn compare(self, a: &RunRow, b: &RunRow) -> Option<Ordering> {
        fn opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<Ordering> {
            a.zip(b).and_then(|(a, b)| a.partial_cmp(&b))
        }
        match self {
            Self::Name => Some(natural_cmp(&a.name, &b.name)),
            Self::Task => Some(a.task.cmp(&b.task)),
            Self::Method => Some(a.method.cmp(&b.method)),
            Self::Budget => opt(a.keep_ratio, b.keep_ratio),
            Self::Lr => opt(a.lr, b.lr),
            Self::Status => Some(a.status_text().cmp(&b.status_text())),
            Self::Metric => opt(
                a.metric.as_ref().map(|m| m.1),
                b.metric.as_ref().map(|m| m.1),
            ),
            Self::Best => opt(a.best.map(|b| b.0), b.best.map(|b| b.0)),
            Self::Duration => opt(a.duration_secs, b.duration_secs),
            Self::Date => opt(a.started_at, b.started_at),
        }
    }

    fn has_value(self, row: &RunRow) -> bool {
        match self {
            Self::Name | Self::Task | Self::Method | Self::Status => true,
            Self::Budget => row.keep_ratio.is_some(),
            Self::Lr => row.lr.is_some(),
            Self::Metric => row.metric.is_some(),
            Self::Best => row.best.is_some(),
            Self::Duration => row.duration_secs.is_some(),
            Self::Date => row.started_at.is_some(),
        }
    }
}

/// Names with numbers in them in the order people expect: `run-2` before `run-10`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, ta), (db, tb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (na, nb) = (ta.trim_start_matches('0'), tb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else {
            ta.to_lowercase().cmp(&tb.to_lowercase())
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// The sort order: a column and a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// The column.
    pub column: Column,
    /// Smallest first.
    pub ascending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            column: Column::Date,
            ascending: false,
        }
    }
}

impl Sort {
    /// The order after clicking `column`'s header: the same column flips its direction; a new
    /// column starts ascending (names, tasks) or descending (numbers and dates: best first).
    pub fn clicked(self, column: Column) -> Self {
        if self.column == column {
            Self {
                column,
                ascending: !self.ascending,
            }
        } else {
            Self {
                column,
                ascending: matches!(
                    column,
                    Column::Name | Column::Task | Column::Method | Column::Status
                ),
            }
        }
    }
}

/// What the table shows: each set field must match (case-insensitive text anywhere in name,
/// task, method, budget or status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Free text.
    pub text: String,
    /// Only this task.
    pub task: Option<String>,
    /// Only this method.
    pub method: Option<String>,
    /// Only this status ([`RunRow::status_key`]).
    pub status: Option<String>,
}

impl Filter {
    /// Does `row` pass?
    pub fn matches(&self, row: &RunRow) -> bool {
        let needle = self.text.trim().to_lowercase();
        (needle.is_empty() || row.matches_text(&needle))
            && self.task.as_ref().is_none_or(|t| *t == row.task)
            && self.method.as_ref().is_none_or(|m| *m == row.method)
            && self.status.as_ref().is_none_or(|s| s == row.status_key())
    }

    /// Is anything filtered?
    pub fn is_active(&self) -> bool {
        !self.text.trim().is_empty()
            || self.task.is_some()
            || self.method.is_some()
            || self.status.is_some()
    }
}

/// The rows of a runs folder, kept by path.
#[derive(Clone, Debug, Default)]
pub struct RunsTable {
    rows: Vec<RunRow>,
}

impl RunsTable {
    /// All rows, in no particular order.
    pub fn rows(&self) -> &[RunRow] {
        &self.rows
    }

    /// The row of `path`.
    pub fn get(&self, path: &Path) -> Option<&RunRow> {
        self.rows.iter().find(|r| r.path == path)
    }

    /// Adds `row`, or replaces the row of the same path.
    pub fn upsert(&mut self, row: RunRow) {
        match self.rows.iter_mut().find(|r| r.path == row.path) {
            Some(old) => *old = row,
            None => self.rows.push(row),
        }
    }

    /// Removes the row of `path`.
    pub fn remove(&mut self, path: &Path) {
        self.rows.retain(|r| r.path != path);
    }

    /// Removes every row.
    pub fn clear(&mut self) {
        self.rows.clear();
    }

    /// The rows that pass `filter`, in `sort` order; rows without a value in the sort column
    /// come last in either direction; ties are broken by name.
    pub fn visible(&self, filter: &Filter, sort: Sort) -> Vec<&RunRow> {
        let mut rows: Vec<&RunRow> = self.rows.iter().filter(|r| filter.matches(r)).collect();
        rows.sort_by(|a, b| {
            let (ha, hb) = (sort.column.has_value(a), sort.column.has_value(b));
            if ha != hb {
                return hb.cmp(&ha);
            }
            let ord = sort.column.compare(a, b).unwrap_or(Ordering::Equal);
            let ord = if sort.ascending { ord } else { ord.reverse() };
            ord.then_with(|| natural_cmp(&a.name, &b.name))
        });
        rows
    }

    /// The distinct values of a text field (for the filter menus), sorted.
    pub fn distinct(&self, field: impl for<'a> Fn(&'a RunRow) -> &'a str) -> Vec<String> {
        let mut values: Vec<String> = self.rows.iter().map(|r| field(r).to_string()).collect();
        values.sort();
        values.dedup();
        values
    }
}

/// Writes the runs in `paths` as `finesse report` does (Markdown; CSV or JSON when `out` ends in
/// `.csv` / `.json`), atomically; the text written is returned.
///
/// # Errors
/// A run that cannot be read, or the file that cannot be written, named.
pub fn export_runs(paths: &[PathBuf], out: &Path) -> Result<String, String> {
    if paths.is_empty() {
        return Err("no runs to export (the filters hide them all)".into());
    }
    let report = finesse_report::report::Report::open(paths).map_err(|e| e.to_string())?;
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let text = match ext.as_deref() {
        Some("csv") => report.to_csv().map_err(|e| e.to_string())?,
        Some("json") => report.to_json().map_err(|e| e.to_string())? + "\n",
        _ => report.to_markdown(),
    };
    finesse_bert::io::write_atomic(out, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", out.display()))?;
    Ok(text)
}

/// The runs in `paths` as a Markdown table (`finesse report`'s), for the clipboard.
///
/// # Errors
/// A run that cannot be read.
pub fn runs_markdown(paths: &[PathBuf]) -> Result<String, String> {
    finesse_report::report::Report::open(paths)
        .map(|r| r.to_markdown())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, method: &str, metric: Option<f64>, status: RunStatus) -> RunRow {
        RunRow {
            path: PathBuf::from("/runs").join(name),
            name: name.into(),
            task: "SST-2".into(),
            method: method.into(),
            budget: String::new(),
            keep_ratio: None,
            lr: Some(1e-3),
            status,
            steps: None,
            metric: metric.map(|v| ("accuracy".to_string(), v)),
            best: metric.map(|v| (v, 10)),
            duration_secs: Some(1.0),
            started_at: Some(0.0),
            error: None,
        }
    }

    fn table() -> RunsTable {
        let mut t = RunsTable::default();
        t.upsert(row("fish-10", "fish", Some(0.91), RunStatus::Finished));
        t.upsert(row("fish-2", "fish", None, RunStatus::Running));
        t.upsert(row("dense", "dense", Some(0.93), RunStatus::Finished));
        t.upsert(row(
            "random",
            "random",
            Some(0.85),
            RunStatus::Interrupted { resumable: true },
        ));
        t
    }

    fn names(rows: &[&RunRow]) -> Vec<String> {
        rows.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn sorting_by_name_is_natural_and_flips_on_a_second_click() {
        let t = table();
        let sort = Sort::default().clicked(Column::Name);
        assert!(sort.ascending);
        assert_eq!(
            names(&t.visible(&Filter::default(), sort)),
            ["dense", "fish-2", "fish-10", "random"]
        );
        let sort = sort.clicked(Column::Name);
        assert!(!sort.ascending);
        assert_eq!(
            names(&t.visible(&Filter::default(), sort)),
            ["random", "fish-10", "fish-2", "dense"]
        );
    }

    #[test]
    fn numeric_columns_start_best_first_and_keep_missing_values_last() {
        let t = table();
        let sort = Sort::default().clicked(Column::Metric);
        assert!(!sort.ascending);
        assert_eq!(
            names(&t.visible(&Filter::default(), sort)),
            ["dense", "fish-10", "random", "fish-2"]
        );
        let sort = sort.clicked(Column::Metric);
        assert_eq!(
            names(&t.visible(&Filter::default(), sort)),
            ["random", "fish-10", "dense", "fish-2"]
        );
    }

    #[test]
    fn filters_combine_text_method_and_status() {
        let t = table();
        let sort = Sort::default().clicked(Column::Name);
        let text = Filter {
            text: "  FISH ".into(),
            ..Filter::default()
        };
        assert_eq!(names(&t.visible(&text, sort)), ["fish-2", "fish-10"]);
        let running = Filter {
            status: Some("running".into()),
            ..text.clone()
        };
        assert_eq!(names(&t.visible(&running, sort)), ["fish-2"]);
        let dense = Filter {
            method: Some("dense".into()),
            ..Filter::default()
        };
        assert_eq!(names(&t.visible(&dense, sort)), ["dense"]);
        assert!(dense.is_active());
        assert!(!Filter::default().is_active());
        // The status cell's words are searchable too.
        let resumable = Filter {
            text: "resumable".into(),
            ..Filter::default()
        };
        assert_eq!(names(&t.visible(&resumable, sort)), ["random"]);
    }

    #[test]
    fn upsert_replaces_the_row_of_the_same_path_and_remove_drops_it() {
        let mut t = table();
        t.upsert(row("dense", "dense", Some(0.5), RunStatus::Finished));
        assert_eq!(t.rows().len(), 4);
        assert_eq!(
            t.get(Path::new("/runs/dense"))
                .and_then(|r| r.metric.clone()),
            Some(("accuracy".into(), 0.5))
        );
        t.remove(Path::new("/runs/dense"));
        assert_eq!(t.rows().len(), 3);
        assert_eq!(t.distinct(|r| &r.method), ["fish", "random"]);
    }

    #[test]
    fn status_cells_say_whether_a_run_can_resume() {
        let mut r = row("a", "fish", None, RunStatus::Running);
        r.steps = Some((120, 500));
        assert_eq!(r.status_text(), "running 120/500");
        r.status = RunStatus::Interrupted { resumable: false };
        assert_eq!(r.status_text(), "interrupted");
        let bad = RunRow::unreadable(Path::new("/runs/x"), "bad json".into());
        assert_eq!(bad.status_text(), "unreadable");
        assert_eq!(bad.status_key(), "unreadable");
    }
}
