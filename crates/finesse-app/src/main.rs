//! `finesse-app`: the desktop app (see the library crate for what it does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Browse finesse fine-tuning runs, follow running ones live, see their heatmaps.
#[derive(Parser, Debug)]
#[command(name = "finesse-app", version)]
struct Args {
    /// A folder of run directories to open (remembered for the next start).
    #[arg(long, value_name = "DIR")]
    runs: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Before any thread: tensor buffers stay in the process between steps (finesse-alloc).
    finesse_alloc::tune();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("finesse")
            .with_app_id(finesse_app::APP_ID)
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 420.0]),
        ..Default::default()
    };
    let runs = args.runs;
    let result = eframe::run_native(
        finesse_app::APP_ID,
        options,
        Box::new(move |cc| Ok(Box::new(finesse_app::FinesseApp::from_creation(cc, runs)))),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: finesse-app could not open its window: {e}");
            ExitCode::FAILURE
        }
    }
}
