//! BERT on Burn 0.22 that reproduces Hugging Face transformers numerically.
//!
//! - [`config`]: HF `config.json`, validated.
//! - [`model`]: the encoder, pooler and sequence-classification head as Burn modules.
//! - [`names`]: the Burn path ↔ HF name table; [`registry`]: every parameter with its HF name,
//!   PyTorch-layout shape, layer and kind (WQ, WK, WV, WD, WI, WO, …), keyed by `ParamId`.
//! - [`checkpoint`]: load from / save to an HF model folder (safetensors only).
//! - [`tokenizer`]: `tokenizer.json` via the `tokenizers` crate.
//! - [`hub`]: the local model cache (sha256-pinned known models, offline mode) and fetching.
//! - [`limits`]: a tokenizer and maximum length checked against a model's embedding tables.
//! - [`io`]: host tensors, safetensors read/write, atomic writes, outputs kept off inputs.
//! - [`readback`]: device → host reads that return an error naming the tensor.

// Every fallible public function says when it fails (finesse-train will follow).
#![warn(clippy::missing_errors_doc)]

pub mod attention;
pub mod checkpoint;
pub mod config;
pub mod dropout;
pub mod error;
#[cfg(feature = "flex")]
pub mod flexhost;
pub mod hub;
pub mod io;
pub mod limits;
pub mod model;
pub mod names;
pub mod norm;
pub mod readback;
pub mod registry;
pub mod slices;
#[cfg(test)]
mod testutil;
pub mod tokenizer;

pub use checkpoint::{
    LoadReport, ModelFolder, load_bert, load_classifier, load_into, model_tensors, save_hf_folder,
    try_model_tensors, write_hf_folder,
};
pub use config::{BertConfig, HiddenAct};
pub use error::{BertError, Result};
pub use io::HostTensor;
pub use limits::check_model_limits;
pub use model::{BertForSequenceClassification, BertInput, BertModel, BertOutputs};
pub use readback::ReadbackError;
pub use registry::{ParamInfo, ParamKind, ParamRegistry, ParamRole};
pub use tokenizer::{BertTokenizer, EncodedBatch, EncodedRow, TextInput};
