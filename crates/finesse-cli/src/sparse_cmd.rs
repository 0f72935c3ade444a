//! What the sparse commands share: the model-spec and output-path helpers of `fisher_cmd`,
//! `mask_cmd` and `diff_cmd`, and the re-export of the mask budget flags `finetune.rs` uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use finesse_bert::io::check_outputs_distinct;
use finesse_bert::{HostTensor, ModelFolder};
use finesse_sparse::files::read_model_tensors;

pub use crate::mask_cmd::BudgetArgs;

/// The model folder of a model spec: a known name, an HF folder or a run directory.
pub fn model_folder(spec: &str) -> Result<PathBuf> {
    Ok(finesse_train::models::model_folder(spec)?)
}

/// Refuses outputs that would overwrite one of the inputs (compared as resolved paths).
pub fn check_distinct<O: AsRef<Path>, I: AsRef<Path>>(outputs: &[O], inputs: &[I]) -> Result<()> {
    let outputs: Vec<&Path> = outputs.iter().map(AsRef::as_ref).collect();
    let inputs: Vec<&Path> = inputs.iter().map(AsRef::as_ref).collect();
    Ok(check_outputs_distinct(&outputs, &inputs)?)
}

/// The weights of a model folder by canonical HF name.
pub fn tensors_of(folder: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let f = ModelFolder::open(folder)?;
    Ok(read_model_tensors(&f.weights())?)
}
