//! The vocabulary of the sparse options: mask scope, Fisher sample order and kind, prune scope.
//!
//! One enum per option, shared by every front-end: the CLI derives its `--help` values from
//! them (`clap::ValueEnum`, behind this crate's `clap` feature), the run configuration
//! serialises them (kebab-case, the names of `run.json`), and `FromStr` parses the same names
//! (case-insensitive, plus a few historical aliases) for callers that hold strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::UnknownName;

/// Parses `s` (case-insensitively) against `names`, each accepted spelling with its value.
fn parse_name<T: Copy>(
    s: &str,
    option: &'static str,
    expected: &'static str,
    names: &[(&str, T)],
) -> Result<T, UnknownName> {
    let given = s.to_ascii_lowercase();
    names
        .iter()
        .find(|(name, _)| *name == given)
        .map(|&(_, value)| value)
        .ok_or(UnknownName {
            option,
            given,
            expected,
        })
}

/// Where a mask's top-k is taken (`--scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One top-k over all parameters (FISH).
    #[default]
    Global,
    /// The same kept fraction inside every parameter tensor.
    #[cfg_attr(feature = "clap", value(alias = "pertensor", alias = "per_tensor"))]
    PerTensor,
    /// The same kept fraction inside every encoder layer, the embeddings and the pooler; a
    /// top-k inside each (a per-layer quota).
    #[cfg_attr(feature = "clap", value(alias = "perlayer", alias = "per_layer"))]
    PerLayer,
}

impl Scope {
    /// The name in `run.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::PerTensor => "per-tensor",
            Self::PerLayer => "per-layer",
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(
            s,
            "scope",
            "global, per-tensor or per-layer",
            &[
                ("global", Self::Global),
                ("per-tensor", Self::PerTensor),
                ("pertensor", Self::PerTensor),
                ("per_tensor", Self::PerTensor),
                ("per-layer", Self::PerLayer),
                ("perlayer", Self::PerLayer),
                ("per_layer", Self::PerLayer),
            ],
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which training examples a Fisher estimate uses (`--order`, `--fisher-order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum SampleOrder {
    /// The first N examples of the file.
    File,
    /// N examples after a seeded shuffle.
    #[default]
    #[cfg_attr(feature = "clap", value(alias = "shuffle"))]
    Shuffled,
}

impl SampleOrder {
    /// The name in `run.json`, Fisher files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Shuffled => "shuffled",
        }
    }
}

impl FromStr for SampleOrder {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(
            s,
            "sample order",
            "file or shuffled",
            &[
                ("file", Self::File),
                ("shuffled", Self::Shuffled),
                ("shuffle", Self::Shuffled),
            ],
        )
    }
}

impl fmt::Display for SampleOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which diagonal Fisher to estimate, with its settings (serialised in `run.json` as
/// `{"kind": "sampled", "draws": 4}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum FisherKind {
    /// Squared gradient of log p(y_i | x_i) at the true label (the FISH paper's default).
    Empirical,
    /// Σ_y p(y|x) (∇ log p(y|x))², exact over classes.
    Expected,
    /// y drawn from p(y|x), `draws` times per sample.
    Sampled {
        /// Draws per sample.
        draws: usize,
    },
}

impl FisherKind {
    /// Short name (`empirical`, `expected`, `sampled`).
    pub fn name(&self) -> &'static str {
        self.kind_name().name()
    }

    /// The kind without its settings.
    pub fn kind_name(&self) -> FisherKindName {
        match self {
            Self::Empirical => FisherKindName::Empirical,
            Self::Expected => FisherKindName::Expected,
            Self::Sampled { .. } => FisherKindName::Sampled,
        }
    }
}

/// The name of a [`FisherKind`] (`--kind`, `--fisher-kind`); [`FisherKindName::with_draws`]
/// adds the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum FisherKindName {
    /// The true label's squared gradient (the FISH default).
    #[default]
    Empirical,
    /// Exact expectation over the classes.
    Expected,
    /// Labels drawn from the model (`--draws` per sample).
    Sampled,
}

impl FisherKindName {
    /// The name in `run.json`, Fisher files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empirical => "empirical",
            Self::Expected => "expected",
            Self::Sampled => "sampled",
        }
    }

    /// The kind, with `draws` label draws per sample for `sampled` (ignored by the others).
    pub fn with_draws(self, draws: usize) -> FisherKind {
        match self {
            Self::Empirical => FisherKind::Empirical,
            Self::Expected => FisherKind::Expected,
            Self::Sampled => FisherKind::Sampled { draws },
        }
    }
}

impl FromStr for FisherKindName {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(
            s,
            "Fisher kind",
            "empirical, expected or sampled",
            &[
                ("empirical", Self::Empirical),
                ("expected", Self::Expected),
                ("sampled", Self::Sampled),
            ],
        )
    }
}

impl fmt::Display for FisherKindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the magnitude-pruning threshold is taken (`--prune-scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum PruneScope {
    /// The same sparsity in every matrix (the paper).
    #[default]
    PerMatrix,
    /// One magnitude threshold over all target matrices.
    Global,
}

impl PruneScope {
    /// The name in `run.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::PerMatrix => "per-matrix",
            Self::Global => "global",
        }
    }
}

impl FromStr for PruneScope {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(
            s,
            "prune scope",
            "per-matrix or global",
            &[("per-matrix", Self::PerMatrix), ("global", Self::Global)],
        )
    }
}

impl fmt::Display for PruneScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of `run.json` (serde), of `FromStr` and of `Display` are one vocabulary.
    #[test]
    fn serde_fromstr_and_display_agree() {
        fn check<T>(values: &[T])
        where
            T: Serialize + FromStr<Err = UnknownName> + fmt::Display + PartialEq + fmt::Debug,
        {
            for v in values {
                let json = serde_json::to_value(v).expect("json");
                assert_eq!(json, serde_json::Value::from(v.to_string()));
                assert_eq!(&v.to_string().parse::<T>().expect("parse"), v);
                assert_eq!(
                    &v.to_string().to_uppercase().parse::<T>().expect("parse"),
                    v
                );
            }
        }
        check(&[Scope::Global, Scope::PerTensor, Scope::PerLayer]);
        check(&[SampleOrder::File, SampleOrder::Shuffled]);
        check(&[
            FisherKindName::Empirical,
            FisherKindName::Expected,
            FisherKindName::Sampled,
        ]);
        check(&[PruneScope::PerMatrix, PruneScope::Global]);
    }

    #[test]
    fn aliases_parse_and_unknown_names_list_the_values() {
        assert_eq!("per_tensor".parse::<Scope>(), Ok(Scope::PerTensor));
        assert_eq!("Per-Layer".parse::<Scope>(), Ok(Scope::PerLayer));
        assert_eq!("Shuffle".parse::<SampleOrder>(), Ok(SampleOrder::Shuffled));
        let err = "Sideways".parse::<Scope>().expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "unknown scope `sideways` (expected global, per-tensor or per-layer)"
        );
        let err = "fast".parse::<FisherKindName>().expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "unknown Fisher kind `fast` (expected empirical, expected or sampled)"
        );
    }

    #[test]
    fn fisher_kinds_serialise_as_in_run_json() {
        let k = FisherKindName::Sampled.with_draws(4);
        assert_eq!(k, FisherKind::Sampled { draws: 4 });
        assert_eq!(
            serde_json::to_string(&k).expect("json"),
            r#"{"kind":"sampled","draws":4}"#
        );
        assert_eq!(
            serde_json::to_string(&FisherKind::Empirical).expect("json"),
            r#"{"kind":"empirical"}"#
        );
        assert_eq!(k.kind_name(), FisherKindName::Sampled);
        assert_eq!(FisherKindName::Expected.with_draws(9), FisherKind::Expected);
    }
}
