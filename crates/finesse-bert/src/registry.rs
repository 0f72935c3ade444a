//! The parameter registry: every parameter of a model with its HF name, PyTorch-layout shape,
//! layer, kind and Burn [`ParamId`]. Masks, Fisher scores, optimizers, distances and sparse
//! diffs key on it.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use serde::Serialize;

use crate::names::{BERT_PREFIX, PathStack};

/// What a parameter is, in the vocabulary of "How fine can fine-tuning be?" (WQ … WO).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// WQ: `attention.self.query`.
    Query,
    /// WK: `attention.self.key`.
    Key,
    /// WV: `attention.self.value`.
    Value,
    /// WD: `attention.output.dense`.
    AttentionOutput,
    /// WI: `intermediate.dense`.
    Intermediate,
    /// WO: `output.dense`.
    Output,
    /// `embeddings.word_embeddings`.
    WordEmbedding,
    /// `embeddings.position_embeddings`.
    PositionEmbedding,
    /// `embeddings.token_type_embeddings`.
    TokenTypeEmbedding,
    /// Any `LayerNorm` (embeddings, attention output, layer output).
    LayerNorm,
    /// `pooler.dense`.
    Pooler,
    /// The task head, `classifier`.
    Classifier,
}

impl ParamKind {
    /// The paper's matrix label (WQ, WK, WV, WD, WI, WO) for the six per-layer matrices.
    pub fn matrix_label(self) -> Option<&'static str> {
        match self {
            Self::Query => Some("WQ"),
            Self::Key => Some("WK"),
            Self::Value => Some("WV"),
            Self::AttentionOutput => Some("WD"),
            Self::Intermediate => Some("WI"),
            Self::Output => Some("WO"),
            _ => None,
        }
    }

    /// Classifies an HF parameter name (with or without the `bert.` prefix).
    pub fn of_hf_name(name: &str) -> Option<Self> {
        let n = name.strip_prefix(BERT_PREFIX).unwrap_or(name);
        let kind = if n.starts_with("classifier.") {
            Self::Classifier
        } else if n.contains("LayerNorm.") {
            Self::LayerNorm
        } else if n.starts_with("embeddings.word_embeddings.") {
            Self::WordEmbedding
        } else if n.starts_with("embeddings.position_embeddings.") {
            Self::PositionEmbedding
        } else if n.starts_with("embeddings.token_type_embeddings.") {
            Self::TokenTypeEmbedding
        } else if n.starts_with("pooler.dense.") {
            Self::Pooler
        } else if n.contains(".attention.self.query.") {
            Self::Query
        } else if n.contains(".attention.self.key.") {
            Self::Key
        } else if n.contains(".attention.self.value.") {
            Self::Value
        } else if n.contains(".attention.output.dense.") {
            Self::AttentionOutput
        } else if n.contains(".intermediate.dense.") {
            Self::Intermediate
        } else if n.contains(".output.dense.") {
            Self::Output
        } else {
            return None;
        };
        Some(kind)
    }
}

/// Whether a parameter is a weight (matrix, embedding table, LayerNorm scale) or a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamRole {
    /// `*.weight`.
    Weight,
    /// `*.bias`.
    Bias,
}

/// One parameter of a model.
#[derive(Clone, Debug, Serialize)]
pub struct ParamInfo {
    /// HF parameter name, e.g. `bert.encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// Shape in PyTorch layout (Linear weights `[out, in]`).
    pub shape: Vec<usize>,
    /// Number of entries.
    pub numel: usize,
    /// Encoder layer index, `None` for embeddings, pooler and classifier.
    pub layer: Option<usize>,
    /// What the parameter is.
    pub kind: ParamKind,
    /// Weight or bias.
    pub role: ParamRole,
    /// True when Burn stores it transposed relative to PyTorch (Linear weights, `[in, out]`).
    pub transposed: bool,
    /// The Burn parameter id (changes with every load; not serialised).
    #[serde(skip)]
    pub id: ParamId,
}

/// All parameters of a model, in module order, addressable by HF name and by [`ParamId`].
#[derive(Clone, Debug, Default)]
pub struct ParamRegistry {
    params: Vec<ParamInfo>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<ParamId, usize>,
}

impl ParamRegistry {
    /// Walks a model made of [`crate::model`] modules.
    ///
    /// # Panics
    /// If the model holds a parameter whose name is not a BERT parameter name: that is a bug in
    /// this crate's module layout, not bad input.
    pub fn of<M: Module>(model: &M) -> Self {
        let mut walker = Walker::default();
        model.visit(&mut walker);
        let mut registry = Self::default();
        for info in walker.found {
            registry
                .by_name
                .insert(info.name.clone(), registry.params.len());
            registry.by_id.insert(info.id, registry.params.len());
            registry.params.push(info);
        }
        registry
    }

    /// Parameters in module order.
    pub fn iter(&self) -> impl Iterator<Item = &ParamInfo> {
        self.params.iter()
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when the model has no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Looks a parameter up by HF name.
    pub fn by_name(&self, name: &str) -> Option<&ParamInfo> {
        self.by_name.get(name).map(|&i| &self.params[i])
    }

    /// Looks a parameter up by Burn id.
    pub fn by_id(&self, id: &ParamId) -> Option<&ParamInfo> {
        self.by_id.get(id).map(|&i| &self.params[i])
    }

    /// Total number of scalar parameters.
    pub fn total_numel(&self) -> usize {
        self.params.iter().map(|p| p.numel).sum()
    }
}

#[derive(Default)]
struct Walker {
    at: PathStack,
    found: Vec<ParamInfo>,
}

impl ModuleVisitor for Walker {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.at.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Burn enters every field with the type of the struct that owns it, so the parameter's
        // own entry says which module holds it.
        let name = self.at.hf_name();
        let is_weight = name.ends_with(".weight");
        let transposed = self.at.is_transposed(D);
        let mut shape = param.lazy_shape().to_vec();
        if transposed {
            shape.reverse();
        }
        let kind = ParamKind::of_hf_name(&name)
            .unwrap_or_else(|| panic!("parameter `{name}` is not part of the BERT layout"));
        let layer = layer_index(&name);
        self.found.push(ParamInfo {
            numel: shape.iter().product(),
            shape,
            layer,
            kind,
            role: if is_weight {
                ParamRole::Weight
            } else {
                ParamRole::Bias
            },
            transposed,
            id: param.id,
            name,
        });
    }
}

/// `encoder.layer.N.` → `Some(N)`.
pub fn layer_index(name: &str) -> Option<usize> {
    let rest = name.split("encoder.layer.").nth(1)?;
    rest.split('.').next()?.parse().ok()
}
