//! Every method on every backend this binary has (`flex`, `ndarray`, `wgpu`), in one process so
//! that wgpu compiles its kernels once. The tiny model (2 layers, hidden 32) with dropout off, so
//! runs on different backends see the same numbers up to floating-point order; the head is drawn
//! on the host from the seed, so it is the same everywhere.
//!
//! Tolerances, and why: the backends sum in different orders (flex and ndarray on the CPU with
//! their own kernels, wgpu in GPU workgroups), so values agree to rounding, not bits:
//! - Fisher scores: max |Δ| ≤ 1e-4 × the model's largest score (top-k compares scores across
//!   tensors; a key bias's true Fisher is exactly zero, so its own scale is rounding noise);
//! - training losses after each step: |Δ| ≤ 1e-3 × the loss (a few optimizer steps amplify
//!   rounding a little);
//! - masks: the same top-k, or differing only at scores within 1e-4 of the threshold (ties that
//!   rounding can flip), counted and printed.
//!
//! On the same backend, a resumed run is bit-identical to an uninterrupted one (wgpu included).
//! wgpu needs an adapter: CI installs Mesa's lavapipe and sets `FINESSE_REQUIRE_WGPU=1`, so
//! there a missing adapter fails; elsewhere the wgpu cases are skipped with a printed reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use finesse_bert::HostTensor;
use finesse_glue::GlueTask;
use finesse_sparse::files::read_model_tensors;
use finesse_sparse::{Budget, FisherKind, SampleOrder, Scope, Selection};
use finesse_testkit::{TinyBert, ToySst2};
use finesse_train::device::DeviceChoice;
use finesse_train::method::FisherSettings;
use finesse_train::trainer::run;
use finesse_train::{Event, MethodConfig, RunConfig, RunDir};

/// Runs take turns: Burn's random generator is per process, and wgpu's device is shared.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// The backends to test: flex and ndarray always; wgpu when an adapter can be had.
fn backends() -> Vec<DeviceChoice> {
    let mut v = vec![DeviceChoice::Flex, DeviceChoice::Ndarray];
    // Built with `--features cuda` (the workflow's cuda-check job compiles it; a GPU runs it).
    if cfg!(feature = "cuda") {
        v.push(DeviceChoice::Cuda);
    }
    let required = std::env::var_os("FINESSE_REQUIRE_WGPU").is_some_and(|v| v == "1");
    let lavapipe = Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json").is_file();
    if required || lavapipe || std::env::var_os("VK_ICD_FILENAMES").is_some() {
        v.push(DeviceChoice::Wgpu);
    } else {
        eprintln!("SKIPPED wgpu cases: no Vulkan driver found (install mesa-vulkan-drivers)");
    }
    v
}

/// A tiny model folder with dropout off (hidden, attention and the head's).
fn model(dir: &Path) -> PathBuf {
    let folder = TinyBert::from_assets()
        .seed(7)
        .write(&dir.join("tiny-model"));
    let path = folder.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("json");
    config["hidden_dropout_prob"] = 0.0.into();
    config["attention_probs_dropout_prob"] = 0.0.into();
    config["classifier_dropout"] = serde_json::Value::Null;
    std::fs::write(&path, config.to_string()).expect("write config");
    folder
}

fn fish() -> MethodConfig {
    MethodConfig::Fish {
        selection: Some(Selection {
            budget: Budget::Ratio(0.05),
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        }),
        fisher: FisherSettings {
            samples: 24,
            kind: FisherKind::Empirical,
            order: SampleOrder::Shuffled,
        },
        mask_file: None,
    }
}

fn prune() -> MethodConfig {
    MethodConfig::Prune {
        initial: 0.1,
        final_sparsity: 0.3,
        start_step: Some(2),
        interval: Some(2),
        events: 2,
        scope: finesse_sparse::prune::PruneScope::PerMatrix,
    }
}

fn supermask() -> MethodConfig {
    MethodConfig::Supermask {
        initial_sparsity: 0.1,
        score_lr: 0.2,
        eval_samples: 2,
    }
}

/// What a run left: its directory and the loss of every step.
struct Done {
    dir: RunDir,
    losses: Vec<(usize, f64)>,
}

fn train(
    backend: DeviceChoice,
    (model, data, out): (&Path, &Path, PathBuf),
    method: MethodConfig,
    lr: f64,
    resume: bool,
    cancel_after: Option<usize>,
) -> Done {
    let _turn = turn();
    let mut c = RunConfig::new(model.to_string_lossy(), GlueTask::Sst2, data, &out);
    c.device = backend.name().into();
    c.max_steps = Some(6);
    c.batch_size = 8;
    c.lr = lr;
    c.log_every = 1;
    c.eval_every = Some(3);
    c.save_model = true;
    c.method = method;
    let device: Device = backend.device().expect("device compiled in");
    let cancel = AtomicBool::new(false);
    let mut losses = Vec::new();
    let mut sink = |e: &Event| {
        if let Event::Step { step, loss, .. } = e {
            losses.push((*step, *loss));
            if cancel_after == Some(*step) {
                cancel.store(true, Ordering::SeqCst);
            }
        }
    };
    let started = std::time::Instant::now();
    let outcome = run(c, device, resume, &mut sink, &cancel);
    println!(
        "{} on {}: {:.1}s",
        out.file_name().unwrap_or_default().to_string_lossy(),
        backend.name(),
        started.elapsed().as_secs_f64()
    );
    outcome.unwrap_or_else(|e| panic!("{} run on {}: {e}", out.display(), backend.name()));
    Done {
        dir: RunDir::open(&out).expect("run dir"),
        losses,
    }
}

fn assert_losses_agree(what: &str, a: &[(usize, f64)], b: &[(usize, f64)]) {
    assert_eq!(a.len(), b.len(), "{what}: steps logged");
    let worst = a
        .iter()
        .zip(b)
        .map(|((sa, la), (sb, lb))| {
            assert_eq!(sa, sb);
            assert!(la.is_finite() && lb.is_finite(), "{what}: finite losses");
            (la - lb).abs() / la.abs().max(1e-12)
        })
        .fold(0.0, f64::max);
    println!("{what}: worst relative loss difference {worst:.2e}");
    assert!(
        worst <= 1e-3,
        "{what}: losses differ by {worst:.2e} relative"
    );
}

/// Max |a − b| over a tensor, relative to its largest |a|.
fn relative_diff(a: &HostTensor, b: &HostTensor) -> f64 {
    let scale = a
        .data
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE) as f64;
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max)
        / scale
}

fn kept_sets(dir: &RunDir) -> BTreeMap<String, BTreeSet<usize>> {
    let mask = dir
        .read_mask()
        .expect("mask reads")
        .expect("a FISH run has a mask");
    mask.tensors
        .into_iter()
        .map(|(n, t)| (n, t.kept.iter().map(|&i| i as usize).collect()))
        .collect()
}

/// The FISH masks of `a` and `b`: the same, or differing only at entries whose Fisher score is
/// within 1e-4 (relative) of the k-th largest; returns how many differ.
fn compare_masks(a: &RunDir, b: &RunDir) -> usize {
    let (ka, kb) = (kept_sets(a), kept_sets(b));
    let scores = a
        .read_fisher()
        .expect("fisher")
        .expect("fisher file")
        .scores;
    let mut all: Vec<f32> = scores
        .values()
        .flat_map(|t| t.data.iter().copied())
        .collect();
    let k: usize = ka.values().map(BTreeSet::len).sum();
    all.sort_by(|x, y| y.total_cmp(x));
    let threshold = all.get(k.saturating_sub(1)).copied().unwrap_or(0.0) as f64;
    let mut differing = 0;
    for (name, set) in &ka {
        let other = &kb[name];
        for &i in set.symmetric_difference(other) {
            differing += 1;
            let s = scores.get(name).map_or(f64::NAN, |t| t.data[i] as f64);
            assert!(
                (s - threshold).abs() <= 1e-4 * threshold.abs().max(1e-30),
                "{name}[{i}] is kept on one backend only, with score {s:e} far from the threshold {threshold:e}"
            );
        }
    }
    differing
}

/// A FISH run's invariants: entries outside the mask keep their bits, the optimizer holds state
/// for the kept entries only, and the diff re-applied to the base gives the model bit for bit.
fn check_fish_invariants(backend: &str, dir: &RunDir, base: &Path) {
    let base = read_model_tensors(&base.join("model.safetensors")).expect("base");
    let tuned = read_model_tensors(&dir.model().join("model.safetensors")).expect("model/");
    let kept = kept_sets(dir);
    let mut moved = 0usize;
    for (name, t) in &tuned {
        let Some(b) = base.get(name) else { continue }; // the fresh head
        let keep = kept.get(name).cloned().unwrap_or_default();
        for (i, (x, y)) in b.data.iter().zip(&t.data).enumerate() {
            if keep.contains(&i) {
                moved += usize::from(x.to_bits() != y.to_bits());
            } else {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "{backend}: {name}[{i}] is outside the mask but changed"
                );
            }
        }
    }
    assert!(moved > 0, "{backend}: the kept entries trained");
    let metrics = dir.read_metrics().expect("metrics").expect("finished");
    let sparse = metrics.sparse.as_ref().expect("sparse summary");
    assert_eq!(
        metrics.optimizer_state_entries,
        2 * sparse.kept,
        "{backend}: AdamW holds two moments per kept entry and nothing else"
    );
    let diff = dir.read_diff().expect("diff").expect("diff file");
    let applied = diff.apply(&base).expect("the diff applies to its base");
    for (name, t) in &tuned {
        let a = &applied[name];
        assert!(
            a.data
                .iter()
                .zip(&t.data)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{backend}: diff apply differs from model/ at {name}"
        );
    }
}

#[test]
fn fish_agrees_across_backends_and_keeps_its_invariants() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, data) = (model(tmp.path()), ToySst2::varied().write(tmp.path()));
    let runs: Vec<(DeviceChoice, Done)> = backends()
        .into_iter()
        .map(|b| {
            let out = tmp.path().join(format!("fish-{}", b.name()));
            (b, train(b, (&model, &data, out), fish(), 1e-2, false, None))
        })
        .collect();
    let (_, flex) = &runs[0];
    let flex_fisher = flex.dir.read_fisher().expect("fisher").expect("file");
    for (backend, done) in &runs {
        let name = backend.name();
        check_fish_invariants(name, &done.dir, &model);
        if *backend == DeviceChoice::Flex {
            continue;
        }
        let fisher = done.dir.read_fisher().expect("fisher").expect("file");
        // Relative to the largest score of the model: top-k compares scores across tensors,
        // and some tensors' true Fisher is exactly zero (a key bias shifts every attention score
        // of a query alike, which softmax ignores), so their own scale is rounding noise.
        let global = flex_fisher
            .scores
            .values()
            .flat_map(|t| t.data.iter())
            .fold(0f32, |m, v| m.max(v.abs())) as f64;
        let mut per_tensor: Vec<(f64, &String)> = flex_fisher
            .scores
            .iter()
            .map(|(n, t)| {
                let local = t.data.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                (
                    relative_diff(t, &fisher.scores[n]) * local / global.max(f64::MIN_POSITIVE),
                    n,
                )
            })
            .collect();
        per_tensor.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!(
            "Fisher {name} vs flex, largest differences: {:?}",
            &per_tensor[..3.min(per_tensor.len())]
        );
        let worst = per_tensor.first().map_or(0.0, |w| w.0);
        println!("Fisher {name} vs flex: worst relative difference {worst:.2e}");
        assert!(
            worst <= 1e-4,
            "Fisher on {name} differs from flex by {worst:.2e}"
        );
        let differing = compare_masks(&flex.dir, &done.dir);
        println!("mask {name} vs flex: {differing} entries differ (ties at the threshold)");
        assert_losses_agree(&format!("fish {name} vs flex"), &flex.losses, &done.losses);
    }
}

#[test]
fn dense_prune_and_supermask_train_on_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, data) = (model(tmp.path()), ToySst2::varied().write(tmp.path()));
    for (label, method, lr) in [
        ("dense", MethodConfig::Dense, 1e-3),
        ("prune", prune(), 1e-3),
        ("supermask", supermask(), 1e-3),
    ] {
        let runs: Vec<(DeviceChoice, Done)> = backends()
            .into_iter()
            .map(|b| {
                let out = tmp.path().join(format!("{label}-{}", b.name()));
                (
                    b,
                    train(b, (&model, &data, out), method.clone(), lr, false, None),
                )
            })
            .collect();
        let flex = &runs[0].1;
        let flex_analysis = flex.dir.read_analysis().expect("analysis").expect("file");
        for (backend, done) in &runs {
            let name = backend.name();
            let metrics = done.dir.read_metrics().expect("metrics").expect("finished");
            let accuracy = metrics.final_metrics.get("accuracy").copied();
            assert!(
                accuracy.is_some_and(f64::is_finite),
                "{label} on {name}: a dev metric"
            );
            assert!(
                done.losses.iter().all(|(_, l)| l.is_finite()),
                "{label} on {name}: finite losses"
            );
            let analysis = done.dir.read_analysis().expect("analysis").expect("file");
            match label {
                "prune" => {
                    assert_eq!(
                        analysis.prune_sparsity, flex_analysis.prune_sparsity,
                        "prune on {name}: the final sparsity of every matrix equals flex's"
                    );
                }
                "supermask" => {
                    // Masks are sampled from each backend's own generator: the losses are not
                    // comparable across backends, the mask's size is.
                    let s = metrics
                        .supermask
                        .as_ref()
                        .expect("supermask summary")
                        .sparsity;
                    let f = flex
                        .dir
                        .read_metrics()
                        .expect("m")
                        .expect("f")
                        .supermask
                        .expect("s")
                        .sparsity;
                    println!("supermask sparsity on {name}: {s:.4} (flex {f:.4})");
                    assert!(
                        (s - f).abs() < 0.02,
                        "supermask on {name}: sparsity {s} vs flex {f}"
                    );
                }
                _ => {}
            }
            if label != "supermask" && *backend != DeviceChoice::Flex {
                assert_losses_agree(
                    &format!("{label} {name} vs flex"),
                    &flex.losses,
                    &done.losses,
                );
            }
        }
    }
}

#[test]
fn a_cancelled_run_resumes_bit_identically_on_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, data) = (model(tmp.path()), ToySst2::varied().write(tmp.path()));
    for backend in backends() {
        let name = backend.name();
        let whole = train(
            backend,
            (&model, &data, tmp.path().join(format!("whole-{name}"))),
            MethodConfig::Dense,
            1e-3,
            false,
            None,
        );
        let out = tmp.path().join(format!("resumed-{name}"));
        let first = train(
            backend,
            (&model, &data, out.clone()),
            MethodConfig::Dense,
            1e-3,
            false,
            Some(3),
        );
        assert!(
            first.dir.status().is_resumable(),
            "{name}: a cancelled run is resumable"
        );
        let second = train(
            backend,
            (&model, &data, out),
            MethodConfig::Dense,
            1e-3,
            true,
            None,
        );
        let mut losses = first.losses.clone();
        losses.retain(|(s, _)| *s <= 3);
        losses.extend(second.losses.iter().filter(|(s, _)| *s > 3));
        let bits =
            |v: &[(usize, f64)]| v.iter().map(|(s, l)| (*s, l.to_bits())).collect::<Vec<_>>();
        assert_eq!(
            bits(&losses),
            bits(&whole.losses),
            "{name}: resumed losses equal the uninterrupted run's"
        );
        let a = read_model_tensors(&whole.dir.model().join("model.safetensors")).expect("whole");
        let b = read_model_tensors(&second.dir.model().join("model.safetensors")).expect("resumed");
        for (n, t) in &a {
            assert!(
                t.data
                    .iter()
                    .zip(&b[n].data)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name}: {n} differs after resume"
            );
        }
    }
}

#[test]
fn random_bitfit_and_freeze_keep_their_invariants_on_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, data) = (model(tmp.path()), ToySst2::varied().write(tmp.path()));
    let random = MethodConfig::Random {
        selection: Selection {
            budget: Budget::Ratio(0.05),
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        },
    };
    let freeze = MethodConfig::Freeze {
        groups: vec!["wk".into(), "word-embeddings".into()],
    };
    for (label, method) in [
        ("random", random),
        ("bitfit", MethodConfig::Bitfit),
        ("freeze", freeze),
    ] {
        let runs: Vec<(DeviceChoice, Done)> = backends()
            .into_iter()
            .map(|b| {
                let out = tmp.path().join(format!("{label}-{}", b.name()));
                (
                    b,
                    train(b, (&model, &data, out), method.clone(), 1e-2, false, None),
                )
            })
            .collect();
        let flex = &runs[0].1;
        for (backend, done) in &runs {
            let name = backend.name();
            check_fish_invariants(&format!("{label} on {name}"), &done.dir, &model);
            assert_eq!(
                kept_sets(&done.dir),
                kept_sets(&flex.dir),
                "{label} on {name}: the same mask as flex"
            );
            if *backend != DeviceChoice::Flex {
                assert_losses_agree(
                    &format!("{label} {name} vs flex"),
                    &flex.losses,
                    &done.losses,
                );
            }
        }
    }
}
