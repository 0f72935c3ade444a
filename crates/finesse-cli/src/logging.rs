//! Log records and progress bars on one terminal: `RUST_LOG` filters the libraries' `log`
//! records (default `info`), printed as `level: message`, and every progress bar lives in one
//! [`MultiProgress`] that the logger suspends while it writes, so log lines never tear a bar.

use std::io::Write;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// The terminal's progress bars.
fn bars() -> &'static MultiProgress {
    BARS.get_or_init(MultiProgress::new)
}

/// Adds `bar` to the terminal's bars (every bar must go through here so that log lines keep
/// clear of it).
pub fn add(bar: ProgressBar) -> ProgressBar {
    bars().add(bar)
}

/// Installs the logger: `RUST_LOG` (e.g. `debug`, `finesse_train=debug`), default `info`.
pub fn init() {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
            .format(|buf, record| {
                writeln!(
                    buf,
                    "{}: {}",
                    record.level().as_str().to_lowercase(),
                    record.args()
                )
            })
            .build();
    let level = logger.filter();
    // Only fails if a logger is already set, which cannot happen at the top of main.
    if indicatif_log_bridge::LogWrapper::new(bars().clone(), logger)
        .try_init()
        .is_ok()
    {
        log::set_max_level(level);
    }
}
