//! Sparse masks: which entries of which parameters a run updates.
//!
//! A [`Mask`] holds, for every parameter (HF name, PyTorch layout), the sorted flat indices of
//! its kept entries. Masks come from a top-k over scores ([`select`]: Fisher scores for FISH,
//! seeded uniform scores for the random baseline) or from a rule (BitFit: every bias). Files:
//! a readable form (one u8 0/1 tensor per parameter, PyTorch shape) and a bit-packed form (one
//! u8 tensor of ⌈numel/8⌉ bytes per parameter, bits least-significant first, as
//! `numpy.packbits(bitorder="little")`), both with HF names.

use std::collections::BTreeMap;
use std::path::Path;

use finesse_bert::{HostTensor, ParamKind, ParamRegistry, ParamRole};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseError};
use crate::files::{RawTensor, read_raw, write_raw};
use crate::grid::{CellParams, GridSums, LayerGrid};

/// Version of the mask file format (`format_version` in the metadata).
pub const MASK_FORMAT_VERSION: &str = "1";

/// The kept entries of one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskTensor {
    /// Shape in PyTorch layout.
    pub shape: Vec<usize>,
    /// Sorted, distinct flat (row-major, PyTorch layout) indices of the kept entries.
    pub kept: Vec<u32>,
}

impl MaskTensor {
    /// Number of entries.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when every entry is kept.
    pub fn is_full(&self) -> bool {
        self.kept.len() == self.numel()
    }

    /// The mask as 0/1 bytes, row-major.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.numel()];
        for &i in &self.kept {
            out[i as usize] = 1;
        }
        out
    }

    /// The mask packed 8 entries per byte, least-significant bit first.
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.numel().div_ceil(8)];
        for &i in &self.kept {
            out[i as usize / 8] |= 1 << (i % 8);
        }
        out
    }
}

/// How many entries to keep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    /// A fraction of all parameters (e.g. 0.005 for FISH's 0.5%).
    Ratio(f64),
    /// A number of entries.
    Count(usize),
}

/// Where the top-k is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One top-k over all parameters (FISH).
    #[default]
    Global,
    /// The same kept fraction inside every parameter tensor.
    PerTensor,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "global" => Ok(Self::Global),
            "per-tensor" | "pertensor" | "per_tensor" => Ok(Self::PerTensor),
            other => Err(format!(
                "unknown scope `{other}` (expected global or per-tensor)"
            )),
        }
    }
}

/// A top-k selection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// How many entries to keep.
    pub budget: Budget,
    /// Global or per tensor.
    pub scope: Scope,
    /// Count the always-kept classifier inside the budget (the FISH convention, default).
    pub head_in_budget: bool,
    /// Parameter groups set aside (`--exclude`, the `--freeze` spec syntax of
    /// [`crate::freeze`]): they keep nothing and the budget goes to the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// True for the task head, which every mask keeps whole.
pub fn is_head(name: &str) -> bool {
    name.starts_with("classifier.")
}

/// A mask over a model's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Mask {
    /// Every parameter by HF name (parameters with nothing kept have an empty `kept`).
    pub tensors: BTreeMap<String, MaskTensor>,
}

impl Mask {
    /// Kept entries over all parameters.
    pub fn kept(&self) -> usize {
        self.tensors.values().map(|t| t.kept.len()).sum()
    }

    /// All entries.
    pub fn total(&self) -> usize {
        self.tensors.values().map(MaskTensor::numel).sum()
    }

    /// A mask keeping every entry of the parameters `keep` accepts (BitFit, dense).
    pub fn whole_tensors(
        registry: &ParamRegistry,
        keep: impl Fn(&finesse_bert::ParamInfo) -> bool,
    ) -> Self {
        let tensors = registry
            .iter()
            .map(|p| {
                let kept = if keep(p) {
                    (0..p.numel as u32).collect()
                } else {
                    Vec::new()
                };
                (
                    p.name.clone(),
                    MaskTensor {
                        shape: p.shape.clone(),
                        kept,
                    },
                )
            })
            .collect();
        Self { tensors }
    }

    /// BitFit: every bias (LayerNorm biases included) and the task head.
    pub fn bitfit(registry: &ParamRegistry) -> Self {
        Self::whole_tensors(registry, |p| p.role == ParamRole::Bias || is_head(&p.name))
    }

    /// Checks that the mask covers exactly the parameters of `registry` with their shapes.
    pub fn check_against(&self, registry: &ParamRegistry, source: &str) -> Result<()> {
        for p in registry.iter() {
            match self.tensors.get(&p.name) {
                None => {
                    return Err(SparseError::Mismatch(format!(
                        "{source}: no mask for parameter `{}`",
                        p.name
                    )));
                }
                Some(t) if t.shape != p.shape => {
                    return Err(SparseError::Mismatch(format!(
                        "{source}: mask of `{}` has shape {:?}, the model's is {:?}",
                        p.name, t.shape, p.shape
                    )));
                }
                _ => {}
            }
        }
        if let Some(extra) = self.tensors.keys().find(|n| registry.by_name(n).is_none()) {
            return Err(SparseError::Mismatch(format!(
                "{source}: mask has `{extra}`, which the model does not have"
            )));
        }
        Ok(())
    }

    /// Writes the mask: one u8 tensor per parameter, 0/1 in its PyTorch shape, or with
    /// `packed` the bit-packed form. `extra` goes into the metadata too.
    pub fn write(&self, path: &Path, packed: bool, extra: &BTreeMap<String, String>) -> Result<()> {
        let mut tensors = BTreeMap::new();
        let mut shapes = BTreeMap::new();
        for (name, t) in &self.tensors {
            let raw = if packed {
                RawTensor::u8(vec![t.numel().div_ceil(8)], t.to_packed())
            } else {
                RawTensor::u8(t.shape.clone(), t.to_bytes())
            };
            tensors.insert(name.clone(), raw);
            shapes.insert(name.clone(), t.shape.clone());
        }
        let mut meta = extra.clone();
        meta.insert("format".into(), "finesse-mask".into());
        meta.insert("format_version".into(), MASK_FORMAT_VERSION.into());
        meta.insert(
            "packing".into(),
            if packed { "bits-lsb-first" } else { "none" }.into(),
        );
        meta.insert("kept".into(), self.kept().to_string());
        meta.insert("total".into(), self.total().to_string());
        if packed {
            meta.insert(
                "shapes".into(),
                serde_json::to_string(&shapes).unwrap_or_default(),
            );
        }
        write_raw(path, &tensors, &meta)
    }

    /// Reads a mask in either form. A u8 (or bool) tensor file without finesse metadata is
    /// read as the readable form, so masks made by other tools load too.
    pub fn read(path: &Path) -> Result<Self> {
        let file = read_raw(path)?;
        let bad = |name: &str, problem: String| SparseError::Tensor {
            path: path.to_path_buf(),
            name: name.to_string(),
            problem,
        };
        if let Some(v) = file.metadata.get("format_version")
            && v != MASK_FORMAT_VERSION
        {
            return Err(SparseError::File {
                path: path.to_path_buf(),
                problem: format!(
                    "mask format version {v}; this finesse reads version {MASK_FORMAT_VERSION}"
                ),
            });
        }
        let packed = match file.metadata.get("packing").map(String::as_str) {
            None | Some("none") => false,
            Some("bits-lsb-first") => true,
            Some(other) => {
                return Err(SparseError::File {
                    path: path.to_path_buf(),
                    problem: format!("unknown mask packing `{other}`"),
                });
            }
        };
        let shapes: BTreeMap<String, Vec<usize>> = if packed {
            serde_json::from_str(file.meta(path, "shapes")?).map_err(|e| SparseError::File {
                path: path.to_path_buf(),
                problem: format!("metadata `shapes` is not valid: {e}"),
            })?
        } else {
            BTreeMap::new()
        };
        let mut tensors = BTreeMap::new();
        for (name, raw) in &file.tensors {
            if !matches!(raw.dtype, safetensors::Dtype::U8 | safetensors::Dtype::BOOL) {
                return Err(bad(name, format!("dtype {:?}, expected U8 0/1", raw.dtype)));
            }
            let t = if packed {
                let shape = shapes
                    .get(name)
                    .ok_or_else(|| bad(name, "no shape in the metadata `shapes`".into()))?
                    .clone();
                let numel: usize = shape.iter().product();
                if raw.bytes.len() != numel.div_ceil(8) {
                    return Err(bad(
                        name,
                        format!(
                            "{} packed bytes for {numel} entries (expected {})",
                            raw.bytes.len(),
                            numel.div_ceil(8)
                        ),
                    ));
                }
                let mut kept = Vec::new();
                for (byte_i, &b) in raw.bytes.iter().enumerate() {
                    for bit in 0..8 {
                        if b >> bit & 1 == 1 {
                            let i = byte_i * 8 + bit;
                            if i >= numel {
                                return Err(bad(
                                    name,
                                    "padding bits past the last entry are set".into(),
                                ));
                            }
                            kept.push(i as u32);
                        }
                    }
                }
                MaskTensor { shape, kept }
            } else {
                let mut kept = Vec::new();
                for (i, &b) in raw.bytes.iter().enumerate() {
                    match b {
                        0 => {}
                        1 => kept.push(i as u32),
                        v => {
                            return Err(bad(
                                name,
                                format!("value {v} at entry {i}; a mask holds 0 or 1"),
                            ));
                        }
                    }
                }
                MaskTensor {
                    shape: raw.shape.clone(),
                    kept,
                }
            };
            tensors.insert(name.clone(), t);
        }
        if packed && let Some(missing) = shapes.keys().find(|n| !tensors.contains_key(*n)) {
            return Err(bad(missing, "listed in `shapes` but absent".into()));
        }
        Ok(Self { tensors })
    }
}

/// Number of entries chosen by score (the head excluded) for a budget over `scores`, of which
/// `candidates` entries may be chosen.
fn chosen_count(
    scores: &BTreeMap<String, HostTensor>,
    sel: &Selection,
    candidates: usize,
) -> Result<usize> {
    let total: usize = scores.values().map(HostTensor::numel).sum();
    let head: usize = scores
        .iter()
        .filter(|(n, _)| is_head(n))
        .map(|(_, t)| t.numel())
        .sum();
    let body = total - head;
    let k_total = match sel.budget {
        Budget::Ratio(r) => {
            if !(0.0..=1.0).contains(&r) {
                return Err(SparseError::Config {
                    field: "keep-ratio",
                    problem: format!("{r} is not within [0, 1]"),
                });
            }
            let base = if sel.head_in_budget { total } else { body };
            (r * base as f64).floor() as usize
        }
        Budget::Count(k) => k,
    };
    let chosen =
        if sel.head_in_budget {
            k_total.checked_sub(head).ok_or_else(|| SparseError::Config {
            field: "keep budget",
            problem: format!(
                "{k_total} entries cannot hold the classifier's {head}, which is always kept \
                 (raise the budget or do not count the head in it)"
            ),
        })?
        } else {
            k_total
        };
    if chosen > body {
        return Err(SparseError::Config {
            field: "keep budget",
            problem: format!("{chosen} entries asked for, the model has {body} outside the head"),
        });
    }
    if chosen > candidates {
        return Err(SparseError::Config {
            field: "keep budget",
            problem: format!(
                "{chosen} entries asked for, only {candidates} are left once the excluded \
                 tensors are set aside"
            ),
        });
    }
    Ok(chosen)
}

/// Top-k of `scores` (HF names, PyTorch layout): the classifier is always kept whole; the
/// other entries compete for the budget. Ties are broken deterministically: at equal score
/// the entry of the tensor whose name sorts first, then the lower flat index, is kept. The
/// result keeps exactly the budget (see [`Selection::head_in_budget`]).
/// The tensors of [`Selection::exclude`] keep nothing (see [`select_excluding`]).
pub fn select(scores: &BTreeMap<String, HostTensor>, sel: &Selection) -> Result<Mask> {
    let specs = crate::freeze::parse_all(&sel.exclude)?;
    let layers = crate::freeze::num_layers(scores.keys().map(String::as_str));
    select_excluding(scores, sel, |n| {
        specs.iter().any(|s| s.matches_name(n, layers))
    })
}

/// [`select`] with some tensors set aside: the tensors for which `excluded(name)` is true keep
/// nothing (the head is never excluded) and the budget, still counted over all parameters, goes
/// to the others. With all-MiniLM-L6-v2, for instance, a global FISH top-k spends most of its
/// budget on the pooler, which the checkpoint ships untrained (bias 0); `--exclude pooler` moves
/// that budget into the encoder.
pub fn select_excluding(
    scores: &BTreeMap<String, HostTensor>,
    sel: &Selection,
    excluded: impl Fn(&str) -> bool,
) -> Result<Mask> {
    let candidate = |n: &str| !is_head(n) && !excluded(n);
    for (name, t) in scores {
        if let Some(i) = t.data.iter().position(|v| v.is_nan()) {
            return Err(SparseError::Config {
                field: "scores",
                problem: format!("`{name}` has NaN at entry {i}"),
            });
        }
    }
    let body: usize = scores
        .iter()
        .filter(|(n, _)| candidate(n))
        .map(|(_, t)| t.numel())
        .sum();
    let chosen = chosen_count(scores, sel, body)?;
    let mut tensors = BTreeMap::new();
    match sel.scope {
        Scope::Global => {
            let threshold = kth_largest(
                scores
                    .iter()
                    .filter(|(n, _)| candidate(n))
                    .flat_map(|(_, t)| t.data.iter().copied()),
                chosen,
            );
            let above: usize = threshold.map_or(0, |th| {
                scores
                    .iter()
                    .filter(|(n, _)| candidate(n))
                    .map(|(_, t)| t.data.iter().filter(|&&v| v > th).count())
                    .sum()
            });
            let mut ties = chosen - above;
            for (name, t) in scores {
                let kept = if is_head(name) {
                    (0..t.numel() as u32).collect()
                } else if !candidate(name) {
                    Vec::new()
                } else {
                    let mut kept = Vec::new();
                    if let Some(th) = threshold {
                        for (i, &v) in t.data.iter().enumerate() {
                            if v > th {
                                kept.push(i as u32);
                            } else if v == th && ties > 0 {
                                ties -= 1;
                                kept.push(i as u32);
                            }
                        }
                    }
                    kept
                };
                tensors.insert(
                    name.clone(),
                    MaskTensor {
                        shape: t.shape.clone(),
                        kept,
                    },
                );
            }
        }
        Scope::PerTensor => {
            let ratio = if body == 0 {
                0.0
            } else {
                chosen as f64 / body as f64
            };
            // Largest-remainder apportionment: the per-tensor counts add up to `chosen`.
            let mut quota: BTreeMap<&String, usize> = BTreeMap::new();
            let mut remainders = Vec::new();
            for (name, t) in scores.iter().filter(|(n, _)| candidate(n)) {
                let exact = ratio * t.numel() as f64;
                let floor = (exact.floor() as usize).min(t.numel());
                quota.insert(name, floor);
                remainders.push((exact - floor as f64, name));
            }
            let mut left = chosen.saturating_sub(quota.values().sum());
            remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            for (_, name) in remainders {
                if left == 0 {
                    break;
                }
                if let Some(q) = quota.get_mut(name)
                    && *q < scores[name].numel()
                {
                    *q += 1;
                    left -= 1;
                }
            }
            for (name, t) in scores {
                let kept = if is_head(name) {
                    (0..t.numel() as u32).collect()
                } else {
                    let k = quota.get(name).copied().unwrap_or(0);
                    let mut order: Vec<u32> = (0..t.numel() as u32).collect();
                    if k > 0 && k < order.len() {
                        order.select_nth_unstable_by(k - 1, |&a, &b| {
                            t.data[b as usize]
                                .total_cmp(&t.data[a as usize])
                                .then(a.cmp(&b))
                        });
                    }
                    let mut kept: Vec<u32> = order.into_iter().take(k).collect();
                    kept.sort_unstable();
                    kept
                };
                tensors.insert(
                    name.clone(),
                    MaskTensor {
                        shape: t.shape.clone(),
                        kept,
                    },
                );
            }
        }
    }
    Ok(Mask { tensors })
}

/// The k-th largest value (1-based), or `None` for k = 0.
fn kth_largest(values: impl Iterator<Item = f32>, k: usize) -> Option<f32> {
    if k == 0 {
        return None;
    }
    let mut all: Vec<f32> = values.collect();
    let (_, kth, _) = all.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    Some(*kth)
}

/// Seeded uniform scores with the shapes of `registry`: the random-mask baseline is the top-k
/// of these, so it keeps exactly as many entries as FISH at the same budget.
pub fn random_scores(registry: &ParamRegistry, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x005e_ed0f_4a4d);
    let mut names: Vec<&finesse_bert::ParamInfo> = registry.iter().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    names
        .into_iter()
        .map(|p| {
            let data: Vec<f32> = (0..p.numel).map(|_| rng.random::<f32>()).collect();
            (p.name.clone(), HostTensor::new(p.shape.clone(), data))
        })
        .collect()
}

/// Kept entries of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptCount {
    /// Kept entries.
    pub kept: usize,
    /// All entries.
    pub total: usize,
    /// `kept / total`.
    pub fraction: f64,
}

impl KeptCount {
    fn new(kept: usize, total: usize) -> Self {
        Self {
            kept,
            total,
            fraction: if total == 0 {
                0.0
            } else {
                kept as f64 / total as f64
            },
        }
    }
}

/// Mask statistics: per tensor, per layer × matrix (WQ … WO, weight and bias together) and
/// per parameter kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskStats {
    /// The whole model.
    pub overall: KeptCount,
    /// Per parameter, by HF name.
    pub per_tensor: BTreeMap<String, KeptCount>,
    /// Per layer × matrix (weight and bias together) and per group outside the layers.
    #[serde(flatten)]
    pub grid: LayerGrid<KeptCount>,
    /// Per parameter kind (word-embedding, layer-norm, classifier, …).
    pub per_kind: BTreeMap<String, KeptCount>,
}

/// Statistics of a mask; the layer × matrix grid is built from the parameter names.
pub fn stats(mask: &Mask) -> MaskStats {
    let mut per_tensor = BTreeMap::new();
    let mut grid = GridSums::<(usize, usize)>::new(CellParams::WeightAndBias);
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (name, t) in &mask.tensors {
        per_tensor.insert(name.clone(), KeptCount::new(t.kept.len(), t.numel()));
        let kind = ParamKind::of_hf_name(name);
        let kind_name = kind.map_or_else(
            || "other".to_string(),
            |k| {
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{k:?}"))
            },
        );
        let e = kinds.entry(kind_name).or_default();
        e.0 += t.kept.len();
        e.1 += t.numel();
        grid.add(name, |e| {
            e.0 += t.kept.len();
            e.1 += t.numel();
        });
    }
    MaskStats {
        overall: KeptCount::new(mask.kept(), mask.total()),
        per_tensor,
        grid: grid.finish(|&(k, n)| KeptCount::new(k, n)),
        per_kind: kinds
            .into_iter()
            .map(|(k, (kept, total))| (k, KeptCount::new(kept, total)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> BTreeMap<String, HostTensor> {
        let mut s = BTreeMap::new();
        s.insert(
            "bert.a.weight".to_string(),
            HostTensor::new(vec![2, 3], vec![0.5, 0.1, 0.9, 0.1, 0.3, 0.1]),
        );
        s.insert(
            "bert.b.bias".to_string(),
            HostTensor::new(vec![4], vec![0.1, 0.7, 0.0, 0.2]),
        );
        s.insert(
            "classifier.weight".to_string(),
            HostTensor::new(vec![1, 2], vec![0.0, 0.0]),
        );
        s
    }

    fn sel(budget: Budget) -> Selection {
        Selection {
            budget,
            scope: Scope::Global,
            head_in_budget: true,
            exclude: Vec::new(),
        }
    }

    #[test]
    fn global_top_k_keeps_the_head_and_exactly_the_budget() {
        // 12 entries; count 6 with the head's 2 inside → 4 chosen: 0.9, 0.7, 0.5, 0.3.
        let m = select(&scores(), &sel(Budget::Count(6))).expect("select");
        assert_eq!(m.kept(), 6);
        assert_eq!(m.tensors["bert.a.weight"].kept, vec![0, 2, 4]);
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![1]);
        assert_eq!(m.tensors["classifier.weight"].kept, vec![0, 1]);
    }

    #[test]
    fn ties_are_broken_by_name_then_index() {
        // 6 chosen: 0.9 0.7 0.5 0.3 0.2, then one of the four 0.1s: bert.a.weight entry 1.
        let m = select(&scores(), &sel(Budget::Count(8))).expect("select");
        assert_eq!(m.kept(), 8);
        assert_eq!(m.tensors["bert.a.weight"].kept, vec![0, 1, 2, 4]);
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![1, 3]);
        let again = select(&scores(), &sel(Budget::Count(8))).expect("select");
        assert_eq!(m, again);
    }

    #[test]
    fn ratio_budget_floors_and_the_head_can_stay_outside() {
        // floor(0.5 · 12) = 6 with the head inside; floor(0.5 · 10) = 5 chosen + 2 head outside.
        let m = select(&scores(), &sel(Budget::Ratio(0.5))).expect("select");
        assert_eq!(m.kept(), 6);
        let mut s = sel(Budget::Ratio(0.5));
        s.head_in_budget = false;
        assert_eq!(select(&scores(), &s).expect("select").kept(), 7);
    }

    #[test]
    fn budget_smaller_than_the_head_is_an_error() {
        let err = select(&scores(), &sel(Budget::Count(1)))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("classifier"), "{err}");
        let err = select(&scores(), &sel(Budget::Ratio(1.5)))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("keep-ratio"), "{err}");
    }

    #[test]
    fn per_tensor_scope_keeps_the_same_fraction_everywhere() {
        let mut s = sel(Budget::Count(7)); // 5 chosen of 10 → half of each tensor
        s.scope = Scope::PerTensor;
        let m = select(&scores(), &s).expect("select");
        assert_eq!(m.tensors["bert.a.weight"].kept, vec![0, 2, 4]);
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![1, 3]);
        // 4 chosen: quotas 2.4 and 1.6 → 2 + 2 by largest remainder, still exactly 4.
        let mut s = sel(Budget::Count(6));
        s.scope = Scope::PerTensor;
        let m = select(&scores(), &s).expect("select");
        assert_eq!(m.kept(), 6);
        assert_eq!(m.tensors["bert.a.weight"].kept, vec![0, 2]);
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![1, 3]);
    }

    #[test]
    fn excluded_tensors_keep_nothing_and_the_budget_moves_to_the_others() {
        let not_a = |n: &str| n == "bert.a.weight";
        // Count 6, head 2 inside → 4 chosen, all from bert.b.bias (which has exactly 4).
        let m = select_excluding(&scores(), &sel(Budget::Count(6)), not_a).expect("select");
        assert_eq!(m.kept(), 6);
        assert!(m.tensors["bert.a.weight"].kept.is_empty());
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![0, 1, 2, 3]);
        assert_eq!(m.tensors["classifier.weight"].kept, vec![0, 1]);
        // The ratio still counts every parameter: floor(0.25 · 12) = 3 → 1 chosen.
        let m = select_excluding(&scores(), &sel(Budget::Ratio(0.25)), not_a).expect("select");
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![1]);
        let mut s = sel(Budget::Count(4));
        s.scope = Scope::PerTensor;
        let m = select_excluding(&scores(), &s, not_a).expect("select");
        assert_eq!(m.tensors["bert.b.bias"].kept, vec![1, 3]);
        // More than the candidates hold: a clear error, not a silently smaller mask.
        let err = select_excluding(&scores(), &sel(Budget::Count(7)), not_a)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("excluded"), "{err}");
        // The head is never excluded, even by a rule that names it.
        let m = select_excluding(&scores(), &sel(Budget::Count(3)), |n| n != "bert.a.weight")
            .expect("select");
        assert_eq!(m.tensors["classifier.weight"].kept, vec![0, 1]);
        assert_eq!(m.tensors["bert.a.weight"].kept, vec![2]);
    }

    #[test]
    fn nan_scores_are_rejected() {
        let mut s = scores();
        s.get_mut("bert.b.bias").expect("b").data[2] = f32::NAN;
        let err = select(&s, &sel(Budget::Count(6)))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("bert.b.bias") && err.contains("NaN"), "{err}");
    }

    #[test]
    fn both_file_forms_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = select(&scores(), &sel(Budget::Count(8))).expect("select");
        for packed in [false, true] {
            let path = dir.path().join(format!("m{packed}.safetensors"));
            m.write(&path, packed, &BTreeMap::new()).expect("write");
            assert_eq!(Mask::read(&path).expect("read"), m);
        }
        // Packed: 6 entries in one byte; bits 0,1,2,4 → 0b10111.
        let raw = read_raw(&dir.path().join("mtrue.safetensors")).expect("raw");
        assert_eq!(raw.tensors["bert.a.weight"].bytes, vec![0b10111]);

        let path = dir.path().join("mfalse.safetensors");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 2]).expect("truncate");
        let err = Mask::read(&path).expect_err("must fail").to_string();
        assert!(
            err.contains("mfalse.safetensors") && err.contains("not a valid"),
            "{err}"
        );

        let mut t = BTreeMap::new();
        t.insert("x".to_string(), RawTensor::u8(vec![2], vec![0, 2]));
        write_raw(&path, &t, &BTreeMap::new()).expect("write");
        let err = Mask::read(&path).expect_err("must fail").to_string();
        assert!(err.contains("`x`") && err.contains("value 2"), "{err}");
    }

    #[test]
    fn stats_group_by_layer_and_matrix() {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "bert.encoder.layer.1.attention.self.key.weight".to_string(),
            MaskTensor {
                shape: vec![2, 2],
                kept: vec![0],
            },
        );
        tensors.insert(
            "bert.encoder.layer.1.attention.self.key.bias".to_string(),
            MaskTensor {
                shape: vec![2],
                kept: vec![0, 1],
            },
        );
        let s = stats(&Mask { tensors });
        assert_eq!(s.grid.num_layers(), 2);
        assert_eq!(s.grid.matrices[1], "WK");
        assert_eq!(s.grid.layers[1][1].kept, 3);
        assert_eq!(s.grid.layers[1][1].total, 6);
        assert_eq!(s.grid.layers[0][1].total, 0);
        assert_eq!(s.overall.kept, 3);
    }
}

/// How two masks' dropped (not kept) entries overlap, per layer × matrix and overall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    /// Entries dropped by both.
    pub both: usize,
    /// Entries dropped by the first.
    pub first: usize,
    /// Entries dropped by the second.
    pub second: usize,
    /// `both / first`: the share of the first mask's dropped entries the second also drops.
    pub of_first: f64,
    /// `both / |union|` (Jaccard index of the dropped sets).
    pub jaccard: f64,
}

impl Overlap {
    fn new(both: usize, first: usize, second: usize) -> Self {
        let union = first + second - both;
        Self {
            both,
            first,
            second,
            of_first: if first == 0 {
                0.0
            } else {
                both as f64 / first as f64
            },
            jaccard: if union == 0 {
                0.0
            } else {
                both as f64 / union as f64
            },
        }
    }
}

/// Overlap report: overall, per tensor and per layer × matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapReport {
    /// Over all shared tensors.
    pub overall: Overlap,
    /// Per tensor by HF name.
    pub per_tensor: BTreeMap<String, Overlap>,
    /// Per layer × matrix (weights only) and per group outside the layers.
    #[serde(flatten)]
    pub grid: LayerGrid<Overlap>,
}

/// Overlap of the dropped entries of `a` and `b` over the tensors both masks have (same shapes).
pub fn overlap(a: &Mask, b: &Mask) -> Result<OverlapReport> {
    let mut per_tensor = BTreeMap::new();
    let mut grid = GridSums::<(usize, usize, usize)>::new(CellParams::WeightOnly);
    let (mut both_all, mut first_all, mut second_all) = (0, 0, 0);
    for (name, ta) in &a.tensors {
        let Some(tb) = b.tensors.get(name) else {
            continue;
        };
        if ta.shape != tb.shape {
            return Err(SparseError::Mismatch(format!(
                "`{name}` has shape {:?} in the first mask and {:?} in the second",
                ta.shape, tb.shape
            )));
        }
        let n = ta.numel();
        let kept_a = ta.to_bytes();
        let kept_b = tb.to_bytes();
        let both = kept_a
            .iter()
            .zip(&kept_b)
            .filter(|(x, y)| **x == 0 && **y == 0)
            .count();
        let (first, second) = (n - ta.kept.len(), n - tb.kept.len());
        per_tensor.insert(name.clone(), Overlap::new(both, first, second));
        both_all += both;
        first_all += first;
        second_all += second;
        grid.add(name, |e| {
            e.0 += both;
            e.1 += first;
            e.2 += second;
        });
    }
    Ok(OverlapReport {
        overall: Overlap::new(both_all, first_all, second_all),
        per_tensor,
        grid: grid.finish(|&(b, f, s)| Overlap::new(b, f, s)),
    })
}

/// The mask magnitude pruning would give `weights` with, in each tensor of `like` that
/// `weights` also has, as many
/// entries dropped as `like` drops there (smallest |w| first, ties by lower index). Comparing it
/// with `like` through [`overlap`] gives the paper's Table 4 overlap row.
pub fn magnitude_like(like: &Mask, weights: &BTreeMap<String, HostTensor>) -> Result<Mask> {
    let mut tensors = BTreeMap::new();
    for (name, t) in &like.tensors {
        // Tensors the model lacks (a task head against a base model) are left out.
        let Some(w) = weights.get(name) else {
            continue;
        };
        if w.shape != t.shape {
            return Err(SparseError::Mismatch(format!(
                "`{name}` has shape {:?} in the weights and {:?} in the mask",
                w.shape, t.shape
            )));
        }
        let drop = t.numel() - t.kept.len();
        let mut order: Vec<u32> = (0..t.numel() as u32).collect();
        order.sort_by(|&a, &b| {
            w.data[a as usize]
                .abs()
                .total_cmp(&w.data[b as usize].abs())
                .then(a.cmp(&b))
        });
        let mut kept: Vec<u32> = order.into_iter().skip(drop).collect();
        kept.sort_unstable();
        tensors.insert(
            name.clone(),
            MaskTensor {
                shape: t.shape.clone(),
                kept,
            },
        );
    }
    Ok(Mask { tensors })
}

#[cfg(test)]
mod overlap_tests {
    use super::*;

    fn m(kept: &[u32]) -> Mask {
        Mask {
            tensors: BTreeMap::from([(
                "bert.encoder.layer.0.attention.self.query.weight".to_string(),
                MaskTensor {
                    shape: vec![2, 2],
                    kept: kept.to_vec(),
                },
            )]),
        }
    }

    #[test]
    fn overlap_counts_shared_dropped_entries() {
        // Dropped: a {1, 2, 3}, b {2, 3} → both 2, union 3.
        let r = overlap(&m(&[0]), &m(&[0, 1])).expect("overlap");
        assert_eq!(
            (r.overall.both, r.overall.first, r.overall.second),
            (2, 3, 2)
        );
        assert!((r.overall.of_first - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.overall.jaccard - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.grid.layers[0][0], r.overall);
    }

    #[test]
    fn magnitude_like_drops_the_smallest_weights() {
        let w = BTreeMap::from([(
            "bert.encoder.layer.0.attention.self.query.weight".to_string(),
            HostTensor::new(vec![2, 2], vec![0.5, -0.1, 0.3, 0.05]),
        )]);
        // The mask drops two entries → magnitude drops |0.05| (3) and |-0.1| (1).
        let mag = magnitude_like(&m(&[0, 2]), &w).expect("magnitude");
        assert_eq!(
            mag.tensors["bert.encoder.layer.0.attention.self.query.weight"].kept,
            vec![0, 2]
        );
        assert_eq!(
            overlap(&m(&[0, 2]), &mag)
                .expect("overlap")
                .overall
                .of_first,
            1.0
        );
    }
}
