//! The real app driven through egui_kittest: a runs folder made of copies of the committed
//! fixture run (a finished FISH run of the tiny model), sorted, filtered, opened, followed
//! live, its heatmap hovered and exported, a run deleted. No training here.

use std::fs;
use std::path::{Path, PathBuf};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use finesse_app::{FinesseApp, Settings};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../finesse-train/tests/fixtures/run-v1-fish"
);

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create run copy");
    for entry in fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// A copy of the fixture run named `name` whose final (and best) accuracy is `accuracy`.
fn add_run(folder: &Path, name: &str, accuracy: f64) -> PathBuf {
    let run = folder.join(name);
    copy_dir(Path::new(FIXTURE), &run);
    let path = run.join("metrics.json");
    let mut metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).expect("read metrics")).expect("json");
    metrics["accuracy"] = accuracy.into();
    metrics["splits"]["dev"]["accuracy"] = accuracy.into();
    metrics["best"]["accuracy"]["value"] = accuracy.into();
    fs::write(&path, metrics.to_string()).expect("write metrics");
    run
}

/// A folder with three finished runs of different accuracies.
fn runs_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    add_run(dir.path(), "fish-alpha", 0.75);
    add_run(dir.path(), "fish-beta", 0.9);
    add_run(dir.path(), "fish-gamma", 0.6);
    dir
}

fn harness(folder: &Path) -> Harness<'static, FinesseApp> {
    let folder = folder.to_path_buf();
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 900.0))
        .build_eframe(move |_cc| FinesseApp::new(Settings::default(), Some(folder)));
    harness.run();
    harness
}

/// Types `text` into the table's filter field.
fn filter(harness: &mut Harness<'_, FinesseApp>, text: &str) {
    harness.get_by_label("Filter").click();
    harness.run();
    harness.get_by_label("Filter").type_text(text);
    harness.run();
}

/// Top edge of the node labelled `label` (rows are ordered top to bottom).
fn top(harness: &Harness<'_, FinesseApp>, label: &str) -> f32 {
    harness.get_by_label(label).rect().top()
}

fn order(harness: &Harness<'_, FinesseApp>) -> Vec<&'static str> {
    let mut names = ["fish-alpha", "fish-beta", "fish-gamma"];
    names.sort_by(|a, b| top(harness, a).total_cmp(&top(harness, b)));
    names.to_vec()
}

#[test]
fn the_runs_table_lists_sorts_and_filters_the_folder() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    assert_eq!(harness.state().table.rows().len(), 3);
    harness.get_by_label_contains("3 of 3 runs");
    harness.get_by_label("0.9000 accuracy");
    assert_eq!(harness.get_all_by_label("finished").count(), 3);

    // Sort by the dev metric: best first, then flipped by a second click.
    harness.get_by_label("Dev metric").click();
    harness.run();
    assert_eq!(order(&harness), ["fish-beta", "fish-alpha", "fish-gamma"]);
    harness.get_by_label("Dev metric").click();
    harness.run();
    assert_eq!(order(&harness), ["fish-gamma", "fish-alpha", "fish-beta"]);

    // Sort by name.
    harness.get_by_label("Run").click();
    harness.run();
    assert_eq!(order(&harness), ["fish-alpha", "fish-beta", "fish-gamma"]);

    // Filter by text.
    filter(&mut harness, "gam");
    assert!(harness.query_by_label("fish-alpha").is_none());
    harness.get_by_label("fish-gamma");
    harness.get_by_label_contains("1 of 3 runs");
    harness.get_by_label("Clear filters").click();
    harness.run();
    harness.get_by_label_contains("3 of 3 runs");
}

#[test]
fn new_changed_broken_and_removed_runs_show_up_on_the_next_poll() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());

    let delta = add_run(dir.path(), "fish-delta", 0.8);
    let broken = dir.path().join("broken");
    fs::create_dir(&broken).expect("mkdir");
    fs::write(broken.join("run.json"), "{ not json").expect("write");
    harness.state_mut().poll_now();
    harness.run();
    harness.get_by_label("fish-delta");
    harness.get_by_label("unreadable");

    // A run whose metrics change on disk is read again.
    let metrics = delta.join("metrics.json");
    let text = fs::read_to_string(&metrics)
        .expect("read")
        .replace("\"accuracy\":0.8", "\"accuracy\":0.85");
    fs::write(&metrics, text).expect("write");
    harness.state_mut().poll_now();
    harness.run();
    harness.get_by_label("0.8500 accuracy");

    fs::remove_dir_all(&delta).expect("rm");
    harness.state_mut().poll_now();
    harness.run();
    assert!(harness.query_by_label("fish-delta").is_none());
}

#[test]
fn a_missing_folder_is_an_error_card_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = harness(&dir.path().join("nowhere"));
    harness.get_by_label("The runs folder cannot be read");
}

#[test]
fn opening_a_run_shows_its_progress_curves_and_events() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    harness.get_by_label("fish-beta").click();
    harness.run();
    assert!(harness.state().open.is_some());
    harness.get_by_label("Training loss");
    harness.get_by_label("Dev metrics");
    harness.get_by_label_contains("step 12/12");
    harness.get_by_label_contains("finished: 12 steps");
    harness.get_by_label_contains("Latest (dev, step 12): accuracy 0.5000");
    // The slider and its label.
    assert!(harness.query_all_by_label("Smoothing").count() >= 1);

    // Back to the table.
    harness.get_by_label("All runs").click();
    harness.run();
    assert!(harness.state().open.is_none());
    harness.get_by_label("fish-alpha");
}

#[test]
fn a_run_being_written_updates_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = add_run(dir.path(), "live", 0.5);
    // Keep the first half of the events and drop the final files: an interrupted run.
    let events = fs::read_to_string(run.join("events.jsonl")).expect("events");
    let lines: Vec<&str> = events.lines().collect();
    let (head, tail) = lines.split_at(lines.len() / 2);
    fs::write(run.join("events.jsonl"), format!("{}\n", head.join("\n"))).expect("write");
    fs::remove_file(run.join("metrics.json")).expect("rm");
    let mut harness = harness(dir.path());
    harness.get_by_label_contains("interrupted");
    harness.get_by_label("live").click();
    harness.run();
    assert!(
        harness
            .query_by_label_contains("finished: 12 steps")
            .is_none()
    );

    // The rest of the events and the metrics arrive.
    fs::write(run.join("events.jsonl"), &events).expect("write");
    fs::copy(
        Path::new(FIXTURE).join("metrics.json"),
        run.join("metrics.json"),
    )
    .expect("copy");
    assert!(!tail.is_empty());
    harness.state_mut().poll_now();
    harness.run();
    harness.get_by_label_contains("finished: 12 steps");
    harness.get_by_label_contains("step 12/12");
}

#[test]
fn the_analysis_view_hovers_a_cell_and_exports_the_figure() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    harness.get_by_label("fish-alpha").click();
    harness.run();
    harness.get_by_label("Analysis").click();
    harness.run();
    let heatmap = harness.get_by_label("layer × matrix heatmap").rect();

    // The value the figure holds for layer 1 · WQ, as the hover must print it.
    let expected = {
        let app = harness.state();
        let open = app.open.as_ref().expect("open run");
        let (_, map) = open.heatmap.as_ref().expect("built");
        let map = map.as_ref().expect("figure");
        let value = map.value(0, 0).expect("layer 1 WQ has a value");
        format!("{value:.6e}")
    };
    // Layer 1 · WQ: the first cell, right of the row labels and below the column headers.
    harness.hover_at(heatmap.min + egui::vec2(64.0 + 8.0, 22.0 + 4.0));
    harness.run();
    // The tooltip and the read-out line below the heatmap both say it.
    for text in ["layer 1 · WQ", expected.as_str(), "entries kept"] {
        assert!(
            harness.query_all_by_label_contains(text).count() >= 1,
            "{text} not shown"
        );
    }

    // Another figure of the same run.
    harness.get_by_label("Figure").click();
    harness.run();
    harness.get_by_label("Distance: L1").click();
    harness.run();
    {
        // The open combo box may still list "Distance: L1" for a frame, so a label query can
        // match twice; the built figure is what must have changed.
        let app = harness.state();
        let open = app.open.as_ref().expect("open run");
        let (kind, map) = open.heatmap.as_ref().expect("built");
        assert_eq!(*kind, finesse_app::analysis::HeatmapKind::L1);
        assert!(map.is_ok(), "{:?}", map.as_ref().err());
    }
    assert!(harness.query_all_by_label_contains("L1").count() >= 1);

    // Export to SVG through finesse-report.
    let target = dir.path().join("exported.svg");
    {
        let app = harness.state_mut();
        let open = app.open.as_mut().expect("open run");
        open.export_path = target.display().to_string();
    }
    harness.run();
    harness.get_by_label("Export").click();
    harness.run();
    let svg = fs::read_to_string(&target).expect("exported SVG");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    harness.get_by_label_contains("Saved");
}

#[test]
fn deleting_a_run_asks_first_and_removes_only_that_folder() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    filter(&mut harness, "beta");

    // Cancel keeps it.
    harness.get_by_label("Delete…").click();
    harness.run();
    harness.get_by_label("Delete this run?");
    harness.get_by_label("Cancel").click();
    harness.run();
    assert!(dir.path().join("fish-beta").is_dir());

    harness.get_by_label("Delete…").click();
    harness.run();
    harness.get_by_label("Delete run").click();
    harness.run();
    assert!(!dir.path().join("fish-beta").exists());
    assert!(dir.path().join("fish-alpha").is_dir());
    assert_eq!(harness.state().table.rows().len(), 2);
    harness.get_by_label_contains("Deleted");

    // Outside the runs folder, nothing is deleted whatever the caller asks.
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = add_run(outside.path(), "other", 0.5);
    assert!(harness.state_mut().delete_run(&victim).is_err());
    assert!(victim.is_dir());
}

#[test]
fn a_run_s_command_line_is_copied_from_its_row() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    harness
        .get_all_by_label("More")
        .next()
        .expect("a More menu per row")
        .click();
    harness.run();
    harness.get_by_label("Copy command line").click();
    harness.run();
    let notice = harness.state().notice.as_ref().expect("a notice");
    assert!(!notice.is_error, "{}", notice.text);
    assert!(
        notice.text.starts_with("Copied: finesse finetune --model ")
            && notice.text.contains("--method fish --keep-ratio 0.05"),
        "{}",
        notice.text
    );
}

#[test]
fn a_run_s_folder_opens_in_the_file_manager_and_a_vanished_one_says_why() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    let shown = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = shown.clone();
    harness.state_mut().file_manager = Box::new(move |path| {
        record.borrow_mut().push(path.to_path_buf());
        Ok(())
    });
    harness
        .get_all_by_label("More")
        .next()
        .expect("a More menu per row")
        .click();
    harness.run();
    harness.get_by_label("Show in file manager").click();
    harness.run();
    let opened = shown.borrow().clone();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(
        opened[0].starts_with(dir.path()) && opened[0].join("run.json").is_file(),
        "{opened:?}"
    );
    let notice = harness.state().notice.as_ref().expect("a notice");
    assert!(
        !notice.is_error && notice.text.contains("file manager"),
        "{}",
        notice.text
    );

    // The real opener refuses a folder that is gone, with the reason.
    let gone = dir.path().join("no-such-run");
    let err = finesse_app::app::open_folder(&gone).expect_err("missing folder");
    assert!(err.contains("no longer exists"), "{err}");
}

#[test]
fn the_shown_runs_export_as_a_csv_table_and_a_bad_path_says_why() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    filter(&mut harness, "a");
    // "a" matches all three names; "al" only fish-alpha.
    harness.get_by_label("Filter").type_text("l");
    harness.run();
    let target = dir.path().join("export").join("runs.csv");
    fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    harness.state_mut().table_export_path = target.display().to_string();
    harness.run();
    harness.get_by_label("Export table").click();
    harness.run();
    let csv = fs::read_to_string(&target).expect("exported CSV");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("run,"), "{csv}");
    assert_eq!(
        lines.len(),
        2,
        "the header and the one run the filter shows: {csv}"
    );
    assert!(lines[1].starts_with("fish-alpha,"), "{csv}");
    harness.get_by_label_contains("Saved 1 runs");

    // A path under a file cannot be written.
    let bad = dir
        .path()
        .join("fish-alpha")
        .join("run.json")
        .join("runs.md");
    harness.state_mut().table_export_path = bad.display().to_string();
    harness.run();
    harness.get_by_label("Export table").click();
    harness.run();
    harness.get_by_label_contains("Export failed");
}

/// A picker that answers every dialog with the next of `answers` at once, and records what
/// was asked.
fn scripted_picker(
    answers: Vec<Option<PathBuf>>,
) -> (
    finesse_app::dialogs::Picker,
    std::rc::Rc<std::cell::RefCell<Vec<finesse_app::dialogs::Target>>>,
) {
    let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = asked.clone();
    let answers = std::cell::RefCell::new(answers.into_iter());
    let picker: finesse_app::dialogs::Picker = Box::new(move |request| {
        log.borrow_mut().push(request.target);
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(answers.borrow_mut().next().flatten())
            .expect("send");
        rx
    });
    (picker, asked)
}

#[test]
fn browse_fills_the_runs_folder_and_the_new_run_s_glue_folder() {
    use finesse_app::dialogs::Target;
    let dir = runs_folder();
    let empty = tempfile::tempdir().expect("tempdir");
    let glue = tempfile::tempdir().expect("glue");
    let mut harness = harness(empty.path());
    let (picker, asked) = scripted_picker(vec![
        None,
        Some(dir.path().to_path_buf()),
        Some(glue.path().to_path_buf()),
    ]);
    harness.state_mut().picker = picker;

    // Closed without a choice: nothing changes, and the app says how to go on.
    harness
        .get_all_by_label("Browse…")
        .next()
        .expect("Browse")
        .click();
    harness.run();
    assert!(harness.state().table.rows().is_empty());
    let notice = harness.state().notice.as_ref().expect("a notice");
    assert!(notice.text.contains("type the path"), "{}", notice.text);

    // A folder chosen: it becomes the runs folder and its runs are listed.
    harness
        .get_all_by_label("Browse…")
        .next()
        .expect("Browse")
        .click();
    harness.run();
    harness.run();
    assert_eq!(
        harness.state().folder_field,
        dir.path().display().to_string()
    );
    assert_eq!(harness.state().table.rows().len(), 3);

    // In the New run form, the GLUE folder's Browse… fills that field.
    harness.state_mut().open_new_run();
    harness.run();
    let glue_browse = harness
        .get_all_by_label("Browse…")
        .max_by(|a, b| a.rect().top().total_cmp(&b.rect().top()))
        .expect("the GLUE folder's Browse…");
    glue_browse.click();
    harness.run();
    harness.run();
    let form = &harness.state().new_run.as_ref().expect("form").form;
    assert_eq!(form.data_dir, glue.path().display().to_string());
    assert_eq!(
        *asked.borrow(),
        vec![Target::RunsFolder, Target::RunsFolder, Target::GlueFolder]
    );
}

#[test]
fn the_line_form_shows_one_line_per_matrix_and_exports_as_lines() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    harness.get_by_label("fish-alpha").click();
    harness.run();
    harness.get_by_label("Analysis").click();
    harness.run();
    harness.get_by_label("Lines").click();
    harness.run();
    assert!(harness.state().settings.lines, "the form is remembered");
    assert!(harness.query_by_label("layer × matrix heatmap").is_none());
    // The legend names every matrix; the groups outside the layers are listed.
    for matrix in ["WQ", "WK", "WV", "WD", "WI", "WO"] {
        assert!(
            harness.query_all_by_label(matrix).count() >= 1,
            "{matrix} missing from the legend"
        );
    }
    let groups = {
        let app = harness.state();
        let (_, map) = app
            .open
            .as_ref()
            .expect("open")
            .heatmap
            .as_ref()
            .expect("built");
        map.as_ref().expect("figure").figure.panels[0]
            .grid
            .groups
            .len()
    };
    assert_eq!(
        harness
            .query_all_by_label_contains("Outside the layers: ")
            .count(),
        usize::from(groups > 0),
        "the groups line is there exactly when the figure has groups ({groups})"
    );

    // The export is the line form too (finesse figure --style lines draws a legend, no colour
    // bar).
    let lines = dir.path().join("lines.svg");
    let cells = dir.path().join("heatmap.svg");
    harness.state_mut().open.as_mut().expect("open").export_path = lines.display().to_string();
    harness.run();
    harness.get_by_label("Export").click();
    harness.run();
    harness.get_by_label("Heatmap").click();
    harness.run();
    harness.state_mut().open.as_mut().expect("open").export_path = cells.display().to_string();
    harness.run();
    harness.get_by_label("Export").click();
    harness.run();
    let (lines, cells) = (
        fs::read_to_string(&lines).expect("lines svg"),
        fs::read_to_string(&cells).expect("heatmap svg"),
    );
    assert!(lines.starts_with("<svg") && cells.starts_with("<svg"));
    assert!(
        lines.contains("<polyline") || lines.contains("<path"),
        "the line form draws lines"
    );
    assert_ne!(lines, cells);
    assert!(harness.query_by_label("layer × matrix heatmap").is_some());
}

#[test]
fn next_and_previous_walk_the_table_in_its_order_from_the_keyboard_and_the_buttons() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    let table = order(&harness);
    let opened = |h: &Harness<'_, FinesseApp>| {
        h.state().open.as_ref().map(|o| {
            o.live
                .dir
                .root
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string()
        })
    };
    harness.get_by_label(table[0]).click();
    harness.run();
    assert_eq!(opened(&harness).as_deref(), Some(table[0]));
    // At the top there is no previous run.
    assert!(harness.state().neighbour_run(-1).is_none());
    harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::ArrowDown);
    harness.run();
    assert_eq!(opened(&harness).as_deref(), Some(table[1]));
    harness.get_by_label("Next").click();
    harness.run();
    assert_eq!(opened(&harness).as_deref(), Some(table[2]));
    assert!(
        harness.state().neighbour_run(1).is_none(),
        "the last row has no next"
    );
    harness.get_by_label("Previous").click();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::ALT, egui::Key::ArrowUp);
    harness.run();
    assert_eq!(opened(&harness).as_deref(), Some(table[0]));
}

#[test]
fn ticked_runs_are_compared_side_by_side() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    // Nothing ticked yet: nothing to compare.
    assert!(
        harness
            .get_by_label("Compare 0 runs")
            .accesskit_node()
            .is_disabled()
    );

    for name in ["fish-alpha", "fish-gamma"] {
        harness.get_by_label(&format!("Compare {name}")).click();
        harness.run();
    }
    assert_eq!(harness.state().selected.len(), 2);
    harness.get_by_label("Compare 2 runs").click();
    harness.run();

    let compared: Vec<PathBuf> = {
        let compare = harness
            .state()
            .compare
            .as_ref()
            .expect("the comparison is shown");
        compare.paths().iter().map(|p| p.to_path_buf()).collect()
    };
    assert_eq!(compared.len(), 2);
    harness.get_by_label("2 runs side by side");
    harness.get_by_label("Training loss (smoothed)");
    harness.get_by_label("Dev accuracy");
    // Each compared run's row: its name and its final accuracy (metrics.json) side by side.
    for path in &compared {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let accuracy = match name.as_str() {
            "fish-alpha" => "0.7500",
            "fish-beta" => "0.9000",
            "fish-gamma" => "0.6000",
            other => panic!("unexpected run {other}"),
        };
        assert!(
            harness.query_all_by_label(&name).count() >= 1,
            "{name} is not shown"
        );
        assert!(
            harness.query_all_by_label(accuracy).count() >= 1,
            "{name}'s accuracy {accuracy} is not shown"
        );
    }
    let (metrics, values) = harness
        .state()
        .compare
        .as_ref()
        .expect("compare")
        .final_metrics();
    assert_eq!(metrics.first().map(String::as_str), Some("accuracy"));
    assert!(values.iter().all(|v| v[0].is_some()));
    // The fixture runs share one FISH mask: every kept entry is kept by both.
    {
        let compare = harness.state().compare.as_ref().expect("compare");
        assert_eq!(compare.overlaps.len(), 1, "{:?}", compare.mask_errors);
        let o = &compare.overlaps[0];
        assert!(o.kept.0 > 0);
        assert_eq!(o.shared, o.kept.0);
        assert_eq!(o.kept.0, o.kept.1);
        assert!((o.share_of_smaller() - 1.0).abs() < 1e-12);
        assert!((o.dropped_jaccard - 1.0).abs() < 1e-12);
    }
    harness.get_by_label("Masks");
    harness.get_by_label("100.0%");

    // A run's name opens it; Esc from there goes back to the table.
    let first = compared[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    // (The first node of that label is the table's; the legend has one too.)
    harness
        .get_all_by_label(&first)
        .next()
        .expect("the run's name")
        .click();
    harness.run();
    assert!(harness.state().compare.is_none());
    assert_eq!(
        harness
            .state()
            .open
            .as_ref()
            .map(|o| o.live.dir.root.clone()),
        Some(compared[0].clone())
    );
    harness.get_by_label("All runs").click();
    harness.run();
    assert!(harness.state().open.is_none());
    // The ticks stay for the next comparison.
    harness.get_by_label("Compare 2 runs");
}

#[test]
fn two_compared_runs_show_the_heatmap_of_their_difference_and_export_it() {
    let dir = runs_folder();
    // fish-gamma's mask keeps 53 of layer 1 WQ's 1,056 entries; fish-alpha's none.
    let stats_path = dir.path().join("fish-gamma/mask_stats.json");
    let mut stats: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&stats_path).expect("read")).expect("json");
    stats["layers"][0][0] =
        serde_json::json!({"kept": 53, "total": 1056, "fraction": 53.0 / 1056.0});
    fs::write(&stats_path, stats.to_string()).expect("write");

    let mut harness = harness(dir.path());
    for name in ["fish-alpha", "fish-gamma"] {
        harness.get_by_label(&format!("Compare {name}")).click();
        harness.run();
    }
    harness.get_by_label("Compare 2 runs").click();
    harness.run();
    harness.get_by_label_contains("Difference of the heatmaps: fish-alpha − fish-gamma");
    {
        let app = harness.state_mut();
        let compare = app.compare.as_mut().expect("compare");
        let map = compare
            .difference()
            .expect("two runs")
            .as_ref()
            .expect("a difference");
        let value = map.value(0, 0).expect("layer 1 WQ");
        assert!((value + 53.0 / 1056.0).abs() < 1e-12, "{value}");
        assert_eq!(map.value(0, 2), Some(0.0), "the same elsewhere");
        let hover = map.hover_text(0, 0);
        assert!(
            hover.contains("fish-alpha: 0") && hover.contains("fish-gamma: 5.02%"),
            "{hover}"
        );
        compare.export_path = dir.path().join("difference.png").display().to_string();
    }
    harness.run();
    harness.get_by_label("Export difference").click();
    harness.run();
    let png = fs::read(dir.path().join("difference.png")).expect("exported PNG");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    harness.get_by_label_contains("Saved");
}

#[test]
fn a_clicked_heatmap_cell_opens_its_matrices_in_detail() {
    let dir = runs_folder();
    // The data: layer 1 · WV of the fixture's FISH mask keeps 29 weight entries and 1 bias.
    let run = dir.path().join("fish-alpha");
    let names = vec![
        "bert.encoder.layer.0.attention.self.value.bias".to_string(),
        "bert.encoder.layer.0.attention.self.value.weight".to_string(),
    ];
    let details = finesse_app::details::CellDetails::read(&run, "layer 1 · WV".into(), &names);
    assert!(details.notes.is_empty(), "{:?}", details.notes);
    let [weight, bias] = details.tensors.as_slice() else {
        panic!("two tensors: {:?}", details.tensors);
    };
    assert_eq!((bias.counted_total(), weight.counted_total()), (1, 29));
    assert_eq!(weight.shape, vec![32, 32]);
    assert_eq!(
        weight.per_col.iter().map(|&n| u64::from(n)).sum::<u64>(),
        29
    );
    assert_eq!(weight.counted, "kept by the mask");
    // The diff changed kept entries only, and the histogram counts each change once.
    assert!(!weight.changes.is_empty() && weight.changes.len() <= 29);
    let hist = finesse_app::details::histogram(&weight.changes, 40);
    assert_eq!(
        hist.iter().map(|b| b.2).sum::<usize>(),
        weight.changes.len()
    );

    // The click: layer 1 · WQ, the first cell, opens the window.
    let mut harness = harness(dir.path());
    harness.get_by_label("fish-alpha").click();
    harness.run();
    harness.get_by_label("Analysis").click();
    harness.run();
    let heatmap = harness.get_by_label("layer × matrix heatmap").rect();
    let pos = heatmap.min + egui::vec2(64.0 + 8.0, 22.0 + 4.0);
    harness.hover_at(pos);
    harness.run();
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
    harness.run();
    let open = harness.state().open.as_ref().expect("open run");
    let details = open.details.as_ref().expect("the details window");
    assert_eq!(details.title, "layer 1 · WQ");
    assert_eq!(details.tensors.len(), 2, "{:?}", details.notes);
    harness.get_by_label_contains("Cell details: layer 1 · WQ");
    harness.get_by_label("bert.encoder.layer.0.attention.self.query.weight");
}

#[test]
fn the_theme_switches_between_light_and_dark_and_is_remembered() {
    let dir = runs_folder();
    let mut harness = harness(dir.path());
    for (choice, theme) in [("Light", egui::Theme::Light), ("Dark", egui::Theme::Dark)] {
        harness.get_by_label("Theme").click();
        harness.run();
        harness.get_by_label(choice).click();
        harness.run();
        assert_eq!(harness.ctx.theme(), theme);
        // Every view draws in it: the table, a run, its heatmap.
        harness.get_by_label("fish-alpha").click();
        harness.run();
        harness.get_by_label("Analysis").click();
        harness.run();
        harness.get_by_label("layer × matrix heatmap");
        harness.get_by_label("All runs").click();
        harness.run();
    }
    let settings = harness.state().settings.clone();
    // Persisted with the other settings (serde, as eframe's storage writes them).
    let text = serde_json::to_string(&settings).expect("serialise");
    let saved: Settings = serde_json::from_str(&text).expect("read back");
    assert_eq!(saved.theme, finesse_app::app::ThemeChoice::Dark);
}

#[test]
fn a_24_layer_heatmap_fits_the_view_and_hovers_its_last_layer() {
    use finesse_report::colormap::{ColorScale, ScaleKind};
    use finesse_report::grid::{GridFigure, GridPanel, GridStyle};
    // A BERT-large-shaped grid: 24 layers × 6 matrices, values 0 … 143 / 144.
    let layers = (0..24)
        .map(|l| (0..6).map(|m| Some((l * 6 + m) as f64 / 144.0)).collect())
        .collect();
    let figure = GridFigure {
        kind: "sparsity",
        title: "Kept fraction per layer × matrix".into(),
        subtitle: "24 layers".into(),
        value_label: "kept (% of entries)".into(),
        panels: vec![GridPanel {
            caption: String::new(),
            grid: finesse_sparse::LayerGrid {
                layers,
                matrices: finesse_sparse::grid::matrix_labels(),
                groups: Default::default(),
            },
        }],
        scale: ScaleKind::Linear,
        percent: true,
        style: GridStyle::Heatmap,
        show_values: false,
    };
    let map = finesse_app::analysis::Heatmap {
        scale: ColorScale::fit(ScaleKind::Linear, figure.values().collect::<Vec<_>>()),
        figure,
        tensors: vec![vec![Vec::new(); 6]; 24],
        counts: vec![vec![None; 6]; 24],
        operands: Vec::new(),
    };
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1000.0, 700.0))
        .build_ui(move |ui| {
            finesse_app::ui::heatmap::show(ui, &map);
        });
    harness.run();
    let rect = harness.get_by_label("layer × matrix heatmap").rect();
    assert!(
        rect.bottom() <= 700.0 && rect.right() <= 1000.0,
        "the heatmap leaves the view: {rect:?}"
    );
    // The last layer's first cell: its row is the bottom one.
    // (The cells end 4 px above the widget's bottom; rows are at least 12 px high.)
    harness.hover_at(egui::pos2(rect.min.x + 64.0 + 8.0, rect.bottom() - 10.0));
    harness.run();
    assert!(
        harness.query_all_by_label_contains("layer 24 · WQ").count() >= 1,
        "hovering the bottom row does not name layer 24"
    );
}

/// Snapshots of the main views, rendered with wgpu (Mesa's lavapipe in CI): the runs table, a
/// run's training view, its heatmap, two runs compared, and the welcome view. The runs sit in
/// folders named relative to the crate (`tests/snapshot-runs`, `tests/snapshot-empty`, ignored
/// by git), so the paths the views print are the same on every machine.
/// `UPDATE_SNAPSHOTS=true cargo test-all --test app snapshots` rewrites them after a deliberate
/// change (then look at `tests/snapshots/*.png`).
#[test]
fn snapshots_of_the_main_views() {
    let folder = PathBuf::from("tests/snapshot-runs");
    let empty = PathBuf::from("tests/snapshot-empty");
    for f in [&folder, &empty] {
        let _ = fs::remove_dir_all(f);
    }
    add_run(&folder, "fish-alpha", 0.75);
    add_run(&folder, "fish-beta", 0.9);
    add_run(&folder, "fish-gamma", 0.6);
    fs::create_dir_all(&empty).expect("empty runs folder");
    let settings = Settings {
        theme: finesse_app::app::ThemeChoice::Dark,
        ..Settings::default()
    };
    let build = |runs: PathBuf| {
        let settings = settings.clone();
        let mut harness = Harness::builder()
            .with_size(egui::Vec2::new(1400.0, 900.0))
            .wgpu()
            .build_eframe(move |_cc| FinesseApp::new(settings.clone(), Some(runs.clone())));
        harness.run();
        harness
    };
    let mut failures = Vec::new();
    let mut shot = |harness: &mut Harness<'_, FinesseApp>, name: &str| {
        harness.run();
        if let Err(e) = harness.try_snapshot(name) {
            failures.push(format!("{name}: {e}"));
        }
    };

    let mut harness = build(folder.clone());
    shot(&mut harness, "runs-table");
    harness.get_by_label("fish-alpha").click();
    harness.run();
    shot(&mut harness, "run-view");
    harness.get_by_label("Analysis").click();
    harness.run();
    shot(&mut harness, "heatmap");
    harness.get_by_label("All runs").click();
    harness.run();
    for name in ["fish-alpha", "fish-gamma"] {
        harness.get_by_label(&format!("Compare {name}")).click();
        harness.run();
    }
    harness.get_by_label("Compare 2 runs").click();
    harness.run();
    shot(&mut harness, "compare");
    drop(harness);

    let mut harness = build(empty.clone());
    harness.get_by_label("Welcome to finesse");
    shot(&mut harness, "welcome");
    drop(harness);

    for f in [&folder, &empty] {
        let _ = fs::remove_dir_all(f);
    }
    assert!(
        failures.is_empty(),
        "snapshots differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_small_window_keeps_the_controls_and_the_heatmap_inside() {
    let dir = runs_folder();
    let folder = dir.path().to_path_buf();
    let (w, h) = (800.0, 560.0);
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(w, h))
        .build_eframe(move |_cc| FinesseApp::new(Settings::default(), Some(folder.clone())));
    harness.run();
    let inside =
        |r: egui::Rect| r.left() >= 0.0 && r.top() >= 0.0 && r.right() <= w && r.bottom() <= h;
    for label in ["New run", "Open folder", "Refresh", "Theme", "Filter"] {
        let r = harness.get_by_label(label).rect();
        assert!(inside(r), "{label} is clipped at {w}×{h}: {r:?}");
    }
    harness.get_by_label("fish-alpha").click();
    harness.run();
    harness.get_by_label("Analysis").click();
    harness.run();
    let r = harness.get_by_label("layer × matrix heatmap").rect();
    assert!(
        r.right() <= w,
        "the heatmap is wider than the window: {r:?}"
    );
    assert!(inside(harness.get_by_label("All runs").rect()));
}
