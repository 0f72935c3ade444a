//! L0-close fine-tuning ("How fine can fine-tuning be?", Table 3): parameter groups that stay
//! frozen, by preset, matrix kind × layer selection, or regex over HF names.
//!
//! Spec syntax (`--freeze SPEC`, repeatable):
//! - `wq`, `wk`, `wv`, `wd`, `wi`, `wo` (or `query`, `key`, `value`, `attention-output`,
//!   `intermediate`, `output`): that matrix (weight and bias) in every layer;
//! - `MATRIX@LAYERS`, e.g. `wk@0-2` or `wi@5`: that matrix in the listed layers;
//! - `deepest:N`: every parameter of the deepest N encoder layers; `layers:0,3-5`: of those;
//! - `word-embeddings`, `embeddings` (word, position, token type and their LayerNorm),
//!   `pooler`, `layer-norms`;
//! - `regex:PATTERN`: every parameter whose HF name matches.
//!
//! The classifier head is never frozen by a preset (only an explicit regex can freeze it).

use finesse_bert::registry::layer_index;
use finesse_bert::{ParamInfo, ParamKind};
use regex::Regex;

use crate::error::{Result, SparseError};

/// One parsed `--freeze` spec.
#[derive(Clone, Debug)]
pub enum FreezeSpec {
    /// A matrix kind in some layers (`None`: all).
    Matrix(ParamKind, Option<Vec<usize>>),
    /// The deepest N encoder layers.
    Deepest(usize),
    /// These encoder layers.
    Layers(Vec<usize>),
    /// Word embeddings only.
    WordEmbeddings,
    /// All embeddings and their LayerNorm.
    Embeddings,
    /// The pooler.
    Pooler,
    /// Every LayerNorm.
    LayerNorms,
    /// HF names matching a regex.
    Regex(Regex),
}

fn bad(spec: &str, problem: impl Into<String>) -> SparseError {
    SparseError::Config {
        field: "freeze",
        problem: format!("`{spec}`: {}", problem.into()),
    }
}

fn matrix(name: &str) -> Option<ParamKind> {
    Some(match name {
        "wq" | "query" => ParamKind::Query,
        "wk" | "key" => ParamKind::Key,
        "wv" | "value" => ParamKind::Value,
        "wd" | "attention-output" => ParamKind::AttentionOutput,
        "wi" | "intermediate" => ParamKind::Intermediate,
        "wo" | "output" => ParamKind::Output,
        _ => return None,
    })
}

/// `0,3-5` → [0, 3, 4, 5].
fn layer_list(spec: &str, list: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(spec, format!("`{s}` is not a layer number")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(spec, format!("empty range {a}-{b}")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

impl FreezeSpec {
    /// Parses one spec (see the module docs).
    ///
    /// # Errors
    ///
    /// [`SparseError::Config`] quoting the spec when it is not one of the forms above (an unknown
    /// group, a bad layer list, an invalid regex).
    pub fn parse(spec: &str) -> Result<Self> {
        let s = spec.trim();
        if let Some(pattern) = s.strip_prefix("regex:") {
            return Regex::new(pattern)
                .map(Self::Regex)
                .map_err(|e| bad(spec, e.to_string()));
        }
        let lower = s.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("deepest:") {
            return n
                .parse()
                .map(Self::Deepest)
                .map_err(|_| bad(spec, "expected deepest:N"));
        }
        if let Some(list) = lower.strip_prefix("layers:") {
            return Ok(Self::Layers(layer_list(spec, list)?));
        }
        if let Some((m, list)) = lower.split_once('@') {
            let kind = matrix(m).ok_or_else(|| bad(spec, format!("unknown matrix `{m}`")))?;
            return Ok(Self::Matrix(kind, Some(layer_list(spec, list)?)));
        }
        if let Some(kind) = matrix(&lower) {
            return Ok(Self::Matrix(kind, None));
        }
        Ok(match lower.as_str() {
            "word-embeddings" => Self::WordEmbeddings,
            "embeddings" => Self::Embeddings,
            "pooler" => Self::Pooler,
            "layer-norms" | "layernorms" => Self::LayerNorms,
            _ => {
                return Err(bad(
                    spec,
                    "expected wq|wk|wv|wd|wi|wo[@LAYERS], deepest:N, layers:LIST, \
                     word-embeddings, embeddings, pooler, layer-norms or regex:PATTERN",
                ));
            }
        })
    }

    /// True when the spec freezes `p` in a model with `num_layers` encoder layers.
    pub fn matches(&self, p: &ParamInfo, num_layers: usize) -> bool {
        self.matches_name(&p.name, num_layers)
    }

    /// True when the spec covers the parameter named `name` (HF name) in a model with
    /// `num_layers` encoder layers; what the name does not classify only a regex can match.
    pub fn matches_name(&self, name: &str, num_layers: usize) -> bool {
        if let Self::Regex(r) = self {
            return r.is_match(name);
        }
        let Some(kind) = ParamKind::of_hf_name(name) else {
            return false;
        };
        let layer = layer_index(name);
        match self {
            Self::Regex(_) => unreachable!("handled above"),
            _ if kind == ParamKind::Classifier => false,
            Self::Matrix(k, layers) => {
                kind == *k
                    && layers
                        .as_ref()
                        .is_none_or(|ls| layer.is_some_and(|l| ls.contains(&l)))
            }
            Self::Deepest(n) => layer.is_some_and(|l| l + n >= num_layers),
            Self::Layers(ls) => layer.is_some_and(|l| ls.contains(&l)),
            Self::WordEmbeddings => kind == ParamKind::WordEmbedding,
            Self::Embeddings => {
                matches!(
                    kind,
                    ParamKind::WordEmbedding
                        | ParamKind::PositionEmbedding
                        | ParamKind::TokenTypeEmbedding
                ) || (kind == ParamKind::LayerNorm && name.contains("embeddings."))
            }
            Self::Pooler => kind == ParamKind::Pooler,
            Self::LayerNorms => kind == ParamKind::LayerNorm,
        }
    }
}

/// Encoder layers of a model, from its parameter names (1 + the largest `encoder.layer.N`).
pub fn num_layers<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names
        .into_iter()
        .filter_map(layer_index)
        .max()
        .map_or(0, |l| l + 1)
}

/// Parses every spec, failing on the first bad one.
///
/// # Errors
///
/// As [`FreezeSpec::parse`], for the first bad spec.
pub fn parse_all(specs: &[String]) -> Result<Vec<FreezeSpec>> {
    specs.iter().map(|s| FreezeSpec::parse(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use finesse_bert::{BertConfig, BertForSequenceClassification, BertModel, ParamRegistry};

    fn registry() -> ParamRegistry {
        let device = Device::flex();
        let config = BertConfig::tiny(50);
        ParamRegistry::of(&BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        ))
    }

    fn frozen(spec: &str) -> Vec<String> {
        let r = registry();
        let s = FreezeSpec::parse(spec).expect("parse");
        r.iter()
            .filter(|p| s.matches(p, 2))
            .map(|p| p.name.clone())
            .collect()
    }

    #[test]
    fn presets_select_what_they_name() {
        assert_eq!(
            frozen("key"),
            [
                "bert.encoder.layer.0.attention.self.key.weight",
                "bert.encoder.layer.0.attention.self.key.bias",
                "bert.encoder.layer.1.attention.self.key.weight",
                "bert.encoder.layer.1.attention.self.key.bias",
            ]
        );
        assert_eq!(frozen("WK@1").len(), 2);
        assert!(frozen("deepest:1").iter().all(|n| n.contains("layer.1.")));
        assert_eq!(frozen("deepest:1").len(), 16);
        assert_eq!(frozen("layers:0-1").len(), 32);
        assert_eq!(
            frozen("word-embeddings"),
            ["bert.embeddings.word_embeddings.weight"]
        );
        assert_eq!(frozen("embeddings").len(), 5);
        assert!(
            frozen("layer-norms")
                .iter()
                .all(|n| n.contains("LayerNorm"))
        );
        assert_eq!(frozen("regex:^classifier\\.").len(), 2);
        assert!(
            frozen("deepest:9")
                .iter()
                .all(|n| !n.starts_with("classifier"))
        );
    }

    #[test]
    fn bad_specs_are_named() {
        for spec in ["deepest:x", "wz", "wq@3-1", "regex:(", "layers:a"] {
            let err = FreezeSpec::parse(spec).expect_err("must fail").to_string();
            assert!(err.contains(spec), "{err}");
        }
    }

    #[test]
    fn specs_apply_to_bare_names() {
        let r = registry();
        assert_eq!(num_layers(r.iter().map(|p| p.name.as_str())), 2);
        let spec = |s: &str| FreezeSpec::parse(s).expect("parse");
        assert!(spec("pooler").matches_name("bert.pooler.dense.weight", 6));
        assert!(spec("wk@1").matches_name("bert.encoder.layer.1.attention.self.key.bias", 6));
        assert!(!spec("wk@1").matches_name("bert.encoder.layer.0.attention.self.key.bias", 6));
        assert!(spec("deepest:2").matches_name("bert.encoder.layer.4.output.dense.weight", 6));
        assert!(!spec("deepest:2").matches_name("bert.encoder.layer.3.output.dense.weight", 6));
        assert!(!spec("deepest:9").matches_name("classifier.weight", 6));
        // A name the registry does not know: only a regex can match it.
        assert!(!spec("pooler").matches_name("something.else", 6));
        assert!(spec("regex:else$").matches_name("something.else", 6));
    }
}
