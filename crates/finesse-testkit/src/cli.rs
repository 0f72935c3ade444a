//! Running the `finesse` binary and reading what it wrote.

use std::path::Path;
use std::process::Output;

/// A `Command` for the `finesse` binary under test. A macro, not a function: the binary's
/// path (`CARGO_BIN_EXE_finesse`) is known only while cargo compiles the calling test of
/// `finesse-cli`.
#[macro_export]
macro_rules! finesse {
    () => {
        ::std::process::Command::new(env!("CARGO_BIN_EXE_finesse"))
    };
}

/// The process's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `o`, after asserting the process succeeded (its stderr in the failure message).
pub fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// The run directory's `events.jsonl` as JSON values: none when the file is missing, and
/// lines that do not parse (a torn last line) left out.
pub fn events(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
