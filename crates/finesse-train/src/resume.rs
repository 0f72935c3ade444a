//! Resuming a run: what may change and what is checked. A resumed run must end exactly where
//! the uninterrupted run would have, so everything that defines it comes from its `run.json`.
//! Only where things are may change — the device (same one, unless forced), the model folder
//! and the data folder (moved files; their sha256 must still match, checked by the trainer) —
//! and how often it checkpoints.

use std::path::PathBuf;

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::rundir::RunDir;

/// What a front-end asks of a resume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResumeRequest {
    /// The device asked for by name (`None`: the recorded one).
    pub device: Option<String>,
    /// Continue on another device than the recorded one (results then differ in rounding).
    pub force_device: bool,
    /// The model, moved (its `model.safetensors` must have the recorded sha256).
    pub model: Option<String>,
    /// The GLUE folder, moved (every data file must have its recorded sha256).
    pub data_dir: Option<PathBuf>,
    /// Checkpoint every this many steps from now on (does not change results).
    pub checkpoint_every: Option<usize>,
}

impl RunDir {
    /// The configuration to resume this run with: its `run.json`, with the request's moves
    /// applied. Refuses a run that finished or has no checkpoint, and a device other than the
    /// recorded one unless forced — each with a message naming what differs.
    ///
    /// # Errors
    /// [`TrainError::Resume`] naming what prevents the resume.
    pub fn resume_config(&self, req: &ResumeRequest) -> Result<RunConfig> {
        let info = self.read_info()?;
        let refuse = |problem: String| TrainError::Resume {
            path: self.root.clone(),
            problem,
        };
        if self.is_locked() {
            return Err(refuse("another process is training it now".into()));
        }
        if self.metrics().is_file() {
            return Err(refuse(
                "it has finished (metrics.json is written); start a new run instead".into(),
            ));
        }
        if self.checkpoint_state().is_none() {
            return Err(refuse(
                "it has no complete checkpoint/ (runs checkpoint when cancelled, on SIGTERM, \
                 and every --checkpoint-every steps); start it again in a new folder"
                    .into(),
            ));
        }
        let mut config = info.config;
        if let Some(device) = &req.device
            && *device != config.device
        {
            if !req.force_device {
                return Err(refuse(format!(
                    "it ran on device `{}`, not `{device}`: another backend rounds differently, \
                     so the run would not end where it would have. Resume on `{}`, or pass \
                     --force-device to continue on `{device}` anyway",
                    config.device, config.device
                )));
            }
            log::warn!(
                "resuming a `{}` run on `{device}` (--force-device): results will differ in rounding",
                config.device
            );
            config.device = device.clone();
        }
        if let Some(model) = &req.model {
            config.model = model.clone();
        }
        if let Some(data_dir) = &req.data_dir {
            config.data_dir = data_dir.clone();
        }
        if req.checkpoint_every.is_some() {
            config.checkpoint_every = req.checkpoint_every;
        }
        config.output_dir = self.root.clone();
        Ok(config)
    }
}
