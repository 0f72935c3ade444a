//! Evaluation: the loss of a batch, metrics of a model on a dev split, the evaluation of a
//! run's dev splits (tracking the best values), and `finesse eval` of a saved model.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use finesse_bert::checkpoint::TOKENIZER_FILE;
use finesse_bert::{BertTokenizer, ModelFolder, check_model_limits, load_classifier};
use finesse_glue::batch::{BatchPlan, eval_batches, seeded_subset};
use finesse_glue::metrics::{Predictions, compute};
use finesse_glue::{BatchLabels, EncodedSplit, SplitKind, encode_split, load_split, make_batch};

use super::Emitter;
use crate::error::Result;
use crate::events::Event;
use crate::method::Model;
use crate::rundir::BestValue;

/// A dev split of a run, encoded, with the examples it evaluates on.
pub struct EvalSet {
    /// Split name (`dev`, `dev_matched`, …).
    pub name: String,
    /// The encoded split.
    pub data: EncodedSplit,
    /// The evaluated examples (all, or a seeded subset).
    pub pool: Vec<usize>,
}

/// Final metrics of every dev split, by split name then metric (with `eval_loss`).
pub type SplitMetrics = BTreeMap<String, BTreeMap<String, f64>>;

/// Mean cross-entropy of the logits (classification) or mean squared error of the single
/// output (regression), as `BertForSequenceClassification` computes them.
pub fn loss_of(logits: Tensor<2>, labels: &BatchLabels, device: &Device) -> Tensor<1> {
    let [b, _] = logits.dims();
    match labels {
        BatchLabels::Classes(y) => {
            let y = Tensor::<2, Int>::from_data(TensorData::new(y.clone(), [b, 1]), device);
            log_softmax(logits, 1).gather(1, y).mean().neg()
        }
        BatchLabels::Scores(y) => {
            let y = Tensor::<1>::from_data(TensorData::new(y.clone(), [b]), device);
            (logits.reshape([b]) - y).powi_scalar(2).mean()
        }
    }
}

/// A run's dev splits with how they are batched: what every evaluation of the run reads.
pub struct DevSplits {
    /// The splits, the first one's metrics being the run's.
    pub sets: Vec<EvalSet>,
    /// Batching.
    pub plan: BatchPlan,
    /// The task (metrics, regression or classes).
    pub task: finesse_glue::GlueTask,
}

impl DevSplits {
    /// Evaluates `model` on every split at `step`, emitting one `eval` event per split and
    /// raising `best` with the first split's metrics.
    ///
    /// # Errors
    /// An evaluation or an event that fails.
    pub(crate) fn evaluate(
        &self,
        model: &Model,
        device: &Device,
        step: usize,
        best: &mut BTreeMap<String, BestValue>,
        emitter: &mut Emitter<'_>,
    ) -> Result<SplitMetrics> {
        let eval_model = model.valid();
        let mut all = BTreeMap::new();
        for (i, set) in self.sets.iter().enumerate() {
            let started = Instant::now();
            let (loss, metrics) = evaluate_on(
                &eval_model,
                &set.data,
                &set.pool,
                (self.plan, self.task),
                device,
                crate::dist::world(),
            )?;
            if i == 0 {
                for (name, &value) in &metrics {
                    let improved = best.get(name).is_none_or(|b| value > b.value);
                    if improved {
                        best.insert(name.clone(), BestValue { value, step });
                    }
                }
            }
            emitter.emit(Event::Eval {
                step,
                split: set.name.clone(),
                loss,
                metrics: metrics.clone(),
                duration_secs: started.elapsed().as_secs_f64(),
            })?;
            let mut with_loss = metrics;
            with_loss.insert("eval_loss".into(), loss);
            all.insert(set.name.clone(), with_loss);
        }
        Ok(all)
    }

    /// Did the evaluation at `step` set a new best of the main metric of the first split?
    pub(crate) fn improved_main_metric(
        &self,
        metrics: &SplitMetrics,
        best: &BTreeMap<String, BestValue>,
        step: usize,
    ) -> bool {
        let first = self.sets.first().and_then(|e| metrics.get(&e.name));
        first
            .and_then(|m| crate::rundir::main_metric(m))
            .is_some_and(|(name, _)| best.get(name).is_some_and(|b| b.step == step))
    }
}

/// Mean loss and task metrics of `model` (in eval mode) on `pool` of `data`.
///
/// # Errors
/// A forward pass that cannot be read back, or metrics that cannot be computed.
pub fn evaluate(
    model: &Model,
    data: &EncodedSplit,
    pool: &[usize],
    plan: BatchPlan,
    task: finesse_glue::GlueTask,
    device: &Device,
) -> Result<(f64, BTreeMap<String, f64>)> {
    evaluate_on(model, data, pool, (plan, task), device, &crate::dist::Solo)
}

/// [`evaluate`] sharded over the ranks of `comm`: rank r runs the batches r, r + size, …, and
/// one all-reduce of the loss and the predictions gives every rank the metrics of the whole
/// pool.
fn evaluate_on(
    model: &Model,
    data: &EncodedSplit,
    pool: &[usize],
    (plan, task): (BatchPlan, finesse_glue::GlueTask),
    device: &Device,
    comm: &dyn crate::dist::Comm,
) -> Result<(f64, BTreeMap<String, f64>)> {
    let n = pool.len();
    let mut loss_sum = 0.0;
    let mut class_pred = vec![0usize; data.len()];
    let mut score_pred = vec![0f64; data.len()];
    let (rank, size) = (comm.rank(), comm.size());
    let batches = eval_batches(data, pool, plan);
    for idx in batches.into_iter().skip(rank).step_by(size) {
        let batch = make_batch(data, &idx);
        let logits = model.forward(batch.to_input(device));
        let [b, k] = logits.dims();
        let loss = loss_of(logits.clone(), &batch.labels, device).into_scalar::<f32>() as f64;
        loss_sum += loss * b as f64;
        let values = finesse_bert::readback::floats(logits, "logits")?;
        for (row, &i) in batch.indices.iter().enumerate() {
            let r = &values[row * k..(row + 1) * k];
            if task.is_regression() {
                score_pred[i] = r[0] as f64;
            } else {
                class_pred[i] = r
                    .iter()
                    .enumerate()
                    .fold(0, |best, (j, v)| if *v > r[best] { j } else { best });
            }
        }
    }
    if size > 1 {
        (loss_sum, class_pred, score_pred) =
            gather_predictions(comm, loss_sum, &class_pred, &score_pred);
    }
    let preds = if task.is_regression() {
        Predictions::Scores {
            pred: pool.iter().map(|&i| score_pred[i]).collect(),
            gold: pool.iter().map(|&i| score_of(data, i)).collect(),
        }
    } else {
        Predictions::Classes {
            pred: pool.iter().map(|&i| class_pred[i]).collect(),
            gold: pool.iter().map(|&i| class_of(data, i)).collect(),
        }
    };
    let metrics = compute(task.spec().metrics, &preds)?;
    Ok((loss_sum / n.max(1) as f64, metrics))
}

/// Every rank's predictions in one all-reduce: a rank holds zeros for the examples it did not
/// run, so the sum is each example's one prediction (class indices and f32 scores are exact in
/// f64).
fn gather_predictions(
    comm: &dyn crate::dist::Comm,
    loss_sum: f64,
    class_pred: &[usize],
    score_pred: &[f64],
) -> (f64, Vec<usize>, Vec<f64>) {
    let n = class_pred.len();
    let mut buf = Vec::with_capacity(1 + 2 * n);
    buf.push(loss_sum);
    buf.extend(class_pred.iter().map(|&c| c as f64));
    buf.extend_from_slice(score_pred);
    comm.sum_f64(&mut buf);
    let classes = buf[1..=n].iter().map(|&c| c as usize).collect();
    (buf[0], classes, buf[1 + n..].to_vec())
}

fn class_of(data: &EncodedSplit, i: usize) -> usize {
    match data.examples[i].label {
        finesse_glue::Label::Class(c) => c,
        finesse_glue::Label::Score(_) => unreachable!("classification split"),
    }
}

fn score_of(data: &EncodedSplit, i: usize) -> f64 {
    match data.examples[i].label {
        finesse_glue::Label::Score(s) => s as f64,
        finesse_glue::Label::Class(_) => unreachable!("regression split"),
    }
}

/// What [`evaluate_folder`] evaluates on.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    /// The task.
    pub task: finesse_glue::GlueTask,
    /// Folder in GLUE layout.
    pub data_dir: std::path::PathBuf,
    /// Maximum tokens per example.
    pub max_seq_len: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// At most this many examples per split, taken after a seeded shuffle.
    pub max_eval_examples: Option<usize>,
    /// Seed of the subset (and of a fresh head when the model has none).
    pub seed: u64,
}

/// The evaluation of one dev split.
#[derive(Clone, Debug)]
pub struct SplitEval {
    /// Split name.
    pub split: String,
    /// Mean loss.
    pub loss: f64,
    /// Task metrics by name.
    pub metrics: BTreeMap<String, f64>,
}

/// Evaluates a saved model (an HF folder, or the `model/` of a run directory) on a task's dev
/// splits.
///
/// # Errors
/// The model, tokenizer or data cannot be loaded, or an evaluation fails.
pub fn evaluate_folder(model: &Path, req: &EvalRequest, device: &Device) -> Result<Vec<SplitEval>> {
    let task = req.task;
    let tokenizer = BertTokenizer::from_file(&model.join(TOKENIZER_FILE), req.max_seq_len)?;
    check_model_limits(&ModelFolder::open(model)?.config()?, &tokenizer, model)?;
    let (model, _, report) = load_classifier(model, task.num_outputs(), req.seed, device)?;
    if !report.head_from_checkpoint {
        log::warn!(
            "the model has no classifier head for {task}: evaluating a freshly initialised one"
        );
    }
    let plan = BatchPlan {
        batch_size: req.batch_size,
        bucketing: true,
    };
    let mut out = Vec::new();
    for i in 0..task.spec().dev_files.len() {
        let split = load_split(task, &req.data_dir, SplitKind::Dev(i), false)?;
        let data = encode_split(&split, &tokenizer)?;
        let pool = seeded_subset(data.len(), req.max_eval_examples, req.seed);
        let (loss, metrics) = evaluate(&model, &data, &pool, plan, task, device)?;
        out.push(SplitEval {
            split: split.name,
            loss,
            metrics,
        });
    }
    Ok(out)
}
