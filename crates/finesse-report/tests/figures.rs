//! Every figure kind from small real run directories (the tiny model trained in-process on a
//! toy SST-2 folder): PNG and SVG, sizes, colours, titles, missing files, runs still being
//! written.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use finesse_glue::GlueTask;
use finesse_report::canvas::{render_png, render_svg};
use finesse_report::colormap::{ColorScale, ScaleKind};
use finesse_report::figures::{
    self, DistanceMetric, FisherStat, GridOptions, OverlapScope, SweepAxis,
};
use finesse_report::grid::{GridFigure, GridPanel, GridStyle};
use finesse_report::runs::Run;
use finesse_report::{Canvas, Figure, OutputFormat};
use finesse_sparse::grid::LayerGrid;
use finesse_sparse::{Budget, FisherKind, SampleOrder, Scope, Selection};
use finesse_testkit::{TinyBert, ToySst2};
use finesse_train::method::FisherSettings;
use finesse_train::trainer::run;
use finesse_train::{MethodConfig, RunConfig};

/// The runs every test reads: trained once per test binary, one after another (Burn's random
/// generator is process-wide).
struct Runs {
    _dir: tempfile::TempDir,
    root: PathBuf,
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
            samples: 16,
            kind: FisherKind::Empirical,
            order: SampleOrder::Shuffled,
        },
        mask_file: None,
    }
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = TinyBert::from_assets()
            .seed(7)
            .write(&dir.path().join("tiny-model"));
        let data = ToySst2::varied().write(dir.path());
        let root = dir.path().join("runs");
        let methods = [
            ("dense", MethodConfig::Dense, 1e-3),
            ("fish", fish(), 1e-2),
            (
                "random",
                MethodConfig::Random {
                    selection: Selection {
                        budget: Budget::Ratio(0.05),
                        scope: Scope::Global,
                        head_in_budget: true,
                        exclude: Vec::new(),
                    },
                },
                1e-2,
            ),
            (
                "supermask",
                MethodConfig::Supermask {
                    initial_sparsity: 0.2,
                    score_lr: 0.2,
                    eval_samples: 2,
                },
                1e-3,
            ),
        ];
        for (name, method, lr) in methods {
            let mut c = RunConfig::new(
                model.to_string_lossy(),
                GlueTask::Sst2,
                &data,
                root.join(name),
            );
            c.max_steps = Some(8);
            c.batch_size = 8;
            c.lr = lr;
            c.log_every = 1;
            c.eval_every = Some(4);
            c.method = method;
            let cancel = AtomicBool::new(false);
            run(c, Device::flex(), false, &mut |_| {}, &cancel).expect(name);
        }
        Runs { _dir: dir, root }
    })
}

fn open(name: &str) -> Run {
    Run::open(&runs().root.join(name)).expect("run opens")
}

/// Decodes a PNG: (width, height, RGB bytes).
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Renders `figure` as PNG (at the asked size, not blank) and SVG (parses, holds the title and
/// the axis labels).
fn check_renders<F: Figure>(figure: &F, title: &str, labels: &[&str]) {
    let canvas = Canvas::new(820, 540);
    let (w, h, rgb) = decode(&render_png(figure, canvas).expect("png"));
    assert_eq!((w, h), (820, 540), "{}", figure.kind());
    let inked = rgb.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    assert!(
        inked > (w * h / 50) as usize,
        "{}: only {inked} non-white pixels",
        figure.kind()
    );
    let (w2, h2, _) = decode(&render_png(figure, canvas.with_dpi(192.0)).expect("png 2x"));
    assert_eq!((w2, h2), (1640, 1080), "dpi 192 doubles the pixels");
    let svg = render_svg(figure, canvas).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains(title)),
        "{}: no SVG text containing the title {title:?} in {texts:?}",
        figure.kind()
    );
    // Axis descriptions, captions and legend entries are whole text elements of their own.
    for wanted in labels {
        assert!(
            texts.iter().any(|t| t.trim() == *wanted),
            "{}: no SVG text element {wanted:?} in {texts:?}",
            figure.kind()
        );
    }
}

#[test]
fn the_layer_matrix_figures_render_as_heatmaps_and_lines() {
    let fish = open("fish");
    for style in [GridStyle::Heatmap, GridStyle::Lines] {
        let options = GridOptions {
            style,
            show_values: true,
            scale: None,
        };
        let f = figures::sparsity(&fish, options).expect("sparsity");
        check_renders(
            &f,
            "Kept fraction per layer × matrix (fish mask)",
            &["layer", "kept (% of entries)"],
        );
        let d = figures::distance(&fish, DistanceMetric::Angular, true, options).expect("distance");
        assert_eq!(d.panels.len(), 2, "the random reference is a second panel");
        let reference = if style == GridStyle::Heatmap {
            "fine-tuned vs base"
        } else {
            "two random initialisations"
        };
        check_renders(&d, "angular distance", &["layer", reference]);
        let fi = figures::fisher(&fish, FisherStat::Mean, options).expect("fisher");
        check_renders(
            &fi,
            "Mean Fisher information",
            &["layer", "mean Fisher per entry (log scale)"],
        );
    }
    let share = figures::fisher(&fish, FisherStat::Share, GridOptions::default()).expect("share");
    let total: f64 = share.panels[0]
        .grid
        .layers
        .iter()
        .flatten()
        .chain(share.panels[0].grid.groups.values())
        .map(|v| v.unwrap_or(0.0))
        .sum();
    assert!(
        (total - 1.0).abs() < 1e-9,
        "the shares of the budget add up to 1: {total}"
    );
    let top = figures::fisher(&fish, FisherStat::TopMass, GridOptions::default()).expect("top");
    check_renders(
        &top,
        "Fisher mass held by each cell",
        &["share of the cell's Σ Fisher (%)"],
    );
    let cells: Vec<f64> = top.panels[0]
        .grid
        .layers
        .iter()
        .flatten()
        .chain(top.panels[0].grid.groups.values())
        .flatten()
        .copied()
        .collect();
    assert!(
        !cells.is_empty() && cells.iter().all(|&v| v > 0.0 && v <= 1.0 + 1e-12),
        "{cells:?}"
    );
    let sm =
        figures::sparsity(&open("supermask"), GridOptions::default()).expect("supermask sparsity");
    check_renders(
        &sm,
        "Sparsity per layer × matrix (supermask mask)",
        &["sparsity (% of entries zero)"],
    );
}

#[test]
fn the_run_figures_render() {
    let all = [
        open("dense"),
        open("fish"),
        open("random"),
        open("supermask"),
    ];
    let c = figures::curves(&all, 0.6).expect("curves");
    check_renders(
        &c,
        "Training curves on SST-2",
        &[
            "training loss",
            "learning rate (log scale)",
            "step",
            "dev accuracy",
        ],
    );
    let s = figures::sweep(&all, SweepAxis::Lr).expect("sweep");
    check_renders(
        &s,
        "dev accuracy against lr",
        &["peak learning rate (log scale)"],
    );
    let o = figures::overlap(&all[1..], OverlapScope::Overall).expect("overlap");
    check_renders(&o, "Shared pruned entries", &["pruned by", "measured"]);
    let m = figures::magnitudes(&all[3]).expect("magnitudes");
    check_renders(
        &m,
        "Magnitudes of the pruned weights",
        &["log10 |w| of the base weight", "entries"],
    );
    let d = figures::distance_vs_steps(&all, DistanceMetric::MeanAbs).expect("distance vs steps");
    check_renders(
        &d,
        "from the base against steps trained",
        &["steps trained"],
    );
}

#[test]
fn the_overlap_of_a_mask_with_itself_is_whole_and_random_expectation_is_its_sparsity() {
    let runs = [open("fish"), open("random")];
    let o = figures::overlap(&runs, OverlapScope::Overall).expect("overlap");
    let (_, measured) = &o.panels[0];
    assert_eq!(measured[0][0], 1.0);
    assert_eq!(measured[1][1], 1.0);
    let (_, random) = &o.panels[1];
    let kept = runs[1]
        .summary
        .mask_stats
        .as_ref()
        .expect("stats")
        .overall
        .fraction;
    assert!((random[0][1] - (1.0 - kept)).abs() < 1e-9);
}

/// A 2-layer grid whose cells have the values 0, 1, …, 11 (layer-major).
fn known_grid() -> GridFigure {
    let layers = (0..2)
        .map(|l| (0..6).map(|m| Some((l * 6 + m) as f64)).collect())
        .collect();
    GridFigure {
        kind: "test",
        title: "known values".into(),
        subtitle: String::new(),
        value_label: "value".into(),
        panels: vec![GridPanel {
            caption: String::new(),
            grid: LayerGrid {
                layers,
                matrices: finesse_sparse::grid::matrix_labels(),
                groups: Default::default(),
            },
        }],
        scale: ScaleKind::Linear,
        percent: false,
        style: GridStyle::Heatmap,
        show_values: false,
    }
}

#[test]
fn a_heatmap_cell_has_the_colour_the_map_gives_its_value() {
    let figure = known_grid();
    let (w, _, rgb) = decode(&render_png(&figure, Canvas::new(900, 560)).expect("png"));
    let scale = ColorScale::fit(ScaleKind::Linear, (0..12).map(f64::from));
    let centroid = |value: f64| {
        let c = scale.color(value);
        let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
        for (i, p) in rgb.chunks(3).enumerate() {
            if p == [c.0, c.1, c.2] {
                n += 1;
                sx += i % w as usize;
                sy += i / w as usize;
            }
        }
        assert!(
            n > 1500,
            "value {value}: only {n} pixels of its colour {c:?}"
        );
        (sx / n, sy / n)
    };
    // Layer 1 is the top row, WQ … WO run left to right.
    let (wq1, wo1, wq2) = (centroid(0.0), centroid(5.0), centroid(6.0));
    assert!(wq1.0 < wo1.0, "WQ left of WO");
    assert!(wq1.1 < wq2.1, "layer 1 above layer 2");
    assert!((wq1.0 as i64 - wq2.0 as i64).abs() < 3, "one column");
}

#[test]
fn a_run_missing_a_file_names_it_and_the_figure() {
    let dense = open("dense");
    let err =
        figures::sparsity(&dense, GridOptions::default()).expect_err("a dense run has no mask");
    let text = err.to_string();
    assert!(
        text.contains("sparsity figure") && text.contains("mask_stats.json"),
        "{text}"
    );
    assert!(
        text.contains(&dense.summary.path.display().to_string()),
        "names the run: {text}"
    );
    let err =
        figures::fisher(&dense, FisherStat::Mean, GridOptions::default()).expect_err("no fisher");
    assert!(err.to_string().contains("fisher.safetensors"), "{err}");
    let err = figures::magnitudes(&dense).expect_err("no mask");
    assert!(err.to_string().contains("magnitudes figure"), "{err}");
}

/// A copy of a run as it looked mid-training: `run.json` and the first `lines` lines of its
/// events plus half of the next line (a write torn mid-line).
fn partial_copy(from: &Path, to: &Path, lines: usize) -> usize {
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::copy(from.join("run.json"), to.join("run.json")).expect("run.json");
    let events = std::fs::read_to_string(from.join("events.jsonl")).expect("events");
    let all: Vec<&str> = events.lines().collect();
    let mut text: String = all[..lines].iter().map(|l| format!("{l}\n")).collect();
    let next = all[lines];
    text.push_str(&next[..next.len() / 2]);
    std::fs::write(to.join("events.jsonl"), text).expect("write");
    all[..lines]
        .iter()
        .filter(|l| l.contains(r#""type":"step""#))
        .count()
}

#[test]
fn a_run_still_being_written_draws_its_curves_so_far() {
    let dir = tempfile::tempdir().expect("tempdir");
    let partial = dir.path().join("partial");
    let steps = partial_copy(&runs().root.join("fish"), &partial, 8);
    assert!(steps > 0, "the cut keeps some steps");
    let run = Run::open(&partial).expect("a partial run opens");
    let figure = figures::curves(std::slice::from_ref(&run), 0.6).expect("curves so far");
    assert_eq!(figure.panels[0].series[0].points.len(), steps);
    check_renders(&figure, "Training curves", &["training loss"]);
}

#[test]
fn figure_all_writes_what_the_run_allows_and_says_what_it_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let done = figures::figure_all(&open("dense"), dir.path(), OutputFormat::Png).expect("all");
    let written: Vec<String> = done
        .written
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert!(written.contains(&"curves.png".to_string()), "{written:?}");
    assert!(
        written.contains(&"distance-angular.png".to_string()),
        "{written:?}"
    );
    assert!(
        done.skipped
            .iter()
            .any(|(name, why)| name == "sparsity.png" && why.contains("mask_stats.json")),
        "{:?}",
        done.skipped
    );
    for path in &done.written {
        assert!(path.is_file());
    }
}

#[test]
fn zeros_on_a_log_scale_do_not_take_the_smallest_values_colour() {
    let mut figure = known_grid();
    let row = vec![
        Some(0.0),
        Some(1e-4),
        Some(1e-3),
        Some(1e-2),
        Some(1e-1),
        Some(1.0),
    ];
    figure.panels[0].grid.layers = vec![row.clone(), row];
    figure.scale = ScaleKind::Log;
    let scale = ColorScale::fit(ScaleKind::Log, figure.values().collect::<Vec<_>>());
    assert!(scale.log && scale.min == 1e-4, "{scale:?}");
    let (_, _, rgb) = decode(&render_png(&figure, Canvas::new(900, 560)).expect("png"));
    let count =
        |c: plotters::style::RGBColor| rgb.chunks(3).filter(|p| *p == [c.0, c.1, c.2]).count();
    let smallest = count(scale.color(1e-4));
    let largest = count(scale.color(1.0));
    // Two cells each: if the zeros took the smallest value's colour, it would cover four.
    let ratio = smallest as f64 / largest as f64;
    assert!(
        (0.8..1.25).contains(&ratio),
        "smallest {smallest} vs largest {largest} pixels"
    );
    let svg = render_svg(&figure, Canvas::new(900, 560)).expect("svg");
    assert!(
        svg.contains(">0<") || svg.contains(">\n0\n<"),
        "zero cells and the swatch are labelled 0"
    );
}

#[test]
fn the_difference_of_two_grids_is_cellwise_on_the_diverging_scale() {
    let a = known_grid();
    let mut b = known_grid();
    // b: every value doubled, one cell emptied.
    for row in &mut b.panels[0].grid.layers {
        for v in row.iter_mut() {
            *v = v.map(|x| 2.0 * x);
        }
    }
    b.panels[0].grid.layers[1][5] = None;
    let d = a.difference(&b, ("run-a", "run-b")).expect("same shapes");
    let cell = |l: usize, m: usize| d.panels[0].grid.layers[l][m];
    assert_eq!(cell(0, 0), Some(0.0));
    assert_eq!(cell(0, 3), Some(-3.0));
    assert_eq!(cell(1, 4), Some(-10.0));
    assert_eq!(
        cell(1, 5),
        None,
        "empty in one run, empty in the difference"
    );
    assert_eq!(d.scale, ScaleKind::Diverging);
    assert_eq!(d.subtitle, "run-a − run-b");
    assert!(d.value_label.starts_with("Δ "), "{}", d.value_label);
    // It draws (PNG and SVG) like any grid figure.
    let svg = render_svg(&d, Canvas::new(900, 560)).expect("svg");
    assert!(svg.contains("run-a − run-b") && svg.contains("Difference"));
    render_png(&d, Canvas::new(900, 560)).expect("png");

    let mut fewer = known_grid();
    fewer.panels[0].grid.layers.pop();
    let err = a.difference(&fewer, ("a", "b")).expect_err("shapes differ");
    assert!(err.to_string().contains("models differ"), "{err}");
}
