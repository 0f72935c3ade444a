//! A pivot of the run table (`finesse report --pivot lr`): one row per combination of the other
//! identity keys (task, method, kept, the mask file a FISH run trained, lr — without the
//! pivot's key; seeds are always pooled),
//! one column per value of the pivot's key, each cell the **task's main dev metric** — the
//! mean ± sample std over the finished runs that fall in it. The learning-rate sweep and the
//! seed table of a paper, straight from the run directories:
//!
//! - `--pivot lr`: method × lr; the best lr of each row is bold and named in the last column;
//! - `--pivot seed`: one column per seed and a last column with mean ± std over the row;
//! - `--pivot kept`, `--pivot task`, `--pivot method` likewise (best cell bold).
//!
//! Unfinished runs are not averaged; a cell with no finished run shows their status.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Cell, GroupKey, Head, Kind, MeanStd, ReportRow, Table, by_keys, metric_header};

/// One cell of a pivot: the runs that fall in it and the main metric over the finished ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PivotCell {
    /// Mean ± std of the main metric over the finished runs (`None`: none finished).
    pub stat: Option<MeanStd>,
    /// The runs in the cell, in table order.
    pub runs: Vec<String>,
    /// Statuses of its unfinished runs (`running`, `interrupted`, …).
    pub unfinished: Vec<String>,
}

/// One row of a pivot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PivotRow {
    /// The row's identity keys (`task`, `method`, `kept`, `mask`, `lr` without the pivot's key).
    pub key: BTreeMap<&'static str, String>,
    /// One cell per pivot value, in [`Pivot::values`] order.
    pub cells: Vec<PivotCell>,
    /// The index of the cell with the highest mean (GLUE's main metrics are all
    /// higher-is-better); `None` when no cell has a finished run.
    pub best: Option<usize>,
    /// Mean ± std over every finished run of the row (the seed statistics of `--pivot seed`).
    pub all: Option<MeanStd>,
}

/// A pivot of the run table on one key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pivot {
    /// The key whose values are the columns.
    pub key: GroupKey,
    /// The keys that identify a row, in table order.
    pub row_keys: Vec<GroupKey>,
    /// The main metric of the cells (`accuracy`, …; `main metric` when the tasks differ).
    pub metric: String,
    /// The key's values, in column order (numeric order for lr, seed and kept).
    pub values: Vec<String>,
    /// The rows, in order of their first run.
    pub rows: Vec<PivotRow>,
}

impl Pivot {
    /// The pivot of `rows` on `key`.
    pub fn of(rows: &[ReportRow], key: GroupKey) -> Self {
        // The mask file tells apart FISH runs of one budget whose masks differ (per-tensor,
        // pooler excluded, …); its column is left out when no run trained a given mask.
        let any_mask = rows.iter().any(|r| r.mask.is_some());
        let row_keys: Vec<GroupKey> = [
            GroupKey::Task,
            GroupKey::Method,
            GroupKey::Kept,
            GroupKey::Mask,
            GroupKey::Lr,
        ]
        .into_iter()
        .filter(|k| *k != key && (*k != GroupKey::Mask || any_mask))
        .collect();
        let values = column_values(rows, key);
        let pivot_rows = by_keys(rows, &row_keys)
            .into_iter()
            .map(|(id, runs)| pivot_row(&row_keys, id, &runs, key, &values))
            .collect();
        let mut metrics: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.main_metric.as_deref())
            .collect();
        metrics.sort_unstable();
        metrics.dedup();
        let metric = match metrics.as_slice() {
            [one] => (*one).to_string(),
            _ => "main metric".to_string(),
        };
        Self {
            key,
            row_keys,
            metric,
            values,
            rows: pivot_rows,
        }
    }

    /// The pivot as a table: key columns, one column per value, then the best value (or, for
    /// seeds, the mean ± std over the row).
    pub(super) fn table(&self) -> Table {
        let text = |md: String, csv: String| Head {
            md: Some(md),
            csv: Some(csv),
            kind: Kind::Text,
        };
        let mut heads: Vec<Head> = self
            .row_keys
            .iter()
            .map(|k| text(k.name().to_string(), k.name().to_string()))
            .collect();
        let key = self.key.name();
        heads.extend(self.values.iter().map(|v| Head {
            md: Some(match self.key {
                GroupKey::Task | GroupKey::Method | GroupKey::Mask => v.clone(),
                _ => format!("{key} {v}"),
            }),
            csv: Some(format!("{key}={v}")),
            kind: Kind::Metric,
        }));
        let shown = metric_header(&self.metric);
        let seeds = self.key == GroupKey::Seed;
        heads.push(if seeds {
            Head {
                md: Some(format!("{shown}: mean ± std")),
                csv: Some(self.metric.replace(' ', "_")),
                kind: Kind::Metric,
            }
        } else {
            text(format!("best {key} ({shown})"), format!("best_{key}"))
        });
        let mut bold = Vec::new();
        let rows = self
            .rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let mut cells: Vec<Cell> = self
                    .row_keys
                    .iter()
                    .map(|k| Cell::text(row.key.get(k.name()).map_or("", String::as_str)))
                    .collect();
                let first = cells.len();
                cells.extend(
                    row.cells
                        .iter()
                        .map(|c| match (&c.stat, c.unfinished.first()) {
                            (Some(s), _) => Cell::Stat(*s),
                            (None, Some(status)) => Cell::text(status),
                            (None, None) => Cell::Empty,
                        }),
                );
                if seeds {
                    cells.push(row.all.map_or(Cell::Empty, Cell::Stat));
                } else {
                    if let Some(b) = row.best {
                        bold.push((r, first + b));
                    }
                    cells.push(
                        row.best
                            .map_or(Cell::Empty, |b| Cell::text(&self.values[b])),
                    );
                }
                cells
            })
            .collect();
        Table { heads, rows, bold }
    }
}

/// The distinct values of `key` over `rows`: numeric order when every row has a number for it
/// (lr, seed, kept ratio), else order of first appearance.
fn column_values(rows: &[ReportRow], key: GroupKey) -> Vec<String> {
    let number = |r: &ReportRow| match key {
        GroupKey::Lr => r.lr,
        GroupKey::Seed => r.seed.map(|s| s as f64),
        GroupKey::Kept => r.keep_ratio.or(r.sparsity),
        GroupKey::Task | GroupKey::Method | GroupKey::Mask => None,
    };
    let mut seen: Vec<(String, Option<f64>)> = Vec::new();
    for r in rows {
        let v = key.value(r);
        if !seen.iter().any(|(s, _)| *s == v) {
            seen.push((v, number(r)));
        }
    }
    if seen.iter().all(|(_, n)| n.is_some()) {
        seen.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    }
    seen.into_iter().map(|(v, _)| v).collect()
}

fn pivot_row(
    row_keys: &[GroupKey],
    id: Vec<String>,
    runs: &[&ReportRow],
    key: GroupKey,
    values: &[String],
) -> PivotRow {
    let main = |r: &ReportRow| {
        r.main_metric
            .as_ref()
            .and_then(|m| r.metrics.get(m))
            .copied()
    };
    let cells: Vec<PivotCell> = values
        .iter()
        .map(|v| {
            let inside: Vec<&ReportRow> = runs
                .iter()
                .copied()
                .filter(|r| key.value(r) == *v)
                .collect();
            let done: Vec<f64> = inside
                .iter()
                .filter(|r| r.is_finished())
                .filter_map(|r| main(r))
                .collect();
            PivotCell {
                stat: MeanStd::of(&done),
                runs: inside.iter().map(|r| r.run.clone()).collect(),
                unfinished: inside
                    .iter()
                    .filter(|r| !r.is_finished())
                    .map(|r| r.status.clone())
                    .collect(),
            }
        })
        .collect();
    let best = cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.stat.map(|s| (i, s.mean)))
        .fold(None, |best: Option<(usize, f64)>, (i, m)| match best {
            Some((_, b)) if b >= m => best,
            _ => Some((i, m)),
        })
        .map(|(i, _)| i);
    let all: Vec<f64> = runs
        .iter()
        .filter(|r| r.is_finished())
        .filter_map(|r| main(r))
        .collect();
    PivotRow {
        key: row_keys.iter().map(|k| k.name()).zip(id).collect(),
        cells,
        best,
        all: MeanStd::of(&all),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::Report;
    use super::super::tests::{
        end, finished, info, parse_csv, parse_markdown, start, step, write_run,
    };
    use super::*;
    use crate::runs::open_all;

    /// FISH and a random mask at two learning rates, two seeds each (one random cell with an
    /// interrupted seed), written as run directories under `root`.
    fn sweep(root: &std::path::Path) -> Report {
        let fish = json!({"kind": "fish", "selection":
            {"budget": {"ratio": 0.005}, "scope": "global", "head_in_budget": true},
            "fisher": {"samples": 1024, "kind": {"kind": "empirical"}, "order": "shuffled"}});
        let random = json!({"kind": "random", "selection":
            {"budget": {"ratio": 0.005}, "scope": "global", "head_in_budget": true}});
        let cells = [
            ("fish", &fish, 1e-3, 42, Some(0.80)),
            ("fish", &fish, 1e-3, 43, Some(0.78)),
            ("fish", &fish, 1e-2, 42, Some(0.70)),
            ("fish", &fish, 1e-2, 43, Some(0.72)),
            ("random", &random, 1e-2, 42, Some(0.84)),
            ("random", &random, 1e-2, 43, None),
            ("random", &random, 1e-3, 42, Some(0.75)),
        ];
        for (name, method, lr, seed, acc) in cells {
            let info = info("sst2", Some(method.clone()), lr, seed);
            let dir = format!("{name}-{lr:e}-{seed}");
            match acc {
                Some(a) => {
                    let m = finished(&[("accuracy", a)], (a, 250), 60.0);
                    write_run(root, &dir, &info, Some(&m), &[start(113_569), end(60.0)]);
                }
                None => {
                    write_run(root, &dir, &info, None, &[start(113_569), step(100)]);
                }
            }
        }
        Report::new(&open_all(&[root.to_path_buf()]).expect("open"))
    }

    #[test]
    fn pivot_by_lr_averages_seeds_per_cell_and_marks_the_best_lr() {
        let tmp = tempfile::tempdir().expect("tmp");
        let report = sweep(tmp.path()).pivoted(GroupKey::Lr);
        let pivot = report.pivot.as_ref().expect("pivot");
        assert_eq!(pivot.values, ["1e-3", "1e-2"], "numeric lr order");
        assert_eq!(pivot.metric, "accuracy");
        let fish = &pivot.rows[0];
        assert_eq!(fish.key["method"], "fish");
        let c = fish.cells[0].stat.expect("fish at 1e-3");
        assert!((c.mean - 0.79).abs() < 1e-12 && c.n == 2);
        assert!((c.std.expect("two seeds") - 0.02 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(fish.best, Some(0), "0.79 at 1e-3 beats 0.71 at 1e-2");
        let random = &pivot.rows[1];
        let c = random.cells[1].stat.expect("random at 1e-2");
        assert_eq!(
            (c.mean, c.std, c.n),
            (0.84, None, 1),
            "the interrupted seed is not averaged"
        );
        assert_eq!(random.cells[1].unfinished, ["interrupted"]);
        assert_eq!(random.best, Some(1));

        let md = parse_markdown(&report.to_markdown());
        assert_eq!(
            md[0],
            [
                "task",
                "method",
                "kept",
                "lr 1e-3",
                "lr 1e-2",
                "best lr (dev accuracy)"
            ]
        );
        assert_eq!(
            md[1],
            [
                "SST-2",
                "fish",
                "0.50%",
                "**0.7900 ± 0.0141**",
                "0.7100 ± 0.0141",
                "1e-3"
            ]
        );
        assert_eq!(
            md[2],
            ["SST-2", "random", "0.50%", "0.7500", "**0.8400**", "1e-2"]
        );

        let csv = parse_csv(&report.to_csv().expect("csv"));
        assert_eq!(csv.len(), 2);
        assert_eq!(csv[0]["lr=1e-3_mean"].parse::<f64>().ok(), Some(0.79));
        assert_eq!(csv[1]["lr=1e-2_std"], "", "one finished run: no std");
        assert_eq!(csv[1]["best_lr"], "1e-2");
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json().expect("json")).expect("parses");
        assert_eq!(
            json["pivot"]["rows"][1]["cells"][1]["unfinished"][0],
            "interrupted"
        );
    }

    #[test]
    fn pivot_by_seed_gives_one_column_per_seed_and_the_row_statistics() {
        let tmp = tempfile::tempdir().expect("tmp");
        let report = sweep(tmp.path()).pivoted(GroupKey::Seed);
        let pivot = report.pivot.as_ref().expect("pivot");
        assert_eq!(pivot.values, ["42", "43"]);
        assert_eq!(
            pivot.row_keys,
            [
                GroupKey::Task,
                GroupKey::Method,
                GroupKey::Kept,
                GroupKey::Lr
            ]
        );
        let md = parse_markdown(&report.to_markdown());
        assert_eq!(
            md[0],
            [
                "task",
                "method",
                "kept",
                "lr",
                "seed 42",
                "seed 43",
                "dev accuracy: mean ± std"
            ]
        );
        // Rows in order of their first run (folders by name: 1e-2 before 1e-3).
        assert_eq!(
            md[2],
            [
                "SST-2",
                "fish",
                "0.50%",
                "1e-3",
                "0.8000",
                "0.7800",
                "0.7900 ± 0.0141"
            ]
        );
        // The unfinished seed shows its status and is left out of the statistics.
        assert_eq!(
            md[3],
            [
                "SST-2",
                "random",
                "0.50%",
                "1e-2",
                "0.8400",
                "interrupted",
                "0.8400"
            ]
        );
        assert!(
            !report.to_markdown().contains("**"),
            "no best cell across seeds"
        );
    }

    #[test]
    fn fish_runs_of_different_mask_files_get_their_own_rows() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fisher = json!({"samples": 1024, "kind": {"kind": "empirical"}, "order": "shuffled"});
        for (mask, lr, acc) in [
            ("mask-global", 1e-3, 0.81),
            ("mask-global", 3e-3, 0.80),
            ("mask-pertensor", 1e-3, 0.82),
        ] {
            let method = json!({"kind": "fish", "fisher": fisher,
                "mask_file": format!("masks/{mask}.safetensors")});
            let info = info("sst2", Some(method), lr, 42);
            let m = finished(&[("accuracy", acc)], (acc, 250), 60.0);
            let name = format!("{mask}-{lr:e}");
            write_run(
                tmp.path(),
                &name,
                &info,
                Some(&m),
                &[start(113_569), end(60.0)],
            );
        }
        let runs = open_all(&[tmp.path().to_path_buf()]).expect("open");
        // The plain table names each run's mask file too.
        let plain = parse_markdown(&Report::new(&runs).to_markdown());
        let col = plain[0]
            .iter()
            .position(|h| h == "mask")
            .expect("a mask column");
        assert_eq!(plain[1][col], "mask-global");
        let report = Report::new(&runs).pivoted(GroupKey::Lr);
        let md = parse_markdown(&report.to_markdown());
        assert_eq!(md[0][..4], ["task", "method", "kept", "mask"]);
        assert_eq!(md.len(), 3, "one row per mask file: {md:?}");
        assert_eq!(md[1][3..], ["mask-global", "**0.8100**", "0.8000", "1e-3"]);
        assert_eq!(md[2][3..], ["mask-pertensor", "**0.8200**", "", "1e-3"]);
    }
}
