//! The one table between Burn module paths and Hugging Face parameter names.
//!
//! Burn path (dotted field names of [`crate::model`]) → HF name:
//!
//! | Burn segment        | HF segment  | why                                    |
//! |---------------------|-------------|----------------------------------------|
//! | `self_attention`    | `self`      | `self` is a Rust keyword               |
//! | `layer_norm`        | `LayerNorm` | Rust field naming                      |
//! | `layer_norm.gamma`  | `LayerNorm.weight` | Burn's LayerNorm parameter names |
//! | `layer_norm.beta`   | `LayerNorm.bias`   |                                  |
//!
//! Every other segment is spelled as in HF. Linear weights are stored by Burn as `[in, out]`
//! and by PyTorch as `[out, in]`: [`crate::checkpoint`] transposes at that boundary only.

/// Converts a Burn module path (as visited) into the HF parameter name.
pub fn hf_name(path: &[String]) -> String {
    let last = path.len().saturating_sub(1);
    let mut parts = Vec::with_capacity(path.len());
    for (i, segment) in path.iter().enumerate() {
        let in_layer_norm = i > 0 && path[i - 1] == "layer_norm";
        let part = match segment.as_str() {
            "self_attention" => "self",
            "layer_norm" => "LayerNorm",
            "gamma" if i == last && in_layer_norm => "weight",
            "beta" if i == last && in_layer_norm => "bias",
            other => other,
        };
        parts.push(part);
    }
    parts.join(".")
}

/// The position of a module visitor/mapper in the module tree: the Burn path and, for each
/// level, the type of the struct that owns it (Burn enters every field with its owner's type).
#[derive(Debug, Default)]
pub(crate) struct PathStack {
    path: Vec<String>,
    owners: Vec<String>,
}

impl PathStack {
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.owners.push(container_type.to_string());
    }

    pub(crate) fn exit(&mut self) {
        self.path.pop();
        self.owners.pop();
    }

    /// HF name of the parameter at this position.
    pub(crate) fn hf_name(&self) -> String {
        hf_name(&self.path)
    }

    /// True for the 2-D weight of a `burn::nn::Linear`, stored `[in, out]` by Burn and
    /// `[out, in]` by PyTorch.
    pub(crate) fn is_transposed(&self, rank: usize) -> bool {
        rank == 2
            && self.path.last().is_some_and(|p| p == "weight")
            && self.owners.last().is_some_and(|c| c == "Struct:Linear")
    }
}

/// The prefix HF's task models put before the encoder's parameters.
pub const BERT_PREFIX: &str = "bert.";

/// Checkpoint buffers that are not parameters (HF registers them with `persistent=False` in
/// newer versions, older checkpoints still carry them). They are skipped silently.
pub fn is_known_buffer(name: &str) -> bool {
    name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn burn_paths_map_to_hf_names() {
        assert_eq!(
            hf_name(&p("encoder.layer.3.attention.self_attention.query.weight")),
            "encoder.layer.3.attention.self.query.weight"
        );
        assert_eq!(
            hf_name(&p("bert.embeddings.layer_norm.gamma")),
            "bert.embeddings.LayerNorm.weight"
        );
        assert_eq!(
            hf_name(&p("encoder.layer.0.output.layer_norm.beta")),
            "encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(hf_name(&p("classifier.bias")), "classifier.bias");
    }
}
