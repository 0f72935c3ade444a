//! Golden tests against Hugging Face transformers (`tests/fixtures/all-MiniLM-L6-v2`):
//! hidden states, pooler output and logits within 1e-4 absolute on `flex` and `ndarray`, and
//! the tokenizer reproducing the fixture's `input_ids` exactly (texts from `tests/data/glue`).
//!
//! The real model is fetched into the finesse cache on first use; a test fails when it cannot
//! be had, unless `FINESSE_SKIP_REAL_MODEL=1` (a deliberate local opt-out, printed).

use std::path::Path;

use burn::tensor::{Device, Tensor};
use finesse_bert::io::{read_float_tensors, read_int_tensors};
use finesse_bert::{
    BertForSequenceClassification, BertInput, BertTokenizer, HostTensor, TextInput, load_bert,
};

// finesse-testkit depends on this crate, so its std-only helpers are included by path.
#[allow(dead_code)]
#[path = "../../finesse-testkit/src/paths.rs"]
mod paths;
#[allow(dead_code)]
#[path = "../../finesse-testkit/src/real_model.rs"]
mod real_model;

use paths::{fixtures, glue_data};
use real_model::real_model;

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32")
}

fn fixture_inputs() -> (Vec<HostTensor<i64>>, usize, usize) {
    let t = read_int_tensors(
        &fixtures().join("forward.safetensors"),
        &["input_ids", "token_type_ids", "attention_mask"],
    )
    .expect("fixture inputs");
    let (b, s) = (t[0].shape[0], t[0].shape[1]);
    (t, b, s)
}

fn check_forward(model_dir: &Path, device: &Device, tol: f32) {
    let (bert, config, report) = load_bert(model_dir, device).expect("load real model");
    assert!(
        report.unused.is_empty(),
        "unused tensors: {:?}",
        report.unused
    );
    let (ins, b, s) = fixture_inputs();
    let input = || {
        BertInput::from_host(
            ins[0].data.clone(),
            ins[1].data.clone(),
            ins[2].data.clone(),
            b,
            s,
            device,
        )
    };
    let out = bert.forward(input());
    let want = read_float_tensors(&fixtures().join("forward.safetensors")).expect("fixture");
    let hidden = max_abs_diff(
        &to_vec(out.last_hidden_state),
        &want.tensors["last_hidden_state"].data,
    );
    let pooled = max_abs_diff(
        &to_vec(out.pooler_output),
        &want.tensors["pooler_output"].data,
    );
    println!("{device:?}: max |Δ| hidden {hidden:.2e}, pooler {pooled:.2e}");
    assert!(hidden <= tol, "last_hidden_state differs by {hidden}");
    assert!(pooled <= tol, "pooler_output differs by {pooled}");

    let head = read_float_tensors(&fixtures().join("classifier.safetensors")).expect("head");
    let model = BertForSequenceClassification::with_head(
        bert,
        &config,
        head.tensors["classifier.weight"].clone(),
        head.tensors["classifier.bias"].clone(),
        device,
    )
    .expect("head fits");
    let logits = max_abs_diff(
        &to_vec(model.forward(input())),
        &head.tensors["logits"].data,
    );
    println!("{device:?}: max |Δ| logits {logits:.2e}");
    assert!(logits <= tol, "logits differ by {logits}");
}

#[test]
fn forward_matches_transformers_on_flex() {
    let Some(dir) = real_model() else { return };
    check_forward(&dir, &Device::flex(), 1e-4);
}

#[test]
#[allow(deprecated)]
fn forward_matches_transformers_on_ndarray() {
    let Some(dir) = real_model() else { return };
    check_forward(&dir, &Device::ndarray(), 1e-4);
}

/// Rows 0-1: the first two sentences of SST-2 train; rows 2-3: the first two pairs of MRPC dev.
fn fixture_texts() -> Vec<TextInput> {
    let read = |p: &str| std::fs::read_to_string(glue_data().join(p)).expect("GLUE file");
    let sst = read("SST-2/train.tsv");
    let mrpc = read("MRPC/dev.tsv");
    let mut rows: Vec<TextInput> = sst
        .lines()
        .skip(1)
        .take(2)
        .map(|l| TextInput::single(l.split('\t').next().expect("sentence")))
        .collect();
    rows.extend(
        mrpc.trim_start_matches('\u{feff}')
            .lines()
            .skip(1)
            .take(2)
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                TextInput::pair(cols[3], cols[4])
            }),
    );
    rows
}

#[test]
fn tokenizer_reproduces_fixture_input_ids() {
    let Some(dir) = real_model() else { return };
    // The fixture was made with truncation to 32 tokens (longest first) and padding to 32.
    let tok = BertTokenizer::from_file(&dir.join("tokenizer.json"), 32).expect("tokenizer");
    let enc = tok.encode_batch(&fixture_texts()).expect("encode");
    let (want, b, s) = fixture_inputs();
    assert_eq!(enc.batch, b);
    assert!(enc.seq <= s, "batch padded to {} > fixture {}", enc.seq, s);
    for row in 0..b {
        for col in 0..s {
            let w = |t: &HostTensor<i64>| t.data[row * s + col];
            let g = |v: &[i64]| {
                if col < enc.seq {
                    v[row * enc.seq + col]
                } else {
                    0
                }
            };
            assert_eq!(g(&enc.input_ids), w(&want[0]), "input_ids[{row}][{col}]");
            assert_eq!(
                g(&enc.token_type_ids),
                w(&want[1]),
                "token_type_ids[{row}][{col}]"
            );
            assert_eq!(
                g(&enc.attention_mask),
                w(&want[2]),
                "attention_mask[{row}][{col}]"
            );
        }
    }
}

#[test]
fn truncation_limits_pairs_to_max_len() {
    let Some(dir) = real_model() else { return };
    let tok = BertTokenizer::from_file(&dir.join("tokenizer.json"), 16).expect("tokenizer");
    let enc = tok.encode_batch(&fixture_texts()).expect("encode");
    assert_eq!(enc.seq, 16);
    // The MRPC pairs (rows 2, 3) are longer than 16 tokens: cut, and still ending in [SEP]
    // (id 102) with both segments present.
    for row in 2..4 {
        assert_eq!(
            enc.attention_mask[row * 16 + 15],
            1,
            "row {row} fills the length"
        );
        assert_eq!(enc.input_ids[row * 16 + 15], 102, "row {row}");
        assert!(
            enc.token_type_ids[row * 16..row * 16 + 16].contains(&1),
            "row {row}"
        );
    }
}
