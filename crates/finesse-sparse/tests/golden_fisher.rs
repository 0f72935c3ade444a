//! Golden Fisher information and top-k counts against Hugging Face transformers
//! (`tests/fixtures/all-MiniLM-L6-v2/fisher.safetensors`, `fisher_topk.json`): the
//! all-MiniLM-L6-v2 encoder with the fixture's classifier head, eval mode, batch size 1, the
//! first 8 SST-2 training sentences padded to 64 tokens. The fixture keeps only the leading rows
//! of the three big matrices (its metadata names them; `tests/fixtures/README.md`).
//!
//! The real model is fetched into the finesse cache on first use; the test fails when it cannot
//! be had, unless `FINESSE_SKIP_REAL_MODEL=1` (a deliberate local opt-out, printed).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use finesse_bert::io::{read_float_tensors, read_int_tensors};
use finesse_bert::{BertForSequenceClassification, HostTensor, load_bert};
use finesse_glue::{BatchLabels, HostBatch};
use finesse_sparse::fisher::estimate;
use finesse_sparse::mask::select;
use finesse_sparse::{Budget, FisherKind, Scope, Selection};

// finesse-testkit depends on finesse-bert; its std-only helpers are included by path, so this
// crate's dependency list stays as it is.
#[allow(dead_code)]
#[path = "../../finesse-testkit/src/paths.rs"]
mod paths;
#[allow(dead_code)]
#[path = "../../finesse-testkit/src/real_model.rs"]
mod real_model;

use paths::fixtures;
use real_model::real_model;

/// The fixture's 8 rows as single-example batches, padding kept as in the fixture.
fn samples() -> Vec<HostBatch> {
    let path = fixtures().join("fisher.safetensors");
    let t = read_int_tensors(
        &path,
        &["input_ids", "token_type_ids", "attention_mask", "labels"],
    )
    .expect("fixture inputs");
    let (b, s) = (t[0].shape[0], t[0].shape[1]);
    (0..b)
        .map(|i| {
            let row = |k: usize| t[k].data[i * s..(i + 1) * s].to_vec();
            let mask = row(2);
            HostBatch {
                batch: 1,
                seq: s,
                input_ids: row(0),
                token_type_ids: row(1),
                real_tokens: mask.iter().filter(|&&m| m == 1).count(),
                attention_mask: mask,
                labels: BatchLabels::Classes(vec![t[3].data[i]]),
                indices: vec![i],
            }
        })
        .collect()
}

fn model(dir: &Path, device: &Device) -> BertForSequenceClassification {
    let (bert, config, _) = load_bert(dir, device).expect("load real model");
    let mut head = read_float_tensors(&fixtures().join("classifier.safetensors"))
        .expect("head")
        .tensors;
    let w = head.remove("classifier.weight").expect("weight");
    let b = head.remove("classifier.bias").expect("bias");
    BertForSequenceClassification::with_head(bert, &config, w, b, device).expect("head fits")
}

/// A fixture tensor cut to its leading rows (`tests/make_test_data.py`): the full tensor's
/// shape and largest |value|.
#[derive(serde::Deserialize)]
struct Cut {
    full_shape: Vec<usize>,
    rows: usize,
    max_abs: f64,
}

/// The fixture's cut tensors by key (`empirical.<name>`), from its metadata.
fn cuts(path: &Path) -> BTreeMap<String, Cut> {
    let bytes = std::fs::read(path).expect("fixture");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
    meta.metadata()
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with("empirical.") || key.starts_with("expected."))
        .map(|(key, json)| {
            (
                key.clone(),
                serde_json::from_str(json).expect("cut metadata"),
            )
        })
        .collect()
}

/// max over entries of |a − b| / (|b| + floor), with the floor at 1e-3 of the full tensor's
/// largest value (the fixture README: relative 1e-3 plus a small absolute floor). A cut fixture
/// tensor is compared with the same leading rows of `got`, after checking the full shape.
fn rel_err(got: &HostTensor, want: &HostTensor, cut: Option<&Cut>) -> f64 {
    let scale = match cut {
        Some(cut) => {
            assert_eq!(got.shape, cut.full_shape, "full shape");
            assert_eq!(want.shape[0], cut.rows, "rows kept");
            assert_eq!(want.shape[1..], got.shape[1..], "row length");
            cut.max_abs
        }
        None => {
            assert_eq!(got.shape, want.shape);
            want.data.iter().fold(0f32, |m, v| m.max(v.abs())) as f64
        }
    };
    let floor = 1e-3 * scale;
    // Row-major: the leading rows are the leading entries.
    got.data[..want.data.len()]
        .iter()
        .zip(&want.data)
        .map(|(&g, &w)| (g as f64 - w as f64).abs() / (w.abs() as f64 + floor))
        .fold(0.0, f64::max)
}

#[test]
fn fisher_and_top_k_counts_match_transformers() {
    let Some(dir) = real_model() else { return };
    let device = Device::flex().autodiff();
    let model = model(&dir, &device);
    let fisher_path = fixtures().join("fisher.safetensors");
    let want = read_float_tensors(&fisher_path).expect("fixture").tensors;
    let cuts = cuts(&fisher_path);
    assert_eq!(cuts.len(), 6, "three matrices cut, for both kinds");
    let topk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("fisher_topk.json")).expect("topk json"),
    )
    .expect("json");
    let samples = samples();
    for kind in [FisherKind::Empirical, FisherKind::Expected] {
        let scores = estimate(&model, &samples, kind, 0, &mut |_, _| {}).expect("estimate");
        let mut checked = 0;
        for (key, w) in &want {
            let Some(name) = key.strip_prefix(&format!("{}.", kind.name())) else {
                continue;
            };
            let err = rel_err(&scores[name], w, cuts.get(key));
            eprintln!("{} {name}: max relative error {err:.2e}", kind.name());
            assert!(err < 1e-3, "{} {name}: relative error {err}", kind.name());
            checked += 1;
        }
        assert_eq!(checked, 8, "all fixture tensors compared");

        let fixture = &topk[kind.name()];
        let mask = select(
            &scores,
            &Selection {
                budget: Budget::Ratio(fixture["keep_ratio"].as_f64().expect("ratio")),
                scope: Scope::Global,
                head_in_budget: true,
                exclude: Vec::new(),
            },
        )
        .expect("select");
        assert_eq!(
            mask.kept() as u64,
            fixture["k_total"].as_u64().expect("k_total"),
            "exactly k kept"
        );
        assert_eq!(
            mask.total() as u64,
            fixture["total_params"].as_u64().expect("total")
        );
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(fixture["kept_per_tensor"].clone()).expect("counts");
        let mut worst = 0.0f64;
        for (name, t) in &mask.tensors {
            let want = counts.get(name).copied().unwrap_or(0) as f64;
            let got = t.kept.len() as f64;
            // About 1% per tensor (entries within float rounding of the threshold may fall
            // either side), with an absolute slack of 2 for tensors that keep a handful.
            let tol = (0.01 * want).max(2.0);
            worst = worst.max((got - want).abs() / want.max(1.0));
            assert!(
                (got - want).abs() <= tol,
                "{} {name}: kept {got}, transformers {want}",
                kind.name()
            );
        }
        eprintln!(
            "{}: worst relative count difference {worst:.4}",
            kind.name()
        );
    }
}
