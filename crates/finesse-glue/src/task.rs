//! The nine GLUE tasks: where their files are, which columns hold text and labels, label
//! strings, and which metrics GLUE reports for each.

use std::fmt;
use std::str::FromStr;

use crate::error::GlueError;
use crate::metrics::Metric;

/// A GLUE task (serialised in lower case: `cola`, `sst2`, `mrpc`, `stsb`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GlueTask {
    /// Corpus of Linguistic Acceptability (Matthews correlation).
    Cola,
    /// Stanford Sentiment Treebank, binary (accuracy).
    Sst2,
    /// Microsoft Research Paraphrase Corpus (F1, accuracy).
    Mrpc,
    /// Semantic Textual Similarity Benchmark, regression 0–5 (Pearson, Spearman).
    Stsb,
    /// Quora Question Pairs (F1, accuracy).
    Qqp,
    /// Multi-Genre NLI, 3 classes; dev matched and mismatched (accuracy).
    Mnli,
    /// Question NLI (accuracy).
    Qnli,
    /// Recognising Textual Entailment (accuracy).
    Rte,
    /// Winograd NLI (accuracy).
    Wnli,
}

/// Where a task's columns are.
#[derive(Clone, Copy, Debug)]
pub enum Columns {
    /// Files with a header line; columns are found by name.
    Named {
        /// First text column.
        text_a: &'static str,
        /// Second text column, for pair tasks.
        text_b: Option<&'static str>,
        /// Label column.
        label: &'static str,
    },
    /// Files without a header (CoLA); columns by 0-based index.
    Indexed {
        /// Number of columns every row must have.
        count: usize,
        /// Text column.
        text_a: usize,
        /// Label column.
        label: usize,
    },
}

/// What the label column holds.
#[derive(Clone, Copy, Debug)]
pub enum LabelKind {
    /// Class names in class-index order (index 0 first).
    Classes(&'static [&'static str]),
    /// A real-valued score (STS-B, 0–5).
    Score,
}

/// Everything finesse needs to know about one task.
#[derive(Clone, Copy, Debug)]
pub struct TaskSpec {
    /// Display name, also the folder name in GLUE layout (`SST-2`).
    pub name: &'static str,
    /// Training file inside the task folder.
    pub train_file: &'static str,
    /// Dev splits: (split name, file). MNLI has two.
    pub dev_files: &'static [(&'static str, &'static str)],
    /// Column layout.
    pub columns: Columns,
    /// Label kind.
    pub labels: LabelKind,
    /// Metrics GLUE reports, the first being the task's main metric.
    pub metrics: &'static [Metric],
}

const BINARY: &[&str] = &["0", "1"];
const ENTAILMENT: &[&str] = &["entailment", "not_entailment"];

impl GlueTask {
    /// All nine tasks.
    pub const ALL: [GlueTask; 9] = [
        Self::Cola,
        Self::Sst2,
        Self::Mrpc,
        Self::Stsb,
        Self::Qqp,
        Self::Mnli,
        Self::Qnli,
        Self::Rte,
        Self::Wnli,
    ];

    /// The task's files, columns, labels and metrics.
    pub fn spec(self) -> TaskSpec {
        use Metric::*;
        let dev: &'static [(&str, &str)] = &[("dev", "dev.tsv")];
        let named = |a, b, label| Columns::Named {
            text_a: a,
            text_b: b,
            label,
        };
        match self {
            Self::Cola => TaskSpec {
                name: "CoLA",
                train_file: "train.tsv",
                dev_files: dev,
                columns: Columns::Indexed {
                    count: 4,
                    text_a: 3,
                    label: 1,
                },
                labels: LabelKind::Classes(BINARY),
                metrics: &[Matthews],
            },
            Self::Sst2 => TaskSpec {
                name: "SST-2",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("sentence", None, "label"),
                labels: LabelKind::Classes(BINARY),
                metrics: &[Accuracy],
            },
            Self::Mrpc => TaskSpec {
                name: "MRPC",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("#1 String", Some("#2 String"), "Quality"),
                labels: LabelKind::Classes(BINARY),
                metrics: &[F1, Accuracy],
            },
            Self::Stsb => TaskSpec {
                name: "STS-B",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("sentence1", Some("sentence2"), "score"),
                labels: LabelKind::Score,
                metrics: &[Pearson, Spearman],
            },
            Self::Qqp => TaskSpec {
                name: "QQP",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("question1", Some("question2"), "is_duplicate"),
                labels: LabelKind::Classes(BINARY),
                metrics: &[F1, Accuracy],
            },
            Self::Mnli => TaskSpec {
                name: "MNLI",
                train_file: "train.tsv",
                dev_files: &[
                    ("dev_matched", "dev_matched.tsv"),
                    ("dev_mismatched", "dev_mismatched.tsv"),
                ],
                columns: named("sentence1", Some("sentence2"), "gold_label"),
                labels: LabelKind::Classes(&["entailment", "neutral", "contradiction"]),
                metrics: &[Accuracy],
            },
            Self::Qnli => TaskSpec {
                name: "QNLI",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("question", Some("sentence"), "label"),
                labels: LabelKind::Classes(ENTAILMENT),
                metrics: &[Accuracy],
            },
            Self::Rte => TaskSpec {
                name: "RTE",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("sentence1", Some("sentence2"), "label"),
                labels: LabelKind::Classes(ENTAILMENT),
                metrics: &[Accuracy],
            },
            Self::Wnli => TaskSpec {
                name: "WNLI",
                train_file: "train.tsv",
                dev_files: dev,
                columns: named("sentence1", Some("sentence2"), "label"),
                labels: LabelKind::Classes(BINARY),
                metrics: &[Accuracy],
            },
        }
    }

    /// Outputs of the model head: the number of classes, or 1 for regression.
    pub fn num_outputs(self) -> usize {
        match self.spec().labels {
            LabelKind::Classes(c) => c.len(),
            LabelKind::Score => 1,
        }
    }

    /// True for STS-B.
    pub fn is_regression(self) -> bool {
        matches!(self.spec().labels, LabelKind::Score)
    }
}

impl fmt::Display for GlueTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().name)
    }
}

impl FromStr for GlueTask {
    type Err = GlueError;

    /// Case-insensitive, with or without the dash: `sst2`, `SST-2`, `sts-b`, `CoLA`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.spec().name.replace('-', "").to_lowercase() == key)
            .ok_or_else(|| GlueError::UnknownTask {
                name: s.to_string(),
                known: Self::ALL
                    .iter()
                    .map(|t| t.spec().name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively_with_or_without_dash() {
        for (s, t) in [
            ("sst2", GlueTask::Sst2),
            ("SST-2", GlueTask::Sst2),
            ("sst-2", GlueTask::Sst2),
            ("CoLA", GlueTask::Cola),
            ("cola", GlueTask::Cola),
            ("STS-B", GlueTask::Stsb),
            ("stsb", GlueTask::Stsb),
            ("Mnli", GlueTask::Mnli),
            ("qqp", GlueTask::Qqp),
            ("RTE", GlueTask::Rte),
            ("wnli", GlueTask::Wnli),
            ("QNLI", GlueTask::Qnli),
            ("mrpc", GlueTask::Mrpc),
        ] {
            assert_eq!(s.parse::<GlueTask>().expect(s), t, "{s}");
        }
        let err = "imdb".parse::<GlueTask>().expect_err("unknown").to_string();
        assert!(err.contains("imdb") && err.contains("SST-2"), "{err}");
    }

    #[test]
    fn outputs_and_metrics_per_task() {
        assert_eq!(GlueTask::Mnli.num_outputs(), 3);
        assert_eq!(GlueTask::Stsb.num_outputs(), 1);
        assert!(GlueTask::Stsb.is_regression());
        assert_eq!(GlueTask::Cola.spec().metrics, [Metric::Matthews]);
        assert_eq!(
            GlueTask::Mrpc.spec().metrics,
            [Metric::F1, Metric::Accuracy]
        );
        assert_eq!(GlueTask::Mnli.spec().dev_files.len(), 2);
    }
}
