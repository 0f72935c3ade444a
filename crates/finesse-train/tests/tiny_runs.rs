//! Whole runs on the tiny model (`assets/tiny-bert`) and a small synthetic SST-2 folder:
//! determinism, resume equivalence, NaN handling and the run-directory contents.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use finesse_bert::io::read_float_tensors;
use finesse_glue::GlueTask;
use finesse_sparse::files::read_model_tensors;
use finesse_sparse::{Budget, FisherKind, Mask, SampleOrder, Scope, Selection, SparseDiff};
use finesse_testkit::{TinyBert, ToySst2};
use finesse_train::events::read_events;
use finesse_train::method::FisherSettings;
use finesse_train::trainer::{RunOutcome, run};
use finesse_train::{Event, MethodConfig, RunConfig, TrainError};

/// A tiny model folder with random weights, drawn from the generator seeded with 7 (so in
/// turn with the runs: see `rng_turn`).
fn tiny_model(dir: &Path) -> PathBuf {
    let _turn = rng_turn();
    TinyBert::from_assets()
        .seed(7)
        .write(&dir.join("tiny-model"))
}

fn config(dir: &Path, model: &Path, data: &Path, out: &str) -> RunConfig {
    let mut c = RunConfig::new(model.to_string_lossy(), GlueTask::Sst2, data, dir.join(out));
    c.max_steps = Some(8);
    c.batch_size = 8;
    c.lr = 1e-3;
    c.log_every = 1;
    c.eval_every = Some(4);
    c.save_model = true;
    c
}

fn step_losses(events: &[Event]) -> Vec<(usize, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { step, loss, .. } => Some((*step, loss.to_bits())),
            _ => None,
        })
        .collect()
}

/// Runs share the backend's process-wide random generator (dropout, head initialisation), and
/// so does `tiny_model`, which reseeds it: everything here that seeds or draws from it takes
/// turns, since determinism is a per-process property. (A model built by another test while a
/// run was in flight reseeded the generator under it, and the run's losses moved.)
static RNG_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    RNG_TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_collect(
    c: RunConfig,
    resume: bool,
    cancel_after: Option<usize>,
) -> (Result<RunOutcome, TrainError>, Vec<Event>) {
    let _turn = rng_turn();
    let cancel = AtomicBool::new(false);
    let mut events = Vec::new();
    let mut sink = |e: &Event| {
        if let (Event::Step { step, .. }, Some(n)) = (e, cancel_after)
            && *step == n
        {
            cancel.store(true, Ordering::SeqCst);
        }
        events.push(e.clone());
    };
    let r = run(c, Device::flex(), resume, &mut sink, &cancel);
    (r, events)
}

#[test]
fn same_seed_gives_the_same_losses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let (a, ea) = run_collect(config(dir.path(), &model, &data, "a"), false, None);
    let (b, eb) = run_collect(config(dir.path(), &model, &data, "b"), false, None);
    a.expect("run a");
    b.expect("run b");
    assert_eq!(step_losses(&ea).len(), 8);
    assert_eq!(step_losses(&ea), step_losses(&eb));
    let mut other = config(dir.path(), &model, &data, "c");
    other.seed = 43;
    let (c, ec) = run_collect(other, false, None);
    c.expect("run c");
    assert_ne!(
        step_losses(&ea),
        step_losses(&ec),
        "another seed changes data order and dropout"
    );
}

#[test]
fn resume_ends_where_an_uninterrupted_run_would() {
    resume_equivalence(MethodConfig::Dense);
}

#[test]
fn fish_resume_ends_where_an_uninterrupted_run_would() {
    resume_equivalence(fish(0.05));
}

#[test]
fn supermask_resume_ends_where_an_uninterrupted_run_would() {
    resume_equivalence(MethodConfig::Supermask {
        initial_sparsity: 0.1,
        score_lr: 0.2,
        eval_samples: 2,
    });
}

fn fish(ratio: f64) -> MethodConfig {
    MethodConfig::Fish {
        selection: Some(Selection {
            budget: Budget::Ratio(ratio),
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        }),
        fisher: FisherSettings {
            samples: 32,
            kind: FisherKind::Empirical,
            order: SampleOrder::Shuffled,
        },
        mask_file: None,
    }
}

fn resume_equivalence(method: MethodConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let with = |out: &str| {
        let mut c = config(dir.path(), &model, &data, out);
        c.method = method.clone();
        c
    };
    let (full, full_events) = run_collect(with("full"), false, None);
    full.expect("uninterrupted run");

    let cut = with("cut");
    let (first, first_events) = run_collect(cut.clone(), false, Some(3));
    assert!(
        matches!(first, Ok(RunOutcome::Cancelled { step: 3 })),
        "{first:?}"
    );
    assert!(
        first_events
            .iter()
            .any(|e| matches!(e, Event::Checkpoint { step: 3, .. }))
    );
    assert!(
        dir.path()
            .join("cut/checkpoint/optimizer.safetensors")
            .is_file()
    );
    let (second, second_events) = run_collect(cut, true, None);
    second.expect("resumed run");

    let mut resumed = step_losses(&first_events);
    resumed.extend(step_losses(&second_events));
    assert_eq!(
        resumed,
        step_losses(&full_events),
        "losses of the resumed run"
    );
    let a =
        read_float_tensors(&dir.path().join("full/model/model.safetensors")).expect("full model");
    let b =
        read_float_tensors(&dir.path().join("cut/model/model.safetensors")).expect("resumed model");
    for (name, t) in &a.tensors {
        let bits =
            |t: &finesse_bert::HostTensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(t),
            bits(&b.tensors[name]),
            "final `{name}` differs between resumed and uninterrupted runs"
        );
    }
    assert!(
        !dir.path().join("cut/checkpoint").exists(),
        "stale checkpoint removed at the end"
    );
    // The event log holds both halves, in order.
    let logged = read_events(&dir.path().join("cut/events.jsonl")).expect("events");
    let kinds: Vec<&str> = logged
        .iter()
        .map(|r| match r.event {
            Event::Start { .. } => "start",
            Event::Cancelled { .. } => "cancelled",
            Event::End { .. } => "end",
            _ => "",
        })
        .filter(|k| !k.is_empty())
        .collect();
    assert_eq!(kinds, ["start", "cancelled", "start", "end"]);
}

#[test]
fn non_finite_loss_stops_the_run_with_an_error_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "nan");
    c.lr = 1e30;
    c.warmup_ratio = 0.0;
    c.max_grad_norm = None;
    let (r, events) = run_collect(c, false, None);
    let err = r.expect_err("must stop");
    assert!(matches!(err, TrainError::NonFiniteLoss { .. }), "{err}");
    assert!(err.to_string().contains("--lr"), "{err}");
    assert!(
        matches!(events.last(), Some(Event::Error { .. })),
        "{:?}",
        events.last()
    );
    let logged = read_events(&dir.path().join("nan/events.jsonl")).expect("events");
    assert!(matches!(
        logged.last().map(|r| &r.event),
        Some(Event::Error { .. })
    ));
}

#[test]
fn run_directory_holds_config_events_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "run");
    c.max_steps = Some(24);
    c.warmup_ratio = 0.0;
    let (r, events) = run_collect(c.clone(), false, None);
    let Ok(RunOutcome::Finished(metrics)) = r else {
        panic!("run failed: {r:?}")
    };
    assert!(metrics.final_metrics.contains_key("accuracy"));
    assert!(metrics.final_metrics.contains_key("eval_loss"));
    assert!(metrics.train_examples_per_sec > 0.0);
    let losses: Vec<f64> = events
        .iter()
        .filter_map(|e| {
            if let Event::Step { loss, .. } = e {
                Some(*loss)
            } else {
                None
            }
        })
        .collect();
    let (first, last) = (
        losses[..4].iter().sum::<f64>(),
        losses[losses.len() - 4..].iter().sum::<f64>(),
    );
    assert!(
        last < first,
        "training loss should fall on a separable toy task: {losses:?}"
    );

    let run_dir = finesse_train::RunDir::new(dir.path().join("run"));
    let info = run_dir.read_info().expect("run.json");
    assert_eq!(info.config, c);
    assert_eq!(info.model_sha256.len(), 64);
    assert_eq!(info.data_files.len(), 2);
    assert_eq!(info.data_files[0].examples, 96);
    let m = run_dir
        .read_metrics()
        .expect("metrics.json")
        .expect("a finished run has metrics.json");
    assert_eq!(m.steps, 24);
    assert!(run_dir.model().join("model.safetensors").is_file());
    assert!(run_dir.model().join("tokenizer.json").is_file());
    // A second run into the same folder is refused rather than mixing two runs.
    let (again, _) = run_collect(c, false, None);
    assert!(again.expect_err("exists").to_string().contains("--resume"));
}

fn bits(t: &finesse_bert::HostTensor) -> Vec<u32> {
    t.data.iter().map(|x| x.to_bits()).collect()
}

/// A FISH run keeps exactly k entries, leaves every other weight bit-identical to the base,
/// holds optimizer state for the k entries only, and its diff rebuilds the model bit for bit.
#[test]
fn fish_run_trains_only_its_mask_and_its_diff_rebuilds_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "fish");
    c.method = fish(0.02);
    c.optimizer.weight_decay = 0.1;
    let (r, events) = run_collect(c, false, None);
    let Ok(RunOutcome::Finished(metrics)) = r else {
        panic!("fish run: {r:?}")
    };
    let run = dir.path().join("fish");
    let mask = Mask::read(&run.join("mask.safetensors")).expect("mask");
    let total = mask.total();
    assert_eq!(
        mask.kept(),
        (0.02 * total as f64).floor() as usize,
        "exactly k kept"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Mask { kept, .. } if *kept == mask.kept()))
    );
    let fisher = read_float_tensors(&run.join("fisher.safetensors")).expect("fisher");
    assert_eq!(
        fisher.tensors.len(),
        mask.tensors.len(),
        "a Fisher score per parameter"
    );

    let base = read_model_tensors(&model.join("model.safetensors")).expect("base");
    let tuned = read_model_tensors(&run.join("model/model.safetensors")).expect("tuned");
    let (mut moved, mut kept_entries) = (0, 0);
    for (name, b) in &base {
        let t = &tuned[name];
        let kept = &mask.tensors[name].kept;
        kept_entries += kept.len();
        let mut k = kept.iter().peekable();
        for (i, (x, y)) in t.data.iter().zip(&b.data).enumerate() {
            if k.peek() == Some(&&(i as u32)) {
                k.next();
                moved += usize::from(x.to_bits() != y.to_bits());
            } else {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "{name}[{i}] is outside the mask but changed"
                );
            }
        }
    }
    assert!(
        moved > kept_entries / 2,
        "{moved} of {kept_entries} kept entries moved"
    );

    // Optimizer state: two AdamW moments per kept entry, measured from the state tensors.
    assert_eq!(metrics.optimizer_state_entries, 2 * mask.kept());
    let sparse = metrics.sparse.as_ref().expect("sparse summary");
    assert_eq!(sparse.kept, mask.kept());
    assert!(sparse.diff_changed_entries <= mask.kept());
    assert!(
        sparse.diff_bytes < sparse.dense_model_bytes / 4,
        "{sparse:?}"
    );

    let diff = SparseDiff::read(&run.join("diff.safetensors")).expect("diff");
    let applied = diff.apply(&base).expect("apply");
    assert_eq!(applied.len(), tuned.len());
    for (name, t) in &tuned {
        assert_eq!(
            bits(t),
            bits(&applied[name]),
            "apply(diff) differs at `{name}`"
        );
    }
    let reverted = diff.revert(&tuned).expect("revert");
    for (name, b) in &base {
        assert_eq!(
            bits(b),
            bits(&reverted[name]),
            "revert(diff) differs at `{name}`"
        );
    }
}

/// BitFit changes biases and the head only; the random mask keeps FISH's budget.
#[test]
fn bitfit_and_random_masks_train_what_they_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "bitfit");
    c.method = MethodConfig::Bitfit;
    c.max_steps = Some(3);
    run_collect(c, false, None).0.expect("bitfit run");
    let base = read_model_tensors(&model.join("model.safetensors")).expect("base");
    let tuned =
        read_model_tensors(&dir.path().join("bitfit/model/model.safetensors")).expect("tuned");
    let mut biases_moved = false;
    for (name, b) in &base {
        let same = bits(b) == bits(&tuned[name]);
        if name.ends_with(".bias") {
            biases_moved |= !same;
        } else {
            assert!(same, "BitFit changed `{name}`");
        }
    }
    assert!(biases_moved);

    let mut c = config(dir.path(), &model, &data, "random");
    c.method = MethodConfig::Random {
        selection: Selection {
            budget: Budget::Ratio(0.02),
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        },
    };
    c.max_steps = Some(3);
    run_collect(c, false, None).0.expect("random run");
    let mask = Mask::read(&dir.path().join("random/mask.safetensors")).expect("mask");
    assert_eq!(mask.kept(), (0.02 * mask.total() as f64).floor() as usize);
}

/// L0-close fine-tuning: the frozen groups stay bit-identical, the rest trains, and the start
/// event reports the trainable count.
#[test]
fn frozen_groups_stay_bit_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "freeze");
    c.method = MethodConfig::Freeze {
        groups: vec!["wk".into(), "deepest:1".into(), "word-embeddings".into()],
    };
    c.max_steps = Some(3);
    let (r, events) = run_collect(c, false, None);
    r.expect("freeze run");
    let base = read_model_tensors(&model.join("model.safetensors")).expect("base");
    let tuned =
        read_model_tensors(&dir.path().join("freeze/model/model.safetensors")).expect("tuned");
    let frozen =
        |n: &str| n.contains(".key.") || n.contains("layer.1.") || n.contains("word_embeddings");
    let mut frozen_numel = 0;
    for (name, b) in &base {
        let same = bits(b) == bits(&tuned[name]);
        if frozen(name) {
            frozen_numel += b.numel();
            assert!(same, "frozen `{name}` changed");
        } else if name.ends_with(".weight") && !name.contains("LayerNorm") {
            assert!(!same, "trainable `{name}` did not move");
        }
    }
    let total: usize = tuned.values().map(|t| t.numel()).sum();
    assert!(events.iter().any(|e| matches!(e,
        Event::Start { trainable_params, total_params, .. }
            if *trainable_params == total - frozen_numel && *total_params == total)));
}

/// Iterative pruning: WQ…WO end at the final sparsity with their pruned weights exactly zero.
#[test]
fn pruning_reaches_its_final_sparsity_with_exact_zeros() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "prune");
    c.method = MethodConfig::Prune {
        initial: 0.1,
        final_sparsity: 0.3,
        start_step: Some(2),
        interval: Some(2),
        events: 2,
        scope: finesse_sparse::prune::PruneScope::PerMatrix,
    };
    let (r, events) = run_collect(c, false, None);
    r.expect("prune run");
    let prunes: Vec<(usize, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Prune { step, sparsity } => Some((*step, *sparsity)),
            _ => None,
        })
        .collect();
    assert_eq!(prunes.first(), Some(&(2, 0.1)));
    assert_eq!(prunes.last(), Some(&(6, 0.3)));
    let tuned =
        read_model_tensors(&dir.path().join("prune/model/model.safetensors")).expect("tuned");
    let analysis: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("prune/analysis.json")).expect("analysis"),
    )
    .expect("json");
    let sparsity = analysis["prune_sparsity"]
        .as_object()
        .expect("prune_sparsity");
    assert_eq!(sparsity.len(), 12, "six matrices × two layers");
    for (name, s) in sparsity {
        let t = &tuned[name];
        let zeros = t.data.iter().filter(|v| v.to_bits() == 0).count();
        let want = (0.3 * t.numel() as f64).floor() as usize;
        assert_eq!(zeros, want, "{name}");
        assert!((s.as_f64().expect("f64") - want as f64 / t.numel() as f64).abs() < 1e-12);
    }
}

/// A mask made for another architecture is refused before training, naming the tensor.
#[test]
fn mismatched_mask_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let mut c = config(dir.path(), &model, &data, "good");
    c.method = MethodConfig::Bitfit;
    c.max_steps = Some(1);
    run_collect(c, false, None).0.expect("bitfit run");
    let mut mask = Mask::read(&dir.path().join("good/mask.safetensors")).expect("mask");
    let t = mask
        .tensors
        .get_mut("bert.pooler.dense.weight")
        .expect("pooler");
    t.shape = vec![t.shape[0], t.shape[1] / 2];
    t.kept.clear();
    let bad = dir.path().join("bad-mask.safetensors");
    mask.write(&bad, true, &Default::default()).expect("write");
    let mut c = config(dir.path(), &model, &data, "bad");
    c.method = match fish(0.02) {
        MethodConfig::Fish { fisher, .. } => MethodConfig::Fish {
            selection: None,
            fisher,
            mask_file: Some(bad),
        },
        other => other,
    };
    let (r, _) = run_collect(c, false, None);
    let err = r.expect_err("must fail").to_string();
    assert!(
        err.contains("bert.pooler.dense.weight") && err.contains("shape"),
        "{err}"
    );
}

/// Supermask runs keep the pre-trained weights (or zero them), train the head, write a packed
/// mask, and their 10-sample evaluation is reproducible by seed.
#[test]
fn supermask_run_masks_fixed_weights_and_its_sampled_evaluation_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, data) = (tiny_model(dir.path()), ToySst2::varied().write(dir.path()));
    let method = MethodConfig::Supermask {
        initial_sparsity: 0.1,
        score_lr: 0.2,
        eval_samples: 10,
    };
    let mut outcomes = Vec::new();
    for out in ["sm-a", "sm-b"] {
        let mut c = config(dir.path(), &model, &data, out);
        c.method = method.clone();
        c.max_steps = Some(4);
        let (r, _) = run_collect(c, false, None);
        let Ok(RunOutcome::Finished(m)) = r else {
            panic!("supermask run: {r:?}")
        };
        outcomes.push(m.supermask.clone().expect("supermask summary"));
    }
    assert_eq!(outcomes[0].sampled.len(), 10);
    assert_eq!(
        outcomes[0], outcomes[1],
        "same seed, same sampled evaluation"
    );
    assert!(outcomes[0].sparsity >= 0.09, "{:?}", outcomes[0].sparsity);
    let base = read_model_tensors(&model.join("model.safetensors")).expect("base");
    let tuned =
        read_model_tensors(&dir.path().join("sm-a/model/model.safetensors")).expect("tuned");
    let mask = Mask::read(&dir.path().join("sm-a/mask.safetensors")).expect("packed mask");
    for (name, t) in &mask.tensors {
        let (b, f) = (&base[name].data, &tuned[name].data);
        for i in 0..t.numel() {
            let kept = t.kept.binary_search(&(i as u32)).is_ok();
            let want = if kept { b[i] } else { 0.0 };
            assert_eq!(f[i].to_bits(), want.to_bits(), "{name}[{i}]");
        }
    }
    // Weights outside WQ…WO are untouched.
    let emb = "bert.embeddings.word_embeddings.weight";
    assert_eq!(bits(&base[emb]), bits(&tuned[emb]));
}
