//! Tokenisation with the `tokenizers` crate from a model folder's `tokenizer.json`: single
//! sentences and pairs, truncation to a maximum length, batches padded to their longest row.

use std::path::{Path, PathBuf};

use tokenizers::{
    EncodeInput, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::error::{BertError, Result};

/// One example to encode: a sentence, or a sentence pair (`[CLS] a [SEP] b [SEP]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextInput {
    /// First (or only) sentence.
    pub text: String,
    /// Second sentence of a pair.
    pub pair: Option<String>,
}

impl TextInput {
    /// A single sentence.
    pub fn single(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            pair: None,
        }
    }

    /// A sentence pair.
    pub fn pair(text: impl Into<String>, pair: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            pair: Some(pair.into()),
        }
    }
}

/// A padded batch of token ids, row-major `[batch, seq]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Rows.
    pub batch: usize,
    /// Columns: the longest row of the batch.
    pub seq: usize,
    /// Vocabulary ids.
    pub input_ids: Vec<i64>,
    /// Segment ids.
    pub token_type_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
}

impl EncodedBatch {
    /// Number of real (non-padding) tokens.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }
}

/// A BERT WordPiece tokenizer configured for finesse: truncation to `max_len` (longest first
/// for pairs) and padding to the longest row of each batch.
#[derive(Clone)]
pub struct BertTokenizer {
    /// Truncating and batch-padding.
    inner: Tokenizer,
    /// Truncating only, for encoding examples one by one.
    unpadded: Tokenizer,
    path: PathBuf,
    max_len: usize,
    pad_id: u32,
    /// Largest id of the vocabulary, added tokens included (`None` for an empty vocabulary).
    max_token_id: Option<usize>,
}

/// One example's tokens, unpadded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRow {
    /// Vocabulary ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Segment ids.
    pub token_type_ids: Vec<u32>,
    /// True when the text was cut to the maximum length.
    pub overflowed: bool,
}

impl std::fmt::Debug for BertTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertTokenizer")
            .field("path", &self.path)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl BertTokenizer {
    /// Loads `tokenizer.json` and sets truncation to `max_len` tokens (special tokens included)
    /// and batch-longest padding with the file's pad token (`[PAD]`, id 0 for BERT).
    ///
    /// # Errors
    ///
    /// [`BertError::Tokenizer`] when `max_len` leaves no room for `[CLS]` and `[SEP]`, the file
    /// cannot be loaded, or it has neither padding settings nor a `[PAD]` token.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let err = |message: String| BertError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        if max_len < 3 {
            return Err(err(format!(
                "max length {max_len} leaves no room for [CLS] and [SEP]"
            )));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let (pad_id, pad_type_id, pad_token) = match inner.get_padding() {
            Some(p) => (p.pad_id, p.pad_type_id, p.pad_token.clone()),
            None => {
                let id = inner.token_to_id("[PAD]").ok_or_else(|| {
                    err("no padding settings and no [PAD] token in the vocabulary".into())
                })?;
                (id, 0, "[PAD]".to_string())
            }
        };
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| err(e.to_string()))?;
        let mut unpadded = inner.clone();
        unpadded.with_padding(None);
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id,
            pad_token,
        }));
        let max_token_id = inner
            .get_vocab(true)
            .into_values()
            .max()
            .map(|id| id as usize);
        Ok(Self {
            inner,
            unpadded,
            path: path.to_path_buf(),
            max_len,
            pad_id,
            max_token_id,
        })
    }

    /// Maximum sequence length, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The `tokenizer.json` this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Largest token id the tokenizer can produce (added tokens included); `None` for an empty
    /// vocabulary. Ids need not be contiguous, so this can exceed [`Self::vocab_size`] − 1.
    pub fn max_token_id(&self) -> Option<usize> {
        self.max_token_id
    }

    /// Id of the padding token.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Encodes examples one by one (in parallel), truncated but not padded.
    ///
    /// # Errors
    ///
    /// [`BertError::Tokenizer`] when the tokenizer fails on an input.
    pub fn encode_each(&self, inputs: &[TextInput]) -> Result<Vec<EncodedRow>> {
        let encodings = self
            .unpadded
            .encode_batch(to_encode_inputs(inputs), true)
            .map_err(|e| BertError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(encodings
            .into_iter()
            .map(|e| EncodedRow {
                input_ids: e.get_ids().to_vec(),
                token_type_ids: e.get_type_ids().to_vec(),
                overflowed: !e.get_overflowing().is_empty(),
            })
            .collect())
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes a batch, padded to its longest row.
    ///
    /// # Errors
    ///
    /// [`BertError::Tokenizer`] when the tokenizer fails on an input.
    pub fn encode_batch(&self, inputs: &[TextInput]) -> Result<EncodedBatch> {
        let encodings = self
            .inner
            .encode_batch(to_encode_inputs(inputs), true)
            .map_err(|e| BertError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        let batch = encodings.len();
        let seq = encodings.first().map_or(0, |e| e.len());
        let mut out = EncodedBatch {
            batch,
            seq,
            input_ids: Vec::with_capacity(batch * seq),
            token_type_ids: Vec::with_capacity(batch * seq),
            attention_mask: Vec::with_capacity(batch * seq),
        };
        for e in &encodings {
            out.input_ids.extend(e.get_ids().iter().map(|&x| x as i64));
            out.token_type_ids
                .extend(e.get_type_ids().iter().map(|&x| x as i64));
            out.attention_mask
                .extend(e.get_attention_mask().iter().map(|&x| x as i64));
        }
        Ok(out)
    }
}

fn to_encode_inputs(inputs: &[TextInput]) -> Vec<EncodeInput<'_>> {
    inputs
        .iter()
        .map(|t| match &t.pair {
            None => EncodeInput::from(t.text.as_str()),
            Some(p) => EncodeInput::from((t.text.as_str(), p.as_str())),
        })
        .collect()
}
