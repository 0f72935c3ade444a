//! The BERT encoder and its sequence-classification head, as Burn modules.
//!
//! Struct and field names mirror the Hugging Face checkpoint names
//! (`transformers/models/bert/modeling_bert.py`); the few spellings Rust or Burn force to differ
//! (`self` → `self_attention`, `LayerNorm` → `layer_norm`, `weight/bias` → `gamma/beta`) are
//! translated in one place, [`crate::names`]. Each of WQ, WK, WV, WD, WI and WO is its own
//! [`Linear`], so masks and analyses can address every matrix by its HF name.

use burn::module::{Module, Param};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::{gelu, gelu_approximate, relu, silu};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::config::{BertConfig, HiddenAct};
use crate::dropout::Positions;
use crate::io::{HostTensor, transpose_2d};

/// Additive attention bias for padded key positions: large enough that `exp` underflows to 0,
/// small enough that adding it to a score never overflows f32.
const MASKED_SCORE: f32 = -1.0e9;

/// Token ids, segment ids and attention mask of a padded batch.
///
/// # Shapes
/// every tensor is `[batch, seq]`; `attention_mask` is 1 for real tokens, 0 for padding.
#[derive(Clone, Debug)]
pub struct BertInput {
    /// Vocabulary ids.
    pub input_ids: Tensor<2, Int>,
    /// Segment (token type) ids, 0 for the first sentence, 1 for the second.
    pub token_type_ids: Tensor<2, Int>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
}

impl BertInput {
    /// Builds the three tensors from row-major `[batch, seq]` host vectors.
    pub fn from_host(
        input_ids: Vec<i64>,
        token_type_ids: Vec<i64>,
        attention_mask: Vec<i64>,
        batch: usize,
        seq: usize,
        device: &Device,
    ) -> Self {
        let t = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [batch, seq]), device);
        Self {
            input_ids: t(input_ids),
            token_type_ids: t(token_type_ids),
            attention_mask: t(attention_mask),
        }
    }
}

/// Word, position and token-type embeddings, summed, then LayerNorm and dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `embeddings.word_embeddings` `[vocab, hidden]`.
    pub word_embeddings: Embedding,
    /// `embeddings.position_embeddings` `[max_positions, hidden]` (absolute positions).
    pub position_embeddings: Embedding,
    /// `embeddings.token_type_embeddings` `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// ε of the LayerNorm (Burn's `LayerNorm` keeps its own private), for [`crate::norm`].
    #[module(skip)]
    pub layer_norm_eps: f64,
    /// Dropout after the LayerNorm (training only).
    pub dropout: Dropout,
}

impl BertEmbeddings {
    /// # Shapes
    /// `input_ids`, `token_type_ids`: `[batch, seq]` → `[batch, seq, hidden]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .repeat_dim(0, batch);
        let x = crate::slices::embedding(&self.word_embeddings, input_ids)
            + self.token_type_embeddings.forward(token_type_ids)
            + self.position_embeddings.forward(positions);
        let x = crate::norm::layer_norm(&self.layer_norm, self.layer_norm_eps, x);
        crate::dropout::apply(&self.dropout, x)
    }
}

/// Multi-head self-attention projections WQ, WK, WV (`attention.self.*`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// WQ, `attention.self.query`.
    pub query: Linear,
    /// WK, `attention.self.key`.
    pub key: Linear,
    /// WV, `attention.self.value`.
    pub value: Linear,
    /// Dropout on attention probabilities (training only).
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    /// Scaled dot-product attention over all heads.
    ///
    /// # Shapes
    /// `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, 1, 1, seq]` → `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        self.attend(x, mask_bias, Positions::All)
    }

    /// [`Self::forward`] for the queries of `positions`: with [`Positions::First`], position 0's
    /// context only (`[batch, 1, hidden]`), its keys and values still from every position.
    fn attend(&self, x: Tensor<3>, mask_bias: Tensor<4>, positions: Positions) -> Tensor<3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<3>, len: usize| {
            t.reshape([batch, len, self.num_heads, head_dim])
                .swap_dims(1, 2)
        };
        let xq = at_positions(x.clone(), positions);
        let queries = xq.dims()[1];
        let q = heads(crate::slices::linear(&self.query, xq), queries);
        let k = heads(crate::slices::linear(&self.key, x.clone()), seq);
        let v = heads(crate::slices::linear(&self.value, x), seq);
        let scores = q.matmul(k.swap_dims(2, 3));
        let sqrt_d = (head_dim as f64).sqrt();
        let probs = crate::attention::probs(scores, sqrt_d, mask_bias, &self.dropout, positions);
        probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, queries, hidden])
    }
}

/// WD (`attention.output.dense`), dropout, residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertSelfOutput {
    /// WD, `attention.output.dense`.
    pub dense: Linear,
    /// `attention.output.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// ε of the LayerNorm (Burn's `LayerNorm` keeps its own private), for [`crate::norm`].
    #[module(skip)]
    pub layer_norm_eps: f64,
    /// Dropout on the branch (training only).
    pub dropout: Dropout,
}

/// The attention block of one layer (`attention.*`).
#[derive(Module, Debug)]
pub struct BertAttention {
    /// `attention.self`: WQ, WK, WV.
    pub self_attention: BertSelfAttention,
    /// `attention.output`: WD and its LayerNorm.
    pub output: BertSelfOutput,
}

/// WI (`intermediate.dense`) and the activation.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// WI, `intermediate.dense`.
    pub dense: Linear,
    /// Activation after WI.
    #[module(skip)]
    pub act: HiddenAct,
}

/// WO (`output.dense`), dropout, residual and LayerNorm.
#[derive(Module, Debug)]
pub struct BertOutput {
    /// WO, `output.dense`.
    pub dense: Linear,
    /// `output.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// ε of the LayerNorm (Burn's `LayerNorm` keeps its own private), for [`crate::norm`].
    #[module(skip)]
    pub layer_norm_eps: f64,
    /// Dropout on the branch (training only).
    pub dropout: Dropout,
}

/// One transformer encoder layer (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Self-attention block.
    pub attention: BertAttention,
    /// Feed-forward up-projection.
    pub intermediate: BertIntermediate,
    /// Feed-forward down-projection.
    pub output: BertOutput,
}

impl BertLayer {
    /// # Shapes
    /// `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, 1, 1, seq]` → `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        self.run(x, mask_bias, Positions::All)
    }

    /// The output at position 0 (`[CLS]`) only: what [`Self::forward`] gives there, to float
    /// rounding, with the same dropout entries. Keys and values come from every position; the
    /// queries, WD, the feed-forward block and the LayerNorms run on one row per sequence.
    ///
    /// # Shapes
    /// `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, 1, 1, seq]` → `[batch, 1, hidden]`
    pub fn forward_first(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let seq = x.dims()[1];
        self.run(x, mask_bias, Positions::First { seq })
    }

    fn run(&self, x: Tensor<3>, mask_bias: Tensor<4>, positions: Positions) -> Tensor<3> {
        let drop =
            |dropout: &Dropout, t: Tensor<3>| crate::dropout::apply_at(dropout, t, positions);
        let attn = self
            .attention
            .self_attention
            .attend(x.clone(), mask_bias, positions);
        let x = at_positions(x, positions);
        let out = &self.attention.output;
        let x = crate::norm::layer_norm(
            &out.layer_norm,
            out.layer_norm_eps,
            drop(&out.dropout, crate::slices::linear(&out.dense, attn)) + x,
        );
        let h = crate::slices::linear(&self.intermediate.dense, x.clone());
        let h = match self.intermediate.act {
            HiddenAct::Gelu => gelu(h),
            HiddenAct::GeluTanh => gelu_approximate(h),
            HiddenAct::Relu => relu(h),
            HiddenAct::Silu => silu(h),
        };
        let o = &self.output;
        crate::norm::layer_norm(
            &o.layer_norm,
            o.layer_norm_eps,
            drop(&o.dropout, crate::slices::linear(&o.dense, h)) + x,
        )
    }
}

/// `x` `[batch, seq, hidden]` at `positions`: all of it, or `[batch, 1, hidden]` at position 0.
fn at_positions(x: Tensor<3>, positions: Positions) -> Tensor<3> {
    match positions {
        Positions::All => x,
        Positions::First { .. } => x.narrow(1, 0, 1),
    }
}

/// The stack of encoder layers (`encoder.layer`).
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// `encoder.layer.0` … `encoder.layer.{L-1}`.
    pub layer: Vec<BertLayer>,
}

/// Dense + tanh on the first (`[CLS]`) token (`pooler.dense`).
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `pooler.dense`.
    pub dense: Linear,
}

impl BertPooler {
    /// # Shapes
    /// `hidden`: `[batch, seq, hidden]` → `[batch, hidden]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, width] = hidden.dims();
        let cls = hidden.narrow(1, 0, 1).reshape([batch, width]);
        self.dense.forward(cls).tanh()
    }
}

/// Outputs of [`BertModel::forward`].
#[derive(Clone, Debug)]
pub struct BertOutputs {
    /// Hidden states of the last layer, `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// Pooled `[CLS]` representation, `[batch, hidden]`.
    pub pooler_output: Tensor<2>,
}

/// The BERT encoder with its pooler (HF `BertModel`).
#[derive(Module, Debug)]
pub struct BertModel {
    /// `embeddings.*`.
    pub embeddings: BertEmbeddings,
    /// `encoder.layer.*`.
    pub encoder: BertEncoder,
    /// `pooler.dense`.
    pub pooler: BertPooler,
}

fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

impl BertModel {
    /// A randomly initialised model of the given architecture (weights are replaced when a
    /// checkpoint is loaded).
    pub fn init(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        let ln = || {
            LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let hidden_dropout = || DropoutConfig::new(config.hidden_dropout_prob).init();
        let embeddings = BertEmbeddings {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: ln(),
            layer_norm_eps: config.layer_norm_eps,
            dropout: hidden_dropout(),
        };
        let layer = (0..config.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: linear(h, h, device),
                        key: linear(h, h, device),
                        value: linear(h, h, device),
                        dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                        num_heads: config.num_attention_heads,
                    },
                    output: BertSelfOutput {
                        dense: linear(h, h, device),
                        layer_norm: ln(),
                        layer_norm_eps: config.layer_norm_eps,
                        dropout: hidden_dropout(),
                    },
                },
                intermediate: BertIntermediate {
                    dense: linear(h, config.intermediate_size, device),
                    act: config.hidden_act,
                },
                output: BertOutput {
                    dense: linear(config.intermediate_size, h, device),
                    layer_norm: ln(),
                    layer_norm_eps: config.layer_norm_eps,
                    dropout: hidden_dropout(),
                },
            })
            .collect();
        Self {
            embeddings,
            encoder: BertEncoder { layer },
            pooler: BertPooler {
                dense: linear(h, h, device),
            },
        }
    }

    /// Encodes a padded batch; padding positions are masked out of attention.
    ///
    /// # Shapes
    /// inputs `[batch, seq]` → `last_hidden_state [batch, seq, hidden]`,
    /// `pooler_output [batch, hidden]`
    pub fn forward(&self, input: BertInput) -> BertOutputs {
        let (x, mask_bias) = self.embed(input);
        let x = self
            .encoder
            .layer
            .iter()
            .fold(x, |x, layer| layer.forward(x, mask_bias.clone()));
        let pooler_output = self.pooler.forward(x.clone());
        BertOutputs {
            last_hidden_state: x,
            pooler_output,
        }
    }

    /// `forward(input).pooler_output` alone, to float rounding (dropout included: the same
    /// entries are dropped), for about 5/6 less of the last layer's work: the pooler reads the
    /// last layer's output at position 0 only, so that layer runs for that position
    /// ([`BertLayer::forward_first`]), and its backward has only that row's gradient to carry.
    ///
    /// # Shapes
    /// inputs `[batch, seq]` → `[batch, hidden]`
    pub fn pooled(&self, input: BertInput) -> Tensor<2> {
        let (mut x, mask_bias) = self.embed(input);
        let layers = self.encoder.layer.len();
        for (i, layer) in self.encoder.layer.iter().enumerate() {
            x = if i + 1 == layers {
                layer.forward_first(x, mask_bias.clone())
            } else {
                layer.forward(x, mask_bias.clone())
            };
        }
        self.pooler.forward(x)
    }

    /// The embeddings' output and the attention mask bias `[batch, 1, 1, seq]`.
    fn embed(&self, input: BertInput) -> (Tensor<3>, Tensor<4>) {
        let [batch, seq] = input.input_ids.dims();
        let mask_bias = (input.attention_mask.float().neg() + 1.0)
            .mul_scalar(MASKED_SCORE)
            .reshape([batch, 1, 1, seq]);
        let x = self
            .embeddings
            .forward(input.input_ids, input.token_type_ids);
        (x, mask_bias)
    }
}

/// A BERT encoder with a sequence-level head (HF `BertForSequenceClassification`):
/// `num_labels` classes, or a single output for regression (STS-B).
#[derive(Module, Debug)]
pub struct BertForSequenceClassification {
    /// The encoder, saved under the `bert.` prefix.
    pub bert: BertModel,
    /// Dropout on the pooled output (training only).
    pub dropout: Dropout,
    /// `classifier`: `[num_labels, hidden]` in PyTorch layout.
    pub classifier: Linear,
}

impl BertForSequenceClassification {
    /// Wraps an encoder with a fresh head: weights ~ N(0, `initializer_range`²) from `seed`,
    /// zero bias (HF `_init_weights`). The draw is made on the host, so it is the same on
    /// every backend.
    pub fn with_fresh_head(
        bert: BertModel,
        config: &BertConfig,
        num_labels: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let h = config.hidden_size;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // A non-finite or negative std is rejected by config validation before we get here.
        let normal = Normal::new(0.0f32, config.initializer_range as f32)
            .unwrap_or_else(|_| unreachable!("initializer_range validated"));
        // Drawn in PyTorch layout [num_labels, hidden], stored transposed as Burn wants.
        let weight: Vec<f32> = (0..num_labels * h)
            .map(|_| normal.sample(&mut rng))
            .collect();
        let weight = transpose_2d(&weight, num_labels, h);
        let weight = Tensor::<2>::from_data(TensorData::new(weight, [h, num_labels]), device);
        let bias = Tensor::<1>::zeros([num_labels], device);
        let classifier = Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        };
        Self {
            bert,
            dropout: DropoutConfig::new(config.classifier_dropout_prob()).init(),
            classifier,
        }
    }

    /// Wraps an encoder with a given head: `weight` `[num_labels, hidden]` (PyTorch layout)
    /// and `bias` `[num_labels]`, as in a `classifier.safetensors` file.
    ///
    /// Returns `None` when the shapes do not fit the encoder.
    pub fn with_head(
        bert: BertModel,
        config: &BertConfig,
        weight: HostTensor,
        bias: HostTensor,
        device: &Device,
    ) -> Option<Self> {
        let [n, h] = weight.shape[..] else {
            return None;
        };
        if h != config.hidden_size || bias.shape != [n] {
            return None;
        }
        let weight = transpose_2d(&weight.data, n, h);
        let weight = Tensor::<2>::from_data(TensorData::new(weight, [h, n]), device);
        let bias = Tensor::<1>::from_data(TensorData::new(bias.data, [n]), device);
        Some(Self {
            bert,
            dropout: DropoutConfig::new(config.classifier_dropout_prob()).init(),
            classifier: Linear {
                weight: Param::from_tensor(weight),
                bias: Some(Param::from_tensor(bias)),
            },
        })
    }

    /// The same model with every dropout probability set to 0, so a forward on an autodiff
    /// device is deterministic (Fisher estimation: gradients in eval mode).
    pub fn without_dropout(mut self) -> Self {
        self.dropout.prob = 0.0;
        self.bert.embeddings.dropout.prob = 0.0;
        for layer in &mut self.bert.encoder.layer {
            layer.attention.self_attention.dropout.prob = 0.0;
            layer.attention.output.dropout.prob = 0.0;
            layer.output.dropout.prob = 0.0;
        }
        self
    }

    /// Number of outputs of the head.
    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }

    /// Logits (or the regression output when `num_labels == 1`).
    ///
    /// # Shapes
    /// inputs `[batch, seq]` → `[batch, num_labels]`
    pub fn forward(&self, input: BertInput) -> Tensor<2> {
        let pooled = self.bert.pooled(input);
        self.classifier
            .forward(crate::dropout::apply(&self.dropout, pooled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().expect("f32 data")
    }

    #[test]
    fn padding_does_not_change_outputs_at_real_positions() {
        let device = device();
        let config = BertConfig::tiny(50);
        let model = BertModel::init(&config, &device);
        let ids = vec![2i64, 17, 5, 33, 3];
        let types = vec![0i64, 0, 0, 1, 1];
        let short = model.forward(BertInput::from_host(
            ids.clone(),
            types.clone(),
            vec![1; 5],
            1,
            5,
            &device,
        ));
        let pad = 4;
        let mut ids_p = ids.clone();
        ids_p.extend([0; 4]);
        let mut types_p = types.clone();
        types_p.extend([0; 4]);
        let mut mask_p = vec![1i64; 5];
        mask_p.extend([0; 4]);
        let long = model.forward(BertInput::from_host(
            ids_p,
            types_p,
            mask_p,
            1,
            5 + pad,
            &device,
        ));
        let h_short = to_vec(short.last_hidden_state);
        let h_long = to_vec(long.last_hidden_state.narrow(1, 0, 5));
        let max_diff = h_short
            .iter()
            .zip(&h_long)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-5, "hidden states changed by {max_diff}");
        let p_diff = to_vec(short.pooler_output)
            .iter()
            .zip(&to_vec(long.pooler_output))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(p_diff < 1e-5, "pooler output changed by {p_diff}");
    }

    #[test]
    fn batch_rows_are_independent() {
        let device = device();
        let config = BertConfig::tiny(50);
        let model = BertModel::init(&config, &device);
        let one = model.forward(BertInput::from_host(
            vec![2, 7, 3],
            vec![0; 3],
            vec![1; 3],
            1,
            3,
            &device,
        ));
        let two = model.forward(BertInput::from_host(
            vec![2, 7, 3, 2, 9, 3],
            vec![0; 6],
            vec![1; 6],
            2,
            3,
            &device,
        ));
        let a = to_vec(one.pooler_output);
        let b = to_vec(two.pooler_output.narrow(0, 0, 1));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    }

    #[test]
    fn dropout_acts_only_in_training() {
        let device = device().autodiff();
        let config = BertConfig::tiny(50);
        let input =
            || BertInput::from_host(vec![2, 7, 8, 3], vec![0; 4], vec![1; 4], 1, 4, &device);
        let model = BertModel::init(&config, &device);
        let train_a = to_vec(model.forward(input()).last_hidden_state);
        let train_b = to_vec(model.forward(input()).last_hidden_state);
        assert_ne!(
            train_a, train_b,
            "training forward passes should differ by dropout"
        );
        let eval = model.valid();
        let eval_input = || {
            BertInput::from_host(
                vec![2, 7, 8, 3],
                vec![0; 4],
                vec![1; 4],
                1,
                4,
                &device.clone().inner(),
            )
        };
        assert_eq!(
            to_vec(eval.forward(eval_input()).last_hidden_state),
            to_vec(eval.forward(eval_input()).last_hidden_state)
        );
    }

    #[test]
    fn fresh_head_is_seeded_and_backend_independent() {
        let config = BertConfig::tiny(50);
        let head = |seed, device: &Device| {
            let m = BertForSequenceClassification::with_fresh_head(
                BertModel::init(&config, device),
                &config,
                3,
                seed,
                device,
            );
            assert_eq!(m.num_labels(), 3);
            to_vec(m.classifier.weight.val())
        };
        let flex = Device::flex();
        #[allow(deprecated)]
        let nd = Device::ndarray();
        assert_eq!(head(7, &flex), head(7, &nd));
        assert_ne!(head(7, &flex), head(8, &flex));
        let w = head(7, &flex);
        let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
        assert!(
            std > 0.005 && std < 0.05,
            "std {std} should be near initializer_range 0.02"
        );
    }
}
