//! Mask files: a readable form (one u8 0/1 tensor per parameter in its PyTorch shape) and a
//! bit-packed form (⌈numel/8⌉ bytes per parameter, bit `i % 8` of byte `i / 8` = entry `i`,
//! the shapes in the metadata `shapes`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Mask, MaskTensor};
use crate::error::{Result, SparseError};
use crate::files::{RawTensor, read_raw, write_raw};

/// Version of the mask file format (`format_version` in the metadata).
pub const MASK_FORMAT_VERSION: &str = "1";

impl Mask {
    /// Writes the mask: one u8 tensor per parameter, 0/1 in its PyTorch shape, or with
    /// `packed` the bit-packed form. `extra` goes into the metadata too.
    ///
    /// # Errors
    ///
    /// As [`crate::files::write_raw`].
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
    ///
    /// # Errors
    ///
    /// [`SparseError::Bert`] / [`SparseError::File`] when the file cannot be read, is not a
    /// safetensors file, or has another format version, an unknown packing or bad `shapes`
    /// metadata; [`SparseError::Tensor`] for a tensor that is not U8/BOOL 0/1, has the wrong
    /// number of packed bytes or set padding bits, or has no shape.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// bert.a.weight [2, 3] keeps 0, 1, 2, 4; bert.b.bias [4] keeps 1, 3; the head is whole.
    fn mask() -> Mask {
        let t = |shape: Vec<usize>, kept: Vec<u32>| MaskTensor { shape, kept };
        Mask {
            tensors: BTreeMap::from([
                ("bert.a.weight".to_string(), t(vec![2, 3], vec![0, 1, 2, 4])),
                ("bert.b.bias".to_string(), t(vec![4], vec![1, 3])),
                ("classifier.weight".to_string(), t(vec![1, 2], vec![0, 1])),
            ]),
        }
    }

    #[test]
    fn both_file_forms_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = mask();
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
}
