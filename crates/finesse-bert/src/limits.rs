//! Whether a tokenizer and a maximum sequence length fit a model: every token id the tokenizer
//! can produce must have a row in the word-embedding table, and every position a row in the
//! position-embedding table. Checked before a model runs, so bad input is an error naming the
//! files and not an out-of-bounds index inside an embedding lookup.

use std::path::Path;

use crate::checkpoint::CONFIG_FILE;
use crate::config::BertConfig;
use crate::error::{BertError, Result};
use crate::tokenizer::BertTokenizer;

/// Checks that `tokenizer` (loaded with the maximum length the run will use) fits the model in
/// `model_dir` whose `config.json` gave `config`:
/// - its largest token id (added tokens included) is below `vocab_size`
///   ([`BertError::TokenizerExceedsVocab`], naming `tokenizer.json` and `config.json`);
/// - its maximum length ([`BertTokenizer::max_len`], the `--max-seq-len`, special tokens
///   included) is at most `max_position_embeddings` ([`BertError::SeqLenExceedsPositions`]).
///
/// A tokenizer smaller than the vocabulary is fine (fine-tuned models often pad `vocab_size`).
///
/// # Errors
///
/// [`BertError::TokenizerExceedsVocab`] or [`BertError::SeqLenExceedsPositions`] as above.
pub fn check_model_limits(
    config: &BertConfig,
    tokenizer: &BertTokenizer,
    model_dir: &Path,
) -> Result<()> {
    let config_path = model_dir.join(CONFIG_FILE);
    if let Some(max_token_id) = tokenizer.max_token_id()
        && max_token_id >= config.vocab_size
    {
        return Err(BertError::TokenizerExceedsVocab {
            tokenizer: tokenizer.path().to_path_buf(),
            config: config_path,
            max_token_id,
            vocab_size: config.vocab_size,
        });
    }
    if tokenizer.max_len() > config.max_position_embeddings {
        return Err(BertError::SeqLenExceedsPositions {
            config: config_path,
            max_seq_len: tokenizer.max_len(),
            max_position_embeddings: config.max_position_embeddings,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The 128-token test tokenizer (ids 0..=127) of `assets/tiny-bert`.
    fn tiny_tokenizer(max_len: usize) -> BertTokenizer {
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let path = root.join("../../assets/tiny-bert/tokenizer.json");
        BertTokenizer::from_file(&path, max_len).expect("tiny tokenizer")
    }

    #[test]
    fn tokenizer_within_the_vocabulary_and_length_within_positions_pass() {
        // tiny(128): vocab 128, 64 positions.
        check_model_limits(&BertConfig::tiny(128), &tiny_tokenizer(64), Path::new("m"))
            .expect("fits");
        check_model_limits(&BertConfig::tiny(200), &tiny_tokenizer(16), Path::new("m"))
            .expect("a larger vocabulary is fine");
    }

    #[test]
    fn tokenizer_larger_than_vocab_size_names_both_files() {
        let err = check_model_limits(&BertConfig::tiny(100), &tiny_tokenizer(32), Path::new("m"))
            .expect_err("ids up to 127 in a 100-row table");
        assert!(
            matches!(
                err,
                BertError::TokenizerExceedsVocab {
                    max_token_id: 127,
                    vocab_size: 100,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("tokenizer.json")
                && msg.contains(&format!("m{}config.json", std::path::MAIN_SEPARATOR)),
            "{msg}"
        );
    }

    #[test]
    fn max_seq_len_beyond_position_embeddings_is_an_error() {
        let err = check_model_limits(&BertConfig::tiny(128), &tiny_tokenizer(65), Path::new("m"))
            .expect_err("65 > 64 positions");
        assert!(
            matches!(
                err,
                BertError::SeqLenExceedsPositions {
                    max_seq_len: 65,
                    max_position_embeddings: 64,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--max-seq-len 64"), "{err}");
    }
}
