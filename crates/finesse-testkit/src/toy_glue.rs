//! A small synthetic SST-2 folder in the GLUE layout.

use std::path::{Path, PathBuf};

/// What the toy sentences say. Even rows are positive (label 1), odd rows negative (label 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sentences {
    /// `the film was great .` / `the film was awful .`
    GreatAwful,
    /// One of six subjects, `was very`, one of five positive or negative words:
    /// `the plot was very dull .`
    Varied,
}

impl Sentences {
    /// Row `j` (header not included), with its tab and newline.
    fn row(self, j: usize) -> String {
        match self {
            Sentences::GreatAwful => {
                let (w, l) = if j.is_multiple_of(2) {
                    ("great", 1)
                } else {
                    ("awful", 0)
                };
                format!("the film was {w} . \t{l}\n")
            }
            Sentences::Varied => {
                let pos = ["good", "great", "fun", "best", "love"];
                let neg = ["bad", "awful", "dull", "worst", "hate"];
                let filler = [
                    "the film",
                    "this movie",
                    "the story",
                    "the plot",
                    "the acting",
                    "it",
                ];
                let (word, label) = if j.is_multiple_of(2) {
                    (pos[j % 5], 1)
                } else {
                    (neg[j % 5], 0)
                };
                format!("{} was very {} . \t{}\n", filler[j % 6], word, label)
            }
        }
    }
}

/// A toy SST-2: `<dir>/<folder>/SST-2/{train,dev}.tsv` with a `sentence\tlabel` header.
#[derive(Clone, Debug)]
pub struct ToySst2 {
    /// The sentences.
    pub sentences: Sentences,
    /// Rows of `train.tsv`.
    pub train_rows: usize,
    /// Rows of `dev.tsv`.
    pub dev_rows: usize,
    /// Index of the first dev row in the sentence sequence (train starts at 0).
    pub dev_offset: usize,
    /// The data folder's name under `dir` (the `--data-dir`).
    pub folder: String,
}

impl Default for ToySst2 {
    /// [`ToySst2::great_awful`].
    fn default() -> Self {
        Self::great_awful()
    }
}

impl ToySst2 {
    /// 200 train and 50 dev rows of [`Sentences::GreatAwful`] (dev repeats train's first 50)
    /// in `glue/`.
    pub fn great_awful() -> Self {
        Self {
            sentences: Sentences::GreatAwful,
            train_rows: 200,
            dev_rows: 50,
            dev_offset: 0,
            folder: "glue".into(),
        }
    }

    /// 96 train and 24 dev rows of [`Sentences::Varied`], dev from row 1000, in `glue/`.
    pub fn varied() -> Self {
        Self {
            sentences: Sentences::Varied,
            train_rows: 96,
            dev_rows: 24,
            dev_offset: 1000,
            folder: "glue".into(),
        }
    }

    /// The same data in `<dir>/<name>` instead.
    pub fn folder(mut self, name: &str) -> Self {
        self.folder = name.into();
        self
    }

    /// Writes the files; returns `<dir>/<folder>`, the folder to pass as `--data-dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let root = dir.join(&self.folder);
        let sst = root.join("SST-2");
        std::fs::create_dir_all(&sst).expect("mkdir");
        let rows = |n: usize, offset: usize| {
            let mut s = String::from("sentence\tlabel\n");
            for i in 0..n {
                s.push_str(&self.sentences.row(i + offset));
            }
            s
        };
        std::fs::write(sst.join("train.tsv"), rows(self.train_rows, 0)).expect("train");
        std::fs::write(sst.join("dev.tsv"), rows(self.dev_rows, self.dev_offset)).expect("dev");
        root
    }
}

/// The usual toy data: [`ToySst2::great_awful`] written under `dir`; returns `dir/glue`.
pub fn tiny_glue(dir: &Path) -> PathBuf {
    ToySst2::great_awful().write(dir)
}
