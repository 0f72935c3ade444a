//! Paths of the checkout the tests run in: everything a test reads is in the repository.
//!
//! Standard library only, so the crates below `finesse-testkit` in the dependency order
//! (`finesse-bert`, which it depends on, and `finesse-glue` / `finesse-sparse`, whose
//! dependency lists stay as they are) include this file in their integration tests with
//! `#[path = "../../finesse-testkit/src/paths.rs"] mod paths;` instead of depending on the crate.

use std::path::{Path, PathBuf};

/// The workspace root. Every crate sits at `crates/<name>`, so this is the running test's
/// `CARGO_MANIFEST_DIR` (read at run time, so a moved checkout still works) two levels up;
/// outside cargo, this crate's own manifest folder two levels up.
pub fn root() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()))
        .join("../..")
}

/// `tests/fixtures/all-MiniLM-L6-v2`: the golden values from Hugging Face transformers
/// (`forward.safetensors`, `classifier.safetensors`, `fisher.safetensors` cut to the compared
/// rows, `fisher_topk.json`; see `tests/fixtures/README.md`).
pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures/all-MiniLM-L6-v2")
}

/// `tests/data/glue`: small slices of the GLUE files in GLUE layout (`<TASK>/train.tsv`,
/// `dev.tsv`), their traps kept (see `tests/data/README.md`).
pub fn glue_data() -> PathBuf {
    root().join("tests/data/glue")
}

/// `assets/tiny-bert` of this checkout: the tiny model's `config.json` (vocabulary 128,
/// 128 positions) and its 128-token `tokenizer.json`.
pub fn tiny_assets() -> PathBuf {
    root().join("assets/tiny-bert")
}
