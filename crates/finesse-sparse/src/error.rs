//! The one error type of `finesse-sparse`.

use std::path::PathBuf;

/// Everything that can go wrong estimating Fisher scores, selecting masks, or reading and
/// applying masks and sparse diffs.
#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    /// Reading a model or writing a tensor file failed.
    #[error(transparent)]
    Bert(#[from] finesse_bert::BertError),
    /// A tensor could not be read back from the device.
    #[error(transparent)]
    Readback(#[from] finesse_bert::ReadbackError),
    /// A file is not what it claims to be (format, version, metadata).
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// One tensor of a file is wrong (shape, dtype, values).
    #[error("{path}: tensor `{name}`: {problem}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// HF name of the tensor.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A setting is out of range.
    #[error("{field}: {problem}")]
    Config {
        /// The option or field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A name that is not one of an option's values.
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    /// A tensor has one shape in one thing and another in a thing it must match (a mask and
    /// a model, a diff and a base, two masks, a checkpoint and an optimizer).
    #[error("`{tensor}` has shape {found:?} in {found_in} but {expected:?} in {expected_in}")]
    ShapeMismatch {
        /// HF name of the tensor (or state key).
        tensor: String,
        /// The shape in `expected_in`.
        expected: Vec<usize>,
        /// The shape in `found_in`.
        found: Vec<usize>,
        /// What gives the expected shape ("the model", "the base", …).
        expected_in: &'static str,
        /// What has the other shape ("the mask m.safetensors", "the checkpoint", …).
        found_in: String,
    },
    /// A tensor one thing has is absent from another that must have it too.
    #[error("{missing_from} has no `{tensor}`, which {present_in} has")]
    MissingTensor {
        /// HF name of the tensor (or state key).
        tensor: String,
        /// What lacks it ("the mask m.safetensors", "the base", "the checkpoint", …).
        missing_from: String,
        /// What has it ("the model", "the diff", "the optimizer", …).
        present_in: String,
    },
    /// A diff was applied to tensors other than its base (content digests differ).
    #[error("the diff was made against base {}, this model is {found}", short(.expected))]
    WrongBase {
        /// The base digest the diff records.
        expected: String,
        /// The digest of the tensors given.
        found: String,
    },
    /// A diff was reverted from tensors other than its fine-tuned model (content digests
    /// differ).
    #[error("the diff's fine-tuned model is {}, this model is {found}", short(.expected))]
    WrongModel {
        /// The result digest the diff records.
        expected: String,
        /// The digest of the tensors given.
        found: String,
    },
    /// Applying or reverting a diff gave tensors other than the ones it records.
    #[error("{operation} gave {}, not {expected_what} {}", short(.found), short(.expected))]
    WrongOutcome {
        /// `applying the diff` or `reverting`.
        operation: &'static str,
        /// What the expected digest is (`the recorded result`, `the diff's base`).
        expected_what: &'static str,
        /// The expected digest.
        expected: String,
        /// The digest obtained.
        found: String,
    },
    /// A diff adds a whole tensor that the base already has.
    #[error("the diff adds `{tensor}`, which the base already has")]
    AddedTensorExists {
        /// HF name of the tensor.
        tensor: String,
    },
    /// An entry a diff changed does not hold the diff's value in the model it is reverted
    /// from.
    #[error("`{tensor}` entry {index} is {found}, the diff says {expected}: not this diff's model")]
    EntryMismatch {
        /// HF name of the tensor.
        tensor: String,
        /// Flat index (PyTorch layout).
        index: u32,
        /// The diff's fine-tuned value.
        expected: f32,
        /// The model's value.
        found: f32,
    },
    /// Two diffs that are neither sequential nor made against the same base.
    #[error(
        "the second diff was made against {}, which is neither the first diff's base {} nor its \
         result",
        short(.second_base),
        short(.first_base)
    )]
    UnrelatedDiffs {
        /// The first diff's base digest.
        first_base: String,
        /// The second diff's base digest.
        second_base: String,
    },
    /// A Fisher score is NaN or infinite.
    #[error("Fisher score of `{name}` is not finite after {samples} samples")]
    NonFinite {
        /// HF name of the parameter.
        name: String,
        /// Samples accumulated.
        samples: usize,
    },
}

/// A name that is not one of an option's values (`--scope`, `--order`, `--kind`, …).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {option} `{given}` (expected {expected})")]
pub struct UnknownName {
    /// The option ("scope", "sample order", "Fisher kind", "prune scope").
    pub option: &'static str,
    /// The name given (lower-cased).
    pub given: String,
    /// The accepted names, in prose ("global or per-tensor").
    pub expected: &'static str,
}

/// The first 12 characters of a digest (whole characters, whatever the text).
pub(crate) fn short(digest: &str) -> &str {
    digest
        .char_indices()
        .nth(12)
        .map_or(digest, |(end, _)| &digest[..end])
}

/// `Result` with [`SparseError`].
pub type Result<T> = std::result::Result<T, SparseError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Below clippy's `result_large_err` threshold, so every `Result<_, SparseError>` (here and
    /// in the crates above) stays cheap to return.
    #[test]
    fn the_error_stays_small() {
        assert!(std::mem::size_of::<SparseError>() < 128);
    }

    #[test]
    fn digests_are_shortened_by_characters() {
        assert_eq!(short(&"é".repeat(20)), "é".repeat(12));
        assert_eq!(short("abc"), "abc");
        let e = SparseError::WrongBase {
            expected: "a".repeat(64),
            found: "b".repeat(64),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "the diff was made against base {}, this model is {}",
                "a".repeat(12),
                "b".repeat(64)
            )
        );
    }
}
