//! Loading a BERT from a Hugging Face model folder and saving one back.
//!
//! A folder holds `config.json`, `model.safetensors` and `tokenizer.json`. Tensor names may
//! carry the `bert.` prefix of HF task models or not (sentence-transformers checkpoints);
//! f16/bf16/f64 checkpoints are widened to f32. Linear weights are `[out, in]` on disk
//! (PyTorch) and `[in, out]` in Burn: they are transposed here and nowhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::BertConfig;
use crate::error::{BertError, Result};
use crate::io::{
    FloatTensors, HostTensor, read_float_tensors, transpose_2d, write_atomic, write_f32_tensors,
};
use crate::model::{BertForSequenceClassification, BertModel};
use crate::names::{BERT_PREFIX, PathStack, is_known_buffer};

/// File names inside an HF model folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file (safetensors only).
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The tokenizer of the `tokenizers` library.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Tokenizer side files copied along when present, so `AutoTokenizer` works on a saved folder.
const TOKENIZER_SIDE_FILES: &[&str] = &[
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// Every file finesse reads from or writes into an HF model folder.
pub const MODEL_FOLDER_FILES: &[&str] = &[
    CONFIG_FILE,
    WEIGHTS_FILE,
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
];

/// `dir` itself followed by the paths of [`MODEL_FOLDER_FILES`] in it: what a command that reads
/// or writes the folder touches (for [`crate::io::check_outputs_distinct`]).
pub fn model_folder_paths(dir: &Path) -> Vec<PathBuf> {
    std::iter::once(dir.to_path_buf())
        .chain(MODEL_FOLDER_FILES.iter().map(|f| dir.join(f)))
        .collect()
}

/// What loading a checkpoint found besides the tensors it used.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Checkpoint tensors the model did not use (e.g. an MLM head), sorted.
    pub unused: Vec<String>,
    /// True when the classifier head came from the checkpoint, false when freshly initialised.
    pub head_from_checkpoint: bool,
    /// Float dtypes found in the checkpoint (`F32`, `F16`, `BF16`, `F64`).
    pub source_dtypes: Vec<String>,
}

/// Paths of the files of a model folder, checked to exist.
#[derive(Clone, Debug)]
pub struct ModelFolder {
    /// The folder.
    pub dir: PathBuf,
}

impl ModelFolder {
    /// Checks that `dir` holds `config.json` and `model.safetensors`.
    ///
    /// # Errors
    ///
    /// [`BertError::Io`] when `config.json` is absent, [`BertError::NoSafetensors`] when
    /// `model.safetensors` is (with a hint for `pytorch_model.bin` and sharded checkpoints).
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join(CONFIG_FILE).is_file() {
            return Err(BertError::io(
                "opening model folder",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no config.json in it"),
            ));
        }
        if !dir.join(WEIGHTS_FILE).is_file() {
            let hint = if dir.join("pytorch_model.bin").is_file() {
                "; only pytorch_model.bin is there, and finesse reads safetensors only (pickle \
                 files can run code). Convert it once with transformers: \
                 `AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`"
            } else if dir.join("model.safetensors.index.json").is_file() {
                "; sharded checkpoints (model.safetensors.index.json) are not supported yet"
            } else {
                ""
            };
            return Err(BertError::NoSafetensors {
                folder: dir.to_path_buf(),
                hint: hint.into(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// `config.json`, parsed and validated.
    ///
    /// # Errors
    ///
    /// As [`BertConfig::from_file`].
    pub fn config(&self) -> Result<BertConfig> {
        BertConfig::from_file(&self.dir.join(CONFIG_FILE))
    }

    /// `model.safetensors`.
    pub fn weights(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }
}

/// Loads the encoder (HF `BertModel`) of a model folder; a classifier in the checkpoint is
/// reported as unused.
///
/// # Errors
///
/// As [`ModelFolder::open`] and [`BertConfig::from_file`]; [`BertError::MissingTensors`] naming
/// every tensor the checkpoint lacks, [`BertError::BadTensor`] for a misshaped one, and the
/// errors of reading the safetensors file.
pub fn load_bert(dir: &Path, device: &Device) -> Result<(BertModel, BertConfig, LoadReport)> {
    let folder = ModelFolder::open(dir)?;
    let config = folder.config()?;
    let mut tensors = read_float_tensors(&folder.weights())?;
    let model = BertModel::init(&config, device);
    let mut loader = Loader::new(&mut tensors, device, false);
    let model = model.map(&mut loader);
    let report = loader.finish()?;
    Ok((model, config, report))
}

/// Loads a sequence classifier: the encoder of the folder plus its `classifier.*` head when the
/// checkpoint has one (its size must be `num_labels`), else a fresh head drawn from `seed`.
///
/// # Errors
///
/// As [`load_bert`]; a head in the checkpoint that is not `num_labels` wide is a
/// [`BertError::BadTensor`].
pub fn load_classifier(
    dir: &Path,
    num_labels: usize,
    seed: u64,
    device: &Device,
) -> Result<(BertForSequenceClassification, BertConfig, LoadReport)> {
    let folder = ModelFolder::open(dir)?;
    let config = folder.config()?;
    let mut tensors = read_float_tensors(&folder.weights())?;
    let model = BertForSequenceClassification::with_fresh_head(
        BertModel::init(&config, device),
        &config,
        num_labels,
        seed,
        device,
    );
    let mut loader = Loader::new(&mut tensors, device, true);
    let model = model.map(&mut loader);
    let report = loader.finish()?;
    Ok((model, config, report))
}

/// Replaces every parameter of `model` by the tensor of the same HF name in `tensors` (e.g. a
/// training checkpoint); all must be present with the right shapes.
///
/// # Errors
///
/// [`BertError::MissingTensors`] for parameters `tensors` lacks, [`BertError::BadTensor`] for a
/// misshaped one.
pub fn load_into<M: Module>(
    model: M,
    mut tensors: FloatTensors,
    device: &Device,
) -> Result<(M, LoadReport)> {
    let mut loader = Loader::new(&mut tensors, device, false);
    let model = model.map(&mut loader);
    let report = loader.finish()?;
    Ok((model, report))
}

/// Replaces each parameter by the checkpoint tensor of the same HF name.
struct Loader<'a> {
    tensors: &'a mut FloatTensors,
    device: Device,
    at: PathStack,
    missing: Vec<String>,
    errors: Vec<BertError>,
    head_is_optional: bool,
    head_loaded: bool,
}

impl<'a> Loader<'a> {
    fn new(tensors: &'a mut FloatTensors, device: &Device, head_is_optional: bool) -> Self {
        Self {
            tensors,
            device: device.clone(),
            at: PathStack::default(),
            missing: Vec::new(),
            errors: Vec::new(),
            head_is_optional,
            head_loaded: false,
        }
    }

    /// Takes the tensor for `name` out of the checkpoint, trying it with and without `bert.`.
    fn take(&mut self, name: &str) -> Option<(String, HostTensor)> {
        let alt = match name.strip_prefix(BERT_PREFIX) {
            Some(bare) => bare.to_string(),
            None => format!("{BERT_PREFIX}{name}"),
        };
        for candidate in [name, alt.as_str()] {
            if let Some(t) = self.tensors.tensors.remove(candidate) {
                return Some((candidate.to_string(), t));
            }
        }
        None
    }

    /// Fails on missing or misshaped tensors; otherwise lists what the model did not use
    /// (including a second spelling of a tensor that was loaded, e.g. `bert.x` beside `x`).
    fn finish(self) -> Result<LoadReport> {
        let t = &*self.tensors;
        if !self.missing.is_empty() {
            return Err(BertError::MissingTensors {
                path: t.path.clone(),
                names: self.missing,
            });
        }
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let unused: BTreeSet<&String> = t
            .tensors
            .keys()
            .chain(&t.non_float)
            .filter(|n| !is_known_buffer(n))
            .collect();
        Ok(LoadReport {
            unused: unused.into_iter().cloned().collect(),
            head_from_checkpoint: self.head_loaded,
            source_dtypes: t.dtypes.clone(),
        })
    }
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.at.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.at.hf_name();
        let is_head = name.starts_with("classifier.");
        let transposed = self.at.is_transposed(D);
        let mut expected: Vec<usize> = param.lazy_shape().to_vec();
        if transposed {
            expected.reverse();
        }
        let Some((found_as, host)) = self.take(&name) else {
            if !(is_head && self.head_is_optional) {
                self.missing.push(name);
            }
            return param;
        };
        if host.shape != expected {
            self.errors.push(BertError::BadTensor {
                path: self.tensors.path.clone(),
                name: found_as,
                problem: format!(
                    "shape {:?} does not match the model's {:?} (PyTorch layout)",
                    host.shape, expected
                ),
            });
            return param;
        }
        if is_head {
            self.head_loaded = true;
        }
        // Transposed on the host so the parameter is contiguous in Burn's layout: a strided
        // view would make matmuls sum in another order than after the first optimizer step,
        // and a resumed run would drift from an uninterrupted one by a few ULPs.
        let (data, shape) = if transposed {
            (
                transpose_2d(&host.data, host.shape[0], host.shape[1]),
                vec![host.shape[1], host.shape[0]],
            )
        } else {
            (host.data, host.shape)
        };
        let tensor = Tensor::<D>::from_data(TensorData::new(data, shape), &self.device);
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

/// Every parameter of `model` in PyTorch layout under its HF name, in module order.
///
/// # Errors
///
/// [`BertError::Readback`] naming the parameter when the device fails to read it back.
pub fn try_model_tensors<M: Module>(model: &M) -> Result<Vec<(String, HostTensor)>> {
    let mut collector = Collector::default();
    model.visit(&mut collector);
    match collector.failed {
        Some(e) => Err(e.into()),
        None => Ok(collector.out),
    }
}

/// [`try_model_tensors`] for callers that treat a failed device read as fatal, as Burn's
/// `into_data` does.
///
/// # Panics
///
/// When the device fails to read a parameter back (a backend failure, not bad input).
pub fn model_tensors<M: Module>(model: &M) -> Vec<(String, HostTensor)> {
    try_model_tensors(model).unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Default)]
struct Collector {
    at: PathStack,
    out: Vec<(String, HostTensor)>,
    /// The first parameter that could not be read; the rest are skipped.
    failed: Option<crate::readback::ReadbackError>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.at.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.failed.is_some() {
            return;
        }
        let name = self.at.hf_name();
        let transposed = self.at.is_transposed(D);
        let tensor = param.val();
        let tensor = if transposed {
            tensor.transpose()
        } else {
            tensor
        };
        let shape = tensor.dims().to_vec();
        match crate::readback::floats(tensor, format!("parameter `{name}`")) {
            Ok(data) => self.out.push((name, HostTensor::new(shape, data))),
            Err(e) => self.failed = Some(e),
        }
    }
}

/// Saves a model as an HF folder: `model.safetensors` (HF names, `bert.` prefix for the
/// encoder, PyTorch layout, f32), `config.json` (the source config, updated for the head) and
/// the tokenizer files of `tokenizer_from` when given. Each file is written atomically.
///
/// # Errors
///
/// [`BertError::Readback`] when a parameter cannot be read from the device, and the errors of
/// [`write_hf_folder`].
pub fn save_hf_folder<M: Module>(
    model: &M,
    config: &BertConfig,
    num_labels: Option<usize>,
    tokenizer_from: Option<&Path>,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| BertError::io("creating folder", out, e))?;
    let tensors: Vec<(String, HostTensor)> = try_model_tensors(model)?
        .into_iter()
        .map(|(name, t)| {
            let name = if name.starts_with("classifier.") || name.starts_with(BERT_PREFIX) {
                name
            } else {
                format!("{BERT_PREFIX}{name}")
            };
            (name, t)
        })
        .collect();
    let json = serde_json::to_vec_pretty(&config.to_json(num_labels)).map_err(|source| {
        BertError::JsonWrite {
            path: out.join(CONFIG_FILE),
            source,
        }
    })?;
    write_hf_folder(&tensors, &json, tokenizer_from, out)
}

/// Writes an HF folder from host tensors (HF names, PyTorch layout) and the bytes of its
/// `config.json`, copying the tokenizer files of `tokenizer_from` when given. Each file is
/// written atomically.
///
/// # Errors
///
/// [`BertError::Io`] when the folder cannot be created or a tokenizer file read, and the errors
/// of writing each file ([`crate::io::write_atomic`]).
pub fn write_hf_folder(
    tensors: &[(String, HostTensor)],
    config_json: &[u8],
    tokenizer_from: Option<&Path>,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| BertError::io("creating folder", out, e))?;
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_f32_tensors(&out.join(WEIGHTS_FILE), tensors, metadata)?;
    write_atomic(&out.join(CONFIG_FILE), config_json)?;
    if let Some(src) = tokenizer_from {
        for file in TOKENIZER_SIDE_FILES {
            let from = src.join(file);
            if from.is_file() {
                let bytes = std::fs::read(&from).map_err(|e| BertError::io("reading", &from, e))?;
                write_atomic(&out.join(file), &bytes)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ParamKind, ParamRegistry, ParamRole};

    fn device() -> Device {
        Device::flex()
    }

    fn saved_tiny(dir: &Path, num_labels: usize) -> BertForSequenceClassification {
        let device = device();
        let config = BertConfig::tiny(50);
        let model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            num_labels,
            1,
            &device,
        );
        save_hf_folder(&model, &config, Some(num_labels), None, dir).expect("save");
        model
    }

    fn bits(t: &[(String, HostTensor)]) -> Vec<(String, Vec<usize>, Vec<u32>)> {
        t.iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.shape.clone(),
                    t.data.iter().map(|x| x.to_bits()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn save_then_load_is_bit_identical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = saved_tiny(dir.path(), 3);
        let (loaded, config, report) = load_classifier(dir.path(), 3, 99, &device()).expect("load");
        assert!(
            report.head_from_checkpoint,
            "the saved head must be used, not a fresh one"
        );
        assert!(report.unused.is_empty(), "unused: {:?}", report.unused);
        assert_eq!(config.num_hidden_layers, 2);
        assert_eq!(bits(&model_tensors(&model)), bits(&model_tensors(&loaded)));
        // Saved names carry the `bert.` prefix and PyTorch layout.
        let saved = read_float_tensors(&dir.path().join(WEIGHTS_FILE)).expect("read");
        assert_eq!(
            saved.tensors["bert.encoder.layer.0.intermediate.dense.weight"].shape,
            [64, 32]
        );
        assert_eq!(saved.tensors["classifier.weight"].shape, [3, 32]);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_FILE)).expect("read"))
                .expect("json");
        assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
        assert_eq!(cfg["id2label"].as_object().map(|m| m.len()), Some(3));
    }

    #[test]
    fn encoder_loads_from_names_without_prefix_and_lists_unused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = saved_tiny(dir.path(), 2);
        // Rewrite the file without the `bert.` prefix, as sentence-transformers checkpoints are.
        let path = dir.path().join(WEIGHTS_FILE);
        let bare: Vec<(String, HostTensor)> = read_float_tensors(&path)
            .expect("read")
            .tensors
            .into_iter()
            .map(|(n, t)| {
                (
                    n.strip_prefix(BERT_PREFIX).map(str::to_string).unwrap_or(n),
                    t,
                )
            })
            .collect();
        write_f32_tensors(&path, &bare, BTreeMap::new()).expect("write");
        let (bert, _, report) = load_bert(dir.path(), &device()).expect("load");
        assert_eq!(report.unused, ["classifier.bias", "classifier.weight"]);
        let want: Vec<_> = bits(&model_tensors(&model.bert));
        assert_eq!(bits(&model_tensors(&bert)), want);
    }

    #[test]
    fn missing_and_misshaped_tensors_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_tiny(dir.path(), 2);
        let path = dir.path().join(WEIGHTS_FILE);
        let all = read_float_tensors(&path).expect("read").tensors;
        let without: Vec<_> = all
            .clone()
            .into_iter()
            .filter(|(n, _)| n != "bert.encoder.layer.1.attention.self.key.bias")
            .collect();
        write_f32_tensors(&path, &without, BTreeMap::new()).expect("write");
        let err = load_bert(dir.path(), &device())
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("encoder.layer.1.attention.self.key.bias"),
            "{err}"
        );

        let mut misshaped: Vec<_> = all.into_iter().collect();
        for (n, t) in &mut misshaped {
            if n == "bert.encoder.layer.0.attention.self.query.weight" {
                *t = HostTensor::new(vec![32, 31], vec![0.0; 32 * 31]);
            }
        }
        write_f32_tensors(&path, &misshaped, BTreeMap::new()).expect("write");
        let err = load_bert(dir.path(), &device())
            .expect_err("misshaped")
            .to_string();
        assert!(
            err.contains("bert.encoder.layer.0.attention.self.query.weight")
                && err.contains("[32, 31]"),
            "{err}"
        );
    }

    #[test]
    fn head_of_the_wrong_size_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_tiny(dir.path(), 2);
        let err = load_classifier(dir.path(), 3, 0, &device())
            .expect_err("wrong head")
            .to_string();
        assert!(err.contains("classifier.weight"), "{err}");
    }

    #[test]
    fn f16_checkpoints_are_widened() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_tiny(dir.path(), 2);
        let path = dir.path().join(WEIGHTS_FILE);
        let all = read_float_tensors(&path).expect("read").tensors;
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = all
            .iter()
            .map(|(n, t)| {
                let b = t
                    .data
                    .iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect();
                (n.clone(), t.shape.clone(), b)
            })
            .collect();
        let views: Vec<_> = bytes
            .iter()
            .map(|(n, s, b)| {
                let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, s.clone(), b);
                (n.clone(), v.expect("view"))
            })
            .collect();
        std::fs::write(&path, safetensors::serialize(views, None).expect("ser")).expect("write");
        let (m, _, report) = load_classifier(dir.path(), 2, 0, &device()).expect("load f16");
        assert_eq!(report.source_dtypes, ["F16"]);
        let got = model_tensors(&m);
        let (_, w) = got
            .iter()
            .find(|(n, _)| n == "classifier.weight")
            .expect("head");
        let want = &all["classifier.weight"];
        assert!(
            w.data
                .iter()
                .zip(&want.data)
                .all(|(a, b)| (a - b).abs() < 1e-3)
        );
    }

    #[test]
    fn pytorch_bin_only_folder_gets_a_clear_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CONFIG_FILE), "{}").expect("write");
        std::fs::write(dir.path().join("pytorch_model.bin"), "x").expect("write");
        let err = load_bert(dir.path(), &device())
            .expect_err("bin only")
            .to_string();
        assert!(
            err.contains("pytorch_model.bin") && err.contains("safetensors"),
            "{err}"
        );
    }

    #[test]
    fn corrupted_safetensors_is_rejected_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_tiny(dir.path(), 2);
        std::fs::write(
            dir.path().join(WEIGHTS_FILE),
            b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage",
        )
        .expect("write");
        let err = load_bert(dir.path(), &device())
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }

    #[test]
    fn registry_covers_every_parameter_once_with_the_right_kinds() {
        let device = device();
        let config = BertConfig::tiny(50);
        let model = BertForSequenceClassification::with_fresh_head(
            BertModel::init(&config, &device),
            &config,
            2,
            0,
            &device,
        );
        let reg = ParamRegistry::of(&model);
        let tensors = model_tensors(&model);
        assert_eq!(reg.len(), tensors.len());
        // 5 embedding tensors, 16 per layer, 2 pooler, 2 classifier.
        assert_eq!(reg.len(), 5 + 16 * 2 + 2 + 2);
        for (name, t) in &tensors {
            let info = reg
                .by_name(name)
                .unwrap_or_else(|| panic!("{name} not registered"));
            assert_eq!(info.shape, t.shape, "{name}");
            assert_eq!(
                reg.by_id(&info.id).map(|i| i.name.as_str()),
                Some(name.as_str())
            );
        }
        assert_eq!(
            reg.total_numel(),
            tensors.iter().map(|(_, t)| t.numel()).sum::<usize>()
        );
        let count = |k: ParamKind| reg.iter().filter(|p| p.kind == k).count();
        for k in [
            ParamKind::Query,
            ParamKind::Key,
            ParamKind::Value,
            ParamKind::AttentionOutput,
            ParamKind::Intermediate,
            ParamKind::Output,
        ] {
            assert_eq!(count(k), 4, "{k:?}: weight + bias in each of 2 layers");
        }
        assert_eq!(count(ParamKind::LayerNorm), 2 + 4 * 2);
        let q = reg
            .by_name("bert.encoder.layer.1.attention.self.query.weight")
            .expect("WQ");
        assert_eq!(
            (q.layer, q.kind.matrix_label(), q.role, q.transposed),
            (Some(1), Some("WQ"), ParamRole::Weight, true)
        );
        let wi = reg
            .by_name("bert.encoder.layer.0.intermediate.dense.weight")
            .expect("WI");
        assert_eq!(wi.shape, [64, 32]);
        let emb = reg
            .by_name("bert.embeddings.word_embeddings.weight")
            .expect("emb");
        assert_eq!(
            (emb.kind, emb.layer, emb.transposed),
            (ParamKind::WordEmbedding, None, false)
        );
        assert_eq!(
            reg.by_name("classifier.bias").map(|p| p.kind),
            Some(ParamKind::Classifier)
        );
    }
}
