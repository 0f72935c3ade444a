//! Host-side tensor files: safetensors read/write in f32 (and i64 for token inputs), and
//! atomic file writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{BertError, Result};

/// A tensor held on the host in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor<T = f32> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<T>,
}

impl<T> HostTensor<T> {
    /// Builds a tensor, checking that `data` fills `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape` (a bug in the caller).
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "data does not fill shape {shape:?}"
        );
        Self { shape, data }
    }

    /// Number of entries.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Transposes a row-major `[rows, cols]` matrix into a row-major `[cols, rows]` one.
pub fn transpose_2d<T: Copy + Default>(data: &[T], rows: usize, cols: usize) -> Vec<T> {
    assert_eq!(
        data.len(),
        rows * cols,
        "matrix data does not fill [{rows}, {cols}]"
    );
    let mut out = vec![T::default(); data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| BertError::io("creating folder", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".finesse-tmp-")
        .tempfile_in(dir)
        .map_err(|e| BertError::io("creating a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| BertError::io("writing", tmp.path().to_path_buf(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| BertError::io("syncing", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| BertError::io("renaming into", path, e.error))?;
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| BertError::io("reading", path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|source| BertError::Safetensors {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, name: &str, problem: impl Into<String>) -> BertError {
    BertError::BadTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
        problem: problem.into(),
    }
}

fn to_f32(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let b = view.data();
    let chunks = |n: usize| b.chunks_exact(n);
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => chunks(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => chunks(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        other => {
            return Err(bad(
                path,
                name,
                format!("dtype {other:?} is not a float type"),
            ));
        }
    };
    Ok(data)
}

/// The float tensors of a safetensors file, converted to f32 (from f32, f16, bf16 or f64),
/// and the names of the tensors of other dtypes, which are left out.
pub struct FloatTensors {
    /// The file read.
    pub path: PathBuf,
    /// Float tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// Names of non-float tensors (e.g. `embeddings.position_ids`).
    pub non_float: Vec<String>,
    /// The distinct dtypes of the float tensors, e.g. `["F16"]`.
    pub dtypes: Vec<String>,
}

/// Reads every float tensor of a safetensors file as f32.
pub fn read_float_tensors(path: &Path) -> Result<FloatTensors> {
    let bytes = read_file(path)?;
    let st = parse(path, &bytes)?;
    let mut tensors = BTreeMap::new();
    let mut non_float = Vec::new();
    let mut dtypes = Vec::new();
    for (name, view) in st.tensors() {
        match view.dtype() {
            Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64 => {
                let dt = format!("{:?}", view.dtype());
                if !dtypes.contains(&dt) {
                    dtypes.push(dt);
                }
                let data = to_f32(path, &name, &view)?;
                tensors.insert(name, HostTensor::new(view.shape().to_vec(), data));
            }
            _ => non_float.push(name),
        }
    }
    non_float.sort();
    Ok(FloatTensors {
        path: path.to_path_buf(),
        tensors,
        non_float,
        dtypes,
    })
}

/// Reads the named integer tensors (i64, i32, u8 … accepted) of a safetensors file as i64.
pub fn read_int_tensors(path: &Path, names: &[&str]) -> Result<Vec<HostTensor<i64>>> {
    let bytes = read_file(path)?;
    let st = parse(path, &bytes)?;
    names
        .iter()
        .map(|&name| {
            let view = st
                .tensor(name)
                .map_err(|_| bad(path, name, "not in the file"))?;
            let b = view.data();
            let data: Vec<i64> = match view.dtype() {
                Dtype::I64 => b
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                Dtype::I32 => b
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
                Dtype::U8 => b.iter().map(|&x| x as i64).collect(),
                Dtype::BOOL => b.iter().map(|&x| (x != 0) as i64).collect(),
                other => {
                    return Err(bad(
                        path,
                        name,
                        format!("dtype {other:?} is not an integer type"),
                    ));
                }
            };
            Ok(HostTensor::new(view.shape().to_vec(), data))
        })
        .collect()
}

/// Writes f32 tensors to a safetensors file atomically, with string metadata.
pub fn write_f32_tensors(
    path: &Path,
    tensors: &[(String, HostTensor)],
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|source| BertError::Safetensors {
                    path: path.to_path_buf(),
                    source,
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata: std::collections::HashMap<String, String> = metadata.into_iter().collect();
    let out =
        safetensors::serialize(views, Some(metadata)).map_err(|source| BertError::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_tensors_round_trip_bit_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.safetensors");
        let t = HostTensor::new(
            vec![2, 3],
            vec![1.5, -0.0, f32::MIN_POSITIVE, 3.0, 1e-30, 7.25],
        );
        write_f32_tensors(&path, &[("a.weight".into(), t.clone())], BTreeMap::new())
            .expect("write");
        let back = read_float_tensors(&path).expect("read");
        let got = &back.tensors["a.weight"];
        assert_eq!(got.shape, t.shape);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.data), bits(&t.data));
    }

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.safetensors");
        let t = HostTensor::new(vec![4], vec![1.0; 4]);
        write_f32_tensors(&path, &[("x".into(), t)], BTreeMap::new()).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        let err = read_float_tensors(&path)
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.contains("t.safetensors") && err.contains("not a valid safetensors"),
            "{err}"
        );
    }

    #[test]
    fn half_precision_is_widened_to_f32() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.safetensors");
        let vals = [0.5f32, -2.0, 1.0 / 3.0];
        let f16: Vec<u8> = vals
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = vals
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        let views = vec![
            (
                "h".to_string(),
                TensorView::new(Dtype::F16, vec![3], &f16).expect("view"),
            ),
            (
                "b".to_string(),
                TensorView::new(Dtype::BF16, vec![3], &bf16).expect("view"),
            ),
        ];
        let bytes = safetensors::serialize(views, None).expect("serialize");
        std::fs::write(&path, bytes).expect("write");
        let t = read_float_tensors(&path).expect("read");
        assert_eq!(t.tensors["h"].data[0..2], [0.5, -2.0]);
        assert!((t.tensors["h"].data[2] - 1.0 / 3.0).abs() < 1e-3);
        assert!((t.tensors["b"].data[2] - 1.0 / 3.0).abs() < 1e-2);
        let mut dtypes = t.dtypes.clone();
        dtypes.sort();
        assert_eq!(dtypes, ["BF16", "F16"]);
    }
}
