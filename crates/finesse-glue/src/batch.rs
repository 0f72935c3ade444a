//! Encoding a split once (token ids per example, unpadded) and cutting it into padded batches:
//! seeded shuffling per epoch, optional length bucketing, seeded subsets.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use burn::tensor::Device;
use finesse_bert::{BertInput, BertTokenizer, TextInput};

use crate::data::{Label, Split};
use crate::error::Result;

/// One example as token ids (special tokens included, truncated, not padded).
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedExample {
    /// Vocabulary ids.
    pub input_ids: Vec<u32>,
    /// Segment ids.
    pub token_type_ids: Vec<u8>,
    /// Gold label.
    pub label: Label,
}

/// A split encoded once per run and kept in memory.
#[derive(Clone, Debug)]
pub struct EncodedSplit {
    /// Examples in file order.
    pub examples: Vec<EncodedExample>,
    /// Id used for padding.
    pub pad_id: u32,
    /// Examples that were cut to the maximum length.
    pub truncated: usize,
}

impl EncodedSplit {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Real tokens of all examples.
    pub fn total_tokens(&self) -> usize {
        self.examples.iter().map(|e| e.input_ids.len()).sum()
    }
}

/// Tokenises every example of a split (pairs as `[CLS] a [SEP] b [SEP]`), truncating to the
/// tokenizer's maximum length.
///
/// # Errors
///
/// [`GlueError::Tokenizer`] when the tokenizer fails on an example.
pub fn encode_split(split: &Split, tokenizer: &BertTokenizer) -> Result<EncodedSplit> {
    let inputs: Vec<TextInput> = split
        .examples
        .iter()
        .map(|e| TextInput {
            text: e.text_a.clone(),
            pair: e.text_b.clone(),
        })
        .collect();
    let rows = tokenizer.encode_each(&inputs)?;
    let max_len = tokenizer.max_len();
    let mut truncated = 0;
    let examples = rows
        .into_iter()
        .zip(&split.examples)
        .map(|(row, e)| {
            if row.overflowed {
                truncated += 1;
            }
            debug_assert!(row.input_ids.len() <= max_len);
            EncodedExample {
                input_ids: row.input_ids,
                token_type_ids: row.token_type_ids.into_iter().map(|t| t as u8).collect(),
                label: e.label,
            }
        })
        .collect();
    Ok(EncodedSplit {
        examples,
        pad_id: tokenizer.pad_id(),
        truncated,
    })
}

/// Labels of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchLabels {
    /// Class indices.
    Classes(Vec<i64>),
    /// Regression targets.
    Scores(Vec<f32>),
}

/// A padded batch on the host, row-major `[batch, seq]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    /// Rows.
    pub batch: usize,
    /// Columns (the longest row).
    pub seq: usize,
    /// Vocabulary ids.
    pub input_ids: Vec<i64>,
    /// Segment ids.
    pub token_type_ids: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// Gold labels.
    pub labels: BatchLabels,
    /// Index of each row in the split.
    pub indices: Vec<usize>,
    /// Real (non-padding) tokens.
    pub real_tokens: usize,
}

impl HostBatch {
    /// The batch as the model's input on `device` (`[batch, seq]` int tensors).
    pub fn to_input(&self, device: &Device) -> BertInput {
        BertInput::from_host(
            self.input_ids.clone(),
            self.token_type_ids.clone(),
            self.attention_mask.clone(),
            self.batch,
            self.seq,
            device,
        )
    }
}

/// Builds the padded batch of the given examples.
///
/// # Panics
/// If `indices` is empty or out of range (a bug in the caller).
pub fn make_batch(split: &EncodedSplit, indices: &[usize]) -> HostBatch {
    make_batch_to(split, indices, 0)
}

/// [`make_batch`] with at least `min_seq` columns: `finesse bench --pad-to-max` pads every
/// batch to the maximum length, as the reference way does.
///
/// # Panics
/// If `indices` is empty or out of range (a bug in the caller).
pub fn make_batch_to(split: &EncodedSplit, indices: &[usize], min_seq: usize) -> HostBatch {
    assert!(!indices.is_empty(), "empty batch");
    let seq = indices
        .iter()
        .map(|&i| split.examples[i].input_ids.len())
        .max()
        .unwrap_or(0)
        .max(min_seq);
    let n = indices.len();
    let mut b = HostBatch {
        batch: n,
        seq,
        input_ids: Vec::with_capacity(n * seq),
        token_type_ids: Vec::with_capacity(n * seq),
        attention_mask: Vec::with_capacity(n * seq),
        labels: match split.examples[indices[0]].label {
            Label::Class(_) => BatchLabels::Classes(Vec::with_capacity(n)),
            Label::Score(_) => BatchLabels::Scores(Vec::with_capacity(n)),
        },
        indices: indices.to_vec(),
        real_tokens: 0,
    };
    for &i in indices {
        let e = &split.examples[i];
        let len = e.input_ids.len();
        b.real_tokens += len;
        b.input_ids.extend(e.input_ids.iter().map(|&x| x as i64));
        b.input_ids
            .extend(std::iter::repeat_n(split.pad_id as i64, seq - len));
        b.token_type_ids
            .extend(e.token_type_ids.iter().map(|&x| x as i64));
        b.token_type_ids.extend(std::iter::repeat_n(0, seq - len));
        b.attention_mask.extend(std::iter::repeat_n(1, len));
        b.attention_mask.extend(std::iter::repeat_n(0, seq - len));
        match (&mut b.labels, e.label) {
            (BatchLabels::Classes(v), Label::Class(c)) => v.push(c as i64),
            (BatchLabels::Scores(v), Label::Score(s)) => v.push(s),
            _ => unreachable!("one split holds one kind of label"),
        }
    }
    b
}

/// The examples a run uses: all in file order, or `max` of them taken after a seeded shuffle.
pub fn seeded_subset(len: usize, max: Option<usize>, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    if let Some(max) = max.filter(|&m| m < len) {
        idx.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5eed_5ab5));
        idx.truncate(max);
    }
    idx
}

/// How an epoch is cut into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchPlan {
    /// Examples per batch.
    pub batch_size: usize,
    /// Group examples of similar length (within windows of 50 batches) to cut padding.
    pub bucketing: bool,
}

/// The batches of training epoch `epoch` (0-based) over `pool` (indices into `split`): a
/// permutation seeded by `(seed, epoch)`, so a resumed run sees the same order; with bucketing,
/// windows of 50 batches are sorted by length and the batch order is shuffled again.
pub fn epoch_batches(
    split: &EncodedSplit,
    pool: &[usize],
    plan: BatchPlan,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ epoch as u64);
    let mut order = pool.to_vec();
    order.shuffle(&mut rng);
    let bs = plan.batch_size.max(1);
    if !plan.bucketing {
        return order.chunks(bs).map(<[usize]>::to_vec).collect();
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks(bs * 50) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| split.examples[i].input_ids.len());
        batches.extend(w.chunks(bs).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Evaluation batches in file order (or sorted by length with bucketing; rows carry their
/// indices, so metrics are computed in file order either way).
pub fn eval_batches(split: &EncodedSplit, pool: &[usize], plan: BatchPlan) -> Vec<Vec<usize>> {
    let mut order = pool.to_vec();
    if plan.bucketing {
        order.sort_by_key(|&i| split.examples[i].input_ids.len());
    }
    order
        .chunks(plan.batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(lens: &[usize]) -> EncodedSplit {
        EncodedSplit {
            examples: lens
                .iter()
                .enumerate()
                .map(|(i, &n)| EncodedExample {
                    input_ids: (0..n as u32).map(|t| t + 100).collect(),
                    token_type_ids: vec![0; n],
                    label: Label::Class(i % 2),
                })
                .collect(),
            pad_id: 0,
            truncated: 0,
        }
    }

    #[test]
    fn batches_pad_to_their_longest_row() {
        let s = split(&[3, 5, 2]);
        let b = make_batch(&s, &[0, 1, 2]);
        assert_eq!((b.batch, b.seq, b.real_tokens), (3, 5, 10));
        assert_eq!(&b.input_ids[0..5], &[100, 101, 102, 0, 0]);
        assert_eq!(&b.attention_mask[10..15], &[1, 1, 0, 0, 0]);
        assert_eq!(b.labels, BatchLabels::Classes(vec![0, 1, 0]));
    }

    #[test]
    fn a_batch_can_be_padded_to_a_fixed_length_but_never_cut() {
        let s = split(&[3, 5, 2]);
        let b = make_batch_to(&s, &[0, 2], 8);
        assert_eq!((b.batch, b.seq, b.real_tokens), (2, 8, 5));
        assert_eq!(&b.input_ids[0..8], &[100, 101, 102, 0, 0, 0, 0, 0]);
        assert_eq!(&b.attention_mask[8..16], &[1, 1, 0, 0, 0, 0, 0, 0]);
        // A shorter fixed length than the longest row leaves the row whole.
        assert_eq!(make_batch_to(&s, &[0, 1], 4).seq, 5);
    }

    #[test]
    fn epochs_are_seeded_permutations() {
        let s = split(&[4; 100]);
        let pool: Vec<usize> = (0..100).collect();
        let plan = BatchPlan {
            batch_size: 8,
            bucketing: false,
        };
        let a = epoch_batches(&s, &pool, plan, 1, 0);
        assert_eq!(a, epoch_batches(&s, &pool, plan, 1, 0));
        assert_ne!(a, epoch_batches(&s, &pool, plan, 1, 1));
        assert_ne!(a, epoch_batches(&s, &pool, plan, 2, 0));
        let mut all: Vec<usize> = a.concat();
        all.sort_unstable();
        assert_eq!(all, pool);
        assert_eq!(a.len(), 13);
    }

    #[test]
    fn bucketing_cuts_padding_and_keeps_every_example() {
        let lens: Vec<usize> = (0..400).map(|i| 2 + (i * 37 % 61)).collect();
        let s = split(&lens);
        let pool: Vec<usize> = (0..400).collect();
        let padded = |plan| -> usize {
            epoch_batches(&s, &pool, plan, 3, 0)
                .iter()
                .map(|b| make_batch(&s, b))
                .map(|b| b.batch * b.seq)
                .sum()
        };
        let plain = padded(BatchPlan {
            batch_size: 16,
            bucketing: false,
        });
        let bucketed = padded(BatchPlan {
            batch_size: 16,
            bucketing: true,
        });
        assert!(bucketed * 10 < plain * 8, "bucketing {bucketed} vs {plain}");
        let mut all = epoch_batches(
            &s,
            &pool,
            BatchPlan {
                batch_size: 16,
                bucketing: true,
            },
            3,
            0,
        )
        .concat();
        all.sort_unstable();
        assert_eq!(all, pool);
    }

    #[test]
    fn subsets_are_taken_after_a_seeded_shuffle() {
        assert_eq!(seeded_subset(5, None, 1), [0, 1, 2, 3, 4]);
        let a = seeded_subset(1000, Some(10), 1);
        assert_eq!(a.len(), 10);
        assert_eq!(a, seeded_subset(1000, Some(10), 1));
        assert_ne!(a, seeded_subset(1000, Some(10), 2));
        assert_ne!(a, (0..10).collect::<Vec<_>>());
    }
}
