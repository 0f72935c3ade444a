//! The tiny random BERT of the tests, written as an HF folder.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use finesse_bert::{BertConfig, BertModel, save_hf_folder};

use crate::paths::tiny_assets;

/// A tiny random BERT (2 layers, hidden 32, 4 heads) to write as an HF folder with
/// [`TinyBert::write`]. Weights come from `BertModel::init` on the flex device, drawn from the
/// backend's process-wide generator: reseed it with [`TinyBert::seed`] for fixed weights (and
/// keep other draws of that generator out of the way meanwhile).
#[derive(Clone, Debug)]
pub struct TinyBert {
    config: BertConfig,
    /// Passed to `save_hf_folder` as the folder whose config and tokenizer files are copied.
    source: Option<PathBuf>,
    /// Copy `assets/tiny-bert/tokenizer.json` after saving.
    copy_tokenizer: bool,
    seed: Option<u64>,
}

impl TinyBert {
    /// The model of `assets/tiny-bert/config.json` (vocabulary 128, 128 positions), saved with
    /// that folder as its source: the written folder has its `config.json` and
    /// `tokenizer.json`, so it trains and evaluates like a real model folder.
    pub fn from_assets() -> Self {
        let assets = tiny_assets();
        let config = BertConfig::from_file(&assets.join("config.json")).expect("tiny config");
        Self {
            config,
            source: Some(assets),
            copy_tokenizer: false,
            seed: None,
        }
    }

    /// `BertConfig::tiny(vocab_size)` (64 positions), saved with no source folder: a
    /// `config.json` and `model.safetensors` only, unless [`TinyBert::with_tokenizer`].
    pub fn with_vocab(vocab_size: usize) -> Self {
        Self {
            config: BertConfig::tiny(vocab_size),
            source: None,
            copy_tokenizer: false,
            seed: None,
        }
    }

    /// Also copy the 128-token `assets/tiny-bert/tokenizer.json` into the folder (whatever the
    /// model's vocabulary size: tests of the limits check use that).
    pub fn with_tokenizer(mut self) -> Self {
        self.copy_tokenizer = true;
        self
    }

    /// Reseed the backend's generator with `seed` right before drawing the weights.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The model's config.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Draws the weights and writes the HF folder `folder` (created if needed); returns it.
    pub fn write(&self, folder: &Path) -> PathBuf {
        let device = Device::flex();
        if let Some(seed) = self.seed {
            device.seed(seed);
        }
        let bert = BertModel::init(&self.config, &device);
        save_hf_folder(&bert, &self.config, None, self.source.as_deref(), folder)
            .expect("save the tiny model");
        if self.copy_tokenizer {
            std::fs::copy(
                tiny_assets().join("tokenizer.json"),
                folder.join("tokenizer.json"),
            )
            .expect("copy the tiny tokenizer");
        }
        folder.to_path_buf()
    }
}

/// The usual tiny model: [`TinyBert::from_assets`] (unseeded) written to `dir/tiny-model`.
pub fn tiny_model(dir: &Path) -> PathBuf {
    TinyBert::from_assets().write(&dir.join("tiny-model"))
}
