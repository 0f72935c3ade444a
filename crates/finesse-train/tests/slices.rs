//! Weight gradients on slices (`finesse_bert::slices`, issue 21): under an active plan the
//! sliced weights' gradients must equal the dense ones on their slice (so on every kept entry)
//! and be zero elsewhere, a trained bias's gradient must equal the dense one, and every other
//! parameter's gradient must not change.

use std::collections::BTreeMap;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use finesse_bert::model::BertInput;
use finesse_bert::slices::{SlicePlan, WeightSlice};
use finesse_bert::{BertForSequenceClassification, ParamRegistry, load_classifier};
use finesse_testkit::TinyBert;

fn model(dir: &std::path::Path, device: &Device) -> BertForSequenceClassification {
    let folder = TinyBert::from_assets().seed(7).write(dir);
    let (model, _, _) = load_classifier(&folder, 2, 42, device).expect("tiny model");
    model.without_dropout()
}

fn input(device: &Device) -> BertInput {
    let (batch, seq) = (3, 9);
    let ids: Vec<i64> = (0..batch * seq)
        .map(|i| ((i * 37 + 11) % 120) as i64 + 4)
        .collect();
    let mut mask = vec![1i64; batch * seq];
    mask[seq - 2..seq].fill(0); // padding in the first row
    BertInput::from_host(ids, vec![0; batch * seq], mask, batch, seq, device)
}

/// Every parameter's gradient by HF name, as host vectors in Burn's layout.
fn gradients(
    model: &BertForSequenceClassification,
    registry: &ParamRegistry,
    plan: Option<&SlicePlan>,
    device: &Device,
) -> BTreeMap<String, Vec<f32>> {
    let active = plan.map(SlicePlan::activate);
    let logits = model.forward(input(device));
    drop(active);
    let loss = (logits.clone() * logits).sum();
    let mut grads = loss.backward();
    if plan.is_some() {
        assert!(SlicePlan::fill(&mut grads) > 0, "the plan sliced no layer");
    }
    let grads = GradientsParams::from_grads(grads, model);
    registry
        .iter()
        .filter_map(|p| {
            let g = match p.shape.len() {
                1 => grads.get::<1>(p.id).map(|g| g.into_data()),
                2 => grads.get::<2>(p.id).map(|g| g.into_data()),
                _ => None,
            }?;
            Some((p.name.clone(), g.try_to_vec::<f32>().expect("f32")))
        })
        .collect()
}

#[test]
#[allow(deprecated)] // burn-ndarray is deprecated upstream; finesse still offers it
fn sliced_weight_gradients_equal_the_dense_ones_on_their_slice() {
    for device in [Device::flex(), Device::ndarray()] {
        sliced_equal_dense_on(device);
    }
}

fn sliced_equal_dense_on(device: Device) {
    let tmp = tempfile::tempdir().expect("tmp");
    let train = device.clone().autodiff();
    let model = model(tmp.path(), &train);
    let registry = ParamRegistry::of(&model);
    let dense = gradients(&model, &registry, None, &train);

    // Kept entries (PyTorch [out, in] layout) in two output units of layer 0's query, in
    // three input features of layer 1's intermediate.dense (output.dense has the wide input).
    let q = registry
        .by_name("bert.encoder.layer.0.attention.self.query.weight")
        .expect("query");
    let (q_out, q_in) = (q.shape[0], q.shape[1]);
    let q_kept: Vec<u32> = [1usize, q_out - 1]
        .iter()
        .flat_map(|&r| [0, 5, q_in - 1].map(move |c| (r * q_in + c) as u32))
        .collect();
    let wo = registry
        .by_name("bert.encoder.layer.1.output.dense.weight")
        .expect("output.dense");
    let (o_out, o_in) = (wo.shape[0], wo.shape[1]);
    let o_kept: Vec<u32> = (0..o_out)
        .flat_map(|r| [2usize, 9, o_in - 3].map(move |c| (r * o_in + c) as u32))
        .collect();
    let q_slice = WeightSlice::for_kept(&q_kept, q_out, q_in, 0.5).expect("worth slicing");
    let o_slice = WeightSlice::for_kept(&o_kept, o_out, o_in, 0.5).expect("worth slicing");
    assert_eq!(q_slice, WeightSlice::Outputs(vec![1, q_out - 1]));
    assert_eq!(o_slice, WeightSlice::Inputs(vec![2, 9, o_in - 3]));
    let mut plan = SlicePlan::new();
    plan.insert(q.id, q_slice.clone(), true, &device);
    plan.insert(wo.id, o_slice.clone(), false, &device);
    let sliced = gradients(&model, &registry, Some(&plan), &train);

    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-3);
    let mut compared = 0;
    for (name, want) in &dense {
        let got = match sliced.get(name) {
            Some(g) => g,
            // A bias detached by the plan and not trained there has no gradient.
            None if name == "bert.encoder.layer.1.output.dense.bias" => continue,
            None => panic!("{name}: no gradient under the plan"),
        };
        assert_eq!(got.len(), want.len(), "{name}");
        // Burn's weight layout is [in, out]: entry (i, o) at i * out + o.
        let in_slice = |flat: usize| -> bool {
            let p = registry.by_name(name).expect("param");
            let out = p.shape[0];
            let (i, o) = (flat / out, flat % out);
            if name == q.name.as_str() {
                matches!(&q_slice, WeightSlice::Outputs(c) if c.contains(&o))
            } else if name == wo.name.as_str() {
                matches!(&o_slice, WeightSlice::Inputs(r) if r.contains(&i))
            } else {
                true
            }
        };
        for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
            if in_slice(k) {
                assert!(close(g, w), "{name}[{k}]: sliced {g} vs dense {w}");
                compared += 1;
            } else {
                assert_eq!(g, 0.0, "{name}[{k}]: outside the slice");
            }
        }
    }
    assert!(compared > 1000, "{compared}");
    // The kept entries themselves, in PyTorch layout, through the layout map.
    for &i in &q_kept {
        let (r, c) = (i as usize / q_in, i as usize % q_in);
        let burn = c * q_out + r;
        let (g, w) = (sliced[&q.name][burn], dense[&q.name][burn]);
        assert!(w != 0.0 && close(g, w), "query kept entry {i}: {g} vs {w}");
    }
}

#[test]
fn slices_are_chosen_only_where_they_save_work() {
    // 4 outputs × 6 inputs; kept in one output unit → 1/4 of the work.
    assert_eq!(
        WeightSlice::for_kept(&[6, 8, 11], 4, 6, 0.5),
        Some(WeightSlice::Outputs(vec![1]))
    );
    // Kept in one input feature of every output unit → 1/6 as inputs.
    assert_eq!(
        WeightSlice::for_kept(&[2, 8, 14, 20], 4, 6, 0.5),
        Some(WeightSlice::Inputs(vec![2]))
    );
    // A spread mask (every row and column) is not sliced; nor is an empty one.
    let spread: Vec<u32> = (0..4).map(|r| r * 6 + r).chain([5, 10]).collect();
    assert_eq!(WeightSlice::for_kept(&spread, 4, 6, 0.5), None);
    assert_eq!(WeightSlice::for_kept(&[], 4, 6, 0.5), None);
}
