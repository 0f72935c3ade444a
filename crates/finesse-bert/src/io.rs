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
///
/// # Errors
///
/// [`BertError::Io`] when the folder or the temporary file cannot be created, or the file
/// cannot be written, synced or renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| BertError::io("creating folder", dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".finesse-tmp-");
    // What a plain file creation gives (0o666 less the umask, usually 0o644), not the
    // owner-only 0o600 of a temporary file: run directories are shared and read by others.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
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

/// Checks that no output path names one of the inputs, so a command never overwrites what it
/// reads (`diff apply --out` = the base folder, `mask --out` = the Fisher file, …). Paths are
/// compared after resolving symlinks, `.` and `..`, also for outputs that do not exist yet (the
/// longest existing ancestor is resolved), and on Unix hard links to one file count as equal.
/// The error names the output and the input as given.
///
/// # Errors
///
/// [`BertError::OutputIsInput`] naming the first output that is one of the inputs.
pub fn check_outputs_distinct(outputs: &[&Path], inputs: &[&Path]) -> Result<()> {
    for output in outputs {
        let out = resolved(output);
        for input in inputs {
            if out == resolved(input) || same_file(output, input) {
                return Err(BertError::OutputIsInput {
                    output: output.to_path_buf(),
                    input: input.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// `path` made absolute with symlinks resolved in its longest existing ancestor; the rest of it
/// (which does not exist, so holds no symlink) resolved lexically.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let components: Vec<Component<'_>> = absolute.components().collect();
    for split in (0..=components.len()).rev() {
        let prefix: PathBuf = components[..split].iter().collect();
        let Ok(mut out) = prefix.canonicalize() else {
            continue;
        };
        for c in &components[split..] {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        return out;
    }
    absolute
}

/// True when both paths exist and are one file (Unix: same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
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
///
/// # Errors
///
/// [`BertError::Io`] when the file cannot be read, [`BertError::Safetensors`] when it is not a
/// safetensors file.
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
///
/// # Errors
///
/// [`BertError::Io`] and [`BertError::Safetensors`] as [`read_float_tensors`];
/// [`BertError::BadTensor`] for a name the file lacks or a tensor that is not an integer (or
/// bool) tensor.
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

/// `safetensors::serialize` with the metadata written in key order. The crate keeps metadata in
/// a `HashMap`, so two runs that write the same tensors and metadata would give files that
/// differ in their header bytes; finesse's artifacts must be byte-for-byte reproducible. The
/// tensors are serialised by the crate; the sorted `__metadata__` object is spliced in first
/// and the header re-padded to 8 bytes, as the format asks.
///
/// # Errors
///
/// The `safetensors` crate's error when the views cannot be serialised (e.g. a view whose data
/// does not fit its shape).
pub fn serialize_sorted<'a>(
    views: Vec<(String, TensorView<'a>)>,
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    let plain = safetensors::serialize(views, None)?;
    if metadata.is_empty() {
        return Ok(plain);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&plain[..8]);
    let n = u64::from_le_bytes(len) as usize;
    let header = std::str::from_utf8(&plain[8..8 + n])
        .expect("safetensors writes a UTF-8 header")
        .trim_end();
    let tensors = header
        .strip_prefix('{')
        .expect("safetensors writes a JSON object");
    let meta = serde_json::to_string(metadata).expect("a string map serialises");
    let sep = if tensors.starts_with('}') { "" } else { "," };
    let mut new = format!("{{\"__metadata__\":{meta}{sep}{tensors}");
    while !new.len().is_multiple_of(8) {
        new.push(' ');
    }
    let mut out = Vec::with_capacity(8 + new.len() + plain.len() - 8 - n);
    out.extend_from_slice(&(new.len() as u64).to_le_bytes());
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&plain[8 + n..]);
    Ok(out)
}

/// Writes f32 tensors to a safetensors file atomically, with string metadata (in key order).
///
/// # Errors
///
/// [`BertError::Safetensors`] when the tensors cannot be serialised (a shape that does not fit
/// the data) and the errors of [`write_atomic`].
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
    let out = serialize_sorted(views, &metadata).map_err(|source| BertError::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_equal_to_an_input_under_any_spelling_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("fisher.safetensors");
        std::fs::write(&input, b"x").expect("write");
        let other = dir.path().join("mask.safetensors");
        check_outputs_distinct(&[&other], &[&input]).expect("distinct");
        let dotted = dir.path().join("sub/../fisher.safetensors");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        for spelling in [
            input.clone(),
            dir.path().join("./fisher.safetensors"),
            dotted,
        ] {
            let err = check_outputs_distinct(&[&spelling], &[&input]).expect_err("same file");
            let msg = err.to_string();
            assert!(
                matches!(err, BertError::OutputIsInput { .. })
                    && msg.contains("fisher.safetensors")
                    && msg.contains("overwrite"),
                "{msg}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_readable_by_others_like_a_plain_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics.json");
        write_atomic(&path, b"{}").expect("write");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"{}").expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&plain), "not a temporary file's 0o600");
    }

    #[test]
    fn output_folder_equal_to_an_input_folder_through_a_link_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("base");
        std::fs::create_dir(&base).expect("mkdir");
        check_outputs_distinct(&[&dir.path().join("out")], &[&base]).expect("new folder");
        check_outputs_distinct(&[&dir.path().join("no/such/out")], &[&base]).expect("deep");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&base, &link).expect("symlink");
            check_outputs_distinct(&[&link], &[&base]).expect_err("same folder");
            // A new file below the link is the same path as one below the folder.
            let weights = base.join("model.safetensors");
            check_outputs_distinct(&[&link.join("model.safetensors")], &[&weights])
                .expect_err("same file, not yet written");
            // Hard links are one file.
            std::fs::write(&weights, b"w").expect("write");
            let hard = dir.path().join("hard.safetensors");
            std::fs::hard_link(&weights, &hard).expect("hard link");
            check_outputs_distinct(&[&hard], &[&weights]).expect_err("hard link");
        }
    }

    #[test]
    fn metadata_is_written_in_key_order_so_files_are_reproducible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = HostTensor::new(vec![3], vec![1.0, 2.0, 3.0]);
        let meta: BTreeMap<String, String> = (0..40)
            .map(|i| (format!("key{i:02}"), format!("value {i}")))
            .collect();
        let mut files = Vec::new();
        for i in 0..4 {
            let path = dir.path().join(format!("{i}.safetensors"));
            write_f32_tensors(
                &path,
                &[("b".into(), t.clone()), ("a".into(), t.clone())],
                meta.clone(),
            )
            .expect("write");
            files.push(std::fs::read(&path).expect("read"));
        }
        assert!(
            files.windows(2).all(|w| w[0] == w[1]),
            "bytes differ between writes"
        );
        let bytes = &files[0];
        let (n, back) = SafeTensors::read_metadata(bytes).expect("valid header");
        assert_eq!(n % 8, 0, "header padded to 8 bytes");
        let got: BTreeMap<String, String> = back
            .metadata()
            .clone()
            .expect("metadata")
            .into_iter()
            .collect();
        assert_eq!(got, meta);
        let header = std::str::from_utf8(&bytes[8..8 + n]).expect("utf-8");
        let keys: Vec<usize> = (0..40)
            .map(|i| header.find(&format!("\"key{i:02}\"")).expect("key"))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        let st = SafeTensors::deserialize(bytes).expect("readable");
        assert_eq!(
            st.tensor("a").expect("a").data(),
            st.tensor("b").expect("b").data()
        );
    }

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
