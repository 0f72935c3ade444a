//! A real run directory written by the finesse release before the typed readers existed
//! (`tests/fixtures/run-v1-fish`: a FISH run of the tiny model, made by
//! `tests/fixtures/make-run-v1.sh`) opens through every reader, and its recorded events fold
//! into the state its own files state.

use std::path::{Path, PathBuf};

use finesse_train::progress::Phase;
use finesse_train::{RunDir, RunStatus};

fn fixture() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()))
        .join("tests/fixtures/run-v1-fish")
}

#[test]
fn a_version_1_run_directory_opens_through_every_reader() {
    let run = RunDir::open(fixture()).expect("open");
    assert_eq!(run.status(), RunStatus::Finished);
    let info = run.read_info().expect("run.json");
    assert_eq!(info.format_version, 1);
    // Version 1 kept the optimizer settings flat; they read nested.
    assert_eq!(
        info.config.optimizer,
        finesse_train::config::OptimizerChoice::Adamw.config(0.0)
    );
    assert_eq!(info.config.method.name(), "fish");
    let metrics = run.read_metrics().expect("metrics").expect("finished");
    let (name, value) = metrics.main_metric().expect("main metric");
    assert_eq!(name, "accuracy");
    assert!((0.0..=1.0).contains(&value));
    let sparse = metrics.sparse.as_ref().expect("sparse summary");

    let stats = run
        .read_mask_stats()
        .expect("stats")
        .expect("fish has stats");
    assert_eq!(stats.overall.kept, sparse.kept);
    assert_eq!(stats.grid.num_layers(), 2);
    assert_eq!(stats.grid.matrices, ["WQ", "WK", "WV", "WD", "WI", "WO"]);
    // Written before mask statistics had groups: they read as none.
    assert!(stats.grid.groups.is_empty());
    let mask = run.read_mask().expect("mask").expect("fish has a mask");
    assert_eq!(mask.kept(), sparse.kept);
    let fisher = run
        .read_fisher()
        .expect("fisher")
        .expect("fish has a Fisher file");
    assert_eq!(fisher.meta.kind, "empirical");
    assert_eq!(
        fisher.meta.order, None,
        "this release did not record the order"
    );
    assert!(
        fisher
            .scores
            .values()
            .all(|t| t.data.iter().all(|x| *x >= 0.0))
    );
    let analysis = run.read_analysis().expect("analysis").expect("finished");
    assert_eq!(analysis.distance.grid.num_layers(), 2);
    let diff = run.read_diff().expect("diff").expect("fish has a diff");
    assert_eq!(diff.changed_entries(), sparse.diff_changed_entries);
    // The model/ folder and the diff tell the same model.
    let model = run.read_model_tensors().expect("model/");
    for (name, change) in &diff.changes {
        for (&i, &v) in change.indices.iter().zip(&change.values) {
            assert_eq!(
                model[name].data[i as usize].to_bits(),
                v.to_bits(),
                "{name}[{i}]"
            );
        }
    }

    let summary = run.summary().expect("summary");
    let json = serde_json::to_value(&summary).expect("json");
    assert_eq!(json["status"]["status"], "finished");
}

#[test]
fn the_recorded_events_fold_into_the_state_the_run_files_state() {
    let run = RunDir::open(fixture()).expect("open");
    let metrics = run.read_metrics().expect("metrics").expect("finished");
    let p = run.progress().expect("progress");
    assert_eq!(p.status, RunStatus::Finished);
    assert_eq!(p.phase, Phase::Ended);
    assert_eq!(p.step, metrics.steps);
    assert_eq!(p.total_steps, metrics.steps);
    assert_eq!(p.best, metrics.best);
    let last = p.last_metrics().expect("evaluated");
    assert_eq!(last.step, metrics.steps);
    for (k, v) in &last.metrics {
        assert_eq!(metrics.final_metrics.get(k), Some(v), "{k}");
    }
    assert_eq!(
        p.mask.as_ref().map(|(m, k, _)| (m.as_str(), *k)),
        metrics.sparse.as_ref().map(|s| ("fish", s.kept))
    );
    let logged: Vec<usize> = p.losses.iter().map(|l| l.step).collect();
    assert_eq!(logged.last(), Some(&metrics.steps));
    assert!(logged.windows(2).all(|w| w[0] < w[1]));
    assert!(p.eta_secs().is_none(), "a finished run has no ETA");
}
