//! The GLUE slices in `tests/data/glue` (original rows, traps kept: MRPC's BOM, CoLA's missing
//! header and final newline, fields starting with `"`) parse completely, with the row counts of
//! `tests/data/README.md`.

// finesse-testkit's std-only path helpers, included by path (this crate's dependency list stays
// as it is).
#[allow(dead_code)]
#[path = "../../finesse-testkit/src/paths.rs"]
mod paths;

use finesse_glue::{GlueTask, SplitKind, load_split};

#[test]
fn glue_slices_parse_with_their_row_counts() {
    let dir = paths::glue_data();
    for (task, split, rows) in [
        (GlueTask::Sst2, SplitKind::Train, 1_000),
        (GlueTask::Sst2, SplitKind::Dev(0), 872),
        (GlueTask::Mrpc, SplitKind::Train, 46),
        (GlueTask::Mrpc, SplitKind::Dev(0), 46),
        (GlueTask::Cola, SplitKind::Train, 43),
        (GlueTask::Cola, SplitKind::Dev(0), 41),
        (GlueTask::Stsb, SplitKind::Train, 46),
        (GlueTask::Stsb, SplitKind::Dev(0), 46),
        (GlueTask::Qnli, SplitKind::Dev(0), 46),
    ] {
        let s = load_split(task, &dir, split, false).unwrap_or_else(|e| panic!("{task}: {e}"));
        assert_eq!(s.examples.len(), rows, "{task} {}", s.name);
    }
}

#[test]
fn glue_slices_keep_the_traps_of_the_original_files() {
    let dir = paths::glue_data();
    let bytes = |p: &str| std::fs::read(dir.join(p)).expect("slice");
    assert!(
        bytes("MRPC/dev.tsv").starts_with(b"\xef\xbb\xbfQuality\t"),
        "MRPC BOM"
    );
    assert!(
        !bytes("CoLA/dev.tsv").ends_with(b"\n"),
        "CoLA dev ends without a newline"
    );
    // The last row of CoLA dev (no newline after it) is read whole.
    let cola = load_split(GlueTask::Cola, &dir, SplitKind::Dev(0), false).expect("CoLA dev");
    let last = cola.examples.last().expect("rows");
    assert!(last.text_a.ends_with('.'), "{last:?}");
    // No CSV quoting: a QNLI sentence starting with `"` keeps its quote.
    let qnli = load_split(GlueTask::Qnli, &dir, SplitKind::Dev(0), false).expect("QNLI dev");
    assert!(
        qnli.examples
            .iter()
            .any(|e| e.text_b.as_deref().is_some_and(|b| b.starts_with("\" "))),
        "a QNLI sentence starting with a quote"
    );
}
