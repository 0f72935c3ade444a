//! finesse's trainer equals Hugging Face transformers step for step.
//!
//! `fixtures/hf_steps.safetensors` holds 30 training steps of all-MiniLM-L6-v2 made by
//! transformers (`hf_steps.py` beside this file says how: its optimizer, schedule and
//! weight-decay groups come from `Trainer` itself): dense AdamW with warm-up, linear decay,
//! weight-decay exclusions and clipping; SGD with momentum; AdamW on a fixed FISH mask. Each test
//! gives finesse the same initial head (a model folder holding the real model and the fixture's
//! head), the same batches (`--no-shuffle`: the first 240 rows of the SST-2 slice, 8 per step)
//! and no dropout (`--no-dropout`), trains through `finesse_train::run` with a step event every
//! step, and compares every step's loss, gradient norm and learning rate (relative 1e-4; the
//! learning rate 1e-9) and the final weights (1e-4 absolute; the sampled entries of every
//! parameter, whole small parameters, each parameter's L1 change relative 1e-4, and for FISH
//! every kept entry, the others bit-identical to the base model).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use finesse_glue::GlueTask;
use finesse_sparse::{Algorithm, Mask, MaskTensor, OptimizerConfig};
use finesse_testkit::paths;
use finesse_train::config::OptimizerChoice;
use finesse_train::{Event, MethodConfig, RunConfig, RunOutcome};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::{SafeTensors, serialize_to_file};

const FIXTURE: &str = "tests/fixtures/hf_steps.safetensors";
const LOSS_TOL: f64 = 1e-4;
const WEIGHT_TOL: f32 = 1e-4;
const L1_TOL: f64 = 1e-4;
/// The L1 change per entry that rounding noise alone may give a parameter whose gradient is 0
/// in exact arithmetic (the attention key biases, [`check_l1`]).
const NOISE_PER_ENTRY: f64 = 1e-6;

/// Parameters by HF name, flat, PyTorch layout.
type Weights = BTreeMap<String, Vec<f32>>;

/// (loss, gradient norm, learning rate) of one step.
type StepRow = (f64, f64, f64);

/// The fixture's tensors as f64 vectors with their shapes, and its metadata.
struct Fixture {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    hyper: serde_json::Value,
    names: Vec<String>,
}

impl Fixture {
    fn read() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).expect("fixture header");
        let meta = meta.metadata().clone().expect("fixture metadata");
        assert_eq!(meta["format"], "finesse-hf-steps");
        let st = SafeTensors::deserialize(&bytes).expect("fixture");
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, (view.shape().to_vec(), values(&view))))
            .collect();
        Self {
            tensors,
            hyper: serde_json::from_str(&meta["hyper"]).expect("hyper"),
            names: serde_json::from_str(&meta["names"]).expect("names"),
        }
    }

    fn get(&self, name: &str) -> &[f64] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("the fixture has no {name}"))
            .1
    }

    fn shape(&self, name: &str) -> &[usize] {
        &self.tensors[name].0
    }

    fn usize_of(&self, key: &str) -> usize {
        self.hyper[key].as_u64().expect(key) as usize
    }
}

/// The values of an f32, f64 or i32 tensor.
fn values(view: &TensorView<'_>) -> Vec<f64> {
    let bytes = view.data();
    match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes"))))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|b| f64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))))
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// What the three tests share: the fixture, the model folder with the fixture's head and the
/// base model's tensors.
struct Prepared {
    fixture: Fixture,
    model_dir: PathBuf,
    base: Weights,
    /// Parameter shapes (PyTorch layout) by HF name.
    shapes: BTreeMap<String, Vec<usize>>,
    _tmp: tempfile::TempDir,
}

fn prepared() -> Option<&'static Prepared> {
    static PREPARED: OnceLock<Option<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(prepare).as_ref()
}

/// The HF name with the `bert.` prefix the fixture uses.
fn hf_name(name: &str) -> String {
    if name.starts_with("classifier.") || name.starts_with("bert.") {
        name.to_string()
    } else {
        format!("bert.{name}")
    }
}

fn f32_tensors(path: &Path) -> Weights {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("model weights");
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == Dtype::F32)
        .map(|(name, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            (hf_name(&name), data)
        })
        .collect()
}

fn prepare() -> Option<Prepared> {
    let real = finesse_testkit::real_model::real_model()?;
    let fixture = Fixture::read();
    let tmp = tempfile::tempdir().expect("tempdir");
    let model_dir = tmp.path().join("model-with-head");
    std::fs::create_dir_all(&model_dir).expect("model dir");
    for file in ["config.json", "tokenizer.json", "vocab.txt"] {
        std::fs::copy(real.join(file), model_dir.join(file)).expect(file);
    }
    // The real model's weights and the fixture's head in one file.
    let weights = std::fs::read(real.join("model.safetensors")).expect("weights");
    let st = SafeTensors::deserialize(&weights).expect("weights");
    let head: Vec<(String, Vec<usize>, Vec<u8>)> = ["classifier.weight", "classifier.bias"]
        .iter()
        .map(|n| {
            let key = format!("head.{n}");
            let bytes = fixture
                .get(&key)
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect();
            (n.to_string(), fixture.shape(&key).to_vec(), bytes)
        })
        .collect();
    let mut views: Vec<(String, TensorView<'_>)> = st.tensors();
    for (name, shape, bytes) in &head {
        views.push((
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), bytes).expect("head view"),
        ));
    }
    serialize_to_file(views, None, &model_dir.join("model.safetensors")).expect("write weights");
    let base = f32_tensors(&model_dir.join("model.safetensors"));
    let shapes = st
        .tensors()
        .into_iter()
        .map(|(name, v)| (hf_name(&name), v.shape().to_vec()))
        .chain(head.iter().map(|(n, shape, _)| (n.clone(), shape.clone())))
        .collect();
    check_tokens(&fixture, &model_dir);
    Some(Prepared {
        fixture,
        model_dir,
        base,
        shapes,
        _tmp: tmp,
    })
}

/// finesse encodes the 240 rows into the ids transformers trained on.
fn check_tokens(fixture: &Fixture, model_dir: &Path) {
    let rows = fixture.usize_of("steps") * fixture.usize_of("batch_size");
    let tokenizer = finesse_bert::BertTokenizer::from_file(
        &model_dir.join("tokenizer.json"),
        fixture.usize_of("max_seq_len"),
    )
    .expect("tokenizer");
    let split = finesse_glue::load_split(
        GlueTask::Sst2,
        &paths::glue_data(),
        finesse_glue::SplitKind::Train,
        false,
    )
    .expect("SST-2 slice");
    let encoded = finesse_glue::batch::encode_split(&split, &tokenizer).expect("encode");
    let width = fixture.shape("data.input_ids")[1];
    let ids = fixture.get("data.input_ids");
    let lengths = fixture.get("data.lengths");
    let labels = fixture.get("data.labels");
    for (i, example) in encoded.examples.iter().take(rows).enumerate() {
        let len = lengths[i] as usize;
        let hf: Vec<u32> = ids[i * width..i * width + len]
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(example.input_ids, hf, "row {} tokenises differently", i + 1);
        assert_eq!(
            example.label,
            finesse_glue::Label::Class(labels[i] as usize),
            "row {}",
            i + 1
        );
    }
}

/// The run of one case, as the fixture's `hyper.cases[case]` sets it.
fn config(p: &Prepared, case: &str, out: &Path, method: MethodConfig) -> RunConfig {
    let spec = &p.fixture.hyper["cases"][case];
    let steps = p.fixture.usize_of("steps");
    let batch = p.fixture.usize_of("batch_size");
    let mut c = RunConfig::new(
        p.model_dir.display().to_string(),
        GlueTask::Sst2,
        paths::glue_data(),
        out,
    );
    c.max_steps = Some(steps);
    c.batch_size = batch;
    c.max_train_examples = Some(steps * batch);
    c.max_eval_examples = Some(8);
    c.shuffle = false;
    c.dropout = false;
    c.log_every = 1;
    c.lr = spec["lr"].as_f64().expect("lr");
    c.max_seq_len = p.fixture.usize_of("max_seq_len");
    // ceil(ratio · steps) warm-up steps, as transformers' warmup_steps.
    c.warmup_ratio = p.fixture.usize_of("warmup_steps") as f64 / steps as f64;
    c.max_grad_norm = Some(p.fixture.hyper["max_grad_norm"].as_f64().expect("clip"));
    c.save_model = true;
    c.method = method;
    c.optimizer = match spec["optim"].as_str().expect("optim") {
        "adamw_torch" => OptimizerChoice::Adamw.config(0.0),
        "sgd" => {
            assert_eq!(spec["optim_args"], "momentum=0.9");
            OptimizerConfig {
                algorithm: Algorithm::Sgd { momentum: 0.9 },
                ..OptimizerChoice::Sgd.config(0.9)
            }
        }
        other => panic!("unknown optim {other}"),
    };
    c.optimizer.weight_decay = p.fixture.hyper["weight_decay"].as_f64().expect("decay");
    c
}

/// Trains `config` on flex; the (loss, grad norm, lr) of every step and the final weights.
fn train(config: RunConfig) -> (Vec<StepRow>, Weights) {
    let out = config.output_dir.clone();
    let mut steps = Vec::new();
    let outcome = finesse_train::trainer::run(
        config,
        Device::flex(),
        false,
        &mut |e| {
            if let Event::Step {
                step,
                loss,
                grad_norm,
                lr,
                ..
            } = *e
            {
                assert_eq!(step, steps.len() + 1, "a step event every step");
                steps.push((loss, grad_norm, lr));
            }
        },
        &AtomicBool::new(false),
    )
    .expect("the run");
    assert!(matches!(outcome, RunOutcome::Finished(_)), "{outcome:?}");
    (steps, f32_tensors(&out.join("model/model.safetensors")))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Every step's loss, gradient norm and learning rate against the fixture's.
fn check_steps(p: &Prepared, case: &str, steps: &[StepRow]) {
    let losses = p.fixture.get(&format!("{case}.loss"));
    let norms = p.fixture.get(&format!("{case}.grad_norm"));
    let lrs = p.fixture.get(&format!("{case}.lr"));
    assert_eq!(steps.len(), losses.len(), "{case}: steps");
    let mut worst = (0.0f64, 0.0f64);
    for (i, &(loss, norm, lr)) in steps.iter().enumerate() {
        let (dl, dn) = (rel(loss, losses[i]), rel(norm, norms[i]));
        assert!(
            dl <= LOSS_TOL && dn <= LOSS_TOL && rel(lr, lrs[i]) <= 1e-9,
            "{case} step {}: finesse loss {loss} grad norm {norm} lr {lr}, transformers {} {} {}",
            i + 1,
            losses[i],
            norms[i],
            lrs[i]
        );
        worst = (worst.0.max(dl), worst.1.max(dn));
    }
    let clipped = norms.iter().filter(|&&n| n > 1.0).count();
    assert!(
        clipped > 0,
        "{case}: no step was clipped, so clipping went untested"
    );
    eprintln!(
        "{case}: {} steps ({clipped} clipped), loss within {:.1e}, grad norm within {:.1e} (relative)",
        steps.len(),
        worst.0,
        worst.1
    );
}

/// Every parameter's L1 change against the fixture's: relative [`L1_TOL`] plus 1e-7 per entry
/// that may change (`trainable(name)`). The attention key biases are held to a bound instead:
/// softmax ignores a shift shared by all keys, so their gradient is 0 in exact arithmetic and
/// both trainers move them by rounding noise only (an L1 change of about 1e-5 over 384 entries
/// with AdamW, 1e-12 with SGD), which depends on every rounding of the step (the order of a
/// sum, a product's blocking) and agrees in size, not in digits: at most [`NOISE_PER_ENTRY`] per
/// entry, where a real gradient would move them by about the learning rate per step.
fn check_l1(p: &Prepared, case: &str, tuned: &Weights, trainable: impl Fn(&str) -> usize) {
    let mut worst = (0.0f64, String::new());
    for name in &p.fixture.names {
        let expected = p.fixture.get(&format!("{case}.l1_change.{name}"))[0];
        let got: f64 = tuned[name]
            .iter()
            .zip(&p.base[name])
            .map(|(&t, &b)| (f64::from(t) - f64::from(b)).abs())
            .sum();
        if name.ends_with("attention.self.key.bias") {
            let bound = NOISE_PER_ENTRY * trainable(name) as f64;
            assert!(
                got <= bound && expected <= bound,
                "{case} {name}: L1 change {got}, transformers {expected}: more than rounding noise ({bound})"
            );
            continue;
        }
        let floor = 1e-7 * trainable(name) as f64;
        assert!(
            (got - expected).abs() <= L1_TOL * expected + floor,
            "{case} {name}: L1 change {got}, transformers {expected}"
        );
        if rel(got, expected) > worst.0 {
            worst = (rel(got, expected), name.clone());
        }
    }
    eprintln!(
        "{case}: L1 change of every parameter within {:.1e} relative (key biases aside; worst {})",
        worst.0, worst.1
    );
}

/// The final weights of a dense case: whole small parameters, sampled large ones.
fn check_dense_weights(p: &Prepared, case: &str, tuned: &Weights) {
    let stride = p.fixture.usize_of("stride");
    let mut worst = 0f32;
    let mut compared = 0usize;
    for name in &p.fixture.names {
        let got = tuned
            .get(name)
            .unwrap_or_else(|| panic!("model/ has no {name}"));
        let whole = format!("{case}.whole.{name}");
        let (indices, expected): (Vec<usize>, &[f64]) = if p.fixture.tensors.contains_key(&whole) {
            ((0..got.len()).collect(), p.fixture.get(&whole))
        } else {
            let sample = p.fixture.get(&format!("{case}.sample.{name}"));
            ((0..got.len()).step_by(stride).collect(), sample)
        };
        assert_eq!(indices.len(), expected.len(), "{case} {name}: entries");
        for (&i, &e) in indices.iter().zip(expected) {
            let d = (got[i] - e as f32).abs();
            assert!(
                d <= WEIGHT_TOL,
                "{case} {name}[{i}]: finesse {}, transformers {e}",
                got[i]
            );
            worst = worst.max(d);
        }
        compared += indices.len();
    }
    check_l1(p, case, tuned, |name| tuned[name].len());
    eprintln!("{case}: {compared} final weights within {worst:.1e}");
}

/// Trains the dense `case` and checks its steps and final weights.
fn dense_case(case: &str) {
    let Some(p) = prepared() else { return };
    let out = tempfile::tempdir().expect("tempdir");
    let (steps, tuned) = train(config(
        p,
        case,
        &out.path().join("run"),
        MethodConfig::Dense,
    ));
    check_steps(p, case, &steps);
    check_dense_weights(p, case, &tuned);
}

#[test]
fn dense_adamw_with_warmup_decay_and_clipping_equals_transformers() {
    dense_case("adamw");
}

#[test]
fn dense_sgd_with_momentum_equals_transformers() {
    dense_case("sgd");
}

#[test]
fn adamw_on_a_fixed_fish_mask_equals_transformers() {
    let Some(p) = prepared() else { return };
    let out = tempfile::tempdir().expect("tempdir");
    // The fixture's mask as a finesse mask file.
    let mut mask = Mask::default();
    for name in &p.fixture.names {
        let shape = p.shapes[name].clone();
        let kept = p
            .fixture
            .get(&format!("fish.mask.{name}"))
            .iter()
            .map(|&i| i as u32)
            .collect();
        mask.tensors
            .insert(name.clone(), MaskTensor { shape, kept });
    }
    let mask_file = out.path().join("fish-mask.safetensors");
    mask.write(&mask_file, true, &BTreeMap::new())
        .expect("mask file");
    let method = MethodConfig::Fish {
        selection: None,
        fisher: Default::default(),
        mask_file: Some(mask_file),
    };
    let (steps, tuned) = train(config(p, "fish", &out.path().join("run"), method));
    check_steps(p, "fish", &steps);
    let mut worst = 0f32;
    for name in &p.fixture.names {
        let kept = p.fixture.get(&format!("fish.mask.{name}"));
        let values = p.fixture.get(&format!("fish.kept.{name}"));
        let (got, base) = (&tuned[name], &p.base[name]);
        let mut is_kept = vec![false; got.len()];
        for (&i, &e) in kept.iter().zip(values) {
            let i = i as usize;
            is_kept[i] = true;
            let d = (got[i] - e as f32).abs();
            assert!(
                d <= WEIGHT_TOL,
                "fish {name}[{i}]: finesse {}, transformers {e}",
                got[i]
            );
            worst = worst.max(d);
        }
        let moved = (0..got.len())
            .filter(|&i| !is_kept[i] && got[i].to_bits() != base[i].to_bits())
            .count();
        assert_eq!(moved, 0, "fish {name}: entries outside the mask changed");
    }
    check_l1(p, "fish", &tuned, |name| {
        p.fixture.get(&format!("fish.mask.{name}")).len()
    });
    eprintln!(
        "fish: {} kept entries within {worst:.1e}, the others bit-identical",
        p.fixture
            .names
            .iter()
            .map(|n| p.fixture.get(&format!("fish.mask.{n}")).len())
            .sum::<usize>()
    );
}
