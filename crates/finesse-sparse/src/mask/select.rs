//! Top-k selection over scores, the random baseline's scores, and rule-based masks (BitFit,
//! whole tensors).

use std::collections::BTreeMap;

use finesse_bert::{HostTensor, ParamRegistry, ParamRole};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Budget, Mask, MaskTensor, Scope, Selection, is_head};
use crate::error::{Result, SparseError};

impl Mask {
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
///
/// # Errors
///
/// [`SparseError::Config`] for a bad `--exclude` spec and as [`select_excluding`].
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
///
/// # Errors
///
/// [`SparseError::Config`] for a NaN score, a keep ratio outside [0, 1], a budget that cannot
/// hold the classifier (when it counts inside) or asks for more entries than the model (or the
/// tensors left after exclusion) has.
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
    // Each scope is a partition of the candidate tensors into groups; the budget is apportioned
    // over the groups by size and each group keeps its top entries.
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for name in scores.keys().filter(|n| candidate(n)) {
        groups
            .entry(group_key(sel.scope, name))
            .or_default()
            .push(name);
    }
    let sizes: Vec<(&String, usize)> = groups
        .iter()
        .map(|(g, names)| (g, names.iter().map(|n| scores[*n].numel()).sum()))
        .collect();
    let quotas = apportion(chosen, body, &sizes);
    let mut tensors = BTreeMap::new();
    for (name, t) in scores.iter().filter(|(n, _)| !candidate(n)) {
        let kept = if is_head(name) {
            (0..t.numel() as u32).collect()
        } else {
            Vec::new()
        };
        tensors.insert(
            name.clone(),
            MaskTensor {
                shape: t.shape.clone(),
                kept,
            },
        );
    }
    for (group, names) in &groups {
        let members = names.iter().map(|n| (*n, &scores[*n]));
        tensors.extend(top_k(members, quotas[group]));
    }
    Ok(Mask { tensors })
}

/// The group a candidate tensor competes in under `scope`: one group for a global top-k, the
/// tensor itself per tensor, and per layer its encoder layer (or `embeddings` / `pooler`).
fn group_key(scope: Scope, name: &str) -> String {
    match scope {
        Scope::Global => String::new(),
        Scope::PerTensor => name.to_string(),
        Scope::PerLayer => match finesse_bert::registry::layer_index(name) {
            Some(l) => format!("layer {l:04}"),
            None if name.contains("embeddings.") => "embeddings".to_string(),
            None if name.contains("pooler.") => "pooler".to_string(),
            None => name.to_string(),
        },
    }
}

/// Largest-remainder apportionment of `chosen` entries over groups of the given sizes (out of
/// `body` entries in all), so that the quotas add up to `chosen` exactly and none exceeds its
/// group; ties in the remainders go to the group whose name sorts first.
fn apportion<'a>(
    chosen: usize,
    body: usize,
    sizes: &[(&'a String, usize)],
) -> BTreeMap<&'a String, usize> {
    let ratio = if body == 0 {
        0.0
    } else {
        chosen as f64 / body as f64
    };
    let mut quota = BTreeMap::new();
    let mut remainders = Vec::new();
    for &(group, size) in sizes {
        let exact = ratio * size as f64;
        let floor = (exact.floor() as usize).min(size);
        quota.insert(group, floor);
        remainders.push((exact - floor as f64, group, size));
    }
    let mut left = chosen.saturating_sub(quota.values().sum());
    remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    // The remainders are below 1 and add up to `left`: one pass gives every group at most the
    // one entry it is owed.
    for &(_, group, size) in &remainders {
        if left == 0 {
            break;
        }
        if let Some(q) = quota.get_mut(group)
            && *q < size
        {
            *q += 1;
            left -= 1;
        }
    }
    quota
}

/// The top `k` entries over `members` (tensors in name order): every entry above the k-th
/// largest score, then entries equal to it in (tensor name, flat index) order until `k` are
/// kept.
fn top_k<'a>(
    members: impl Iterator<Item = (&'a String, &'a HostTensor)> + Clone,
    k: usize,
) -> Vec<(String, MaskTensor)> {
    let threshold = kth_largest(members.clone().flat_map(|(_, t)| t.data.iter().copied()), k);
    let above: usize = threshold.map_or(0, |th| {
        members
            .clone()
            .map(|(_, t)| t.data.iter().filter(|&&v| v > th).count())
            .sum()
    });
    let mut ties = k - above;
    members
        .map(|(name, t)| {
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
            (
                name.clone(),
                MaskTensor {
                    shape: t.shape.clone(),
                    kept,
                },
            )
        })
        .collect()
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
    fn per_layer_scope_gives_each_layer_its_share_and_a_top_k_inside() {
        let t = |v: Vec<f32>| HostTensor::new(vec![v.len()], v);
        let mut scores = BTreeMap::new();
        // Layer 0 has the largest scores everywhere: a global top-k would take only from it.
        scores.insert(
            "bert.encoder.layer.0.attention.self.query.weight".to_string(),
            t(vec![9.0, 8.0, 7.0, 6.0]),
        );
        scores.insert(
            "bert.encoder.layer.0.output.dense.bias".to_string(),
            t(vec![9.5, 5.0, 5.0, 5.0]),
        );
        scores.insert(
            "bert.encoder.layer.1.attention.self.query.weight".to_string(),
            t(vec![0.1, 0.4, 0.2, 0.3]),
        );
        scores.insert(
            "bert.encoder.layer.1.output.dense.bias".to_string(),
            t(vec![0.0, 0.0, 0.5, 0.0]),
        );
        scores.insert(
            "bert.pooler.dense.bias".to_string(),
            t(vec![0.0, 1.0, 2.0, 3.0]),
        );
        scores.insert("classifier.bias".to_string(), t(vec![0.0, 0.0]));
        // 20 candidates, 10 chosen (+2 head): 4 per layer, 2 for the pooler.
        let mut s = sel(Budget::Count(12));
        s.scope = Scope::PerLayer;
        let m = select(&scores, &s).expect("select");
        assert_eq!(m.kept(), 12);
        let kept = |n: &str| m.tensors[n].kept.clone();
        assert_eq!(
            kept("bert.encoder.layer.0.attention.self.query.weight"),
            vec![0, 1, 2]
        );
        assert_eq!(kept("bert.encoder.layer.0.output.dense.bias"), vec![0]);
        assert_eq!(
            kept("bert.encoder.layer.1.attention.self.query.weight"),
            vec![1, 2, 3]
        );
        assert_eq!(kept("bert.encoder.layer.1.output.dense.bias"), vec![2]);
        assert_eq!(kept("bert.pooler.dense.bias"), vec![2, 3]);
        assert_eq!(kept("classifier.bias"), vec![0, 1]);
        // The global scope on the same scores keeps layer 0 whole and nothing of layer 1.
        s.scope = Scope::Global;
        let g = select(&scores, &s).expect("select");
        assert!(
            g.tensors["bert.encoder.layer.1.attention.self.query.weight"]
                .kept
                .is_empty()
        );
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
}
