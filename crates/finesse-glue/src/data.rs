//! Reading GLUE TSV files into examples.
//!
//! The traps of the original files (see `tests/data/glue/PROVENANCE.md`): no CSV quoting (fields
//! may start with or hold an unmatched `"`, so rows are split on tabs only), a UTF-8 BOM before
//! MRPC's header, CoLA without header and without a final newline, STS-B scores with any number
//! of decimals.

use std::path::{Path, PathBuf};

use crate::error::{GlueError, Result, RowProblem};
use crate::task::{Columns, GlueTask, LabelKind};

/// The gold label of an example.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Label {
    /// Class index (into the task's label strings).
    Class(usize),
    /// Regression target (STS-B).
    Score(f32),
}

/// One example: a sentence or a sentence pair, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// First (or only) text.
    pub text_a: String,
    /// Second text of pair tasks.
    pub text_b: Option<String>,
    /// Gold label.
    pub label: Label,
    /// 1-based line in the source file.
    pub line: usize,
}

/// A row that was skipped under `--skip-bad-rows`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRow {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub problem: String,
}

/// A split of a task as read from disk.
#[derive(Clone, Debug)]
pub struct Split {
    /// The task.
    pub task: GlueTask,
    /// `train`, `dev`, `dev_matched`, `dev_mismatched`.
    pub name: String,
    /// The file read.
    pub path: PathBuf,
    /// Examples in file order.
    pub examples: Vec<Example>,
    /// Rows skipped because they were malformed (only with `skip_bad_rows`).
    pub skipped: Vec<SkippedRow>,
}

/// Which split to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKind {
    /// The training file.
    Train,
    /// The `i`-th dev file (MNLI: 0 matched, 1 mismatched).
    Dev(usize),
}

/// Path of a split's file in GLUE layout: `<data_dir>/<TASK>/<file>`.
pub fn split_path(
    task: GlueTask,
    data_dir: &Path,
    split: SplitKind,
) -> (String, PathBuf, &'static str) {
    let spec = task.spec();
    let (name, file) = match split {
        SplitKind::Train => ("train", spec.train_file),
        SplitKind::Dev(i) => spec.dev_files[i.min(spec.dev_files.len() - 1)],
    };
    (name.to_string(), data_dir.join(spec.name).join(file), file)
}

/// Reads one split. A malformed row is an error naming file, line and problem, unless
/// `skip_bad_rows`, which counts and skips it instead.
///
/// # Errors
///
/// [`GlueError::MissingFile`] when the file is not where GLUE layout puts it,
/// [`GlueError::Io`] when it cannot be read, [`GlueError::Empty`] when it holds no example, and
/// the errors of [`parse_tsv`].
pub fn load_split(
    task: GlueTask,
    data_dir: &Path,
    split: SplitKind,
    skip_bad_rows: bool,
) -> Result<Split> {
    let (name, path, file) = split_path(task, data_dir, split);
    if !path.is_file() {
        return Err(GlueError::MissingFile {
            path,
            task: task.spec().name.into(),
            file: file.into(),
        });
    }
    let bytes = std::fs::read(&path).map_err(|source| GlueError::Io {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| GlueError::BadRow {
        path: path.clone(),
        line: 0,
        problem: RowProblem::NotUtf8 {
            valid_up_to: e.utf8_error().valid_up_to(),
        },
    })?;
    let (examples, skipped) = parse_tsv(task, &path, &text, skip_bad_rows)?;
    if examples.is_empty() {
        return Err(GlueError::Empty { path });
    }
    Ok(Split {
        task,
        name,
        path,
        examples,
        skipped,
    })
}

/// Parses the text of a task file (see [`load_split`]).
///
/// # Errors
///
/// [`GlueError::BadRow`] naming the file, the line and the [`RowProblem`] (a missing header or
/// column, a wrong column count, an unknown label, a bad score) of the first malformed row,
/// unless `skip_bad_rows`.
pub fn parse_tsv(
    task: GlueTask,
    path: &Path,
    text: &str,
    skip_bad_rows: bool,
) -> Result<(Vec<Example>, Vec<SkippedRow>)> {
    let spec = task.spec();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
    let bad = |line: usize, problem: RowProblem| GlueError::BadRow {
        path: path.to_path_buf(),
        line,
        problem,
    };

    // Column indices: (count, text_a, text_b, label).
    let (count, a, b, l) = match spec.columns {
        Columns::Indexed {
            count,
            text_a,
            label,
        } => (count, text_a, None, label),
        Columns::Named {
            text_a,
            text_b,
            label,
        } => {
            let (line_no, header) = lines.next().ok_or_else(|| bad(1, RowProblem::NoHeader))?;
            let names: Vec<&str> = header.split('\t').map(str::trim).collect();
            let find = |want: &'static str| {
                names.iter().position(|n| *n == want).ok_or_else(|| {
                    bad(
                        line_no,
                        RowProblem::MissingColumn {
                            column: want,
                            found: names.iter().map(|n| n.to_string()).collect(),
                        },
                    )
                })
            };
            let a = find(text_a)?;
            let b = text_b.map(find).transpose()?;
            (names.len(), a, b, find(label)?)
        }
    };

    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    for (line_no, line) in lines {
        if line.is_empty() {
            continue;
        }
        let row =
            parse_row(line, count, a, b, l, spec.labels).map(|(text_a, text_b, label)| Example {
                text_a,
                text_b,
                label,
                line: line_no,
            });
        match row {
            Ok(e) => examples.push(e),
            Err(problem) if skip_bad_rows => skipped.push(SkippedRow {
                line: line_no,
                problem: problem.to_string(),
            }),
            Err(problem) => return Err(bad(line_no, problem)),
        }
    }
    Ok((examples, skipped))
}

fn parse_row(
    line: &str,
    count: usize,
    a: usize,
    b: Option<usize>,
    l: usize,
    labels: LabelKind,
) -> std::result::Result<(String, Option<String>, Label), RowProblem> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() != count {
        return Err(RowProblem::ColumnCount {
            expected: count,
            found: cols.len(),
        });
    }
    let raw = cols[l].trim();
    let label = match labels {
        LabelKind::Classes(names) => {
            Label::Class(names.iter().position(|n| *n == raw).ok_or_else(|| {
                RowProblem::UnknownLabel {
                    label: raw.to_string(),
                    expected: names,
                }
            })?)
        }
        LabelKind::Score => {
            let v: f32 = raw.parse().map_err(|_| RowProblem::ScoreNotANumber {
                score: raw.to_string(),
            })?;
            if !v.is_finite() {
                return Err(RowProblem::ScoreNotFinite {
                    score: raw.to_string(),
                });
            }
            Label::Score(v)
        }
    };
    Ok((cols[a].to_string(), b.map(|b| cols[b].to_string()), label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(task: GlueTask, text: &str) -> Result<(Vec<Example>, Vec<SkippedRow>)> {
        parse_tsv(task, Path::new("x.tsv"), text, false)
    }

    #[test]
    fn sst2_with_header_and_space_before_tab() {
        let (ex, _) = parse(
            GlueTask::Sst2,
            "sentence\tlabel\nit 's a charming journey . \t1\nbad . \t0\n",
        )
        .expect("parse");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].text_a, "it 's a charming journey . ");
        assert_eq!(ex[0].label, Label::Class(1));
        assert_eq!((ex[1].label, ex[1].line), (Label::Class(0), 3));
    }

    #[test]
    fn mrpc_bom_is_stripped_and_quotes_are_literal() {
        let text = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n\
                    1\t1\t2\t\"Dominick's said\t$2.5 \"billion\n";
        let (ex, _) = parse(GlueTask::Mrpc, text).expect("parse");
        assert_eq!(ex[0].text_a, "\"Dominick's said");
        assert_eq!(ex[0].text_b.as_deref(), Some("$2.5 \"billion"));
        assert_eq!(ex[0].label, Label::Class(1));
    }

    #[test]
    fn cola_without_header_or_final_newline() {
        let text =
            "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.";
        let (ex, _) = parse(GlueTask::Cola, text).expect("parse");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[1].text_a, "They drank the pub.");
        assert_eq!(ex[1].label, Label::Class(0));
    }

    #[test]
    fn stsb_scores_with_any_decimals() {
        let header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore";
        let text = format!(
            "{header}\n0\tg\tf\t2012\t1\ts\ts\tA plane.\tAn air plane.\t5.000\n\
             1\tg\tf\t2012\t1\ts\ts\ta\tb\t0.142857142857143\n2\tg\tf\t2012\t1\ts\ts\ta\tb\t3.8\n"
        );
        let (ex, _) = parse(GlueTask::Stsb, &text).expect("parse");
        assert_eq!(ex[0].label, Label::Score(5.0));
        assert_eq!(ex[1].label, Label::Score(0.142_857_15));
        assert_eq!(ex[2].label, Label::Score(3.8));
    }

    #[test]
    fn mnli_qnli_rte_wnli_qqp_labels() {
        let (ex, _) = parse(
            GlueTask::Mnli,
            "index\tsentence1\tsentence2\tlabel1\tgold_label\n0\ta\tb\tneutral\tcontradiction\n",
        )
        .expect("mnli");
        assert_eq!(ex[0].label, Label::Class(2));
        let (ex, _) = parse(
            GlueTask::Qnli,
            "index\tquestion\tsentence\tlabel\n0\t\" q?\ts\tnot_entailment\n",
        )
        .expect("qnli");
        assert_eq!(
            (ex[0].text_a.as_str(), ex[0].label),
            ("\" q?", Label::Class(1))
        );
        let (ex, _) = parse(
            GlueTask::Rte,
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
        )
        .expect("rte");
        assert_eq!(ex[0].label, Label::Class(0));
        let (ex, _) = parse(
            GlueTask::Wnli,
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t1\n",
        )
        .expect("wnli");
        assert_eq!(ex[0].label, Label::Class(1));
        let (ex, _) = parse(
            GlueTask::Qqp,
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\tq1\tq2\t0\n",
        )
        .expect("qqp");
        assert_eq!(
            (ex[0].text_b.as_deref(), ex[0].label),
            (Some("q2"), Label::Class(0))
        );
    }

    #[test]
    fn row_problems_are_structured() {
        let err = parse(GlueTask::Sst2, "sentence\tlabel\ngood\tpositive\n").expect_err("bad");
        assert!(
            matches!(
                &err,
                GlueError::BadRow { line: 2, problem: RowProblem::UnknownLabel { label, expected }, .. }
                    if label == "positive" && expected == &["0", "1"]
            ),
            "{err:?}"
        );
        let err = parse(GlueTask::Mrpc, "Quality\tfoo\n1\tx\n").expect_err("bad");
        assert!(
            matches!(
                &err,
                GlueError::BadRow { line: 1, problem: RowProblem::MissingColumn { column, found }, .. }
                    if *column == "#1 String" && found == &["Quality", "foo"]
            ),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_rows_name_file_line_and_problem() {
        let err = parse(GlueTask::Sst2, "sentence\tlabel\ngood\t1\nno label here\n")
            .expect_err("bad")
            .to_string();
        assert!(
            err.contains("x.tsv:3") && err.contains("expected 2 tab-separated columns, found 1"),
            "{err}"
        );
        let err = parse(GlueTask::Sst2, "sentence\tlabel\ngood\tpositive\n")
            .expect_err("bad")
            .to_string();
        assert!(
            err.contains("x.tsv:2") && err.contains("unknown label `positive`"),
            "{err}"
        );
        let header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore";
        let err = parse(
            GlueTask::Stsb,
            &format!("{header}\n0\tg\tf\t2012\t1\ts\ts\ta\tb\tfive\n"),
        )
        .expect_err("bad")
        .to_string();
        assert!(
            err.contains("x.tsv:2") && err.contains("score `five` is not a number"),
            "{err}"
        );
        let err = parse(GlueTask::Mrpc, "Quality\tfoo\n1\tx\n")
            .expect_err("bad")
            .to_string();
        assert!(
            err.contains("x.tsv:1") && err.contains("#1 String"),
            "{err}"
        );
    }

    #[test]
    fn skip_bad_rows_counts_and_reports() {
        let (ex, skipped) = parse_tsv(
            GlueTask::Sst2,
            Path::new("x.tsv"),
            "sentence\tlabel\ngood\t1\nbroken\nfine\t0\nmeh\t7\n",
            true,
        )
        .expect("parse");
        assert_eq!(ex.len(), 2);
        assert_eq!(skipped.iter().map(|s| s.line).collect::<Vec<_>>(), [3, 5]);
    }

    #[test]
    fn missing_file_names_the_expected_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_split(GlueTask::Rte, dir.path(), SplitKind::Train, false)
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("RTE/train.tsv") && err.contains("GLUE layout"),
            "{err}"
        );
    }
}
