//! `finesse data fetch`: the GLUE tasks from their original distribution, checked and unpacked
//! into `$FINESSE_HOME/data/glue/<TASK>/` ([`default_data_dir`]).
//!
//! Each task is one zip file of the GLUE release (MRPC: the two SentEval files from which
//! `download_glue_data.py` builds it), whose size and sha256 are pinned in [`source`]. A
//! download is streamed into a private staging folder beside the destination, hashed as it
//! arrives, and refused whole when it is shorter or longer than pinned or hashes differently.
//! The zip is checked entry by entry before anything is unpacked (the same rules as the model
//! wheels: no absolute paths, `..`, backslashes, drives, links or special files); only the
//! task's own files (`train.tsv` and the dev files of [`crate::task::TaskSpec`]) are taken, and
//! the finished folder is renamed into place, so `<TASK>/` is either complete or absent.
//!
//! Offline mode (`--offline`, `FINESSE_OFFLINE=1`: [`finesse_bert::hub::is_offline`]) never
//! downloads. `FINESSE_GLUE_URL_BASE` replaces the server ([`URL_BASE`]) for tests and mirrors.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::task::GlueTask;

/// The server of the GLUE release (`download_glue_data.py`, the HF `glue` loader and
/// tensorflow_datasets all download from it).
pub const URL_BASE: &str = "https://dl.fbaipublicfiles.com";

/// Environment variable that replaces [`URL_BASE`] (a mirror, or a local server in tests).
pub const URL_BASE_ENV: &str = "FINESSE_GLUE_URL_BASE";

/// One file of the release: where it is below the URL base, its size and its sha256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Download {
    /// Path below the URL base (`glue/data/SST-2.zip`).
    pub path: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: &'static str,
}

/// How a task is distributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A zip holding `<folder>/train.tsv` and the dev files.
    Zip(Download),
    /// MRPC: Microsoft's training file and the GLUE dev ids; `train.tsv` and `dev.tsv` are
    /// built as `download_glue_data.py` builds them (rows whose id pair is a dev id go to dev).
    Mrpc {
        /// `msr_paraphrase_train.txt`.
        train: Download,
        /// `mrpc_dev_ids.tsv`.
        dev_ids: Download,
    },
}

// The pins: `download_checksums` of the Hugging Face `glue` dataset script
// (huggingface/datasets, datasets/glue/dataset_infos.json: URL, num_bytes, sha256), which
// downloads the same files from the same server. The sizes and sha256 of the zips also match
// tensorflow_datasets' url_checksums/glue.txt (the firebase URLs of the original release);
// QQP is the re-released `QQP-clean.zip`.
const fn zip(path: &'static str, size: u64, sha256: &'static str) -> Source {
    Source::Zip(Download { path, size, sha256 })
}

/// Where and how a task is downloaded.
pub fn source(task: GlueTask) -> Source {
    match task {
        GlueTask::Cola => zip(
            "glue/data/CoLA.zip",
            376_971,
            "f212fcd832b8f7b435fb991f101abf89f96b933ab400603bf198960dfc32cbff",
        ),
        GlueTask::Sst2 => zip(
            "glue/data/SST-2.zip",
            7_439_277,
            "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa",
        ),
        GlueTask::Mrpc => Source::Mrpc {
            train: Download {
                path: "senteval/senteval_data/msr_paraphrase_train.txt",
                size: 1_047_044,
                sha256: "60a9b09084528f0673eedee2b69cb941920f0b8cd0eeccefc464a98768457f89",
            },
            dev_ids: Download {
                path: "glue/data/mrpc_dev_ids.tsv",
                size: 6_222,
                sha256: "971d7767d81b997fd9060ade0ec23c4fc31cbb226a55d1bd4a1bac474eb81dc7",
            },
        },
        GlueTask::Stsb => zip(
            "glue/data/STS-B.zip",
            802_872,
            "e60a6393de5a8b5b9bac5020a1554b54e3691f9d600b775bd131e613ac179c85",
        ),
        GlueTask::Qqp => zip(
            "glue/data/QQP-clean.zip",
            41_696_084,
            "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0",
        ),
        GlueTask::Mnli => zip(
            "glue/data/MNLI.zip",
            312_783_507,
            "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633",
        ),
        GlueTask::Qnli => zip(
            "glue/data/QNLIv2.zip",
            10_627_589,
            "e634e78627a29adaecd4f955359b22bf5e70f2cbd93b493f2d624138a0c0e5f5",
        ),
        GlueTask::Rte => zip(
            "glue/data/RTE.zip",
            697_150,
            "6bf86de103ecd335f3441bd43574d23fef87ecc695977a63b82d5efb206556ee",
        ),
        GlueTask::Wnli => zip(
            "glue/data/WNLI.zip",
            28_999,
            "ae0e8e4d16f4d46d4a0a566ec7ecceccfd3fbfaa4a7a4b4e02848c0f2561ac46",
        ),
    }
}

/// `$FINESSE_HOME/data/glue` (default `~/.cache/finesse/data/glue`): where `finesse data
/// fetch` puts the tasks, and the data folder when `--data-dir` is absent.
pub fn default_data_dir() -> PathBuf {
    finesse_bert::hub::finesse_home().join("data").join("glue")
}

/// The URL base: `$FINESSE_GLUE_URL_BASE` when set and not empty, else [`URL_BASE`].
pub fn url_base() -> String {
    std::env::var(URL_BASE_ENV)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| URL_BASE.to_string())
}

/// Receives download progress (the CLI draws a progress bar).
pub trait Progress {
    /// A download of `total_bytes` starts; `label` names the file.
    fn start(&mut self, label: &str, total_bytes: u64);
    /// `bytes` more arrived.
    fn advance(&mut self, bytes: u64);
    /// The download ended (successfully or not).
    fn finish(&mut self);
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _label: &str, _total_bytes: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// What [`fetch_task`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The task folder already held every file; nothing was downloaded.
    Present(PathBuf),
    /// Downloaded, checked and unpacked just now.
    Downloaded(PathBuf),
}

impl Fetched {
    /// The task folder.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Present(p) | Self::Downloaded(p) => p,
        }
    }
}

/// Everything that can go wrong fetching a task. (Kept in this module rather than in
/// [`crate::GlueError`]: only `finesse data fetch` produces it.)
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Offline mode forbids the download.
    #[error(
        "GLUE task {task} is not in {dir}, and offline mode (--offline or FINESSE_OFFLINE=1) \
         forbids downloading it; run `finesse data fetch {task}` once with network access"
    )]
    Offline {
        /// Task folder name.
        task: String,
        /// The folder looked at.
        dir: PathBuf,
    },
    /// The task folder exists but lacks files; it is not replaced without `--force`.
    #[error(
        "{dir} exists but lacks {missing}; it is left alone: move it away or run `finesse data \
         fetch --force {task}` to replace it"
    )]
    Incomplete {
        /// Task folder name.
        task: String,
        /// The folder.
        dir: PathBuf,
        /// The missing file names, comma-separated.
        missing: String,
    },
    /// The server could not be reached or answered with an error status.
    #[error("downloading {url}: {source}{hint}")]
    Http {
        /// The URL.
        url: String,
        /// ureq's error (a status or a transport error).
        #[source]
        source: Box<ureq::Error>,
        /// Advice.
        hint: &'static str,
    },
    /// The download broke off, or has another size than pinned.
    #[error(
        "downloading {url}: got {received} bytes, expected {expected} (the download was cut \
         short or the file changed on the server){}; nothing was written",
        cause.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    )]
    Size {
        /// The URL.
        url: String,
        /// Bytes received.
        received: u64,
        /// The pinned size.
        expected: u64,
        /// The read error that ended the download, if any.
        #[source]
        cause: Option<std::io::Error>,
    },
    /// The download hashes to another sha256 than pinned.
    #[error(
        "downloading {url}: sha256 {actual}, expected the pinned {expected}: the file is not the \
         GLUE release finesse knows; nothing was written"
    )]
    Checksum {
        /// The URL.
        url: String,
        /// The pinned sha256.
        expected: String,
        /// The sha256 received.
        actual: String,
    },
    /// The archive could not be read as a zip.
    #[error("reading zip {url}: {source}; nothing was written")]
    Zip {
        /// Where it came from.
        url: String,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// The archive holds an entry that could write outside its folder or is not a plain file.
    #[error(
        "zip {url}: refusing entry `{entry}`: {problem}; the archive is not trustworthy and \
         nothing was unpacked"
    )]
    UnsafeEntry {
        /// Where it came from.
        url: String,
        /// The entry name as stored.
        entry: String,
        /// Why it is refused.
        problem: &'static str,
    },
    /// The archive lacks files of the task (or holds one twice).
    #[error("zip {url}: {problem}; nothing was written")]
    Contents {
        /// Where it came from.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// A line of the MRPC source files is malformed.
    #[error("{url}:{line}: {problem}; nothing was written")]
    BadLine {
        /// Where it came from.
        url: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A local file or folder could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io {
        action,
        path,
        source,
    }
}

/// The files finesse reads from a task folder.
fn wanted_files(task: GlueTask) -> Vec<&'static str> {
    let spec = task.spec();
    std::iter::once(spec.train_file)
        .chain(spec.dev_files.iter().map(|(_, f)| *f))
        .collect()
}

/// Fetches `task` into `data_dir/<TASK>/` from [`url_base`] with the pins of [`source`]; a
/// folder that already holds the task's files is kept unless `force`.
///
/// # Errors
///
/// [`FetchError::Offline`] in offline mode when the folder is not complete, and the errors of
/// [`fetch_from`].
pub fn fetch_task(
    data_dir: &Path,
    task: GlueTask,
    force: bool,
    progress: &mut dyn Progress,
) -> Result<Fetched, FetchError> {
    fetch_from(
        data_dir,
        task,
        &source(task),
        &url_base(),
        finesse_bert::hub::is_offline(),
        force,
        progress,
    )
}

/// [`fetch_task`] with the source (pins), URL base and offline mode given: the whole code
/// path, testable against a local server.
///
/// # Errors
///
/// [`FetchError::Offline`], [`FetchError::Incomplete`] for an existing folder lacking files
/// (without `force`), [`FetchError::Http`] / [`FetchError::Size`] / [`FetchError::Checksum`]
/// for a failed or wrong download, [`FetchError::Zip`] / [`FetchError::UnsafeEntry`] /
/// [`FetchError::Contents`] / [`FetchError::BadLine`] for a refused archive, and
/// [`FetchError::Io`]. On any error nothing is left in `data_dir`.
pub fn fetch_from(
    data_dir: &Path,
    task: GlueTask,
    source: &Source,
    url_base: &str,
    offline: bool,
    force: bool,
    progress: &mut dyn Progress,
) -> Result<Fetched, FetchError> {
    let name = task.spec().name;
    let target = data_dir.join(name);
    let wanted = wanted_files(task);
    if target.exists() && !force {
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|f| !target.join(f).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(Fetched::Present(target));
        }
        if !offline {
            return Err(FetchError::Incomplete {
                task: name.into(),
                dir: target,
                missing: missing.join(", "),
            });
        }
    }
    if offline {
        return Err(FetchError::Offline {
            task: name.into(),
            dir: data_dir.to_path_buf(),
        });
    }
    let created = !data_dir.exists();
    std::fs::create_dir_all(data_dir).map_err(io_err("creating folder", data_dir))?;
    let result = fetch_staged(data_dir, name, &wanted, source, url_base, progress, &target);
    if result.is_err() && created {
        // Leave no empty folder behind either (fails harmlessly when something else is there).
        let _ = std::fs::remove_dir(data_dir);
    }
    result.map(|()| Fetched::Downloaded(target))
}

fn fetch_staged(
    data_dir: &Path,
    name: &str,
    wanted: &[&'static str],
    source: &Source,
    url_base: &str,
    progress: &mut dyn Progress,
    target: &Path,
) -> Result<(), FetchError> {
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{name}-"))
        .tempdir_in(data_dir)
        .map_err(io_err("creating a temporary folder in", data_dir))?;
    let staged = work.path().join(name);
    std::fs::create_dir(&staged).map_err(io_err("creating folder", &staged))?;
    let base = url_base.trim_end_matches('/');
    match source {
        Source::Zip(dl) => {
            let url = format!("{base}/{}", dl.path);
            let archive = work.path().join("download.zip");
            download(&url, dl, &archive, progress)?;
            unpack_task_files(&archive, &url, wanted, &staged)?;
        }
        Source::Mrpc { train, dev_ids } => {
            let train_url = format!("{base}/{}", train.path);
            let ids_url = format!("{base}/{}", dev_ids.path);
            let train_file = work.path().join("msr_paraphrase_train.txt");
            let ids_file = work.path().join("mrpc_dev_ids.tsv");
            download(&train_url, train, &train_file, progress)?;
            download(&ids_url, dev_ids, &ids_file, progress)?;
            build_mrpc(&train_file, &train_url, &ids_file, &ids_url, &staged)?;
        }
    }
    if target.exists() {
        // --force: the old folder goes into the staging folder and is removed with it.
        let old = work.path().join("replaced");
        std::fs::rename(target, &old).map_err(io_err("moving aside", target))?;
    }
    std::fs::rename(&staged, target).map_err(io_err("renaming into", target))?;
    Ok(())
}

/// Streams `url` into `to` (created new), at most the pinned size plus one byte, hashing as it
/// goes; the size and sha256 must match the pins.
fn download(
    url: &str,
    dl: &Download,
    to: &Path,
    progress: &mut dyn Progress,
) -> Result<(), FetchError> {
    log::info!("downloading {url} ({} bytes)", dl.size);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = agent.get(url).call().map_err(|e| {
        let hint = match &e {
            ureq::Error::Status(..) => "",
            ureq::Error::Transport(_) => {
                "; check the network (or set FINESSE_GLUE_URL_BASE to a mirror)"
            }
        };
        FetchError::Http {
            url: url.into(),
            source: Box::new(e),
            hint,
        }
    })?;
    let mut reader = response.into_reader().take(dl.size.saturating_add(1));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_err("creating", to))?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    progress.start(url.rsplit('/').next().unwrap_or(url), dl.size);
    let outcome = loop {
        match reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err("writing", to))?;
                received += n as u64;
                progress.advance(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e),
        }
    };
    progress.finish();
    if outcome.is_some() || received != dl.size {
        return Err(FetchError::Size {
            url: url.into(),
            received,
            expected: dl.size,
            cause: outcome,
        });
    }
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual != dl.sha256 {
        return Err(FetchError::Checksum {
            url: url.into(),
            expected: dl.sha256.into(),
            actual,
        });
    }
    file.sync_all().map_err(io_err("writing", to))?;
    Ok(())
}

/// Unpacks the task's files (`<folder>/<file>` for each wanted file) into `dest`. Every entry
/// is checked first; one that is unsafe refuses the whole archive before anything is written.
fn unpack_task_files(
    archive: &Path,
    url: &str,
    wanted: &[&'static str],
    dest: &Path,
) -> Result<(), FetchError> {
    let zerr = |source| FetchError::Zip {
        url: url.into(),
        source,
    };
    let contents = |problem: String| FetchError::Contents {
        url: url.into(),
        problem,
    };
    let file = std::fs::File::open(archive).map_err(io_err("opening", archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(zerr)?;
    let mut found: Vec<Option<usize>> = vec![None; wanted.len()];
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(zerr)?;
        let name = entry.name().to_string();
        let is_dir = entry.is_dir();
        if let Some(problem) = finesse_bert::hub::unsafe_zip_entry(&name, is_dir, entry.unix_mode())
        {
            return Err(FetchError::UnsafeEntry {
                url: url.into(),
                entry: name,
                problem,
            });
        }
        if is_dir {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        let [folder, file] = parts.as_slice() else {
            continue;
        };
        if folder.starts_with("__MACOSX") {
            continue;
        }
        if let Some(k) = wanted.iter().position(|w| w == file) {
            if found[k].is_some() {
                return Err(contents(format!("it holds {file} twice (`{name}`)")));
            }
            found[k] = Some(i);
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(w, _)| *w)
        .collect();
    if !missing.is_empty() {
        return Err(contents(format!(
            "it lacks {} (expected as <folder>/<file>)",
            missing.join(", ")
        )));
    }
    for (file_name, index) in wanted.iter().zip(found) {
        let Some(index) = index else { continue };
        let mut entry = zip.by_index(index).map_err(zerr)?;
        let out = dest.join(file_name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&out)
            .map_err(io_err("creating", &out))?;
        let limit = entry.size();
        let copied = std::io::copy(&mut (&mut entry).take(limit), &mut f).map_err(|e| {
            contents(format!(
                "entry `{}` could not be unpacked ({e})",
                entry.name()
            ))
        })?;
        if copied != limit {
            return Err(contents(format!(
                "entry `{}` is shorter than it declares",
                entry.name()
            )));
        }
        f.sync_all().map_err(io_err("writing", &out))?;
    }
    Ok(())
}

/// Builds MRPC's `train.tsv` and `dev.tsv` as `download_glue_data.py` does: the header of
/// `msr_paraphrase_train.txt` in both, each row (whitespace-trimmed, five tab-separated
/// fields) in `dev.tsv` when its id pair is in the dev ids, else in `train.tsv`.
fn build_mrpc(
    train_file: &Path,
    train_url: &str,
    ids_file: &Path,
    ids_url: &str,
    dest: &Path,
) -> Result<(), FetchError> {
    let lines = |path: &Path| -> Result<Vec<String>, FetchError> {
        let f = std::fs::File::open(path).map_err(io_err("opening", path))?;
        std::io::BufReader::new(f)
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err("reading", path))
    };
    let mut dev_ids = std::collections::HashSet::new();
    for (k, line) in lines(ids_file)?.iter().enumerate() {
        let fields: Vec<&str> = line.trim().split('\t').collect();
        let [a, b] = fields.as_slice() else {
            return Err(FetchError::BadLine {
                url: ids_url.into(),
                line: k + 1,
                problem: format!("expected 2 tab-separated ids, found {}", fields.len()),
            });
        };
        dev_ids.insert((a.to_string(), b.to_string()));
    }
    let rows = lines(train_file)?;
    let Some((header, rows)) = rows.split_first() else {
        return Err(FetchError::BadLine {
            url: train_url.into(),
            line: 1,
            problem: "the file is empty".into(),
        });
    };
    let header = header.trim_end_matches('\r');
    let (mut train, mut dev) = (format!("{header}\n"), format!("{header}\n"));
    for (k, row) in rows.iter().enumerate() {
        let fields: Vec<&str> = row.trim().split('\t').collect();
        let [_label, id1, id2, _s1, _s2] = fields.as_slice() else {
            return Err(FetchError::BadLine {
                url: train_url.into(),
                line: k + 2,
                problem: format!("expected 5 tab-separated fields, found {}", fields.len()),
            });
        };
        let out = if dev_ids.contains(&(id1.to_string(), id2.to_string())) {
            &mut dev
        } else {
            &mut train
        };
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    for (file, text) in [("train.tsv", train), ("dev.tsv", dev)] {
        let out = dest.join(file);
        std::fs::write(&out, text).map_err(io_err("writing", &out))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves `body` (cut after `send` bytes while announcing its full length) to at most 16
    /// requests on 127.0.0.1; returns the URL base.
    fn serve(body: Vec<u8>, send: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(16) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(&mut stream);
                let mut line = String::new();
                // Request line and headers, up to the blank line (bounded).
                for _ in 0..100 {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body[..send.min(body.len())]);
            }
        });
        format!("http://{addr}")
    }

    fn sha(bytes: &[u8]) -> &'static str {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hex.leak()
    }

    /// A zip of `(name, content)` entries.
    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for (name, content) in entries {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .expect("start");
                w.write_all(content.as_bytes()).expect("write");
            }
            w.finish().expect("finish");
        }
        out.into_inner()
    }

    const SST2: &[(&str, &str)] = &[
        ("SST-2/train.tsv", "sentence\tlabel\ngreat film .\t1\n"),
        ("SST-2/dev.tsv", "sentence\tlabel\nawful film .\t0\n"),
        ("SST-2/test.tsv", "index\tsentence\n0\tfine .\n"),
        ("SST-2/original/README.txt", "not taken"),
    ];

    fn zip_source(bytes: &[u8]) -> Source {
        Source::Zip(Download {
            path: "glue/data/SST-2.zip",
            size: bytes.len() as u64,
            sha256: sha(bytes),
        })
    }

    /// Every path below `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(dir).expect("below").to_path_buf());
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn fetch(
        root: &Path,
        task: GlueTask,
        source: &Source,
        base: &str,
    ) -> Result<Fetched, FetchError> {
        fetch_from(
            &root.join("glue"),
            task,
            source,
            base,
            false,
            false,
            &mut NoProgress,
        )
    }

    #[test]
    fn good_zip_unpacks_only_the_task_files_atomically() {
        let bytes = zip_of(SST2);
        let base = serve(bytes.clone(), usize::MAX);
        let root = tempfile::tempdir().expect("tempdir");
        let got = fetch(root.path(), GlueTask::Sst2, &zip_source(&bytes), &base).expect("fetch");
        let dir = root.path().join("glue/SST-2");
        assert_eq!(got, Fetched::Downloaded(dir.clone()));
        assert_eq!(
            tree(&root.path().join("glue")),
            ["SST-2", "SST-2/dev.tsv", "SST-2/train.tsv"].map(PathBuf::from)
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("dev.tsv")).expect("dev"),
            SST2[1].1
        );
        // A second fetch finds it complete and downloads nothing (the server is not needed).
        let again = fetch(
            root.path(),
            GlueTask::Sst2,
            &zip_source(&bytes),
            "http://127.0.0.1:9",
        )
        .expect("present");
        assert_eq!(again, Fetched::Present(dir));
    }

    fn assert_nothing_written(root: &Path) {
        assert_eq!(
            tree(root),
            Vec::<PathBuf>::new(),
            "nothing left in {root:?}"
        );
    }

    #[test]
    fn truncated_download_is_refused_and_writes_nothing() {
        let bytes = zip_of(SST2);
        let base = serve(bytes.clone(), bytes.len() / 2);
        let root = tempfile::tempdir().expect("tempdir");
        let err =
            fetch(root.path(), GlueTask::Sst2, &zip_source(&bytes), &base).expect_err("truncated");
        let msg = err.to_string();
        assert!(
            matches!(&err, FetchError::Size { received, expected, .. }
                if *received < *expected)
                && msg.contains("cut short")
                && msg.contains("nothing was written"),
            "{msg}"
        );
        assert_nothing_written(root.path());
    }

    #[test]
    fn wrong_checksum_is_refused_and_writes_nothing() {
        let bytes = zip_of(SST2);
        let base = serve(bytes.clone(), usize::MAX);
        let root = tempfile::tempdir().expect("tempdir");
        let source = Source::Zip(Download {
            path: "glue/data/SST-2.zip",
            size: bytes.len() as u64,
            sha256: "00".repeat(32).leak(),
        });
        let err = fetch(root.path(), GlueTask::Sst2, &source, &base).expect_err("checksum");
        let msg = err.to_string();
        assert!(
            matches!(err, FetchError::Checksum { .. })
                && msg.contains(sha(&bytes))
                && msg.contains(&"00".repeat(32)),
            "{msg}"
        );
        assert_nothing_written(root.path());
    }

    #[test]
    fn zip_climbing_out_is_refused_whole_and_writes_nothing() {
        for (evil, why) in [
            ("../evil.tsv", "`..`"),
            ("SST-2/../../evil.tsv", "`..`"),
            ("/etc/evil.tsv", "absolute"),
            ("SST-2\\train.tsv", "backslash"),
        ] {
            let mut entries = SST2.to_vec();
            entries.push((evil, "x"));
            let bytes = zip_of(&entries);
            let base = serve(bytes.clone(), usize::MAX);
            let root = tempfile::tempdir().expect("tempdir");
            let err =
                fetch(root.path(), GlueTask::Sst2, &zip_source(&bytes), &base).expect_err("unsafe");
            let msg = err.to_string();
            assert!(
                matches!(&err, FetchError::UnsafeEntry { entry, .. } if entry == evil)
                    && msg.contains(why)
                    && msg.contains("nothing was unpacked"),
                "{msg}"
            );
            assert_nothing_written(root.path());
            assert!(
                !root
                    .path()
                    .parent()
                    .expect("parent")
                    .join("evil.tsv")
                    .exists()
            );
        }
    }

    #[test]
    fn zip_without_the_dev_file_is_refused() {
        let bytes = zip_of(&SST2[..1]);
        let base = serve(bytes.clone(), usize::MAX);
        let root = tempfile::tempdir().expect("tempdir");
        let err =
            fetch(root.path(), GlueTask::Sst2, &zip_source(&bytes), &base).expect_err("missing");
        assert!(err.to_string().contains("lacks dev.tsv"), "{err}");
        assert_nothing_written(root.path());
    }

    #[test]
    fn http_error_status_is_reported_with_the_url() {
        let root = tempfile::tempdir().expect("tempdir");
        // Nothing listens on the discard port of the loopback interface.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let base = format!("http://{addr}");
        let err = fetch(root.path(), GlueTask::Wnli, &source(GlueTask::Wnli), &base)
            .expect_err("refused");
        assert!(
            matches!(err, FetchError::Http { .. }) && err.to_string().contains("WNLI.zip"),
            "{err}"
        );
        assert_nothing_written(root.path());
    }

    #[test]
    fn offline_downloads_nothing() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = fetch_from(
            &root.path().join("glue"),
            GlueTask::Rte,
            &source(GlueTask::Rte),
            "http://127.0.0.1:9",
            true,
            false,
            &mut NoProgress,
        )
        .expect_err("offline");
        assert!(
            matches!(err, FetchError::Offline { .. }) && err.to_string().contains("offline"),
            "{err}"
        );
        assert_nothing_written(root.path());
    }

    #[test]
    fn mrpc_is_built_like_download_glue_data() {
        let train = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n\
                     1\t11\t12\ta b\tc d\r\n0\t21\t22\te f\tg h\r\n1\t31\t32\ti j\tk l\r\n";
        let ids = "21\t22\r\n";
        let root = tempfile::tempdir().expect("tempdir");
        // One server per file: the source paths differ only below the base.
        let (tb, ib) = (train.as_bytes().to_vec(), ids.as_bytes().to_vec());
        let base_t = serve(tb.clone(), usize::MAX);
        let base_i = serve(ib.clone(), usize::MAX);
        let glue = root.path().join("glue");
        let dir = glue.join("MRPC");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // Build from already-downloaded files, then check the download path through a server.
        let (t, i) = (root.path().join("t.txt"), root.path().join("i.tsv"));
        std::fs::write(&t, &tb).expect("t");
        std::fs::write(&i, &ib).expect("i");
        build_mrpc(&t, "t", &i, "i", &dir).expect("build");
        let header = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
        assert_eq!(
            std::fs::read_to_string(dir.join("train.tsv")).expect("train"),
            format!("{header}1\t11\t12\ta b\tc d\n1\t31\t32\ti j\tk l\n")
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("dev.tsv")).expect("dev"),
            format!("{header}0\t21\t22\te f\tg h\n")
        );
        let dl = |bytes: &[u8]| Download {
            path: "f",
            size: bytes.len() as u64,
            sha256: sha(bytes),
        };
        let out = root.path().join("dl.txt");
        download(&format!("{base_t}/f"), &dl(&tb), &out, &mut NoProgress).expect("train");
        assert_eq!(std::fs::read(&out).expect("read"), tb);
        let out = root.path().join("dl.tsv");
        download(&format!("{base_i}/f"), &dl(&ib), &out, &mut NoProgress).expect("ids");
    }

    #[test]
    fn default_data_dir_is_below_finesse_home() {
        assert!(default_data_dir().ends_with("data/glue"));
    }

    #[test]
    fn every_task_has_a_pinned_source() {
        for task in GlueTask::ALL {
            let downloads = match source(task) {
                Source::Zip(d) => vec![d],
                Source::Mrpc { train, dev_ids } => vec![train, dev_ids],
            };
            for d in downloads {
                assert_eq!(d.sha256.len(), 64, "{task}");
                assert!(d.sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{task}");
                assert!(d.size > 0 && !d.path.starts_with('/'), "{task}");
            }
        }
    }
}
