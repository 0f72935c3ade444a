//! Diagonal Fisher information per parameter (FISH paper, eq. 3), from per-sample squared
//! gradients of the log-likelihood with dropout off.
//!
//! Burn cannot retain a graph or vectorise over samples, so each sample gets its own forward
//! and backward (one per class with non-zero weight for `expected` and `sampled`); the squares
//! are accumulated on the device and read back once at the end.
//!
//! Likelihoods: classification uses the softmax over the logits; regression (one output, STS-B)
//! uses a unit-variance Gaussian around the output f(x), so ∇ log p(y|x) = (y − f) ∇f. Its
//! empirical Fisher is (y − f)² (∇f)², the expected one E[(y − f)²] (∇f)² = (∇f)², and the
//! sampled one draws y ~ N(f, 1). (The FISH reference code returns zeros for regression.)

use std::collections::{BTreeMap, BTreeSet, HashMap};

use burn::backend::Flex;
use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use finesse_bert::flexhost::{floats as host_floats, map_in_place, plain, wrap};
use finesse_bert::io::transpose_2d;
use finesse_bert::readback::floats;
use finesse_bert::slices::WordProbe;
use finesse_bert::{BertForSequenceClassification, HostTensor, ParamRegistry};
use finesse_glue::{BatchLabels, HostBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::{Result, SparseError};

pub use crate::options::{FisherKind, FisherKindName, SampleOrder};

/// Indices of the `n` examples (of `len`) that the estimate uses.
pub fn pick_samples(len: usize, n: usize, order: SampleOrder, seed: u64) -> Vec<usize> {
    match order {
        SampleOrder::File => (0..len.min(n)).collect(),
        SampleOrder::Shuffled => finesse_glue::batch::seeded_subset(len, Some(n), seed),
    }
}

/// Entries per parallel task of the squared-gradient sums.
const CHUNK: usize = 1 << 16;

/// One backward: the objective's gradient squared, times `weight`, joins the estimate.
struct Pass {
    label: PassLabel,
    weight: f64,
}

enum PassLabel {
    /// log p(class | x).
    Class(usize),
    /// −(y − f)²/2, the Gaussian log-likelihood up to a constant.
    Residual(f32),
    /// f itself (its gradient squared is the expected Gaussian Fisher).
    Output,
}

/// The diagonal Fisher of `model` over `samples` (one example each), by HF name in PyTorch
/// layout, averaged over the samples. `model` must live on an autodiff device; dropout is
/// switched off on a copy. `progress(done, total)` is called after every sample.
///
/// # Errors
///
/// [`SparseError::Config`] for no samples, zero draws, a sample that is not a single example or
/// whose label is out of range; [`SparseError::Readback`] when the device fails to read the
/// estimate back; [`SparseError::NonFinite`] naming the first parameter whose Fisher is NaN or
/// infinite.
pub fn estimate(
    model: &BertForSequenceClassification,
    samples: &[HostBatch],
    kind: FisherKind,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BTreeMap<String, HostTensor>> {
    if samples.is_empty() {
        return Err(SparseError::Config {
            field: "fisher samples",
            problem: "need at least one sample".into(),
        });
    }
    if let FisherKind::Sampled { draws: 0 } = kind {
        return Err(SparseError::Config {
            field: "fisher draws",
            problem: "need at least one draw per sample".into(),
        });
    }
    let model = model.clone().without_dropout();
    let device = model.classifier.weight.val().device();
    let registry = ParamRegistry::of(&model);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acc: HashMap<ParamId, Tensor<1>> = HashMap::new();
    // The word-embedding gradient by the rows a sample reads (finesse_bert::slices).
    let probe = WordProbe::activate();
    for (i, sample) in samples.iter().enumerate() {
        if sample.batch != 1 {
            return Err(SparseError::Config {
                field: "fisher samples",
                problem: format!("sample {} holds {} examples, not 1", i + 1, sample.batch),
            });
        }
        let passes = plan_passes(&model, sample, kind, &device, &mut rng, i)?;
        let rows = TokenRows::of(&model, sample, &device);
        for pass in passes {
            let logits = model.forward(sample.to_input(&device));
            let objective = match pass.label {
                PassLabel::Class(c) => log_softmax(logits, 1).narrow(1, c, 1).reshape([1]),
                PassLabel::Residual(y) => (logits.reshape([1]).neg().add_scalar(y))
                    .powi_scalar(2)
                    .mul_scalar(-0.5),
                PassLabel::Output => logits.reshape([1]),
            };
            let mut raw = objective.backward();
            let word = probe.rows(&mut raw, &sample.input_ids, &rows.distinct);
            let grads = GradientsParams::from_grads(raw, &model);
            accumulate(&mut acc, &registry, grads, pass.weight, &rows, word);
        }
        progress(i + 1, samples.len());
    }
    drop(probe);
    let n = samples.len() as f64;
    let mut out = BTreeMap::new();
    for p in registry.iter() {
        let data: Vec<f32> = match acc.remove(&p.id) {
            Some(t) => floats(t.div_scalar(n), format!("the Fisher of `{}`", p.name))?,
            // No gradient reaches this parameter (e.g. an unused token type): zero information.
            None => vec![0.0; p.numel],
        };
        if data.iter().any(|v| !v.is_finite()) {
            return Err(SparseError::NonFinite {
                name: p.name.clone(),
                samples: samples.len(),
            });
        }
        let data = if p.transposed {
            // Burn holds Linear weights as [in, out]; PyTorch layout is [out, in].
            transpose_2d(&data, p.shape[1], p.shape[0])
        } else {
            data
        };
        out.insert(p.name.clone(), HostTensor::new(p.shape.clone(), data));
    }
    Ok(out)
}

/// The backward passes one sample needs, with their weights.
fn plan_passes(
    model: &BertForSequenceClassification,
    sample: &HostBatch,
    kind: FisherKind,
    device: &Device,
    rng: &mut StdRng,
    index: usize,
) -> Result<Vec<Pass>> {
    let bad_label = |problem: String| SparseError::Config {
        field: "fisher samples",
        problem: format!("sample {}: {problem}", index + 1),
    };
    Ok(match (&sample.labels, kind) {
        (BatchLabels::Classes(y), FisherKind::Empirical) => {
            let c = usize::try_from(y[0])
                .ok()
                .filter(|&c| c < model.num_labels())
                .ok_or_else(|| bad_label(format!("label {} out of range", y[0])))?;
            vec![Pass {
                label: PassLabel::Class(c),
                weight: 1.0,
            }]
        }
        (BatchLabels::Classes(_), FisherKind::Expected) => {
            let p = probabilities(model, sample, device)?;
            p.into_iter()
                .enumerate()
                .filter(|(_, w)| *w > 0.0)
                .map(|(c, w)| Pass {
                    label: PassLabel::Class(c),
                    weight: w,
                })
                .collect()
        }
        (BatchLabels::Classes(_), FisherKind::Sampled { draws }) => {
            let p = probabilities(model, sample, device)?;
            let mut counts = vec![0usize; p.len()];
            for _ in 0..draws {
                let u: f64 = rng.random();
                let mut c = 0;
                let mut cum = p[0];
                while u >= cum && c + 1 < p.len() {
                    c += 1;
                    cum += p[c];
                }
                counts[c] += 1;
            }
            counts
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| Pass {
                    label: PassLabel::Class(c),
                    weight: n as f64 / draws as f64,
                })
                .collect()
        }
        (BatchLabels::Scores(y), FisherKind::Empirical) => vec![Pass {
            label: PassLabel::Residual(y[0]),
            weight: 1.0,
        }],
        (BatchLabels::Scores(_), FisherKind::Expected) => vec![Pass {
            label: PassLabel::Output,
            weight: 1.0,
        }],
        (BatchLabels::Scores(_), FisherKind::Sampled { draws }) => {
            let mean_sq = (0..draws)
                .map(|_| {
                    let e: f64 = rng.sample(rand_distr::StandardNormal);
                    e * e
                })
                .sum::<f64>()
                / draws as f64;
            vec![Pass {
                label: PassLabel::Output,
                weight: mean_sq,
            }]
        }
    })
}

/// Softmax of the sample's logits, on the host (no graph kept).
fn probabilities(
    model: &BertForSequenceClassification,
    sample: &HostBatch,
    device: &Device,
) -> Result<Vec<f64>> {
    let logits = floats(model.forward(sample.to_input(device)), "logits")?;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    Ok(exp.into_iter().map(|e| e / sum).collect())
}

/// The word-embedding rows one sample touches: the only rows of that table (most of the
/// model's entries) whose gradient is not zero, so the only ones whose squares need adding.
struct TokenRows {
    /// The word-embedding table's parameter.
    id: ParamId,
    /// Its distinct rows in the sample, sorted.
    distinct: Vec<i64>,
    /// The same on the device.
    rows: Tensor<1, Int>,
}

impl TokenRows {
    fn of(model: &BertForSequenceClassification, sample: &HostBatch, device: &Device) -> Self {
        let distinct: BTreeSet<i64> = sample.input_ids.iter().copied().collect();
        let distinct: Vec<i64> = distinct.into_iter().collect();
        let n = distinct.len();
        Self {
            id: model.bert.embeddings.word_embeddings.weight.id,
            rows: Tensor::from_data(TensorData::new(distinct.clone(), [n]), device),
            distinct,
        }
    }

    /// `acc` (the table's running sum, flat, `[vocab · hidden]`) plus `weight` × the squares of
    /// `g`, the gradient of the touched rows (`[rows, hidden]`); the same values as adding the
    /// whole squared table, whose other rows are zero.
    fn add_squares(
        &self,
        acc: Option<Tensor<1>>,
        g: Tensor<2>,
        [vocab, hidden]: [usize; 2],
        weight: f64,
    ) -> Tensor<1> {
        let sq = g.powi_scalar(2);
        let sq = if weight == 1.0 {
            sq
        } else {
            sq.mul_scalar(weight)
        };
        let acc = acc.map_or_else(
            || Tensor::<2>::zeros([vocab, hidden], &sq.device()),
            |a| a.reshape([vocab, hidden]),
        );
        acc.select_assign(0, self.rows.clone(), sq, IndexingUpdateOp::Add)
            .reshape([vocab * hidden])
    }
}

/// Adds `weight` × the squares of one pass's gradients to `acc`; the word embeddings' from
/// `word` (the touched rows' gradient, [`WordProbe::rows`]) when the probe gave it.
fn accumulate(
    acc: &mut HashMap<ParamId, Tensor<1>>,
    registry: &ParamRegistry,
    mut grads: GradientsParams,
    weight: f64,
    rows: &TokenRows,
    mut word: Option<Tensor<2>>,
) {
    for p in registry.iter() {
        if p.id == rows.id {
            let g = word.take().or_else(|| {
                grads
                    .remove::<2>(p.id)
                    .map(|g| g.select(0, rows.rows.clone()))
            });
            if let Some(g) = g {
                let shape = [p.shape[0], p.shape[1]];
                let next = rows.add_squares(acc.remove(&p.id), g, shape, weight);
                acc.insert(p.id, next);
            }
            continue;
        }
        let g = match p.shape.len() {
            1 => grads.remove::<1>(p.id),
            2 => grads.remove::<2>(p.id).map(|g| g.reshape([p.numel])),
            _ => None,
        };
        let Some(g) = g else { continue };
        let next = add_squares(acc.remove(&p.id), g, weight);
        acc.insert(p.id, next);
    }
}

/// `acc + weight · g²` (`weight · g²` without `acc`). On `flex`, one pass in place over `acc`'s
/// buffer (or `g`'s) with the tensor form's f32 operations in its order (`g·g`, then `· weight`
/// when it is not 1, then `acc +`), so the same bits; elsewhere the tensor form.
fn add_squares(acc: Option<Tensor<1>>, g: Tensor<1>, weight: f64) -> Tensor<1> {
    let w = (weight != 1.0).then_some(weight as f32);
    let host = finesse_bert::flexhost::fused("fisher")
        && plain(&g).is_some()
        && acc
            .as_ref()
            .is_none_or(|a| a.dims() == g.dims() && plain(a).is_some());
    if host {
        // Taken, not cloned: a buffer no one else holds is written in place.
        let take = |t: Tensor<1>| t.try_into_primitive::<Flex>().expect("checked above");
        let g = take(g);
        let square = move |x: f32| match w {
            Some(w) => x * x * w,
            None => x * x,
        };
        return match acc {
            None => wrap(map_in_place(g, |v| {
                v.par_chunks_mut(CHUNK)
                    .for_each(|c| c.iter_mut().for_each(|x| *x = square(*x)))
            })),
            Some(a) => {
                let a = take(a);
                let g = host_floats(&g);
                wrap(map_in_place(a, |v| {
                    v.par_chunks_mut(CHUNK)
                        .zip(g.par_chunks(CHUNK))
                        .for_each(|(a, g)| a.iter_mut().zip(g).for_each(|(a, &g)| *a += square(g)))
                }))
            }
        };
    }
    let sq = g.powi_scalar(2);
    let sq = match w {
        Some(_) => sq.mul_scalar(weight),
        None => sq,
    };
    match acc {
        Some(a) => a + sq,
        None => sq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finesse_bert::{BertConfig, BertModel};

    fn tiny(num_labels: usize) -> BertForSequenceClassification {
        let device = Device::flex().autodiff();
        let config = BertConfig::tiny(50);
        BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            num_labels,
            3,
            &device,
        )
    }

    fn sample(ids: &[i64], labels: BatchLabels) -> HostBatch {
        HostBatch {
            batch: 1,
            seq: ids.len(),
            input_ids: ids.to_vec(),
            token_type_ids: vec![0; ids.len()],
            attention_mask: vec![1; ids.len()],
            labels,
            indices: vec![0],
            real_tokens: ids.len(),
        }
    }

    /// The one-pass sum writes the tensor form's bits, with and without a weight and a running
    /// sum, and leaves a sum someone else still holds untouched.
    #[test]
    fn squared_sums_in_one_pass_write_the_tensor_forms_bits() {
        use burn::tensor::Distribution;
        let device = Device::flex();
        let n = 200_003; // several parallel chunks and a ragged end
        let g = Tensor::<1>::random([n], Distribution::Normal(0.0, 1e-2), &device);
        let a = Tensor::<1>::random([n], Distribution::Uniform(0.0, 1e-3), &device);
        let bits = |t: Tensor<1>| -> Vec<u32> {
            t.into_data()
                .try_to_vec::<f32>()
                .expect("f32")
                .into_iter()
                .map(f32::to_bits)
                .collect()
        };
        for weight in [1.0, 0.37] {
            let sq = g.clone().powi_scalar(2);
            let sq = if weight == 1.0 {
                sq
            } else {
                sq.mul_scalar(weight)
            };
            assert_eq!(
                bits(add_squares(None, g.clone(), weight)),
                bits(sq.clone()),
                "first sample, weight {weight}"
            );
            let before = bits(a.clone());
            assert_eq!(
                bits(add_squares(Some(a.clone()), g.clone(), weight)),
                bits(a.clone() + sq),
                "running sum, weight {weight}"
            );
            assert_eq!(
                bits(a.clone()),
                before,
                "the shared running sum was written"
            );
        }
    }

    /// d f / d bias = 1, so the regression head's bias gets (y − f)² (empirical) and exactly 1
    /// (expected) — not zero as in the FISH reference code.
    #[test]
    fn regression_fisher_of_the_output_bias_is_known() {
        let model = tiny(1);
        let samples = vec![
            sample(&[2, 9, 11, 3], BatchLabels::Scores(vec![3.5])),
            sample(&[2, 7, 3], BatchLabels::Scores(vec![-1.0])),
        ];
        let device = model.classifier.weight.val().device();
        let f: Vec<f64> = samples
            .iter()
            .map(|s| {
                model
                    .clone()
                    .without_dropout()
                    .forward(s.to_input(&device))
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .expect("f32")[0] as f64
            })
            .collect();
        let want = ((3.5 - f[0]).powi(2) + (-1.0 - f[1]).powi(2)) / 2.0;
        let emp =
            estimate(&model, &samples, FisherKind::Empirical, 0, &mut |_, _| {}).expect("emp");
        let got = emp["classifier.bias"].data[0] as f64;
        assert!((got / want - 1.0).abs() < 1e-4, "{got} vs {want}");
        let exp = estimate(&model, &samples, FisherKind::Expected, 0, &mut |_, _| {}).expect("exp");
        assert!((exp["classifier.bias"].data[0] - 1.0).abs() < 1e-6);
        assert!(emp.values().flat_map(|t| &t.data).any(|v| *v > 0.0));
    }

    /// Many label draws approach the exact expectation over classes.
    #[test]
    fn sampled_fisher_converges_to_the_expected_one() {
        let model = tiny(3);
        let samples = vec![
            sample(&[2, 9, 11, 3], BatchLabels::Classes(vec![0])),
            sample(&[2, 7, 3], BatchLabels::Classes(vec![2])),
        ];
        let exp = estimate(&model, &samples, FisherKind::Expected, 0, &mut |_, _| {}).expect("exp");
        let sam = estimate(
            &model,
            &samples,
            FisherKind::Sampled { draws: 4000 },
            1,
            &mut |_, _| {},
        )
        .expect("sampled");
        let total = |m: &BTreeMap<String, HostTensor>| -> f64 {
            m.values().flat_map(|t| &t.data).map(|&v| v as f64).sum()
        };
        let (e, s) = (total(&exp), total(&sam));
        assert!((s / e - 1.0).abs() < 0.05, "sampled {s} vs expected {e}");
        // The head's bias: Σ_y p_y (δ_yc − p_c)² = p_c (1 − p_c) per sample, averaged.
        let device = model.classifier.weight.val().device();
        let mut want = [0.0f64; 3];
        for s in &samples {
            let p = probabilities(&model.clone().without_dropout(), s, &device).expect("p");
            for c in 0..3 {
                want[c] += p[c] * (1.0 - p[c]) / 2.0;
            }
        }
        for (c, w) in want.iter().enumerate() {
            let got = exp["classifier.bias"].data[c] as f64;
            assert!((got / w - 1.0).abs() < 1e-4, "class {c}: {got} vs {w}");
        }
    }
}
