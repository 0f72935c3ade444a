//! Paths of the checkout the tests run in.

use std::path::{Path, PathBuf};

/// The workspace root. Every crate sits at `crates/<name>`, so this is the running test's
/// `CARGO_MANIFEST_DIR` (read at run time, so a moved checkout still works) two levels up;
/// outside cargo, this crate's own manifest folder two levels up.
pub fn root() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()))
        .join("../..")
}

/// The shared folder beside the checkout (`fixtures/`, `data/glue`): `$FINESSE_SHARED`, or
/// `<root>/../shared`.
pub fn shared() -> PathBuf {
    std::env::var_os("FINESSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"))
}

/// `assets/tiny-bert` of this checkout: the tiny model's `config.json` (vocabulary 128,
/// 128 positions) and its 128-token `tokenizer.json`.
pub fn tiny_assets() -> PathBuf {
    root().join("assets/tiny-bert")
}
