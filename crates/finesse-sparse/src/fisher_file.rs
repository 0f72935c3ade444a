//! The Fisher file (`finesse fisher --out`, a FISH run's `fisher.safetensors`): one f32 tensor
//! per parameter (HF name, PyTorch layout) and metadata `format=finesse-fisher`, `kind`,
//! `samples`, `task`, `order`, `seed` (and `draws` for the sampled Fisher). One writer and one
//! reader, so the CLI and the trainer write the same file.

use std::collections::BTreeMap;
use std::path::Path;

use finesse_bert::HostTensor;
use finesse_bert::io::{read_float_tensors, write_f32_tensors};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseError};
use crate::fisher::{FisherKind, SampleOrder};

/// The `format` metadata value of a Fisher file.
pub const FISHER_FORMAT: &str = "finesse-fisher";

/// How a Fisher file was estimated (its metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FisherMeta {
    /// `empirical`, `expected` or `sampled`.
    pub kind: String,
    /// Label draws per sample (`sampled` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draws: Option<usize>,
    /// Training samples the estimate used.
    pub samples: usize,
    /// The GLUE task.
    pub task: String,
    /// `file` or `shuffled`; absent in files written by runs before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// Seed of the sample choice and of the sampled labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FisherMeta {
    /// The metadata of an estimate.
    pub fn new(
        kind: FisherKind,
        samples: usize,
        task: &str,
        order: SampleOrder,
        seed: u64,
    ) -> Self {
        Self {
            kind: kind.name().to_string(),
            draws: match kind {
                FisherKind::Sampled { draws } => Some(draws),
                _ => None,
            },
            samples,
            task: task.to_string(),
            order: Some(
                match order {
                    SampleOrder::File => "file",
                    SampleOrder::Shuffled => "shuffled",
                }
                .to_string(),
            ),
            seed: Some(seed),
        }
    }
}

/// Fisher scores with their metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct FisherFile {
    /// Scores by HF name, PyTorch layout.
    pub scores: BTreeMap<String, HostTensor>,
    /// How they were estimated.
    pub meta: FisherMeta,
}

impl FisherFile {
    /// Writes the file atomically (metadata in key order: equal inputs give equal bytes).
    ///
    /// # Errors
    ///
    /// [`SparseError::Bert`] when the file cannot be serialised or written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut meta = BTreeMap::from([
            ("format".to_string(), FISHER_FORMAT.to_string()),
            ("kind".to_string(), self.meta.kind.clone()),
            ("samples".to_string(), self.meta.samples.to_string()),
            ("task".to_string(), self.meta.task.clone()),
        ]);
        if let Some(d) = self.meta.draws {
            meta.insert("draws".into(), d.to_string());
        }
        if let Some(o) = &self.meta.order {
            meta.insert("order".into(), o.clone());
        }
        if let Some(s) = self.meta.seed {
            meta.insert("seed".into(), s.to_string());
        }
        let tensors: Vec<(String, HostTensor)> = self
            .scores
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        Ok(write_f32_tensors(path, &tensors, meta)?)
    }

    /// Reads a Fisher file; a file without `format=finesse-fisher` or with unreadable metadata
    /// is an error naming the file and the key.
    ///
    /// # Errors
    /// An unreadable file, metadata that is not a Fisher file's, or tensors that do not read.
    pub fn read(path: &Path) -> Result<Self> {
        let meta = FisherMeta::read(path)?;
        let scores = read_float_tensors(path)?.tensors;
        Ok(Self { scores, meta })
    }
}

impl FisherMeta {
    /// Reads only the metadata of a Fisher file (its safetensors header, not the tensors).
    ///
    /// # Errors
    /// An unreadable header, or metadata that is not a Fisher file's (naming the key).
    pub fn read(path: &Path) -> Result<Self> {
        let metadata = header_metadata(path)?;
        let bad = |problem: String| SparseError::File {
            path: path.to_path_buf(),
            problem,
        };
        let get = |key: &str| {
            metadata
                .get(key)
                .map(String::as_str)
                .ok_or_else(|| bad(format!("metadata has no `{key}`")))
        };
        let format = get("format")?;
        if format != FISHER_FORMAT {
            return Err(bad(format!(
                "metadata `format` is `{format}`, not `{FISHER_FORMAT}`: not a Fisher file"
            )));
        }
        let number = |key: &str| -> Result<Option<u64>> {
            metadata
                .get(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("metadata `{key}` = {v:?} is not a number")))
                })
                .transpose()
        };
        Ok(Self {
            kind: get("kind")?.to_string(),
            draws: number("draws")?.map(|d| d as usize),
            samples: number("samples")?.ok_or_else(|| bad("metadata has no `samples`".into()))?
                as usize,
            task: get("task")?.to_string(),
            order: metadata.get("order").cloned(),
            seed: number("seed")?,
        })
    }
}

/// The `__metadata__` of a safetensors file, read from its header alone (8-byte length, then
/// the JSON header), so a large file's tensors are not read.
fn header_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let bad = |problem: String| SparseError::File {
        path: path.to_path_buf(),
        problem,
    };
    let io = |e| SparseError::from(finesse_bert::BertError::io("reading", path, e));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    // safetensors' own limit on a header.
    if len > 100_000_000 {
        return Err(bad(format!(
            "not a valid safetensors file: a {len}-byte header"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let value: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    Ok(value
        .get("__metadata__")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_file_round_trips_with_its_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.safetensors");
        let file = FisherFile {
            scores: BTreeMap::from([(
                "bert.pooler.dense.weight".to_string(),
                HostTensor::new(vec![2, 2], vec![0.0, 1.5, 2.0, 1e-9]),
            )]),
            meta: FisherMeta::new(
                FisherKind::Sampled { draws: 3 },
                16,
                "SST-2",
                SampleOrder::File,
                7,
            ),
        };
        file.write(&path).expect("write");
        assert_eq!(FisherFile::read(&path).expect("read"), file);
        // A mask file is not a Fisher file.
        crate::files::write_raw(
            &path,
            &BTreeMap::new(),
            &BTreeMap::from([("format".to_string(), "finesse-mask".to_string())]),
        )
        .expect("write");
        let err = FisherFile::read(&path).expect_err("not fisher").to_string();
        assert!(
            err.contains("f.safetensors") && err.contains("not a Fisher"),
            "{err}"
        );
    }
}
