//! Distances between two models of one architecture ("How fine can fine-tuning be?", Table 2):
//! per tensor and per layer × matrix (WQ, WK, WV, WD, WI, WO weights) plus the embeddings and
//! the pooler, as L1 distance, mean absolute change, angular distance arccos(cos θ)/π (0.5 for
//! independent random vectors), L0 (entries that differ) and relative L2 ‖a − b‖/‖a‖.
//!
//! [`vs_random`] measures the same quantities between two independent random initialisations of
//! the same shapes (uniform and normal within ±1/√H, H the hidden size), drawn with a seed, so a
//! fine-tuned model can be read against what "unrelated" looks like.

use std::collections::BTreeMap;

use finesse_bert::HostTensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseError};
use crate::grid::{CellParams, GridSums, LayerGrid};

/// Sums from which every distance follows; they add up across tensors of a group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sums {
    n: usize,
    l0: usize,
    l1: f64,
    dot: f64,
    aa: f64,
    bb: f64,
    dd: f64,
}

impl Sums {
    fn of(a: &[f32], b: &[f32]) -> Self {
        let mut s = Self {
            n: a.len(),
            ..Self::default()
        };
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x as f64, y as f64);
            let d = y - x;
            s.l0 += usize::from(x != y);
            s.l1 += d.abs();
            s.dot += x * y;
            s.aa += x * x;
            s.bb += y * y;
            s.dd += d * d;
        }
        s
    }

    fn add(&mut self, o: &Self) {
        self.n += o.n;
        self.l0 += o.l0;
        self.l1 += o.l1;
        self.dot += o.dot;
        self.aa += o.aa;
        self.bb += o.bb;
        self.dd += o.dd;
    }

    fn distances(&self) -> Distances {
        let denom = (self.aa * self.bb).sqrt();
        let cos = if denom > 0.0 {
            (self.dot / denom).clamp(-1.0, 1.0)
        } else {
            1.0
        };
        Distances {
            entries: self.n,
            l1: self.l1,
            mean_abs: if self.n == 0 {
                0.0
            } else {
                self.l1 / self.n as f64
            },
            // Identical vectors are at distance 0 even when rounding puts cos a hair below 1.
            angular: if self.dd == 0.0 {
                0.0
            } else {
                cos.acos() / std::f64::consts::PI
            },
            l0: self.l0,
            l0_fraction: if self.n == 0 {
                0.0
            } else {
                self.l0 as f64 / self.n as f64
            },
            relative_l2: if self.aa > 0.0 {
                (self.dd / self.aa).sqrt()
            } else {
                0.0
            },
        }
    }
}

/// The distances of one tensor or group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distances {
    /// Entries compared.
    pub entries: usize,
    /// Σ |b − a|.
    pub l1: f64,
    /// L1 / entries.
    pub mean_abs: f64,
    /// arccos(a·b / (‖a‖ ‖b‖)) / π: 0 for parallel, 0.5 for orthogonal (independent random).
    pub angular: f64,
    /// Entries that differ.
    pub l0: usize,
    /// L0 / entries.
    pub l0_fraction: f64,
    /// ‖b − a‖ / ‖a‖.
    pub relative_l2: f64,
}

/// Distances between two models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistanceReport {
    /// Over all shared tensors.
    pub overall: Distances,
    /// Per tensor by HF name.
    pub per_tensor: BTreeMap<String, Distances>,
    /// Per layer × matrix (the weight of each matrix) and per group outside the layers
    /// (`embeddings`, `pooler`, `layer-norms`, `classifier`).
    #[serde(flatten)]
    pub grid: LayerGrid<Distances>,
    /// Tensors only one of the models has (e.g. the task head), not compared.
    pub not_compared: Vec<String>,
}

/// Distances from `base` to `other` (canonical HF names). Tensors present in both must have the
/// same shape; tensors in only one are listed in `not_compared`.
///
/// # Errors
///
/// [`SparseError::ShapeMismatch`] for a tensor the two hold in different shapes.
pub fn distances(
    base: &BTreeMap<String, HostTensor>,
    other: &BTreeMap<String, HostTensor>,
) -> Result<DistanceReport> {
    let mut per_tensor = BTreeMap::new();
    let mut sums = BTreeMap::new();
    let mut not_compared = Vec::new();
    for (name, a) in base {
        let Some(b) = other.get(name) else {
            not_compared.push(name.clone());
            continue;
        };
        if a.shape != b.shape {
            return Err(SparseError::ShapeMismatch {
                tensor: name.clone(),
                expected: a.shape.clone(),
                found: b.shape.clone(),
                expected_in: "the base",
                found_in: "the other model".into(),
            });
        }
        let s = Sums::of(&a.data, &b.data);
        per_tensor.insert(name.clone(), s.distances());
        sums.insert(name.clone(), s);
    }
    not_compared.extend(other.keys().filter(|n| !base.contains_key(*n)).cloned());
    Ok(report(per_tensor, &sums, not_compared))
}

fn report(
    per_tensor: BTreeMap<String, Distances>,
    sums: &BTreeMap<String, Sums>,
    not_compared: Vec<String>,
) -> DistanceReport {
    let mut overall = Sums::default();
    let mut grid = GridSums::<Sums>::new(CellParams::WeightOnly);
    for (name, s) in sums {
        overall.add(s);
        grid.add(name, |g| g.add(s));
    }
    DistanceReport {
        overall: overall.distances(),
        per_tensor,
        grid: grid.finish(Sums::distances),
        not_compared,
    }
}

/// How a random initialisation is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RandomInit {
    /// U(−1/√H, 1/√H).
    Uniform,
    /// N(0, (1/√H)²).
    Normal,
}

/// Distances between two independent random initialisations with the shapes of `shapes`
/// (entries drawn with `init`, scale 1/√`hidden`, seeded).
pub fn vs_random(
    shapes: &BTreeMap<String, Vec<usize>>,
    hidden: usize,
    init: RandomInit,
    seed: u64,
) -> DistanceReport {
    let scale = 1.0 / (hidden.max(1) as f64).sqrt();
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, scale).unwrap_or_else(|_| unreachable!("scale is positive"));
    let draw = |n: usize, rng: &mut StdRng| -> Vec<f32> {
        (0..n)
            .map(|_| match init {
                RandomInit::Uniform => rng.random_range(-scale..scale) as f32,
                RandomInit::Normal => normal.sample(rng) as f32,
            })
            .collect()
    };
    let mut per_tensor = BTreeMap::new();
    let mut sums = BTreeMap::new();
    for (name, shape) in shapes {
        let n = shape.iter().product();
        let a = draw(n, &mut rng);
        let b = draw(n, &mut rng);
        let s = Sums::of(&a, &b);
        per_tensor.insert(name.clone(), s.distances());
        sums.insert(name.clone(), s);
    }
    report(per_tensor, &sums, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Vec<f32>)]) -> BTreeMap<String, HostTensor> {
        entries
            .iter()
            .map(|(n, v)| (n.to_string(), HostTensor::new(vec![v.len()], v.clone())))
            .collect()
    }

    #[test]
    fn identical_models_are_at_distance_zero() {
        let a = map(&[(
            "bert.encoder.layer.0.attention.self.query.weight",
            vec![0.3, -1.0, 2.0],
        )]);
        let r = distances(&a, &a).expect("distances");
        let d = r.overall;
        assert_eq!(
            (d.l1, d.mean_abs, d.angular, d.l0, d.relative_l2),
            (0.0, 0.0, 0.0, 0, 0.0)
        );
        assert_eq!(r.grid.layers[0][0], d);
    }

    #[test]
    fn a_known_pair_matches_a_direct_computation() {
        let a = map(&[("bert.pooler.dense.weight", vec![1.0, 0.0, 0.0, 2.0])]);
        let b = map(&[
            ("bert.pooler.dense.weight", vec![1.0, 1.0, 0.0, 2.0]),
            ("classifier.weight", vec![0.5]),
        ]);
        let r = distances(&a, &b).expect("distances");
        let d = r.per_tensor["bert.pooler.dense.weight"];
        // a·b = 5, ‖a‖ = √5, ‖b‖ = √6 → cos = 5/√30; ‖b − a‖ = 1.
        let angular = (5.0 / 30f64.sqrt()).acos() / std::f64::consts::PI;
        assert!((d.angular - angular).abs() < 1e-12, "{}", d.angular);
        assert_eq!(d.l1, 1.0);
        assert_eq!(d.mean_abs, 0.25);
        assert_eq!(d.l0, 1);
        assert!((d.relative_l2 - 1.0 / 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.grid.groups["pooler"], d);
        assert_eq!(r.not_compared, vec!["classifier.weight".to_string()]);
    }

    #[test]
    fn independent_random_tensors_are_half_a_turn_apart() {
        let shapes = BTreeMap::from([(
            "bert.encoder.layer.0.attention.self.key.weight".to_string(),
            vec![384, 384],
        )]);
        for init in [RandomInit::Uniform, RandomInit::Normal] {
            let r = vs_random(&shapes, 384, init, 7);
            assert!(
                (r.overall.angular - 0.5).abs() < 0.005,
                "{init:?}: {}",
                r.overall.angular
            );
            assert!((r.overall.relative_l2 - 2f64.sqrt()).abs() < 0.01);
            assert_eq!(r.overall.l0, 384 * 384);
            // E|x − y|: uniform 2a/3, normal 2σ/√π, with a = σ = 1/√384.
            let s = 1.0 / 384f64.sqrt();
            let want = match init {
                RandomInit::Uniform => 2.0 * s / 3.0,
                RandomInit::Normal => 2.0 * s / std::f64::consts::PI.sqrt(),
            };
            assert!((r.overall.mean_abs / want - 1.0).abs() < 0.01, "{init:?}");
            assert_eq!(r, vs_random(&shapes, 384, init, 7), "seeded");
        }
    }

    #[test]
    fn shape_mismatch_names_the_tensor() {
        let a = map(&[("bert.x", vec![1.0, 2.0])]);
        let b = map(&[("bert.x", vec![1.0])]);
        let err = distances(&a, &b).expect_err("must fail").to_string();
        assert!(err.contains("`bert.x`"), "{err}");
    }
}
