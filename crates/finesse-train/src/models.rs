//! What every model-naming option (`--model`, `--base`, `--other`, `--magnitude-of`, …) takes:
//! a known model name (cached, or fetched on first use), an HF model folder, or a run
//! directory, which stands for the model it fine-tuned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use finesse_bert::HostTensor;
use finesse_bert::hub::resolve_model;

use crate::error::{Result, TrainError};
use crate::rundir::RunDir;

/// The HF folder a model spec names: the folder itself, the cached known model, or a run
/// directory's `model/` (a run without one is an error that says how to get it).
///
/// # Errors
/// An unknown name, a model that cannot be fetched or verified, or a run directory
/// without `model/` ([`TrainError::NoModel`], saying how to get it).
pub fn model_folder(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if RunDir::is_run(path) {
        let run = RunDir::open(path)?;
        return run.model_folder().ok_or_else(|| TrainError::NoModel {
            path: path.to_path_buf(),
            hint: if run.diff().is_file() {
                format!(
                    "rebuild it with `finesse diff apply --base BASE --diff {} --out DIR`, \
                     or re-run with --save-model",
                    run.diff().display()
                )
            } else {
                "re-run with --save-model".into()
            },
        });
    }
    Ok(resolve_model(spec, true)?.dir().to_path_buf())
}

/// The tensors (canonical HF names) of the model a spec names; a run directory gives its
/// `model/`, or its diff applied to its base model.
///
/// # Errors
/// As [`model_folder`], or tensors that cannot be read (or a diff that does not fit).
pub fn model_tensors(spec: &str) -> Result<BTreeMap<String, HostTensor>> {
    let path = Path::new(spec);
    if RunDir::is_run(path) {
        return RunDir::open(path)?.read_model_tensors();
    }
    let folder = resolve_model(spec, true)?.dir().to_path_buf();
    Ok(finesse_sparse::files::read_model_tensors(
        &finesse_bert::ModelFolder::open(&folder)?.weights(),
    )?)
}
