//! Sparse diffs: the change of a fine-tuned model against its base, as indices and values.
//!
//! File (safetensors, HF names, PyTorch layout, flat row-major indices):
//! - `indices.<name>` i32 `[k]`, sorted; `values.<name>` f32 `[k]` (fine-tuned values);
//!   `base_values.<name>` f32 `[k]` (the base's values, so `revert` is exact);
//! - `added.<name>` f32, full shape: tensors the base does not have (the task head);
//! - metadata: `format` = `finesse-sparse-diff`, `format_version`, `base_sha256` and
//!   `result_sha256` ([`tensors_digest`] of the base and of the fine-tuned tensors), `shapes`
//!   (JSON, every changed tensor's shape), `config` (the fine-tuned `config.json`, optional).
//!
//! Values are stored, not deltas, so `apply` reproduces the fine-tuned model bit for bit and
//! `revert` the base. [`SparseDiff::compose`] documents the rule for two diffs.

use std::collections::BTreeMap;
use std::path::Path;

use finesse_bert::HostTensor;
use serde::Serialize;

use crate::error::{Result, SparseError};
use crate::files::{RawTensor, read_raw, tensors_digest, write_raw};

/// Version of the diff file format.
pub const DIFF_FORMAT_VERSION: &str = "1";
const FORMAT: &str = "finesse-sparse-diff";

/// Tensors by canonical HF name (see [`crate::files::canonical_name`]).
pub type TensorMap = BTreeMap<String, HostTensor>;

/// The changed entries of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorChange {
    /// Shape in PyTorch layout.
    pub shape: Vec<usize>,
    /// Sorted flat indices of the changed entries.
    pub indices: Vec<u32>,
    /// Fine-tuned values at `indices`.
    pub values: Vec<f32>,
    /// Base values at `indices`.
    pub base_values: Vec<f32>,
}

/// A sparse diff (see the module docs for the file format).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseDiff {
    /// Digest of the base tensors.
    pub base_sha256: String,
    /// Digest of the fine-tuned tensors; `None` for a composition of two diffs of one base.
    pub result_sha256: Option<String>,
    /// The fine-tuned model's `config.json`, when known.
    pub config: Option<String>,
    /// Changed entries per tensor (tensors without a change are absent).
    pub changes: BTreeMap<String, TensorChange>,
    /// Tensors the base lacks, in full.
    pub added: TensorMap,
}

fn bits_differ(a: f32, b: f32) -> bool {
    a.to_bits() != b.to_bits()
}

impl SparseDiff {
    /// The entries of `model` that differ (bitwise) from `base`. Every base tensor must be in
    /// `model` with the same shape; tensors only in `model` are stored whole.
    ///
    /// # Errors
    ///
    /// [`SparseError::MissingTensor`] for a base tensor the model lacks and
    /// [`SparseError::ShapeMismatch`] for one it holds in another shape.
    pub fn export(base: &TensorMap, model: &TensorMap, config: Option<String>) -> Result<Self> {
        let mut changes = BTreeMap::new();
        for (name, b) in base {
            let m = model.get(name).ok_or_else(|| SparseError::MissingTensor {
                tensor: name.clone(),
                missing_from: "the fine-tuned model".into(),
                present_in: "the base".into(),
            })?;
            if m.shape != b.shape {
                return Err(SparseError::ShapeMismatch {
                    tensor: name.clone(),
                    expected: b.shape.clone(),
                    found: m.shape.clone(),
                    expected_in: "the base",
                    found_in: "the fine-tuned model".into(),
                });
            }
            let mut c = TensorChange {
                shape: b.shape.clone(),
                indices: Vec::new(),
                values: Vec::new(),
                base_values: Vec::new(),
            };
            for (i, (&x, &y)) in m.data.iter().zip(&b.data).enumerate() {
                if bits_differ(x, y) {
                    c.indices.push(i as u32);
                    c.values.push(x);
                    c.base_values.push(y);
                }
            }
            if !c.indices.is_empty() {
                changes.insert(name.clone(), c);
            }
        }
        let added = model
            .iter()
            .filter(|(n, _)| !base.contains_key(*n))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        Ok(Self {
            base_sha256: tensors_digest(base),
            result_sha256: Some(tensors_digest(model)),
            config,
            changes,
            added,
        })
    }

    /// Changed entries (sparse changes plus every entry of added tensors).
    pub fn changed_entries(&self) -> usize {
        self.changes
            .values()
            .map(|c| c.indices.len())
            .sum::<usize>()
            + self.added.values().map(HostTensor::numel).sum::<usize>()
    }

    /// The fine-tuned model: `base` with the diff applied. Fails unless `base` is the diff's
    /// base (by digest), and checks the result's digest when the diff records it.
    ///
    /// # Errors
    ///
    /// [`SparseError::WrongBase`] when `base` is not the diff's base, [`SparseError::MissingTensor`]
    /// / [`SparseError::ShapeMismatch`] for a changed tensor it lacks or holds in another shape,
    /// [`SparseError::AddedTensorExists`] when it already has a tensor the diff adds, and
    /// [`SparseError::WrongOutcome`] when the result is not the recorded one.
    pub fn apply(&self, base: &TensorMap) -> Result<TensorMap> {
        let digest = tensors_digest(base);
        if digest != self.base_sha256 {
            return Err(SparseError::WrongBase {
                expected: self.base_sha256.clone(),
                found: digest,
            });
        }
        let mut out = base.clone();
        for (name, c) in &self.changes {
            let t = out.get_mut(name).ok_or_else(|| missing(name, "the base"))?;
            check_shape(name, (&t.shape, "the base"), (&c.shape, "the diff"))?;
            for (&i, &v) in c.indices.iter().zip(&c.values) {
                t.data[i as usize] = v;
            }
        }
        for (name, t) in &self.added {
            if out.insert(name.clone(), t.clone()).is_some() {
                return Err(SparseError::AddedTensorExists {
                    tensor: name.clone(),
                });
            }
        }
        if let Some(want) = &self.result_sha256 {
            let got = tensors_digest(&out);
            if &got != want {
                return Err(SparseError::WrongOutcome {
                    operation: "applying the diff",
                    expected_what: "the recorded",
                    expected: want.clone(),
                    found: got,
                });
            }
        }
        Ok(out)
    }

    /// The base: `model` with the diff undone. Fails unless `model` is the diff's result (by
    /// digest when recorded, else by the values at the changed entries).
    ///
    /// # Errors
    ///
    /// [`SparseError::WrongModel`] when `model` is not the diff's result,
    /// [`SparseError::MissingTensor`] / [`SparseError::ShapeMismatch`] for a changed tensor it lacks
    /// or holds in another shape, [`SparseError::EntryMismatch`] for a changed entry without the
    /// diff's value, and [`SparseError::WrongOutcome`] when the result is not the diff's base.
    pub fn revert(&self, model: &TensorMap) -> Result<TensorMap> {
        if let Some(want) = &self.result_sha256 {
            let digest = tensors_digest(model);
            if &digest != want {
                return Err(SparseError::WrongModel {
                    expected: want.clone(),
                    found: digest,
                });
            }
        }
        let mut out = model.clone();
        for (name, c) in &self.changes {
            let t = out
                .get_mut(name)
                .ok_or_else(|| missing(name, "the model"))?;
            check_shape(name, (&t.shape, "the model"), (&c.shape, "the diff"))?;
            for ((&i, &v), &b) in c.indices.iter().zip(&c.values).zip(&c.base_values) {
                if bits_differ(t.data[i as usize], v) {
                    return Err(SparseError::EntryMismatch {
                        tensor: name.clone(),
                        index: i,
                        expected: v,
                        found: t.data[i as usize],
                    });
                }
                t.data[i as usize] = b;
            }
        }
        for name in self.added.keys() {
            out.remove(name);
        }
        let got = tensors_digest(&out);
        if got != self.base_sha256 {
            return Err(SparseError::WrongOutcome {
                operation: "reverting",
                expected_what: "the diff's base",
                expected: self.base_sha256.clone(),
                found: got,
            });
        }
        Ok(out)
    }

    /// Composes two diffs into one.
    ///
    /// - **Sequential** (`second` was made against the result of `self`): the union of the
    ///   changes, the later value where both touch an entry, `self`'s base values; entries that
    ///   end where they started are dropped. `apply(compose(a, b)) = apply(b, apply(a, base))`.
    /// - **Parallel** (both made against the same base, e.g. two tasks): the union of the
    ///   changes; where both change an entry, `second` wins. The result digest is unknown
    ///   until applied, so it is not recorded.
    ///
    /// Any other pair is an error.
    ///
    /// # Errors
    ///
    /// [`SparseError::UnrelatedDiffs`] for diffs that are neither sequential nor of one base, and
    /// [`SparseError::ShapeMismatch`] for a tensor the two diffs give different shapes.
    pub fn compose(&self, second: &Self) -> Result<Self> {
        let sequential = self.result_sha256.as_deref() == Some(second.base_sha256.as_str());
        if !sequential && second.base_sha256 != self.base_sha256 {
            return Err(SparseError::UnrelatedDiffs {
                first_base: self.base_sha256.clone(),
                second_base: second.base_sha256.clone(),
            });
        }
        let mut added = self.added.clone();
        let mut changes = self.changes.clone();
        for (name, c2) in &second.changes {
            if let Some(t) = added.get_mut(name) {
                // A change to a tensor the first diff added: fold it into the added tensor.
                check_shape(
                    name,
                    (&t.shape, "the first diff"),
                    (&c2.shape, "the second diff"),
                )?;
                for (&i, &v) in c2.indices.iter().zip(&c2.values) {
                    t.data[i as usize] = v;
                }
                continue;
            }
            let merged = match changes.remove(name) {
                None => c2.clone(),
                Some(c1) => {
                    check_shape(
                        name,
                        (&c1.shape, "the first diff"),
                        (&c2.shape, "the second diff"),
                    )?;
                    merge(&c1, c2)
                }
            };
            if !merged.indices.is_empty() {
                changes.insert(name.clone(), merged);
            }
        }
        for (name, t) in &second.added {
            added.insert(name.clone(), t.clone());
        }
        Ok(Self {
            base_sha256: self.base_sha256.clone(),
            result_sha256: if sequential {
                second.result_sha256.clone()
            } else {
                None
            },
            config: second.config.clone().or_else(|| self.config.clone()),
            changes,
            added,
        })
    }

    /// Writes the diff atomically.
    ///
    /// # Errors
    ///
    /// [`SparseError::Tensor`] / [`SparseError::File`] when a tensor or the file cannot be
    /// serialised, and [`SparseError::Bert`] when the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut tensors = BTreeMap::new();
        let mut shapes = BTreeMap::new();
        for (name, c) in &self.changes {
            let idx: Vec<i32> = c.indices.iter().map(|&i| i as i32).collect();
            let k = vec![c.indices.len()];
            tensors.insert(format!("indices.{name}"), RawTensor::i32(k.clone(), &idx));
            tensors.insert(
                format!("values.{name}"),
                RawTensor::f32(k.clone(), &c.values),
            );
            tensors.insert(
                format!("base_values.{name}"),
                RawTensor::f32(k, &c.base_values),
            );
            shapes.insert(name.clone(), c.shape.clone());
        }
        for (name, t) in &self.added {
            tensors.insert(
                format!("added.{name}"),
                RawTensor::f32(t.shape.clone(), &t.data),
            );
        }
        let mut meta = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            (
                "format_version".to_string(),
                DIFF_FORMAT_VERSION.to_string(),
            ),
            ("base_sha256".to_string(), self.base_sha256.clone()),
            (
                "shapes".to_string(),
                serde_json::to_string(&shapes).unwrap_or_default(),
            ),
        ]);
        if let Some(r) = &self.result_sha256 {
            meta.insert("result_sha256".into(), r.clone());
        }
        if let Some(c) = &self.config {
            meta.insert("config".into(), c.clone());
        }
        write_raw(path, &tensors, &meta)
    }

    /// Reads and validates a diff file (format, version, index ranges and order, lengths).
    ///
    /// # Errors
    ///
    /// [`SparseError::Bert`] when the file cannot be read, [`SparseError::File`] for a file that is
    /// not a valid finesse sparse diff (format, version, digests, `shapes`), and
    /// [`SparseError::Tensor`] for a tensor entry that is wrong (dtype, length, indices out of range
    /// or not increasing, a `values.` without `indices.`, an unknown entry).
    pub fn read(path: &Path) -> Result<Self> {
        let file = read_raw(path)?;
        let bad_file = |problem: String| SparseError::File {
            path: path.to_path_buf(),
            problem,
        };
        let bad = |name: &str, problem: String| SparseError::Tensor {
            path: path.to_path_buf(),
            name: name.to_string(),
            problem,
        };
        match file.metadata.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            other => {
                return Err(bad_file(format!(
                    "not a finesse sparse diff (format {other:?})"
                )));
            }
        }
        let version = file.meta(path, "format_version")?;
        if version != DIFF_FORMAT_VERSION {
            return Err(bad_file(format!(
                "diff format version {version}; this finesse reads version {DIFF_FORMAT_VERSION}"
            )));
        }
        let base_sha256 = file.meta_sha256(path, "base_sha256")?.to_string();
        let result_sha256 = match file.metadata.get("result_sha256") {
            Some(_) => Some(file.meta_sha256(path, "result_sha256")?.to_string()),
            None => None,
        };
        let shapes: BTreeMap<String, Vec<usize>> = serde_json::from_str(file.meta(path, "shapes")?)
            .map_err(|e| bad_file(format!("metadata `shapes` is not valid: {e}")))?;
        let mut changes = BTreeMap::new();
        let mut added = BTreeMap::new();
        for (key, raw) in &file.tensors {
            if let Some(name) = key.strip_prefix("added.") {
                let data = raw.as_f32(path, key)?;
                added.insert(name.to_string(), HostTensor::new(raw.shape.clone(), data));
            } else if let Some(name) = key.strip_prefix("indices.") {
                let shape = shapes
                    .get(name)
                    .ok_or_else(|| bad(name, "no shape in the metadata `shapes`".into()))?;
                let numel = shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(d))
                    .ok_or_else(|| bad(name, format!("shape {shape:?} overflows")))?;
                let idx = raw.as_i32(path, key)?;
                let get = |prefix: &str| -> Result<Vec<f32>> {
                    let k = format!("{prefix}.{name}");
                    let t = file
                        .tensors
                        .get(&k)
                        .ok_or_else(|| bad(name, format!("`{k}` is missing")))?;
                    let v = t.as_f32(path, &k)?;
                    if v.len() != idx.len() {
                        return Err(bad(
                            name,
                            format!("{} indices but {} {prefix}", idx.len(), v.len()),
                        ));
                    }
                    Ok(v)
                };
                let values = get("values")?;
                let base_values = get("base_values")?;
                let mut indices = Vec::with_capacity(idx.len());
                for (j, &i) in idx.iter().enumerate() {
                    if i < 0 || i as usize >= numel {
                        return Err(bad(
                            name,
                            format!("index {i} out of range for shape {shape:?}"),
                        ));
                    }
                    if j > 0 && i <= idx[j - 1] {
                        return Err(bad(name, "indices are not strictly increasing".into()));
                    }
                    indices.push(i as u32);
                }
                changes.insert(
                    name.to_string(),
                    TensorChange {
                        shape: shape.clone(),
                        indices,
                        values,
                        base_values,
                    },
                );
            } else if !(key.starts_with("values.") || key.starts_with("base_values.")) {
                return Err(bad(key, "unknown entry in a sparse diff".into()));
            }
        }
        for key in file.tensors.keys() {
            for prefix in ["values.", "base_values."] {
                if let Some(name) = key.strip_prefix(prefix)
                    && !changes.contains_key(name)
                {
                    return Err(bad(name, format!("`{key}` has no `indices.{name}`")));
                }
            }
        }
        Ok(Self {
            base_sha256,
            result_sha256,
            config: file.metadata.get("config").cloned(),
            changes,
            added,
        })
    }

    /// Sizes and per-tensor counts, for `finesse diff info`.
    pub fn info(&self, file_bytes: Option<u64>) -> DiffInfo {
        let dense_entries: usize = self
            .changes
            .values()
            .map(|c| c.shape.iter().product::<usize>())
            .sum::<usize>()
            + self.added.values().map(HostTensor::numel).sum::<usize>();
        DiffInfo {
            base_sha256: self.base_sha256.clone(),
            result_sha256: self.result_sha256.clone(),
            changed_entries: self.changed_entries(),
            sparse_tensors: self.changes.len(),
            added_tensors: self.added.keys().cloned().collect(),
            file_bytes,
            dense_bytes_of_touched_tensors: dense_entries as u64 * 4,
            per_tensor: self
                .changes
                .iter()
                .map(|(n, c)| (n.clone(), c.indices.len()))
                .collect(),
        }
    }
}

/// What `finesse diff info` prints.
#[derive(Clone, Debug, Serialize)]
pub struct DiffInfo {
    /// Digest of the base tensors.
    pub base_sha256: String,
    /// Digest of the fine-tuned tensors, when recorded.
    pub result_sha256: Option<String>,
    /// Entries changed (added tensors count in full).
    pub changed_entries: usize,
    /// Tensors with sparse changes.
    pub sparse_tensors: usize,
    /// Tensors stored whole because the base lacks them.
    pub added_tensors: Vec<String>,
    /// Size of the diff file.
    pub file_bytes: Option<u64>,
    /// f32 bytes of every tensor the diff touches, stored densely.
    pub dense_bytes_of_touched_tensors: u64,
    /// Changed entries per tensor.
    pub per_tensor: BTreeMap<String, usize>,
}

fn merge(c1: &TensorChange, c2: &TensorChange) -> TensorChange {
    let mut out = TensorChange {
        shape: c1.shape.clone(),
        indices: Vec::new(),
        values: Vec::new(),
        base_values: Vec::new(),
    };
    let (mut a, mut b) = (0, 0);
    let mut push = |i: u32, v: f32, base: f32| {
        if bits_differ(v, base) {
            out.indices.push(i);
            out.values.push(v);
            out.base_values.push(base);
        }
    };
    while a < c1.indices.len() || b < c2.indices.len() {
        let ia = c1.indices.get(a).copied().unwrap_or(u32::MAX);
        let ib = c2.indices.get(b).copied().unwrap_or(u32::MAX);
        if ia < ib {
            push(ia, c1.values[a], c1.base_values[a]);
            a += 1;
        } else if ib < ia {
            push(ib, c2.values[b], c2.base_values[b]);
            b += 1;
        } else {
            push(ia, c2.values[b], c1.base_values[a]);
            a += 1;
            b += 1;
        }
    }
    out
}

/// `name`, which the diff changes, is not in `what`.
fn missing(name: &str, what: &str) -> SparseError {
    SparseError::MissingTensor {
        tensor: name.to_string(),
        missing_from: what.to_string(),
        present_in: "the diff".into(),
    }
}

/// The shape `name` has in one thing (`have`, e.g. the base) must be the shape the diff
/// records (`want`); each comes with what it is in, for the error.
fn check_shape(name: &str, have: (&[usize], &str), want: (&[usize], &'static str)) -> Result<()> {
    if have.0 == want.0 {
        Ok(())
    } else {
        Err(SparseError::ShapeMismatch {
            tensor: name.to_string(),
            expected: want.0.to_vec(),
            found: have.0.to_vec(),
            expected_in: want.1,
            found_in: have.1.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::short;

    fn t(v: &[f32]) -> HostTensor {
        HostTensor::new(vec![v.len()], v.to_vec())
    }

    fn base() -> TensorMap {
        BTreeMap::from([
            ("bert.a".to_string(), t(&[1.0, 2.0, 3.0, 4.0])),
            ("bert.b".to_string(), t(&[0.5, -0.0])),
        ])
    }

    fn tuned(base: &TensorMap, edits: &[(&str, usize, f32)]) -> TensorMap {
        let mut m = base.clone();
        for &(n, i, v) in edits {
            m.get_mut(n).expect("tensor").data[i] = v;
        }
        m
    }

    fn same_bits(a: &TensorMap, b: &TensorMap) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|((na, ta), (nb, tb))| {
                na == nb
                    && ta.shape == tb.shape
                    && ta
                        .data
                        .iter()
                        .zip(&tb.data)
                        .all(|(x, y)| x.to_bits() == y.to_bits())
            })
    }

    #[test]
    fn apply_of_export_and_revert_of_apply_are_bitwise_identities() {
        let b = base();
        let mut m = tuned(&b, &[("bert.a", 2, 3.000_000_2), ("bert.b", 1, 0.0)]);
        m.insert("classifier.weight".into(), t(&[0.1, 0.2]));
        let d = SparseDiff::export(&b, &m, Some("{}".into())).expect("export");
        // -0.0 → 0.0 is a change in bits and is kept.
        assert_eq!(d.changes["bert.b"].indices, vec![1]);
        assert_eq!(d.changed_entries(), 4);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.safetensors");
        d.write(&path).expect("write");
        let d = SparseDiff::read(&path).expect("read");
        let applied = d.apply(&b).expect("apply");
        assert!(same_bits(&applied, &m));
        assert!(same_bits(&d.revert(&applied).expect("revert"), &b));
    }

    #[test]
    fn wrong_base_and_wrong_model_are_rejected() {
        let b = base();
        let m = tuned(&b, &[("bert.a", 0, 9.0)]);
        let d = SparseDiff::export(&b, &m, None).expect("export");
        let other = tuned(&b, &[("bert.b", 0, 0.25)]);
        let err = d.apply(&other).expect_err("must fail").to_string();
        assert!(err.contains("made against base"), "{err}");
        let err = d.revert(&b).expect_err("must fail").to_string();
        assert!(err.contains("this model is"), "{err}");
        let mut shorter = b.clone();
        shorter.remove("bert.b");
        let err = SparseDiff::export(&b, &shorter, None)
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("`bert.b`"), "{err}");
    }

    #[test]
    fn sequential_and_parallel_composition() {
        let b = base();
        let m1 = tuned(&b, &[("bert.a", 0, 10.0), ("bert.a", 1, 20.0)]);
        let m2 = tuned(&m1, &[("bert.a", 1, 2.0), ("bert.b", 0, 7.0)]);
        let d1 = SparseDiff::export(&b, &m1, None).expect("d1");
        let d2 = SparseDiff::export(&m1, &m2, None).expect("d2");
        let c = d1.compose(&d2).expect("compose");
        // Entry a[1] went 2 → 20 → 2: back where it started, so it is dropped.
        assert_eq!(c.changes["bert.a"].indices, vec![0]);
        assert!(same_bits(&c.apply(&b).expect("apply"), &m2));
        assert!(same_bits(&c.revert(&m2).expect("revert"), &b));

        // Parallel: both against the base, overlapping on a[0]; the second wins.
        let p1 = SparseDiff::export(
            &b,
            &tuned(&b, &[("bert.a", 0, 5.0), ("bert.a", 3, 6.0)]),
            None,
        )
        .expect("p1");
        let p2 = SparseDiff::export(
            &b,
            &tuned(&b, &[("bert.a", 0, 8.0), ("bert.b", 0, 1.5)]),
            None,
        )
        .expect("p2");
        let c = p1.compose(&p2).expect("compose");
        assert_eq!(c.result_sha256, None);
        let out = c.apply(&b).expect("apply");
        assert_eq!(out["bert.a"].data, vec![8.0, 2.0, 3.0, 6.0]);
        assert_eq!(out["bert.b"].data[0], 1.5);

        let unrelated =
            SparseDiff::export(&m2, &tuned(&m2, &[("bert.a", 2, 0.0)]), None).expect("unrelated");
        let err = d1.compose(&unrelated).expect_err("must fail").to_string();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn corrupted_and_foreign_files_are_rejected_with_the_file_named() {
        let b = base();
        let d = SparseDiff::export(&b, &tuned(&b, &[("bert.a", 1, 0.0)]), None).expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.safetensors");
        d.write(&path).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
        let err = SparseDiff::read(&path).expect_err("must fail").to_string();
        assert!(
            err.contains("d.safetensors") && err.contains("not a valid"),
            "{err}"
        );

        // An index out of range.
        let mut tensors = BTreeMap::new();
        tensors.insert("indices.bert.a".to_string(), RawTensor::i32(vec![1], &[4]));
        tensors.insert("values.bert.a".to_string(), RawTensor::f32(vec![1], &[0.0]));
        tensors.insert(
            "base_values.bert.a".to_string(),
            RawTensor::f32(vec![1], &[0.0]),
        );
        let meta = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("format_version".to_string(), "1".to_string()),
            ("base_sha256".to_string(), "0".repeat(64)),
            ("shapes".to_string(), r#"{"bert.a":[4]}"#.to_string()),
        ]);
        write_raw(&path, &tensors, &meta).expect("write");
        let err = SparseDiff::read(&path).expect_err("must fail").to_string();
        assert!(
            err.contains("`bert.a`") && err.contains("out of range"),
            "{err}"
        );

        // A model file is not a diff.
        let mut plain = BTreeMap::new();
        plain.insert("bert.a".to_string(), RawTensor::f32(vec![1], &[0.0]));
        write_raw(&path, &plain, &BTreeMap::new()).expect("write");
        let err = SparseDiff::read(&path).expect_err("must fail").to_string();
        assert!(err.contains("not a finesse sparse diff"), "{err}");
    }

    #[test]
    fn non_ascii_and_malformed_digests_are_errors_not_panics() {
        let b = base();
        let d = SparseDiff::export(&b, &tuned(&b, &[("bert.a", 1, 0.0)]), None).expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.safetensors");
        d.write(&path).expect("write");
        let file = read_raw(&path).expect("raw");
        for (key, value) in [
            ("base_sha256", "é".repeat(64)),
            ("base_sha256", "ab".to_string()),
            ("result_sha256", "€".repeat(21)),
            ("result_sha256", "Z".repeat(64)),
        ] {
            let mut meta = file.metadata.clone();
            meta.insert(key.to_string(), value.clone());
            write_raw(&path, &file.tensors, &meta).expect("write");
            let err = SparseDiff::read(&path).expect_err(&value).to_string();
            assert!(
                err.contains("d.safetensors") && err.contains(&format!("`{key}`")),
                "{key} = {value:?}: {err}"
            );
        }
        // Digests held in memory are shortened by characters, never split inside one.
        assert_eq!(short(&"é".repeat(20)), "é".repeat(12));
        assert_eq!(short("abc"), "abc");
    }
}
