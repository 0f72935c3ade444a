//! The new-run form's state and its validation: every field as typed, checked into a
//! [`RunConfig`] (through `RunConfig::validate`, the check the CLI runs) plus the form's own
//! checks (the data folder holds the task's train file, the run folder is new), each problem
//! attached to the field it is about. No window needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finesse_glue::GlueTask;
use finesse_sparse::mask::{Budget, Scope, Selection};
use finesse_sparse::prune::PruneScope;
use finesse_sparse::{FisherKindName, SampleOrder};
use finesse_train::config::OptimizerChoice;
use finesse_train::device::DeviceChoice;
use finesse_train::method::{DEFAULT_KEEP_RATIO, FisherSettings, MethodName};
use finesse_train::{MethodConfig, RunConfig, TrainError};

/// A field of the form (the key of its problems).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// The runs folder the run goes into (set in the top bar).
    RunsFolder,
    /// Model name or folder.
    Model,
    /// GLUE folder.
    DataDir,
    /// FISH / random: fraction of parameters kept.
    KeepRatio,
    /// FISH: examples for the Fisher information.
    FisherSamples,
    /// FISH: label draws per sample (sampled Fisher).
    FisherDraws,
    /// Freeze: the frozen groups.
    Freeze,
    /// Prune: final sparsity.
    FinalSparsity,
    /// Supermask: initial sparsity.
    InitialSparsity,
    /// Supermask: scores' learning rate.
    ScoreLr,
    /// Peak learning rate.
    Lr,
    /// Examples per step.
    BatchSize,
    /// Training epochs.
    Epochs,
    /// Total steps (overrides epochs).
    MaxSteps,
    /// Maximum tokens per example.
    MaxSeqLen,
    /// Seed.
    Seed,
    /// Evaluate every N steps.
    EvalEvery,
    /// The run folder's name.
    OutputName,
    /// The backend.
    Device,
}

impl Field {
    /// The field a `finesse finetune` flag (as `TrainError::Config` names it) is typed in.
    pub fn of_flag(flag: &str) -> Option<Self> {
        Some(match flag {
            "keep-ratio" | "keep-count" | "mask" => Self::KeepRatio,
            "fisher-samples" => Self::FisherSamples,
            "fisher-draws" => Self::FisherDraws,
            "freeze" => Self::Freeze,
            "final-sparsity" | "prune-events" => Self::FinalSparsity,
            "supermask-init-sparsity" => Self::InitialSparsity,
            "score-lr" => Self::ScoreLr,
            "lr" => Self::Lr,
            "batch-size" => Self::BatchSize,
            "epochs" => Self::Epochs,
            "max-seq-len" => Self::MaxSeqLen,
            "eval-every" => Self::EvalEvery,
            "device" => Self::Device,
            _ => return None,
        })
    }
}

/// Problems of the form, by field (one reason each).
pub type Problems = BTreeMap<Field, String>;

/// The new-run form as typed (numbers stay text until checked, so a typo is a reason, not a
/// lost keystroke). Defaults are `finesse finetune`'s.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRunForm {
    /// Model: a known name, a cached one, an HF folder or a hub id.
    pub model: String,
    /// GLUE task.
    pub task: GlueTask,
    /// Folder in GLUE layout.
    pub data_dir: String,
    /// Method.
    pub method: MethodName,
    /// FISH / random: fraction of parameters kept.
    pub keep_ratio: String,
    /// FISH: examples for the Fisher information.
    pub fisher_samples: String,
    /// FISH: which Fisher information.
    pub fisher_kind: FisherKindName,
    /// FISH: label draws per sample for the sampled Fisher.
    pub fisher_draws: String,
    /// Freeze: the groups kept frozen, separated by commas or spaces.
    pub freeze: String,
    /// Prune: final sparsity of WQ…WO.
    pub final_sparsity: String,
    /// Supermask: initial sparsity of the soft magnitude mask.
    pub initial_sparsity: String,
    /// Supermask: peak learning rate of the scores.
    pub score_lr: String,
    /// Peak learning rate.
    pub lr: String,
    /// Examples per step.
    pub batch_size: String,
    /// Training epochs (used when max steps is empty).
    pub epochs: String,
    /// Total optimizer steps (empty: from the epochs).
    pub max_steps: String,
    /// Maximum tokens per example.
    pub max_seq_len: String,
    /// Seed.
    pub seed: String,
    /// Evaluate every N steps (empty: once per epoch).
    pub eval_every: String,
    /// The run folder's name inside the runs folder.
    pub output_name: String,
    /// False until the user edits the name: until then it follows task and method.
    pub name_edited: bool,
    /// The backend.
    pub device: DeviceChoice,
}

impl Default for NewRunForm {
    fn default() -> Self {
        let fisher = FisherSettings::default();
        Self {
            model: finesse_bert::hub::DEFAULT_MODEL.into(),
            task: GlueTask::Sst2,
            data_dir: finesse_glue::fetch::default_data_dir()
                .display()
                .to_string(),
            method: MethodName::Fish,
            keep_ratio: DEFAULT_KEEP_RATIO.to_string(),
            fisher_samples: fisher.samples.to_string(),
            fisher_kind: FisherKindName::Empirical,
            fisher_draws: "1".into(),
            freeze: String::new(),
            final_sparsity: "0.5".into(),
            initial_sparsity: "0.05".into(),
            score_lr: "0.2".into(),
            lr: "2e-5".into(),
            batch_size: "32".into(),
            epochs: "3".into(),
            max_steps: String::new(),
            max_seq_len: "128".into(),
            seed: "42".into(),
            eval_every: String::new(),
            output_name: String::new(),
            name_edited: false,
            device: DeviceChoice::default_choice(),
        }
    }
}

/// A checked form: the configuration to run and the device to run it on.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedRun {
    /// The run's configuration (validated).
    pub config: RunConfig,
    /// The backend.
    pub device: DeviceChoice,
}

impl NewRunForm {
    /// The name the run folder gets until the user types one: `<task>-<method>`, numbered
    /// from 2 when that folder exists in `runs_folder` or is in `taken`.
    pub fn auto_name(&self, runs_folder: Option<&Path>, taken: &[PathBuf]) -> String {
        let base = format!(
            "{}-{}",
            self.task.spec().name.to_lowercase().replace('-', ""),
            self.method.name()
        );
        let free = |name: &str| {
            runs_folder.is_none_or(|folder| {
                let path = folder.join(name);
                !path.exists() && !taken.contains(&path)
            })
        };
        if free(&base) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}-{i}"))
            .find(|name| free(name))
            .unwrap_or(base)
    }

    /// Sets the output name from task and method unless the user typed one.
    pub fn refresh_name(&mut self, runs_folder: Option<&Path>, taken: &[PathBuf]) {
        if !self.name_edited {
            self.output_name = self.auto_name(runs_folder, taken);
        }
    }

    /// Checks the form: the run to start, or every problem found (by field). `runs_folder`
    /// is where the run folder goes; `taken` are run folders already waiting in the queue.
    ///
    /// # Errors
    /// The problems, each with its field.
    pub fn check(
        &self,
        runs_folder: Option<&Path>,
        taken: &[PathBuf],
    ) -> Result<CheckedRun, Problems> {
        let mut problems = Problems::new();
        let mut num = Numbers {
            problems: &mut problems,
        };
        let lr = num.float(Field::Lr, &self.lr);
        let batch_size = num.int(Field::BatchSize, &self.batch_size);
        let epochs = num.float(Field::Epochs, &self.epochs);
        let max_steps = num.optional_int(Field::MaxSteps, &self.max_steps);
        let max_seq_len = num.int(Field::MaxSeqLen, &self.max_seq_len);
        let seed = num.int(Field::Seed, &self.seed);
        let eval_every = num.optional_int(Field::EvalEvery, &self.eval_every);
        let method = self.method_config(&mut num);

        let model = self.model.trim();
        if model.is_empty() {
            problems.insert(Field::Model, "name a model or a model folder".into());
        } else if looks_like_path(model) && !Path::new(model).join("config.json").is_file() {
            problems.insert(
                Field::Model,
                format!("{model} is not a model folder (no config.json in it)"),
            );
        }
        let data_dir = PathBuf::from(self.data_dir.trim());
        let spec = self.task.spec();
        let train = data_dir.join(spec.name).join(spec.train_file);
        if self.data_dir.trim().is_empty() {
            problems.insert(Field::DataDir, "name the folder in GLUE layout".into());
        } else if !train.is_file() {
            problems.insert(
                Field::DataDir,
                format!(
                    "no {}/{} in this folder (`finesse data fetch {}` downloads it)",
                    spec.name,
                    spec.train_file,
                    spec.name.to_lowercase().replace('-', "")
                ),
            );
        }
        let output_dir = self.output_dir(runs_folder, taken, &mut problems);
        if !DeviceChoice::compiled().contains(&self.device) {
            problems.insert(Field::Device, "not compiled into this binary".into());
        }

        let (
            Some(lr),
            Some(batch_size),
            Some(epochs),
            Some(max_steps),
            Some(max_seq_len),
            Some(seed),
            Some(eval_every),
            Some(method),
        ) = (
            lr,
            batch_size,
            epochs,
            max_steps,
            max_seq_len,
            seed,
            eval_every,
            method,
        )
        else {
            return Err(problems);
        };
        let mut config = RunConfig::new(model, self.task, data_dir, output_dir.unwrap_or_default());
        config.device = self.device.name().into();
        config.lr = lr;
        config.batch_size = batch_size;
        config.epochs = epochs;
        config.max_steps = max_steps;
        config.max_seq_len = max_seq_len;
        config.seed = seed as u64;
        config.eval_every = eval_every;
        config.method = method;
        config.optimizer = OptimizerChoice::Adamw.config(0.0);
        if let Err(e) = config.validate() {
            let (field, reason) = match &e {
                TrainError::Config { field, problem } => (
                    Field::of_flag(field).unwrap_or(Field::Model),
                    problem.clone(),
                ),
                other => (Field::Model, other.to_string()),
            };
            problems.entry(field).or_insert(reason);
        }
        if problems.is_empty() {
            Ok(CheckedRun {
                config,
                device: self.device,
            })
        } else {
            Err(problems)
        }
    }

    /// The run folder, when its name is a plain new name inside the runs folder.
    fn output_dir(
        &self,
        runs_folder: Option<&Path>,
        taken: &[PathBuf],
        problems: &mut Problems,
    ) -> Option<PathBuf> {
        let Some(folder) = runs_folder else {
            problems.insert(
                Field::RunsFolder,
                "open a runs folder first (top bar): runs are created inside it".into(),
            );
            return None;
        };
        let name = self.output_name.trim();
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\'])
            && !name.starts_with('.');
        if !plain {
            problems.insert(
                Field::OutputName,
                "a plain folder name (no slashes, not starting with a dot)".into(),
            );
            return None;
        }
        let path = folder.join(name);
        if path.exists() {
            problems.insert(
                Field::OutputName,
                format!("{name} exists in the runs folder: pick a new name"),
            );
            return None;
        }
        if taken.contains(&path) {
            problems.insert(
                Field::OutputName,
                format!("a queued run already goes into {name}"),
            );
            return None;
        }
        Some(path)
    }

    /// The method with exactly its own options.
    fn method_config(&self, num: &mut Numbers<'_>) -> Option<MethodConfig> {
        let selection = |num: &mut Numbers<'_>| {
            num.float(Field::KeepRatio, &self.keep_ratio)
                .map(|ratio| Selection {
                    budget: Budget::Ratio(ratio),
                    scope: Scope::Global,
                    head_in_budget: true,
                    exclude: Vec::new(),
                })
        };
        Some(match self.method {
            MethodName::Dense => MethodConfig::Dense,
            MethodName::Bitfit => MethodConfig::Bitfit,
            MethodName::Random => MethodConfig::Random {
                selection: selection(num)?,
            },
            MethodName::Fish => {
                let selection = selection(num);
                let samples = num.int(Field::FisherSamples, &self.fisher_samples);
                let draws = if self.fisher_kind == FisherKindName::Sampled {
                    num.int(Field::FisherDraws, &self.fisher_draws)
                } else {
                    Some(1)
                };
                MethodConfig::Fish {
                    selection: Some(selection?),
                    fisher: FisherSettings {
                        samples: samples?,
                        kind: self.fisher_kind.with_draws(draws?),
                        order: SampleOrder::Shuffled,
                    },
                    mask_file: None,
                }
            }
            MethodName::Freeze => MethodConfig::Freeze {
                groups: freeze_specs(&self.freeze),
            },
            MethodName::Prune => MethodConfig::Prune {
                initial: 0.0,
                final_sparsity: num.float(Field::FinalSparsity, &self.final_sparsity)?,
                start_step: None,
                interval: None,
                events: 10,
                scope: PruneScope::PerMatrix,
            },
            MethodName::Supermask => {
                let initial = num.float(Field::InitialSparsity, &self.initial_sparsity);
                let score_lr = num.float(Field::ScoreLr, &self.score_lr);
                MethodConfig::Supermask {
                    initial_sparsity: initial?,
                    score_lr: score_lr?,
                    eval_samples: 10,
                }
            }
        })
    }
}

/// The freeze specs typed in one field: separated by commas, spaces or new lines.
pub fn freeze_specs(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A model field that names a folder rather than a known name or a hub id (`org/name`).
fn looks_like_path(model: &str) -> bool {
    model.starts_with(['/', '.', '~']) || model.contains('\\') || model.matches('/').count() > 1
}

/// Parses numbers, recording a reason per field that does not parse.
struct Numbers<'a> {
    problems: &'a mut Problems,
}

impl Numbers<'_> {
    fn float(&mut self, field: Field, text: &str) -> Option<f64> {
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.problems
                    .insert(field, format!("\"{}\" is not a number", text.trim()));
                None
            }
        }
    }

    fn int(&mut self, field: Field, text: &str) -> Option<usize> {
        if let Ok(v) = text.trim().parse::<usize>() {
            return Some(v);
        }
        self.problems
            .insert(field, format!("\"{}\" is not a whole number", text.trim()));
        None
    }

    /// Empty is `None` (the field's default); returns `Some(None)` then.
    fn optional_int(&mut self, field: Field, text: &str) -> Option<Option<usize>> {
        if text.trim().is_empty() {
            Some(None)
        } else {
            self.int(field, text).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data folder with SST-2's train file and an empty runs folder.
    fn folders() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("glue");
        std::fs::create_dir_all(data.join("SST-2")).expect("mkdir");
        std::fs::write(data.join("SST-2/train.tsv"), "sentence\tlabel\n").expect("write");
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(&runs).expect("mkdir");
        (dir, data, runs)
    }

    fn form(data: &Path) -> NewRunForm {
        NewRunForm {
            data_dir: data.display().to_string(),
            output_name: "first".into(),
            name_edited: true,
            ..NewRunForm::default()
        }
    }

    #[test]
    fn the_defaults_are_the_clis_and_check_into_a_run_config() {
        let (_dir, data, runs) = folders();
        let checked = form(&data).check(Some(&runs), &[]).expect("valid");
        let c = checked.config;
        assert_eq!(c.lr, 2e-5);
        assert_eq!(c.batch_size, 32);
        assert_eq!(c.epochs, 3.0);
        assert_eq!(c.max_steps, None);
        assert_eq!(c.max_seq_len, 128);
        assert_eq!(c.seed, 42);
        assert_eq!(c.eval_every, None);
        assert_eq!(c.output_dir, runs.join("first"));
        assert_eq!(c.model, finesse_bert::hub::DEFAULT_MODEL);
        match c.method {
            MethodConfig::Fish {
                selection: Some(s),
                fisher,
                mask_file: None,
            } => {
                assert_eq!(s.budget, Budget::Ratio(DEFAULT_KEEP_RATIO));
                assert_eq!(fisher, FisherSettings::default());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_bad_field_gets_its_own_reason() {
        let (_dir, data, runs) = folders();
        let mut f = form(&data);
        f.lr = "fast".into();
        f.batch_size = "0".into();
        f.keep_ratio = "1.5".into();
        let problems = f.check(Some(&runs), &[]).expect_err("invalid");
        assert!(
            problems[&Field::Lr].contains("not a number"),
            "{problems:?}"
        );
        // The number parses, so RunConfig::validate is not reached while lr is bad.
        assert!(!problems.contains_key(&Field::BatchSize), "{problems:?}");

        // RunConfig::validate names the first bad setting only.
        f.batch_size = "32".into();
        f.keep_ratio = "0.005".into();
        f.lr = "-1".into();
        let problems = f.check(Some(&runs), &[]).expect_err("invalid");
        assert!(problems[&Field::Lr].contains("positive"), "{problems:?}");

        // RunConfig::validate's flags land on their fields.
        for (setup, field) in [
            (
                Box::new(|f: &mut NewRunForm| f.batch_size = "0".into())
                    as Box<dyn Fn(&mut NewRunForm)>,
                Field::BatchSize,
            ),
            (Box::new(|f| f.keep_ratio = "1.5".into()), Field::KeepRatio),
            (Box::new(|f| f.max_seq_len = "2".into()), Field::MaxSeqLen),
            (Box::new(|f| f.max_steps = "0".into()), Field::Epochs),
            (
                Box::new(|f| {
                    f.method = MethodName::Supermask;
                    f.score_lr = "0".into();
                }),
                Field::ScoreLr,
            ),
            (
                Box::new(|f| {
                    f.method = MethodName::Freeze;
                    f.freeze = "wz@1".into();
                }),
                Field::Freeze,
            ),
            (
                Box::new(|f| {
                    f.method = MethodName::Prune;
                    f.final_sparsity = "1.5".into();
                }),
                Field::FinalSparsity,
            ),
        ] {
            let mut f = form(&data);
            setup(&mut f);
            let problems = f.check(Some(&runs), &[]).expect_err("invalid");
            assert_eq!(
                problems.keys().collect::<Vec<_>>(),
                [&field],
                "{problems:?}"
            );
        }
    }

    #[test]
    fn only_the_chosen_methods_options_count() {
        let (_dir, data, runs) = folders();
        let mut f = form(&data);
        f.method = MethodName::Dense;
        f.keep_ratio = "nonsense".into();
        f.score_lr = "nonsense".into();
        let c = f
            .check(Some(&runs), &[])
            .expect("dense ignores FISH's field");
        assert_eq!(c.config.method, MethodConfig::Dense);
        f.method = MethodName::Freeze;
        f.freeze = "pooler, deepest:2  embeddings".into();
        let c = f.check(Some(&runs), &[]).expect("freeze");
        assert_eq!(
            c.config.method,
            MethodConfig::Freeze {
                groups: vec!["pooler".into(), "deepest:2".into(), "embeddings".into()]
            }
        );
        f.freeze = String::new();
        let problems = f.check(Some(&runs), &[]).expect_err("no group");
        assert!(
            problems[&Field::Freeze].contains("at least one"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_data_folder_needs_the_tasks_train_file() {
        let (dir, data, runs) = folders();
        let mut f = form(&data);
        f.task = GlueTask::Cola;
        let problems = f.check(Some(&runs), &[]).expect_err("no CoLA");
        assert!(
            problems[&Field::DataDir].contains("CoLA/train.tsv"),
            "{problems:?}"
        );
        f.task = GlueTask::Sst2;
        f.data_dir = dir.path().join("nowhere").display().to_string();
        assert!(
            f.check(Some(&runs), &[])
                .expect_err("missing")
                .contains_key(&Field::DataDir)
        );
    }

    #[test]
    fn the_run_folder_must_be_new_plain_and_not_queued() {
        let (_dir, data, runs) = folders();
        let mut f = form(&data);
        assert!(
            f.check(None, &[])
                .expect_err("no runs folder")
                .contains_key(&Field::RunsFolder)
        );
        std::fs::create_dir(runs.join("first")).expect("mkdir");
        let problems = f.check(Some(&runs), &[]).expect_err("exists");
        assert!(
            problems[&Field::OutputName].contains("exists"),
            "{problems:?}"
        );
        f.output_name = "second".into();
        let problems = f
            .check(Some(&runs), &[runs.join("second")])
            .expect_err("queued");
        assert!(
            problems[&Field::OutputName].contains("queued"),
            "{problems:?}"
        );
        for bad in ["", "a/b", "..", ".hidden"] {
            f.output_name = bad.into();
            assert!(
                f.check(Some(&runs), &[])
                    .expect_err(bad)
                    .contains_key(&Field::OutputName),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_automatic_name_follows_task_and_method_and_skips_taken_names() {
        let (_dir, _data, runs) = folders();
        let mut f = NewRunForm::default();
        f.refresh_name(Some(&runs), &[]);
        assert_eq!(f.output_name, "sst2-fish");
        std::fs::create_dir(runs.join("sst2-fish")).expect("mkdir");
        f.refresh_name(Some(&runs), &[runs.join("sst2-fish-2")]);
        assert_eq!(f.output_name, "sst2-fish-3");
        f.method = MethodName::Dense;
        f.refresh_name(Some(&runs), &[]);
        assert_eq!(f.output_name, "sst2-dense");
        f.output_name = "mine".into();
        f.name_edited = true;
        f.refresh_name(Some(&runs), &[]);
        assert_eq!(f.output_name, "mine");
    }

    #[test]
    fn a_model_path_must_be_a_model_folder() {
        let (dir, data, runs) = folders();
        let mut f = form(&data);
        f.model = dir.path().join("no-model").display().to_string();
        let problems = f.check(Some(&runs), &[]).expect_err("not a folder");
        assert!(
            problems[&Field::Model].contains("config.json"),
            "{problems:?}"
        );
        f.model = "sentence-transformers/all-MiniLM-L6-v2".into();
        f.check(Some(&runs), &[]).expect("a hub id is not a path");
        f.model = " ".into();
        assert!(
            f.check(Some(&runs), &[])
                .expect_err("empty")
                .contains_key(&Field::Model)
        );
    }
}
