//! Raw safetensors files of any dtype (masks are u8, diff indices i32), their string metadata,
//! canonical parameter names and a content digest of a set of tensors.

use std::collections::BTreeMap;
use std::path::Path;

use finesse_bert::HostTensor;
use finesse_bert::io::write_atomic;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::error::{Result, SparseError};

/// The prefix of encoder parameters in `BertForSequenceClassification` names.
const BERT_PREFIX: &str = "bert.";

/// One tensor as stored: dtype, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian element bytes, row-major.
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// An f32 tensor.
    pub fn f32(shape: Vec<usize>, data: &[f32]) -> Self {
        Self {
            dtype: Dtype::F32,
            shape,
            bytes: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// A u8 tensor.
    pub fn u8(shape: Vec<usize>, data: Vec<u8>) -> Self {
        Self {
            dtype: Dtype::U8,
            shape,
            bytes: data,
        }
    }

    /// An i32 tensor.
    pub fn i32(shape: Vec<usize>, data: &[i32]) -> Self {
        Self {
            dtype: Dtype::I32,
            shape,
            bytes: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements as f32, when the dtype is F32.
    ///
    /// # Errors
    ///
    /// [`SparseError::Tensor`] naming `path` and `name` when the dtype is not F32.
    pub fn as_f32(&self, path: &Path, name: &str) -> Result<Vec<f32>> {
        self.expect(path, name, Dtype::F32)?;
        Ok(self
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The elements as i32, when the dtype is I32.
    ///
    /// # Errors
    ///
    /// [`SparseError::Tensor`] naming `path` and `name` when the dtype is not I32.
    pub fn as_i32(&self, path: &Path, name: &str) -> Result<Vec<i32>> {
        self.expect(path, name, Dtype::I32)?;
        Ok(self
            .bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn expect(&self, path: &Path, name: &str, dtype: Dtype) -> Result<()> {
        if self.dtype == dtype {
            Ok(())
        } else {
            Err(SparseError::Tensor {
                path: path.to_path_buf(),
                name: name.to_string(),
                problem: format!("dtype {:?}, expected {dtype:?}", self.dtype),
            })
        }
    }
}

/// A safetensors file read whole: tensors by name and the header's string metadata.
#[derive(Debug)]
pub struct RawFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, RawTensor>,
    /// The `__metadata__` map (empty when absent).
    pub metadata: BTreeMap<String, String>,
}

impl RawFile {
    /// A metadata entry, or an error naming the file and the key.
    ///
    /// # Errors
    ///
    /// [`SparseError::File`] when the metadata has no `key`.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| SparseError::File {
                path: path.to_path_buf(),
                problem: format!("metadata has no `{key}`"),
            })
    }

    /// A metadata entry that must be a sha256 digest (64 lowercase hex digits), or an error
    /// naming the file and the key; any other text (non-ASCII included) is refused here, so
    /// later code may slice it by bytes.
    ///
    /// # Errors
    ///
    /// [`SparseError::File`] when the metadata has no `key` or its value is not a digest.
    pub fn meta_sha256(&self, path: &Path, key: &str) -> Result<&str> {
        let value = self.meta(path, key)?;
        if is_sha256_hex(value) {
            Ok(value)
        } else {
            let shown: String = value.chars().take(80).collect();
            let more = if value.chars().count() > 80 {
                "…"
            } else {
                ""
            };
            Err(SparseError::File {
                path: path.to_path_buf(),
                problem: format!(
                    "metadata `{key}` is not a sha256 digest (64 lowercase hex digits): \
                     {shown:?}{more}"
                ),
            })
        }
    }
}

/// True for exactly 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads a safetensors file of any dtypes.
///
/// # Errors
///
/// [`SparseError::Bert`] when the file cannot be read, [`SparseError::File`] when it is not a
/// valid safetensors file.
pub fn read_raw(path: &Path) -> Result<RawFile> {
    let bytes = std::fs::read(path)
        .map_err(|e| finesse_bert::BertError::io("reading", path, e))
        .map_err(SparseError::from)?;
    let invalid = |e: safetensors::SafeTensorError| SparseError::File {
        path: path.to_path_buf(),
        problem: format!("not a valid safetensors file: {e}"),
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(invalid)?;
    let metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let st = SafeTensors::deserialize(&bytes).map_err(invalid)?;
    let tensors = st
        .iter()
        .map(|(name, view)| {
            (
                name.to_string(),
                RawTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                },
            )
        })
        .collect();
    Ok(RawFile { tensors, metadata })
}

/// Writes tensors and string metadata to a safetensors file atomically (temp file + rename).
///
/// # Errors
///
/// [`SparseError::Tensor`] for a tensor whose bytes do not fit its dtype and shape,
/// [`SparseError::File`] when the file cannot be serialised, [`SparseError::Bert`] when it
/// cannot be written.
pub fn write_raw(
    path: &Path,
    tensors: &BTreeMap<String, RawTensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| SparseError::Tensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    problem: format!("cannot be serialised: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes =
        finesse_bert::io::serialize_sorted(views, metadata).map_err(|e| SparseError::File {
            path: path.to_path_buf(),
            problem: format!("cannot be serialised: {e}"),
        })?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// The name a parameter has in `BertForSequenceClassification` (`bert.` prefix on encoder
/// parameters), whichever spelling a checkpoint used.
pub fn canonical_name(name: &str) -> String {
    if name.starts_with(BERT_PREFIX) || name.starts_with("classifier.") {
        name.to_string()
    } else {
        format!("{BERT_PREFIX}{name}")
    }
}

/// The float tensors of a model file under their canonical names. Non-float buffers such as
/// `embeddings.position_ids` are left out; two spellings of one tensor are an error.
///
/// # Errors
///
/// [`SparseError::Bert`] when the file cannot be read, [`SparseError::Tensor`] for a tensor
/// present under both spellings.
pub fn read_model_tensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let file = finesse_bert::io::read_float_tensors(path)?;
    let mut out = BTreeMap::new();
    for (name, t) in file.tensors {
        let canonical = canonical_name(&name);
        if out.insert(canonical.clone(), t).is_some() {
            return Err(SparseError::Tensor {
                path: path.to_path_buf(),
                name: canonical,
                problem: "present twice (with and without the `bert.` prefix)".into(),
            });
        }
    }
    Ok(out)
}

/// SHA-256 over a set of f32 tensors: for each tensor in name order, its name, shape and
/// little-endian bytes. It identifies a model's weights independently of the file layout,
/// tensor order and name spelling (names are canonicalised first).
pub fn tensors_digest(tensors: &BTreeMap<String, HostTensor>) -> String {
    let mut h = Sha256::new();
    for (name, t) in tensors {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((t.shape.len() as u64).to_le_bytes());
        for d in &t.shape {
            h.update((*d as u64).to_le_bytes());
        }
        let mut buf = Vec::with_capacity(t.data.len() * 4);
        for x in &t.data {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        h.update(&buf);
    }
    format!("{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_nothing_that_matters() {
        let mut a = BTreeMap::new();
        a.insert(
            "bert.x".to_string(),
            HostTensor::new(vec![2], vec![1.0, 2.0]),
        );
        let d = tensors_digest(&a);
        let mut b = a.clone();
        b.get_mut("bert.x").expect("x").data[1] = 2.000_000_2;
        assert_ne!(d, tensors_digest(&b));
        let mut c = BTreeMap::new();
        c.insert(
            "bert.x".to_string(),
            HostTensor::new(vec![1, 2], vec![1.0, 2.0]),
        );
        assert_ne!(d, tensors_digest(&c), "shape is part of the digest");
        assert_eq!(d, tensors_digest(&a.clone()));
    }

    #[test]
    fn sha256_metadata_must_be_64_lowercase_hex_digits() {
        let good = "0123456789abcdef".repeat(4);
        let path = Path::new("d.safetensors");
        for (value, ok) in [
            (good.clone(), true),
            (good.to_uppercase(), false),
            (good[..63].to_string(), false),
            ("é".repeat(32), false),
            ("é".repeat(64), false),
            (String::new(), false),
        ] {
            let file = RawFile {
                tensors: BTreeMap::new(),
                metadata: BTreeMap::from([("base_sha256".to_string(), value.clone())]),
            };
            match file.meta_sha256(path, "base_sha256") {
                Ok(v) => assert!(ok && v == value, "{value:?} accepted"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        !ok && msg.contains("d.safetensors") && msg.contains("`base_sha256`"),
                        "{value:?}: {msg}"
                    );
                }
            }
        }
    }

    #[test]
    fn canonical_names_add_the_prefix_once() {
        assert_eq!(
            canonical_name("pooler.dense.bias"),
            "bert.pooler.dense.bias"
        );
        assert_eq!(
            canonical_name("bert.pooler.dense.bias"),
            "bert.pooler.dense.bias"
        );
        assert_eq!(canonical_name("classifier.weight"), "classifier.weight");
    }
}
