//! The sequence-classification forward runs the last layer for the `[CLS]` position only
//! (`BertModel::pooled`). These checks hold it to the full forward: the same logits and the
//! same gradient for every parameter (each within 1e-5 of its tensor's largest entry), in
//! evaluation and in training with dropout on (the same dropout entries are drawn), with
//! padding, on `flex` and `ndarray`.
//!
//! One test function, so no other test of this process draws from Burn's process-wide
//! generator between the two seeded passes it compares.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use finesse_bert::{
    BertConfig, BertForSequenceClassification, BertInput, BertModel, ParamRegistry,
};

/// Three rows of lengths 7, 4 and 9 padded to 9, with two segments.
fn input(device: &Device) -> BertInput {
    let lens = [7usize, 4, 9];
    let (batch, seq) = (lens.len(), 9);
    let mut ids = Vec::new();
    let mut types = Vec::new();
    let mut mask = Vec::new();
    for (b, &len) in lens.iter().enumerate() {
        for t in 0..seq {
            let real = t < len;
            ids.push(if real {
                2 + ((b * 13 + t * 7) % 45) as i64
            } else {
                0
            });
            types.push(i64::from(real && t >= len / 2));
            mask.push(i64::from(real));
        }
    }
    BertInput::from_host(ids, types, mask, batch, seq, device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

/// The largest difference relative to the tensors' largest magnitude.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a
        .iter()
        .chain(b)
        .fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
        / scale
}

/// The head on the full forward's pooled output: the path `pooled` replaces.
fn full_logits(model: &BertForSequenceClassification, input: BertInput) -> Tensor<2> {
    let pooled = model.bert.forward(input).pooler_output;
    model
        .classifier
        .forward(finesse_bert::dropout::apply(&model.dropout, pooled))
}

/// Logits and every parameter's gradient (by HF name) of `sum(logits · w)`.
fn logits_and_grads(
    model: &BertForSequenceClassification,
    logits: Tensor<2>,
) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let device = logits.device();
    let w = Tensor::<2>::from_data(
        TensorData::new(vec![0.7f32, -1.3, 0.4, 2.1, -0.6, 1.1], [3, 2]),
        &device,
    );
    let grads = (logits.clone() * w).sum().backward();
    let grads = GradientsParams::from_grads(grads, model);
    let registry = ParamRegistry::of(model);
    let per_param = registry
        .iter()
        .map(|p| {
            let g = match p.shape.len() {
                1 => grads.get::<1>(p.id).map(values),
                2 => grads.get::<2>(p.id).map(values),
                _ => None,
            };
            (
                p.name.clone(),
                g.unwrap_or_else(|| panic!("no gradient for {}", p.name)),
            )
        })
        .collect();
    (values(logits), per_param)
}

fn check(device: &Device) {
    let config = BertConfig::tiny(50);
    let bert = BertModel::init(&config, device);
    let model = BertForSequenceClassification::with_fresh_head(bert, &config, 2, 5, device);

    // Evaluation: the pooled output and the logits.
    let eval = model.valid();
    let eval_device = device.clone().inner();
    let pooled_full = values(eval.bert.forward(input(&eval_device)).pooler_output);
    let pooled_first = values(eval.bert.pooled(input(&eval_device)));
    let d = rel_diff(&pooled_full, &pooled_first);
    assert!(d <= 1e-6, "{device:?}: pooled outputs differ by {d}");
    let eval_full = values(full_logits(&eval, input(&eval_device)));
    let eval_logits = values(eval.forward(input(&eval_device)));
    let d = rel_diff(&eval_full, &eval_logits);
    assert!(d <= 1e-6, "{device:?}: evaluation logits differ by {d}");

    // Training, dropout on: the same seed gives the same dropout entries on both paths.
    device.seed(31);
    let (want, want_grads) = logits_and_grads(&model, full_logits(&model, input(device)));
    device.seed(31);
    let (got, got_grads) = logits_and_grads(&model, model.forward(input(device)));
    let d = rel_diff(&want, &got);
    assert!(d <= 1e-6, "{device:?}: training logits differ by {d}");
    assert!(
        rel_diff(&want, &eval_full) > 1e-3,
        "{device:?}: dropout should change the training logits"
    );
    assert_eq!(want_grads.len(), got_grads.len());
    let mut nonzero = 0;
    let mut worst = (0.0f32, "");
    for ((name, a), (_, b)) in want_grads.iter().zip(&got_grads) {
        let d = rel_diff(a, b);
        // The attention key biases' gradient is 0 in exact arithmetic (softmax ignores a shift
        // shared by all keys): both paths give rounding noise there, not comparable values.
        if !name.ends_with("attention.self.key.bias") {
            assert!(d <= 1e-5, "{device:?}: gradient of {name} differs by {d}");
            if d > worst.0 {
                worst = (d, name);
            }
        }
        nonzero += usize::from(a.iter().any(|&v| v != 0.0) && b.iter().any(|&v| v != 0.0));
    }
    eprintln!(
        "{device:?}: gradients within {:.1e} of each tensor's largest entry (worst {})",
        worst.0, worst.1
    );
    // Every parameter takes part (the word-embedding rows of unused ids aside, each tensor has
    // some nonzero entry), so the comparison covers the last layer's pruned rows.
    assert_eq!(
        nonzero,
        want_grads.len(),
        "{device:?}: some gradient is all zero"
    );
}

#[test]
#[allow(deprecated)] // ndarray: the decomposed attention and Burn's own ops
fn the_first_position_forward_matches_the_full_forward() {
    check(&Device::flex().autodiff());
    check(&Device::ndarray().autodiff());
}
