//! Training from the app, driven through egui_kittest: the new-run form filled for the tiny
//! model and a toy SST-2 folder, a run started, followed to the end and listed as finished;
//! a run cancelled (resumable), then resumed to the end. The tests train one at a time
//! (Burn's random generator is process-wide), as the app does.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use finesse_app::fetch::FetchState;
use finesse_app::{FinesseApp, Settings};
use finesse_bert::hub::FetchPhase;
use finesse_testkit::{TinyBert, ToySst2};
use finesse_train::{RunDir, RunStatus};

/// One training at a time in this process.
static TRAINING: Mutex<()> = Mutex::new(());

/// A temporary folder with the tiny model, a toy SST-2 folder and an empty runs folder.
struct Setup {
    _dir: tempfile::TempDir,
    model: PathBuf,
    data: PathBuf,
    runs: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = TinyBert::from_assets().write(&dir.path().join("tiny-model"));
    let data = ToySst2::great_awful().write(dir.path());
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).expect("mkdir runs");
    Setup {
        _dir: dir,
        model,
        data,
        runs,
    }
}

fn harness(runs: &Path) -> Harness<'static, FinesseApp> {
    let runs = runs.to_path_buf();
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 1000.0))
        .build_eframe(move |_cc| FinesseApp::new(Settings::default(), Some(runs)));
    harness.run();
    harness
}

/// Steps the app until `done` holds (polling the runs folder each time), for at most 60 s.
fn run_until(
    harness: &mut Harness<'static, FinesseApp>,
    what: &str,
    done: impl Fn(&FinesseApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
        harness.state_mut().poll_now();
        // step, not run: a spinner (quitting) keeps asking for frames.
        harness.step();
    }
}

/// Opens the form and fills it for the tiny model: 4 steps of batch 8 on flex. The model and
/// folders are long paths, set directly; the numbers are typed.
fn fill_form(harness: &mut Harness<'static, FinesseApp>, s: &Setup, name: &str) {
    harness.get_by_label("New run").click();
    harness.run();
    harness.get_by_label("Fisher samples");
    {
        let app = harness.state_mut();
        let form = &mut app.new_run.as_mut().expect("form open").form;
        form.model = s.model.display().to_string();
        form.data_dir = s.data.display().to_string();
        form.batch_size = String::new();
        form.fisher_samples = "16".into();
        form.max_seq_len = "32".into();
        form.output_name = name.into();
        form.name_edited = true;
    }
    harness.run();
    // An invalid value: the reason shows next to the field and Start is disabled.
    harness.get_by_label("Batch size").click();
    harness.run();
    harness.get_by_label("Batch size").type_text("eight");
    harness.run();
    harness.get_by_label_contains("\"eight\" is not a whole number");
    assert!(harness.get_by_label("Start").accesskit_node().is_disabled());

    harness
        .state_mut()
        .new_run
        .as_mut()
        .expect("form")
        .form
        .batch_size = String::new();
    harness.run();
    harness.get_by_label("Batch size").type_text("8");
    harness.run();
    harness.get_by_label("Max steps").click();
    harness.run();
    harness.get_by_label("Max steps").type_text("4");
    harness.run();
    let form = &harness.state().new_run.as_ref().expect("form").form;
    assert_eq!(
        (form.batch_size.as_str(), form.max_steps.as_str()),
        ("8", "4")
    );
    assert!(
        harness.query_by_label_contains("field to fix").is_none()
            && harness.query_by_label_contains("fields to fix").is_none(),
        "{:?}",
        harness.state().check_new_run().err()
    );
}

/// A few frames: `run` would wait for the UI to settle, which it does not while a progress
/// bar or spinner animates.
fn frames(harness: &mut Harness<'static, FinesseApp>) {
    harness.run_steps(3);
}

fn status(path: &Path) -> RunStatus {
    RunDir::new(path).status()
}

#[test]
fn a_run_started_from_the_form_trains_to_the_end_and_is_listed_finished() {
    let _one = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let mut harness = harness(&s.runs);
    fill_form(&mut harness, &s, "from-form");
    harness.get_by_label("Start").click();
    frames(&mut harness);
    assert!(harness.state().new_run.is_none(), "the form closes");
    let run = s.runs.join("from-form");
    run_until(&mut harness, "metrics.json", |app| {
        run.join("metrics.json").is_file() && !app.queue.is_busy()
    });
    harness.state_mut().poll_now();
    frames(&mut harness);
    // It opened by itself when it started, and shows the end.
    let open = harness
        .state()
        .open
        .as_ref()
        .expect("the started run is open");
    assert_eq!(open.live.dir.root, run);
    harness.get_by_label_contains("step 4/4");
    harness.get_by_label_contains("from-form finished");

    harness.get_by_label("All runs").click();
    frames(&mut harness);
    harness.get_by_label("from-form");
    harness.get_by_label("finished");
    assert_eq!(status(&run), RunStatus::Finished);
}

#[test]
fn a_cancelled_run_is_listed_resumable_and_resumes_to_the_end() {
    let _one = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let mut harness = harness(&s.runs);
    fill_form(&mut harness, &s, "to-cancel");
    harness.get_by_label("Start").click();
    frames(&mut harness);
    // Cancel at once from the queue panel: the run stops after its first step.
    harness.get_by_label("Cancel").click();
    frames(&mut harness);
    let run = s.runs.join("to-cancel");
    run_until(&mut harness, "the cancel", |app| !app.queue.is_busy());
    harness.state_mut().poll_now();
    frames(&mut harness);
    assert_eq!(status(&run), RunStatus::Cancelled);
    assert!(!run.join("metrics.json").exists());
    harness.get_by_label_contains("resumable from its checkpoint");

    // The table lists it as resumable.
    harness.state_mut().close_run();
    frames(&mut harness);
    harness.get_by_label("cancelled (resumable)");

    // Open it and resume it.
    harness.get_by_label("to-cancel").click();
    frames(&mut harness);
    harness.get_by_label("Resume").click();
    frames(&mut harness);
    run_until(&mut harness, "the resumed run's end", |app| {
        run.join("metrics.json").is_file() && !app.queue.is_busy()
    });
    harness.state_mut().poll_now();
    frames(&mut harness);
    assert_eq!(status(&run), RunStatus::Finished);
    harness.get_by_label_contains("step 4/4");
    harness.get_by_label_contains("resumed at step 1");
}

#[test]
fn closing_the_window_while_a_run_trains_asks_and_cancel_and_quit_leaves_it_resumable() {
    let _one = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let mut harness = harness(&s.runs);
    fill_form(&mut harness, &s, "at-quit");
    harness.get_by_label("Start").click();
    frames(&mut harness);
    // What eframe does when the window's close button is pressed.
    assert!(!harness.state_mut().close_requested(), "asks first");
    frames(&mut harness);
    harness.get_by_label("A run is training");
    harness.get_by_label("Keep running").click();
    frames(&mut harness);
    assert_eq!(harness.state().quit, finesse_app::app::Quit::No);
    assert!(!harness.state_mut().close_requested());
    frames(&mut harness);
    harness
        .get_by_label("Cancel the run (resumable) and quit")
        .click();
    frames(&mut harness);
    run_until(&mut harness, "the checkpoint before quitting", |app| {
        app.quit == finesse_app::app::Quit::Closing
    });
    let run = s.runs.join("at-quit");
    assert_eq!(status(&run), RunStatus::Cancelled);
    assert!(harness.state_mut().close_requested(), "now it may close");
}

#[test]
fn the_welcome_view_runs_the_demo_in_one_click() {
    let _one = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    let mut harness = harness(&s.runs);
    // The demo's recipe, made small: the tiny model, the toy SST-2, 4 steps.
    harness.state_mut().demo = finesse_train::demo::DemoSettings {
        model: s.model.display().to_string(),
        steps: 4,
        fisher_samples: 8,
        ..Default::default()
    };
    frames(&mut harness);
    harness.get_by_label("Welcome to finesse");
    harness.get_by_label("1. Start fine-tuning runs");
    harness.get_by_label("2. Follow runs live");
    harness.get_by_label("3. See where fine-tuning changes the model");
    // A GLUE folder without SST-2 is refused, saying why.
    let field = "SST-2 from a GLUE folder (optional)";
    harness.get_by_label(field).click();
    harness.run();
    harness
        .get_by_label(field)
        .type_text(&s.runs.display().to_string());
    harness.run();
    harness.get_by_label("Run the demo").click();
    frames(&mut harness);
    harness.get_by_label_contains("holds no SST-2/train.tsv");
    assert!(!harness.state().queue.is_busy());
    // The toy SST-2 folder is taken.
    harness.state_mut().demo_data_field = s.data.display().to_string();
    frames(&mut harness);
    harness.get_by_label("Run the demo").click();
    frames(&mut harness);
    let demo_dir = || {
        std::fs::read_dir(&s.runs)
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
    };
    run_until(&mut harness, "the demo's metrics.json", |app| {
        demo_dir().is_some_and(|d| d.join("metrics.json").is_file()) && !app.queue.is_busy()
    });
    let run = demo_dir().expect("a demo run");
    let name = run.file_name().expect("name").to_string_lossy().to_string();
    assert!(name.starts_with("demo-"), "{name}");
    let info = RunDir::new(&run).read_info().expect("run.json");
    assert_eq!(
        info.config.method.method_name(),
        finesse_train::MethodName::Fish
    );
    assert_eq!(info.config.max_steps, Some(4));
    assert_eq!(info.config.data_dir, s.data);
    assert_eq!(status(&run), RunStatus::Finished);
    harness.state_mut().poll_now();
    frames(&mut harness);
    harness.get_by_label_contains(&format!("{name} finished"));
}

/// A stand-in for `python3 -m pip download`: a download that never ends, 4 KiB every 50 ms
/// into `$TMPDIR`.
fn slow_pip(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("slow-pip");
    std::fs::write(
        &path,
        "#!/bin/sh\nwhile true; do head -c 4096 /dev/zero >> \"$TMPDIR/part\"; sleep 0.05; done\n",
    )
    .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Fetches of this app run the stand-in pip into `models`.
fn stand_in_fetches(harness: &mut Harness<'static, FinesseApp>, s: &Setup, models: &Path) {
    harness.state_mut().fetch_setup = finesse_app::fetch::FetchSetup {
        python: Some(slow_pip(s.runs.parent().expect("parent")).into_os_string()),
        models: Some(models.to_path_buf()),
    };
}

/// The open New run form names the default model (not in the stand-in cache).
fn ask_for_the_default_model(harness: &mut Harness<'static, FinesseApp>) {
    harness
        .state_mut()
        .new_run
        .as_mut()
        .expect("form")
        .form
        .model = finesse_bert::hub::DEFAULT_MODEL.to_string();
    frames(harness);
}

#[test]
fn fetching_the_model_shows_its_progress_and_cancels() {
    let s = setup();
    let models = s.runs.parent().expect("parent").join("models");
    let mut harness = harness(&s.runs);
    stand_in_fetches(&mut harness, &s, &models);
    harness.get_by_label("New run").click();
    harness.run();
    ask_for_the_default_model(&mut harness);
    harness.get_by_label_contains("the run fetches it when it starts");
    harness.get_by_label("Fetch now").click();
    let downloading = |app: &FinesseApp| {
        app.fetch.as_ref().is_some_and(|f| {
            matches!(
                f.state(),
                FetchState::Running(Some(FetchPhase::Downloading { bytes, .. })) if bytes > 0
            )
        })
    };
    let start = Instant::now();
    while !downloading(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(50));
        harness.step();
    }
    harness.run_steps(2);
    harness.get_by_label_contains("of 83.5 MB downloaded");
    harness.get_by_label("Cancel fetch").click();
    let start = Instant::now();
    while harness.query_by_label_contains("was cancelled").is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "not cancelled");
        std::thread::sleep(Duration::from_millis(50));
        harness.step();
    }
    assert!(!harness.state().fetch.as_ref().expect("fetch").is_running());
    let left: Vec<_> = std::fs::read_dir(&models)
        .expect("models folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(left.is_empty(), "nothing cached, no leftovers: {left:?}");
}

#[test]
fn a_new_run_of_an_uncached_model_fetches_it_first_and_a_cancelled_fetch_starts_nothing() {
    let s = setup();
    let models = s.runs.parent().expect("parent").join("models");
    let mut harness = harness(&s.runs);
    stand_in_fetches(&mut harness, &s, &models);
    fill_form(&mut harness, &s, "needs-model");
    ask_for_the_default_model(&mut harness);
    harness.get_by_label("Start").click();
    frames(&mut harness);
    assert!(harness.state().new_run.is_none(), "the form closes");
    assert!(
        !harness.state().queue.is_busy(),
        "nothing trains before the fetch ends"
    );
    assert!(
        harness
            .state()
            .fetch
            .as_ref()
            .is_some_and(|f| f.is_running()),
        "the model is being fetched"
    );
    harness.get_by_label_contains("starts once all-MiniLM-L6-v2 is fetched");
    harness.get_by_label("Cancel fetch").click();
    let start = Instant::now();
    while harness.query_by_label_contains("was not started").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not cancelled: notice {:?}, fetch {:?}",
            harness.state().notice,
            harness.state().fetch.as_ref().map(|f| f.describe())
        );
        std::thread::sleep(Duration::from_millis(50));
        harness.step();
    }
    assert!(!harness.state().queue.is_busy());
    assert!(!s.runs.join("needs-model").exists(), "no run directory");
}
