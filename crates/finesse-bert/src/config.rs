//! [`BertConfig`]: the Hugging Face `config.json` of a BERT checkpoint, read and validated.
//!
//! Upstream: `transformers/models/bert/configuration_bert.py` (`BertConfig`) and
//! `configuration_utils.py` (`PretrainedConfig`, whose generic keys are accepted here).

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{BertError, Result};

/// Activation of the intermediate (WI) layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HiddenAct {
    /// Exact GELU, `x·Φ(x)` with the error function (HF `gelu`).
    Gelu,
    /// Tanh approximation of GELU (HF `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// ReLU (HF `relu`).
    Relu,
    /// SiLU / swish (HF `silu`, `swish`).
    Silu,
}

impl HiddenAct {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    /// The HF spelling written back to `config.json`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_new",
            Self::Relu => "relu",
            Self::Silu => "silu",
        }
    }
}

/// Architecture of a BERT encoder, as in HF `BertConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state (H).
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the intermediate (WI) layer.
    pub intermediate_size: usize,
    /// Activation after WI.
    pub hidden_act: HiddenAct,
    /// Dropout probability on embeddings and residual branches (training only).
    pub hidden_dropout_prob: f64,
    /// Dropout probability on attention probabilities (training only).
    pub attention_probs_dropout_prob: f64,
    /// Rows of the absolute position-embedding table (longest input).
    pub max_position_embeddings: usize,
    /// Rows of the token-type (segment) embedding table.
    pub type_vocab_size: usize,
    /// Standard deviation of freshly initialised weights (e.g. a new classifier head).
    pub initializer_range: f64,
    /// Epsilon of every LayerNorm.
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    pub pad_token_id: usize,
    /// Dropout before the classifier; `None` means `hidden_dropout_prob` (HF convention).
    pub classifier_dropout: Option<f64>,
    /// The `config.json` object as read, so that saving keeps every field of the original.
    pub raw: Map<String, Value>,
}

/// Keys of HF `PretrainedConfig` (and common tooling) that do not change a BERT encoder's
/// computation; they are accepted and carried through to a saved `config.json`.
const GENERIC_KEYS: &[&str] = &[
    "architectures",
    "model_type",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "gradient_checkpointing",
    "use_cache",
    "id2label",
    "label2id",
    "num_labels",
    "problem_type",
    "finetuning_task",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "torchscript",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "cls_token_id",
    "mask_token_id",
    "unk_token_id",
    "decoder_start_token_id",
    "tokenizer_class",
    "prefix",
    "task_specific_params",
    "pruned_heads",
    "chunk_size_feed_forward",
    "directionality",
    "pooler_fc_size",
    "pooler_num_attention_heads",
    "pooler_num_fc_layers",
    "pooler_size_per_head",
    "pooler_type",
    "output_past",
    "is_encoder_decoder",
    "tie_encoder_decoder",
    "add_pooling_layer",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_last_dropout",
    "label_smoothing",
];

impl BertConfig {
    /// Reads and validates `config.json`.
    ///
    /// # Errors
    ///
    /// [`BertError::Io`] when the file cannot be read, [`BertError::ConfigJson`] when it is not
    /// JSON, and the errors of [`BertConfig::from_map`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BertError::io("reading", path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| BertError::ConfigJson {
            path: path.to_path_buf(),
            source,
        })?;
        let Value::Object(map) = value else {
            return Err(BertError::config(
                "<root>",
                format!("{} is not a JSON object", path.display()),
            ));
        };
        Self::from_map(map)
    }

    /// Validates a parsed `config.json` object.
    ///
    /// # Errors
    ///
    /// [`BertError::Config`] naming the field that is missing, mistyped, out of range, not
    /// supported, or unknown (an architecture change finesse would otherwise ignore).
    pub fn from_map(raw: Map<String, Value>) -> Result<Self> {
        if let Some(t) = raw.get("model_type") {
            let t = t
                .as_str()
                .ok_or_else(|| BertError::config("model_type", "must be a string"))?;
            if t != "bert" {
                return Err(BertError::config(
                    "model_type",
                    format!("`{t}` is not supported (finesse implements `bert`)"),
                ));
            }
        }
        for key in raw.keys() {
            if !KNOWN_BERT_KEYS.contains(&key.as_str())
                && !GENERIC_KEYS.contains(&key.as_str())
                && !key.starts_with('_')
            {
                return Err(BertError::config(
                    key,
                    "unknown setting for a BERT model; finesse would ignore it, which could \
                     silently change the architecture (remove it if it is only informational)",
                ));
            }
        }
        for flag in ["is_decoder", "add_cross_attention"] {
            if raw.get(flag).and_then(Value::as_bool) == Some(true) {
                return Err(BertError::config(
                    flag,
                    "decoder BERT models are not supported",
                ));
            }
        }
        if let Some(p) = raw.get("position_embedding_type") {
            let p = p
                .as_str()
                .ok_or_else(|| BertError::config("position_embedding_type", "must be a string"))?;
            if p != "absolute" {
                return Err(BertError::config(
                    "position_embedding_type",
                    format!("`{p}` is not supported (only `absolute`)"),
                ));
            }
        }
        let act_name = get_str(&raw, "hidden_act", Some("gelu"))?;
        let hidden_act = HiddenAct::parse(&act_name).ok_or_else(|| {
            BertError::config(
                "hidden_act",
                format!(
                    "`{act_name}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, \
                     silu, swish)"
                ),
            )
        })?;
        let classifier_dropout = match raw.get("classifier_dropout") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                BertError::config("classifier_dropout", "must be a number or null")
            })?),
        };
        let config = Self {
            vocab_size: get_usize(&raw, "vocab_size", None)?,
            hidden_size: get_usize(&raw, "hidden_size", Some(768))?,
            num_hidden_layers: get_usize(&raw, "num_hidden_layers", Some(12))?,
            num_attention_heads: get_usize(&raw, "num_attention_heads", Some(12))?,
            intermediate_size: get_usize(&raw, "intermediate_size", Some(3072))?,
            hidden_act,
            hidden_dropout_prob: get_f64(&raw, "hidden_dropout_prob", Some(0.1))?,
            attention_probs_dropout_prob: get_f64(&raw, "attention_probs_dropout_prob", Some(0.1))?,
            max_position_embeddings: get_usize(&raw, "max_position_embeddings", Some(512))?,
            type_vocab_size: get_usize(&raw, "type_vocab_size", Some(2))?,
            initializer_range: get_f64(&raw, "initializer_range", Some(0.02))?,
            layer_norm_eps: get_f64(&raw, "layer_norm_eps", Some(1e-12))?,
            pad_token_id: get_usize(&raw, "pad_token_id", Some(0))?,
            classifier_dropout,
            raw,
        };
        config.validate()?;
        Ok(config)
    }

    /// A small random-weight configuration for tests: 2 layers, hidden 32, 4 heads.
    pub fn tiny(vocab_size: usize) -> Self {
        let raw = serde_json::json!({
            "model_type": "bert",
            "architectures": ["BertModel"],
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 64,
            "type_vocab_size": 2,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "position_embedding_type": "absolute"
        });
        let Value::Object(map) = raw else {
            unreachable!("a json! object literal")
        };
        // The literal above is valid by construction; a failure here is a bug in this file.
        Self::from_map(map).expect("tiny config is valid")
    }

    fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(BertError::config(field, "must be positive"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(BertError::config(
                "num_attention_heads",
                format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        for (field, other, size) in [
            ("vocab_size", "hidden_size", self.vocab_size),
            (
                "max_position_embeddings",
                "hidden_size",
                self.max_position_embeddings,
            ),
            ("type_vocab_size", "hidden_size", self.type_vocab_size),
            ("intermediate_size", "hidden_size", self.intermediate_size),
            ("hidden_size", "hidden_size", self.hidden_size),
        ] {
            let entries = size.checked_mul(self.hidden_size);
            if entries.is_none_or(|n| n > MAX_TENSOR_ENTRIES) {
                return Err(BertError::config(
                    field,
                    format!(
                        "{field} {size} × {other} {} is more than {MAX_TENSOR_ENTRIES} entries \
                         in one weight tensor",
                        self.hidden_size
                    ),
                ));
            }
        }
        let mut probabilities = vec![
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ];
        if let Some(p) = self.classifier_dropout {
            probabilities.push(("classifier_dropout", p));
        }
        for (field, p) in probabilities {
            // The model computes in f32: 0.99999999999 would round to a dropout of 1.
            if !(p >= 0.0 && (p as f32) < 1.0) {
                return Err(BertError::config(
                    field,
                    format!("{p} is not a probability in [0, 1) (as a 32-bit float)"),
                ));
            }
        }
        let initializer_range = finite_f32("initializer_range", self.initializer_range)?;
        if initializer_range <= 0.0 {
            return Err(BertError::config(
                "initializer_range",
                format!(
                    "{} must be positive (as a 32-bit float: {initializer_range})",
                    self.initializer_range
                ),
            ));
        }
        let eps = finite_f32("layer_norm_eps", self.layer_norm_eps)?;
        if !(eps > 0.0 && eps < 1.0) {
            return Err(BertError::config(
                "layer_norm_eps",
                format!(
                    "{} must be in (0, 1) (as a 32-bit float: {eps})",
                    self.layer_norm_eps
                ),
            ));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(BertError::config(
                "pad_token_id",
                format!(
                    "{} is outside the vocabulary ({})",
                    self.pad_token_id, self.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Dropout applied before the classifier head.
    pub fn classifier_dropout_prob(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// The `config.json` to save next to a model with a `num_labels`-way head (or none).
    pub fn to_json(&self, num_labels: Option<usize>) -> Value {
        let mut map = self.raw.clone();
        map.insert("model_type".into(), "bert".into());
        map.insert("hidden_act".into(), self.hidden_act.hf_name().into());
        if let Some(n) = num_labels {
            map.insert(
                "architectures".into(),
                serde_json::json!(["BertForSequenceClassification"]),
            );
            let id2label: Map<String, Value> = (0..n)
                .map(|i| (i.to_string(), Value::from(format!("LABEL_{i}"))))
                .collect();
            let label2id: Map<String, Value> = (0..n)
                .map(|i| (format!("LABEL_{i}"), Value::from(i)))
                .collect();
            // Keep label names the original config gave, if they describe the same head.
            let same_size = map
                .get("id2label")
                .and_then(Value::as_object)
                .is_some_and(|m| m.len() == n);
            if !same_size {
                map.insert("id2label".into(), Value::Object(id2label));
                map.insert("label2id".into(), Value::Object(label2id));
            }
            if n == 1 {
                map.insert("problem_type".into(), "regression".into());
            }
        }
        Value::Object(map)
    }

    /// The `config.json` of the encoder a fine-tuned model came from (`finesse diff revert`):
    /// the file as read without the head's keys (`num_labels`, `id2label`, `label2id`,
    /// `problem_type`) and with `architectures` = `["BertModel"]`.
    pub fn base_model_json(&self) -> Value {
        let mut map = self.raw.clone();
        for key in HEAD_KEYS {
            map.remove(*key);
        }
        map.insert("architectures".into(), serde_json::json!(["BertModel"]));
        Value::Object(map)
    }
}

/// The keys of `config.json` that describe a task head rather than the encoder.
const HEAD_KEYS: &[&str] = &["num_labels", "id2label", "label2id", "problem_type"];

/// The most entries one weight tensor may have: 2³¹ − 1, far above any BERT checkpoint, and
/// the limit of 32-bit indexing on GPU backends.
const MAX_TENSOR_ENTRIES: usize = i32::MAX as usize;

/// `value` narrowed to the f32 the model computes in, or an error naming `field` when it does
/// not fit (e.g. 1e39 becomes infinity).
fn finite_f32(field: &str, value: f64) -> Result<f32> {
    let narrowed = value as f32;
    if narrowed.is_finite() {
        Ok(narrowed)
    } else {
        Err(BertError::config(
            field,
            format!("{value} is not a finite 32-bit float"),
        ))
    }
}

/// The BERT-specific keys this implementation reads.
const KNOWN_BERT_KEYS: &[&str] = &[
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "position_embedding_type",
    "classifier_dropout",
    "is_decoder",
    "add_cross_attention",
];

fn get_usize(raw: &Map<String, Value>, field: &str, default: Option<usize>) -> Result<usize> {
    match raw.get(field) {
        None => default.ok_or_else(|| BertError::config(field, "is required")),
        Some(v) => v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| {
                BertError::config(field, format!("must be a non-negative integer, got {v}"))
            }),
    }
}

fn get_f64(raw: &Map<String, Value>, field: &str, default: Option<f64>) -> Result<f64> {
    match raw.get(field) {
        None => default.ok_or_else(|| BertError::config(field, "is required")),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| BertError::config(field, format!("must be a number, got {v}"))),
    }
}

fn get_str(raw: &Map<String, Value>, field: &str, default: Option<&str>) -> Result<String> {
    match raw.get(field) {
        None => default
            .map(str::to_string)
            .ok_or_else(|| BertError::config(field, "is required")),
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| BertError::config(field, format!("must be a string, got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_map() -> Map<String, Value> {
        BertConfig::tiny(100).raw
    }

    fn error_field(map: Map<String, Value>) -> String {
        match BertConfig::from_map(map) {
            Err(BertError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn tiny_config_is_valid_and_round_trips_through_json() {
        let c = BertConfig::tiny(100);
        assert_eq!(c.head_dim(), 8);
        let Value::Object(map) = c.to_json(None) else {
            panic!("object")
        };
        assert_eq!(BertConfig::from_map(map).expect("valid"), c);
    }

    #[test]
    fn base_model_json_drops_the_head_and_keeps_everything_else() {
        let c = BertConfig::tiny(100);
        let Value::Object(tuned) = c.to_json(Some(3)) else {
            panic!("object")
        };
        let tuned = BertConfig::from_map(tuned).expect("valid");
        let Value::Object(base) = tuned.base_model_json() else {
            panic!("object")
        };
        for key in HEAD_KEYS {
            assert!(!base.contains_key(*key), "{key}");
        }
        assert_eq!(base["architectures"], serde_json::json!(["BertModel"]));
        let mut want = c.raw.clone();
        want.insert("architectures".into(), serde_json::json!(["BertModel"]));
        assert_eq!(base, want);
    }

    #[test]
    fn hidden_size_not_divisible_by_heads_names_the_field() {
        let mut m = tiny_map();
        m.insert("num_attention_heads".into(), 5.into());
        assert_eq!(error_field(m), "num_attention_heads");
    }

    #[test]
    fn unsupported_activation_names_the_field() {
        let mut m = tiny_map();
        m.insert("hidden_act".into(), "quick_gelu".into());
        assert_eq!(error_field(m), "hidden_act");
    }

    #[test]
    fn relative_positions_are_rejected() {
        let mut m = tiny_map();
        m.insert("position_embedding_type".into(), "relative_key".into());
        assert_eq!(error_field(m), "position_embedding_type");
    }

    #[test]
    fn unknown_setting_is_an_error_naming_it() {
        let mut m = tiny_map();
        m.insert("embedding_size".into(), 128.into());
        assert_eq!(error_field(m), "embedding_size");
    }

    #[test]
    fn wrong_types_and_missing_fields_are_named() {
        let mut m = tiny_map();
        m.insert("hidden_size".into(), "big".into());
        assert_eq!(error_field(m), "hidden_size");
        let mut m = tiny_map();
        m.remove("vocab_size");
        assert_eq!(error_field(m), "vocab_size");
        let mut m = tiny_map();
        m.insert("layer_norm_eps".into(), 0.0.into());
        assert_eq!(error_field(m), "layer_norm_eps");
        let mut m = tiny_map();
        m.insert("model_type".into(), "roberta".into());
        assert_eq!(error_field(m), "model_type");
        let mut m = tiny_map();
        m.insert("is_decoder".into(), true.into());
        assert_eq!(error_field(m), "is_decoder");
    }

    #[test]
    fn values_that_do_not_fit_f32_or_their_range_name_the_field() {
        let cases: &[(&str, Value)] = &[
            ("initializer_range", 1e39.into()),
            ("initializer_range", 0.0.into()),
            ("initializer_range", (-0.02).into()),
            ("initializer_range", 1e-50.into()),
            ("layer_norm_eps", 1e-50.into()),
            ("layer_norm_eps", 1e39.into()),
            ("layer_norm_eps", 1.0.into()),
            ("layer_norm_eps", (-1e-12).into()),
            ("hidden_dropout_prob", 1.0.into()),
            ("hidden_dropout_prob", 0.999_999_999_9.into()),
            ("hidden_dropout_prob", (-0.1).into()),
            ("attention_probs_dropout_prob", 1e39.into()),
            ("classifier_dropout", 1.5.into()),
            ("classifier_dropout", (-0.5).into()),
            ("hidden_size", 0.into()),
            ("hidden_size", (-32).into()),
            ("hidden_size", 32.5.into()),
            ("num_hidden_layers", 0.into()),
            ("intermediate_size", 0.into()),
            ("vocab_size", 0.into()),
            ("vocab_size", u64::MAX.into()),
            ("max_position_embeddings", 0.into()),
            ("max_position_embeddings", (1u64 << 40).into()),
            ("type_vocab_size", 0.into()),
            ("num_attention_heads", 0.into()),
            ("num_attention_heads", 64.into()),
            ("pad_token_id", 100.into()),
        ];
        for (field, value) in cases {
            let mut m = tiny_map();
            m.insert((*field).into(), value.clone());
            let err = BertConfig::from_map(m).expect_err(&format!("{field} = {value}"));
            match &err {
                BertError::Config { field: f, .. } => {
                    assert_eq!(f, field, "{field} = {value}: {err}")
                }
                other => panic!("{field} = {value}: {other:?}"),
            }
        }
    }

    #[test]
    fn boundary_values_in_range_are_accepted() {
        let mut m = tiny_map();
        m.insert("hidden_dropout_prob".into(), 0.0.into());
        m.insert("attention_probs_dropout_prob".into(), 0.9.into());
        m.insert("classifier_dropout".into(), Value::Null);
        m.insert("initializer_range".into(), 1e-30.into());
        m.insert("layer_norm_eps".into(), 1e-30.into());
        let c = BertConfig::from_map(m).expect("valid");
        assert_eq!(c.classifier_dropout, None);
    }

    #[test]
    fn gelu_variants_parse() {
        for (name, act) in [
            ("gelu", HiddenAct::Gelu),
            ("gelu_new", HiddenAct::GeluTanh),
            ("gelu_pytorch_tanh", HiddenAct::GeluTanh),
            ("relu", HiddenAct::Relu),
            ("swish", HiddenAct::Silu),
        ] {
            let mut m = tiny_map();
            m.insert("hidden_act".into(), name.into());
            assert_eq!(BertConfig::from_map(m).expect("valid").hidden_act, act);
        }
    }
}
