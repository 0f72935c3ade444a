//! `finesse data fetch TASK…|all`: the GLUE tasks from their original distribution into
//! `$FINESSE_HOME/data/glue` (see `finesse_glue::fetch`).

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use finesse_glue::GlueTask;
use finesse_glue::fetch::{self, Fetched, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `finesse data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Download GLUE tasks (the original zip files, each sha256-pinned) and unpack their
    /// train and dev files into DATA_DIR/<TASK>/ (default $FINESSE_HOME/data/glue). A complete
    /// task folder is kept; offline mode (--offline, FINESSE_OFFLINE=1) never downloads.
    /// FINESSE_GLUE_URL_BASE replaces the server (a mirror).
    Fetch {
        /// Tasks (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli; any case), or `all`.
        #[arg(required = true, value_name = "TASK")]
        tasks: Vec<String>,
        /// The GLUE folder to fill (default $FINESSE_HOME/data/glue).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Download again and replace a task folder even when it is complete.
        #[arg(long)]
        force: bool,
    },
}

/// A byte progress bar on stderr (drawn only on a terminal).
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, label: &str, total_bytes: u64) {
        let bar = crate::logging::add(ProgressBar::new(total_bytes));
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        self.0 = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

/// The tasks named on the command line (`all` = the nine), in order, without repeats.
fn parse_tasks(names: &[String]) -> Result<Vec<GlueTask>> {
    let mut out: Vec<GlueTask> = Vec::new();
    for name in names {
        let tasks = if name.eq_ignore_ascii_case("all") {
            GlueTask::ALL.to_vec()
        } else {
            vec![GlueTask::from_str(name)?]
        };
        for t in tasks {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// Runs `finesse data …`.
pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Fetch {
            tasks,
            data_dir,
            force,
        } => {
            let tasks = parse_tasks(&tasks)?;
            let dir = data_dir.unwrap_or_else(fetch::default_data_dir);
            let mut failed = Vec::new();
            for task in tasks {
                let name = task.spec().name;
                match fetch::fetch_task(&dir, task, force, &mut Bar(None)) {
                    Ok(Fetched::Downloaded(d)) => println!("{name}: {} (downloaded)", d.display()),
                    Ok(Fetched::Present(d)) => println!("{name}: {} (already there)", d.display()),
                    Err(e) => {
                        // Report every task, then fail: one bad download does not hide the rest.
                        let e = anyhow::Error::new(e).context(format!("fetching GLUE task {name}"));
                        eprintln!("error: {e:#}");
                        failed.push(name);
                    }
                }
            }
            if !failed.is_empty() {
                bail!("could not fetch {}", failed.join(", "));
            }
            println!("GLUE data: {} (pass it as --data-dir)", dir.display());
            Ok(())
        }
    }
}
