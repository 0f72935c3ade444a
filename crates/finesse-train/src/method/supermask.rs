//! Supermask training of WQ…WO ("How fine can fine-tuning be?"): the weights stay fixed,
//! scores v are trained through masks drawn from Bernoulli(σ(v)) with a straight-through
//! gradient, and the head is trained as usual. The run ends with the deterministic mask
//! σ(v) > 0.5 and seeded evaluations of sampled masks.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::Gradients;
use finesse_bert::{HostTensor, ParamInfo, ParamKind};
use finesse_sparse::supermask::{MaskDraw, Supermask};
use finesse_sparse::{Mask, UpdateRule};

use super::{FinishCtx, Method, MethodSummary, Model, StartCtx};
use crate::error::Result;
use crate::rundir::SupermaskSummary;
use crate::trainer::evaluate;

/// The supermask settings of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SupermaskSettings {
    /// Fraction of the smallest-magnitude weights per matrix whose score starts at −5.
    pub initial_sparsity: f64,
    /// Peak learning rate of the scores.
    pub score_lr: f64,
    /// Sampled masks evaluated at the end.
    pub eval_samples: usize,
}

/// Supermasks as a method.
pub struct SupermaskMethod {
    settings: SupermaskSettings,
    scores: Option<Supermask>,
    peak_lr: f64,
}

impl SupermaskMethod {
    /// The method with `settings`.
    pub fn new(settings: SupermaskSettings) -> Self {
        Self {
            settings,
            scores: None,
            peak_lr: 1.0,
        }
    }
}

impl Method for SupermaskMethod {
    /// The head is trained; every weight stays fixed (the scores are trained instead).
    fn rule(&self, _mask: Option<&Mask>, p: &ParamInfo) -> UpdateRule {
        if p.kind == ParamKind::Classifier {
            UpdateRule::All
        } else {
            UpdateRule::Frozen
        }
    }

    fn start(&mut self, ctx: &StartCtx<'_>) -> Result<()> {
        let mut s = Supermask::init(
            ctx.model,
            ctx.registry,
            self.settings.initial_sparsity,
            ctx.train_device,
        )?;
        if let Some(state) = ctx.resumed {
            s.load_state(state, ctx.start_step as u64, ctx.train_device)?;
        }
        self.scores = Some(s);
        self.peak_lr = ctx.config.lr;
        Ok(())
    }

    fn forward_view(&self, model: &Model) -> Option<Model> {
        let s = self.scores.as_ref()?;
        Some(s.masked(model.clone(), MaskDraw::Sample))
    }

    /// The scores' Adam step; they follow the weights' warm-up/decay shape.
    fn after_backward(&mut self, grads: &mut Gradients, lr: f64) {
        if let Some(s) = self.scores.as_mut() {
            s.step(grads, self.settings.score_lr * lr / self.peak_lr);
        }
    }

    fn eval_view(&self, model: &Model) -> Model {
        match &self.scores {
            Some(s) => s.masked(model.clone(), MaskDraw::Deterministic),
            None => model.clone(),
        }
    }

    fn state_tensors(&self) -> Result<Vec<(String, HostTensor)>> {
        match &self.scores {
            Some(s) => Ok(s.try_state_tensors()?),
            None => Ok(Vec::new()),
        }
    }

    /// The deterministic mask (bit-packed) with its statistics, and `eval_samples` masks
    /// sampled (seeded) and evaluated on the first dev split: their mean and deviation.
    fn finish(&mut self, ctx: &FinishCtx<'_>) -> Result<MethodSummary> {
        let Some(s) = &self.scores else {
            return Ok(MethodSummary::default());
        };
        let mask = s.try_final_mask()?;
        ctx.dir.write_mask(&mask, true, "supermask")?;
        let mut runs = Vec::new();
        if let Some(set) = ctx.dev.sets.first() {
            for i in 0..self.settings.eval_samples {
                // Seeded per sample, so the evaluation is reproducible.
                ctx.train_device
                    .seed(ctx.config.seed.wrapping_mul(7_919).wrapping_add(i as u64));
                let sampled = s.masked(ctx.trained.clone(), MaskDraw::Sample);
                let (_, metrics) = evaluate(
                    &sampled.valid(),
                    &set.data,
                    &set.pool,
                    ctx.dev.plan,
                    ctx.config.task,
                    ctx.device,
                )?;
                runs.push(metrics);
            }
        }
        let (mean, std) = mean_and_std(&runs);
        Ok(MethodSummary {
            supermask: Some(SupermaskSummary {
                kept: mask.kept(),
                total: mask.total(),
                sparsity: 1.0 - mask.kept() as f64 / mask.total().max(1) as f64,
                sampled: runs,
                sampled_mean: mean,
                sampled_std: std,
            }),
            ..MethodSummary::default()
        })
    }
}

type Metrics = BTreeMap<String, f64>;

/// Per metric: the mean and the population standard deviation over `runs`.
fn mean_and_std(runs: &[Metrics]) -> (Metrics, Metrics) {
    let mut mean = BTreeMap::new();
    let mut std = BTreeMap::new();
    if let Some(first) = runs.first() {
        for k in first.keys() {
            let v: Vec<f64> = runs.iter().filter_map(|m| m.get(k).copied()).collect();
            let mu = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / v.len() as f64;
            mean.insert(k.clone(), mu);
            std.insert(k.clone(), var.sqrt());
        }
    }
    (mean, std)
}
